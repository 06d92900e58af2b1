//! The deployment gate: may this model version go to this environment now?
//!
//! [`decide`] is a pure function of the projections and the time, so the
//! answer given to `GET /api/v1/gate` and the check made inside the append
//! transaction of `POST /api/v1/deployments` are the same code.

use serde::Serialize;

use super::readiness::{Override, RuleCheck};
use super::rules::{Environment, UnknownEnvironment};
use crate::store::projections::{ApprovalRow, DecisionRow, EntityRow};

/// An approval as the gate saw it.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalSummary {
    pub id: String,
    pub state: String,
    pub requested_by: String,
    pub requested_seq: i64,
    pub required_approvals: i32,
    pub granted_by: Vec<Grant>,
    pub granted_at: Option<String>,
    pub expires_at: Option<String>,
    /// Whether it is granted and not expired at the time of the decision.
    pub valid: bool,
}

/// An event the gate relied on.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Citation {
    pub seq: i64,
    pub hash: String,
}

/// One approver's grant.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub actor: String,
    pub seq: i64,
    pub recorded_at: String,
}

/// The gate's answer.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateDecision {
    /// `allow` or `deny`.
    pub decision: &'static str,
    pub allowed: bool,
    pub model: String,
    pub environment: String,
    pub gated: bool,
    pub reasons: Vec<String>,
    pub approvals: Vec<ApprovalSummary>,
    /// The seqs of the events the decision relied on: the request and the
    /// grants of each valid approval.
    pub relied_on_seqs: Vec<i64>,
    /// The same events with their hashes, as read from the ledger when the
    /// decision was made (prove each with `/api/v1/proofs/inclusion`).
    pub relied_on: Vec<Citation>,
    /// What the environment asks of the version beyond approvals
    /// (evaluations, monitoring), each with its verdict and any override.
    pub checks: Vec<RuleCheck>,
    pub evaluated_at: String,
}

/// What the gate weighs beside approvals: the environment's checks of the
/// version, and the overrides recorded on each approval's grants (by
/// approval id).
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    pub checks: Vec<RuleCheck>,
    pub overrides: std::collections::BTreeMap<String, Vec<Override>>,
}

