//! Backups from the admin's side: making one while the pages work, the manifest, restoring it
//! without a restart (also while other threads read and write), what a crash leaves behind,
//! the schedule, and that a backup holds no personal value in the clear.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use diesel::prelude::*;
use medvault::access::Level;
use medvault::backup::{self, Origin};
use medvault::brute_force::BruteForcePolicy;
use medvault::db::schema::users;
use medvault::masking::Mode;
use rocket::http::Status;

fn usernames(app: &TestApp) -> Vec<String> {
    let mut conn = app.app().db.conn().expect("conn");
    users::table
        .order(users::username.asc())
        .select(users::username)
        .load(&mut *conn)
        .expect("users")
}

/// The admin presses "Back up now"; returns the new backup's name.
fn back_up_now(admin: &mut Browser<'_>) -> String {
    admin.get("/admin/backups").assert_status(Status::Ok);
    let done = admin.post("/admin/backups", &[]);
    done.assert_redirect("/admin/backups");
    let page = admin.get("/admin/backups");
    page.assert_status(Status::Ok);
    let start = page.body.find("<code>medvault-").expect("a listed backup") + "<code>".len();
    let end = page.body[start..].find("</code>").expect("end of name") + start;
    page.body[start..end].to_string()
}

fn restore(admin: &mut Browser<'_>, name: &str) -> Page {
    admin
        .get(&format!("/admin/backups/{name}/restore"))
        .assert_status(Status::Ok);
    admin.post(
        &format!("/admin/backups/{name}/restore"),
        &[("confirmed", "true")],
    )
}

#[test]
fn a_backup_is_listed_with_a_manifest_and_restoring_it_brings_back_that_state() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    app.create_user(Level::Patient, "before");
    let name = back_up_now(&mut admin);
    assert!(backup::is_backup_name(&name), "{name}");

    let listed = backup::list(app.app()).expect("list");
    assert_eq!(listed.len(), 1);
    let manifest = listed[0].manifest.clone().expect("manifest");
    assert!(listed[0].verified);
    let path = app.home.path().join("database/backups").join(&name);
    let (sha, size) = backup::sha256_file(&path).expect("hash");
    assert_eq!(
        (manifest.sha256.as_str(), manifest.size),
        (sha.as_str(), size)
    );
    assert_eq!(manifest.author, "admin");
    assert_eq!(manifest.schema_version, backup::our_schema_version());
    assert_eq!(
        manifest.key_checks[0].check_value,
        app.app().keys().key_check_value(1).expect("kcv")
    );

    app.create_user(Level::Patient, "after");
    app.raw_sql("DELETE FROM users WHERE username = 'before'");
    assert_eq!(usernames(&app), ["admin", "after"]);

    let done = restore(&mut admin, &name);
    done.assert_redirect("/admin/backups");
    assert_eq!(usernames(&app), ["admin", "before"]);
    // The admin's session was in the backup, so it survives; the state replaced was saved.
    let page = admin.get("/admin/backups");
    page.assert_status(Status::Ok);
    assert!(page.body.contains("before-restore"), "{}", page.body);
    assert_eq!(backup::list(app.app()).expect("list").len(), 2);
    let actions = app.audit_actions();
    assert!(
        actions.iter().any(|a| a == "backup.restored"),
        "{actions:?}"
    );
    // The audit chain of the restored database still holds.
    let report = {
        let mut conn = app.app().db.conn().expect("conn");
        app.app().audit.verify(&mut conn).expect("verify")
    };
    assert_eq!(report.first_broken, None);
}

#[test]
fn a_restore_reloads_the_access_table_from_the_restored_database() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let name = back_up_now(&mut admin);
    app.create_user(Level::Doctor, "drwho");
    // After the backup, doctors are given the user list...
    app.raw_sql(
        "UPDATE page_access SET allowed = 1 WHERE level = 'doctor' AND page = 'AdminUsers'",
    );
    let mut conn = app.app().db.conn().expect("conn");
    app.app()
        .access
        .replace(medvault::db::models::PageGrant::load_granted(&mut conn).expect("grants"));
    drop(conn);
    assert!(app
        .app()
        .access
        .allows(Level::Doctor, medvault::access::Page::AdminUsers));
    restore(&mut admin, &name).assert_redirect("/admin/backups");
    // ...and the restore takes it back, without a restart.
    assert!(!app
        .app()
        .access
        .allows(Level::Doctor, medvault::access::Page::AdminUsers));
}

/// What a running server holds in memory of the admin's settings, as a test compares it.
#[derive(Debug, PartialEq)]
struct InForce {
    doctors_see_users: bool,
    bind_ip: bool,
    bind_user_agent: bool,
    doctors_need_two_factor: bool,
    lockout_failures: u32,
    blind_index_bits: u32,
    id_length: usize,
    doctors_see_phone: Mode,
    setup_link: bool,
}

