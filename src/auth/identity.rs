//! Who a person signed in through the identity provider is to govledger:
//! the rules that turn their token's claims (groups, roles, any claim path)
//! into roles and projects, and the declarations of which identities are one
//! person. Read from `policies/identity.toml` or `--identity-map`, and put on
//! the record (`identity.changed`) whenever it changes, like the policy.
//!
//! Nothing is granted by default: claims no rule matches give no access.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::ledger::actor::People;

/// The shipped identity map: no rules, so nobody signs in through a
/// provider until the operator maps their groups.
pub const DEFAULT_IDENTITY_MAP: &str = include_str!("../../policies/identity.toml");

/// The claims tried, in order, for the name shown beside an actor.
const DEFAULT_DISPLAY_CLAIMS: [&str; 3] = ["name", "email", "preferred_username"];

/// Why an identity map cannot be used; nothing of it is installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityMapError {
    #[error("identity map: {0}")]
    Invalid(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    display_claims: Option<Vec<String>>,
    #[serde(default)]
    map: Vec<Rule>,
    #[serde(default)]
    person: Vec<PersonFile>,
}

/// One rule: when the token's `claim` holds `value` (or, for a list claim,
/// any element equals it), the person gets `roles` in `projects`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A claim path, dots between the names (`realm_access.roles`).
    pub claim: String,
    pub value: String,
    pub roles: Vec<String>,
    /// Project names, or `*` for all.
    pub projects: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonFile {
    #[serde(default)]
    name: Option<String>,
    identities: Vec<String>,
}

/// What the rules grant a set of claims.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grant {
    pub roles: Vec<String>,
    pub projects: Vec<String>,
}

/// A parsed, checked identity map.
#[derive(Debug, Clone)]
pub struct IdentityMap {
    rules: Vec<Rule>,
    display_claims: Vec<String>,
    people: People,
    text: String,
}

impl IdentityMap {
    /// Parses `text`, checking every role against `known_roles` (the policy
    /// in force): a rule that grants a role nobody defined is a typo, and is
    /// refused rather than silently granting nothing.
    pub fn parse(text: &str, known_roles: &BTreeSet<String>) -> Result<Self, IdentityMapError> {
        let invalid = IdentityMapError::Invalid;
        let file: File = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        for (i, rule) in file.map.iter().enumerate() {
            let at = |what: &str| invalid(format!("map[{i}] ({} = {:?}): {what}", rule.claim, rule.value));
            if rule.claim.is_empty() || rule.claim.split('.').any(str::is_empty) {
                return Err(at("claim must be a claim name or a dotted path of names"));
            }
            if rule.value.is_empty() {
                return Err(at("value must not be empty"));
            }
            if rule.roles.is_empty() {
                return Err(at("give at least one role"));
            }
            if let Some(role) = rule.roles.iter().find(|r| !known_roles.contains(*r)) {
                let known = known_roles.iter().cloned().collect::<Vec<_>>().join(", ");
                return Err(at(&format!("role {role:?} is not defined by the policy in force (known: {known})")));
            }
            if rule.projects.is_empty() {
                return Err(at("give at least one project, or \"*\" for all"));
            }
            for p in rule.projects.iter().filter(|p| p.as_str() != super::access::ALL_PROJECTS) {
                crate::ledger::event::validate_project(p).map_err(|e| at(&e.to_string()))?;
            }
        }
        let mut groups: Vec<Vec<String>> = Vec::new();
        for (i, person) in file.person.iter().enumerate() {
            let label = person.name.clone().unwrap_or_else(|| format!("person[{i}]"));
            if person.identities.len() < 2 {
                return Err(invalid(format!("{label}: a person declaration names at least two identities")));
            }
            for id in &person.identities {
                crate::ledger::actor::validate_subject(id).map_err(|e| invalid(format!("{label}: {e}")))?;
            }
            groups.push(person.identities.clone());
        }
        let people = People::new(groups).map_err(invalid)?;
        let display_claims =
            file.display_claims.unwrap_or_else(|| DEFAULT_DISPLAY_CLAIMS.iter().map(|c| (*c).to_owned()).collect());
        Ok(Self { rules: file.map, display_claims, people, text: text.to_owned() })
    }

    /// The text it was read from, as it goes on the record.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The declared people.
    pub fn people(&self) -> &People {
        &self.people
    }

    /// The rules, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The roles and projects of every rule the claims match, united (in
    /// rule order, without repeats); `None` when no rule matches.
    pub fn grant(&self, claims: &serde_json::Value) -> Option<Grant> {
        let mut grant = Grant::default();
        for rule in self.rules.iter().filter(|r| matches(claims, r)) {
            for role in &rule.roles {
                if !grant.roles.contains(role) {
                    grant.roles.push(role.clone());
                }
            }
            for project in &rule.projects {
                if !grant.projects.contains(project) {
                    grant.projects.push(project.clone());
                }
            }
        }
        (!grant.roles.is_empty()).then_some(grant)
    }

