//! Field encryption through the public face: round trips for every suite, and every way of
//! tampering with a stored value refused for every suite.

use std::sync::Arc;

use base64::{engine::general_purpose::STANDARD, Engine};
use medvault::crypto::{
    parse_header, stored_form, Cipher, FieldCrypto, FieldRef, HashAlg, IntegrityError, KeyRing,
    RootKeys, StoredForm, Suite, DEFAULT_KEY_CACHE_CAPACITY,
};

const KEY_1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const KEY_2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

fn crypto_with(provider_text: &str) -> FieldCrypto {
    let ring = KeyRing::new(RootKeys::parse(provider_text).unwrap());
    FieldCrypto::new(Arc::new(ring), DEFAULT_KEY_CACHE_CAPACITY)
}

fn crypto() -> FieldCrypto {
    crypto_with(&format!("1:{KEY_1}"))
}

const HERE: FieldRef<'static> = FieldRef {
    table: "patients",
    column: "diagnosis",
    row_id: "row-1",
    owner_id: "patient-1",
};

fn binary(stored: &str) -> Vec<u8> {
    STANDARD
        .decode(stored.strip_prefix("mv1:").unwrap())
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    format!("mv1:{}", STANDARD.encode(bytes))
}

#[test]
fn every_suite_round_trips() {
    let fc = crypto();
    for suite in Suite::all() {
        for plaintext in [
            &b""[..],
            b"x",
            b"exactly sixteen!",
            b"Hypertension, stage 2 \xe2\x9c\x93",
        ] {
            let stored = fc.seal(&HERE, plaintext, suite).unwrap();
            assert!(stored.starts_with("mv1:"));
            let opened = fc.open(&HERE, &stored).unwrap();
            assert_eq!(&opened.plaintext[..], plaintext, "{suite}");
            assert_eq!(
                opened.form,
                StoredForm::Sealed {
                    suite,
                    key_version: 1
                }
            );
            let header = parse_header(&stored).unwrap();
            assert_eq!(
                (header.format, header.suite, header.key_version),
                (1, suite, 1)
            );
        }
    }
}

#[test]
fn large_values_round_trip() {
    let fc = crypto();
    let mebibyte: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    for cipher in [
        Cipher::Aes256Gcm,
        Cipher::XChaCha20Poly1305,
        Cipher::Aes256Cbc,
        Cipher::TripleDesEde3Cbc,
        Cipher::Rc4Drop3072,
    ] {
        let suite = Suite::new(cipher, HashAlg::Sha512);
        let stored = fc.seal(&HERE, &mebibyte, suite).unwrap();
        assert_eq!(
            &fc.open(&HERE, &stored).unwrap().plaintext[..],
            &mebibyte[..]
        );
    }
}

#[test]
fn every_write_uses_a_fresh_nonce_or_salt() {
    let fc = crypto();
    for suite in Suite::all().filter(|s| s.hash == HashAlg::Sha256) {
        let a = fc.seal(&HERE, b"same", suite).unwrap();
        let b = fc.seal(&HERE, b"same", suite).unwrap();
        assert_ne!(a, b, "{suite}");
    }
}

#[test]
fn plain_values_open_as_plain_and_can_be_refused() {
    let fc = crypto();
    let stored = FieldCrypto::seal_plain("public note");
    assert_eq!(stored, "plain:public note");
    let opened = fc.open(&HERE, &stored).unwrap();
    assert_eq!(&opened.plaintext[..], b"public note");
    assert_eq!(opened.form, StoredForm::Plain);
    assert_eq!(
        opened.require_sealed().err(),
        Some(IntegrityError::UnexpectedPlain)
    );
    let sealed = fc.seal(&HERE, b"x", Suite::DEFAULT).unwrap();
    assert!(fc.open(&HERE, &sealed).unwrap().require_sealed().is_ok());
}

