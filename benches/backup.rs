//! Backup and restore of a seeded database through the real code, and the latency of the
//! admin's user page at rest and while a backup runs (in-process, through Rocket's client).
//!
//! `cargo bench --bench backup` (MEDVAULT_BENCH_DB_MB sets the database size, default 100;
//! MEDVAULT_BENCH_SETTLE_S the pause after seeding, default 30 s, and a third of it between
//! backups).
//! Prints medians; BENCHMARKS.md records them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark stops by panicking on a broken set-up"
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use medvault::backup::{self, Origin};
use medvault::db::models::NewUser;
use medvault::App;
use rocket::http::Status;
use rocket::local::blocking::Client;

mod support;

fn target_mb() -> u64 {
    std::env::var("MEDVAULT_BENCH_DB_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

fn seed(app: &App, target_bytes: u64) -> usize {
    let mut made = 0usize;
    let file = app.config.database_file();
    let note = "x".repeat(200);
    loop {
        let mut conn = app.db.conn().expect("connection");
        conn.write_transaction(|conn| {
            for i in made..made + 10_000 {
                let id = format!("{i:016}");
                let username = format!("patient{i:07}");
                medvault::users::insert_account(
                    app,
                    &NewUser {
                        id: &id,
                        username: &username,
                        level: "patient",
                        // Not a real hash: argon2 would dominate seeding.
                        password_hash: "x",
                        must_change_password: false,
                        active: true,
                        created_at: 0,
                        updated_at: 0,
                    },
                    (
                        &format!("Patient {i} {note}"),
                        &format!("patient{i}@example.org"),
                    ),
                    conn,
                )?;
            }
            Ok::<_, medvault::fields::StoreError>(())
        })
        .expect("seeded");
        made += 10_000;
        drop(conn);
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0)
            + std::fs::metadata(file.with_extension("sqlite-wal"))
                .map(|m| m.len())
                .unwrap_or(0);
        if size >= target_bytes {
            return made;
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn percentile(mut values: Vec<f64>, p: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let index = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[index]
}

/// Latencies (ms) of the admin's user page, requested back to back until `stop`.
fn page_latencies(client: &Client, stop: &AtomicBool, at_least: usize) -> Vec<f64> {
    let mut latencies = Vec::new();
    while !stop.load(Ordering::Relaxed) || latencies.len() < at_least {
        let started = Instant::now();
        let response = client.get("/admin/users").dispatch();
        assert_eq!(response.status(), Status::Ok);
        let _ = response.into_bytes();
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        if latencies.len() >= at_least && stop.load(Ordering::Relaxed) {
            break;
        }
    }
    latencies
}

fn main() {
    // MEDVAULT_LOG=medvault::backup=info shows how long each stage of each backup took.
    if std::env::var_os("MEDVAULT_LOG").is_some() {
        medvault::logging::init(std::io::stderr, false);
    }
    let (_home, client, app) = support::server();
    let accounts = seed(&app, target_mb() * 1024 * 1024);
    support::sign_in_new_user(&client, &app, medvault::access::Level::Admin, "admin");

    let db_size = std::fs::metadata(app.config.database_file())
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "seeded {accounts} accounts; database file {:.1} MB",
        db_size as f64 / 1e6
    );

    // Seeding writes several gigabytes; this host's disk writes at half speed for a while after
    // such a burst. A backup is made once a day on a quiet disk, so let it settle first, and
    // between backups (MEDVAULT_BENCH_SETTLE_S, default 30 s; 0 for back to back).
    let settle = Duration::from_secs(
        std::env::var("MEDVAULT_BENCH_SETTLE_S")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30),
    );
    std::thread::sleep(settle);
    // Backups, one after another, each on a settled disk (the one before is deleted).
    let mut backup_rates = Vec::new();
    let mut last = String::new();
    for run in 0..5 {
        if run > 0 {
            std::thread::sleep(settle / 3);
        }
        let started = Instant::now();
        let info = backup::create_backup(&app, "bench", Origin::Manual).expect("backup");
        let seconds = started.elapsed().as_secs_f64();
        backup_rates.push(info.size as f64 / 1e6 / seconds);
        if !last.is_empty() {
            backup::delete(&app, &last).expect("deleted");
        }
        last = info.name;
    }
    println!(
        "backup: median {:.0} MB/s over 5 runs ({} s pauses)",
        median(backup_rates),
        (settle / 3).as_secs()
    );

    // Restores (each also backs up the current state first, as the page does).
    let mut restore_seconds = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        backup::restore_backup(&app, &last, "bench").expect("restore");
        restore_seconds.push(started.elapsed().as_secs_f64());
    }
    println!(
        "restore (checks + safety backup + swap): median {:.2} s over 3 runs",
        median(restore_seconds)
    );

    // The latency loop sends far more than a person would: no rate limit here (a restore
    // reloads the stored policy, so this comes after the restores).
    app.brute_force
        .set_policy(medvault::brute_force::BruteForcePolicy {
            rate_limit_enabled: false,
            ..Default::default()
        });
    // The user page at rest, then while backups run back to back.
    let stop = AtomicBool::new(true);
    let at_rest = page_latencies(&client, &stop, 300);
    let stop = Arc::new(AtomicBool::new(false));
    let during = std::thread::scope(|scope| {
        let worker_stop = stop.clone();
        let app2 = app.clone();
        scope.spawn(move || {
            // As the page and the schedule run them.
            backup::priority::lower_this_thread();
            for _ in 0..3 {
                let _ = backup::create_backup(&app2, "bench", Origin::Manual);
            }
            worker_stop.store(true, Ordering::Relaxed);
        });
        std::thread::sleep(Duration::from_millis(20));
        page_latencies(&client, &stop, 50)
    });
    let (rest_p99, during_p99) = (
        percentile(at_rest.clone(), 0.99),
        percentile(during.clone(), 0.99),
    );
    println!(
        "user page p50/p99 at rest: {:.2}/{:.2} ms ({} requests); during backups: {:.2}/{:.2} ms ({} requests); p99 ratio {:.2}",
        percentile(at_rest.clone(), 0.5),
        rest_p99,
        at_rest.len(),
        percentile(during.clone(), 0.5),
        during_p99,
        during.len(),
        during_p99 / rest_p99
    );
}
