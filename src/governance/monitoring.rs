//! Monitoring on the record: metric reports judged against the thresholds
//! in force inside their append transaction, and the breaches and
//! recoveries the server records because of them.
//!
//! A report is about a model version in an environment (its subject is
//! `model:NAME@VERSION` with `environment`, or `deployment:ENV/NAME` with
//! `model`). Each threshold rule that watches its metric keeps a series per
//! (rule, model version, environment, segment): consecutive windows at or
//! beyond the warning, at or beyond the bound, and back inside. The series
//! live in the database beside the chain and move only in the transaction
//! that appends the report, so a breach is recorded exactly once however
//! the reports arrive (one batch, several replicas).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::monitoring_rules::{Level, MonitoringRules, ThresholdRule};
use super::rules::ApprovalRules;
use super::GovernanceError;
use crate::error_code::ErrorCode;
use crate::ledger::{timestamp, EntityRef, EventDraft, Kind, ValidationError};
use crate::store::connection::DbConn;
use crate::store::monitoring::{self as series_store, SeriesRow};
use crate::store::writer::{FollowUp, Follower, Refusal};
use crate::store::{projections, AppendError, Appended, StoreError};

/// Who records breaches, recoveries and the rules first used.
pub const MONITOR_ACTOR: &str = "govledger-monitoring";

/// The subject of `monitoring.rules_changed`.
pub const RULES_SUBJECT: &str = "policy:monitoring";

/// The longest observation window a report may give.
const MAX_WINDOW_SECONDS: i64 = 366 * 86_400;
/// How far in the future a window may end (clocks differ a little).
const FUTURE_SLACK_SECONDS: i64 = 300;

/// An observation window, `start` < `end`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub start: String,
    pub end: String,
}

impl Window {
    /// The window in canonical form, or why it is not one.
    pub fn checked(&self, field: &str) -> Result<Window, ValidationError> {
        let start = timestamp::normalize(&self.start).map_err(|e| e.in_field(&format!("{field}.start")))?;
        let end = timestamp::normalize(&self.end).map_err(|e| e.in_field(&format!("{field}.end")))?;
        let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).map(|t| t.timestamp()).unwrap_or(0);
        let (s, e) = (parse(&start), parse(&end));
        if s >= e {
            return Err(ValidationError::new(format!("{field}: start must be before end")));
        }
        if e - s > MAX_WINDOW_SECONDS {
            return Err(ValidationError::new(format!("{field}: a window is at most 366 days long")));
        }
        if e > chrono::Utc::now().timestamp() + FUTURE_SLACK_SECONDS {
            return Err(ValidationError::new(format!(
                "{field}: end is in the future; report a window once it has closed"
            )));
        }
        Ok(Window { start, end })
    }
}

/// What `monitoring.metric_reported` records.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricReported {
    pub metric: String,
    pub value: f64,
    pub window: Window,
    /// A slice of the traffic (`country=DE`), watched as its own series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// The model version observed, when the subject is a deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Where it was observed, when the subject is a model version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_size: Option<u64>,
}

/// Distribution-shift statistics a drift detector may report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftStatistic {
    Psi,
    Ks,
    Js,
    Kl,
    Wasserstein,
    ChiSquared,
    Hellinger,
}

/// What `monitoring.drift_detected` records.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DriftDetected {
    /// The input feature that drifted; absent when `prediction` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    /// The model's output distribution drifted.
    #[serde(default)]
    pub prediction: bool,
    pub statistic: DriftStatistic,
    pub value: f64,
    /// The detector's own alarm level, for the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// The dataset version the window was compared with.
    pub reference: String,
    pub window: Window,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

/// How traffic is split between model versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrafficStrategy {
    Canary,
    ChampionChallenger,
    AbTest,
    Full,
}

/// What `deployment.traffic_changed` records: the share of requests each
/// model version serves, in percent, summing to 100.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficChanged {
    pub shares: BTreeMap<String, f64>,
    pub strategy: TrafficStrategy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The model version and environment a report or drift event is about.
