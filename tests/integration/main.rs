//! The integration tests, one binary: each module drives the real server from the user's and
//! the attacker's side. One binary links the crate once, where one per file linked it twenty
//! times; `tests/logs.rs` stays apart because it installs the process's global log subscriber.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

#[path = "../common/mod.rs"]
mod common;

mod access;
mod accounts;
mod admin_users;
mod audit;
mod brute_force;
mod crypto_field;
mod crypto_props;
mod csrf;
mod encryption;
mod headers;
#[cfg(any(openbao_tests, pkcs11_tests))]
mod key_managers;
mod metrics;
mod page_structure;
#[cfg(postgres_tests)]
mod postgres;
mod records;
mod records_attacks;
mod sessions;
mod smoke;
mod sqlite_backup_cli;
mod sqlite_backup_refusals;
mod sqlite_backups;
mod startup;
mod tls;
mod two_factor;
