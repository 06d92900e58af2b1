//! Whether a model version is ready for a gated environment beyond its
//! approvals: what `policies/approvals.toml` asks of its evaluations and its
//! monitoring. The gate, the approval inbox and every grant read the same
//! checks, so what an approver is warned about is what the gate enforces.

use serde::Serialize;

use super::monitoring_rules::{Level, MonitoringRules};
use super::rules::EnvironmentRule;
use crate::ledger::{EntityRef, Kind};
use crate::store::{events, monitoring as series, DbConn, StoreError};

/// The rule an evaluation must meet (`evaluation_max_age` is set).
pub const EVALUATION: &str = "evaluation";
/// The rule that a version must have no open breach (`no_open_breach`).
pub const OPEN_BREACH: &str = "no_open_breach";

/// One rule's verdict on a model version.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleCheck {
    /// `evaluation` or `no_open_breach`.
    pub rule: &'static str,
    pub passed: bool,
    /// What was found (or found missing), naming the events.
    pub reason: String,
    /// The events the verdict rests on: the evaluation relied on, or the
    /// breaches found open.
    pub seqs: Vec<i64>,
    /// The grant that overrode this failing rule, when the gate accepted one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overridden_by: Option<Override>,
}

/// A grant recorded with an `override_reason`.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Override {
    pub actor: String,
    pub seq: i64,
    pub reason: String,
    /// The rules failing when it was granted, which it overrides.
    pub rules: Vec<String>,
}

/// The checks `rule` asks of `model` in `environment` at `now`.
pub fn check(
    conn: &mut DbConn,
    rule: &EnvironmentRule,
    environment: &str,
    model: &str,
    monitoring: &MonitoringRules,
    now: &str,
) -> Result<Vec<RuleCheck>, StoreError> {
    let mut checks = Vec::new();
    if let Some(max_age) = rule.evaluation_max_age_seconds {
        checks.push(evaluation(conn, max_age, environment, model, monitoring, now)?);
    }
    if rule.no_open_breach {
        checks.push(open_breaches(conn, model)?);
    }
    Ok(checks)
}

/// The failing checks, by rule name.
pub fn failing(checks: &[RuleCheck]) -> Vec<&RuleCheck> {
    checks.iter().filter(|c| !c.passed).collect()
}

/// How many of a version's newest evaluations the rule looks through.
const EVALUATIONS_READ: u32 = 200;
/// How many it reads first: the newest nearly always qualifies, and each
/// row is a page read on a large ledger.
const FIRST_READ: u32 = 1;

/// The datasets the runs that produced `model` read.
fn training_datasets(conn: &mut DbConn, model: &str) -> Result<Vec<String>, StoreError> {
    use crate::store::projections::{edges_of, Direction};
    let runs: Vec<String> = edges_of(conn, &[model.to_owned()], Direction::Upstream, None, None)?
        .into_iter()
        .filter(|e| e.source.starts_with("run:"))
        .map(|e| e.source)
        .collect();
    if runs.is_empty() {
        return Ok(Vec::new());
    }
    Ok(edges_of(conn, &runs, Direction::Upstream, None, None)?
        .into_iter()
        .filter(|e| e.source.starts_with("dataset:"))
        .map(|e| e.source)
        .collect())
}

/// Human text for a number of seconds given in days, as the rules file does.
fn days(seconds: u64) -> String {
    if seconds.is_multiple_of(86_400) {
        format!("{}d", seconds / 86_400)
    } else {
        format!("{seconds}s")
    }
}