fn target(
    subject: &EntityRef,
    model: Option<&str>,
    environment: Option<&str>,
    kind: Kind,
) -> Result<(EntityRef, String), ValidationError> {
    match subject.entity_type() {
        "model" => {
            if subject.version().is_none() {
                return Err(ValidationError::new(format!("subject: {kind} is about a model version, {subject}@1")));
            }
            if model.is_some() {
                return Err(ValidationError::new(
                    "attributes.model: the subject names the model version already; give `model` only for a deployment",
                ));
            }
            let Some(environment) = environment else {
                return Err(ValidationError::new(format!(
                    "attributes.environment: say where {subject} was observed (a declared environment)"
                )));
            };
            Ok((subject.clone(), environment.to_owned()))
        }
        "deployment" => {
            let Some((deployed_in, _)) = subject.name().split_once('/') else {
                return Err(ValidationError::new("subject: a deployment is named ENVIRONMENT/NAME"));
            };
            if environment.is_some() {
                return Err(ValidationError::new(
                    "attributes.environment: the deployment names its environment already",
                ));
            }
            let Some(model) = model else {
                return Err(ValidationError::new(format!(
                    "attributes.model: name the model version {subject} served in the window (model:NAME@VERSION)"
                )));
            };
            let model = EntityRef::parse(model).map_err(|e| e.in_field("attributes.model"))?;
            if model.entity_type() != "model" || model.version().is_none() {
                return Err(ValidationError::new("attributes.model: expected a model version, model:NAME@VERSION"));
            }
            Ok((model, deployed_in.to_owned()))
        }
        other => Err(ValidationError::new(format!(
            "subject: {kind} is about a model version or a deployment, not a `{other}:` entity"
        ))),
    }
}

fn check_segment(segment: Option<&str>) -> Result<(), ValidationError> {
    match segment {
        Some(s) if s.is_empty() || s.len() > 128 || s.chars().any(char::is_control) => {
            Err(ValidationError::new("attributes.segment: 1 to 128 printable characters"))
        }
        _ => Ok(()),
    }
}

fn check_name(field: &str, name: &str) -> Result<(), ValidationError> {
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(ValidationError::new(format!("attributes.{field}: 1 to 128 printable characters")));
    }
    Ok(())
}

/// Shape checks of `monitoring.metric_reported` that need no rules (the
/// metric and environment are judged against the rules in force inside the
/// append transaction).
pub fn check_report(subject: &EntityRef, attributes: &serde_json::Value) -> Result<(), ValidationError> {
    let report =
        MetricReported::deserialize(attributes).map_err(|e| ValidationError::new(format!("attributes: {e}")))?;
    check_name("metric", &report.metric)?;
    check_segment(report.segment.as_deref())?;
    report.window.checked("attributes.window")?;
    target(subject, report.model.as_deref(), report.environment.as_deref(), Kind::MonitoringMetricReported)?;
    Ok(())
}

/// Shape checks of `monitoring.drift_detected`.
pub fn check_drift(subject: &EntityRef, attributes: &serde_json::Value) -> Result<(), ValidationError> {
    let drift = DriftDetected::deserialize(attributes).map_err(|e| ValidationError::new(format!("attributes: {e}")))?;
    match (&drift.feature, drift.prediction) {
        (Some(feature), false) => check_name("feature", feature)?,
        (None, true) => {}
        _ => {
            return Err(ValidationError::new(
                "attributes: name the drifted `feature`, or set `prediction: true` for the model's output, not both",
            ))
        }
    }
    if !drift.value.is_finite() {
        return Err(ValidationError::new("attributes.value: a finite number"));
    }
    let reference = EntityRef::parse(&drift.reference).map_err(|e| e.in_field("attributes.reference"))?;
    if reference.entity_type() != "dataset" || reference.version().is_none() {
        return Err(ValidationError::new(
            "attributes.reference: the dataset version compared with, dataset:NAME@VERSION",
        ));
    }
    check_segment(drift.segment.as_deref())?;
    drift.window.checked("attributes.window")?;
    target(subject, drift.model.as_deref(), drift.environment.as_deref(), Kind::MonitoringDriftDetected)?;
    Ok(())
}

