//! The canonical encoding of an event and its hash (docs/LEDGER_FORMAT.md).
//!
//! Every variable-length field is length-prefixed and optional fields carry a
//! presence byte, so the encoding is injective: two different events never
//! share an encoding, whatever their field contents.

use ring::digest;

use super::event::Event;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// Domain separation tag: an event hash can never be confused with any other
/// SHA-256 the system computes (Merkle nodes, signatures' payloads).
pub const EVENT_DOMAIN: &[u8] = b"govledger.event.v1\0";

/// The `prev_hash` of the first event.
pub const GENESIS_PREV_HASH: Hash = [0u8; 32];

/// The fields that enter the hash, borrowed, so the writer can hash an event
/// before it owns one.
pub struct EncodingInput<'a, S: AsRef<str> = String> {
    pub seq: u64,
    pub prev_hash: &'a Hash,
    pub id: &'a str,
    pub recorded_at: &'a str,
    pub actor: &'a str,
    pub kind: &'a str,
    pub subject: &'a str,
    pub project: Option<&'a str>,
    pub inputs: &'a [S],
    pub outputs: &'a [S],
    pub attributes: &'a str,
    pub occurred_at: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
}

impl<'a> From<&'a Event> for EncodingInput<'a> {
    fn from(e: &'a Event) -> Self {
        Self {
            seq: e.seq,
            prev_hash: &e.prev_hash,
            id: &e.id,
            recorded_at: &e.recorded_at,
            actor: &e.actor,
            kind: &e.kind,
            subject: &e.subject,
            project: e.project.as_deref(),
            inputs: &e.inputs,
            outputs: &e.outputs,
            attributes: &e.attributes,
            occurred_at: e.occurred_at.as_deref(),
            idempotency_key: e.idempotency_key.as_deref(),
        }
    }
}

/// Appends the canonical encoding of `e` to `out`.
pub fn encode_into<S: AsRef<str>>(e: &EncodingInput<'_, S>, out: &mut Vec<u8>) {
    out.extend_from_slice(EVENT_DOMAIN);
    out.extend_from_slice(&e.seq.to_be_bytes());
    out.extend_from_slice(e.prev_hash);
    for field in [e.id, e.recorded_at, e.actor, e.kind, e.subject] {
        put_str(out, field);
    }
    put_opt(out, e.project);
    put_list(out, e.inputs);
    put_list(out, e.outputs);
    put_str(out, e.attributes);
    put_opt(out, e.occurred_at);
    put_opt(out, e.idempotency_key);
}

/// The canonical encoding of a stored event.
pub fn canonical_encoding(event: &Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    encode_into(&EncodingInput::from(event), &mut out);
    out
}

/// SHA-256 over the canonical encoding, reusing `scratch` between calls.
pub fn hash_with<S: AsRef<str>>(e: &EncodingInput<'_, S>, scratch: &mut Vec<u8>) -> Hash {
    scratch.clear();
    encode_into(e, scratch);
    let digest = digest::digest(&digest::SHA256, scratch);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest.as_ref());
    hash
}

