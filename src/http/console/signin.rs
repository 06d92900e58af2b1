//! Signing in (with a token, or with the first-run code) and out.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::first_run;
use super::page::{self, safe_next, see_other, Chrome, ConsoleError};
use super::session::{self, same_secret, LOGIN_COOKIE};
use crate::auth::access::{parse_ttl, ALL_PROJECTS, DEFAULT_TOKEN_TTL};
use crate::auth::actions::ReadEvents;
use crate::http::AppState;

#[derive(Template)]
#[template(path = "login.html", config = "src/http/console/askama.toml")]
struct LoginPage {
    chrome: Chrome,
    csrf: String,
    next: String,
    why: Option<String>,
    error: Option<String>,
    first_run_code: Option<String>,
    first_run_waiting: bool,
}

/// Query of `GET /ui/login`.
#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    why: Option<String>,
    code: Option<String>,
}

/// The sign-in form's CSRF token: the visitor's login cookie, or a new one.
fn login_csrf(req: &HttpRequest) -> (String, bool) {
    match req.cookie(LOGIN_COOKIE) {
        Some(c) if c.value().len() == 64 => (c.value().to_owned(), false),
        _ => (session::random_hex(), true),
    }
}

fn login_page(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    next: String,
    why: Option<String>,
    error: Option<String>,
    code: Option<String>,
) -> Result<HttpResponse, ConsoleError> {
    let (csrf, fresh) = login_csrf(req);
    let waiting = state.console.first_run.is_pending();
    let page = LoginPage {
        chrome: Chrome::signed_out("Sign in"),
        csrf: csrf.clone(),
        next,
        why,
        error,
        first_run_code: code.filter(|_| waiting),
        first_run_waiting: waiting,
    };
    let mut response = page::html_with(status, &page)?;
    if fresh {
        response
            .add_cookie(&session::cookie(LOGIN_COOKIE, csrf, state.console.secure_cookies))
            .map_err(crate::http::ApiError::internal)?;
    }
    Ok(response)
}

/// `GET /ui/login?next=&why=&code=`.
pub async fn form(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<LoginQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let q = q.into_inner();
    let why = q.why.as_deref().and_then(super::page::SignedOut::parse).map(|w| w.sentence().to_owned());
    login_page(&req, &state, StatusCode::OK, safe_next(q.next.as_deref()), why, None, q.code)
}

/// Form of `POST /ui/login`.
#[derive(Deserialize)]
pub struct TokenForm {
    token: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

/// Checks the sign-in form's CSRF token against the login cookie.
fn check_login_csrf(req: &HttpRequest, csrf: &str) -> Result<(), ConsoleError> {
    match req.cookie(LOGIN_COOKIE) {
        Some(c) if same_secret(c.value(), csrf) => Ok(()),
        _ => Err(ConsoleError::Csrf),
    }
}

/// Starts a session for `token` and sends the visitor to `next`.
fn signed_in(state: &AppState, token: &str, expires_at: u64, next: &str) -> Result<HttpResponse, ConsoleError> {
    let id = state
        .console
        .sessions
        .start(token, expires_at)
        .ok_or_else(|| crate::http::ApiError::internal("the random number generator failed"))?;
    let secure = state.console.secure_cookies;
    let mut response = see_other(next);
    response.add_cookie(&session::cookie(session::COOKIE, id, secure)).map_err(crate::http::ApiError::internal)?;
    response.add_cookie(&session::removal(LOGIN_COOKIE, secure)).map_err(crate::http::ApiError::internal)?;
    Ok(response)
}

/// `POST /ui/login`: a token, checked exactly as a bearer token is.
pub async fn with_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<TokenForm>,
) -> Result<HttpResponse, ConsoleError> {
    let form = form.into_inner();
    check_login_csrf(&req, &form.csrf)?;
    let next = safe_next(form.next.as_deref());
    let token = form.token.trim();
    // The same check as every page's: a token that could not read anything
    // is refused here rather than on the first page.
    let guarded = match crate::http::auth::guard_token::<ReadEvents>(&req, token) {
        Ok(guard) => {
            let caller = guard.into_caller();
            let store = state.store.clone();
            let who = caller.clone();
            let readable = state.blocking(move || who.readable_projects_in(&mut *store.conn()?)).await??;
            if readable.as_ref().is_some_and(Vec::is_empty) {
                Err(crate::http::ApiError::from(crate::auth::AuthError::Forbidden(format!(
                    "{} may read no events in any project, so the console has nothing to show",
                    caller.sub()
                ))))
            } else {
                Ok(caller)
            }
        }
        Err(e) => Err(e),
    };
    match guarded {
        Ok(caller) => signed_in(&state, token, caller.expires_at(), &next),
        Err(e) => {
            let why = format!("That token was not accepted: {}", e.message());
            login_page(&req, &state, e.status(), next, None, Some(why), None)
        }
    }
}

/// Form of `POST /ui/login/first-run`.
#[derive(Deserialize)]
pub struct FirstRunForm {
    code: String,
    sub: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

/// `POST /ui/login/first-run`: spends the one-time code, issues the first
/// administrator's token (on the record) and signs in with it.
pub async fn first_run(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<FirstRunForm>,
) -> Result<HttpResponse, ConsoleError> {
    let form = form.into_inner();
    check_login_csrf(&req, &form.csrf)?;
    let next = safe_next(form.next.as_deref());
    let sub = form.sub.trim().to_owned();
    if let Err(why) = crate::ledger::actor::validate_subject(&sub) {
        let error = format!("That name cannot be an identity: {why}");
        return login_page(&req, &state, StatusCode::UNPROCESSABLE_ENTITY, next, None, Some(error), Some(form.code));
    }
    if super::admin_issued(&state).await? {
        // An administrator exists now (issued with the CLI, say): the code
        // has done its job and is withdrawn.
        state.console.first_run.withdraw();
    }
    if let Err(refused) = state.console.first_run.redeem(&form.code) {
        return login_page(&req, &state, StatusCode::FORBIDDEN, next, None, Some(refused.to_string()), None);
    }
    let ttl = parse_ttl(DEFAULT_TOKEN_TTL).map_err(crate::http::ApiError::internal)?;
    let roles = vec!["admin".to_owned()];
    let issued = state
        .access
        .issue_token(&state.store, first_run::ACTOR, &sub, &roles, &[ALL_PROJECTS.to_owned()], ttl, false)
        .await
        .map_err(crate::http::ApiError::from)?;
    tracing::info!(sub = %sub, jti = %issued.jti, "the first administrator signed in with the first-run code");
    signed_in(&state, &issued.token, issued.expires_at, &next)
}

/// Form of `POST /ui/logout`.
#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/logout`: ends the session on the server.
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LogoutForm>,
) -> Result<HttpResponse, ConsoleError> {
    let secure = state.console.secure_cookies;
    if let Some(cookie) = req.cookie(session::COOKIE) {
        match state.console.sessions.get(cookie.value()) {
            Some(s) if same_secret(&s.csrf, &form.csrf) => state.console.sessions.end(cookie.value()),
            Some(_) => return Err(ConsoleError::Csrf),
            None => {}
        }
    }
    let mut response = see_other("/ui/login");
    response.add_cookie(&session::removal(session::COOKIE, secure)).map_err(crate::http::ApiError::internal)?;
    Ok(response)
}
