//! Field encryption end to end: account names and emails are sealed in the database file and
//! shown to the admin; emails are found through a keyed blind index; every kind of tampering
//! with a stored value is shown as an integrity error and audited; the admin's policy at
//! /admin/encryption is validated, audited, and applied by a resumable re-encryption job; the
//! root key rotates and old versions retire; and new ids take the configured length.

use crate::common;

use base64::{engine::general_purpose::STANDARD, Engine};
use common::*;
use diesel::prelude::*;
use diesel::sql_types::Text;
use medvault::access::Level;
use medvault::build_rocket;
use medvault::crypto::FieldRef;
use medvault::reencryption::job::{self, Job};
use rocket::http::Status;
use sha2::{Digest, Sha256};

/// A server whose re-encryption jobs run only when the test drives them.
fn manual_jobs() -> TestApp {
    TestApp::with_config(|c| c.reencrypt_in_background = false)
}

/// The `<tr>` of the user list that links to `username`.
fn row_of<'b>(body: &'b str, username: &str) -> &'b str {
    let link = format!("\">{username}</a>");
    let at = body
        .find(&link)
        .unwrap_or_else(|| panic!("{username} is not on the page: {body}"));
    let start = body[..at].rfind("<tr>").expect("row start");
    let end = body[at..].find("</tr>").expect("row end") + at;
    &body[start..end]
}

/// An admin creates a patient with a name and email through the real form; returns the id.
fn admin_creates_named(
    admin: &mut Browser<'_>,
    username: &str,
    full_name: &str,
    email: &str,
) -> String {
    admin.get("/admin/users/new").assert_status(Status::Ok);
    let page = admin.post(
        "/admin/users",
        &[
            ("username", username),
            ("level", "patient"),
            ("full_name", full_name),
            ("email", email),
        ],
    );
    page.assert_status(Status::Ok);
    find_between(&page.body, "<a href=\"/admin/users/", "\"")
        .expect("link to the new user")
        .to_string()
}

/// Opens the database as someone holding the file (or the server's credentials) would.
fn file_conn(app: &TestApp) -> medvault::db::Conn {
    database_conn(app.home.path())
}

#[derive(QueryableByName, Debug, Clone)]
struct StoredRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    username: String,
    #[diesel(sql_type = Text)]
    full_name: String,
    #[diesel(sql_type = Text)]
    email: String,
    #[diesel(sql_type = Text)]
    email_index: String,
}

/// Every account as stored in the file.
fn stored_rows(app: &TestApp) -> Vec<StoredRow> {
    diesel::sql_query("SELECT id, username, full_name, email, email_index FROM users ORDER BY id")
        .load(&mut file_conn(app))
        .expect("users")
}

fn stored(app: &TestApp, id: &str) -> StoredRow {
    stored_rows(app)
        .into_iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no row {id}"))
}

/// Writes `value` into `column` of the account `id`, straight into the file.
fn write_column(app: &TestApp, id: &str, column: &str, value: &str) {
    assert!(["full_name", "email"].contains(&column));
    let changed = diesel::sql_query(format!("UPDATE users SET {column} = $1 WHERE id = $2"))
        .bind::<Text, _>(value)
        .bind::<Text, _>(id)
        .execute(&mut file_conn(app))
        .expect("update");
    assert_eq!(changed, 1);
}

/// The bytes behind a sealed value's `mv1:` prefix.
fn sealed_bytes(stored: &str) -> Vec<u8> {
    let encoded = stored
        .strip_prefix("mv1:")
        .unwrap_or_else(|| panic!("not sealed: {stored}"));
    STANDARD.decode(encoded).expect("base64")
}

/// (cipher id, hash id, root key version) from a sealed value's header.
pub(crate) fn header(stored: &str) -> (u8, u8, u32) {
    let bytes = sealed_bytes(stored);
    assert_eq!(bytes[0], 1, "format version 1");
    (
        bytes[1],
        bytes[2],
        u32::from_be_bytes(bytes[3..7].try_into().expect("4 bytes")),
    )
}

fn reseal(bytes: &[u8]) -> String {
    format!("mv1:{}", STANDARD.encode(bytes))
}

/// Every audit event as (action, detail).
fn audit_events(app: &TestApp) -> Vec<(String, String)> {
    use medvault::db::schema::audit_events;
    audit_events::table
        .order(audit_events::id.asc())
        .select((audit_events::action, audit_events::detail))
        .load(&mut file_conn(app))
        .expect("audit rows")
}

fn running_job(app: &TestApp) -> Option<Job> {
    let mut conn = app.app().db.conn().expect("conn");
    Job::running(&mut conn).expect("job")
}

/// The policy form as the page posts it.
pub(crate) fn policy_form<'f>(
    cipher: &'f str,
    hash: &'f str,
    encrypt: &[&'f str],
    id_length: &'f str,
    bits: &'f str,
) -> Vec<(&'f str, &'f str)> {
    let mut form = vec![("cipher[users]", cipher), ("hash[users]", hash)];
    form.extend(encrypt.iter().map(|c| ("encrypt", *c)));
    // The other tables keep their defaults: every column encrypted.
    form.extend(
        OTHER_TABLES_ENCRYPTED
            .iter()
            .map(|c| ("encrypt", c.as_str())),
    );
    form.push(("id_length", id_length));
    form.push(("blind_index_bits", bits));
    form
}

/// `table.column` of every encryptable column outside `users`, which these tests vary.
static OTHER_TABLES_ENCRYPTED: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    medvault::fields::registry::encryptable_columns()
        .iter()
        .filter(|(t, c)| t.name != "users" && !c.always_encrypted)
        .map(|(t, c)| format!("{}.{}", t.name, c.name))
        .collect()
});

pub(crate) const DEFAULT_FORM: (&str, &str, &[&str], &str, &str) = (
    "aes-256-gcm",
    "sha-256",
    &["users.full_name", "users.email"],
    "16",
    "64",
);

pub(crate) fn save_policy(admin: &mut Browser<'_>, form: &[(&str, &str)]) -> Page {
    admin.get("/admin/encryption").assert_status(Status::Ok);
    admin.post("/admin/encryption", form)
}

fn search(admin: &mut Browser<'_>, q: &str) -> Page {
    let page = admin.get(&format!("/admin/users?q={}", encode(q)));
    page.assert_status(Status::Ok);
    page
}

const ALICE: (&str, &str, &str) = ("alice", "Zelda Quixotica-Brown", "zq.brown@clinic.example");
const BOB: (&str, &str, &str) = ("bob", "Robert Paulson", "bob.p@fightclub.example");

/// A fresh server with an admin, alice and bob (both with a name and an email).
fn two_patients() -> (TestApp, String, String) {
    let app = manual_jobs();
    let (alice, bob) = {
        let mut admin = app.signed_in(Level::Admin, "admin");
        (
            admin_creates_named(&mut admin, ALICE.0, ALICE.1, ALICE.2),
            admin_creates_named(&mut admin, BOB.0, BOB.1, BOB.2),
        )
    };
    (app, alice, bob)
}

fn sign_in_admin(app: &TestApp) -> Browser<'_> {
    let mut admin = app.browser();
    admin.login("admin", PASSWORD).assert_redirect("/");
    admin
}

// ---------------------------------------------------------------------------------------------
// 1. Sealed at rest, shown to the admin

