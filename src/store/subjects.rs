//! Data subjects: their wrapped keys (`subject_keys`) and the projection of
//! which events name them (`subject_events`).

use std::collections::HashMap;

use diesel::prelude::*;

use super::schema::{subject_events, subject_keys};
use super::{DbConn, StoreError};
use crate::ledger::personal::Envelope;
use crate::ledger::Event;
use crate::with_conn;

/// A subject's key as stored: wrapped under the master key.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = subject_keys)]
pub struct KeyRow {
    pub key_id: String,
    pub pseudonym: String,
    pub wrapped: String,
    pub created_at: String,
}

/// Bound parameters per statement, under both backends' limits.
const CHUNK: usize = 500;

/// The current keys of `pseudonyms`, by pseudonym.
pub fn keys_of(conn: &mut DbConn, pseudonyms: &[String]) -> Result<HashMap<String, KeyRow>, StoreError> {
    let mut out = HashMap::with_capacity(pseudonyms.len());
    for chunk in pseudonyms.chunks(CHUNK) {
        let rows: Vec<KeyRow> = with_conn!(conn, |c| subject_keys::table
            .filter(subject_keys::pseudonym.eq_any(chunk))
            .select(KeyRow::as_select())
            .load(c))?;
        out.extend(rows.into_iter().map(|r| (r.pseudonym.clone(), r)));
    }
    Ok(out)
}

/// Keys by id (those still held; erased ones are absent).
pub fn keys_by_id(conn: &mut DbConn, key_ids: &[String]) -> Result<HashMap<String, KeyRow>, StoreError> {
    let mut out = HashMap::with_capacity(key_ids.len());
    for chunk in key_ids.chunks(CHUNK) {
        let rows: Vec<KeyRow> = with_conn!(conn, |c| subject_keys::table
            .filter(subject_keys::key_id.eq_any(chunk))
            .select(KeyRow::as_select())
            .load(c))?;
        out.extend(rows.into_iter().map(|r| (r.key_id.clone(), r)));
    }
    Ok(out)
}

/// Stores new keys (inside the writer's transaction).
pub fn insert_keys(conn: &mut DbConn, rows: &[KeyRow]) -> Result<(), StoreError> {
    for chunk in rows.chunks(CHUNK / 4) {
        with_conn!(conn, |c| diesel::insert_into(subject_keys::table).values(chunk).execute(c))?;
    }
    Ok(())
}

/// Deletes the keys of `pseudonym`, returning their ids.
pub fn delete_keys(conn: &mut DbConn, pseudonym: &str) -> Result<Vec<String>, StoreError> {
    let ids: Vec<String> = with_conn!(conn, |c| subject_keys::table
        .filter(subject_keys::pseudonym.eq(pseudonym))
        .select(subject_keys::key_id)
        .load(c))?;
    with_conn!(conn, |c| diesel::delete(subject_keys::table.filter(subject_keys::pseudonym.eq(pseudonym))).execute(c))?;
    Ok(ids)
}

/// Makes deleted keys unrecoverable from the database files: SQLite zeroes
/// deleted rows (`secure_delete`, set on every connection) but older page
/// images stay in the WAL until it is checkpointed and truncated;
/// PostgreSQL keeps dead tuples until VACUUM. Runs outside a transaction.
pub fn scrub(conn: &mut DbConn) -> Result<(), StoreError> {
    match conn {
        DbConn::Sqlite(c) => {
            // Busy while a reader holds an old snapshot: try a few times.
            for attempt in 0..50 {
                #[derive(QueryableByName)]
                struct Checkpoint {
                    #[diesel(sql_type = diesel::sql_types::Integer)]
                    busy: i32,
                }
                let result: Vec<Checkpoint> = diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)").load(c)?;
                if result.first().is_none_or(|r| r.busy == 0) {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(20 + attempt * 10));
            }
            Err(StoreError::Busy("the WAL could not be truncated: readers kept it busy".into()))
        }
        DbConn::Pg(c) => {
            diesel::sql_query("VACUUM subject_keys").execute(c)?;
            Ok(())
        }
    }
}

/// The seqs of the events naming `pseudonym`, ascending.
pub fn events_of(conn: &mut DbConn, pseudonym: &str) -> Result<Vec<u64>, StoreError> {
    let seqs: Vec<i64> = with_conn!(conn, |c| subject_events::table
        .filter(subject_events::pseudonym.eq(pseudonym))
        .select(subject_events::seq)
        .order(subject_events::seq.asc())
        .load(c))?;
    Ok(seqs.into_iter().filter_map(|s| u64::try_from(s).ok()).collect())
}

/// Records which subjects the events of a batch name (projection).
pub fn apply(conn: &mut DbConn, batch: &[Event]) -> Result<(), StoreError> {
    let mut rows = Vec::new();
    for e in batch {
        if let Some(envelope) = Envelope::of_attributes(&e.attributes) {
            let seq = i64::try_from(e.seq).unwrap_or(i64::MAX);
            for p in envelope.subjects {
                rows.push((subject_events::pseudonym.eq(p), subject_events::seq.eq(seq)));
            }
        }
    }
    for chunk in rows.chunks(CHUNK) {
        with_conn!(conn, |c| diesel::insert_into(subject_events::table).values(chunk).execute(c))?;
    }
    Ok(())
}

/// Empties the projection (rebuild).
pub fn clear(conn: &mut DbConn) -> Result<(), StoreError> {
    with_conn!(conn, |c| diesel::delete(subject_events::table).execute(c))?;
    Ok(())
}
