//! The governance event kinds and the shape of their attributes.
//!
//! Each kind below has a serde struct with `deny_unknown_fields`: a typo in a
//! pipeline's attribute name is refused at the door instead of silently
//! leaving a dossier without its evidence. Kinds outside the governed
//! namespaces (a team's own) stay free-form.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::ledger::kind::GOVERNED_NAMESPACES;
use crate::ledger::{EventDraft, Kind, ValidationError};

/// Kinds only the server writes, through their endpoints: approvals and
/// deployment requests are checked against the approval rules and
/// separation of duties inside the append transaction, an erasure destroys
/// keys, a subscription's events carry a secret the server seals, and
/// monitoring rules and the breaches judged by them are the server's own.
pub const ENDPOINT_ONLY: [(Kind, &str); 16] = [
    (Kind::ApprovalRequested, "POST /api/v1/approvals"),
    (Kind::ApprovalGranted, "POST /api/v1/approvals/{id}/decision"),
    (Kind::ApprovalRejected, "POST /api/v1/approvals/{id}/decision"),
    (Kind::ApprovalRevoked, "POST /api/v1/approvals/{id}/decision"),
    (Kind::DeploymentRequested, "POST /api/v1/deployments"),
    (Kind::DeploymentBlocked, "POST /api/v1/deployments"),
    (Kind::SubjectErased, "POST /api/v1/subjects/{id}/erase"),
    (Kind::WebhookCreated, "POST /api/v1/webhooks"),
    (Kind::WebhookChanged, "PATCH /api/v1/webhooks/{id}"),
    (Kind::WebhookDeleted, "DELETE /api/v1/webhooks/{id}"),
    (Kind::MonitoringThresholdBreached, "a monitoring.metric_reported that crosses a rule of the monitoring rules"),
    (Kind::MonitoringThresholdRecovered, "a monitoring.metric_reported that crosses a rule of the monitoring rules"),
    (Kind::MonitoringRulesChanged, "PUT /api/v1/monitoring/rules"),
    (Kind::IdentityChanged, "PUT /api/v1/identity-map"),
    (Kind::SessionStarted, "a console sign-in"),
    (Kind::SessionEnded, "a console sign-out"),
];

/// Where a client must send an event of `kind` instead of `/api/v1/events`.
pub fn endpoint_for(kind: &str) -> Option<&'static str> {
    ENDPOINT_ONLY.iter().find(|(k, _)| *k == kind).map(|(_, e)| *e)
}

