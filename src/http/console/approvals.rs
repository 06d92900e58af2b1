//! `/ui/approvals`: the risk officer's inbox, each approval with the
//! evidence beside it, and `/ui/approvals/{id}`, where one is granted,
//! rejected or revoked through the same service as
//! `POST /api/v1/approvals/{id}/decision`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::page::{self, given, see_other, urlencode, utc, Chrome, ConsoleError, Viewer};
use crate::auth::actions::{AppendEvents, Guard as _, ReadEvents};
use crate::governance::approvals::{ApprovalView, DecisionRequest};
use crate::governance::evidence::{self, ModelReview};
use crate::http::auth::Caller;
use crate::http::{ApiError, AppState};
use crate::ledger::kind::Decision;
use crate::store::projections::ApprovalFilter;

/// Approvals per inbox page: each carries its model's evidence.
const PAGE: usize = 20;
/// Approvals read at most to fill one page of "decidable by me".
const SCAN: usize = 1000;
/// Evaluations shown per approval, the latest; the model page has them all.
const EVALUATIONS_SHOWN: usize = 5;

/// An approval with what a risk officer decides on.
pub struct Item {
    pub approval: ApprovalView,
    pub review: ModelReview,
    /// "1 of 2 granted: raj (2026-11-30T10:00:00Z)".
    pub quorum: String,
    /// When a grant recorded now would expire, while it is pending.
    pub would_expire: Option<String>,
    /// Granted once, but no longer valid.
    pub expired: bool,
    /// Why the viewer may not grant or reject it (`None`: they may).
    pub refusal: Option<String>,
    /// Why the viewer may not revoke it (`None`: they may, it is granted).
    pub revoke_refusal: Option<String>,
    /// Evaluations on the record, of which `review` holds the latest.
    pub evaluations_total: usize,
}

impl Item {
    pub fn href(&self) -> String {
        format!("/ui/approvals/{}", urlencode(&self.approval.id))
    }

    pub fn entity_href(&self, r: &str) -> String {
        super::svg::entity_href(r)
    }

    pub fn requested_at(&self) -> String {
        utc(&self.approval.requested_at)
    }

    /// The approval's state as a person says it.
    pub fn state_text(&self) -> &str {
        if self.expired {
            "expired"
        } else {
            &self.approval.state
        }
    }

    /// How old an evaluation is.
    pub fn age(&self, at: &str) -> String {
        page::age(at)
    }

    pub fn utc(&self, at: &str) -> String {
        utc(at)
    }

    /// The environment's rules the version fails now.
    pub fn failing(&self) -> Vec<&crate::governance::readiness::RuleCheck> {
        crate::governance::readiness::failing(&self.approval.checks)
    }

    pub fn classification(&self, c: &Option<serde_json::Value>) -> String {
        super::entities::classification_text(c)
    }
}

fn quorum(a: &ApprovalView) -> String {
    let grants: Vec<String> = a
        .decisions
        .iter()
        .filter(|d| d.decision == Decision::Grant.as_str())
        .map(|d| format!("{} ({})", d.actor, utc(&d.recorded_at)))
        .collect();
    let mut text = format!("{} of {} granted", grants.len(), a.required_approvals);
    if !grants.is_empty() {
        text.push_str(": ");
        text.push_str(&grants.join(", "));
    }
    text
}

/// Why `caller` may not grant or reject `a` (`None`: they may).
async fn refusal(state: &AppState, caller: &Caller, a: &ApprovalView) -> Result<Option<String>, ConsoleError> {
    if a.state != "pending" {
        return Ok(Some(format!("it is {}; only a pending approval is granted or rejected", a.state)));
    }
    if !caller.may(&AppendEvents::ACTION, Decision::Grant.kind().as_str(), a.project.as_deref()) {
        return Ok(Some(format!("{} may not record approval decisions in this project", caller.sub())));
    }
    Ok(state.governance.refusal(caller.sub(), caller.roles(), a, Decision::Grant).await.map_err(ApiError::from)?)
}

/// Whether `caller` holds an approver role of some environment.
fn approves_somewhere(state: &AppState, caller: &Caller) -> bool {
    let rules = state.governance.rules();
    rules.known().iter().any(|env| {
        rules.environment(env).is_some_and(|r| r.approver_roles.iter().any(|role| caller.roles().contains(role)))
    })
}

/// `a` with its evidence and what `caller` may do with it.
async fn item(state: &web::Data<AppState>, caller: &Caller, a: ApprovalView) -> Result<Item, ConsoleError> {
    let refused = refusal(state, caller, &a).await?;
    item_with(state, caller, a, refused).await
}

