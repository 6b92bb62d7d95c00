//! Every refusal of a backup action: a changed byte, a corrupt file, another installation's
//! root key, a newer schema, names from outside the listing, a non-admin and a missing CSRF
//! token. Each is a rendered 4xx page, audited, and leaves the live data as it was.

use crate::common;

use common::*;
use diesel::connection::SimpleConnection;
use diesel::Connection;
use medvault::access::Level;
use medvault::backup;
use rocket::http::{ContentType, Header, Status};

fn backups_dir(app: &TestApp) -> std::path::PathBuf {
    app.home.path().join("database/backups")
}

/// A backup made directly; returns its path.
fn make_backup(app: &TestApp) -> std::path::PathBuf {
    let info = backup::create_backup(app.app(), "test", backup::Origin::Manual).expect("backup");
    backups_dir(app).join(info.name)
}

/// Rewrites the manifest's SHA-256 and size to the file's, as a forger who edits both would.
fn reseal_manifest(path: &std::path::Path) {
    let manifest_path = backup::manifest_path(path);
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    let (sha, size) = backup::sha256_file(path).unwrap();
    manifest["sha256"] = sha.into();
    manifest["size"] = size.into();
    std::fs::write(manifest_path, manifest.to_string()).unwrap();
}

#[track_caller]
fn assert_restore_refused(
    app: &TestApp,
    admin: &mut Browser<'_>,
    path: &std::path::Path,
    why: &str,
) {
    let name = path.file_name().unwrap().to_str().unwrap();
    admin.get("/admin/backups").assert_status(Status::Ok);
    let page = admin.post(
        &format!("/admin/backups/{name}/restore"),
        &[("confirmed", "true")],
    );
    page.assert_status(Status::UnprocessableEntity);
    assert!(page.body.contains(why), "expected {why:?}: {}", page.body);
    assert_eq!(
        app.audit_actions().last().map(String::as_str),
        Some("backup.refused")
    );
    admin.get("/admin/backups").assert_status(Status::Ok);
}

#[test]
fn a_changed_byte_is_refused_as_a_sha256_mismatch() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let path = make_backup(&app);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    assert_restore_refused(&app, &mut admin, &path, "SHA-256 does not match");
}

#[test]
fn a_corrupt_file_is_refused_even_with_a_matching_manifest() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let path = make_backup(&app);
    let mut bytes = std::fs::read(&path).unwrap();
    // Wipe every page after the first: the header still says SQLite, the tables are gone.
    for b in bytes.iter_mut().skip(4096) {
        *b = 0xA5;
    }
    std::fs::write(&path, bytes).unwrap();
    reseal_manifest(&path);
    assert_restore_refused(&app, &mut admin, &path, "Refused:");
}

#[test]
fn a_backup_of_another_installation_is_refused_for_its_root_key() {
    let app = TestApp::new();
    let other = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let theirs = make_backup(&other);
    let name = theirs.file_name().unwrap().to_owned();
    let ours = backups_dir(&app).join(&name);
    std::fs::copy(&theirs, &ours).unwrap();
    std::fs::copy(backup::manifest_path(&theirs), backup::manifest_path(&ours)).unwrap();
    assert_restore_refused(&app, &mut admin, &ours, "another root key");
}

#[test]
fn a_backup_with_a_newer_schema_is_refused() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let path = make_backup(&app);
    let mut conn = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    conn.batch_execute(
        "INSERT INTO __diesel_schema_migrations (version, run_on) VALUES ('99991231000000', CURRENT_TIMESTAMP)",
    )
    .unwrap();
    drop(conn);
    reseal_manifest(&path);
    assert_restore_refused(&app, &mut admin, &path, "newer than this server");
}

