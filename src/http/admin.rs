//! `/api/v1/tokens` and `/api/v1/policies`: access administration.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::auth::Guarded;
use super::body::{Body, OptionalBody};
use super::{ApiError, AppState};
use crate::auth::access::{parse_ttl, AccessError, ALL_PROJECTS, DEFAULT_TOKEN_TTL};
use crate::auth::access::{IssuedToken, TokenRecord};
use crate::auth::actions::{IssueTokens, ReadPolicy, RevokeTokens, WritePolicy};
use crate::auth::PolicyError;

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Invalid(message) => ApiError::new(crate::error_code::ErrorCode::InvalidRequest, message),
            AccessError::UnknownToken(_) => ApiError::not_found(e.to_string()),
            AccessError::Internal(cause) => ApiError::internal(cause),
            AccessError::Policy(PolicyError::Invalid { line, reason }) => {
                ApiError::new(crate::error_code::ErrorCode::InvalidPolicy, format!("line {line}: {reason}"))
            }
            AccessError::Append(e) => e.into(),
            AccessError::Store(e) => e.into(),
            AccessError::Auth(e) => e.into(),
            AccessError::Policy(e) => ApiError::internal(e),
            AccessError::IdentityMap(e) => ApiError::new(
                crate::error_code::ErrorCode::InvalidIdentityMap,
                e.to_string().trim_start_matches("identity map: ").to_owned(),
            ),
        }
    }
}

/// Body of `POST /api/v1/tokens`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The identity recorded as `actor` for what the token appends.
    sub: String,
    /// Roles of policies/policy.csv (`admin`, `auditor`, `ci`, ...).
    roles: Vec<String>,
    /// Projects the roles apply in; `*` for all (the default, as for
    /// `govledger token issue`). A project the ledger does not know yet
    /// needs `new_project`.
    #[serde(default)]
    projects: Option<Vec<String>>,
    /// `90d`, `12h`, `30m` or seconds; default 90 days.
    #[serde(default)]
    ttl: Option<String>,
    /// The named projects are meant to be new (no events or tokens yet).
    #[serde(default)]
    new_project: bool,
}

/// `POST /api/v1/tokens` (admin): mints a token; `token.issued` goes on the record.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "admin", request_body = TokenRequest,
    responses((status = 201, description = "The token; `token.issued` is on the record (without the token itself)", body = IssuedToken)))]
pub async fn issue_token(
    guard: Guarded<IssueTokens>,
    state: web::Data<AppState>,
    Body(request): Body<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let ttl = parse_ttl(request.ttl.as_deref().unwrap_or(DEFAULT_TOKEN_TTL))
        .map_err(|e| ApiError::new(crate::error_code::ErrorCode::InvalidRequest, e))?;
    let projects = request.projects.unwrap_or_else(|| vec![ALL_PROJECTS.to_owned()]);
    let issued = state
        .access
        .issue_token(&state.store, guard.sub(), &request.sub, &request.roles, &projects, ttl, request.new_project)
        .await?;
    Ok(HttpResponse::Created().json(issued))
}

/// `GET /api/v1/tokens` (admin): every token issued, read from the ledger's
/// `token.issued` and `token.revoked` events (never the tokens themselves).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "admin",
    responses((status = 200, description = "Issued tokens, oldest first, with their revoked and expired state", body = TokenList)))]
pub async fn list_tokens(_: Guarded<IssueTokens>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let tokens = state.access.tokens(&state.store).await?;
    Ok(HttpResponse::Ok().json(TokenList { tokens }))
}

/// The answer of `GET /api/v1/tokens`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct TokenList {
    tokens: Vec<TokenRecord>,
}

