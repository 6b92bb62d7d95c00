//! Starting medvault: the root key from the key file or `MEDVAULT_MASTER_KEY`, checked against the
//! database, so that a wrong, malformed or lost key stops the start with a message that says what
//! to do; and the key file kept private and outside the database folder.

use crate::common;

use std::path::Path;

use base64::{engine::general_purpose::STANDARD, Engine};
use common::*;
use medvault::access::Level;
use medvault::{build_rocket, Clock, Config};
use rocket::http::Status;
use rocket::local::blocking::Client;

fn config(home: &Path, adjust: impl FnOnce(&mut Config)) -> Config {
    let mut config = config_for(home, Clock::manual(START));
    adjust(&mut config);
    config
}

/// Starts medvault on `home`; the error message when it refuses.
fn start(home: &Path, adjust: impl FnOnce(&mut Config)) -> Result<Client, String> {
    let rocket = build_rocket(config(home, adjust)).map_err(|e| e.to_string())?;
    Ok(Client::untracked(rocket).expect("server ignites"))
}

/// A first start on a fresh home that creates a user, then stops.
fn first_start(home: &Path, adjust: impl FnOnce(&mut Config)) {
    let client = start(home, adjust).expect("first start");
    let app = client.rocket().state::<medvault::App>().expect("app");
    let actor = medvault::audit::Actor::default();
    medvault::users::create_user(app, Level::Admin, "admin", PASSWORD, &actor).expect("user");
}

fn key_of(byte: u8) -> String {
    STANDARD.encode([byte; 32])
}

#[test]
fn a_second_start_with_the_same_key_file_works_and_keeps_the_accounts() {
    let home = tempfile::tempdir().expect("temp dir");
    first_start(home.path(), |_| {});
    let key_before = std::fs::read(home.path().join("secrets/master.key")).expect("key file");

    let client = start(home.path(), |_| {}).expect("second start");
    let key_after = std::fs::read(home.path().join("secrets/master.key")).expect("key file");
    assert_eq!(key_before, key_after, "the key file is read, not replaced");
    // The password pepper comes from the same key: the admin still signs in.
    let app = TestApp {
        client,
        clock: Clock::manual(START),
        home,
    };
    let mut browser = app.browser();
    browser
        .login("admin", PASSWORD)
        .assert_redirect("/dashboard");
    browser.get("/dashboard").assert_status(Status::Ok);
    // An admin exists, so this start offers no setup link.
    assert!(app.app().setup.current().is_none());
}

#[test]
fn a_second_start_with_the_same_master_key_works() {
    let home = tempfile::tempdir().expect("temp dir");
    first_start(home.path(), |c| {
        c.master_key = Some(medvault::config::KeyText::from(key_of(1)))
    });
    assert!(
        !home.path().join("secrets/master.key").exists(),
        "a key from the environment is never written to disk"
    );
    start(home.path(), |c| {
        c.master_key = Some(medvault::config::KeyText::from(key_of(1)))
    })
    .expect("second start");
}

#[test]
fn a_start_with_a_different_master_key_fails_on_the_key_check() {
    let home = tempfile::tempdir().expect("temp dir");
    first_start(home.path(), |_| {});
    let err = start(home.path(), |c| {
        c.master_key = Some(medvault::config::KeyText::from(key_of(7)))
    })
    .expect_err("wrong key");
    assert!(err.contains("key check value mismatch"), "{err}");
    assert!(
        err.contains("not the key this database was written with"),
        "{err}"
    );
    assert!(!err.contains(&key_of(7)), "the message never shows the key");

    // The same holds between two keys given in the environment.
    let home = tempfile::tempdir().expect("temp dir");
    first_start(home.path(), |c| {
        c.master_key = Some(medvault::config::KeyText::from(key_of(1)))
    });
    let err = start(home.path(), |c| {
        c.master_key = Some(medvault::config::KeyText::from(key_of(2)))
    })
    .expect_err("wrong key");
    assert!(err.contains("key check value mismatch"), "{err}");
}

#[test]
fn a_malformed_master_key_fails_clearly() {
    let home = tempfile::tempdir().expect("temp dir");
    let err = start(home.path(), |c| {
        c.master_key = Some(medvault::config::KeyText::from("this is not base64!"))
    })
    .expect_err("bad base64");
    assert!(err.contains("MEDVAULT_MASTER_KEY"), "{err}");
    assert!(err.contains("base64"), "{err}");

    let short = STANDARD.encode([9u8; 16]);
    let err = start(home.path(), |c| {
        c.master_key = Some(medvault::config::KeyText::from(short))
    })
    .expect_err("16 bytes");
    assert!(err.contains("MEDVAULT_MASTER_KEY"), "{err}");
    assert!(err.contains("16 bytes"), "{err}");
    assert!(err.contains("32 bytes"), "{err}");

    let err = start(home.path(), |c| {
        c.master_key = Some(medvault::config::KeyText::from(String::new()))
    })
    .expect_err("empty");
    assert!(err.contains("MEDVAULT_MASTER_KEY"), "{err}");
    assert!(
        !home.path().join("secrets/master.key").exists(),
        "a bad environment key does not fall back to a new key file"
    );
}

