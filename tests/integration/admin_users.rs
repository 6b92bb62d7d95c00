//! `/admin/users` from the admin's side and the attacker's: finding accounts, creating them with a
//! one-time password, editing, deactivating, resetting, ending sessions and deleting; the guards
//! that keep an admin from locking everyone out; and the audit event of every change.

use crate::common;

use common::*;
use medvault::access::Level;
use rocket::http::Status;

// ---------------------------------------------------------------------------------------------
// The list

#[test]
fn the_user_list_searches_filters_by_level_and_pages() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    for i in 1..=30 {
        app.create_user(Level::Patient, &format!("patient{i:02}"));
    }
    for name in ["drhouse", "drgrey", "drwho"] {
        app.create_user(Level::Doctor, name);
    }

    // 34 users, 25 on a page: page 1 links to page 2, which holds the remaining 9.
    let first = admin.get("/admin/users");
    first.assert_status(Status::Ok);
    assert!(first.body.contains("34 users"), "{}", first.body);
    assert_eq!(user_rows(&first.body), 25);
    assert!(first.body.contains("Page 1 of 2"));
    assert!(first.body.contains("page=2\">Next"));
    let second = admin.get("/admin/users?page=2");
    second.assert_status(Status::Ok);
    assert_eq!(user_rows(&second.body), 9);
    assert!(second.body.contains("Page 2 of 2"));
    assert!(second.body.contains("patient30"));
    assert!(!second.body.contains(">patient01<"));
    // A page past the end shows the last page rather than an error.
    assert_eq!(user_rows(&admin.get("/admin/users?page=99").body), 9);

    // Search by part of the username, in any case.
    let search = admin.get("/admin/users?q=TIENT0");
    assert_eq!(user_rows(&search.body), 9, "{}", search.body);
    assert!(
        search.body.contains("value=\"TIENT0\""),
        "the search box keeps the query"
    );
    let one = admin.get("/admin/users?q=house");
    assert_eq!(user_rows(&one.body), 1);
    assert!(one.body.contains(">drhouse<"));

    // Filter by level, alone and with a search; the pager keeps both.
    let doctors = admin.get("/admin/users?level=doctor");
    assert_eq!(user_rows(&doctors.body), 3);
    assert!(!doctors.body.contains(">patient01<"));
    let admins = admin.get("/admin/users?level=admin");
    assert_eq!(user_rows(&admins.body), 1);
    assert!(admins.body.contains(">admin<"));
    assert_eq!(
        user_rows(&admin.get("/admin/users?q=dr&level=patient").body),
        0
    );
    let patients = admin.get("/admin/users?q=patient&level=patient");
    assert!(
        patients
            .body
            .contains("q=patient&amp;level=patient&amp;page=2"),
        "{}",
        patients.body
    );
}

#[test]
fn like_wildcards_in_the_search_are_taken_literally() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    app.create_user(Level::Patient, "ann_lee");
    app.create_user(Level::Patient, "annxlee");
    app.create_user(Level::Patient, "bob");

    let underscore = admin.get("/admin/users?q=n_l");
    assert_eq!(user_rows(&underscore.body), 1, "{}", underscore.body);
    assert!(underscore.body.contains(">ann_lee<"));
    assert!(!underscore.body.contains(">annxlee<"));

    let percent = admin.get("/admin/users?q=%25");
    assert_eq!(user_rows(&percent.body), 0, "{}", percent.body);
    assert!(percent.body.contains("No user matches."));
    let percent_inside = admin.get("/admin/users?q=ann%25lee");
    assert_eq!(user_rows(&percent_inside.body), 0);
    let lone_underscore = admin.get("/admin/users?q=_");
    assert_eq!(user_rows(&lone_underscore.body), 1);
}

// ---------------------------------------------------------------------------------------------
// Creating

