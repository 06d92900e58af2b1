//! `/ui/entities/{ref}` (state, history, live edges and the lineage graph
//! drawn as SVG) and `/ui/models/{ref}` (the model dossier on screen).

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::events::Linked;
use super::page::{self, urlencode, utc, Chrome, ConsoleError, Viewer};
use super::svg;
use crate::auth::actions::{Guard as _, ReadEvents, ReadReports};
use crate::governance::evidence::{self, TrainingEvidence};
use crate::governance::gate::GateDecision;
use crate::governance::lineage::{Edge, EntityView, Graph};
use crate::http::lineage::LineageQuery;
use crate::http::{ApiError, AppState};
use crate::ledger::EntityRef;
use crate::reports::Report;

/// Most nodes a drawn graph holds: a larger one is cut (and says so), so
/// that a page stays light and readable.
pub const MAX_DRAWN_NODES: usize = 200;
/// History events listed on an entity page (newest first); the search
/// lists them all.
const HISTORY_SHOWN: usize = 200;

/// Query of an entity page: the lineage drawing's controls.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphQuery {
    #[serde(default)]
    direction: String,
    depth: Option<String>,
    #[serde(default)]
    as_of: String,
}

/// The drawing's settings, as used.
pub struct GraphSettings {
    pub direction: String,
    pub depth: u32,
    pub as_of: String,
}

impl GraphQuery {
    fn settings(&self, default_direction: &str) -> Result<GraphSettings, ApiError> {
        let direction = match self.direction.trim() {
            "" => default_direction.to_owned(),
            d @ ("upstream" | "downstream" | "both") => d.to_owned(),
            other => {
                return Err(ApiError::new(
                    crate::error_code::ErrorCode::InvalidQuery,
                    format!("direction must be upstream, downstream or both, not {other:?}"),
                ))
            }
        };
        let depth = match self.depth.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
            None => 3,
            Some(d) => match d.parse::<u32>() {
                Ok(n @ 1..=10) => n,
                _ => {
                    return Err(ApiError::new(
                        crate::error_code::ErrorCode::InvalidDepth,
                        format!("depth must be a whole number from 1 to 10, not {d:?}"),
                    ))
                }
            },
        };
        Ok(GraphSettings { direction, depth, as_of: self.as_of.trim().to_owned() })
    }
}

/// A history line.
pub struct HistoryLine {
    pub seq: u64,
    pub kind: String,
    pub actor: String,
    pub at: String,
}

/// An edge as the page's table lists it.
pub struct EdgeLine {
    pub source: Linked,
    pub target: Linked,
    pub kind: String,
    pub seq: i64,
    pub ended_seq: Option<i64>,
}

impl EdgeLine {
    fn of(e: &Edge) -> Self {
        Self {
            source: Linked::entity(&e.source),
            target: Linked::entity(&e.target),
            kind: e.kind.clone(),
            seq: e.seq,
            ended_seq: e.ended_seq,
        }
    }
}

/// What entity and model pages share.
pub struct EntityParts {
    pub r: String,
    pub entity_type: String,
    pub project: Option<String>,
    pub status: String,
    pub created_seq: i64,
    pub updated_seq: i64,
    pub state: String,
    pub upstream: Vec<EdgeLine>,
    pub downstream: Vec<EdgeLine>,
    pub edges_truncated: bool,
    pub history: Vec<HistoryLine>,
    pub history_total: usize,
    pub history_search: String,
    pub settings: GraphSettings,
    /// The drawing, an SVG element escaped by [`svg::lineage`].
    pub svg: String,
    pub graph_nodes: usize,
    pub graph_edges: Vec<EdgeLine>,
    pub graph_truncated: bool,
    pub hidden_nodes: usize,
    pub omitted_nodes: usize,
    /// Why no graph could be drawn (no entity at `as_of`).
    pub graph_error: Option<String>,
}