/// Checks of `deployment.traffic_changed`: model versions with shares in
/// (0, 100] that sum to 100.
pub fn check_traffic(attributes: &serde_json::Value) -> Result<(), ValidationError> {
    let traffic =
        TrafficChanged::deserialize(attributes).map_err(|e| ValidationError::new(format!("attributes: {e}")))?;
    if traffic.shares.is_empty() || traffic.shares.len() > 10 {
        return Err(ValidationError::new("attributes.shares: between 1 and 10 model versions"));
    }
    for (model, share) in &traffic.shares {
        let r = EntityRef::parse(model).map_err(|e| e.in_field("attributes.shares"))?;
        if r.entity_type() != "model" || r.version().is_none() {
            return Err(ValidationError::new(format!(
                "attributes.shares: {model:?} is not a model version, model:NAME@VERSION"
            )));
        }
        if !(share.is_finite() && *share > 0.0 && *share <= 100.0) {
            return Err(ValidationError::new(format!(
                "attributes.shares: {model} has {share}%; a share is more than 0 and at most 100 (leave a version out to give it none)"
            )));
        }
    }
    let total: f64 = traffic.shares.values().sum();
    if (total - 100.0).abs() > 1e-6 {
        return Err(ValidationError::new(format!("attributes.shares: the shares sum to {total}%, not 100%")));
    }
    if traffic.strategy == TrafficStrategy::Full && traffic.shares.len() != 1 {
        return Err(ValidationError::new("attributes.strategy: `full` gives one model version 100%"));
    }
    Ok(())
}

/// What `monitoring.threshold_breached` and `.threshold_recovered` record.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdChange {
    pub rule: String,
    /// The seq of the `monitoring.rules_changed` event the rule was read from.
    pub rules_seq: u64,
    pub metric: String,
    pub bound: super::monitoring_rules::Bound,
    pub threshold: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<f64>,
    pub consecutive: u32,
    /// `warning` or `critical` for a breach, `ok` for a recovery.
    pub severity: String,
    pub environment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// The report that crossed, and its value and window.
    pub report_seq: u64,
    pub value: f64,
    pub window: Window,
    /// The consecutive reports that made it cross, oldest first.
    pub report_seqs: Vec<u64>,
    /// For an escalation or a recovery: the breach it follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breach_seq: Option<u64>,
}

/// The rules in force, as read from the ledger.
#[derive(Debug, Clone)]
pub struct RulesVersion {
    /// The seq of their `monitoring.rules_changed`; 0 until first recorded.
    pub seq: u64,
    pub text: String,
    pub rules: Arc<MonitoringRules>,
}

/// Errors of the monitoring service.
#[derive(Debug, thiserror::Error)]
pub enum MonitoringError {
    #[error(transparent)]
    Rules(#[from] super::monitoring_rules::MonitoringRulesError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Append(#[from] crate::store::AppendError),
    #[error("{0}")]
    Internal(String),
}

/// The monitoring service: the rules in force, and the follower that judges
/// reports in the append transaction.
pub struct Monitor {
    environments: Arc<ApprovalRules>,
    /// The rules recorded when none are on the record yet: the configured
    /// file, or the shipped one.
    initial: String,
    cached: Mutex<RulesVersion>,
}

impl Monitor {
    /// A monitor whose first rules are `initial` (checked here).
    pub fn new(environments: Arc<ApprovalRules>, initial: String) -> Result<Self, MonitoringError> {
        let rules = Arc::new(MonitoringRules::parse_recorded(&initial, &environments)?);
        let cached = Mutex::new(RulesVersion { seq: 0, text: initial.clone(), rules });
        Ok(Self { environments, initial, cached })
    }

    /// The rules in force as `conn` sees them (one indexed lookup when they
    /// have not changed).
    pub fn rules_at(&self, conn: &mut DbConn) -> Result<RulesVersion, StoreError> {
        let latest = series_store::latest_rules_seq(conn)?;
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        match latest {
            None => Ok(cached.clone()),
            Some(seq) if seq == cached.seq => Ok(cached.clone()),
            Some(seq) => {
                let text = series_store::rules_text(conn, seq)?;
                // Recorded rules were checked when recorded; should they no
                // longer parse, the last good ones stay in force.
                match MonitoringRules::parse_recorded(&text, &self.environments) {
                    Ok(rules) => *cached = RulesVersion { seq, text, rules: Arc::new(rules) },
                    Err(e) => tracing::error!(seq, error = %e, "the recorded monitoring rules no longer parse"),
                }
                Ok(cached.clone())
            }
        }
    }

