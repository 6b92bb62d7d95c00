//! Sessions are bound to the browser that opened them, and end on every rule the issue names.

use crate::common;

use common::*;
use medvault::access::Level;
use rocket::http::Status;

const OTHER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0) Chrome/128.0";

#[test]
fn session_cookie_is_private_httponly_and_strict() {
    let app = TestApp::new();
    app.create_user(Level::Doctor, "doc");
    let mut browser = app.browser();
    let page = browser.login("doc", PASSWORD);
    let set_cookie = page
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Set-Cookie"))
        .map(|(_, v)| v.as_str())
        .find(|v| v.starts_with("mv_session="))
        .expect("session cookie set");
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    // The value is Rocket's encrypted form, not the 43-character token itself.
    let value = browser.cookie("mv_session").unwrap();
    assert!(value.len() > 60, "{value}");
}

#[test]
fn a_cookie_replayed_from_another_user_agent_is_refused_and_audited() {
    let app = TestApp::new();
    let mut owner = app.signed_in(Level::Patient, "pat");
    let mut thief = owner.clone_with("192.0.2.10:50000", OTHER_AGENT);
    thief
        .get("/dashboard")
        .assert_redirect("/login?ended=browser");
    assert!(app.audit_actions().contains(&"session.ended".to_string()));
    // The session is gone for its owner too: the stolen copy ended it server-side.
    owner.get("/dashboard").assert_redirect("/login");
}

#[test]
fn a_cookie_replayed_from_another_address_is_refused() {
    let app = TestApp::new();
    let owner = app.signed_in(Level::Doctor, "doc");
    let mut thief = owner.clone_with("198.51.100.20:50000", &owner.user_agent.clone());
    thief
        .get("/dashboard")
        .assert_redirect("/login?ended=address");
}

#[test]
fn the_same_browser_keeps_its_session() {
    let app = TestApp::new();
    let owner = app.signed_in(Level::Doctor, "doc");
    // Same address (another source port) and agent: a new connection of the same browser.
    let mut same = owner.clone_with("192.0.2.10:61000", &owner.user_agent.clone());
    same.get("/dashboard").assert_status(Status::Ok);
}

#[test]
fn bindings_can_be_switched_off_by_an_admin() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    admin
        .post(
            "/admin/security",
            &[("bind_ip", "false"), ("bind_user_agent", "false")],
        )
        .assert_redirect("/admin/security");
    let doctor = app.signed_in(Level::Doctor, "doc");
    let mut elsewhere = doctor.clone_with("198.51.100.20:50000", OTHER_AGENT);
    elsewhere.get("/dashboard").assert_status(Status::Ok);
    assert!(app
        .audit_actions()
        .contains(&"admin.security_saved".to_string()));
}

#[test]
fn an_idle_session_ends_after_the_idle_timeout() {
    let app = TestApp::new();
    let mut browser = app.signed_in(Level::Doctor, "doc");
    app.clock.advance(14 * 60);
    browser.get("/dashboard").assert_status(Status::Ok);
    // Activity moved the idle deadline: 14 more minutes are still fine.
    app.clock.advance(14 * 60);
    browser.get("/dashboard").assert_status(Status::Ok);
    app.clock.advance(15 * 60 + 1);
    browser
        .get("/dashboard")
        .assert_redirect("/login?ended=idle");
    // The page the refusal leads to says why the person is there.
    let login = browser.get("/login?ended=idle");
    login.assert_status(Status::Ok);
    assert!(
        login
            .body
            .contains("You were signed out after 15 minutes without activity"),
        "{}",
        login.body
    );
}

#[test]
fn an_active_session_ends_at_its_absolute_lifetime() {
    let app = TestApp::with_config(|c| c.session_key_interval = 7 * 24 * 3600);
    let mut browser = app.signed_in(Level::Doctor, "doc");
    for _ in 0..47 {
        app.clock.advance(10 * 60);
        browser.get("/dashboard").assert_status(Status::Ok);
    }
    // 8 hours and a bit after sign-in.
    app.clock.advance(10 * 60 + 1);
    browser
        .get("/dashboard")
        .assert_redirect("/login?ended=lifetime");
}

