//! Root keys held by a real key manager: OpenBao's transit engine (`transit.rs`, with a dev
//! server the tests start) and a PKCS#11 HSM (`pkcs11.rs`, SoftHSM2 with a token each test
//! makes). Each is compiled in only when the run names the key manager (see build.rs). What
//! both must show is written once here and run against each: data written under the key
//! manager reads back after a restart while the disk holds no key; the key manager's own key
//! rotation rewraps the stored root keys without touching a single field value; an admin's
//! rotation wraps the new version.

use crate::common::record_builders::*;
use crate::common::*;

use std::path::Path;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Text};
use medvault::access::Level;
use medvault::audit::action;
use medvault::{build_rocket, Clock, Config};

#[cfg(pkcs11_tests)]
mod pkcs11;
#[cfg(openbao_tests)]
mod transit;

/// What a record carries in these tests, to find again after a restart.
const DIAGNOSIS: &str = "Quartan malaria, relapsing";

/// The message of a start that refuses; the test fails if the server starts.
fn refusal(home: &Path, adjust: impl FnOnce(&mut Config)) -> String {
    let mut config = config_for(home, Clock::manual(START));
    adjust(&mut config);
    match build_rocket(config) {
        Ok(_) => panic!("the server started"),
        Err(e) => e.to_string(),
    }
}

/// A start that must be refused: its name, the change to a working configuration, and what
/// the message must say.
type RefusalCase<'a> = (&'a str, Box<dyn Fn(&mut Config) + 'a>, &'a str);

/// Stops the server; its home stays.
fn stop(app: TestApp) -> tempfile::TempDir {
    let TestApp { client, home, .. } = app;
    drop(client);
    home
}

/// Nothing of a refused first start is left behind: no database, no key file.
fn assert_nothing_written(home: &Path) {
    assert!(
        !home.join("database/medvault.sqlite").exists(),
        "a database was created"
    );
    assert!(!home.join("secrets").exists(), "a key folder was created");
    if let Some(url) = database_for(home) {
        // The home's PostgreSQL database exists (the harness made it) but holds no table.
        let mut conn = diesel::PgConnection::establish(url.expose()).expect("database");
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let tables: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .get_result(&mut conn)
        .expect("count");
        assert_eq!(tables.n, 0, "tables were created");
    }
}

#[derive(QueryableByName, Debug, Clone, PartialEq, Eq)]
pub struct WrappedRow {
    #[diesel(sql_type = BigInt)]
    pub version: i64,
    #[diesel(sql_type = Text)]
    pub provider: String,
    #[diesel(sql_type = Text)]
    pub wrapping_key: String,
    #[diesel(sql_type = Binary)]
    pub wrapped: Vec<u8>,
}

/// The wrapped root keys as stored.
pub fn wrapped_rows(home: &Path) -> Vec<WrappedRow> {
    diesel::sql_query(
        "SELECT version, provider, wrapping_key, wrapped FROM wrapped_root_keys ORDER BY version",
    )
    .load(&mut database_conn(home))
    .expect("wrapped keys")
}

#[derive(QueryableByName, Debug, PartialEq, Eq)]
struct SealedValues {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    full_name: String,
    #[diesel(sql_type = Text)]
    email: String,
}

/// Every sealed name and email as stored: a rewrap must leave them byte for byte.
fn sealed_values(home: &Path) -> Vec<SealedValues> {
    diesel::sql_query("SELECT id, full_name, email FROM users ORDER BY id")
        .load(&mut database_conn(home))
        .expect("users")
}

/// A doctor's patient whose record holds [`DIAGNOSIS`].
fn write_a_record(app: &TestApp) -> String {
    let (mut doctor, patient) = doctor_with_patient(app);
    fill_record(&mut doctor, &patient, DIAGNOSIS, "2027-03-01T09:00");
    patient
}

/// The record reads back, opened by the doctor.
fn assert_record_reads_back(app: &TestApp, patient: &str) {
    let mut doctor = app.browser();
    doctor.login("dr.grey", PASSWORD).assert_redirect("/");
    let page = doctor.get(&format!("/patients/{patient}"));
    page.assert_status(rocket::http::Status::Ok);
    assert!(page.body.contains(DIAGNOSIS), "{}", page.body);
    assert!(page.body.contains("Patricia"), "the sealed profile opens");
    assert!(!page.body.contains("Integrity error"));
}

