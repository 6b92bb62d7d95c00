//! The test harness: each test gets its own medvault home (fresh database, fresh root key) and a
//! manual clock, and drives the real server through Rocket's local client with one or more
//! browsers that keep their own cookies, address and user agent.
#![allow(dead_code)]

use std::net::SocketAddr;

use medvault::access::Level;
use medvault::audit::Actor;
use medvault::{build_rocket, App, Clock, Config};
use rocket::http::{ContentType, Header, Status};
use rocket::local::blocking::Client;
use tempfile::TempDir;

pub mod record_builders;

/// A moment in 2027, so that timestamps look real.
pub const START: i64 = 1_800_000_000;
pub const HOST: &str = "medvault.test";
pub const ORIGIN: &str = "http://medvault.test";
pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub client: Client,
    pub clock: Clock,
    pub home: TempDir,
}

impl TestApp {
    pub fn new() -> TestApp {
        TestApp::with_config(|_| {})
    }

    /// A server whose configuration `adjust` may change before it starts.
    pub fn with_config(adjust: impl FnOnce(&mut Config)) -> TestApp {
        let home = tempfile::tempdir().expect("temp dir");
        TestApp::on_home(home, Clock::manual(START), adjust)
    }

    /// A server on `home` (which may have served before), with `clock`.
    pub fn on_home(home: TempDir, clock: Clock, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = config_for(home.path(), clock.clone());
        adjust(&mut config);
        let rocket = build_rocket(config).expect("server builds");
        let client = Client::untracked(rocket).expect("server ignites");
        TestApp {
            client,
            clock,
            home,
        }
    }

    /// The same home and clock served by a new server: a restart.
    pub fn restart(self, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let TestApp {
            client,
            clock,
            home,
        } = self;
        drop(client);
        TestApp::on_home(home, clock, adjust)
    }

    pub fn app(&self) -> &App {
        self.client.rocket().state::<App>().expect("app state")
    }

    /// Creates an account the way the command line does, with [`PASSWORD`].
    pub fn create_user(&self, level: Level, username: &str) -> String {
        let actor = Actor {
            name: "test".into(),
            ..Actor::default()
        };
        medvault::users::create_user(self.app(), level, username, PASSWORD, &actor)
            .expect("user created")
            .id
    }

    pub fn browser(&self) -> Browser<'_> {
        Browser::new(
            self,
            "192.0.2.10:40000",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0",
        )
    }

    /// A browser already signed in as a new user of `level`.
    pub fn signed_in(&self, level: Level, username: &str) -> Browser<'_> {
        self.create_user(level, username);
        let mut browser = self.browser();
        let res = browser.login(username, PASSWORD);
        assert_eq!(
            res.status,
            Status::SeeOther,
            "sign-in of {username}: {}",
            res.body
        );
        browser
    }

    /// Runs SQL straight on the database, as someone holding the file (or the database
    /// server's credentials) would.
    pub fn raw_sql(&self, sql: &str) {
        use diesel::connection::SimpleConnection;
        database_conn(self.home.path())
            .batch_execute(sql)
            .expect("raw sql");
    }

    pub fn audit_actions(&self) -> Vec<String> {
        use diesel::prelude::*;
        use medvault::db::schema::audit_events;
        let mut conn = self.app().db.conn().expect("conn");
        audit_events::table
            .order(audit_events::id.asc())
            .select(audit_events::action)
            .load(&mut *conn)
            .expect("audit rows")
    }
}

/// What a test looks at in a response.
pub struct Page {
    pub status: Status,
    pub location: Option<String>,
    pub body: String,
    /// The body as sent (a file download is not text).
    pub bytes: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[track_caller]
    pub fn assert_redirect(&self, to: &str) {
        assert_eq!(
            self.status,
            Status::SeeOther,
            "expected a redirect to {to}: {}",
            self.body
        );
        let location = self.location.as_deref().unwrap_or_default();
        assert!(
            location.starts_with(to),
            "redirected to {location}, expected {to}"
        );
    }

    #[track_caller]
    pub fn assert_status(&self, status: Status) {
        assert_eq!(self.status, status, "body: {}", self.body);
    }

