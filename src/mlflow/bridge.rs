//! The bridge: MLflow registry changes in, govledger events out, through the
//! same validation, authorization and governance services as the API. It
//! acts as one principal (actor `mlflow`, role `mlflow`, the mapping's
//! project only), so the casbin policy in force decides what it may record.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};

use super::api::{Mlflow, MlflowError, ModelVersion, RegisteredModel, Run};
use super::config::Mapping;
use super::mapping;
use crate::auth::actions::{AppendEvents, Guard};
use crate::auth::{Authorizer, Principal};
use crate::governance::approvals::DeploymentRequest;
use crate::governance::{kinds, Governance, GovernanceError};
use crate::ledger::{EventDraft, EventRequest};
use crate::store::{events, projections, AppendError};

/// The actor and role the bridge records as.
pub const ACTOR: &str = "mlflow";
pub const ROLE: &str = "mlflow";

/// Why a registry change could not be mirrored.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error(transparent)]
    Mlflow(#[from] MlflowError),
    #[error(transparent)]
    Governance(#[from] GovernanceError),
    #[error(transparent)]
    Append(#[from] AppendError),
    /// The policy in force does not let the bridge record this.
    #[error("{0}")]
    Forbidden(String),
    /// A delivery or MLflow object that cannot be mapped.
    #[error("{0}")]
    Invalid(String),
}

/// What one registry change led to.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Outcome {
    /// The seqs recorded, in order (empty: it was already on the record).
    pub recorded: Vec<u64>,
    /// What the bridge did, for a person.
    pub summary: String,
}

impl Outcome {
    fn said(summary: impl Into<String>) -> Self {
        Self { recorded: Vec::new(), summary: summary.into() }
    }
}

/// The MLflow bridge of one govledger server (or of `mlflow import`).
pub struct Bridge {
    governance: Governance,
    mlflow: Mlflow,
    mapping: Mapping,
    authorizer: Authorizer,
    principal: Principal,
    webhook_secret: Option<String>,
    /// MLflow delivers concurrently; changes to one registry are mirrored
    /// one at a time so that "is this already recorded?" stays true until
    /// the answer is written.
    lock: tokio::sync::Mutex<()>,
}

impl Bridge {
    pub fn new(
        governance: Governance,
        mlflow: Mlflow,
        mapping: Mapping,
        authorizer: Authorizer,
        webhook_secret: Option<String>,
    ) -> Arc<Self> {
        let principal = Principal {
            sub: ACTOR.into(),
            roles: vec![ROLE.into()],
            projects: vec![mapping.project.clone()],
            jti: "integration:mlflow".into(),
            exp: u64::MAX,
        };
        let lock = tokio::sync::Mutex::new(());
        Arc::new(Self { governance, mlflow, mapping, authorizer, principal, webhook_secret, lock })
    }

    /// The secret MLflow signs deliveries with (`None`: none can be trusted).
    pub fn webhook_secret(&self) -> Option<&str> {
        self.webhook_secret.as_deref()
    }

    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// One webhook delivery of MLflow, already authenticated.
    pub async fn deliver(&self, delivery_id: &str, payload: &Value) -> Result<Outcome, BridgeError> {
        let field = |name: &str| payload.get(name).and_then(Value::as_str).unwrap_or_default();
        let data = payload.get("data").cloned().unwrap_or(Value::Null);
        let text = |name: &str| -> Result<String, BridgeError> {
            data.get(name)
                .and_then(|v| v.as_str().map(str::to_owned).or_else(|| v.as_i64().map(|n| n.to_string())))
                .filter(|s| !s.is_empty())
                .ok_or_else(|| BridgeError::Invalid(format!("the delivery's data has no `{name}`")))
        };
        let _one_at_a_time = self.lock.lock().await;
        match (field("entity"), field("action")) {
            ("registered_model", "created") => self.registered_model(&text("name")?, &data).await,
            ("model_version", "created") => self.mirror_version(&text("name")?, &text("version")?).await,
            ("model_version_tag", "set") => {
                let (name, version) = (text("name")?, text("version")?);
                let mut outcome = self.mirror_version(&name, &version).await?;
                // An empty value is a tag MLflow allows.
                let value = data.get("value").and_then(Value::as_str).unwrap_or_default();
                let attributes = json!({"key": text("key")?, "value": value});
                let event = mapping::event(
                    "mlflow.tag_set",
                    &mapping::model_ref(&name, &version),
                    &self.mapping.project,
                    &[],
                    attributes,
                    mapping::key(&["delivery", delivery_id]),
                );
                outcome.recorded.extend(self.append(vec![event]).await?);
                outcome.summary = format!("tag recorded on {}", mapping::model_ref(&name, &version));
                Ok(outcome)
            }
            ("model_version_alias", "created") => {
                self.alias_set(&text("name")?, &text("alias")?, &text("version")?, delivery_id, true).await
            }
            ("model_version_alias", "deleted") => {
                self.alias_deleted(&text("name")?, &text("alias")?, delivery_id).await
            }
            (entity, action) => Ok(Outcome::said(format!("{entity}.{action} is not mirrored (docs/MLFLOW.md)"))),
        }
    }

    async fn registered_model(&self, name: &str, data: &Value) -> Result<Outcome, BridgeError> {
        let mut attributes = json!({"name": name});
        if let Some(description) = data.get("description").filter(|d| d.is_string()) {
            attributes["description"] = description.clone();
        }
        if let Some(tags) = data.get("tags").filter(|t| t.is_object()) {
            attributes["tags"] = tags.clone();
        }
        let event = mapping::event(
            "mlflow.registered_model_created",
            &mapping::registered_model_ref(name),
            &self.mapping.project,
            &[],
            attributes,
            mapping::key(&["registered-model", name]),
        );
        let recorded = self.append_new(vec![event]).await?;
        Ok(Outcome { recorded, summary: format!("registered model {name} recorded") })
    }

    /// Records a model version, its training run and the run's datasets,
    /// reading them from MLflow; what is already on the record is skipped.
    pub async fn mirror_version(&self, name: &str, version: &str) -> Result<Outcome, BridgeError> {
        let found = self.mlflow.model_version(name, version).await?;
        let run = match found.run_id.as_deref().filter(|r| !r.is_empty()) {
            Some(run_id) => self.run(run_id).await?,
            None => None,
        };
        let recorded = self.append_new(self.version_events(&found, run.as_ref())).await?;
        let summary = if recorded.is_empty() {
            format!("{} was already on the record", mapping::model_ref(name, version))
        } else {
            format!("{} recorded with its run and data", mapping::model_ref(name, version))
        };
        Ok(Outcome { recorded, summary })
    }

    /// The events that mirror one version, in the order they must be written.
    pub fn version_events(&self, version: &ModelVersion, run: Option<&Run>) -> Vec<Value> {
        let project = &self.mapping.project;
        let mut out = Vec::new();
        match (run, version.run_id.as_deref().filter(|r| !r.is_empty())) {
            (Some(run), _) => {
                out.extend(mapping::dataset_events(run, project));
                out.extend(mapping::run_events(run, project));
            }
            (None, Some(run_id)) => out.extend(mapping::missing_run_events(run_id, project)),
            (None, None) => out.extend(mapping::runless_events(version, project)),
        }
        out.push(mapping::version_event(version, run, project));
        out
    }

    /// An alias set on a version: a deployment when the mapping names its
    /// environment and the gate allows; a refusal on the record, and with
    /// `enforce` the alias moved back, when it does not.
    pub async fn alias_set(
        &self,
        name: &str,
        alias: &str,
        version: &str,
        occasion: &str,
        enforce: bool,
    ) -> Result<Outcome, BridgeError> {
        // The version's own delivery may still be in flight: mirror it first,
        // or the gate would refuse a version it has not heard of.
        self.mirror_version(name, version).await?;
        let model = mapping::model_ref(name, version);
        let project = self.mapping.project.clone();
        let Some(environment) = self.mapping.aliases.get(alias).cloned() else {
            let event = mapping::event(
                "mlflow.alias_set",
                &model,
                &project,
                &[],
                json!({"alias": alias, "version": version}),
                mapping::key(&["delivery", occasion]),
            );
            let recorded = self.append_new(vec![event]).await?;
            return Ok(Outcome {
                recorded,
                summary: format!("alias {alias} is not a deployment: recorded on {model}"),
            });
        };
        let deployment = format!("deployment:{environment}/{}", mapping::deployment_name(name));
        let live = self.live_model(&deployment).await?;
        if live.as_deref() == Some(model.as_str()) {
            return Ok(Outcome::said(format!("{deployment} already serves {model}")));
        }
        self.authorize("deployment.requested")?;
        let request = DeploymentRequest {
            model: model.clone(),
            environment: environment.clone(),
            name: Some(mapping::deployment_name(name)),
            reason: Some(format!("MLflow alias {alias:?} set on {name} version {version}")),
            project: Some(project.clone()),
            idempotency_key: Some(mapping::key(&["alias", occasion, "requested"])),
        };
        match self.governance.deploy(ACTOR, request).await {
            Ok(accepted) => {
                let mut recorded: Vec<u64> = accepted.event["seq"].as_u64().into_iter().collect();
                let succeeded = mapping::event(
                    "deployment.succeeded",
                    &deployment,
                    &project,
                    &[],
                    json!({"model": model}),
                    mapping::key(&["alias", occasion, "succeeded"]),
                );
                recorded.extend(self.append(vec![succeeded]).await?);
                Ok(Outcome { recorded, summary: format!("{model} deployed to {environment} (alias {alias})") })
            }
            Err(GovernanceError::Blocked { decision, blocked_seq }) => {
                let mut outcome = Outcome {
                    recorded: vec![blocked_seq],
                    summary: format!("alias {alias} on {model} blocked: {}", decision.reasons.join("; ")),
                };
                if enforce && self.mapping.enforce {
                    let restored = self.revert_alias(name, alias, live.as_deref()).await?;
                    let attributes = json!({
                        "alias": alias, "model": model, "blocked_seq": blocked_seq,
                        "restored": restored, "action": if restored.is_some() { "moved_back" } else { "deleted" },
                    });
                    let event = mapping::event(
                        "mlflow.alias_reverted",
                        &deployment,
                        &project,
                        &[],
                        attributes,
                        mapping::key(&["alias", occasion, "reverted"]),
                    );
                    outcome.recorded.extend(self.append(vec![event]).await?);
                    outcome.summary.push_str(&match restored {
                        Some(previous) => format!("; the alias was moved back to {previous}"),
                        None => "; the alias was deleted".to_owned(),
                    });
                }
                Ok(outcome)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Moves `alias` back to the version the deployment serves, or deletes
    /// it; answers the version it points at now.
    async fn revert_alias(&self, name: &str, alias: &str, live: Option<&str>) -> Result<Option<String>, BridgeError> {
        let previous = live.and_then(|m| m.rsplit_once('@')).map(|(_, v)| v.to_owned());
        match previous {
            Some(version) if self.mlflow.model_version(name, &version).await.is_ok() => {
                self.mlflow.set_alias(name, alias, &version).await?;
                Ok(Some(mapping::model_ref(name, &version)))
            }
            _ => {
                self.mlflow.delete_alias(name, alias).await?;
                Ok(None)
            }
        }
    }

    async fn alias_deleted(&self, name: &str, alias: &str, delivery_id: &str) -> Result<Outcome, BridgeError> {
        let subject = match self.mapping.aliases.get(alias) {
            Some(environment) => format!("deployment:{environment}/{}", mapping::deployment_name(name)),
            None => mapping::registered_model_ref(name),
        };
        let event = mapping::event(
            "mlflow.alias_deleted",
            &subject,
            &self.mapping.project,
            &[],
            json!({"alias": alias, "name": name}),
            mapping::key(&["delivery", delivery_id]),
        );
        let recorded = self.append_new(vec![event]).await?;
        Ok(Outcome { recorded, summary: format!("alias {alias} of {name} deleted in MLflow, recorded on {subject}") })
    }

    /// The model version a deployment serves now, from its projection.
    async fn live_model(&self, deployment: &str) -> Result<Option<String>, BridgeError> {
        let store = self.governance.store().clone();
        let deployment = deployment.to_owned();
        let row = tokio::task::spawn_blocking(move || projections::entity(&mut *store.conn()?, &deployment))
            .await
            .map_err(GovernanceError::panicked)?
            .map_err(GovernanceError::from)?;
        Ok(row.and_then(|r| {
            let state: Value = serde_json::from_str(&r.state).ok()?;
            state.get("live_model")?.as_str().map(str::to_owned)
        }))
    }

    fn authorize(&self, kind: &str) -> Result<(), BridgeError> {
        let action = AppendEvents::ACTION;
        let project = Some(self.mapping.project.as_str());
        if self.authorizer.allows(&self.principal, &action.object_for(kind), action.action, project) {
            Ok(())
        } else {
            Err(BridgeError::Forbidden(format!(
                "the policy in force does not let the MLflow bridge (role {ROLE}) append {kind} in project {}: \
                 add the role's lines of policies/policy.csv",
                self.mapping.project
            )))
        }
    }

    /// Validates events like `POST /api/v1/events` does and checks the
    /// bridge may record each.
    fn drafts(&self, events: Vec<Value>) -> Result<Vec<EventDraft>, BridgeError> {
        events
            .into_iter()
            .map(|value| {
                let request: EventRequest =
                    serde_json::from_value(value).map_err(|e| BridgeError::Invalid(e.to_string()))?;
                let draft = EventDraft::from_request(request).map_err(|e| BridgeError::Invalid(e.to_string()))?;
                kinds::validate(&draft).map_err(|e| BridgeError::Invalid(e.to_string()))?;
                self.authorize(draft.kind.as_str())?;
                Ok(draft)
            })
            .collect()
    }

    async fn append(&self, events: Vec<Value>) -> Result<Vec<u64>, BridgeError> {
        let drafts = self.drafts(events)?;
        let appended = self.governance.append_events(ACTOR.into(), drafts).await?;
        Ok(match appended {
            crate::store::Appended::Created(events) => events.iter().map(|e| e.seq).collect(),
            crate::store::Appended::Replayed(_) => Vec::new(),
        })
    }

    /// Appends the events whose idempotency keys and versions are not on
    /// the record yet, in one transaction; answers the seqs written.
    pub async fn append_new(&self, events: Vec<Value>) -> Result<Vec<u64>, BridgeError> {
        let fresh = self.not_recorded(events).await?;
        if fresh.is_empty() {
            return Ok(Vec::new());
        }
        self.append(fresh).await
    }

    /// Of `events`, those not on the record: their key unseen, and for a
    /// creating event, its version not created by anyone (a dataset named
    /// by two runs is created once).
    pub async fn not_recorded(&self, events: Vec<Value>) -> Result<Vec<Value>, BridgeError> {
        let key_of = |e: &Value| e["idempotency_key"].as_str().unwrap_or_default().to_owned();
        let keys: Vec<String> = events.iter().map(key_of).collect();
        let creating: Vec<String> = events
            .iter()
            .filter(|e| matches!(e["kind"].as_str(), Some("dataset.version_created" | "model.registered")))
            .filter_map(|e| e["subject"].as_str().map(str::to_owned))
            .collect();
        let store = self.governance.store().clone();
        let (seen, created) = tokio::task::spawn_blocking(move || -> Result<_, crate::store::StoreError> {
            let mut conn = store.conn()?;
            let seen: BTreeSet<String> =
                events::by_idempotency_keys(&mut conn, &keys)?.into_iter().filter_map(|e| e.idempotency_key).collect();
            let created: Vec<(String, Option<String>)> = projections::entities_by_ref(&mut conn, &creating)?
                .into_iter()
                .filter(|row| row.is_owned())
                .map(|row| (row.ref_, row.project))
                .collect();
            Ok((seen, created))
        })
        .await
        .map_err(GovernanceError::panicked)?
        .map_err(GovernanceError::from)?;
        // A version another project created is not this registry's to extend.
        if let Some((subject, project)) = created.iter().find(|(_, p)| p.as_deref() != Some(&self.mapping.project)) {
            return Err(GovernanceError::ProjectMismatch(format!(
                "{subject} was created in project {} on the record, not in the MLflow bridge's project {}",
                project.as_deref().unwrap_or("(none)"),
                self.mapping.project
            ))
            .into());
        }
        let created: BTreeSet<String> = created.into_iter().map(|(subject, _)| subject).collect();
        let mut kept_keys = BTreeSet::new();
        Ok(events
            .into_iter()
            .filter(|e| {
                let key = key_of(e);
                let creates = matches!(e["kind"].as_str(), Some("dataset.version_created" | "model.registered"));
                let subject = e["subject"].as_str().unwrap_or_default();
                let recorded = seen.contains(&key) || creates && created.contains(subject);
                !recorded && kept_keys.insert(key)
            })
            .collect())
    }

    /// The registry as MLflow lists it, for `mlflow import`.
    pub async fn registered_models(&self) -> Result<Vec<RegisteredModel>, BridgeError> {
        Ok(self.mlflow.registered_models().await?)
    }

    pub async fn versions_of(&self, name: &str) -> Result<Vec<ModelVersion>, BridgeError> {
        Ok(self.mlflow.versions_of(name).await?)
    }

    /// A run, or `None` when MLflow no longer has it (a deleted run).
    pub async fn run(&self, run_id: &str) -> Result<Option<Run>, BridgeError> {
        match self.mlflow.run(run_id).await {
            Ok(run) => Ok(Some(run)),
            Err(MlflowError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Holds the one-at-a-time lock for a caller that mirrors many changes.
    pub async fn exclusive(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.lock.lock().await
    }
}