#[test]
fn a_bad_username_is_refused_with_the_form_refilled_and_the_error_beside_the_field() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let before = app.audit_actions();
    admin.get("/admin/users/new");
    let page = admin.post("/admin/users", &[("username", "ab"), ("level", "doctor")]);
    page.assert_status(Status::UnprocessableEntity);
    assert!(page.body.contains("value=\"ab\""), "{}", page.body);
    let error = find_between(&page.body, "id=\"username-error\">", "</p>").expect("field error");
    assert!(error.contains("3 to 64 characters"), "{error}");
    assert!(page.body.contains("aria-invalid=\"true\""));
    assert!(
        page.body.contains("<option value=\"doctor\" selected>"),
        "level kept"
    );

    // Markup in a username is refused and comes back escaped.
    let page = admin.post(
        "/admin/users",
        &[
            ("username", "\"><script>alert(1)</script>"),
            ("level", "patient"),
        ],
    );
    page.assert_status(Status::UnprocessableEntity);
    assert!(!page.body.contains("<script>alert(1)</script>"));
    assert!(page.body.contains("&lt;script&gt;"), "{}", page.body);

    // An unknown level is refused too.
    let page = admin.post(
        "/admin/users",
        &[("username", "validname"), ("level", "root")],
    );
    page.assert_status(Status::UnprocessableEntity);
    assert!(page.body.contains("Choose admin, doctor or patient."));

    assert_eq!(app.audit_actions(), before, "nothing was created");
    assert_eq!(user_rows(&admin.get("/admin/users").body), 1);
}

#[test]
fn a_taken_username_is_refused() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    app.create_user(Level::Doctor, "drgrey");
    admin.get("/admin/users/new");
    let page = admin.post(
        "/admin/users",
        &[("username", "DrGrey"), ("level", "patient")],
    );
    page.assert_status(Status::UnprocessableEntity);
    assert!(
        page.body.contains("This username is taken."),
        "{}",
        page.body
    );
    assert!(page.body.contains("value=\"drgrey\""));
    // The existing account is untouched: still a doctor with the same password.
    let doctors = admin.get("/admin/users?level=doctor");
    assert!(doctors.body.contains(">drgrey<"));
    app.browser()
        .login("drgrey", PASSWORD)
        .assert_redirect("/dashboard");
}

#[test]
fn a_new_user_gets_a_one_time_password_shown_only_once() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let (id, one_time) = admin_creates(&mut admin, "nurse.joy", "doctor");
    assert_eq!(one_time.len(), 19, "four groups of four: {one_time}");

    let list = admin.get("/admin/users");
    assert!(list.body.contains(">nurse.joy<"));
    assert!(list.body.contains("one-time password"), "the badge says so");
    assert!(!list.body.contains(&one_time));
    let edit = admin.get(&format!("/admin/users/{id}"));
    edit.assert_status(Status::Ok);
    assert!(!edit.body.contains(&one_time));
    assert!(!admin.get("/dashboard").body.contains(&one_time));
    assert!(!admin.get("/admin/audit").body.contains(&one_time));

    // The password works, and the new user must choose their own first.
    app.browser()
        .login("nurse.joy", &one_time)
        .assert_redirect("/account/password");
    assert_eq!(count_of(&app.audit_actions(), "user.created"), 2);
}

// ---------------------------------------------------------------------------------------------
// Editing

#[test]
fn an_admin_renames_a_user_and_changes_their_level() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let id = app.create_user(Level::Patient, "pat");
    let mut patient = app.signed_in(Level::Patient, "other");
    patient.get("/dashboard").assert_status(Status::Ok);

    admin.get(&format!("/admin/users/{id}"));
    admin
        .post(
            &format!("/admin/users/{id}"),
            &[("username", "Dr.Pat"), ("level", "doctor")],
        )
        .assert_redirect(&format!("/admin/users/{id}"));
    let edit = admin.get(&format!("/admin/users/{id}"));
    assert!(edit.body.contains("Saved."));
    assert!(edit.body.contains("<h1>dr.pat</h1>"), "{}", edit.body);
    assert!(edit.body.contains("<option value=\"doctor\" selected>"));
    assert!(app.audit_actions().contains(&"user.updated".to_string()));

    app.browser()
        .login("pat", PASSWORD)
        .assert_status(Status::Unauthorized);
    let mut renamed = app.browser();
    renamed
        .login("dr.pat", PASSWORD)
        .assert_redirect("/dashboard");
    assert!(renamed.get("/dashboard").body.contains("doctor"));

    // Another user's name cannot be taken; a bad name is refused beside the field.
    let taken = admin.post(
        &format!("/admin/users/{id}"),
        &[("username", "other"), ("level", "doctor")],
    );
    taken.assert_status(Status::UnprocessableEntity);
    assert!(taken.body.contains("This username is taken."));
    let bad = admin.post(
        &format!("/admin/users/{id}"),
        &[("username", "no spaces please"), ("level", "doctor")],
    );
    bad.assert_status(Status::UnprocessableEntity);
    assert!(bad.body.contains("id=\"username-error\""));
    assert!(bad.body.contains("value=\"no spaces please\""));
    assert_eq!(count_of(&app.audit_actions(), "user.updated"), 1);
}

// ---------------------------------------------------------------------------------------------
// Access: deactivate, activate, reset, end sessions, delete

