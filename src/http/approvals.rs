//! `/api/v1/approvals`: requesting, listing and deciding approvals.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::auth::{Caller, Guarded};
use super::body::Body;
use super::params::page_size;
use super::{ApiError, AppState};
use crate::auth::actions::{AppendEvents, ReadEvents};
use crate::error_code::ErrorCode;
use crate::governance::approvals::{environment_name, model_version, ApprovalRequest, ApprovalView, DecisionRequest};
use crate::governance::inbox::ApprovalsPage;
use crate::governance::ModelVersionRef;
use crate::ledger::kind::{ApprovalState, Decision};
use crate::store::projections::ApprovalFilter;

/// An approval id as the API describes it (1 to 64 characters).
fn approval_id(id: String) -> Result<String, ApiError> {
    if id.is_empty() || id.len() > 64 {
        return Err(ApiError::new(ErrorCode::InvalidRequest, "an approval id is 1 to 64 characters"));
    }
    Ok(id)
}

/// The project to authorize a request about `model` in: the project of the
/// registered model version, when the caller may read it. A model version
/// that is not registered, or that belongs to a project the caller may not
/// read, is the same 404, so that its existence is not disclosed; only a
/// caller who reads every project learns that it is not registered (`None`).
pub(super) async fn model_scope(state: &AppState, caller: &Caller, model: &str) -> Result<Option<String>, ApiError> {
    let hidden = || ApiError::not_found(format!("{model} is not a registered model version that you may read"));
    match state.governance.model_project(model).await? {
        Some(project) if caller.reads(project.as_deref()) => Ok(project),
        Some(_) => Err(hidden()),
        None if caller.reads(None) => Ok(None),
        None => Err(hidden()),
    }
}

/// `POST /api/v1/approvals`: asks for approval of a model version for an environment.
#[utoipa::path(post, path = "/api/v1/approvals", tag = "governance", request_body = ApprovalRequest,
    responses((status = 201, description = "`approval.requested` recorded", body = ApprovalView)))]
pub async fn request_approval(
    guard: Guarded<AppendEvents>,
    state: web::Data<AppState>,
    Body(request): Body<ApprovalRequest>,
) -> Result<HttpResponse, ApiError> {
    model_version(&request.model)?;
    let project = model_scope(&state, &guard, &request.model).await?;
    guard.require_append(crate::ledger::Kind::ApprovalRequested.as_str(), project.as_deref())?;
    let view = state.governance.request_approval(guard.sub(), request).await?;
    Ok(HttpResponse::Created().json(view))
}

/// `POST /api/v1/approvals/{id}/decision`: grant, reject or revoke.
#[utoipa::path(post, path = "/api/v1/approvals/{id}/decision", tag = "governance",
    params(("id" = String, Path, min_length = 1, max_length = 64, description = "The approval's id")), request_body = DecisionRequest,
    responses((status = 200, description = "The decision is recorded; the approval as it stands now", body = ApprovalView)))]
pub async fn decide(
    guard: Guarded<AppendEvents>,
    state: web::Data<AppState>,
    id: web::Path<String>,
    Body(request): Body<DecisionRequest>,
) -> Result<HttpResponse, ApiError> {
    // An unknown decision is refused by the service, after the checks below.
    let kind = Decision::parse(&request.decision).unwrap_or(Decision::Revoke).kind();
    let id = approval_id(id.into_inner())?;
    let approval = state
        .governance
        .approval(&id)
        .await?
        .filter(|a| guard.reads(a.project.as_deref()))
        .ok_or_else(|| ApiError::not_found(format!("no approval {id}")))?;
    guard.require_append(kind.as_str(), approval.project.as_deref())?;
    let view = state.governance.decide(guard.sub(), guard.roles(), &id, request).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Query of `GET /api/v1/approvals`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ApprovalsQuery {
    /// `pending`, `granted`, `rejected` or `revoked`.
    state: Option<String>,
    #[param(value_type = Option<ModelVersionRef>)]
    model: Option<String>,
    #[param(pattern = r"^[a-z0-9_-]{1,64}$")]
    environment: Option<String>,
    /// The cursor: `next_after_seq` of the previous page.
    after_seq: Option<i64>,
    /// 1 to the configured `max_page_size` (default 1000), default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// `GET /api/v1/approvals?state=pending`: the risk officer's inbox, each
/// approval with the model's evidence beside it.
#[utoipa::path(get, path = "/api/v1/approvals", tag = "governance", params(ApprovalsQuery),
    responses((status = 200, description = "Approvals in request order, each with the model's evidence", body = ApprovalsPage)))]
pub async fn list_approvals(
    guard: Guarded<ReadEvents>,
    state: web::Data<AppState>,
    web::Query(q): web::Query<ApprovalsQuery>,
) -> Result<HttpResponse, ApiError> {
    if let Some(s) = &q.state {
        if ApprovalState::parse(s).is_none() {
            return Err(ApiError::new(ErrorCode::InvalidQuery, "state must be pending, granted, rejected or revoked"));
        }
    }
    if let Some(model) = &q.model {
        model_version(model)?;
    }
    if let Some(environment) = &q.environment {
        environment_name(environment)?;
    }
    let size = page_size(q.limit, &state.limits)?;
    let filter = ApprovalFilter {
        state: q.state,
        model: q.model,
        environment: q.environment,
        after_seq: q.after_seq.unwrap_or(0),
        limit: 0,
    };
    let caller = guard.into_caller();
    let store = state.store.clone();
    let readable = state.blocking(move || caller.readable_projects_in(&mut *store.conn()?)).await??;
    Ok(HttpResponse::Ok().json(state.governance.inbox(filter, size, readable).await?))
}

/// `GET /api/v1/approvals/{id}`.
#[utoipa::path(get, path = "/api/v1/approvals/{id}", tag = "governance",
    params(("id" = String, Path, min_length = 1, max_length = 64, description = "The approval's id")),
    responses((status = 200, description = "The approval and its decisions", body = ApprovalView)))]
pub async fn get_approval(
    guard: Guarded<ReadEvents>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = approval_id(id.into_inner())?;
    match state.governance.approval(&id).await?.filter(|a| guard.allows_in(a.project.as_deref())) {
        Some(view) => Ok(HttpResponse::Ok().json(view)),
        None => Err(ApiError::not_found(format!("no approval {id}"))),
    }
}