/// Asserts that `stored` does not open at `field`, whatever the reason.
fn refused(fc: &FieldCrypto, field: &FieldRef<'_>, stored: &str, what: &str) {
    if let Ok(opened) = fc.open(field, stored) {
        panic!(
            "{what}: opened {:?} from {stored}",
            String::from_utf8_lossy(&opened.plaintext)
        );
    }
}

#[test]
fn every_bit_flip_anywhere_is_refused_for_every_suite() {
    let fc = crypto();
    for suite in Suite::all() {
        let stored = fc.seal(&HERE, b"blood type AB-", suite).unwrap();
        let bytes = binary(&stored);
        // Header, nonce or salt, body, tag or MAC: every bit of every byte.
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[at] ^= 1 << bit;
                refused(&fc, &HERE, &text(&bad), &format!("{suite} flip {at}.{bit}"));
            }
        }
    }
}

#[test]
fn truncations_and_extensions_are_refused_for_every_suite() {
    let fc = crypto();
    for suite in Suite::all() {
        let stored = fc.seal(&HERE, b"allergic to penicillin", suite).unwrap();
        let bytes = binary(&stored);
        for len in 0..bytes.len() {
            refused(
                &fc,
                &HERE,
                &text(&bytes[..len]),
                &format!("{suite} cut to {len}"),
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        refused(&fc, &HERE, &text(&longer), &format!("{suite} extended"));
        // Cutting the text itself (not the bytes) mostly breaks the base64.
        for len in [0, 3, 4, 5, 10, stored.len() - 4, stored.len() - 1] {
            refused(
                &fc,
                &HERE,
                &stored[..len],
                &format!("{suite} text cut to {len}"),
            );
        }
    }
}

#[test]
fn values_moved_to_another_place_are_refused_for_every_suite() {
    let fc = crypto();
    let elsewhere = [
        FieldRef {
            row_id: "row-2",
            ..HERE
        },
        FieldRef {
            column: "notes",
            ..HERE
        },
        FieldRef {
            owner_id: "patient-2",
            ..HERE
        },
        FieldRef {
            table: "visits",
            ..HERE
        },
        // Same bytes, split differently between the parts: length prefixes tell them apart.
        FieldRef {
            row_id: "row-1p",
            owner_id: "atient-1",
            ..HERE
        },
    ];
    for suite in Suite::all() {
        let stored = fc.seal(&HERE, b"HIV negative", suite).unwrap();
        for place in &elsewhere {
            refused(&fc, place, &stored, &format!("{suite} moved to {place:?}"));
        }
        assert!(fc.open(&HERE, &stored).is_ok());
    }
}

#[test]
fn relabelling_suite_or_key_version_is_refused_for_every_suite() {
    let fc = crypto_with(&format!("1:{KEY_1}\n2:{KEY_2}"));
    for suite in Suite::all() {
        let stored = fc.seal(&HERE, b"diabetes type 1", suite).unwrap();
        let bytes = binary(&stored);
        for other in Suite::all().filter(|s| *s != suite) {
            let mut bad = bytes.clone();
            bad[1] = other.cipher.id();
            bad[2] = other.hash.id();
            refused(
                &fc,
                &HERE,
                &text(&bad),
                &format!("{suite} relabelled {other}"),
            );
        }
        let mut bad = bytes.clone();
        bad[3..7].copy_from_slice(&1u32.to_be_bytes());
        refused(
            &fc,
            &HERE,
            &text(&bad),
            &format!("{suite} as key version 1"),
        );
    }
}

#[test]
fn unknown_format_version_and_garbage_are_refused() {
    let fc = crypto();
    let mut bytes = binary(&fc.seal(&HERE, b"x", Suite::DEFAULT).unwrap());
    bytes[0] = 2;
    assert_eq!(
        fc.open(&HERE, &text(&bytes)).err(),
        Some(IntegrityError::UnknownFormat(2))
    );
    bytes[0] = 0;
    assert_eq!(
        parse_header(&text(&bytes)).err(),
        Some(IntegrityError::UnknownFormat(0))
    );
    for garbage in [
        "",
        "mv1:",
        "mv1:!!!!",
        "mv1:AAAA",
        "mv1: AQEE",
        "mv1:AQEEAAAAAQ",
        "mv2:AQEEAAAAAQ==",
        "MV1:AQEEAAAAAQ==",
        "plain",
        "mv1:AQEEAAAAAQ==\n",
        "mv1:\u{e9}\u{e9}\u{e9}\u{e9}",
    ] {
        refused(&fc, &HERE, garbage, &format!("garbage {garbage:?}"));
    }
    assert_eq!(
        fc.open(&HERE, "mv1:!!!!").err(),
        Some(IntegrityError::BadEncoding)
    );
    assert_eq!(
        fc.open(&HERE, "secret").err(),
        Some(IntegrityError::UnknownForm)
    );
}

#[test]
fn errors_say_integrity_and_reveal_no_plaintext() {
    let fc = crypto();
    let mut bytes = binary(&fc.seal(&HERE, b"SECRET-DIAGNOSIS", Suite::DEFAULT).unwrap());
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let err = fc.open(&HERE, &text(&bytes)).err().unwrap();
    assert_eq!(err, IntegrityError::Forged);
    let message = err.to_string();
    assert!(message.starts_with("integrity error"));
    assert!(!message.contains("SECRET"));
}

#[test]
fn root_key_rotation_keeps_old_values_readable() {
    let old = crypto_with(&format!("1:{KEY_1}"));
    let rotated = crypto_with(&format!("1:{KEY_1},2:{KEY_2}"));
    let only_new = crypto_with(&format!("2:{KEY_2}"));
    let stored_v1 = old.seal(&HERE, b"x", Suite::DEFAULT).unwrap();
    let opened = rotated.open(&HERE, &stored_v1).unwrap();
    assert!(rotated.is_stale(opened.form, Some(Suite::DEFAULT)));
    assert!(!old.is_stale(opened.form, Some(Suite::DEFAULT)));
    let stored_v2 = rotated.seal(&HERE, b"x", Suite::DEFAULT).unwrap();
    assert_eq!(parse_header(&stored_v2).unwrap().key_version, 2);
    assert_eq!(
        only_new.open(&HERE, &stored_v1).err(),
        Some(IntegrityError::UnknownKeyVersion(1))
    );
    assert!(only_new.open(&HERE, &stored_v2).is_ok());
    assert!(rotated.is_stale(StoredForm::Plain, Some(Suite::DEFAULT)));
    assert!(!rotated.is_stale(StoredForm::Plain, None));
    assert_eq!(
        stored_form(&stored_v2),
        Ok(StoredForm::Sealed {
            suite: Suite::DEFAULT,
            key_version: 2
        })
    );
}

#[test]
fn another_root_key_cannot_open() {
    let a = crypto_with(KEY_1);
    let b = crypto_with(KEY_2);
    for suite in Suite::all() {
        let stored = a.seal(&HERE, b"x", suite).unwrap();
        assert_eq!(b.open(&HERE, &stored).err(), Some(IntegrityError::Forged));
    }
}

#[test]
fn caching_does_not_change_results() {
    let ring = Arc::new(KeyRing::new(RootKeys::parse(KEY_1).unwrap()));
    let uncached = FieldCrypto::new(ring.clone(), 0);
    let tiny = FieldCrypto::new(ring, 2);
    for row in 0..10 {
        let row_id = format!("row-{row}");
        let field = FieldRef {
            row_id: &row_id,
            ..HERE
        };
        for suite in [
            Suite::DEFAULT,
            Suite::new(Cipher::BlowfishCbc, HashAlg::Sha3_512),
        ] {
            let stored = tiny.seal(&field, b"v", suite).unwrap();
            assert_eq!(&uncached.open(&field, &stored).unwrap().plaintext[..], b"v");
            assert_eq!(&tiny.open(&field, &stored).unwrap().plaintext[..], b"v");
        }
    }
    tiny.clear_cache();
    let stored = uncached.seal(&HERE, b"w", Suite::DEFAULT).unwrap();
    assert_eq!(&tiny.open(&HERE, &stored).unwrap().plaintext[..], b"w");
}

#[test]
fn blind_indexes_are_keyed_per_column_and_truncated() {
    let fc = crypto();
    let a = fc
        .blind_index(
            "patients",
            "national_id",
            HashAlg::Sha256,
            64,
            b"780101-1234",
        )
        .expect("index");
    assert_eq!(a.len(), 16);
    assert!(a
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(
        Ok(a.clone()),
        fc.blind_index(
            "patients",
            "national_id",
            HashAlg::Sha256,
            64,
            b"780101-1234"
        )
    );
    for other in [
        fc.blind_index(
            "patients",
            "national_id",
            HashAlg::Sha256,
            64,
            b"780101-1235",
        ),
        fc.blind_index("patients", "phone", HashAlg::Sha256, 64, b"780101-1234"),
        fc.blind_index("staff", "national_id", HashAlg::Sha256, 64, b"780101-1234"),
        fc.blind_index(
            "patients",
            "national_id",
            HashAlg::Sha3_256,
            64,
            b"780101-1234",
        ),
        crypto_with(KEY_2).blind_index(
            "patients",
            "national_id",
            HashAlg::Sha256,
            64,
            b"780101-1234",
        ),
    ] {
        assert_ne!(Ok(a.clone()), other);
    }
    let index = |hash, bits| fc.blind_index("t", "c", hash, bits, b"v").unwrap().len();
    assert_eq!(index(HashAlg::Sha256, 0), 4); // clamped up to 16 bits
    assert_eq!(index(HashAlg::Sha256, 23), 4); // whole bytes only
    assert_eq!(index(HashAlg::Sha512, 1000), 64); // clamped down to 256 bits
    assert_eq!(index(HashAlg::Md5, 256), 32); // no more than the hash gives
                                              // Unkeyed hashing would make this equal to a plain SHA-256 prefix; it must not be.
    assert_ne!(
        fc.blind_index("t", "c", HashAlg::Sha256, 256, b"abc")
            .unwrap(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn field_crypto_is_shareable_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<FieldCrypto>();
    let fc = Arc::new(crypto());
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let fc = fc.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let row_id = format!("row-{}", i % 17);
                    let field = FieldRef {
                        row_id: &row_id,
                        ..HERE
                    };
                    let value = format!("{t}-{i}");
                    let stored = fc.seal(&field, value.as_bytes(), Suite::DEFAULT).unwrap();
                    assert_eq!(
                        &fc.open(&field, &stored).unwrap().plaintext[..],
                        value.as_bytes()
                    );
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
}

#[test]
fn policies_parse_from_settings() {
    let suite = Suite::parse_keys("xchacha20-poly1305", "sha3-256").unwrap();
    assert_eq!(
        suite,
        Suite::new(Cipher::XChaCha20Poly1305, HashAlg::Sha3_256)
    );
    assert_eq!(suite.to_string(), "xchacha20-poly1305+sha3-256");
    assert!(Suite::parse_keys("AES-256-GCM", "sha-256").is_err());
}

#[test]
fn the_binary_form_round_trips_and_refuses_a_flipped_bit() {
    use medvault::crypto::{FieldCrypto, FieldRef, KeyRing, RootKeys, Suite};
    let crypto = FieldCrypto::new(std::sync::Arc::new(KeyRing::new(RootKeys::generate())), 16);
    let field = FieldRef {
        table: "files",
        column: "content",
        row_id: "r1",
        owner_id: "o1",
    };
    let plaintext = vec![7u8; 100_000];
    for suite in Suite::all() {
        let mut sealed = crypto.seal_bytes(&field, &plaintext, suite).unwrap();
        assert_eq!(
            &*crypto.open_bytes(&field, &sealed).unwrap().plaintext,
            &plaintext[..]
        );
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(crypto.open_bytes(&field, &sealed).is_err(), "{suite}");
    }
}
