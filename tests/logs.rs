//! The server's log, captured through the same subscriber `main` installs: one access line per
//! request, and no password, token, key or decrypted value in it, over a whole journey that
//! handles all of them (sign-in, a registration with a one-time password, a record full of
//! clinical text, a signed download link, a wrong password).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use medvault::access::Level;
use rocket::http::Status;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[test]
fn the_log_has_one_line_per_request_and_no_secret() {
    let log = Captured::default();
    let writer = log.clone();
    medvault::logging::init(move || writer.clone(), false);

    let app = TestApp::new();
    let mut doctor = app.signed_in(Level::Doctor, "dr.logs");
    let session_cookie = doctor.cookie("session").map(str::to_string);
    let page = doctor.post(
        "/patients/new",
        &[
            ("username", "pat.logs"),
            ("national_id", "S7654321A"),
            ("first_name", "Loganberry"),
            ("last_name", "Quillfeather"),
            ("date_of_birth", "1975-06-01"),
            ("gender", "female"),
            ("blood_type", "A+"),
            ("phone", "+65 6999 1234"),
            ("email", "logan@example.org"),
            ("address", "7 Lanternwick Row"),
            ("postal_code", "418855"),
            ("height_cm", "170"),
            ("weight_kg", "64"),
            ("allergies", "Sulfonamides"),
        ],
    );
    page.assert_status(Status::Ok);
    let one_time = between(&page.body, "<code>", "</code>");
    let id = between(&page.body, "href=\"/patients/", "\"");
    let record = format!("/patients/{id}");
    doctor
        .post(
            &format!("{record}/consultations"),
            &[
                ("occurred_at", "2026-11-20T10:30"),
                ("department", "Nephrology"),
                ("block", "C"),
                ("unit", "03-04"),
                ("diagnosis", "Xanthogranulomatous pyelonephritis"),
                ("notes", "Patient reports nightly zarzuela cravings"),
                ("prescription", "Quinvexa 40 mg"),
            ],
        )
        .assert_redirect(&record);
    doctor
        .post_multipart(
            &format!("{record}/scans"),
            &[
                ("category", "X-ray"),
                ("description", "Renal ultrasound Vortigern"),
                ("taken_on", "2026-11-19"),
            ],
            "kidney.png",
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR-for-the-log-test",
        )
        .assert_redirect(&record);
    doctor.get(&record).assert_status(Status::Ok);

    replace_one_time_password(&app, "pat.logs", &one_time);
    let mut patient = app.browser();
    patient.login("pat.logs", PASSWORD).assert_redirect("/");
    let own = patient.get("/records");
    own.assert_status(Status::Ok);
    assert!(own.body.contains("Vortigern"), "{}", own.body);
    let file_id = between(&own.body, "href=\"/records/files/", "\"");
    let link = patient
        .get(&format!("/records/files/{file_id}"))
        .location
        .expect("a signed link");
    patient.get(&link).assert_status(Status::Ok);
    // A wrong password and a tampered link are logged as what they are, not with what was sent.
    app.browser()
        .login("dr.logs", "not the right passphrase at all");
    patient
        .get(&format!("{link}x"))
        .assert_status(Status::Forbidden);

    let text = log.text();
    // The capture works: every request above left exactly one access line, by route pattern.
    assert!(
        text.contains(r#"medvault::access: method="GET" route="/patients/<id>" status=200"#),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/files/<token>" status=200"#),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/files/<token>" status=403"#),
        "{text}"
    );
    assert!(
        text.contains(r#"method="POST" route="/login" status=401"#),
        "{text}"
    );
    let token = link.trim_start_matches("/files/");
    let mut secrets = vec![
        PASSWORD,
        one_time.as_str(),
        "not the right passphrase at all",
        token,
        file_id.as_str(),
        "S7654321A",
        "Loganberry",
        "Quillfeather",
        "7 Lanternwick Row",
        "Sulfonamides",
        "Xanthogranulomatous",
        "zarzuela",
        "Quinvexa",
        "Vortigern",
        "logan@example.org",
    ];
    if let Some(cookie) = session_cookie.as_deref() {
        secrets.push(cookie);
    }
    if let Some(csrf) = doctor.csrf_token() {
        secrets.push(Box::leak(csrf.into_boxed_str()));
    }
    for secret in secrets {
        assert!(!text.contains(secret), "the log holds {secret:?}:\n{text}");
    }
}
