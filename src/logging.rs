//! The server's log: `tracing` lines (Rocket's own `log` lines come through the same
//! subscriber), filtered by `MEDVAULT_LOG` (an `EnvFilter`; default [`DEFAULT_FILTER`]).
//!
//! Each request gets one access line from [`crate::web::metrics::RequestMetrics`]: method,
//! route pattern, status and milliseconds. Rocket's own four lines per request are left out by
//! the default filter: they cost a tenth of a busy server's CPU, and they print the request's
//! path, which may hold a file-download token or a record's id. Nothing medvault logs carries a
//! password, a key, a token or a decrypted value (tests/logs.rs checks a whole journey).

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Everything at `info` except Rocket's per-request chatter (its warnings and errors stay).
pub const DEFAULT_FILTER: &str = "info,rocket::server=warn";

/// Installs the subscriber for the whole process, writing to `writer` (colours only for a
/// terminal). A second call does nothing: the first subscriber stays.
pub fn init<W>(writer: W, colours: bool)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_env("MEDVAULT_LOG").unwrap_or_else(|_| DEFAULT_FILTER.into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours)
        .with_writer(writer)
        .try_init();
}
