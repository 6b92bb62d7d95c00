//! What only a PostgreSQL server can show (compiled in when `MEDVAULT_TEST_DATABASE_URL` is set,
//! see build.rs): the two backends' migrations give the same columns, servers that start
//! together on one database migrate it once, and what one server saves the other puts in force.

use crate::common;

use std::collections::BTreeMap;

use common::*;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use diesel_migrations::MigrationHarness;
use medvault::access::Level;
use medvault::db::{POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};
use rocket::http::Status;

/// A fresh database of the test's own on the tests' server.
fn fresh_database(purpose: &str) -> String {
    let server = std::env::var(POSTGRES_FOR_TESTS).expect("compiled in only when it is set");
    let unique = tempfile::tempdir().expect("temp dir");
    postgres_database(&server, &format!("{purpose}:{}", unique.path().display()))
}

/// A column as both catalogues can describe it: name, type, whether it may be NULL.
#[derive(Debug, PartialEq, Eq)]
struct Column {
    name: String,
    sql_type: String,
    nullable: bool,
}

#[derive(QueryableByName)]
struct SqliteColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    declared: String,
    #[diesel(sql_type = Integer)]
    notnull: i32,
    #[diesel(sql_type = Integer)]
    pk: i32,
}

#[derive(QueryableByName)]
struct PostgresColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Text)]
    is_nullable: String,
}

type Tables = BTreeMap<String, Vec<Column>>;

/// Diesel's own bookkeeping table differs by design (a VARCHAR and a timestamp type each).
const NOT_MEDVAULTS: &str = "__diesel_schema_migrations";

fn sqlite_tables() -> Tables {
    let mut conn = SqliteConnection::establish(":memory:").expect("in-memory SQLite");
    conn.run_pending_migrations(SQLITE_MIGRATIONS)
        .expect("SQLite migrations");
    let rows: Vec<SqliteColumn> = diesel::sql_query(
        "SELECT m.name AS table_name, c.name AS name, c.type AS declared, c.\"notnull\" AS \"notnull\", c.pk AS pk \
         FROM sqlite_master m, pragma_table_info(m.name) c \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, c.cid",
    )
    .load(&mut conn)
    .expect("SQLite columns");
    let mut tables = Tables::new();
    for row in rows.into_iter().filter(|r| r.table_name != NOT_MEDVAULTS) {
        tables.entry(row.table_name).or_default().push(Column {
            name: row.name,
            // SQLite keeps the type as declared; PostgreSQL names the same types in lower case.
            // An INTEGER PRIMARY KEY is SQLite's 64-bit row id, whatever it is declared as.
            // Bytes are a BLOB in SQLite and a BYTEA in PostgreSQL.
            sql_type: if row.declared == "INTEGER" && row.pk == 1 {
                "bigint".into()
            } else if row.declared == "BLOB" {
                "bytea".into()
            } else {
                row.declared.to_lowercase()
            },
            nullable: row.notnull == 0,
        });
    }
    tables
}

fn postgres_tables(url: &str) -> Tables {
    let mut conn = PgConnection::establish(url).expect("PostgreSQL");
    conn.run_pending_migrations(POSTGRES_MIGRATIONS)
        .expect("PostgreSQL migrations");
    let rows: Vec<PostgresColumn> = diesel::sql_query(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text \
         FROM information_schema.columns WHERE table_schema = 'public' \
         ORDER BY table_name, ordinal_position",
    )
    .load(&mut conn)
    .expect("PostgreSQL columns");
    let mut tables = Tables::new();
    for row in rows.into_iter().filter(|r| r.table_name != NOT_MEDVAULTS) {
        tables.entry(row.table_name).or_default().push(Column {
            name: row.column_name,
            sql_type: row.data_type,
            nullable: row.is_nullable == "YES",
        });
    }
    tables
}

