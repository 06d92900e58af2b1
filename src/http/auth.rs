//! The one place requests are authenticated and authorized. A handler's
//! first argument is `Guarded<A>`, naming the action of
//! [`crate::auth::actions`] it performs: the extractor verifies the bearer
//! token and, for an action outside any project, decides; for an action on
//! project data, the handler asks [`Guarded::require_in`] once it knows the
//! data's project. casbin decides. Handlers never look at roles or spell an
//! object or action.

use std::future::{ready, Ready};
use std::marker::PhantomData;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};

use super::{ApiError, AppState};
use crate::auth::actions::{self, Action, Guard, Scope};
use crate::auth::{AuthError, Authorizer, Principal};

/// An authenticated caller.
#[derive(Clone)]
pub struct Caller {
    principal: Arc<Principal>,
    authorizer: Authorizer,
    /// Holds one of the token's in-flight places until the request (every
    /// clone of this caller) is done.
    _in_flight: Option<Arc<InFlight>>,
}

/// Requests in progress per token, so that one token cannot occupy every
/// worker and connection (429 above the limit, whatever its rate).
#[derive(Default)]
pub struct InFlightLimiter {
    counts: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

/// One request's place; given back when dropped.
pub struct InFlight {
    limiter: Arc<InFlightLimiter>,
    key: String,
}

impl InFlightLimiter {
    /// A place for `key`, unless it already has `max` requests in progress.
    pub fn enter(self: &Arc<Self>, key: &str, max: u32) -> Option<InFlight> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(key.to_owned()).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(InFlight { limiter: self.clone(), key: key.to_owned() })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut counts = self.limiter.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

impl Caller {
    /// The token's subject: the actor recorded for what this caller appends.
    pub fn sub(&self) -> &str {
        &self.principal.sub
    }

    /// When the caller's token expires (Unix seconds): a console session
    /// ends then too.
    pub fn expires_at(&self) -> u64 {
        self.principal.exp
    }

    /// The projects the caller's token is scoped to (`*` for all).
    pub fn token_projects(&self) -> &[String] {
        &self.principal.projects
    }

    /// The roles the caller's token carries, for domain rules that name
    /// roles (the approver roles of `policies/approvals.toml`).
    pub fn roles(&self) -> &[String] {
        &self.principal.roles
    }

    /// Whether the caller may perform `action` in `project` (`None`:
    /// outside any project); for [`actions::AppendEvents`], on `kind`.
    pub fn may(&self, action: &Action, kind: &str, project: Option<&str>) -> bool {
        self.authorizer.allows(&self.principal, &action.object_for(kind), action.action, project)
    }

    /// 403 unless the caller may perform `action` (on `kind`) in `project`.
    fn require(&self, action: &Action, kind: &str, project: Option<&str>) -> Result<(), ApiError> {
        if self.may(action, kind, project) {
            Ok(())
        } else {
            Err(ApiError::from(AuthError::Forbidden(format!(
                "{} may not {} {}{}",
                self.principal.sub,
                action.action,
                action.object_for(kind),
                project.map(|p| format!(" in project {p}")).unwrap_or_default()
            ))))
        }
    }

    /// Whether the caller may read events (and what is derived from them) in `project`.
    pub fn reads(&self, project: Option<&str>) -> bool {
        self.may(&actions::ReadEvents::ACTION, "", project)
    }

    /// Whether the caller may read personal fields in clear in `project`.
    pub fn reads_personal(&self, project: Option<&str>) -> bool {
        self.may(&actions::ReadPersonal::ACTION, "", project)
    }

    /// [`Caller::readable_projects`], listing the ledger's projects from
    /// `conn` only when the answer depends on them.
    pub fn readable_projects_in(
        &self,
        conn: &mut crate::store::DbConn,
    ) -> Result<Option<Vec<String>>, crate::store::StoreError> {
        let mut failure = None;
        let readable = self.readable_projects(|| match crate::store::events::projects(conn) {
            Ok(projects) => projects,
            Err(e) => {
                failure = Some(e);
                Vec::new()
            }
        });
        failure.map_or(Ok(readable), Err)
    }

    /// The projects whose events the caller may read: `None` for all of them.
    pub fn readable_projects(&self, all_projects: impl FnOnce() -> Vec<String>) -> Option<Vec<String>> {
        self.projects_where(&actions::ReadEvents::ACTION, all_projects)
    }

