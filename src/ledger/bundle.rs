//! Evidence bundles: selected events, an inclusion proof for each against
//! one signed checkpoint, the checkpoint and the verifier key, in a folder
//! that verifies offline with nothing but this module.
//!
//! ```text
//! bundle.json            manifest: format, tree size, root hash, the events' seqs and hashes
//! checkpoint.txt         the signed note (C2SP tlog-checkpoint + signed-note)
//! key.pub                the verifier key (signed-note vkey format)
//! events/<seq>.json      each event as the API serves it
//! proofs/<seq>.json      its RFC 9162 inclusion proof against the checkpoint
//! ```
//!
//! Every JSON file is written in one canonical form and the verifier
//! requires exactly that form, so any changed byte in any file is caught:
//! either it changes a hash, a proof or a signature, or it breaks the form.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::checkpoint::{Checkpoint, NoteVerifier};
use super::encoding::{event_hash, Hash};
use super::event::Event;
use super::merkle;

/// The manifest's format tag.
pub const FORMAT: &str = "govledger-bundle/v1";

/// Why a bundle does not verify, naming the item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{item}: {reason}")]
pub struct BundleError {
    pub item: String,
    pub reason: String,
}

fn fail(item: impl Into<String>, reason: impl Into<String>) -> BundleError {
    BundleError { item: item.into(), reason: reason.into() }
}

/// `bundle.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub origin: String,
    pub tree_size: u64,
    pub root_hash: String,
    pub events: Vec<ManifestEntry>,
}

/// One event in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    pub seq: u64,
    pub hash: String,
}

/// `events/<seq>.json`: the API's event shape, attributes verbatim.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventFile {
    pub seq: u64,
    pub id: String,
    pub recorded_at: String,
    pub actor: String,
    pub kind: String,
    pub subject: String,
    pub project: Option<String>,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: Box<RawValue>,
    pub occurred_at: Option<String>,
    pub idempotency_key: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl EventFile {
    fn into_event(self, item: &str) -> Result<Event, BundleError> {
        let hash_of = |field: &str, text: &str| {
            strict_hash(text).ok_or_else(|| fail(item, format!("{field} is not 32 bytes of lower-case hex")))
        };
        Ok(Event {
            prev_hash: hash_of("prev_hash", &self.prev_hash)?,
            hash: hash_of("hash", &self.hash)?,
            seq: self.seq,
            id: self.id,
            recorded_at: self.recorded_at,
            actor: self.actor,
            kind: self.kind,
            subject: self.subject,
            project: self.project,
            inputs: self.inputs,
            outputs: self.outputs,
            attributes: self.attributes.get().to_owned(),
            occurred_at: self.occurred_at,
            idempotency_key: self.idempotency_key,
        })
    }
}

/// 32 bytes of lower-case hex, and nothing else: one spelling per hash, so
/// that no byte of a bundle can change without failing verification.
fn strict_hash(text: &str) -> Option<Hash> {
    let bytes = hex::decode(text).ok()?;
    let hash = Hash::try_from(bytes.as_slice()).ok()?;
    (hex::encode(hash) == text).then_some(hash)
}

/// `proofs/<seq>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofFile {
    pub seq: u64,
    pub leaf_index: u64,
    pub tree_size: u64,
    pub audit_path: Vec<String>,
}

/// What goes into a bundle.
pub struct BundleContents<'a> {
    pub checkpoint_note: &'a str,
    pub verifier: &'a NoteVerifier,
    pub checkpoint: &'a Checkpoint,
    /// Each event with its audit path against the checkpoint.
    pub events: Vec<(&'a Event, Vec<Hash>)>,
}

fn canonical<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut bytes = serde_json::to_vec(value)?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn event_file_name(seq: u64) -> String {
    format!("{seq:012}.json")
}

/// Writes a bundle into `dir` (created; must be empty if it exists).
pub fn write(dir: &Path, contents: &BundleContents<'_>) -> Result<(), std::io::Error> {
    let json_error = |e: serde_json::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    std::fs::create_dir_all(dir.join("events"))?;
    std::fs::create_dir_all(dir.join("proofs"))?;
    std::fs::write(dir.join("checkpoint.txt"), contents.checkpoint_note)?;
    std::fs::write(dir.join("key.pub"), format!("{}\n", contents.verifier.to_vkey()))?;
    let mut entries = Vec::new();
    for (event, path) in &contents.events {
        let name = event_file_name(event.seq);
        std::fs::write(
            dir.join("events").join(&name),
            canonical(&event.to_json().map_err(json_error)?).map_err(json_error)?,
        )?;
        let proof = ProofFile {
            seq: event.seq,
            leaf_index: event.seq - 1,
            tree_size: contents.checkpoint.size,
            audit_path: path.iter().map(hex::encode).collect(),
        };
        std::fs::write(dir.join("proofs").join(&name), canonical(&proof).map_err(json_error)?)?;
        entries.push(ManifestEntry { seq: event.seq, hash: hex::encode(event.hash) });
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        origin: contents.checkpoint.origin.clone(),
        tree_size: contents.checkpoint.size,
        root_hash: hex::encode(contents.checkpoint.root),
        events: entries,
    };
    std::fs::write(dir.join("bundle.json"), canonical(&manifest).map_err(json_error)?)
}

/// What a verified bundle shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleReport {
    pub events: usize,
    pub tree_size: u64,
    pub root_hash: String,
    pub key_id: String,
    /// Whether the key came from the caller (`--key`) rather than the bundle.
    pub key_pinned: bool,
}

