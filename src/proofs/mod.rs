//! Proofs an auditor can check without trusting us: the Merkle index that
//! follows the ledger, inclusion and consistency proofs, and signed
//! checkpoints.
//!
//! The tree is stored as C2SP tiles (`store::tiles`), written by the writer
//! with the events that fill them; a server keeps only the right edge in
//! memory (under 8 KB a level), read from the stored tiles at start and
//! extended from the events on demand, so every replica sharing a PostgreSQL
//! database serves the same proofs and start-up reads no events' hashes.

pub mod evidence;
pub mod keys;
pub mod recovery;

use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::ledger::checkpoint::{Checkpoint, NoteSigner, NoteVerifier};
use crate::ledger::merkle;
use crate::ledger::tiles::{TileEdge, TileError, TileSource, TileTree};
use crate::ledger::{timestamp, Hash};
use crate::store::checkpoints::{self, StoredCheckpoint};
use crate::store::{events, tiles, DbConn, Store, StoreError};

type ReadTile<'a> = dyn FnMut(u32, u64) -> Result<Option<Arc<TileTree>>, StoreError> + 'a;
type StoredTiles<'e, 'r> = TileSource<'e, &'r mut ReadTile<'r>>;

/// A ledger whose stored events or tiles do not form the tree.
fn ledger_error(e: StoreError) -> ProofError {
    match e {
        StoreError::CorruptRow { seq, reason } if seq > 0 => ProofError::Ledger(format!("seq {seq} is {reason}")),
        other => ProofError::Store(other),
    }
}

/// Errors of the proof service.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    OutOfRange(String),
    #[error("checkpoint signing key: {0}")]
    Key(String),
    #[error("the ledger is not a contiguous chain: {0}")]
    Ledger(String),
}

/// A tile that cannot be read is a storage error; one missing from, or
/// outside, the tree the events make is a ledger that is not a chain.
impl From<TileError<StoreError>> for ProofError {
    fn from(e: TileError<StoreError>) -> Self {
        match e {
            TileError::Read(e) => ProofError::Store(e),
            other => ProofError::Ledger(other.to_string()),
        }
    }
}

/// An inclusion proof for one event.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct InclusionProof {
    pub seq: u64,
    pub leaf_index: u64,
    pub tree_size: u64,
    /// The event's hash (the leaf before the 0x00 leaf prefix is applied).
    pub event_hash: String,
    pub root_hash: String,
    /// RFC 9162 audit path, hex, leaf-most first.
    pub audit_path: Vec<String>,
}

/// An event's inclusion in a signed checkpoint, checked here: the note's
/// signature against this server's key and the audit path against the
/// note's root, as an auditor's own tools would.
#[derive(Debug, Clone)]
pub struct Included {
    pub proof: InclusionProof,
    pub checkpoint: StoredCheckpoint,
    /// The key that signed the checkpoint: its name and key id.
    pub key_name: String,
    pub key_id: String,
    /// The note's signature verifies with that key.
    pub signature_valid: bool,
    /// The audit path leads from the event's hash to the note's root.
    pub path_valid: bool,
}

impl Included {
    /// Both checks passed.
    pub fn verified(&self) -> bool {
        self.signature_valid && self.path_valid
    }
}

/// A consistency proof between two tree sizes.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    pub from_root: String,
    pub to_root: String,
    /// RFC 9162 consistency proof, hex.
    pub proof: Vec<String>,
}

/// The proof service for one ledger.
pub struct Proofs {
    store: Store,
    /// The right edge of the tree of tiles; the full tiles are in storage.
    edge: RwLock<TileEdge>,
    upper_tiles: UpperTiles,
    signer: NoteSigner,
    origin: String,
}

