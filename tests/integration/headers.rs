//! Headers on every response, and error pages that say what happened without showing internals.

use crate::common;

use common::*;
use medvault::access::Level;
use rocket::http::Status;

const INTERNALS: &[&str] = &[
    "panicked",
    "backtrace",
    "diesel",
    "sqlite",
    "no such table",
    "rocket::",
    "src/",
    ".rs:",
    "thread '",
];

#[track_caller]
fn assert_security_headers(page: &Page, what: &str) {
    let csp = page
        .header("Content-Security-Policy")
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"));
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-eval"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(csp.contains("default-src 'none'"), "{what}: {csp}");
    assert!(
        !csp.contains("http:") && !csp.contains("https:"),
        "{what}: no CDN: {csp}"
    );
    assert_eq!(
        page.header("X-Content-Type-Options"),
        Some("nosniff"),
        "{what}"
    );
    let referrer = page
        .header("Referrer-Policy")
        .unwrap_or_else(|| panic!("{what}: no Referrer-Policy"));
    assert!(!referrer.contains("unsafe-url"), "{what}: {referrer}");
    assert_eq!(page.header("X-Frame-Options"), Some("DENY"), "{what}");
    assert!(
        page.header("Server").is_none(),
        "{what}: Server header {:?}",
        page.header("Server")
    );
    // Only one value of each: a second, weaker policy would undo the first.
    let csp_count = page
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Content-Security-Policy"))
        .count();
    assert_eq!(csp_count, 1, "{what}");
}

#[track_caller]
fn assert_no_store(page: &Page, what: &str) {
    let cache = page.header("Cache-Control").unwrap_or_default();
    assert!(
        cache.contains("no-store"),
        "{what}: Cache-Control {cache:?}"
    );
}

#[track_caller]
fn assert_rendered_error(page: &Page, status: Status, message: &str) {
    page.assert_status(status);
    let content_type = page.header("Content-Type").unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(page.body.starts_with("<!doctype html>"), "{}", page.body);
    assert!(
        page.body.contains(&format!("<h1>{} · ", status.code)),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(message),
        "expected {message:?}: {}",
        page.body
    );
    assert!(
        page.body.contains("/static/medvault.css"),
        "the page uses the layout"
    );
    let lower = page.body.to_lowercase();
    for word in INTERNALS {
        assert!(
            !lower.contains(word),
            "{word:?} in the error page: {}",
            page.body
        );
    }
    assert_security_headers(page, &format!("{status} page"));
    assert_no_store(page, &format!("{status} page"));
}

#[test]
fn every_kind_of_response_carries_the_security_headers() {
    let app = TestApp::new();
    let mut guest = app.browser();
    assert_security_headers(&guest.get("/login"), "public page");
    assert_security_headers(&guest.get("/health"), "health");
    assert_security_headers(&guest.get("/static/medvault.css"), "style sheet");
    assert_security_headers(&guest.get("/dashboard"), "redirect to sign-in");
    assert_security_headers(&guest.get("/no/such/page"), "404");
    let refused = guest.post_form("/login", &[("username", "x")], Some("https://evil.example"));
    refused.assert_status(Status::Forbidden);
    assert_security_headers(&refused, "refused post");

    let mut patient = app.signed_in(Level::Patient, "pat");
    assert_security_headers(&patient.get("/dashboard"), "signed-in page");
    let denied = patient.get("/admin/users");
    denied.assert_status(Status::Forbidden);
    assert_security_headers(&denied, "403");
    let posted = patient.post("/logout", &[]);
    posted.assert_redirect("/login");
    assert_security_headers(&posted, "post answer");
}

#[test]
fn pages_behind_a_login_are_never_stored() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    for path in [
        "/dashboard",
        "/account/password",
        "/account/sessions",
        "/admin/users",
        "/admin/users/new",
        "/admin/access",
        "/admin/security",
        "/admin/audit",
    ] {
        let page = admin.get(path);
        page.assert_status(Status::Ok);
        assert_no_store(&page, path);
        assert_security_headers(&page, path);
    }
    // So is the page that shows a one-time password.
    admin.get("/admin/users/new");
    let shown = admin.post(
        "/admin/users",
        &[("username", "newbie"), ("level", "doctor")],
    );
    shown.assert_status(Status::Ok);
    assert_no_store(&shown, "one-time password page");
}

