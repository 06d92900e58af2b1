//! Liveness, readiness and metrics.

use actix_web::{web, HttpResponse};

use super::{ApiError, AppState};

/// The liveness answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`.
    status: &'static str,
}

/// The readiness answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready`.
    status: &'static str,
    /// Events in the ledger.
    size: u64,
}
use crate::metrics::Gauges;

/// `GET /healthz`: the process is up and serving.
#[utoipa::path(get, path = "/healthz", tag = "probes",
    responses((status = 200, description = "Serving", body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// `GET /readyz`: the database answers and the writer runs, so appends can
/// be committed; 503 otherwise. Migrations run before the server listens,
/// so while they run the probe finds nothing listening.
#[utoipa::path(get, path = "/readyz", tag = "probes",
    responses((status = 200, description = "Ready for appends", body = Readiness)))]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    match web::block(move || store.ready(std::time::Duration::from_secs(2))).await? {
        Ok(head) => Ok(HttpResponse::Ok().json(Readiness { status: "ready", size: head.size })),
        Err(e) => Err(ApiError::new(crate::error_code::ErrorCode::NotReady, e.to_string())),
    }
}

/// `GET /metrics`: Prometheus text format. Public like the probes: it holds
/// counts and timings, no event content.
#[utoipa::path(get, path = "/metrics", tag = "probes",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String)))]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let indexed = state.search.indexed_seq();
    let lag = crate::webhooks::dispatch::lag().unwrap_or_default();
    let gauges = web::block(move || -> Result<Gauges, ApiError> {
        let mut conn = store.conn()?;
        let size = crate::store::events::head(&mut conn)?.size;
        let checkpoint = crate::store::checkpoints::latest(&mut conn)?;
        let age = checkpoint
            .as_ref()
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(&c.created_at).ok())
            .map(|at| (chrono::Utc::now() - at.with_timezone(&chrono::Utc)).num_milliseconds().max(0) as f64 / 1000.0);
        Ok(Gauges {
            ledger_events: Some(size as f64),
            index_lag_events: Some(size.saturating_sub(indexed) as f64),
            checkpoint_age_seconds: age,
            checkpoint_behind_events: checkpoint.map(|c| size.saturating_sub(c.tree_size) as f64),
            webhook_lag: lag.subscriptions.into_iter().map(|(id, (events, seconds))| (id, events, seconds)).collect(),
            webhooks_failing: Some(lag.failing as f64),
        })
    })
    .await??;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::get().render(&gauges)))
}
