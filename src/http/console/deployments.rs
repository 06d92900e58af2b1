//! `/ui/deployments`: what is live in each environment and under which
//! approvals, the deployments' history as a timeline, and the gate's
//! answer for any model version and environment.

use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::page::{self, given, urlencode, utc, Chrome, ConsoleError, Viewer};
use crate::auth::actions::ReadEvents;
use crate::governance::gate::GateDecision;
use crate::governance::lineage::{self, LiveModel};
use crate::http::auth::Caller;
use crate::http::search::SearchQuery;
use crate::http::{ApiError, AppState};

/// A deployment event, as a timeline shows it.
pub struct Entry {
    pub seq: u64,
    pub at: String,
    /// `requested`, `succeeded`, `failed`, `rolled_back`, `blocked`.
    pub what: String,
    pub deployment: String,
    pub model: String,
    pub actor: String,
    /// The gate's reasons (blocked) or the reason given.
    pub why: String,
}

/// The latest deployment events of `kind` (all deployment kinds when
/// `None`) that `caller` may read, newest first, through the search
/// service; and the cursor of the next page.
pub async fn timeline(
    state: &web::Data<AppState>,
    caller: Caller,
    kind: Option<crate::ledger::Kind>,
    limit: u32,
    cursor: Option<String>,
) -> Result<(Vec<Entry>, Option<String>), ConsoleError> {
    let query = SearchQuery {
        q: kind.is_none().then(|| "entity_type:deployment".to_owned()),
        kind: kind.map(|k| k.as_str().to_owned()),
        sort: Some("time".into()),
        limit: Some(limit),
        cursor,
        ..Default::default()
    };
    let results = crate::http::search::run(state, caller, query).await?;
    let seqs: Vec<u64> = results.hits.iter().map(|h| h.seq).collect();
    let store = state.store.clone();
    let events = state
        .blocking(move || crate::store::events::by_seqs(&mut *store.conn()?, &seqs))
        .await?
        .map_err(ApiError::from)?;
    let mut entries: Vec<Entry> = events
        .into_iter()
        .filter(|e| e.kind.starts_with("deployment."))
        .map(|e| {
            let a: serde_json::Value = serde_json::from_str(&e.attributes).unwrap_or_default();
            let why = match &a["reasons"] {
                serde_json::Value::Array(reasons) => reasons
                    .iter()
                    .map(|r| r.as_str().map_or_else(|| r.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join("; "),
                _ => a["reason"].as_str().unwrap_or_default().to_owned(),
            };
            Entry {
                seq: e.seq,
                at: utc(&e.recorded_at),
                what: e.kind.trim_start_matches("deployment.").to_owned(),
                deployment: e.subject,
                model: a["model"].as_str().unwrap_or_default().to_owned(),
                actor: e.actor,
                why,
            }
        })
        .collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.seq));
    Ok((entries, results.next_cursor))
}

/// A live deployment with the approvals it runs under.
pub struct Live {
    pub live: LiveModel,
    /// When the event that put the model live was recorded.
    pub since: String,
    /// "granted by rita and raj, valid until ..." per approval the gate relies on.
    pub approvals: Vec<String>,
    pub relied_on: Vec<i64>,
    pub allowed_now: bool,
}

/// The gate form's answer.
pub struct Checked {
    pub decision: Option<GateDecision>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "deployments.html", config = "src/http/console/askama.toml")]
struct DeploymentsPage {
    chrome: Chrome,
    environments: Vec<(String, Vec<Live>)>,
    /// Live deployments per environment, of which the first are listed.
    counts: std::collections::BTreeMap<String, usize>,
    entries: Vec<Entry>,
    next: Option<String>,
    checked: Option<Checked>,
    known: Vec<String>,
    form_model: String,
    form_environment: String,
}

impl DeploymentsPage {
    fn entity_href(&self, r: &str) -> String {
        super::svg::entity_href(r)
    }

    /// "The first 25 of 2,000" when an environment has more than are listed.
    fn more(&self, env: &str, shown: usize) -> String {
        match self.counts.get(env) {
            Some(&n) if n > shown => format!("The first {shown} of {n}: the model inventory report lists them all."),
            _ => String::new(),
        }
    }
}

/// Query of `/ui/deployments`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentsQuery {
    #[serde(default)]
    cursor: String,
    /// The gate form: a model version and an environment.
    #[serde(default)]
    model: String,
    #[serde(default)]
    environment: String,
}

/// Live deployments listed per environment, each with the gate's answer;
/// the model inventory report lists them all.
const LIVE_SHOWN: usize = 25;