#[test]
fn the_style_sheet_may_be_cached() {
    let app = TestApp::new();
    let page = app.browser().get("/static/medvault.css");
    page.assert_status(Status::Ok);
    assert!(page
        .header("Content-Type")
        .unwrap_or_default()
        .starts_with("text/css"));
    let cache = page.header("Cache-Control").unwrap_or_default();
    assert!(!cache.contains("no-store"), "{cache}");
    assert!(cache.contains("max-age="), "{cache}");
    assert!(!page.body.contains("@import url(http"), "no CDN");
}

#[test]
fn pages_load_no_inline_script_and_nothing_from_elsewhere() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    for path in ["/login", "/dashboard", "/admin/users", "/admin/audit"] {
        let body = if path == "/login" {
            app.browser().get(path).body
        } else {
            admin.get(path).body
        };
        assert!(!body.contains("<script"), "{path}");
        assert!(!body.contains(" onclick="), "{path}");
        assert!(!body.contains(" style=\""), "{path}");
        assert!(!body.contains("src=\"http"), "{path}");
        assert!(!body.contains("href=\"http"), "{path}");
    }
}

#[test]
fn an_unknown_page_is_a_rendered_404() {
    let app = TestApp::new();
    let mut guest = app.browser();
    let page = guest.get("/no/such/page");
    assert_rendered_error(&page, Status::NotFound, "There is nothing here.");
    let mut admin = app.signed_in(Level::Admin, "admin");
    let page = admin.get("/admin/users/no-such-id");
    assert_rendered_error(&page, Status::NotFound, "There is nothing here.");
}

#[test]
fn a_denied_page_is_a_rendered_403() {
    let app = TestApp::new();
    let mut doctor = app.signed_in(Level::Doctor, "drgrey");
    let page = doctor.get("/admin/audit");
    assert_rendered_error(
        &page,
        Status::Forbidden,
        "You do not have access to this page.",
    );
    let forged = doctor.post_form("/logout", &[("csrf_token", "forged")], Some(ORIGIN));
    assert_rendered_error(&forged, Status::Forbidden, "This form has expired");
}

#[test]
fn an_oversized_form_is_refused_with_a_rendered_page() {
    let app = TestApp::new();
    let mut guest = app.browser();
    let token = guest.get("/login").csrf_token().expect("csrf");
    let huge = "x".repeat(100 * 1024);
    let page = guest.post_form(
        "/login",
        &[
            ("csrf_token", &token),
            ("username", &huge),
            ("password", "p"),
        ],
        Some(ORIGIN),
    );
    assert_eq!(page.status, Status::PayloadTooLarge, "{}", page.body);
    assert!(page.body.contains("What you sent is too large."));
    assert!(page.body.starts_with("<!doctype html>"), "{}", page.body);
    let lower = page.body.to_lowercase();
    for word in INTERNALS {
        assert!(!lower.contains(word), "{word:?}: {}", page.body);
    }
    assert_security_headers(&page, "oversized form");
}

#[test]
fn a_server_error_shows_no_internals() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    admin.get("/dashboard").assert_status(Status::Ok);
    // The database loses a table behind the server's back.
    app.raw_sql("ALTER TABLE users RENAME TO users_gone;");
    let page = admin.get("/dashboard");
    assert_rendered_error(
        &page,
        Status::InternalServerError,
        "Something went wrong on our side.",
    );
}

