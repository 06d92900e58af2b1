//! Personal data in events: keyed pseudonyms for data subjects and the
//! sealed envelope that carries their fields (docs/PERSONAL_DATA.md).
//!
//! The server keeps one random key per data subject, wrapped under a key
//! derived from the master key. An event's personal fields are encrypted
//! (AES-256-GCM, random 96-bit nonce) under a content key derived with HKDF
//! from the keys of *every* subject they concern, so destroying any one of
//! those keys makes the fields unreadable: erasing a person cannot leave
//! their data readable through someone else's key. The envelope, with the
//! pseudonyms and key ids, is written into the event's attributes under
//! `personal`, so the chain commits to ciphertext, never to plaintext.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{hkdf, hmac};
use serde::{Deserialize, Serialize};

/// The attribute under which the server writes the envelope.
pub const ATTRIBUTE: &str = "personal";
/// Shown instead of fields whose reader lacks the right to see them.
pub const REDACTED: &str = "[redacted]";
/// Shown instead of fields whose subject was erased.
pub const ERASED: &str = "[erased]";
/// The envelope's algorithm name.
pub const ALGORITHM: &str = "A256GCM-HKDF";

const MAX_SUBJECTS: usize = 10_000;
const MAX_SUBJECT_ID_LEN: usize = 256;

/// Errors of sealing and opening.
#[derive(Debug, thiserror::Error)]
pub enum PersonalError {
    #[error("{0}")]
    Invalid(String),
    #[error("cannot decrypt: wrong key or altered ciphertext")]
    Decrypt,
    #[error("the system random number generator failed")]
    Random,
}

/// Personal data as a client sends it with an event.
#[derive(utoipa::ToSchema, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonalRequest {
    /// The data subjects, e.g. customer ids; stored only as keyed pseudonyms.
    #[schema(min_items = 1, max_items = 10000)]
    pub subject_ids: Vec<String>,
    /// Personal fields, sealed under the subjects' keys.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub fields: Option<serde_json::Value>,
}

// Never print subject ids or fields: requests end up in error messages.
impl std::fmt::Debug for PersonalRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonalRequest")
            .field("subject_ids", &self.subject_ids.len())
            .field("fields", &self.fields.as_ref().map(|_| REDACTED))
            .finish()
    }
}

/// Personal data of a draft: the subjects already pseudonymised, the fields
/// still in clear until the writer seals them inside its transaction.
#[derive(Clone, PartialEq, Eq)]
pub struct PersonalDraft {
    pub pseudonyms: Vec<String>,
    /// Canonical JSON of the fields, if any.
    pub fields: Option<String>,
}

// Never print the fields: drafts end up in logs and panic messages.
impl std::fmt::Debug for PersonalDraft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonalDraft")
            .field("pseudonyms", &self.pseudonyms.len())
            .field("fields", &self.fields.as_ref().map(|_| REDACTED))
            .finish()
    }
}

/// The envelope stored in `attributes.personal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Keyed pseudonyms of the data subjects, in the client's order.
    pub subjects: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<Sealed>,
}

/// Encrypted fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sealed {
    pub alg: String,
    /// The id of each subject's key, in the order of `subjects`.
    pub key_ids: Vec<String>,
    pub nonce: String,
    pub ciphertext: String,
}

impl Envelope {
    /// The envelope of an event's canonical attributes, if it has one.
    pub fn of_attributes(attributes: &str) -> Option<Self> {
        // Cheap test first: most events carry no personal data.
        if !attributes.contains("\"personal\"") {
            return None;
        }
        // Only the envelope is built; serde skips the other attributes.
        #[derive(Deserialize)]
        struct Attributes {
            personal: Option<Envelope>,
        }
        serde_json::from_str::<Attributes>(attributes).ok()?.personal
    }
}