    /// The name to show beside the actor: the first display claim present.
    pub fn display_name(&self, claims: &serde_json::Value) -> Option<String> {
        self.display_claims
            .iter()
            .filter_map(|c| claim_at(claims, c).and_then(|v| v.as_str()))
            .map(str::trim)
            .find(|s| !s.is_empty())
            .map(|s| s.chars().take(200).collect())
    }
}

fn claim_at<'a>(claims: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.').try_fold(claims, |v, name| v.get(name))
}

fn matches(claims: &serde_json::Value, rule: &Rule) -> bool {
    match claim_at(claims, &rule.claim) {
        Some(serde_json::Value::String(s)) => *s == rule.value,
        Some(serde_json::Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(rule.value.as_str())),
        // `true` and numbers compare as the JSON `value` spells, so
        // `value = "true"` matches a boolean claim without a second syntax.
        Some(v @ (serde_json::Value::Bool(_) | serde_json::Value::Number(_))) => {
            serde_json::from_str::<serde_json::Value>(&rule.value).is_ok_and(|wanted| wanted == *v)
        }
        _ => false,
    }
}

/// The actor recorded for the provider's subject `sub`: stable (issuer and
/// subject, never a name or an email that can change hands).
pub fn actor_of(issuer: &str, sub: &str) -> String {
    format!("oidc:{issuer}|{sub}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn roles() -> BTreeSet<String> {
        ["admin", "risk_officer", "auditor"].iter().map(|r| (*r).to_owned()).collect()
    }

    const MAP: &str = r#"
        [[map]]
        claim = "groups"
        value = "risk-officers-emea"
        roles = ["risk_officer"]
        projects = ["credit", "fraud"]

        [[map]]
        claim = "realm_access.roles"
        value = "audit"
        roles = ["auditor", "risk_officer"]
        projects = ["*"]

        [[person]]
        name = "Dana"
        identities = ["dana", "oidc:http://idp|d-1"]
    "#;

    #[test]
    fn matching_rules_are_united_and_no_match_is_no_access() {
        let map = IdentityMap::parse(MAP, &roles()).unwrap();
        let both = json!({"groups": ["x", "risk-officers-emea"], "realm_access": {"roles": ["audit"]}});
        let grant = map.grant(&both).unwrap();
        assert_eq!(grant.roles, ["risk_officer", "auditor"]);
        assert_eq!(grant.projects, ["credit", "fraud", "*"]);
        assert_eq!(map.grant(&json!({"groups": "risk-officers-emea"})).unwrap().projects, ["credit", "fraud"]);
        assert_eq!(map.grant(&json!({"groups": ["risk-officers"]})), None, "no rule matches: nothing granted");
        assert_eq!(map.grant(&json!({})), None);
        assert!(map.people().same("DANA", "oidc:http://idp|d-1"));
    }

    #[test]
    fn a_rule_with_an_unknown_role_or_a_bad_project_is_refused() {
        let typo = "[[map]]\nclaim = \"groups\"\nvalue = \"g\"\nroles = [\"risk_oficer\"]\nprojects = [\"*\"]\n";
        let e = IdentityMap::parse(typo, &roles()).unwrap_err().to_string();
        assert!(e.contains("risk_oficer") && e.contains("not defined"), "{e}");
        let none = "[[map]]\nclaim = \"groups\"\nvalue = \"g\"\nroles = [\"admin\"]\nprojects = []\n";
        assert!(IdentityMap::parse(none, &roles()).is_err());
        let unknown_key = "[[map]]\nclaim = \"groups\"\nvalue = \"g\"\nrole = [\"admin\"]\nprojects = [\"*\"]\n";
        assert!(IdentityMap::parse(unknown_key, &roles()).is_err());
        let twice = "[[person]]\nidentities = [\"a\", \"b\"]\n[[person]]\nidentities = [\"b\", \"c\"]\n";
        assert!(IdentityMap::parse(twice, &roles()).unwrap_err().to_string().contains("\"b\""));
    }

    #[test]
    fn the_shipped_map_grants_nothing() {
        let map = IdentityMap::parse(DEFAULT_IDENTITY_MAP, &roles()).unwrap();
        assert!(map.rules().is_empty());
        assert_eq!(map.display_name(&json!({"email": "a@b.c", "name": " "})).as_deref(), Some("a@b.c"));
    }
}
