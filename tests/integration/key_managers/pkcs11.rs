//! The root keys wrapped by an AES key in a PKCS#11 HSM: SoftHSM2, with a token made by
//! `softhsm2-util` and keys made by `pkcs11-tool`, the commands README gives. `SOFTHSM2_CONF`
//! names the run's token folder.
//!
//! One token for the whole test process, each test with keys of its own on it: SoftHSM2 lists
//! its tokens once, when the process first initialises the module, so a token made after that
//! is not seen (keys are: the token's objects are re-read). The first test to ask makes the
//! token, and every test asks before it starts a server.

use super::*;

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use medvault::config::KeyProviderKind;

const PIN: &str = "0427";
const SO_PIN: &str = "91827364";

fn module() -> String {
    std::env::var("MEDVAULT_TEST_PKCS11_MODULE").expect("compiled in only when set")
}

/// The process's tokens, made by the first test that asks: the one every test keeps its keys
/// on, and one nobody signs in to. A PKCS#11 login holds for the whole process, so a wrong PIN
/// can only be seen refused on a token this process has not logged in to.
fn shared_tokens() -> &'static (String, String) {
    static TOKENS: OnceLock<(String, String)> = OnceLock::new();
    TOKENS.get_or_init(|| {
        assert!(
            std::env::var_os("SOFTHSM2_CONF").is_some(),
            "SOFTHSM2_CONF must name a token folder of the run's own"
        );
        // Neither label starts with the other, nor with another process's: pkcs11-tool's
        // --token-label picks the first token whose label starts with the one it is given.
        let label = format!("mv-keys-{:010}", std::process::id());
        let untouched = format!("mv-pins-{:010}", std::process::id());
        for token in [&label, &untouched] {
            run(Command::new("softhsm2-util").args([
                "--init-token",
                "--free",
                "--label",
                token,
                "--pin",
                PIN,
                "--so-pin",
                SO_PIN,
            ]));
        }
        (label, untouched)
    })
}

/// A test's place on the token: its own AES-256 wrapping key, labelled `wrapping_key`.
pub struct Token {
    pub label: String,
    pub wrapping_key: String,
}

impl Token {
    pub fn new() -> Token {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let token = Token {
            label: shared_tokens().0.clone(),
            wrapping_key: format!("root-wrap-{}", NEXT.fetch_add(1, Ordering::SeqCst)),
        };
        token.make_key("AES:32", &token.wrapping_key);
        token
    }

    /// `pkcs11-tool --keygen` on this token.
    pub fn make_key(&self, key_type: &str, label: &str) {
        self.tool(&["--keygen", "--key-type", key_type, "--label", label]);
    }

    pub fn delete_key(&self, label: &str) {
        self.tool(&["--delete-object", "--type", "secrkey", "--label", label]);
    }

    fn tool(&self, args: &[&str]) {
        run(Command::new("pkcs11-tool")
            .args(["--module", &module(), "--login", "--pin", PIN])
            .args(["--token-label", &self.label])
            .args(args));
    }

    pub fn configure(&self, config: &mut Config) {
        config.key_provider = Some(KeyProviderKind::Pkcs11);
        config.pkcs11_module = Some(module().into());
        config.pkcs11_token = Some(self.label.clone());
        config.pkcs11_pin = Some(PIN.into());
        config.pkcs11_key = self.wrapping_key.clone();
    }
}

