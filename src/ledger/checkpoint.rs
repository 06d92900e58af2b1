//! Signed checkpoints: a C2SP `tlog-checkpoint` body wrapped in a C2SP
//! `signed-note`, signed with Ed25519 (ring).
//!
//! ```text
//! <origin>
//! <tree size>
//! <base64 root hash>
//!
//! — <key name> <base64(key id || signature)>
//! ```
//!
//! The key id is the first four bytes of
//! `SHA-256(key name || "\n" || 0x01 || public key)`; the signature covers
//! the body (the first three lines, each ending in `\n`). The verifier key is
//! written `<name>+<hex key id>+<base64(0x01 || public key)>`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::digest;
use ring::signature::{self, Ed25519KeyPair, KeyPair};

use super::encoding::Hash;

/// Signature algorithm byte for Ed25519 in signed-note keys.
const ALG_ED25519: u8 = 0x01;
/// The separator that starts a signature line: an em dash and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Why a checkpoint or key could not be read or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    #[error("malformed verifier key: {0}")]
    BadKey(String),
    #[error("no signature by key {0}")]
    NoSignature(String),
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
}

/// The statement a checkpoint makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The note body (what is signed).
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root))
    }

    /// Reads the statement of a signed note without checking any signature
    /// (for notes the server stored itself, when no key is at hand).
    pub fn from_note_unverified(note: &str) -> Result<Self, CheckpointError> {
        let (body, _) = note
            .split_once("\n\n")
            .ok_or_else(|| CheckpointError::Malformed("no blank line before the signatures".into()))?;
        Self::parse_body(&format!("{body}\n"))
    }

    fn parse_body(body: &str) -> Result<Self, CheckpointError> {
        let bad = |why: &str| CheckpointError::Malformed(why.to_owned());
        let mut lines = body.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty()).ok_or_else(|| bad("missing origin line"))?;
        let size_text = lines.next().ok_or_else(|| bad("missing tree size line"))?;
        if size_text.is_empty()
            || !size_text.bytes().all(|b| b.is_ascii_digit())
            || (size_text.len() > 1 && size_text.starts_with('0'))
        {
            return Err(bad("tree size must be a decimal number without leading zeros"));
        }
        let size = size_text.parse().map_err(|_| bad("tree size out of range"))?;
        let root_text = lines.next().ok_or_else(|| bad("missing root hash line"))?;
        let root_bytes = B64.decode(root_text).map_err(|_| bad("root hash is not base64"))?;
        let root = Hash::try_from(root_bytes.as_slice()).map_err(|_| bad("root hash is not 32 bytes"))?;
        if B64.encode(root) != root_text {
            return Err(bad("root hash is not in canonical base64"));
        }
        Ok(Self { origin: origin.to_owned(), size, root })
    }
}

/// An Ed25519 checkpoint signer with its key name.
pub struct NoteSigner {
    name: String,
    key: Ed25519KeyPair,
}

impl NoteSigner {
    /// A signer from a PKCS#8 Ed25519 key.
    pub fn from_pkcs8(name: &str, pkcs8: &[u8]) -> Result<Self, CheckpointError> {
        validate_key_name(name)?;
        let key = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|e| CheckpointError::BadKey(format!("not an Ed25519 PKCS#8 key: {e}")))?;
        Ok(Self { name: name.to_owned(), key })
    }

    /// The verifier for this signer's signatures.
    pub fn verifier(&self) -> NoteVerifier {
        let mut public = [0u8; 32];
        public.copy_from_slice(self.key.public_key().as_ref());
        NoteVerifier::new(&self.name, public)
    }

    /// The complete signed note for `checkpoint`.
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        let body = checkpoint.body();
        let signature = self.key.sign(body.as_bytes());
        let mut blob = key_id(&self.name, self.key.public_key().as_ref()).to_vec();
        blob.extend_from_slice(signature.as_ref());
        format!("{body}\n{SIGNATURE_PREFIX}{} {}\n", self.name, B64.encode(blob))
    }
}

/// Checks notes signed by one Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    public: [u8; 32],
    id: [u8; 4],
}

fn key_id(name: &str, public: &[u8]) -> [u8; 4] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(name.as_bytes());
    ctx.update(b"\n");
    ctx.update(&[ALG_ED25519]);
    ctx.update(public);
    let mut id = [0u8; 4];
    id.copy_from_slice(&ctx.finish().as_ref()[..4]);
    id
}

fn validate_key_name(name: &str) -> Result<(), CheckpointError> {
    if name.is_empty() || name.contains('+') || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(CheckpointError::BadKey(format!("key name {name:?} must be non-empty without spaces or `+`")));
    }
    Ok(())
}

impl NoteVerifier {
    fn new(name: &str, public: [u8; 32]) -> Self {
        Self { name: name.to_owned(), id: key_id(name, &public), public }
    }

