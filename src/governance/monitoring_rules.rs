//! The monitoring rules of `policies/monitoring.toml`: the metrics a
//! monitoring job may report and the thresholds that open a breach.
//!
//! Like the access policy, the rules in force are on the record: each
//! version is the text of a `monitoring.rules_changed` event, and a breach
//! cites the seq of the version it was judged by.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::rules::ApprovalRules;

/// The rules shipped in `policies/monitoring.toml`.
pub const DEFAULT_MONITORING_RULES: &str = include_str!("../../policies/monitoring.toml");

/// Which side of a threshold is the bad one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// A value below the threshold crosses it.
    Min,
    /// A value above the threshold crosses it.
    Max,
}

/// How far a value is from where it should be. Ordered: a breach outranks a
/// warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Ok,
    Warning,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Ok, Self::Warning, Self::Critical].into_iter().find(|l| l.as_str() == name)
    }
}

/// A metric a monitoring job may report.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSpec {
    pub description: String,
    /// Inclusive bounds of an acceptable value.
    pub range: Option<(f64, f64)>,
}

/// One `[[thresholds]]` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdRule {
    pub name: String,
    /// A model name, or a prefix ending in `*`.
    pub model: String,
    /// A declared environment, or `*`.
    pub environment: String,
    pub metric: String,
    pub bound: Bound,
    pub threshold: f64,
    pub warning: Option<f64>,
    pub consecutive: u32,
}

impl ThresholdRule {
    /// Whether the rule watches `metric` of model `model_name` in `environment`.
    pub fn applies(&self, model_name: &str, environment: &str, metric: &str) -> bool {
        let model_ok = match self.model.strip_suffix('*') {
            Some(prefix) => model_name.starts_with(prefix),
            None => self.model == model_name,
        };
        model_ok && (self.environment == "*" || self.environment == environment) && self.metric == metric
    }

    /// Where `value` stands against the rule.
    pub fn level(&self, value: f64) -> Level {
        let beyond = |limit: f64| match self.bound {
            Bound::Min => value < limit,
            Bound::Max => value > limit,
        };
        if beyond(self.threshold) {
            Level::Critical
        } else if self.warning.is_some_and(beyond) {
            Level::Warning
        } else {
            Level::Ok
        }
    }
}

/// The metrics and thresholds in force.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitoringRules {
    pub metrics: BTreeMap<String, MetricSpec>,
    pub thresholds: Vec<ThresholdRule>,
}

