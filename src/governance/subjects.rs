//! Data subjects (GDPR): reading personal fields for those allowed to,
//! erasure by crypto-shredding (Art. 17) and access answers (Art. 15).
//! See docs/PERSONAL_DATA.md.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{json, Value};

use super::lineage::{self, Visibility};
use super::GovernanceError;
use crate::error_code::ErrorCode;
use crate::ledger::personal::{self, Envelope, MasterKey, SubjectKey};
use crate::ledger::{EntityRef, Event, EventDraft, Kind};
use crate::store::{subjects, AppendError, DbConn, Refusal, Store, StoreError};

fn no_master_key() -> GovernanceError {
    GovernanceError::Invalid(
        "this server has no master key configured (GOVLEDGER_MASTER_KEY or --master-key-file), so it keeps no personal data".into(),
    )
}

/// The `personal` part of each event as a reader sees it (`None` for an
/// event without personal data): the pseudonyms, and the fields in clear
/// when `may_read(event)` and every subject's key still exists,
/// `"[redacted]"` when not `may_read`, `"[erased]"` when a key was
/// destroyed — for everyone, admins included: nothing can open them.
pub fn reveal(
    conn: &mut DbConn,
    master: Option<&MasterKey>,
    events: &[Event],
    may_read: impl Fn(&Event) -> bool,
) -> Result<Vec<Option<Value>>, StoreError> {
    let plan: Vec<Option<(Envelope, bool)>> =
        events.iter().map(|e| Envelope::of_attributes(&e.attributes).map(|env| (env, may_read(e)))).collect();
    let wanted: BTreeSet<(String, String)> = plan
        .iter()
        .flatten()
        .filter(|(_, may)| *may)
        .filter_map(|(e, _)| Some(e.subjects.iter().cloned().zip(e.sealed.as_ref()?.key_ids.iter().cloned())))
        .flatten()
        .collect();
    let keys: BTreeMap<String, SubjectKey> = match master {
        Some(m) if !wanted.is_empty() => subjects::keys_named(conn, &wanted.into_iter().collect::<Vec<_>>())?
            .into_values()
            .filter_map(|r| m.unwrap(&r.key_id, &r.wrapped).ok().map(|k| (r.key_id, k)))
            .collect(),
        _ => BTreeMap::new(),
    };
    Ok(plan.into_iter().map(|entry| entry.map(|(envelope, may)| view(&envelope, may, &keys))).collect())
}

/// Whether showing `events` to a reader needs subject keys at all: an
/// event with sealed fields the reader may see. When not, [`redacted`]
/// answers without touching the database.
pub fn needs_keys(events: &[Event], may_read: impl Fn(&Event) -> bool) -> bool {
    events.iter().any(|e| e.attributes.contains("\"sealed\"") && may_read(e))
}

/// The views of events whose fields the reader may not see (or which have
/// none): see [`needs_keys`].
pub fn redacted(events: &[Event]) -> Vec<Option<Value>> {
    let none = BTreeMap::new();
    events.iter().map(|e| Envelope::of_attributes(&e.attributes).map(|env| view(&env, false, &none))).collect()
}

fn view(envelope: &Envelope, may_read: bool, keys: &BTreeMap<String, SubjectKey>) -> Value {
    let fields = match &envelope.sealed {
        None => Value::Null,
        Some(_) if !may_read => Value::String(personal::REDACTED.into()),
        Some(sealed) => {
            let held: Option<Vec<&SubjectKey>> = sealed.key_ids.iter().map(|id| keys.get(id)).collect();
            match held.map(|k| personal::open(envelope, &k)) {
                Some(Ok(text)) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
                _ => Value::String(personal::ERASED.into()),
            }
        }
    };
    json!({"subjects": envelope.subjects, "fields": fields})
}

/// What an erasure did: returned to whoever asked, recorded in the ledger
/// as a `subject.erased` event, and rendered by the `gdpr-erasure` report.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct ErasureCertificate {
    /// The keyed pseudonym of the subject (their id is never stored).
    pub pseudonym: String,
    /// The `subject.erased` event.
    pub seq: u64,
    pub hash: String,
    pub erased_at: String,
    pub requested_by: String,
    /// The events that named the subject; their personal fields are now
    /// unreadable, their hashes unchanged.
    pub events_affected: u64,
    pub event_seqs: Vec<u64>,
    /// The subject keys destroyed.
    pub key_ids_destroyed: Vec<String>,
    pub reason: Option<String>,
    /// `true` when the subject was erased already and this is that
    /// erasure's certificate again: nothing was written.
    pub replayed: bool,
}

/// A data subject's id, as the API describes it: 1 to 256 bytes, not blank.
fn check_subject_id(subject_id: &str) -> Result<(), GovernanceError> {
    if subject_id.trim().is_empty() || subject_id.len() > 256 {
        return Err(GovernanceError::Invalid("a subject id is 1 to 256 bytes, not blank".into()));
    }
    Ok(())
}

