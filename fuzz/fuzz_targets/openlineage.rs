//! OpenLineage run events as `POST /api/v1/lineage` reads them: no input may
//! panic, and what it turns into is an event request the ledger validates.
#![no_main]

use govledger::ledger::EventDraft;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    if let Ok(request) = govledger::governance::openlineage::to_event(&value, Some("fuzz")) {
        let _ = EventDraft::from_request(request);
    }
});
