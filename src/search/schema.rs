//! The search index's fields, and the document built for each event.

use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, Schema, SchemaBuilder, FAST, INDEXED, STORED, STRING, TEXT,
};
use tantivy::{DateTime, TantivyDocument};

use crate::ledger::{EntityRef, Event};

/// The fields, by role.
#[derive(Clone, Copy)]
pub struct Fields {
    pub seq: Field,
    pub kind: Field,
    pub subject: Field,
    pub entity_type: Field,
    pub name: Field,
    pub version: Field,
    pub input: Field,
    pub output: Field,
    /// The subject, inputs and outputs together: `ref:"dataset:x@1"` finds
    /// every event that names the entity in any role.
    pub reference: Field,
    pub actor: Field,
    pub project: Field,
    pub recorded_at: Field,
    pub occurred_at: Field,
    /// Free text: attribute names and values (nested names dotted), the kind
    /// and the entity references, tokenized.
    pub text: Field,
}

/// Field names a query may use with `field:value`.
pub const QUERY_FIELDS: [&str; 14] = [
    "seq",
    "kind",
    "subject",
    "entity_type",
    "name",
    "version",
    "input",
    "output",
    "ref",
    "actor",
    "project",
    "recorded_at",
    "occurred_at",
    "text",
];

impl Fields {
    /// The schema and its fields.
    pub fn schema() -> (Schema, Self) {
        let mut b: SchemaBuilder = Schema::builder();
        let date =
            DateOptions::default().set_indexed().set_fast().set_stored().set_precision(DateTimePrecision::Microseconds);
        let fields = Self {
            seq: b.add_u64_field("seq", INDEXED | STORED | FAST),
            kind: b.add_text_field("kind", STRING | STORED | FAST),
            subject: b.add_text_field("subject", STRING | STORED),
            entity_type: b.add_text_field("entity_type", STRING | FAST),
            name: b.add_text_field("name", STRING),
            version: b.add_text_field("version", STRING),
            input: b.add_text_field("input", STRING),
            output: b.add_text_field("output", STRING),
            reference: b.add_text_field("ref", STRING),
            actor: b.add_text_field("actor", STRING | STORED | FAST),
            project: b.add_text_field("project", STRING | FAST),
            recorded_at: b.add_date_field("recorded_at", date.clone()),
            occurred_at: b.add_date_field("occurred_at", date),
            text: b.add_text_field("text", TEXT | STORED),
        };
        (b.build(), fields)
    }

    /// The document for one event.
    pub fn document(&self, event: &Event) -> TantivyDocument {
        let mut doc = TantivyDocument::default();
        doc.add_u64(self.seq, event.seq);
        doc.add_text(self.kind, &event.kind);
        doc.add_text(self.subject, &event.subject);
        if let Ok(subject) = EntityRef::parse(&event.subject) {
            doc.add_text(self.entity_type, subject.entity_type());
            doc.add_text(self.name, subject.name());
            if let Some(version) = subject.version() {
                doc.add_text(self.version, version);
            }
        }
        doc.add_text(self.reference, &event.subject);
        for input in &event.inputs {
            doc.add_text(self.input, input);
            doc.add_text(self.reference, input);
        }
        for output in &event.outputs {
            doc.add_text(self.output, output);
            doc.add_text(self.reference, output);
        }
        doc.add_text(self.actor, &event.actor);
        if let Some(project) = &event.project {
            doc.add_text(self.project, project);
        }
        if let Some(at) = micros(&event.recorded_at) {
            doc.add_date(self.recorded_at, at);
        }
        if let Some(at) = event.occurred_at.as_deref().and_then(micros) {
            doc.add_date(self.occurred_at, at);
        }
        let mut text = String::with_capacity(event.attributes.len() + 64);
        text.push_str(&event.kind);
        text.push(' ');
        text.push_str(&event.subject);
        for r in event.inputs.iter().chain(&event.outputs) {
            text.push(' ');
            text.push_str(r);
        }
        if let Ok(mut attributes) = serde_json::from_str::<serde_json::Value>(&event.attributes) {
            // The sealed personal data: ciphertext and pseudonyms are random
            // tokens nobody searches for, and each would grow the term
            // dictionary (docs/PERSONAL_DATA.md).
            if let Some(map) = attributes.as_object_mut() {
                map.remove(crate::ledger::personal::ATTRIBUTE);
            }
            flatten("", &attributes, &mut text);
        }
        doc.add_text(self.text, &text);
        doc
    }
}

/// A timestamp as tantivy's date. Tantivy counts nanoseconds in an i64
/// (years 1677 to 2262); a query bound outside is clamped to that range, so
/// `to=9999-12-31T00:00:00Z` means "no upper bound" instead of overflowing
/// (found by the `search_query` fuzz target).
pub fn micros(timestamp: &str) -> Option<DateTime> {
    chrono::DateTime::parse_from_rfc3339(timestamp)
        .ok()
        .map(|t| DateTime::from_timestamp_micros(t.timestamp_micros().clamp(i64::MIN / 1000, i64::MAX / 1000)))
}

/// `key value` pairs, nested keys dotted, so both names and values are searchable.
fn flatten(prefix: &str, value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                out.push('\n');
                out.push_str(&name);
                out.push_str(": ");
                flatten(&name, v, out);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                flatten(prefix, item, out);
                out.push(' ');
            }
        }
        serde_json::Value::String(s) => out.push_str(s),
        serde_json::Value::Null => {}
        other => out.push_str(&other.to_string()),
    }
}
