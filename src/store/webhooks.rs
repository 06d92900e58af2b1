//! Where webhook delivery stands: a cursor and a lease per subscription, and
//! the recent attempts. Not a projection of the events: the ledger writer
//! writes it a few times a second inside its group commit (see
//! `webhooks::dispatch`), and leases and releases are short transactions.

use diesel::prelude::*;

use super::schema::{webhook_cursors, webhook_deliveries};
use super::{DbConn, StoreError};
use crate::with_conn;

/// A subscription's delivery state.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = webhook_cursors)]
pub struct CursorRow {
    pub webhook_id: String,
    pub delivered_through: i64,
    pub applied_change_seq: i64,
    pub lease_owner: Option<String>,
    pub lease_until: i64,
    pub retry_seq: Option<i64>,
    pub retry_since: Option<String>,
    pub retry_attempts: i32,
    pub last_error: Option<String>,
    pub last_delivered_at: Option<String>,
    pub updated_at: String,
}

/// What a flush writes for a subscription its replica holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub webhook_id: String,
    pub delivered_through: u64,
    pub applied_change_seq: u64,
    pub retry_seq: Option<u64>,
    pub retry_since: Option<String>,
    pub retry_attempts: u32,
    pub last_error: Option<String>,
    pub last_delivered_at: Option<String>,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, serde::Serialize, utoipa::ToSchema)]
#[diesel(table_name = webhook_deliveries)]
pub struct DeliveryRow {
    /// The attempt's id (`before` of the next page).
    #[serde(rename = "attempt_id")]
    pub id: i64,
    #[serde(skip)]
    pub webhook_id: String,
    pub seq: i64,
    /// The `webhook-id` header: the same for every attempt at this event.
    pub message_id: String,
    pub kind: String,
    /// 1 for the first attempt at this event.
    pub attempt: i32,
    pub attempted_at: String,
    /// `delivered`, `failed` (retried), `gone` (410: disabled), `failing`
    /// (the last attempt of the retry window), `refused` (the address is
    /// not allowed).
    pub result: String,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<i32>,
    pub latency_micros: i64,
    pub error: Option<String>,
    /// When the event is tried again, after a failure.
    pub next_attempt_at: Option<String>,
    /// Which replica made the attempt.
    pub replica: String,
}

/// A delivery attempt to record.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = webhook_deliveries)]
pub struct NewDelivery {
    pub webhook_id: String,
    pub seq: i64,
    pub message_id: String,
    pub kind: String,
    pub attempt: i32,
    pub attempted_at: String,
    pub result: String,
    pub status_code: Option<i32>,
    pub latency_micros: i64,
    pub error: Option<String>,
    pub next_attempt_at: Option<String>,
    pub replica: String,
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Creates the cursor of a subscription that has none, starting after
/// `start_seq` (its `webhook.created` event).
pub fn ensure_cursor(conn: &mut DbConn, webhook_id: &str, start_seq: u64, now: &str) -> Result<(), StoreError> {
    let row = (
        webhook_cursors::webhook_id.eq(webhook_id),
        webhook_cursors::delivered_through.eq(i64_of(start_seq)),
        webhook_cursors::applied_change_seq.eq(i64_of(start_seq)),
        webhook_cursors::lease_until.eq(0),
        webhook_cursors::retry_attempts.eq(0),
        webhook_cursors::updated_at.eq(now),
    );
    with_conn!(conn, |c| diesel::insert_into(webhook_cursors::table).values(row).on_conflict_do_nothing().execute(c))?;
    Ok(())
}

/// Takes or renews the lease on a subscription for `owner` until `until`
/// (Unix ms), if nobody else holds it past `now`; its cursor when taken.
pub fn take_lease(
    conn: &mut DbConn,
    webhook_id: &str,
    owner: &str,
    now: i64,
    until: i64,
) -> Result<Option<CursorRow>, StoreError> {
    use webhook_cursors::dsl as w;
    let free = w::lease_owner.is_null().or(w::lease_owner.eq(owner)).or(w::lease_until.lt(now));
    let taken =
        with_conn!(conn, |c| diesel::update(w::webhook_cursors.filter(w::webhook_id.eq(webhook_id)).filter(free))
            .set((w::lease_owner.eq(owner), w::lease_until.eq(until)))
            .execute(c))?;
    if taken == 0 {
        return Ok(None);
    }
    cursor(conn, webhook_id)
}

/// Gives a lease up, so another replica may take it at once.
pub fn release(conn: &mut DbConn, webhook_id: &str, owner: &str) -> Result<(), StoreError> {
    use webhook_cursors::dsl as w;
    with_conn!(conn, |c| diesel::update(
        w::webhook_cursors.filter(w::webhook_id.eq(webhook_id)).filter(w::lease_owner.eq(owner))
    )
    .set((w::lease_owner.eq(None::<String>), w::lease_until.eq(0)))
    .execute(c))?;
    Ok(())
}

/// A subscription's cursor.
pub fn cursor(conn: &mut DbConn, webhook_id: &str) -> Result<Option<CursorRow>, StoreError> {
    Ok(with_conn!(conn, |c| webhook_cursors::table
        .find(webhook_id)
        .select(CursorRow::as_select())
        .first(c)
        .optional())?)
}

/// What one flush writes: the progress of the subscriptions `owner` holds
/// (renewing their leases until `until`, Unix ms) and the attempts made
/// since the last flush; of each subscription in `prune`, the newest `keep`
/// attempts are kept.
pub struct Flush<'a> {
    pub owner: &'a str,
    pub until: i64,
    pub now: &'a str,
    pub progress: &'a [Progress],
    pub attempts: &'a [NewDelivery],
    pub prune: &'a [String],
    pub keep: i64,
}

