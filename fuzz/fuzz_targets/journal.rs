//! The journal entry decoder on arbitrary bytes (what a damaged or hostile
//! ledger database could hold). Never a panic; an entry that decodes writes
//! back to bytes that decode to the same entry.
#![no_main]

use costshare_store::journal;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = journal::decode(data) {
        let bytes = journal::canonical(&entry);
        let again = journal::decode(&bytes).expect("canonical bytes decode");
        assert_eq!(again, entry);
        assert_eq!(journal::canonical(&again), bytes);
    }
});
