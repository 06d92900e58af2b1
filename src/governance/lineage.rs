//! Lineage, impact analysis and entity views, read from the projections.
//!
//! Every node and edge cites the seq of the event that created it, so an
//! auditor can fetch (and prove) the event behind each line of a graph.
//! `as_of` answers as the ledger stood at the last event recorded at or
//! before that time: later nodes and edges are left out, and edges that
//! ended later are shown as not yet ended.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::ledger::{EntityRef, Event};
use crate::store::projections::{self, Direction, EdgeRow, EntityRow};
use crate::store::{events, DbConn, EventFilter, StoreError};

/// Deepest walk a lineage query may ask for.
pub const MAX_DEPTH: u32 = 50;
/// Nodes an answer holds when the caller gives no `limit`.
pub const DEFAULT_NODES: usize = 500;
/// Most nodes one answer may hold; larger graphs are cut and flagged
/// `truncated`, with the count of nodes found but left out.
pub const MAX_NODES: usize = 5_000;
/// Edges read per step of a walk for each node the answer may still take
/// (plus the edges already in it): a node with ten thousand edges is not
/// read whole for a 500-node answer. Two, because an edge can lead back to
/// a node the walk has, or be one of several between the same two nodes.
const EDGES_PER_NODE: usize = 2;

/// Which way(s) to walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    Upstream,
    Downstream,
    Both,
}

impl Walk {
    /// Parses `upstream`, `downstream` or `both`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "upstream" => Some(Self::Upstream),
            "downstream" => Some(Self::Downstream),
            "both" => Some(Self::Both),
            _ => None,
        }
    }
}

/// A node of a lineage graph.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    #[serde(rename = "ref")]
    pub ref_: String,
    pub entity_type: String,
    pub name: String,
    pub version: Option<String>,
    pub project: Option<String>,
    /// The status now, or in an `as_of` answer the status it had then.
    pub status: String,
    /// The event that first named this entity.
    pub seq: i64,
}

/// An edge `source -> target` ("target was made from source").
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub source: String,
    pub target: String,
    /// The event that created the edge.
    pub seq: i64,
    /// The event that ended it (a deployment switching models), if it had ended.
    pub ended_seq: Option<i64>,
    /// The kind of the creating event: `run.started` (a run's input),
    /// `model.registered` (training lineage), `model.evaluated` (an
    /// evaluation dataset), `deployment.succeeded` (serving), ...
    pub kind: String,
}

/// A lineage answer.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Graph {
    pub node: String,
    pub direction: &'static str,
    pub depth: u32,
    pub as_of_seq: Option<u64>,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    /// Whether the walk stopped at `node_limit` (or read only part of a
    /// node's edges) before it reached `depth`.
    pub truncated: bool,
    /// The most nodes this answer could hold (`limit`, default 500, at most 5,000).
    pub node_limit: usize,
    /// Nodes found next to the answer but left out at the limit (a lower
    /// bound when edges were cut too): ask again from one of the boundary
    /// nodes, or with a larger `limit`.
    pub omitted_nodes: usize,
    /// Nodes next to the graph that the caller may not see (another
    /// project's, or not created yet); their edges are left out.
    pub hidden_nodes: usize,
}

/// Who may see what: `None` for a reader of every project, else the
/// projects the reader may read.
pub type Visibility<'a> = Option<&'a [String]>;

/// Whether something of `project` may be seen by a reader of `readable`.
/// Data without a project (events recorded without one, entities no event
/// has created yet) is visible only to readers of every project: a reader
/// of some projects sees exactly their data, and never what is outside.
pub fn project_visible(project: Option<&str>, readable: Visibility<'_>) -> bool {
    match (readable, project) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(projects), Some(p)) => projects.iter().any(|r| r == p),
    }
}

fn visible(entity: &EntityRow, readable: Visibility<'_>, as_of: Option<i64>) -> bool {
    as_of.is_none_or(|s| entity.created_seq <= s) && project_visible(entity.project.as_deref(), readable)
}

