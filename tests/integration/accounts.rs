//! Accounts from the user's side and the attacker's: the first-run setup link, signing in and
//! out, one-time passwords, changing one's password, and the command line that creates users.

use crate::common;

use std::process::{Command, Stdio};

use common::*;
use medvault::access::Level;
use medvault::Clock;
use rocket::http::Status;

const NEW_PASSWORD: &str = "a quiet river under the old bridge";

/// `body` with the value of every `csrf_token` field blanked, so two pages can be compared.
fn without_csrf_token(body: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let mut out = String::new();
    let mut rest = body;
    while let Some(at) = rest.find(marker) {
        let start = at + marker.len();
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find('"').unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn change_password(browser: &mut Browser<'_>, current: &str, new: &str) -> Page {
    browser.get("/account/password").assert_status(Status::Ok);
    browser.post(
        "/account/password",
        &[("current_password", current), ("new_password", new)],
    )
}

// ---------------------------------------------------------------------------------------------
// First-run setup

#[test]
fn the_setup_link_creates_the_first_admin_once() {
    let app = TestApp::new();
    let token = app
        .app()
        .setup
        .current()
        .expect("a setup token while no admin exists");
    let mut guest = app.browser();

    let form = guest.get(&format!("/setup?token={token}"));
    form.assert_status(Status::Ok);
    let csrf = form.csrf_token().expect("csrf token on the setup form");
    let created = guest.post_form(
        "/setup",
        &[
            ("csrf_token", &csrf),
            ("token", &token),
            ("username", "firstadmin"),
            ("password", PASSWORD),
        ],
        Some(ORIGIN),
    );
    created.assert_redirect("/login");
    assert!(app
        .audit_actions()
        .contains(&"setup.admin_created".to_string()));

    // The admin exists and can sign in.
    let mut admin = app.browser();
    admin
        .login("firstadmin", PASSWORD)
        .assert_redirect("/dashboard");
    admin.get("/admin/users").assert_status(Status::Ok);

    // The link is used up: neither the form nor the post work a second time.
    guest
        .get(&format!("/setup?token={token}"))
        .assert_status(Status::NotFound);
    let again = guest.post_form(
        "/setup",
        &[
            ("csrf_token", &csrf),
            ("token", &token),
            ("username", "secondadmin"),
            ("password", PASSWORD),
        ],
        Some(ORIGIN),
    );
    again.assert_status(Status::NotFound);
    assert!(app.app().setup.current().is_none());
    let mut other = app.browser();
    let refused = other.login("secondadmin", PASSWORD);
    refused.assert_status(Status::Unauthorized);
}

#[test]
fn a_wrong_setup_token_is_not_found_and_creates_nobody() {
    let app = TestApp::new();
    let token = app.app().setup.current().expect("setup token");
    let mut guest = app.browser();
    guest.get("/setup").assert_status(Status::NotFound);
    guest
        .get("/setup?token=not-the-token")
        .assert_status(Status::NotFound);
    let wrong = format!("{}x", &token[..token.len() - 1]);
    guest
        .get(&format!("/setup?token={wrong}"))
        .assert_status(Status::NotFound);

    // A post with a guessed token, even with a valid CSRF token, creates nothing.
    let csrf = guest.get("/login").csrf_token().expect("csrf token");
    let page = guest.post_form(
        "/setup",
        &[
            ("csrf_token", &csrf),
            ("token", &wrong),
            ("username", "intruder"),
            ("password", PASSWORD),
        ],
        Some(ORIGIN),
    );
    page.assert_status(Status::NotFound);
    assert!(!app
        .audit_actions()
        .contains(&"setup.admin_created".to_string()));
    assert_eq!(app.app().setup.current().as_deref(), Some(token.as_str()));
    guest
        .login("intruder", PASSWORD)
        .assert_status(Status::Unauthorized);
}

#[test]
fn the_setup_link_is_gone_once_any_admin_exists() {
    let app = TestApp::new();
    let token = app.app().setup.current().expect("setup token");
    app.create_user(Level::Admin, "cliadmin");
    assert!(app.app().setup.current().is_none());
    let mut guest = app.browser();
    guest
        .get(&format!("/setup?token={token}"))
        .assert_status(Status::NotFound);
}

#[test]
fn a_weak_setup_password_is_refused_and_the_link_still_works() {
    let app = TestApp::new();
    let token = app.app().setup.current().expect("setup token");
    let mut guest = app.browser();
    let csrf = guest
        .get(&format!("/setup?token={token}"))
        .csrf_token()
        .expect("csrf");
    let page = guest.post_form(
        "/setup",
        &[
            ("csrf_token", &csrf),
            ("token", &token),
            ("username", "firstadmin"),
            ("password", "qwertyuiop123"),
        ],
        Some(ORIGIN),
    );
    page.assert_status(Status::UnprocessableEntity);
    assert!(page.body.contains("commonly used"), "{}", page.body);
    guest
        .get(&format!("/setup?token={token}"))
        .assert_status(Status::Ok);
}

// ---------------------------------------------------------------------------------------------
// Health and signing in

#[test]
fn health_answers_200_with_json() {
    let app = TestApp::new();
    let page = app.browser().get("/health");
    page.assert_status(Status::Ok);
    let content_type = page.header("Content-Type").unwrap_or_default();
    assert!(content_type.contains("application/json"), "{content_type}");
    let json: serde_json::Value = serde_json::from_str(&page.body).expect("json body");
    assert_eq!(json["status"], "ok");
    assert_eq!(json["database"], "ok");
}

#[test]
fn a_good_password_signs_in_to_the_dashboard() {
    let app = TestApp::new();
    app.create_user(Level::Doctor, "drgrey");
    let mut browser = app.browser();
    browser
        .login("drgrey", PASSWORD)
        .assert_redirect("/dashboard");
    let page = browser.get("/dashboard");
    page.assert_status(Status::Ok);
    assert!(page.body.contains("Welcome, drgrey"));
    assert!(app.audit_actions().contains(&"login.success".to_string()));
}

#[test]
fn usernames_are_matched_without_regard_to_case_or_spaces() {
    let app = TestApp::new();
    app.create_user(Level::Doctor, "drgrey");
    app.browser()
        .login("  DrGrey ", PASSWORD)
        .assert_redirect("/dashboard");
}

#[test]
fn wrong_password_and_unknown_user_look_the_same() {
    let app = TestApp::new();
    app.create_user(Level::Doctor, "drgrey");
    let mut browser = app.browser();
    let wrong_password = browser.login("drgrey", "not the right password at all");
    let mut other = app.browser();
    let unknown_user = other.login("drgrez", "not the right password at all");

    wrong_password.assert_status(Status::Unauthorized);
    assert_eq!(wrong_password.status, unknown_user.status);
    assert!(wrong_password.body.contains("Wrong username or password."));
    // The form is re-filled with what was typed; apart from that and the CSRF token the two
    // answers are the same page.
    let a = without_csrf_token(&wrong_password.body).replace("drgrey", "NAME");
    let b = without_csrf_token(&unknown_user.body).replace("drgrez", "NAME");
    assert_eq!(a, b);
    assert!(browser.cookie("mv_session").is_none());
    assert!(browser
        .get("/dashboard")
        .location
        .unwrap_or_default()
        .starts_with("/login"));

    let failures = app
        .audit_actions()
        .iter()
        .filter(|a| *a == "login.failure")
        .count();
    assert_eq!(failures, 2);
}

#[test]
fn a_deactivated_user_cannot_sign_in() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let id = app.create_user(Level::Patient, "pat");
    admin.get(&format!("/admin/users/{id}"));
    admin
        .post(&format!("/admin/users/{id}/active"), &[("active", "false")])
        .assert_redirect(&format!("/admin/users/{id}"));

    let mut patient = app.browser();
    let page = patient.login("pat", PASSWORD);
    page.assert_status(Status::Unauthorized);
    assert!(page.body.contains("Wrong username or password."));
    patient.get("/dashboard").assert_redirect("/login");
}

// ---------------------------------------------------------------------------------------------
// One-time passwords and changing one's password

#[test]
fn a_one_time_password_must_be_changed_before_anything_else() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let (_, one_time) = admin_creates(&mut admin, "nurse.joy", "doctor");

    let mut nurse = app.browser();
    nurse
        .login("nurse.joy", &one_time)
        .assert_redirect("/account/password");
    for path in ["/dashboard", "/account/sessions", "/", "/admin/users"] {
        let page = nurse.get(path);
        if path == "/" {
            // The front door sends signed-in users to the dashboard, which sends them on.
            page.assert_redirect("/dashboard");
            continue;
        }
        page.assert_redirect("/account/password");
    }
    let form = nurse.get("/account/password");
    form.assert_status(Status::Ok);
    assert!(form.body.contains("one-time password"), "{}", form.body);

    change_password(&mut nurse, &one_time, NEW_PASSWORD).assert_redirect("/login");

    // The one-time password is spent; the new one opens the app.
    app.browser()
        .login("nurse.joy", &one_time)
        .assert_status(Status::Unauthorized);
    nurse
        .login("nurse.joy", NEW_PASSWORD)
        .assert_redirect("/dashboard");
    nurse.get("/dashboard").assert_status(Status::Ok);
    nurse.get("/account/sessions").assert_status(Status::Ok);
}

