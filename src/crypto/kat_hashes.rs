//! Known-answer tests for every hash, HMAC and HKDF, through the `HashAlg` dispatch in kdf.rs.
//!
//! Every vector is quoted from the cited standard and was also checked against an independent
//! implementation (Python `hashlib`/`hmac`/`cryptography`) before being written here.

use super::kdf::{digest, hkdf, hmac};
use super::suite::HashAlg;

// "abc": RFC 1321 §A.5 (MD5), FIPS 180-4 examples (SHA-1, SHA-2), FIPS 202 examples (SHA-3).
#[test]
fn every_hash_of_abc() {
    let vectors = [
        (HashAlg::Md5, "900150983cd24fb0d6963f7d28e17f72"),
        (HashAlg::Sha1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
        (
            HashAlg::Sha224,
            "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7",
        ),
        (
            HashAlg::Sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            HashAlg::Sha384,
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
             8086072ba1e7cc2358baeca134c825a7",
        ),
        (
            HashAlg::Sha512,
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        ),
        (
            HashAlg::Sha3_224,
            "e642824c3f8cf24ad09234ee7d3c766fc9a3a5168d0c94ad73b46fdf",
        ),
        (
            HashAlg::Sha3_256,
            "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532",
        ),
        (
            HashAlg::Sha3_384,
            "ec01498288516fc926459f58e2c6ad8df9b473cb0fc08c2596da7cf0e49be4b2\
             98d88cea927ac7f539f1edf228376d25",
        ),
        (
            HashAlg::Sha3_512,
            "b751850b1a57168a5693cd924b6b096e08f621827444f70d884f5d0240d2712e\
             10e116e9192af3c91a7ec57647e3934057340b4cf408d5a56592f8274eec53f0",
        ),
    ];
    assert_eq!(vectors.len(), HashAlg::ALL.len());
    for (hash, want) in vectors {
        assert_eq!(hex::encode(digest(hash, b"abc")), want, "{hash:?}");
    }
}

// Test case 2 of RFC 2202 (MD5, SHA-1) and RFC 4231 (SHA-2): key "Jefe".
#[test]
fn hmac_rfc2202_and_rfc4231_case_2() {
    let data: &[u8] = b"what do ya want for nothing?";
    for (hash, want) in [
        (HashAlg::Md5, "750c783e6ab0b503eaa86e310a5db738"),
        (HashAlg::Sha1, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
        (
            HashAlg::Sha224,
            "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44",
        ),
        (
            HashAlg::Sha256,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            HashAlg::Sha384,
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
             8e2240ca5e69e2c78b3239ecfab21649",
        ),
        (
            HashAlg::Sha512,
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
             9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
        ),
    ] {
        assert_eq!(hex::encode(hmac(hash, b"Jefe", &[data])), want, "{hash:?}");
        // Feeding the message in parts must not change the MAC.
        assert_eq!(
            hex::encode(hmac(hash, b"Jefe", &[&data[..5], &data[5..]])),
            want
        );
    }
}

// RFC 5869, Appendix A: test case 1 (SHA-256) and test case 4 (SHA-1).
#[test]
fn hkdf_rfc5869() {
    let salt = hex::decode("000102030405060708090a0b0c").unwrap();
    let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
    let mut okm = [0u8; 42];
    hkdf(HashAlg::Sha256, Some(&salt), &[0x0b; 22], &info, &mut okm).unwrap();
    assert_eq!(
        hex::encode(okm),
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf\
         34007208d5b887185865"
    );
    // The PRK of test case 1 is HMAC(salt, IKM).
    assert_eq!(
        hex::encode(hmac(HashAlg::Sha256, &salt, &[&[0x0b; 22]])),
        "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"
    );
    hkdf(HashAlg::Sha1, Some(&salt), &[0x0b; 11], &info, &mut okm).unwrap();
    assert_eq!(
        hex::encode(okm),
        "085a01ea1b10f36933068b56efa5ad81a4f14b822f5b091568a9cdd4f155fda2\
         c22e422478d305f3f896"
    );
}

#[test]
fn hkdf_works_and_differs_for_every_hash() {
    let mut seen = std::collections::HashSet::new();
    for hash in HashAlg::ALL {
        let mut okm = [0u8; 32];
        hkdf(hash, Some(b"salt"), b"ikm", b"info", &mut okm).unwrap();
        assert!(seen.insert(okm), "{hash:?}");
    }
    // RFC 5869 caps output at 255 hash lengths.
    let mut too_long = vec![0u8; 255 * 16 + 1];
    assert!(hkdf(HashAlg::Md5, None, b"ikm", b"", &mut too_long).is_err());
}
