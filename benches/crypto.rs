//! Field encryption cost: a 64-byte field per suite (cached and cold row key), and 1 MiB
//! throughput per AEAD suite. Targets: AES-256-GCM 64 B seal+open with a cached key < 1 µs;
//! 1 MiB AES-256-GCM seal ≥ 1.5 GB/s (binary form, as files are stored).
//!
//! Run: `cargo bench --bench crypto -- --warm-up-time 1 --measurement-time 3`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark stops by panicking on a broken set-up"
)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use medvault::crypto::{Cipher, FieldCrypto, FieldRef, HashAlg, KeyRing, RootKeys, Suite};

const FIELD: FieldRef<'static> = FieldRef {
    table: "patients",
    column: "diagnosis",
    row_id: "k3m9x2q7",
    owner_id: "p7w4n8r2",
};

fn ring() -> Arc<KeyRing> {
    Arc::new(KeyRing::new(
        RootKeys::parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap(),
    ))
}

/// Every cipher with SHA-256, plus the default cipher with every other hash (the hash only
/// changes key derivation for AEADs, so the full 110-way product would repeat itself).
fn suites() -> Vec<Suite> {
    let mut suites: Vec<Suite> = Cipher::ALL
        .into_iter()
        .map(|c| Suite::new(c, HashAlg::Sha256))
        .collect();
    suites.extend(
        HashAlg::ALL
            .into_iter()
            .filter(|h| *h != HashAlg::Sha256)
            .map(|h| Suite::new(Cipher::Aes256Gcm, h)),
    );
    suites
}

fn field_64_bytes(c: &mut Criterion) {
    let plaintext = [0x5au8; 64];
    let cached = FieldCrypto::new(ring(), 4096);
    let cold = FieldCrypto::new(ring(), 0);
    let mut group = c.benchmark_group("seal+open 64 B");
    for suite in suites() {
        group.bench_function(BenchmarkId::new("cached key", suite), |b| {
            b.iter(|| {
                let stored = cached.seal(&FIELD, black_box(&plaintext), suite).unwrap();
                cached.open(&FIELD, black_box(&stored)).unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("cold key", suite), |b| {
            b.iter(|| {
                let stored = cold.seal(&FIELD, black_box(&plaintext), suite).unwrap();
                cold.open(&FIELD, black_box(&stored)).unwrap()
            })
        });
    }
    group.finish();
}

fn seal_1_mib(c: &mut Criterion) {
    let plaintext = vec![0x5au8; 1 << 20];
    let fc = FieldCrypto::new(ring(), 4096);
    let mut group = c.benchmark_group("seal 1 MiB");
    group.throughput(Throughput::Bytes(plaintext.len() as u64));
    group.sample_size(20);
    for cipher in Cipher::ALL.into_iter().filter(|c| c.is_aead()) {
        let suite = Suite::new(cipher, HashAlg::Sha256);
        // Binary form, as files are stored; and the text form of a column, base64 included.
        group.bench_function(BenchmarkId::new("binary", suite), |b| {
            b.iter(|| fc.seal_bytes(&FIELD, black_box(&plaintext), suite).unwrap())
        });
        group.bench_function(BenchmarkId::new("text", suite), |b| {
            b.iter(|| fc.seal(&FIELD, black_box(&plaintext), suite).unwrap())
        });
    }
    group.finish();
}

/// The aes-gcm crate on its own (in-place, no allocation, no header): the ceiling that
/// `seal 1 MiB` is compared with in the same run; and aes-gcm 0.10, which medvault used before
/// (no VAES), to show what the move to 0.11 bought.
fn aes_gcm_crate_alone(c: &mut Criterion) {
    let mut buffer = vec![0x5au8; 1 << 20];
    let mut group = c.benchmark_group("seal 1 MiB");
    group.throughput(Throughput::Bytes(buffer.len() as u64));
    group.sample_size(20);
    {
        use aes_gcm::aead::{AeadInOut, KeyInit};
        let cipher = aes_gcm::Aes256Gcm::new(&[7u8; 32].into());
        let nonce = aes_gcm::Nonce::from([1u8; 12]);
        group.bench_function("aes-gcm crate alone/aes-256-gcm", |b| {
            b.iter(|| {
                cipher
                    .encrypt_inout_detached(&nonce, b"", black_box(&mut buffer[..]).into())
                    .unwrap()
            })
        });
    }
    {
        use aes_gcm_010::aead::{AeadInPlace, KeyInit};
        let cipher = aes_gcm_010::Aes256Gcm::new_from_slice(&[7u8; 32]).unwrap();
        let nonce = aes_gcm_010::Nonce::from_slice(&[1u8; 12]);
        group.bench_function("aes-gcm 0.10 crate alone/aes-256-gcm", |b| {
            b.iter(|| {
                cipher
                    .encrypt_in_place_detached(nonce, b"", black_box(&mut buffer))
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, field_64_bytes, seal_1_mib, aes_gcm_crate_alone);
criterion_main!(benches);