#[test]
fn a_wrong_current_password_changes_nothing() {
    let app = TestApp::new();
    let mut user = app.signed_in(Level::Patient, "pat");
    let page = change_password(&mut user, "this is not my password", NEW_PASSWORD);
    page.assert_status(Status::UnprocessableEntity);
    assert!(
        page.body.contains("This is not your current password."),
        "{}",
        page.body
    );
    // Still signed in, and the old password still works.
    user.get("/dashboard").assert_status(Status::Ok);
    app.browser()
        .login("pat", PASSWORD)
        .assert_redirect("/dashboard");
    app.browser()
        .login("pat", NEW_PASSWORD)
        .assert_status(Status::Unauthorized);
}

#[test]
fn weak_new_passwords_are_refused_with_a_reason() {
    let app = TestApp::new();
    let mut user = app.signed_in(Level::Patient, "patricia");
    for (new, reason) in [
        ("too short", "at least 12 characters"),
        ("qwertyuiop123", "commonly used"),
        ("QwertyUiop123", "commonly used"),
        (
            "i am patricia and this is mine",
            "must not contain the username",
        ),
        (PASSWORD, "different from the current one"),
    ] {
        let page = change_password(&mut user, PASSWORD, new);
        page.assert_status(Status::UnprocessableEntity);
        assert!(page.body.contains(reason), "{new:?}: {}", page.body);
        assert!(
            !page.body.contains(new),
            "the password {new:?} was echoed back"
        );
    }
    user.get("/dashboard").assert_status(Status::Ok);
    app.browser()
        .login("patricia", PASSWORD)
        .assert_redirect("/dashboard");
}

