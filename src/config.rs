//! One typed configuration, loaded once from Rocket.toml and the environment
//! (`ROCKET_*` for the web server, `MEDVAULT_*` for medvault) and checked before anything starts.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rocket::figment::{providers::Env, Figment};
use serde::Deserialize;

use crate::clock::Clock;

/// Where the database is: the embedded file (the default), or a PostgreSQL server.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    SqliteFile(PathBuf),
    /// A `postgres://` URL; it may hold a password, so it is never printed whole.
    Postgres(String),
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::SqliteFile(file) => write!(f, "SqliteFile({})", file.display()),
            Location::Postgres(url) => write!(f, "Postgres({})", redacted(url)),
        }
    }
}

/// The file's path, or the URL without its password: for messages to the operator.
impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::SqliteFile(file) => write!(f, "{}", file.display()),
            Location::Postgres(url) => write!(f, "{}", redacted(url)),
        }
    }
}

/// `url` with any password replaced by `***`, for messages and logs.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not a URL)".into();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or_default();
            let password = if credentials.contains(':') {
                ":***"
            } else {
                ""
            };
            format!("{scheme}://{user}{password}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// Root key text given in the configuration: wiped from memory when dropped, and never printed
/// (the configuration is `Debug`, and a start that fails may log it).
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct KeyText(String);

impl KeyText {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for KeyText {
    fn from(text: String) -> Self {
        KeyText(text)
    }
}

impl From<&str> for KeyText {
    fn from(text: &str) -> Self {
        KeyText(text.to_string())
    }
}

impl std::fmt::Debug for KeyText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyText(<redacted>)")
    }
}

