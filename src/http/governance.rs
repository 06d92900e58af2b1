//! `/api/v1/approvals`, `/api/v1/gate`, `/api/v1/deployments`,
//! `/api/v1/lineage`, `/api/v1/impact`, `/api/v1/entities/{ref}`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::auth::Caller;
use super::body::Body;
use super::error::ErrorBody;
use super::{ApiError, AppState};
use crate::governance::approvals::{
    environment_name, model_version, ApprovalRequest, ApprovalView, DecisionRequest, DeploymentAccepted,
    DeploymentRequest,
};
use crate::governance::gate::GateDecision;
use crate::governance::lineage::{self, Walk};
use crate::governance::lineage::{Edge, Graph, Impact};
use crate::governance::{openlineage, GovernanceError, ModelVersionRef};
use crate::ledger::event::EventJson;
use crate::ledger::{timestamp, EntityRef, EventDraft};
use crate::store::projections::{self, ApprovalFilter};
use crate::store::Appended;

impl From<GovernanceError> for ApiError {
    fn from(e: GovernanceError) -> Self {
        match e {
            GovernanceError::Invalid(m) => ApiError::new(crate::error_code::ErrorCode::InvalidRequest, m),
            GovernanceError::NotFound(m) => ApiError::not_found(m),
            GovernanceError::Forbidden(m) => ApiError::new(crate::error_code::ErrorCode::Forbidden, m),
            GovernanceError::ProjectMismatch(m) => ApiError::new(crate::error_code::ErrorCode::ProjectMismatch, m),
            GovernanceError::Blocked { .. } => {
                ApiError::new(crate::error_code::ErrorCode::DeploymentBlocked, e.to_string())
            }
            GovernanceError::UnknownEnvironment { .. } => {
                ApiError::new(crate::error_code::ErrorCode::UnknownEnvironment, e.to_string())
            }
            GovernanceError::Internal(cause) => ApiError::internal(cause),
            GovernanceError::Store(e) => e.into(),
            GovernanceError::Append(e) => e.into(),
        }
    }
}

/// An approval id as the API describes it (1 to 64 characters).
fn approval_id(id: String) -> Result<String, ApiError> {
    if id.is_empty() || id.len() > 64 {
        return Err(ApiError::new(
            crate::error_code::ErrorCode::InvalidRequest,
            "an approval id is 1 to 64 characters",
        ));
    }
    Ok(id)
}

/// `POST /api/v1/approvals`: asks for approval of a model version for an environment.
#[utoipa::path(post, path = "/api/v1/approvals", tag = "governance", request_body = ApprovalRequest,
    responses(
        (status = 201, description = "`approval.requested` recorded", body = ApprovalView),
        (status = 404, description = "The model version is not on the record", body = ErrorBody),
        (status = 409, description = "Refused by the record's state (e.g. a pending request exists)", body = ErrorBody),
        (status = 422, description = "`invalid_request`: a malformed model, environment or evidence reference", body = ErrorBody),
    ))]
pub async fn request_approval(
    state: web::Data<AppState>,
    caller: Caller,
    Body(request): Body<ApprovalRequest>,
) -> Result<HttpResponse, ApiError> {
    model_version(&request.model)?;
    let project = model_scope(&state, &caller, &request.model).await?;
    caller.require("events/approval.requested", "append", project.as_deref())?;
    let view = state.governance.request_approval(caller.sub(), request).await?;
    Ok(HttpResponse::Created().json(view))
}

/// `POST /api/v1/approvals/{id}/decision`: grant, reject or revoke.
#[utoipa::path(post, path = "/api/v1/approvals/{id}/decision", tag = "governance",
    params(("id" = String, Path, min_length = 1, max_length = 64, description = "The approval's id")), request_body = DecisionRequest,
    responses(
        (status = 200, description = "The decision is recorded", body = ApprovalView),
        (status = 403, description = "`separation_of_duties`, `not_an_approver` or `forbidden`", body = ErrorBody),
        (status = 404, description = "No such approval", body = ErrorBody),
        (status = 409, description = "`already_decided` or another state conflict", body = ErrorBody),
        (status = 422, description = "`invalid_request`: decision not grant, reject or revoke, or no reason", body = ErrorBody),
    ))]
