//! The doctor's view of one patient (10 consultations, 5 vaccinations) rendered in-process
//! through Rocket's client, one request at a time: the server's own cost per request, without
//! sockets or load. `cargo bench --bench record_page`; bench/records_load.py measures the same
//! page over loopback under wrk.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark stops by panicking on a broken set-up"
)]

use std::time::Instant;

use rocket::http::Status;
use rocket::local::blocking::Client;
use support::{csrf, post};

mod support;

/// The server's allocator (src/main.rs), so that the bench costs what the server does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn timings(client: &Client, uri: &str, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let started = Instant::now();
            let res = client.get(uri.to_string()).dispatch();
            assert_eq!(res.status(), Status::Ok, "{uri}");
            let _ = res.into_bytes();
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect()
}

fn at(mut values: Vec<f64>, p: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[((values.len() - 1) as f64 * p) as usize]
}

fn main() {
    let (_home, client, app) = support::server();
    app.brute_force
        .set_policy(medvault::brute_force::BruteForcePolicy {
            rate_limit_enabled: false,
            ..Default::default()
        });
    support::sign_in_new_user(&client, &app, medvault::access::Level::Doctor, "dr.bench");
    let token = csrf(
        &client
            .get("/patients/new")
            .dispatch()
            .into_string()
            .unwrap_or_default(),
    );
    let (status, page) = post(
        &client,
        "/patients/new",
        &token,
        &[
            ("username", "pat.bench"),
            ("national_id", "S7654321B"),
            ("first_name", "Bench"),
            ("last_name", "Patient"),
            ("date_of_birth", "1970-01-01"),
            ("gender", "other"),
            ("blood_type", "AB+"),
            ("phone", "+65 6000 0000"),
            ("email", "bench@example.org"),
            ("address", "1 Bench Road"),
            ("postal_code", "100000"),
            ("height_cm", "170"),
            ("weight_kg", "70"),
            ("allergies", "none known"),
        ],
    );
    assert_eq!(status, Status::Ok, "{page}");
    let start = page.find("href=\"/patients/").expect("id") + "href=\"/patients/".len();
    let id = &page[start..start + page[start..].find('"').expect("end")];
    let record = format!("/patients/{id}");
    for i in 0..10 {
        let (status, _) = post(
            &client,
            &format!("{record}/consultations"),
            &token,
            &[
                (
                    "occurred_at",
                    &format!("2026-0{}-1{}T09:30", 1 + i % 9, i % 9),
                ),
                ("department", "Cardiology"),
                ("block", "B"),
                ("unit", "07-12"),
                (
                    "diagnosis",
                    "Stable angina, reviewed; exercise tolerance improving",
                ),
                (
                    "notes",
                    "Blood pressure 128/82. Continue current plan, review in three months.",
                ),
                (
                    "prescription",
                    "Bisoprolol 2.5 mg once daily; GTN spray as needed",
                ),
            ],
        );
        assert_eq!(status, Status::SeeOther);
    }
    for dose in 1..=5 {
        let (status, _) = post(
            &client,
            &format!("{record}/vaccinations"),
            &token,
            &[
                ("vaccine", "Hepatitis B"),
                ("dose_number", &dose.to_string()),
                ("given_on", &format!("2025-0{dose}-01")),
                ("lot", "HB-2231"),
                ("given_by", "Nurse Joy"),
            ],
        );
        assert_eq!(status, Status::SeeOther);
    }
    timings(&client, &record, 200);
    let doctor = timings(&client, &record, 2000);
    let dashboard = timings(&client, "/dashboard", 2000);
    println!(
        "doctor's view of a patient (10 consultations, 5 vaccinations), in-process, one at a time:"
    );
    println!(
        "  GET {record}: median {:.3} ms, p99 {:.3} ms",
        at(doctor.clone(), 0.5),
        at(doctor, 0.99)
    );
    println!(
        "  GET /dashboard: median {:.3} ms, p99 {:.3} ms",
        at(dashboard.clone(), 0.5),
        at(dashboard, 0.99)
    );
}