#[test]
fn names_and_emails_are_sealed_in_the_file_and_shown_to_the_admin() {
    let (app, alice, _) = two_patients();
    let row = stored(&app, &alice);
    for value in [&row.full_name, &row.email] {
        assert!(value.starts_with("mv1:"), "sealed: {value}");
        assert_eq!(header(value), (1, 4, 1), "AES-256-GCM / SHA-256, key 1");
    }
    assert!(!row.full_name.contains(ALICE.1) && !row.email.contains(ALICE.2));

    // Nothing in the database (the SQLite file, WAL and shared memory, or a dump of the
    // PostgreSQL database) holds either in clear.
    let bytes = database_bytes(app.home.path());
    assert!(bytes.len() > 4096, "the database was read");
    for secret in [ALICE.1, ALICE.2, BOB.1, BOB.2, "Quixotica", "zq.brown"] {
        assert!(
            !bytes
                .windows(secret.len())
                .any(|w| w.eq_ignore_ascii_case(secret.as_bytes())),
            "{secret} is in the database file in clear"
        );
    }

    let mut admin = sign_in_admin(&app);
    let list = admin.get("/admin/users");
    list.assert_status(Status::Ok);
    assert!(
        row_of(&list.body, ALICE.0).contains(ALICE.1),
        "{}",
        list.body
    );
    assert!(row_of(&list.body, BOB.0).contains(BOB.1));
    let edit = admin.get(&format!("/admin/users/{alice}"));
    edit.assert_status(Status::Ok);
    assert_eq!(
        input_value(&edit.body, "full_name").as_deref(),
        Some(ALICE.1)
    );
    assert_eq!(input_value(&edit.body, "email").as_deref(), Some(ALICE.2));
    assert!(!edit.body.contains("Integrity error"));
}

#[test]
fn the_edit_page_has_one_name_field_and_one_email_field_and_saving_it_changes_them() {
    let (app, alice, _) = two_patients();
    let mut admin = sign_in_admin(&app);
    let edit = admin.get(&format!("/admin/users/{alice}"));
    for name in ["full_name", "email"] {
        assert_eq!(
            edit.body.matches(&format!("name=\"{name}\"")).count(),
            1,
            "exactly one {name} input, else a browser posts both and the first wins: {}",
            edit.body
        );
    }
    admin
        .post(
            &format!("/admin/users/{alice}"),
            &[
                ("username", ALICE.0),
                ("level", "patient"),
                ("full_name", "Zelda Q. Brown"),
                ("email", "zelda@new.example"),
            ],
        )
        .assert_redirect(&format!("/admin/users/{alice}"));
    let edit = admin.get(&format!("/admin/users/{alice}"));
    assert_eq!(
        input_value(&edit.body, "full_name").as_deref(),
        Some("Zelda Q. Brown")
    );
    assert_eq!(
        input_value(&edit.body, "email").as_deref(),
        Some("zelda@new.example")
    );
    let row = stored(&app, &alice);
    assert!(row.full_name.starts_with("mv1:") && row.email.starts_with("mv1:"));
}

// ---------------------------------------------------------------------------------------------
// 2. Email search through the blind index

#[test]
fn an_exact_email_in_any_case_finds_the_account_and_a_partial_email_does_not() {
    let (app, alice, bob) = two_patients();
    let mut admin = sign_in_admin(&app);

    for q in [
        ALICE.2,
        "ZQ.Brown@Clinic.EXAMPLE",
        "  zq.brown@clinic.example  ",
    ] {
        let page = search(&mut admin, q);
        assert_eq!(user_rows(&page.body), 1, "{q:?}: {}", page.body);
        assert!(row_of(&page.body, ALICE.0).contains(ALICE.1));
        assert!(page.body.contains(&format!("/admin/users/{alice}\"")));
    }
    let page = search(&mut admin, BOB.2);
    assert_eq!(user_rows(&page.body), 1);
    assert!(page.body.contains(&format!("/admin/users/{bob}\"")));

    for partial in [
        "zq.brown@clinic",
        "zq.brown@",
        "@clinic.example",
        "brown@clinic.example",
        "zq.brown@clinic.example.org",
    ] {
        let page = search(&mut admin, partial);
        assert_eq!(
            user_rows(&page.body),
            0,
            "{partial:?} found someone: {}",
            page.body
        );
        assert!(page.body.contains("No user matches."));
    }
}