    /// The projects in which the caller may perform `action`: `None` for all.
    pub fn projects_where(&self, action: &Action, all_projects: impl FnOnce() -> Vec<String>) -> Option<Vec<String>> {
        if self.principal.all_projects() && self.may(action, "", None) {
            return None;
        }
        let candidates: Vec<String> =
            if self.principal.all_projects() { all_projects() } else { self.principal.projects.clone() };
        Some(candidates.into_iter().filter(|p| self.may(action, "", Some(p))).collect())
    }
}

/// A caller authenticated for the action `A` declares. For an action
/// outside any project the extractor has decided; for one on project data
/// the handler calls [`Guarded::require_in`] with the data's project, or
/// filters what it answers with [`Guarded::allows_in`].
pub struct Guarded<A: Guard> {
    caller: Caller,
    action: PhantomData<A>,
}

impl<A: Guard> Guarded<A> {
    /// The authenticated caller.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The caller, to move into blocking work.
    pub fn into_caller(self) -> Caller {
        self.caller
    }

    /// 403 unless the caller may perform `A` in `project`.
    pub fn require_in(&self, project: Option<&str>) -> Result<(), ApiError> {
        self.caller().require(&A::ACTION, "", project)
    }

    /// Whether the caller may perform `A` in `project`.
    pub fn allows_in(&self, project: Option<&str>) -> bool {
        self.caller().may(&A::ACTION, "", project)
    }
}

impl Guarded<actions::AppendEvents> {
    /// 403 unless the caller may append an event of `kind` in `project`.
    pub fn require_append(&self, kind: &str, project: Option<&str>) -> Result<(), ApiError> {
        self.caller().require(&actions::AppendEvents::ACTION, kind, project)
    }
}

impl<A: Guard> std::ops::Deref for Guarded<A> {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        self.caller()
    }
}

fn guard<A: Guard>(req: &HttpRequest) -> Result<Guarded<A>, ApiError> {
    guard_token(req, bearer_token(req)?)
}

/// The decision [`Guarded`]'s extractor makes, for a token from elsewhere
/// than the `Authorization` header: the console's session holds one, and
/// passes it here so that its pages are guarded exactly as the API is.
pub fn guard_token<A: Guard>(req: &HttpRequest, token: &str) -> Result<Guarded<A>, ApiError> {
    let action = A::ACTION;
    let caller = authenticate(req, token)?;
    match action.scope {
        Scope::Ledger => caller.require(&action, "", None)?,
        // Refused at once when no project of a scoped token allows it; the
        // handler decides on the data's project.
        Scope::Data
            if !caller.principal.all_projects()
                && !action.object.contains('{')
                && !caller.principal.projects.iter().any(|p| caller.may(&action, "", Some(p))) =>
        {
            let first = caller.principal.projects.first().map(String::as_str);
            caller.require(&action, "", first)?;
        }
        _ => {}
    }
    Ok(Guarded { caller, action: PhantomData })
}

impl<A: Guard> FromRequest for Guarded<A> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(guard::<A>(req))
    }
}

impl From<AuthError> for ApiError {
    /// Every refusal passes here, so this is where it is counted.
    fn from(e: AuthError) -> Self {
        use crate::metrics::AuthFailure;
        let reason = match &e {
            AuthError::Missing => Some(AuthFailure::MissingToken),
            AuthError::Invalid(_) => Some(AuthFailure::InvalidToken),
            AuthError::Revoked => Some(AuthFailure::Revoked),
            AuthError::Forbidden(_) => Some(AuthFailure::Forbidden),
            AuthError::Key(_) => None,
        };
        if let Some(reason) = reason {
            crate::metrics::get().auth_failed(reason);
        }
        match e {
            AuthError::Forbidden(message) => ApiError::new(crate::error_code::ErrorCode::Forbidden, message),
            AuthError::Key(message) => ApiError::internal(message),
            other => {
                tracing::info!(reason = %other, "authentication failed");
                ApiError::new(crate::error_code::ErrorCode::Unauthenticated, other.to_string())
            }
        }
    }
}

fn bearer_token(req: &HttpRequest) -> Result<&str, ApiError> {
    let value = req.headers().get(header::AUTHORIZATION).ok_or(AuthError::Missing)?;
    let text = value.to_str().map_err(|_| AuthError::Invalid("the Authorization header is not text".into()))?;
    let token = text
        .strip_prefix("Bearer ")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| AuthError::Invalid("expected `Authorization: Bearer <token>`".into()))?;
    Ok(token.trim())
}

fn authenticate(req: &HttpRequest, token: &str) -> Result<Caller, ApiError> {
    let state = req.app_data::<web::Data<AppState>>().ok_or_else(|| ApiError::internal("no application state"))?;
    let principal = state.access.authenticator.authenticate(token)?;
    state.rate_limiter.check(&principal.jti).map_err(ApiError::rate_limited)?;
    let place = state.in_flight.enter(&principal.jti, state.limits.max_in_flight_per_token).ok_or_else(|| {
        ApiError::too_busy(format!(
            "this token already has {} requests in progress; retry when one is answered",
            state.limits.max_in_flight_per_token
        ))
    })?;
    Ok(Caller { principal, authorizer: state.access.authorizer.clone(), _in_flight: Some(Arc::new(place)) })
}
