//! Stored values come from the database, which an attacker may have edited: nothing in them
//! may make the parser or `open` panic, and no made-up value may open.
//!
//! Run: `cargo +nightly fuzz run parse_stored_value` (from the repository root).
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use medvault::crypto::{parse_header, stored_form, FieldCrypto, FieldRef, KeyRing, RootKeys};

fn crypto() -> &'static FieldCrypto {
    static CRYPTO: OnceLock<FieldCrypto> = OnceLock::new();
    CRYPTO.get_or_init(|| {
        let keys = RootKeys::parse("1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
            .expect("the fixed fuzzing key parses");
        FieldCrypto::new(Arc::new(KeyRing::new(keys)), 1024)
    })
}

const PLACE: FieldRef<'static> = FieldRef {
    table: "patients",
    column: "notes",
    row_id: "r",
    owner_id: "o",
};

fuzz_target!(|data: &[u8]| {
    let fc = crypto();
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_header(text);
        let _ = stored_form(text);
        if let Ok(opened) = fc.open(&PLACE, text) {
            // Only the unauthenticated plain form can open from bytes the fuzzer made up.
            assert!(text.starts_with("plain:"), "a forged sealed value opened");
            drop(opened);
        }
    }
    // Raw bytes as the binary envelope, so the fuzzer need not discover base64 by itself.
    use base64::Engine as _;
    let sealed = format!(
        "mv1:{}",
        base64::engine::general_purpose::STANDARD.encode(data)
    );
    let _ = parse_header(&sealed);
    assert!(
        fc.open(&PLACE, &sealed).is_err(),
        "a forged sealed value opened"
    );
});