#[test]
fn names_from_outside_the_listing_are_refused_with_a_page_and_audited() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    make_backup(&app);
    // A symlink with a backup's name, pointing at the live database, is not listed.
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        app.home.path().join("database/medvault.sqlite"),
        backups_dir(&app).join("medvault-20200101T000000Z.sqlite"),
    )
    .unwrap();
    assert_eq!(backup::list(app.app()).unwrap().len(), 1);
    let before = app.audit_actions().len();
    for name in [
        "..%2F..%2Fsecrets%2Fmaster.key",
        "%2Fetc%2Fpasswd",
        "..%2Fmedvault.sqlite",
        "medvault-20200101T000000Z.sqlite",
        "medvault-20270101T000000Z.sqlite%00.json",
        "medvault-99999999T999999Z.sqlite",
    ] {
        let page = admin.get(&format!("/admin/backups/{name}/download"));
        assert!(
            page.status.code >= 400 && page.status.code < 500,
            "{name}: {}",
            page.status
        );
        assert!(
            page.body.contains("<html") || page.body.contains("<!DOCTYPE"),
            "{name}"
        );
        assert!(!page.body.contains("SQLite format"), "{name}");
        admin.get("/admin/backups").assert_status(Status::Ok);
        let restore = admin.post(
            &format!("/admin/backups/{name}/restore"),
            &[("confirmed", "true")],
        );
        assert!(
            restore.status.code >= 400 && restore.status.code < 500,
            "{name}: {}",
            restore.status
        );
    }
    let refused = app.audit_actions()[before..]
        .iter()
        .filter(|a| *a == "backup.refused")
        .count();
    assert!(refused >= 10, "{refused} refusals audited");
    assert!(backups_dir(&app)
        .join("medvault-20200101T000000Z.sqlite")
        .exists());
}

#[test]
fn only_granted_levels_reach_backups_and_every_post_needs_its_csrf_token() {
    let app = TestApp::new();
    let mut doctor = app.signed_in(Level::Doctor, "drwho");
    doctor
        .get("/admin/backups")
        .assert_status(Status::Forbidden);
    doctor
        .post("/admin/backups", &[])
        .assert_status(Status::Forbidden);
    let name = make_backup(&app)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    doctor
        .get(&format!("/admin/backups/{name}/download"))
        .assert_status(Status::Forbidden);
    let mut admin = app.signed_in(Level::Admin, "admin");
    admin.get("/admin/backups").assert_status(Status::Ok);
    admin
        .post_form("/admin/backups", &[], Some(ORIGIN))
        .assert_status(Status::Forbidden);
    admin
        .post_form(
            &format!("/admin/backups/{name}/delete"),
            &[("confirmed", "true")],
            Some(ORIGIN),
        )
        .assert_status(Status::Forbidden);
    assert_eq!(backup::list(app.app()).unwrap().len(), 1);
    // Without the confirmation step, a delete is sent to it; with it, the backup goes.
    admin
        .post(&format!("/admin/backups/{name}/delete"), &[])
        .assert_redirect(&format!("/admin/backups/{name}/delete"));
    admin
        .post(
            &format!("/admin/backups/{name}/delete"),
            &[("confirmed", "true")],
        )
        .assert_redirect("/admin/backups");
    assert!(backup::list(app.app()).unwrap().is_empty());
    assert!(app.audit_actions().iter().any(|a| a == "backup.deleted"));
}

/// Posts `file` to the upload form as the admin's browser would.
fn upload(app: &TestApp, admin: &mut Browser<'_>, file: &[u8]) -> (Status, String) {
    let token = admin.get("/admin/backups").csrf_token().expect("token");
    let boundary = "medvaultboundary1234";
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{token}\r\n").as_bytes());
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b.sqlite\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut req = app
        .client
        .post("/admin/backups/upload")
        .header(ContentType::new("multipart", "form-data").with_params(("boundary", boundary)))
        .header(Header::new("Origin", ORIGIN))
        .header(Header::new("Host", HOST))
        .header(Header::new("User-Agent", admin.user_agent.clone()))
        .remote(admin.remote)
        .body(body);
    if let Some(session) = admin.cookie(medvault::auth::SESSION_COOKIE) {
        req = req.cookie(rocket::http::Cookie::new(
            medvault::auth::SESSION_COOKIE,
            session.to_string(),
        ));
    }
    let res = req.dispatch();
    let status = res.status();
    (status, res.into_string().unwrap_or_default())
}