pub async fn decide(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    Body(request): Body<DecisionRequest>,
) -> Result<HttpResponse, ApiError> {
    let kind = crate::ledger::kind::Decision::parse(&request.decision)
        .map_or(crate::ledger::Kind::ApprovalRevoked, |d| d.kind());
    let id = approval_id(id.into_inner())?;
    let approval = state
        .governance
        .approval(&id)
        .await?
        .filter(|a| caller.may("events", "read", a.project.as_deref()))
        .ok_or_else(|| ApiError::not_found(format!("no approval {id}")))?;
    caller.require(&format!("events/{kind}"), "append", approval.project.as_deref())?;
    let view = state.governance.decide(caller.sub(), caller.roles(), &id, request).await?;
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
    /// 1 to 1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// `GET /api/v1/approvals?state=pending`: the risk officer's inbox, each
/// approval with the model's evidence beside it.
#[utoipa::path(get, path = "/api/v1/approvals", tag = "governance", params(ApprovalsQuery),
    responses(
        (status = 200, description = "Approvals in request order, each with the model's evidence", body = ApprovalsPage),
        (status = 422, description = "`invalid_query` or `invalid_limit`", body = ErrorBody),
    ))]
pub async fn list_approvals(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ApprovalsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    if let Some(s) = &q.state {
        if !matches!(s.as_str(), "pending" | "granted" | "rejected" | "revoked") {
            return Err(ApiError::new(
                crate::error_code::ErrorCode::InvalidQuery,
                "state must be pending, granted, rejected or revoked",
            ));
        }
    }
    if let Some(model) = &q.model {
        model_version(model)?;
    }
    if let Some(environment) = &q.environment {
        environment_name(environment)?;
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(crate::error_code::ErrorCode::InvalidLimit, "limit must be between 1 and 1000"));
    }
    let filter = ApprovalFilter {
        state: q.state,
        model: q.model,
        environment: q.environment,
        after_seq: q.after_seq.unwrap_or(0),
        limit: limit + 1,
    };
    let mut approvals = state.governance.approvals(filter).await?;
    let more = approvals.len() > usize::try_from(limit).unwrap_or(0);
    approvals.truncate(usize::try_from(limit).unwrap_or(0));
    let next_after_seq = if more { approvals.last().map(|a| a.requested_seq) } else { None };
    let approvals: Vec<_> =
        approvals.into_iter().filter(|a| caller.may("events", "read", a.project.as_deref())).collect();
    // The evidence beside each request: the model's current state
    // (evaluations, explanations) and lineage, as far as the caller may read.
    let store = state.store.clone();
    let models: Vec<String> = approvals.iter().map(|a| a.model.clone()).collect();
    let reader = caller.clone();
    let evidence = state
        .blocking(move || -> Result<_, ApiError> {
            let mut conn = store.conn()?;
            let projects = reader.readable_projects_in(&mut conn)?;
            let mut out = std::collections::HashMap::new();
            for model in models {
                if let Some(view) = lineage::entity(&mut conn, &model, projects.as_deref())? {
                    let upstream = lineage::lineage(
                        &mut conn,
                        &model,
                        Walk::Upstream,
                        10,
                        None,
                        projects.as_deref(),
                        lineage::DEFAULT_NODES,
                    )?;
                    out.insert(model, ModelEvidence { state: view.current, upstream });
                }
            }
            Ok(out)
        })
        .await??;
    let approvals = approvals
        .into_iter()
        .map(|approval| ApprovalWithEvidence { model_evidence: evidence.get(&approval.model).cloned(), approval })
        .collect();
    Ok(HttpResponse::Ok().json(ApprovalsPage { approvals, next_after_seq }))
}

/// A page of the approval inbox; `next_after_seq` is `null` on the last page.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ApprovalsPage {
    approvals: Vec<ApprovalWithEvidence>,
    next_after_seq: Option<i64>,
}

/// An approval with the evidence a risk officer decides on.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ApprovalWithEvidence {
    #[serde(flatten)]
    approval: ApprovalView,
    /// `null` when the model version is not on the record.
    model_evidence: Option<ModelEvidence>,
}