#[test]
fn the_email_index_is_keyed_hex_of_the_configured_width() {
    let (app, alice, bob) = two_patients();
    let index = stored(&app, &alice).email_index;
    assert_eq!(index.len(), 16, "64 bits by default: {index}");
    assert!(index
        .chars()
        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
    assert_ne!(index, stored(&app, &bob).email_index);
    // Not an unkeyed hash of the email: anyone could compute that from a guess.
    for text in [ALICE.2, &ALICE.2.to_uppercase()] {
        let unkeyed = hex::encode(Sha256::digest(text.as_bytes()));
        assert!(
            !unkeyed.starts_with(&index) && !unkeyed.ends_with(&index),
            "{index} is sha256({text})"
        );
    }

    // A wider index, once the job has recomputed it, is 128 bits and still finds the account.
    let mut admin = sign_in_admin(&app);
    let (c, h, e, i, _) = DEFAULT_FORM;
    save_policy(&mut admin, &policy_form(c, h, e, i, "128")).assert_redirect("/admin/encryption");
    job::run(app.app(), None).expect("job");
    let wide = stored(&app, &alice).email_index;
    assert_eq!(wide.len(), 32, "{wide}");
    assert!(wide.starts_with(&index), "the same HMAC, less truncated");
    let page = search(&mut admin, ALICE.2);
    assert_eq!(user_rows(&page.body), 1, "{}", page.body);
    assert!(page.body.contains(&format!("/admin/users/{alice}\"")));
}

#[test]
fn an_email_that_only_shares_a_truncated_index_finds_nobody() {
    let (app, alice, _) = two_patients();
    let mut admin = sign_in_admin(&app);
    let (c, h, e, i, _) = DEFAULT_FORM;
    save_policy(&mut admin, &policy_form(c, h, e, i, "16")).assert_redirect("/admin/encryption");
    job::run(app.app(), None).expect("job");
    let index = stored(&app, &alice).email_index;
    assert_eq!(index.len(), 4, "16 bits");

    // Some other address has the same 16-bit index (about one in 65,536 does).
    let fields = &app.app().fields;
    let twin = (0..10_000_000)
        .map(|n| format!("probe{n}@elsewhere.example"))
        .find(|probe| fields.blind_index("users", "email", probe).unwrap() == index)
        .expect("an address sharing the index");
    let page = search(&mut admin, &twin);
    assert_eq!(
        user_rows(&page.body),
        0,
        "{twin} is not alice's email: {}",
        page.body
    );
    assert_eq!(user_rows(&search(&mut admin, ALICE.2).body), 1);
}

// ---------------------------------------------------------------------------------------------
// 3. Tampering

/// Tampers with alice's full name through `tamper(app, alice, bob)`, then checks that the list
/// and edit pages show an integrity error and none of `never_shown`, and that it is audited.
fn assert_tamper_refused(tamper: impl FnOnce(&TestApp, &str, &str), never_shown: &[&str]) {
    let (app, alice, bob) = two_patients();
    assert!(running_job(&app).is_none(), "no job is moving any column");
    tamper(&app, &alice, &bob);

    let mut admin = sign_in_admin(&app);
    let list = admin.get("/admin/users");
    list.assert_status(Status::Ok);
    let row = row_of(&list.body, ALICE.0);
    assert!(row.contains("integrity error"), "{row}");
    for text in never_shown.iter().chain([&ALICE.1]) {
        assert!(!row.contains(text), "{text} shown as data: {row}");
    }
    // The other account is untouched.
    let other = row_of(&list.body, BOB.0);
    assert!(other.contains(BOB.1) && !other.contains("integrity error"));

    let before = count_of(&app.audit_actions(), "encryption.integrity_error");
    let edit = admin.get(&format!("/admin/users/{alice}"));
    edit.assert_status(Status::Ok);
    assert!(edit.body.contains("Integrity error"), "{}", edit.body);
    assert_eq!(input_value(&edit.body, "full_name"), None, "no name shown");
    for text in never_shown.iter().chain([&ALICE.1]) {
        assert!(
            !edit.body.contains(text) || *text == ALICE.2,
            "{text} shown as data"
        );
    }
    assert_eq!(
        count_of(&app.audit_actions(), "encryption.integrity_error"),
        before + 1,
        "the refusal is audited"
    );
    let event = audit_events(&app)
        .into_iter()
        .rfind(|(a, _)| a == "encryption.integrity_error")
        .expect("event");
    assert!(event.1.contains("users.full_name"), "{}", event.1);
}

#[test]
fn a_name_swapped_between_rows_is_an_integrity_error() {
    assert_tamper_refused(
        |app, alice, bob| {
            let bobs = stored(app, bob).full_name;
            write_column(app, alice, "full_name", &bobs);
        },
        &[BOB.1],
    );
}

#[test]
fn an_email_copied_into_the_name_column_of_its_row_is_an_integrity_error() {
    assert_tamper_refused(
        |app, alice, _| {
            let email = stored(app, alice).email;
            write_column(app, alice, "full_name", &email);
        },
        &[ALICE.2],
    );
}

#[test]
fn a_flipped_base64_character_is_an_integrity_error() {
    assert_tamper_refused(
        |app, alice, _| {
            let value = stored(app, alice).full_name;
            let mut chars: Vec<char> = value.chars().collect();
            let at = chars.len() / 2;
            chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
            let flipped: String = chars.into_iter().collect();
            assert_ne!(sealed_bytes(&flipped), sealed_bytes(&value));
            write_column(app, alice, "full_name", &flipped);
        },
        &[],
    );
}

#[test]
fn a_truncated_value_is_an_integrity_error() {
    assert_tamper_refused(
        |app, alice, _| {
            let mut bytes = sealed_bytes(&stored(app, alice).full_name);
            bytes.truncate(bytes.len() - 4);
            write_column(app, alice, "full_name", &reseal(&bytes));
        },
        &[],
    );
}

#[test]
fn a_plain_value_written_into_an_encrypted_column_is_an_integrity_error() {
    assert_tamper_refused(
        |app, alice, _| {
            app.raw_sql(&format!(
                "UPDATE users SET full_name = 'plain:Mallory' WHERE id = '{alice}'"
            ))
        },
        &["Mallory"],
    );
}

#[test]
fn a_value_relabelled_as_des_is_an_integrity_error() {
    assert_tamper_refused(
        |app, alice, _| {
            let mut bytes = sealed_bytes(&stored(app, alice).full_name);
            bytes[1] = 18; // DES-CBC
            write_column(app, alice, "full_name", &reseal(&bytes));
        },
        &[],
    );
}

#[test]
fn a_value_relabelled_as_rc4_with_md5_is_an_integrity_error() {
    assert_tamper_refused(
        |app, alice, _| {
            let mut bytes = sealed_bytes(&stored(app, alice).full_name);
            bytes[1] = 21; // RC4-drop3072
            bytes[2] = 1; // MD5
            write_column(app, alice, "full_name", &reseal(&bytes));
        },
        &[],
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Changing the policy

#[test]
fn a_policy_change_keeps_values_readable_and_the_job_moves_them_to_the_new_suite() {
    let (app, alice, bob) = two_patients();
    let index_before = stored(&app, &alice).email_index;
    let mut admin = sign_in_admin(&app);
    let saved = save_policy(
        &mut admin,
        &policy_form(
            "chacha20-poly1305",
            "sha3-256",
            &["users.full_name"],
            "16",
            "64",
        ),
    );
    saved.assert_redirect("/admin/encryption");
    let page = admin.get("/admin/encryption");
    assert!(
        page.body.contains("ChaCha20-Poly1305 &#x2F; SHA3-256"),
        "{}",
        page.body
    );
    assert!(page
        .body
        .contains("<strong>6</strong> still in an old form"));
    assert!(running_job(&app).is_some());

    // Before the job runs, every value is still in its old form and every page shows it.
    for row in stored_rows(&app) {
        assert_eq!(header(&row.full_name).0, 1, "still AES-256-GCM");
        assert!(row.email.starts_with("mv1:"));
    }
    let list = admin.get("/admin/users");
    assert!(row_of(&list.body, ALICE.0).contains(ALICE.1));
    assert!(row_of(&list.body, BOB.0).contains(BOB.1));
    assert!(!list.body.contains("integrity error"));
    for (id, (_, name, email)) in [(&alice, ALICE), (&bob, BOB)] {
        let edit = admin.get(&format!("/admin/users/{id}"));
        assert_eq!(input_value(&edit.body, "full_name").as_deref(), Some(name));
        assert_eq!(input_value(&edit.body, "email").as_deref(), Some(email));
    }
    // The stored indexes are still the old hash's, and the search still finds by exact email.
    let found = search(&mut admin, ALICE.2);
    assert_eq!(
        user_rows(&found.body),
        1,
        "email search while the job runs: {}",
        found.body
    );
    assert!(found.body.contains(&format!("/admin/users/{alice}\"")));
    assert_eq!(user_rows(&search(&mut admin, "zq.brown@clinic").body), 0);

    let batches = job::run(app.app(), None).expect("job runs");
    assert!(batches >= 2, "one batch per column at least");
    assert!(running_job(&app).is_none());
    for row in stored_rows(&app) {
        assert_eq!(header(&row.full_name), (4, 8, 1), "{}", row.username);
        assert!(row.email.starts_with("plain:"), "{}", row.email);
    }
    assert_eq!(stored(&app, &alice).email, format!("plain:{}", ALICE.2));
    let page = admin.get("/admin/encryption");
    assert!(page
        .body
        .contains("<strong>0</strong> still in an old form"));

    // The indexes follow the new hash, and the search still finds by exact email.
    assert_ne!(stored(&app, &alice).email_index, index_before);
    let found = search(&mut admin, " ZQ.BROWN@clinic.example");
    assert_eq!(user_rows(&found.body), 1, "{}", found.body);
    assert!(found.body.contains(&format!("/admin/users/{alice}\"")));
    let list = admin.get("/admin/users");
    assert!(row_of(&list.body, ALICE.0).contains(ALICE.1));
    let edit = admin.get(&format!("/admin/users/{bob}"));
    assert_eq!(input_value(&edit.body, "email").as_deref(), Some(BOB.2));

    let actions = app.audit_actions();
    assert_eq!(count_of(&actions, "encryption.policy_saved"), 1);
    assert_eq!(count_of(&actions, "encryption.job_finished"), 1);
    let finished = audit_events(&app)
        .into_iter()
        .rfind(|(a, _)| a == "encryption.job_finished")
        .expect("event");
    assert!(
        finished.1.contains("6 value(s) rewritten, 0 unreadable"),
        "{}",
        finished.1
    );
}

// ---------------------------------------------------------------------------------------------
// 5. A job stopped part-way resumes after a restart

#[test]
fn a_job_stopped_after_one_batch_resumes_after_a_restart_and_finishes() {
    use medvault::db::models::NewUser;
    use medvault::fields::StoreError;

    const BULK: usize = 1199; // with the admin: 1,200 accounts, 2,400 values
    let app = manual_jobs();
    {
        let mut admin = app.signed_in(Level::Admin, "admin");
        let a = app.app();
        let mut conn = a.db.conn().expect("conn");
        conn.write_transaction(|conn| {
            for i in 0..BULK {
                let id = medvault::crypto::random_id(16);
                let username = format!("bulk{i:04}");
                medvault::users::insert_account(
                    a,
                    &NewUser {
                        id: &id,
                        username: &username,
                        level: "patient",
                        password_hash: "not-a-hash",
                        must_change_password: false,
                        active: true,
                        created_at: START,
                        updated_at: START,
                    },
                    (&format!("Person {i}"), &format!("person{i}@bulk.example")),
                    conn,
                )?;
            }
            Ok::<_, StoreError>(())
        })
        .expect("bulk accounts");
        drop(conn);
        save_policy(
            &mut admin,
            &policy_form(
                "xchacha20-poly1305",
                "sha-512",
                &["users.full_name", "users.email"],
                "16",
                "64",
            ),
        )
        .assert_redirect("/admin/encryption");
    }
    assert_eq!(job::run(app.app(), Some(1)).expect("one batch"), 1);
    let stopped = running_job(&app).expect("the job is still running");
    assert_eq!(stopped.rewritten, job::BATCH_SIZE);
    assert_eq!(stopped.total, 2 * 1200);
    let moved = stored_rows(&app)
        .iter()
        .filter(|r| header(&r.full_name).0 == 5)
        .count();
    assert_eq!(moved, 500);

    // The server goes away mid-job; a new one on the same home finds the job where it stopped.
    let app = app.restart(|c| c.reencrypt_in_background = false);
    let resumed = running_job(&app).expect("still running after the restart");
    assert_eq!(resumed.id, stopped.id);
    assert_eq!(resumed.rewritten, stopped.rewritten);
    assert_eq!(resumed.after_row, stopped.after_row);
    assert!(app.app().fields.is_migrating());
    {
        let mut admin = sign_in_admin(&app);
        let page = admin.get("/admin/encryption");
        assert!(page.body.contains("running since"), "{}", page.body);
        assert!(page
            .body
            .contains("<strong>1900</strong> still in an old form"));
        let found = search(&mut admin, "person1000@bulk.example");
        assert!(row_of(&found.body, "bulk1000").contains("Person 1000"));
    }

    // 2,400 values in batches of 500 per column (3 batches each), then one batch for each empty
    // column (the two-factor secret and the records' columns): 6 left after the first, plus
    // those.
    let empty_columns = medvault::fields::registry::encryptable_columns().len() - 2;
    assert_eq!(
        job::run(app.app(), None).expect("rest of the job"),
        6 + empty_columns - 1
    );
    assert!(running_job(&app).is_none());
    assert!(!app.app().fields.is_migrating());
    let fields = &app.app().fields;
    let rows = stored_rows(&app);
    assert_eq!(rows.len(), 1200);
    for row in &rows {
        let place = |column| FieldRef {
            table: "users",
            column,
            row_id: &row.id,
            owner_id: &row.id,
        };
        assert_eq!(header(&row.full_name), (5, 6, 1), "{}", row.username);
        assert_eq!(header(&row.email), (5, 6, 1), "{}", row.username);
        let name = fields
            .open(&place("full_name"), &row.full_name)
            .expect("opens");
        let email = fields.open(&place("email"), &row.email).expect("opens");
        if let Some(i) = row.username.strip_prefix("bulk") {
            let i: usize = i.parse().expect("number");
            assert_eq!(name, format!("Person {i}"));
            assert_eq!(email, format!("person{i}@bulk.example"));
        }
    }
    let finished = audit_events(&app)
        .into_iter()
        .rfind(|(a, _)| a == "encryption.job_finished")
        .expect("finished");
    assert!(
        finished.1.contains("2400 value(s) rewritten, 0 unreadable"),
        "each value once, across both servers: {}",
        finished.1
    );
    let mut admin = sign_in_admin(&app);
    let page = admin.get("/admin/encryption");
    assert!(page
        .body
        .contains("<strong>0</strong> still in an old form"));
    let found = search(&mut admin, "PERSON7@bulk.example");
    assert!(row_of(&found.body, "bulk0007").contains("Person 7"));
}

// ---------------------------------------------------------------------------------------------
// 6. Legacy and broken choices

#[test]
fn broken_suites_are_flagged_audited_and_still_round_trip() {
    let (app, alice, _) = two_patients();
    let mut admin = sign_in_admin(&app);
    let badge = "<span class=\"badge badge-denied\">broken</span>";
    assert!(!admin.get("/admin/encryption").body.contains(badge));

    for (cipher, hash, ids, named) in [
        ("des-cbc", "sha-256", (18, 4), "DES-CBC"),
        ("rc4-drop3072", "sha-1", (21, 2), "RC4"),
        ("aes-256-gcm", "md5", (1, 1), "MD5"),
    ] {
        save_policy(
            &mut admin,
            &policy_form(
                cipher,
                hash,
                &["users.full_name", "users.email"],
                "16",
                "64",
            ),
        )
        .assert_redirect("/admin/encryption");
        let page = admin.get("/admin/encryption");
        assert!(page.body.contains(badge), "{cipher}+{hash}: {}", page.body);
        assert!(page.body.contains("Saved with a legacy or broken suite"));

        let (_, detail) = audit_events(&app)
            .into_iter()
            .rfind(|(a, _)| a == "encryption.policy_saved")
            .expect("policy event");
        assert!(detail.contains("WEAK SUITE CHOSEN"), "{detail}");
        assert!(detail.contains(named), "{detail}");
        assert!(detail.contains("broken"), "{detail}");

        job::run(app.app(), None).expect("job");
        let row = stored(&app, &alice);
        assert_eq!((header(&row.full_name).0, header(&row.full_name).1), ids);
        assert_eq!((header(&row.email).0, header(&row.email).1), ids);
        let list = admin.get("/admin/users");
        assert!(row_of(&list.body, ALICE.0).contains(ALICE.1), "{cipher}");
        assert!(row_of(&list.body, BOB.0).contains(BOB.1), "{cipher}");
        let edit = admin.get(&format!("/admin/users/{alice}"));
        assert_eq!(input_value(&edit.body, "email").as_deref(), Some(ALICE.2));
        let found = search(&mut admin, ALICE.2);
        assert_eq!(user_rows(&found.body), 1, "{cipher}+{hash}");
    }

    // Back to a modern suite: the badge goes.
    let (c, h, e, i, b) = DEFAULT_FORM;
    save_policy(&mut admin, &policy_form(c, h, e, i, b)).assert_redirect("/admin/encryption");
    assert!(!admin.get("/admin/encryption").body.contains(badge));
}

#[test]
fn legacy_suites_carry_a_legacy_badge() {
    let (app, _, _) = two_patients();
    let mut admin = sign_in_admin(&app);
    let badge = "<span class=\"badge badge-denied\">legacy</span>";
    save_policy(
        &mut admin,
        &policy_form("3des-ede3-cbc", "sha-256", &["users.full_name"], "16", "64"),
    )
    .assert_redirect("/admin/encryption");
    assert!(admin.get("/admin/encryption").body.contains(badge));
    let (_, detail) = audit_events(&app)
        .into_iter()
        .rfind(|(a, _)| a == "encryption.policy_saved")
        .expect("policy event");
    assert!(
        detail.contains("3DES") && detail.contains("legacy"),
        "{detail}"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Root key rotation

#[test]
fn rotating_the_root_key_reseals_everything_under_the_new_version_and_retires_the_old() {
    use std::os::unix::fs::PermissionsExt;

    let (app, alice, bob) = two_patients();
    let key_file = app.home.path().join("secrets/master.key");
    let versions = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split(':').next().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        versions(&std::fs::read_to_string(&key_file).expect("key file")),
        ["1"]
    );
    let bobs_v1_name = stored(&app, &bob).full_name;
    assert_eq!(header(&bobs_v1_name).2, 1);

    let mut admin = sign_in_admin(&app);
    admin.get("/admin/encryption");
    admin
        .post("/admin/encryption/rotate", &[])
        .assert_redirect("/admin/encryption");
    let text = std::fs::read_to_string(&key_file).expect("key file");
    assert_eq!(versions(&text), ["1", "2"]);
    let mode = std::fs::metadata(&key_file)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the key file stays private");
    let page = admin.get("/admin/encryption");
    assert!(page.body.contains("<tr><td>1</td>"), "{}", page.body);
    assert!(page.body.contains("<tr><td>2</td>"));
    assert!(page.body.contains("opens older values"));
    assert!(!page.body.contains("retired: no value uses it"));
    assert!(app
        .audit_actions()
        .contains(&"encryption.root_key_rotated".to_string()));

    // New values use version 2 at once; old ones still open.
    admin
        .post(
            &format!("/admin/users/{alice}"),
            &[
                ("username", ALICE.0),
                ("level", "patient"),
                ("full_name", "Zelda Renamed"),
                ("email", ALICE.2),
            ],
        )
        .assert_redirect(&format!("/admin/users/{alice}"));
    let carol = admin_creates_named(&mut admin, "carol", "Carol Danvers", "carol@marvel.example");
    for id in [&alice, &carol] {
        let row = stored(&app, id);
        assert_eq!(header(&row.full_name).2, 2, "{}", row.username);
        assert_eq!(header(&row.email).2, 2);
    }
    assert_eq!(stored(&app, &bob).full_name, bobs_v1_name);
    let list = admin.get("/admin/users");
    assert!(row_of(&list.body, BOB.0).contains(BOB.1));
    assert!(row_of(&list.body, ALICE.0).contains("Zelda Renamed"));

    job::run(app.app(), None).expect("job");
    for row in stored_rows(&app) {
        assert_eq!(header(&row.full_name).2, 2, "{}", row.username);
        assert_eq!(header(&row.email).2, 2, "{}", row.username);
    }
    let page = admin.get("/admin/encryption");
    assert!(
        page.body.contains("retired: no value uses it"),
        "{}",
        page.body
    );
    assert!(page
        .body
        .contains("<strong>0</strong> still in an old form"));
    let list = admin.get("/admin/users");
    assert!(row_of(&list.body, BOB.0).contains(BOB.1));
    assert_eq!(user_rows(&search(&mut admin, BOB.2).body), 1);

    // Bob's own value from before the rotation, put back: version 1 is retired, so it is refused.
    write_column(&app, &bob, "full_name", &bobs_v1_name);
    let list = admin.get("/admin/users");
    let row = row_of(&list.body, BOB.0);
    assert!(
        row.contains("integrity error") && !row.contains(BOB.1),
        "{row}"
    );
    let edit = admin.get(&format!("/admin/users/{bob}"));
    assert!(edit.body.contains("Integrity error"));
    drop(admin);

    // A restart on the same home reads both key versions and keeps version 1 retired.
    let app = app.restart(|c| c.reencrypt_in_background = false);
    assert_eq!(app.app().fields.crypto().current_key_version(), 2);
    let mut admin = sign_in_admin(&app);
    let list = admin.get("/admin/users");
    list.assert_status(Status::Ok);
    assert!(row_of(&list.body, ALICE.0).contains("Zelda Renamed"));
    assert!(row_of(&list.body, "carol").contains("Carol Danvers"));
    assert!(row_of(&list.body, BOB.0).contains("integrity error"));
    assert_eq!(
        user_rows(&search(&mut admin, "Carol@Marvel.example").body),
        1
    );
    let page = admin.get("/admin/encryption");
    assert!(page.body.contains("retired: no value uses it"));
}

#[test]
fn rotation_is_refused_when_the_root_key_comes_from_the_environment() {
    let key = format!("1:{}", STANDARD.encode([7u8; 32]));
    let app = TestApp::with_config(|c| {
        c.master_key = Some(medvault::config::KeyText::from(key.clone()));
        c.reencrypt_in_background = false;
    });
    let mut admin = app.signed_in(Level::Admin, "admin");
    let page = admin.get("/admin/encryption");
    assert!(!page.body.contains("action=\"/admin/encryption/rotate\""));
    assert!(page.body.contains("MEDVAULT_MASTER_KEY"));

    admin
        .post("/admin/encryption/rotate", &[])
        .assert_redirect("/admin/encryption");
    let page = admin.get("/admin/encryption");
    assert!(
        page.body.contains("flash-error")
            && page.body.contains("MEDVAULT_MASTER_KEY")
            && page.body.contains("VERSION:BASE64"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<tr><td>2</td>"));
    assert_eq!(app.app().fields.crypto().current_key_version(), 1);
    assert!(!app.home.path().join("secrets/master.key").exists());
    assert!(!app
        .audit_actions()
        .contains(&"encryption.root_key_rotated".to_string()));
    assert!(running_job(&app).is_none());
    let versions: i64 = {
        use medvault::db::schema::root_key_checks;
        root_key_checks::table
            .count()
            .get_result(&mut file_conn(&app))
            .expect("count")
    };
    assert_eq!(versions, 1);
}

// ---------------------------------------------------------------------------------------------
// 8. Bad input and who may use the page

#[test]
fn a_bad_policy_form_is_refused_with_a_message_and_changes_nothing() {
    let (app, _, _) = two_patients();
    let mut admin = sign_in_admin(&app);
    let policy_before = (*app.app().fields.policy()).clone();
    let events_before = audit_events(&app).len();
    let (c, h, e, i, b) = DEFAULT_FORM;

    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (policy_form("rot13", h, e, i, b), "unknown cipher"),
        (
            policy_form("chacha20-poly1305", "crc32", e, i, b),
            "unknown hash",
        ),
        (
            policy_form(c, h, &["users.full_name", "users.username"], i, b),
            "is not an encryptable column",
        ),
        (
            policy_form(c, h, &["users.id"], i, b),
            "is not an encryptable column",
        ),
        (
            policy_form(c, h, &["nope.x"], i, b),
            "is not an encryptable column",
        ),
        (
            policy_form(c, h, &["users"], i, b),
            "is not an encryptable column",
        ),
        (
            policy_form(c, h, e, i, "20"),
            "16 to 256 bits, in steps of 8",
        ),
        (
            policy_form(c, h, e, i, "512"),
            "16 to 256 bits, in steps of 8",
        ),
        (policy_form(c, h, e, "5", b), "8 to 64 characters"),
        (policy_form(c, h, e, "65", b), "8 to 64 characters"),
        (policy_form(c, h, e, "abc", b), "whole numbers"),
        (policy_form("des-cbc", h, e, i, "abc"), "whole numbers"),
    ];
    for (form, message) in cases {
        let page = save_policy(&mut admin, &form);
        assert_eq!(
            page.status,
            Status::UnprocessableEntity,
            "{form:?}: {}",
            page.body
        );
        assert!(page.body.contains("<h1>Encryption</h1>"), "a rendered page");
        assert!(
            page.body.contains(message),
            "{form:?} wants {message:?}: {}",
            page.body
        );
        assert_eq!(*app.app().fields.policy(), policy_before, "{form:?}");
        assert_eq!(app.app().id_length(), 16);
    }
    assert!(running_job(&app).is_none());
    let events = audit_events(&app);
    assert!(
        !events[events_before..]
            .iter()
            .any(|(a, _)| a == "encryption.policy_saved"),
        "{events:?}"
    );
    // The stored policy is what it was: a restart loads the same.
    drop(admin);
    let app = app.restart(|c| c.reencrypt_in_background = false);
    assert_eq!(*app.app().fields.policy(), policy_before);
    assert_eq!(app.app().id_length(), 16);
}

#[test]
fn patients_and_doctors_are_forbidden_the_encryption_page() {
    let app = manual_jobs();
    app.create_user(Level::Admin, "admin");
    let policy_before = (*app.app().fields.policy()).clone();
    for (level, name) in [(Level::Patient, "pat"), (Level::Doctor, "doc")] {
        let mut user = app.signed_in(level, name);
        user.get("/admin/encryption")
            .assert_status(Status::Forbidden);
        user.post(
            "/admin/encryption",
            &policy_form("des-cbc", "md5", &[], "8", "16"),
        )
        .assert_status(Status::Forbidden);
        user.post("/admin/encryption/rotate", &[])
            .assert_status(Status::Forbidden);
    }
    assert_eq!(*app.app().fields.policy(), policy_before);
    assert_eq!(app.app().fields.crypto().current_key_version(), 1);
    assert!(running_job(&app).is_none());
    assert!(!app
        .audit_actions()
        .iter()
        .any(|a| a == "encryption.policy_saved" || a == "encryption.root_key_rotated"));
}

// ---------------------------------------------------------------------------------------------
// 9. Length of new ids

#[test]
fn an_id_length_of_24_gives_new_accounts_24_character_ids() {
    let (app, alice, _) = two_patients();
    assert_eq!(alice.len(), 16);
    let mut admin = sign_in_admin(&app);
    let (c, h, e, _, b) = DEFAULT_FORM;
    save_policy(&mut admin, &policy_form(c, h, e, "24", b)).assert_redirect("/admin/encryption");
    let page = admin.get("/admin/encryption");
    assert!(
        page.body.contains("Saved. No value needs rewriting."),
        "{}",
        page.body
    );
    assert_eq!(input_value(&page.body, "id_length").as_deref(), Some("24"));
    assert!(running_job(&app).is_none(), "ids alone rewrite nothing");

    let carol = admin_creates_named(&mut admin, "carol", "Carol Danvers", "carol@marvel.example");
    assert_eq!(carol.len(), 24, "{carol}");
    assert!(carol.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(app.create_user(Level::Doctor, "drwho").len(), 24);
    assert_eq!(alice.len(), 16, "existing ids stay");
    drop(admin);

    let app = app.restart(|c| c.reencrypt_in_background = false);
    assert_eq!(app.app().id_length(), 24, "kept across a restart");
    assert_eq!(app.create_user(Level::Patient, "dave").len(), 24);
}

// ---------------------------------------------------------------------------------------------
// The job never launders a forged value into a freshly sealed one.

#[test]
fn the_job_does_not_reseal_a_forged_plain_value() {
    let (app, alice, bob) = two_patients();
    app.raw_sql(&format!(
        "UPDATE users SET full_name = 'plain:Mallory' WHERE id = '{alice}'"
    ));
    let mut admin = sign_in_admin(&app);
    let (_, hash, encrypt, id_length, bits) = DEFAULT_FORM;
    save_policy(
        &mut admin,
        &policy_form("chacha20-poly1305", hash, encrypt, id_length, bits),
    )
    .assert_redirect("/admin/encryption");
    job::run(app.app(), None).expect("job ran");
    // Left as it was, counted as unreadable, and still refused on the page.
    assert_eq!(stored(&app, &alice).full_name, "plain:Mallory");
    assert_eq!(
        header(&stored(&app, &bob).full_name).0,
        4,
        "bob moved to ChaCha20"
    );
    let list = admin.get("/admin/users");
    assert!(row_of(&list.body, ALICE.0).contains("integrity error"));
    assert!(!list.body.contains("Mallory"));
    let finished = audit_events(&app)
        .into_iter()
        .filter(|(action, _)| action == "encryption.job_finished")
        .map(|(_, detail)| detail)
        .next_back()
        .expect("job finished");
    assert!(finished.contains("1 unreadable"), "{finished}");
}

#[test]
fn a_column_that_was_plain_is_moved_into_sealed_form_by_the_job() {
    let (app, alice, _) = two_patients();
    let mut admin = sign_in_admin(&app);
    let (cipher, hash, _, id_length, bits) = DEFAULT_FORM;
    // Email becomes plain...
    save_policy(
        &mut admin,
        &policy_form(cipher, hash, &["users.full_name"], id_length, bits),
    )
    .assert_redirect("/admin/encryption");
    job::run(app.app(), None).expect("job ran");
    assert!(stored(&app, &alice).email.starts_with("plain:"));
    // ...and encrypted again: its plain values are expected this time, and sealed.
    save_policy(
        &mut admin,
        &policy_form(
            cipher,
            hash,
            &["users.full_name", "users.email"],
            id_length,
            bits,
        ),
    )
    .assert_redirect("/admin/encryption");
    let edit = admin.get(&format!("/admin/users/{alice}"));
    assert!(edit.body.contains(ALICE.2), "readable while the job runs");
    job::run(app.app(), None).expect("job ran");
    assert!(stored(&app, &alice).email.starts_with("mv1:"));
    let edit = admin.get(&format!("/admin/users/{alice}"));
    assert!(edit.body.contains(ALICE.2));
    // Once the job has ended, a plain value written behind the server's back is refused again.
    app.raw_sql(&format!(
        "UPDATE users SET email = 'plain:evil@example.org' WHERE id = '{alice}'"
    ));
    let edit = admin.get(&format!("/admin/users/{alice}"));
    assert!(edit.body.contains("Integrity error"));
    assert!(!edit.body.contains("evil@example.org"));
}

// ---------------------------------------------------------------------------------------------
// Every change an admin makes through the pages is sealed, so the next start accepts it.

#[test]
fn every_admin_change_is_sealed_so_the_next_start_accepts_it() {
    /// A second server on the same home: its start checks the seal on the admin's state.
    fn next_start(app: &TestApp) -> Result<(), String> {
        let mut cfg = config_for(app.home.path(), app.clock.clone());
        cfg.reencrypt_in_background = false;
        build_rocket(cfg).map(drop).map_err(|e| e.to_string())
    }
    #[track_caller]
    fn assert_next_start_accepts(app: &TestApp, after: &str) {
        if let Err(e) = next_start(app) {
            panic!("after {after}, the next start is refused: {e}");
        }
    }
    /// The value of `name` in the settings table, as stored in the file.
    fn setting(app: &TestApp, name: &str) -> Option<String> {
        use medvault::db::schema::settings;
        settings::table
            .filter(settings::name.eq(name))
            .select(settings::value)
            .first(&mut file_conn(app))
            .optional()
            .expect("setting")
    }

    let app = manual_jobs();
    let mut admin = app.signed_in(Level::Admin, "admin");
    // Values for the re-encryption job to rewrite.
    admin_creates_named(&mut admin, ALICE.0, ALICE.1, ALICE.2);
    admin_creates_named(&mut admin, BOB.0, BOB.1, BOB.2);
    assert_next_start_accepts(&app, "creating the admin and two patients");

    // Session bindings and the levels that must use two-factor sign-in.
    let page = admin.get("/admin/security");
    page.assert_status(Status::Ok);
    assert!(page.body.contains("name=\"bind_ip\""), "{}", page.body);
    assert!(page.body.contains("name=\"require_2fa\" value=\"doctor\""));
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
    assert_eq!(
        setting(&app, "session.bind_ip").as_deref(),
        Some("true"),
        "saved"
    );
    assert_eq!(
        setting(&app, "security.require_2fa").as_deref(),
        Some("doctor")
    );
    assert_next_start_accepts(&app, "saving /admin/security");

    // Anti brute force, every method with values other than the defaults.
    admin.get("/admin/security").assert_status(Status::Ok);
    let brute_force_before = app.app().brute_force.policy();
    admin
        .post(
            "/admin/security/brute-force",
            &[
                ("lockout_enabled", "true"),
                ("lockout_failures", "7"),
                ("lockout_window_minutes", "20"),
                ("lockout_minutes", "6"),
                ("throttle_enabled", "true"),
                ("throttle_burst", "25"),
                ("throttle_per_minute", "12"),
                ("delay_enabled", "true"),
                ("delay_base_ms", "1"),
                ("delay_max_ms", "2"),
                ("rate_limit_enabled", "true"),
                ("rate_limit_burst", "5000"),
                ("rate_limit_per_minute", "5000"),
            ],
        )
        .assert_redirect("/admin/security");
    assert!(
        !admin
            .get("/admin/security")
            .body
            .contains("Nothing was saved"),
        "the brute-force form was refused"
    );
    assert_ne!(app.app().brute_force.policy(), brute_force_before, "saved");
    assert!(setting(&app, "security.brute_force").is_some());
    assert_next_start_accepts(&app, "saving /admin/security/brute-force");

    // The access grid: what is granted now, and one page more for patients.
    let page = admin.get("/admin/access");
    page.assert_status(Status::Ok);
    let mut granted = Vec::new();
    let mut not_granted = Vec::new();
    for tag in page.body.split("<input").skip(1) {
        let tag = &tag[..tag.find('>').expect("end of tag")];
        if !tag.contains("name=\"grant\"") {
            continue;
        }
        let value = find_between(tag, "value=\"", "\"")
            .expect("grant value")
            .to_string();
        if tag.contains("type=\"hidden\"") || tag.contains(" checked") {
            granted.push(value);
        } else {
            not_granted.push(value);
        }
    }
    let extra = not_granted
        .iter()
        .find(|v| v.starts_with("patient:"))
        .or(not_granted.first())
        .expect("a page not granted yet")
        .clone();
    granted.push(extra.clone());
    let form: Vec<(&str, &str)> = granted.iter().map(|v| ("grant", v.as_str())).collect();
    admin
        .post("/admin/access", &form)
        .assert_redirect("/admin/access");
    let page = admin.get("/admin/access");
    assert!(
        page.body
            .contains(&format!("name=\"grant\" value=\"{extra}\" checked")),
        "{extra} was not saved: {}",
        page.body
    );
    assert_next_start_accepts(&app, &format!("saving /admin/access (granting {extra})"));

    // Masking: every choice as the page shows it, one of them changed.
    let page = admin.get("/admin/masking");
    page.assert_status(Status::Ok);
    let mut choices: Vec<(String, String)> = Vec::new();
    for select in page.body.split("<select name=\"").skip(1) {
        let name = &select[..select.find('"').expect("end of name")];
        let options = &select[..select.find("</select>").expect("end of select")];
        let current = options
            .split("<option value=\"")
            .skip(1)
            .find(|o| o.contains("\" selected"))
            .map(|o| &o[..o.find('"').expect("end of value")])
            .unwrap_or_else(|| panic!("a choice for {name}"));
        choices.push((name.to_string(), current.to_string()));
    }
    assert!(!choices.is_empty(), "{}", page.body);
    let (changed_name, was) = choices[0].clone();
    let now = if was == "hidden" { "masked" } else { "hidden" };
    choices[0].1 = now.to_string();
    let form: Vec<(&str, &str)> = choices
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    admin
        .post("/admin/masking", &form)
        .assert_redirect("/admin/masking");
    let page = admin.get("/admin/masking");
    let select = find_between(
        &page.body,
        &format!("<select name=\"{changed_name}\""),
        "</select>",
    )
    .expect("the changed select");
    assert!(
        select.contains(&format!("<option value=\"{now}\" selected")),
        "{changed_name} = {now} was not saved: {select}"
    );
    assert_next_start_accepts(
        &app,
        &format!("saving /admin/masking ({changed_name} = {now})"),
    );

    // The encryption policy: another cipher for accounts and their email stored plain.
    let (_, hash, _, id_length, bits) = DEFAULT_FORM;
    save_policy(
        &mut admin,
        &policy_form(
            "chacha20-poly1305",
            hash,
            &["users.full_name"],
            id_length,
            bits,
        ),
    )
    .assert_redirect("/admin/encryption");
    assert!(
        running_job(&app).is_some(),
        "the policy change started a job"
    );
    assert_next_start_accepts(&app, "saving /admin/encryption (the job not yet run)");
    assert_eq!(job::run(app.app(), Some(1)).expect("one batch"), 1);
    assert!(running_job(&app).is_some(), "more than one batch to run");
    assert_next_start_accepts(&app, "one batch of the re-encryption job");
    job::run(app.app(), None).expect("job");
    assert!(running_job(&app).is_none(), "the job ended");
    assert!(stored_rows(&app)
        .iter()
        .all(|r| r.email.starts_with("plain:")));
    assert_next_start_accepts(&app, "the re-encryption job after a policy change");

    // Rotating the root key, then the job that rewrites everything under the new version.
    admin.get("/admin/encryption").assert_status(Status::Ok);
    admin
        .post("/admin/encryption/rotate", &[])
        .assert_redirect("/admin/encryption");
    assert_eq!(app.app().fields.crypto().current_key_version(), 2);
    assert!(running_job(&app).is_some(), "the rotation started a job");
    assert_next_start_accepts(&app, "POST /admin/encryption/rotate (the job not yet run)");
    job::run(app.app(), None).expect("job");
    assert!(running_job(&app).is_none(), "the job ended");
    assert!(
        admin
            .get("/admin/encryption")
            .body
            .contains("retired: no value uses it"),
        "version 1 was retired"
    );
    assert_next_start_accepts(&app, "the re-encryption job after a rotation");

    // The backup schedule.
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
    assert_next_start_accepts(&app, "POST /admin/backups/schedule");

    // Every kind of change was audited as made through the pages.
    let actions = app.audit_actions();
    for action in [
        "admin.security_saved",
        "admin.access_saved",
        "admin.masking_saved",
        "encryption.policy_saved",
        "encryption.root_key_rotated",
        "encryption.job_finished",
        "backup.settings_saved",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }

    // The control: the same kind of row changed in the file, not through medvault, is refused.
    assert_eq!(setting(&app, "session.bind_ip").as_deref(), Some("true"));
    app.raw_sql("UPDATE settings SET value = 'false' WHERE name = 'session.bind_ip'");
    assert_eq!(setting(&app, "session.bind_ip").as_deref(), Some("false"));
    match next_start(&app) {
        Ok(()) => panic!("a setting edited in the database file was accepted at start"),
        Err(e) => assert!(e.contains("were changed outside medvault"), "{e}"),
    }
}

#[test]
fn a_value_sealed_under_an_older_suite_and_written_back_is_refused() {
    let (app, alice, _bob) = two_patients();
    let mut admin = sign_in_admin(&app);
    // The users table goes to DES; the job rewrites alice's name under it.
    save_policy(
        &mut admin,
        &policy_form(
            "des-cbc",
            "sha-256",
            &["users.full_name", "users.email"],
            "16",
            "64",
        ),
    )
    .assert_redirect("/admin/encryption");
    medvault::reencryption::job::run(app.app(), None).expect("job");
    let under_des = stored(&app, &alice).full_name;
    assert!(under_des.starts_with("mv1:"), "{under_des}");
    // Back to AES-256-GCM, and the job finishes: no value is in the DES form any more.
    let (cipher, hash, encrypt, id_length, bits) = DEFAULT_FORM;
    save_policy(
        &mut admin,
        &policy_form(cipher, hash, encrypt, id_length, bits),
    )
    .assert_redirect("/admin/encryption");
    medvault::reencryption::job::run(app.app(), None).expect("job");
    assert!(running_job(&app).is_none());
    assert_ne!(stored(&app, &alice).full_name, under_des);
    assert_ne!(
        header(&under_des).0,
        header(&stored(&app, &alice).full_name).0
    );
    let list = admin.get("/admin/users");
    assert!(row_of(&list.body, ALICE.0).contains(ALICE.1));

    // The DES copy, genuine when it was written, is copied back into the file.
    write_column(&app, &alice, "full_name", &under_des);
    let list = admin.get("/admin/users");
    let row = row_of(&list.body, ALICE.0);
    assert!(row.contains("integrity error"), "{row}");
    assert!(!row.contains(ALICE.1), "the old copy shown as data: {row}");
    let edit = admin.get(&format!("/admin/users/{alice}"));
    assert!(edit.body.contains("Integrity error"), "{}", edit.body);
    assert!(count_of(&app.audit_actions(), "encryption.integrity_error") >= 1);
}

#[test]
fn ciphers_within_reach_of_a_search_are_refused_for_the_files_table() {
    let app = manual_jobs();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let (cipher, hash, encrypt, id_length, bits) = DEFAULT_FORM;
    for weak in ["des-cbc", "3des-ede3-cbc", "rc4-drop3072"] {
        let mut form = policy_form(cipher, hash, encrypt, id_length, bits);
        form.push(("cipher[medical_files]", weak));
        form.push(("hash[medical_files]", "sha-256"));
        let page = save_policy(&mut admin, &form);
        page.assert_status(Status::UnprocessableEntity);
        assert!(
            page.body.contains("would weaken every file"),
            "{weak}: {}",
            page.body
        );
        assert!(running_job(&app).is_none(), "{weak}: nothing was saved");
    }
    // A legacy block cipher with a full-size key stays a choice, for compatibility.
    let mut form = policy_form(cipher, hash, encrypt, id_length, bits);
    form.push(("cipher[medical_files]", "blowfish-cbc"));
    form.push(("hash[medical_files]", "sha-256"));
    save_policy(&mut admin, &form).assert_redirect("/admin/encryption");
}

#[test]
fn a_rotation_sent_twice_or_at_once_rotates_once_and_loses_no_key() {
    let (app, _alice, _bob) = two_patients();
    let key_file = app.home.path().join("secrets/master.key");
    let versions = |app: &TestApp| -> Vec<String> {
        std::fs::read_to_string(app.home.path().join("secrets/master.key"))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split(':').next().unwrap_or_default().to_string())
            .collect()
    };
    let mut admin = sign_in_admin(&app);
    let page = admin.get("/admin/encryption");
    assert!(
        page.body.contains("name=\"from_version\" value=\"1\""),
        "{}",
        page.body
    );
    // The same form sent twice (a double click): one rotation.
    for _ in 0..2 {
        admin
            .post("/admin/encryption/rotate", &[("from_version", "1")])
            .assert_redirect("/admin/encryption");
    }
    assert_eq!(versions(&app), ["1", "2"]);
    // Two rotations from version 2 at the same moment, on two threads: one makes version 3.
    let actor = medvault::audit::Actor::default();
    let shared = app.app().clone();
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let rotations: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    medvault::reencryption::rotation::rotate_root_key(&shared, &actor, Some(2))
                        .expect("rotation")
                })
            })
            .collect();
        rotations.into_iter().map(|r| r.join().unwrap()).collect()
    });
    use medvault::reencryption::rotation::Rotation;
    assert!(outcomes.contains(&Rotation::Rotated(3)), "{outcomes:?}");
    assert!(outcomes.contains(&Rotation::AlreadyAt(3)), "{outcomes:?}");
    assert_eq!(versions(&app), ["1", "2", "3"]);
    medvault::reencryption::job::run(app.app(), None).expect("job");
    let list = admin.get("/admin/users");
    assert!(row_of(&list.body, ALICE.0).contains(ALICE.1));
    assert!(row_of(&list.body, BOB.0).contains(BOB.1));
    // No staging file is left beside the key file.
    let leftovers: Vec<_> = std::fs::read_dir(key_file.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "master.key")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_key_file_changed_since_the_start_is_not_rotated() {
    let (app, _alice, _bob) = two_patients();
    let key_file = app.home.path().join("secrets/master.key");
    let before = std::fs::read_to_string(&key_file).unwrap();
    // Someone replaced the file with another key under the same version number.
    std::fs::write(&key_file, format!("1:{}\n", STANDARD.encode([9u8; 32]))).unwrap();
    let mut admin = sign_in_admin(&app);
    admin.get("/admin/encryption");
    let page = admin.post("/admin/encryption/rotate", &[("from_version", "1")]);
    page.assert_redirect("/admin/encryption");
    let page = admin.get("/admin/encryption");
    assert!(
        page.body
            .contains("Root key version 1 is no longer in the key file"),
        "{}",
        page.body
    );
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        format!("1:{}\n", STANDARD.encode([9u8; 32])),
        "nothing was written"
    );
    assert!(running_job(&app).is_none());
    assert_ne!(before, std::fs::read_to_string(&key_file).unwrap());
}