/// Data written under the key manager reads back after a restart; the home holds no key file
/// and the database only wrapped root keys, and the wrapping was audited.
fn data_reads_back_after_a_restart(provider: &str, configure: &dyn Fn(&mut Config)) {
    let app = TestApp::with_config(configure);
    let patient = write_a_record(&app);
    assert!(count_of(&app.audit_actions(), action::ROOT_KEYS_WRAPPED) == 1);
    let app = app.restart(configure);
    assert_record_reads_back(&app, &patient);
    assert!(!app.home.path().join("secrets/master.key").exists());
    let rows = wrapped_rows(app.home.path());
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].version, rows[0].provider.as_str()), (1, provider));
    // A restart with the same wrappings writes none.
    assert_eq!(count_of(&app.audit_actions(), action::ROOT_KEYS_WRAPPED), 1);
    let health = app.browser().get("/health");
    health.assert_status(rocket::http::Status::Ok);
    assert!(
        health.body.contains("\"key_manager\":\"ok\""),
        "{}",
        health.body
    );
}

/// The key manager's key rotated (`rotate_key_manager`) and a restart: every stored root key
/// is rewrapped under the new key (`retire_old` then takes the old one out of use), and not a
/// field value changes.
fn key_manager_rotation_rewraps_without_touching_fields(
    configure: &dyn Fn(&mut Config),
    rotate_key_manager: &dyn Fn(&mut Config),
    new_wrapping_key: &str,
    retire_old: &dyn Fn(),
) {
    let app = TestApp::with_config(configure);
    let patient = write_a_record(&app);
    let home = app.home.path().to_path_buf();
    let before = wrapped_rows(&home);
    let values = sealed_values(&home);
    let rotated = |config: &mut Config| {
        configure(config);
        rotate_key_manager(config);
    };
    let app = app.restart(rotated);
    let after = wrapped_rows(&home);
    assert_eq!(after.len(), before.len());
    assert_ne!(after[0].wrapped, before[0].wrapped, "rewrapped");
    assert!(after.iter().all(|row| row.wrapping_key == new_wrapping_key));
    assert_eq!(count_of(&app.audit_actions(), action::ROOT_KEYS_WRAPPED), 2);
    assert_eq!(sealed_values(&home), values, "no field value was rewritten");
    retire_old();
    let app = app.restart(rotated);
    assert_record_reads_back(&app, &patient);
    assert_eq!(sealed_values(&home), values);
}

/// An admin's rotation under the key manager stores the new version wrapped, and a restart
/// opens values under both.
fn an_admin_rotation_wraps_the_new_version(configure: &dyn Fn(&mut Config)) {
    let app = TestApp::with_config(configure);
    let patient = write_a_record(&app);
    let actor = medvault::audit::Actor {
        name: "admin".into(),
        ..Default::default()
    };
    let rotated = medvault::reencryption::rotation::rotate_root_key(app.app(), &actor, Some(1))
        .expect("rotated");
    assert_eq!(
        rotated,
        medvault::reencryption::rotation::Rotation::Rotated(2)
    );
    assert!(!app.home.path().join("secrets/master.key").exists());
    let rows = wrapped_rows(app.home.path());
    assert_eq!(
        rows.iter().map(|r| r.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    // A value written now is sealed under version 2; the record's older values under 1.
    app.create_user(Level::Doctor, "dr.after");
    let app = app.restart(configure);
    assert_record_reads_back(&app, &patient);
    let mut admin = app.signed_in(Level::Admin, "admin.after");
    let list = admin.get("/admin/users");
    assert!(list.body.contains("dr.after"));
    assert!(!list.body.contains("Integrity error"), "{}", list.body);
}

/// A clinic moving from the key file to the key manager: the start wraps the file's keys
/// (checked against the database first), after which the file can go.
fn the_key_files_keys_move_into_the_key_manager(configure: &dyn Fn(&mut Config)) {
    let app = TestApp::new();
    let patient = write_a_record(&app);
    let key_file = app.home.path().join("secrets/master.key");
    assert!(key_file.exists());
    let app = app.restart(configure);
    assert_record_reads_back(&app, &patient);
    assert_eq!(wrapped_rows(app.home.path()).len(), 1);
    std::fs::remove_file(&key_file).expect("the key file goes");
    let app = app.restart(configure);
    assert_record_reads_back(&app, &patient);
}

/// Another start's root keys, wrapped by this key manager, put in place of this database's:
/// the key check values refuse them before anything is written.
fn wrapped_keys_of_another_installation_are_refused(configure: &dyn Fn(&mut Config)) {
    let other = TestApp::with_config(configure);
    let theirs = wrapped_rows(other.home.path());
    drop(other);
    let app = TestApp::with_config(configure);
    write_a_record(&app);
    let home = stop(app);
    diesel::sql_query("UPDATE wrapped_root_keys SET wrapped = $1 WHERE version = 1")
        .bind::<Binary, _>(&theirs[0].wrapped)
        .execute(&mut database_conn(home.path()))
        .expect("swapped");
    let refused = refusal(home.path(), configure);
    assert!(refused.contains("key check value mismatch"), "{refused}");
}