#[test]
fn the_postgres_and_sqlite_migrations_give_the_same_tables_column_by_column() {
    let sqlite = sqlite_tables();
    let postgres = postgres_tables(&fresh_database("schema"));
    assert!(sqlite.len() >= 20, "medvault's tables: {:?}", sqlite.keys());
    assert_eq!(
        sqlite.keys().collect::<Vec<_>>(),
        postgres.keys().collect::<Vec<_>>(),
        "the same tables"
    );
    for (table, columns) in &sqlite {
        // Names, order, nullability and width (BIGINT for every timestamp and id, INTEGER only
        // where the Diesel schema says Integer): a drift in either set of migrations shows here.
        assert_eq!(columns, &postgres[table], "the columns of {table}");
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[test]
fn three_servers_starting_together_on_one_new_database_migrate_it_once() {
    let url = fresh_database("three-starts");
    let homes: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("temp dir"))
        .collect();
    // One root key for all three, as servers of one installation share it.
    let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]);
    let barrier = std::sync::Barrier::new(3);
    let started: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = homes
            .iter()
            .map(|home| {
                let (url, key, barrier) = (url.clone(), key.clone(), &barrier);
                scope.spawn(move || {
                    let mut config = medvault::Config::for_home(home.path());
                    config.database_url = Some(medvault::config::DatabaseUrl::new(url));
                    config.master_key = Some(key.as_str().into());
                    barrier.wait();
                    medvault::App::open(config)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .collect()
    });
    for result in &started {
        assert!(result.is_ok(), "every server starts: {started:?}");
    }
    let mut conn = PgConnection::establish(&url).expect("PostgreSQL");
    let applied: Count = diesel::sql_query("SELECT COUNT(*) AS n FROM __diesel_schema_migrations")
        .get_result(&mut conn)
        .expect("count");
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .expect("migrations folder")
        .count();
    assert_eq!(applied.n as usize, migrations, "each migration once");
}

/// Two servers of one installation (one root key) on one new database.
fn two_servers() -> (TestApp, TestApp) {
    let url = fresh_database("two-servers");
    let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [9u8; 32]);
    let server = || {
        TestApp::with_config(|c| {
            c.database_url = Some(medvault::config::DatabaseUrl::new(url.clone()));
            c.master_key = Some(key.as_str().into());
        })
    };
    (server(), server())
}

