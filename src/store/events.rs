//! Queries on the `events` table. Every function takes `&mut DbConn` so the
//! same query runs on a pooled connection or inside the writer's transaction.

use std::ops::ControlFlow;

use diesel::connection::DefaultLoadingMode;
use diesel::prelude::*;

use super::schema::events;
use super::{DbConn, StoreError};
use crate::ledger::{Event, Hash};
use crate::with_conn;

/// A row of the `events` table as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub seq: i64,
    pub id: String,
    pub recorded_at: String,
    pub actor: String,
    pub kind: String,
    pub subject: String,
    pub project: Option<String>,
    pub inputs: String,
    pub outputs: String,
    pub attributes: String,
    pub occurred_at: Option<String>,
    pub idempotency_key: Option<String>,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

impl EventRow {
    /// The row for a chained event.
    pub fn from_event(e: &Event) -> Self {
        Self {
            seq: i64::try_from(e.seq).unwrap_or(i64::MAX),
            id: e.id.clone(),
            recorded_at: e.recorded_at.clone(),
            actor: e.actor.clone(),
            kind: e.kind.clone(),
            subject: e.subject.clone(),
            project: e.project.clone(),
            inputs: refs_json(&e.inputs),
            outputs: refs_json(&e.outputs),
            attributes: e.attributes.clone(),
            occurred_at: e.occurred_at.clone(),
            idempotency_key: e.idempotency_key.clone(),
            prev_hash: e.prev_hash.to_vec(),
            hash: e.hash.to_vec(),
        }
    }

    /// The event in this row; a row that cannot be one was damaged outside
    /// the server and is reported as such.
    pub fn into_event(self) -> Result<Event, StoreError> {
        let seq = u64::try_from(self.seq).map_err(|_| corrupt(0, "negative seq"))?;
        let parse_refs = |field: &str, text: &str| {
            parse_refs(text)
                .map(|refs| refs.into_iter().map(std::borrow::Cow::into_owned).collect::<Vec<String>>())
                .ok_or_else(|| corrupt(seq, &format!("{field} is not a JSON array of strings")))
        };
        let hash_of = |field: &str, bytes: &[u8]| {
            Hash::try_from(bytes).map_err(|_| corrupt(seq, &format!("{field} is {} bytes, not 32", bytes.len())))
        };
        Ok(Event {
            seq,
            inputs: parse_refs("inputs", &self.inputs)?,
            outputs: parse_refs("outputs", &self.outputs)?,
            prev_hash: hash_of("prev_hash", &self.prev_hash)?,
            hash: hash_of("hash", &self.hash)?,
            id: self.id,
            recorded_at: self.recorded_at,
            actor: self.actor,
            kind: self.kind,
            subject: self.subject,
            project: self.project,
            attributes: self.attributes,
            occurred_at: self.occurred_at,
            idempotency_key: self.idempotency_key,
        })
    }
}

fn corrupt(seq: u64, reason: &str) -> StoreError {
    StoreError::CorruptRow { seq, reason: reason.to_owned() }
}

/// Reads a stored JSON array of strings, borrowing from the text when it is
/// in the plain form the server writes (`["a","b"]`, no escapes), which
/// entity references always are; anything else goes through serde_json, so
/// the result is always what a JSON parser would give, or `None`.
pub fn parse_refs(text: &str) -> Option<Vec<std::borrow::Cow<'_, str>>> {
    use std::borrow::Cow;
    let plain = (|| {
        let inner = text.strip_prefix('[')?.strip_suffix(']')?;
        if inner.is_empty() {
            return Some(Vec::new());
        }
        if inner.bytes().any(|b| b == b'\\' || b < 0x20) {
            return None;
        }
        inner
            .split(',')
            .map(|part| part.strip_prefix('"')?.strip_suffix('"').filter(|s| !s.contains('"')).map(Cow::Borrowed))
            .collect()
    })();
    plain.or_else(|| serde_json::from_str::<Vec<String>>(text).ok().map(|v| v.into_iter().map(Cow::Owned).collect()))
}

/// Entity references are stored as a JSON array of strings.
pub fn refs_json(refs: &[String]) -> String {
    serde_json::Value::from(refs.to_vec()).to_string()
}

/// The end of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Head {
    /// The number of events (= the last seq).
    pub size: u64,
    /// The last event's hash; `None` for an empty ledger.
    pub hash: Option<Hash>,
    /// The last event's `recorded_at`.
    pub recorded_at: Option<String>,
}

