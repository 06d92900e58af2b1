//! Where monitoring series stand (see `governance::monitoring`), read and
//! written inside the append transaction of the reports that move them.

use diesel::dsl::max;
use diesel::prelude::*;
use diesel::upsert::excluded;

use super::schema::{events, monitoring_series};
use super::{DbConn, StoreError};
use crate::ledger::Kind;
use crate::with_conn;

/// One series.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = monitoring_series)]
// NULL rather than DEFAULT for a `None`: SQLite takes multi-row inserts only so.
#[diesel(treat_none_as_default_value = false)]
pub struct SeriesRow {
    pub key: String,
    pub rule: String,
    pub model: String,
    pub environment: String,
    pub segment: String,
    pub level: String,
    pub warning_run: i64,
    pub critical_run: i64,
    pub ok_run: i64,
    pub last_window_end: Option<String>,
    pub open_seq: Option<i64>,
    pub recent_seqs: String,
    pub rules_seq: i64,
}

/// The series named by `keys` (those that exist).
pub fn load(conn: &mut DbConn, keys: &[String]) -> Result<Vec<SeriesRow>, StoreError> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(500) {
        let rows: Vec<SeriesRow> = with_conn!(conn, |c| monitoring_series::table
            .filter(monitoring_series::key.eq_any(chunk))
            .select(SeriesRow::as_select())
            .load(c))?;
        out.extend(rows);
    }
    Ok(out)
}

/// Writes `rows` over what they replace.
pub fn save(conn: &mut DbConn, rows: &[SeriesRow]) -> Result<(), StoreError> {
    use monitoring_series::dsl as s;
    // One statement per 100 rows (13 binds each, well inside SQLite's limit).
    for chunk in rows.chunks(100) {
        with_conn!(conn, |c| diesel::insert_into(monitoring_series::table)
            .values(chunk)
            .on_conflict(s::key)
            .do_update()
            .set((
                s::level.eq(excluded(s::level)),
                s::warning_run.eq(excluded(s::warning_run)),
                s::critical_run.eq(excluded(s::critical_run)),
                s::ok_run.eq(excluded(s::ok_run)),
                s::last_window_end.eq(excluded(s::last_window_end)),
                s::open_seq.eq(excluded(s::open_seq)),
                s::recent_seqs.eq(excluded(s::recent_seqs)),
                s::rules_seq.eq(excluded(s::rules_seq)),
            ))
            .execute(c))?;
    }
    Ok(())
}

/// The series of `model` (a model version), in every environment, or only
/// those with an open breach.
pub fn of_model(conn: &mut DbConn, model: &str, open_only: bool) -> Result<Vec<SeriesRow>, StoreError> {
    let rows: Vec<SeriesRow> = with_conn!(conn, |c| monitoring_series::table
        .filter(monitoring_series::model.eq(model))
        .order(monitoring_series::key)
        .select(SeriesRow::as_select())
        .load(c))?;
    Ok(rows.into_iter().filter(|r| !open_only || r.open_seq.is_some()).collect())
}

/// Every series with an open breach, in key order.
pub fn open(conn: &mut DbConn) -> Result<Vec<SeriesRow>, StoreError> {
    Ok(with_conn!(conn, |c| monitoring_series::table
        .filter(monitoring_series::open_seq.is_not_null())
        .order(monitoring_series::key)
        .select(SeriesRow::as_select())
        .load(c))?)
}

/// The seq of the latest `monitoring.rules_changed`, if any.
pub fn latest_rules_seq(conn: &mut DbConn) -> Result<Option<u64>, StoreError> {
    let seq: Option<i64> = with_conn!(conn, |c| events::table
        .filter(events::kind.eq(Kind::MonitoringRulesChanged.as_str()))
        .select(max(events::seq))
        .first(c))?;
    Ok(seq.and_then(|s| u64::try_from(s).ok()))
}

/// The rules text that the `monitoring.rules_changed` at `seq` records.
pub fn rules_text(conn: &mut DbConn, seq: u64) -> Result<String, StoreError> {
    let seq = i64::try_from(seq).map_err(|_| StoreError::Internal("seq out of range".into()))?;
    let attributes: String = with_conn!(conn, |c| events::table.find(seq).select(events::attributes).first(c))?;
    let value: serde_json::Value =
        serde_json::from_str(&attributes).map_err(|e| StoreError::Internal(format!("rules event {seq}: {e}")))?;
    value["rules"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| StoreError::Internal(format!("rules event {seq} records no rules")))
}