/// The model version's current state and upstream lineage.
#[derive(Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ModelEvidence {
    /// For each event kind about the model, the seq of the latest one.
    #[schema(value_type = Object)]
    state: serde_json::Value,
    upstream: Option<Graph>,
}

/// `GET /api/v1/approvals/{id}`.
#[utoipa::path(get, path = "/api/v1/approvals/{id}", tag = "governance",
    params(("id" = String, Path, min_length = 1, max_length = 64, description = "The approval's id")),
    responses(
        (status = 200, description = "The approval and its decisions", body = ApprovalView),
        (status = 404, description = "No such approval, or one the caller may not read", body = ErrorBody),
        (status = 422, description = "`invalid_request`: an approval id longer than 64 characters", body = ErrorBody),
    ))]
pub async fn get_approval(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = approval_id(id.into_inner())?;
    match state.governance.approval(&id).await?.filter(|a| caller.may("events", "read", a.project.as_deref())) {
        Some(view) => Ok(HttpResponse::Ok().json(view)),
        None => Err(ApiError::not_found(format!("no approval {id}"))),
    }
}

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
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<GateQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    model_version(&q.model)?;
    // Read access to the model's project, checked in model_scope, is what the gate needs.
    model_scope(&state, &caller, &q.model).await?;
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
    state: web::Data<AppState>,
    caller: Caller,
    Body(request): Body<DeploymentRequest>,
) -> Result<HttpResponse, ApiError> {
    model_version(&request.model)?;
    let project = match model_scope(&state, &caller, &request.model).await {
        Ok(project) => project,
        // An unregistered model: the gate denies it, on the request's project.
        Err(_) if caller.may("events", "read", request.project.as_deref()) => request.project.clone(),
        Err(e) => return Err(e),
    };
    caller.require("events/deployment.requested", "append", project.as_deref())?;
    match state.governance.deploy(caller.sub(), request).await {
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

/// Query of `GET /api/v1/lineage`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LineageQuery {
    #[param(value_type = EntityRef)]
    node: String,
    /// `upstream`, `downstream` or `both` (default).
    #[param(pattern = "^(upstream|downstream|both)$")]
    direction: Option<String>,
    /// 1 to the configured maximum (default 50), default 10.
    #[param(minimum = 1, maximum = 50)]
    depth: Option<u32>,
    /// RFC 3339: the graph as it stood then.
    as_of: Option<String>,
    /// Most nodes in the answer, 1 to 5000 (default 500); a larger graph is
    /// cut and says so (`truncated`, `omitted_nodes`).
    #[param(minimum = 1, maximum = 5000)]
    limit: Option<usize>,
}

/// The project to authorize a request about `model` in: the project of the
/// registered model version, when the caller may read it. A model version
/// that is not registered, or that belongs to a project the caller may not
/// read, is the same 404, so that its existence is not disclosed; only a
/// caller who reads every project learns that it is not registered (`None`).
async fn model_scope(state: &AppState, caller: &Caller, model: &str) -> Result<Option<String>, ApiError> {
    let hidden = || ApiError::not_found(format!("{model} is not a registered model version that you may read"));
    match state.governance.model_project(model).await? {
        Some(project) if caller.may("events", "read", project.as_deref()) => Ok(project),
        Some(_) => Err(hidden()),
        None if caller.may("events", "read", None) => Ok(None),
        None => Err(hidden()),
    }
}

fn readable(state: &AppState, caller: &Caller) -> Result<Option<Vec<String>>, ApiError> {
    Ok(caller.readable_projects_in(&mut *state.store.conn()?)?)
}

/// `GET /api/v1/lineage?node=&direction=&depth=&as_of=`.
#[utoipa::path(get, path = "/api/v1/lineage", tag = "governance", params(LineageQuery),
    responses(
        (status = 200, description = "The lineage graph around the node", body = Graph),
        (status = 404, description = "No such entity (at that time), or one the caller may not read", body = ErrorBody),
        (status = 422, description = "`invalid_query` or `invalid_depth`", body = ErrorBody),
    ))]