// ---------------------------------------------------------------------------------------------
// 9. One server at a time runs the job (the job lease)

/// Another server's name, as a lease names its holder.
const OTHER_SERVER: &str = "elsewhere:4242:abcdefgh";

#[test]
fn a_lease_is_refused_to_another_holder_until_it_runs_out_by_the_database_clock() {
    use medvault::db::models::JobLease;
    let app = manual_jobs();
    let mut conn = app.app().db.conn().expect("conn");
    assert!(JobLease::take("test", "one", 60_000, &mut conn).unwrap());
    assert!(!JobLease::take("test", "two", 60_000, &mut conn).unwrap());
    assert!(
        JobLease::take("test", "one", 60_000, &mut conn).unwrap(),
        "renewed"
    );
    let held = JobLease::holder("test", &mut conn).unwrap().expect("held");
    assert_eq!(held.holder, "one");
    assert!((50_000..=60_000).contains(&held.remaining_ms), "{held:?}");
    // A release by someone who does not hold it changes nothing.
    JobLease::release("test", "two", &mut conn).unwrap();
    assert!(!JobLease::take("test", "two", 60_000, &mut conn).unwrap());
    // Once it has run out, by the database's clock, the other takes it.
    assert!(JobLease::take("test", "one", -1, &mut conn).unwrap());
    assert!(JobLease::take("test", "two", 60_000, &mut conn).unwrap());
    assert_eq!(
        JobLease::holder("test", &mut conn).unwrap().unwrap().holder,
        "two"
    );
    JobLease::release("test", "two", &mut conn).unwrap();
    assert!(JobLease::holder("test", &mut conn).unwrap().is_none());
}