fn in_force(app: &TestApp) -> InForce {
    let app = app.app();
    InForce {
        doctors_see_users: app
            .access
            .allows(Level::Doctor, medvault::access::Page::AdminUsers),
        bind_ip: app.security.bind_ip(),
        bind_user_agent: app.security.bind_user_agent(),
        doctors_need_two_factor: app.security.two_factor_required(Level::Doctor),
        lockout_failures: app.brute_force.policy().lockout_failures,
        blind_index_bits: app.fields.policy().blind_index_bits,
        id_length: app.id_length(),
        doctors_see_phone: app.masking().mode("phone", Level::Doctor),
        setup_link: app.setup.current().is_some(),
    }
}

#[test]
fn a_restore_puts_every_admin_setting_of_the_backup_in_force() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let defaults = in_force(&app);
    let with_defaults = back_up_now(&mut admin);

    // Every setting an admin can change, changed, sealed as the pages would, and in force.
    let policy = BruteForcePolicy {
        lockout_failures: defaults.lockout_failures + 4,
        ..BruteForcePolicy::default()
    };
    app.raw_sql(&format!(
        "INSERT OR REPLACE INTO settings (name, value) VALUES \
         ('session.bind_ip', '{}'), ('session.bind_user_agent', '{}'), \
         ('security.require_2fa', 'doctor'), ('security.brute_force', '{}'), \
         ('ids.length', '{}'), ('fields.blind_index_bits', '{}')",
        !defaults.bind_ip,
        !defaults.bind_user_agent,
        serde_json::to_string(&policy).expect("json"),
        defaults.id_length + 8,
        defaults.blind_index_bits + 32,
    ));
    app.raw_sql(
        "UPDATE page_access SET allowed = 1 WHERE level = 'doctor' AND page = 'AdminUsers'",
    );
    app.raw_sql("INSERT OR REPLACE INTO field_visibility VALUES ('phone', 'doctor', 'hidden')");
    {
        let mut conn = app.app().db.conn().expect("conn");
        let now = app.app().now();
        app.app().state_seal.reseal(now, &mut conn).expect("reseal");
    }
    app.app().reload_from_database().expect("reload");
    let changed = in_force(&app);
    let expected_changed = InForce {
        doctors_see_users: !defaults.doctors_see_users,
        bind_ip: !defaults.bind_ip,
        bind_user_agent: !defaults.bind_user_agent,
        doctors_need_two_factor: !defaults.doctors_need_two_factor,
        lockout_failures: defaults.lockout_failures + 4,
        blind_index_bits: defaults.blind_index_bits + 32,
        id_length: defaults.id_length + 8,
        doctors_see_phone: Mode::Hidden,
        setup_link: false,
    };
    assert_eq!(changed, expected_changed);
    admin
        .post("/admin/backups", &[])
        .assert_redirect("/admin/backups");
    let with_changes = backup::list(app.app())
        .expect("list")
        .into_iter()
        .map(|b| b.name)
        .find(|name| *name != with_defaults)
        .expect("the second backup");

    // Back to the backup of the defaults: each one is in force again, the id length included
    // (the backup has none of its own, so the configured one applies).
    restore(&mut admin, &with_defaults).assert_redirect("/admin/backups");
    assert_eq!(in_force(&app), defaults);
    // And forward to the changed one: each change is in force, without a restart.
    restore(&mut admin, &with_changes).assert_redirect("/admin/backups");
    assert_eq!(in_force(&app), expected_changed);
}