/// Full tiles above level 0, which nearly every proof reads (one per 65,536
/// events at level 1), with their subtrees hashed: kept once read, as full
/// tiles never change. Bounded: 2,048 tiles (about 32 MB with their
/// subtrees) cover 134 M events; past that it starts over.
#[derive(Default)]
struct UpperTiles(std::sync::Mutex<std::collections::HashMap<(u32, u64), Arc<TileTree>>>);

const UPPER_TILES_KEPT: usize = 2048;

impl UpperTiles {
    fn get(&self, level: u32, index: u64) -> Option<Arc<TileTree>> {
        if level == 0 {
            return None;
        }
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&(level, index)).cloned()
    }

    fn keep(&self, tile: &Arc<TileTree>) {
        if tile.level == 0 {
            return;
        }
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= UPPER_TILES_KEPT {
            kept.clear();
        }
        kept.insert((tile.level, tile.index), tile.clone());
    }
}

impl Proofs {
    /// Reads the right edge of the stored tiles (at most 255 tiles a level)
    /// and the events after the last full tile: nothing that grows with the
    /// ledger.
    pub fn new(store: Store, signer: NoteSigner, origin: String) -> Result<Self, ProofError> {
        let edge = tiles::stored_edge(&mut *store.conn()?)?;
        let proofs = Self { store, edge: RwLock::new(edge), upper_tiles: UpperTiles::default(), signer, origin };
        proofs.sync()?;
        Ok(proofs)
    }

    /// The verifier key for this server's checkpoints.
    pub fn verifier(&self) -> NoteVerifier {
        self.signer.verifier()
    }

    /// Extends the edge to the current head; returns the ledger size. The
    /// tiles the new events fill were stored with them by the writer.
    pub fn sync(&self) -> Result<u64, ProofError> {
        let size = self.store.head()?.size;
        if self.read_edge().size() >= size {
            return Ok(size);
        }
        let mut edge = self.edge.write().unwrap_or_else(|e| e.into_inner());
        if edge.size() < size {
            tiles::extend(&mut *self.store.conn()?, &mut edge, size).map_err(ledger_error)?;
        }
        Ok(size)
    }

