//! Immutable versions on the append path.
//!
//! A dataset or model version (`dataset:…@v`, `model:…@v`) is created once.
//! A second creating event would change, after the fact, what a model was
//! trained on or what was approved, so the writer refuses it inside the
//! append transaction, where two racing requests cannot both pass. The
//! projections themselves never refuse an event (a ledger recorded before
//! this rule may hold a redefinition; reports flag it as a finding).

use std::collections::HashMap;

use super::writer::Refusal;
use super::{projections, DbConn, StoreError};
use crate::ledger::{Event, EventDraft};

/// The code of the refusal.
pub const VERSION_EXISTS: &str = "version_exists";

/// For each version a batch would create, the seq that already created it.
#[derive(Default)]
pub(super) struct VersionGuard {
    created: HashMap<String, u64>,
}

impl VersionGuard {
    /// Reads which of the versions that `drafts` would create are on the
    /// record already (one lookup per batch).
    pub fn load<'a>(conn: &mut DbConn, drafts: impl Iterator<Item = &'a EventDraft>) -> Result<Self, StoreError> {
        let refs: Vec<String> = drafts.filter(|d| creates_version(d)).map(|d| d.subject.to_string()).collect();
        if refs.is_empty() {
            return Ok(Self::default());
        }
        let mut created = HashMap::new();
        for row in projections::entities_by_ref(conn, &refs)? {
            let Some(kind) = crate::ledger::entity::version_creating_kind(&row.entity_type) else { continue };
            let state: serde_json::Value = serde_json::from_str(&row.state).unwrap_or_default();
            if let Some(seq) = state[kind].as_u64() {
                created.insert(row.ref_, seq);
            }
        }
        Ok(Self { created })
    }

    /// Refuses `drafts` (one request) when one of them would create a
    /// version that exists: on the record, earlier in the batch, or earlier
    /// in the same request.
    pub fn check(&self, drafts: &[EventDraft]) -> Result<(), Refusal> {
        for (i, draft) in drafts.iter().enumerate().filter(|(_, d)| creates_version(d)) {
            let subject = draft.subject.to_string();
            let again_in_request = drafts[..i].iter().any(|d| creates_version(d) && d.subject == draft.subject);
            let existing = self.created.get(&subject);
            if existing.is_none() && !again_in_request {
                continue;
            }
            let when = existing.map_or_else(|| "earlier in this request".to_owned(), |seq| format!("at seq {seq}"));
            return Err(Refusal::new(
                VERSION_EXISTS,
                format!(
                    "{subject} was created {when} and a version is immutable: record the changed data as a new \
                     version (e.g. {}:{}@<next>), or describe this one with the kinds that may follow a creation \
                     (docs/EVENTS.md)",
                    draft.subject.entity_type(),
                    draft.subject.name()
                ),
            ));
        }
        Ok(())
    }

    /// Notes the versions `events` (just chained) created.
    pub fn record(&mut self, events: &[Event]) {
        for e in events {
            let creates = crate::ledger::EntityRef::parse(&e.subject)
                .is_ok_and(|r| r.version_creating_kind() == Some(e.kind.as_str()));
            if creates {
                self.created.entry(e.subject.clone()).or_insert(e.seq);
            }
        }
    }
}

fn creates_version(draft: &EventDraft) -> bool {
    draft.subject.version_creating_kind() == Some(draft.kind.as_str())
}