/// Reads the head. Inside the append transaction this is the value the next
/// event chains to.
pub fn head(conn: &mut DbConn) -> Result<Head, StoreError> {
    let row: Option<(i64, Vec<u8>, String)> = with_conn!(conn, |c| events::table
        .select((events::seq, events::hash, events::recorded_at))
        .order(events::seq.desc())
        .first(c)
        .optional())?;
    match row {
        None => Ok(Head::default()),
        Some((seq, hash, recorded_at)) => {
            let size = u64::try_from(seq).map_err(|_| corrupt(0, "negative seq"))?;
            let hash = Hash::try_from(hash.as_slice()).map_err(|_| corrupt(size, "hash is not 32 bytes"))?;
            Ok(Head { size, hash: Some(hash), recorded_at: Some(recorded_at) })
        }
    }
}

/// One event by seq.
pub fn by_seq(conn: &mut DbConn, seq: u64) -> Result<Option<Event>, StoreError> {
    let Ok(seq) = i64::try_from(seq) else {
        return Ok(None);
    };
    let row: Option<EventRow> =
        with_conn!(conn, |c| events::table.find(seq).select(EventRow::as_select()).first(c).optional())?;
    row.map(EventRow::into_event).transpose()
}

/// The events with the given seqs (those that exist), in seq order.
pub fn by_seqs(conn: &mut DbConn, seqs: &[u64]) -> Result<Vec<Event>, StoreError> {
    let seqs: Vec<i64> = seqs.iter().filter_map(|s| i64::try_from(*s).ok()).collect();
    let mut out = Vec::with_capacity(seqs.len());
    for chunk in seqs.chunks(500) {
        let rows: Vec<EventRow> = with_conn!(conn, |c| events::table
            .filter(events::seq.eq_any(chunk))
            .select(EventRow::as_select())
            .load(c))?;
        for row in rows {
            out.push(row.into_event()?);
        }
    }
    out.sort_by_key(|e| e.seq);
    Ok(out)
}

/// Streams the rows with `first <= seq <= last` in order, undecoded so that
/// the verifier can report a damaged row instead of failing the read. Stops
/// early when `visit` breaks.
pub fn for_each_in_range(
    conn: &mut DbConn,
    first: u64,
    last: u64,
    mut visit: impl FnMut(EventRow) -> ControlFlow<()>,
) -> Result<(), StoreError> {
    let first = i64::try_from(first).unwrap_or(i64::MAX);
    let last = i64::try_from(last).unwrap_or(i64::MAX);
    with_conn!(conn, |c| {
        let rows = events::table
            .filter(events::seq.ge(first).and(events::seq.le(last)))
            .order(events::seq.asc())
            .select(EventRow::as_select())
            .load_iter::<EventRow, DefaultLoadingMode>(c)?;
        for row in rows {
            if visit(row?).is_break() {
                break;
            }
        }
        Ok(())
    })
}

/// Events already recorded under any of `keys` (for any actor).
pub fn by_idempotency_keys(conn: &mut DbConn, keys: &[String]) -> Result<Vec<Event>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<EventRow> = with_conn!(conn, |c| events::table
        .filter(events::idempotency_key.eq_any(keys))
        .select(EventRow::as_select())
        .load(c))?;
    rows.into_iter().map(EventRow::into_event).collect()
}

/// Rows per INSERT statement: well under SQLite's bound-parameter limit.
const INSERT_CHUNK: usize = 500;

/// Inserts chained events (inside the append transaction).
pub fn insert(conn: &mut DbConn, rows: &[EventRow]) -> Result<(), StoreError> {
    for chunk in rows.chunks(INSERT_CHUNK) {
        with_conn!(conn, |c| diesel::insert_into(events::table).values(chunk).execute(c))?;
    }
    Ok(())
}

/// Filters for listing events. `subject` without a version matches every
/// version of that entity.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub kind: Option<String>,
    /// The subject; an unversioned reference includes its versions unless
    /// `subject_exact`.
    pub subject: Option<String>,
    /// Only events about exactly `subject` (an index lookup; the versions
    /// of an unversioned reference need a scan on SQLite).
    pub subject_exact: bool,
    pub actor: Option<String>,
    /// Only events in these projects (`None`: any project or none).
    pub projects: Option<Vec<String>>,
    pub after_seq: u64,
    pub limit: u32,
}

