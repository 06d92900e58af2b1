//! `/api/v1/lineage`, `/api/v1/impact`, `/api/v1/entities/{ref}`: the
//! lineage graph, what depends on a node, and one entity; and OpenLineage
//! intake on `POST /api/v1/lineage`.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::auth::{Caller, Guarded};
use super::body::Body;
use super::{ApiError, AppState};
use crate::auth::actions::{AppendEvents, ReadEvents};
use crate::error_code::ErrorCode;
use crate::governance::lineage::{self, Edge, EntityView, Graph, Impact, Walk};
use crate::governance::openlineage;
use crate::ledger::event::EventJson;
use crate::ledger::{timestamp, EntityRef};
use crate::store::projections;
use crate::store::Appended;

/// Query of `GET /api/v1/lineage`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LineageQuery {
    #[param(value_type = EntityRef)]
    pub node: String,
    /// `upstream`, `downstream` or `both` (default).
    #[param(pattern = "^(upstream|downstream|both)$")]
    pub direction: Option<String>,
    /// 1 to the configured maximum (default 50), default 10.
    #[param(minimum = 1, maximum = 50)]
    pub depth: Option<u32>,
    /// RFC 3339: the graph as it stood then.
    pub as_of: Option<String>,
    /// Most nodes in the answer, 1 to 5000 (default 500); a larger graph is
    /// cut and says so (`truncated`, `omitted_nodes`).
    #[param(minimum = 1, maximum = 5000)]
    pub limit: Option<usize>,
}

fn readable(state: &AppState, caller: &Caller) -> Result<Option<Vec<String>>, ApiError> {
    Ok(caller.readable_projects_in(&mut *state.store.conn()?)?)
}

/// `GET /api/v1/lineage?node=&direction=&depth=&as_of=`.
#[utoipa::path(get, path = "/api/v1/lineage", tag = "governance", params(LineageQuery),
    responses((status = 200, description = "The lineage graph around the node", body = Graph)))]
pub async fn lineage(
    guard: Guarded<ReadEvents>,
    state: web::Data<AppState>,
    web::Query(q): web::Query<LineageQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(graph(&state, guard.into_caller(), q).await?))
}

/// The lineage graph `q` asks for, of what `caller` may read: the one path
/// of the API and the console.
pub async fn graph(state: &web::Data<AppState>, caller: Caller, q: LineageQuery) -> Result<Graph, ApiError> {
    let node = EntityRef::parse(&q.node).map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.to_string()))?;
    let walk = Walk::parse(q.direction.as_deref().unwrap_or("both"))
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidQuery, "direction must be upstream, downstream or both"))?;
    let limit = node_limit(q.limit)?;
    let depth = q.depth.unwrap_or(10);
    let max_depth = state.limits.max_lineage_depth;
    if depth == 0 || depth > max_depth {
        return Err(ApiError::new(ErrorCode::InvalidDepth, format!("depth must be between 1 and {max_depth}")));
    }
    let as_of = q
        .as_of
        .map(|t| timestamp::normalize(&t))
        .transpose()
        .map_err(|e| ApiError::new(ErrorCode::InvalidQuery, format!("as_of: {e}")))?;
    let state2 = state.clone();
    let graph = state
        .blocking(move || -> Result<_, ApiError> {
            let projects = readable(&state2, &caller)?;
            let mut conn = state2.store.conn()?;
            let as_of_seq = as_of.map(|t| projections::seq_at(&mut conn, &t)).transpose()?;
            let node = node.to_string();
            Ok(lineage::lineage(&mut conn, &node, walk, depth, as_of_seq, projects.as_deref(), limit)?)
        })
        .await??;
    graph.ok_or_else(|| ApiError::not_found(format!("no entity {} (at that time)", q.node)))
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
            ErrorCode::InvalidLimit,
            format!("limit must be between 1 and {} nodes", lineage::MAX_NODES),
        )),
    }
}

/// `GET /api/v1/impact?node=`: model versions and live deployments downstream.
#[utoipa::path(get, path = "/api/v1/impact", tag = "governance", params(ImpactQuery),
    responses((status = 200, description = "Model versions and live deployments downstream", body = Impact)))]
pub async fn impact(
    guard: Guarded<ReadEvents>,
    state: web::Data<AppState>,
    query: web::Query<ImpactQuery>,
) -> Result<HttpResponse, ApiError> {
    let node =
        EntityRef::parse(&query.node).map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.to_string()))?.to_string();
    let caller = guard.into_caller();
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
    responses((status = 200, description = "The entity: current state, live edges and history", body = EntityAnswer)))]
pub async fn entity(
    guard: Guarded<ReadEvents>,
    state: web::Data<AppState>,
    r: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let view = entity_view(&state, guard.into_caller(), &r).await?;
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

/// Entity `r` (`type:name@version`, or `type:name` for its latest
/// version) as `caller` may see it; 404 otherwise. The one path of the API
/// and the console.
pub async fn entity_view(state: &web::Data<AppState>, caller: Caller, r: &str) -> Result<EntityView, ApiError> {
    let node = EntityRef::parse(r).map_err(|e| ApiError::new(ErrorCode::InvalidPath, e.to_string()))?.to_string();
    let state2 = state.clone();
    let node2 = node.clone();
    let view = state
        .blocking(move || -> Result<_, ApiError> {
            let projects = readable(&state2, &caller)?;
            Ok(lineage::entity(&mut *state2.store.conn()?, &node2, projects.as_deref())?)
        })
        .await??;
    view.ok_or_else(|| ApiError::not_found(format!("no entity {node}")))
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
    ))]
pub async fn openlineage(
    guard: Guarded<AppendEvents>,
    state: web::Data<AppState>,
    query: web::Query<OpenLineageQuery>,
    Body(body): Body<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let draft = openlineage::draft(&body, query.project.as_deref())
        .map_err(|e| ApiError::new(ErrorCode::InvalidOpenlineageEvent, e.to_string()))?;
    guard.require_append(draft.kind.as_str(), draft.project.as_deref())?;
    let appended = state.governance.record_openlineage(guard.sub(), draft).await?;
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
