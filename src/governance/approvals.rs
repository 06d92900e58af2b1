//! Approvals and deployments: the use cases behind `/api/v1/approvals`,
//! `/api/v1/gate` and `/api/v1/deployments`.
//!
//! Every rule that depends on the ledger's state (the approval is still
//! pending, the approver did not produce the model, the gate still allows)
//! is checked again inside the append transaction by a precondition, so two
//! requests racing each other cannot both pass a check that only one may.

use serde::Serialize;

use super::gate::{self, ApprovalSummary, GateDecision};
use super::kinds::{self, ApprovalDecided, ApprovalRequested, DeploymentAttributes};
use super::readiness;
use super::ModelVersionRef;
use super::{Governance, GovernanceError};
use crate::error_code::ErrorCode;
use crate::ledger::event::EventJson;
use crate::ledger::kind::{ApprovalState, Decision, Kind};
use crate::ledger::{timestamp, EntityRef, Event, EventDraft};
use crate::store::projections::{self, ApprovalFilter, ApprovalRow, Direction};
use crate::store::{events, Appended, DbConn, EventFilter, Precondition, Refusal, StoreError};

/// What a caller asks to have approved.
#[derive(utoipa::ToSchema, Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    #[schema(value_type = ModelVersionRef)]
    pub model: String,
    #[schema(pattern = r"^[a-z0-9_-]{1,64}$", example = "production")]
    pub environment: String,
    /// Events or entities the request rests on (evaluations, explanations).
    #[serde(default)]
    #[schema(value_type = Vec<EntityRef>)]
    pub evidence: Vec<String>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `grant`, `reject` or `revoke`, with the reason.
#[derive(utoipa::ToSchema, Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// `grant`, `reject` or `revoke`.
    #[schema(pattern = "^(grant|reject|revoke)$")]
    pub decision: String,
    #[schema(min_length = 1, max_length = 4000)]
    pub reason: String,
    /// For a grant of a version that fails a rule of the environment (its
    /// evaluation, an open breach): why it goes ahead anyway. Required
    /// then, recorded with the rules it overrides.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 4000)]
    pub override_reason: Option<String>,
}

/// What a caller asks to deploy.
#[derive(utoipa::ToSchema, Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentRequest {
    #[schema(value_type = ModelVersionRef)]
    pub model: String,
    #[schema(pattern = r"^[a-z0-9_-]{1,64}$", example = "production")]
    pub environment: String,
    /// The deployment's name within the environment; the model's name by default.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", max_length = 200)]
    pub name: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// An approval with its decisions.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct ApprovalView {
    pub id: String,
    pub model: String,
    pub environment: String,
    pub project: Option<String>,
    pub state: String,
    pub requested_by: String,
    pub requested_seq: i64,
    pub requested_at: String,
    pub required_approvals: i32,
    pub valid_for_seconds: i64,
    pub evidence: Vec<String>,
    pub note: String,
    pub granted_at: Option<String>,
    pub expires_at: Option<String>,
    /// Granted and not expired now.
    pub valid: bool,
    pub decisions: Vec<projections::DecisionRow>,
    /// What the environment asks of the version beyond approvals, checked
    /// now, while the approval is pending or granted (a failing rule needs
    /// an `override_reason` on each grant).
    pub checks: Vec<readiness::RuleCheck>,
    /// The grants recorded with an `override_reason`.
    pub overrides: Vec<readiness::Override>,
}

/// An accepted deployment request.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct DeploymentAccepted {
    pub deployment: String,
    /// The `deployment.requested` event.
    #[schema(value_type = EventJson)]
    pub event: serde_json::Value,
    pub gate: GateDecision,
    pub replayed: bool,
}

fn refs_valid(field: &str, refs: &[String]) -> Result<(), GovernanceError> {
    for (i, r) in refs.iter().enumerate() {
        EntityRef::parse(r).map_err(|e| e.in_field(&format!("{field}[{i}]")))?;
    }
    Ok(())
}

