//! Data subjects: their wrapped keys and the index of which events name
//! them (`subject_events`), which follows the ledger a little behind (see
//! [`catch_up`]).
//!
//! A subject's key is in one of two tables: new keys are appended to
//! `subject_key_log` in the append transaction, and [`fold_keys`] moves
//! them into `subject_keys`, keyed by pseudonym, in sorted rounds. The log
//! has no index by pseudonym (that is the point: an index written for
//! each new subject is a page at a random place); it stays small, readers
//! scan it, and the writer holds all of it in memory.

use std::collections::HashMap;

use diesel::prelude::*;

use super::schema::{events, subject_events, subject_index_state, subject_key_log, subject_keys};
use super::{DbConn, StoreError};
use crate::ledger::personal::Envelope;
use crate::with_conn;

/// A subject's key as stored: wrapped under the master key.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = subject_keys)]
pub struct KeyRow {
    pub pseudonym: String,
    pub key_id: String,
    pub wrapped: String,
    pub created_at: String,
}

/// Bound parameters per statement, under both backends' limits.
const CHUNK: usize = 500;

/// The current keys of `pseudonyms`, by pseudonym, from both tables.
pub fn keys_of(conn: &mut DbConn, pseudonyms: &[String]) -> Result<HashMap<String, KeyRow>, StoreError> {
    let mut out = folded_keys_of(conn, pseudonyms)?;
    for chunk in pseudonyms.chunks(CHUNK) {
        let rows: Vec<(String, String, String, String)> = with_conn!(conn, |c| subject_key_log::table
            .filter(subject_key_log::pseudonym.eq_any(chunk))
            .select(LOG_ROW)
            .load(c))?;
        out.extend(rows.into_iter().map(KeyRow::from).map(|r| (r.pseudonym.clone(), r)));
    }
    Ok(out)
}

/// The keys of `pseudonyms` already folded into `subject_keys` (the writer
/// holds the log itself).
pub fn folded_keys_of(conn: &mut DbConn, pseudonyms: &[String]) -> Result<HashMap<String, KeyRow>, StoreError> {
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

const LOG_ROW: (
    subject_key_log::pseudonym,
    subject_key_log::key_id,
    subject_key_log::wrapped,
    subject_key_log::created_at,
) = (subject_key_log::pseudonym, subject_key_log::key_id, subject_key_log::wrapped, subject_key_log::created_at);

impl From<(String, String, String, String)> for KeyRow {
    fn from((pseudonym, key_id, wrapped, created_at): (String, String, String, String)) -> Self {
        Self { pseudonym, key_id, wrapped, created_at }
    }
}

/// Every key in the log, not yet folded.
pub fn logged_keys(conn: &mut DbConn) -> Result<Vec<KeyRow>, StoreError> {
    let rows: Vec<(String, String, String, String)> =
        with_conn!(conn, |c| subject_key_log::table.select(LOG_ROW).load(c))?;
    Ok(rows.into_iter().map(KeyRow::from).collect())
}

/// How many keys the log holds.
pub fn logged_count(conn: &mut DbConn) -> Result<usize, StoreError> {
    let n: i64 = with_conn!(conn, |c| subject_key_log::table.count().get_result(c))?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Moves the logged keys into `subject_keys`, sorted so that each of its
/// pages is written once per round; returns how many. Under the append
/// lock, like every change to the key store.
pub fn fold_keys(conn: &mut DbConn) -> Result<usize, StoreError> {
    let moved = with_conn!(conn, |c| diesel::sql_query(
        "INSERT INTO subject_keys (pseudonym, key_id, wrapped, created_at) \
         SELECT pseudonym, key_id, wrapped, created_at FROM subject_key_log ORDER BY pseudonym"
    )
    .execute(c))?;
    with_conn!(conn, |c| diesel::delete(subject_key_log::table).execute(c))?;
    Ok(moved)
}

/// The keys still held among `(pseudonym, key_id)` pairs (as an envelope
/// names them), by key id. A subject erased and seen again has a new key,
/// which is not the one their earlier events were sealed under.
pub fn keys_named(conn: &mut DbConn, named: &[(String, String)]) -> Result<HashMap<String, KeyRow>, StoreError> {
    let mut pseudonyms: Vec<String> = named.iter().map(|(p, _)| p.clone()).collect();
    pseudonyms.sort();
    pseudonyms.dedup();
    let held = keys_of(conn, &pseudonyms)?;
    Ok(named
        .iter()
        .filter_map(|(p, id)| held.get(p).filter(|row| &row.key_id == id))
        .map(|row| (row.key_id.clone(), row.clone()))
        .collect())
}

/// Logs new keys (inside the writer's transaction).
pub fn insert_keys(conn: &mut DbConn, rows: &[KeyRow]) -> Result<(), StoreError> {
    for chunk in rows.chunks(CHUNK / 4) {
        let values: Vec<_> = chunk
            .iter()
            .map(|r| {
                (
                    subject_key_log::pseudonym.eq(&r.pseudonym),
                    subject_key_log::key_id.eq(&r.key_id),
                    subject_key_log::wrapped.eq(&r.wrapped),
                    subject_key_log::created_at.eq(&r.created_at),
                )
            })
            .collect();
        with_conn!(conn, |c| diesel::insert_into(subject_key_log::table).values(&values).execute(c))?;
    }
    Ok(())
}

/// Deletes the keys of `pseudonym` from both tables.
pub fn delete_keys(conn: &mut DbConn, pseudonym: &str) -> Result<(), StoreError> {
    with_conn!(conn, |c| diesel::delete(subject_keys::table.filter(subject_keys::pseudonym.eq(pseudonym))).execute(c))?;
    with_conn!(conn, |c| diesel::delete(subject_key_log::table.filter(subject_key_log::pseudonym.eq(pseudonym)))
        .execute(c))?;
    Ok(())
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
            diesel::sql_query("VACUUM subject_keys, subject_key_log").execute(c)?;
            Ok(())
        }
    }
}

