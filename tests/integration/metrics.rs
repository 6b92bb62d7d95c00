//! `/health` and `/metrics` for operators: what they report, and who may read the metrics.

use crate::common;

use common::*;
use medvault::access::Level;
use rocket::http::{Header, Status};

#[test]
fn health_reports_database_key_and_disk() {
    let app = TestApp::new();
    let page = app.browser().get("/health");
    page.assert_status(Status::Ok);
    let report: serde_json::Value = serde_json::from_str(&page.body).expect("json");
    assert_eq!(report["status"], "ok");
    assert_eq!(report["database"], "ok");
    assert_eq!(report["key"], "ok");
    assert_eq!(report["disk"]["state"], "ok");
    assert!(report["backup_age_seconds"].is_null());
    // A key check value that no longer matches the running key makes it unhealthy.
    app.raw_sql("UPDATE root_key_checks SET check_value = '00'");
    let page = app.browser().get("/health");
    page.assert_status(Status::ServiceUnavailable);
    assert!(page.body.contains("\"key\":\"mismatch\""), "{}", page.body);
}

#[test]
fn metrics_count_requests_by_route_and_status_for_loopback_only_with_a_sqlite_backup() {
    let app = TestApp::new();
    let mut patient = app.signed_in(Level::Patient, "pat");
    patient.get("/admin/users").assert_status(Status::Forbidden);
    medvault::backup::create_backup(app.app(), "test", medvault::backup::Origin::Manual)
        .expect("backup");

    // From elsewhere, and without a token: refused.
    app.browser()
        .get("/metrics")
        .assert_status(Status::Forbidden);

    let mut local = Browser::new(&app, "127.0.0.1:50000", "prometheus");
    let page = local.get("/metrics");
    page.assert_status(Status::Ok);
    let text = page.body;
    assert!(
        text.contains(
            "medvault_http_requests_total{method=\"POST\",route=\"/login\",status=\"303\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("route=\"/admin/users\",status=\"403\"} 1"),
        "{text}"
    );
    assert!(text.contains("medvault_http_request_duration_seconds_bucket{method=\"GET\",route=\"/login\",le=\"+Inf\"}"));
    assert!(
        text.contains("medvault_logins_total{outcome=\"success\"} 1"),
        "{text}"
    );
    assert!(text.contains("medvault_backup_age_seconds 0"), "{text}");
    // No path, id or name of a person in the labels.
    assert!(!text.contains("pat\""));
}

#[test]
fn metrics_are_readable_from_afar_with_the_configured_token_only() {
    let app = TestApp::with_config(|c| c.metrics_token = Some("s3cret-scrape-token".into()));
    let ask = |token: &str| {
        app.client
            .get("/metrics")
            .remote("192.0.2.50:4000".parse().unwrap())
            .header(Header::new("Authorization", format!("Bearer {token}")))
            .dispatch()
            .status()
    };
    assert_eq!(ask("s3cret-scrape-token"), Status::Ok);
    assert_eq!(ask("s3cret-scrape-tokeN"), Status::Forbidden);
    assert_eq!(ask(""), Status::Forbidden);
}

#[test]
fn metrics_count_field_encryption_operations_and_refusals() {
    let app = TestApp::new();
    let read = |app: &TestApp, kind: &str| -> u64 {
        let page = Browser::new(app, "127.0.0.1:50000", "prometheus").get("/metrics");
        let prefix = format!("medvault_field_operations_total{{operation=\"{kind}\"}} ");
        page.body
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("{kind} in {}", page.body))
            .parse()
            .unwrap()
    };
    let (sealed, opened, refused) = (
        read(&app, "seal"),
        read(&app, "open"),
        read(&app, "refused"),
    );
    // An account's name and email are sealed at creation and opened on the admin's list.
    app.create_user(Level::Patient, "pat");
    let mut admin = app.signed_in(Level::Admin, "admin");
    admin.get("/admin/users").assert_status(Status::Ok);
    assert!(read(&app, "seal") >= sealed + 2);
    assert!(read(&app, "open") > opened);
    assert_eq!(read(&app, "refused"), refused);
    // A value altered in the file is counted as refused when a page meets it.
    app.raw_sql("UPDATE users SET full_name = 'plain:forged' WHERE username = 'pat'");
    admin.get("/admin/users").assert_status(Status::Ok);
    assert!(read(&app, "refused") > refused);
}
