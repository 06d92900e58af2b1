//! Bringing a ledger back from a backup, and proving it came back whole.

use std::path::Path;

use super::keys::{self, SigningKeyConfig};
use super::{verify_ledger, ProofError};
use crate::store::backup::{self, Manifest};
use crate::store::{ChainReport, DbConn, StorageTarget};

/// A restored ledger and what verifying it found.
#[derive(Debug)]
pub struct Restored {
    pub manifest: Manifest,
    pub report: ChainReport,
    /// Whether the backup held the signing key, so that checkpoint
    /// signatures were checked too.
    pub signed: bool,
}

impl Restored {
    /// The restored chain verifies and holds every event the backup counted.
    pub fn whole(&self) -> bool {
        self.report.ok && self.report.verified == self.manifest.size
    }
}

/// Restores the SQLite backup in `dir` into `data_dir` (which must hold no
/// ledger), then verifies its chain and its checkpoints, with the restored
/// signing key under `origin` when the backup carried one.
pub fn restore_verified(dir: &Path, data_dir: &Path, origin: &str) -> Result<Restored, ProofError> {
    let manifest = backup::restore(dir, data_dir)?;
    let target = StorageTarget::resolve(data_dir, None)?;
    let verifier = keys::load_existing(&SigningKeyConfig::in_data_dir(data_dir, origin))?.map(|s| s.verifier());
    let report = verify_ledger(|| DbConn::establish(&target).map(Box::new), verifier.as_ref(), None)?;
    Ok(Restored { manifest, report, signed: verifier.is_some() })
}
