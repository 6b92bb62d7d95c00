//! The root keys wrapped by an AES key in a PKCS#11 HSM: SoftHSM2, with tokens made by
//! `softhsm2-util` and keys made by `pkcs11-tool`, the commands README gives. `SOFTHSM2_CONF`
//! names the run's token folder.
//!
//! Everything on the HSM is made once per test process, before any test starts a server, and
//! nothing is written to it afterwards: SoftHSM2 lists its tokens once, when the process first
//! initialises the module (a token made later is not seen), and its file store does not stand
//! another process writing a token while this one reads it (`C_GetTokenInfo` then fails with a
//! general error). Each test takes keys of its own from the pool.

use super::*;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use medvault::config::KeyProviderKind;

const PIN: &str = "0427";
const SO_PIN: &str = "91827364";
/// AES-256 keys made on the main token, more than the tests take.
const POOL: usize = 16;
/// A generic secret on the main token: a key of the wrong type.
const GENERIC: &str = "generic-secret";
/// An AES key of this label on the main token and on the other one: two HSM keys, one label.
const TWIN: &str = "root-wrap-twin";

fn module() -> String {
    std::env::var("MEDVAULT_TEST_PKCS11_MODULE").expect("compiled in only when set")
}

/// The process's tokens, made by the first test that asks: the main one, with the pool of
/// keys; another with the twin key; and one nobody signs in to. A PKCS#11 login holds for the
/// whole process, so a wrong PIN can only be seen refused on a token this process has not
/// logged in to.
struct Tokens {
    main: String,
    other: String,
    untouched: String,
}

fn tokens() -> &'static Tokens {
    static TOKENS: OnceLock<Tokens> = OnceLock::new();
    TOKENS.get_or_init(|| {
        assert!(
            std::env::var_os("SOFTHSM2_CONF").is_some(),
            "SOFTHSM2_CONF must name a token folder of the run's own"
        );
        // No label starts with another, nor with another process's: pkcs11-tool's
        // --token-label picks the first token whose label starts with the one it is given.
        // The process id in letters, always seven: no digit of it can pass for the PIN in a
        // message that lists the labels.
        let mut pid = std::process::id();
        let run_name: String = (0..7)
            .map(|_| {
                let letter = char::from(b'a' + (pid % 26) as u8);
                pid /= 26;
                letter
            })
            .collect();
        let tokens = Tokens {
            main: format!("mv-keys-{run_name}"),
            other: format!("mv-twin-{run_name}"),
            untouched: format!("mv-pins-{run_name}"),
        };
        for token in [&tokens.main, &tokens.other, &tokens.untouched] {
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
        for n in 0..POOL {
            make_key(&tokens.main, "AES:32", &format!("root-wrap-{n}"));
        }
        make_key(&tokens.main, "GENERIC:32", GENERIC);
        make_key(&tokens.main, "AES:32", TWIN);
        make_key(&tokens.other, "AES:32", TWIN);
        tokens
    })
}

/// `pkcs11-tool --keygen` on `token`.
fn make_key(token: &str, key_type: &str, label: &str) {
    run(Command::new("pkcs11-tool")
        .args(["--module", &module(), "--login", "--pin", PIN])
        .args(["--token-label", token])
        .args(["--keygen", "--key-type", key_type, "--label", label]));
}

/// A test's place on the HSM: a token, and a wrapping key of its own on it.
pub struct Token {
    pub label: String,
    pub wrapping_key: String,
}

impl Token {
    /// The next unused key of the pool.
    pub fn new() -> Token {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(n < POOL, "the pool of HSM keys is too small: raise POOL");
        Token {
            label: tokens().main.clone(),
            wrapping_key: format!("root-wrap-{n}"),
        }
    }

    /// The twin key on `token`.
    fn twin(token: &str) -> Token {
        tokens();
        Token {
            label: token.to_string(),
            wrapping_key: TWIN.to_string(),
        }
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
    let cases: [RefusalCase; 5] = [
        (
            "wrong PIN",
            Box::new(|c| {
                c.pkcs11_token = Some(tokens().untouched.clone());
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
            Box::new(|c| c.pkcs11_key = GENERIC.into()),
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
    let token = Token::twin(&tokens().main);
    let app = TestApp::with_config(|c| token.configure(c));
    write_a_record(&app);
    let home = stop(app);
    // The other token's key of the same label: another key, which did not wrap these.
    let other = Token::twin(&tokens().other);
    let refused = refusal(home.path(), |c| other.configure(c));
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
    let new_key = Token::new().wrapping_key;
    super::key_manager_rotation_rewraps_without_touching_fields(
        &|c| token.configure(c),
        &|c| c.pkcs11_key = new_key.clone(),
        &new_key,
        // The old key stays on the token (nothing is written to the HSM while servers run); the
        // rows name the new key alone, and each is unwrapped by the key its row names.
        &|| {},
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
/// it would be 427 and refused). The command runs as a process of its own, on a token folder of
/// its own: SoftHSM2's file store does not stand two processes using one token at once.
#[test]
fn a_pin_from_the_environment_keeps_its_leading_zero() {
    assert!(PIN.starts_with('0'));
    let hsm = tempfile::tempdir().expect("token folder");
    std::fs::create_dir(hsm.path().join("tokens")).expect("tokens");
    let conf = hsm.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!("directories.tokendir = {}/tokens\n", hsm.path().display()),
    )
    .expect("conf");
    run(Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args(["--init-token", "--free", "--label", "cli", "--pin", PIN])
        .args(["--so-pin", SO_PIN]));
    run(Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", &conf)
        .args(["--module", &module(), "--login", "--pin", PIN])
        .args(["--token-label", "cli", "--keygen", "--key-type", "AES:32"])
        .args(["--label", "cli-wrap"]));
    let home = tempfile::tempdir().expect("home");
    let mut command = Command::new(env!("CARGO_BIN_EXE_medvault"));
    command
        .args(["user", "create", "--level", "admin", "--username", "boss"])
        .env("SOFTHSM2_CONF", &conf)
        .env("MEDVAULT_HOME", home.path())
        .env("MEDVAULT_KEY_PROVIDER", "pkcs11")
        .env("MEDVAULT_PKCS11_MODULE", module())
        .env("MEDVAULT_PKCS11_TOKEN", "cli")
        .env("MEDVAULT_PKCS11_PIN", PIN)
        .env("MEDVAULT_PKCS11_KEY", "cli-wrap")
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