#[test]
fn deactivating_signs_the_user_out_and_blocks_sign_in_until_activated() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let mut doctor = app.signed_in(Level::Doctor, "drgrey");
    doctor.get("/dashboard").assert_status(Status::Ok);
    let id = find_between(
        &admin.get("/admin/users?q=drgrey").body,
        "<a href=\"/admin/users/",
        "\"",
    )
    .expect("id")
    .to_string();

    admin.get(&format!("/admin/users/{id}"));
    admin
        .post(&format!("/admin/users/{id}/active"), &[("active", "false")])
        .assert_redirect(&format!("/admin/users/{id}"));
    let edit = admin.get(&format!("/admin/users/{id}"));
    assert!(edit.body.contains("drgrey is deactivated and signed out."));
    assert!(edit.body.contains("deactivated ·"));
    assert!(edit.body.contains("0 active sessions"));

    doctor.get("/dashboard").assert_redirect("/login");
    app.browser()
        .login("drgrey", PASSWORD)
        .assert_status(Status::Unauthorized);

    admin
        .post(&format!("/admin/users/{id}/active"), &[("active", "true")])
        .assert_redirect(&format!("/admin/users/{id}"));
    let mut again = app.browser();
    again
        .login("drgrey", PASSWORD)
        .assert_redirect("/dashboard");
    again.get("/dashboard").assert_status(Status::Ok);

    let actions = app.audit_actions();
    assert_eq!(count_of(&actions, "user.deactivated"), 1);
    assert_eq!(count_of(&actions, "user.activated"), 1);
}

#[test]
fn resetting_a_password_shows_a_new_one_time_password_and_ends_sessions() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let mut doctor = app.signed_in(Level::Doctor, "drgrey");
    doctor.get("/dashboard").assert_status(Status::Ok);
    let id = find_between(
        &admin.get("/admin/users?q=drgrey").body,
        "<a href=\"/admin/users/",
        "\"",
    )
    .expect("id")
    .to_string();

    admin.get(&format!("/admin/users/{id}"));
    let page = admin.post(&format!("/admin/users/{id}/reset-password"), &[]);
    page.assert_status(Status::Ok);
    assert!(page.body.contains("New password for drgrey"));
    let one_time = find_between(&page.body, "<code>", "</code>")
        .expect("password")
        .to_string();
    assert!(!admin
        .get(&format!("/admin/users/{id}"))
        .body
        .contains(&one_time));

    doctor.get("/dashboard").assert_redirect("/login");
    app.browser()
        .login("drgrey", PASSWORD)
        .assert_status(Status::Unauthorized);
    let mut fresh = app.browser();
    fresh
        .login("drgrey", &one_time)
        .assert_redirect("/account/password");
    fresh.get("/dashboard").assert_redirect("/account/password");
    assert!(app
        .audit_actions()
        .contains(&"user.password_reset".to_string()));
}

#[test]
fn an_admin_ends_every_session_of_a_user() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let mut laptop = app.signed_in(Level::Doctor, "drgrey");
    let mut phone = Browser::new(
        &app,
        "198.51.100.7:5000",
        "Mozilla/5.0 (iPhone) Safari/605.1",
    );
    phone
        .login("drgrey", PASSWORD)
        .assert_redirect("/dashboard");
    let id = find_between(
        &admin.get("/admin/users?q=drgrey").body,
        "<a href=\"/admin/users/",
        "\"",
    )
    .expect("id")
    .to_string();
    assert!(admin
        .get(&format!("/admin/users/{id}"))
        .body
        .contains("2 active sessions"));

    admin
        .post(&format!("/admin/users/{id}/end-sessions"), &[])
        .assert_redirect(&format!("/admin/users/{id}"));
    let edit = admin.get(&format!("/admin/users/{id}"));
    assert!(
        edit.body.contains("2 session(s) of drgrey ended."),
        "{}",
        edit.body
    );
    assert!(edit.body.contains("0 active sessions"));

    laptop.get("/dashboard").assert_redirect("/login");
    phone.get("/dashboard").assert_redirect("/login");
    // Only the sessions ended: the account still signs in, and the admin is still signed in.
    app.browser()
        .login("drgrey", PASSWORD)
        .assert_redirect("/dashboard");
    admin.get("/admin/users").assert_status(Status::Ok);
    assert!(app
        .audit_actions()
        .contains(&"user.sessions_ended".to_string()));
}