/// Writes where delivery stands, inside the caller's (the ledger writer's)
/// transaction; the subscriptions whose lease another replica holds now.
pub fn flush_in(conn: &mut DbConn, f: &Flush<'_>) -> Result<Vec<String>, StoreError> {
    use webhook_cursors::dsl as w;
    let mut lost = Vec::new();
    for p in f.progress {
        let changed = with_conn!(conn, |c| diesel::update(
            w::webhook_cursors.filter(w::webhook_id.eq(&p.webhook_id)).filter(w::lease_owner.eq(f.owner))
        )
        .set((
            w::delivered_through.eq(i64_of(p.delivered_through)),
            w::applied_change_seq.eq(i64_of(p.applied_change_seq)),
            w::lease_until.eq(f.until),
            w::retry_seq.eq(p.retry_seq.map(i64_of)),
            w::retry_since.eq(&p.retry_since),
            w::retry_attempts.eq(i32::try_from(p.retry_attempts).unwrap_or(i32::MAX)),
            w::last_error.eq(&p.last_error),
            w::last_delivered_at.eq(&p.last_delivered_at),
            w::updated_at.eq(f.now),
        ))
        .execute(c))?;
        if changed == 0 {
            lost.push(p.webhook_id.clone());
        }
    }
    for chunk in f.attempts.chunks(500) {
        with_conn!(conn, |c| diesel::insert_into(webhook_deliveries::table).values(chunk).execute(c))?;
    }
    for id in f.prune {
        use webhook_deliveries::dsl as d;
        let newest: Vec<i64> = with_conn!(conn, |c| d::webhook_deliveries
            .filter(d::webhook_id.eq(id))
            .order(d::id.desc())
            .offset(f.keep)
            .limit(1)
            .select(d::id)
            .load(c))?;
        if let Some(oldest_kept) = newest.first() {
            with_conn!(conn, |c| diesel::delete(
                d::webhook_deliveries.filter(d::webhook_id.eq(id)).filter(d::id.le(*oldest_kept))
            )
            .execute(c))?;
        }
    }
    Ok(lost)
}

/// The newest attempts of a subscription, newest first, older than
/// `before` (an attempt id) when given.
pub fn deliveries(
    conn: &mut DbConn,
    webhook_id: &str,
    limit: i64,
    before: Option<i64>,
) -> Result<Vec<DeliveryRow>, StoreError> {
    use webhook_deliveries::dsl as d;
    Ok(with_conn!(conn, |c| {
        let mut query = d::webhook_deliveries.filter(d::webhook_id.eq(webhook_id)).into_boxed();
        if let Some(before) = before {
            query = query.filter(d::id.lt(before));
        }
        query.order(d::id.desc()).limit(limit).select(DeliveryRow::as_select()).load(c)
    })?)
}

/// Forgets a deleted subscription's delivery state.
pub fn remove(conn: &mut DbConn, webhook_id: &str) -> Result<(), StoreError> {
    with_conn!(conn, |c| {
        diesel::delete(webhook_deliveries::table.filter(webhook_deliveries::webhook_id.eq(webhook_id))).execute(c)?;
        diesel::delete(webhook_cursors::table.find(webhook_id)).execute(c)
    })?;
    Ok(())
}
