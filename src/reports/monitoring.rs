//! What monitoring recorded about a model version, as the reports read it
//! as of their checkpoint: metric reports drawn as charts, breaches and
//! recoveries, drift, traffic shares, and the retraining runs a breach
//! triggered. The dossier, the inventory and the AI Act log share it.

use std::collections::{BTreeMap, BTreeSet};

use super::models::{about, attrs};
use super::{Chart, ChartLimit, ChartSeries, ReportError, Statement};
use crate::governance::lineage::{self, Visibility};
use crate::governance::monitoring_rules::{Bound, MonitoringRules};
use crate::governance::ApprovalRules;
use crate::ledger::{Event, Kind};
use crate::store::{events, DbConn, EventFilter};

/// Points per chart series at most: the newest are kept.
const MAX_POINTS: usize = 2000;

/// The monitoring record of one model version.
#[derive(Debug, Default)]
pub struct Record {
    /// Metric reports about the version, in seq order.
    pub reports: Vec<Event>,
    /// Breaches and recoveries, in seq order.
    pub changes: Vec<Event>,
    pub drift: Vec<Event>,
    /// Traffic changes of the deployments it served in that name it.
    pub traffic: Vec<Event>,
}

impl Record {
    /// The monitoring events of `model` up to `tree_size`: those about the
    /// version itself, and those about `deployments` that name it.
    pub fn read(
        conn: &mut DbConn,
        model: &str,
        deployments: &BTreeSet<String>,
        tree_size: u64,
        readable: Visibility<'_>,
    ) -> Result<Self, ReportError> {
        let mut all = about(conn, model, tree_size, readable)?;
        for d in deployments {
            all.extend(about(conn, d, tree_size, readable)?.into_iter().filter(|e| {
                let a = attrs(e);
                a["model"] == model
                    || (e.kind == Kind::DeploymentTrafficChanged
                        && a["shares"].as_object().is_some_and(|s| s.contains_key(model)))
            }));
        }
        // A split may name the version before any deployment event does:
        // traffic changes are read by kind (they are few).
        all.extend(of_kind(conn, Kind::DeploymentTrafficChanged, 0, tree_size)?.into_iter().filter(|e| {
            !deployments.contains(&e.subject)
                && lineage::project_visible(e.project.as_deref(), readable)
                && attrs(e)["shares"].as_object().is_some_and(|s| s.contains_key(model))
        }));
        all.sort_by_key(|e| e.seq);
        let mut record = Self::default();
        for e in all {
            match Kind::from_name(&e.kind) {
                Some(Kind::MonitoringMetricReported) => record.reports.push(e),
                Some(Kind::MonitoringThresholdBreached | Kind::MonitoringThresholdRecovered) => record.changes.push(e),
                Some(Kind::MonitoringDriftDetected) => record.drift.push(e),
                Some(Kind::DeploymentTrafficChanged) => record.traffic.push(e),
                _ => {}
            }
        }
        Ok(record)
    }

    /// The critical breaches still open at the checkpoint (see [`open_breaches`]).
    pub fn open_breaches(&self) -> Vec<&Event> {
        open_breaches(&self.changes)
    }
}

/// The critical breaches still open among `events` (a version's own, in seq
/// order; breaches and recoveries are recorded about the version): per
/// rule, environment and segment, the latest change is a critical breach.
pub fn open_breaches(events: &[Event]) -> Vec<&Event> {
    {
        let mut latest: BTreeMap<(String, String, String), &Event> = BTreeMap::new();
        for e in events
            .iter()
            .filter(|e| e.kind == Kind::MonitoringThresholdBreached || e.kind == Kind::MonitoringThresholdRecovered)
        {
            let a = attrs(e);
            let key = |f: &str| a[f].as_str().unwrap_or_default().to_owned();
            latest.insert((key("rule"), key("environment"), key("segment")), e);
        }
        latest
            .into_values()
            .filter(|e| e.kind == Kind::MonitoringThresholdBreached && attrs(e)["severity"] == "critical")
            .collect()
    }
}

