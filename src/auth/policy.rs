//! The casbin policy: parsing and validating policy text, and enforcing it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use casbin::{CoreApi, DefaultModel, Enforcer, MemoryAdapter, MgmtApi};

use super::Principal;

/// The casbin model shipped in `policies/model.conf`.
pub const MODEL: &str = include_str!("../../policies/model.conf");
/// The default policy shipped in `policies/policy.csv`.
pub const DEFAULT_POLICY: &str = include_str!("../../policies/policy.csv");

/// Why a policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy line {line}: {reason}")]
    Invalid { line: usize, reason: String },
    #[error("casbin: {0}")]
    Casbin(String),
}

const ACTIONS: [&str; 8] = ["*", "append", "read", "issue", "revoke", "write", "erase", "manage"];

/// Validated policy lines (`p` and `g`), in casbin's CSV syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRules {
    pub text: String,
    policies: Vec<Vec<String>>,
    groupings: Vec<Vec<String>>,
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn is_domain(s: &str) -> bool {
    s == "*"
        || (!s.is_empty()
            && s.len() <= 64
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
}

fn is_object(s: &str) -> bool {
    match s {
        "*" | "events" | "proofs" | "tokens" | "policies" | "reports" | "personal" | "subjects" | "webhooks" => true,
        _ => s.strip_prefix("events/").is_some_and(|kind| {
            let pattern = kind.strip_suffix('*').unwrap_or(kind);
            !kind.is_empty()
                && pattern.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
        }),
    }
}

impl PolicyRules {
    /// Parses policy text: `p, role, project, object, action, allow|deny` and
    /// `g, role, inherited_role, project` lines; `#` comments and blank lines.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let mut policies = Vec::new();
        let mut groupings = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let bad = |reason: String| PolicyError::Invalid { line, reason };
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let fields: Vec<String> = trimmed.split(',').map(|f| f.trim().to_owned()).collect();
            match fields[0].as_str() {
                "p" => {
                    let [_, role, domain, object, action, effect] = fields.as_slice() else {
                        return Err(bad("expected `p, role, project, object, action, allow|deny`".into()));
                    };
                    if !is_name(role) {
                        return Err(bad(format!("role {role:?} must be lower-case letters, digits or `_`")));
                    }
                    if !is_domain(domain) {
                        return Err(bad(format!("project {domain:?} is not a project name or `*`")));
                    }
                    if !is_object(object) {
                        return Err(bad(format!(
                            "object {object:?} must be `*`, `events`, `events/<kind>[*]`, `proofs`, `tokens`, `policies`, `reports`, `personal`, `subjects` or `webhooks`"
                        )));
                    }
                    if !ACTIONS.contains(&action.as_str()) {
                        return Err(bad(format!("action {action:?} must be one of {}", ACTIONS.join(", "))));
                    }
                    if effect != "allow" && effect != "deny" {
                        return Err(bad(format!("effect {effect:?} must be allow or deny")));
                    }
                    policies.push(fields[1..].to_vec());
                }
                "g" => {
                    let [_, role, parent, domain] = fields.as_slice() else {
                        return Err(bad("expected `g, role, inherited_role, project`".into()));
                    };
                    if !is_name(role) || !is_name(parent) || !is_domain(domain) {
                        return Err(bad("roles must be lower-case names and the project a name or `*`".into()));
                    }
                    groupings.push(fields[1..].to_vec());
                }
                other => return Err(bad(format!("unknown line type {other:?} (expected p or g)"))),
            }
        }
        if policies.is_empty() {
            return Err(PolicyError::Invalid { line: 0, reason: "a policy needs at least one `p` line".into() });
        }
        Ok(Self { text: text.to_owned(), policies, groupings })
    }

    /// The roles this policy defines: every role a `p` line grants
    /// something to, and every role a `g` line names. A role outside this
    /// set has no rights at all, so a token for it is refused.
    pub fn roles(&self) -> std::collections::BTreeSet<String> {
        let granted = self.policies.iter().filter_map(|p| p.first());
        let grouped = self.groupings.iter().flat_map(|g| g.iter().take(2));
        granted.chain(grouped).cloned().collect()
    }

    /// The shipped default.
    pub fn default_policy() -> Result<Self, PolicyError> {
        Self::parse(DEFAULT_POLICY)
    }
}

struct Compiled {
    enforcer: Enforcer,
    rules: PolicyRules,
    decisions: RwLock<HashMap<(String, String, String, String), bool>>,
}

/// Decides, from the casbin policy, what a principal may do. Decisions are
/// cached until the policy changes, so a repeat check costs a hash lookup.
#[derive(Clone)]
pub struct Authorizer {
    current: Arc<RwLock<Arc<Compiled>>>,
}

async fn compile(rules: PolicyRules) -> Result<Compiled, PolicyError> {
    let casbin = |e: casbin::Error| PolicyError::Casbin(e.to_string());
    let model = DefaultModel::from_str(MODEL).await.map_err(casbin)?;
    let mut enforcer = Enforcer::new(model, MemoryAdapter::default()).await.map_err(casbin)?;
    if !rules.policies.is_empty() {
        enforcer.add_policies(rules.policies.clone()).await.map_err(casbin)?;
    }
    if !rules.groupings.is_empty() {
        enforcer.add_grouping_policies(rules.groupings.clone()).await.map_err(casbin)?;
    }
    Ok(Compiled { enforcer, rules, decisions: RwLock::new(HashMap::new()) })
}

impl Authorizer {
    /// An authorizer enforcing `rules`.
    pub async fn new(rules: PolicyRules) -> Result<Self, PolicyError> {
        Ok(Self { current: Arc::new(RwLock::new(Arc::new(compile(rules).await?))) })
    }

    /// Swaps in a new policy atomically: a check sees the old policy or the
    /// new one, never a mixture.
    pub async fn replace(&self, rules: PolicyRules) -> Result<(), PolicyError> {
        let compiled = Arc::new(compile(rules).await?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = compiled;
        Ok(())
    }

    /// The policy in force.
    pub fn rules(&self) -> PolicyRules {
        self.current.read().unwrap_or_else(|e| e.into_inner()).rules.clone()
    }

    /// Whether one of the principal's roles may `action` on `object` in
    /// `project` (`None`: outside any project), within the token's scope.
    pub fn allows(&self, principal: &Principal, object: &str, action: &str, project: Option<&str>) -> bool {
        if !principal.in_scope(project) {
            return false;
        }
        let domain = project.unwrap_or("*");
        let compiled = self.current.read().unwrap_or_else(|e| e.into_inner()).clone();
        principal.roles.iter().any(|role| {
            let key = (role.clone(), domain.to_owned(), object.to_owned(), action.to_owned());
            if let Some(decision) = compiled.decisions.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
                return *decision;
            }
            let decision = compiled.enforcer.enforce((role.as_str(), domain, object, action)).unwrap_or(false);
            let mut decisions = compiled.decisions.write().unwrap_or_else(|e| e.into_inner());
            if decisions.len() > 100_000 {
                decisions.clear();
            }
            decisions.insert(key, decision);
            decision
        })
    }
}