#[test]
fn a_lost_key_file_stops_the_start_and_no_new_key_is_made() {
    let home = tempfile::tempdir().expect("temp dir");
    first_start(home.path(), |_| {});
    let key = home.path().join("secrets/master.key");
    std::fs::remove_file(&key).expect("remove the key file");

    let err = start(home.path(), |_| {}).expect_err("no key");
    assert!(err.contains("Restore the key file"), "{err}");
    assert!(err.contains("master.key"), "{err}");
    assert!(
        !key.exists(),
        "a new key would make every stored value unreadable"
    );
    // And again: the refusal is not a one-off.
    assert!(start(home.path(), |_| {}).is_err());
    assert!(!key.exists());
}

#[test]
fn a_corrupted_key_file_stops_the_start() {
    let home = tempfile::tempdir().expect("temp dir");
    first_start(home.path(), |_| {});
    let key = home.path().join("secrets/master.key");
    std::fs::write(&key, "1:garbage\n").expect("overwrite");
    let err = start(home.path(), |_| {}).expect_err("bad key file");
    assert!(err.contains("key file"), "{err}");
    assert!(err.contains("base64"), "{err}");
}

#[test]
fn a_key_file_inside_the_database_folder_is_refused() {
    let home = tempfile::tempdir().expect("temp dir");
    let inside = home.path().join("database/master.key");
    for key_file in [
        Path::new("database/master.key").to_path_buf(),
        Path::new("database/keys/master.key").to_path_buf(),
        Path::new("./database/master.key").to_path_buf(),
        Path::new("secrets/../database/master.key").to_path_buf(),
        inside.clone(),
    ] {
        let Err(err) = start(home.path(), |c| c.key_file = Some(key_file.clone())) else {
            panic!("a key file at {key_file:?} was accepted");
        };
        assert!(
            err.contains("outside the database folder"),
            "{key_file:?}: {err}"
        );
        assert!(!inside.exists());
    }
    assert!(
        !home.path().join("database").exists(),
        "refused before anything was written"
    );

    // A key file elsewhere is fine.
    start(home.path(), |c| {
        c.key_file = Some("keys/medvault.key".into())
    })
    .expect("start");
    assert!(home.path().join("keys/medvault.key").is_file());
    assert!(!home.path().join("secrets/master.key").exists());
}

#[cfg(unix)]
#[test]
fn the_key_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().expect("temp dir");
    start(home.path(), |_| {}).expect("start");
    let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&home.path().join("secrets/master.key")), 0o600);
    assert_eq!(mode(&home.path().join("secrets")), 0o700);
    // The database, its backups and the stored files are the owner's alone, whatever the umask.
    for dir in ["database", "database/backups", "storage"] {
        assert_eq!(mode(&home.path().join(dir)), 0o700, "{dir}");
    }
    // The SQLite file and its side files (on PostgreSQL the server keeps the data).
    if !on_postgres() {
        assert_eq!(mode(&home.path().join("database/medvault.sqlite")), 0o600);
    }
    for side in [
        "database/medvault.sqlite-wal",
        "database/medvault.sqlite-shm",
    ] {
        let side = home.path().join(side);
        if side.exists() {
            assert_eq!(mode(&side), 0o600, "{}", side.display());
        }
    }
    // The key is 256 bits, stored as base64, and nowhere in the database.
    let text = std::fs::read_to_string(home.path().join("secrets/master.key")).expect("key");
    let encoded = text.trim().trim_start_matches("1:");
    assert_eq!(STANDARD.decode(encoded).expect("base64").len(), 32);
    let db = database_bytes(home.path());
    assert!(db.len() > 4096, "the database was read");
    assert!(!db.windows(encoded.len()).any(|w| w == encoded.as_bytes()));
}

#[test]
fn a_trigger_planted_in_the_live_database_stops_the_start() {
    let home = tempfile::tempdir().unwrap();
    first_start(home.path(), |_| {});
    edit_database(
        home.path(),
        if on_postgres() {
            // A function of medvault's own, run by a trigger that is not.
            "CREATE TRIGGER promote AFTER INSERT ON audit_events \
             FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();"
        } else {
            "CREATE TRIGGER promote AFTER INSERT ON audit_events \
             BEGIN UPDATE users SET level = 'admin'; END;"
        },
    );
    let Err(refused) = start(home.path(), |_| {}) else {
        panic!("the start is refused");
    };
    assert!(
        refused.contains("is not medvault's: it has a trigger `promote` on `audit_events`"),
        "{refused}"
    );
    assert!(refused.contains("medvault restore"), "{refused}");
}