fn run(command: &mut Command) {
    let out = command.output().expect("the tool runs");
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn pkcs11_data_reads_back_after_a_restart_with_no_key_on_disk() {
    let token = Token::new();
    super::data_reads_back_after_a_restart("pkcs11", &|c| token.configure(c));
    let app = TestApp::with_config(|c| token.configure(c));
    let rows = wrapped_rows(app.home.path());
    // AES key wrap of 32 bytes: 40 bytes, and not the key itself.
    assert_eq!(rows[0].wrapped.len(), 40);
    assert_eq!(rows[0].wrapping_key, token.wrapping_key);
}

#[test]
fn pkcs11_refusals_say_what_to_check_and_write_nothing() {
    let token = Token::new();
    let generic = format!("{}-generic", token.wrapping_key);
    token.make_key("GENERIC:32", &generic);
    let cases: [RefusalCase; 5] = [
        (
            "wrong PIN",
            Box::new(|c| {
                c.pkcs11_token = Some(shared_tokens().1.clone());
                c.pkcs11_pin = Some("9999".into());
            }),
            "the HSM refused the PIN",
        ),
        (
            "missing token",
            Box::new(|c| c.pkcs11_token = Some("no-such-token".into())),
            "no initialised token has this label",
        ),
        (
            "missing key",
            Box::new(|c| c.pkcs11_key = "no-such-key".into()),
            "there is no such secret key",
        ),
        (
            "key of the wrong type",
            Box::new(|c| c.pkcs11_key = generic.clone()),
            "it is not an AES key allowed to wrap and unwrap",
        ),
        (
            "no module",
            Box::new(|c| c.pkcs11_module = Some("/nonexistent/libpkcs11.so".into())),
            "cannot load the PKCS#11 module /nonexistent/libpkcs11.so",
        ),
    ];
    for (case, adjust, expected) in cases {
        let home = tempfile::tempdir().expect("home");
        let refused = refusal(home.path(), |c| {
            token.configure(c);
            adjust(c);
        });
        assert!(refused.contains(expected), "{case}: {refused}");
        assert!(!refused.contains(PIN), "{case}: the PIN is printed");
        assert_nothing_written(home.path());
    }
}

#[test]
fn another_hsm_key_under_the_same_label_refuses_to_start() {
    let token = Token::new();
    let app = TestApp::with_config(|c| token.configure(c));
    write_a_record(&app);
    let home = stop(app);
    token.delete_key(&token.wrapping_key);
    token.make_key("AES:32", &token.wrapping_key);
    let refused = refusal(home.path(), |c| token.configure(c));
    assert!(refused.contains("wrapped by another key"), "{refused}");
}

#[test]
fn wrapped_keys_of_another_installation_are_refused_under_pkcs11() {
    let token = Token::new();
    super::wrapped_keys_of_another_installation_are_refused(&|c| token.configure(c));
}

#[test]
fn a_new_hsm_key_rewraps_the_root_keys_without_touching_fields() {
    let token = Token::new();
    let new_key = format!("{}-2027", token.wrapping_key);
    token.make_key("AES:32", &new_key);
    super::key_manager_rotation_rewraps_without_touching_fields(
        &|c| token.configure(c),
        &|c| c.pkcs11_key = new_key.clone(),
        // The old key destroyed: only the rewrapped keys open.
        &|| token.delete_key(&token.wrapping_key),
    );
}

#[test]
fn an_admin_rotation_under_pkcs11_wraps_the_new_version() {
    let token = Token::new();
    super::an_admin_rotation_wraps_the_new_version(&|c| token.configure(c));
}

#[test]
fn the_key_file_moves_into_the_hsm() {
    let token = Token::new();
    super::the_key_files_keys_move_into_the_key_manager(&|c| token.configure(c));
}

/// The PIN as the operator writes it in the environment: `0427` stays text (read as a number,
/// it would be 427 and refused).
#[test]
fn a_pin_from_the_environment_keeps_its_leading_zero() {
    assert!(PIN.starts_with('0'));
    let token = Token::new();
    let home = tempfile::tempdir().expect("home");
    let mut command = Command::new(env!("CARGO_BIN_EXE_medvault"));
    command
        .args(["user", "create", "--level", "admin", "--username", "boss"])
        .env("MEDVAULT_HOME", home.path())
        .env("MEDVAULT_KEY_PROVIDER", "pkcs11")
        .env("MEDVAULT_PKCS11_MODULE", module())
        .env("MEDVAULT_PKCS11_TOKEN", &token.label)
        .env("MEDVAULT_PKCS11_PIN", PIN)
        .env("MEDVAULT_PKCS11_KEY", &token.wrapping_key)
        .envs(database_env(home.path()))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("medvault runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "{PASSWORD}").expect("password");
    }
    let out = child.wait_with_output().expect("medvault ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(wrapped_rows(home.path()).len(), 1);
}