#[test]
fn every_session_ends_when_the_session_key_is_renewed() {
    let app = TestApp::new();
    let mut browser = app.signed_in(Level::Doctor, "doc");
    let interval = 24 * 3600;
    let to_renewal = interval - START.rem_euclid(interval);
    // Keep it busy so that only the renewal can end it.
    app.clock.advance(to_renewal - 60);
    let mut fresh = app.browser();
    fresh.login("doc", PASSWORD).assert_redirect("/dashboard");
    app.clock.advance(61);
    browser.get("/dashboard").assert_redirect("/login");
    fresh
        .get("/dashboard")
        .assert_redirect("/login?ended=renewal");
    let actions = app.audit_actions();
    assert!(actions.iter().any(|a| a == "session.ended"), "{actions:?}");
    // Signing in again after the renewal works.
    fresh.login("doc", PASSWORD).assert_redirect("/dashboard");
    fresh.get("/dashboard").assert_status(Status::Ok);
}

#[test]
fn a_tampered_cookie_is_refused() {
    let app = TestApp::new();
    let mut browser = app.signed_in(Level::Doctor, "doc");
    let value = browser.cookie("mv_session").unwrap().to_string();
    let mut bytes = value.into_bytes();
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    browser.set_cookie("mv_session", &String::from_utf8(bytes).unwrap());
    browser.get("/dashboard").assert_redirect("/login");
}

#[test]
fn a_forged_cookie_holding_a_plain_token_is_refused() {
    let app = TestApp::new();
    app.create_user(Level::Admin, "admin");
    let mut forger = app.browser();
    forger.set_cookie("mv_session", &medvault::crypto::random_token());
    forger.get("/admin/users").assert_redirect("/login");
}

#[test]
fn every_sign_in_issues_a_fresh_token_and_sign_out_ends_it_server_side() {
    let app = TestApp::new();
    let mut browser = app.signed_in(Level::Doctor, "doc");
    let first = browser.cookie("mv_session").unwrap().to_string();
    let mut copy = browser.clone_with("192.0.2.10:40000", &browser.user_agent.clone());
    browser.post("/logout", &[]).assert_redirect("/login");
    assert_eq!(browser.cookie("mv_session"), None);
    // The copy still holds the old cookie, but its session no longer exists.
    copy.get("/dashboard").assert_redirect("/login");
    browser.login("doc", PASSWORD).assert_redirect("/dashboard");
    assert_ne!(browser.cookie("mv_session").unwrap(), first);
    browser.get("/dashboard").assert_status(Status::Ok);
}

#[test]
fn forwarding_headers_from_an_untrusted_peer_change_nothing() {
    let app = TestApp::new();
    app.create_user(Level::Doctor, "doc");
    let mut browser = app.browser();
    browser.extra_headers = vec![
        ("X-Real-IP".into(), "203.0.113.9".into()),
        ("X-Forwarded-For".into(), "203.0.113.9".into()),
    ];
    browser.login("doc", PASSWORD).assert_redirect("/dashboard");
    let sessions = browser.get("/account/sessions");
    assert!(
        sessions.body.contains("192.0.2.10"),
        "the socket peer is the address"
    );
    assert!(!sessions.body.contains("203.0.113.9"));
    // Another machine that claims, in headers, to be the first one is still another machine.
    let mut impostor = browser.clone_with("198.51.100.20:40000", &browser.user_agent.clone());
    impostor.extra_headers = vec![
        ("X-Real-IP".into(), "192.0.2.10".into()),
        ("X-Forwarded-For".into(), "192.0.2.10".into()),
    ];
    impostor
        .get("/dashboard")
        .assert_redirect("/login?ended=address");
}

#[test]
fn a_trusted_proxy_names_the_client_and_client_written_entries_are_ignored() {
    let app = TestApp::with_config(|c| c.trusted_proxies = vec!["10.0.0.1".parse().unwrap()]);
    app.create_user(Level::Doctor, "doc");
    let mut browser = Browser::new(&app, "10.0.0.1:443", "Mozilla/5.0 Firefox/130.0");
    // The client wrote the first entry itself; the proxy appended the real address.
    browser.extra_headers = vec![("X-Forwarded-For".into(), "192.0.2.99, 198.51.100.7".into())];
    browser.login("doc", PASSWORD).assert_redirect("/dashboard");
    let sessions = browser.get("/account/sessions");
    assert!(sessions.body.contains("198.51.100.7"), "{}", sessions.body);
    // Behind the same proxy, another client address ends the session.
    browser.extra_headers = vec![("X-Forwarded-For".into(), "198.51.100.8".into())];
    browser
        .get("/dashboard")
        .assert_redirect("/login?ended=address");
}

