//! `/ui/`: the ledger at a glance, and re-running its verification.

use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::page::{self, age, see_other, utc, Chrome, ConsoleError, Viewer};
use super::Verification;
use crate::auth::actions::{self, Guard, ReadEvents, VerifyLedger};
use crate::governance::lineage::{self, LiveModel};
use crate::http::AppState;
use crate::ledger::Kind;
use crate::store::projections::ApprovalFilter;

/// Live deployments listed; the model inventory report lists them all.
const LIVE_SHOWN: usize = 100;

/// The latest checkpoint, as shown.
pub struct CheckpointLine {
    pub size: u64,
    pub at: String,
    pub age: String,
    pub root: String,
}

#[derive(Template)]
#[template(path = "overview.html", config = "src/http/console/askama.toml")]
struct OverviewPage {
    chrome: Chrome,
    /// Size and head hash, for callers who may read the whole ledger.
    head: Option<(u64, String)>,
    checkpoint: Option<CheckpointLine>,
    verification: Option<Verification>,
    may_verify: bool,
    live: Vec<LiveModel>,
    /// Deployments serving a model, of which `live` lists the first.
    live_total: usize,
    blocked: Vec<super::deployments::Entry>,
    /// Pending approvals the viewer holds an approver role for; `None` when
    /// the viewer approves nothing.
    waiting: Option<usize>,
    key: String,
}

impl OverviewPage {
    fn entity_href(&self, r: &str) -> String {
        super::svg::entity_href(r)
    }
}

/// `GET /ui/`.
pub async fn page(viewer: Viewer<ReadEvents>, state: web::Data<AppState>) -> Result<HttpResponse, ConsoleError> {
    let caller = viewer.guard.caller().clone();
    let may_read_ledger = caller.may(&actions::ReadLedger::ACTION, "", None);
    let may_verify = caller.may(&actions::VerifyLedger::ACTION, "", None);
    let who = caller.clone();
    let state2 = state.clone();
    let (head, checkpoint, live) = state
        .blocking(move || -> Result<_, crate::http::ApiError> {
            let mut conn = state2.store.conn()?;
            let head = if may_read_ledger {
                let h = crate::store::events::head(&mut conn)?;
                Some((h.size, h.hash.map(hex::encode).unwrap_or_default()))
            } else {
                None
            };
            let checkpoint = crate::store::checkpoints::latest(&mut conn)?;
            let readable = who.readable_projects_in(&mut conn)?;
            let live = lineage::live_models(&mut conn, readable.as_deref())?;
            Ok((head, checkpoint, live))
        })
        .await??;
    let live_total = live.len();
    let mut live = live;
    live.truncate(LIVE_SHOWN);
    let (blocked, _) =
        super::deployments::timeline(&state, caller.clone(), Some(Kind::DeploymentBlocked), 5, None).await?;
    let waiting = waiting_approvals(&state, &caller).await?;
    let checkpoint = checkpoint.map(|c| CheckpointLine {
        size: c.tree_size,
        at: utc(&c.created_at),
        age: age(&c.created_at),
        root: hex::encode(c.root_hash),
    });
    let verification = state.console.last_verification.lock().unwrap_or_else(|e| e.into_inner()).clone();
    page::html(&OverviewPage {
        chrome: viewer.chrome("Overview", "overview"),
        head,
        checkpoint,
        verification,
        may_verify,
        live,
        live_total,
        blocked,
        waiting,
        key: state.proofs.verifier().to_vkey(),
    })
}

/// How many pending approvals, of the projects the caller reads, are in an
/// environment the caller holds an approver role for.
async fn waiting_approvals(
    state: &web::Data<AppState>,
    caller: &crate::http::auth::Caller,
) -> Result<Option<usize>, ConsoleError> {
    let rules = state.governance.rules();
    let approves = |env: &str| {
        rules.environment(env).is_some_and(|rule| rule.approver_roles.iter().any(|r| caller.roles().contains(r)))
    };
    if !rules.known().iter().any(|env| approves(env)) {
        return Ok(None);
    }
    let filter = ApprovalFilter { state: Some("pending".into()), limit: 10_000, ..Default::default() };
    let pending = state.governance.approvals(filter).await.map_err(crate::http::ApiError::from)?;
    Ok(Some(pending.iter().filter(|a| caller.reads(a.project.as_deref()) && approves(&a.environment)).count()))
}

/// Form of `POST /ui/verify`.
#[derive(Deserialize)]
pub struct VerifyForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/verify`: recomputes the chain, as `GET /api/v1/verify` does,
/// and shows the result on the overview.
pub async fn verify(
    viewer: Viewer<VerifyLedger>,
    state: web::Data<AppState>,
    form: web::Form<VerifyForm>,
) -> Result<HttpResponse, ConsoleError> {
    viewer.check_csrf(&form.csrf)?;
    let proofs = state.proofs.clone();
    let report = state.blocking(move || proofs.verify()).await?.map_err(crate::http::ApiError::from)?;
    let done = Verification { at: utc(&crate::ledger::timestamp::now()), by: viewer.guard.sub().to_owned(), report };
    *state.console.last_verification.lock().unwrap_or_else(|e| e.into_inner()) = Some(done);
    Ok(see_other("/ui/#verification"))
}