/// The newest evaluation recorded within `max_age` on data the version was
/// not trained on must pass: its evaluator said `passed: true`, and no
/// monitoring threshold for the model in this environment is crossed by a
/// metric it reports. A newer failing evaluation is never hidden behind an
/// older passing one.
fn evaluation(
    conn: &mut DbConn,
    max_age: u64,
    environment: &str,
    model: &str,
    monitoring: &MonitoringRules,
    now: &str,
) -> Result<RuleCheck, StoreError> {
    let label = format!("rule evaluation ({environment}: a passing evaluation no older than {})", days(max_age));
    let fail = |reason: String, seqs: Vec<i64>| RuleCheck {
        rule: EVALUATION,
        passed: false,
        reason: format!("{label}: {reason}"),
        seqs,
        overridden_by: None,
    };
    // Newest first: the newest evaluation that qualifies is the one judged.
    // It is nearly always among the newest few, so those are read first.
    let kind = Kind::ModelEvaluated.as_str();
    let mut evaluations = events::latest_about(conn, model, kind, FIRST_READ)?;
    if evaluations.len() == FIRST_READ as usize {
        evaluations = events::latest_about(conn, model, kind, EVALUATIONS_READ)?;
    }
    if evaluations.is_empty() {
        return Ok(fail(format!("{model} has no evaluation on the record"), Vec::new()));
    }
    let trained_on = training_datasets(conn, model)?;
    let cutoff = cutoff(now, max_age);
    let seq = |e: &crate::ledger::Event| i64::try_from(e.seq).unwrap_or(i64::MAX);
    let mut skipped = Vec::new();
    let mut chosen = None;
    for e in &evaluations {
        let reused: Vec<&String> = e.inputs.iter().filter(|i| trained_on.contains(i)).collect();
        if e.inputs.is_empty() {
            skipped.push(format!("seq {} names no evaluation dataset", e.seq));
        } else if !reused.is_empty() {
            let names: Vec<&str> = reused.iter().map(|s| s.as_str()).collect();
            skipped.push(format!("seq {} was on {}, which trained it", e.seq, names.join(", ")));
        } else if cutoff.as_deref().is_some_and(|c| e.recorded_at.as_str() < c) {
            // Newest first: every one after it is older still.
            skipped.push(format!("seq {} was recorded at {}, too long ago", e.seq, e.recorded_at));
            break;
        } else {
            chosen = Some(e);
            break;
        }
    }
    let Some(e) = chosen else {
        const NAMED: usize = 3;
        let more = skipped.len().saturating_sub(NAMED);
        skipped.truncate(NAMED);
        if more > 0 {
            skipped.push(format!("and {more} more"));
        }
        let seqs = evaluations.iter().take(NAMED).map(seq).collect();
        return Ok(fail(
            format!("no evaluation of {model} on data it was not trained on in that time ({})", skipped.join("; ")),
            seqs,
        ));
    };
    let attributes: serde_json::Value = serde_json::from_str(&e.attributes).unwrap_or_default();
    let on = e.inputs.join(", ");
    match attributes["passed"].as_bool() {
        Some(true) => {}
        Some(false) => {
            return Ok(fail(
                format!("the latest evaluation (seq {}, on {on}) did not pass its thresholds", e.seq),
                vec![seq(e)],
            ))
        }
        None => {
            return Ok(fail(
                format!("the latest evaluation (seq {}, on {on}) gives no verdict (`passed`)", e.seq),
                vec![seq(e)],
            ))
        }
    }
    let name = EntityRef::parse(model).map(|r| r.name().to_owned()).unwrap_or_default();
    if let Some(metrics) = attributes["metrics"].as_object() {
        for (metric, value) in metrics {
            let Some(value) = value.as_f64() else { continue };
            for threshold in monitoring.applying(&name, environment, metric) {
                if threshold.level(value) == Level::Critical {
                    return Ok(fail(
                        format!(
                            "the latest evaluation (seq {}, on {on}) has {metric} {value}, beyond the {} \
                             threshold {} of monitoring rule {}",
                            e.seq,
                            match threshold.bound {
                                super::monitoring_rules::Bound::Min => "minimum",
                                super::monitoring_rules::Bound::Max => "maximum",
                            },
                            threshold.threshold,
                            threshold.name
                        ),
                        vec![seq(e)],
                    ));
                }
            }
        }
    }
    Ok(RuleCheck {
        rule: EVALUATION,
        passed: true,
        reason: format!("{label}: evaluation seq {} on {on}, recorded at {}, passed", e.seq, e.recorded_at),
        seqs: vec![seq(e)],
        overridden_by: None,
    })
}

/// `now` minus `max_age`, in the ledger's timestamp format (which sorts as
/// text); `None` if `now` does not parse.
fn cutoff(now: &str, max_age: u64) -> Option<String> {
    let at = chrono::DateTime::parse_from_rfc3339(now).ok()?.with_timezone(&chrono::Utc);
    let age = chrono::Duration::seconds(i64::try_from(max_age).ok()?);
    Some(crate::ledger::timestamp::format(at - age))
}

/// No monitoring threshold is breached (beyond its bound) on the version in any environment:
/// a version that is failing where it runs is not promoted, nor its
/// approval renewed, without an override.
fn open_breaches(conn: &mut DbConn, model: &str) -> Result<RuleCheck, StoreError> {
    // A warning is a heads-up, not a breach: only critical series count.
    let open: Vec<_> =
        series::of_model(conn, model, true)?.into_iter().filter(|s| s.level == Level::Critical.as_str()).collect();
    if open.is_empty() {
        return Ok(RuleCheck {
            rule: OPEN_BREACH,
            passed: true,
            reason: format!("rule no_open_breach: {model} has no open monitoring breach"),
            seqs: Vec::new(),
            overridden_by: None,
        });
    }
    let listed: Vec<String> = open
        .iter()
        .map(|s| {
            let segment = if s.segment.is_empty() { String::new() } else { format!(", segment {}", s.segment) };
            format!("{} in {}{segment} (seq {})", s.rule, s.environment, s.open_seq.unwrap_or_default())
        })
        .collect();
    Ok(RuleCheck {
        rule: OPEN_BREACH,
        passed: false,
        reason: format!("rule no_open_breach: {model} has an open monitoring breach: {}", listed.join("; ")),
        seqs: open.iter().filter_map(|s| s.open_seq).collect(),
        overridden_by: None,
    })
}
