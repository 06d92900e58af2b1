//! `/api/v1/approvals`, `/api/v1/gate`, `/api/v1/deployments`,
//! `/api/v1/lineage`, `/api/v1/impact`, `/api/v1/entities/{ref}`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::auth::Caller;
use super::body::read_json;
use super::{ApiError, AppState};
use crate::governance::approvals::{ApprovalRequest, DecisionRequest, DeploymentRequest};
use crate::governance::lineage::{self, Walk};
use crate::governance::{openlineage, GovernanceError};
use crate::ledger::{timestamp, EventDraft};
use crate::store::projections::{self, ApprovalFilter};
use crate::store::Appended;

impl From<GovernanceError> for ApiError {
    fn from(e: GovernanceError) -> Self {
        match e {
            GovernanceError::Invalid(m) => ApiError::unprocessable("invalid_request", m),
            GovernanceError::NotFound(m) => ApiError::not_found(m),
            GovernanceError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            GovernanceError::Blocked { .. } => ApiError::new(StatusCode::CONFLICT, "deployment_blocked", e.to_string()),
            GovernanceError::Store(e) => e.into(),
            GovernanceError::Append(e) => e.into(),
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: serde_json::Value) -> Result<T, ApiError> {
    serde_json::from_value(body).map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))
}

/// `POST /api/v1/approvals`: asks for approval of a model version for an environment.
pub async fn request_approval(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_json(&req, payload, state.limits.max_body_bytes).await?;
    let request: ApprovalRequest = parse(body)?;
    caller.require("events/approval.requested", "append", request.project.as_deref())?;
    let view = state.governance.request_approval(caller.sub(), request).await?;
    Ok(HttpResponse::Created().json(view))
}

/// `POST /api/v1/approvals/{id}/decision`: grant, reject or revoke.
pub async fn decide(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_json(&req, payload, state.limits.max_body_bytes).await?;
    let request: DecisionRequest = parse(body)?;
    let kind = match request.decision.as_str() {
        "grant" => "approval.granted",
        "reject" => "approval.rejected",
        _ => "approval.revoked",
    };
    let id = id.into_inner();
    let approval =
        state.governance.approval(&id).await?.ok_or_else(|| ApiError::not_found(format!("no approval {id}")))?;
    caller.require(&format!("events/{kind}"), "append", approval.project.as_deref())?;
    let view = state.governance.decide(caller.sub(), caller.roles(), &id, request).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Query of `GET /api/v1/approvals`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsQuery {
    state: Option<String>,
    model: Option<String>,
    environment: Option<String>,
    after_seq: Option<i64>,
    limit: Option<i64>,
}

/// `GET /api/v1/approvals?state=pending`: the risk officer's inbox, each
/// approval with the model's evidence beside it.
pub async fn list_approvals(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ApprovalsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    if let Some(s) = &q.state {
        if !matches!(s.as_str(), "pending" | "granted" | "rejected" | "revoked") {
            return Err(ApiError::unprocessable(
                "invalid_query",
                "state must be pending, granted, rejected or revoked",
            ));
        }
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::unprocessable("invalid_limit", "limit must be between 1 and 1000"));
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
    // The evidence beside each request: the model's current state (evaluations, explanations) and lineage.
    let store = state.store.clone();
    let models: Vec<String> = approvals.iter().map(|a| a.model.clone()).collect();
    let evidence = web::block(move || -> Result<_, crate::store::StoreError> {
        let mut conn = store.conn()?;
        let mut out = serde_json::Map::new();
        for model in models {
            if let Some(view) = lineage::entity(&mut conn, &model, None)? {
                let upstream = lineage::lineage(&mut conn, &model, Walk::Upstream, 10, None, None)?;
                out.insert(model, serde_json::json!({"state": view.current, "upstream": upstream}));
            }
        }
        Ok(out)
    })
    .await??;
    let items: Vec<serde_json::Value> = approvals
        .into_iter()
        .map(|a| {
            let model_evidence = evidence.get(&a.model).cloned().unwrap_or_default();
            let mut v = serde_json::to_value(a).unwrap_or_default();
            v["model_evidence"] = model_evidence;
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({"approvals": items, "next_after_seq": next_after_seq})))
}

/// `GET /api/v1/approvals/{id}`.
pub async fn get_approval(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    match state.governance.approval(&id).await?.filter(|a| caller.may("events", "read", a.project.as_deref())) {
        Some(view) => Ok(HttpResponse::Ok().json(view)),
        None => Err(ApiError::not_found(format!("no approval {id}"))),
    }
}

/// Query of `GET /api/v1/gate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateQuery {
    model: String,
    environment: String,
}

/// `GET /api/v1/gate?model=&environment=`: allow or deny, with reasons and
/// the approval events relied on. Always 200: the decision is the answer.
pub async fn gate(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<GateQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require("events", "read", None)?;
    let q = query.into_inner();
    let decision = state.governance.gate(&q.model, &q.environment).await?;
    Ok(HttpResponse::Ok().json(decision))
}

/// `POST /api/v1/deployments`: records `deployment.requested` when the gate
/// allows (201); otherwise 409 and a `deployment.blocked` event.
pub async fn deploy(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_json(&req, payload, state.limits.max_body_bytes).await?;
    let request: DeploymentRequest = parse(body)?;
    caller.require("events/deployment.requested", "append", request.project.as_deref())?;
    match state.governance.deploy(caller.sub(), request).await {
        Ok(accepted) => {
            let status = if accepted.replayed { StatusCode::OK } else { StatusCode::CREATED };
            Ok(HttpResponse::build(status).json(accepted))
        }
        Err(GovernanceError::Blocked { decision, blocked_seq }) => {
            Ok(HttpResponse::Conflict().json(serde_json::json!({
                "error": "deployment_blocked",
                "message": format!("deployment blocked: {}", decision.reasons.join("; ")),
                "gate": decision,
                "blocked_event_seq": blocked_seq,
            })))
        }
        Err(e) => Err(e.into()),
    }
}