#[test]
fn a_function_rule_or_changed_default_planted_in_the_live_database_stops_the_start() {
    let plants: &[(&str, &str)] = if on_postgres() {
        &[
            (
                "CREATE FUNCTION promote() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN UPDATE users SET level = 'admin'; RETURN NEW; END $$;",
                "it has a function `promote()`",
            ),
            (
                "CREATE RULE keep_all AS ON DELETE TO sessions DO INSTEAD NOTHING;",
                "it has a rule `keep_all` on `sessions`",
            ),
            (
                "ALTER TABLE users ALTER COLUMN level SET DEFAULT 'admin';",
                "its column `users.level` on `users` is not defined as medvault defines it",
            ),
        ]
    } else {
        &[(
            "CREATE VIEW everyone AS SELECT username FROM users;",
            "it has a view `everyone`",
        )]
    };
    for (plant, says) in plants {
        let home = tempfile::tempdir().unwrap();
        first_start(home.path(), |_| {});
        drop(start(home.path(), |_| {}).expect("a restart of an untouched database"));
        edit_database(home.path(), plant);
        let Err(refused) = start(home.path(), |_| {}) else {
            panic!("the start went ahead after {plant}");
        };
        assert!(refused.contains(says), "{plant}: {refused}");
    }
}

/// Runs `sql` on the database of a stopped server, as someone holding the file would.
fn edit_database(home: &Path, sql: &str) {
    use diesel::connection::SimpleConnection;
    database_conn(home).batch_execute(sql).unwrap();
}

#[track_caller]
fn assert_start_refused(home: &Path, why: &str) {
    let Err(refused) = start(home, |_| {}) else {
        panic!("the start went ahead on an edited database ({why})");
    };
    assert!(
        refused.contains("were changed outside medvault"),
        "{refused}"
    );
    assert!(refused.contains(why), "expected {why:?}: {refused}");
}

#[test]
fn an_edited_policy_row_or_setting_stops_the_start_naming_the_row() {
    for (sql, why) in [
        // Declare a column plain, then write forged text into it.
        (
            "UPDATE encrypted_columns SET encrypted = FALSE \
             WHERE table_name = 'users' AND column_name = 'full_name'; \
             UPDATE users SET full_name = 'plain:Forged Name';",
            "encrypted_columns `[\"users\",\"full_name\"]` was changed outside medvault",
        ),
        // A "running" job that tolerates plain values in a column, to launder a forged one.
        (
            "INSERT INTO reencryption_jobs (id, reason, state, total, rewritten, unreadable, \
             column_index, after_row, plain_columns, started_at) VALUES (99, 'x', 'running', \
             0, 0, 0, 0, '', 'users.full_name', 0);",
            "reencryption_jobs `99` was added outside medvault",
        ),
        // A requirement removed by deleting its row.
        (
            "DELETE FROM page_access WHERE (level, page) = \
             (SELECT level, page FROM page_access ORDER BY level DESC, page DESC LIMIT 1);",
            "was deleted outside medvault",
        ),
        (
            "INSERT INTO settings (name, value) VALUES ('ids.length', '8') \
             ON CONFLICT (name) DO UPDATE SET value = '8';",
            "settings `ids.length`",
        ),
        (
            "UPDATE encryption_policies SET cipher = 'des' WHERE table_name = 'patients';",
            "encryption_policies `patients` was changed",
        ),
        (
            "UPDATE root_key_checks SET retired = TRUE;",
            "root_key_checks `1` was changed",
        ),
        (
            "DELETE FROM state_seal;",
            "the seal on the settings is missing",
        ),
        (
            "UPDATE state_seal SET snapshot = replace(snapshot, 'true', 'false');",
            "does not match its contents",
        ),
    ] {
        let home = tempfile::tempdir().unwrap();
        first_start(home.path(), |_| {});
        // A clean restart is accepted: the control for every case.
        drop(start(home.path(), |_| {}).expect("a restart of an untouched database"));
        edit_database(home.path(), sql);
        assert_start_refused(home.path(), why);
    }
}

