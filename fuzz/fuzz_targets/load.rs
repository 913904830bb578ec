//! The agreement loader on arbitrary input: `text_of` on the raw bytes, then
//! `load` on the text (and on any UTF-8 input as given, BOM and all), and
//! every diagnostic rendered against the text as `check` prints it. Never a
//! panic; a loaded agreement comes with no error diagnostic.
#![no_main]

use costshare_core::{diag, load};
use libfuzzer_sys::fuzz_target;

fn check(text: &str) {
    let loaded = load::load(text);
    for d in &loaded.diagnostics {
        let _ = diag::render(d, "fuzz.toml", text);
    }
    if loaded.agreement.is_some() {
        assert!(
            loaded.diagnostics.iter().all(|d| !d.is_error()),
            "an agreement loaded with an error diagnostic"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = load::text_of(data) {
        check(text);
    }
    if let Ok(s) = std::str::from_utf8(data)
        && s.starts_with('\u{feff}')
    {
        check(s);
    }
});