/// A page of events with `seq > after_seq`, ascending.
pub fn list(conn: &mut DbConn, filter: &EventFilter) -> Result<Vec<Event>, StoreError> {
    let after = i64::try_from(filter.after_seq).unwrap_or(i64::MAX);
    let rows: Vec<EventRow> = with_conn!(conn, |c| {
        let mut query = events::table
            .filter(events::seq.gt(after))
            .select(EventRow::as_select())
            .order(events::seq.asc())
            .limit(i64::from(filter.limit))
            .into_boxed();
        if let Some(kind) = &filter.kind {
            query = query.filter(events::kind.eq(kind.clone()));
        }
        if let Some(actor) = &filter.actor {
            query = query.filter(events::actor.eq(actor.clone()));
        }
        if let Some(projects) = &filter.projects {
            query = query.filter(events::project.eq_any(projects.clone()));
        }
        if let Some(subject) = &filter.subject {
            if subject.contains('@') || filter.subject_exact {
                query = query.filter(events::subject.eq(subject.clone()));
            } else {
                // Entity names cannot contain LIKE wildcards except `_`, escaped here.
                let pattern = format!("{}@%", subject.replace('\\', "\\\\").replace('_', "\\_").replace('%', "\\%"));
                query =
                    query.filter(events::subject.eq(subject.clone()).or(events::subject.like(pattern).escape('\\')));
            }
        }
        query.load(c)
    })?;
    rows.into_iter().map(EventRow::into_event).collect()
}

/// The newest `limit` events of `kind` about exactly `subject`, newest first.
pub fn latest_about(conn: &mut DbConn, subject: &str, kind: &str, limit: u32) -> Result<Vec<Event>, StoreError> {
    let rows: Vec<EventRow> = with_conn!(conn, |c| events::table
        .filter(events::subject.eq(subject.to_owned()))
        .filter(events::kind.eq(kind.to_owned()))
        .select(EventRow::as_select())
        .order(events::seq.desc())
        .limit(i64::from(limit))
        .load(c))?;
    rows.into_iter().map(EventRow::into_event).collect()
}

/// The hashes of events `first..first + count` (by seq), in order: the Merkle
/// leaves of one tile.
pub fn hashes(conn: &mut DbConn, first: u64, count: u64) -> Result<Vec<Hash>, StoreError> {
    let from = i64::try_from(first).unwrap_or(i64::MAX);
    let to = i64::try_from(first.saturating_add(count).saturating_sub(1)).unwrap_or(i64::MAX);
    let rows: Vec<(i64, Vec<u8>)> = with_conn!(conn, |c| events::table
        .filter(events::seq.ge(from).and(events::seq.le(to)))
        .order(events::seq.asc())
        .select((events::seq, events::hash))
        .load(c))?;
    rows.into_iter()
        .enumerate()
        .map(|(i, (seq, hash))| {
            let expected = first + i as u64;
            if u64::try_from(seq).ok() != Some(expected) {
                return Err(corrupt(expected, "missing from the ledger"));
            }
            Hash::try_from(hash.as_slice()).map_err(|_| corrupt(expected, "hash is not 32 bytes"))
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|v| {
            if v.len() as u64 == count {
                Ok(v)
            } else {
                Err(corrupt(first + v.len() as u64, "missing from the ledger"))
            }
        })
}

/// Streams the hashes of events `seq > after`, in order, up to `until`.
pub fn for_each_hash_after(
    conn: &mut DbConn,
    after: u64,
    until: u64,
    mut visit: impl FnMut(u64, Hash),
) -> Result<(), StoreError> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let until = i64::try_from(until).unwrap_or(i64::MAX);
    with_conn!(conn, |c| {
        let rows = events::table
            .filter(events::seq.gt(after).and(events::seq.le(until)))
            .order(events::seq.asc())
            .select((events::seq, events::hash))
            .load_iter::<(i64, Vec<u8>), DefaultLoadingMode>(c)?;
        for row in rows {
            let (seq, hash) = row?;
            let seq = u64::try_from(seq).map_err(|_| corrupt(0, "negative seq"))?;
            let hash = Hash::try_from(hash.as_slice()).map_err(|_| corrupt(seq, "hash is not 32 bytes"))?;
            visit(seq, hash);
        }
        Ok(())
    })
}

/// Every project that has events.
pub fn projects(conn: &mut DbConn) -> Result<Vec<String>, StoreError> {
    let rows: Vec<Option<String>> = with_conn!(conn, |c| events::table.select(events::project).distinct().load(c))?;
    Ok(rows.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::parse_refs;

    #[test]
    fn the_plain_fast_path_agrees_with_a_json_parser() {
        for text in [
            "[]",
            "[\"a\"]",
            "[\"model:m@1\",\"run:r\"]",
            "[\"a,b\"]",
            "[ \"a\" ]",
            "[\"a\\\"b\"]",
            "[\"\\u00e9\"]",
            "[\"\"]",
            "[1]",
            "not json",
            "[\"a\"",
            "[\"a\"]]",
            "[,]",
            "[\"a\"\"b\"]",
            "[\"a\u{1}\"]",
        ] {
            let fast: Option<Vec<String>> = parse_refs(text).map(|v| v.into_iter().map(|c| c.into_owned()).collect());
            let reference: Option<Vec<String>> = serde_json::from_str(text).ok();
            assert_eq!(fast, reference, "{text:?}");
        }
    }
}
