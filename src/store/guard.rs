//! What the append path checks against the entities a request names, inside
//! the append transaction, where two racing requests cannot both pass:
//!
//! - **Versions are immutable.** A dataset or model version (`dataset:…@v`,
//!   `model:…@v`) is created once. A second creating event would change,
//!   after the fact, what a model was trained on or what was approved.
//! - **Projects are walls.** An entity belongs to the project of the event
//!   that created it (`EntityRef::is_owned_by`). Every later event about it
//!   must carry that project, and a deployment or approval names only a
//!   model of its own project; otherwise one project could retire, deploy or
//!   approve another's models.
//!
//! The projections themselves never refuse an event: a ledger recorded
//! before these rules may break them, and the reports flag it as a finding.
//! Refusals name neither the other project nor anything of it.

use std::collections::HashMap;

use super::writer::Refusal;
use super::{projections, DbConn, StoreError};
use crate::error_code::ErrorCode;
use crate::ledger::{EntityRef, Event, EventDraft, Kind};

/// What the guard knows of one entity.
#[derive(Debug, Clone, Default)]
struct Known {
    /// The seq of the event that created it, when it is a version.
    version_created: Option<u64>,
    /// Its project, once an event created it (`Some(None)`: no project).
    owner: Option<Option<String>>,
}

/// The entities one batch names, as the batch goes along.
#[derive(Default)]
pub(super) struct EntityGuard {
    known: HashMap<String, Known>,
    /// The events `run.started` drafts name in `triggered_by`: kind and project.
    triggers: HashMap<u64, (String, Option<String>)>,
}

/// The seq a `run.started` draft names as what triggered it.
fn trigger_of(draft: &EventDraft) -> Option<u64> {
    if draft.kind.as_str() != Kind::RunStarted.as_str() {
        return None;
    }
    let attributes: serde_json::Value = serde_json::from_str(&draft.attributes).ok()?;
    attributes["triggered_by"].as_u64()
}

/// The models a deployment, approval request or monitoring event names in
/// its attributes: `model`, or the versions a traffic split shares between.
fn named_models(draft: &EventDraft) -> Vec<String> {
    let Some(kind) = Kind::from_name(draft.kind.as_str()) else { return Vec::new() };
    let about_a_model =
        matches!(kind, Kind::ApprovalRequested | Kind::MonitoringMetricReported | Kind::MonitoringDriftDetected);
    if !(kind.namespace() == "deployment" || about_a_model) {
        return Vec::new();
    }
    let Ok(attributes) = serde_json::from_str::<serde_json::Value>(&draft.attributes) else { return Vec::new() };
    let mut models: Vec<String> = attributes["model"].as_str().map(str::to_owned).into_iter().collect();
    if kind == Kind::DeploymentTrafficChanged {
        models.extend(attributes["shares"].as_object().into_iter().flat_map(|s| s.keys().cloned()));
    }
    models
}