pub async fn lineage(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<LineageQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let node = lineage::parse_node(&q.node)
        .map_err(|e| ApiError::new(crate::error_code::ErrorCode::InvalidQuery, e.to_string()))?;
    let walk = Walk::parse(q.direction.as_deref().unwrap_or("both")).ok_or_else(|| {
        ApiError::new(crate::error_code::ErrorCode::InvalidQuery, "direction must be upstream, downstream or both")
    })?;
    let limit = node_limit(q.limit)?;
    let depth = q.depth.unwrap_or(10);
    let max_depth = state.limits.max_lineage_depth;
    if depth == 0 || depth > max_depth {
        return Err(ApiError::new(
            crate::error_code::ErrorCode::InvalidDepth,
            format!("depth must be between 1 and {max_depth}"),
        ));
    }
    let as_of = q
        .as_of
        .map(|t| timestamp::normalize(&t))
        .transpose()
        .map_err(|e| ApiError::new(crate::error_code::ErrorCode::InvalidQuery, format!("as_of: {e}")))?;
    let state2 = state.clone();
    let graph = state
        .blocking(move || -> Result<_, ApiError> {
            let projects = readable(&state2, &caller)?;
            let mut conn = state2.store.conn()?;
            let as_of_seq = as_of.map(|t| projections::seq_at(&mut conn, &t)).transpose()?;
            Ok(lineage::lineage(&mut conn, &node, walk, depth, as_of_seq, projects.as_deref(), limit)?)
        })
        .await??;
    match graph {
        Some(g) => Ok(HttpResponse::Ok().json(g)),
        None => Err(ApiError::not_found(format!("no entity {} (at that time)", q.node))),
    }
}

/// Query of `GET /api/v1/impact`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImpactQuery {
    #[param(value_type = EntityRef)]
    node: String,
    /// Most nodes to walk, 1 to 5000 (default 500).
    #[param(minimum = 1, maximum = 5000)]
    limit: Option<usize>,
}

/// A lineage or impact `limit`: default 500, at most 5,000.
fn node_limit(asked: Option<usize>) -> Result<usize, ApiError> {
    match asked.unwrap_or(lineage::DEFAULT_NODES) {
        n @ 1..=lineage::MAX_NODES => Ok(n),
        _ => Err(ApiError::new(
            crate::error_code::ErrorCode::InvalidLimit,
            format!("limit must be between 1 and {} nodes", lineage::MAX_NODES),
        )),
    }
}

/// `GET /api/v1/impact?node=`: model versions and live deployments downstream.
#[utoipa::path(get, path = "/api/v1/impact", tag = "governance", params(ImpactQuery),
    responses(
        (status = 200, description = "Model versions and live deployments downstream", body = Impact),
        (status = 404, description = "No such entity", body = ErrorBody),
        (status = 422, description = "`invalid_query`", body = ErrorBody),
    ))]
pub async fn impact(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ImpactQuery>,
) -> Result<HttpResponse, ApiError> {
    let node = lineage::parse_node(&query.node)
        .map_err(|e| ApiError::new(crate::error_code::ErrorCode::InvalidQuery, e.to_string()))?;
    let limit = node_limit(query.limit)?;
    let state2 = state.clone();
    let node2 = node.clone();
    let found = state
        .blocking(move || -> Result<_, ApiError> {
            let projects = readable(&state2, &caller)?;
            Ok(lineage::impact(&mut *state2.store.conn()?, &node2, projects.as_deref(), limit)?)
        })
        .await??;
    found.map(|i| HttpResponse::Ok().json(i)).ok_or_else(|| ApiError::not_found(format!("no entity {node}")))
}

/// `GET /api/v1/entities/{ref}`: current state, live edges and history.
#[utoipa::path(get, path = "/api/v1/entities/{ref}", tag = "governance",
    params(("ref" = EntityRef, Path, description = "`type:name@version`, or `type:name` for its latest version")),
    responses(
        (status = 200, description = "The entity: current state, live edges and history", body = EntityAnswer),
        (status = 404, description = "No such entity, or one the caller may not read", body = ErrorBody),
        (status = 422, description = "`invalid_path`: not an entity reference", body = ErrorBody),
    ))]
