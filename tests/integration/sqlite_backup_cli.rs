//! `medvault backup`, `medvault backups` and `medvault restore NAME` from the command line,
//! on a home the server also uses.

use crate::common;

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

    // While a server runs on the home, the command line hands the restore to the server,
    // which carries it out (and refuses a bad name just the same); backups work alongside.
    {
        let app = medvault::App::open(medvault::Config::for_home(home_path)).expect("open");
        let actor = medvault::audit::Actor::default();
        medvault::users::create_user(&app, Level::Patient, "later", PASSWORD, &actor)
            .expect("user");
    }
    let mut server = start_server(home_path);
    assert!(medvault(home_path, &["backup"]).status.success());
    let refused = medvault(home_path, &["restore", "../medvault.sqlite"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no backup named"));
    let restored = medvault(home_path, &["restore", &name]);
    let said = String::from_utf8_lossy(&restored.stdout).to_string()
        + &String::from_utf8_lossy(&restored.stderr);
    assert!(restored.status.success(), "{said}");
    assert!(said.contains("restored"), "{said}");
    // The server answers on the restored database.
    assert!(get(server.port, "/health").starts_with("HTTP/1.1 200"));
    server.stop();
    assert_eq!(usernames(home_path), ["admin", "before"]);
    let leftovers = std::fs::read_dir(home_path.join("database/restore-requests"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 0, "requests and answers are cleaned up");
}

struct Server {
    child: std::process::Child,
    port: u16,
}

impl Server {
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    );
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply
}

/// The real server on `home`, once it answers.
fn start_server(home: &std::path::Path) -> Server {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let child = Command::new(env!("CARGO_BIN_EXE_medvault"))
        .env("MEDVAULT_HOME", home)
        .env("MEDVAULT_LOG", "error")
        .env_remove("MEDVAULT_MASTER_KEY")
        .env("ROCKET_ADDRESS", "127.0.0.1")
        .env("ROCKET_PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Server { child, port };
    for _ in 0..400 {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("the server stopped ({status})");
        }
        if !get(port, "/health").is_empty() {
            return server;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server.stop();
    panic!("the server did not answer");
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