impl EntityGuard {
    /// Reads what the ledger holds of the entities that `drafts` are about
    /// (one lookup per batch).
    pub fn load<'a>(conn: &mut DbConn, drafts: impl Iterator<Item = &'a EventDraft>) -> Result<Self, StoreError> {
        let mut refs: Vec<String> = Vec::new();
        let mut trigger_seqs: Vec<u64> = Vec::new();
        for d in drafts {
            refs.push(d.subject.to_string());
            refs.extend(named_models(d));
            trigger_seqs.extend(trigger_of(d));
        }
        let triggers = if trigger_seqs.is_empty() {
            HashMap::new()
        } else {
            super::events::by_seqs(conn, &trigger_seqs)?.into_iter().map(|e| (e.seq, (e.kind, e.project))).collect()
        };
        refs.sort();
        refs.dedup();
        let mut known = HashMap::new();
        for row in projections::entities_by_ref(conn, &refs)? {
            let state: serde_json::Value = serde_json::from_str(&row.state).unwrap_or_default();
            let version_created = EntityRef::parse(&row.ref_)
                .ok()
                .and_then(|r| r.version_creating_kind())
                .and_then(|kind| state[kind.as_str()].as_u64());
            let owner = row.is_owned().then(|| row.project.clone());
            known.insert(row.ref_, Known { version_created, owner });
        }
        Ok(Self { known, triggers })
    }

    /// Refuses `drafts` (one request) when one of them would create a
    /// version that exists, or is about an entity of another project.
    pub fn check(&self, drafts: &[EventDraft]) -> Result<(), Refusal> {
        // What the request's own earlier events create counts too.
        let mut within: HashMap<String, Known> = HashMap::new();
        for draft in drafts {
            let subject = draft.subject.to_string();
            let before = within.get(&subject).or_else(|| self.known.get(&subject)).cloned().unwrap_or_default();
            if creates_version(draft) {
                if let Some(when) = before.version_created {
                    let when = if self.known.get(&subject).and_then(|k| k.version_created) == Some(when) {
                        format!("at seq {when}")
                    } else {
                        "earlier in this request".to_owned()
                    };
                    return Err(version_exists(&subject, &draft.subject, &when));
                }
            }
            if let Some(owner) = &before.owner {
                if *owner != draft.project {
                    return Err(Refusal::new(
                        ErrorCode::ProjectMismatch,
                        format!(
                            "project: {subject} was created in another project than this event's ({}); an event \
                             about an entity must carry the project the entity was created in",
                            draft
                                .project
                                .as_deref()
                                .map_or_else(|| "no project".to_owned(), |p| format!("project {p}"))
                        ),
                    ));
                }
            }
            for model in named_models(draft) {
                let model_owner = within.get(&model).or_else(|| self.known.get(&model)).and_then(|k| k.owner.clone());
                if model_owner.is_some_and(|o| o != draft.project) {
                    return Err(Refusal::new(
                        ErrorCode::ProjectMismatch,
                        format!("attributes: {model} is not a model version of this event's project"),
                    ));
                }
            }
            if let Some(seq) = trigger_of(draft) {
                let answers = |k: &str| {
                    k == Kind::MonitoringThresholdBreached.as_str() || k == Kind::MonitoringDriftDetected.as_str()
                };
                match self.triggers.get(&seq) {
                    Some((kind, project)) if answers(kind) && *project == draft.project => {}
                    _ => {
                        return Err(Refusal::new(
                            ErrorCode::InvalidEvent,
                            format!(
                                "attributes.triggered_by: seq {seq} is not a monitoring.threshold_breached or \
                                 monitoring.drift_detected event of this event's project"
                            ),
                        ))
                    }
                }
            }
            let mut after = before;
            if creates_version(draft) {
                // Its seq is not known before it is chained; 0 marks "this request".
                after.version_created = Some(0);
            }
            if after.owner.is_none() && draft.subject.is_owned_by(draft.kind.as_str()) {
                after.owner = Some(draft.project.clone());
            }
            within.insert(subject, after);
        }
        Ok(())
    }

    /// Notes what `events` (just chained) created and who owns it now.
    pub fn record(&mut self, events: &[Event]) {
        for e in events {
            let Ok(subject) = EntityRef::parse(&e.subject) else { continue };
            let known = self.known.entry(e.subject.clone()).or_default();
            if subject.version_creating_kind().is_some_and(|k| k == e.kind) && known.version_created.is_none() {
                known.version_created = Some(e.seq);
            }
            if known.owner.is_none() && subject.is_owned_by(&e.kind) {
                known.owner = Some(e.project.clone());
            }
        }
    }
}

fn version_exists(subject: &str, r: &EntityRef, when: &str) -> Refusal {
    Refusal::new(
        ErrorCode::VersionExists,
        format!(
            "{subject} was created {when} and a version is immutable: record the changed data as a new version \
             (e.g. {}:{}@<next>), or describe this one with the kinds that may follow a creation (docs/EVENTS.md)",
            r.entity_type(),
            r.name()
        ),
    )
}

fn creates_version(draft: &EventDraft) -> bool {
    draft.subject.version_creating_kind().is_some_and(|k| k == draft.kind.as_str())
}