/// Validates a request's personal part: 1 to 10,000 distinct, non-empty
/// subject ids and, optionally, an object of fields.
pub fn validate(request: &PersonalRequest) -> Result<Option<String>, PersonalError> {
    let bad = |m: String| Err(PersonalError::Invalid(format!("personal: {m}")));
    if request.subject_ids.is_empty() || request.subject_ids.len() > MAX_SUBJECTS {
        return bad(format!("subject_ids must hold 1 to {MAX_SUBJECTS} ids"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, id) in request.subject_ids.iter().enumerate() {
        if id.trim().is_empty() || id.len() > MAX_SUBJECT_ID_LEN {
            return bad(format!("subject_ids[{i}] must be 1 to {MAX_SUBJECT_ID_LEN} bytes, not blank"));
        }
        if !seen.insert(id.as_str()) {
            return bad(format!("subject_ids[{i}] is listed twice"));
        }
    }
    match &request.fields {
        None => Ok(None),
        Some(v @ serde_json::Value::Object(map)) if !map.is_empty() => Ok(Some(super::event::canonical_json(v))),
        Some(_) => bad("fields must be a non-empty JSON object".into()),
    }
}

/// The server's master key and what it derives: the key that wraps subject
/// keys at rest and the secret of the pseudonyms.
pub struct MasterKey {
    wrap: LessSafeKey,
    /// Seals secrets the server keeps on the record, such as webhook
    /// signing secrets (a key of its own, so a sealed secret can never be
    /// passed off as a wrapped subject key or the other way round).
    secrets: LessSafeKey,
    pseudonym: hmac::Key,
    rng: SystemRandom,
    nonces: std::sync::Mutex<Nonces>,
}

/// Random bytes for nonces, read from the system generator a page at a
/// time: one `getrandom` call per sealed event was a fifth of the time
/// spent sealing it. Nonces are written in clear beside the ciphertext, so
/// holding them before use gives nothing away; AES-GCM needs them unique,
/// which 96 random bits are, however they are fetched. Keys are still read
/// from the system generator directly.
struct Nonces {
    buffer: [u8; 4096],
    used: usize,
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn derive(prk: &hkdf::Prk, info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let info = [info];
    // Expanding 32 bytes from SHA-256 cannot fail.
    if let Ok(okm) = prk.expand(&info, Len(32)) {
        let _ = okm.fill(&mut out);
    }
    out
}

/// A data subject's key.
pub struct SubjectKey {
    pub key_id: String,
    pub secret: [u8; 32],
    /// The content key of fields about this subject alone, derived once:
    /// the writer seals many events with one key.
    alone: std::sync::OnceLock<[u8; 32]>,
}

impl SubjectKey {
    fn new(key_id: String, secret: [u8; 32]) -> Self {
        Self { key_id, secret, alone: std::sync::OnceLock::new() }
    }
}

// The writer holds keys between batches: one it drops (after an erasure)
// must not linger in freed memory.
impl Drop for SubjectKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
        if let Some(alone) = self.alone.get_mut() {
            zeroize::Zeroize::zeroize(alone);
        }
    }
}

impl MasterKey {
    /// The master key from its 32 bytes.
    pub fn new(bytes: &[u8; 32]) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"govledger.master.v1").extract(bytes);
        let wrap = derive(&prk, b"govledger subject-key wrapping v1");
        let pseudonym = derive(&prk, b"govledger subject pseudonyms v1");
        let secrets = derive(&prk, b"govledger sealed secrets v1");
        Self {
            wrap: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &wrap).unwrap_or_else(|_| unreachable!())),
            secrets: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &secrets).unwrap_or_else(|_| unreachable!())),
            pseudonym: hmac::Key::new(hmac::HMAC_SHA256, &pseudonym),
            rng: SystemRandom::new(),
            nonces: std::sync::Mutex::new(Nonces { buffer: [0; 4096], used: 4096 }),
        }
    }

    /// Reads a master key written as 64 hex digits or 44 base64 characters.
    pub fn parse(text: &str) -> Result<Self, PersonalError> {
        let text = text.trim();
        let bytes = hex::decode(text).ok().or_else(|| B64.decode(text).ok()).unwrap_or_default();
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| {
            PersonalError::Invalid("a master key is 32 bytes, written as 64 hex digits or in base64".into())
        })?;
        Ok(Self::new(&bytes))
    }

    /// The keyed pseudonym of a subject id: HMAC-SHA256 truncated to 128
    /// bits, in hex (collisions need about 2^64 subjects; it is stored with
    /// every event that names the subject, so its length counts).
    pub fn pseudonym(&self, subject_id: &str) -> String {
        hex::encode(&hmac::sign(&self.pseudonym, subject_id.as_bytes()).as_ref()[..16])
    }

    fn random<const N: usize>(&self) -> Result<[u8; N], PersonalError> {
        let mut out = [0u8; N];
        self.rng.fill(&mut out).map_err(|_| PersonalError::Random)?;
        Ok(out)
    }

    fn nonce(&self) -> Result<[u8; 12], PersonalError> {
        let mut nonces = self.nonces.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if nonces.used + 12 > nonces.buffer.len() {
            self.rng.fill(&mut nonces.buffer).map_err(|_| PersonalError::Random)?;
            nonces.used = 0;
        }
        let mut out = [0u8; 12];
        let at = nonces.used;
        out.copy_from_slice(&nonces.buffer[at..at + 12]);
        nonces.used += 12;
        Ok(out)
    }

    /// A new subject key and its wrapped form for the key store.
    pub fn new_subject_key(&self) -> Result<(SubjectKey, String), PersonalError> {
        let key = SubjectKey::new(hex::encode(self.random::<16>()?), self.random::<32>()?);
        let wrapped = self.wrap(&key)?;
        Ok((key, wrapped))
    }

    fn wrap(&self, key: &SubjectKey) -> Result<String, PersonalError> {
        let nonce = self.nonce()?;
        let mut buf = key.secret.to_vec();
        self.wrap
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(key.key_id.as_bytes()), &mut buf)
            .map_err(|_| PersonalError::Decrypt)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(B64.encode(out))
    }

    /// `secret` sealed for the record (AES-256-GCM, base64 of nonce and
    /// ciphertext), bound to `context` (e.g. `webhook:ID`) so that a sealed
    /// value copied to another record does not open there.
    pub fn seal_secret(&self, context: &str, secret: &[u8]) -> Result<String, PersonalError> {
        let nonce = self.nonce()?;
        let mut buf = secret.to_vec();
        self.secrets
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| PersonalError::Decrypt)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(B64.encode(out))
    }

    /// A secret sealed by [`MasterKey::seal_secret`] for `context`.
    pub fn open_secret(&self, context: &str, sealed: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, PersonalError> {
        let raw = B64.decode(sealed).map_err(|_| PersonalError::Decrypt)?;
        if raw.len() < 12 {
            return Err(PersonalError::Decrypt);
        }
        let (nonce, sealed) = raw.split_at(12);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| PersonalError::Decrypt)?;
        let mut buf = zeroize::Zeroizing::new(sealed.to_vec());
        let len = self
            .secrets
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| PersonalError::Decrypt)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }

    /// Random bytes from the system generator, for new secrets.
    pub fn random_secret(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, PersonalError> {
        Ok(zeroize::Zeroizing::new(self.random::<32>()?.to_vec()))
    }

    /// A subject key from the key store.
    pub fn unwrap(&self, key_id: &str, wrapped: &str) -> Result<SubjectKey, PersonalError> {
        let raw = B64.decode(wrapped).map_err(|_| PersonalError::Decrypt)?;
        if raw.len() < 12 {
            return Err(PersonalError::Decrypt);
        }
        let (nonce, sealed) = raw.split_at(12);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| PersonalError::Decrypt)?;
        let mut buf = sealed.to_vec();
        let plain = self
            .wrap
            .open_in_place(nonce, Aad::from(key_id.as_bytes()), &mut buf)
            .map_err(|_| PersonalError::Decrypt)?;
        let secret: [u8; 32] = plain.try_into().map_err(|_| PersonalError::Decrypt)?;
        Ok(SubjectKey::new(key_id.to_owned(), secret))
    }

    /// Seals `fields` for `subjects` (pseudonyms) under their `keys`, in
    /// the same order.
    pub fn seal(&self, subjects: &[String], keys: &[&SubjectKey], fields: &str) -> Result<Envelope, PersonalError> {
        let key_ids: Vec<String> = keys.iter().map(|k| k.key_id.clone()).collect();
        let content = content_key(keys);
        let nonce = self.nonce()?;
        let mut buf = fields.as_bytes().to_vec();
        content
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated_data(subjects, &key_ids)),
                &mut buf,
            )
            .map_err(|_| PersonalError::Decrypt)?;
        Ok(Envelope {
            subjects: subjects.to_vec(),
            sealed: Some(Sealed {
                alg: ALGORITHM.into(),
                key_ids,
                nonce: B64.encode(nonce),
                ciphertext: B64.encode(buf),
            }),
        })
    }
}

