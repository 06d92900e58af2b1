//! The ledger core: the event model, its canonical encoding and hash, and
//! chain verification. Plain Rust over bytes: no web framework and no
//! database, so that the server and any offline verifier share one definition.

pub mod actor;
pub mod bundle;
pub mod checkpoint;
pub mod encoding;
pub mod entity;
pub mod event;
pub mod kind;
pub mod merkle;
pub mod personal;
pub mod tiles;
pub mod timestamp;
pub mod verify;

pub use encoding::{canonical_encoding, event_hash, Hash, GENESIS_PREV_HASH};
pub use entity::EntityRef;
pub use event::{Event, EventDraft, EventKind, EventRequest, ValidationError};
pub use kind::Kind;
pub use verify::{ChainVerifier, VerifyFailure, VerifyFailureKind};
