//! Known-answer tests for every cipher, through the same dispatch code that seals fields, so
//! that a wrong variant (Blowfish byte order, 3DES keying option, RC4 drop count) is caught.
//!
//! Every vector below is quoted from the cited standard and was also checked against an
//! independent implementation (Python `cryptography` 48 / OpenSSL 3) before being written here.

use super::aead::AeadKey;
use super::legacy::{cbc_decrypt, cbc_encrypt, rc4_drop3072};
use super::suite::Cipher;

fn h(hex: &str) -> Vec<u8> {
    hex::decode(hex.replace([' ', '\n'], "")).unwrap()
}

/// Checks an AEAD vector both ways, and that a flipped tag bit is refused.
fn check_aead(cipher: Cipher, key: &str, nonce: &str, aad: &str, pt: &[u8], ct: &str, tag: &str) {
    let (nonce, aad) = (h(nonce), h(aad));
    let key = AeadKey::new(cipher, &h(key)).unwrap();
    let mut buf = pt.to_vec();
    let got_tag = key.encrypt_detached(&nonce, &aad, &mut buf).unwrap();
    assert_eq!(
        hex::encode(&buf),
        hex::encode(h(ct)),
        "{cipher:?} ciphertext"
    );
    assert_eq!(hex::encode(got_tag), hex::encode(h(tag)), "{cipher:?} tag");
    key.decrypt_detached(&nonce, &aad, &mut buf, &got_tag)
        .unwrap();
    assert_eq!(buf, pt);
    let mut bad_tag = got_tag;
    bad_tag[0] ^= 1;
    let mut buf = h(ct);
    assert!(key
        .decrypt_detached(&nonce, &aad, &mut buf, &bad_tag)
        .is_none());
}

/// Checks that CBC under `iv` gives `ct` as the first blocks (the vectors are unpadded; ours
/// appends one PKCS#7 block), and that decryption undoes it.
fn check_cbc(cipher: Cipher, key: &str, iv: &str, pt: &str, ct: &str) {
    let (key, iv, pt, ct) = (h(key), h(iv), h(pt), h(ct));
    let mut out = cbc_encrypt(cipher, &key, &iv, &pt).unwrap();
    assert_eq!(
        hex::encode(&out[..ct.len()]),
        hex::encode(&ct),
        "{cipher:?}"
    );
    let block = out.len() - pt.len();
    assert!(block == 8 || block == 16);
    let len = cbc_decrypt(cipher, &key, &iv, &mut out).unwrap();
    assert_eq!(&out[..len], &pt[..]);
}

// NIST SP 800-38A, F.2.5 CBC-AES256.Encrypt.
#[test]
fn aes_256_cbc_sp800_38a() {
    check_cbc(
        Cipher::Aes256Cbc,
        "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
        "000102030405060708090a0b0c0d0e0f",
        "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
         30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710",
        "f58c4c04d6e5f1ba779eabfb5f7bfbd6 9cfc4e967edb808d679f777bc6702c7d
         39f23369a9d9bacfa530e26304231461 b2eb05e2c39be9fcda6c19078c6a9d1b",
    );
}

/// The GCM specification's test cases 4 and 16 (McGrew & Viega, "The Galois/Counter Mode of
/// Operation", as referenced by NIST SP 800-38D): 60-byte plaintext, 20-byte AAD, 96-bit IV.
const GCM_PT: &str = "d9313225f88406e5a55909c5aff5269a 86a7a9531534f7da2e4c303d8a318a72
                      1c3c0c95956809532fcf0e2449a6b525 b16aedf5aa0de657ba637b39";
const GCM_AAD: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
const GCM_IV: &str = "cafebabefacedbaddecaf888";

#[test]
fn aes_128_gcm_test_case_4() {
    check_aead(
        Cipher::Aes128Gcm,
        "feffe9928665731c6d6a8f9467308308",
        GCM_IV,
        GCM_AAD,
        &h(GCM_PT),
        "42831ec2217774244b7221b784d0d49c e3aa212f2c02a4e035c17e2329aca12e
         21d514b25466931c7d8f6a5aac84aa05 1ba30b396a0aac973d58e091",
        "5bc94fbc3221a5db94fae95ae7121a47",
    );
}