/// Body of `POST /api/v1/tokens/{jti}/revoke`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /api/v1/tokens/{jti}/revoke` (admin): `token.revoked` goes on the record.
#[utoipa::path(post, path = "/api/v1/tokens/{jti}/revoke", tag = "admin",
    params(("jti" = String, Path, min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9-]+$", description = "The token's id")),
    request_body(content = Option<RevokeRequest>, description = "Optional"),
    responses((status = 200, description = "Revoked; `token.revoked` is on the record", body = Revoked)))]
pub async fn revoke_token(
    guard: Guarded<RevokeTokens>,
    state: web::Data<AppState>,
    jti: web::Path<String>,
    OptionalBody(request): OptionalBody<RevokeRequest>,
) -> Result<HttpResponse, ApiError> {
    let jti = jti.into_inner();
    if jti.is_empty() || jti.len() > 128 || !jti.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(ApiError::new(crate::error_code::ErrorCode::InvalidRequest, "jti must be letters, digits and `-`"));
    }
    state.access.revoke_token(&state.store, guard.sub(), &jti, request.reason.as_deref()).await?;
    Ok(HttpResponse::Ok().json(Revoked { jti, revoked: true }))
}

/// The answer to a revocation.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Revoked {
    jti: String,
    /// `true`.
    revoked: bool,
}

/// `GET /api/v1/policies`: the policy in force, as casbin CSV text.
#[utoipa::path(get, path = "/api/v1/policies", tag = "admin",
    responses((status = 200, description = "The casbin policy in force", content_type = "text/csv", body = String)))]
pub async fn get_policy(_: Guarded<ReadPolicy>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().content_type("text/csv; charset=utf-8").body(state.access.authorizer.rules().text))
}

/// `PUT /api/v1/policies` (admin): replaces the policy, atomically, with
/// `policy.changed` on the record. Body: casbin CSV text (`text/csv` or
/// `text/plain`).
#[utoipa::path(put, path = "/api/v1/policies", tag = "admin",
    request_body(content = String, description = "casbin policy CSV", content_type = "text/csv"),
    responses((status = 200, description = "In force; `policy.changed` is on the record", content_type = "text/csv", body = String)))]
pub async fn put_policy(
    guard: Guarded<WritePolicy>,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let text = super::body::read_text(&req, payload, state.limits.max_body_bytes, "the policy").await?;
    state.access.set_policy(&state.store, guard.sub(), &text).await?;
    Ok(HttpResponse::Ok().content_type("text/csv; charset=utf-8").body(text))
}

/// `GET /api/v1/identity-map`: the identity map in force, as TOML text.
#[utoipa::path(get, path = "/api/v1/identity-map", tag = "admin",
    responses((status = 200, description = "The identity map in force (docs/OIDC.md)", content_type = "application/toml", body = String)))]
pub async fn get_identity_map(_: Guarded<ReadPolicy>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok()
        .content_type("application/toml; charset=utf-8")
        .body(state.access.identity().text().to_owned()))
}

/// `PUT /api/v1/identity-map` (admin): replaces the identity map, with
/// `identity.changed` on the record first. Body: TOML text.
#[utoipa::path(put, path = "/api/v1/identity-map", tag = "admin",
    request_body(content = String, description = "the identity map (TOML text)", content_type = "text/plain"),
    responses((status = 200, description = "In force; `identity.changed` is on the record", content_type = "application/toml", body = String)))]
pub async fn put_identity_map(
    guard: Guarded<WritePolicy>,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let text = super::body::read_text(&req, payload, state.limits.max_body_bytes, "the identity map").await?;
    if text.trim().is_empty() {
        // Most likely a body lost on the way; a map meant to grant nothing
        // says so with a comment.
        return Err(ApiError::new(
            crate::error_code::ErrorCode::InvalidIdentityMap,
            "the body is empty: send the whole identity map (TOML); to grant nothing, send a comment saying so",
        ));
    }
    let map = state.access.set_identity_map(&state.store, guard.sub(), &text).await?;
    Ok(HttpResponse::Ok().content_type("application/toml; charset=utf-8").body(map.text().to_owned()))
}