/// Query of `GET /api/v1/lineage`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineageQuery {
    node: String,
    direction: Option<String>,
    depth: Option<u32>,
    as_of: Option<String>,
}

fn readable(state: &AppState, caller: &Caller) -> Result<Option<Vec<String>>, ApiError> {
    Ok(caller.readable_projects_in(&mut *state.store.conn()?)?)
}

/// `GET /api/v1/lineage?node=&direction=&depth=&as_of=`.
pub async fn lineage(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<LineageQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let node = lineage::parse_node(&q.node).map_err(|e| ApiError::unprocessable("invalid_query", e.to_string()))?;
    let walk = Walk::parse(q.direction.as_deref().unwrap_or("both"))
        .ok_or_else(|| ApiError::unprocessable("invalid_query", "direction must be upstream, downstream or both"))?;
    let depth = q.depth.unwrap_or(10);
    let max_depth = state.limits.max_lineage_depth;
    if depth == 0 || depth > max_depth {
        return Err(ApiError::unprocessable("invalid_depth", format!("depth must be between 1 and {max_depth}")));
    }
    let as_of = q
        .as_of
        .map(|t| timestamp::normalize(&t))
        .transpose()
        .map_err(|e| ApiError::unprocessable("invalid_query", format!("as_of: {e}")))?;
    let state2 = state.clone();
    let graph = web::block(move || -> Result<_, ApiError> {
        let projects = readable(&state2, &caller)?;
        let mut conn = state2.store.conn()?;
        let as_of_seq = as_of.map(|t| projections::seq_at(&mut conn, &t)).transpose()?;
        Ok(lineage::lineage(&mut conn, &node, walk, depth, as_of_seq, projects.as_deref())?)
    })
    .await??;
    match graph {
        Some(g) => Ok(HttpResponse::Ok().json(g)),
        None => Err(ApiError::not_found(format!("no entity {} (at that time)", q.node))),
    }
}

/// Query of `GET /api/v1/impact`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpactQuery {
    node: String,
}

/// `GET /api/v1/impact?node=`: model versions and live deployments downstream.
pub async fn impact(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ImpactQuery>,
) -> Result<HttpResponse, ApiError> {
    let node = lineage::parse_node(&query.node).map_err(|e| ApiError::unprocessable("invalid_query", e.to_string()))?;
    let state2 = state.clone();
    let node2 = node.clone();
    let found = web::block(move || -> Result<_, ApiError> {
        let projects = readable(&state2, &caller)?;
        Ok(lineage::impact(&mut *state2.store.conn()?, &node2, projects.as_deref())?)
    })
    .await??;
    found.map(|i| HttpResponse::Ok().json(i)).ok_or_else(|| ApiError::not_found(format!("no entity {node}")))
}

/// `GET /api/v1/entities/{ref}`: current state, live edges and history.
pub async fn entity(
    state: web::Data<AppState>,
    caller: Caller,
    r: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let node = lineage::parse_node(&r).map_err(|e| ApiError::unprocessable("invalid_path", e.to_string()))?;
    let state2 = state.clone();
    let node2 = node.clone();
    let view = web::block(move || -> Result<_, ApiError> {
        let projects = readable(&state2, &caller)?;
        Ok(lineage::entity(&mut *state2.store.conn()?, &node2, projects.as_deref())?)
    })
    .await??;
    let Some(view) = view else { return Err(ApiError::not_found(format!("no entity {node}"))) };
    let history: Result<Vec<_>, _> = view.history.iter().map(crate::ledger::Event::to_json).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "ref": view.entity.ref_,
        "entity_type": view.entity.entity_type,
        "name": view.entity.name,
        "version": view.entity.version,
        "project": view.entity.project,
        "status": view.entity.status,
        "created_seq": view.entity.created_seq,
        "updated_seq": view.entity.updated_seq,
        "state": view.current,
        "upstream": view.upstream,
        "downstream": view.downstream,
        "history": history.map_err(ApiError::internal)?,
    })))
}

/// Query of `POST /api/v1/lineage`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenLineageQuery {
    project: Option<String>,
}

/// `POST /api/v1/lineage`: one OpenLineage event, as the OpenLineage clients
/// send it. 201 when recorded, 200 for a retry of the same event.
pub async fn openlineage(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<OpenLineageQuery>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_json(&req, payload, state.limits.max_body_bytes).await?;
    let request = openlineage::to_event(&body, query.project.as_deref())
        .map_err(|e| ApiError::unprocessable("invalid_openlineage_event", e.to_string()))?;
    let draft = EventDraft::from_request(request)
        .map_err(|e| ApiError::unprocessable("invalid_openlineage_event", e.to_string()))?;
    crate::governance::kinds::validate(&draft)
        .map_err(|e| ApiError::unprocessable("invalid_openlineage_event", e.to_string()))?;
    caller.require(&format!("events/{}", draft.kind), "append", draft.project.as_deref())?;
    let appended = state.store.writer().append(caller.sub().to_owned(), vec![draft]).await?;
    let status = match appended {
        Appended::Created(_) => StatusCode::CREATED,
        Appended::Replayed(_) => StatusCode::OK,
    };
    let event = appended.events().first().ok_or_else(|| ApiError::internal("append returned no event"))?;
    Ok(HttpResponse::build(status).json(event.to_json().map_err(ApiError::internal)?))
}
