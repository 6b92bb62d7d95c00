//! Page access is denied by default: every mounted route is walked as a guest and as users whose
//! level was granted nothing, and the admin's grid decides the rest.

use crate::common;

use common::*;
use medvault::access::Level;
use rocket::http::{Method, Status};

/// Open to everyone.
const PUBLIC: &[&str] = &[
    "GET /",
    "GET /login",
    "POST /login",
    "GET /setup",
    "POST /setup",
    "GET /health",
    "GET /static/medvault.css",
    "GET /favicon.ico",
    "GET /login/2fa",
    "POST /login/2fa",
    "GET /metrics",
];

/// Open to every signed-in user whatever the grid says.
const SIGNED_IN: &[&str] = &[
    "GET /dashboard",
    "POST /logout",
    "GET /account/password",
    "POST /account/password",
    "GET /account/2fa",
    "POST /account/2fa/start",
    "POST /account/2fa/confirm",
    "POST /account/2fa/disable",
];

/// Every mounted route as "METHOD /path", with each dynamic segment filled with `filler`.
fn mounted_routes(app: &TestApp, filler: &str) -> Vec<(Method, String)> {
    app.client
        .rocket()
        .routes()
        .map(|route| {
            let path = route
                .uri
                .path()
                .split('/')
                .map(|seg| if seg.starts_with('<') { filler } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            (route.method, path)
        })
        .collect()
}

fn request(browser: &mut Browser<'_>, method: Method, path: &str) -> Page {
    match method {
        Method::Get => browser.get(path),
        Method::Post => browser.post(path, &[]),
        other => panic!("a route with method {other} needs a case here"),
    }
}

#[test]
fn a_guest_is_sent_to_sign_in_from_every_route_that_is_not_public() {
    let app = TestApp::new();
    let routes = mounted_routes(&app, "someid");
    assert!(routes.len() > 20, "all areas are mounted");
    let mut guest = app.browser();
    for (method, path) in routes {
        let key = format!("{method} {path}");
        if PUBLIC.contains(&key.as_str()) {
            continue;
        }
        let page = request(&mut guest, method, &path);
        assert_eq!(page.status, Status::SeeOther, "{key} answered a guest");
        assert_eq!(page.location.as_deref(), Some("/login"), "{key}");
    }
}

#[test]
fn nothing_opens_for_a_level_that_was_granted_nothing() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    // Untick everything: only the pinned admin grant survives.
    admin
        .post("/admin/access", &[])
        .assert_redirect("/admin/access");
    for (level, name) in [(Level::Doctor, "doc"), (Level::Patient, "pat")] {
        let mut user = app.signed_in(level, name);
        for (method, path) in mounted_routes(&app, "someid") {
            let key = format!("{method} {path}");
            if PUBLIC.contains(&key.as_str()) || SIGNED_IN.contains(&key.as_str()) {
                continue;
            }
            let page = request(&mut user, method, &path);
            assert_eq!(page.status, Status::Forbidden, "{key} opened for {name}");
            assert!(
                page.body.contains("You do not have access"),
                "{key}: rendered 403 page"
            );
        }
        user.get("/dashboard").assert_status(Status::Ok);
    }
    // Admins lost everything but the grid itself, which gives the rest back.
    admin.get("/admin/users").assert_status(Status::Forbidden);
    admin.get("/admin/access").assert_status(Status::Ok);
}

#[test]
fn a_patient_asking_for_each_admin_page_gets_403_and_an_audit_event() {
    let app = TestApp::new();
    let mut patient = app.signed_in(Level::Patient, "pat");
    for path in [
        "/admin/users",
        "/admin/users/new",
        "/admin/access",
        "/admin/security",
        "/admin/audit",
    ] {
        patient.get(path).assert_status(Status::Forbidden);
    }
    let denied = app
        .audit_actions()
        .iter()
        .filter(|a| *a == "access.denied")
        .count();
    assert_eq!(denied, 5);
}

#[test]
fn default_grants_fit_each_level() {
    let app = TestApp::new();
    let mut doctor = app.signed_in(Level::Doctor, "doc");
    doctor.get("/account/sessions").assert_status(Status::Ok);
    doctor.get("/admin/audit").assert_status(Status::Forbidden);
    let mut admin = app.signed_in(Level::Admin, "admin");
    for path in [
        "/admin/users",
        "/admin/access",
        "/admin/security",
        "/admin/audit",
    ] {
        admin.get(path).assert_status(Status::Ok);
    }
}

#[test]
fn the_navigation_shows_only_pages_the_level_may_open() {
    let app = TestApp::new();
    let mut patient = app.signed_in(Level::Patient, "pat");
    let page = patient.get("/dashboard");
    assert!(page.body.contains("href=\"/account/sessions\""));
    assert!(!page.body.contains("href=\"/admin/"), "{}", page.body);
}

#[test]
fn the_admin_grid_grants_and_withdraws_in_one_save() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let mut patient = app.signed_in(Level::Patient, "pat");
    patient.get("/admin/audit").assert_status(Status::Forbidden);
    admin
        .post(
            "/admin/access",
            &[
                ("grant", "patient:AdminAudit"),
                ("grant", "admin:AdminUsers"),
            ],
        )
        .assert_redirect("/admin/access");
    patient.get("/admin/audit").assert_status(Status::Ok);
    // Withdrawn in the same save: sessions for everyone, audit for admins.
    patient
        .get("/account/sessions")
        .assert_status(Status::Forbidden);
    admin.get("/admin/audit").assert_status(Status::Forbidden);
    admin.get("/admin/users").assert_status(Status::Ok);
    let grid = admin.get("/admin/access");
    assert!(grid.body.contains("value=\"patient:AdminAudit\" checked"));
    assert!(app
        .audit_actions()
        .contains(&"admin.access_saved".to_string()));
}

#[test]
fn an_unknown_page_or_level_in_the_grid_changes_nothing() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    for bad in [
        "patient:NoSuchPage",
        "guest:AdminUsers",
        "patient:Login",
        "nonsense",
    ] {
        let page = admin.post(
            "/admin/access",
            &[("grant", "patient:AdminAudit"), ("grant", bad)],
        );
        page.assert_status(Status::UnprocessableEntity);
        assert!(page.body.contains("nothing was saved"), "{bad}");
    }
    let mut patient = app.signed_in(Level::Patient, "pat");
    patient.get("/admin/audit").assert_status(Status::Forbidden);
    patient.get("/account/sessions").assert_status(Status::Ok);
}

#[test]
fn a_route_without_a_page_guard_is_refused_by_the_backstop() {
    use rocket::{get, routes};

    #[get("/forgotten-guard")]
    fn forgotten_guard() -> &'static str {
        "secret data"
    }

    let home = tempfile::tempdir().unwrap();
    let rocket = medvault::build_rocket(home_config(home.path()))
        .unwrap()
        .mount("/", routes![forgotten_guard]);
    let client = rocket::local::blocking::Client::untracked(rocket).unwrap();
    let res = client.get("/forgotten-guard").dispatch();
    assert_eq!(res.status(), Status::Forbidden);
    assert!(!res
        .into_string()
        .unwrap_or_default()
        .contains("secret data"));
}
