//! What every console page shares: the signed-in viewer (guarded by the
//! same typed actions as the API), the page chrome, HTML errors, and the
//! CSRF check of forms.

use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{dev::Payload, web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use askama::Template;

use super::session::{self, Session};
use crate::auth::actions::Guard;
use crate::http::auth::{guard_token, Guarded};
use crate::http::{ApiError, AppState};

/// A signed-in visitor, authorized for the action `A` as the API's
/// [`Guarded`] is: the session's token goes through the same checks.
pub struct Viewer<A: Guard> {
    pub guard: Guarded<A>,
    pub session: Arc<Session>,
}

impl<A: Guard> Viewer<A> {
    /// The chrome of a page titled `title` in the navigation section `nav`.
    pub fn chrome(&self, title: impl Into<String>, nav: &'static str) -> Chrome {
        let caller = self.guard.caller();
        // An entry is shown only to whom its page would not refuse.
        let somewhere = |action: &crate::auth::actions::Action| {
            caller.may(action, "", None) || caller.token_projects().iter().any(|p| caller.may(action, "", Some(p)))
        };
        Chrome {
            title: title.into(),
            nav,
            sub: Some(self.session.display.clone().unwrap_or_else(|| caller.sub().to_owned())),
            roles: caller.roles().join(", "),
            csrf: self.session.csrf.clone(),
            menu: Menu {
                reports: somewhere(&crate::auth::actions::ReadReports::ACTION),
                subjects: caller.may(&crate::auth::actions::ReadSubjects::ACTION, "", None),
                tokens: caller.may(&crate::auth::actions::IssueTokens::ACTION, "", None),
                policy: caller.may(&crate::auth::actions::ReadPolicy::ACTION, "", None),
            },
        }
    }

    /// The same viewer, guarded for another action `B` as well (a page that
    /// shows what two actions allow).
    pub fn also<B: Guard>(&self, req: &HttpRequest) -> Result<Guarded<B>, ApiError> {
        guard_token::<B>(req, &self.session.token)
    }

    /// 403 (as a page) unless the form's `csrf` is this session's.
    pub fn check_csrf(&self, csrf: &str) -> Result<(), ConsoleError> {
        if session::same_secret(csrf, &self.session.csrf) {
            Ok(())
        } else {
            Err(ConsoleError::Csrf)
        }
    }
}

impl<A: Guard> FromRequest for Viewer<A> {
    type Error = ConsoleError;
    type Future = Ready<Result<Self, ConsoleError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(viewer(req))
    }
}

fn viewer<A: Guard>(req: &HttpRequest) -> Result<Viewer<A>, ConsoleError> {
    let state = req.app_data::<web::Data<AppState>>().ok_or_else(|| ApiError::internal("no application state"))?;
    let sign_in = || ConsoleError::SignIn { next: next_of(req) };
    let id = req.cookie(session::COOKIE).map(|c| c.value().to_owned()).ok_or_else(sign_in)?;
    let session = state.console.sessions.get(&id).ok_or_else(sign_in)?;
    match guard_token::<A>(req, &session.token) {
        Ok(guard) => Ok(Viewer { guard, session }),
        Err(e) if e.status() == StatusCode::UNAUTHORIZED => {
            // Revoked or expired since sign-in: the session ends with it.
            state.console.sessions.end(&id);
            Err(ConsoleError::SignInAgain { next: next_of(req), why: SignedOut::of(e.message()) })
        }
        Err(e) => Err(e.into()),
    }
}

/// Where to come back to after signing in: this request's path and query.
fn next_of(req: &HttpRequest) -> String {
    match req.uri().query() {
        Some(q) => format!("{}?{q}", req.path()),
        None => req.path().to_owned(),
    }
}

/// A `next` that stays in the console: a path under `/ui/`, never another
/// host (`//evil.example`, `/\evil`, `https://...`).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == "/ui" || n.starts_with("/ui/") || n.starts_with("/ui?"))
                && !n.contains("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => "/ui/".to_owned(),
    }
}

/// The parts of the page around its content.
pub struct Chrome {
    pub title: String,
    /// The navigation entry to mark current.
    pub nav: &'static str,
    /// The signed-in subject; `None` on the sign-in and error pages.
    pub sub: Option<String>,
    pub roles: String,
    pub csrf: String,
    pub menu: Menu,
}

/// The navigation entries beyond those every reader has.
#[derive(Default)]
pub struct Menu {
    pub reports: bool,
    pub subjects: bool,
    pub tokens: bool,
    pub policy: bool,
}

impl Chrome {
    /// The chrome of a page seen signed out.
    pub fn signed_out(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            nav: "",
            sub: None,
            roles: String::new(),
            csrf: String::new(),
            menu: Menu::default(),
        }
    }

    /// `aria-current` for the navigation entry `name`.
    pub fn current(&self, name: &str) -> &'static str {
        if self.nav == name {
            "page"
        } else {
            "false"
        }
    }
}

/// Renders `page` as a 200 HTML answer.
pub fn html(page: &impl Template) -> Result<HttpResponse, ConsoleError> {
    html_with(StatusCode::OK, page)
}

/// Renders `page` as an HTML answer with `status`.
pub fn html_with(status: StatusCode, page: &impl Template) -> Result<HttpResponse, ConsoleError> {
    let body = page.render().map_err(|e| ApiError::internal(format!("a console template failed: {e}")))?;
    Ok(HttpResponse::build(status).content_type("text/html; charset=utf-8").body(body))
}