    /// A draft of `monitoring.rules_changed` recording `text`, checked
    /// strictly (a person sent it) or as shipped rules are.
    pub fn rules_draft(&self, text: &str, strict: bool) -> Result<EventDraft, MonitoringError> {
        if strict {
            MonitoringRules::parse(text, &self.environments)?;
        } else {
            MonitoringRules::parse_recorded(text, &self.environments)?;
        }
        let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()));
        EventDraft::server(
            Kind::MonitoringRulesChanged,
            RULES_SUBJECT,
            None,
            json!({"rules": text, "sha256": digest}),
            None,
        )
        .map_err(|e| MonitoringError::Internal(e.to_string()))
    }

    /// The follower the writer runs for a job with metric reports.
    pub fn follower(self: &Arc<Self>) -> Follower {
        let me = self.clone();
        Box::new(move |conn, first_seq, drafts| me.follow(conn, first_seq, drafts))
    }

    fn follow(
        &self,
        conn: &mut DbConn,
        first_seq: u64,
        drafts: &[EventDraft],
    ) -> Result<Result<FollowUp, Refusal>, StoreError> {
        let mut version = self.rules_at(conn)?;
        let mut made = Vec::new();
        let mut reports = Vec::new();
        for (i, draft) in drafts.iter().enumerate() {
            if draft.kind.as_str() != Kind::MonitoringMetricReported.as_str() {
                continue;
            }
            let at = |m: String| if drafts.len() > 1 { format!("events[{i}]: {m}") } else { m };
            let attributes: serde_json::Value = serde_json::from_str(&draft.attributes).unwrap_or_default();
            let Ok(report) = MetricReported::deserialize(&attributes) else {
                return Ok(Err(Refusal::new(ErrorCode::InvalidEvent, at("attributes: not a metric report".into()))));
            };
            let Ok((model, environment)) = target(
                &draft.subject,
                report.model.as_deref(),
                report.environment.as_deref(),
                Kind::MonitoringMetricReported,
            ) else {
                return Ok(Err(Refusal::new(
                    ErrorCode::InvalidEvent,
                    at("subject: not a model version or deployment".into()),
                )));
            };
            let Some(spec) = version.rules.metrics.get(&report.metric) else {
                let known: Vec<&str> = version.rules.metrics.keys().map(String::as_str).collect();
                return Ok(Err(Refusal::new(
                    ErrorCode::UnknownMetric,
                    at(format!(
                        "attributes.metric: {:?} is not declared in the monitoring rules in force; declared metrics: {}",
                        report.metric,
                        known.join(", ")
                    )),
                )));
            };
            if let Some((low, high)) = spec.range {
                if !(low..=high).contains(&report.value) {
                    return Ok(Err(Refusal::new(
                        ErrorCode::InvalidEvent,
                        at(format!(
                            "attributes.value: {} is outside {}'s range [{low}, {high}]",
                            report.value, report.metric
                        )),
                    )));
                }
            }
            if let Err(unknown) = self.environments.lookup(&environment) {
                return Ok(Err(Refusal::new(ErrorCode::UnknownEnvironment, at(unknown.to_string()))));
            }
            reports.push((first_seq + i as u64, draft, report, model, environment));
        }
        if reports.is_empty() {
            return Ok(Ok(FollowUp { actor: MONITOR_ACTOR.to_owned(), drafts: made }));
        }
        let models: Vec<String> = {
            let mut m: Vec<String> = reports.iter().map(|r| r.3.to_string()).collect();
            m.sort();
            m.dedup();
            m
        };
        let registered: Vec<String> = projections::entities_by_ref(conn, &models)?
            .into_iter()
            .filter(|e| e.state.contains("\"model.registered\""))
            .map(|e| e.ref_)
            .collect();
        if let Some(missing) = models.iter().find(|m| !registered.contains(m)) {
            return Ok(Err(Refusal::new(
                ErrorCode::InvalidEvent,
                format!("attributes: {missing} is not a registered model version; register it before reporting on it"),
            )));
        }
        let next = |made: &Vec<EventDraft>| first_seq + drafts.len() as u64 + made.len() as u64;
        if version.seq == 0 {
            // The first report: the rules it is judged by go on the record
            // first, so that every breach can cite them.
            let Ok(draft) = self.rules_draft(&self.initial, false) else {
                return Err(StoreError::Internal("the initial monitoring rules do not parse".into()));
            };
            version.seq = next(&made);
            made.push(draft);
        }
        let keyed: Vec<(String, usize, &ThresholdRule)> = reports
            .iter()
            .enumerate()
            .flat_map(|(i, (_, _, report, model, environment))| {
                let version = &version;
                version
                    .rules
                    .applying(model.name(), environment, &report.metric)
                    .map(move |rule| (series_key(rule, model, environment, report.segment.as_deref()), i, rule))
            })
            .collect();
        let keys: Vec<String> = keyed.iter().map(|(k, _, _)| k.clone()).collect();
        let mut series: HashMap<String, Series> =
            series_store::load(conn, &keys)?.into_iter().map(|row| (row.key.clone(), Series::from_row(&row))).collect();
        let mut changed: Vec<String> = Vec::new();
        for (key, i, rule) in keyed {
            let (seq, draft, report, model, environment) = &reports[i];
            let Ok(window) = report.window.checked("window") else { continue };
            let s = series.entry(key.clone()).or_default();
            let Some(change) = s.observe(rule, report.value, &window.end, *seq) else {
                if !changed.contains(&key) {
                    changed.push(key);
                }
                continue;
            };
            let previous = s.open_seq;
            let attributes = ThresholdChange {
                rule: rule.name.clone(),
                rules_seq: version.seq,
                metric: rule.metric.clone(),
                bound: rule.bound,
                threshold: rule.threshold,
                warning: rule.warning,
                consecutive: rule.consecutive,
                severity: change.as_str().to_owned(),
                environment: environment.clone(),
                deployment: (draft.subject.entity_type() == "deployment").then(|| draft.subject.to_string()),
                segment: report.segment.clone(),
                report_seq: *seq,
                value: report.value,
                window,
                report_seqs: s.recent.clone(),
                breach_seq: previous,
            };
            let kind = if change == Level::Ok {
                Kind::MonitoringThresholdRecovered
            } else {
                Kind::MonitoringThresholdBreached
            };
            let attributes = serde_json::to_value(&attributes).map_err(|e| StoreError::Internal(e.to_string()))?;
            let draft = EventDraft::server(kind, &model.to_string(), draft.project.clone(), attributes, None)
                .map_err(|e| StoreError::Internal(e.to_string()))?;
            s.open_seq = (change != Level::Ok).then(|| next(&made));
            made.push(draft);
            if !changed.contains(&key) {
                changed.push(key);
            }
        }
        let rows: Vec<SeriesRow> =
            changed.iter().filter_map(|k| series.get(k).map(|s| s.to_row(k, version.seq))).collect();
        series_store::save(conn, &rows)?;
        Ok(Ok(FollowUp { actor: MONITOR_ACTOR.to_owned(), drafts: made }))
    }
}