/// The hash a stored event must carry.
pub fn event_hash(event: &Event) -> Hash {
    hash_with(&EncodingInput::from(event), &mut Vec::with_capacity(256))
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Fields are bounded far below 4 GiB by the request size limit.
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

fn put_list<S: AsRef<str>>(out: &mut Vec<u8>, items: &[S]) {
    let count = u32::try_from(items.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_be_bytes());
    for item in items {
        put_str(out, item.as_ref());
    }
}

/// Decodes a canonical encoding back into an event (with `hash` recomputed).
/// The inverse of [`canonical_encoding`]; used by tests and fuzzing to show
/// that the encoding loses nothing.
pub fn decode(bytes: &[u8]) -> Option<Event> {
    let mut r = Reader { bytes };
    r.expect(EVENT_DOMAIN)?;
    let seq = u64::from_be_bytes(r.take(8)?.try_into().ok()?);
    let prev_hash: Hash = r.take(32)?.try_into().ok()?;
    let id = r.string()?;
    let recorded_at = r.string()?;
    let actor = r.string()?;
    let kind = r.string()?;
    let subject = r.string()?;
    let project = r.opt()?;
    let inputs = r.list()?;
    let outputs = r.list()?;
    let attributes = r.string()?;
    let occurred_at = r.opt()?;
    let idempotency_key = r.opt()?;
    if !r.bytes.is_empty() {
        return None;
    }
    let mut event = Event {
        seq,
        id,
        recorded_at,
        actor,
        kind,
        subject,
        project,
        inputs,
        outputs,
        attributes,
        occurred_at,
        idempotency_key,
        prev_hash,
        hash: [0; 32],
    };
    event.hash = event_hash(&event);
    Some(event)
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }
    fn expect(&mut self, prefix: &[u8]) -> Option<()> {
        (self.take(prefix.len())? == prefix).then_some(())
    }
    fn len(&mut self) -> Option<usize> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?) as usize)
    }
    fn string(&mut self) -> Option<String> {
        let n = self.len()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn opt(&mut self) -> Option<Option<String>> {
        match self.take(1)?[0] {
            0 => Some(None),
            1 => Some(Some(self.string()?)),
            _ => None,
        }
    }
    fn list(&mut self) -> Option<Vec<String>> {
        let n = self.len()?;
        if n > self.bytes.len() / 4 {
            return None;
        }
        (0..n).map(|_| self.string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::ChainVerifier;

    fn vectors() -> Vec<(Event, String)> {
        let file: serde_json::Value =
            serde_json::from_str(include_str!("../../docs/ledger-test-vectors.json")).unwrap();
        file["vectors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let e = &v["event"];
                let text = |k: &str| e[k].as_str().map(str::to_owned);
                let list = |k: &str| e[k].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect();
                let hash_of = |s: &str| Hash::try_from(hex::decode(s).unwrap().as_slice()).unwrap();
                let event = Event {
                    seq: e["seq"].as_u64().unwrap(),
                    id: text("id").unwrap(),
                    recorded_at: text("recorded_at").unwrap(),
                    actor: text("actor").unwrap(),
                    kind: text("kind").unwrap(),
                    subject: text("subject").unwrap(),
                    project: text("project"),
                    inputs: list("inputs"),
                    outputs: list("outputs"),
                    attributes: text("attributes_canonical").unwrap(),
                    occurred_at: text("occurred_at"),
                    idempotency_key: text("idempotency_key"),
                    prev_hash: hash_of(e["prev_hash"].as_str().unwrap()),
                    hash: hash_of(v["hash"].as_str().unwrap()),
                };
                (event, v["encoding_hex"].as_str().unwrap().to_owned())
            })
            .collect()
    }

    #[test]
    fn published_test_vectors_match() {
        let vectors = vectors();
        assert_eq!(vectors.len(), 3);
        let mut verifier = ChainVerifier::new();
        for (event, encoding_hex) in &vectors {
            assert_eq!(hex::encode(canonical_encoding(event)), *encoding_hex, "seq {}", event.seq);
            assert_eq!(event_hash(event), event.hash, "seq {}", event.seq);
            verifier.push(event).unwrap();
        }
    }

    #[test]
    fn decoding_an_encoding_gives_the_event_back() {
        for (event, _) in vectors() {
            assert_eq!(decode(&canonical_encoding(&event)), Some(event));
        }
    }

    #[test]
    fn optional_absent_and_present_encode_differently() {
        let (mut event, _) = vectors().remove(0);
        let absent = canonical_encoding(&event);
        event.project = Some(String::new());
        assert_ne!(absent, canonical_encoding(&event));
        // Moving a byte between adjacent fields changes the encoding too.
        let (mut a, _) = vectors().remove(0);
        let (mut b, _) = vectors().remove(0);
        a.actor = "ab".into();
        a.kind = "c.d".into();
        b.actor = "a".into();
        b.kind = "bc.d".into();
        assert_ne!(canonical_encoding(&a), canonical_encoding(&b));
    }
}

/// Properties of the encoding over generated events (proptest): it loses
/// nothing, so it is injective, and it has one form per event.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn text() -> impl Strategy<Value = String> {
        // Empty strings, separators and multi-byte characters are where
        // ambiguous encodings would show.
        prop_oneof![Just(String::new()), "[a-z:@/]{0,6}", "\\PC{0,12}", Just("\u{0}\u{1}".to_owned())]
    }

    fn event() -> impl Strategy<Value = Event> {
        (
            (any::<u64>(), any::<[u8; 32]>(), text(), text(), text(), text(), text()),
            (
                proptest::option::of(text()),
                proptest::collection::vec(text(), 0..4),
                proptest::collection::vec(text(), 0..4),
                text(),
                proptest::option::of(text()),
                proptest::option::of(text()),
            ),
        )
            .prop_map(
                |(
                    (seq, prev_hash, id, recorded_at, actor, kind, subject),
                    (project, inputs, outputs, attributes, occurred_at, idempotency_key),
                )| {
                    let mut e = Event {
                        seq,
                        id,
                        recorded_at,
                        actor,
                        kind,
                        subject,
                        project,
                        inputs,
                        outputs,
                        attributes,
                        occurred_at,
                        idempotency_key,
                        prev_hash,
                        hash: [0; 32],
                    };
                    e.hash = event_hash(&e);
                    e
                },
            )
    }

    /// A near neighbour of `e`: a character moved across a field boundary,
    /// an absent field made empty, an input moved to the outputs.
    fn neighbour(e: &Event, how: u8) -> Event {
        let mut n = e.clone();
        match how % 5 {
            0 => {
                let c = n.kind.pop().unwrap_or('x');
                n.subject.insert(0, c);
            }
            1 => n.project = if n.project.is_some() { None } else { Some(String::new()) },
            2 => match n.inputs.pop() {
                Some(i) => n.outputs.insert(0, i),
                None => n.inputs.push(String::new()),
            },
            3 => n.occurred_at = if n.occurred_at.is_some() { n.idempotency_key.take() } else { Some(String::new()) },
            _ => n.attributes.push(' '),
        }
        n.hash = event_hash(&n);
        n
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn decoding_an_encoding_gives_the_event_back(e in event()) {
            prop_assert_eq!(decode(&canonical_encoding(&e)), Some(e));
        }

        #[test]
        fn distinct_events_never_share_an_encoding_or_a_hash(e in event(), how in any::<u8>()) {
            let n = neighbour(&e, how);
            if n != e {
                prop_assert_ne!(canonical_encoding(&n), canonical_encoding(&e));
                prop_assert_ne!(n.hash, e.hash);
            }
        }

        #[test]
        fn any_bytes_that_decode_are_the_one_encoding_of_their_event(bytes in proptest::collection::vec(any::<u8>(), 0..200), e in event()) {
            // Random bytes, and a real encoding with random bytes appended.
            let mut extended = canonical_encoding(&e);
            extended.extend_from_slice(&bytes);
            for candidate in [bytes.clone(), extended] {
                if let Some(decoded) = decode(&candidate) {
                    prop_assert_eq!(canonical_encoding(&decoded), candidate);
                }
            }
        }
    }
}