#[test]
fn page_access_saved_on_one_server_is_in_force_on_the_other_within_moments() {
    let (one, two) = two_servers();
    let mut admin = one.signed_in(Level::Admin, "admin");
    let mut patient = two.signed_in(Level::Patient, "pat");
    patient.get("/admin/audit").assert_status(Status::Forbidden);
    admin
        .post(
            "/admin/access",
            &[
                ("grant", "patient:AdminAudit"),
                ("grant", "admin:AdminUsers"),
            ],
        )
        .assert_redirect("/admin/access");
    // The other server follows every half second; a few seconds is room for a busy machine.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let status = patient.get("/admin/audit").status;
        if status == Status::Ok {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the other server still answers {status} with the old page access"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // And a withdrawal the same way: sessions were withdrawn from patients in that save.
    patient
        .get("/account/sessions")
        .assert_status(Status::Forbidden);
}

#[test]
fn five_wrong_passwords_spread_over_two_servers_lock_the_account_on_both() {
    let (one, two) = two_servers();
    one.create_user(Level::Doctor, "dr.spread");
    for server in [&one, &two, &one, &two, &one] {
        server
            .browser()
            .login("dr.spread", "not the password")
            .assert_status(Status::Unauthorized);
    }
    // Locked everywhere: the right password is refused on both, as any wrong one is.
    for server in [&one, &two] {
        server
            .browser()
            .login("dr.spread", PASSWORD)
            .assert_status(Status::Unauthorized);
    }
    // The fifth failure, on either server, is the one that locked it (with counts per server,
    // neither would have reached five).
    let actions = one.audit_actions();
    let failures_before_lock = actions
        .iter()
        .take_while(|a| *a != "account.locked")
        .filter(|a| *a == "login.failure")
        .count();
    assert!(actions.iter().any(|a| a == "account.locked"), "{actions:?}");
    assert_eq!(failures_before_lock, 5, "{actions:?}");
}

#[derive(QueryableByName)]
struct StoredName {
    #[diesel(sql_type = Text)]
    full_name: String,
}

#[test]
fn a_value_written_on_one_server_right_after_a_policy_change_on_the_other_is_sealed_the_new_way() {
    let (one, two) = two_servers();
    let mut admin_one = one.signed_in(Level::Admin, "admin");
    let mut admin_two = two.browser();
    admin_two
        .login("admin", PASSWORD)
        .assert_redirect("/dashboard");
    admin_two.get("/admin/users/new").assert_status(Status::Ok);

    // ChaCha20-Poly1305 / SHA3-256 for the accounts' names, saved on the first server...
    let others: Vec<String> = medvault::fields::registry::encryptable_columns()
        .iter()
        .filter(|(t, c)| t.name != "users" && !c.always_encrypted)
        .map(|(t, c)| format!("{}.{}", t.name, c.name))
        .collect();
    let mut form = vec![
        ("cipher[users]", "chacha20-poly1305"),
        ("hash[users]", "sha3-256"),
        ("encrypt", "users.full_name"),
        ("id_length", "16"),
        ("blind_index_bits", "64"),
    ];
    form.extend(others.iter().map(|c| ("encrypt", c.as_str())));
    admin_one.get("/admin/encryption").assert_status(Status::Ok);
    admin_one
        .post("/admin/encryption", &form)
        .assert_redirect("/admin/encryption");
    // ...and at once, before the second server's next look at the settings, an account with a
    // name is made there.
    let page = admin_two.post(
        "/admin/users",
        &[
            ("username", "pat.race"),
            ("level", "patient"),
            ("full_name", "Quentin Racewell"),
            ("email", ""),
        ],
    );
    page.assert_status(Status::Ok);
    let mut conn = two.app().db.conn().expect("connection");
    let stored: StoredName =
        diesel::sql_query("SELECT full_name FROM users WHERE username = 'pat.race'")
            .get_result(&mut *conn)
            .expect("the new account");
    let sealed = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        stored.full_name.strip_prefix("mv1:").expect("sealed"),
    )
    .expect("base64");
    // Header: format 1, cipher 4 (ChaCha20-Poly1305), hash 8 (SHA3-256).
    assert_eq!(
        (sealed[0], sealed[1], sealed[2]),
        (1, 4, 8),
        "sealed under the policy in the database, not the one the second server had in memory"
    );
}

/// A `medvault` process serving on a loopback port of its own, on the shared database; killed
/// with SIGKILL (what `kill -9` sends) when dropped, if it still runs.
struct ServerProcess {
    child: std::process::Child,
    _home: tempfile::TempDir,
}