/// How far `subject_events` reflects the ledger.
fn applied_through(conn: &mut DbConn) -> Result<u64, StoreError> {
    let seq: Option<i64> = with_conn!(conn, |c| subject_index_state::table
        .find(1)
        .select(subject_index_state::applied_through)
        .first(c)
        .optional())?;
    Ok(seq.map_or(0, |s| u64::try_from(s).unwrap_or(0)))
}

fn set_applied_through(conn: &mut DbConn, seq: u64) -> Result<(), StoreError> {
    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
    with_conn!(conn, |c| diesel::update(subject_index_state::table.find(1))
        .set(subject_index_state::applied_through.eq(seq))
        .execute(c))?;
    Ok(())
}

/// `(pseudonym, seq)` of every subject named by the events in
/// `(after, until]`, read from their envelopes.
fn named_in(conn: &mut DbConn, after: u64, until: u64) -> Result<Vec<(String, i64)>, StoreError> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let until = i64::try_from(until).unwrap_or(i64::MAX);
    // Most events carry no envelope: the database skips them.
    let rows: Vec<(i64, String)> = with_conn!(conn, |c| events::table
        .filter(events::seq.gt(after).and(events::seq.le(until)))
        .filter(events::attributes.like("%\"personal\"%"))
        .order(events::seq.asc())
        .select((events::seq, events::attributes))
        .load(c))?;
    Ok(rows
        .into_iter()
        .filter_map(|(seq, attributes)| Some((seq, Envelope::of_attributes(&attributes)?)))
        .flat_map(|(seq, envelope)| envelope.subjects.into_iter().map(move |p| (p, seq)))
        .collect())
}

/// The seqs of the events naming `pseudonym`, ascending: the index, plus
/// the events after it read directly. The mark is read first, so an index
/// catching up in between can only make the two overlap, never miss.
pub fn events_of(conn: &mut DbConn, pseudonym: &str) -> Result<Vec<u64>, StoreError> {
    let through = applied_through(conn)?;
    let indexed: Vec<i64> = with_conn!(conn, |c| subject_events::table
        .filter(subject_events::pseudonym.eq(pseudonym))
        .select(subject_events::seq)
        .load(c))?;
    let tail = named_in(conn, through, u64::MAX)?;
    let seqs: std::collections::BTreeSet<u64> = indexed
        .into_iter()
        .chain(tail.into_iter().filter(|(p, _)| p == pseudonym).map(|(_, seq)| seq))
        .filter_map(|s| u64::try_from(s).ok())
        .collect();
    Ok(seqs.into_iter().collect())
}

/// Every `(pseudonym, seq)` the ledger names, sorted (for comparing a live
/// index with a rebuilt one).
pub fn all_named(conn: &mut DbConn) -> Result<Vec<(String, i64)>, StoreError> {
    let through = applied_through(conn)?;
    let mut rows: Vec<(String, i64)> =
        with_conn!(conn, |c| subject_events::table.select((subject_events::pseudonym, subject_events::seq)).load(c))?;
    rows.extend(named_in(conn, through, u64::MAX)?);
    rows.sort();
    rows.dedup();
    Ok(rows)
}

/// Indexes up to `max_events` events after the mark, in one batch sorted
/// by pseudonym so each index page is written once; returns how many
/// events it covered. Inside the caller's transaction, which holds the
/// append lock (so replicas do not index the same events twice).
pub fn catch_up(conn: &mut DbConn, max_events: u64) -> Result<u64, StoreError> {
    let through = applied_through(conn)?;
    let head = super::events::head(conn)?.size;
    if head <= through {
        return Ok(0);
    }
    let until = head.min(through.saturating_add(max_events));
    let mut rows = named_in(conn, through, until)?;
    rows.sort();
    let values: Vec<_> =
        rows.into_iter().map(|(p, seq)| (subject_events::pseudonym.eq(p), subject_events::seq.eq(seq))).collect();
    for chunk in values.chunks(CHUNK) {
        with_conn!(conn, |c| diesel::insert_into(subject_events::table).values(chunk).execute(c))?;
    }
    set_applied_through(conn, until)?;
    Ok(until - through)
}

/// Empties the index (rebuild: [`catch_up`] refills it).
pub fn clear(conn: &mut DbConn) -> Result<(), StoreError> {
    with_conn!(conn, |c| diesel::delete(subject_events::table).execute(c))?;
    set_applied_through(conn, 0)
}
