//! Re-encryption throughput through the real job and database: N accounts (two encrypted
//! columns each), the policy flipped between two suites, the whole job timed.
//!
//! `cargo bench --bench reencrypt` (MEDVAULT_BENCH_ACCOUNTS sets N, default 10,000).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark stops by panicking on a broken set-up"
)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use medvault::crypto::{Cipher, HashAlg, Suite};
use medvault::db::models::NewUser;
use medvault::reencryption::job;
use medvault::{App, Config};

fn accounts() -> usize {
    std::env::var("MEDVAULT_BENCH_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn seed(app: &App, n: usize) {
    let mut conn = app.db.conn().expect("connection");
    conn.write_transaction(|conn| {
        for i in 0..n {
            let id = format!("{i:016}");
            let username = format!("user{i:06}");
            medvault::users::insert_account(
                app,
                &NewUser {
                    id: &id,
                    username: &username,
                    level: "patient",
                    // Not a real hash: the job never reads it, and argon2 would dominate seeding.
                    password_hash: "x",
                    must_change_password: false,
                    active: true,
                    created_at: 0,
                    updated_at: 0,
                },
                (
                    &format!("Patient Number {i}"),
                    &format!("patient{i}@example.org"),
                ),
                conn,
            )?;
        }
        Ok::<_, medvault::fields::StoreError>(())
    })
    .expect("seeded");
}

/// Switches the users table to `suite` and starts the job, as the admin page does.
fn switch_policy(app: &App, suite: Suite) {
    let mut policy = (*app.fields.policy()).clone();
    policy.suites.insert("users".into(), suite);
    app.fields.set_policy(policy.clone());
    let mut conn = app.db.conn().expect("connection");
    conn.write_transaction(|conn| {
        policy.save(0, conn)?;
        job::start(app, "benchmark", Default::default(), conn)
    })
    .expect("job started");
}

fn reencryption(c: &mut Criterion) {
    let home = tempfile::tempdir().expect("temp dir");
    let mut config = Config::for_home(home.path());
    config.reencrypt_in_background = false;
    let app = App::open(config).expect("app");
    let n = accounts();
    seed(&app, n);
    let suites = [
        Suite::new(Cipher::ChaCha20Poly1305, HashAlg::Sha256),
        Suite::new(Cipher::Aes256Gcm, HashAlg::Sha256),
    ];
    let mut group = c.benchmark_group("reencryption job");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(2 * n as u64));
    let mut turn = 0usize;
    group.bench_function(format!("{n} accounts x 2 columns"), |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                turn += 1;
                switch_policy(&app, suites[turn % 2]);
                let started = Instant::now();
                job::run(&app, None).expect("job ran");
                total += started.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, reencryption);
criterion_main!(benches);