/// Opens sealed fields with the subjects' keys (in `key_ids` order).
pub fn open(envelope: &Envelope, keys: &[&SubjectKey]) -> Result<String, PersonalError> {
    let sealed = envelope.sealed.as_ref().ok_or_else(|| PersonalError::Invalid("nothing sealed".into()))?;
    if sealed.alg != ALGORITHM || keys.len() != sealed.key_ids.len() {
        return Err(PersonalError::Decrypt);
    }
    let nonce = B64.decode(&sealed.nonce).map_err(|_| PersonalError::Decrypt)?;
    let nonce = Nonce::try_assume_unique_for_key(&nonce).map_err(|_| PersonalError::Decrypt)?;
    let mut buf = B64.decode(&sealed.ciphertext).map_err(|_| PersonalError::Decrypt)?;
    let plain = content_key(keys)
        .open_in_place(nonce, Aad::from(associated_data(&envelope.subjects, &sealed.key_ids)), &mut buf)
        .map_err(|_| PersonalError::Decrypt)?;
    String::from_utf8(plain.to_vec()).map_err(|_| PersonalError::Decrypt)
}

/// Every subject's key goes into the content key, so that any one of them
/// missing makes the fields unreadable.
fn content_key(keys: &[&SubjectKey]) -> LessSafeKey {
    let key = match keys {
        [only] => zeroize::Zeroizing::new(*only.alone.get_or_init(|| content_secret(keys))),
        _ => zeroize::Zeroizing::new(content_secret(keys)),
    };
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &*key).unwrap_or_else(|_| unreachable!()))
}

