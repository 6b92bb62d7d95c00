//! HTTPS served by medvault itself: the real binary with `ROCKET_TLS` naming a certificate made
//! here (rcgen, signed by a CA of the test's own), and a real TLS client (rustls) that trusts
//! only that CA. A certificate that cannot be used stops the start with a message naming it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::PASSWORD;

/// A CA and a server certificate for `localhost` it signed, written as PEM files in `dir`.
struct Certificates {
    ca_der: Vec<u8>,
    chain: PathBuf,
    key: PathBuf,
}

impl Certificates {
    fn new(dir: &Path) -> Certificates {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "medvault test clinic CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let server_key = KeyPair::generate().expect("server key");
        let server = CertificateParams::new(vec!["localhost".to_string()])
            .expect("server params")
            .signed_by(&server_key, &ca, &ca_key)
            .expect("signed");
        let chain = dir.join("server.crt");
        let key = dir.join("server.key");
        std::fs::write(&chain, server.pem()).expect("chain");
        std::fs::write(&key, server_key.serialize_pem()).expect("key");
        Certificates {
            ca_der: ca.der().to_vec(),
            chain,
            key,
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `ROCKET_TLS` naming `certs` and `key`.
fn rocket_tls(certs: &Path, key: &Path) -> String {
    format!(
        "{{certs={:?},key={:?}}}",
        certs.display().to_string(),
        key.display().to_string()
    )
}

fn medvault(home: &Path, port: u16, tls: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_medvault"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MEDVAULT_HOME", home)
        .env(
            "MEDVAULT_TEMPLATE_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/templates"),
        )
        .env("ROCKET_ADDRESS", "127.0.0.1")
        .env("ROCKET_PORT", port.to_string())
        .env("ROCKET_TLS", tls);
    command
}

/// A reply read off the wire: status line, headers (lower-cased names) and body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// One HTTP/1.1 request over TLS to `localhost:port`, trusting only `ca_der`.
fn https(ca_der: &[u8], port: u16, request: &str) -> std::io::Result<Reply> {
    use rocket::http::tls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(ca_der.to_vec()))
        .expect("the test CA");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let connection = rustls::ClientConnection::new(Arc::new(config), name)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let socket = TcpStream::connect(("127.0.0.1", port))?;
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut stream = rustls::StreamOwned::new(connection, socket);
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    // A server that closes without TLS's close_notify ends the read with an error after the
    // whole reply: what was read is the reply.
    if let Err(e) = stream.read_to_end(&mut raw) {
        if raw.is_empty() {
            return Err(e);
        }
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP reply: {head}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Reply {
        status,
        headers,
        body: body.to_string(),
    })
}

fn get(ca_der: &[u8], port: u16, path: &str, cookies: &str) -> Reply {
    https(
        ca_der,
        port,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nUser-Agent: tls-test\r\n\
             Cookie: {cookies}\r\nConnection: close\r\n\r\n"
        ),
    )
    .unwrap_or_else(|e| panic!("GET {path} over TLS: {e}"))
}