/// Findings for a version live in `places` with open breaches among its
/// own `events`.
pub fn open_breach_findings(events: &[Event], model: &str, places: &[String]) -> Vec<Statement> {
    if places.is_empty() {
        return Vec::new();
    }
    open_breaches(events)
        .into_iter()
        .map(|b| {
            let a = attrs(b);
            let side = if a["bound"] == "max" { "maximum" } else { "minimum" };
            Statement::citing(
                format!(
                    "FINDING: {model} is live in {} with an open monitoring breach: rule {} in {}, {} {} against the {side} {} (window ending {}).",
                    places.join(", "),
                    a["rule"].as_str().unwrap_or("?"),
                    a["environment"].as_str().unwrap_or("?"),
                    a["metric"].as_str().unwrap_or("?"),
                    a["value"],
                    a["threshold"],
                    a["window"]["end"].as_str().unwrap_or("?"),
                ),
                b,
            )
        })
        .collect()
}

/// Statements about what this version answers: each run that trained it
/// and was started in answer to a breach or drift (`triggered_by`).
pub fn answered(
    conn: &mut DbConn,
    runs: &[String],
    tree_size: u64,
    readable: Visibility<'_>,
) -> Result<Vec<Statement>, ReportError> {
    let mut out = Vec::new();
    for run in runs {
        for started in about(conn, run, tree_size, readable)?.into_iter().filter(|e| e.kind == Kind::RunStarted) {
            let Some(seq) = attrs(&started)["triggered_by"].as_u64() else { continue };
            let Some(cause) = events::by_seq(conn, seq)?
                .filter(|e| e.seq <= tree_size && lineage::project_visible(e.project.as_deref(), readable))
            else {
                continue;
            };
            let a = attrs(&cause);
            out.push(Statement::citing(
                format!(
                    "{run} was started at seq {} in answer to {} of seq {} about {} ({}{}).",
                    started.seq,
                    cause.kind,
                    cause.seq,
                    cause.subject,
                    a["rule"].as_str().map_or_else(|| "drift".to_owned(), |r| format!("rule {r}")),
                    a["environment"].as_str().map(|e| format!(" in {e}")).unwrap_or_default(),
                ),
                &started,
            ));
        }
    }
    Ok(out)
}

/// The monitoring rules in force at `tree_size`, for the charts' limits:
/// the latest `monitoring.rules_changed` recorded by then.
pub fn rules_at(
    conn: &mut DbConn,
    tree_size: u64,
    environments: &ApprovalRules,
) -> Result<Option<MonitoringRules>, ReportError> {
    let found = of_kind(conn, Kind::MonitoringRulesChanged, 0, tree_size)?.pop();
    Ok(found.and_then(|e| {
        let text = attrs(&e)["rules"].as_str().map(str::to_owned)?;
        MonitoringRules::parse_recorded(&text, environments).ok()
    }))
}

/// The events of `kind` after `after` and up to `tree_size`, in seq order.
fn of_kind(conn: &mut DbConn, kind: Kind, mut after: u64, tree_size: u64) -> Result<Vec<Event>, ReportError> {
    let mut out = Vec::new();
    while after < tree_size {
        let filter =
            EventFilter { kind: Some(kind.as_str().into()), after_seq: after, limit: 1000, ..Default::default() };
        let page = events::list(conn, &filter)?;
        let Some(last) = page.last().map(|e| e.seq) else { break };
        out.extend(page.into_iter().filter(|e| e.seq <= tree_size));
        after = last;
    }
    Ok(out)
}

fn unix(at: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(at).ok().map(|t| t.timestamp())
}