/// The entity an erasure event is about.
pub fn subject_ref(pseudonym: &str) -> String {
    format!("subject:{pseudonym}")
}

/// Erases a data subject: destroys their keys and records `subject.erased`
/// in the same transaction, then scrubs the database files. The event is
/// built inside the append transaction, so its count of the subject's events
/// and keys is exactly what the transaction destroys, however many appends
/// naming the subject arrive meanwhile.
pub async fn erase(
    store: &Store,
    master: Option<&MasterKey>,
    subject_id: &str,
    actor: &str,
    reason: Option<String>,
) -> Result<ErasureCertificate, GovernanceError> {
    let master = master.ok_or_else(no_master_key)?;
    check_subject_id(subject_id)?;
    let pseudonym = master.pseudonym(subject_id);
    // What the transaction found, for the certificate (the last run wins if
    // the writer retries the batch, and only that one committed).
    let found: Arc<Mutex<(Vec<u64>, Vec<String>)>> = Arc::default();
    let build: crate::store::Builder = {
        let (p, found, reason): (String, _, _) = (pseudonym.clone(), found.clone(), reason.clone());
        Box::new(move |conn| {
            let seqs = subjects::events_of(conn, &p)?;
            let key_ids: Vec<String> =
                subjects::keys_of(conn, std::slice::from_ref(&p))?.into_values().map(|k| k.key_id).collect();
            if key_ids.is_empty() && !erasures_of(conn, &p)?.is_empty() {
                // Nothing is left to destroy: a second erasure would certify
                // "no key held" and hide what the first one destroyed.
                return Ok(Err(Refusal::new(ALREADY_ERASED, "the subject is erased already")));
            }
            if seqs.is_empty() && key_ids.is_empty() {
                return Ok(Err(Refusal::new(NOT_FOUND, "the ledger holds no personal data about this subject")));
            }
            let mut attributes = json!({
                "pseudonym": &p,
                "events_affected": seqs.len(),
                "last_affected_seq": seqs.last(),
                "key_ids_destroyed": key_ids,
            });
            if let Some(r) = &reason {
                attributes["reason"] = json!(r);
            }
            let draft = match EventDraft::server(Kind::SubjectErased, &subject_ref(&p), None, attributes, None) {
                Ok(draft) => draft,
                Err(e) => return Ok(Err(Refusal::new(ErrorCode::InvalidRequest, e.to_string()))),
            };
            subjects::delete_keys(conn, &p)?;
            *found.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = (seqs, key_ids);
            Ok(Ok(vec![draft]))
        })
    };
    let appended = match store.writer().append_built(actor.to_owned(), build).await {
        Ok(appended) => appended,
        Err(AppendError::Refused(r)) if r.code == NOT_FOUND => return Err(GovernanceError::NotFound(r.message)),
        Err(AppendError::Refused(r)) if r.code == ALREADY_ERASED => {
            let reading = store.clone();
            let erasures = tokio::task::spawn_blocking(move || erasures_of(&mut *reading.conn()?, &pseudonym))
                .await
                .map_err(|e| StoreError::Thread(e.to_string()))??;
            let latest = erasures.last().and_then(certificate_of);
            return latest
                .map(|c| ErasureCertificate { replayed: true, ..c })
                .ok_or_else(|| GovernanceError::Invalid("the subject's erasure event cannot be read".into()));
        }
        Err(e) => return Err(e.into()),
    };
    let event = appended
        .events()
        .first()
        .cloned()
        .ok_or_else(|| GovernanceError::Invalid("the erasure recorded no event".into()))?;
    let scrubbing = store.clone();
    tokio::task::spawn_blocking(move || subjects::scrub(&mut *scrubbing.conn()?))
        .await
        .map_err(|e| StoreError::Thread(e.to_string()))??;
    let (event_seqs, key_ids) = std::mem::take(&mut *found.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    Ok(ErasureCertificate {
        pseudonym,
        seq: event.seq,
        hash: hex::encode(event.hash),
        erased_at: event.recorded_at,
        requested_by: event.actor,
        events_affected: event_seqs.len() as u64,
        event_seqs,
        key_ids_destroyed: key_ids,
        reason,
        replayed: false,
    })
}

/// The refusal code of an erasure that found nothing to erase.
const NOT_FOUND: ErrorCode = ErrorCode::NotFound;
/// The refusal code, inside the writer, of an erasure of a subject whose
/// keys are all destroyed already; the caller answers the earlier erasure.
const ALREADY_ERASED: ErrorCode = ErrorCode::AlreadyErased;

/// The `subject.erased` events of the subject with `pseudonym`, in order.
pub fn erasures_of(conn: &mut DbConn, pseudonym: &str) -> Result<Vec<Event>, StoreError> {
    crate::store::events::list(
        conn,
        &crate::store::EventFilter {
            kind: Some(Kind::SubjectErased.as_str().into()),
            subject: Some(subject_ref(pseudonym)),
            subject_exact: true,
            limit: 10_000,
            ..Default::default()
        },
    )
}

/// The certificate of a recorded erasure, rebuilt from its event.
pub fn certificate_of(event: &Event) -> Option<ErasureCertificate> {
    if event.kind != Kind::SubjectErased {
        return None;
    }
    let a: Value = serde_json::from_str(&event.attributes).ok()?;
    Some(ErasureCertificate {
        pseudonym: a["pseudonym"].as_str()?.to_owned(),
        seq: event.seq,
        hash: hex::encode(event.hash),
        erased_at: event.recorded_at.clone(),
        requested_by: event.actor.clone(),
        events_affected: a["events_affected"].as_u64()?,
        event_seqs: Vec::new(),
        key_ids_destroyed: a["key_ids_destroyed"]
            .as_array()?
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        reason: a["reason"].as_str().map(str::to_owned),
        replayed: false,
    })
}

/// An Art. 15 access answer.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct AccessAnswer {
    pub pseudonym: String,
    /// Whether the subject has been erased (their fields are unreadable).
    pub erased: bool,
    pub events: Vec<AccessEvent>,
    /// Entities the subject's events are about or name, by type.
    pub datasets: Vec<String>,
    pub runs: Vec<String>,
    pub models: Vec<String>,
    /// What was built from those datasets: runs, models and deployments
    /// downstream of them.
    pub downstream: Vec<String>,
    pub erasures: Vec<ErasureCertificate>,
}

