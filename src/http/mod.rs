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
pub mod params;
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

/// Registers every route and the JSON error handlers for extractor failures.
/// Each path is one resource, so that a method it does not serve is answered
/// 405 with `Allow` rather than 404.
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
    .service(resource("/healthz").route(web::get().to(health::healthz)))
    .service(resource("/readyz").route(web::get().to(health::readyz)))
    .service(resource("/metrics").route(web::get().to(health::metrics)))
    .service(
        web::scope("/api/v1")
            .service(resource("/openapi.json").route(web::get().to(openapi::openapi_json)))
            .service(resource("/events").route(web::post().to(events::append)).route(web::get().to(events::list)))
            .service(resource("/events/{seq}").route(web::get().to(events::get)))
            .service(resource("/head").route(web::get().to(events::head)))
            .service(resource("/verify").route(web::get().to(events::verify)))
            .service(resource("/checkpoint").route(web::get().to(proofs::checkpoint)))
            .service(resource("/checkpoint/key").route(web::get().to(proofs::verifier_key)))
            .service(resource("/proofs/inclusion").route(web::get().to(proofs::inclusion)))
            .service(resource("/proofs/consistency").route(web::get().to(proofs::consistency)))
            .service(
                resource("/approvals")
                    .route(web::post().to(governance::request_approval))
                    .route(web::get().to(governance::list_approvals)),
            )
            .service(resource("/approvals/{id}").route(web::get().to(governance::get_approval)))
            .service(resource("/approvals/{id}/decision").route(web::post().to(governance::decide)))
            .service(resource("/gate").route(web::get().to(governance::gate)))
            .service(resource("/deployments").route(web::post().to(governance::deploy)))
            .service(
                resource("/lineage")
                    .route(web::get().to(governance::lineage))
                    .route(web::post().to(governance::openlineage)),
            )
            .service(resource("/impact").route(web::get().to(governance::impact)))
            .service(resource("/search").route(web::get().to(search::search)))
            .service(resource("/subjects/{id}").route(web::get().to(subjects::access)))
            .service(resource("/subjects/{id}/erase").route(web::post().to(subjects::erase)))
            .service(resource("/reports/{kind}").route(web::get().to(reports::report)))
            .service(resource("/entities/{ref:.*}").route(web::get().to(governance::entity)))
            .service(
                resource("/tokens").route(web::post().to(admin::issue_token)).route(web::get().to(admin::list_tokens)),
            )
            .service(resource("/tokens/{jti}/revoke").route(web::post().to(admin::revoke_token)))
            .service(
                resource("/policies").route(web::get().to(admin::get_policy)).route(web::put().to(admin::put_policy)),
            ),
    )
    .default_service(web::to(not_found));
}

fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
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