    /// Parses `<name>+<hex key id>+<base64(0x01 || public key)>`.
    pub fn parse(vkey: &str) -> Result<Self, CheckpointError> {
        let bad = |why: &str| CheckpointError::BadKey(why.to_owned());
        let vkey = vkey.trim_end_matches('\n');
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected <name>+<key id>+<key>"));
        };
        validate_key_name(name)?;
        let key = B64.decode(key_b64).map_err(|_| bad("key is not base64"))?;
        if key.len() != 33 || key[0] != ALG_ED25519 {
            return Err(bad("only Ed25519 keys (algorithm 0x01, 32 bytes) are supported"));
        }
        let mut public = [0u8; 32];
        public.copy_from_slice(&key[1..]);
        let verifier = Self::new(name, public);
        if hex::encode(verifier.id) != id_hex {
            return Err(bad("key id does not match the key"));
        }
        Ok(verifier)
    }

    /// The key in signed-note verifier-key format.
    pub fn to_vkey(&self) -> String {
        let mut key = vec![ALG_ED25519];
        key.extend_from_slice(&self.public);
        format!("{}+{}+{}", self.name, hex::encode(self.id), B64.encode(key))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key id, hex.
    pub fn key_id_hex(&self) -> String {
        hex::encode(self.id)
    }

    /// Parses a signed note and checks this key's signature on it. Other
    /// signers' lines are allowed (and ignored), as the format specifies.
    pub fn verify(&self, note: &str) -> Result<Checkpoint, CheckpointError> {
        let bad = |why: &str| CheckpointError::Malformed(why.to_owned());
        let (body, signatures) = note.split_once("\n\n").ok_or_else(|| bad("no blank line before the signatures"))?;
        let body = format!("{body}\n");
        if body.split('\n').count() != 4 {
            return Err(bad("the body must be exactly origin, size and root hash lines"));
        }
        let checkpoint = Checkpoint::parse_body(&body)?;
        if !signatures.ends_with('\n') {
            return Err(bad("the note must end with a newline"));
        }
        let mut found = false;
        for line in signatures.strip_suffix('\n').unwrap_or(signatures).split('\n') {
            let rest = line
                .strip_prefix(SIGNATURE_PREFIX)
                .ok_or_else(|| bad("a signature line must start with an em dash"))?;
            let (name, blob_b64) =
                rest.split_once(' ').ok_or_else(|| bad("a signature line needs a key name and a signature"))?;
            let blob = B64.decode(blob_b64).map_err(|_| bad("signature is not base64"))?;
            if blob.len() < 4 {
                return Err(bad("signature too short"));
            }
            if name != self.name || blob[..4] != self.id {
                continue;
            }
            found = true;
            signature::UnparsedPublicKey::new(&signature::ED25519, &self.public)
                .verify(body.as_bytes(), &blob[4..])
                .map_err(|_| CheckpointError::BadSignature(self.name.clone()))?;
        }
        if !found {
            return Err(CheckpointError::NoSignature(self.name.clone()));
        }
        Ok(checkpoint)
    }
}

/// A new Ed25519 key as PKCS#8 bytes.
pub fn generate_pkcs8() -> Result<Vec<u8>, CheckpointError> {
    let rng = ring::rand::SystemRandom::new();
    Ed25519KeyPair::generate_pkcs8(&rng)
        .map(|doc| doc.as_ref().to_vec())
        .map_err(|_| CheckpointError::BadKey("cannot generate a key".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> NoteSigner {
        NoteSigner::from_pkcs8("govledger.test", &generate_pkcs8().unwrap()).unwrap()
    }

    #[test]
    fn signed_note_round_trips_and_verifies() {
        let s = signer();
        let cp = Checkpoint { origin: "govledger.test".into(), size: 42, root: [7; 32] };
        let note = s.sign(&cp);
        assert!(note.starts_with(
            "govledger.test\n42\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n\n\u{2014} govledger.test "
        ));
        let verifier = NoteVerifier::parse(&s.verifier().to_vkey()).unwrap();
        assert_eq!(verifier.verify(&note).unwrap(), cp);
    }

    #[test]
    fn any_changed_byte_is_rejected() {
        let s = signer();
        let note = s.sign(&Checkpoint { origin: "o".into(), size: 3, root: [1; 32] });
        let v = s.verifier();
        for i in 0..note.len() {
            let mut bytes = note.clone().into_bytes();
            bytes[i] ^= 0x01;
            if let Ok(text) = String::from_utf8(bytes) {
                assert!(v.verify(&text).is_err(), "accepted a change at byte {i}");
            }
        }
    }

    #[test]
    fn another_key_is_rejected() {
        let note = signer().sign(&Checkpoint { origin: "o".into(), size: 1, root: [0; 32] });
        assert!(matches!(
            signer().verifier().verify(&note),
            Err(CheckpointError::BadSignature(_) | CheckpointError::NoSignature(_))
        ));
    }
}
