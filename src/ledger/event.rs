//! Events: what a client asks to record ([`EventRequest`]), its validated
//! form ([`EventDraft`]), and the stored, chained [`Event`].

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::encoding::Hash;
use super::entity::EntityRef;
use super::timestamp;

/// Why a client's event was refused. The message names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    message: String,
}

impl ValidationError {
    /// A validation error with a message for the client.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into() }
    }

    /// The same error, with the field path in front (`events[2].subject: ...`).
    pub fn in_field(self, field: &str) -> Self {
        Self { message: format!("{field}: {}", self.message) }
    }
}

/// Fields that only the server assigns; a request carrying one is refused
/// rather than silently ignored, so a client never believes it set them.
pub const SERVER_ASSIGNED_FIELDS: [&str; 6] = ["seq", "id", "recorded_at", "actor", "prev_hash", "hash"];

const MAX_KIND_LEN: usize = 64;
const MAX_PROJECT_LEN: usize = 64;
const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;
const MAX_REFS: usize = 1000;

/// An event as a client sends it.
#[derive(utoipa::ToSchema, Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    /// A dotted name such as `model.registered` (docs/EVENTS.md).
    #[schema(example = "model.registered", pattern = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$", max_length = 64)]
    pub kind: String,
    /// The entity the event is about, `type:name@version` (version optional).
    #[schema(value_type = EntityRef)]
    pub subject: String,
    /// Groups events for access control.
    #[serde(default)]
    #[schema(max_length = 64)]
    pub project: Option<String>,
    /// Entities this one was made from: they become lineage edges.
    #[serde(default)]
    #[schema(value_type = Option<Vec<EntityRef>>)]
    pub inputs: Option<Vec<String>>,
    /// Entities this one produced.
    #[serde(default)]
    #[schema(value_type = Option<Vec<EntityRef>>)]
    pub outputs: Option<Vec<String>>,
    /// Any JSON object; governed kinds have typed attributes (docs/EVENTS.md).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<serde_json::Value>,
    /// When it happened, RFC 3339; the server records `recorded_at` itself.
    #[serde(default)]
    pub occurred_at: Option<String>,
    /// A retry with the same key returns the original event and writes nothing.
    #[serde(default)]
    #[schema(max_length = 128)]
    pub idempotency_key: Option<String>,
    /// Data about identified people: pseudonymised and sealed by the server
    /// (see [`super::personal`]), never stored or hashed in clear.
    #[serde(default)]
    pub personal: Option<super::personal::PersonalRequest>,
}

/// A dotted event kind such as `model.registered`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventKind(String);

impl EventKind {
    /// Parses a kind: two or more dot-separated segments of lower-case
    /// letters, digits and `_`, each starting with a letter.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let bad = |why: &str| ValidationError::new(format!("invalid kind {input:?}: {why}"));
        if input.is_empty() || input.len() > MAX_KIND_LEN {
            return Err(bad("must be 1 to 64 characters"));
        }
        let segments: Vec<&str> = input.split('.').collect();
        if segments.len() < 2 {
            return Err(bad("expected a dotted name such as `model.registered`"));
        }
        for segment in segments {
            let mut chars = segment.chars();
            let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
            if !starts_with_letter || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
                return Err(bad("each segment must be lower-case letters, digits or `_`, starting with a letter"));
            }
        }
        Ok(Self(input.to_owned()))
    }

    /// The kind as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated event that has not been given its place in the chain yet.
///
/// `attributes` is already in canonical JSON (sorted keys, no whitespace):
/// those exact bytes are stored and hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDraft {
    pub kind: EventKind,
    pub subject: EntityRef,
    pub project: Option<String>,
    pub inputs: Vec<EntityRef>,
    pub outputs: Vec<EntityRef>,
    pub attributes: String,
    pub occurred_at: Option<String>,
    pub idempotency_key: Option<String>,
    /// Personal data, sealed by the writer into `attributes.personal`.
    pub personal: Option<super::personal::PersonalDraft>,
}

impl EventDraft {
    /// Validates a request into a draft. A request with `personal` data is
    /// refused here: it needs the server's master key, see
    /// [`EventDraft::from_request_with`].
    pub fn from_request(request: EventRequest) -> Result<Self, ValidationError> {
        Self::from_request_with(request, None)
    }

    /// A draft of an event the server writes itself: no references, no
    /// personal data, checked like a request.
    pub fn server(
        kind: super::Kind,
        subject: &str,
        project: Option<String>,
        attributes: serde_json::Value,
        idempotency_key: Option<String>,
    ) -> Result<Self, ValidationError> {
        Self::from_request(EventRequest {
            kind: kind.as_str().into(),
            subject: subject.into(),
            project,
            inputs: None,
            outputs: None,
            attributes: Some(attributes),
            occurred_at: None,
            idempotency_key,
            personal: None,
        })
    }

