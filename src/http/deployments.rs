//! `/api/v1/gate` and `/api/v1/deployments`: may this model version go to
//! that environment, and recording that it does.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::approvals::model_scope;
use super::auth::Guarded;
use super::body::Body;
use super::error::ErrorBody;
use super::{ApiError, AppState};
use crate::auth::actions::{AppendEvents, ReadEvents};
use crate::governance::approvals::{model_version, DeploymentAccepted, DeploymentRequest};
use crate::governance::gate::GateDecision;
use crate::governance::{GovernanceError, ModelVersionRef};
use crate::ledger::Kind;

/// Query of `GET /api/v1/gate`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GateQuery {
    #[param(value_type = ModelVersionRef)]
    model: String,
    #[param(pattern = r"^[a-z0-9_-]{1,64}$")]
    environment: String,
}

/// `GET /api/v1/gate?model=&environment=`: allow or deny, with reasons and
/// the approval events relied on. 200 whatever the decision (the decision is
/// the answer), except for an environment the rules do not declare (422).
#[utoipa::path(get, path = "/api/v1/gate", tag = "governance", params(GateQuery),
    responses(
        (status = 200, description = "Allow or deny, with reasons: the decision is the answer", body = GateDecision),
        (status = 422, description = "`invalid_request`: a malformed model or environment; or `unknown_environment`: not declared in policies/approvals.toml, with `gate`, the decision (deny) naming the known ones", body = ErrorBody),
    ))]
pub async fn gate(
    guard: Guarded<ReadEvents>,
    state: web::Data<AppState>,
    web::Query(q): web::Query<GateQuery>,
) -> Result<HttpResponse, ApiError> {
    model_version(&q.model)?;
    // Read access to the model's project, checked in model_scope, is what the gate needs.
    model_scope(&state, &guard, &q.model).await?;
    match state.governance.gate(&q.model, &q.environment).await {
        Ok(decision) => Ok(HttpResponse::Ok().json(decision)),
        Err(GovernanceError::UnknownEnvironment { decision, .. }) => {
            Ok(HttpResponse::UnprocessableEntity().json(DeploymentBlocked {
                error: "unknown_environment",
                message: format!("deny: {}", decision.reasons.join("; ")),
                gate: *decision,
                blocked_event_seq: None,
            }))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /api/v1/deployments`: records `deployment.requested` when the gate
/// allows (201); otherwise 409 and a `deployment.blocked` event.
#[utoipa::path(post, path = "/api/v1/deployments", tag = "governance", request_body = DeploymentRequest,
    responses(
        (status = 201, description = "The gate allowed: `deployment.requested` recorded", body = DeploymentAccepted),
        (status = 200, description = "A retry with the same idempotency key", body = DeploymentAccepted),
        (status = 409, description = "`deployment_blocked`: the gate denied; `deployment.blocked` is on the record", body = DeploymentBlocked),
        (status = 422, description = "`invalid_request`; or `unknown_environment`: not declared in policies/approvals.toml, with `gate` and `blocked_event_seq`: `deployment.blocked` is on the record", body = ErrorBody),
    ))]
pub async fn deploy(
    guard: Guarded<AppendEvents>,
    state: web::Data<AppState>,
    Body(request): Body<DeploymentRequest>,
) -> Result<HttpResponse, ApiError> {
    model_version(&request.model)?;
    let project = match model_scope(&state, &guard, &request.model).await {
        Ok(project) => project,
        // An unregistered model: the gate denies it, on the request's project.
        Err(_) if guard.reads(request.project.as_deref()) => request.project.clone(),
        Err(e) => return Err(e),
    };
    guard.require_append(Kind::DeploymentRequested.as_str(), project.as_deref())?;
    match state.governance.deploy(guard.sub(), request).await {
        Ok(accepted) => {
            let status = if accepted.replayed { StatusCode::OK } else { StatusCode::CREATED };
            Ok(HttpResponse::build(status).json(accepted))
        }
        Err(GovernanceError::Blocked { decision, blocked_seq }) => {
            Ok(HttpResponse::Conflict().json(DeploymentBlocked {
                error: "deployment_blocked",
                message: format!("deployment blocked: {}", decision.reasons.join("; ")),
                gate: *decision,
                blocked_event_seq: Some(blocked_seq),
            }))
        }
        Err(GovernanceError::UnknownEnvironment { decision, blocked_seq }) => Ok(HttpResponse::UnprocessableEntity()
            .json(DeploymentBlocked {
                error: "unknown_environment",
                message: format!("deployment blocked: {}", decision.reasons.join("; ")),
                gate: *decision,
                blocked_event_seq: blocked_seq,
            })),
        Err(e) => Err(e.into()),
    }
}

/// The error answer of a deployment the gate denied (or of a gate question
/// about an undeclared environment), with the decision.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct DeploymentBlocked {
    /// `deployment_blocked`, or `unknown_environment` for an environment
    /// that `policies/approvals.toml` does not declare.
    error: &'static str,
    message: String,
    gate: GateDecision,
    /// The `deployment.blocked` event recorded for the refusal (absent for
    /// the gate, which records nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    blocked_event_seq: Option<u64>,
}
