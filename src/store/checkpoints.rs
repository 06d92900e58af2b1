//! Queries on the `checkpoints` table.

use diesel::prelude::*;

use super::schema::checkpoints;
use super::{DbConn, StoreError};
use crate::ledger::Hash;
use crate::with_conn;

/// A published checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub tree_size: u64,
    pub root_hash: Hash,
    /// The signed note, verbatim.
    pub note: String,
    pub created_at: String,
}

type Row = (i64, Vec<u8>, String, String);

fn from_row((tree_size, root, note, created_at): Row) -> Result<StoredCheckpoint, StoreError> {
    let tree_size = u64::try_from(tree_size).map_err(|_| damaged("negative tree size"))?;
    let root_hash = Hash::try_from(root.as_slice()).map_err(|_| damaged("root hash is not 32 bytes"))?;
    Ok(StoredCheckpoint { tree_size, root_hash, note, created_at })
}

fn damaged(reason: &str) -> StoreError {
    StoreError::CorruptRow { seq: 0, reason: format!("checkpoints table: {reason}") }
}

const COLUMNS: (checkpoints::tree_size, checkpoints::root_hash, checkpoints::note, checkpoints::created_at) =
    (checkpoints::tree_size, checkpoints::root_hash, checkpoints::note, checkpoints::created_at);

/// Stores a checkpoint unless one for that size exists already (another
/// replica may have signed the same size first); returns the stored one.
pub fn insert_or_get(conn: &mut DbConn, cp: &StoredCheckpoint) -> Result<StoredCheckpoint, StoreError> {
    let size = i64::try_from(cp.tree_size).map_err(|_| damaged("tree size out of range"))?;
    with_conn!(conn, |c| diesel::insert_into(checkpoints::table)
        .values((
            checkpoints::tree_size.eq(size),
            checkpoints::root_hash.eq(cp.root_hash.to_vec()),
            checkpoints::note.eq(&cp.note),
            checkpoints::created_at.eq(&cp.created_at),
        ))
        .on_conflict_do_nothing()
        .execute(c))?;
    by_size(conn, cp.tree_size)?.ok_or_else(|| damaged("checkpoint vanished after insert"))
}

/// The checkpoint for exactly `size`, if one was published.
pub fn by_size(conn: &mut DbConn, size: u64) -> Result<Option<StoredCheckpoint>, StoreError> {
    let Ok(size) = i64::try_from(size) else { return Ok(None) };
    let row: Option<Row> = with_conn!(conn, |c| checkpoints::table.find(size).select(COLUMNS).first(c).optional())?;
    row.map(from_row).transpose()
}

/// The newest checkpoint.
pub fn latest(conn: &mut DbConn) -> Result<Option<StoredCheckpoint>, StoreError> {
    let row: Option<Row> = with_conn!(conn, |c| checkpoints::table
        .select(COLUMNS)
        .order(checkpoints::tree_size.desc())
        .first(c)
        .optional())?;
    row.map(from_row).transpose()
}

/// Every checkpoint, oldest first.
pub fn all(conn: &mut DbConn) -> Result<Vec<StoredCheckpoint>, StoreError> {
    let rows: Vec<Row> =
        with_conn!(conn, |c| checkpoints::table.select(COLUMNS).order(checkpoints::tree_size.asc()).load(c))?;
    rows.into_iter().map(from_row).collect()
}