/// One chart per metric reported, one line per environment and segment,
/// with the thresholds of the rules in force that watch it.
pub fn charts(record: &Record, model: &str, rules: Option<&MonitoringRules>) -> Vec<Chart> {
    let name = crate::ledger::EntityRef::parse(model).map(|r| r.name().to_owned()).unwrap_or_default();
    let mut by_metric: BTreeMap<String, BTreeMap<String, Vec<(i64, f64)>>> = BTreeMap::new();
    let mut environments: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in &record.reports {
        let a = attrs(e);
        let (Some(metric), Some(value), Some(end)) =
            (a["metric"].as_str(), a["value"].as_f64(), a["window"]["end"].as_str().and_then(unix))
        else {
            continue;
        };
        let environment = environment_of(e, &a);
        let series = match a["segment"].as_str() {
            Some(segment) => format!("{environment} {segment}"),
            None => environment.clone(),
        };
        environments.entry(metric.to_owned()).or_default().insert(environment);
        by_metric.entry(metric.to_owned()).or_default().entry(series).or_default().push((end, value));
    }
    by_metric
        .into_iter()
        .map(|(metric, series)| {
            let mut limits = Vec::new();
            for rule in rules.map(|r| r.thresholds.as_slice()).unwrap_or_default() {
                let watched =
                    environments.get(&metric).into_iter().flatten().any(|env| rule.applies(&name, env, &metric));
                if !watched || limits.iter().any(|l: &ChartLimit| l.value == rule.threshold) {
                    continue;
                }
                let side = match rule.bound {
                    Bound::Min => "min",
                    Bound::Max => "max",
                };
                limits.push(ChartLimit { label: format!("{} {side}", rule.name), value: rule.threshold });
                if let Some(w) = rule.warning {
                    limits.push(ChartLimit { label: format!("{} warning", rule.name), value: w });
                }
            }
            let series = series
                .into_iter()
                .map(|(name, mut points)| {
                    points.sort_by_key(|p| p.0);
                    let skip = points.len().saturating_sub(MAX_POINTS);
                    ChartSeries { name, points: points.split_off(skip) }
                })
                .collect();
            Chart {
                title: format!("{metric} of {model} by observation window"),
                y_label: metric.clone(),
                x_label: "window end (UTC)".into(),
                series,
                limits,
            }
        })
        .collect()
}

/// Where a report or drift event was observed.
fn environment_of(e: &Event, a: &serde_json::Value) -> String {
    match a["environment"].as_str() {
        Some(env) => env.to_owned(),
        None => e
            .subject
            .strip_prefix("deployment:")
            .map(crate::governance::kinds::deployment_environment)
            .unwrap_or("?")
            .to_owned(),
    }
}

