//! The approval rules of `policies/approvals.toml`.

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
}

/// Approval rules by environment; environments not listed are not gated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRules {
    environments: BTreeMap<String, EnvironmentRule>,
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
    approvals_required: u32,
    approver_roles: Vec<String>,
    valid_for: String,
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
            if !(1..=10).contains(&entry.approvals_required) {
                return Err(RulesError(format!("{name}: approvals_required must be between 1 and 10")));
            }
            if entry.approver_roles.is_empty() {
                return Err(RulesError(format!("{name}: approver_roles must name at least one role")));
            }
            let valid_for_seconds = parse_ttl(&entry.valid_for).map_err(|e| RulesError(format!("{name}: {e}")))?;
            environments.insert(
                name,
                EnvironmentRule {
                    approvals_required: entry.approvals_required,
                    approver_roles: entry.approver_roles,
                    valid_for_seconds,
                },
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

    /// The rule for `environment`, `None` when it is not gated.
    pub fn environment(&self, environment: &str) -> Option<&EnvironmentRule> {
        self.environments.get(environment)
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
        assert!(rules.environment("dev").is_none());
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
