//! One setting of the build itself: with `MEDVAULT_TEST_DATABASE_URL` set, the tests that only
//! make sense against a PostgreSQL server (`tests/integration/postgres.rs`) are compiled in.
//! Without it they do not exist, rather than passing without having run.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(postgres_tests)");
    println!("cargo::rerun-if-env-changed=MEDVAULT_TEST_DATABASE_URL");
    if std::env::var_os("MEDVAULT_TEST_DATABASE_URL").is_some_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=postgres_tests");
    }
}
