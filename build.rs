//! Settings of the build itself, for the tests that need a real server beside medvault. Each
//! compiles its tests in only when set; without it they do not exist, rather than passing
//! without having run. `.ci/run` sets them all.
//! - `MEDVAULT_TEST_DATABASE_URL`: a PostgreSQL server (`tests/integration/postgres.rs`).
//! - `MEDVAULT_TEST_BAO`: OpenBao's `bao` binary, started by the tests as a dev server
//!   (`tests/integration/key_managers/transit.rs`).
//! - `MEDVAULT_TEST_PKCS11_MODULE`: SoftHSM2's PKCS#11 module, with `SOFTHSM2_CONF` naming a
//!   token folder of the run's own (`tests/integration/key_managers/pkcs11.rs`).
fn main() {
    for (variable, cfg) in [
        ("MEDVAULT_TEST_DATABASE_URL", "postgres_tests"),
        ("MEDVAULT_TEST_BAO", "openbao_tests"),
        ("MEDVAULT_TEST_PKCS11_MODULE", "pkcs11_tests"),
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo::rerun-if-env-changed={variable}");
        if std::env::var_os(variable).is_some_and(|value| !value.is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