impl Drop for KeyText {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// A PostgreSQL URL from the configuration. It may hold a password: it is printed with the
/// password replaced (as the whole configuration is, in a start-up error).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> DatabaseUrl {
        DatabaseUrl(url.into())
    }

    /// The URL with its password, for the connection only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let url = &self.0;
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(ConfigError(format!(
                "database_url {} is not a URL: it must look like \
                 postgres://user:password@host:5432/medvault (leave it unset for the embedded \
                 SQLite database)",
                redacted(url)
            )));
        };
        if scheme != "postgres" && scheme != "postgresql" {
            return Err(ConfigError(format!(
                "database_url must be a postgres:// URL, not {scheme}:// (leave it unset for \
                 the embedded SQLite database)"
            )));
        }
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let host = authority.rsplit('@').next().unwrap_or_default();
        if host.is_empty() && !rest.contains("host=") {
            return Err(ConfigError(format!(
                "database_url {} names no server: postgres://user:password@host:5432/medvault",
                redacted(url)
            )));
        }
        Ok(())
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", redacted(&self.0))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Where medvault keeps everything it writes: `database/`, `secrets/`, `storage/`.
    pub home: PathBuf,
    /// The PostgreSQL database to use (`postgres://user:password@host:port/name`,
    /// `MEDVAULT_DATABASE_URL`); when unset, the embedded SQLite file under `database/`.
    pub database_url: Option<DatabaseUrl>,
    /// The root key, base64 (`MEDVAULT_MASTER_KEY`); when unset, the key file is used.
    pub master_key: Option<KeyText>,
    /// The key file, created at first start with mode 0600; default `secrets/master.key`.
    pub key_file: Option<PathBuf>,
    /// Seconds of inactivity after which a session ends.
    pub session_idle_timeout: i64,
    /// Seconds after sign-in after which a session ends whatever the activity.
    pub session_lifetime: i64,
    /// Seconds between session-key renewals; every session ends at a renewal.
    pub session_key_interval: i64,
    /// Peers whose `X-Forwarded-For` is believed; every other peer is the client itself.
    pub trusted_proxies: Vec<IpAddr>,
    /// Origins (`https://records.example.org`) accepted on form posts besides the request's Host.
    pub allowed_origins: Vec<String>,
    /// Host names medvault answers for (`records.example.org`, or with `:port` for that port
    /// only), besides the address it is bound to and, on loopback, `localhost`. A request for any
    /// other host is refused: DNS rebinding must not reach the forms or loopback's `/metrics`.
    pub hosts: Vec<String>,
    /// Length of new random ids.
    pub id_length: usize,
    /// Where the page templates are; default the `templates/` folder of the source tree.
    pub template_dir: Option<PathBuf>,
    /// Whether a background thread runs re-encryption jobs (tests drive them by hand).
    pub reencrypt_in_background: bool,
    /// Seconds a server's lease on a background job (re-encryption, the backup schedule) lasts
    /// without renewal: how soon another server sharing the database takes over a job whose
    /// server died.
    pub job_lease_seconds: i64,
    /// Milliseconds the re-encryption job rests between batches, leaving the database's
    /// writer lock to the pages while a large job runs.
    pub reencryption_pause_ms: u64,
    /// A token that lets a scraper read `/metrics` from off the machine (`Bearer` header).
    pub metrics_token: Option<String>,
    /// The largest scan or medical file accepted, in bytes.
    pub max_upload_bytes: u64,
    /// Seconds a signed download link (`/files/<token>`) stays valid.
    pub file_link_lifetime: i64,
    /// Seconds a doctor's emergency access to a record outside their care lasts.
    pub emergency_access_lifetime: i64,
    #[serde(skip)]
    pub clock: Clock,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            home: PathBuf::from("."),
            database_url: None,
            master_key: None,
            key_file: None,
            session_idle_timeout: 15 * 60,
            session_lifetime: 8 * 60 * 60,
            session_key_interval: 24 * 60 * 60,
            trusted_proxies: Vec::new(),
            allowed_origins: Vec::new(),
            hosts: Vec::new(),
            id_length: 16,
            template_dir: None,
            reencrypt_in_background: true,
            job_lease_seconds: 15,
            reencryption_pause_ms: 0,
            metrics_token: None,
            max_upload_bytes: 20 * 1024 * 1024,
            file_link_lifetime: 5 * 60,
            emergency_access_lifetime: 60 * 60,
            clock: Clock::System,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Rocket.toml and `ROCKET_*` as Rocket reads them, then `MEDVAULT_*` on top.
    pub fn figment() -> Figment {
        rocket::Config::figment().merge(Env::prefixed("MEDVAULT_").global())
    }

    pub fn load() -> Result<Config, ConfigError> {
        let config: Config = Self::figment()
            .extract()
            .map_err(|e| ConfigError(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// A configuration rooted at `home` with every other setting at its default.
    pub fn for_home(home: impl Into<PathBuf>) -> Config {
        Config {
            home: home.into(),
            ..Config::default()
        }
    }

    /// Every setting checked once, with a message that tells the operator what to change.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.session_idle_timeout < 60 {
            return Err(ConfigError(
                "session_idle_timeout must be at least 60 seconds".into(),
            ));
        }
        if self.session_lifetime < self.session_idle_timeout {
            return Err(ConfigError(
                "session_lifetime must be at least session_idle_timeout".into(),
            ));
        }
        if self.session_key_interval < 300 {
            return Err(ConfigError(
                "session_key_interval must be at least 300 seconds".into(),
            ));
        }
        if !(8..=64).contains(&self.id_length) {
            return Err(ConfigError("id_length must be between 8 and 64".into()));
        }
        if !(1024..=1024 * 1024 * 1024).contains(&self.max_upload_bytes) {
            return Err(ConfigError(
                "max_upload_bytes must be between 1024 and 1073741824 (1 GiB)".into(),
            ));
        }
        if !(10..=3600).contains(&self.file_link_lifetime) {
            return Err(ConfigError(
                "file_link_lifetime must be between 10 and 3600 seconds".into(),
            ));
        }
        if !(60..=24 * 3600).contains(&self.emergency_access_lifetime) {
            return Err(ConfigError(
                "emergency_access_lifetime must be between 60 and 86400 seconds".into(),
            ));
        }
        if !(2..=600).contains(&self.job_lease_seconds) {
            return Err(ConfigError(
                "job_lease_seconds must be between 2 and 600".into(),
            ));
        }
        if self.reencryption_pause_ms > 60_000 {
            return Err(ConfigError(
                "reencryption_pause_ms must be at most 60000 (one minute)".into(),
            ));
        }
        for origin in &self.allowed_origins {
            if !(origin.starts_with("http://") || origin.starts_with("https://"))
                || origin.trim_end_matches('/') != origin
            {
                return Err(ConfigError(format!(
                    "allowed_origins entry {origin:?} must look like https://host[:port] with no path"
                )));
            }
        }
        for host in &self.hosts {
            if host.is_empty()
                || host.contains("://")
                || host.contains('/')
                || host.chars().any(char::is_whitespace)
            {
                return Err(ConfigError(format!(
                    "hosts entry {host:?} must be a host name, optionally with :port (no scheme, no path)"
                )));
            }
        }
        if let Some(url) = &self.database_url {
            url.validate()?;
        }
        let key_file = self.key_file_path();
        if let Ok(relative) = absolute(&key_file).strip_prefix(absolute(&self.database_dir())) {
            return Err(ConfigError(format!(
                "key_file must live outside the database folder (it would be {}); backups copy that folder",
                relative.display()
            )));
        }
        Ok(())
    }

    /// The database this configuration names.
    pub fn database(&self) -> Location {
        match &self.database_url {
            Some(url) => Location::Postgres(url.0.clone()),
            None => Location::SqliteFile(self.database_file()),
        }
    }

    pub fn database_dir(&self) -> PathBuf {
        self.home.join("database")
    }

    pub fn database_file(&self) -> PathBuf {
        self.database_dir().join("medvault.sqlite")
    }

    pub fn backups_dir(&self) -> PathBuf {
        self.database_dir().join("backups")
    }

    pub fn secrets_dir(&self) -> PathBuf {
        self.home.join("secrets")
    }

    pub fn storage_dir(&self) -> PathBuf {
        self.home.join("storage")
    }

    pub fn key_file_path(&self) -> PathBuf {
        match &self.key_file {
            Some(path) if path.is_absolute() => path.clone(),
            Some(path) => self.home.join(path),
            None => self.secrets_dir().join("master.key"),
        }
    }

    pub fn template_dir(&self) -> PathBuf {
        self.template_dir
            .clone()
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("templates"))
    }
}

