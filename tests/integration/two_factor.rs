//! Two-factor sign-in: enrolment with a server-held secret, codes that work once within one step
//! either side, recovery codes, the half-signed-in state, admin reset and required levels.

use crate::common;

use common::*;
use medvault::access::Level;
use medvault::crypto::{totp_code_at_step, totp_step};
use rocket::http::Status;

/// The secret the enrolment page shows, as bytes.
fn secret_from(page: &Page) -> Vec<u8> {
    let start = page
        .body
        .find("class=\"secret-key\">")
        .expect("secret shown")
        + 19;
    let end = page.body[start..].find('<').unwrap() + start;
    totp_rs::Secret::Encoded(page.body[start..end].to_string())
        .to_bytes()
        .expect("base32 secret")
}

fn code(app: &TestApp, secret: &[u8], offset: i64) -> String {
    totp_code_at_step(secret, totp_step(app.clock.now()) + offset, 6)
}

/// Enrols `browser`'s user; returns the secret and the recovery codes.
fn enrol(app: &TestApp, browser: &mut Browser<'_>) -> (Vec<u8>, Vec<String>) {
    browser.get("/account/2fa").assert_status(Status::Ok);
    let page = browser.post("/account/2fa/start", &[]);
    page.assert_status(Status::Ok);
    assert!(
        page.body.contains("data:image/png;base64,"),
        "QR code drawn"
    );
    let secret = secret_from(&page);
    let done = browser.post("/account/2fa/confirm", &[("code", &code(app, &secret, 0))]);
    done.assert_status(Status::Ok);
    let codes: Vec<String> = done
        .body
        .split("<li><code>")
        .skip(1)
        .filter_map(|s| s.split_once("</code>").map(|(c, _)| c.to_string()))
        .collect();
    assert_eq!(codes.len(), 10, "ten recovery codes shown once");
    (secret, codes)
}

/// Signs in with the password; returns the page after it.
fn password_step(browser: &mut Browser<'_>, username: &str) -> Page {
    let page = browser.login(username, PASSWORD);
    page.assert_redirect("/login/2fa");
    page
}

fn code_step(browser: &mut Browser<'_>, code: &str) -> Page {
    let form = browser.get("/login/2fa");
    form.assert_status(Status::Ok);
    let token = form.csrf_token().unwrap();
    browser.post_form(
        "/login/2fa",
        &[("csrf_token", &token), ("code", code)],
        Some(ORIGIN),
    )
}

#[test]
fn enrolment_keeps_the_secret_on_the_server_sealed_and_ignores_one_sent_back() {
    let app = TestApp::new();
    let mut doctor = app.signed_in(Level::Doctor, "doc");
    let page = doctor.post("/account/2fa/start", &[]);
    let secret = secret_from(&page);
    // A wrong code, and a secret of the attacker's choosing in the form, change nothing.
    let wrong = doctor.post(
        "/account/2fa/confirm",
        &[("code", "000000"), ("secret", "JBSWY3DPEHPK3PXP")],
    );
    wrong.assert_status(Status::UnprocessableEntity);
    assert!(wrong.body.contains("does not match"));
    let right = doctor.post("/account/2fa/confirm", &[("code", &code(&app, &secret, 0))]);
    right.assert_status(Status::Ok);
    let stored: Vec<String> = {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct Stored {
            #[diesel(sql_type = diesel::sql_types::Text)]
            secret: String,
        }
        let mut conn = app.app().db.conn().unwrap();
        diesel::sql_query("SELECT secret FROM two_factor")
            .load::<Stored>(&mut *conn)
            .unwrap()
            .into_iter()
            .map(|s| s.secret)
            .collect()
    };
    assert_eq!(stored.len(), 1);
    assert!(stored[0].starts_with("mv1:"), "sealed: {}", stored[0]);
    assert!(!stored[0].contains(&hex::encode(&secret)));
    assert!(app.audit_actions().contains(&"2fa.enrolled".to_string()));
}

#[test]
fn signing_in_needs_the_code_after_the_password() {
    let app = TestApp::new();
    let mut doctor = app.signed_in(Level::Doctor, "doc");
    let (secret, _) = enrol(&app, &mut doctor);
    // The enrolment used this step's code: sign in with the next one.
    app.clock.advance(30);
    let mut browser = app.browser();
    password_step(&mut browser, "doc");
    // Half signed in: no page opens yet.
    browser.get("/dashboard").assert_redirect("/login");
    browser.get("/account/2fa").assert_redirect("/login");
    let done = code_step(&mut browser, &code(&app, &secret, 0));
    done.assert_redirect("/dashboard");
    browser.get("/dashboard").assert_status(Status::Ok);
}