impl EntityParts {
    fn new(view: EntityView, graph: Result<Graph, ApiError>, settings: GraphSettings) -> Self {
        let history_total = view.history.len();
        let history = view
            .history
            .iter()
            .rev()
            .take(HISTORY_SHOWN)
            .map(|e| HistoryLine { seq: e.seq, kind: e.kind.clone(), actor: e.actor.clone(), at: utc(&e.recorded_at) })
            .collect();
        let entity = view.entity;
        let history_search = format!("/ui/search?q={}&sort=time", urlencode(&format!("ref:\"{}\"", entity.ref_)));
        let (svg, graph_nodes, graph_edges, graph_truncated, hidden_nodes, omitted_nodes, graph_error) = match graph {
            Ok(g) => (
                svg::lineage(&g),
                g.nodes.len(),
                g.edges.iter().map(EdgeLine::of).collect(),
                g.truncated,
                g.hidden_nodes,
                g.omitted_nodes,
                None,
            ),
            Err(e) => (String::new(), 0, Vec::new(), false, 0, 0, Some(e.message().to_owned())),
        };
        Self {
            r: entity.ref_,
            entity_type: entity.entity_type,
            project: entity.project,
            status: entity.status,
            created_seq: entity.created_seq,
            updated_seq: entity.updated_seq,
            state: serde_json::to_string_pretty(&view.current).unwrap_or_default(),
            upstream: view.upstream.iter().map(EdgeLine::of).collect(),
            downstream: view.downstream.iter().map(EdgeLine::of).collect(),
            edges_truncated: view.edges_truncated,
            history,
            history_total,
            history_search,
            settings,
            svg,
            graph_nodes,
            graph_edges,
            graph_truncated,
            hidden_nodes,
            omitted_nodes,
            graph_error,
        }
    }
}

#[derive(Template)]
#[template(path = "entity.html", config = "src/http/console/askama.toml")]
struct EntityPage {
    chrome: Chrome,
    e: EntityParts,
    /// The page's own URL, for the drawing's form.
    action: String,
    /// The GDPR record of processing (Art. 30) of this dataset and of its
    /// project, for a viewer who may read reports.
    processing: Option<(String, Option<String>)>,
}

/// The entity and its lineage drawing, through the API's services.
async fn parts(
    state: &web::Data<AppState>,
    viewer: &Viewer<ReadEvents>,
    r: &str,
    q: &GraphQuery,
    default_direction: &str,
) -> Result<EntityParts, ConsoleError> {
    let settings = q.settings(default_direction)?;
    let caller = viewer.guard.caller().clone();
    let view = crate::http::lineage::entity_view(state, caller.clone(), r).await?;
    let query = LineageQuery {
        node: view.entity.ref_.clone(),
        direction: Some(settings.direction.clone()),
        depth: Some(settings.depth),
        as_of: (!settings.as_of.is_empty()).then(|| settings.as_of.clone()),
        limit: Some(MAX_DRAWN_NODES),
    };
    let graph = crate::http::lineage::graph(state, caller, query).await;
    // A bad `as_of` is the visitor's to fix, on the page; a refusal is not.
    let graph = match graph {
        Err(e) if e.status().is_server_error() => return Err(e.into()),
        other => other,
    };
    Ok(EntityParts::new(view, graph, settings))
}

fn is_model_version(r: &str) -> bool {
    EntityRef::parse(r).is_ok_and(|e| e.entity_type() == "model" && e.version().is_some())
}

/// `GET /ui/entities/{ref}?direction=&depth=&as_of=`; a model version's
/// page is its dossier.
pub async fn page(
    req: HttpRequest,
    viewer: Viewer<ReadEvents>,
    state: web::Data<AppState>,
    r: web::Path<String>,
    q: web::Query<GraphQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let r = r.into_inner();
    if is_model_version(&r) {
        return model_page(req, viewer, state, r, q.into_inner()).await;
    }
    let e = parts(&state, &viewer, &r, &q, "both").await?;
    let chrome = viewer.chrome(e.r.clone(), "");
    let may_report = viewer.guard.may(&crate::auth::actions::ReadReports::ACTION, "", e.project.as_deref());
    let processing = (e.entity_type == "dataset" && may_report).then(|| {
        let of =
            |param: &str, value: &str| format!("/ui/reports/gdpr-processing?{param}={}&format=pdf", urlencode(value));
        (of("subject", &e.r), e.project.as_deref().map(|p| of("project", p)))
    });
    page::html(&EntityPage { chrome, action: svg::entity_href(&e.r), processing, e })
}

/// One environment's gate answer.
pub struct GateLine {
    pub environment: String,
    pub decision: Option<GateDecision>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "model.html", config = "src/http/console/askama.toml")]
