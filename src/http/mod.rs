//! The HTTP API: decode the request, call the store, encode the response.
//! All wiring is here; one module per resource.

pub mod admin;
pub mod approvals;
pub mod auth;
pub mod body;
pub mod console;
pub mod deployments;
pub mod error;
pub mod events;
pub mod health;
pub mod lineage;
pub mod mlflow;
pub mod monitoring;
pub mod openapi;
pub mod params;
pub mod proofs;
pub mod ratelimit;
pub mod reports;
pub mod routes;
pub mod search;
pub mod subjects;
pub mod webhooks;

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
    /// Requests in progress per token (`Limits::max_in_flight_per_token`).
    pub in_flight: Arc<auth::InFlightLimiter>,
    /// Places for blocking work (reads of the store, proofs, reports): one
    /// per pooled connection. A request waits for one without holding a
    /// thread, so a burst of readers cannot start hundreds of threads, each
    /// with its own allocator caches, that then queue for the connections.
    pub blocking_slots: Arc<tokio::sync::Semaphore>,
    /// Where that work runs: a pool of as many threads as places, shared by
    /// every HTTP worker (each worker's own blocking pool would grow its own
    /// threads, and with them the memory the allocator keeps per thread).
    pub blocking_pool: tokio::runtime::Handle,
    /// Seals and opens personal data; `None` when no master key is set.
    pub master_key: Option<Arc<crate::ledger::personal::MasterKey>>,
    /// Webhook subscriptions (their delivery runs beside the server).
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// The console's sessions, first-run code and last verification.
    pub console: Arc<console::ConsoleState>,
    /// The MLflow bridge, when `--mlflow-url` configures one.
    pub mlflow: Option<Arc<crate::mlflow::Bridge>>,
}

impl AppState {
    /// Runs blocking `work` (it reads the store, signs, renders) on the
    /// blocking pool once a place is free. A request that waits longer than
    /// `Limits::queue_wait` for one is answered 429 with `Retry-After`:
    /// under more load than the server can serve, a caller learns it at once
    /// rather than after a timeout.
    pub async fn blocking<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        let wait = tokio::time::timeout(self.limits.queue_wait, self.blocking_slots.clone().acquire_owned());
        let slot = match wait.await {
            Ok(Ok(slot)) => slot,
            Ok(Err(_)) => return Err(ApiError::internal("the blocking slots are closed")),
            Err(_) => {
                crate::metrics::get().shed_requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Err(ApiError::too_busy("the server is busy; retry in a second"));
            }
        };
        self.blocking_pool
            .spawn_blocking(move || {
                let _slot = slot;
                work()
            })
            .await
            .map_err(|e| ApiError::internal(format!("a blocking task failed: {e}")))
    }
}

/// Registers every route of [`routes::ROUTES`] and the JSON error handlers
/// for extractor failures.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::QueryConfig::default().error_handler(|err, _| {
            ApiError::new(crate::error_code::ErrorCode::MalformedQuery, err.to_string()).into()
        }),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|err, _| ApiError::new(crate::error_code::ErrorCode::MalformedPath, err.to_string()).into()),
    )
    .configure(console::configure)
    .configure(routes::register)
    .default_service(web::to(not_found));
}

/// 405 for a method a path does not serve, with the methods it does serve
/// as the OpenAPI description lists them.
async fn method_not_allowed(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    let allow = req.match_pattern().map(|p| openapi::methods_of(&p)).unwrap_or_default();
    let error = ApiError::new(
        crate::error_code::ErrorCode::MethodNotAllowed,
        format!("{} is not served at {}; allowed: {allow}", req.method(), req.path()),
    );
    let mut response = actix_web::ResponseError::error_response(&error);
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allow) {
        response.headers_mut().insert(actix_web::http::header::ALLOW, value);
    }
    response
}

async fn not_found(req: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found(format!("no route for {} {}", req.method(), req.path())))
}
