//! Commands over the ledger's files, offline: verify, export, backup,
//! restore, verify a bundle.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use govledger::ledger::bundle;
use govledger::ledger::checkpoint::NoteVerifier;
use govledger::proofs::evidence::Selection;
use govledger::proofs::{self, keys, Proofs};
use govledger::store::{DbConn, StorageTarget, Store, WriterConfig};

use super::args::{KeyArgs, StorageArgs, TokenArgs};

fn read_verifier(path: &Path) -> anyhow::Result<NoteVerifier> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    NoteVerifier::parse(&text).with_context(|| format!("{} is not a verifier key", path.display()))
}

/// The store and proof service over an existing ledger, signing with its key.
pub fn open_proofs(storage: &StorageArgs, key: &KeyArgs) -> anyhow::Result<(Store, Proofs)> {
    let target = storage.existing_target()?;
    let signer = keys::load_existing(&key.config(&storage.data_dir))?
        .context("no checkpoint signing key: start the server once, or pass --signing-key")?;
    let store = Store::open(target, 2, WriterConfig::default())?;
    let proofs = Proofs::new(store.clone(), signer, key.origin.clone())?;
    Ok((store, proofs))
}

/// Arguments of `govledger verify`.
#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    storage: StorageArgs,
    #[command(flatten)]
    key: KeyArgs,
    /// Also check a checkpoint you kept (a signed note file).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// The verifier key (signed-note format) to check signatures with;
    /// default: the data directory's signing key.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

impl VerifyArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let (storage, key, kept, key_file, json) =
            (&self.storage, &self.key, self.checkpoint.as_deref(), self.key_file.as_deref(), self.json);
        let target = storage.existing_target()?;
        let key_config = key.config(&storage.data_dir);
        let (verifier, key_source) = match key_file {
            Some(path) => (Some(read_verifier(path)?), format!("--key-file {}", path.display())),
            None => {
                let source = if key.signing_key.is_some() {
                    format!("the signing key {} (--signing-key or GOVLEDGER_SIGNING_KEY)", key_config.path.display())
                } else {
                    format!("the data directory's signing key {}", key_config.path.display())
                };
                (keys::load_existing(&key_config)?.map(|s| s.verifier()), source)
            }
        };
        let kept_note = match kept {
            Some(path) => {
                anyhow::ensure!(
                    verifier.is_some(),
                    "checking a kept checkpoint needs the verifier key: pass --key-file"
                );
                Some(std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?)
            }
            None => None,
        };
        let started = std::time::Instant::now();
        let report =
            proofs::verify_ledger(|| DbConn::establish(&target).map(Box::new), verifier.as_ref(), kept_note.as_deref())
                .with_context(|| format!("cannot verify {}", target.describe()))?;
        let elapsed = started.elapsed();
        if json {
            println!("{}", serde_json::to_string(&report)?);
        } else if let Some(failure) = &report.failure {
            println!(
                "BROKEN at seq {}: {} ({}); {} events verified",
                failure.seq,
                serde_json::to_value(failure.kind)?.as_str().unwrap_or("broken"),
                failure.message,
                report.verified
            );
            if let (govledger::ledger::VerifyFailureKind::CheckpointSignature, Some(v)) = (failure.kind, &verifier) {
                println!(
                    "the checkpoints were checked with verifier key {}+{} from {key_source}; if the server signs \
                     with another key, pass its verifier key with --key-file (GET /api/v1/checkpoint/key)",
                    v.name(),
                    v.key_id_hex()
                );
            }
        } else {
            let signatures = if verifier.is_some() { "signed" } else { "unsigned: no key to check signatures with" };
            println!(
                "OK: {} events verified, {} checkpoints consistent ({signatures}), in {:.2}s, head {}",
                report.verified,
                report.checkpoints_verified,
                elapsed.as_secs_f64(),
                report.head_hash.as_deref().unwrap_or("(empty ledger)")
            );
        }
        Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }
}

/// Arguments of `govledger export`.
#[derive(Args)]
pub struct ExportArgs {
    /// The folder to write (created).
    #[arg(long)]
    bundle: PathBuf,
    /// Only events about this entity (`type:name` matches every version).
    #[arg(long)]
    subject: Option<String>,
    /// First seq to include.
    #[arg(long)]
    from_seq: Option<u64>,
    /// Last seq to include.
    #[arg(long)]
    to_seq: Option<u64>,
    #[command(flatten)]
    storage: StorageArgs,
    #[command(flatten)]
    key: KeyArgs,
}

