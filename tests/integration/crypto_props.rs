//! Property tests: no input makes the stored-value parser or `open` panic, and sealed values
//! round-trip whatever their content and place.

use std::sync::Arc;

use base64::{engine::general_purpose::STANDARD, Engine};
use medvault::crypto::{
    parse_header, stored_form, FieldCrypto, FieldRef, KeyRing, RootKeys, Suite,
};
use proptest::prelude::*;

fn crypto() -> FieldCrypto {
    let ring =
        KeyRing::new(RootKeys::parse("1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap());
    FieldCrypto::new(Arc::new(ring), 64)
}

const HERE: FieldRef<'static> = FieldRef {
    table: "patients",
    column: "notes",
    row_id: "r",
    owner_id: "o",
};

fn any_suite() -> impl Strategy<Value = Suite> {
    (0..Suite::all().count()).prop_map(|i| Suite::all().nth(i).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(stored in any::<String>()) {
        let fc = crypto();
        let _ = parse_header(&stored);
        let _ = stored_form(&stored);
        let _ = fc.open(&HERE, &stored);
        let prefixed = format!("mv1:{stored}");
        let _ = parse_header(&prefixed);
        let _ = fc.open(&HERE, &prefixed);
    }

    /// Valid base64 of arbitrary bytes, often with a plausible header in front, reaches deep
    /// into the openers rather than stopping at the base64 check.
    #[test]
    fn arbitrary_binary_never_panics_or_opens(
        cipher_id in prop_oneof![0u8..=22, any::<u8>()],
        hash_id in prop_oneof![0u8..=11, any::<u8>()],
        version in prop_oneof![Just(1u32), any::<u32>()],
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let fc = crypto();
        let mut bytes = vec![1u8, cipher_id, hash_id];
        bytes.extend_from_slice(&version.to_be_bytes());
        bytes.extend_from_slice(&body);
        let stored = format!("mv1:{}", STANDARD.encode(&bytes));
        let _ = parse_header(&stored);
        // A random body never authenticates (2^-128 for AEAD, 2^-128 or better for HMAC).
        prop_assert!(fc.open(&HERE, &stored).is_err());
    }

    #[test]
    fn sealed_values_round_trip_anywhere(
        suite in any_suite(),
        plaintext in proptest::collection::vec(any::<u8>(), 0..300),
        table in ".{0,12}",
        column in ".{0,12}",
        row_id in ".{0,12}",
        owner_id in ".{0,12}",
    ) {
        let fc = crypto();
        let field = FieldRef { table: &table, column: &column, row_id: &row_id, owner_id: &owner_id };
        let stored = fc.seal(&field, &plaintext, suite).unwrap();
        let opened = fc.open(&field, &stored).unwrap();
        prop_assert_eq!(&opened.plaintext[..], &plaintext[..]);
    }
}