/// `path` made absolute with `.` and `..` resolved, so that `secrets/../database/x` is seen to
/// be inside `database/` (`std::path::absolute` keeps `..` on Unix).
fn absolute(path: &Path) -> PathBuf {
    use std::path::Component;
    let full = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut resolved = PathBuf::new();
    for component in full.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                resolved.pop();
            }
            other => resolved.push(other),
        }
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn a_database_url_is_printed_without_its_password() {
        let config = Config {
            database_url: Some(DatabaseUrl::new(
                "postgres://medvault:hunter2@db.example.org:5432/medvault?sslmode=verify-full",
            )),
            ..Config::default()
        };
        let printed = format!("{config:?} {}", config.database());
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(
            printed.contains("postgres://medvault:***@db.example.org:5432/medvault"),
            "{printed}"
        );
    }

    #[test]
    fn a_key_file_inside_the_database_folder_is_refused() {
        let config = Config {
            key_file: Some("database/master.key".into()),
            ..Config::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("outside the database folder"), "{err}");
    }

    #[test]
    fn a_key_file_reaching_into_the_database_folder_through_dot_dot_is_refused() {
        let config = Config {
            key_file: Some("secrets/../database/master.key".into()),
            ..Config::default()
        };
        assert!(config.validate().is_err());
        let outside = Config {
            key_file: Some("database/../secrets/master.key".into()),
            ..Config::default()
        };
        outside.validate().unwrap();
    }

    #[test]
    fn a_lifetime_shorter_than_the_idle_timeout_is_refused() {
        let config = Config {
            session_lifetime: 100,
            ..Config::default()
        };
        assert!(config.validate().is_err());
    }
}