/// `GET /ui/deployments?cursor=&model=&environment=`.
pub async fn page(
    viewer: Viewer<ReadEvents>,
    state: web::Data<AppState>,
    q: web::Query<DeploymentsQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let caller = viewer.guard.caller().clone();
    let store = state.store.clone();
    let who = caller.clone();
    let live = state
        .blocking(move || -> Result<_, ApiError> {
            let mut conn = store.conn()?;
            let readable = who.readable_projects_in(&mut conn)?;
            Ok(lineage::live_models(&mut conn, readable.as_deref())?)
        })
        .await??;
    let mut environments: Vec<(String, Vec<Live>)> = Vec::new();
    let mut counts: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for l in &live {
        *counts.entry(l.environment.clone()).or_default() += 1;
    }
    let live: Vec<LiveModel> = {
        let mut shown: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
        live.into_iter()
            .filter(|l| {
                let n = shown.entry(l.environment.clone()).or_default();
                *n += 1;
                *n <= LIVE_SHOWN
            })
            .collect()
    };
    let seqs: Vec<u64> = live.iter().filter_map(|l| u64::try_from(l.updated_seq).ok()).collect();
    let store = state.store.clone();
    let times: std::collections::BTreeMap<i64, String> = state
        .blocking(move || crate::store::events::by_seqs(&mut *store.conn()?, &seqs))
        .await?
        .map_err(ApiError::from)?
        .into_iter()
        .map(|e| (e.seq as i64, utc(&e.recorded_at)))
        .collect();
    for l in live {
        let decision = state.governance.gate(&l.model, &l.environment).await.ok();
        let approvals = decision
            .as_ref()
            .map(|d| {
                d.approvals
                    .iter()
                    .filter(|a| !a.granted_by.is_empty())
                    .map(|a| {
                        let by: Vec<&str> = a.granted_by.iter().map(|g| g.actor.as_str()).collect();
                        let until =
                            a.expires_at.as_deref().map(|t| format!(", valid until {}", utc(t))).unwrap_or_default();
                        format!("approval {} granted by {}{until}", a.id, by.join(" and "))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let entry = Live {
            since: times.get(&l.updated_seq).cloned().unwrap_or_default(),
            relied_on: decision.as_ref().map(|d| d.relied_on_seqs.clone()).unwrap_or_default(),
            allowed_now: decision.as_ref().is_some_and(|d| d.allowed),
            approvals,
            live: l,
        };
        match environments.iter_mut().find(|(env, _)| *env == entry.live.environment) {
            Some((_, list)) => list.push(entry),
            None => environments.push((entry.live.environment.clone(), vec![entry])),
        }
    }
    let (entries, next_cursor) = timeline(&state, caller.clone(), None, 50, given(&q.cursor)).await?;
    let next = next_cursor.map(|c| format!("/ui/deployments?cursor={}", urlencode(&c)));
    let checked = match (given(&q.model), given(&q.environment)) {
        (Some(model), Some(environment)) => Some(check_gate(&state, &caller, model, environment).await?),
        (None, None) => None,
        _ => Some(Checked { decision: None, error: Some("give both a model version and an environment".into()) }),
    };
    page::html(&DeploymentsPage {
        chrome: viewer.chrome("Deployments", "deployments"),
        environments,
        counts,
        entries,
        next,
        checked,
        known: state.governance.rules().known(),
        form_model: q.model.clone(),
        form_environment: q.environment.clone(),
    })
}

/// The gate's answer, as `GET /api/v1/gate` gives it to this caller: a
/// model the caller may not read is not found.
async fn check_gate(
    state: &web::Data<AppState>,
    caller: &Caller,
    model: String,
    environment: String,
) -> Result<Checked, ConsoleError> {
    let project = state.governance.model_project(&model).await.map_err(ApiError::from);
    let answer = match project {
        Err(e) => Err(e.message().to_owned()),
        Ok(Some(project)) if caller.reads(project.as_deref()) => {
            match state.governance.gate(&model, &environment).await {
                Ok(d) => Ok(d),
                Err(crate::governance::GovernanceError::UnknownEnvironment { decision, .. }) => Ok(*decision),
                Err(e) => Err(ApiError::from(e).message().to_owned()),
            }
        }
        Ok(_) => Err(format!("no model version {model} that you may read")),
    };
    let (decision, error) = match answer {
        Ok(d) => (Some(d), None),
        Err(e) => (None, Some(e)),
    };
    Ok(Checked { decision, error })
}