    /// The value of the first `name="csrf_token"` field on the page.
    pub fn csrf_token(&self) -> Option<String> {
        hidden_value(&self.body, "csrf_token")
    }
}

/// The value of the first input named `name` in `html`.
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_string())
}

/// A browser: its own cookies, address and user agent.
pub struct Browser<'a> {
    app: &'a TestApp,
    pub remote: SocketAddr,
    pub user_agent: String,
    /// Extra headers sent with every request (forwarding headers, say).
    pub extra_headers: Vec<(String, String)>,
    cookies: Vec<(String, String)>,
    /// The CSRF token of the signed-in session, read from the last page that had one.
    csrf: Option<String>,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp, remote: &str, user_agent: &str) -> Browser<'a> {
        Browser {
            app,
            remote: remote.parse().expect("socket address"),
            user_agent: user_agent.into(),
            extra_headers: Vec::new(),
            cookies: Vec::new(),
            csrf: None,
        }
    }

    /// Another browser with a copy of this one's cookies: a stolen cookie.
    pub fn clone_with(&self, remote: &str, user_agent: &str) -> Browser<'a> {
        let mut other = Browser::new(self.app, remote, user_agent);
        other.cookies = self.cookies.clone();
        other.csrf = self.csrf.clone();
        other
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.cookies.retain(|(n, _)| n != name);
        self.cookies.push((name.into(), value.into()));
    }

    fn send(&mut self, req: rocket::local::blocking::LocalRequest<'_>) -> Page {
        let mut req = req
            .remote(self.remote)
            .header(Header::new("User-Agent", self.user_agent.clone()))
            .header(Header::new("Host", HOST));
        for (name, value) in &self.extra_headers {
            req = req.header(Header::new(name.clone(), value.clone()));
        }
        for (name, value) in &self.cookies {
            req = req.cookie(rocket::http::Cookie::new(name.clone(), value.clone()));
        }
        let res = req.dispatch();
        for set in res.headers().get("Set-Cookie") {
            if let Ok(cookie) = rocket::http::Cookie::parse_encoded(set.to_string()) {
                let removed = cookie.value().is_empty()
                    || cookie
                        .max_age()
                        .is_some_and(|a| a.is_zero() || a.is_negative());
                self.cookies.retain(|(n, _)| n != cookie.name());
                if !removed {
                    self.cookies
                        .push((cookie.name().into(), cookie.value().into()));
                }
            }
        }
        let status = res.status();
        let headers = res
            .headers()
            .iter()
            .map(|h| (h.name().to_string(), h.value().to_string()))
            .collect();
        let location = res.headers().get_one("Location").map(str::to_string);
        let bytes = res.into_bytes().unwrap_or_default();
        let body = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(token) = hidden_value(&body, "csrf_token") {
            self.csrf = Some(token);
        }
        Page {
            status,
            location,
            body,
            bytes,
            headers,
        }
    }

    pub fn get(&mut self, uri: &str) -> Page {
        let req = self.app.client.get(uri.to_string());
        self.send(req)
    }

    /// Posts `fields` as a form, from medvault's own origin; `csrf_token` is not added.
    pub fn post_form(&mut self, uri: &str, fields: &[(&str, &str)], origin: Option<&str>) -> Page {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut req = self
            .app
            .client
            .post(uri.to_string())
            .header(ContentType::Form)
            .body(body);
        if let Some(origin) = origin {
            req = req.header(Header::new("Origin", origin.to_string()));
        }
        self.send(req)
    }

    /// Posts `fields` with the session's CSRF token, as the page's own form would.
    pub fn post(&mut self, uri: &str, fields: &[(&str, &str)]) -> Page {
        let token = match self.csrf.clone() {
            Some(token) => token,
            None => {
                self.get("/account/password");
                self.csrf.clone().unwrap_or_default()
            }
        };
        let mut all: Vec<(&str, &str)> = vec![("csrf_token", token.as_str())];
        all.extend_from_slice(fields);
        self.post_form(uri, &all, Some(ORIGIN))
    }

    /// Posts a multipart form with the session's CSRF token and one file field named `file`.
    pub fn post_multipart(
        &mut self,
        uri: &str,
        fields: &[(&str, &str)],
        file_name: &str,
        content: &[u8],
    ) -> Page {
        const BOUNDARY: &str = "medvault-test-boundary-7MA4YWxkTrZu0gW";
        let token = self.csrf.clone().unwrap_or_default();
        let mut body = Vec::new();
        let mut all: Vec<(&str, &str)> = vec![("csrf_token", token.as_str())];
        all.extend_from_slice(fields);
        for (name, value) in all {
            body.extend_from_slice(
                format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                    .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        let req = self
            .app
            .client
            .post(uri.to_string())
            .header(Header::new(
                "Content-Type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            ))
            .header(Header::new("Origin", ORIGIN))
            .body(body);
        self.send(req)
    }

    /// The CSRF token this browser would send.
    pub fn csrf_token(&self) -> Option<String> {
        self.csrf.clone()
    }

    /// Signs in through the real pages: the form, its CSRF token, the post.
    pub fn login(&mut self, username: &str, password: &str) -> Page {
        let form = self.get("/login");
        let token = form.csrf_token().unwrap_or_default();
        let page = self.post_form(
            "/login",
            &[
                ("csrf_token", &token),
                ("username", username),
                ("password", password),
            ],
            Some(ORIGIN),
        );
        self.csrf = None;
        page
    }
}

/// The text of `text` between the first `start` and the next `end` (the test fails if either
/// is missing).
pub fn between(text: &str, start: &str, end: &str) -> String {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{start} in {text}"))
        + start.len();
    let to = text[from..].find(end).expect("end") + from;
    text[from..to].to_string()
}

/// The configuration the tests start medvault with on `home`: the test clock, the host name
/// the browsers send, and the database the run is for (see [`database_for`]).
pub fn config_for(home: &std::path::Path, clock: Clock) -> Config {
    let mut config = home_config(home);
    config.clock = clock;
    config.hosts = vec![HOST.into()];
    config
}

/// `Config::for_home` on the database the run is for.
pub fn home_config(home: &std::path::Path) -> Config {
    let mut config = Config::for_home(home);
    config.database_url = database_for(home);
    config
}

/// A connection of its own to the database of `home`, outside any server: the SQLite file,
/// or the home's database on the tests' PostgreSQL server. SQLite waits for the lock a
/// stopping server's last threads may still hold.
pub fn database_conn(home: &std::path::Path) -> medvault::db::Conn {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    match database_for(home) {
        Some(url) => medvault::db::Conn::Postgres(
            diesel::PgConnection::establish(url.expose()).expect("open the home's database"),
        ),
        None => {
            let path = home.join("database/medvault.sqlite");
            let mut conn = diesel::SqliteConnection::establish(path.to_str().expect("utf-8 path"))
                .expect("open database");
            conn.batch_execute("PRAGMA busy_timeout = 5000;")
                .expect("busy timeout");
            medvault::db::Conn::Sqlite(conn)
        }
    }
}

/// The environment that points a `medvault` command at the database of `home`.
pub fn database_env(home: &std::path::Path) -> Vec<(&'static str, String)> {
    database_for(home)
        .map(|url| vec![("MEDVAULT_DATABASE_URL", url.expose().to_string())])
        .unwrap_or_default()
}

/// Everything the database of `home` holds, as bytes someone who has it could read: the
/// SQLite folder's files (database, WAL, shared memory), or on PostgreSQL a plain `pg_dump` of
/// the home's database (its tables' contents as the server stores them).
pub fn database_bytes(home: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    match database_for(home) {
        Some(url) => {
            let dump = std::process::Command::new(pg_tool("pg_dump"))
                .arg("--no-owner")
                .arg(url.expose())
                .output()
                .expect("pg_dump runs");
            assert!(
                dump.status.success(),
                "pg_dump: {}",
                String::from_utf8_lossy(&dump.stderr)
            );
            bytes.extend(dump.stdout);
        }
        None => {
            for entry in std::fs::read_dir(home.join("database")).expect("database dir") {
                let path = entry.expect("entry").path();
                if path.is_file() {
                    bytes.extend(std::fs::read(&path).expect("read"));
                }
            }
        }
    }
    bytes
}

/// A PostgreSQL client program: Debian's newest under /usr/lib/postgresql, else from PATH.
pub fn pg_tool(name: &str) -> std::path::PathBuf {
    let mut versions: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.is_file())
        .collect();
    versions.sort();
    versions.pop().unwrap_or_else(|| name.into())
}

/// Whether this run is on PostgreSQL (`MEDVAULT_TEST_DATABASE_URL`).
pub fn on_postgres() -> bool {
    std::env::var_os(POSTGRES_FOR_TESTS).is_some()
}

/// The environment variable that runs the tests on PostgreSQL: a URL of a role that may
/// create databases (`.ci/postgres start` prints one).
pub const POSTGRES_FOR_TESTS: &str = "MEDVAULT_TEST_DATABASE_URL";

/// Unset `MEDVAULT_TEST_DATABASE_URL`: `None`, the home's own SQLite file. Set: a database of
/// the home's own on that server, named after the home and created at its first use, so that
/// tests stay apart and in parallel and a restart of the same home finds its data again.
pub fn database_for(home: &std::path::Path) -> Option<medvault::config::DatabaseUrl> {
    let server = std::env::var(POSTGRES_FOR_TESTS).ok()?;
    Some(medvault::config::DatabaseUrl::new(postgres_database(
        &server,
        &home.to_string_lossy(),
    )))
}

/// A database named after `key` on the server of `server_url`, created if it is not there;
/// returns its URL.
pub fn postgres_database(server_url: &str, key: &str) -> String {
    use diesel::{Connection, PgConnection, RunQueryDsl};
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    let name: String = format!("mvt_{}", hex::encode(&digest[..10]));
    let mut admin = PgConnection::establish(server_url)
        .unwrap_or_else(|e| panic!("{POSTGRES_FOR_TESTS} does not reach PostgreSQL: {e}"));
    // CREATE DATABASE has no IF NOT EXISTS; a home's database is made once, by its first start.
    let _ = diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin);
    let base = server_url
        .rsplit_once('/')
        .map(|(base, _)| base)
        .expect("a URL ending in /database");
    format!("{base}/{name}")
}

/// The text between `start` and the next `end` after it, if both are there.
pub fn find_between<'b>(body: &'b str, start: &str, end: &str) -> Option<&'b str> {
    let from = body.find(start)? + start.len();
    let to = body[from..].find(end)? + from;
    Some(&body[from..to])
}

