//! Subscriptions as the ledger records them: a fold of the `webhook.*`
//! events, so every replica reads the same subscriptions and a rebuild
//! from the events gives them back exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ledger::{Event, Kind};

/// What a subscription's events must match. Each list left empty matches
/// everything of its sort.
#[derive(utoipa::ToSchema, Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Kinds, exact (`deployment.blocked`) or by namespace (`approval.*`);
    /// `*` or none: every kind.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Projects; none: every project the creator reads.
    #[serde(default)]
    pub projects: Vec<String>,
    /// Entity types of the event's subject (`model`, `deployment`, ...).
    #[serde(default)]
    pub entity_types: Vec<String>,
}

impl Filter {
    /// Whether an event of `kind` in `project` about an entity of
    /// `entity_type` passes the filter (not whether its creator may read it).
    pub fn matches(&self, kind: &str, project: Option<&str>, entity_type: &str) -> bool {
        let kind_ok = self.kinds.is_empty() || self.kinds.iter().any(|k| kind_matches(k, kind));
        let project_ok = self.projects.is_empty() || project.is_some_and(|p| self.projects.iter().any(|q| q == p));
        let type_ok = self.entity_types.is_empty() || self.entity_types.iter().any(|t| t == entity_type);
        kind_ok && project_ok && type_ok
    }
}

/// `approval.*` matches `approval.granted` (and `approval.x.y`), `*` every
/// kind, anything else only itself.
pub fn kind_matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some("") => true,
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    }
}

/// Where a subscription stands.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Delivering.
    Active,
    /// Paused by a person; resuming delivers what was recorded meanwhile.
    Paused,
    /// The receiver answered 410 Gone: the server stopped delivering.
    Disabled,
    /// An event could not be delivered within the retry window: the server
    /// stopped at it; resuming tries it again.
    Failing,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Disabled => "disabled",
            Self::Failing => "failing",
        }
    }
}

/// Whose reading rights a subscription delivers with: the roles and token
/// projects of the caller who created it, judged by the policy in force at
/// each delivery.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Creator {
    pub sub: String,
    pub roles: Vec<String>,
    pub projects: Vec<String>,
}

impl Creator {
    /// The principal the authorizer judges deliveries for.
    pub fn principal(&self) -> crate::auth::Principal {
        crate::auth::Principal {
            sub: self.sub.clone(),
            roles: self.roles.clone(),
            projects: self.projects.clone(),
            jti: String::new(),
            exp: u64::MAX,
        }
    }
}

/// A signing secret as the record holds it: sealed with the master key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedSecret {
    pub alg: String,
    pub sealed: String,
}

/// The sealing algorithm of [`SealedSecret::alg`].
pub const SECRET_ALG: &str = "A256GCM";

/// `webhook.created`'s attributes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Created {
    pub url: String,
    #[serde(default)]
    pub description: String,
    pub filter: Filter,
    pub creator: Creator,
    pub secret: SealedSecret,
}

/// `webhook.changed`'s attributes: what changed, and why.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Changed {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A rotated secret; the one it replaces keeps signing beside it until
    /// `previous_secret_until`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SealedSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_until: Option<String>,
    /// Delivery starts again at this seq.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_from_seq: Option<u64>,
}

/// `webhook.deleted`'s attributes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deleted {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One subscription, as of the last `webhook.*` event about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub url: String,
    pub description: String,
    pub filter: Filter,
    pub status: Status,
    /// Why it has its status, when a person or the server said.
    pub status_reason: Option<String>,
    pub creator: Creator,
    pub created_seq: u64,
    pub created_at: String,
    pub created_by: String,
    /// The last `webhook.*` event about it.
    pub changed_seq: u64,
    pub secret: SealedSecret,
    /// The secret before the last rotation, and until when it still signs.
    pub previous_secret: Option<(SealedSecret, String)>,
    /// The last replay asked for: (its event's seq, the seq to start from).
    pub replay: Option<(u64, u64)>,
}

impl Subscription {
    /// The record's subject for subscription `id`.
    pub fn subject_of(id: &str) -> String {
        format!("webhook:{id}")
    }

    /// The projects it delivers from: its filter's, or `None` for every
    /// project its creator reads.
    pub fn projects(&self) -> Option<&[String]> {
        (!self.filter.projects.is_empty()).then_some(self.filter.projects.as_slice())
    }
}