struct ModelPage {
    chrome: Chrome,
    e: EntityParts,
    action: String,
    training: TrainingEvidence,
    gates: Vec<GateLine>,
    /// The dossier as the report builds it; `None` when the viewer may not
    /// read reports (`dossier_refused` says why).
    dossier: Option<Report>,
    dossier_refused: Option<String>,
    download: String,
}

impl ModelPage {
    fn entity_href(&self, r: &str) -> String {
        svg::entity_href(r)
    }

    fn classification(&self, c: &Option<serde_json::Value>) -> String {
        classification_text(c)
    }

    fn chart(&self, chart: &crate::reports::Chart) -> String {
        super::chart::svg(chart)
    }
}

/// A dataset's classification (the attributes of its `dataset.classified`
/// event) in a line: personal data, categories, legal basis, retention.
pub fn classification_text(c: &Option<serde_json::Value>) -> String {
    let Some(c) = c else { return "not classified".to_owned() };
    if c["contains_personal_data"].as_bool() != Some(true) {
        return "no personal data".to_owned();
    }
    let mut parts = vec!["personal data".to_owned()];
    if let Some(categories) = c["personal_data_categories"].as_array() {
        let names: Vec<&str> = categories.iter().filter_map(|v| v.as_str()).collect();
        if !names.is_empty() {
            parts.push(format!("categories: {}", names.join(", ")));
        }
    }
    if c["special_categories"].as_bool() == Some(true) {
        parts.push("special categories".into());
    }
    for (field, label) in [("legal_basis", "legal basis"), ("retention", "retention"), ("purpose", "purpose")] {
        if let Some(v) = c[field].as_str() {
            parts.push(format!("{label}: {v}"));
        }
    }
    parts.join("; ")
}

/// `GET /ui/models/{ref}`.
pub async fn model(
    req: HttpRequest,
    viewer: Viewer<ReadEvents>,
    state: web::Data<AppState>,
    r: web::Path<String>,
    q: web::Query<GraphQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let r = r.into_inner();
    if !is_model_version(&r) {
        return Err(ApiError::new(
            crate::error_code::ErrorCode::InvalidPath,
            format!("{r} is not a model version (model:NAME@VERSION)"),
        )
        .into());
    }
    model_page(req, viewer, state, r, q.into_inner()).await
}

async fn model_page(
    req: HttpRequest,
    viewer: Viewer<ReadEvents>,
    state: web::Data<AppState>,
    r: String,
    q: GraphQuery,
) -> Result<HttpResponse, ConsoleError> {
    let e = parts(&state, &viewer, &r, &q, "upstream").await?;
    let caller = viewer.guard.caller().clone();
    let state2 = state.clone();
    let model = e.r.clone();
    let training = state
        .blocking(move || -> Result<_, ApiError> {
            let mut conn = state2.store.conn()?;
            let readable = caller.readable_projects_in(&mut conn)?;
            Ok(evidence::training(&mut conn, &model, readable.as_deref())?)
        })
        .await??;
    let mut gates = Vec::new();
    for environment in state.governance.rules().known() {
        let answer = state.governance.gate(&e.r, &environment).await;
        let (decision, error) = match answer {
            Ok(d) => (Some(d), None),
            Err(err) => (None, Some(ApiError::from(err).message().to_owned())),
        };
        gates.push(GateLine { environment, decision, error });
    }
    // Without reports the page still shows what reading events allows.
    let refused = |e: ApiError| -> Result<_, ConsoleError> {
        if e.status() == actix_web::http::StatusCode::FORBIDDEN {
            Ok((None, Some(e.message().to_owned())))
        } else {
            Err(e.into())
        }
    };
    let (dossier, dossier_refused) = match viewer.also::<ReadReports>(&req) {
        Ok(guard) => match crate::http::reports::dossier(&state, guard, e.r.clone()).await {
            Ok(report) => (Some(report), None),
            Err(e) => refused(e)?,
        },
        Err(e) => refused(e)?,
    };
    let chrome = viewer.chrome(e.r.clone(), "");
    let download = format!("/ui/reports/model-dossier?subject={}&format=pdf", urlencode(&e.r));
    page::html(&ModelPage {
        chrome,
        action: svg::entity_href(&e.r),
        training,
        gates,
        dossier,
        dossier_refused,
        download,
        e,
    })
}