/// How many user rows the admin's user list shows.
pub fn user_rows(body: &str) -> usize {
    body.matches("<td><a href=\"/admin/users/").count()
}

/// How many of `actions` are `action`.
pub fn count_of(actions: &[String], action: &str) -> usize {
    actions.iter().filter(|a| *a == action).count()
}

/// The value attribute of the input named `name`, as a browser would send it back.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_end = html[at..].find('>')? + at;
    let tag = &html[at..tag_end];
    let start = tag.find("value=\"")? + "value=\"".len();
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].to_string())
}

/// An admin creates `username` through the pages; returns the new id and one-time password.
pub fn admin_creates(admin: &mut Browser<'_>, username: &str, level: &str) -> (String, String) {
    admin.get("/admin/users/new").assert_status(Status::Ok);
    let page = admin.post("/admin/users", &[("username", username), ("level", level)]);
    page.assert_status(Status::Ok);
    let one_time = find_between(&page.body, "<code>", "</code>")
        .expect("one-time password on the page")
        .to_string();
    let id = find_between(&page.body, "<a href=\"/admin/users/", "\"")
        .expect("link to the new user")
        .to_string();
    (id, one_time)
}

/// `username` signs in with the one-time password they were given and replaces it with
/// [`PASSWORD`] at the page that insists on it.
pub fn replace_one_time_password(app: &TestApp, username: &str, one_time: &str) {
    let mut browser = app.browser();
    browser
        .login(username, one_time)
        .assert_redirect("/account/password");
    browser
        .post(
            "/account/password",
            &[
                ("current_password", one_time),
                ("new_password", PASSWORD),
                ("confirm_password", PASSWORD),
            ],
        )
        .assert_redirect("/");
}

pub fn encode(text: &str) -> String {
    rocket::http::RawStr::new(text).percent_encode().to_string()
}