#[test]
fn a_job_whose_lease_another_server_holds_is_left_to_it_until_the_lease_runs_out() {
    use medvault::db::models::JobLease;
    let (app, _alice, _bob) = two_patients();
    let mut admin = sign_in_admin(&app);
    let (_, _, e, i, b) = DEFAULT_FORM;
    save_policy(
        &mut admin,
        &policy_form("xchacha20-poly1305", "sha-512", e, i, b),
    )
    .assert_redirect("/admin/encryption");
    let mut conn = app.app().db.conn().expect("conn");
    // The other server took the job a moment ago and is running it.
    assert!(JobLease::take(job::LEASE, OTHER_SERVER, 60_000, &mut conn).unwrap());
    assert_eq!(
        job::run(app.app(), None).expect("runs"),
        0,
        "left to the holder"
    );
    let waiting = running_job(&app).expect("still running");
    assert_eq!((waiting.rewritten, waiting.column_index), (0, 0));
    assert!(stored_rows(&app)
        .iter()
        .all(|r| header(&r.full_name).0 != 5));

    // The other server died: its lease runs out, and this one takes the job over and
    // finishes it, giving the lease up at the end.
    assert!(JobLease::take(job::LEASE, OTHER_SERVER, -1, &mut conn).unwrap());
    assert!(job::run(app.app(), None).expect("runs") > 0);
    assert!(running_job(&app).is_none());
    assert!(stored_rows(&app)
        .iter()
        .all(|r| header(&r.full_name).0 == 5));
    assert!(JobLease::holder(job::LEASE, &mut conn).unwrap().is_none());
}