#[test]
fn users_list_and_revoke_their_own_sessions_only() {
    let app = TestApp::new();
    let mut laptop = app.signed_in(Level::Patient, "pat");
    let mut phone = Browser::new(&app, "192.0.2.77:1000", "Mozilla/5.0 (iPhone) Safari/605.1");
    phone.login("pat", PASSWORD).assert_redirect("/dashboard");
    let mut stranger = app.signed_in(Level::Patient, "other");

    let list = laptop.get("/account/sessions");
    let rows: Vec<&str> = list.body.split("<tr>").skip(2).collect();
    assert_eq!(rows.len(), 2, "two sessions listed");
    let phone_row = rows
        .iter()
        .find(|r| r.contains("Safari on iPhone"))
        .expect("phone listed");
    assert!(phone_row.contains("192.0.2.77"));
    assert!(rows
        .iter()
        .any(|r| r.contains("this browser") && r.contains("Firefox on Linux")));
    let phone_id = session_ids(phone_row).pop().expect("phone session id");

    // Someone else's session id is not theirs to end.
    stranger
        .post(&format!("/account/sessions/{phone_id}/revoke"), &[])
        .assert_status(Status::NotFound);
    phone.get("/dashboard").assert_status(Status::Ok);

    laptop
        .post(&format!("/account/sessions/{phone_id}/revoke"), &[])
        .assert_redirect("/account/sessions");
    phone.get("/dashboard").assert_redirect("/login");
    laptop.get("/dashboard").assert_status(Status::Ok);
}

#[test]
fn an_admin_ends_every_session_of_a_user() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let doctor_id = app.create_user(Level::Doctor, "doc");
    let mut doctor = app.browser();
    doctor.login("doc", PASSWORD).assert_redirect("/dashboard");
    admin
        .post(&format!("/admin/users/{doctor_id}/end-sessions"), &[])
        .assert_redirect(&format!("/admin/users/{doctor_id}"));
    doctor.get("/dashboard").assert_redirect("/login");
    assert!(app
        .audit_actions()
        .contains(&"user.sessions_ended".to_string()));
}

/// The session ids named by revoke forms on a sessions page.
fn session_ids(html: &str) -> Vec<String> {
    html.split("/account/sessions/")
        .skip(1)
        .filter_map(|rest| rest.split_once("/revoke").map(|(id, _)| id.to_string()))
        .collect()
}

#[test]
fn a_malformed_forwarding_header_from_a_trusted_proxy_is_refused_not_taken_for_the_proxy() {
    let app = TestApp::with_config(|c| c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]);
    app.create_user(Level::Doctor, "doc");
    let mut through_proxy = Browser::new(&app, "127.0.0.1:443", "Mozilla/5.0 Firefox/130.0");

    // Entries the client wrote to the left of its own address change nothing: the client is the
    // rightmost untrusted entry, never the proxy.
    for forwarded in ["junk, 203.0.113.7", "unknown, 203.0.113.7"] {
        through_proxy.extra_headers = vec![("X-Forwarded-For".into(), forwarded.into())];
        through_proxy
            .get("/metrics")
            .assert_status(Status::Forbidden);
    }
    through_proxy.extra_headers = vec![("X-Forwarded-For".into(), "junk, 203.0.113.7".into())];
    through_proxy
        .login("doc", PASSWORD)
        .assert_redirect("/dashboard");
    let sessions = through_proxy.get("/account/sessions");
    assert!(sessions.body.contains("203.0.113.7"), "{}", sessions.body);
    assert!(!sessions.body.contains("127.0.0.1"), "{}", sessions.body);

    // A client entry that is not a bare address is a 400 page on every route, public or not.
    for forwarded in [
        "203.0.113.7:51234",
        "[2001:db8::7]:443",
        "unknown",
        "junk",
        "203.0.113.7, unknown",
        "203.0.113.7,",
    ] {
        through_proxy.extra_headers = vec![("X-Forwarded-For".into(), forwarded.into())];
        for path in ["/metrics", "/login", "/dashboard", "/health"] {
            let page = through_proxy.get(path);
            page.assert_status(Status::BadRequest);
            assert!(
                page.body
                    .contains("X-Forwarded-For header that does not name a client address"),
                "{forwarded} on {path}: {}",
                page.body
            );
        }
    }

    // The proxy's own request (no header) is the proxy, as before.
    through_proxy.extra_headers.clear();
    through_proxy.get("/metrics").assert_status(Status::Ok);
}

