//! Entity references (`dataset:name@version`): no input may panic; a parsed
//! reference prints as a string that parses back to it.
#![no_main]

use govledger::ledger::EntityRef;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(entity) = EntityRef::parse(text) {
        let printed = entity.to_string();
        assert_eq!(EntityRef::parse(&printed).ok(), Some(entity), "{printed:?} does not parse back");
    }
});
