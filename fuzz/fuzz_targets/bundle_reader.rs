//! The evidence-bundle reader (`govledger verify-bundle`): the input is cut
//! at `\n--8<--\n` into bundle.json, key.pub, checkpoint.txt and one event
//! and proof file, written to a folder and verified. No input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

const FILES: [&str; 5] =
    ["bundle.json", "key.pub", "checkpoint.txt", "events/000000000001.json", "proofs/000000000001.json"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("events")).unwrap();
    std::fs::create_dir(dir.path().join("proofs")).unwrap();
    for (name, part) in FILES.iter().zip(text.split("\n--8<--\n")) {
        std::fs::write(dir.path().join(name), part).unwrap();
    }
    let _ = govledger::ledger::bundle::verify(dir.path(), None);
});
