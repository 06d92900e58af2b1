//! Chain verification: contiguous `seq` from 1, each `prev_hash` linking to
//! the previous event's hash, each hash recomputed from the canonical
//! encoding. Fed one event at a time so that it runs in constant memory over
//! a ledger of any size.

use serde::Serialize;

use super::encoding::{hash_with, EncodingInput, Hash, GENESIS_PREV_HASH};
use super::event::Event;

/// What is wrong at the first broken place in the chain.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyFailureKind {
    /// A `seq` is missing (an event was deleted) or out of order.
    Gap,
    /// `prev_hash` does not equal the previous event's hash.
    BrokenLink,
    /// The stored hash does not match the recomputed one: the event was altered.
    HashMismatch,
    /// A stored row cannot be read as an event at all.
    CorruptRow,
    /// A checkpoint covers more events than the ledger holds: it was truncated.
    CheckpointTruncated,
    /// The ledger's tree head at a checkpoint's size differs from the signed
    /// one: history was rewritten after the checkpoint.
    CheckpointMismatch,
    /// A checkpoint's signature does not verify with the server's key.
    CheckpointSignature,
    /// A projection (entities, lineage edges, approvals, approval decisions)
    /// differs from the one the events give: a row was changed, added or
    /// removed without an event. The message names the table and key.
    ProjectionMismatch,
    /// The database file itself is damaged (SQLite's `quick_check`).
    StorageCorrupt,
}

/// The first place where the chain does not verify.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyFailure {
    pub seq: u64,
    pub kind: VerifyFailureKind,
    pub message: String,
}

/// Checks events in order; stops at the first failure.
///
/// A verifier may start in the middle of the chain (to check ranges in
/// parallel); it then takes the first event's `prev_hash` on trust and
/// reports it through [`ChainVerifier::first_prev_hash`], for the caller to
/// link to the previous range.
pub struct ChainVerifier {
    first_seq: u64,
    expected_seq: u64,
    last_hash: Option<Hash>,
    first_prev_hash: Option<Hash>,
    scratch: Vec<u8>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    /// A verifier expecting the chain to start at seq 1.
    pub fn new() -> Self {
        Self::starting_at(1, Some(GENESIS_PREV_HASH))
    }

    /// A verifier for the range starting at `seq`, whose predecessor's hash is
    /// `prev_hash` when known.
    pub fn starting_at(seq: u64, prev_hash: Option<Hash>) -> Self {
        Self {
            first_seq: seq,
            expected_seq: seq,
            last_hash: prev_hash,
            first_prev_hash: None,
            scratch: Vec::with_capacity(512),
        }
    }

    /// Checks the next event.
    pub fn push(&mut self, event: &Event) -> Result<(), VerifyFailure> {
        self.push_encoded(&EncodingInput::from(event), &event.hash)
    }

    /// Checks the next event given as its encoding fields and stored hash
    /// (the verifier's fast path reads rows straight into this).
    pub fn push_encoded<S: AsRef<str>>(
        &mut self,
        input: &EncodingInput<'_, S>,
        stored_hash: &Hash,
    ) -> Result<(), VerifyFailure> {
        let seq = input.seq;
        let prev_hash = *input.prev_hash;
        if seq != self.expected_seq {
            let message = if seq > self.expected_seq {
                // Same wording as a range that ends short, so that parallel
                // and sequential verification report identically.
                format!("seq {} is missing", self.expected_seq)
            } else {
                format!("seq {} appears after seq {}", seq, self.expected_seq - 1)
            };
            return Err(VerifyFailure { seq: self.expected_seq, kind: VerifyFailureKind::Gap, message });
        }
        let expected_prev = self.last_hash.unwrap_or(prev_hash);
        if self.expected_seq == self.first_seq {
            self.first_prev_hash = Some(prev_hash);
        }
        if prev_hash != expected_prev {
            return Err(VerifyFailure {
                seq,
                kind: VerifyFailureKind::BrokenLink,
                message: format!(
                    "prev_hash {} does not match the hash of seq {} ({})",
                    hex::encode(prev_hash),
                    seq - 1,
                    hex::encode(expected_prev)
                ),
            });
        }
        let recomputed = hash_with(input, &mut self.scratch);
        if recomputed != *stored_hash {
            return Err(VerifyFailure {
                seq,
                kind: VerifyFailureKind::HashMismatch,
                message: format!(
                    "stored hash {} but the event's contents hash to {}",
                    hex::encode(stored_hash),
                    hex::encode(recomputed)
                ),
            });
        }
        self.last_hash = Some(*stored_hash);
        self.expected_seq += 1;
        Ok(())
    }

    /// The seq of the last event verified (`first - 1` before any).
    pub fn last_verified_seq(&self) -> u64 {
        self.expected_seq - 1
    }

    /// How many events verified so far.
    pub fn verified(&self) -> u64 {
        self.expected_seq - self.first_seq
    }

    /// The hash of the last verified event, or the starting `prev_hash`.
    pub fn last_hash(&self) -> Option<Hash> {
        self.last_hash
    }

    /// The `prev_hash` the first event carried, once one was pushed.
    pub fn first_prev_hash(&self) -> Option<Hash> {
        self.first_prev_hash
    }
}
