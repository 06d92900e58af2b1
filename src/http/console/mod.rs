//! The web console under `/ui/`: pages rendered on the server from
//! compile-time-checked templates, for the people who read and govern the
//! record. Each page is guarded by the same typed actions as the API (a
//! [`page::Viewer`] carries a [`crate::http::auth::Guarded`]) and calls the
//! same services; no page reads the store by a path of its own. Every
//! flow works without JavaScript; the vendored htmx only spares reloads.

mod admin;
mod approvals;
mod assets;
mod chart;
mod deployments;
mod entities;
mod events;
pub mod first_run;
pub mod oidc;
mod overview;
pub mod page;
mod reports;
mod search;
pub mod session;
mod signin;
mod subjects;
pub mod svg;

use std::sync::Mutex;

use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpResponse};

pub use first_run::FirstRun;
pub use session::Sessions;

use super::{ApiError, AppState};
use crate::auth::access::Access;
use crate::store::{ChainReport, Store};

/// The policy every console answer carries: nothing but this origin's own
/// files, no inline script, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; \
     object-src 'none'";

/// [`CONTENT_SECURITY_POLICY`] with form posts allowed to `origins` too: a
/// browser checks `form-action` on every redirect of a form post against the
/// policy of the page holding the form, so the sign-out form must name the
/// identity provider it ends up at.
pub fn content_security_policy(origins: &[String]) -> String {
    if origins.is_empty() {
        return CONTENT_SECURITY_POLICY.to_owned();
    }
    CONTENT_SECURITY_POLICY.replace("form-action 'self'", &format!("form-action 'self' {}", origins.join(" ")))
}

/// Adds the console's policy (with the provider's origin, when configured)
/// to every answer that has not set one of its own.
async fn with_policy(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let policy = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.console.content_security_policy.clone())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| CONTENT_SECURITY_POLICY.to_owned());
    let mut response = next.call(req).await?;
    let name = actix_web::http::header::CONTENT_SECURITY_POLICY;
    if !response.headers().contains_key(&name) {
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&policy) {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}

/// What the console keeps beside the API's state.
#[derive(Default)]
pub struct ConsoleState {
    pub sessions: Sessions,
    pub first_run: FirstRun,
    /// Cookies get `Secure` (the console is served over https).
    pub secure_cookies: bool,
    /// Sign-ins started at the identity provider, waiting for its answer.
    pub logins: crate::auth::oidc::login::Logins,
    /// Where people reach the server (`https://ledger.example.com`), for
    /// the identity provider's redirect URIs.
    pub public_url: String,
    /// The Content-Security-Policy of its pages; empty: [`CONTENT_SECURITY_POLICY`].
    pub content_security_policy: String,
    /// The last chain verification run from the console.
    pub last_verification: Mutex<Option<Verification>>,
}

/// A chain verification and who asked for it.
#[derive(Clone)]
pub struct Verification {
    pub at: String,
    pub by: String,
    pub report: ChainReport,
}

/// Whether an administrator token was ever issued on this ledger (the
/// first-run code is only for a ledger without one).
pub async fn admin_issued(state: &AppState) -> Result<bool, ApiError> {
    admin_token_issued(&state.access, &state.store).await
}

/// [`admin_issued`], before the server's state exists.
pub async fn admin_token_issued(access: &Access, store: &Store) -> Result<bool, ApiError> {
    let tokens = access.tokens(store).await?;
    Ok(tokens.iter().any(|t| t.roles.iter().any(|r| r == "admin")))
}

/// Registers `GET /` (to the console) and every `/ui/` route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let headers = DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "same-origin"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Cache-Control", "no-store"));
    cfg.route("/", web::get().to(to_console)).service(
        web::scope("/ui")
            .wrap(headers)
            .wrap(actix_web::middleware::from_fn(with_policy))
            .app_data(web::FormConfig::default().limit(64 * 1024).error_handler(|err, _| {
                page::ConsoleError::Api(ApiError::new(crate::error_code::ErrorCode::MalformedRequest, err.to_string()))
                    .into()
            }))
            .app_data(web::QueryConfig::default().error_handler(|err, _| {
                page::ConsoleError::Api(ApiError::new(crate::error_code::ErrorCode::MalformedQuery, err.to_string()))
                    .into()
            }))
            .app_data(web::PathConfig::default().error_handler(|err, _| {
                page::ConsoleError::Api(ApiError::new(crate::error_code::ErrorCode::MalformedPath, err.to_string()))
                    .into()
            }))
            .route("", web::get().to(to_console))
            .route("/", web::get().to(overview::page))
            .route("/verify", web::post().to(overview::verify))
            .route("/login", web::get().to(signin::form))
            .route("/login", web::post().to(signin::with_token))
            .route("/login/first-run", web::post().to(signin::first_run))
            .route("/login/oidc", web::get().to(oidc::start))
            .route("/login/oidc/callback", web::get().to(oidc::callback))
            .route("/logout", web::post().to(signin::logout))
            .route("/approvals", web::get().to(approvals::inbox))
            .route("/approvals/{id}", web::get().to(approvals::page))
            .route("/approvals/{id}", web::post().to(approvals::decide))
            .route("/deployments", web::get().to(deployments::page))
            .route("/subjects", web::get().to(subjects::find))
            .route("/subjects/{id}", web::get().to(subjects::page))
            .route("/subjects/{id}/erase", web::post().to(subjects::erase))
            .route("/admin/tokens", web::get().to(admin::tokens))
            .route("/admin/tokens", web::post().to(admin::issue))
            .route("/admin/tokens/{jti}/revoke", web::post().to(admin::revoke))
            .route("/admin/policy", web::get().to(admin::policy))
            .route("/search", web::get().to(search::page))
            .route("/suggest", web::get().to(search::suggest))
            .route("/events/{seq}", web::get().to(events::page))
            .route("/events/{seq}/proof.json", web::get().to(events::proof))
            .route("/events/{seq}/bundle.tar", web::get().to(events::bundle))
            .route("/models/{ref:.+}", web::get().to(entities::model))
            .route("/entities/{ref:.+}", web::get().to(entities::page))
            .route("/reports", web::get().to(reports::page))
            .route("/reports/{type}", web::get().to(reports::download))
            .route("/assets/{name}", web::get().to(assets::serve))
            .default_service(web::to(not_found)),
    );
}

async fn to_console() -> HttpResponse {
    page::see_other("/ui/")
}

async fn not_found(req: actix_web::HttpRequest) -> Result<HttpResponse, page::ConsoleError> {
    Err(ApiError::not_found(format!("There is no console page at {}", req.path())).into())
}