#[test]
fn a_deleted_user_is_gone() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let mut patient = app.signed_in(Level::Patient, "pat");
    let id = find_between(
        &admin.get("/admin/users?q=pat").body,
        "<a href=\"/admin/users/",
        "\"",
    )
    .expect("id")
    .to_string();

    admin.get(&format!("/admin/users/{id}"));
    let page = admin.post(&format!("/admin/users/{id}/delete"), &[]);
    page.assert_redirect("/admin/users");
    let list = admin.get("/admin/users");
    assert!(list.body.contains("pat is deleted."));
    assert!(!list.body.contains(">pat<"));
    admin
        .get(&format!("/admin/users/{id}"))
        .assert_status(Status::NotFound);
    patient.get("/dashboard").assert_redirect("/login");
    app.browser()
        .login("pat", PASSWORD)
        .assert_status(Status::Unauthorized);
    assert!(app.audit_actions().contains(&"user.deleted".to_string()));
}

#[test]
fn an_unknown_user_id_is_a_rendered_404() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let before = app.audit_actions().len();
    let page = admin.get("/admin/users/no-such-user");
    page.assert_status(Status::NotFound);
    assert!(page.body.starts_with("<!doctype html>"));
    assert!(
        page.body.contains("There is nothing here."),
        "{}",
        page.body
    );
    for word in ["panicked", "backtrace", "diesel", "sqlite", "NotFound"] {
        assert!(!page.body.contains(word), "{word} in {}", page.body);
    }
    for action in ["", "/active", "/reset-password", "/end-sessions", "/delete"] {
        let fields: &[(&str, &str)] = match action {
            "" => &[("username", "someone"), ("level", "doctor")],
            "/active" => &[("active", "false")],
            _ => &[],
        };
        let page = admin.post(&format!("/admin/users/no-such-user{action}"), fields);
        page.assert_status(Status::NotFound);
        assert!(
            page.body.contains("There is nothing here."),
            "{action}: {}",
            page.body
        );
    }
    assert_eq!(
        app.audit_actions().len(),
        before,
        "nothing changed, nothing audited"
    );
}

// ---------------------------------------------------------------------------------------------
// Admins cannot lock everyone out

#[test]
fn an_admin_cannot_deactivate_delete_or_demote_themselves() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    // Another admin exists, so only the rule about oneself can refuse.
    app.create_user(Level::Admin, "second");
    let me = find_between(
        &admin.get("/admin/users?q=admin").body,
        "<a href=\"/admin/users/",
        "\"",
    )
    .expect("own id")
    .to_string();
    let back = format!("/admin/users/{me}");
    admin.get(&back);
    let before = app.audit_actions();

    admin
        .post(&format!("{back}/active"), &[("active", "false")])
        .assert_redirect(&back);
    assert!(admin
        .get(&back)
        .body
        .contains("You cannot deactivate your own account."));
    admin
        .post(&format!("{back}/delete"), &[])
        .assert_redirect(&back);
    assert!(admin
        .get(&back)
        .body
        .contains("You cannot delete your own account."));
    admin
        .post(&back, &[("username", "admin"), ("level", "doctor")])
        .assert_redirect(&back);
    let page = admin.get(&back);
    assert!(page
        .body
        .contains("You cannot remove your own admin rights"));
    assert!(page.body.contains("<option value=\"admin\" selected>"));

    assert_eq!(app.audit_actions(), before, "no change was made");
    admin.get("/admin/users").assert_status(Status::Ok);
    app.browser()
        .login("admin", PASSWORD)
        .assert_redirect("/dashboard");
}

/// Grants `/admin/users` to doctors through the access grid, keeping every default grant.
fn let_doctors_manage_users(admin: &mut Browser<'_>) {
    admin.get("/admin/access").assert_status(Status::Ok);
    let grants = [
        "admin:AccountSessions",
        "admin:AdminUsers",
        "admin:AdminAccess",
        "admin:AdminSecurity",
        "admin:AdminAudit",
        "doctor:AccountSessions",
        "doctor:AdminUsers",
        "patient:AccountSessions",
    ];
    let fields: Vec<(&str, &str)> = grants.iter().map(|g| ("grant", *g)).collect();
    admin
        .post("/admin/access", &fields)
        .assert_redirect("/admin/access");
}