/// The statements of the dossier's monitoring section: each metric's
/// series summed up, every breach, recovery and drift event, the traffic
/// shares, and the runs a breach of this version triggered.
pub fn statements(record: &Record, model: &str, triggered: &[(Event, Event)], registered: &Event) -> Vec<Statement> {
    let mut out = Vec::new();
    let mut series: BTreeMap<(String, String), Vec<&Event>> = BTreeMap::new();
    for e in &record.reports {
        let a = attrs(e);
        let metric = a["metric"].as_str().unwrap_or_default().to_owned();
        let mut environment = environment_of(e, &a);
        if let Some(segment) = a["segment"].as_str() {
            environment = format!("{environment}, segment {segment}");
        }
        series.entry((metric, environment)).or_default().push(e);
    }
    for ((metric, environment), reports) in &series {
        let values: Vec<f64> = reports.iter().filter_map(|e| attrs(e)["value"].as_f64()).collect();
        let (lo, hi) = values.iter().fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
        let (first, last) = (reports[0], reports[reports.len() - 1]);
        let (fa, la) = (attrs(first), attrs(last));
        out.push(Statement::citing(
            format!(
                "{metric} in {environment}: {} report(s), windows from {} to {}; lowest {lo}, highest {hi}, latest {} (window ending {}).",
                reports.len(),
                fa["window"]["start"].as_str().unwrap_or("?"),
                la["window"]["end"].as_str().unwrap_or("?"),
                la["value"],
                la["window"]["end"].as_str().unwrap_or("?"),
            ),
            last,
        ));
    }
    for e in &record.changes {
        let a = attrs(e);
        let side = if a["bound"] == "max" { "maximum" } else { "minimum" };
        let against = if a["severity"] == "warning" {
            format!("the warning level {} (the {side} is {})", a["warning"], a["threshold"])
        } else {
            format!("the {side} {}", a["threshold"])
        };
        let text = if e.kind == Kind::MonitoringThresholdBreached {
            format!(
                "BREACH ({}): rule {} in {}: {} {} beyond {against} over {} consecutive window(s), window ending {}; reports {}; rules of seq {}.",
                a["severity"].as_str().unwrap_or("?"),
                a["rule"].as_str().unwrap_or("?"),
                a["environment"].as_str().unwrap_or("?"),
                a["metric"].as_str().unwrap_or("?"),
                a["value"],
                a["consecutive"],
                a["window"]["end"].as_str().unwrap_or("?"),
                seqs(&a["report_seqs"]),
                a["rules_seq"],
            )
        } else {
            format!(
                "RECOVERY: rule {} in {}: {} {} back inside the {side} {} (window ending {}), closing the breach of seq {}.",
                a["rule"].as_str().unwrap_or("?"),
                a["environment"].as_str().unwrap_or("?"),
                a["metric"].as_str().unwrap_or("?"),
                a["value"],
                a["threshold"],
                a["window"]["end"].as_str().unwrap_or("?"),
                a["breach_seq"],
            )
        };
        out.push(Statement::citing(text, e));
    }
    for e in &record.drift {
        let a = attrs(e);
        let what = a["feature"].as_str().map_or_else(|| "the prediction".to_owned(), |f| format!("feature {f}"));
        out.push(Statement::citing(
            format!(
                "DRIFT of {what} in {}: {} {} against {} (window ending {}).",
                environment_of(e, &a),
                a["statistic"].as_str().unwrap_or("?"),
                a["value"],
                a["reference"].as_str().unwrap_or("?"),
                a["window"]["end"].as_str().unwrap_or("?"),
            ),
            e,
        ));
    }
    for e in &record.traffic {
        let a = attrs(e);
        let shares: Vec<String> =
            a["shares"].as_object().into_iter().flatten().map(|(m, p)| format!("{m} {p}%")).collect();
        out.push(Statement::citing(
            format!(
                "Traffic of {} ({}) set at {}: {}.",
                e.subject,
                a["strategy"].as_str().unwrap_or("split").replace('_', "/"),
                e.recorded_at,
                shares.join(", ")
            ),
            e,
        ));
    }
    for (breach, run) in triggered {
        out.push(Statement::citing(
            format!(
                "The breach of seq {} ({}) triggered {} (started at seq {} by {}).",
                breach.seq,
                attrs(breach)["rule"].as_str().unwrap_or("?"),
                run.subject,
                run.seq,
                run.actor
            ),
            run,
        ));
    }
    if out.is_empty() {
        out.push(Statement::citing(format!("No monitoring of {model} is on the record."), registered));
    }
    out
}

fn seqs(v: &serde_json::Value) -> String {
    let list: Vec<String> = v.as_array().into_iter().flatten().map(ToString::to_string).collect();
    list.join(", ")
}

/// The `run.started` events up to `tree_size` whose `triggered_by` names
/// one of `breaches` (seqs), with the breach.
pub fn triggered_runs(
    conn: &mut DbConn,
    breaches: &[&Event],
    tree_size: u64,
    readable: Visibility<'_>,
) -> Result<Vec<(Event, Event)>, ReportError> {
    if breaches.is_empty() {
        return Ok(Vec::new());
    }
    let by_seq: BTreeMap<u64, &Event> = breaches.iter().map(|e| (e.seq, *e)).collect();
    let first = breaches.iter().map(|e| e.seq).min().unwrap_or(0);
    let mut out = Vec::new();
    for e in of_kind(conn, Kind::RunStarted, first, tree_size)? {
        if !lineage::project_visible(e.project.as_deref(), readable) {
            continue;
        }
        if let Some(breach) = attrs(&e)["triggered_by"].as_u64().and_then(|s| by_seq.get(&s)) {
            out.push(((*breach).clone(), e));
        }
    }
    Ok(out)
}