fn content_secret(keys: &[&SubjectKey]) -> [u8; 32] {
    let mut material = zeroize::Zeroizing::new(Vec::with_capacity(keys.len() * 32));
    for k in keys {
        material.extend_from_slice(&k.secret);
    }
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"govledger.personal.v1").extract(&material);
    derive(&prk, b"govledger personal fields v1")
}

/// Binds the ciphertext to its envelope: moving it to other subjects or
/// keys makes it fail to open.
fn associated_data(subjects: &[String], key_ids: &[String]) -> Vec<u8> {
    let mut out = b"govledger.personal.v1\0".to_vec();
    for part in subjects.iter().chain(key_ids) {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// Writes `envelope` into canonical `attributes` under `personal`. The
/// other attributes are kept as raw, already canonical text (no re-encoding
/// of their values), and the map's order is the canonical key order.
pub fn attach(attributes: &str, envelope: &Envelope) -> Result<String, PersonalError> {
    use serde_json::value::RawValue;
    let invalid = |e: serde_json::Error| PersonalError::Invalid(e.to_string());
    let sealed = canonical_envelope(envelope).map_err(invalid)?;
    let sealed: &RawValue = serde_json::from_str(&sealed).map_err(invalid)?;
    // Borrowing every key and value spares an allocation for each; a key
    // written with escapes cannot be borrowed and takes the owned path.
    // Either way a key is written back exactly as it was read.
    if let Ok(mut map) = serde_json::from_str::<std::collections::BTreeMap<&str, &RawValue>>(attributes) {
        map.insert(ATTRIBUTE, sealed);
        return serde_json::to_string(&map).map_err(invalid);
    }
    let mut map: std::collections::BTreeMap<String, &RawValue> = serde_json::from_str(attributes).map_err(invalid)?;
    map.insert(ATTRIBUTE.into(), sealed);
    serde_json::to_string(&map).map_err(invalid)
}

/// The canonical JSON of an envelope (keys sorted at every level), written
/// directly rather than through a `Value`.
fn canonical_envelope(envelope: &Envelope) -> Result<String, serde_json::Error> {
    // Fields in canonical (sorted) order. Destructured, so that a field
    // added to the envelope fails to compile here until it is placed.
    #[derive(Serialize)]
    struct Canonical<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        sealed: Option<CanonicalSealed<'a>>,
        subjects: &'a [String],
    }
    #[derive(Serialize)]
    struct CanonicalSealed<'a> {
        alg: &'a str,
        ciphertext: &'a str,
        key_ids: &'a [String],
        nonce: &'a str,
    }
    let Envelope { subjects, sealed } = envelope;
    let sealed = sealed.as_ref().map(|Sealed { alg, key_ids, nonce, ciphertext }| CanonicalSealed {
        alg,
        ciphertext,
        key_ids,
        nonce,
    });
    serde_json::to_string(&Canonical { sealed, subjects })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterKey {
        MasterKey::new(&[7u8; 32])
    }

    #[test]
    fn sealed_fields_open_only_with_every_subjects_key() {
        let m = master();
        let (a, wrapped_a) = m.new_subject_key().unwrap();
        let (b, _) = m.new_subject_key().unwrap();
        let subjects = vec![m.pseudonym("customer-1"), m.pseudonym("customer-2")];
        let env = m.seal(&subjects, &[&a, &b], r#"{"email":"x@example.com"}"#).unwrap();
        assert_eq!(open(&env, &[&a, &b]).unwrap(), r#"{"email":"x@example.com"}"#);
        let unwrapped = m.unwrap(&a.key_id, &wrapped_a).unwrap();
        assert_eq!(open(&env, &[&unwrapped, &b]).unwrap(), r#"{"email":"x@example.com"}"#);
        // Another key in one place: fails.
        let (c, _) = m.new_subject_key().unwrap();
        assert!(open(&env, &[&a, &c]).is_err());
        // The ciphertext moved to another subject list: fails.
        let mut moved = env.clone();
        moved.subjects.reverse();
        assert!(open(&moved, &[&a, &b]).is_err());
        // One subject: the content key derived once opens what a fresh
        // derivation seals, and the other way round.
        let alone = m.seal(&subjects[..1], &[&a], r#"{"n":1}"#).unwrap();
        let fresh = m.unwrap(&a.key_id, &wrapped_a).unwrap();
        assert_eq!(open(&alone, &[&fresh]).unwrap(), r#"{"n":1}"#);
        assert_eq!(open(&m.seal(&subjects[..1], &[&fresh], "{}").unwrap(), &[&a]).unwrap(), "{}");
        assert_eq!(a.alone.get().copied(), Some(content_secret(&[&fresh])));
        // Nothing of the plaintext in the envelope.
        assert!(!serde_json::to_string(&env).unwrap().contains("example.com"));
        // Attached in canonical form: the same bytes as re-encoding the whole.
        let attributes = r#"{"a":{"b":[0.5,"x"],"z":1},"zeta":"é"}"#;
        let attached = attach(attributes, &env).unwrap();
        let mut whole: serde_json::Value = serde_json::from_str(attributes).unwrap();
        whole["personal"] = serde_json::to_value(&env).unwrap();
        assert_eq!(attached, crate::ledger::event::canonical_json(&whole));
    }

    #[test]
    fn attached_envelopes_are_what_reencoding_the_whole_gives() {
        let m = master();
        let (a, _) = m.new_subject_key().unwrap();
        let subjects = vec![m.pseudonym("customer-1")];
        let sealed = m.seal(&subjects, &[&a], r#"{"note":"x"}"#).unwrap();
        let listed = Envelope { subjects: subjects.clone(), sealed: None };
        // Escaped keys cannot be borrowed; keys sorting before and after
        // `personal`; an empty object; a client's own `personal` replaced.
        let cases = [
            r#"{}"#,
            r#"{"a\"b":1,"tab\there":[{"x":true,"y":null}],"zz":"\u0001"}"#,
            r#"{"pa":1,"personal":"mine","pf":{"q":[]},"z":-0.25}"#,
            r#"{"a":{"b":[0.5,"x"],"z":1},"zeta":"é"}"#,
        ];
        for attributes in cases {
            for env in [&sealed, &listed] {
                let mut whole: serde_json::Value = serde_json::from_str(attributes).unwrap();
                whole["personal"] = serde_json::to_value(env).unwrap();
                let expected = crate::ledger::event::canonical_json(&whole);
                assert_eq!(attach(attributes, env).unwrap(), expected, "{attributes}");
            }
        }
        assert!(attach("[1]", &listed).is_err());
    }

    #[test]
    fn nonces_never_repeat_across_refills() {
        let m = master();
        let (a, _) = m.new_subject_key().unwrap();
        let subjects = vec![m.pseudonym("customer-1")];
        let mut seen = std::collections::HashSet::new();
        // Several refills of the nonce buffer, and wrapping in between.
        for i in 0..2000 {
            let env = m.seal(&subjects, &[&a], r#"{"n":1}"#).unwrap();
            assert!(seen.insert(env.sealed.unwrap().nonce), "nonce repeated at {i}");
            if i % 100 == 0 {
                m.new_subject_key().unwrap();
            }
        }
    }

    #[test]
    fn a_sealed_secret_opens_only_with_its_master_key_and_context() {
        let master = MasterKey::new(&[7; 32]);
        let sealed = master.seal_secret("webhook:a", b"shh").unwrap();
        assert!(!sealed.contains("shh"));
        assert_eq!(master.open_secret("webhook:a", &sealed).unwrap().as_slice(), b"shh");
        assert!(master.open_secret("webhook:b", &sealed).is_err());
        assert!(MasterKey::new(&[8; 32]).open_secret("webhook:a", &sealed).is_err());
        assert_ne!(master.seal_secret("webhook:a", b"shh").unwrap(), sealed, "a fresh nonce each time");
    }

    #[test]
    fn pseudonyms_are_keyed_and_wrapped_keys_need_the_master_key() {
        let m = master();
        assert_eq!(m.pseudonym("customer-1"), master().pseudonym("customer-1"));
        assert_ne!(m.pseudonym("customer-1"), MasterKey::new(&[8u8; 32]).pseudonym("customer-1"));
        let (k, wrapped) = m.new_subject_key().unwrap();
        assert!(MasterKey::new(&[8u8; 32]).unwrap(&k.key_id, &wrapped).is_err());
        assert!(m.unwrap("another-id", &wrapped).is_err(), "the key id is bound to the wrapped key");
        assert!(MasterKey::parse(&hex::encode([1u8; 32])).is_ok());
        assert!(MasterKey::parse("short").is_err());
    }

    #[test]
    fn requests_are_validated() {
        let req = |ids: Vec<&str>, fields| PersonalRequest {
            subject_ids: ids.into_iter().map(str::to_owned).collect(),
            fields,
        };
        assert!(validate(&req(vec![], None)).is_err());
        assert!(validate(&req(vec!["a", "a"], None)).is_err());
        assert!(validate(&req(vec![" "], None)).is_err());
        assert!(validate(&req(vec!["a"], Some(serde_json::json!("text")))).is_err());
        assert_eq!(
            validate(&req(vec!["a"], Some(serde_json::json!({"b": 1, "a": 2})))).unwrap().unwrap(),
            r#"{"a":2,"b":1}"#
        );
        assert_eq!(validate(&req(vec!["a", "b"], None)).unwrap(), None);
    }
}
