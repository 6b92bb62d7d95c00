#![forbid(unsafe_code)]
//! medvault: medical records with per-row field encryption, browser-bound sessions and
//! deny-by-default page access.
//!
//! [`build_rocket`] builds the whole server from a [`Config`]; `main` and the tests share it.

pub mod access;
pub mod app;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod brute_force;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod fields;
pub mod health;
pub mod ids;
pub mod key_manager;
pub mod logging;
pub mod masking;
pub mod private_files;
pub mod records;
pub mod reencryption;
pub mod services;
pub mod state_seal;
pub mod users;
pub mod web;

use base64::{engine::general_purpose::STANDARD, Engine};
use rocket::fairing::AdHoc;
use rocket::shield::Shield;
use rocket::{Build, Rocket};

pub use app::{App, StartupError};
pub use clock::Clock;
pub use config::Config;

use crate::crypto::Purpose;

/// The server for `config`: opens the home folder and database, checks the root key, and mounts
/// every page behind its guard.
pub fn build_rocket(config: Config) -> Result<Rocket<Build>, StartupError> {
    let template_dir = config.template_dir();
    // A certificate that cannot be used stops the start before the database is opened.
    web::tls::check(&Config::figment()).map_err(StartupError)?;
    let app = App::open(config)?;
    let cookie_key = app.keys().purpose_key(Purpose::CookieSecret);
    let figment = Config::figment()
        .merge(("secret_key", STANDARD.encode(cookie_key.expose())))
        // Client addresses come from the socket, or from X-Forwarded-For of a trusted proxy
        // only (see auth::client); never from a header any client can send.
        .merge(("ip_header", false))
        .merge(("ident", false))
        .merge(("template_dir", template_dir))
        // A scan may be as large as the setting allows; the rest of a multipart form is small.
        // One byte over the limit is read so that an oversized file is told apart from a
        // full one and refused with the form re-filled. Joined, not merged: limits the
        // operator set (larger ones for backup uploads) win, and the scan page checks its own.
        .join(("limits.file", app.config.max_upload_bytes + 1))
        .join((
            "limits.data-form",
            app.config.max_upload_bytes + 1024 * 1024,
        ));
    let address = figment
        .extract_inner::<std::net::IpAddr>("address")
        .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
    let port = figment.extract_inner::<u16>("port").unwrap_or(8000);
    let hosts = config::HostNames::new(&app.config, address);
    if !address.is_loopback() && app.config.hosts.is_empty() {
        tracing::warn!(
            "medvault listens on {address}, but `hosts` is empty: only requests for {address}:{port} \
             are answered. Set MEDVAULT_HOSTS to the names clients use (e.g. [\"records.example.org\"])."
        );
    }
    if let Some(token) = app.setup.current() {
        tracing::warn!(
            "no admin exists yet: open http://{address}:{port}/setup?token={token} to create one (the link works once)"
        );
    }
    // Pages render with the engine rocket_dyn_templates loads (web::page says why).
    let templates = web::Templates::default();
    let loaded = templates.clone();
    Ok(rocket::custom(figment)
        .attach(Shield::new())
        .attach(web::PinDatabase)
        .attach(web::SecurityHeaders)
        .attach(web::metrics::RequestMetrics::default())
        .attach(rocket_dyn_templates::Template::custom(move |engines| {
            web::register_filters(&mut engines.tera);
            loaded.store(&engines.tera);
        }))
        .attach(AdHoc::on_liftoff(
            "re-encryption worker, settings follower",
            |rocket| {
                Box::pin(async move {
                    if let Some(app) = rocket.state::<App>() {
                        if app.config.reencrypt_in_background {
                            reencryption::job::spawn_worker(app.services());
                        }
                        // Other servers may share a PostgreSQL database; one SQLite file has
                        // one server (its home's lock).
                        if app.db.sqlite_file().is_none() {
                            services::spawn_state_follower(app.services());
                        }
                    }
                })
            },
        ))
        .manage(app)
        .manage(hosts)
        .manage(templates)
        .mount("/", web::routes())
        .register("/", web::catchers::catchers()))
}