impl ServerProcess {
    fn start(url: &str, key: &str, env: &[(&str, &str)]) -> ServerProcess {
        use std::io::{Read, Write};
        let home = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::fs::File::create(home.path().join("server.log")).expect("log file");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_medvault"))
            .env("MEDVAULT_HOME", home.path())
            .env("MEDVAULT_DATABASE_URL", url)
            .env("MEDVAULT_MASTER_KEY", key)
            .env("ROCKET_ADDRESS", "127.0.0.1")
            .env("ROCKET_PORT", port.to_string())
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("medvault starts");
        for _ in 0..400 {
            if let Ok(Some(status)) = child.try_wait() {
                let log =
                    std::fs::read_to_string(home.path().join("server.log")).unwrap_or_default();
                panic!("the server stopped ({status}): {log}");
            }
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let _ = write!(stream, "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
                let mut reply = String::new();
                let _ = stream.read_to_string(&mut reply);
                if reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200") {
                    return ServerProcess { child, _home: home };
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        panic!("the server did not answer /health");
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown, no lease given up, a batch in flight cut off.
    fn kill_9(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaped");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pid in a lease holder's name (`host:pid:random`).
fn holder_pid(holder: &str) -> u32 {
    holder
        .split(':')
        .nth(1)
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("a holder named host:pid:random, not {holder}"))
}

/// Polls `look` every 50 ms until it gives something, for at most `limit`.
fn within<T>(limit: std::time::Duration, mut look: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Some(found) = look() {
            return Some(found);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    None
}

#[test]
fn a_reencryption_job_whose_server_is_killed_is_finished_by_another_from_its_cursor() {
    use crate::encryption::{header, policy_form, save_policy, DEFAULT_FORM};
    use medvault::db::models::JobLease;
    use medvault::reencryption::job::{self, Job};
    use std::time::Duration;

    const LEASE_SECONDS: &str = "2";
    let url = fresh_database("lease-takeover");
    let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [5u8; 32]);
    // The admin's server runs no job itself: the two processes below compete for it.
    let admin_server = TestApp::with_config(|c| {
        c.database_url = Some(medvault::config::DatabaseUrl::new(url.clone()));
        c.master_key = Some(key.as_str().into());
        c.reencrypt_in_background = false;
    });
    let mut admin = admin_server.signed_in(Level::Admin, "admin");
    for i in 0..6 {
        admin_creates(&mut admin, &format!("patient{i}"), "patient");
    }
    // Rests between batches, so that the job lasts long enough to be cut off in the middle.
    let env = [
        ("MEDVAULT_JOB_LEASE_SECONDS", LEASE_SECONDS),
        ("MEDVAULT_REENCRYPTION_PAUSE_MS", "150"),
    ];
    let mut servers = [
        ServerProcess::start(&url, &key, &env),
        ServerProcess::start(&url, &key, &env),
    ];
    let mut conn = PgConnection::establish(&url).expect("PostgreSQL");
    let accounts: i64 = medvault::db::schema::users::table
        .count()
        .get_result(&mut conn)
        .expect("count");

    let (_, _, encrypt, id_length, bits) = DEFAULT_FORM;
    save_policy(
        &mut admin,
        &policy_form("xchacha20-poly1305", "sha-512", encrypt, id_length, bits),
    )
    .assert_redirect("/admin/encryption");
    let mut shared = medvault::db::Conn::Postgres(PgConnection::establish(&url).expect("PG"));
    let first = within(Duration::from_secs(30), || {
        let job = Job::running(&mut shared).expect("job")?;
        let holder = JobLease::holder(job::LEASE, &mut shared).expect("lease")?;
        (job.column_index >= 2).then_some((job, holder))
    })
    .expect("one of the servers took the job and got past its first columns");
    let (stopped, holder) = first;
    let victim = servers
        .iter()
        .position(|s| s.pid() == holder_pid(&holder.holder))
        .expect("the holder is one of the two");
    let survivor_pid = servers[1 - victim].pid();
    servers[victim].kill_9();
    let killed_at = std::time::Instant::now();

    // The dead server's lease runs out (two seconds) and the other takes the job over.
    let took_over = within(Duration::from_secs(20), || {
        let held = JobLease::holder(job::LEASE, &mut shared).expect("lease");
        let done = Job::running(&mut shared).expect("job").is_none();
        match held {
            Some(h) if holder_pid(&h.holder) == survivor_pid => Some(()),
            _ if done => Some(()),
            _ => None,
        }
    });
    assert!(took_over.is_some(), "the other server took the lease over");
    assert!(
        killed_at.elapsed() >= Duration::from_millis(1000),
        "not before the killed server's lease could have run out"
    );
    let finished = within(Duration::from_secs(60), || {
        Job::running(&mut shared)
            .expect("job")
            .is_none()
            .then_some(())
    });
    assert!(finished.is_some(), "the survivor finished the job");

    // From the cursor, each value once: two per account, none unreadable, all under the new
    // suite, and every one opens for the admin's server.
    let done: (i64, i64) = medvault::db::schema::reencryption_jobs::table
        .filter(medvault::db::schema::reencryption_jobs::id.eq(stopped.id))
        .select((
            medvault::db::schema::reencryption_jobs::rewritten,
            medvault::db::schema::reencryption_jobs::unreadable,
        ))
        .get_result(&mut conn)
        .expect("the job's row");
    assert_eq!((done.0, done.1), (2 * accounts, 0), "each value once");
    let stored: Vec<(String, String, String)> = medvault::db::schema::users::table
        .select((
            medvault::db::schema::users::id,
            medvault::db::schema::users::full_name,
            medvault::db::schema::users::email,
        ))
        .load(&mut conn)
        .expect("users");
    for (id, full_name, email) in &stored {
        assert_eq!(header(full_name).0, 5, "xchacha20-poly1305");
        assert_eq!(header(email).0, 5, "xchacha20-poly1305");
        let field = |column| medvault::crypto::FieldRef {
            table: "users",
            column,
            row_id: id,
            owner_id: id,
        };
        let fields = &admin_server.app().fields;
        fields.open(&field("full_name"), full_name).expect("opens");
        fields.open(&field("email"), email).expect("opens");
    }
    let chain = admin_server
        .app()
        .audit
        .verify(&mut shared)
        .expect("verify");
    assert!(chain.first_broken.is_none(), "the audit chain holds");
    assert!(admin_server
        .audit_actions()
        .iter()
        .any(|a| a == "encryption.job_finished"));
}

/// A TCP relay between medvault and the tests' PostgreSQL server that the test can cut and
/// restore: what a database server going away and coming back looks like from medvault's side
/// (connections reset, then refused), with the real server behind it.
struct Relay {
    port: u16,
    upstream: std::net::SocketAddr,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    streams: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn to(upstream: std::net::SocketAddr) -> Relay {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut relay = Relay {
            port,
            upstream,
            open: Default::default(),
            streams: Default::default(),
            acceptor: None,
        };
        relay.restore();
        relay
    }

    /// Listens again on the same port and relays new connections.
    fn restore(&mut self) {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port)).expect("rebind");
        listener.set_nonblocking(true).expect("nonblocking");
        self.open.store(true, Ordering::SeqCst);
        let (open, streams, upstream) = (self.open.clone(), self.streams.clone(), self.upstream);
        self.acceptor = Some(std::thread::spawn(move || {
            while open.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let Ok(server) = std::net::TcpStream::connect(upstream) else {
                    continue;
                };
                let mut kept = streams.lock().unwrap();
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server.try_clone().unwrap(), client.try_clone().unwrap()),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
                kept.extend([client, server]);
            }
            // The listener closes here: new connections are refused.
        }));
    }

