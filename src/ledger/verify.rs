//! Chain verification: contiguous `seq` from 1, each `prev_hash` linking to
//! the previous event's hash, each hash recomputed from the canonical
//! encoding. Fed one event at a time so that it runs in constant memory over
//! a ledger of any size.

use serde::Serialize;

use super::encoding::{hash_with, EncodingInput, Hash, GENESIS_PREV_HASH};
use super::event::Event;

/// What is wrong at the first broken place in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
}

/// The first place where the chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyFailure {
    pub seq: u64,
    pub kind: VerifyFailureKind,
    pub message: String,
}

/// Checks events in order; stops at the first failure.
pub struct ChainVerifier {
    expected_seq: u64,
    last_hash: Hash,
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
        Self {
            expected_seq: 1,
            last_hash: GENESIS_PREV_HASH,
            scratch: Vec::with_capacity(512),
        }
    }

    /// Checks the next event.
    pub fn push(&mut self, event: &Event) -> Result<(), VerifyFailure> {
        if event.seq != self.expected_seq {
            let message = if event.seq > self.expected_seq {
                format!(
                    "seq {} is missing: the next stored event is seq {}",
                    self.expected_seq, event.seq
                )
            } else {
                format!(
                    "seq {} appears after seq {}",
                    event.seq,
                    self.expected_seq - 1
                )
            };
            return Err(VerifyFailure {
                seq: self.expected_seq,
                kind: VerifyFailureKind::Gap,
                message,
            });
        }
        if event.prev_hash != self.last_hash {
            return Err(VerifyFailure {
                seq: event.seq,
                kind: VerifyFailureKind::BrokenLink,
                message: format!(
                    "prev_hash {} does not match the hash of seq {} ({})",
                    hex::encode(event.prev_hash),
                    event.seq - 1,
                    hex::encode(self.last_hash)
                ),
            });
        }
        let recomputed = hash_with(&EncodingInput::from(event), &mut self.scratch);
        if recomputed != event.hash {
            return Err(VerifyFailure {
                seq: event.seq,
                kind: VerifyFailureKind::HashMismatch,
                message: format!(
                    "stored hash {} but the event's contents hash to {}",
                    hex::encode(event.hash),
                    hex::encode(recomputed)
                ),
            });
        }
        self.last_hash = event.hash;
        self.expected_seq += 1;
        Ok(())
    }

    /// How many events verified so far.
    pub fn verified(&self) -> u64 {
        self.expected_seq - 1
    }

    /// The hash of the last verified event (zeros before the first).
    pub fn last_hash(&self) -> Hash {
        self.last_hash
    }
}