#[test]
fn aes_256_gcm_test_case_16() {
    check_aead(
        Cipher::Aes256Gcm,
        "feffe9928665731c6d6a8f9467308308 feffe9928665731c6d6a8f9467308308",
        GCM_IV,
        GCM_AAD,
        &h(GCM_PT),
        "522dc1f099567d07f47f37a32a84427d 643a8cdcbfe5c0c97598a2bd2555d1aa
         8cb08e48590dbb3da7b08b1056828838 c5f61e6393ba7a0abcc9f662",
        "76fc6ece0f4e1768cddf8853bb2d551b",
    );
}

// RFC 8452, Appendix C.2 (AEAD_AES_256_GCM_SIV), the first two vectors.
#[test]
fn aes_256_gcm_siv_rfc8452() {
    let key = "0100000000000000000000000000000000000000000000000000000000000000";
    let nonce = "030000000000000000000000";
    check_aead(
        Cipher::Aes256GcmSiv,
        key,
        nonce,
        "",
        b"",
        "",
        "07f5f4169bbf55a8400cd47ea6fd400f",
    );
    check_aead(
        Cipher::Aes256GcmSiv,
        key,
        nonce,
        "",
        &h("0100000000000000"),
        "c2ef328e5c71c83b",
        "843122130f7364b761e0b97427e3df28",
    );
}

/// RFC 8439 §2.8.2 and draft-irtf-cfrg-xchacha-03 §A.3.1 share key, AAD and plaintext.
const SUNSCREEN: &[u8] = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
const CHACHA_KEY: &str = "808182838485868788898a8b8c8d8e8f 909192939495969798999a9b9c9d9e9f";
const CHACHA_AAD: &str = "50515253c0c1c2c3c4c5c6c7";

#[test]
fn chacha20_poly1305_rfc8439() {
    check_aead(
        Cipher::ChaCha20Poly1305,
        CHACHA_KEY,
        "070000004041424344454647",
        CHACHA_AAD,
        SUNSCREEN,
        "d31a8d34648e60db7b86afbc53ef7ec2 a4aded51296e08fea9e2b5a736ee62d6
         3dbea45e8ca9671282fafb69da92728b 1a71de0a9e060b2905d6a5b67ecd3b36
         92ddbd7f2d778b8c9803aee328091b58 fab324e4fad675945585808b4831d7bc
         3ff4def08e4b7a9de576d26586cec64b 6116",
        "1ae10b594f09e26a7e902ecbd0600691",
    );
}

// Checked against the chacha20poly1305 crate's own copy of this vector, not Python (which has
// no XChaCha20-Poly1305).
#[test]
fn xchacha20_poly1305_draft_vector() {
    check_aead(
        Cipher::XChaCha20Poly1305,
        CHACHA_KEY,
        "404142434445464748494a4b4c4d4e4f5051525354555657",
        CHACHA_AAD,
        SUNSCREEN,
        "bd6d179d3e83d43b9576579493c0e939 572a1700252bfaccbed2902c21396cbb
         731c7f1b0b4aa6440bf3a82f4eda7e39 ae64c6708c54c216cb96b72e1213b452
         2f8c9ba40db5d945b11b69b982c1bb9e 3f3fac2bc369488f76b2383565d3fff9
         21f9664c97637da9768812f615c68b13 b52e",
        "c0875924c1c7987947deafd8780acf49",
    );
}

/// Single-block vectors for ciphers published as ECB: CBC with an all-zero IV encrypts the
/// first block exactly as ECB does (C1 = E(P1 ⊕ 0)).
const ZERO_IV8: &str = "0000000000000000";

#[test]
fn des_classic_vectors() {
    // FIPS 81 (Appendix B) example: "Now is t" under 0123456789abcdef.
    check_cbc(
        Cipher::DesCbc,
        "0123456789abcdef",
        ZERO_IV8,
        "4e6f772069732074",
        "3fa40e8a984d4815",
    );
    // The FIPS 46 worked example found in most textbooks (key 133457799BBCDFF1).
    check_cbc(
        Cipher::DesCbc,
        "133457799bbcdff1",
        ZERO_IV8,
        "0123456789abcdef",
        "85e813540f0ab405",
    );
}

