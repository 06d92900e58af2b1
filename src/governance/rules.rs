//! The approval rules of `policies/approvals.toml`.
//!
//! Every environment a model may be deployed to is declared there, gated or
//! not. An environment that is not declared is refused everywhere (gate,
//! approvals, deployments): a typo must never read as "not gated".

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::auth::access::parse_ttl;

/// The rules shipped in `policies/approvals.toml`.
pub const DEFAULT_RULES: &str = include_str!("../../policies/approvals.toml");

/// What a gated environment demands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentRule {
    pub approvals_required: u32,
    pub approver_roles: Vec<String>,
    pub valid_for_seconds: u64,
    /// When set, the version needs a passing evaluation no older than this,
    /// on data it was not trained on.
    pub evaluation_max_age_seconds: Option<u64>,
    /// The version may have no open monitoring breach.
    pub no_open_breach: bool,
}

/// How a declared environment is governed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment<'a> {
    /// Deployments need a valid approval under this rule.
    Gated(&'a EnvironmentRule),
    /// Declared with `gated = false`: no approval is needed.
    Ungated,
}

/// An environment that `policies/approvals.toml` does not declare.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment {name:?} is not declared in policies/approvals.toml; known environments: {}", known.join(", "))]
pub struct UnknownEnvironment {
    pub name: String,
    pub known: Vec<String>,
}

/// Approval rules by environment. Every environment is declared; one that
/// is not is unknown, never "not gated".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRules {
    /// `None` for environments declared with `gated = false`.
    environments: BTreeMap<String, Option<EnvironmentRule>>,
    /// How old a model version's latest evaluation may be before its review
    /// is overdue (reports list it as a finding).
    pub evaluation_max_age_seconds: u64,
}

/// Shipped default for [`ApprovalRules::evaluation_max_age_seconds`]: 180 days.
pub const DEFAULT_EVALUATION_MAX_AGE: u64 = 180 * 86_400;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    environments: BTreeMap<String, RuleEntry>,
    #[serde(default)]
    reviews: Option<Reviews>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reviews {
    evaluation_max_age: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    #[serde(default = "gated_by_default")]
    gated: bool,
    approvals_required: Option<u32>,
    approver_roles: Option<Vec<String>>,
    valid_for: Option<String>,
    evaluation_max_age: Option<String>,
    no_open_breach: Option<bool>,
}

fn gated_by_default() -> bool {
    true
}

/// A rules file that cannot be used; the message names the line.
#[derive(Debug, thiserror::Error)]
#[error("approval rules: {0}")]
pub struct RulesError(String);

impl ApprovalRules {
    /// Parses and checks a rules file.
    pub fn parse(text: &str) -> Result<Self, RulesError> {
        let file: RulesFile = toml::from_str(text).map_err(|e| RulesError(e.to_string()))?;
        let mut environments = BTreeMap::new();
        for (name, entry) in file.environments {
            if name.is_empty() || name.contains('/') {
                return Err(RulesError(format!("environment name {name:?} must be non-empty and without `/`")));
            }
            if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
                || name.len() > 64
            {
                return Err(RulesError(format!(
                    "environment name {name:?} must be 1 to 64 lower-case letters, digits, `-` or `_`"
                )));
            }
            if !entry.gated {
                if entry.approvals_required.is_some()
                    || entry.approver_roles.is_some()
                    || entry.valid_for.is_some()
                    || entry.evaluation_max_age.is_some()
                    || entry.no_open_breach.is_some()
                {
                    return Err(RulesError(format!(
                        "{name}: an environment with `gated = false` takes no approvals_required, approver_roles, \
                         valid_for, evaluation_max_age or no_open_breach"
                    )));
                }
                environments.insert(name, None);
                continue;
            }
            let (Some(approvals_required), Some(approver_roles), Some(valid_for)) =
                (entry.approvals_required, entry.approver_roles, entry.valid_for)
            else {
                return Err(RulesError(format!(
                    "{name}: a gated environment needs approvals_required, approver_roles and valid_for \
                     (or `gated = false`)"
                )));
            };
            if !(1..=10).contains(&approvals_required) {
                return Err(RulesError(format!("{name}: approvals_required must be between 1 and 10")));
            }
            if approver_roles.is_empty() {
                return Err(RulesError(format!("{name}: approver_roles must name at least one role")));
            }
            let valid_for_seconds = parse_ttl(&valid_for).map_err(|e| RulesError(format!("{name}: {e}")))?;
            let evaluation_max_age_seconds = entry
                .evaluation_max_age
                .map(|age| parse_ttl(&age).map_err(|e| RulesError(format!("{name}: evaluation_max_age: {e}"))))
                .transpose()?;
            environments.insert(
                name,
                Some(EnvironmentRule {
                    approvals_required,
                    approver_roles,
                    valid_for_seconds,
                    evaluation_max_age_seconds,
                    no_open_breach: entry.no_open_breach.unwrap_or(false),
                }),
            );
        }
        let evaluation_max_age_seconds = match file.reviews {
            Some(r) => parse_ttl(&r.evaluation_max_age).map_err(|e| RulesError(format!("reviews: {e}")))?,
            None => DEFAULT_EVALUATION_MAX_AGE,
        };
        Ok(Self { environments, evaluation_max_age_seconds })
    }

