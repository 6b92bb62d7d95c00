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

/// `medvault` with no command serves; on a brand-new home it must get past the server lock
/// (which lives in database/, not yet created) and answer /health.
#[test]
fn the_server_starts_on_a_fresh_home() {
    use std::io::Read;
    let home = tempfile::tempdir().unwrap();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_medvault"))
        .env("MEDVAULT_HOME", home.path())
        .env("ROCKET_ADDRESS", "127.0.0.1")
        .env("ROCKET_PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut answered = None;
    for _ in 0..200 {
        if let Ok(Some(status)) = server.try_wait() {
            let mut err = String::new();
            let _ = server.stderr.take().unwrap().read_to_string(&mut err);
            panic!("the server stopped ({status}): {err}");
        }
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::Write;
            let _ = write!(stream, "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
            let mut reply = String::new();
            let _ = stream.read_to_string(&mut reply);
            answered = Some(reply);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = server.kill();
    let _ = server.wait();
    let reply = answered.expect("the server answered");
    assert!(
        reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200"),
        "{reply}"
    );
    assert!(home.path().join("secrets/master.key").exists());
}