    /// Resets every relayed connection and refuses new ones.
    fn cut(&mut self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.join().expect("acceptor stops");
        }
        for stream in self.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}

#[test]
fn a_database_that_goes_away_gives_503_pages_and_the_server_recovers_when_it_returns() {
    use std::time::Duration;
    let url = fresh_database("outage");
    let (base, database) = url.rsplit_once('/').expect("URL/database");
    let authority = base.rsplit('@').next().expect("host:port");
    let upstream: std::net::SocketAddr = authority.parse().expect("an address:port URL");
    let mut relay = Relay::to(upstream);
    let through_relay = format!(
        "{}@127.0.0.1:{}/{database}",
        base.rsplit_once('@').expect("credentials").0,
        relay.port
    );
    let app = TestApp::with_config(|c| {
        c.database_url = Some(medvault::config::DatabaseUrl::new(through_relay));
    });
    let mut doctor = app.signed_in(Level::Doctor, "doctor");
    doctor.get("/patients").assert_status(Status::Ok);
    app.browser().get("/health").assert_status(Status::Ok);

    relay.cut();
    let health = app.browser().get("/health");
    health.assert_status(Status::ServiceUnavailable);
    assert!(
        health.body.contains("\"database\":\"not answering\""),
        "{}",
        health.body
    );
    let page = doctor.get("/patients");
    page.assert_status(Status::ServiceUnavailable);
    assert!(
        page.body.contains("The records database is not answering"),
        "a page that says what happened: {}",
        page.body
    );
    assert!(!page.body.contains("diesel") && !page.body.contains("connection"));

    // Back: the same server, the same cookie, without a restart.
    relay.restore();
    let back = (0..100).find(|_| {
        let ok = app.browser().get("/health").status == Status::Ok;
        if !ok {
            std::thread::sleep(Duration::from_millis(100));
        }
        ok
    });
    assert!(
        back.is_some(),
        "/health is 200 again once the database is back"
    );
    doctor.get("/patients").assert_status(Status::Ok);
}

