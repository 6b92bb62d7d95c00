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

/// WCAG's contrast ratio of two `#rrggbb` colours.
fn contrast(a: &str, b: &str) -> f64 {
    let luminance = |hex: &str| {
        let channel = |i: usize| {
            let c =
                f64::from(u8::from_str_radix(&hex[1 + 2 * i..3 + 2 * i], 16).expect("hex")) / 255.0;
            if c <= 0.03928 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(0) + 0.7152 * channel(1) + 0.0722 * channel(2)
    };
    let (x, y) = (luminance(a), luminance(b));
    (x.max(y) + 0.05) / (x.min(y) + 0.05)
}

/// The borders of fields and the focus ring stand out 3:1 from the backgrounds they sit on
/// (WCAG 1.4.11), as the served style sheet sets them; text areas are styled as fields.
#[test]
fn field_borders_and_the_focus_ring_have_three_to_one_contrast() {
    let app = TestApp::new();
    let css = app.browser().get("/static/medvault.css").body;
    let var = |name: &str| {
        between(&css, &format!("--{name}: "), ";")
            .trim()
            .to_string()
    };
    let (paper, wash, brand, brand_ink) =
        (var("paper"), var("wash"), var("brand"), var("brand-ink"));
    for (what, colour) in [
        ("field border", var("field-line")),
        ("focus ring", var("focus")),
    ] {
        for (background, on) in [("paper", &paper), ("wash", &wash)] {
            let ratio = contrast(&colour, on);
            assert!(
                ratio >= 3.0,
                "{what} {colour} on {background} {on}: {ratio:.2}:1"
            );
        }
    }
    assert!(
        contrast(&brand_ink, &brand) >= 3.0,
        "the top bar's focus ring"
    );
    assert!(
        css.contains("input, select, textarea { font: inherit;")
            && css.contains("border: 1px solid var(--field-line)"),
        "fields take the field border"
    );
    assert!(css.contains("textarea:focus") && css.contains("outline: 3px solid var(--focus)"));
    assert!(
        css.contains(".topbar a:focus, .topbar button:focus { outline-color: var(--brand-ink); }")
    );
}
