//! Secret key files: created once (mode 0600), read on every start.

use std::io::Write;
use std::path::Path;

/// Reads the Ed25519 PKCS#8 key at `path`, creating it if it does not exist.
pub fn load_or_create_ed25519(path: &Path) -> Result<Vec<u8>, String> {
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let rng = ring::rand::SystemRandom::new();
            let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| format!("{}: cannot generate a key", path.display()))?
                .as_ref()
                .to_vec();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            // Written to a temporary file, then linked into place: the link
            // fails if another process (a replica starting at the same time)
            // created the key first, and then its key is the one to use.
            let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&temporary).map_err(io)?;
            file.write_all(&pkcs8).map_err(io)?;
            file.sync_all().map_err(io)?;
            let linked = std::fs::hard_link(&temporary, path);
            std::fs::remove_file(&temporary).ok();
            match linked {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "created a signing key");
                    Ok(pkcs8)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(path).map_err(io),
                Err(e) => Err(io(e)),
            }
        }
        Err(e) => Err(io(e)),
    }
}
