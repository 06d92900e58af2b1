//! The checkpoint signing key: created at first start in the data directory
//! (mode 0600), or given by path so that replicas share one key.

use std::path::{Path, PathBuf};

use crate::ledger::checkpoint::NoteSigner;

use super::ProofError;

/// The key file's name inside the data directory.
pub const SIGNING_KEY_FILE: &str = "checkpoint-signing.key";

/// Where the signing key is, and the name it signs as.
#[derive(Debug, Clone)]
pub struct SigningKeyConfig {
    /// A PKCS#8 Ed25519 key file. Created if missing.
    pub path: PathBuf,
    /// The checkpoint origin, also used as the key name.
    pub origin: String,
}

impl SigningKeyConfig {
    /// The default: `DATA_DIR/checkpoint-signing.key`.
    pub fn in_data_dir(data_dir: &Path, origin: &str) -> Self {
        Self { path: data_dir.join(SIGNING_KEY_FILE), origin: origin.to_owned() }
    }
}

/// Loads the key, creating it (readable by its owner only) if it does not exist.
pub fn load_or_create(config: &SigningKeyConfig) -> Result<NoteSigner, ProofError> {
    let pkcs8 = crate::keyfile::load_or_create_ed25519(&config.path).map_err(ProofError::Key)?;
    NoteSigner::from_pkcs8(&config.origin, &pkcs8)
        .map_err(|e| ProofError::Key(format!("{}: {e}", config.path.display())))
}

/// Loads an existing key without creating one.
pub fn load_existing(config: &SigningKeyConfig) -> Result<Option<NoteSigner>, ProofError> {
    if !config.path.exists() {
        return Ok(None);
    }
    load_or_create(config).map(Some)
}
