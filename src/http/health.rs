//! Liveness and readiness.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::{ApiError, AppState};

/// `GET /healthz`: the process is up and serving.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// `GET /readyz`: the database answers and the writer runs, so appends can
/// be committed; 503 otherwise. Migrations run before the server listens,
/// so while they run the probe finds nothing listening.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    match web::block(move || store.ready(std::time::Duration::from_secs(2))).await? {
        Ok(head) => Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ready", "size": head.size}))),
        Err(e) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", e.to_string())),
    }
}