pub(crate) fn model_version(text: &str) -> Result<EntityRef, GovernanceError> {
    let model = EntityRef::parse(text).map_err(|e| e.in_field("model"))?;
    if model.entity_type() != "model" || model.version().is_none() {
        return Err(GovernanceError::Invalid(format!("model: expected model:NAME@VERSION, got {text}")));
    }
    Ok(model)
}

pub(crate) fn environment_name(text: &str) -> Result<(), GovernanceError> {
    let ok = !text.is_empty()
        && text.len() <= 64
        && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(GovernanceError::Invalid(format!(
            "environment: {text:?} must be 1 to 64 lower-case letters, digits, `-` or `_`"
        )))
    }
}

fn build_draft(
    kind: Kind,
    subject: &str,
    project: Option<String>,
    attributes: serde_json::Value,
    idempotency_key: Option<String>,
) -> Result<EventDraft, GovernanceError> {
    let draft = EventDraft::server(kind, subject, project, attributes, idempotency_key)?;
    kinds::validate(&draft)?;
    Ok(draft)
}

/// Whether the entity is a registered model version.
fn is_registered(entity: &projections::EntityRow) -> bool {
    entity.state.contains("\"model.registered\"")
}

/// Refuses a request whose `project` is not the model's.
fn same_project(asked: Option<&str>, owner: Option<&str>, model: &EntityRef) -> Result<(), GovernanceError> {
    match asked {
        Some(asked) if Some(asked) != owner => Err(GovernanceError::ProjectMismatch(format!(
            "project: {model} is not a model version of project {asked}; leave `project` out to use the model's"
        ))),
        _ => Ok(()),
    }
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> Result<Result<(), Refusal>, StoreError> {
    Ok(Err(Refusal::new(code, message)))
}

impl Governance {
    /// Records `approval.requested` for a registered model version in a gated
    /// environment. The rule's quorum and validity are copied into the event.
    pub async fn request_approval(&self, actor: &str, req: ApprovalRequest) -> Result<ApprovalView, GovernanceError> {
        let model = model_version(&req.model)?;
        environment_name(&req.environment)?;
        refs_valid("evidence", &req.evidence)?;
        let rule = match self.rules.lookup(&req.environment) {
            Ok(super::Environment::Gated(rule)) => rule,
            Ok(super::Environment::Ungated) => {
                return Err(GovernanceError::Invalid(format!(
                    "environment {} is declared with `gated = false` in policies/approvals.toml: no approval is needed",
                    req.environment
                )))
            }
            Err(_) => {
                let decision = self.unknown_environment(&req.model, &req.environment);
                return Err(GovernanceError::UnknownEnvironment { decision, blocked_seq: None });
            }
        };
        // The approval belongs to the model version's project, whatever the
        // request says: otherwise one project could open another's gate.
        let Some(project) = self.model_project(&model.to_string()).await? else {
            return Err(GovernanceError::NotFound(format!("{model} is not a registered model version")));
        };
        same_project(req.project.as_deref(), project.as_deref(), &model)?;
        let id = uuid::Uuid::now_v7().to_string();
        let attributes = ApprovalRequested {
            model: model.to_string(),
            environment: req.environment.clone(),
            evidence: req.evidence.clone(),
            note: req.note.clone().unwrap_or_default(),
            required_approvals: rule.approvals_required,
            valid_for_seconds: rule.valid_for_seconds,
        };
        let draft = build_draft(
            Kind::ApprovalRequested,
            &format!("approval:{id}"),
            project,
            serde_json::to_value(&attributes).map_err(|e| GovernanceError::Internal(e.to_string()))?,
            req.idempotency_key.clone(),
        )?;
        let model_text = model.to_string();
        let check: Precondition = Box::new(move |conn| match projections::entity(conn, &model_text)? {
            Some(e) if is_registered(&e) && e.status != "retired" => Ok(Ok(())),
            Some(e) if e.status == "retired" => refuse(ErrorCode::ModelRetired, format!("{model_text} is retired")),
            _ => refuse(ErrorCode::NotFound, format!("{model_text} is not a registered model version")),
        });
        let appended = self.store.writer().append_checked(actor.to_owned(), vec![draft], Some(check)).await?;
        let id = appended.events()[0].subject.trim_start_matches("approval:").to_owned();
        self.approval(&id).await?.ok_or_else(|| GovernanceError::NotFound(format!("no approval {id}")))
    }

    /// The project of a registered model version (`Some(None)`: registered
    /// without one); `None` when it is not registered.
    pub async fn model_project(&self, model: &str) -> Result<Option<Option<String>>, GovernanceError> {
        let store = self.store.clone();
        let model = model.to_owned();
        let entity = tokio::task::spawn_blocking(move || projections::entity(&mut *store.conn()?, &model))
            .await
            .map_err(GovernanceError::panicked)??;
        Ok(entity.filter(is_registered).map(|e| e.project))
    }

    /// One approval with its decisions.
    pub async fn approval(&self, id: &str) -> Result<Option<ApprovalView>, GovernanceError> {
        let store = self.store.clone();
        let id = id.to_owned();
        let (rules, monitor) = (self.rules.clone(), self.monitor.clone());
        let found = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let mut conn = store.conn()?;
            let Some(row) = projections::approval(&mut conn, &id)? else { return Ok(None) };
            let decisions = projections::decisions(&mut conn, &id)?;
            let mut view = view(row, decisions, &timestamp::now());
            enrich(&mut conn, &rules, &monitor, &mut view)?;
            Ok(Some(view))
        })
        .await
        .map_err(GovernanceError::panicked)??;
        Ok(found)
    }

    /// Approvals by state, model and environment, oldest request first.
    pub async fn approvals(&self, filter: ApprovalFilter) -> Result<Vec<ApprovalView>, GovernanceError> {
        let store = self.store.clone();
        let (rules, monitor) = (self.rules.clone(), self.monitor.clone());
        let views = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let mut conn = store.conn()?;
            let rows = projections::list_approvals(&mut conn, &filter)?;
            let now = timestamp::now();
            rows.into_iter()
                .map(|r| {
                    let d = projections::decisions(&mut conn, &r.id)?;
                    let mut view = view(r, d, &now);
                    enrich(&mut conn, &rules, &monitor, &mut view)?;
                    Ok(view)
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })
        .await
        .map_err(GovernanceError::panicked)??;
        Ok(views)
    }

    /// Records a decision by `actor`, who holds `roles`. Approver role,
    /// state and separation of duties are checked; the last two again
    /// inside the append transaction.
    pub async fn decide(
        &self,
        actor: &str,
        roles: &[String],
        id: &str,
        req: DecisionRequest,
    ) -> Result<ApprovalView, GovernanceError> {
        let decision = Decision::parse(&req.decision).ok_or_else(|| {
            GovernanceError::Invalid(format!("decision: {:?} is not one of grant, reject, revoke", req.decision))
        })?;
        if req.reason.trim().is_empty() || req.reason.len() > 4000 {
            return Err(GovernanceError::Invalid("reason: give a reason of 1 to 4000 characters".into()));
        }
        let override_reason = req.override_reason.as_deref().map(str::trim).map(str::to_owned);
        match &override_reason {
            Some(r) if r.is_empty() || r.len() > 4000 => {
                return Err(GovernanceError::Invalid(
                    "override_reason: give a reason of 1 to 4000 characters, or leave it out".into(),
                ))
            }
            Some(_) if decision != Decision::Grant => {
                return Err(GovernanceError::Invalid("override_reason: only a grant overrides rules".into()))
            }
            _ => {}
        }
        let approval =
            self.approval(id).await?.ok_or_else(|| GovernanceError::NotFound(format!("no approval {id}")))?;
        self.approver_role(&approval, actor, roles)?;
        let (id_owned, actor_owned, reason) = (id.to_owned(), actor.to_owned(), req.reason.clone());
        let project = approval.project.clone();
        let (rules, monitor) = (self.rules.clone(), self.monitor.clone());
        let people = self.people().current();
        // Built inside the append transaction, so the quorum it records is
        // the one this decision follows, and the rules it overrides are the
        // ones failing as it is recorded.
        let build: crate::store::Builder = Box::new(move |conn| {
            if let Err(refusal) = decision_allowed(conn, &id_owned, &actor_owned, decision, &people)? {
                return Ok(Err(refusal));
            }
            let mut attributes = decided(conn, &id_owned, &actor_owned, decision, &reason)?;
            if decision == Decision::Grant {
                let checks = match projections::approval(conn, &id_owned)? {
                    Some(a) => match rules.environment(&a.environment) {
                        Some(rule) => {
                            let monitoring = monitor.rules_at(conn)?;
                            readiness::check(
                                conn,
                                rule,
                                &a.environment,
                                &a.model,
                                &monitoring.rules,
                                &timestamp::now(),
                            )?
                        }
                        None => Vec::new(),
                    },
                    None => Vec::new(),
                };
                let failing = readiness::failing(&checks);
                match (&override_reason, failing.is_empty()) {
                    (None, false) => {
                        let found: Vec<&str> = failing.iter().map(|c| c.reason.as_str()).collect();
                        return Ok(Err(Refusal::new(
                            ErrorCode::OverrideReasonRequired,
                            format!("granting needs an override_reason saying why it goes ahead: {}", found.join("; ")),
                        )));
                    }
                    (Some(why), _) => {
                        attributes["override_reason"] = why.clone().into();
                        attributes["overridden"] = failing.iter().map(|c| c.rule).collect::<Vec<_>>().into();
                        attributes["failed_checks"] =
                            failing.iter().map(|c| c.reason.clone()).collect::<Vec<_>>().into();
                    }
                    (None, true) => {}
                }
            }
            let draft =
                build_draft(decision.kind(), &format!("approval:{id_owned}"), project.clone(), attributes, None)
                    .map_err(|e| StoreError::Thread(format!("cannot build the decision: {e}")))?;
            Ok(Ok(vec![draft]))
        });
        self.store.writer().append_built(actor.to_owned(), build).await?;
        self.approval(id).await?.ok_or_else(|| GovernanceError::NotFound(format!("no approval {id}")))
    }

    /// Forbidden unless `roles` hold an approver role of the approval's
    /// environment (which must still be gated).
    fn approver_role(&self, approval: &ApprovalView, actor: &str, roles: &[String]) -> Result<(), GovernanceError> {
        let rule = self.rules.environment(&approval.environment).ok_or_else(|| {
            GovernanceError::Forbidden(format!(
                "environment {} is no longer gated in policies/approvals.toml; nobody may decide",
                approval.environment
            ))
        })?;
        if !roles.iter().any(|r| rule.approver_roles.contains(r)) {
            return Err(GovernanceError::Forbidden(format!(
                "{actor} holds none of the approver roles for {} ({})",
                approval.environment,
                rule.approver_roles.join(", ")
            )));
        }
        Ok(())
    }

    /// Why `actor`, holding `roles`, may not record `decision` on `approval`
    /// now (`None`: they may): the checks [`Governance::decide`] makes,
    /// approver role, state and separation of duties, without recording.
    /// A page shows it instead of a button; `decide` checks again.
    pub async fn refusal(
        &self,
        actor: &str,
        roles: &[String],
        approval: &ApprovalView,
        decision: Decision,
    ) -> Result<Option<String>, GovernanceError> {
        if let Err(e) = self.approver_role(approval, actor, roles) {
            return Ok(Some(e.to_string()));
        }
        let store = self.store.clone();
        let (id, actor, people) = (approval.id.clone(), actor.to_owned(), self.people().current());
        let verdict =
            tokio::task::spawn_blocking(move || decision_allowed(&mut *store.conn()?, &id, &actor, decision, &people))
                .await
                .map_err(GovernanceError::panicked)??;
        Ok(verdict.err().map(|r| r.message))
    }

    /// The refusal of an environment the rules do not declare, as a gate
    /// decision that denies and names the known environments.
    fn unknown_environment(&self, model: &str, environment: &str) -> Box<GateDecision> {
        let unknown = super::UnknownEnvironment { name: environment.to_owned(), known: self.rules.known() };
        let none = gate::Readiness::default();
        Box::new(gate::decide(model, environment, Err(&unknown), None, &[], &none, &timestamp::now()))
    }

    /// The gate's answer for `model` in `environment` now; an environment
    /// the rules do not declare is [`GovernanceError::UnknownEnvironment`].
    pub async fn gate(&self, model: &str, environment: &str) -> Result<GateDecision, GovernanceError> {
        let model = model_version(model)?.to_string();
        environment_name(environment)?;
        if self.rules.lookup(environment).is_err() {
            let decision = self.unknown_environment(&model, environment);
            return Err(GovernanceError::UnknownEnvironment { decision, blocked_seq: None });
        }
        let store = self.store.clone();
        let (rules, monitor) = (self.rules.clone(), self.monitor.clone());
        let environment = environment.to_owned();
        let decision = tokio::task::spawn_blocking(move || {
            gate_in(&mut *store.conn()?, &rules, &monitor, &model, &environment, &timestamp::now())
        })
        .await
        .map_err(GovernanceError::panicked)??;
        Ok(decision)
    }

    /// Records `deployment.requested` when the gate allows (checked again in
    /// the append transaction); otherwise records `deployment.blocked` and
    /// answers [`GovernanceError::Blocked`].
    pub async fn deploy(&self, actor: &str, req: DeploymentRequest) -> Result<DeploymentAccepted, GovernanceError> {
        let model = model_version(&req.model)?;
        environment_name(&req.environment)?;
        let name = req.name.clone().unwrap_or_else(|| model.name().to_owned());
        let subject = format!("deployment:{}/{name}", req.environment);
        EntityRef::parse(&subject).map_err(|e| e.in_field("name"))?;
        if let Some(replay) = self.deployment_replay(actor, &req).await? {
            return replay;
        }
        if self.rules.lookup(&req.environment).is_err() {
            return Err(self.block_unknown_environment(actor, &req, &model, &subject).await);
        }
        let decision = self.gate(&model.to_string(), &req.environment).await?;
        // A deployment belongs to its model's project; an unregistered model
        // is denied by the gate, and the refusal goes on the request's project.
        let project = match self.model_project(&model.to_string()).await? {
            Some(project) => {
                same_project(req.project.as_deref(), project.as_deref(), &model)?;
                project
            }
            None => req.project.clone(),
        };
        let attributes = |reasons: Option<Vec<String>>, d: &GateDecision| DeploymentAttributes {
            model: model.to_string(),
            reason: req.reason.clone(),
            reasons,
            approval_seqs: Some(d.relied_on_seqs.iter().map(|s| u64::try_from(*s).unwrap_or(0)).collect()),
        };
        let to_json = |a: DeploymentAttributes| serde_json::to_value(a).unwrap_or_default();
        if decision.allowed {
            let draft = build_draft(
                Kind::DeploymentRequested,
                &subject,
                project.clone(),
                to_json(attributes(None, &decision)),
                req.idempotency_key.clone(),
            )?;
            let (rules, monitor) = (self.rules.clone(), self.monitor.clone());
            let (model_text, environment) = (model.to_string(), req.environment.clone());
            let check: Precondition = Box::new(move |conn| {
                let d = gate_in(conn, &rules, &monitor, &model_text, &environment, &timestamp::now())?;
                if d.allowed {
                    Ok(Ok(()))
                } else {
                    refuse(ErrorCode::DeploymentBlocked, d.reasons.join("; "))
                }
            });
            match self.store.writer().append_checked(actor.to_owned(), vec![draft], Some(check)).await {
                Ok(appended) => {
                    let replayed = matches!(appended, Appended::Replayed(_));
                    let event = event_json(&appended.events()[0])?;
                    return Ok(DeploymentAccepted { deployment: subject, event, gate: decision, replayed });
                }
                Err(crate::store::AppendError::Refused(r)) if r.code == ErrorCode::DeploymentBlocked => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Denied, before or inside the transaction: the refusal goes on the record.
        let decision = self.gate(&model.to_string(), &req.environment).await?;
        let denied =
            if decision.allowed { GateDecision { decision: "deny", allowed: false, ..decision } } else { decision };
        let draft = build_draft(
            Kind::DeploymentBlocked,
            &subject,
            project,
            to_json(attributes(Some(denied.reasons.clone()), &denied)),
            req.idempotency_key.clone(),
        )?;
        let appended = self.store.writer().append(actor.to_owned(), vec![draft]).await?;
        Err(GovernanceError::Blocked { decision: Box::new(denied), blocked_seq: appended.events()[0].seq })
    }

    /// Records `deployment.blocked` for a deployment to an environment the
    /// rules do not declare and answers the refusal that cites it.
    async fn block_unknown_environment(
        &self,
        actor: &str,
        req: &DeploymentRequest,
        model: &EntityRef,
        subject: &str,
    ) -> GovernanceError {
        let decision = self.unknown_environment(&model.to_string(), &req.environment);
        let attributes = DeploymentAttributes {
            model: model.to_string(),
            reason: req.reason.clone(),
            reasons: Some(decision.reasons.clone()),
            approval_seqs: Some(Vec::new()),
        };
        let draft = match build_draft(
            Kind::DeploymentBlocked,
            subject,
            req.project.clone(),
            serde_json::to_value(attributes).unwrap_or_default(),
            req.idempotency_key.clone(),
        ) {
            Ok(d) => d,
            Err(e) => return e,
        };
        match self.store.writer().append(actor.to_owned(), vec![draft]).await {
            Ok(appended) => {
                GovernanceError::UnknownEnvironment { decision, blocked_seq: Some(appended.events()[0].seq) }
            }
            Err(e) => e.into(),
        }
    }

    /// A retried deployment request (same idempotency key): the original
    /// answer again, without a new gate decision or event.
    async fn deployment_replay(
        &self,
        actor: &str,
        req: &DeploymentRequest,
    ) -> Result<Option<Result<DeploymentAccepted, GovernanceError>>, GovernanceError> {
        let Some(key) = req.idempotency_key.clone() else { return Ok(None) };
        let store = self.store.clone();
        let found = tokio::task::spawn_blocking(move || events::by_idempotency_keys(&mut *store.conn()?, &[key]))
            .await
            .map_err(GovernanceError::panicked)??;
        let Some(original) = found.into_iter().find(|e| e.actor == actor) else { return Ok(None) };
        let attributes: serde_json::Value = serde_json::from_str(&original.attributes).unwrap_or_default();
        if attributes["model"].as_str() != Some(req.model.as_str()) || !original.kind.starts_with("deployment.") {
            return Err(GovernanceError::Append(crate::store::AppendError::IdempotencyConflict {
                key: original.idempotency_key.clone().unwrap_or_default(),
                differs: format!("seq {} records {} of {}", original.seq, original.kind, attributes["model"]),
            }));
        }
        let decision = self.gate(&req.model, &req.environment).await?;
        if original.kind == Kind::DeploymentBlocked {
            let reasons: Vec<String> = serde_json::from_value(attributes["reasons"].clone()).unwrap_or_default();
            let denied = GateDecision { decision: "deny", allowed: false, reasons, ..decision };
            return Ok(Some(Err(GovernanceError::Blocked { decision: Box::new(denied), blocked_seq: original.seq })));
        }
        Ok(Some(Ok(DeploymentAccepted {
            deployment: original.subject.clone(),
            event: event_json(&original)?,
            gate: decision,
            replayed: true,
        })))
    }
}

fn event_json(event: &Event) -> Result<serde_json::Value, GovernanceError> {
    let json = event.to_json().map_err(|e| GovernanceError::Internal(e.to_string()))?;
    serde_json::to_value(json).map_err(|e| GovernanceError::Internal(e.to_string()))
}

fn view(row: ApprovalRow, decisions: Vec<projections::DecisionRow>, now: &str) -> ApprovalView {
    let ApprovalSummary { valid, .. } = gate::summarize(&row, &decisions, now);
    ApprovalView {
        evidence: serde_json::from_str(&row.evidence).unwrap_or_default(),
        id: row.id,
        model: row.model,
        environment: row.environment,
        project: row.project,
        state: row.state,
        requested_by: row.requested_by,
        requested_seq: row.requested_seq,
        requested_at: row.requested_at,
        required_approvals: row.required_approvals,
        valid_for_seconds: row.valid_for_seconds,
        note: row.note,
        granted_at: row.granted_at,
        expires_at: row.expires_at,
        valid,
        decisions,
        checks: Vec::new(),
        overrides: Vec::new(),
    }
}

/// Adds to `view` the environment's checks of its version (while it is
/// pending or granted) and the overrides its grants recorded.
fn enrich(
    conn: &mut DbConn,
    rules: &super::ApprovalRules,
    monitor: &super::monitoring::Monitor,
    view: &mut ApprovalView,
) -> Result<(), StoreError> {
    let mut grants = Vec::new();
    for d in view.decisions.iter().filter(|d| d.decision == Decision::Grant.as_str()) {
        if let Some(e) = events::by_seq(conn, u64::try_from(d.seq).unwrap_or(0))? {
            grants.push(e);
        }
    }
    view.overrides = overrides_in(&grants);
    let live = view.state == "pending" || view.state == "granted";
    if let (true, Some(rule)) = (live, rules.environment(&view.environment)) {
        let monitoring = monitor.rules_at(conn)?;
        view.checks =
            readiness::check(conn, rule, &view.environment, &view.model, &monitoring.rules, &timestamp::now())?;
    }
    Ok(())
}

/// The gate's answer computed on `conn` (a pooled connection, or the append
/// transaction).
pub fn gate_in(
    conn: &mut DbConn,
    rules: &super::ApprovalRules,
    monitor: &super::monitoring::Monitor,
    model: &str,
    environment: &str,
    now: &str,
) -> Result<GateDecision, StoreError> {
    let entity = projections::entity(conn, model)?;
    let filter = ApprovalFilter {
        model: Some(model.to_owned()),
        environment: Some(environment.to_owned()),
        limit: 1000,
        ..Default::default()
    };
    let mut approvals = Vec::new();
    let mut readiness = gate::Readiness::default();
    let mut hashes = std::collections::BTreeMap::new();
    let owner = entity.as_ref().map(|e| e.project.clone());
    // The projection only says which approvals to look at. What each one is
    // comes from its own events on the ledger, so that a row changed behind
    // the ledger's back (a forged grant) cannot open the gate; and only
    // approvals of the model's own project count.
    for listed in projections::list_approvals(conn, &filter)? {
        let filter = EventFilter {
            subject: Some(format!("approval:{}", listed.id)),
            subject_exact: true,
            limit: 10_000,
            ..Default::default()
        };
        let own = events::list(conn, &filter)?;
        let Some((row, decisions)) = projections::approval_from_events(&listed.id, &own) else { continue };
        if row.model != model || row.environment != environment || Some(&row.project) != owner.as_ref() {
            continue;
        }
        hashes.extend(own.iter().map(|e| (i64::try_from(e.seq).unwrap_or(i64::MAX), hex::encode(e.hash))));
        readiness.overrides.insert(row.id.clone(), overrides_in(&own));
        approvals.push((row, decisions));
    }
    if let Some(rule) = rules.environment(environment) {
        let monitoring = monitor.rules_at(conn)?;
        readiness.checks = readiness::check(conn, rule, environment, model, &monitoring.rules, now)?;
        for seq in readiness.checks.iter().flat_map(|c| c.seqs.iter()) {
            if let Some(e) = events::by_seq(conn, u64::try_from(*seq).unwrap_or(0))? {
                hashes.insert(*seq, hex::encode(e.hash));
            }
        }
    }
    let governed = rules.lookup(environment);
    let mut decision =
        gate::decide(model, environment, governed.as_ref().copied(), entity.as_ref(), &approvals, &readiness, now);
    decision.relied_on = decision
        .relied_on_seqs
        .iter()
        .filter_map(|seq| Some(gate::Citation { seq: *seq, hash: hashes.get(seq)?.clone() }))
        .collect();
    Ok(decision)
}

/// The overrides recorded on the grants among `events` (one approval's).
fn overrides_in(events: &[Event]) -> Vec<readiness::Override> {
    events
        .iter()
        .filter(|e| e.kind == Kind::ApprovalGranted)
        .filter_map(|e| {
            let a: ApprovalDecided = serde_json::from_str(&e.attributes).ok()?;
            Some(readiness::Override {
                actor: e.actor.clone(),
                seq: i64::try_from(e.seq).unwrap_or(i64::MAX),
                reason: a.override_reason?,
                rules: a.overridden.unwrap_or_default(),
            })
        })
        .collect()
}

/// The in-transaction check of a decision: the approval's state allows it,
/// and for a grant or a rejection, `actor` neither asked for it, nor
/// registered the model version, nor ran its training.
/// What a decision records: its reason, and the approval's model,
/// environment and quorum after it (so a notified approver or pipeline
/// needs no second call).
fn decided(
    conn: &mut DbConn,
    id: &str,
    actor: &str,
    decision: Decision,
    reason: &str,
) -> Result<serde_json::Value, StoreError> {
    let approval = projections::approval(conn, id)?;
    let mut granters: std::collections::BTreeSet<String> = projections::decisions(conn, id)?
        .iter()
        .filter(|d| d.decision == Decision::Grant.as_str())
        .map(|d| crate::ledger::actor::subject_key(&d.actor))
        .collect();
    if decision == Decision::Grant {
        granters.insert(crate::ledger::actor::subject_key(actor));
    }
    let grants = u32::try_from(granters.len()).unwrap_or(u32::MAX);
    let attributes = match approval {
        Some(a) => {
            let required = u32::try_from(a.required_approvals).unwrap_or(1);
            let current = ApprovalState::parse(&a.state);
            let after = current.and_then(|s| s.after(decision, granters.len(), required as usize)).or(current);
            ApprovalDecided {
                reason: reason.to_owned(),
                model: Some(a.model),
                environment: Some(a.environment),
                grants: Some(grants),
                required_approvals: Some(required),
                state: after.map(|s| s.as_str().to_owned()),
                override_reason: None,
                overridden: None,
                failed_checks: None,
            }
        }
        None => ApprovalDecided {
            reason: reason.to_owned(),
            model: None,
            environment: None,
            grants: None,
            required_approvals: None,
            state: None,
            override_reason: None,
            overridden: None,
            failed_checks: None,
        },
    };
    serde_json::to_value(attributes).map_err(|e| StoreError::Thread(e.to_string()))
}

fn decision_allowed(
    conn: &mut DbConn,
    id: &str,
    actor: &str,
    decision: Decision,
    people: &crate::ledger::actor::People,
) -> Result<Result<(), Refusal>, StoreError> {
    let Some(approval) = projections::approval(conn, id)? else {
        return refuse(ErrorCode::NotFound, format!("no approval {id}"));
    };
    if !ApprovalState::parse(&approval.state).is_some_and(|s| s.admits(decision)) {
        return refuse(
            ErrorCode::ApprovalNotPending,
            format!("approval {id} is {}; it cannot be {}ed", approval.state, decision.as_str()),
        );
    }
    if decision == Decision::Revoke {
        return Ok(Ok(()));
    }
    let same = |other: &String| people.same(other, actor);
    if projections::decisions(conn, id)?.iter().any(|d| same(&d.actor)) {
        return refuse(ErrorCode::AlreadyDecided, format!("{actor} has already decided on approval {id}"));
    }
    let sod = |why: String| refuse(ErrorCode::SeparationOfDuties, format!("separation of duties: {actor} {why}"));
    if same(&approval.requested_by) {
        return sod(format!("requested approval {id} and cannot decide on it"));
    }
    if projections::actors_of(conn, &approval.model, &[Kind::ModelRegistered])?.iter().any(same) {
        return sod(format!("registered {} and cannot decide on its approval", approval.model));
    }
    let runs: Vec<String> =
        projections::edges_of(conn, std::slice::from_ref(&approval.model), Direction::Upstream, None, None)?
            .into_iter()
            .map(|e| e.source)
            .filter(|s| s.starts_with("run:"))
            .collect();
    for run in runs {
        let producers = projections::actors_of(
            conn,
            &run,
            &[Kind::RunStarted, Kind::RunUpdated, Kind::RunCompleted, Kind::RunFailed],
        )?;
        if producers.iter().any(same) {
            return sod(format!("ran {run}, which trained {}, and cannot decide on its approval", approval.model));
        }
    }
    Ok(Ok(()))
}
