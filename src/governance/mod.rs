//! The governance domain: typed event kinds, approvals with separation of
//! duties, the deployment gate, lineage and impact analysis, and OpenLineage
//! intake. Services here sit between `http`/CLI and the store; the state they
//! read is the projections the store keeps in step with the ledger.

pub mod approvals;
pub mod evidence;
pub mod gate;
pub mod inbox;
pub mod kinds;
pub mod lineage;
pub mod monitoring;
pub mod monitoring_rules;
pub mod openlineage;
pub mod readiness;
pub mod rules;
pub mod subjects;

pub use gate::GateDecision;
pub use rules::{ApprovalRules, Environment, UnknownEnvironment};

use crate::ledger::ValidationError;
use crate::store::{AppendError, Store, StoreError};

/// Errors of the governance services.
#[derive(Debug, thiserror::Error)]
pub enum GovernanceError {
    #[error("{0}")]
    Invalid(String),
    /// Monitoring rules that cannot be used; the message says what to fix.
    #[error("{0}")]
    InvalidMonitoringRules(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    /// The request names a project other than the one its data belongs to.
    #[error("{0}")]
    ProjectMismatch(String),
    /// The gate said no; a `deployment.blocked` event with this seq records it.
    #[error("deployment blocked: {}", .decision.reasons.join("; "))]
    Blocked { decision: Box<GateDecision>, blocked_seq: u64 },
    /// The environment is not declared in the approval rules. For a
    /// deployment, a `deployment.blocked` event with `blocked_seq` records it.
    #[error("{}", .decision.reasons.join("; "))]
    UnknownEnvironment { decision: Box<GateDecision>, blocked_seq: Option<u64> },
    /// A fault of the server (a panicked blocking task, say): answered as an
    /// opaque 500, the cause logged.
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Append(#[from] AppendError),
}

impl GovernanceError {
    /// A blocking task that did not finish (it panicked): a fault of the
    /// server, never the client's.
    pub fn panicked(e: tokio::task::JoinError) -> Self {
        Self::Internal(format!("a blocking task failed: {e}"))
    }
}

impl From<ValidationError> for GovernanceError {
    fn from(e: ValidationError) -> Self {
        Self::Invalid(e.to_string())
    }
}

/// The governance services over one ledger.
#[derive(Clone)]
pub struct Governance {
    store: Store,
    rules: std::sync::Arc<ApprovalRules>,
    monitor: std::sync::Arc<monitoring::Monitor>,
    /// Identities declared to be one person, for separation of duties.
    people: crate::ledger::actor::SharedPeople,
}

impl Governance {
    /// Services over `store` under approval `rules`, with `monitoring`
    /// rules to record when none are on the record (the shipped ones for
    /// `None`).
    pub fn new(
        store: Store,
        rules: ApprovalRules,
        monitoring: Option<String>,
    ) -> Result<Self, monitoring::MonitoringError> {
        let rules = std::sync::Arc::new(rules);
        let initial = monitoring.unwrap_or_else(|| monitoring_rules::DEFAULT_MONITORING_RULES.to_owned());
        let monitor = std::sync::Arc::new(monitoring::Monitor::new(rules.clone(), initial)?);
        Ok(Self { store, rules, monitor, people: Default::default() })
    }

    /// The monitoring service.
    pub fn monitor(&self) -> &std::sync::Arc<monitoring::Monitor> {
        &self.monitor
    }

    /// The people in force for separation of duties; the identity map
    /// replaces them.
    pub fn people(&self) -> &crate::ledger::actor::SharedPeople {
        &self.people
    }

    /// The approval rules in force.
    pub fn rules(&self) -> &ApprovalRules {
        &self.rules
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// A model version `model:NAME@VERSION`, for the OpenAPI description of
/// the routes that approve, gate and deploy exactly one version.
pub struct ModelVersionRef;

impl utoipa::PartialSchema for ModelVersionRef {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("A model version, `model:NAME@VERSION`"))
            .pattern(Some(r"^model:[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*@[A-Za-z0-9._+-]{1,64}$"))
            .max_length(Some(271))
            .examples(["model:fraud-detector@3"])
            .into()
    }
}

impl utoipa::ToSchema for ModelVersionRef {
    fn name() -> std::borrow::Cow<'static, str> {
        "ModelVersionRef".into()
    }
}
