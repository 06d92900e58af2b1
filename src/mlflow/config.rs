//! `policies/mlflow.toml` and the bridge's connection settings.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::governance::ApprovalRules;

/// The mapping shipped in `policies/mlflow.toml`.
pub const DEFAULT_MAPPING: &str = include_str!("../../policies/mlflow.toml");

/// What the bridge records of an MLflow registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// The project every mirrored event goes to.
    pub project: String,
    /// MLflow alias → govledger environment.
    pub aliases: BTreeMap<String, String>,
    /// Move a denied alias back through MLflow's API.
    pub enforce: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    project: String,
    #[serde(default)]
    enforce: bool,
    #[serde(default)]
    aliases: BTreeMap<String, String>,
}

/// A mapping file that cannot be used; the message says what to fix.
#[derive(Debug, thiserror::Error)]
#[error("MLflow mapping: {0}")]
pub struct MappingError(String);

impl Mapping {
    /// Parses a mapping and checks every environment against the approval
    /// rules: an alias mapped to an undeclared environment would make every
    /// use of it a refusal, so it is refused at start instead.
    pub fn parse(text: &str, rules: &ApprovalRules) -> Result<Self, MappingError> {
        let file: MappingFile = toml::from_str(text).map_err(|e| MappingError(e.to_string()))?;
        if file.project.is_empty() || file.project == "*" {
            return Err(MappingError("`project` must name one project".into()));
        }
        for (alias, environment) in &file.aliases {
            if alias.is_empty() {
                return Err(MappingError("an alias name is empty".into()));
            }
            rules.lookup(environment).map_err(|e| MappingError(format!("alias {alias:?}: {e}")))?;
        }
        Ok(Self { project: file.project, aliases: file.aliases, enforce: file.enforce })
    }
}

/// How to reach MLflow and check its deliveries.
#[derive(Clone)]
pub struct MlflowConfig {
    /// The tracking server, e.g. `http://mlflow:5000`.
    pub url: String,
    /// The webhook secret MLflow signs deliveries with (`None`: every
    /// delivery is refused, since none can be authenticated).
    pub webhook_secret: Option<String>,
    pub mapping: Mapping,
    /// How long a request to MLflow may take.
    pub timeout: std::time::Duration,
}

impl std::fmt::Debug for MlflowConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlflowConfig")
            .field("url", &self.url)
            .field("webhook_secret", &self.webhook_secret.as_ref().map(|_| "<set>"))
            .field("mapping", &self.mapping)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_mapping_maps_champion_to_production_and_enforces() {
        let mapping = Mapping::parse(DEFAULT_MAPPING, &ApprovalRules::default_rules()).expect("shipped mapping");
        assert_eq!(mapping.aliases.get("champion").map(String::as_str), Some("production"));
        assert_eq!(mapping.aliases.get("challenger").map(String::as_str), Some("staging"));
        assert!(mapping.enforce);
    }

    #[test]
    fn undeclared_environments_and_missing_projects_are_refused() {
        let rules = ApprovalRules::default_rules();
        let typo = Mapping::parse("project = \"fraud\"\n[aliases]\nchampion = \"prodution\"\n", &rules);
        assert!(typo.unwrap_err().to_string().contains("prodution"));
        assert!(Mapping::parse("[aliases]\nchampion = \"production\"\n", &rules).is_err());
        assert!(Mapping::parse("project = \"*\"\n", &rules).is_err());
        assert!(Mapping::parse("project = \"fraud\"\nenforce = \"yes\"\n", &rules).is_err());
    }
}
