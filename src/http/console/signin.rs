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
use crate::ledger::{EventDraft, Kind};
use serde_json::json;

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
    /// The identity provider's name, when people sign in through one.
    provider: Option<String>,
    /// Whether the token form is offered (to administrators, with a provider).
    token_signin: bool,
}

/// The sign-in page saying why a sign-in was refused.
pub fn refused_page(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    why: String,
) -> Result<HttpResponse, ConsoleError> {
    login_page(req, state, status, "/ui/".to_owned(), None, Some(why), None)
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
    let provider = state.access.authenticator.provider().map(|p| p.config());
    let page = LoginPage {
        provider: provider.map(|c| c.display_name.clone()),
        token_signin: provider.is_none_or(|c| c.token_signin),
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

/// Puts a sign-in or sign-out on the record: who, how, and the hash of the
/// session id; no address. The name the provider gives the person is
/// personal data: it goes only into the sealed `personal` envelope (the
/// person's actor as the data subject), so that it can be erased like any
/// personal data, and only with a master key configured.
async fn record_session(
    state: &AppState,
    kind: Kind,
    actor: &str,
    method: &str,
    id: &str,
    display: Option<&str>,
) -> Result<(), crate::http::ApiError> {
    let hash = session::recorded_hash(id);
    let personal = match (display, &state.master_key) {
        (Some(name), Some(_)) => Some(json!({"subject_ids": [actor], "fields": {"display_name": name}})),
        _ => None,
    };
    let request: crate::ledger::EventRequest = serde_json::from_value(json!({
        "kind": kind.as_str(),
        "subject": format!("session:{}", &hash[..32]),
        "attributes": {"method": method, "session_sha256": hash},
        "personal": personal,
    }))
    .map_err(crate::http::ApiError::internal)?;
    let draft = EventDraft::from_request_with(request, state.master_key.as_deref())?;
    state.store.writer().append(actor.to_owned(), vec![draft]).await?;
    Ok(())
}

/// A sign-in the console accepted.
pub struct SignIn<'a> {
    pub token: &'a str,
    pub expires_at: u64,
    pub actor: &'a str,
    pub method: &'static str,
    pub display: Option<String>,
}

/// Starts a session for a sign-in, records it, and sends the visitor to `next`.
pub async fn signed_in(state: &AppState, sign_in: SignIn<'_>, next: &str) -> Result<HttpResponse, ConsoleError> {
    let display = sign_in.display.clone();
    let id = state
        .console
        .sessions
        .start(sign_in.token, sign_in.expires_at, sign_in.actor, sign_in.method, sign_in.display)
        .ok_or_else(|| crate::http::ApiError::internal("the random number generator failed"))?;
    if let Err(e) =
        record_session(state, Kind::SessionStarted, sign_in.actor, sign_in.method, &id, display.as_deref()).await
    {
        // A sign-in that is not on the record does not happen.
        state.console.sessions.end(&id);
        return Err(e.into());
    }
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
    let guarded = guarded.and_then(|caller| match state.access.authenticator.provider() {
        // With an identity provider, people sign in through it; a token is
        // for administrators (break-glass), unless switched off entirely.
        Some(p) if !p.config().token_signin => Err(crate::http::ApiError::from(crate::auth::AuthError::Forbidden(
            format!("sign-in with a token is switched off: sign in with {}", p.config().display_name),
        ))),
        Some(p) if !caller.roles().iter().any(|r| r == "admin") => {
            Err(crate::http::ApiError::from(crate::auth::AuthError::Forbidden(format!(
                "only administrators sign in with a token here; sign in with {}",
                p.config().display_name
            ))))
        }
        _ => Ok(caller),
    });
    match guarded {
        Ok(caller) => {
            let sign_in =
                SignIn { token, expires_at: caller.expires_at(), actor: caller.sub(), method: "token", display: None };
            signed_in(&state, sign_in, &next).await
        }
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
    let sign_in =
        SignIn { token: &issued.token, expires_at: issued.expires_at, actor: &sub, method: "first_run", display: None };
    signed_in(&state, sign_in, &next).await
}

/// Form of `POST /ui/logout`.
#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/logout`: ends the session on the server and records the
/// sign-out; a session of the identity provider then ends there too
/// (RP-initiated logout), when the provider offers it.
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LogoutForm>,
) -> Result<HttpResponse, ConsoleError> {
    let secure = state.console.secure_cookies;
    let mut ended = None;
    if let Some(cookie) = req.cookie(session::COOKIE) {
        match state.console.sessions.get(cookie.value()) {
            Some(s) if same_secret(&s.csrf, &form.csrf) => {
                state.console.sessions.end(cookie.value());
                record_session(&state, Kind::SessionEnded, &s.actor, s.method, cookie.value(), None).await?;
                ended = Some(s);
            }
            Some(_) => return Err(ConsoleError::Csrf),
            None => {}
        }
    }
    let provider_logout = ended.filter(|s| s.method == "oidc").and_then(|s| {
        let provider = state.access.authenticator.provider()?;
        super::oidc::end_session_url(provider, &s.token, &state.console.public_url)
    });
    let mut response = match &provider_logout {
        Some(url) => super::oidc::redirect_to_provider(url),
        None => see_other("/ui/login"),
    };
    response.add_cookie(&session::removal(session::COOKIE, secure)).map_err(crate::http::ApiError::internal)?;
    Ok(response)
}