fn read_text(dir: &Path, name: &str) -> Result<String, BundleError> {
    std::fs::read_to_string(dir.join(name)).map_err(|e| fail(name, format!("cannot read: {e}")))
}

fn parse_canonical<T: Serialize + for<'de> Deserialize<'de>>(name: &str, text: &str) -> Result<T, BundleError> {
    let value: T = serde_json::from_str(text).map_err(|e| fail(name, format!("not a valid file of its kind: {e}")))?;
    let again = canonical(&value).map_err(|e| fail(name, e.to_string()))?;
    if again != text.as_bytes() {
        return Err(fail(name, "not in canonical form (the file was edited)"));
    }
    Ok(value)
}

/// Verifies the bundle in `dir`. With `pinned_key`, the checkpoint must be
/// signed by that key (and `key.pub` must be it); without, the bundle's own
/// `key.pub` is used, which shows integrity but not who signed.
pub fn verify(dir: &Path, pinned_key: Option<&NoteVerifier>) -> Result<BundleReport, BundleError> {
    let manifest: Manifest = parse_canonical("bundle.json", &read_text(dir, "bundle.json")?)?;
    if manifest.format != FORMAT {
        return Err(fail("bundle.json", format!("unknown format {:?}", manifest.format)));
    }
    let key_text = read_text(dir, "key.pub")?;
    let bundled_key = NoteVerifier::parse(&key_text).map_err(|e| fail("key.pub", e.to_string()))?;
    if format!("{}\n", bundled_key.to_vkey()) != key_text {
        return Err(fail("key.pub", "not in canonical form (the file was edited)"));
    }
    let key = match pinned_key {
        Some(pinned) if *pinned != bundled_key => return Err(fail("key.pub", "is not the key given with --key")),
        Some(pinned) => pinned,
        None => &bundled_key,
    };
    let note = read_text(dir, "checkpoint.txt")?;
    let checkpoint = key.verify(&note).map_err(|e| fail("checkpoint.txt", e.to_string()))?;
    if checkpoint.origin != manifest.origin
        || checkpoint.size != manifest.tree_size
        || hex::encode(checkpoint.root) != manifest.root_hash
    {
        return Err(fail("bundle.json", "origin, tree_size or root_hash differ from the signed checkpoint"));
    }

    let mut expected_files = BTreeSet::new();
    let mut previous: Option<Event> = None;
    for entry in &manifest.events {
        let name = event_file_name(entry.seq);
        let event_item = format!("events/{name}");
        let proof_item = format!("proofs/{name}");
        expected_files.insert(event_item.clone());
        expected_files.insert(proof_item.clone());
        if let Some(prev) = &previous {
            if entry.seq <= prev.seq {
                return Err(fail("bundle.json", "events are not in increasing seq order"));
            }
        }
        let file: EventFile = parse_canonical(&event_item, &read_text(dir, &event_item)?)?;
        let event = file.into_event(&event_item)?;
        if event.seq != entry.seq {
            return Err(fail(&event_item, format!("holds seq {} but is listed as seq {}", event.seq, entry.seq)));
        }
        let recomputed = event_hash(&event);
        if recomputed != event.hash {
            return Err(fail(&event_item, "the event's contents do not hash to its `hash`: it was altered"));
        }
        if hex::encode(event.hash) != entry.hash {
            return Err(fail("bundle.json", format!("the hash listed for seq {} differs from the event's", entry.seq)));
        }
        if let Some(prev) = previous.as_ref().filter(|p| p.seq + 1 == event.seq) {
            if event.prev_hash != prev.hash {
                return Err(fail(&event_item, "prev_hash does not link to the previous event"));
            }
        }
        let proof: ProofFile = parse_canonical(&proof_item, &read_text(dir, &proof_item)?)?;
        let path: Vec<Hash> = proof
            .audit_path
            .iter()
            .map(|h| strict_hash(h))
            .collect::<Option<_>>()
            .ok_or_else(|| fail(&proof_item, "audit path entries must be 32 bytes of lower-case hex"))?;
        if proof.seq != event.seq || proof.leaf_index + 1 != event.seq || proof.tree_size != checkpoint.size {
            return Err(fail(&proof_item, "seq, leaf_index or tree_size do not match the event and checkpoint"));
        }
        if !merkle::verify_inclusion(
            proof.leaf_index,
            proof.tree_size,
            &merkle::leaf_hash(&event.hash),
            &path,
            &checkpoint.root,
        ) {
            return Err(fail(&proof_item, "the inclusion proof does not lead to the checkpoint's root"));
        }
        previous = Some(event);
    }
    for folder in ["events", "proofs"] {
        let entries = std::fs::read_dir(dir.join(folder)).map_err(|e| fail(folder, format!("cannot read: {e}")))?;
        for entry in entries {
            let entry = entry.map_err(|e| fail(folder, e.to_string()))?;
            let item = format!("{folder}/{}", entry.file_name().to_string_lossy());
            if !expected_files.contains(&item) {
                return Err(fail(item, "is not listed in bundle.json"));
            }
        }
    }
    Ok(BundleReport {
        events: manifest.events.len(),
        tree_size: checkpoint.size,
        root_hash: manifest.root_hash,
        key_id: key.key_id_hex(),
        key_pinned: pinned_key.is_some(),
    })
}