    /// Validates a request into a draft, pseudonymising its personal data
    /// with `master`.
    pub fn from_request_with(
        mut request: EventRequest,
        master: Option<&super::personal::MasterKey>,
    ) -> Result<Self, ValidationError> {
        let personal = match (request.personal.take(), master) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(ValidationError::new(
                    "personal: this server has no master key configured, so it cannot accept personal data",
                ))
            }
            (Some(p), Some(master)) => {
                let fields = super::personal::validate(&p).map_err(|e| ValidationError::new(e.to_string()))?;
                let pseudonyms = p.subject_ids.iter().map(|id| master.pseudonym(id)).collect();
                Some(super::personal::PersonalDraft { pseudonyms, fields })
            }
        };
        let kind = EventKind::parse(&request.kind).map_err(|e| e.in_field("kind"))?;
        let subject = EntityRef::parse(&request.subject).map_err(|e| e.in_field("subject"))?;
        let project = request.project.map(|p| validate_project(&p).map(|()| p)).transpose()?;
        let inputs = parse_refs("inputs", request.inputs.unwrap_or_default())?;
        let outputs = parse_refs("outputs", request.outputs.unwrap_or_default())?;
        let attributes = match request.attributes {
            None => "{}".to_owned(),
            Some(serde_json::Value::Object(map)) if map.contains_key(super::personal::ATTRIBUTE) => {
                return Err(ValidationError::new(
                    "attributes.personal: reserved for the server's sealed envelope; send personal data as `personal`",
                ))
            }
            Some(value @ serde_json::Value::Object(_)) => canonical_json(&value),
            Some(_) => return Err(ValidationError::new("attributes: must be a JSON object")),
        };
        let occurred_at =
            request.occurred_at.map(|t| timestamp::normalize(&t)).transpose().map_err(|e| e.in_field("occurred_at"))?;
        let idempotency_key = request.idempotency_key.map(|k| validate_idempotency_key(&k).map(|()| k)).transpose()?;
        Ok(Self { kind, subject, project, inputs, outputs, attributes, occurred_at, idempotency_key, personal })
    }

    /// Whether a stored event records exactly what this draft asks for, so that
    /// a retry with the same idempotency key may be answered with it.
    pub fn matches(&self, event: &Event) -> bool {
        self.differences(event).is_empty()
    }

    /// The fields in which a stored event differs from this draft, by name,
    /// for telling a client why its retry is not one.
    pub fn differences(&self, event: &Event) -> Vec<&'static str> {
        let checks = [
            ("kind", self.kind.as_str() == event.kind),
            ("subject", self.subject.to_string() == event.subject),
            ("project", self.project == event.project),
            ("inputs", refs_match(&self.inputs, &event.inputs)),
            ("outputs", refs_match(&self.outputs, &event.outputs)),
            ("attributes", self.attributes_match(&event.attributes)),
            ("occurred_at", self.occurred_at == event.occurred_at),
            ("idempotency_key", self.idempotency_key == event.idempotency_key),
        ];
        checks.into_iter().filter(|(_, same)| !same).map(|(name, _)| name).collect()
    }
}

impl EventDraft {
    /// The stored attributes are the draft's plus, with personal data, the
    /// sealed envelope. The fields themselves cannot be compared without
    /// the subjects' keys: a retry naming the same subjects counts as one.
    fn attributes_match(&self, stored: &str) -> bool {
        match &self.personal {
            None => self.attributes == stored,
            Some(p) => {
                let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str(stored) else { return false };
                let envelope = map.remove(super::personal::ATTRIBUTE);
                let subjects = envelope.as_ref().and_then(|e| e.get("subjects")).and_then(|s| {
                    s.as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect::<Vec<_>>())
                });
                subjects.as_deref() == Some(&p.pseudonyms[..])
                    && canonical_json(&serde_json::Value::Object(map)) == self.attributes
            }
        }
    }
}

fn refs_match(drafted: &[EntityRef], stored: &[String]) -> bool {
    drafted.len() == stored.len() && drafted.iter().zip(stored).all(|(d, s)| d.to_string() == *s)
}

fn parse_refs(field: &str, refs: Vec<String>) -> Result<Vec<EntityRef>, ValidationError> {
    if refs.len() > MAX_REFS {
        return Err(ValidationError::new(format!("{field}: at most {MAX_REFS} entries")));
    }
    let mut seen = BTreeSet::new();
    refs.iter()
        .enumerate()
        .map(|(i, r)| {
            let parsed = EntityRef::parse(r).map_err(|e| e.in_field(&format!("{field}[{i}]")))?;
            if !seen.insert(parsed.clone()) {
                return Err(ValidationError::new(format!("{field}[{i}]: {r:?} is listed twice")));
            }
            Ok(parsed)
        })
        .collect()
}

pub fn validate_project(project: &str) -> Result<(), ValidationError> {
    let ok = !project.is_empty()
        && project.len() <= MAX_PROJECT_LEN
        && project.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && project != "*";
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(format!(
            "project: invalid project {project:?}: 1 to 64 letters, digits, `.`, `_` or `-`"
        )))
    }
}