impl super::Governance {
    /// Appends a request's events: metric reports are judged against the
    /// monitoring rules in the same transaction.
    pub async fn append_events(&self, actor: String, drafts: Vec<EventDraft>) -> Result<Appended, AppendError> {
        let reports = Kind::MonitoringMetricReported.as_str();
        if drafts.iter().any(|d| d.kind.as_str() == reports) {
            self.store().writer().append_followed(actor, drafts, self.monitor().follower()).await
        } else {
            self.store().writer().append(actor, drafts).await
        }
    }

    /// The monitoring rules in force (their `monitoring.rules_changed`
    /// seq is 0 while none are recorded: the first report records them).
    pub async fn monitoring_rules(&self) -> Result<RulesVersion, GovernanceError> {
        let (store, monitor) = (self.store().clone(), self.monitor().clone());
        tokio::task::spawn_blocking(move || monitor.rules_at(&mut *store.conn()?))
            .await
            .map_err(GovernanceError::panicked)?
            .map_err(GovernanceError::from)
    }

    /// Records `text` as the monitoring rules in force, unless they are in
    /// force already (then `always` decides); returns the rules in force.
    pub async fn record_monitoring_rules(
        &self,
        actor: &str,
        text: &str,
        always: bool,
    ) -> Result<RulesVersion, GovernanceError> {
        let current = self.monitoring_rules().await?;
        if current.seq != 0 && current.text == text && !always {
            return Ok(current);
        }
        let draft = self.monitor().rules_draft(text, true).map_err(|e| match e {
            MonitoringError::Rules(e) => GovernanceError::InvalidMonitoringRules(e.to_string()),
            other => GovernanceError::Internal(other.to_string()),
        })?;
        self.store().writer().append(actor.to_owned(), vec![draft]).await?;
        self.monitoring_rules().await
    }
}