#[test]
fn an_upload_is_checked_before_it_is_listed() {
    let app = TestApp::new();
    let other = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    // One of ours, without its manifest: checked, listed, marked as uploaded.
    let ours = std::fs::read(make_backup(&app)).unwrap();
    let (status, _) = upload(&app, &mut admin, &ours);
    assert_eq!(status, Status::SeeOther);
    let listed = backup::list(app.app()).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed
        .iter()
        .any(|b| b.origin == Some(backup::Origin::Uploaded) && b.verified));
    assert!(app.audit_actions().iter().any(|a| a == "backup.uploaded"));
    // Garbage and another installation's backup are refused and never listed.
    let (status, body) = upload(
        &app,
        &mut admin,
        b"this is not a database at all, not even close",
    );
    assert_eq!(status, Status::UnprocessableEntity, "{body}");
    let theirs = std::fs::read(make_backup(&other)).unwrap();
    let (status, body) = upload(&app, &mut admin, &theirs);
    assert_eq!(status, Status::UnprocessableEntity);
    assert!(body.contains("another root key"), "{body}");
    assert_eq!(backup::list(app.app()).unwrap().len(), 2);
    let leftovers = std::fs::read_dir(backups_dir(&app))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(leftovers, 0, "a refused upload leaves nothing behind");
}

/// Runs `sql` on a backup file, as someone who edits a copy before it comes back would.
fn edit_backup(path: &std::path::Path, sql: &str) {
    let mut conn = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    conn.batch_execute(sql).unwrap();
}

const PROMOTING_TRIGGER: &str = "CREATE TRIGGER promote AFTER INSERT ON audit_events \
     BEGIN UPDATE users SET level = 'admin' WHERE username = 'pat'; END;";

#[test]
fn a_backup_whose_schema_is_not_medvaults_is_refused_naming_the_difference() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    app.create_user(Level::Patient, "pat");
    for (sql, why) in [
        (
            PROMOTING_TRIGGER,
            "has a trigger `promote` on `audit_events` that medvault&#x27;s schema does not",
        ),
        (
            "DROP TABLE vaccinations;",
            "table `vaccinations` is missing",
        ),
        (
            "CREATE VIEW everyone AS SELECT username, password_hash FROM users;",
            "has a view `everyone`",
        ),
        (
            "DROP TRIGGER audit_events_no_update;",
            "trigger `audit_events_no_update` on `audit_events` is missing",
        ),
    ] {
        let path = make_backup(&app);
        edit_backup(&path, sql);
        reseal_manifest(&path);
        assert_restore_refused(&app, &mut admin, &path, why);
        std::fs::remove_file(backup::manifest_path(&path)).unwrap();
        std::fs::remove_file(&path).unwrap();
    }
    // Nothing ran: the patient is still a patient.
    let mut conn = app.app().db.conn().unwrap();
    let pat = medvault::db::models::User::find_by_username("pat", &mut conn)
        .unwrap()
        .unwrap();
    assert_eq!(pat.level, "patient");
}

#[test]
fn an_uploaded_backup_with_a_planted_trigger_is_never_listed() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let path = make_backup(&app);
    edit_backup(&path, PROMOTING_TRIGGER);
    let planted = std::fs::read(&path).unwrap();
    let before = backup::list(app.app()).unwrap().len();
    let (status, body) = upload(&app, &mut admin, &planted);
    assert_eq!(status, Status::UnprocessableEntity, "{body}");
    assert!(body.contains("trigger `promote`"), "{body}");
    assert_eq!(backup::list(app.app()).unwrap().len(), before);
}

#[test]
fn a_backup_whose_settings_were_edited_is_refused() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let path = make_backup(&app);
    edit_backup(
        &path,
        "UPDATE encrypted_columns SET encrypted = 0 WHERE column_name = 'full_name'; \
         UPDATE users SET full_name = 'plain:Forged';",
    );
    reseal_manifest(&path);
    assert_restore_refused(
        &app,
        &mut admin,
        &path,
        "the backup&#x27;s settings were changed outside medvault: encrypted_columns",
    );
    // And as an upload: never listed.
    let (status, body) = upload(&app, &mut admin, &std::fs::read(&path).unwrap());
    assert_eq!(status, Status::UnprocessableEntity, "{body}");
    assert!(
        body.contains("settings were changed outside medvault"),
        "{body}"
    );
}
