//! The HTTP API: decode the request, call the store, encode the response.
//! All wiring is here; one module per resource.

pub mod admin;
pub mod auth;
pub mod body;
pub mod error;
pub mod events;
pub mod governance;
pub mod health;
pub mod openapi;
pub mod proofs;
pub mod ratelimit;
pub mod reports;
pub mod search;
pub mod subjects;

use actix_web::web;

pub use error::ApiError;

use std::sync::Arc;

use crate::auth::access::Access;
use crate::config::Limits;
use crate::governance::Governance;
use crate::proofs::Proofs;
use crate::search::SearchIndex;
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub proofs: Arc<Proofs>,
    pub access: Arc<Access>,
    pub governance: Governance,
    pub search: Arc<SearchIndex>,
    /// Report templates (`reports/` unless configured; shipped ones fill gaps).
    pub templates_dir: std::path::PathBuf,
    pub limits: Limits,
    pub rate_limiter: Arc<ratelimit::RateLimiter>,
    /// Seals and opens personal data; `None` when no master key is set.
    pub master_key: Option<Arc<crate::ledger::personal::MasterKey>>,
    /// See [`crate::config::Config::benchmark_without_authentication`].
    pub benchmark_without_authentication: bool,
}

/// Registers every route and the JSON error handlers for extractor failures.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::QueryConfig::default()
            .error_handler(|err, _| ApiError::bad_request("invalid_query", err.to_string()).into()),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|err, _| ApiError::bad_request("invalid_path", err.to_string()).into()),
    )
    .route("/healthz", web::get().to(health::healthz))
    .route("/readyz", web::get().to(health::readyz))
    .route("/metrics", web::get().to(health::metrics))
    .service(
        web::scope("/api/v1")
            .route("/openapi.json", web::get().to(openapi::openapi_json))
            .route("/events", web::post().to(events::append))
            .route("/events", web::get().to(events::list))
            .route("/events/{seq}", web::get().to(events::get))
            .route("/head", web::get().to(events::head))
            .route("/verify", web::get().to(events::verify))
            .route("/checkpoint", web::get().to(proofs::checkpoint))
            .route("/checkpoint/key", web::get().to(proofs::verifier_key))
            .route("/proofs/inclusion", web::get().to(proofs::inclusion))
            .route("/proofs/consistency", web::get().to(proofs::consistency))
            .route("/approvals", web::post().to(governance::request_approval))
            .route("/approvals", web::get().to(governance::list_approvals))
            .route("/approvals/{id}", web::get().to(governance::get_approval))
            .route("/approvals/{id}/decision", web::post().to(governance::decide))
            .route("/gate", web::get().to(governance::gate))
            .route("/deployments", web::post().to(governance::deploy))
            .route("/lineage", web::get().to(governance::lineage))
            .route("/lineage", web::post().to(governance::openlineage))
            .route("/impact", web::get().to(governance::impact))
            .route("/search", web::get().to(search::search))
            .route("/subjects/{id}", web::get().to(subjects::access))
            .route("/subjects/{id}/erase", web::post().to(subjects::erase))
            .route("/reports/{kind}", web::get().to(reports::report))
            .route("/entities/{ref:.*}", web::get().to(governance::entity))
            .route("/tokens", web::post().to(admin::issue_token))
            .route("/tokens/{jti}/revoke", web::post().to(admin::revoke_token))
            .route("/policies", web::get().to(admin::get_policy))
            .route("/policies", web::put().to(admin::put_policy)),
    )
    .default_service(web::to(not_found));
}

async fn not_found(req: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found(format!("no route for {} {}", req.method(), req.path())))
}
