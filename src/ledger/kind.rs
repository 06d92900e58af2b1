//! The event kinds govledger gives meaning to, as one enum.
//!
//! A kind is stored as text (`EventKind`), and clients may record kinds of
//! their own; but every kind the server reads (to validate attributes, move
//! an entity's status, decide ownership or cite in a report) is a [`Kind`],
//! so that a misspelt kind is a compile error rather than a silent miss.

use std::fmt;

macro_rules! kinds {
    ($($variant:ident => $name:literal,)*) => {
        /// A kind the server reads.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kind {
            $(#[doc = $name] $variant,)*
        }

        impl Kind {
            /// Every kind, in documentation order.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant,)*];

            /// The kind as it is stored and sent.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Kind::$variant => $name,)*
                }
            }

            /// The kind named `name`, if the server knows it.
            pub fn from_name(name: &str) -> Option<Kind> {
                match name {
                    $($name => Some(Kind::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

kinds! {
    DatasetRegistered => "dataset.registered",
    DatasetVersionCreated => "dataset.version_created",
    DatasetClassified => "dataset.classified",
    JobRegistered => "job.registered",
    RunStarted => "run.started",
    RunUpdated => "run.updated",
    RunCompleted => "run.completed",
    RunFailed => "run.failed",
    ModelRegistered => "model.registered",
    ModelEvaluated => "model.evaluated",
    ModelExplained => "model.explained",
    ModelRetired => "model.retired",
    ApprovalRequested => "approval.requested",
    ApprovalGranted => "approval.granted",
    ApprovalRejected => "approval.rejected",
    ApprovalRevoked => "approval.revoked",
    DeploymentRequested => "deployment.requested",
    DeploymentSucceeded => "deployment.succeeded",
    DeploymentFailed => "deployment.failed",
    DeploymentRolledBack => "deployment.rolled_back",
    DeploymentBlocked => "deployment.blocked",
    DeploymentTrafficChanged => "deployment.traffic_changed",
    MonitoringMetricReported => "monitoring.metric_reported",
    MonitoringThresholdBreached => "monitoring.threshold_breached",
    MonitoringThresholdRecovered => "monitoring.threshold_recovered",
    MonitoringDriftDetected => "monitoring.drift_detected",
    MonitoringRulesChanged => "monitoring.rules_changed",
    TokenIssued => "token.issued",
    TokenRevoked => "token.revoked",
    PolicyChanged => "policy.changed",
    IdentityChanged => "identity.changed",
    SessionStarted => "session.started",
    SessionEnded => "session.ended",
    SubjectErased => "subject.erased",
    WebhookCreated => "webhook.created",
    WebhookChanged => "webhook.changed",
    WebhookDeleted => "webhook.deleted",
}

/// Namespaces in which every kind must be a [`Kind`] with typed attributes;
/// kinds outside them (a team's own, `pipeline.code_changed`) stay free-form.
pub const GOVERNED_NAMESPACES: [&str; 7] = ["dataset", "run", "model", "approval", "deployment", "job", "monitoring"];

impl Kind {
    /// The part before the first dot: `model` for `model.registered`.
    pub fn namespace(self) -> &'static str {
        let name = self.as_str();
        name.split('.').next().unwrap_or(name)
    }

    /// Whether the kind is in a governed namespace (attributes typed,
    /// documented in `docs/EVENTS.md`), rather than one the server writes
    /// for its own administration.
    pub fn is_governed(self) -> bool {
        GOVERNED_NAMESPACES.contains(&self.namespace())
    }

    /// The governed kinds, in documentation order.
    pub fn governed() -> impl Iterator<Item = Kind> {
        Kind::ALL.iter().copied().filter(|k| k.is_governed())
    }

    /// The status an entity has after an event of this kind about it, for
    /// the kinds that move one.
    pub fn status_after(self) -> Option<&'static str> {
        Some(match self {
            Kind::DatasetRegistered | Kind::JobRegistered | Kind::ModelRegistered => "registered",
            Kind::DatasetVersionCreated => "created",
            Kind::RunStarted | Kind::RunUpdated => "running",
            Kind::RunCompleted => "completed",
            Kind::RunFailed => "failed",
            Kind::ModelRetired => "retired",
            Kind::DeploymentRequested => "requested",
            Kind::DeploymentBlocked => "blocked",
            Kind::DeploymentFailed => "failed",
            Kind::DeploymentSucceeded => "live",
            Kind::DeploymentRolledBack => "rolled_back",
            _ => return None,
        })
    }

    /// Whether a deployment event of this kind makes its model the one that
    /// serves (a rollback goes live with the model it names).
    pub fn puts_model_live(self) -> bool {
        matches!(self, Kind::DeploymentSucceeded | Kind::DeploymentRolledBack)
    }

    /// The decision an approval event of this kind records.
    pub fn decision(self) -> Option<Decision> {
        match self {
            Kind::ApprovalGranted => Some(Decision::Grant),
            Kind::ApprovalRejected => Some(Decision::Reject),
            Kind::ApprovalRevoked => Some(Decision::Revoke),
            _ => None,
        }
    }

    /// Whether this is one of the kinds about a run's progress.
    pub fn is_run_progress(self) -> bool {
        matches!(self, Kind::RunStarted | Kind::RunUpdated | Kind::RunCompleted | Kind::RunFailed)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Kind {
    fn eq(&self, name: &str) -> bool {
        self.as_str() == name
    }
}

impl PartialEq<&str> for Kind {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

impl PartialEq<String> for Kind {
    fn eq(&self, name: &String) -> bool {
        self.as_str() == name
    }
}

impl PartialEq<Kind> for str {
    fn eq(&self, kind: &Kind) -> bool {
        self == kind.as_str()
    }
}

impl PartialEq<Kind> for &str {
    fn eq(&self, kind: &Kind) -> bool {
        *self == kind.as_str()
    }
}

impl PartialEq<Kind> for String {
    fn eq(&self, kind: &Kind) -> bool {
        self == kind.as_str()
    }
}

/// What a risk officer decides about an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Grant,
    Reject,
    Revoke,
}

impl Decision {
    /// The kind of the event that records the decision.
    pub fn kind(self) -> Kind {
        match self {
            Decision::Grant => Kind::ApprovalGranted,
            Decision::Reject => Kind::ApprovalRejected,
            Decision::Revoke => Kind::ApprovalRevoked,
        }
    }

    /// The decision as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Grant => "grant",
            Decision::Reject => "reject",
            Decision::Revoke => "revoke",
        }
    }

    /// The decision the API spells `name`.
    pub fn parse(name: &str) -> Option<Decision> {
        [Decision::Grant, Decision::Reject, Decision::Revoke].into_iter().find(|d| d.as_str() == name)
    }
}

/// Where an approval stands. Expiry is not a state: a granted approval is
/// valid until its `expires_at`, which readers compare with their clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    Pending,
    Granted,
    Rejected,
    Revoked,
}

impl ApprovalState {
    pub const ALL: [ApprovalState; 4] =
        [ApprovalState::Pending, ApprovalState::Granted, ApprovalState::Rejected, ApprovalState::Revoked];

    /// The state as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Granted => "granted",
            ApprovalState::Rejected => "rejected",
            ApprovalState::Revoked => "revoked",
        }
    }

    /// The state spelt `name`.
    pub fn parse(name: &str) -> Option<ApprovalState> {
        ApprovalState::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether `decision` may be taken in this state: grants and rejections
    /// while pending, a revocation while pending or granted.
    pub fn admits(self, decision: Decision) -> bool {
        match decision {
            Decision::Revoke => matches!(self, ApprovalState::Pending | ApprovalState::Granted),
            Decision::Grant | Decision::Reject => self == ApprovalState::Pending,
        }
    }

    /// The state after `decision`, when `granters` distinct people have
    /// granted (this one included) of the `required` quorum; `None` when
    /// it does not move (a grant short of quorum, or a decision the state
    /// does not admit).
    pub fn after(self, decision: Decision, granters: usize, required: usize) -> Option<ApprovalState> {
        if !self.admits(decision) {
            return None;
        }
        match decision {
            Decision::Grant if granters >= required.max(1) => Some(ApprovalState::Granted),
            Decision::Grant => None,
            Decision::Reject => Some(ApprovalState::Rejected),
            Decision::Revoke => Some(ApprovalState::Revoked),
        }
    }
}

impl fmt::Display for ApprovalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_name_and_is_a_valid_event_kind() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_name(kind.as_str()), Some(*kind));
            assert!(crate::ledger::EventKind::parse(kind.as_str()).is_ok(), "{kind}");
        }
        assert_eq!(Kind::from_name("model.registerd"), None);
        assert_eq!(Kind::governed().count(), 27);
    }

    #[test]
    fn decisions_and_their_kinds_agree() {
        for decision in [Decision::Grant, Decision::Reject, Decision::Revoke] {
            assert_eq!(decision.kind().decision(), Some(decision));
        }
        let stored: String = "run.failed".into();
        assert!("run.failed" == Kind::RunFailed && stored == Kind::RunFailed && Kind::RunFailed != "run.updated");
    }

    /// docs/EVENTS.md documents every governed kind and the server's
    /// `subject.erased`, `webhook.*`, `identity.changed` and `session.*`, names no governed-namespace kind the server does
    /// not know, and gives each deployment kind the status it moves to.
    #[test]
    fn the_events_page_and_the_enum_agree() {
        let doc = include_str!("../../docs/EVENTS.md");
        let server_kinds = [
            Kind::SubjectErased,
            Kind::WebhookCreated,
            Kind::WebhookChanged,
            Kind::WebhookDeleted,
            Kind::IdentityChanged,
            Kind::SessionStarted,
            Kind::SessionEnded,
        ];
        for kind in Kind::governed().chain(server_kinds) {
            assert!(doc.contains(&format!("`{kind}`")), "docs/EVENTS.md does not document {kind}");
        }
        for quoted in doc.split('`').skip(1).step_by(2) {
            let namespace = quoted.split('.').next().unwrap_or_default();
            let looks_like_kind = crate::ledger::EventKind::parse(quoted).is_ok();
            if looks_like_kind && GOVERNED_NAMESPACES.contains(&namespace) {
                assert!(Kind::from_name(quoted).is_some(), "docs/EVENTS.md names {quoted:?}, which is not a kind");
            }
        }
        for line in doc.lines().filter(|l| l.starts_with("| `deployment.")) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let kind = Kind::from_name(cells[1].trim_matches('`')).expect("a deployment kind");
            let status = cells[3].trim_matches('`');
            assert_eq!((status != "—").then_some(status), kind.status_after(), "{line}");
        }
    }

    #[test]
    fn an_approval_moves_only_as_its_quorum_and_state_allow() {
        use ApprovalState::*;
        assert_eq!(Pending.after(Decision::Grant, 1, 2), None);
        assert_eq!(Pending.after(Decision::Grant, 2, 2), Some(Granted));
        assert_eq!(Pending.after(Decision::Reject, 0, 2), Some(Rejected));
        assert_eq!(Granted.after(Decision::Revoke, 2, 2), Some(Revoked));
        assert_eq!(Granted.after(Decision::Grant, 3, 2), None);
        assert_eq!(Rejected.after(Decision::Revoke, 0, 1), None);
        assert!(!Revoked.admits(Decision::Revoke));
    }
}
