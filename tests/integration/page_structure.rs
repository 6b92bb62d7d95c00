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
