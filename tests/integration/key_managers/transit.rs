//! The root keys wrapped by OpenBao's transit engine: a real `bao server -dev` per test, on a
//! loopback port of its own, with the transit engine enabled and the key made by the `bao`
//! commands README gives.

use super::*;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use medvault::config::KeyProviderKind;

const ROOT_TOKEN: &str = "medvault-test-root-token";

/// One OpenBao dev server (in memory: it forgets everything when it stops), stopped on drop.
pub struct Bao {
    child: Child,
    pub address: String,
    /// The dev server's TLS CA, when it serves HTTPS.
    pub ca_cert: Option<std::path::PathBuf>,
    _dir: tempfile::TempDir,
}

/// A loopback port that is free, with the next one free too (the dev server's cluster port).
fn free_port_pair() -> u16 {
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let port = listener.local_addr().expect("addr").port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

impl Bao {
    /// A dev server over HTTP with transit enabled and key `medvault` (aes256-gcm96).
    pub fn start() -> Bao {
        Bao::start_with(false)
    }

    /// The same over HTTPS, with a CA of its own.
    pub fn start_tls() -> Bao {
        Bao::start_with(true)
    }

    fn start_with(tls: bool) -> Bao {
        let binary = std::env::var("MEDVAULT_TEST_BAO").expect("compiled in only when set");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port_pair();
        let mut command = Command::new(binary);
        command
            .arg("server")
            .arg("-dev")
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .arg(format!("-dev-root-token-id={ROOT_TOKEN}"))
            .arg("-dev-no-store-token")
            .env("HOME", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if tls {
            command
                .arg("-dev-tls")
                .arg(format!("-dev-tls-cert-dir={}", dir.path().display()));
        }
        let child = command.spawn().expect("bao starts");
        let scheme = if tls { "https" } else { "http" };
        let mut bao = Bao {
            child,
            address: format!("{scheme}://127.0.0.1:{port}"),
            ca_cert: tls.then(|| dir.path().join("vault-ca.pem")),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while bao.try_cli(&["status"]).is_err() {
            assert!(Instant::now() < deadline, "bao did not come up");
            if let Some(status) = bao.child.try_wait().expect("bao runs") {
                panic!("bao stopped: {status}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bao.cli(&["secrets", "enable", "transit"]);
        bao.cli(&["write", "-f", "transit/keys/medvault", "type=aes256-gcm96"]);
        bao
    }

    fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        let binary = std::env::var("MEDVAULT_TEST_BAO").expect("compiled in only when set");
        let mut command = Command::new(binary);
        command
            .args(args)
            .env("BAO_ADDR", &self.address)
            .env("BAO_TOKEN", ROOT_TOKEN)
            .env("HOME", self._dir.path());
        if let Some(ca) = &self.ca_cert {
            command.env("BAO_CACERT", ca);
        }
        let out = command.output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// A `bao` command against this server, as its root; the test fails if it does.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|e| panic!("bao {args:?}: {e}"))
    }

    /// medvault's configuration for this server's key `medvault`.
    pub fn configure(&self, config: &mut Config) {
        config.key_provider = Some(KeyProviderKind::Transit);
        config.transit_address = Some(self.address.clone());
        config.transit_token = Some(ROOT_TOKEN.into());
        config.transit_ca_cert = self.ca_cert.clone();
    }

    /// A token that may only use key `medvault` (the policy README gives).
    pub fn least_privilege_token(&self) -> String {
        let policy = "path \"transit/keys/medvault\" { capabilities = [\"read\"] }\n\
                      path \"transit/encrypt/medvault\" { capabilities = [\"update\"] }\n\
                      path \"transit/decrypt/medvault\" { capabilities = [\"update\"] }\n\
                      path \"transit/rewrap/medvault\" { capabilities = [\"update\"] }\n";
        let file = self._dir.path().join("medvault-policy.hcl");
        std::fs::write(&file, policy).expect("policy file");
        self.cli(&["policy", "write", "medvault", &file.display().to_string()]);
        self.cli(&["token", "create", "-policy=medvault", "-field=token"])
            .trim()
            .to_string()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn transit_data_reads_back_after_a_restart_with_no_key_on_disk() {
    let bao = Bao::start();
    super::data_reads_back_after_a_restart("transit", &|c| bao.configure(c));
    // What is stored is a transit ciphertext, not the key.
    let app = TestApp::with_config(|c| bao.configure(c));
    let rows = wrapped_rows(app.home.path());
    assert!(
        rows[0].wrapped.starts_with(b"vault:v1:"),
        "{:?}",
        String::from_utf8_lossy(&rows[0].wrapped)
    );
    assert_eq!(rows[0].wrapping_key, "medvault");
}

#[test]
fn transit_over_https_with_the_clinic_ca_and_a_least_privilege_token() {
    let bao = Bao::start_tls();
    let token = bao.least_privilege_token();
    let configure = |c: &mut Config| {
        bao.configure(c);
        c.transit_token = Some(token.as_str().into());
    };
    super::data_reads_back_after_a_restart("transit", &configure);
    // Without the CA the dev server's certificate is not trusted: refused, nothing written.
    let home = tempfile::tempdir().expect("home");
    let refused = refusal(home.path(), |c| {
        configure(c);
        c.transit_ca_cert = None;
    });
    assert!(
        refused.contains("cannot reach the key manager"),
        "{refused}"
    );
    assert_nothing_written(home.path());
}

#[test]
fn transit_refusals_say_what_to_check_and_write_nothing() {
    let bao = Bao::start();
    bao.cli(&["write", "-f", "transit/keys/signing", "type=ed25519"]);
    let cases: [RefusalCase; 5] = [
        (
            "wrong token",
            Box::new(|c| c.transit_token = Some("not-a-token".into())),
            "refused the token",
        ),
        (
            "missing key",
            Box::new(|c| c.transit_key = "no-such-key".into()),
            "there is no transit key \"no-such-key\"",
        ),
        (
            "key of the wrong type",
            Box::new(|c| c.transit_key = "signing".into()),
            "is of type ed25519, which cannot wrap",
        ),
        (
            "unreachable",
            Box::new(|c| c.transit_address = Some("http://127.0.0.1:9".into())),
            "cannot reach the key manager at http://127.0.0.1:9",
        ),
        (
            "no token",
            Box::new(|c| c.transit_token = None),
            "key_provider transit needs transit_token",
        ),
    ];
    for (case, adjust, expected) in cases {
        let home = tempfile::tempdir().expect("home");
        let refused = refusal(home.path(), |c| {
            bao.configure(c);
            adjust(c);
        });
        assert!(refused.contains(expected), "{case}: {refused}");
        assert!(
            !refused.contains(ROOT_TOKEN),
            "{case}: the token is printed"
        );
        assert_nothing_written(home.path());
    }
}

#[test]
fn another_key_managers_key_refuses_to_start() {
    let bao = Bao::start();
    let app = TestApp::with_config(|c| bao.configure(c));
    write_a_record(&app);
    let home = stop(app);
    // Another OpenBao with a key of the same name: it cannot open what the first wrapped.
    let other = Bao::start();
    let refused = refusal(home.path(), |c| other.configure(c));
    assert!(refused.contains("wrapped by another key"), "{refused}");
}

#[test]
fn wrapped_keys_of_another_installation_are_refused_under_transit() {
    let bao = Bao::start();
    super::wrapped_keys_of_another_installation_are_refused(&|c| bao.configure(c));
}

#[test]
fn transit_key_rotation_rewraps_the_root_keys_without_touching_fields() {
    let bao = Bao::start();
    super::key_manager_rotation_rewraps_without_touching_fields(
        &|c| bao.configure(c),
        &|_| {
            // Rotated once, before the restart that rewraps; idempotent afterwards.
            if !bao
                .cli(&["read", "-field=latest_version", "transit/keys/medvault"])
                .contains('2')
            {
                bao.cli(&["write", "-f", "transit/keys/medvault/rotate"]);
            }
        },
        "medvault",
        // Version 1 of the transit key can no longer decrypt: only rewrapped keys open.
        &|| {
            bao.cli(&[
                "write",
                "transit/keys/medvault/config",
                "min_decryption_version=2",
            ]);
        },
    );
}

#[test]
fn an_admin_rotation_under_transit_wraps_the_new_version() {
    let bao = Bao::start();
    super::an_admin_rotation_wraps_the_new_version(&|c| bao.configure(c));
}

#[test]
fn the_key_file_moves_into_transit() {
    let bao = Bao::start();
    super::the_key_files_keys_move_into_the_key_manager(&|c| bao.configure(c));
}

#[test]
fn the_pages_keep_serving_when_openbao_goes_away_and_health_says_so() {
    let mut bao = Bao::start();
    let app = TestApp::with_config(|c| bao.configure(c));
    let patient = write_a_record(&app);
    bao.stop();
    assert_record_reads_back(&app, &patient);
    let health = app.browser().get("/health");
    // Still 200: this server holds its keys; the report warns that a restart would fail.
    health.assert_status(rocket::http::Status::Ok);
    assert!(
        health.body.contains("\"key_manager\":\"unreachable\""),
        "{}",
        health.body
    );
    let refused = refusal(app.home.path(), |c| bao.configure(c));
    assert!(
        refused.contains("cannot reach the key manager"),
        "{refused}"
    );
}

/// Two servers on one PostgreSQL database under one transit key: the root key rotated on one
/// is taken by the other from the wrapped keys they share, so that it opens what the first
/// now seals under version 2, with no restart and nothing copied between them.
#[cfg(postgres_tests)]
#[test]
fn a_rotation_on_one_server_is_taken_by_the_other_from_the_shared_wrapped_keys() {
    let bao = Bao::start();
    let server_url = std::env::var(POSTGRES_FOR_TESTS).expect("compiled in only when set");
    let unique = tempfile::tempdir().expect("temp dir");
    let url = postgres_database(
        &server_url,
        &format!("rotation:{}", unique.path().display()),
    );
    let server = || {
        TestApp::with_config(|c| {
            bao.configure(c);
            c.database_url = Some(medvault::config::DatabaseUrl::new(url.clone()));
        })
    };
    let (one, two) = (server(), server());
    let actor = medvault::audit::Actor {
        name: "admin".into(),
        ..Default::default()
    };
    assert_eq!(
        medvault::reencryption::rotation::rotate_root_key(one.app(), &actor, Some(1))
            .expect("rotated"),
        medvault::reencryption::rotation::Rotation::Rotated(2)
    );
    // Written on the first server under version 2.
    let patient = write_a_record(&one);
    // The other follows every half second; a few seconds is room for a busy machine.
    let deadline = Instant::now() + Duration::from_secs(10);
    while two.app().keys().current_root_version() != 2 {
        assert!(
            Instant::now() < deadline,
            "the second server never took version 2"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_record_reads_back(&two, &patient);
}