#[test]
fn a_restore_while_other_threads_read_and_write_gives_them_no_error_and_no_mixed_state() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    app.create_user(Level::Patient, "before");
    let name = back_up_now(&mut admin);
    app.create_user(Level::Patient, "after");
    let running = Arc::new(AtomicBool::new(true));
    let mut workers = Vec::new();
    for worker in 0..4 {
        let (shared, running) = (app.app().clone(), running.clone());
        workers.push(std::thread::spawn(move || {
            let mut rounds = 0u64;
            while running.load(Ordering::SeqCst) || rounds < 20 {
                let mut conn = shared
                    .db
                    .conn()
                    .expect("a connection, at most after a wait");
                // Readers see the old users or the restored ones, never a mix.
                let names: Vec<String> = users::table
                    .order(users::username.asc())
                    .select(users::username)
                    .load(&mut *conn)
                    .expect("read");
                assert!(
                    names == ["admin", "after", "before"] || names == ["admin", "before"],
                    "{names:?}"
                );
                // Writers write two settings in one transaction; both or neither are seen.
                conn.write_transaction(|conn| {
                    let value = format!("{worker}-{rounds}");
                    medvault::db::models::Setting::set(&format!("test.a{worker}"), &value, conn)?;
                    medvault::db::models::Setting::set(&format!("test.b{worker}"), &value, conn)
                })
                .expect("write");
                let a = medvault::db::models::Setting::get(&format!("test.a{worker}"), &mut conn);
                let b = medvault::db::models::Setting::get(&format!("test.b{worker}"), &mut conn);
                assert_eq!(a.expect("a"), b.expect("b"));
                rounds += 1;
            }
            rounds
        }));
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    restore(&mut admin, &name).assert_redirect("/admin/backups");
    std::thread::sleep(std::time::Duration::from_millis(50));
    running.store(false, Ordering::SeqCst);
    for worker in workers {
        assert!(worker.join().expect("no worker panicked") >= 20);
    }
    assert_eq!(usernames(&app), ["admin", "before"]);
    // Pages answer as before.
    admin.get("/admin/backups").assert_status(Status::Ok);
    admin.get("/health").assert_status(Status::Ok);
}

#[test]
fn a_backup_holds_no_personal_value_and_no_key_in_the_clear() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    admin.get("/admin/users/new").assert_status(Status::Ok);
    let created = admin.post(
        "/admin/users",
        &[
            ("username", "jdoe"),
            ("level", "patient"),
            ("full_name", "Philomena Quartermaine"),
            ("email", "philomena.quartermaine@example.org"),
        ],
    );
    created.assert_status(Status::Ok);
    let name = back_up_now(&mut admin);
    let bytes = std::fs::read(app.home.path().join("database/backups").join(&name)).expect("read");
    let key_file =
        std::fs::read_to_string(app.home.path().join("secrets/master.key")).expect("key");
    let mut secrets: Vec<String> = vec![
        "Philomena".into(),
        "Quartermaine".into(),
        "philomena.quartermaine@example.org".into(),
        PASSWORD.into(),
    ];
    secrets.extend(
        key_file
            .split([',', ':', '\n'])
            .filter(|p| p.len() > 20)
            .map(str::to_string),
    );
    for secret in &secrets {
        let found = bytes
            .windows(secret.len())
            .any(|w| w.eq_ignore_ascii_case(secret.as_bytes()));
        assert!(!found, "the backup holds {secret:?} in the clear");
    }
    let manifest = std::fs::read_to_string(
        app.home
            .path()
            .join("database/backups")
            .join(format!("{name}.json")),
    )
    .expect("manifest");
    for secret in &secrets {
        assert!(!manifest.contains(secret.as_str()));
    }
}

#[test]
fn a_crash_in_the_middle_of_a_restore_or_backup_leaves_the_live_database_whole() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    app.create_user(Level::Patient, "before");
    back_up_now(&mut admin);
    app.create_user(Level::Patient, "after");
    let home = app.home.path().to_path_buf();
    // What a kill leaves: a staged copy beside the live file (killed before the rename), a
    // half-written copy and its manifest-less temporary in the backups folder.
    std::fs::write(
        home.join("database/.medvault-restore-1.staging"),
        b"half a database",
    )
    .unwrap();
    std::fs::write(
        home.join("database/backups/.medvault-20270101T000000Z.sqlite.partial"),
        b"x",
    )
    .unwrap();
    std::fs::write(home.join("database/backups/.medvault-1-abc.upload"), b"x").unwrap();
    // None of it is listed, and the live database is the old one, whole.
    assert_eq!(backup::list(app.app()).expect("list").len(), 1);
    assert_eq!(usernames(&app), ["admin", "after", "before"]);
    let TestApp {
        client,
        clock,
        home: dir,
    } = app;
    drop(client);
    // The next start cleans up and serves the same data.
    let mut config = home_config(dir.path());
    config.clock = clock;
    let reopened = medvault::App::open(config).expect("starts again");
    backup::remove_leftovers(&reopened);
    for leftover in [
        "database/.medvault-restore-1.staging",
        "database/backups/.medvault-20270101T000000Z.sqlite.partial",
        "database/backups/.medvault-1-abc.upload",
    ] {
        assert!(!dir.path().join(leftover).exists(), "{leftover} was left");
    }
    let mut conn = reopened.db.conn().expect("conn");
    let count: i64 = users::table.count().get_result(&mut *conn).expect("count");
    assert_eq!(count, 3);
    let check: Vec<String> = diesel::dsl::sql::<diesel::sql_types::Text>("SELECT 'ok'")
        .load(&mut *conn)
        .expect("query");
    assert_eq!(check, ["ok"]);
}