/// [`item`], with the grant refusal already known.
async fn item_with(
    state: &web::Data<AppState>,
    caller: &Caller,
    a: ApprovalView,
    refusal: Option<String>,
) -> Result<Item, ConsoleError> {
    let store = state.store.clone();
    let (who, model) = (caller.clone(), a.model.clone());
    let mut review = state
        .blocking(move || -> Result<_, ApiError> {
            let mut conn = store.conn()?;
            let readable = who.readable_projects_in(&mut conn)?;
            Ok(evidence::review(&mut conn, &model, readable.as_deref())?)
        })
        .await??;
    let evaluations_total = review.evaluations.len();
    review.evaluations.truncate(EVALUATIONS_SHOWN);
    let may = |d: Decision| caller.may(&AppendEvents::ACTION, d.kind().as_str(), a.project.as_deref());
    let revoke_refusal = if a.state != "granted" {
        Some("only a granted approval is revoked".to_owned())
    } else if !may(Decision::Revoke) {
        Some(format!("{} may not revoke approvals in this project", caller.sub()))
    } else {
        state.governance.refusal(caller.sub(), caller.roles(), &a, Decision::Revoke).await.map_err(ApiError::from)?
    };
    let would_expire = (a.state == "pending").then(|| {
        let at = crate::store::projections::add_seconds(&crate::ledger::timestamp::now(), a.valid_for_seconds);
        utc(&at)
    });
    Ok(Item {
        quorum: quorum(&a),
        expired: a.state == "granted" && !a.valid,
        would_expire,
        refusal,
        revoke_refusal,
        evaluations_total,
        review,
        approval: a,
    })
}

/// Query of `/ui/approvals`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    environment: String,
    #[serde(default)]
    model: String,
    /// `1`: only those the viewer may decide now.
    #[serde(default)]
    mine: String,
    after_seq: Option<i64>,
}

#[derive(Template)]
#[template(path = "approvals.html", config = "src/http/console/askama.toml")]
struct InboxPage {
    chrome: Chrome,
    q: InboxQuery,
    items: Vec<Item>,
    next: Option<String>,
    environments: Vec<String>,
    approver: bool,
}

/// `GET /ui/approvals?state=&environment=&model=&mine=&after_seq=`; without
/// a query, what is pending and decidable by the viewer.
pub async fn inbox(
    req: HttpRequest,
    viewer: Viewer<ReadEvents>,
    state: web::Data<AppState>,
    q: web::Query<InboxQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let mut q = q.into_inner();
    let approver = approves_somewhere(&state, viewer.guard.caller());
    if req.query_string().is_empty() {
        // A risk officer sees what waits for her; anyone else, what waits.
        q.state = "pending".into();
        q.mine = if approver { "1" } else { "" }.into();
    }
    if let Some(s) = given(&q.state) {
        if crate::ledger::kind::ApprovalState::parse(&s).is_none() {
            return Err(ApiError::new(
                crate::error_code::ErrorCode::InvalidQuery,
                "state must be pending, granted, rejected or revoked",
            )
            .into());
        }
    }
    let caller = viewer.guard.caller().clone();
    let store = state.store.clone();
    let who = caller.clone();
    let readable = state.blocking(move || who.readable_projects_in(&mut *store.conn()?)).await??;
    let mine = q.mine == "1";
    let mut items = Vec::new();
    let mut after = q.after_seq.unwrap_or(0);
    let mut scanned = 0;
    // Someone who approves nothing has nothing to decide: no scan.
    let next = if mine && !approver {
        None
    } else {
        'pages: loop {
            let filter = ApprovalFilter {
                state: given(&q.state),
                model: given(&q.model),
                environment: given(&q.environment),
                after_seq: after,
                limit: PAGE as i64 + 1,
            };
            let page = state.governance.approvals(filter).await.map_err(ApiError::from)?;
            let more = page.len() > PAGE;
            for a in page.into_iter().take(PAGE) {
                after = a.requested_seq;
                scanned += 1;
                if !crate::governance::lineage::project_visible(a.project.as_deref(), readable.as_deref()) {
                    continue;
                }
                // The cheap checks first: evidence is read only for what is shown.
                let refused = refusal(&state, &caller, &a).await?;
                if mine && refused.is_some() {
                    continue;
                }
                items.push(item_with(&state, &caller, a, refused).await?);
                if items.len() == PAGE {
                    break 'pages Some(after);
                }
            }
            if !more || scanned >= SCAN {
                break more.then_some(after);
            }
        }
    };
    let next = next.map(|after| {
        format!(
            "/ui/approvals?state={}&environment={}&model={}&mine={}&after_seq={after}",
            urlencode(&q.state),
            urlencode(&q.environment),
            urlencode(&q.model),
            urlencode(&q.mine)
        )
    });
    page::html(&InboxPage {
        chrome: viewer.chrome("Approvals", "approvals"),
        environments: state.governance.rules().known(),
        approver,
        q,
        items,
        next,
    })
}