impl ExportArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        if let Some(subject) = &self.subject {
            govledger::ledger::EntityRef::parse(subject)?;
        }
        let (store, proofs) = open_proofs(&self.storage, &self.key)?;
        let selection = Selection { subject: self.subject, from_seq: self.from_seq, to_seq: self.to_seq };
        let written = proofs.export(&selection, &self.bundle);
        drop(proofs);
        store.close();
        let written = written?;
        println!(
            "wrote {} events with inclusion proofs against checkpoint {} (root {}) to {}",
            written.events,
            written.checkpoint.size,
            hex::encode(written.checkpoint.root),
            self.bundle.display()
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// Arguments of `govledger backup`.
#[derive(Args)]
pub struct BackupArgs {
    /// The folder to create (or an empty one).
    dir: PathBuf,
    #[command(flatten)]
    storage: StorageArgs,
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    tokens: TokenArgs,
}

impl BackupArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let StorageTarget::Sqlite { path } = self.storage.existing_target()? else {
            anyhow::bail!(
                "govledger backup copies the embedded SQLite ledger; for PostgreSQL use \
                 `pg_dump --format=custom --exclude-table-data=subject_keys --exclude-table-data=subject_key_log` (see docs/DEPLOYMENT.md)"
            );
        };
        let data_dir = &self.storage.data_dir;
        let keys = [self.key.config(data_dir).path, self.tokens.config(data_dir).key_path];
        let manifest = govledger::store::backup::backup(&path, &keys, &self.dir)?;
        println!(
            "backed up {} events (last checkpoint at {}) and {} key file(s) into {}; subject keys are not in backups",
            manifest.size,
            manifest.last_checkpoint.map_or("none".to_owned(), |c| c.to_string()),
            manifest.files.len() - 1,
            self.dir.display()
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// Arguments of `govledger restore`.
#[derive(Args)]
pub struct RestoreArgs {
    /// The backup folder.
    dir: PathBuf,
    #[command(flatten)]
    storage: StorageArgs,
}

impl RestoreArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let storage = &self.storage;
        anyhow::ensure!(
            storage.database_url.is_none(),
            "govledger restore brings back an SQLite backup; for PostgreSQL use pg_restore (see docs/DEPLOYMENT.md)"
        );
        let ledger = storage.data_dir.join(govledger::store::connection::SQLITE_FILE);
        anyhow::ensure!(
            !ledger.exists(),
            "{} exists: restore goes into a data directory without a ledger (move it away first)",
            ledger.display()
        );
        let index = storage.data_dir.join(govledger::search::INDEX_DIR);
        anyhow::ensure!(
            !index.exists(),
            "{} belongs to another ledger: remove it (the server rebuilds the index from the restored ledger)",
            index.display()
        );
        let restored =
            proofs::recovery::restore_verified(&self.dir, &storage.data_dir, govledger::config::DEFAULT_ORIGIN)
                .with_context(|| format!("cannot verify the ledger restored into {}", storage.data_dir.display()))?;
        if !restored.whole() {
            println!(
                "restored {} events, but they do not verify: {}",
                restored.manifest.size,
                serde_json::to_string(&restored.report)?
            );
            return Ok(ExitCode::FAILURE);
        }
        println!(
            "restored {} events into {}; chain verified and {} checkpoints consistent ({})",
            restored.manifest.size,
            storage.data_dir.display(),
            restored.report.checkpoints_verified,
            if restored.signed { "signed" } else { "no signing key in the backup: signatures unchecked" }
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// Arguments of `govledger verify-bundle`.
#[derive(Args)]
pub struct VerifyBundleArgs {
    /// The bundle folder.
    dir: PathBuf,
    /// The verifier key to trust (signed-note format). Without it the
    /// bundle's own key.pub is used, which proves integrity, not origin.
    #[arg(long)]
    key: Option<PathBuf>,
}

impl VerifyBundleArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let pinned = self.key.as_deref().map(read_verifier).transpose()?;
        match bundle::verify(&self.dir, pinned.as_ref()) {
            Ok(report) => {
                let trust = if report.key_pinned {
                    "the given key"
                } else {
                    "the bundle's own key.pub: pass --key to check who signed"
                };
                println!(
                    "OK: {} events verified against checkpoint {} (root {}), signed by key {} ({trust})",
                    report.events, report.tree_size, report.root_hash, report.key_id
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                println!("FAILED: {e}");
                Ok(ExitCode::FAILURE)
            }
        }
    }
}