/// The admin presses "Back up now"; returns the newest backup's name.
fn dump_now(admin: &mut Browser<'_>) -> String {
    admin.get("/admin/backups").assert_status(Status::Ok);
    admin
        .post("/admin/backups", &[])
        .assert_redirect("/admin/backups");
    let page = admin.get("/admin/backups");
    let name = find_between(&page.body, "<code>medvault-", "</code>")
        .map(|rest| format!("medvault-{rest}"))
        .unwrap_or_else(|| panic!("a listed backup: {}", page.body));
    assert!(name.ends_with(".pgdump"), "{name}");
    name
}

fn usernames_in(url: &str) -> Vec<String> {
    use medvault::db::schema::users;
    let mut conn = PgConnection::establish(url).expect("PostgreSQL");
    users::table
        .order(users::username.asc())
        .select(users::username)
        .load(&mut conn)
        .expect("users")
}

#[test]
fn a_pg_dump_is_checked_listed_and_restored_while_both_servers_serve() {
    let (one, two) = two_servers();
    let url = match one.app().db.location() {
        medvault::db::Location::Postgres(url) => url.clone(),
        other => panic!("on PostgreSQL, not {other}"),
    };
    let mut admin = one.signed_in(Level::Admin, "admin");
    admin_creates(&mut admin, "before", "patient");
    let name = dump_now(&mut admin);
    let listed = medvault::backup::list(one.app()).expect("list");
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].verified,
        "checked in a scratch database before it was listed"
    );
    let manifest = listed[0].manifest.clone().expect("manifest");
    let counts = manifest.row_counts.expect("row counts");
    assert_eq!(counts["users"], usernames_in(&url).len() as i64);
    assert!(manifest.key_checks.len() == 1 && manifest.sha256.len() == 64);
    // The dump is the owner's alone, whatever the umask (it holds every account and session).
    {
        use std::os::unix::fs::PermissionsExt;
        let file = one.app().config.backups_dir().join(&name);
        let mode = std::fs::metadata(&file)
            .expect("the dump")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", file.display());
    }

    // After the backup: another account, and the patients' access to the audit page, saved on
    // the other server.
    let mut other_admin = two.signed_in(Level::Admin, "admin2");
    admin_creates(&mut other_admin, "after", "patient");
    // The admin keeps the pages this test goes on to use.
    other_admin
        .post(
            "/admin/access",
            &[
                ("grant", "patient:AdminAudit"),
                ("grant", "admin:AdminUsers"),
                ("grant", "admin:AdminAccess"),
                ("grant", "admin:AdminAudit"),
                ("grant", "admin:AdminBackups"),
            ],
        )
        .assert_redirect("/admin/access");
    let mut patient = two.signed_in(Level::Patient, "pat");
    let granted = within(std::time::Duration::from_secs(5), || {
        (patient.get("/admin/audit").status == Status::Ok).then_some(())
    });
    assert!(granted.is_some());
    assert!(usernames_in(&url).contains(&"after".to_string()));

    admin
        .get(&format!("/admin/backups/{name}/restore"))
        .assert_status(Status::Ok);
    admin
        .post(
            &format!("/admin/backups/{name}/restore"),
            &[("confirmed", "true")],
        )
        .assert_redirect("/admin/backups");

    let now = usernames_in(&url);
    assert!(now.contains(&"before".to_string()), "{now:?}");
    assert!(!now.contains(&"after".to_string()), "{now:?}");
    // The other server puts the restored settings in force too, without a restart.
    let mut patient = two.signed_in(Level::Patient, "pat2");
    let refused = within(std::time::Duration::from_secs(5), || {
        (patient.get("/admin/audit").status == Status::Forbidden).then_some(())
    });
    assert!(
        refused.is_some(),
        "the grant made after the backup is gone on both servers"
    );
    // The state it replaced was backed up first, and the restore is audited in one chain.
    let after = medvault::backup::list(one.app()).expect("list");
    assert!(after
        .iter()
        .any(|b| b.origin == Some(medvault::backup::Origin::BeforeRestore)));
    assert!(one.audit_actions().iter().any(|a| a == "backup.restored"));
    let mut conn = one.app().db.conn().expect("conn");
    let chain = one.app().audit.verify(&mut conn).expect("verify");
    assert!(chain.first_broken.is_none());
}