/// A rules file that cannot be used; the message names what to fix.
#[derive(Debug, thiserror::Error)]
#[error("monitoring rules: {0}")]
pub struct MonitoringRulesError(pub String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    metrics: BTreeMap<String, MetricEntry>,
    #[serde(default)]
    thresholds: Vec<ThresholdEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricEntry {
    description: String,
    range: Option<[f64; 2]>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdEntry {
    name: String,
    model: String,
    environment: String,
    metric: String,
    min: Option<f64>,
    max: Option<f64>,
    warning: Option<f64>,
    consecutive: Option<u32>,
}

/// The most windows a rule may wait for: a longer run is a different rule.
pub const MAX_CONSECUTIVE: u32 = 100;

fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' || c == '.')
}

impl MonitoringRules {
    /// Parses and checks a rules file against the declared environments.
    pub fn parse(text: &str, environments: &ApprovalRules) -> Result<Self, MonitoringRulesError> {
        Self::parse_with(text, environments, true)
    }

    /// Parses rules that were accepted once (recorded, or shipped): a
    /// threshold for an environment the approval rules no longer declare
    /// (or, for the shipped rules, never declared here) watches nothing and
    /// is left out, with a warning, instead of stopping the server.
    pub fn parse_recorded(text: &str, environments: &ApprovalRules) -> Result<Self, MonitoringRulesError> {
        Self::parse_with(text, environments, false)
    }

    fn parse_with(text: &str, environments: &ApprovalRules, strict: bool) -> Result<Self, MonitoringRulesError> {
        let fail = |m: String| Err(MonitoringRulesError(m));
        let file: RulesFile = toml::from_str(text).map_err(|e| MonitoringRulesError(e.to_string()))?;
        if file.metrics.is_empty() {
            return fail("declare at least one metric under [metrics]: with none, no report can be recorded".into());
        }
        let mut metrics = BTreeMap::new();
        for (name, entry) in file.metrics {
            if !is_name(&name) {
                return fail(format!(
                    "metric name {name:?} must be 1 to 64 lower-case letters, digits, `-`, `_` or `.`"
                ));
            }
            if let Some([low, high]) = entry.range {
                if !(low.is_finite() && high.is_finite() && low < high) {
                    return fail(format!("metrics.{name}: range must be two finite numbers, the lower first"));
                }
            }
            metrics
                .insert(name, MetricSpec { description: entry.description, range: entry.range.map(|[l, h]| (l, h)) });
        }
        let mut thresholds: Vec<ThresholdRule> = Vec::new();
        for (i, t) in file.thresholds.into_iter().enumerate() {
            let at = |m: &str| format!("thresholds[{i}] ({}): {m}", t.name);
            if !is_name(&t.name) {
                return fail(at("name must be 1 to 64 lower-case letters, digits, `-`, `_` or `.`"));
            }
            if thresholds.iter().any(|r| r.name == t.name) {
                return fail(at("another rule has this name"));
            }
            if t.model.is_empty() || t.model.strip_suffix('*').unwrap_or(&t.model).contains('*') {
                return fail(at("model is a model name, or a prefix followed by a single `*`"));
            }
            if t.environment != "*" {
                if let Err(unknown) = environments.lookup(&t.environment) {
                    if strict {
                        return fail(at(&unknown.to_string()));
                    }
                    tracing::warn!(rule = %t.name, "{}; the rule watches nothing", unknown);
                    continue;
                }
            }
            let Some(spec) = metrics.get(&t.metric) else {
                return fail(at(&format!("metric {:?} is not declared under [metrics]", t.metric)));
            };
            let (bound, threshold) = match (t.min, t.max) {
                (Some(v), None) => (Bound::Min, v),
                (None, Some(v)) => (Bound::Max, v),
                _ => return fail(at("give exactly one of `min` and `max`")),
            };
            let inside = |v: f64| v.is_finite() && spec.range.is_none_or(|(l, h)| (l..=h).contains(&v));
            if !inside(threshold) || t.warning.is_some_and(|w| !inside(w)) {
                return fail(at("the bound and the warning must be finite and inside the metric's range"));
            }
            if let Some(w) = t.warning {
                let before = match bound {
                    Bound::Min => w > threshold,
                    Bound::Max => w < threshold,
                };
                if !before {
                    return fail(at("warning must be reached before the bound: above `min`, below `max`"));
                }
            }
            let consecutive = t.consecutive.unwrap_or(1);
            if !(1..=MAX_CONSECUTIVE).contains(&consecutive) {
                return fail(at(&format!("consecutive must be between 1 and {MAX_CONSECUTIVE}")));
            }
            thresholds.push(ThresholdRule {
                name: t.name,
                model: t.model,
                environment: t.environment,
                metric: t.metric,
                bound,
                threshold,
                warning: t.warning,
                consecutive,
            });
        }
        Ok(Self { metrics, thresholds })
    }

    /// The shipped rules.
    pub fn default_rules() -> Self {
        Self::parse(DEFAULT_MONITORING_RULES, &ApprovalRules::default_rules())
            .expect("policies/monitoring.toml is valid")
    }

    /// The rules watching `metric` of `model_name` in `environment`.
    pub fn applying<'a>(
        &'a self,
        model_name: &'a str,
        environment: &'a str,
        metric: &'a str,
    ) -> impl Iterator<Item = &'a ThresholdRule> + 'a {
        self.thresholds.iter().filter(move |r| r.applies(model_name, environment, metric))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MonitoringRules, MonitoringRulesError> {
        MonitoringRules::parse(text, &ApprovalRules::default_rules())
    }

    const AUC: &str = "[metrics.auc]\ndescription = \"auc\"\nrange = [0.0, 1.0]\n";

    #[test]
    fn shipped_rules_watch_the_fraud_models_auc() {
        let rules = MonitoringRules::default_rules();
        let auc: Vec<_> = rules.applying("fraud-detector", "production", "auc").collect();
        assert_eq!(auc.len(), 1);
        assert_eq!((auc[0].bound, auc[0].threshold, auc[0].consecutive), (Bound::Min, 0.90, 3));
        assert_eq!(auc[0].level(0.91), Level::Warning);
        assert_eq!(auc[0].level(0.89), Level::Critical);
        assert_eq!(auc[0].level(0.95), Level::Ok);
        assert_eq!(rules.applying("churn", "production", "auc").count(), 0);
        assert_eq!(rules.applying("fraud-detector", "dev", "latency_p99_ms").count(), 0);
    }

    #[test]
    fn a_max_bound_crosses_upwards() {
        let rules = MonitoringRules::default_rules();
        let wer = rules.applying("speech-en", "staging", "word_error_rate").next().unwrap();
        assert_eq!([wer.level(0.09), wer.level(0.11), wer.level(0.13)], [Level::Ok, Level::Warning, Level::Critical]);
    }

    #[test]
    fn bad_rules_say_what_to_fix() {
        let rule = |body: &str| format!("{AUC}[[thresholds]]\nname = \"r\"\nmodel = \"m\"\nmetric = \"auc\"\n{body}\n");
        for (body, says) in [
            ("environment = \"prodution\"\nmin = 0.9", "not declared in policies/approvals.toml"),
            ("environment = \"*\"\nmin = 0.9\nmax = 0.95", "exactly one of"),
            ("environment = \"*\"\nmin = 0.9\nwarning = 0.85", "above `min`"),
            ("environment = \"*\"\nmin = 1.5", "inside the metric's range"),
            ("environment = \"*\"\nmin = 0.9\nconsecutive = 0", "between 1 and 100"),
        ] {
            let err = parse(&rule(body)).unwrap_err().to_string();
            assert!(err.contains(says), "{body}: {err}");
        }
        let threshold = "[[thresholds]]\nname = \"r\"\nmodel = \"m\"\nenvironment = \"*\"\nmetric = \"auc\"\nmin = 1\n";
        let err = parse(&format!("[metrics.wer]\ndescription = \"w\"\n{threshold}")).unwrap_err();
        assert!(err.to_string().contains("not declared under [metrics]"), "{err}");
        let err = parse("[metrics.auc]\ndescripton = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        let err = parse("").unwrap_err();
        assert!(err.to_string().contains("at least one metric"), "{err}");
    }
}
