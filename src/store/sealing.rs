//! Sealing personal data inside the append transaction (docs/PERSONAL_DATA.md).
//!
//! The writer keeps the subject keys it has read or created between
//! batches: reading a batch's keys took ~5% of the writer's time at
//! 10,000 subjects. What it holds is the key store as of the chain head
//! after its last commit, and every change to the key store appends to the
//! chain in the same transaction (keys are created for the events that use
//! them; an erasure records `subject.erased`). So the cache is used only
//! while the head it was left at is still the head the next batch finds,
//! under the append lock; any other writer (a replica, the `erase` command)
//! moves the head and empties it. A precondition in the batch (an erasure
//! is one) makes it forget, and a batch that fails takes it with it.
//!
//! New keys go to the key log (see `subjects`), which has no index by
//! pseudonym. While no other writer moves the head the cache holds every
//! logged key, so only keys already folded are looked up, by index;
//! otherwise a batch's keys are looked up in both tables.

use std::collections::{HashMap, HashSet};

use super::events::Head;
use super::subjects::{self, KeyRow};
use super::writer::Refusal;
use super::{DbConn, StoreError};
use crate::ledger::personal::{self, Envelope, MasterKey, PersonalDraft, SubjectKey};
use crate::ledger::{timestamp, EventDraft, Hash};

/// Keys held at most between batches (about 150 bytes each); past it the
/// cache starts again empty.
const MAX_HELD: usize = 100_000;

/// Where the chain ends: the state of the key store a cache reflects.
pub(crate) type HeadMark = (u64, Option<Hash>);

/// The mark of `head`.
fn mark_of(head: &Head) -> HeadMark {
    (head.size, head.hash)
}

/// Subject keys of the writer.
#[derive(Default)]
pub(crate) struct KeyCache {
    keys: HashMap<String, SubjectKey>,
    /// Subjects whose stored key does not open with the master key.
    unopenable: HashSet<String>,
    /// The head after the last commit this cache saw through; `None` while
    /// a batch is open or after a failure.
    valid_at: Option<HeadMark>,
    /// Whether `keys` holds every key in the log.
    holds_log: bool,
    /// Keys in the log as far as this writer knows (what it read and wrote
    /// since the last fold it saw).
    logged: usize,
    /// Whether `keys` holds every stored key of the batch's subjects, so a
    /// miss means the subject has none.
    complete: bool,
    created: Vec<KeyRow>,
}

impl KeyCache {
    /// Readies the cache for a batch whose transaction found the chain at
    /// `head`, loading the keys of every subject with fields in `drafts`
    /// that it does not hold.
    pub fn begin_batch<'a>(
        &mut self,
        conn: &mut DbConn,
        master: Option<&MasterKey>,
        head: &Head,
        drafts: impl Iterator<Item = &'a EventDraft>,
    ) -> Result<(), StoreError> {
        // Another writer moved the head: it may keep doing so (replicas
        // sharing PostgreSQL), and reading the whole log after each of its
        // batches would cost more than looking this batch's keys up.
        let moved = self.valid_at != Some(mark_of(head));
        if moved || self.keys.len() > MAX_HELD {
            self.forget();
        }
        self.valid_at = None;
        self.created.clear();
        self.complete = false;
        let Some(master) = master else { return Ok(()) };
        let mut wanted: Vec<String> = drafts
            .filter_map(|d| d.personal.as_ref())
            .filter(|p| p.fields.is_some())
            .flat_map(|p| p.pseudonyms.iter())
            .filter(|p| !self.holds(p))
            .cloned()
            .collect();
        if !wanted.is_empty() {
            if !self.holds_log && !moved {
                let logged = subjects::logged_keys(conn)?;
                self.logged = logged.len();
                self.hold(master, logged);
                self.holds_log = true;
                wanted.retain(|p| !self.holds(p));
            }
            wanted.sort();
            wanted.dedup();
            self.load(conn, master, &wanted)?;
        }
        self.complete = true;
        Ok(())
    }

    /// Whether the stored key of `pseudonym`, if any, is known.
    fn holds(&self, pseudonym: &str) -> bool {
        self.keys.contains_key(pseudonym) || self.unopenable.contains(pseudonym)
    }

    /// How many keys wait in the log to be folded.
    pub fn logged(&self) -> usize {
        self.logged
    }

    /// The log was folded: its keys are still the subjects' keys.
    pub fn folded(&mut self) {
        self.logged = 0;
    }

    /// The batch committed and left the chain at `head`: what the cache
    /// holds is the key store there.
    pub fn committed(&mut self, head: HeadMark) {
        self.valid_at = Some(head);
    }

    fn load(&mut self, conn: &mut DbConn, master: &MasterKey, pseudonyms: &[String]) -> Result<(), StoreError> {
        let rows = if self.holds_log {
            subjects::folded_keys_of(conn, pseudonyms)?
        } else {
            subjects::keys_of(conn, pseudonyms)?
        };
        self.hold(master, rows.into_values());
        Ok(())
    }

    fn hold(&mut self, master: &MasterKey, rows: impl IntoIterator<Item = KeyRow>) {
        for row in rows {
            match master.unwrap(&row.key_id, &row.wrapped) {
                Ok(key) => {
                    self.keys.insert(row.pseudonym, key);
                }
                Err(_) => {
                    self.unopenable.insert(row.pseudonym);
                }
            }
        }
    }

    /// Writes the keys created so far.
    pub fn flush(&mut self, conn: &mut DbConn) -> Result<(), StoreError> {
        // In key order, so inserts that share a page follow each other.
        self.created.sort_unstable_by(|a, b| a.pseudonym.cmp(&b.pseudonym));
        subjects::insert_keys(conn, &self.created)?;
        self.logged += self.created.len();
        self.created.clear();
        Ok(())
    }

    /// Drops every key held: they may have changed, or the transaction
    /// that read or created them failed (after a success, call it after
    /// `flush`).
    pub fn forget(&mut self) {
        self.keys.clear();
        self.unopenable.clear();
        self.complete = false;
        self.valid_at = None;
        self.holds_log = false;
        self.logged = 0;
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
        let refuse = |m: &str| Ok(Err(Refusal::new(crate::error_code::ErrorCode::PersonalData, m)));
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