/// Each way a session ends is named on the sign-in page, not only "it ended".
#[test]
fn the_sign_in_page_says_why_the_session_ended() {
    let app = TestApp::new();
    let mut browser = app.browser();
    for (code, says) in [
        ("lifetime", "Sessions last 8 hours from sign-in"),
        ("address", "network address changed"),
        ("browser", "the browser changed"),
        ("renewal", "when the session keys were renewed"),
        ("revoked", "ended elsewhere"),
        ("deactivated", "This account has been deactivated"),
        ("1", "Your session has ended"),
        ("nonsense", "Your session has ended"),
    ] {
        let page = browser.get(&format!("/login?ended={code}"));
        page.assert_status(Status::Ok);
        assert!(page.body.contains(says), "{code}: {}", page.body);
    }
}

/// A session revoked from another browser: this one is told so.
#[test]
fn a_session_revoked_elsewhere_says_so() {
    let app = TestApp::new();
    let mut laptop = app.signed_in(Level::Doctor, "doc");
    let mut phone = Browser::new(&app, "192.0.2.77:1000", "Mozilla/5.0 (iPhone) Safari/605.1");
    phone.login("doc", PASSWORD).assert_redirect("/dashboard");
    // The laptop's session is revoked from the phone's list of sessions.
    let sessions = phone.get("/account/sessions");
    let laptop_row = sessions
        .body
        .split("<tr>")
        .find(|row| row.contains("Firefox on Linux"))
        .expect("the laptop is listed");
    let id = session_ids(laptop_row).pop().expect("its session id");
    phone
        .post(&format!("/account/sessions/{id}/revoke"), &[])
        .assert_redirect("/account/sessions");
    laptop
        .get("/dashboard")
        .assert_redirect("/login?ended=revoked");
}

/// After an idle timeout, signing in again goes back to the record the doctor was opening,
/// not to the dashboard; once only.
#[test]
fn signing_in_after_a_timeout_returns_to_the_page_that_was_open() {
    let app = TestApp::new();
    let (mut doctor, patient) = crate::common::record_builders::doctor_with_patient(&app);
    let record = format!("/patients/{patient}");
    doctor.get(&record).assert_status(Status::Ok);
    app.clock.advance(15 * 60 + 1);
    doctor.get(&record).assert_redirect("/login?ended=idle");
    doctor.login("dr.grey", PASSWORD).assert_redirect(&record);
    doctor.get(&record).assert_status(Status::Ok);
    // Remembered once: the next sign-in starts at the dashboard again.
    doctor.post("/logout", &[]).assert_redirect("/login");
    doctor
        .login("dr.grey", PASSWORD)
        .assert_redirect("/dashboard");
}

/// A shared workstation: the doctor's session timed out on a record, and a colleague signs in
/// on the same browser. The colleague starts at the dashboard, not on the other's patient.
#[test]
fn the_page_an_ended_session_was_opening_is_offered_to_its_own_user_only() {
    let app = TestApp::new();
    let (mut browser, patient) = crate::common::record_builders::doctor_with_patient(&app);
    app.create_user(Level::Doctor, "dr.other");
    let record = format!("/patients/{patient}");
    browser.get(&record).assert_status(Status::Ok);
    app.clock.advance(15 * 60 + 1);
    browser.get(&record).assert_redirect("/login?ended=idle");
    browser
        .login("dr.other", PASSWORD)
        .assert_redirect("/dashboard");
    // And the page is forgotten: its owner, signing in next, starts at the dashboard too.
    browser.post("/logout", &[]).assert_redirect("/login");
    browser
        .login("dr.grey", PASSWORD)
        .assert_redirect("/dashboard");
}