/// Walks the graph from `node`. `None` when the node did not exist (at
/// `as_of_seq`) or is not visible. One snapshot, on index plans
/// ([`DbConn::read_on_indexes`]).
pub fn lineage(
    conn: &mut DbConn,
    node: &str,
    walk: Walk,
    depth: u32,
    as_of_seq: Option<u64>,
    readable: Visibility<'_>,
    node_limit: usize,
) -> Result<Option<Graph>, StoreError> {
    conn.read_on_indexes(|conn| {
        let as_of = as_of_seq.map(|s| i64::try_from(s).unwrap_or(i64::MAX));
        let Some(root) = projections::entity(conn, node)?.filter(|e| visible(e, readable, as_of)) else {
            return Ok(None);
        };
        let mut nodes: BTreeMap<String, EntityRow> = BTreeMap::new();
        nodes.insert(root.ref_.clone(), root);
        let mut edges: BTreeMap<(String, String, i64), EdgeRow> = BTreeMap::new();
        let mut truncated = false;
        let mut hidden = BTreeSet::new();
        let mut omitted = BTreeSet::new();
        let node_limit = node_limit.clamp(1, MAX_NODES);
        let directions: &[Direction] = match walk {
            Walk::Upstream => &[Direction::Upstream],
            Walk::Downstream => &[Direction::Downstream],
            Walk::Both => &[Direction::Upstream, Direction::Downstream],
        };
        for &direction in directions {
            let mut walked =
                Walked { nodes: &mut nodes, edges: &mut edges, hidden: &mut hidden, omitted: &mut omitted, node_limit };
            truncated |= walk_from(conn, node, direction, depth, as_of, readable, &mut walked)?;
        }
        if let Some(seq) = as_of {
            for entity in nodes.values_mut() {
                entity.status = projections::status_at(conn, &entity.ref_, &entity.entity_type, seq)?;
            }
        }
        Ok(Some(Graph {
            node: node.to_owned(),
            direction: match walk {
                Walk::Upstream => "upstream",
                Walk::Downstream => "downstream",
                Walk::Both => "both",
            },
            depth,
            as_of_seq,
            nodes: nodes
                .into_values()
                .map(|e| Node {
                    status: e.status,
                    ref_: e.ref_,
                    entity_type: e.entity_type,
                    name: e.name,
                    version: e.version,
                    project: e.project,
                    seq: e.created_seq,
                })
                .collect(),
            edges: edges
                .into_values()
                .map(|e| Edge {
                    source: e.source,
                    target: e.target,
                    seq: e.created_seq,
                    ended_seq: e.ended_seq.filter(|end| as_of.is_none_or(|s| *end <= s)),
                    kind: e.kind,
                })
                .collect(),
            truncated,
            node_limit,
            omitted_nodes: omitted.len(),
            hidden_nodes: hidden.len(),
        }))
    })
}

/// What a walk has found so far.
struct Walked<'a> {
    nodes: &'a mut BTreeMap<String, EntityRow>,
    edges: &'a mut BTreeMap<(String, String, i64), EdgeRow>,
    /// References next to the graph that the reader may not see.
    hidden: &'a mut BTreeSet<String>,
    /// Visible references found but left out at the node limit.
    omitted: &'a mut BTreeSet<String>,
    node_limit: usize,
}

/// Breadth-first walk in one direction; `true` when cut at the node limit.
fn walk_from(
    conn: &mut DbConn,
    start: &str,
    direction: Direction,
    depth: u32,
    as_of: Option<i64>,
    readable: Visibility<'_>,
    walked: &mut Walked<'_>,
) -> Result<bool, StoreError> {
    let Walked { nodes, edges, hidden, omitted, node_limit } = walked;
    let mut seen: BTreeSet<String> = BTreeSet::from([start.to_owned()]);
    let mut frontier = vec![start.to_owned()];
    let mut truncated = false;
    for _ in 0..depth {
        if frontier.is_empty() {
            break;
        }
        let room = node_limit.saturating_sub(nodes.len());
        let edge_cap = (room + 1) * EDGES_PER_NODE + edges.len();
        let found = projections::edges_of(conn, &frontier, direction, as_of, Some(edge_cap))?;
        truncated |= found.len() >= edge_cap;
        let far = |e: &EdgeRow| match direction {
            Direction::Upstream => e.source.clone(),
            Direction::Downstream => e.target.clone(),
        };
        let mut new_refs: Vec<String> =
            found.iter().map(far).filter(|r| !seen.contains(r)).collect::<BTreeSet<_>>().into_iter().collect();
        // Rows are read for at most as many new nodes as the answer can
        // still take (and a few that turn out hidden); the rest are counted.
        let readable_room = room + room / 4 + 8;
        if new_refs.len() > readable_room {
            truncated = true;
            omitted.extend(new_refs.drain(readable_room..));
        }
        let mut allowed: BTreeSet<String> = nodes.keys().cloned().collect();
        for entity in projections::entities_by_ref(conn, &new_refs)? {
            if !visible(&entity, readable, as_of) {
                continue;
            }
            if nodes.len() >= *node_limit {
                truncated = true;
                omitted.insert(entity.ref_);
                continue;
            }
            allowed.insert(entity.ref_.clone());
            nodes.insert(entity.ref_.clone(), entity);
        }
        let mut next = Vec::new();
        for edge in found {
            let other = far(&edge);
            if !allowed.contains(&other) {
                if !seen.contains(&other) && !omitted.contains(&other) {
                    hidden.insert(other);
                }
                continue;
            }
            if seen.insert(other.clone()) {
                next.push(other);
            }
            edges.insert((edge.source.clone(), edge.target.clone(), edge.created_seq), edge);
        }
        if truncated {
            break;
        }
        frontier = next;
    }
    Ok(truncated)
}