/// One event naming the subject.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct AccessEvent {
    pub seq: u64,
    pub kind: String,
    pub subject: String,
    pub project: Option<String>,
    pub recorded_at: String,
    /// The fields in clear, or `"[erased]"`.
    #[schema(value_type = Value)]
    pub fields: Value,
}

/// Which events, datasets, runs and models involve `subject_id`, from the
/// pseudonym index, limited to the projects a reader may see.
pub fn access(
    store: &Store,
    master: Option<&MasterKey>,
    subject_id: &str,
    readable: Visibility<'_>,
) -> Result<AccessAnswer, GovernanceError> {
    let m = master.ok_or_else(no_master_key)?;
    check_subject_id(subject_id)?;
    let pseudonym = m.pseudonym(subject_id);
    let mut conn = store.conn()?;
    let seqs = subjects::events_of(&mut conn, &pseudonym)?;
    let events: Vec<Event> = crate::store::events::by_seqs(&mut conn, &seqs)?
        .into_iter()
        .filter(|e| lineage::project_visible(e.project.as_deref(), readable))
        .collect();
    let views = reveal(&mut conn, master, &events, |_| true)?;
    let mut named: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    for e in &events {
        for r in std::iter::once(&e.subject).chain(&e.inputs).chain(&e.outputs) {
            if let Ok(parsed) = EntityRef::parse(r) {
                let bucket = match parsed.entity_type() {
                    "dataset" => "datasets",
                    "run" => "runs",
                    "model" => "models",
                    _ => continue,
                };
                named.entry(bucket).or_default().insert(r.clone());
            }
        }
    }
    let mut downstream = BTreeSet::new();
    for dataset in named.get("datasets").into_iter().flatten() {
        if let Some(graph) = lineage::lineage(
            &mut conn,
            dataset,
            lineage::Walk::Downstream,
            lineage::MAX_DEPTH,
            None,
            readable,
            lineage::MAX_NODES,
        )? {
            for node in graph.nodes {
                if node.ref_ != *dataset {
                    downstream.insert(node.ref_);
                }
            }
        }
    }
    let filter = crate::store::EventFilter {
        kind: Some(Kind::SubjectErased.as_str().into()),
        subject: Some(subject_ref(&pseudonym)),
        subject_exact: true,
        limit: 1000,
        ..Default::default()
    };
    let erasures: Vec<ErasureCertificate> =
        crate::store::events::list(&mut conn, &filter)?.iter().filter_map(certificate_of).collect();
    let held = subjects::keys_of(&mut conn, std::slice::from_ref(&pseudonym))?;
    let take = |k: &str, named: &mut BTreeMap<&'static str, BTreeSet<String>>| {
        named.remove(k).map(|s| s.into_iter().collect()).unwrap_or_default()
    };
    Ok(AccessAnswer {
        erased: !erasures.is_empty() && held.is_empty(),
        events: events
            .iter()
            .zip(views)
            .map(|(e, v)| AccessEvent {
                seq: e.seq,
                kind: e.kind.clone(),
                subject: e.subject.clone(),
                project: e.project.clone(),
                recorded_at: e.recorded_at.clone(),
                fields: v.map(|v| v["fields"].clone()).unwrap_or(Value::Null),
            })
            .collect(),
        datasets: take("datasets", &mut named),
        runs: take("runs", &mut named),
        models: take("models", &mut named),
        downstream: downstream.into_iter().collect(),
        erasures,
        pseudonym,
    })
}