fn validate_idempotency_key(key: &str) -> Result<(), ValidationError> {
    let ok = !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY_LEN && key.chars().all(|c| c.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new("idempotency_key: 1 to 128 printable ASCII characters without spaces"))
    }
}

/// Canonical JSON: object keys sorted by their UTF-8 bytes, no insignificant
/// whitespace, numbers and strings as serde_json writes them. serde_json's map
/// is a `BTreeMap` (the `preserve_order` feature must stay off), which gives
/// the ordering.
pub fn canonical_json(value: &serde_json::Value) -> String {
    value.to_string()
}

/// An event as stored in the ledger, with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub seq: u64,
    pub id: String,
    pub recorded_at: String,
    pub actor: String,
    pub kind: String,
    pub subject: String,
    pub project: Option<String>,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// Canonical JSON text, exactly the bytes that were hashed.
    pub attributes: String,
    pub occurred_at: Option<String>,
    pub idempotency_key: Option<String>,
    pub prev_hash: Hash,
    pub hash: Hash,
}

/// The JSON shape of an event in API responses and bundles. `attributes` is
/// written as the stored canonical bytes verbatim, so a verifier can hash
/// what it received without re-serialising it.
#[derive(utoipa::ToSchema, Debug, Serialize)]
pub struct EventJson<'a> {
    pub seq: u64,
    pub id: &'a str,
    pub recorded_at: &'a str,
    pub actor: &'a str,
    pub kind: &'a str,
    #[schema(value_type = EntityRef)]
    pub subject: &'a str,
    pub project: Option<&'a str>,
    #[schema(value_type = Vec<EntityRef>)]
    pub inputs: &'a [String],
    #[schema(value_type = Vec<EntityRef>)]
    pub outputs: &'a [String],
    /// The stored canonical JSON (sorted keys, no whitespace), hashed as is.
    #[schema(value_type = Object)]
    pub attributes: &'a serde_json::value::RawValue,
    pub occurred_at: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
    pub prev_hash: String,
    pub hash: String,
    /// Not part of the stored event (the envelope in `attributes.personal`
    /// is): the personal fields as this reader may see them, in clear,
    /// `"[redacted]"` or `"[erased]"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub personal: Option<serde_json::Value>,
}

impl Event {
    /// The response shape. Fails only if the stored attributes are not JSON,
    /// which means the row was damaged outside the server.
    pub fn to_json(&self) -> Result<EventJson<'_>, serde_json::Error> {
        let attributes: &serde_json::value::RawValue = serde_json::from_str(&self.attributes)?;
        Ok(EventJson {
            seq: self.seq,
            id: &self.id,
            recorded_at: &self.recorded_at,
            actor: &self.actor,
            kind: &self.kind,
            subject: &self.subject,
            project: self.project.as_deref(),
            inputs: &self.inputs,
            outputs: &self.outputs,
            attributes,
            occurred_at: self.occurred_at.as_deref(),
            idempotency_key: self.idempotency_key.as_deref(),
            prev_hash: hex::encode(self.prev_hash),
            hash: hex::encode(self.hash),
            personal: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: serde_json::Value) -> Result<EventDraft, String> {
        let req: EventRequest = serde_json::from_value(json).map_err(|e| e.to_string())?;
        EventDraft::from_request(req).map_err(|e| e.to_string())
    }

    #[test]
    fn kinds_are_dotted_lower_case() {
        assert!(EventKind::parse("model.registered").is_ok());
        assert!(EventKind::parse("a.b_c.d2").is_ok());
        for bad in ["model", "Model.registered", "model..x", ".x", "x.", "model.2x", "model.re gistered"] {
            assert!(EventKind::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn attributes_are_canonicalised() {
        let d = request(serde_json::json!({
            "kind": "model.evaluated", "subject": "model:m@1",
            "attributes": {"b": 1, "a": {"z": [1, 2], "y": "é"}}
        }))
        .unwrap();
        assert_eq!(d.attributes, r#"{"a":{"y":"é","z":[1,2]},"b":1}"#);
    }

    #[test]
    fn errors_name_the_field() {
        let e =
            request(serde_json::json!({"kind": "x.y", "subject": "m:x", "inputs": ["dataset:a", "bad"]})).unwrap_err();
        assert!(e.starts_with("inputs[1]: invalid entity reference"), "{e}");
        let e = request(serde_json::json!({"kind": "x.y", "subject": "m:x", "attributes": [1]})).unwrap_err();
        assert!(e.starts_with("attributes:"), "{e}");
        let e = request(serde_json::json!({"kind": "x.y", "subject": "m:x", "occurred_at": "soon"})).unwrap_err();
        assert!(e.starts_with("occurred_at:"), "{e}");
        let e = request(serde_json::json!({"kind": "x.y", "subject": "m:x", "inputs": ["d:a", "d:a"]})).unwrap_err();
        assert!(e.contains("listed twice"), "{e}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = request(serde_json::json!({"kind": "x.y", "subject": "m:x", "colour": "red"})).unwrap_err();
        assert!(e.contains("unknown field `colour`"), "{e}");
    }
}