#[derive(Template)]
#[template(path = "approval.html", config = "src/http/console/askama.toml")]
struct ApprovalPage {
    chrome: Chrome,
    item: Item,
    /// The decision this visitor just recorded: seq and hash.
    recorded: Option<(u64, String, String)>,
    /// What the server refused, to fix.
    error: Option<String>,
    reason: String,
    override_reason: String,
}

/// Query of `/ui/approvals/{id}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalQuery {
    recorded: Option<u64>,
}

/// The approval `id` the caller may read, or 404.
async fn readable_approval(state: &AppState, caller: &Caller, id: &str) -> Result<ApprovalView, ConsoleError> {
    let found = state.governance.approval(id).await.map_err(ApiError::from)?;
    found
        .filter(|a| caller.reads(a.project.as_deref()))
        .ok_or_else(|| ApiError::not_found(format!("no approval {id}")).into())
}

/// `GET /ui/approvals/{id}?recorded=SEQ`.
pub async fn page(
    req: HttpRequest,
    viewer: Viewer<ReadEvents>,
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<ApprovalQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let caller = viewer.guard.caller().clone();
    let a = readable_approval(&state, &caller, &id).await?;
    let recorded = match q.recorded {
        Some(seq) => {
            let guard = viewer.also::<ReadEvents>(&req)?;
            let (event, _) = crate::http::events::read_one(&state, guard, seq).await?;
            Some((event.seq, event.kind.clone(), hex::encode(event.hash)))
        }
        None => None,
    };
    let item = item(&state, &caller, a).await?;
    let chrome =
        viewer.chrome(format!("Approval of {} for {}", item.approval.model, item.approval.environment), "approvals");
    page::html(&ApprovalPage {
        chrome,
        item,
        recorded,
        error: None,
        reason: String::new(),
        override_reason: String::new(),
    })
}

/// Form of `POST /ui/approvals/{id}`.
#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    decision: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    override_reason: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/approvals/{id}`: records the decision through the API's
/// service, with the same checks; a refusal is shown on the page.
pub async fn decide(
    viewer: Viewer<AppendEvents>,
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: web::Form<DecisionForm>,
) -> Result<HttpResponse, ConsoleError> {
    viewer.check_csrf(&form.csrf)?;
    let form = form.into_inner();
    let caller = viewer.guard.caller().clone();
    let a = readable_approval(&state, &caller, &id).await?;
    let outcome = match Decision::parse(&form.decision) {
        None => Err(ApiError::new(
            crate::error_code::ErrorCode::InvalidRequest,
            format!("choose grant, reject or revoke, not {:?}", form.decision),
        )),
        Some(decision) => match viewer.guard.require_append(decision.kind().as_str(), a.project.as_deref()) {
            Err(e) => Err(e),
            Ok(()) => {
                // The override field sits in the grant-or-reject form: it
                // speaks only for a grant.
                let override_reason = (decision == Decision::Grant && !form.override_reason.trim().is_empty())
                    .then(|| form.override_reason.clone());
                let request =
                    DecisionRequest { decision: form.decision.clone(), reason: form.reason.clone(), override_reason };
                state.governance.decide(caller.sub(), caller.roles(), &a.id, request).await.map_err(ApiError::from)
            }
        },
    };
    match outcome {
        Ok(view) => {
            let mine = view.decisions.iter().rev().find(|d| crate::ledger::actor::same_subject(&d.actor, caller.sub()));
            let to = match mine {
                Some(d) => format!("/ui/approvals/{}?recorded={}", urlencode(&view.id), d.seq),
                None => format!("/ui/approvals/{}", urlencode(&view.id)),
            };
            Ok(see_other(&to))
        }
        Err(e) => {
            let status = e.status();
            let item = item(&state, &caller, a).await?;
            let chrome = viewer.chrome("Decision refused", "approvals");
            let page = ApprovalPage {
                chrome,
                item,
                recorded: None,
                error: Some(e.message().to_owned()),
                reason: form.reason,
                override_reason: form.override_reason,
            };
            page::html_with(if status == StatusCode::OK { StatusCode::UNPROCESSABLE_ENTITY } else { status }, &page)
        }
    }
}
