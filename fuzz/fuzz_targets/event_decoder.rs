//! The canonical event decoder, and the JSON append body as the HTTP
//! handler reads it: no input may panic; whatever decodes re-encodes to
//! the same bytes.
#![no_main]

use govledger::ledger::encoding::{canonical_encoding, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(event) = decode(data) {
        assert_eq!(canonical_encoding(&event), data, "two encodings of one event");
    }
    if let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok((drafts, _)) = govledger::http::events::parse_append_body(body, 1000, None) {
            assert!(!drafts.is_empty());
        }
    }
});
