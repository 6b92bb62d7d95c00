//! `medvault backup`, `medvault backups` and `medvault restore NAME` from the command line,
//! on a home the server also uses.

mod common;

use std::process::{Command, Output};

use common::*;
use diesel::prelude::*;
use medvault::access::Level;
use medvault::db::schema::users;

fn medvault(home: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medvault"))
        .args(args)
        .env("MEDVAULT_HOME", home)
        .env("MEDVAULT_LOG", "error")
        .env_remove("MEDVAULT_MASTER_KEY")
        .output()
        .expect("run medvault")
}

fn usernames(home: &std::path::Path) -> Vec<String> {
    let app = medvault::App::open(medvault::Config::for_home(home)).expect("open");
    let mut conn = app.db.conn().expect("conn");
    users::table
        .order(users::username.asc())
        .select(users::username)
        .load(&mut *conn)
        .expect("users")
}

#[test]
fn the_command_line_backs_up_lists_and_restores() {
    let app = TestApp::new();
    app.create_user(Level::Admin, "admin");
    app.create_user(Level::Patient, "before");
    let TestApp { client, home, .. } = app;
    drop(client);
    let home_path = home.path();

    let made = medvault(home_path, &["backup"]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let name = String::from_utf8_lossy(&made.stdout).trim().to_string();
    assert!(medvault::backup::is_backup_name(&name), "{name}");

    let listed = medvault(home_path, &["backups"]);
    assert!(listed.status.success());
    let listing = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listing.contains(&name) && listing.contains("verified"),
        "{listing}"
    );

    {
        let app = medvault::App::open(medvault::Config::for_home(home_path)).expect("open");
        let actor = medvault::audit::Actor::default();
        medvault::users::create_user(&app, Level::Patient, "after", PASSWORD, &actor)
            .expect("user");
    }
    assert_eq!(usernames(home_path), ["admin", "after", "before"]);

    let restored = medvault(home_path, &["restore", &name]);
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert_eq!(usernames(home_path), ["admin", "before"]);

    // A name outside the listing fails, and says so.
    let refused = medvault(home_path, &["restore", "../medvault.sqlite"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no backup named"));

    // While a server holds the home, a command-line restore is refused; a backup still works.
    let config = medvault::Config::for_home(home_path);
    let lock = medvault::backup::lock::hold_server_lock(&config).expect("lock");
    let busy = medvault(home_path, &["restore", &name]);
    assert!(!busy.status.success());
    assert!(String::from_utf8_lossy(&busy.stderr).contains("server runs"));
    assert!(medvault(home_path, &["backup"]).status.success());
    drop(lock);
}