#[test]
fn a_database_from_before_seals_is_sealed_once_at_the_upgrade_and_audited() {
    let home = tempfile::tempdir().unwrap();
    first_start(home.path(), |_| {});
    // Take the database back to the schema before seals, as an older medvault left it.
    // The head's value loses its third field, the MAC that seals it.
    let first_two_fields = if on_postgres() {
        "split_part(value, ':', 1) || ':' || split_part(value, ':', 2)"
    } else {
        "substr(value, 1, instr(substr(value, instr(value, ':') + 1), ':') + instr(value, ':') - 1)"
    };
    edit_database(
        home.path(),
        &format!(
            "DROP TABLE state_seal; \
             DELETE FROM __diesel_schema_migrations WHERE version IN ('20261202000005', '20261204000009'); \
             UPDATE settings SET value = {first_two_fields} WHERE name = 'audit.head';"
        ),
    );
    let client = start(home.path(), |_| {}).expect("the upgrade start");
    let app = client.rocket().state::<medvault::App>().expect("app");
    let mut conn = app.db.conn().unwrap();
    let report = app.audit.verify(&mut conn).unwrap();
    assert_eq!(
        report.first_broken, None,
        "the trail's end was sealed as found"
    );
    use diesel::prelude::*;
    use medvault::db::schema::audit_events;
    let actions: Vec<String> = audit_events::table
        .select(audit_events::action)
        .load(&mut *conn)
        .unwrap();
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "admin.state_sealed")
            .count(),
        1
    );
    drop(conn);
    drop(client);
    // The next start finds the seal and does not seal again.
    drop(start(home.path(), |_| {}).expect("a start after the upgrade"));
    // An old-form head written later is not an upgrade any more: it is an edit.
    edit_database(
        home.path(),
        "UPDATE settings SET value = 'x' WHERE name = 'security.require_2fa'; \
         INSERT INTO settings (name, value) VALUES ('security.require_2fa', 'x') \
         ON CONFLICT (name) DO NOTHING;",
    );
    assert_start_refused(home.path(), "security.require_2fa");
}

#[test]
fn a_key_file_that_others_can_read_stops_the_start_with_the_chmod_to_run() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    first_start(home.path(), |_| {});
    let key = home.path().join("secrets/master.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let Err(refused) = start(home.path(), |_| {}) else {
        panic!("a start with a world-readable key file went ahead");
    };
    assert!(
        refused.contains(&format!("chmod 600 {}", key.display())),
        "{refused}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    drop(start(home.path(), |_| {}).expect("the start after the chmod"));
}

#[test]
fn folders_made_loose_by_hand_are_narrowed_at_the_next_start() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    first_start(home.path(), |_| {});
    let loose = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(home.path().join("database"), loose.clone()).unwrap();
    std::fs::set_permissions(home.path().join("storage"), loose).unwrap();
    // The SQLite file, where there is one (on PostgreSQL the server keeps the data).
    let sqlite = !on_postgres();
    if sqlite {
        std::fs::set_permissions(
            home.path().join("database/medvault.sqlite"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    drop(start(home.path(), |_| {}).expect("restart"));
    let mode = |p: &str| {
        std::fs::metadata(home.path().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("database"), 0o700);
    assert_eq!(mode("storage"), 0o700);
    if sqlite {
        assert_eq!(mode("database/medvault.sqlite"), 0o600);
    }
}

#[test]
fn a_database_url_that_is_not_postgresql_stops_the_start_and_says_what_to_set() {
    let home = tempfile::tempdir().expect("temp dir");
    for (url, says) in [
        (
            "mysql://medvault:pw@db.example.org/medvault",
            "must be a postgres:// URL",
        ),
        ("medvault.sqlite", "is not a URL"),
        ("postgres:///medvault", "names no server"),
    ] {
        let Err(err) = start(home.path(), |c| {
            c.database_url = Some(medvault::config::DatabaseUrl::new(url))
        }) else {
            panic!("{url} was accepted");
        };
        assert!(err.contains(says), "{url}: {err}");
        assert!(
            !err.contains("pw@"),
            "the password stays out of the message: {err}"
        );
    }
    assert!(
        !home.path().join("database/medvault.sqlite").exists(),
        "no SQLite file is made instead"
    );
}

#[test]
fn an_unreachable_postgresql_server_stops_the_start_naming_it_without_its_password() {
    let home = tempfile::tempdir().expect("temp dir");
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let err = start(home.path(), |c| {
        c.database_url = Some(medvault::config::DatabaseUrl::new(
            "postgres://medvault:s3cret-pw@127.0.0.1:1/medvault",
        ))
    })
    .expect_err("nothing listens on port 1");
    assert!(
        err.contains("postgres://medvault:***@127.0.0.1:1/medvault"),
        "names the server: {err}"
    );
    assert!(!err.contains("s3cret-pw"), "never the password: {err}");
    assert!(
        !home.path().join("database/medvault.sqlite").exists(),
        "no SQLite file is made instead"
    );
}