    fn read_edge(&self) -> std::sync::RwLockReadGuard<'_, TileEdge> {
        self.edge.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes sure the edge covers `size` leaves and runs `f` on the tree,
    /// reading full tiles from storage.
    fn with_tree<T>(
        &self,
        size: u64,
        f: impl FnOnce(&mut StoredTiles<'_, '_>) -> Result<T, TileError<StoreError>>,
    ) -> Result<T, ProofError> {
        if self.read_edge().size() < size {
            let ledger_size = self.sync()?;
            if ledger_size < size {
                return Err(ProofError::OutOfRange(format!(
                    "tree size {size} is larger than the ledger ({ledger_size} events)"
                )));
            }
        }
        let edge = self.read_edge();
        let mut conn = None;
        let mut read = |level: u32, index: u64| -> Result<Option<Arc<TileTree>>, StoreError> {
            if let Some(tile) = self.upper_tiles.get(level, index) {
                return Ok(Some(tile));
            }
            let c = match &mut conn {
                Some(c) => c,
                None => conn.insert(self.store.conn()?),
            };
            let Some(tile) = tiles::read(c, level, index)? else { return Ok(None) };
            let tree = Arc::new(TileTree::new(tile));
            self.upper_tiles.keep(&tree);
            Ok(Some(tree))
        };
        let mut source = TileSource::new(&edge, &mut read as &mut ReadTile<'_>);
        Ok(f(&mut source)?)
    }

    /// The tree head over the first `size` events.
    pub fn root(&self, size: u64) -> Result<Hash, ProofError> {
        self.with_tree(size, |src| merkle::root(src, size))
    }

    /// Proof that event `seq` is in the tree of `tree_size` leaves (the
    /// current ledger size when `None`).
    pub fn inclusion(&self, seq: u64, tree_size: Option<u64>) -> Result<InclusionProof, ProofError> {
        let tree_size = match tree_size {
            Some(size) => size,
            None => self.sync()?,
        };
        if seq == 0 || seq > tree_size {
            return Err(ProofError::OutOfRange(format!("seq must be between 1 and tree_size ({tree_size})")));
        }
        let (path, root) = self.with_tree(tree_size, |src| {
            Ok((merkle::inclusion_proof(src, seq - 1, tree_size)?, merkle::root(src, tree_size)?))
        })?;
        let event_hash = events::hashes(&mut *self.store.conn()?, seq, 1)?[0];
        Ok(InclusionProof {
            seq,
            leaf_index: seq - 1,
            tree_size,
            event_hash: hex::encode(event_hash),
            root_hash: hex::encode(root),
            audit_path: path.iter().map(hex::encode).collect(),
        })
    }

    /// Proof that the tree of `to` leaves extends the tree of `from` leaves.
    pub fn consistency(&self, from: u64, to: u64) -> Result<ConsistencyProof, ProofError> {
        if from == 0 || from > to {
            return Err(ProofError::OutOfRange("need 1 <= from <= to".into()));
        }
        let (proof, from_root, to_root) = self.with_tree(to, |src| {
            Ok((merkle::consistency_proof(src, from, to)?, merkle::root(src, from)?, merkle::root(src, to)?))
        })?;
        Ok(ConsistencyProof {
            from,
            to,
            from_root: hex::encode(from_root),
            to_root: hex::encode(to_root),
            proof: proof.iter().map(hex::encode).collect(),
        })
    }

    /// Signs and stores a checkpoint of the current ledger, unless the
    /// ledger is empty or a checkpoint of this size exists already.
    pub fn publish(&self) -> Result<Option<StoredCheckpoint>, ProofError> {
        let size = self.sync()?;
        if size == 0 {
            return Ok(None);
        }
        let mut conn = self.store.conn()?;
        if let Some(existing) = checkpoints::by_size(&mut conn, size)? {
            return Ok(Some(existing));
        }
        let root = self.root(size)?;
        let note = self.signer.sign(&Checkpoint { origin: self.origin.clone(), size, root });
        let stored = StoredCheckpoint { tree_size: size, root_hash: root, note, created_at: timestamp::now() };
        Ok(Some(checkpoints::insert_or_get(&mut conn, &stored)?))
    }

    /// Proves event `seq` against the latest signed checkpoint that holds
    /// it, signing one of the current ledger first when none does yet.
    pub fn included(&self, seq: u64) -> Result<Included, ProofError> {
        let latest = checkpoints::latest(&mut *self.store.conn()?)?;
        let checkpoint = match latest.filter(|c| c.tree_size >= seq) {
            Some(c) => c,
            None => self.publish()?.ok_or_else(|| ProofError::OutOfRange("the ledger is empty".into()))?,
        };
        let proof = self.inclusion(seq, Some(checkpoint.tree_size))?;
        let verifier = self.verifier();
        let signature_valid = verifier
            .verify(&checkpoint.note)
            .is_ok_and(|c| c.size == checkpoint.tree_size && c.root == checkpoint.root_hash);
        let decode = |h: &str| -> Option<Hash> { Hash::try_from(hex::decode(h).ok()?.as_slice()).ok() };
        let path: Option<Vec<Hash>> = proof.audit_path.iter().map(|h| decode(h)).collect();
        let path_valid = match (decode(&proof.event_hash), path) {
            (Some(event_hash), Some(path)) => merkle::verify_inclusion(
                seq - 1,
                checkpoint.tree_size,
                &merkle::leaf_hash(&event_hash),
                &path,
                &checkpoint.root_hash,
            ),
            _ => false,
        };
        Ok(Included {
            proof,
            checkpoint,
            key_name: verifier.name().to_owned(),
            key_id: verifier.key_id_hex(),
            signature_valid,
            path_valid,
        })
    }

    /// The latest signed checkpoint, without signing a new one.
    pub fn latest(&self) -> Result<Option<StoredCheckpoint>, ProofError> {
        Ok(checkpoints::latest(&mut *self.store.conn()?)?)
    }

    /// The checkpoint for `size`, or the latest (publishing one for the
    /// current head if the ledger has grown since).
    pub fn checkpoint(&self, size: Option<u64>) -> Result<Option<StoredCheckpoint>, ProofError> {
        match size {
            Some(size) => Ok(checkpoints::by_size(&mut *self.store.conn()?, size)?),
            None => self.publish(),
        }
    }
}

/// Recomputes every full tile from the events, 65,536 event hashes at a
/// time (memory is that and the tree's right edge, whatever the ledger's
/// size; one connection, as a report verifying on a small pool needs), and
/// compares each with the stored one; returns the edge at `size` for the
/// checkpoint checks.
fn check_tiles(conn: &mut DbConn, size: u64) -> Result<Result<TileEdge, crate::ledger::VerifyFailure>, ProofError> {
    use crate::ledger::{VerifyFailure, VerifyFailureKind};
    let mismatch = |what: String| VerifyFailure { seq: 0, kind: VerifyFailureKind::ProjectionMismatch, message: what };
    let mut edge = TileEdge::new();
    while edge.size() < size {
        let count = (size - edge.size()).min(1 << 16);
        for hash in events::hashes(conn, edge.size() + 1, count)? {
            for tile in edge.push(&hash) {
                let found = match tiles::read(conn, tile.level, tile.index)? {
                    Some(stored) if stored == tile => continue,
                    Some(_) => "differs from the events' hashes",
                    None => "missing (govledger migrate builds it)",
                };
                return Ok(Err(mismatch(format!("merkle_tiles row {}/{}: {found}", tile.level, tile.index))));
            }
        }
    }
    // Tiles beyond the events: left by events that were removed. The head
    // is read after the tiles, so appends meanwhile (tiles commit with
    // their events) cannot look like it.
    let stored = match tiles::stored_edge(conn) {
        Ok(stored) => stored,
        Err(StoreError::DamagedTiles(reason)) => return Ok(Err(mismatch(format!("merkle_tiles: {reason}")))),
        Err(e) => return Err(e.into()),
    };
    let head = events::head(conn)?.size;
    if stored.size() > head {
        return Ok(Err(mismatch(format!(
            "merkle_tiles: tiles cover {} events but the ledger holds {head}: events were removed",
            stored.size()
        ))));
    }
    Ok(Ok(edge))
}

/// Verifies the chain and then every stored checkpoint (and `kept`, a
/// checkpoint an auditor kept) against it: each must be signed by
/// `verifier` (when given), cover no more events than the ledger holds, and
/// have the root the ledger has at that size. Only a checkpoint held by
/// someone else catches a log that was truncated and re-grown, because the
/// hash chain of the rewritten log is internally consistent.
pub fn verify_ledger<C, F>(
    connect: F,
    verifier: Option<&NoteVerifier>,
    kept: Option<&str>,
) -> Result<crate::store::ChainReport, ProofError>
where
    C: std::ops::DerefMut<Target = DbConn>,
    F: Fn() -> Result<C, StoreError> + Sync,
{
    use crate::ledger::{VerifyFailure, VerifyFailureKind};
    // The checkpoints are read before the chain's head: a server still
    // appending may store newer ones meanwhile, which this run must not take
    // for checkpoints of events that were removed.
    let mut notes: Vec<(String, String)> = checkpoints::all(&mut *connect()?)?
        .into_iter()
        .map(|cp| (format!("stored checkpoint at tree size {}", cp.tree_size), cp.note))
        .collect();
    if let Some(note) = kept {
        notes.push(("the given checkpoint".to_owned(), note.to_owned()));
    }
    if let Some(problem) = crate::store::storage_problem(&mut *connect()?)? {
        let failure = VerifyFailure {
            seq: 0,
            kind: VerifyFailureKind::StorageCorrupt,
            message: format!("the database file is damaged: {problem}"),
        };
        return Ok(crate::store::ChainReport {
            ok: false,
            verified: 0,
            size: 0,
            head_hash: None,
            checkpoints_verified: 0,
            failure: Some(failure),
        });
    }
    let mut report =
        crate::store::verify_chain_in_ranges(&connect, crate::store::cores(), crate::store::PARALLEL_VERIFY_MIN)?;
    if report.failure.is_some() {
        return Ok(report);
    }
    // The tiles are what proofs are served from: they must be the events'.
    let edge = match check_tiles(&mut *connect()?, report.size)? {
        Ok(edge) => edge,
        Err(failure) => {
            report.failure = Some(failure);
            report.ok = false;
            return Ok(report);
        }
    };
    let mut conn = connect()?;
    for (what, note) in notes {
        let parsed = match verifier {
            Some(v) => v.verify(&note),
            None => Checkpoint::from_note_unverified(&note),
        };
        let checkpoint = match parsed {
            Ok(cp) => cp,
            Err(e) => {
                report.failure = Some(VerifyFailure {
                    seq: 0,
                    kind: VerifyFailureKind::CheckpointSignature,
                    message: format!("{what}: {e}"),
                });
                break;
            }
        };
        if checkpoint.size > report.size {
            report.failure = Some(VerifyFailure {
                seq: report.size + 1,
                kind: VerifyFailureKind::CheckpointTruncated,
                message: format!(
                    "{what} covers {} events but the ledger holds {}: events were removed",
                    checkpoint.size, report.size
                ),
            });
            break;
        }
        let root = {
            let mut read =
                |level: u32, index: u64| Ok(tiles::read(&mut conn, level, index)?.map(|t| Arc::new(TileTree::new(t))));
            merkle::root(&mut TileSource::new(&edge, &mut read), checkpoint.size)?
        };
        if root != checkpoint.root {
            report.failure = Some(VerifyFailure {
                seq: checkpoint.size,
                kind: VerifyFailureKind::CheckpointMismatch,
                message: format!(
                    "{what}: the ledger's first {} events have root {} but the checkpoint signed {}: history was rewritten",
                    checkpoint.size,
                    hex::encode(root),
                    hex::encode(checkpoint.root)
                ),
            });
            break;
        }
        report.checkpoints_verified += 1;
    }
    if report.failure.is_none() {
        check_projections(&mut conn, &mut report)?;
    }
    report.ok = report.failure.is_none();
    Ok(report)
}

/// Compares the projections with the ones the events give (what the gate,
/// lineage and approvals read must be what the verified chain says).
fn check_projections(conn: &mut DbConn, report: &mut crate::store::ChainReport) -> Result<(), ProofError> {
    if let Some(m) = crate::store::projections::check(conn)? {
        report.failure = Some(crate::ledger::VerifyFailure {
            seq: 0,
            kind: crate::ledger::VerifyFailureKind::ProjectionMismatch,
            message: format!("{} row {}: {}", m.table, m.key, m.what),
        });
        report.ok = false;
    }
    Ok(())
}

impl Proofs {
    /// [`verify_ledger`] with this server's key, over the pool.
    pub fn verify(&self) -> Result<crate::store::ChainReport, ProofError> {
        verify_ledger(|| self.store.conn(), Some(&self.verifier()), None)
    }

    /// The audit path of event `seq` in the tree of `tree_size` leaves.
    pub fn audit_path(&self, seq: u64, tree_size: u64) -> Result<Vec<Hash>, ProofError> {
        if seq == 0 || seq > tree_size {
            return Err(ProofError::OutOfRange(format!("seq must be between 1 and tree_size ({tree_size})")));
        }
        self.with_tree(tree_size, |src| merkle::inclusion_proof(src, seq - 1, tree_size))
    }
}