#[test]
fn a_code_works_once_and_an_older_one_never_after_it() {
    let app = TestApp::new();
    let mut doctor = app.signed_in(Level::Doctor, "doc");
    let (secret, _) = enrol(&app, &mut doctor);
    app.clock.advance(60);
    let current = code(&app, &secret, 0);
    let mut first = app.browser();
    password_step(&mut first, "doc");
    code_step(&mut first, &current).assert_redirect("/dashboard");
    // The same code again: refused.
    let mut replay = app.browser();
    password_step(&mut replay, "doc");
    code_step(&mut replay, &current).assert_status(Status::Unauthorized);
    // The previous step's code is inside the window but older than the one used: refused.
    code_step(&mut replay, &code(&app, &secret, -1)).assert_status(Status::Unauthorized);
    // The next step's code works.
    code_step(&mut replay, &code(&app, &secret, 1)).assert_redirect("/dashboard");
    assert!(app.audit_actions().contains(&"2fa.failure".to_string()));
}

#[test]
fn one_step_either_side_is_accepted_and_two_are_not() {
    let app = TestApp::new();
    let mut doctor = app.signed_in(Level::Doctor, "doc");
    let (secret, _) = enrol(&app, &mut doctor);
    app.clock.advance(300);
    let mut browser = app.browser();
    password_step(&mut browser, "doc");
    code_step(&mut browser, &code(&app, &secret, 2)).assert_status(Status::Unauthorized);
    code_step(&mut browser, &code(&app, &secret, -2)).assert_status(Status::Unauthorized);
    code_step(&mut browser, &code(&app, &secret, -1)).assert_redirect("/dashboard");
    let mut other = app.browser();
    password_step(&mut other, "doc");
    code_step(&mut other, &code(&app, &secret, 1)).assert_redirect("/dashboard");
}

#[test]
fn each_recovery_code_works_once() {
    let app = TestApp::new();
    let mut doctor = app.signed_in(Level::Doctor, "doc");
    let (_, codes) = enrol(&app, &mut doctor);
    let mut browser = app.browser();
    password_step(&mut browser, "doc");
    code_step(&mut browser, &codes[0].to_uppercase()).assert_redirect("/dashboard");
    let mut again = app.browser();
    password_step(&mut again, "doc");
    code_step(&mut again, &codes[0]).assert_status(Status::Unauthorized);
    code_step(&mut again, &codes[1]).assert_redirect("/dashboard");
    assert!(app
        .audit_actions()
        .contains(&"2fa.recovery_code_used".to_string()));
    let overview = again.get("/account/2fa");
    assert!(overview
        .body
        .contains("<strong>8</strong> unused recovery codes"));
}

#[test]
fn the_half_signed_in_state_expires() {
    let app = TestApp::new();
    let mut doctor = app.signed_in(Level::Doctor, "doc");
    let (secret, _) = enrol(&app, &mut doctor);
    let mut browser = app.browser();
    password_step(&mut browser, "doc");
    app.clock.advance(5 * 60 + 1);
    browser.get("/login/2fa").assert_redirect("/login");
    let token = browser.get("/login").csrf_token().unwrap();
    browser
        .post_form(
            "/login/2fa",
            &[("csrf_token", &token), ("code", &code(&app, &secret, 0))],
            Some(ORIGIN),
        )
        .assert_redirect("/login");
    browser.get("/dashboard").assert_redirect("/login");
}

#[test]
fn turning_it_off_needs_the_password_and_a_current_code() {
    let app = TestApp::new();
    let mut doctor = app.signed_in(Level::Doctor, "doc");
    let (secret, _) = enrol(&app, &mut doctor);
    app.clock.advance(60);
    doctor
        .post(
            "/account/2fa/disable",
            &[
                ("password", "wrong password here"),
                ("code", &code(&app, &secret, 0)),
            ],
        )
        .assert_redirect("/account/2fa");
    assert!(
        doctor.get("/account/2fa").body.contains("badge-success"),
        "still on"
    );
    app.clock.advance(60);
    doctor
        .post(
            "/account/2fa/disable",
            &[("password", PASSWORD), ("code", &code(&app, &secret, 0))],
        )
        .assert_redirect("/account/2fa");
    assert!(!doctor.get("/account/2fa").body.contains("badge-success"));
    let mut browser = app.browser();
    browser.login("doc", PASSWORD).assert_redirect("/dashboard");
}

/// The turn-off form checks the password like a sign-in: wrong passwords there count toward the
/// lockout, and while the account is locked even the right password and code are refused, so a
/// stolen session cannot use the form to guess the password without limit.
#[test]
fn turning_it_off_is_refused_while_the_account_is_locked_by_wrong_passwords() {
    let app = TestApp::new();
    let mut doctor = app.signed_in(Level::Doctor, "doc");
    let (secret, _) = enrol(&app, &mut doctor);
    for n in 0..5 {
        app.clock.advance(31);
        doctor
            .post(
                "/account/2fa/disable",
                &[
                    ("password", &format!("wrong password number {n}")),
                    ("code", &code(&app, &secret, 0)),
                ],
            )
            .assert_redirect("/account/2fa");
    }
    assert!(app.audit_actions().contains(&"account.locked".to_string()));
    app.clock.advance(31);
    doctor
        .post(
            "/account/2fa/disable",
            &[("password", PASSWORD), ("code", &code(&app, &secret, 0))],
        )
        .assert_redirect("/account/2fa");
    let page = doctor.get("/account/2fa");
    assert!(page.body.contains("badge-success"), "still on");
    assert!(
        page.body.contains("Too many wrong attempts"),
        "{}",
        page.body
    );
    // Once the lock (five minutes, the first time) is over, the right password and a fresh
    // code turn it off.
    app.clock.advance(5 * 60 + 1);
    doctor
        .post(
            "/account/2fa/disable",
            &[("password", PASSWORD), ("code", &code(&app, &secret, 0))],
        )
        .assert_redirect("/account/2fa");
    assert!(!doctor.get("/account/2fa").body.contains("badge-success"));
}