/// What is downstream of an entity: model versions, and the deployments
/// currently serving one of them.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Impact {
    pub node: String,
    pub model_versions: Vec<Node>,
    pub live_deployments: Vec<LiveDeployment>,
    /// Whether the downstream walk stopped at its node limit; then
    /// `omitted_nodes` were found but not followed.
    pub truncated: bool,
    pub omitted_nodes: usize,
}

/// A deployment serving a model downstream of the queried entity.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveDeployment {
    #[serde(rename = "ref")]
    pub ref_: String,
    pub model: String,
    /// The event that put `model` live there.
    pub since_seq: i64,
}

/// Up to `limit` references of entities a reader of `readable` may see
/// whose reference contains `text` (of `entity_type` when given).
pub fn find(
    conn: &mut DbConn,
    text: &str,
    entity_type: Option<&str>,
    readable: Visibility<'_>,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    // Read more than asked: some may be another project's.
    let rows = projections::entities_matching(conn, text, entity_type, (limit * 4) as i64)?;
    Ok(rows.into_iter().filter(|e| visible(e, readable, None)).take(limit).map(|e| e.ref_).collect())
}

/// A model version serving a deployment now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveModel {
    pub environment: String,
    pub deployment: String,
    pub model: String,
    /// The deployment's status (`deployed`, `rolled_back`, ...).
    pub status: String,
    pub updated_seq: i64,
}

/// Every deployment a reader of `readable` may see that serves a model
/// now, by environment and deployment.
pub fn live_models(conn: &mut DbConn, readable: Visibility<'_>) -> Result<Vec<LiveModel>, StoreError> {
    let mut live: Vec<LiveModel> = projections::entities_of_type(conn, "deployment")?
        .into_iter()
        .filter(|d| project_visible(d.project.as_deref(), readable))
        .filter_map(|d| {
            let state: serde_json::Value = serde_json::from_str(&d.state).ok()?;
            let model = state["live_model"].as_str()?.to_owned();
            Some(LiveModel {
                environment: crate::governance::kinds::deployment_environment(&d.name).to_owned(),
                deployment: d.ref_,
                model,
                status: d.status,
                updated_seq: d.updated_seq,
            })
        })
        .collect();
    live.sort_by(|a, b| (&a.environment, &a.deployment).cmp(&(&b.environment, &b.deployment)));
    Ok(live)
}

/// Impact analysis of `node`: everything downstream, at any depth.
pub fn impact(
    conn: &mut DbConn,
    node: &str,
    readable: Visibility<'_>,
    node_limit: usize,
) -> Result<Option<Impact>, StoreError> {
    let Some(graph) = lineage(conn, node, Walk::Downstream, MAX_DEPTH, None, readable, node_limit)? else {
        return Ok(None);
    };
    let model_versions = graph
        .nodes
        .iter()
        .filter(|n| n.entity_type == "model" && n.version.is_some() && n.ref_ != node)
        .cloned()
        .collect();
    let live_deployments = graph
        .edges
        .iter()
        .filter(|e| e.target.starts_with("deployment:") && e.source.starts_with("model:") && e.ended_seq.is_none())
        .map(|e| LiveDeployment { ref_: e.target.clone(), model: e.source.clone(), since_seq: e.seq })
        .collect();
    Ok(Some(Impact {
        node: node.to_owned(),
        model_versions,
        live_deployments,
        truncated: graph.truncated,
        omitted_nodes: graph.omitted_nodes,
    }))
}