/// A 303 to `to`.
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, to.to_owned())).finish()
}

/// Why a console request failed, answered as a page.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// Not signed in: to the sign-in page, then back.
    #[error("sign in to continue")]
    SignIn { next: String },
    /// The session's token stopped working.
    #[error("{}", why.sentence())]
    SignInAgain { next: String, why: SignedOut },
    /// A form without this session's CSRF token.
    #[error("this form has expired or did not come from this console; reload the page and try again")]
    Csrf,
    /// What the API layer refused, with its status and message.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<crate::store::StoreError> for ConsoleError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Api(e.into())
    }
}

/// The error page.
#[derive(Template)]
#[template(path = "error.html", config = "src/http/console/askama.toml")]
struct ErrorPage {
    chrome: Chrome,
    status: u16,
    heading: &'static str,
    message: String,
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::SignIn { .. } | Self::SignInAgain { .. } => StatusCode::SEE_OTHER,
            Self::Csrf => StatusCode::FORBIDDEN,
            Self::Api(e) => e.status(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::SignIn { next } => {
                let to = format!("/ui/login?next={}", urlencode(next));
                return see_other(&to);
            }
            Self::SignInAgain { next, why } => {
                let to = format!("/ui/login?next={}&why={}", urlencode(next), why.code());
                return see_other(&to);
            }
            _ => {}
        }
        let status = self.status_code();
        let heading = match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::TOO_MANY_REQUESTS => "Too busy",
            s if s.is_server_error() => "Something went wrong on the server",
            _ => "This request cannot be answered",
        };
        let message = match self {
            Self::Api(e) if status == StatusCode::NOT_FOUND => {
                format!("{} — it does not exist, or your access does not reach it.", e.message())
            }
            Self::Api(e) => e.message().to_owned(),
            other => other.to_string(),
        };
        let page = ErrorPage { chrome: Chrome::signed_out(heading), status: status.as_u16(), heading, message };
        match page.render() {
            Ok(body) => HttpResponse::build(status).content_type("text/html; charset=utf-8").body(body),
            Err(_) => HttpResponse::build(status).content_type("text/plain; charset=utf-8").body(heading),
        }
    }
}

/// Why a session ended under its visitor. The sign-in page takes it as a
/// code and says it in its own words, so a crafted link cannot put text of
/// its choosing on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedOut {
    Revoked,
    Expired,
    Invalid,
}

impl SignedOut {
    /// From the authenticator's refusal.
    fn of(message: &str) -> Self {
        if message.contains("revoked") {
            Self::Revoked
        } else if message.to_ascii_lowercase().contains("expired") {
            Self::Expired
        } else {
            Self::Invalid
        }
    }

    /// The code in the sign-in URL.
    pub fn code(self) -> &'static str {
        match self {
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::Invalid => "invalid",
        }
    }

    /// The code of a sign-in URL, if it is one.
    pub fn parse(code: &str) -> Option<Self> {
        [Self::Revoked, Self::Expired, Self::Invalid].into_iter().find(|w| w.code() == code)
    }

    /// What the sign-in page says.
    pub fn sentence(self) -> &'static str {
        match self {
            Self::Revoked => "the token you signed in with has been revoked.",
            Self::Expired => "the token you signed in with has expired.",
            Self::Invalid => "the token you signed in with is no longer accepted.",
        }
    }
}

/// Percent-encodes `text` for a query value.
pub fn urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A form field's value, `None` when left empty.
pub fn given(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// A time typed into a form: RFC 3339 as is, or a plain date, which stands
/// for the start of that day (UTC), or its last second with `end_of_day`.
pub fn day_or_time(s: &str, end_of_day: bool) -> Option<String> {
    let s = given(s)?;
    let is_date = s.len() == 10 && chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d").is_ok();
    Some(if is_date { format!("{s}T{}Z", if end_of_day { "23:59:59" } else { "00:00:00" }) } else { s })
}

/// A stored RFC 3339 time as the console shows it: UTC, ISO 8601, to the second.
pub fn utc(t: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(at) => at.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => t.to_owned(),
    }
}

/// How long ago `t` was, for a person ("3 min ago").
pub fn age(t: &str) -> String {
    let Ok(at) = chrono::DateTime::parse_from_rfc3339(t) else { return String::new() };
    let seconds = (chrono::Utc::now() - at.with_timezone(&chrono::Utc)).num_seconds().max(0);
    match seconds {
        0..=59 => format!("{seconds} s ago"),
        60..=3599 => format!("{} min ago", seconds / 60),
        3600..=172_799 => format!("{} h ago", seconds / 3600),
        _ => format!("{} days ago", seconds / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_never_leaves_the_console() {
        for bad in ["https://evil.example/", "//evil.example/ui/", "/ui//evil", "/\\evil", "/api/v1/head", "/ui/\n"] {
            assert_eq!(safe_next(Some(bad)), "/ui/", "{bad:?}");
        }
        assert_eq!(safe_next(Some("/ui/search?q=x")), "/ui/search?q=x");
        assert_eq!(safe_next(None), "/ui/");
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(utc("2026-12-01T10:00:00+01:00"), "2026-12-01T09:00:00Z");
        assert_eq!(utc("2026-12-01T10:00:00.123456Z"), "2026-12-01T10:00:00Z");
    }
}
