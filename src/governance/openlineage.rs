//! OpenLineage intake: `RunEvent`, `DatasetEvent` and `JobEvent` JSON, as
//! the OpenLineage clients send it, mapped onto our events.
//!
//! - A run is `run:<runId>`; START is `run.started`, COMPLETE `run.completed`,
//!   FAIL and ABORT `run.failed`, RUNNING and OTHER `run.updated`. Its job
//!   and input datasets are its inputs, its output datasets its outputs, so
//!   they become lineage edges.
//! - A dataset is `dataset:<namespace>/<name>` and a job `job:<namespace>/<name>`,
//!   with `://` turned into `/` and any other character our references do not
//!   allow replaced by `_` (the original namespace and name stay in the
//!   attributes).
//! - The whole OpenLineage event, facets included (unknown ones too), is kept
//!   under `attributes.openlineage`.
//! - The idempotency key is derived from (runId, eventType, eventTime), so a
//!   client's retry records nothing new.

use ring::digest::{digest, SHA256};
use serde_json::Value;

use super::{Governance, GovernanceError};
use crate::ledger::{timestamp, EventDraft, EventRequest, Kind, ValidationError};
use crate::store::Appended;

const MAX_NAME: usize = 200;

/// The ledger event one OpenLineage event becomes, validated as a governed
/// kind: the caller checks it may append that kind in its project, then
/// records it with [`Governance::record_openlineage`].
pub fn draft(event: &Value, project: Option<&str>) -> Result<EventDraft, ValidationError> {
    let draft = EventDraft::from_request(to_event(event, project)?)?;
    super::kinds::validate(&draft)?;
    Ok(draft)
}

impl Governance {
    /// Records `draft` (from [`draft`]) as `actor`; a retry of the same
    /// OpenLineage event is a replay (its idempotency key is derived from it).
    pub async fn record_openlineage(&self, actor: &str, draft: EventDraft) -> Result<Appended, GovernanceError> {
        Ok(self.store.writer().append(actor.to_owned(), vec![draft]).await?)
    }
}

/// Maps one OpenLineage event to the event we record.
pub fn to_event(event: &Value, project: Option<&str>) -> Result<EventRequest, ValidationError> {
    let Value::Object(fields) = event else {
        return Err(ValidationError::new("an OpenLineage event must be a JSON object"));
    };
    let event_time = fields
        .get("eventTime")
        .and_then(Value::as_str)
        .ok_or_else(|| ValidationError::new("eventTime: required, an ISO 8601 timestamp"))?;
    let occurred_at = timestamp::normalize(event_time).map_err(|e| e.in_field("eventTime"))?;
    let datasets = |field: &str| -> Result<Vec<String>, ValidationError> {
        match fields.get(field) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, d)| dataset_ref(d).map_err(|e| e.in_field(&format!("{field}[{i}]"))))
                .collect(),
            Some(_) => Err(ValidationError::new(format!("{field}: must be an array of datasets"))),
        }
    };
    let attributes = serde_json::json!({ "openlineage": event });
    let project = project.map(str::to_owned);
    if let Some(run) = fields.get("run") {
        // The spec makes runId a UUID (format: uuid), the canonical
        // hyphenated form that every OpenLineage client generates.
        let run_id = run
            .get("runId")
            .and_then(Value::as_str)
            .ok_or_else(|| ValidationError::new("run.runId: required, a UUID"))?;
        if run_id.len() != 36 || uuid::Uuid::try_parse(run_id).is_err() {
            return Err(ValidationError::new(format!(
                "run.runId: {run_id:?} is not a UUID (e.g. 0190a3c5-1d2e-7b7f-8e0a-1234567890ab), as the OpenLineage spec requires"
            )));
        }
        let event_type = fields.get("eventType").and_then(Value::as_str).unwrap_or("OTHER");
        let kind = match event_type {
            "START" => Kind::RunStarted,
            "COMPLETE" => Kind::RunCompleted,
            "FAIL" | "ABORT" => Kind::RunFailed,
            "RUNNING" | "OTHER" => Kind::RunUpdated,
            other => {
                return Err(ValidationError::new(format!(
                    "eventType: {other:?} is not one of START, RUNNING, COMPLETE, ABORT, FAIL, OTHER"
                )))
            }
        };
        let mut inputs = Vec::new();
        if let Some(job) = fields.get("job") {
            inputs.push(named_ref("job", job).map_err(|e| e.in_field("job"))?);
        }
        inputs.extend(datasets("inputs")?);
        let key = idempotency_key(&[run_id, event_type, event_time]);
        return Ok(EventRequest {
            kind: kind.as_str().into(),
            subject: format!("run:{}", sanitize(run_id)),
            project,
            inputs: Some(dedup(inputs)),
            outputs: Some(dedup(datasets("outputs")?)),
            attributes: Some(attributes),
            occurred_at: Some(occurred_at),
            idempotency_key: Some(key),
            personal: None,
        });
    }
    if let Some(dataset) = fields.get("dataset") {
        let subject = dataset_ref(dataset).map_err(|e| e.in_field("dataset"))?;
        let key = idempotency_key(&["dataset", &subject, event_time]);
        return Ok(EventRequest {
            kind: Kind::DatasetRegistered.as_str().into(),
            subject,
            project,
            inputs: None,
            outputs: None,
            attributes: Some(attributes),
            occurred_at: Some(occurred_at),
            idempotency_key: Some(key),
            personal: None,
        });
    }
    if let Some(job) = fields.get("job") {
        let subject = named_ref("job", job).map_err(|e| e.in_field("job"))?;
        let key = idempotency_key(&["job", &subject, event_time]);
        return Ok(EventRequest {
            kind: Kind::JobRegistered.as_str().into(),
            subject,
            project,
            inputs: Some(dedup(datasets("inputs")?)),
            outputs: Some(dedup(datasets("outputs")?)),
            attributes: Some(attributes),
            occurred_at: Some(occurred_at),
            idempotency_key: Some(key),
            personal: None,
        });
    }
    Err(ValidationError::new("not an OpenLineage RunEvent, DatasetEvent or JobEvent: no `run`, `dataset` or `job`"))
}