#[test]
fn the_schedule_makes_a_backup_when_due_and_keeps_the_last_n() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    admin.get("/admin/backups").assert_status(Status::Ok);
    admin
        .post(
            "/admin/backups/schedule",
            &[("interval_hours", "6"), ("keep", "2")],
        )
        .assert_redirect("/admin/backups");
    assert!(app
        .audit_actions()
        .iter()
        .any(|a| a == "backup.settings_saved"));
    // A bad value is refused with a page, never a 500.
    let bad = admin.post(
        "/admin/backups/schedule",
        &[("interval_hours", "-1"), ("keep", "0")],
    );
    bad.assert_status(Status::UnprocessableEntity);
    let first = backup::schedule::run_due_backups(app.app()).expect("run");
    assert!(first.made.is_some(), "no backup yet: one is due");
    let again = backup::schedule::run_due_backups(app.app()).expect("run");
    assert!(again.made.is_none(), "not due before the interval");
    for _ in 0..3 {
        app.clock.advance(6 * 3600);
        let run = backup::schedule::run_due_backups(app.app()).expect("run");
        assert_eq!(run.made.expect("due").origin, Some(Origin::Scheduled));
    }
    assert_eq!(backup::list(app.app()).expect("list").len(), 2);
    assert!(
        app.audit_actions()
            .iter()
            .filter(|a| *a == "backup.created")
            .count()
            >= 4
    );
}

#[test]
fn backups_manifests_and_the_restored_database_are_the_owners_alone() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::new();
    app.create_user(Level::Admin, "admin");
    let made = medvault::backup::create_backup(app.app(), "test", medvault::backup::Origin::Manual)
        .expect("backup");
    let dir = app.home.path().join("database/backups");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let file = dir.join(&made.name);
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&medvault::backup::manifest_path(&file)), 0o600);
    medvault::backup::restore_backup(app.app(), &made.name, "test").expect("restore");
    assert_eq!(
        mode(&app.home.path().join("database/medvault.sqlite")),
        0o600
    );
}

#[test]
fn one_backup_or_restore_runs_at_a_time_and_the_others_are_told_so() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let made = backup::create_backup(app.app(), "test", Origin::Manual).expect("backup");
    let before = backup::list(app.app()).unwrap().len();
    {
        // A backup is under way (the page's, the schedule's or the command line's).
        let _running = app.app().backup_work.start().expect("free");
        admin.get("/admin/backups").assert_status(Status::Ok);
        let page = admin.post("/admin/backups", &[]);
        page.assert_status(Status::Conflict);
        assert!(
            page.body.contains("another backup or restore is under way"),
            "{}",
            page.body
        );
        admin.get("/admin/backups").assert_status(Status::Ok);
        let page = admin.post(
            &format!("/admin/backups/{}/restore", made.name),
            &[("confirmed", "true")],
        );
        page.assert_status(Status::Conflict);
        assert!(matches!(
            backup::create_backup(app.app(), "test", Origin::Manual),
            Err(backup::BackupError::Busy)
        ));
        assert_eq!(
            backup::list(app.app()).unwrap().len(),
            before,
            "nothing half-made"
        );
    }
    // Backups made back to back in the same second each get a name and a manifest of their own.
    let names: Vec<String> = (0..3)
        .map(|_| {
            backup::create_backup(app.app(), "test", Origin::Manual)
                .expect("backup")
                .name
        })
        .collect();
    let listed = backup::list(app.app()).unwrap();
    assert_eq!(listed.len(), before + 3);
    for name in &names {
        assert!(
            listed.iter().any(|b| &b.name == name && b.verified),
            "{name}"
        );
    }
}

#[test]
fn the_backup_schedule_runs_only_on_the_server_holding_its_lease() {
    use medvault::db::models::JobLease;
    let app = TestApp::new();
    let mut conn = app.app().db.conn().expect("conn");
    let other = "elsewhere:4242:abcdefgh";
    assert!(JobLease::take(backup::schedule::LEASE, other, 60_000, &mut conn).unwrap());
    let run = backup::schedule::run_due_backups(app.app()).expect("run");
    assert!(run.made.is_none(), "the other server makes the backup");
    assert!(backup::list(app.app()).expect("list").is_empty());

    assert!(JobLease::take(backup::schedule::LEASE, other, -1, &mut conn).unwrap());
    let run = backup::schedule::run_due_backups(app.app()).expect("run");
    assert!(
        run.made.is_some(),
        "the lease ran out: this server makes it"
    );
    assert!(
        JobLease::holder(backup::schedule::LEASE, &mut conn)
            .unwrap()
            .is_none(),
        "given up once the backup is made"
    );
}