#[test]
fn a_host_medvault_does_not_answer_for_is_refused_on_every_route() {
    use rocket::http::Header;
    let app = TestApp::new();
    app.create_user(Level::Admin, "admin");
    // A rebinding page on the attacker's name, resolving to medvault's address.
    for path in [
        "/login",
        "/metrics",
        "/health",
        "/dashboard",
        "/static/medvault.css",
    ] {
        let res = app
            .client
            .get(path)
            .remote("127.0.0.1:50000".parse().unwrap())
            .header(Header::new("Host", "attacker.example:8000"))
            .dispatch();
        assert_eq!(res.status(), Status::MisdirectedRequest, "{path}");
        let body = res.into_string().unwrap_or_default();
        assert!(
            body.contains("does not answer for the host name"),
            "{path}: {body}"
        );
    }
    let res = app
        .client
        .post("/login")
        .remote("127.0.0.1:50000".parse().unwrap())
        .header(Header::new("Host", "attacker.example"))
        .header(Header::new("Origin", "http://attacker.example"))
        .header(rocket::http::ContentType::Form)
        .body("username=admin&password=x&csrf_token=x")
        .dispatch();
    assert_eq!(res.status(), Status::MisdirectedRequest);
    // Its own name still works, and so does loopback's /metrics under it.
    let mut local = Browser::new(&app, "127.0.0.1:50000", "prometheus");
    local.get("/metrics").assert_status(Status::Ok);
}

/// The `Set-Cookie` headers of `page`.
fn set_cookies(page: &Page) -> Vec<&str> {
    page.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Set-Cookie"))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Behind a proxy that terminates TLS, the proxy's `X-Forwarded-Proto: https` makes cookies
/// `Secure` and sends HSTS; the same header from any other peer, or `http` from the proxy,
/// changes nothing.
#[test]
fn cookies_are_secure_and_hsts_is_sent_when_a_trusted_proxy_forwards_https() {
    let app = TestApp::with_config(|c| c.trusted_proxies = vec!["10.0.0.1".parse().unwrap()]);
    app.create_user(Level::Doctor, "doc");
    let mut via_proxy = Browser::new(&app, "10.0.0.1:443", "Mozilla/5.0 Firefox/130.0");
    via_proxy.extra_headers = vec![
        ("X-Forwarded-For".into(), "198.51.100.7".into()),
        ("X-Forwarded-Proto".into(), "https".into()),
    ];
    let login = via_proxy.get("/login");
    assert!(
        login
            .header("Strict-Transport-Security")
            .is_some_and(|v| v.contains("max-age=31536000")),
        "{:?}",
        login.headers
    );
    let csrf = set_cookies(&login);
    assert!(
        !csrf.is_empty() && csrf.iter().all(|c| c.contains("Secure")),
        "{csrf:?}"
    );
    let signed_in = via_proxy.login("doc", PASSWORD);
    signed_in.assert_redirect("/dashboard");
    let session: Vec<&str> = set_cookies(&signed_in)
        .into_iter()
        .filter(|c| c.starts_with("mv_session="))
        .collect();
    assert!(
        session.len() == 1 && session[0].contains("Secure"),
        "{session:?}"
    );
    via_proxy.get("/dashboard").assert_status(Status::Ok);

    // The proxy saying plain HTTP, and a client that is not the proxy writing the header.
    let mut plain_via_proxy = Browser::new(&app, "10.0.0.1:443", "Mozilla/5.0 Firefox/130.0");
    plain_via_proxy.extra_headers = vec![
        ("X-Forwarded-For".into(), "198.51.100.8".into()),
        ("X-Forwarded-Proto".into(), "http".into()),
    ];
    let mut forger = app.browser();
    forger.extra_headers = vec![("X-Forwarded-Proto".into(), "https".into())];
    for (who, browser) in [
        ("plain via the proxy", &mut plain_via_proxy),
        ("forged", &mut forger),
    ] {
        let page = browser.get("/login");
        assert!(
            page.header("Strict-Transport-Security").is_none(),
            "{who}: no HSTS"
        );
        let cookies = set_cookies(&page);
        assert!(!cookies.is_empty(), "{who}: a CSRF cookie");
        assert!(
            cookies.iter().all(|c| !c.contains("Secure")),
            "{who}: {cookies:?}"
        );
    }
}