fn dataset_ref(dataset: &Value) -> Result<String, ValidationError> {
    named_ref("dataset", dataset)
}

fn named_ref(entity_type: &str, value: &Value) -> Result<String, ValidationError> {
    let text = |k: &str| {
        value
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ValidationError::new(format!("{k}: required, a non-empty string")))
    };
    let joined = format!("{}/{}", text("namespace")?.replace("://", "/"), text("name")?);
    Ok(format!("{entity_type}:{}", sanitize(&joined)))
}

/// A string made into a valid reference name: allowed characters kept, the
/// rest `_`, empty `/` segments dropped, long names shortened with a digest
/// of the original so two long names stay distinct.
pub fn sanitize(text: &str) -> String {
    let replaced: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/') { c } else { '_' })
        .collect();
    let joined = replaced.split('/').filter(|s| !s.is_empty()).collect::<Vec<_>>().join("/");
    let name = if joined.is_empty() { "_".to_owned() } else { joined };
    if name.len() <= MAX_NAME {
        return name;
    }
    let tag = hex::encode(&digest(&SHA256, text.as_bytes()).as_ref()[..8]);
    format!("{}-{tag}", name[..MAX_NAME - 17].trim_end_matches('/'))
}

fn idempotency_key(parts: &[&str]) -> String {
    let joined = parts.join("\u{0}");
    format!("openlineage:{}", hex::encode(&digest(&SHA256, joined.as_bytes()).as_ref()[..20]))
}

fn dedup(mut refs: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    refs.retain(|r| seen.insert(r.clone()));
    refs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_a_complete_run_event() {
        let event = serde_json::json!({
            "eventType": "COMPLETE",
            "eventTime": "2026-03-03T09:00:00.000Z",
            "run": {"runId": "0190a3c5-1d2e-7b7f-8e0a-1234567890ab", "facets": {"x_custom": {"a": 1}}},
            "job": {"namespace": "airflow", "name": "fraud.train"},
            "inputs": [{"namespace": "postgres://db:5432", "name": "public.transactions"}],
            "outputs": [{"namespace": "s3://models", "name": "fraud/model.pkl"}],
            "producer": "https://github.com/OpenLineage/OpenLineage/tree/1.0.0/client/python",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/definitions/RunEvent"
        });
        let e = to_event(&event, None).unwrap();
        assert_eq!(e.kind, "run.completed");
        assert_eq!(e.subject, "run:0190a3c5-1d2e-7b7f-8e0a-1234567890ab");
        assert_eq!(e.inputs.unwrap(), vec!["job:airflow/fraud.train", "dataset:postgres/db_5432/public.transactions"]);
        assert_eq!(e.outputs.unwrap(), vec!["dataset:s3/models/fraud/model.pkl"]);
        assert_eq!(e.attributes.unwrap()["openlineage"]["run"]["facets"]["x_custom"]["a"], 1);
        let again = to_event(&event, None).unwrap();
        assert_eq!(e.idempotency_key, again.idempotency_key);
    }

    #[test]
    fn long_names_stay_distinct_and_valid() {
        let a = sanitize(&"a".repeat(300));
        let b = sanitize(&format!("{}b", "a".repeat(299)));
        assert_ne!(a, b);
        assert!(a.len() <= MAX_NAME);
        assert!(crate::ledger::EntityRef::parse(&format!("dataset:{a}")).is_ok());
    }

    #[test]
    fn refuses_events_without_time_or_shape() {
        assert!(to_event(&serde_json::json!({"run": {"runId": "x"}}), None).is_err());
        for not_uuid in ["abc", "0190a3c51d2e7b7f8e0a1234567890ab", "{0190a3c5-1d2e-7b7f-8e0a-1234567890ab}"] {
            let event = serde_json::json!({"eventType": "START", "eventTime": "2026-03-03T09:00:00Z",
                "run": {"runId": not_uuid}, "job": {"namespace": "n", "name": "j"}});
            let err = to_event(&event, None).unwrap_err();
            assert!(err.to_string().contains("is not a UUID"), "{not_uuid}: {err}");
        }
        assert!(to_event(&serde_json::json!({"eventTime": "2026-03-03T09:00:00Z"}), None).is_err());
    }
}
