//! What every rendered page gives keyboard and screen-reader users, checked on pages of every
//! level and on error pages: a skip link as the first thing in the body, leading to the main
//! region, which can take the focus. (The browser journeys check the same with a real Tab key,
//! and run axe-core on every page they visit.)

use crate::common;

use common::*;
use medvault::access::Level;
use rocket::http::Status;

fn assert_skip_link_first(page: &Page, what: &str) {
    let body = page
        .body
        .split_once("<body>")
        .map(|(_, b)| b.trim_start())
        .unwrap_or_else(|| panic!("{what}: no <body>: {}", page.body));
    assert!(
        body.starts_with(r##"<a class="skip-link" href="#main">Skip to main content</a>"##),
        "{what}: the body starts with {:?}",
        &body[..body.len().min(120)]
    );
    assert!(
        page.body.contains(r#"<main id="main" tabindex="-1">"#),
        "{what}: no main region the skip link can focus"
    );
}

#[test]
fn every_page_starts_with_a_skip_link_to_the_main_region() {
    let app = TestApp::new();
    let mut guest = app.browser();
    assert_skip_link_first(&guest.get("/login"), "sign-in page");
    let missing = guest.get("/no/such/page");
    missing.assert_status(Status::NotFound);
    assert_skip_link_first(&missing, "404 page");

    for (level, name, path) in [
        (Level::Admin, "admin", "/admin/users"),
        (Level::Doctor, "doc", "/patients"),
        (Level::Patient, "pat", "/records"),
    ] {
        let mut browser = app.signed_in(level, name);
        assert_skip_link_first(&browser.get("/dashboard"), &format!("{name}'s dashboard"));
        let page = browser.get(path);
        page.assert_status(Status::Ok);
        assert_skip_link_first(&page, path);
    }
    let mut patient = app.signed_in(Level::Patient, "pat2");
    let refused = patient.get("/admin/users");
    refused.assert_status(Status::Forbidden);
    assert_skip_link_first(&refused, "403 page");
}

/// A control repeated on every row says which row it acts on, for those who hear it read out
/// of its row; the record page's title names the patient; no table header is empty.
#[test]
fn repeated_controls_name_their_row_and_the_record_page_names_its_patient() {
    use common::record_builders::{doctor_with_patient, fill_record};
    let app = TestApp::new();
    let (mut doctor, patient_id) = doctor_with_patient(&app);
    fill_record(&mut doctor, &patient_id, "row names", "2031-05-06T09:30");
    let page = doctor.get(&format!("/patients/{patient_id}"));
    page.assert_status(Status::Ok);
    assert!(
        page.body
            .contains("<title>Patricia Onewater · record · medvault</title>"),
        "{}",
        between(&page.body, "<title>", "</title>")
    );
    for named in [
        r#"Reveal<span class="visually-hidden"> National ID</span>"#,
        r#"Edit<span class="visually-hidden"> the consultation of "#,
        r#"Download<span class="visually-hidden"> the "#,
        r#"Cancel<span class="visually-hidden"> the appointment of 2031-05-06"#,
        r#"Move<span class="visually-hidden"> the appointment of 2031-05-06"#,
    ] {
        assert!(page.body.contains(named), "no {named:?} on the record page");
    }
    let mut sessions = app.signed_in(Level::Patient, "pat.sessions");
    for path in [
        format!("/patients/{patient_id}"),
        "/account/sessions".to_string(),
    ] {
        let body = if path.starts_with("/patients") {
            page.body.clone()
        } else {
            sessions.get(&path).body
        };
        assert!(!body.contains("<th></th>"), "{path}: an empty table header");
    }
    assert!(sessions
        .get("/account/sessions")
        .body
        .contains(r#"End<span class="visually-hidden"> the session of "#));
}

/// A refused form ties each error to its field: the field is marked invalid and described by
/// its message, which a screen reader then reads with it (WCAG 1.3.1, 3.3.1).
#[test]
fn a_refused_form_marks_each_wrong_field_and_points_it_at_its_message() {
    use common::record_builders::{consultation, doctor_with_patient, post};
    let app = TestApp::new();
    let (mut doctor, patient_id) = doctor_with_patient(&app);
    let form = consultation("bad date").with("occurred_at", "the day before yesterday");
    let page = post(
        &mut doctor,
        &format!("/patients/{patient_id}/consultations"),
        &form,
    );
    page.assert_status(Status::UnprocessableEntity);
    let field = between(&page.body, "<input id=\"occurred_at\"", ">");
    assert!(
        field.contains(r#"aria-invalid="true" aria-describedby="occurred_at-error""#),
        "{field}"
    );
    let message = between(
        &page.body,
        r#"<p class="error" id="occurred_at-error">"#,
        "</p>",
    );
    assert!(!message.trim().is_empty());
    // A field without an error carries neither.
    let fine = between(&page.body, "<input id=\"department\"", ">");
    assert!(!fine.contains("aria-invalid"), "{fine}");
}