/// The series of `rule` for a model version in an environment (and segment).
fn series_key(rule: &ThresholdRule, model: &EntityRef, environment: &str, segment: Option<&str>) -> String {
    // The unit separator cannot occur in any of the parts (all are checked
    // to hold printable characters only).
    format!("{}\u{1f}{model}\u{1f}{environment}\u{1f}{}", rule.name, segment.unwrap_or(""))
}

/// Where one series stands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub level: LevelState,
    /// Consecutive counted windows at or beyond the warning.
    pub warning_run: u32,
    /// Consecutive counted windows beyond the bound.
    pub critical_run: u32,
    /// Consecutive counted windows inside.
    pub ok_run: u32,
    /// The end of the latest counted window (canonical timestamp).
    pub last_window_end: Option<String>,
    /// The breach event of the current (non-ok) level.
    pub open_seq: Option<u64>,
    /// The seqs of the latest counted reports, oldest first.
    pub recent: Vec<u64>,
}

/// [`Level`] with a default, for [`Series`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LevelState(pub Option<Level>);

impl LevelState {
    fn get(self) -> Level {
        self.0.unwrap_or(Level::Ok)
    }
}

impl Series {
    /// Counts a report of `value` for a window ending at `window_end`, and
    /// returns the level the series moves to, if it moves. A window that
    /// does not end after the latest counted one (a late or repeated report)
    /// is recorded but not counted: consecutive means consecutive in time.
    pub fn observe(&mut self, rule: &ThresholdRule, value: f64, window_end: &str, seq: u64) -> Option<Level> {
        if self.last_window_end.as_deref().is_some_and(|last| window_end <= last) {
            return None;
        }
        self.last_window_end = Some(window_end.to_owned());
        let level = rule.level(value);
        let bump = |run: u32, counts: bool| if counts { run.saturating_add(1) } else { 0 };
        self.critical_run = bump(self.critical_run, level == Level::Critical);
        self.warning_run = bump(self.warning_run, level >= Level::Warning);
        self.ok_run = bump(self.ok_run, level == Level::Ok);
        self.recent.push(seq);
        let keep = rule.consecutive as usize;
        if self.recent.len() > keep {
            self.recent.drain(..self.recent.len() - keep);
        }
        let n = rule.consecutive;
        let now = self.level.get();
        let to = if self.critical_run >= n && now < Level::Critical {
            Level::Critical
        } else if self.warning_run >= n && now < Level::Warning {
            Level::Warning
        } else if self.ok_run >= n && now > Level::Ok {
            Level::Ok
        } else {
            return None;
        };
        self.level = LevelState(Some(to));
        Some(to)
    }

    fn from_row(row: &SeriesRow) -> Self {
        Self {
            level: LevelState(Level::from_name(&row.level)),
            warning_run: u32::try_from(row.warning_run).unwrap_or(0),
            critical_run: u32::try_from(row.critical_run).unwrap_or(0),
            ok_run: u32::try_from(row.ok_run).unwrap_or(0),
            last_window_end: row.last_window_end.clone(),
            open_seq: row.open_seq.and_then(|s| u64::try_from(s).ok()),
            recent: serde_json::from_str(&row.recent_seqs).unwrap_or_default(),
        }
    }