#[test]
fn a_changed_dump_is_refused_at_restore_and_a_planted_trigger_is_never_listed() {
    let url = fresh_database("dump-refusals");
    let app = TestApp::with_config(|c| {
        c.database_url = Some(medvault::config::DatabaseUrl::new(url.clone()));
    });
    let mut admin = app.signed_in(Level::Admin, "admin");
    let name = dump_now(&mut admin);
    let path = app.home.path().join("database/backups").join(&name);
    let original = std::fs::read(&path).unwrap();

    // One byte changed after it was listed: the SHA-256 no longer matches the manifest.
    let mut changed = original.clone();
    let middle = changed.len() / 2;
    changed[middle] ^= 0x01;
    std::fs::write(&path, &changed).unwrap();
    admin.get(&format!("/admin/backups/{name}/restore"));
    let page = admin.post(
        &format!("/admin/backups/{name}/restore"),
        &[("confirmed", "true")],
    );
    assert_eq!(page.status, Status::UnprocessableEntity, "{}", page.body);
    assert!(
        page.body.contains("SHA-256 does not match"),
        "{}",
        page.body
    );
    std::fs::write(&path, &original).unwrap();

    // The same backup with a trigger planted in it, as someone with the dump could make.
    let planted_db = fresh_database("dump-refusals-planted");
    let restore = std::process::Command::new(pg_tool("pg_restore"))
        .args(["--no-owner", "--no-privileges", "--dbname", &planted_db])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        restore.status.success(),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    let mut planted = PgConnection::establish(&planted_db).unwrap();
    diesel::connection::SimpleConnection::batch_execute(
        &mut planted,
        "CREATE FUNCTION steal() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$; \
         CREATE TRIGGER steal AFTER INSERT ON users FOR EACH ROW EXECUTE FUNCTION steal();",
    )
    .unwrap();
    let planted_file = app.home.path().join("planted.pgdump");
    let dump = std::process::Command::new(pg_tool("pg_dump"))
        .args(["--format=custom", "--no-owner", "--no-privileges", "--file"])
        .arg(&planted_file)
        .arg(&planted_db)
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    admin.get("/admin/backups");
    let page = admin.post_multipart(
        "/admin/backups/upload",
        &[],
        "planted.pgdump",
        &std::fs::read(&planted_file).unwrap(),
    );
    assert_eq!(page.status, Status::UnprocessableEntity, "{}", page.body);
    assert!(page.body.contains("not medvault"), "{}", page.body);
    assert_eq!(
        medvault::backup::list(app.app()).unwrap().len(),
        1,
        "never listed"
    );

    // And something that is not a dump at all.
    let page = admin.post_multipart("/admin/backups/upload", &[], "x.pgdump", b"not a dump");
    assert_eq!(page.status, Status::UnprocessableEntity, "{}", page.body);
    assert!(
        page.body.contains("not a PostgreSQL backup"),
        "{}",
        page.body
    );
}
