//! Online backups of an SQLite ledger, and bringing one back.
//!
//! A backup is a folder: a consistent copy of the database (`VACUUM INTO`
//! reads one snapshot while the writer goes on), the key files the caller
//! names, and `manifest.json` with the SHA-256 of each file. Subject keys are
//! left out of the copy on purpose: erasing a data subject must leave no key
//! in backups the service made (docs/PERSONAL_DATA.md), so after a restore
//! the personal fields of restored events read as `[erased]`.
//! PostgreSQL backups are the operator's `pg_dump` (docs/DEPLOYMENT.md).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use diesel::{Connection, RunQueryDsl, SqliteConnection};
use serde::{Deserialize, Serialize};

use super::connection::SQLITE_FILE;
use super::{checkpoints, events, DbConn, StorageTarget, StoreError};

pub const MANIFEST_FILE: &str = "manifest.json";
const FORMAT: &str = "govledger-backup/1";

/// What a backup holds, written next to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub created_at: String,
    /// Events in the copy.
    pub size: u64,
    /// Hash of the last event, hex.
    pub head_hash: Option<String>,
    /// Tree size of the newest checkpoint in the copy.
    pub last_checkpoint: Option<u64>,
    /// Always `excluded` (see the module documentation).
    pub subject_keys: String,
    /// SHA-256 (hex) of every file of the backup but the manifest.
    pub files: BTreeMap<String, String>,
}

fn failed(what: impl std::fmt::Display) -> StoreError {
    StoreError::Backup(what.to_string())
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |e| failed(format!("{}: {e}", path.display()))
}

fn sha256_of(path: &Path) -> Result<String, StoreError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    Ok(hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref()))
}

/// Writes `bytes` to `path` and makes them durable, readable by the owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Copies the SQLite ledger at `database` and the existing `key_files` into
/// the new or empty folder `dir`.
pub fn backup(database: &Path, key_files: &[PathBuf], dir: &Path) -> Result<Manifest, StoreError> {
    if !database.exists() {
        return Err(failed(format!("no ledger at {}", database.display())));
    }
    if dir.exists() && std::fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
        return Err(failed(format!("{} is not empty: a backup goes into a new folder", dir.display())));
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let copy = dir.join(SQLITE_FILE);
    let mut source = DbConn::establish(&StorageTarget::Sqlite { path: database.to_owned() })?;
    if let DbConn::Sqlite(c) = &mut source {
        diesel::sql_query("VACUUM INTO ?")
            .bind::<diesel::sql_types::Text, _>(copy.to_string_lossy().into_owned())
            .execute(c)?;
    }
    drop(source);

    let mut conn = SqliteConnection::establish(&copy.to_string_lossy())?;
    // The keys are zeroed where they lay and the file rebuilt without them;
    // the journal stays in memory so no page image of them reaches a file.
    for statement in [
        "PRAGMA journal_mode = MEMORY",
        "PRAGMA secure_delete = ON",
        "DELETE FROM subject_keys",
        "DELETE FROM subject_key_log",
        "VACUUM",
    ] {
        diesel::sql_query(statement).execute(&mut conn)?;
    }
    let mut conn = DbConn::Sqlite(conn);
    let head = events::head(&mut conn)?;
    let last_checkpoint = checkpoints::latest(&mut conn)?.map(|c| c.tree_size);
    drop(conn);
    std::fs::File::open(&copy).and_then(|f| f.sync_all()).map_err(io(&copy))?;

    let mut files = BTreeMap::new();
    files.insert(SQLITE_FILE.to_owned(), sha256_of(&copy)?);
    for key in key_files.iter().filter(|k| k.exists()) {
        let name = key.file_name().and_then(|n| n.to_str()).ok_or_else(|| failed("key file without a name"))?;
        write_private(&dir.join(name), &std::fs::read(key).map_err(io(key))?)?;
        files.insert(name.to_owned(), sha256_of(key)?);
    }
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        created_at: crate::ledger::timestamp::now(),
        size: head.size,
        head_hash: head.hash.map(hex::encode),
        last_checkpoint,
        subject_keys: "excluded".to_owned(),
        files,
    };
    let text = serde_json::to_vec_pretty(&manifest).map_err(failed)?;
    write_private(&dir.join(MANIFEST_FILE), &text)?;
    sync_dir(dir)?;
    Ok(manifest)
}

/// Reads the manifest of the backup in `dir` and checks every file against it.
pub fn check(dir: &Path) -> Result<Manifest, StoreError> {
    let path = dir.join(MANIFEST_FILE);
    let text = std::fs::read(&path).map_err(io(&path))?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| failed(format!("{}: {e}", path.display())))?;
    if manifest.format != FORMAT {
        return Err(failed(format!("{}: format {:?}, expected {FORMAT:?}", path.display(), manifest.format)));
    }
    if !manifest.files.contains_key(SQLITE_FILE) {
        return Err(failed(format!("{}: lists no {SQLITE_FILE}", path.display())));
    }
    for (name, expected) in &manifest.files {
        if name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(failed(format!("{}: bad file name {name:?}", path.display())));
        }
        if &sha256_of(&dir.join(name))? != expected {
            return Err(failed(format!("{name} does not match the manifest: the backup is damaged")));
        }
    }
    Ok(manifest)
}

/// Restores the backup in `dir` into `data_dir`, which must hold no ledger;
/// a key file already there must be the same as the backup's.
pub fn restore(dir: &Path, data_dir: &Path) -> Result<Manifest, StoreError> {
    let manifest = check(dir)?;
    let target = data_dir.join(SQLITE_FILE);
    for existing in [target.clone(), data_dir.join(format!("{SQLITE_FILE}-wal"))] {
        if existing.exists() {
            return Err(failed(format!(
                "{} exists: restore goes into a data directory without a ledger (move it away first)",
                existing.display()
            )));
        }
    }
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    let keys: Vec<&String> = manifest.files.keys().filter(|n| *n != SQLITE_FILE).collect();
    for name in &keys {
        let there = data_dir.join(name);
        if there.exists()
            && std::fs::read(&there).map_err(io(&there))? != std::fs::read(dir.join(name)).map_err(io(dir))?
        {
            return Err(failed(format!("{} differs from the backup's: refusing to replace a key", there.display())));
        }
    }
    for name in keys {
        let there = data_dir.join(name);
        if !there.exists() {
            write_private(&there, &std::fs::read(dir.join(name)).map_err(io(dir))?)?;
        }
    }
    // Under another name first: a restore cut short leaves no ledger that looks whole.
    let partial = data_dir.join(format!("{SQLITE_FILE}.restoring"));
    let _ = std::fs::remove_file(&partial);
    std::fs::copy(dir.join(SQLITE_FILE), &partial).map_err(io(&partial))?;
    std::fs::File::open(&partial).and_then(|f| f.sync_all()).map_err(io(&partial))?;
    std::fs::rename(&partial, &target).map_err(io(&target))?;
    sync_dir(data_dir)?;
    Ok(manifest)
}