/// Straight after a rotation, without a restart: `/health` still finds the running keys
/// matching the database (version 2 included), and a backup is made, checked and restored.
#[test]
fn health_backups_and_restores_work_straight_after_a_rotation() {
    let (app, alice, _bob) = two_patients();
    let mut admin = sign_in_admin(&app);
    admin.get("/admin/encryption");
    admin
        .post("/admin/encryption/rotate", &[])
        .assert_redirect("/admin/encryption");
    let health = app.browser().get("/health");
    health.assert_status(Status::Ok);
    assert!(health.body.contains("\"key\":\"ok\""), "{}", health.body);

    admin.get("/admin/backups").assert_status(Status::Ok);
    admin
        .post("/admin/backups", &[])
        .assert_redirect("/admin/backups");
    let page = admin.get("/admin/backups");
    page.assert_status(Status::Ok);
    let name = format!(
        "medvault-{}",
        between(&page.body, "<code>medvault-", "</code>")
    );
    let manifest = medvault::backup::list(app.app()).expect("list")[0]
        .manifest
        .clone()
        .expect("manifest");
    assert_eq!(
        manifest
            .key_checks
            .iter()
            .map(|k| k.version)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    admin
        .get(&format!("/admin/backups/{name}/restore"))
        .assert_status(Status::Ok);
    admin
        .post(
            &format!("/admin/backups/{name}/restore"),
            &[("confirmed", "true")],
        )
        .assert_redirect("/admin/backups");
    let edit = admin.get(&format!("/admin/users/{alice}"));
    edit.assert_status(Status::Ok);
    assert_eq!(
        input_value(&edit.body, "full_name").as_deref(),
        Some(ALICE.1)
    );
    app.browser().get("/health").assert_status(Status::Ok);
}

/// A start (a command, or another server on the same database) while the server's
/// re-encryption job commits batch after batch, each with its reseal: the start reads the seal
/// and the rows it seals in one snapshot, so a batch committed in between is not taken for a
/// change made outside medvault.
#[test]
fn a_start_during_a_running_job_is_not_taken_for_tampering() {
    let app = TestApp::with_config(|c| c.reencryption_pause_ms = 20);
    let (mut doctor, patient) = common::record_builders::doctor_with_patient(&app);
    common::record_builders::fill_record(
        &mut doctor,
        &patient,
        "during the job",
        "2027-03-01T09:00",
    );
    let actor = medvault::audit::Actor {
        name: "admin".into(),
        ..Default::default()
    };
    let mut opened = 0;
    for _ in 0..3 {
        medvault::reencryption::rotation::rotate_root_key(app.app(), &actor, None)
            .expect("rotated");
        while Job::running(&mut app.app().db.conn().expect("conn"))
            .expect("job")
            .is_some()
        {
            let config = config_for(app.home.path(), app.clock.clone());
            if let Err(e) = medvault::App::open(config) {
                panic!("a start during the job was refused: {e}");
            }
            opened += 1;
        }
    }
    assert!(opened > 3, "the starts ran while the jobs did ({opened})");
}
