//! Every form post needs its session's CSRF token and medvault's own Origin.

use crate::common;

use common::*;
use medvault::access::Level;
use rocket::http::{Method, Status};

/// Every POST route, with dynamic segments filled in.
fn post_routes(app: &TestApp) -> Vec<String> {
    app.client
        .rocket()
        .routes()
        .filter(|r| r.method == Method::Post)
        .map(|r| {
            r.uri
                .path()
                .split('/')
                .map(|seg| if seg.starts_with('<') { "someid" } else { seg })
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect()
}

#[test]
fn every_post_without_the_token_or_with_a_wrong_one_is_refused() {
    let app = TestApp::new();
    // Every page open to the admin, so that the CSRF check (not the page guard) answers.
    app.app().access.replace(
        medvault::access::Page::grantable()
            .map(|page| (Level::Admin, page))
            .collect(),
    );
    let mut admin = app.signed_in(Level::Admin, "admin");
    let token = {
        admin.get("/admin/users");
        admin.get("/account/password").csrf_token().unwrap()
    };
    let routes = post_routes(&app);
    assert!(routes.len() >= 10);
    for path in routes {
        let missing = admin.post_form(&path, &[], Some(ORIGIN));
        assert_eq!(
            missing.status,
            Status::Forbidden,
            "POST {path} without a token"
        );
        assert!(
            missing.body.contains("did not come from medvault"),
            "{path}"
        );
        let wrong = admin.post_form(&path, &[("csrf_token", "not-the-token")], Some(ORIGIN));
        assert_eq!(
            wrong.status,
            Status::Forbidden,
            "POST {path} with a wrong token"
        );
        let foreign = admin.post_form(
            &path,
            &[("csrf_token", &token)],
            Some("https://evil.example"),
        );
        assert_eq!(
            foreign.status,
            Status::Forbidden,
            "POST {path} from a foreign origin"
        );
    }
    // The session survived all of that and its real token still works.
    admin.get("/admin/users").assert_status(Status::Ok);
    let refused = app
        .audit_actions()
        .iter()
        .filter(|a| *a == "csrf.refused")
        .count();
    assert!(refused >= 30, "{refused} refusals audited");
}

#[test]
fn a_refused_post_changes_nothing() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    admin
        .post_form(
            "/admin/users",
            &[
                ("csrf_token", "forged"),
                ("username", "intruder"),
                ("level", "admin"),
            ],
            Some(ORIGIN),
        )
        .assert_status(Status::Forbidden);
    let list = admin.get("/admin/users?q=intruder");
    assert!(list.body.contains("No user matches"));
}

#[test]
fn another_sessions_token_is_not_this_sessions_token() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let mut attacker = app.signed_in(Level::Patient, "pat");
    let attacker_token = attacker.get("/account/password").csrf_token().unwrap();
    admin
        .post_form(
            "/admin/security",
            &[("csrf_token", &attacker_token), ("bind_ip", "false")],
            Some(ORIGIN),
        )
        .assert_status(Status::Forbidden);
}

#[test]
fn an_origin_of_null_or_a_cross_site_fetch_is_refused() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let token = admin.get("/admin/security").csrf_token().unwrap();
    admin
        .post_form("/admin/security", &[("csrf_token", &token)], Some("null"))
        .assert_status(Status::Forbidden);
    admin.extra_headers = vec![("Sec-Fetch-Site".into(), "cross-site".into())];
    admin
        .post_form("/admin/security", &[("csrf_token", &token)], None)
        .assert_status(Status::Forbidden);
    admin.extra_headers.clear();
    admin
        .post_form(
            "/admin/security",
            &[("csrf_token", &token), ("bind_ip", "true")],
            Some(ORIGIN),
        )
        .assert_redirect("/admin/security");
}

#[test]
fn the_sign_in_form_needs_its_own_token_too() {
    let app = TestApp::new();
    app.create_user(Level::Doctor, "doc");
    let mut browser = app.browser();
    browser.get("/login");
    browser
        .post_form(
            "/login",
            &[("username", "doc"), ("password", PASSWORD)],
            Some(ORIGIN),
        )
        .assert_status(Status::Forbidden);
    // A token from another browser's sign-in form does not fit this browser's cookie.
    let mut other = app.browser();
    let foreign_token = other.get("/login").csrf_token().unwrap();
    browser
        .post_form(
            "/login",
            &[
                ("csrf_token", &foreign_token),
                ("username", "doc"),
                ("password", PASSWORD),
            ],
            Some(ORIGIN),
        )
        .assert_status(Status::Forbidden);
    // From a foreign site, even with the right token.
    let own_token = browser.get("/login").csrf_token().unwrap();
    browser
        .post_form(
            "/login",
            &[
                ("csrf_token", &own_token),
                ("username", "doc"),
                ("password", PASSWORD),
            ],
            Some("https://evil.example"),
        )
        .assert_status(Status::Forbidden);
    assert_eq!(browser.cookie("mv_session"), None);
}

#[test]
fn no_get_route_changes_state() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let before = app.audit_actions().len();
    for route in app.client.rocket().routes() {
        if route.method != Method::Get {
            continue;
        }
        let path: String = route
            .uri
            .path()
            .split('/')
            .map(|seg| if seg.starts_with('<') { "someid" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        admin.get(&path);
    }
    // Reading may be recorded (a download, a refusal); nothing else may be written.
    let reads = ["backup.downloaded", "backup.refused", "access.denied"];
    let written: Vec<String> = app.audit_actions()[before..]
        .iter()
        .filter(|a| !reads.contains(&a.as_str()))
        .cloned()
        .collect();
    assert!(written.is_empty(), "a GET wrote {written:?}");
    admin.get("/admin/users").assert_status(Status::Ok);
}