/// The subscriptions of a ledger, folded from its `webhook.*` events.
#[derive(Debug, Clone, Default)]
pub struct Subscriptions {
    pub live: BTreeMap<String, Subscription>,
    /// The last seq folded in (every `webhook.*` event up to it is).
    pub through: u64,
}

/// The `webhook.*` kinds, in the order a subscription meets them.
pub const KINDS: [Kind; 3] = [Kind::WebhookCreated, Kind::WebhookChanged, Kind::WebhookDeleted];

impl Subscriptions {
    /// Folds in `events` (of the `webhook.*` kinds, in seq order, after
    /// [`Subscriptions::through`]). An event that cannot be read is skipped
    /// with a warning: the server wrote it, so it would be a damaged row.
    pub fn apply(&mut self, events: &[Event]) {
        for event in events {
            self.through = self.through.max(event.seq);
            let Some(id) = event.subject.strip_prefix("webhook:") else { continue };
            let read = |what: &str, e: serde_json::Error| {
                tracing::warn!(seq = event.seq, error = %e, "cannot read the attributes of a {what} event");
            };
            if event.kind == Kind::WebhookCreated {
                match serde_json::from_str::<Created>(&event.attributes) {
                    Ok(c) => {
                        self.live.insert(
                            id.to_owned(),
                            Subscription {
                                id: id.to_owned(),
                                url: c.url,
                                description: c.description,
                                filter: c.filter,
                                status: Status::Active,
                                status_reason: None,
                                creator: c.creator,
                                created_seq: event.seq,
                                created_at: event.recorded_at.clone(),
                                created_by: event.actor.clone(),
                                changed_seq: event.seq,
                                secret: c.secret,
                                previous_secret: None,
                                replay: None,
                            },
                        );
                    }
                    Err(e) => read("webhook.created", e),
                }
            } else if event.kind == Kind::WebhookChanged {
                let Some(sub) = self.live.get_mut(id) else { continue };
                match serde_json::from_str::<Changed>(&event.attributes) {
                    Ok(c) => {
                        sub.changed_seq = event.seq;
                        if let Some(url) = c.url {
                            sub.url = url;
                        }
                        if let Some(description) = c.description {
                            sub.description = description;
                        }
                        if let Some(filter) = c.filter {
                            sub.filter = filter;
                        }
                        if let Some(status) = c.status {
                            sub.status = status;
                            sub.status_reason = c.reason.clone();
                        }
                        if let Some(secret) = c.secret {
                            let old = std::mem::replace(&mut sub.secret, secret);
                            sub.previous_secret = c.previous_secret_until.map(|until| (old, until));
                        }
                        if let Some(from) = c.replay_from_seq {
                            sub.replay = Some((event.seq, from));
                        }
                    }
                    Err(e) => read("webhook.changed", e),
                }
            } else if event.kind == Kind::WebhookDeleted {
                self.live.remove(id);
            }
        }
    }

    /// How many subscriptions the server stopped because they fail.
    pub fn failing(&self) -> usize {
        self.live.values().filter(|s| s.status == Status::Failing).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_patterns_match_a_namespace_everything_or_one_kind() {
        assert!(kind_matches("approval.*", "approval.granted"));
        assert!(!kind_matches("approval.*", "approvals.granted"));
        assert!(!kind_matches("approval.*", "deployment.blocked"));
        assert!(kind_matches("*", "anything.at_all"));
        assert!(kind_matches("deployment.blocked", "deployment.blocked"));
        assert!(!kind_matches("deployment.blocked", "deployment.blocked_twice"));
    }

    #[test]
    fn a_filter_needs_every_list_to_match() {
        let filter = Filter {
            kinds: vec!["approval.*".into()],
            projects: vec!["fraud".into()],
            entity_types: vec!["approval".into()],
        };
        assert!(filter.matches("approval.requested", Some("fraud"), "approval"));
        assert!(!filter.matches("approval.requested", Some("risk"), "approval"));
        assert!(!filter.matches("approval.requested", None, "approval"), "a project filter leaves out unscoped events");
        assert!(!filter.matches("model.registered", Some("fraud"), "approval"));
        assert!(Filter::default().matches("x.y", None, "z"));
    }
}
