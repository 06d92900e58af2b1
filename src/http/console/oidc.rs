//! "Sign in with <provider>": the console's side of the OpenID Connect
//! authorization-code flow ([`crate::auth::oidc::login`] does the checks).

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::page::{safe_next, ConsoleError};
use super::signin::{self, SignIn};
use crate::auth::oidc::login::LoginError;
use crate::auth::oidc::Provider;
use crate::error_code::ErrorCode;
use crate::http::{ApiError, AppState};

/// The cookie binding a started sign-in to the browser that started it.
/// `SameSite=Lax`, unlike the session's: the provider sends the browser
/// back from its own site, and a strict cookie would not come along.
const FLOW_COOKIE: &str = "govledger_oidc";
const CALLBACK: &str = "/ui/login/oidc/callback";

fn provider(state: &AppState) -> Result<&std::sync::Arc<Provider>, ConsoleError> {
    state.access.authenticator.provider().ok_or_else(|| {
        ApiError::new(ErrorCode::NotFound, "this server has no identity provider configured (--oidc-issuer)").into()
    })
}

/// A 303 to the provider (whose origin the console's policy lets form
/// posts be redirected to, see [`super::content_security_policy`]).
pub fn redirect_to_provider(url: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header(("Location", url)).finish()
}

/// The origins of the provider's endpoints a browser is sent to.
pub fn provider_origins(provider: &Provider) -> Vec<String> {
    let metadata = provider.metadata();
    let mut origins: Vec<String> = [Some(metadata.authorization_endpoint), metadata.end_session_endpoint]
        .into_iter()
        .flatten()
        .filter_map(|u| url::Url::parse(&u).ok())
        .map(|u| u.origin().ascii_serialization())
        .collect();
    origins.dedup();
    origins
}

/// The provider's end-session URL for a session signed in with `id_token`,
/// returning to the sign-in page; `None` when the provider has none.
pub fn end_session_url(provider: &Provider, id_token: &str, public_url: &str) -> Option<String> {
    let endpoint = provider.metadata().end_session_endpoint?;
    let mut url = url::Url::parse(&endpoint).ok()?;
    url.query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair("client_id", &provider.config().client_id)
        .append_pair("post_logout_redirect_uri", &format!("{public_url}/ui/login"));
    Some(url.into())
}

/// Query of `GET /ui/login/oidc`.
#[derive(Deserialize)]
pub struct StartQuery {
    next: Option<String>,
}

/// `GET /ui/login/oidc?next=`: sends the browser to the provider.
pub async fn start(state: web::Data<AppState>, q: web::Query<StartQuery>) -> Result<HttpResponse, ConsoleError> {
    let provider = provider(&state)?;
    let redirect_uri = format!("{}{CALLBACK}", state.console.public_url);
    let started = state
        .console
        .logins
        .start(provider, &redirect_uri, &safe_next(q.next.as_deref()))
        .ok_or_else(|| ApiError::internal("the random number generator failed"))?;
    let cookie = Cookie::build(FLOW_COOKIE, started.browser)
        .path("/ui/login/oidc")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.console.secure_cookies)
        .max_age(actix_web::cookie::time::Duration::seconds(600))
        .finish();
    let mut response = redirect_to_provider(&started.url);
    response.add_cookie(&cookie).map_err(ApiError::internal)?;
    Ok(response)
}

/// Query of the callback: a code and state, or the provider's error.
#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    /// The issuer of the answer (RFC 9207), when the provider says it.
    iss: Option<String>,
}

/// `GET /ui/login/oidc/callback`: checks the sign-in and starts the session.
pub async fn callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<CallbackQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let provider = provider(&state)?.clone();
    let q = q.into_inner();
    let refused = |status: StatusCode, why: String| signin::refused_page(&req, &state, status, why);
    if let Some(error) = q.error {
        let why = q.error_description.map_or(error.clone(), |d| format!("{error}: {d}"));
        return refused(
            StatusCode::FORBIDDEN,
            format!("{} did not sign you in ({why}).", provider.config().display_name),
        );
    }
    if q.iss.as_deref().is_some_and(|iss| iss.trim_end_matches('/') != provider.config().issuer) {
        // RFC 9207: an answer another provider sent must not be taken for this one's.
        return refused(StatusCode::UNAUTHORIZED, "Not signed in: the answer comes from another issuer.".into());
    }
    let (Some(code), Some(flow_state)) = (q.code, q.state) else {
        return refused(StatusCode::BAD_REQUEST, "The provider's answer has no code and state: start again.".into());
    };
    let browser = req.cookie(FLOW_COOKIE).map(|c| c.value().to_owned());
    let redirect_uri = format!("{}{CALLBACK}", state.console.public_url);
    let completed =
        state.console.logins.complete(&provider, &redirect_uri, &flow_state, &code, browser.as_deref()).await;
    let completed = match completed {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(reason = %e, "an identity provider sign-in was refused");
            let status = match &e {
                LoginError::Unreachable(_) => StatusCode::BAD_GATEWAY,
                LoginError::NoAccess(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::UNAUTHORIZED,
            };
            let why = match e {
                LoginError::NoAccess(e) => e.to_string().trim_start_matches("forbidden: ").to_owned(),
                other => other.to_string(),
            };
            return refused(status, format!("Not signed in: {why}"));
        }
    };
    // The session ends with the ID token, or sooner at the configured maximum.
    let max = crate::auth::tokens::now() + provider.config().session_max.as_secs();
    let sign_in = SignIn {
        token: &completed.id_token,
        expires_at: completed.principal.exp.min(max),
        actor: &completed.principal.sub,
        method: "oidc",
        display: completed.display.clone(),
    };
    let mut response = signin::signed_in(&state, sign_in, &completed.next).await?;
    let mut gone = Cookie::build(FLOW_COOKIE, "").path("/ui/login/oidc").finish();
    gone.make_removal();
    response.add_cookie(&gone).map_err(ApiError::internal)?;
    Ok(response)
}
