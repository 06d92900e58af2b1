//! Checkpoints as signed notes and verifier keys: no input may panic; a note
//! that verifies under the fixed key is one that key signed.
#![no_main]

use std::sync::OnceLock;

use govledger::ledger::checkpoint::{Checkpoint, NoteSigner, NoteVerifier};
use libfuzzer_sys::fuzz_target;

fn signer() -> &'static NoteSigner {
    static SIGNER: OnceLock<NoteSigner> = OnceLock::new();
    SIGNER.get_or_init(|| {
        let pkcs8 = govledger::ledger::checkpoint::generate_pkcs8().unwrap();
        NoteSigner::from_pkcs8("fuzz.example/log", &pkcs8).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Checkpoint::from_note_unverified(text);
    if let Ok(key) = NoteVerifier::parse(text) {
        assert_eq!(NoteVerifier::parse(&key.to_vkey()).ok().as_ref(), Some(&key));
    }
    if let Ok(checkpoint) = signer().verifier().verify(text) {
        // Only the signer's own notes verify; re-signing gives a note that verifies too.
        assert!(signer().verifier().verify(&signer().sign(&checkpoint)).is_ok());
    }
});