/// Free-form metrics: name to number.
pub type Metrics = BTreeMap<String, f64>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DatasetRegistered {
    description: Option<String>,
    owner: Option<String>,
    location: Option<String>,
    format: Option<String>,
    schema: Option<serde_json::Value>,
    tags: Option<Vec<String>>,
    openlineage: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DatasetVersionCreated {
    description: Option<String>,
    location: Option<String>,
    row_count: Option<u64>,
    checksum: Option<String>,
    schema: Option<serde_json::Value>,
}

/// GDPR Art. 6 legal bases.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    Consent,
    Contract,
    LegalObligation,
    VitalInterests,
    PublicTask,
    LegitimateInterests,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DatasetClassified {
    contains_personal_data: bool,
    personal_data_categories: Option<Vec<String>>,
    special_categories: Option<bool>,
    legal_basis: Option<LegalBasis>,
    retention: Option<String>,
    purpose: Option<String>,
    controller: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct JobRegistered {
    description: Option<String>,
    owner: Option<String>,
    openlineage: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RunStarted {
    pipeline: Option<String>,
    code_version: Option<String>,
    parameters: Option<serde_json::Map<String, serde_json::Value>>,
    environment: Option<String>,
    openlineage: Option<serde_json::Value>,
    /// The seq of the `monitoring.threshold_breached` or
    /// `monitoring.drift_detected` event this run answers (checked in the
    /// append transaction).
    triggered_by: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RunCompleted {
    metrics: Option<Metrics>,
    duration_seconds: Option<f64>,
    openlineage: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RunFailed {
    error: Option<String>,
    openlineage: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ModelRegistered {
    framework: Option<String>,
    artifact_uri: Option<String>,
    checksum: Option<String>,
    owner: Option<String>,
    description: Option<String>,
    metrics: Option<Metrics>,
    /// Labels of the version (an MLflow version's tags, say): strings only.
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ModelEvaluated {
    metrics: Metrics,
    thresholds: Option<Metrics>,
    passed: Option<bool>,
    notes: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ModelExplained {
    method: Option<String>,
    feature_importances: Option<Metrics>,
    reason_codes: Option<Vec<String>>,
    intended_use: Option<String>,
    limitations: Option<String>,
    fairness_metrics: Option<Metrics>,
    artifacts: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ModelRetired {
    reason: Option<String>,
}

/// What `approval.requested` records; the server fills the rule fields from
/// `policies/approvals.toml` so the projection never depends on a rules file
/// that may change later.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequested {
    pub model: String,
    pub environment: String,
    pub evidence: Vec<String>,
    pub note: String,
    pub required_approvals: u32,
    pub valid_for_seconds: u64,
}

/// What `approval.granted`, `.rejected` and `.revoked` record: the reason
/// and, set by the server from the state the decision follows, what a
/// notified approver or pipeline acts on without asking again (absent from
/// decisions recorded before they were added).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalDecided {
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Distinct approvers who granted it, this decision included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_approvals: Option<u32>,
    /// The approval's state after this decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Why a grant goes ahead although rules of the environment fail
    /// (given by the approver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_reason: Option<String>,
    /// The rules failing when it was granted (`evaluation`,
    /// `no_open_breach`), which the override covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overridden: Option<Vec<String>>,
    /// What each failing rule found, as the approver was shown it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_checks: Option<Vec<String>>,
}

/// What every `deployment.*` event records besides its subject
/// (`deployment:ENVIRONMENT/NAME`).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentAttributes {
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `deployment.blocked`: why the gate said no.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasons: Option<Vec<String>>,
    /// For `deployment.requested`/`.blocked`: the approval events the gate relied on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_seqs: Option<Vec<u64>>,
}

/// What `monitoring.rules_changed` records: the rules' text and its digest.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RulesChanged {
    rules: String,
    sha256: String,
}

/// Checks a draft of a governed kind: known kind, subject of the right
/// entity type, attributes of the right shape.
pub fn validate(draft: &EventDraft) -> Result<(), ValidationError> {
    let name = draft.kind.as_str();
    let namespace = name.split('.').next().unwrap_or_default();
    if !GOVERNED_NAMESPACES.contains(&namespace) {
        return Ok(());
    }
    let Some(kind) = Kind::from_name(name).filter(|k| k.is_governed()) else {
        return Err(ValidationError::new(format!(
            "unknown kind {name:?} in the governed `{namespace}.*` namespace; known kinds: {}",
            Kind::governed().filter(|k| k.namespace() == namespace).map(Kind::as_str).collect::<Vec<_>>().join(", ")
        )));
    };
    let attributes: serde_json::Value =
        serde_json::from_str(&draft.attributes).map_err(|e| ValidationError::new(format!("attributes: {e}")))?;
    let subject = &draft.subject;
    let expect_type = |t: &str| {
        if subject.entity_type() == t {
            Ok(())
        } else {
            Err(ValidationError::new(format!("subject: a {kind} event is about a `{t}:` entity, not {subject}")))
        }
    };
    let expect_version = |wanted: bool| {
        if subject.version().is_some() == wanted {
            Ok(())
        } else if wanted {
            Err(ValidationError::new(format!("subject: {kind} needs a versioned reference such as {subject}@1")))
        } else {
            Err(ValidationError::new(format!("subject: {kind} is about the unversioned entity, without `@version`")))
        }
    };
    let no_refs = || {
        if draft.inputs.is_empty() && draft.outputs.is_empty() {
            Ok(())
        } else {
            Err(ValidationError::new(format!("{kind} takes no inputs or outputs; name the model in attributes")))
        }
    };
    let expect_deployment = || {
        expect_type("deployment")?;
        expect_version(false)?;
        no_refs()?;
        if subject.name().contains('/') {
            Ok(())
        } else {
            Err(ValidationError::new(format!(
                "subject: a deployment is named ENVIRONMENT/NAME, e.g. deployment:production/{}",
                subject.name()
            )))
        }
    };
    match kind {
        Kind::DatasetRegistered => {
            expect_type("dataset")?;
            expect_version(false)?;
            shape::<DatasetRegistered>(&attributes)
        }
        Kind::DatasetVersionCreated => {
            expect_type("dataset")?;
            expect_version(true)?;
            shape::<DatasetVersionCreated>(&attributes)
        }
        Kind::DatasetClassified => {
            expect_type("dataset")?;
            let c: DatasetClassified = shape_of(&attributes)?;
            if c.contains_personal_data && (c.legal_basis.is_none() || c.retention.is_none()) {
                return Err(ValidationError::new(
                    "attributes: a dataset with personal data needs `legal_basis` and `retention`",
                ));
            }
            Ok(())
        }
        Kind::JobRegistered => {
            expect_type("job")?;
            shape::<JobRegistered>(&attributes)
        }
        Kind::RunStarted | Kind::RunUpdated => {
            expect_type("run")?;
            shape::<RunStarted>(&attributes)
        }
        Kind::RunCompleted => {
            expect_type("run")?;
            shape::<RunCompleted>(&attributes)
        }
        Kind::RunFailed => {
            expect_type("run")?;
            shape::<RunFailed>(&attributes)
        }
        Kind::ModelRegistered => {
            expect_type("model")?;
            expect_version(true)?;
            let runs = draft.inputs.iter().filter(|r| r.entity_type() == "run").count();
            if runs != 1 {
                return Err(ValidationError::new(
                    "inputs: model.registered names exactly one training run (`run:ID`) among its inputs",
                ));
            }
            shape::<ModelRegistered>(&attributes)
        }
        Kind::ModelEvaluated => {
            expect_type("model")?;
            expect_version(true)?;
            let e: ModelEvaluated = shape_of(&attributes)?;
            if e.metrics.is_empty() {
                return Err(ValidationError::new("attributes.metrics: give at least one metric"));
            }
            Ok(())
        }
        Kind::ModelExplained => {
            expect_type("model")?;
            expect_version(true)?;
            shape::<ModelExplained>(&attributes)
        }
        Kind::ModelRetired => {
            expect_type("model")?;
            expect_version(true)?;
            shape::<ModelRetired>(&attributes)
        }
        Kind::ApprovalRequested => {
            expect_type("approval")?;
            no_refs()?;
            shape::<ApprovalRequested>(&attributes)
        }
        Kind::ApprovalGranted | Kind::ApprovalRejected | Kind::ApprovalRevoked => {
            expect_type("approval")?;
            no_refs()?;
            shape::<ApprovalDecided>(&attributes)
        }
        Kind::DeploymentTrafficChanged => {
            expect_deployment()?;
            super::monitoring::check_traffic(&attributes)
        }
        Kind::MonitoringMetricReported => {
            no_refs()?;
            super::monitoring::check_report(subject, &attributes)
        }
        Kind::MonitoringDriftDetected => {
            no_refs()?;
            super::monitoring::check_drift(subject, &attributes)
        }
        Kind::MonitoringThresholdBreached | Kind::MonitoringThresholdRecovered => {
            expect_type("model")?;
            expect_version(true)?;
            shape::<super::monitoring::ThresholdChange>(&attributes)
        }
        Kind::MonitoringRulesChanged => shape::<RulesChanged>(&attributes),
        Kind::DeploymentRequested
        | Kind::DeploymentSucceeded
        | Kind::DeploymentFailed
        | Kind::DeploymentRolledBack
        | Kind::DeploymentBlocked => {
            expect_deployment()?;
            let d: DeploymentAttributes = shape_of(&attributes)?;
            let model = crate::ledger::EntityRef::parse(&d.model).map_err(|e| e.in_field("attributes.model"))?;
            if model.entity_type() != "model" || model.version().is_none() {
                return Err(ValidationError::new("attributes.model: expected a model version, model:NAME@VERSION"));
            }
            Ok(())
        }
        // The server's own kinds are outside the governed namespaces and were
        // let through above; they are listed so a new kind must be placed.
        Kind::TokenIssued
        | Kind::TokenRevoked
        | Kind::PolicyChanged
        | Kind::IdentityChanged
        | Kind::SessionStarted
        | Kind::SessionEnded
        | Kind::SubjectErased
        | Kind::WebhookCreated
        | Kind::WebhookChanged
        | Kind::WebhookDeleted => Ok(()),
    }
}

/// The environment of a deployment entity `deployment:ENVIRONMENT/NAME`.
pub fn deployment_environment(deployment_name: &str) -> &str {
    deployment_name.split('/').next().unwrap_or(deployment_name)
}

fn shape<T: DeserializeOwned>(attributes: &serde_json::Value) -> Result<(), ValidationError> {
    shape_of::<T>(attributes).map(|_| ())
}

fn shape_of<T: DeserializeOwned>(attributes: &serde_json::Value) -> Result<T, ValidationError> {
    T::deserialize(attributes).map_err(|e| ValidationError::new(format!("attributes: {e}")))
}