    /// The shipped rules.
    pub fn default_rules() -> Self {
        Self::parse(DEFAULT_RULES).expect("policies/approvals.toml is valid")
    }

    /// How `environment` is governed, or why it cannot be used.
    pub fn lookup(&self, environment: &str) -> Result<Environment<'_>, UnknownEnvironment> {
        match self.environments.get(environment) {
            Some(Some(rule)) => Ok(Environment::Gated(rule)),
            Some(None) => Ok(Environment::Ungated),
            None => Err(UnknownEnvironment { name: environment.to_owned(), known: self.known() }),
        }
    }

    /// The rule for `environment` when it is declared and gated.
    pub fn environment(&self, environment: &str) -> Option<&EnvironmentRule> {
        self.environments.get(environment).and_then(Option::as_ref)
    }

    /// Every declared environment, in name order.
    pub fn known(&self) -> Vec<String> {
        self.environments.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_rules_gate_staging_and_production() {
        let rules = ApprovalRules::default_rules();
        assert_eq!(rules.environment("production").unwrap().approvals_required, 2);
        assert_eq!(rules.environment("staging").unwrap().valid_for_seconds, 30 * 86_400);
        assert_eq!(rules.lookup("dev"), Ok(Environment::Ungated));
        let production = rules.environment("production").unwrap();
        assert_eq!(production.evaluation_max_age_seconds, Some(30 * 86_400));
        assert!(production.no_open_breach);
        assert_eq!(rules.environment("staging").unwrap().evaluation_max_age_seconds, Some(90 * 86_400));
    }

    #[test]
    fn readiness_rules_are_for_gated_environments_and_checked() {
        let err = ApprovalRules::parse("[environments.dev]\ngated = false\nno_open_breach = true\n").unwrap_err();
        assert!(err.to_string().contains("takes no"), "{err}");
        let err = ApprovalRules::parse(
            "[environments.prod]\napprovals_required = 1\napprover_roles = [\"x\"]\nvalid_for = \"1d\"\nevaluation_max_age = \"soon\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("evaluation_max_age"), "{err}");
    }

    #[test]
    fn an_undeclared_environment_is_unknown_not_ungated() {
        let rules = ApprovalRules::default_rules();
        let err = rules.lookup("prodution").unwrap_err();
        assert_eq!(err.known, ["dev", "production", "staging"]);
        assert!(err.to_string().contains("known environments: dev, production, staging"), "{err}");
        assert!(rules.environment("prodution").is_none());
    }

    #[test]
    fn an_ungated_environment_takes_no_rule_fields() {
        let err = ApprovalRules::parse("[environments.dev]\ngated = false\napprovals_required = 1\n").unwrap_err();
        assert!(err.to_string().contains("takes no approvals_required"), "{err}");
        let err = ApprovalRules::parse("[environments.qa]\napprover_roles = [\"x\"]\n").unwrap_err();
        assert!(err.to_string().contains("needs approvals_required"), "{err}");
    }

    #[test]
    fn errors_name_the_line() {
        let err = ApprovalRules::parse("[environments.prod]\napprovals_required = \"two\"\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        let err = ApprovalRules::parse(
            "[environments.prod]\napprovals_required = 0\napprover_roles = [\"x\"]\nvalid_for = \"1d\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("between 1 and 10"), "{err}");
    }
}