#[test]
fn the_last_active_admin_cannot_be_demoted_deactivated_or_deleted() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let_doctors_manage_users(&mut admin);
    let admin_id = find_between(
        &admin.get("/admin/users?q=admin").body,
        "<a href=\"/admin/users/",
        "\"",
    )
    .expect("admin id")
    .to_string();
    let back = format!("/admin/users/{admin_id}");

    // A doctor who may manage users tries to remove the only admin.
    let mut doctor = app.signed_in(Level::Doctor, "drgrey");
    doctor.get(&back).assert_status(Status::Ok);
    let before = app.audit_actions().len();
    doctor
        .post(&back, &[("username", "admin"), ("level", "doctor")])
        .assert_redirect(&back);
    assert!(doctor
        .get(&back)
        .body
        .contains("This is the last active admin"));
    doctor
        .post(&format!("{back}/active"), &[("active", "false")])
        .assert_redirect(&back);
    assert!(doctor
        .get(&back)
        .body
        .contains("This is the last active admin."));
    doctor
        .post(&format!("{back}/delete"), &[])
        .assert_redirect(&back);
    assert!(doctor
        .get(&back)
        .body
        .contains("This is the last active admin."));
    assert_eq!(app.audit_actions().len(), before);
    admin.get("/admin/users").assert_status(Status::Ok);

    // With a second admin the same changes go through.
    app.create_user(Level::Admin, "second");
    doctor
        .post(&format!("{back}/active"), &[("active", "false")])
        .assert_redirect(&back);
    assert!(doctor.get(&back).body.contains("admin is deactivated"));
    admin.get("/dashboard").assert_redirect("/login");
    doctor
        .post(&format!("{back}/active"), &[("active", "true")])
        .assert_redirect(&back);
    doctor
        .post(&back, &[("username", "admin"), ("level", "doctor")])
        .assert_redirect(&back);
    assert!(doctor.get(&back).body.contains("Saved."));
    let mut demoted = app.browser();
    demoted
        .login("admin", PASSWORD)
        .assert_redirect("/dashboard");
    demoted
        .get("/admin/access")
        .assert_status(Status::Forbidden);
    doctor
        .post(&back, &[("username", "admin"), ("level", "admin")])
        .assert_redirect(&back);
    doctor
        .post(&format!("{back}/delete"), &[])
        .assert_redirect("/admin/users");
    doctor.get(&back).assert_status(Status::NotFound);
    let actions = app.audit_actions();
    assert_eq!(count_of(&actions, "user.deactivated"), 1);
    assert_eq!(count_of(&actions, "user.updated"), 2);
    assert_eq!(count_of(&actions, "user.deleted"), 1);
}

#[test]
fn every_change_to_a_user_is_audited() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let (id, _) = admin_creates(&mut admin, "worker", "patient");
    let back = format!("/admin/users/{id}");
    admin.get(&back);
    admin.post(&back, &[("username", "worker2"), ("level", "doctor")]);
    admin.post(&format!("{back}/active"), &[("active", "false")]);
    admin.post(&format!("{back}/active"), &[("active", "true")]);
    admin.post(&format!("{back}/reset-password"), &[]);
    admin.get(&back);
    admin.post(&format!("{back}/end-sessions"), &[]);
    admin.post(&format!("{back}/delete"), &[]);

    let actions = app.audit_actions();
    let user_actions: Vec<&str> = actions
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("user."))
        .collect();
    assert_eq!(
        user_actions,
        [
            "user.created",
            "user.created",
            "user.updated",
            "user.deactivated",
            "user.activated",
            "user.password_reset",
            "user.sessions_ended",
            "user.deleted",
        ]
    );
    // The trail names who did it and to whom.
    let audit = admin.get("/admin/audit?actor=admin&action=user.deleted");
    assert!(audit.body.contains("user worker2"), "{}", audit.body);
}

#[test]
fn a_malformed_activation_form_changes_nothing() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let mut doctor = app.signed_in(Level::Doctor, "drgrey");
    let id = find_between(
        &admin.get("/admin/users?q=drgrey").body,
        "<a href=\"/admin/users/",
        "\"",
    )
    .expect("id")
    .to_string();
    let before = app.audit_actions();
    let path = format!("/admin/users/{id}/active");
    for fields in [&[("active", "banana")][..], &[("active", "2")][..], &[][..]] {
        let page = admin.post(&path, fields);
        assert!(
            page.status == Status::BadRequest || page.status == Status::UnprocessableEntity,
            "{fields:?}: {} {}",
            page.status,
            page.body
        );
        assert!(page.body.starts_with("<!doctype html>"));
        assert!(
            page.body.contains("whether the account is active"),
            "{}",
            page.body
        );
    }
    assert_eq!(app.audit_actions(), before);
    doctor.get("/dashboard").assert_status(Status::Ok);
    assert!(admin
        .get(&format!("/admin/users/{id}"))
        .body
        .contains("active ·"));
}