pub async fn entity(
    state: web::Data<AppState>,
    caller: Caller,
    r: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let node =
        lineage::parse_node(&r).map_err(|e| ApiError::new(crate::error_code::ErrorCode::InvalidPath, e.to_string()))?;
    let state2 = state.clone();
    let node2 = node.clone();
    let view = state
        .blocking(move || -> Result<_, ApiError> {
            let projects = readable(&state2, &caller)?;
            Ok(lineage::entity(&mut *state2.store.conn()?, &node2, projects.as_deref())?)
        })
        .await??;
    let Some(view) = view else { return Err(ApiError::not_found(format!("no entity {node}"))) };
    let history: Result<Vec<_>, _> = view.history.iter().map(crate::ledger::Event::to_json).collect();
    let entity = view.entity;
    Ok(HttpResponse::Ok().json(EntityAnswer {
        ref_: entity.ref_,
        entity_type: entity.entity_type,
        name: entity.name,
        version: entity.version,
        project: entity.project,
        status: entity.status,
        created_seq: entity.created_seq,
        updated_seq: entity.updated_seq,
        state: view.current,
        upstream: view.upstream,
        downstream: view.downstream,
        edges_truncated: view.edges_truncated,
        history: history.map_err(ApiError::internal)?,
    }))
}

/// An entity: its current state, live edges and history.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct EntityAnswer<'a> {
    #[serde(rename = "ref")]
    ref_: String,
    entity_type: String,
    name: String,
    version: Option<String>,
    project: Option<String>,
    status: String,
    created_seq: i64,
    updated_seq: i64,
    /// For each event kind about the entity, the seq of the latest one
    /// (deployments add `live_model`).
    #[schema(value_type = Object)]
    state: serde_json::Value,
    /// Live edges into and out of it, at most 1000 each way.
    upstream: Vec<Edge>,
    downstream: Vec<Edge>,
    /// More edges exist than are listed: walk them with `/api/v1/lineage`.
    edges_truncated: bool,
    /// Events about it, oldest first (at most 1000).
    history: Vec<EventJson<'a>>,
}

/// Query of `POST /api/v1/lineage`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OpenLineageQuery {
    /// The project to record the event in.
    project: Option<String>,
}

/// `POST /api/v1/lineage`: one OpenLineage event, as the OpenLineage clients
/// send it. 201 when recorded, 200 for a retry of the same event.
#[utoipa::path(post, path = "/api/v1/lineage", tag = "governance", params(OpenLineageQuery),
    request_body(content = Object, description = "An OpenLineage RunEvent, DatasetEvent or JobEvent (spec 2-0-2)"),
    responses(
        (status = 201, description = "Recorded as a ledger event", body = EventJson),
        (status = 200, description = "A retry of the same run event", body = EventJson),
        (status = 422, description = "`invalid_openlineage_event`", body = ErrorBody),
    ))]
pub async fn openlineage(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<OpenLineageQuery>,
    Body(body): Body<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let request = openlineage::to_event(&body, query.project.as_deref())
        .map_err(|e| ApiError::new(crate::error_code::ErrorCode::InvalidOpenlineageEvent, e.to_string()))?;
    let draft = EventDraft::from_request(request)
        .map_err(|e| ApiError::new(crate::error_code::ErrorCode::InvalidOpenlineageEvent, e.to_string()))?;
    crate::governance::kinds::validate(&draft)
        .map_err(|e| ApiError::new(crate::error_code::ErrorCode::InvalidOpenlineageEvent, e.to_string()))?;
    caller.require(&format!("events/{}", draft.kind), "append", draft.project.as_deref())?;
    let appended = state.store.writer().append(caller.sub().to_owned(), vec![draft]).await?;
    let mut response = match appended {
        Appended::Created(_) => HttpResponse::Created(),
        Appended::Replayed(_) => {
            let mut ok = HttpResponse::Ok();
            ok.insert_header(("Idempotent-Replayed", "true"));
            ok
        }
    };
    let event = appended.events().first().ok_or_else(|| ApiError::internal("append returned no event"))?;
    Ok(response.json(event.to_json().map_err(ApiError::internal)?))
}