#[test]
fn changing_the_password_ends_every_session_and_only_the_new_one_works() {
    let app = TestApp::new();
    let mut laptop = app.signed_in(Level::Doctor, "drgrey");
    let mut phone = Browser::new(
        &app,
        "198.51.100.7:5000",
        "Mozilla/5.0 (iPhone) Safari/605.1",
    );
    phone
        .login("drgrey", PASSWORD)
        .assert_redirect("/dashboard");
    phone.get("/dashboard").assert_status(Status::Ok);

    change_password(&mut laptop, PASSWORD, NEW_PASSWORD).assert_redirect("/login");

    phone.get("/dashboard").assert_redirect("/login");
    laptop.get("/dashboard").assert_redirect("/login");
    app.browser()
        .login("drgrey", PASSWORD)
        .assert_status(Status::Unauthorized);
    app.browser()
        .login("drgrey", NEW_PASSWORD)
        .assert_redirect("/dashboard");
    assert!(app
        .audit_actions()
        .contains(&"account.password_changed".to_string()));
}

#[test]
fn signing_out_ends_the_session_on_the_server() {
    let app = TestApp::new();
    let mut browser = app.signed_in(Level::Doctor, "drgrey");
    browser.get("/dashboard").assert_status(Status::Ok);
    // A copy of the cookie taken before signing out, from the very same address and browser.
    let remote = browser.remote.to_string();
    let user_agent = browser.user_agent.clone();
    let mut stolen = browser.clone_with(&remote, &user_agent);
    stolen.get("/dashboard").assert_status(Status::Ok);

    browser.post("/logout", &[]).assert_redirect("/login");
    assert!(browser.cookie("mv_session").is_none());
    browser.get("/dashboard").assert_redirect("/login");

    stolen.get("/dashboard").assert_redirect("/login");
    stolen.get("/account/sessions").assert_redirect("/login");
    assert!(app.audit_actions().contains(&"logout".to_string()));
}

// ---------------------------------------------------------------------------------------------
// The command line

fn medvault_cli(home: &std::path::Path, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_medvault"))
        .args(args)
        .current_dir(home)
        .env("MEDVAULT_HOME", home)
        .envs(database_env(home))
        .env("MEDVAULT_LOG", "warn")
        .env_remove("MEDVAULT_MASTER_KEY")
        .env_remove("MEDVAULT_KEY_FILE")
        .env_remove("ROCKET_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run medvault");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write the password");
    child.wait_with_output().expect("medvault exits")
}