/// The `name=value` part of each Set-Cookie of `reply`, joined for a Cookie header.
fn cookies_of(reply: &Reply) -> String {
    reply
        .header_values("set-cookie")
        .iter()
        .filter_map(|c| c.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn medvault_serves_https_with_secure_cookies_and_hsts_and_signs_in_over_it() {
    let home = tempfile::tempdir().expect("home");
    let certificates = Certificates::new(home.path());
    let port = free_port();
    let tls = rocket_tls(&certificates.chain, &certificates.key);
    let mut create = medvault(home.path(), port, &tls)
        .args([
            "user",
            "create",
            "--level",
            "admin",
            "--username",
            "tls.admin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command line");
    writeln!(create.stdin.take().expect("stdin"), "{PASSWORD}").expect("password");
    let created = create.wait_with_output().expect("user create");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );

    let log = std::fs::File::create(home.path().join("server.log")).expect("log");
    let server = Server(
        medvault(home.path(), port, &tls)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("medvault starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let health = loop {
        match https(
            &certificates.ca_der,
            port,
            &format!("GET /health HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n"),
        ) {
            Ok(reply) => break reply,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!(
                "no HTTPS answer: {e}\n{}",
                std::fs::read_to_string(home.path().join("server.log")).unwrap_or_default()
            ),
        }
    };
    assert_eq!(health.status, 200, "{}", health.body);

    // Plain HTTP on the same port gets no page.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = write!(
        plain,
        "GET /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    );
    let mut answer = String::new();
    let _ = plain.read_to_string(&mut answer);
    assert!(
        !answer.contains("200 OK"),
        "plain HTTP was served: {answer}"
    );

    // The sign-in page: HSTS, and its CSRF cookie is Secure.
    let login = get(&certificates.ca_der, port, "/login", "");
    assert_eq!(login.status, 200);
    let hsts = login.header_values("strict-transport-security");
    assert!(
        hsts.iter().any(|v| v.contains("max-age=")),
        "HSTS under TLS: {:?}",
        login.headers
    );
    let set = login.header_values("set-cookie");
    assert!(!set.is_empty(), "a CSRF cookie");
    assert!(set.iter().all(|c| c.contains("Secure")), "{set:?}");

    // Signing in over HTTPS: the session cookie is Secure, and it opens the dashboard.
    let token = crate::common::between(&login.body, "name=\"csrf_token\" value=\"", "\"");
    let form = format!(
        "csrf_token={token}&username=tls.admin&password={}",
        PASSWORD.replace(' ', "+")
    );
    let signed_in = https(
        &certificates.ca_der,
        port,
        &format!(
            "POST /login HTTP/1.1\r\nHost: localhost:{port}\r\nUser-Agent: tls-test\r\n\
             Origin: https://localhost:{port}\r\nCookie: {}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{form}",
            cookies_of(&login),
            form.len()
        ),
    )
    .expect("POST /login");
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let session: Vec<&str> = signed_in
        .header_values("set-cookie")
        .into_iter()
        .filter(|c| c.starts_with("mv_session="))
        .collect();
    assert_eq!(session.len(), 1, "{:?}", signed_in.headers);
    assert!(session[0].contains("Secure"), "{}", session[0]);
    let dashboard = get(
        &certificates.ca_der,
        port,
        "/dashboard",
        &cookies_of(&signed_in),
    );
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    assert!(dashboard.body.contains("tls.admin"));
    drop(server);
}

/// The start with `tls` naming `certs` and `key`: it must stop, with a message; returns it.
fn refused_start(home: &Path, certs: &Path, key: &Path) -> String {
    let output = medvault(home, free_port(), &rocket_tls(certs, key))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("medvault")
        .wait_with_output()
        .expect("it stops");
    assert!(!output.status.success(), "the server started");
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn a_tls_certificate_or_key_that_cannot_be_used_stops_the_start_with_its_name() {
    let home = tempfile::tempdir().expect("home");
    let certificates = Certificates::new(home.path());
    let missing = home.path().join("no-such.crt");

    let message = refused_start(home.path(), &missing, &certificates.key);
    assert!(
        message.contains("cannot read the TLS certificate chain")
            && message.contains("no-such.crt"),
        "{message}"
    );
    // The certificate where the key should be: no key in it.
    let message = refused_start(home.path(), &certificates.chain, &certificates.chain);
    assert!(message.contains("holds no PEM private key"), "{message}");
    assert!(message.contains("server.crt"), "{message}");
    // The key where the certificate should be.
    let message = refused_start(home.path(), &certificates.key, &certificates.key);
    assert!(message.contains("holds no PEM certificate"), "{message}");
    // Nothing was written: the database was never opened (the server lock beside it is all).
    assert!(
        !home.path().join("database/medvault.sqlite").exists(),
        "the start stopped before the database"
    );
}
