//! Sealing personal data inside the append transaction (docs/PERSONAL_DATA.md).
//!
//! Subject keys are read once per batch, for every subject the batch names,
//! and new ones written in one statement: per-event queries cost a third of
//! the append rate. The cache lives for one transaction only, which holds
//! the append lock, so no other writer (or replica) can erase a key under
//! it; a precondition in the batch (an erasure is one) makes it forget.

use std::collections::HashMap;

use super::subjects::{self, KeyRow};
use super::writer::Refusal;
use super::{DbConn, StoreError};
use crate::ledger::personal::{self, Envelope, MasterKey, PersonalDraft, SubjectKey};
use crate::ledger::{timestamp, EventDraft};

/// Subject keys of one batch.
pub(crate) struct KeyCache {
    keys: HashMap<String, SubjectKey>,
    /// Subjects whose stored key does not open with the master key.
    unopenable: std::collections::HashSet<String>,
    /// Whether `keys` holds every stored key of the batch's subjects, so a
    /// miss means the subject has none.
    complete: bool,
    created: Vec<KeyRow>,
}

impl KeyCache {
    /// Loads the keys of every subject with fields in `drafts`.
    pub fn for_batch<'a>(
        conn: &mut DbConn,
        master: Option<&MasterKey>,
        drafts: impl Iterator<Item = &'a EventDraft>,
    ) -> Result<Self, StoreError> {
        let mut cache =
            Self { keys: HashMap::new(), unopenable: Default::default(), complete: false, created: Vec::new() };
        let Some(master) = master else { return Ok(cache) };
        let mut wanted: Vec<String> = drafts
            .filter_map(|d| d.personal.as_ref())
            .filter(|p| p.fields.is_some())
            .flat_map(|p| p.pseudonyms.iter().cloned())
            .collect();
        if wanted.is_empty() {
            return Ok(cache);
        }
        wanted.sort();
        wanted.dedup();
        cache.load(conn, master, &wanted)?;
        cache.complete = true;
        Ok(cache)
    }

    fn load(&mut self, conn: &mut DbConn, master: &MasterKey, pseudonyms: &[String]) -> Result<(), StoreError> {
        for (pseudonym, row) in subjects::keys_of(conn, pseudonyms)? {
            match master.unwrap(&row.key_id, &row.wrapped) {
                Ok(key) => {
                    self.keys.insert(pseudonym, key);
                }
                Err(_) => {
                    self.unopenable.insert(pseudonym);
                }
            }
        }
        Ok(())
    }

    /// Writes the keys created so far.
    pub fn flush(&mut self, conn: &mut DbConn) -> Result<(), StoreError> {
        // In key order, so inserts that share a page follow each other.
        self.created.sort_unstable_by(|a, b| a.pseudonym.cmp(&b.pseudonym));
        subjects::insert_keys(conn, &self.created)?;
        self.created.clear();
        Ok(())
    }

    /// Drops what was read: keys may have changed (call after `flush`).
    pub fn forget(&mut self) {
        self.keys.clear();
        self.unopenable.clear();
        self.complete = false;
    }

    /// The draft's attributes with its personal data sealed in: each
    /// subject's key is used, or created for a subject seen for the first
    /// time (or again after an erasure).
    pub fn seal(
        &mut self,
        conn: &mut DbConn,
        master: Option<&MasterKey>,
        draft: &PersonalDraft,
        attributes: &str,
    ) -> Result<Result<String, Refusal>, StoreError> {
        let refuse = |m: &str| Ok(Err(Refusal::new("personal_data", m)));
        let Some(master) = master else {
            return refuse("this server has no master key configured, so it cannot accept personal data");
        };
        let envelope = match &draft.fields {
            None => Envelope { subjects: draft.pseudonyms.clone(), sealed: None },
            Some(fields) => {
                if !self.complete {
                    let missing: Vec<String> =
                        draft.pseudonyms.iter().filter(|p| !self.keys.contains_key(*p)).cloned().collect();
                    self.load(conn, master, &missing)?;
                }
                if draft.pseudonyms.iter().any(|p| self.unopenable.contains(p)) {
                    return refuse("a subject key does not open with this master key");
                }
                for pseudonym in &draft.pseudonyms {
                    if !self.keys.contains_key(pseudonym) {
                        let Ok((key, wrapped)) = master.new_subject_key() else {
                            return refuse("cannot create a subject key");
                        };
                        self.created.push(KeyRow {
                            key_id: key.key_id.clone(),
                            pseudonym: pseudonym.clone(),
                            wrapped,
                            created_at: timestamp::now(),
                        });
                        self.keys.insert(pseudonym.clone(), key);
                    }
                }
                let keys: Vec<&SubjectKey> = draft.pseudonyms.iter().filter_map(|p| self.keys.get(p)).collect();
                match master.seal(&draft.pseudonyms, &keys, fields) {
                    Ok(envelope) => envelope,
                    Err(e) => return refuse(&e.to_string()),
                }
            }
        };
        match personal::attach(attributes, &envelope) {
            Ok(attributes) => Ok(Ok(attributes)),
            Err(e) => refuse(&e.to_string()),
        }
    }
}