#[test]
fn an_admin_resets_a_lost_authenticator() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let doctor_id = app.create_user(Level::Doctor, "doc");
    let mut doctor = app.browser();
    doctor.login("doc", PASSWORD).assert_redirect("/dashboard");
    enrol(&app, &mut doctor);
    admin
        .post(&format!("/admin/users/{doctor_id}/reset-2fa"), &[])
        .assert_redirect(&format!("/admin/users/{doctor_id}"));
    doctor.get("/dashboard").assert_redirect("/login");
    let mut browser = app.browser();
    browser.login("doc", PASSWORD).assert_redirect("/dashboard");
    assert!(app
        .audit_actions()
        .contains(&"2fa.reset_by_admin".to_string()));
}

#[test]
fn a_level_that_requires_it_is_sent_to_enrol_and_cannot_turn_it_off() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    admin
        .post(
            "/admin/security",
            &[
                ("bind_ip", "true"),
                ("bind_user_agent", "true"),
                ("require_2fa", "doctor"),
            ],
        )
        .assert_redirect("/admin/security");
    let mut doctor = app.signed_in(Level::Doctor, "doc");
    doctor.get("/dashboard").assert_redirect("/account/2fa");
    doctor
        .get("/account/sessions")
        .assert_redirect("/account/2fa");
    let (secret, _) = enrol(&app, &mut doctor);
    doctor.get("/dashboard").assert_status(Status::Ok);
    app.clock.advance(60);
    doctor
        .post(
            "/account/2fa/disable",
            &[("password", PASSWORD), ("code", &code(&app, &secret, 0))],
        )
        .assert_redirect("/account/2fa");
    assert!(doctor.get("/account/2fa").body.contains("badge-success"));
    // Patients are not concerned.
    let mut patient = app.signed_in(Level::Patient, "pat");
    patient.get("/dashboard").assert_status(Status::Ok);
    // An unknown level is refused.
    admin
        .post("/admin/security", &[("require_2fa", "guest")])
        .assert_status(Status::BadRequest);
}

#[test]
fn turning_it_on_or_off_ends_the_users_other_sessions() {
    let app = TestApp::new();
    let mut laptop = app.signed_in(Level::Doctor, "doc");
    let mut phone = Browser::new(&app, "192.0.2.77:1000", "Mozilla/5.0 (iPhone) Safari/605.1");
    phone.login("doc", PASSWORD).assert_redirect("/dashboard");
    // On: the phone's session was opened with the password alone.
    let (secret, _) = enrol(&app, &mut laptop);
    phone.get("/dashboard").assert_redirect("/login");
    laptop.get("/dashboard").assert_status(Status::Ok);
    // Signed in again with both factors, then turned off from the laptop: the phone ends again.
    password_step(&mut phone, "doc");
    app.clock.advance(30);
    code_step(&mut phone, &code(&app, &secret, 0)).assert_redirect("/dashboard");
    phone.get("/dashboard").assert_status(Status::Ok);
    app.clock.advance(60);
    laptop
        .post(
            "/account/2fa/disable",
            &[("password", PASSWORD), ("code", &code(&app, &secret, 0))],
        )
        .assert_redirect("/account/2fa");
    phone.get("/dashboard").assert_redirect("/login");
    laptop.get("/dashboard").assert_status(Status::Ok);
}

#[test]
fn the_half_signed_in_cookie_carried_to_another_browser_or_address_is_worth_nothing() {
    let app = TestApp::new();
    let mut doctor = app.signed_in(Level::Doctor, "doc");
    let (secret, _) = enrol(&app, &mut doctor);
    let mut browser = app.browser();
    password_step(&mut browser, "doc");
    app.clock.advance(30);
    // The cookie, stolen after the password step, with the right code: another address, then
    // another browser on the same address.
    for (remote, agent) in [
        ("198.51.100.66:4000", browser.user_agent.clone()),
        (
            "192.0.2.10:40000",
            "Mozilla/5.0 (Windows NT 10.0) Chrome/128.0".to_string(),
        ),
    ] {
        let token = browser.get("/login/2fa").csrf_token().unwrap();
        let mut thief = browser.clone_with(remote, &agent);
        thief.get("/login/2fa").assert_redirect("/login");
        let page = thief.post_form(
            "/login/2fa",
            &[("csrf_token", &token), ("code", &code(&app, &secret, 0))],
            Some(ORIGIN),
        );
        page.assert_redirect("/login");
        thief.get("/dashboard").assert_redirect("/login");
    }
    // The browser that gave the password still finishes.
    code_step(&mut browser, &code(&app, &secret, 0)).assert_redirect("/dashboard");
}
