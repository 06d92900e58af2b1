//! Evidence bundles: chosen events with their inclusion proofs against one
//! signed checkpoint, written to a folder that `govledger verify-bundle`
//! (or any RFC 9162 verifier) checks offline. The CLI's `export` and
//! `report --bundle` write them; the console offers the same for one event.

use std::path::{Path, PathBuf};

use super::{ProofError, Proofs};
use crate::ledger::bundle::{self, BundleContents};
use crate::ledger::checkpoint::Checkpoint;
use crate::ledger::Event;
use crate::store::checkpoints::StoredCheckpoint;
use crate::store::{events, EventFilter, StoreError};

/// Why a bundle was not written.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0} exists and is not empty")]
    NotEmpty(PathBuf),
    #[error("cannot write the bundle to {dir}: {source}")]
    Write { dir: PathBuf, source: std::io::Error },
    #[error("the stored checkpoint does not parse: {0}")]
    Checkpoint(String),
    /// Nothing to put in a bundle, or a selection that cannot hold anything.
    #[error("{0}")]
    Empty(String),
}

/// Which events go into an export: about one entity (every version when it
/// names none) and within a range of seqs, both optional.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub subject: Option<String>,
    pub from_seq: Option<u64>,
    pub to_seq: Option<u64>,
}

/// A written bundle: how many events, against which checkpoint.
#[derive(Debug, Clone)]
pub struct Written {
    pub events: usize,
    pub checkpoint: Checkpoint,
}

impl Proofs {
    /// Publishes a checkpoint of the whole ledger and writes the events of
    /// `selection` with their proofs against it into `dir` (absent or empty).
    pub fn export(&self, selection: &Selection, dir: &Path) -> Result<Written, EvidenceError> {
        refuse_non_empty(dir)?;
        let checkpoint =
            self.publish()?.ok_or_else(|| EvidenceError::Empty("the ledger is empty: nothing to export".into()))?;
        let from = selection.from_seq.unwrap_or(1).max(1);
        let to = selection.to_seq.unwrap_or(checkpoint.tree_size).min(checkpoint.tree_size);
        if from > to {
            return Err(EvidenceError::Empty("--from-seq must not be after --to-seq".into()));
        }
        let mut selected = Vec::new();
        let mut after = from - 1;
        loop {
            let filter =
                EventFilter { subject: selection.subject.clone(), after_seq: after, limit: 1000, ..Default::default() };
            let page = events::list(&mut *self.store.conn()?, &filter)?;
            let Some(last) = page.last().map(|e| e.seq) else { break };
            selected.extend(page.into_iter().filter(|e| e.seq <= to));
            if last >= to {
                break;
            }
            after = last;
        }
        if selected.is_empty() {
            return Err(EvidenceError::Empty("no events match the selection".into()));
        }
        self.write_bundle(&checkpoint, &selected, dir)
    }

    /// Writes `events` with their inclusion proofs against `checkpoint`
    /// into `dir`, which must be absent or empty.
    pub fn write_bundle(
        &self,
        checkpoint: &StoredCheckpoint,
        events: &[Event],
        dir: &Path,
    ) -> Result<Written, EvidenceError> {
        refuse_non_empty(dir)?;
        let paths =
            events.iter().map(|e| self.audit_path(e.seq, checkpoint.tree_size)).collect::<Result<Vec<_>, _>>()?;
        let statement =
            Checkpoint::from_note_unverified(&checkpoint.note).map_err(|e| EvidenceError::Checkpoint(e.to_string()))?;
        let verifier = self.verifier();
        bundle::write(
            dir,
            &BundleContents {
                checkpoint_note: &checkpoint.note,
                verifier: &verifier,
                checkpoint: &statement,
                events: events.iter().zip(paths).collect(),
            },
        )
        .map_err(|source| EvidenceError::Write { dir: dir.to_owned(), source })?;
        Ok(Written { events: events.len(), checkpoint: statement })
    }
}

fn refuse_non_empty(dir: &Path) -> Result<(), EvidenceError> {
    let occupied = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(source) => return Err(EvidenceError::Write { dir: dir.to_owned(), source }),
    };
    if occupied {
        return Err(EvidenceError::NotEmpty(dir.to_owned()));
    }
    Ok(())
}