#[test]
fn the_command_line_creates_a_user_who_can_sign_in() {
    let home = tempfile::tempdir().expect("temp dir");
    let args = ["user", "create", "--level", "doctor", "--username", "drcli"];
    let out = medvault_cli(home.path(), &args, &format!("{PASSWORD}\n"));
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("drcli"));

    // The same name again is refused.
    let again = medvault_cli(home.path(), &args, &format!("{PASSWORD}\n"));
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("taken"), "{stderr}");

    // A weak password is refused, and the user is not created.
    let weak = medvault_cli(
        home.path(),
        &[
            "user",
            "create",
            "--level",
            "patient",
            "--username",
            "weakling",
        ],
        "qwertyuiop123\n",
    );
    assert!(!weak.status.success());
    assert!(
        String::from_utf8_lossy(&weak.stderr).contains("commonly used"),
        "{}",
        String::from_utf8_lossy(&weak.stderr)
    );

    // The home holds the database and the key file, readable by the owner only.
    assert_eq!(
        home.path().join("database/medvault.sqlite").is_file(),
        !on_postgres()
    );
    let key = home.path().join("secrets/master.key");
    assert!(key.is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
        let dir = std::fs::metadata(home.path().join("secrets"))
            .expect("secrets")
            .permissions();
        assert_eq!(dir.mode() & 0o777, 0o700, "secrets mode {:o}", dir.mode());
    }

    // The server started on that home lets the user sign in with the password given on stdin.
    let app = TestApp::on_home(home, Clock::manual(START), |_| {});
    let mut browser = app.browser();
    browser
        .login("drcli", PASSWORD)
        .assert_redirect("/dashboard");
    browser.get("/dashboard").assert_status(Status::Ok);
    app.browser()
        .login("weakling", "qwertyuiop123")
        .assert_status(Status::Unauthorized);
    // A user created on the command line did not need a one-time password.
    assert!(app.audit_actions().contains(&"user.created".to_string()));
}

#[test]
fn the_command_line_refuses_a_bad_username() {
    let home = tempfile::tempdir().expect("temp dir");
    let out = medvault_cli(
        home.path(),
        &[
            "user",
            "create",
            "--level",
            "admin",
            "--username",
            "<script>",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("username"));
}

#[test]
fn a_setup_form_opened_before_an_admin_was_made_elsewhere_creates_nobody() {
    let app = TestApp::new();
    let token = app.app().setup.current().expect("setup token");
    let mut guest = app.browser();
    let csrf = guest
        .get(&format!("/setup?token={token}"))
        .csrf_token()
        .expect("csrf");
    // Meanwhile an admin is created on the command line.
    app.create_user(Level::Admin, "cliadmin");
    let page = guest.post_form(
        "/setup",
        &[
            ("csrf_token", &csrf),
            ("token", &token),
            ("username", "lateadmin"),
            ("password", PASSWORD),
        ],
        Some(ORIGIN),
    );
    page.assert_status(Status::NotFound);
    assert!(!app
        .audit_actions()
        .contains(&"setup.admin_created".to_string()));
    app.browser()
        .login("lateadmin", PASSWORD)
        .assert_status(Status::Unauthorized);
}

#[test]
fn a_password_hash_with_older_parameters_is_replaced_at_the_next_sign_in() {
    use diesel::prelude::*;
    use medvault::db::schema::users;
    let app = TestApp::new();
    let id = app.create_user(Level::Doctor, "doc");
    let weak = app
        .app()
        .passwords
        .hash_with_params(PASSWORD, 8 * 1024, 1, 1)
        .unwrap();
    let stored = |app: &TestApp| -> String {
        let mut conn = app.app().db.conn().unwrap();
        users::table
            .find(&id)
            .select(users::password_hash)
            .first(&mut *conn)
            .unwrap()
    };
    app.raw_sql(&format!(
        "UPDATE users SET password_hash = '{weak}' WHERE id = '{id}'"
    ));
    app.browser()
        .login("doc", PASSWORD)
        .assert_redirect("/dashboard");
    let now = stored(&app);
    assert_ne!(now, weak);
    assert!(now.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{now}");
    // And it still signs in.
    app.browser()
        .login("doc", PASSWORD)
        .assert_redirect("/dashboard");
}

/// Every admin locked out (or any account): `medvault user unlock NAME` lifts the lock the
/// database holds, audited; the server sees it at the next attempt, without a restart.
#[test]
fn the_command_line_unlocks_a_locked_account_and_says_so() {
    let app = TestApp::new();
    app.create_user(Level::Admin, "boss");
    let mut browser = app.browser();
    for _ in 0..5 {
        browser
            .login("boss", "not the password, not at all")
            .assert_status(Status::Unauthorized);
    }
    browser
        .login("boss", PASSWORD)
        .assert_status(Status::Unauthorized);

    let out = medvault_cli(app.home.path(), &["user", "unlock", " Boss "], "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("boss can sign in again"), "{stdout}");
    browser
        .login("boss", PASSWORD)
        .assert_redirect("/dashboard");
    assert!(app
        .audit_actions()
        .contains(&"account.unlocked".to_string()));

    // A name with no account: a message, a failure, nothing written.
    let before = app.audit_actions().len();
    let out = medvault_cli(app.home.path(), &["user", "unlock", "nobody"], "");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("there is no account named \"nobody\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(app.audit_actions().len(), before);
}