/// An entity with its state and history.
#[derive(Debug, Clone)]
pub struct EntityView {
    pub entity: EntityRow,
    /// The entity's state as JSON (the `state` column, parsed).
    pub current: serde_json::Value,
    /// Lineage edges into and out of it, live now (at most
    /// [`MAX_ENTITY_EDGES`] each way).
    pub upstream: Vec<Edge>,
    pub downstream: Vec<Edge>,
    /// Whether more edges exist than are shown (walk them with `lineage`).
    pub edges_truncated: bool,
    /// Events about it (as subject), oldest first; an unversioned reference
    /// includes its versions' events.
    pub history: Vec<Event>,
}

/// Most live edges an entity view lists in each direction.
pub const MAX_ENTITY_EDGES: usize = 1000;

/// Most history events returned with an entity.
pub const MAX_HISTORY: u32 = 1000;

/// One entity's view, `None` when unknown or not visible.
pub fn entity(conn: &mut DbConn, r: &str, readable: Visibility<'_>) -> Result<Option<EntityView>, StoreError> {
    let Some(row) = projections::entity(conn, r)?.filter(|e| visible(e, readable, None)) else {
        return Ok(None);
    };
    let to_edges = |rows: Vec<EdgeRow>| -> Vec<Edge> {
        rows.into_iter()
            .map(|e| Edge {
                source: e.source,
                target: e.target,
                seq: e.created_seq,
                ended_seq: e.ended_seq,
                kind: e.kind,
            })
            .collect()
    };
    // Bounded like a lineage answer: a dataset read by ten thousand runs is
    // shown with its first edges and `edges_truncated`.
    let cap = Some(MAX_ENTITY_EDGES + 1);
    let mut upstream = projections::edges_of(conn, &[r.to_owned()], Direction::Upstream, None, cap)?;
    let mut downstream = projections::edges_of(conn, &[r.to_owned()], Direction::Downstream, None, cap)?;
    let edges_truncated = upstream.len() > MAX_ENTITY_EDGES || downstream.len() > MAX_ENTITY_EDGES;
    upstream.truncate(MAX_ENTITY_EDGES);
    downstream.truncate(MAX_ENTITY_EDGES);
    if readable.is_some() {
        // Edges to entities the reader may not see are left out.
        let far: Vec<String> =
            upstream.iter().map(|e| e.source.clone()).chain(downstream.iter().map(|e| e.target.clone())).collect();
        let shown: BTreeSet<String> = projections::entities_by_ref(conn, &far)?
            .into_iter()
            .filter(|e| visible(e, readable, None))
            .map(|e| e.ref_)
            .collect();
        upstream.retain(|e| shown.contains(&e.source));
        downstream.retain(|e| shown.contains(&e.target));
    }
    let upstream = to_edges(upstream);
    let downstream = to_edges(downstream);
    let filter = EventFilter {
        subject: Some(r.to_owned()),
        projects: readable.map(<[String]>::to_vec),
        limit: MAX_HISTORY,
        ..Default::default()
    };
    let history = events::list(conn, &filter)?;
    let current = expand_state(conn, &row.state)?;
    Ok(Some(EntityView { entity: row, current, upstream, downstream, edges_truncated, history }))
}

/// The stored state (kind -> seq of the latest such event) with each event's
/// actor, time and attributes filled in.
fn expand_state(conn: &mut DbConn, state: &str) -> Result<serde_json::Value, StoreError> {
    let stored: serde_json::Map<String, serde_json::Value> = serde_json::from_str(state).unwrap_or_default();
    let mut out = serde_json::Map::new();
    for (key, value) in stored {
        let expanded = match value.as_u64() {
            Some(seq) => match events::by_seq(conn, seq)? {
                Some(e) => serde_json::json!({
                    "seq": e.seq,
                    "actor": e.actor,
                    "recorded_at": e.recorded_at,
                    "attributes": serde_json::from_str::<serde_json::Value>(&e.attributes).unwrap_or_default(),
                }),
                None => value,
            },
            None => value,
        };
        out.insert(key, expanded);
    }
    Ok(serde_json::Value::Object(out))
}

/// Checks an entity reference given as a query parameter.
pub fn parse_node(text: &str) -> Result<String, crate::ledger::ValidationError> {
    EntityRef::parse(text).map(|r| r.to_string())
}