#[cfg(test)]
mod key_text_tests {
    use super::*;

    #[test]
    fn key_text_never_prints_its_value() {
        let config = Config {
            master_key: Some("1:c2VjcmV0IGtleSBtYXRlcmlhbA==".into()),
            ..Config::default()
        };
        let printed = format!("{config:?}");
        assert!(!printed.contains("c2VjcmV0"), "{printed}");
        assert!(printed.contains("redacted"), "{printed}");
    }
}

/// The `Host` values medvault answers for: the configured `hosts`, the hosts of
/// `allowed_origins`, the address it is bound to, and on loopback `localhost`.
#[derive(Clone, Debug, Default)]
pub struct HostNames {
    /// Lowercase; an entry without a port matches any port.
    names: Vec<String>,
}

impl HostNames {
    pub fn new(config: &Config, address: std::net::IpAddr) -> HostNames {
        let mut names: Vec<String> = config.hosts.iter().map(|h| h.to_lowercase()).collect();
        for origin in &config.allowed_origins {
            if let Some(host) = origin.split_once("://").map(|(_, h)| h) {
                names.push(host.to_lowercase());
            }
        }
        // The bound address and loopback names match with any port (or none): a rebinding
        // page always comes under a name of the attacker's, never under an address literal.
        let literal = |ip: std::net::IpAddr| match ip {
            std::net::IpAddr::V4(v4) => v4.to_string(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        };
        names.push(literal(address));
        if address.is_loopback() || address.is_unspecified() {
            names.push("localhost".into());
            names.push(literal(std::net::Ipv4Addr::LOCALHOST.into()));
            names.push(literal(std::net::Ipv6Addr::LOCALHOST.into()));
        }
        HostNames { names }
    }

    pub fn accepts(&self, host: &str) -> bool {
        let host = host.trim().to_lowercase();
        self.names.iter().any(|name| {
            *name == host
                || (!name.contains(':') || name.starts_with('[') && !name.contains("]:"))
                    && host
                        .strip_prefix(name.as_str())
                        .is_some_and(|rest| rest.is_empty() || is_port(rest))
        })
    }
}

fn is_port(rest: &str) -> bool {
    rest.strip_prefix(':')
        .is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod host_tests {
    use super::*;

    #[test]
    fn hosts_are_the_bound_address_loopback_names_and_the_configured_ones() {
        let config = Config {
            hosts: vec!["records.example.org".into(), "intranet:8443".into()],
            allowed_origins: vec!["https://portal.example.org".into()],
            ..Config::default()
        };
        let names = HostNames::new(&config, "127.0.0.1".parse().unwrap());
        for ok in [
            "127.0.0.1:8000",
            "127.0.0.1",
            "localhost:8000",
            "LOCALHOST:8000",
            "[::1]:8000",
            "records.example.org",
            "records.example.org:443",
            "intranet:8443",
            "portal.example.org",
        ] {
            assert!(names.accepts(ok), "{ok}");
        }
        for refused in [
            "attacker.example",
            "attacker.example:8000",
            "127.0.0.2:8000",
            "localhost.attacker.example",
            "intranet:8444",
            "records.example.org.attacker.example",
            "records.example.org:",
            "records.example.orgx",
        ] {
            assert!(!names.accepts(refused), "{refused}");
        }
        // Bound elsewhere, only that address (and the configured names) answer.
        let names = HostNames::new(&Config::default(), "10.1.2.3".parse().unwrap());
        assert!(names.accepts("10.1.2.3:443"));
        assert!(!names.accepts("localhost:443"));
    }
}
