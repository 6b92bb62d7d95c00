//! Anti brute force: lockout with a growing lock time, per-address throttling that forwarding
//! headers cannot dodge, the application-wide rate limit, and an admin's unlock.

use crate::common;

use common::*;
use medvault::access::Level;
use rocket::http::Status;

fn fail(browser: &mut Browser<'_>, username: &str) -> Page {
    let page = browser.login(username, "not the password at all");
    page.assert_status(Status::Unauthorized);
    page
}

#[test]
fn five_failures_lock_the_account_and_the_lock_grows() {
    let app = TestApp::new();
    app.create_user(Level::Doctor, "doc");
    let mut browser = app.browser();
    for _ in 0..5 {
        fail(&mut browser, "doc");
    }
    assert!(app.audit_actions().contains(&"account.locked".to_string()));
    // The right password is refused while locked, with the very same page.
    let locked = browser.login("doc", PASSWORD);
    locked.assert_status(Status::Unauthorized);
    let wrong = fail(&mut browser, "nobody-here");
    let strip = |p: &Page| p.body.replace(&p.csrf_token().unwrap_or_default(), "");
    assert_eq!(
        strip(&locked).replace("value=\"doc\"", ""),
        strip(&wrong).replace("value=\"nobody-here\"", "")
    );
    // Locked a second time, with no sign-in between: twice as long.
    app.clock.advance(5 * 60 + 1);
    let mut other = app.browser();
    for _ in 0..5 {
        fail(&mut other, "doc");
    }
    app.clock.advance(5 * 60 + 1);
    other
        .login("doc", PASSWORD)
        .assert_status(Status::Unauthorized);
    app.clock.advance(5 * 60);
    other.login("doc", PASSWORD).assert_redirect("/dashboard");
    // The owner got in: the doubling starts over, and the next lock is the first length again.
    let mut third = app.browser();
    for _ in 0..5 {
        fail(&mut third, "doc");
    }
    app.clock.advance(5 * 60 + 1);
    third.login("doc", PASSWORD).assert_redirect("/dashboard");
}

#[test]
fn a_flood_of_guesses_from_many_addresses_locks_the_owner_out_for_minutes_not_months() {
    let app = TestApp::new();
    app.create_user(Level::Doctor, "doc");
    // 85 wrong passwords from five addresses within the same second, the right one among them.
    for round in 0..17 {
        for host in 1..=5 {
            let mut browser = Browser::new(
                &app,
                &format!("198.51.100.{host}:{}", 1000 + round),
                "Mozilla/5.0 Firefox/130.0",
            );
            let page = browser.login("doc", "not the password at all");
            assert!(page.status == Status::Unauthorized || page.status == Status::TooManyRequests);
        }
        if round == 8 {
            app.browser()
                .login("doc", PASSWORD)
                .assert_status(Status::Unauthorized);
        }
    }
    // Nothing counted while the account was locked: it is the first lock, five minutes.
    app.clock.advance(5 * 60 + 1);
    app.browser()
        .login("doc", PASSWORD)
        .assert_redirect("/dashboard");
}

#[test]
fn no_lock_lasts_longer_than_the_cap() {
    let app = TestApp::new();
    app.create_user(Level::Doctor, "doc");
    let fail_five = |round: u32| {
        let mut browser = Browser::new(
            &app,
            &format!("198.51.100.{}:1000", round + 1),
            "Mozilla/5.0 Firefox/130.0",
        );
        for _ in 0..5 {
            fail(&mut browser, "doc");
        }
    };
    // Locks of 5, 10, 20, 40 minutes, then the cap: one hour by default, never 80 minutes.
    for (round, minutes) in [5, 10, 20, 40, 60, 60].into_iter().enumerate() {
        fail_five(round as u32);
        app.clock.advance(minutes * 60 - 1);
        app.browser()
            .login("doc", PASSWORD)
            .assert_status(Status::Unauthorized);
        app.clock.advance(2);
    }
    app.browser()
        .login("doc", PASSWORD)
        .assert_redirect("/dashboard");
}

#[test]
fn an_admin_unlocks_an_account() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let doctor_id = app.create_user(Level::Doctor, "doc");
    let mut browser = Browser::new(&app, "198.51.100.9:1000", "Mozilla/5.0 Firefox/130.0");
    for _ in 0..5 {
        fail(&mut browser, "doc");
    }
    let page = admin.get(&format!("/admin/users/{doctor_id}"));
    assert!(page.body.contains("Locked after repeated failed sign-ins"));
    admin
        .post(&format!("/admin/users/{doctor_id}/unlock"), &[])
        .assert_redirect(&format!("/admin/users/{doctor_id}"));
    browser.login("doc", PASSWORD).assert_redirect("/dashboard");
    assert!(app
        .audit_actions()
        .contains(&"account.unlocked".to_string()));
}

#[test]
fn an_address_is_throttled_and_forwarding_headers_do_not_change_its_bucket() {
    let app = TestApp::with_config(|c| c.trusted_proxies = Vec::new());
    app.create_user(Level::Doctor, "doc");
    let mut attacker = app.browser();
    // Twenty attempts at once (spread over usernames so that no account locks).
    for i in 0..20 {
        fail(&mut attacker, &format!("guess{i}"));
    }
    let form = attacker.get("/login").csrf_token().unwrap();
    let refused = attacker.post_form(
        "/login",
        &[
            ("csrf_token", &form),
            ("username", "doc"),
            ("password", PASSWORD),
        ],
        Some(ORIGIN),
    );
    refused.assert_status(Status::TooManyRequests);
    assert!(refused.header("Retry-After").is_some());
    assert!(refused.body.contains("Too many attempts"));
    // Claiming another address in headers changes nothing.
    attacker.extra_headers = vec![
        ("X-Forwarded-For".into(), "203.0.113.50".into()),
        ("X-Real-IP".into(), "203.0.113.51".into()),
    ];
    let form = attacker.get("/login").csrf_token().unwrap();
    attacker
        .post_form(
            "/login",
            &[
                ("csrf_token", &form),
                ("username", "doc"),
                ("password", PASSWORD),
            ],
            Some(ORIGIN),
        )
        .assert_status(Status::TooManyRequests);
    // Another machine is not affected, and the bucket refills with time.
    let mut someone_else = Browser::new(&app, "198.51.100.7:2000", "Mozilla/5.0 Firefox/130.0");
    someone_else
        .login("doc", PASSWORD)
        .assert_redirect("/dashboard");
    app.clock.advance(6);
    attacker.extra_headers.clear();
    attacker
        .login("doc", PASSWORD)
        .assert_redirect("/dashboard");
}