// NIST SP 800-67 Rev. 1, Appendix B: TDEA (keying option 1) ECB example, three blocks. CBC with
// a zero IV only matches the first block, so the rest is checked via the chained value.
#[test]
fn triple_des_sp800_67() {
    let key = "0123456789abcdef 23456789abcdef01 456789abcdef0123";
    let pt = hex::encode(b"The qufck brown fox jump");
    let ecb = h("a826fd8ce53b855f cce21c8112256fe6 68d5c05dd9b6b900");
    check_cbc(
        Cipher::TripleDesEde3Cbc,
        key,
        ZERO_IV8,
        &pt[..16],
        "a826fd8ce53b855f",
    );
    // Block i alone, encrypted with IV = 0, is the ECB block: check all three.
    let pt = h(&pt);
    for i in 0..3 {
        let block = hex::encode(&pt[i * 8..i * 8 + 8]);
        check_cbc(
            Cipher::TripleDesEde3Cbc,
            key,
            ZERO_IV8,
            &block,
            &hex::encode(&ecb[i * 8..i * 8 + 8]),
        );
    }
}

// Bruce Schneier's Blowfish test vectors (schneier.com, "vectors.txt"): key, plaintext, ciphertext.
#[test]
fn blowfish_schneier_vectors() {
    for (key, pt, ct) in [
        ("0000000000000000", "0000000000000000", "4ef997456198dd78"),
        ("ffffffffffffffff", "ffffffffffffffff", "51866fd5b85ecb8a"),
        ("3000000000000000", "1000000000000001", "7d856f9a613063f2"),
    ] {
        check_cbc(Cipher::BlowfishCbc, key, ZERO_IV8, pt, ct);
    }
}

// RFC 2144, Appendix B.1, 128-bit key.
#[test]
fn cast_128_rfc2144() {
    check_cbc(
        Cipher::Cast128Cbc,
        "0123456712345678234567893456789a",
        ZERO_IV8,
        "0123456789abcdef",
        "238b4fe5847e44b2",
    );
}

// RFC 6229 §2, 40-bit key 0x0102030405: keystream at offsets 0 and 3072 (so RC4-drop[3072]'s
// first 16 bytes are exactly the offset-3072 row).
#[test]
fn rc4_rfc6229_offsets_0_and_3072() {
    use cbc::cipher::generic_array::GenericArray;
    use cbc::cipher::{KeyInit, StreamCipher};
    let key = GenericArray::<u8, rc4::consts::U5>::clone_from_slice(&h("0102030405"));
    let mut plain_rc4 = rc4::Rc4::<rc4::consts::U5>::new(&key);
    let mut keystream = [0u8; 16];
    plain_rc4.apply_keystream(&mut keystream);
    assert_eq!(hex::encode(keystream), "b2396305f03dc027ccc3524a0a1118a8");
    let mut dropped = [0u8; 32];
    rc4_drop3072(&key, &mut dropped);
    assert_eq!(
        hex::encode(&dropped[..16]),
        "ec0e11c479dc329dc8da7968fe965681"
    );
    // And it is an involution: applying it twice gives the input back.
    let mut data = *b"field value";
    rc4_drop3072(&key, &mut data);
    assert_ne!(&data, b"field value");
    rc4_drop3072(&key, &mut data);
    assert_eq!(&data, b"field value");
}

#[test]
fn cbc_refuses_bad_padding_and_partial_blocks() {
    let key = [0u8; 32];
    let iv = [0u8; 16];
    // "x" pads to 'x' ‖ 15 × 0x0f. Decrypting under an IV with its last bit flipped turns the
    // final byte into 0x0e, which claims 14 padding bytes that are 0x0f: invalid.
    let mut ct = cbc_encrypt(Cipher::Aes256Cbc, &key, &iv, b"x").unwrap();
    let mut other_iv = iv;
    other_iv[15] ^= 0x01;
    assert!(cbc_decrypt(Cipher::Aes256Cbc, &key, &other_iv, &mut ct).is_none());
    assert!(cbc_decrypt(Cipher::Aes256Cbc, &key, &iv, &mut [0u8; 15]).is_none());
    assert!(cbc_decrypt(Cipher::DesCbc, &key[..8], &iv[..8], &mut []).is_none());
}