    fn to_row(&self, key: &str, rules_seq: u64) -> SeriesRow {
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let mut parts = key.split('\u{1f}');
        let mut next = || parts.next().unwrap_or_default().to_owned();
        let (rule, model, environment, segment) = (next(), next(), next(), next());
        SeriesRow {
            key: key.to_owned(),
            rule,
            model,
            environment,
            segment,
            level: self.level.get().as_str().to_owned(),
            warning_run: i64::from(self.warning_run),
            critical_run: i64::from(self.critical_run),
            ok_run: i64::from(self.ok_run),
            last_window_end: self.last_window_end.clone(),
            open_seq: self.open_seq.map(int),
            recent_seqs: serde_json::to_string(&self.recent).unwrap_or_else(|_| "[]".into()),
            rules_seq: int(rules_seq),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(consecutive: u32) -> ThresholdRule {
        MonitoringRules::default_rules()
            .thresholds
            .into_iter()
            .find(|r| r.name == "fraud-auc")
            .map(|r| ThresholdRule { consecutive, ..r })
            .unwrap()
    }

    fn day(d: u32) -> String {
        format!("2026-11-{d:02}T00:00:00.000000Z")
    }

    #[test]
    fn a_breach_needs_consecutive_windows_and_so_does_recovery() {
        let rule = rule(3);
        let mut s = Series::default();
        let values = [0.95, 0.89, 0.88, 0.95, 0.89, 0.88, 0.87, 0.86, 0.95, 0.95, 0.95];
        let moves: Vec<Option<Level>> =
            values.iter().enumerate().map(|(i, v)| s.observe(&rule, *v, &day(i as u32 + 1), i as u64 + 1)).collect();
        use Level::*;
        // Two low windows then a good one: no breach. Then three below the
        // bound (0.89, 0.88, 0.87) open a critical breach at once (they are
        // below the warning too, but the worse level wins); it stays open
        // until three windows are back inside.
        assert_eq!(moves, [None, None, None, None, None, None, Some(Critical), None, None, None, Some(Ok)]);
        assert_eq!(s.recent, [9, 10, 11]);
    }

    #[test]
    fn late_and_repeated_windows_are_not_counted() {
        let rule = rule(2);
        let mut s = Series::default();
        assert_eq!(s.observe(&rule, 0.80, &day(5), 1), None);
        assert_eq!(s.observe(&rule, 0.80, &day(5), 2), None, "the same window again");
        assert_eq!(s.observe(&rule, 0.80, &day(4), 3), None, "an older window");
        assert_eq!(s.observe(&rule, 0.80, &day(6), 4), Some(Level::Critical));
        assert_eq!(s.recent, [1, 4]);
    }

    #[test]
    fn traffic_shares_sum_to_one_hundred() {
        let ok = json!({"shares": {"model:fraud@1": 90, "model:fraud@2": 10}, "strategy": "canary"});
        check_traffic(&ok).unwrap();
        for (bad, says) in [
            (json!({"shares": {"model:fraud@1": 90, "model:fraud@2": 20}, "strategy": "canary"}), "sum to 110"),
            (json!({"shares": {"model:fraud@1": 100, "model:fraud@2": 0}, "strategy": "canary"}), "more than 0"),
            (json!({"shares": {"model:fraud": 100}, "strategy": "full"}), "not a model version"),
            (json!({"shares": {}, "strategy": "full"}), "between 1 and 10"),
            (json!({"shares": {"model:f@1": 50, "model:f@2": 50}, "strategy": "full"}), "one model version"),
        ] {
            let err = check_traffic(&bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn windows_are_ordered_bounded_and_closed() {
        let w = |s: &str, e: &str| Window { start: s.into(), end: e.into() }.checked("window");
        assert!(w("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z").is_ok());
        assert!(w("2026-11-02T00:00:00Z", "2026-11-01T00:00:00Z").unwrap_err().to_string().contains("before end"));
        assert!(w("2024-01-01T00:00:00Z", "2026-11-01T00:00:00Z").unwrap_err().to_string().contains("366 days"));
        assert!(w("2099-01-01T00:00:00Z", "2099-01-02T00:00:00Z").unwrap_err().to_string().contains("future"));
        assert!(w("yesterday", "2026-11-01T00:00:00Z").unwrap_err().to_string().contains("window.start"));
    }
}