#[test]
fn wrong_codes_count_toward_the_lockout_too() {
    let app = TestApp::new();
    let mut doctor = app.signed_in(Level::Doctor, "doc");
    doctor.get("/account/2fa");
    let page = doctor.post("/account/2fa/start", &[]);
    let start = page.body.find("class=\"secret-key\">").unwrap() + 19;
    let end = page.body[start..].find('<').unwrap() + start;
    let secret = totp_rs::Secret::Encoded(page.body[start..end].to_string())
        .to_bytes()
        .unwrap();
    let step = medvault::crypto::totp_step(app.clock.now());
    let code = medvault::crypto::totp_code_at_step(&secret, step, 6);
    doctor
        .post("/account/2fa/confirm", &[("code", &code)])
        .assert_status(Status::Ok);
    let mut browser = app.browser();
    for _ in 0..5 {
        browser.login("doc", PASSWORD).assert_redirect("/login/2fa");
        let token = browser.get("/login/2fa").csrf_token().unwrap();
        browser
            .post_form(
                "/login/2fa",
                &[("csrf_token", &token), ("code", "000000")],
                Some(ORIGIN),
            )
            .assert_status(Status::Unauthorized);
    }
    assert!(app.audit_actions().contains(&"account.locked".to_string()));
    // Locked: even the password step now fails.
    browser
        .login("doc", PASSWORD)
        .assert_status(Status::Unauthorized);
}

#[test]
fn the_whole_application_is_rate_limited_per_address() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    admin.get("/admin/security").assert_status(Status::Ok);
    admin
        .post(
            "/admin/security/brute-force",
            &[
                ("lockout_enabled", "true"),
                ("lockout_failures", "5"),
                ("lockout_window_minutes", "15"),
                ("lockout_minutes", "5"),
                ("throttle_enabled", "true"),
                ("throttle_burst", "20"),
                ("throttle_per_minute", "10"),
                ("delay_base_ms", "250"),
                ("delay_max_ms", "4000"),
                ("rate_limit_enabled", "true"),
                ("rate_limit_burst", "5"),
                ("rate_limit_per_minute", "60"),
            ],
        )
        .assert_redirect("/admin/security");
    let mut visitor = Browser::new(&app, "198.51.100.30:1000", "curl/8.0");
    for _ in 0..5 {
        visitor.get("/health").assert_status(Status::Ok);
    }
    let limited = visitor.get("/health");
    limited.assert_status(Status::TooManyRequests);
    assert_eq!(limited.header("Retry-After"), Some("1"));
    assert!(limited.body.contains("Too many"));
    app.clock.advance(1);
    visitor.get("/health").assert_status(Status::Ok);
    assert!(app
        .audit_actions()
        .contains(&"admin.security_saved".to_string()));
}

#[test]
fn a_bad_anti_brute_force_form_saves_nothing() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let before = app.app().brute_force.policy();
    let page = admin.post(
        "/admin/security/brute-force",
        &[("lockout_enabled", "true"), ("lockout_failures", "0")],
    );
    page.assert_redirect("/admin/security");
    let shown = admin.get("/admin/security");
    assert!(shown.body.contains("Nothing was saved"), "{}", shown.body);
    assert_eq!(app.app().brute_force.policy(), before);
}

#[test]
fn the_current_password_on_the_password_page_is_counted_like_a_sign_in() {
    let app = TestApp::new();
    let mut doctor = app.signed_in(Level::Doctor, "doc");
    let new_password = "a brand new passphrase of mine";
    for _ in 0..5 {
        doctor.get("/account/password").assert_status(Status::Ok);
        let page = doctor.post(
            "/account/password",
            &[
                ("current_password", "a wrong guess at it"),
                ("new_password", new_password),
            ],
        );
        page.assert_status(Status::UnprocessableEntity);
    }
    assert_eq!(
        app.audit_actions()
            .iter()
            .filter(|a| *a == "account.password_change_refused")
            .count(),
        5
    );
    assert!(app.audit_actions().contains(&"account.locked".to_string()));
    // Locked now: even the right current password changes nothing, and sign-in is locked too.
    doctor.get("/account/password").assert_status(Status::Ok);
    let page = doctor.post(
        "/account/password",
        &[
            ("current_password", PASSWORD),
            ("new_password", new_password),
        ],
    );
    page.assert_status(Status::TooManyRequests);
    assert!(
        page.body.contains("Too many wrong passwords"),
        "{}",
        page.body
    );
    app.browser()
        .login("doc", PASSWORD)
        .assert_status(Status::Unauthorized);
    app.browser()
        .login("doc", new_password)
        .assert_status(Status::Unauthorized);
    // After the lock, the right one works.
    app.clock.advance(5 * 60 + 1);
    doctor.get("/account/password").assert_status(Status::Ok);
    doctor
        .post(
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", new_password),
            ],
        )
        .assert_redirect("/login");
}