/// Decides from how the (declared) environment is governed, the model's
/// entity, its approvals for the environment (with their decisions) and the
/// time `now`. An environment the rules do not declare is denied: there is
/// no default to fall back on.
pub fn decide(
    model: &str,
    environment: &str,
    governed: Result<Environment<'_>, &UnknownEnvironment>,
    entity: Option<&EntityRow>,
    approvals: &[(ApprovalRow, Vec<DecisionRow>)],
    readiness: &Readiness,
    now: &str,
) -> GateDecision {
    let mut checks = readiness.checks.clone();
    let summaries: Vec<ApprovalSummary> = approvals.iter().map(|(a, d)| summarize(a, d, now)).collect();
    let mut reasons = Vec::new();
    let mut relied_on = Vec::new();
    let registered = entity.is_some_and(|e| e.state.contains("\"model.registered\""));
    let allowed = if let Err(unknown) = governed {
        reasons.push(unknown.to_string());
        false
    } else if !registered {
        reasons.push(format!("{model} is not a registered model version"));
        false
    } else if entity.is_some_and(|e| e.status == "retired") {
        reasons.push(format!("{model} is retired"));
        false
    } else if governed == Ok(Environment::Ungated) {
        reasons.push(format!(
            "environment {environment} is declared with `gated = false` in policies/approvals.toml: no approval is needed"
        ));
        true
    } else if let Some(valid) = chosen(&summaries, readiness) {
        let who: Vec<&str> = valid.granted_by.iter().map(|g| g.actor.as_str()).collect();
        reasons.push(format!(
            "approval {} granted by {} is valid until {}",
            valid.id,
            who.join(" and "),
            valid.expires_at.as_deref().unwrap_or("?")
        ));
        relied_on.push(valid.requested_seq);
        relied_on.extend(valid.granted_by.iter().map(|g| g.seq));
        // A failing rule is passed only by an override of this approval that
        // named it: an override given for a stale evaluation does not cover
        // a breach opened after it.
        let overrides = readiness.overrides.get(&valid.id).map(Vec::as_slice).unwrap_or_default();
        let mut open = false;
        for check in &mut checks {
            relied_on.extend(check.seqs.iter().copied());
            if check.passed {
                reasons.push(check.reason.clone());
                continue;
            }
            match overrides.iter().find(|o| o.rules.iter().any(|r| r == check.rule)) {
                Some(o) => {
                    reasons.push(format!("{}; overridden by {} at seq {}: {}", check.reason, o.actor, o.seq, o.reason));
                    relied_on.push(o.seq);
                    check.overridden_by = Some(o.clone());
                }
                None => {
                    reasons.push(format!("{}; no grant of approval {} overrides it", check.reason, valid.id));
                    open = true;
                }
            }
        }
        !open
    } else {
        if summaries.is_empty() {
            reasons.push(format!("no approval of {model} for {environment} has been requested"));
        }
        for s in &summaries {
            reasons.push(match s.state.as_str() {
                "pending" => format!(
                    "approval {} is pending: {} of {} approvals",
                    s.id,
                    s.granted_by.len(),
                    s.required_approvals
                ),
                "granted" => format!("approval {} expired at {}", s.id, s.expires_at.as_deref().unwrap_or("?")),
                other => format!("approval {} was {other}", s.id),
            });
            relied_on.push(s.requested_seq);
        }
        for check in checks.iter().filter(|c| !c.passed) {
            reasons.push(check.reason.clone());
            relied_on.extend(check.seqs.iter().copied());
        }
        false
    };
    relied_on.sort_unstable();
    relied_on.dedup();
    GateDecision {
        decision: if allowed { "allow" } else { "deny" },
        allowed,
        model: model.to_owned(),
        environment: environment.to_owned(),
        gated: !matches!(governed, Ok(Environment::Ungated)),
        reasons,
        approvals: summaries,
        relied_on_seqs: relied_on,
        relied_on: Vec::new(),
        checks,
        evaluated_at: now.to_owned(),
    }
}

/// The valid approval the gate relies on: the first whose grants override
/// every failing check, else the first valid one (whose reasons then say
/// what is not overridden).
fn chosen<'a>(summaries: &'a [ApprovalSummary], readiness: &Readiness) -> Option<&'a ApprovalSummary> {
    let covers = |s: &ApprovalSummary| {
        let overrides = readiness.overrides.get(&s.id).map(Vec::as_slice).unwrap_or_default();
        readiness
            .checks
            .iter()
            .filter(|c| !c.passed)
            .all(|c| overrides.iter().any(|o| o.rules.iter().any(|r| r == c.rule)))
    };
    let mut valid = summaries.iter().filter(|s| s.valid);
    summaries.iter().filter(|s| s.valid).find(|s| covers(s)).or_else(|| valid.next())
}

/// An approval with its grants, valid or not at `now`.
pub fn summarize(approval: &ApprovalRow, decisions: &[DecisionRow], now: &str) -> ApprovalSummary {
    let mut granted_by: Vec<Grant> = Vec::new();
    for d in decisions.iter().filter(|d| d.decision == "grant") {
        if !granted_by.iter().any(|g| crate::ledger::actor::same_subject(&g.actor, &d.actor)) {
            granted_by.push(Grant { actor: d.actor.clone(), seq: d.seq, recorded_at: d.recorded_at.clone() });
        }
    }
    let valid = approval.state == "granted" && approval.expires_at.as_deref().is_some_and(|e| e > now);
    ApprovalSummary {
        id: approval.id.clone(),
        state: approval.state.clone(),
        requested_by: approval.requested_by.clone(),
        requested_seq: approval.requested_seq,
        required_approvals: approval.required_approvals,
        granted_by,
        granted_at: approval.granted_at.clone(),
        expires_at: approval.expires_at.clone(),
        valid,
    }
}
