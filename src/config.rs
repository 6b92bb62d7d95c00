//! One typed configuration, loaded once from Rocket.toml and the environment
//! (`ROCKET_*` for the web server, `MEDVAULT_*` for medvault) and checked before anything starts.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rocket::figment::providers::{Env, Serialized};
use rocket::figment::Figment;
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

/// Secret text given in the configuration (the root key, a key manager's token or PIN): wiped
/// from memory when dropped, and never printed (the configuration is `Debug`, and a start that
/// fails may log it).
#[derive(Clone, Default)]
pub struct KeyText(String);

/// Text or a number: the environment gives `MEDVAULT_PKCS11_PIN=1234` as a number, and a PIN
/// is text whatever its digits (leading zeros kept, as the variable spelled them).
impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = KeyText;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

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

/// Who holds the root key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyProviderKind {
    /// The key file (`key_file`), created at first start.
    File,
    /// `MEDVAULT_MASTER_KEY`.
    Env,
    /// Root keys stored wrapped in the database, unwrapped by OpenBao's or Vault's transit
    /// engine.
    Transit,
    /// Root keys stored wrapped in the database, unwrapped by an AES key in a PKCS#11 HSM.
    Pkcs11,
}

impl KeyProviderKind {
    pub fn name(self) -> &'static str {
        match self {
            KeyProviderKind::File => "file",
            KeyProviderKind::Env => "env",
            KeyProviderKind::Transit => "transit",
            KeyProviderKind::Pkcs11 => "pkcs11",
        }
    }

    /// Whether a key manager holds the wrapping key (the root keys are in the database,
    /// wrapped).
    pub fn is_key_manager(self) -> bool {
        matches!(self, KeyProviderKind::Transit | KeyProviderKind::Pkcs11)
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
    /// Who holds the root key (`file`, `env`, `transit`, `pkcs11`); unset: `env` when
    /// `master_key` is set, else `file`.
    pub key_provider: Option<KeyProviderKind>,
    /// OpenBao / Vault transit: the server (`https://bao.example.org:8200`).
    pub transit_address: Option<String>,
    /// OpenBao / Vault transit: the token (`MEDVAULT_TRANSIT_TOKEN`).
    pub transit_token: Option<KeyText>,
    /// OpenBao / Vault transit: where the engine is mounted.
    pub transit_mount: String,
    /// OpenBao / Vault transit: the name of the key that wraps the root keys.
    pub transit_key: String,
    /// OpenBao / Vault transit: a PEM file of the CA certificates to trust for an `https`
    /// address, instead of the public roots.
    pub transit_ca_cert: Option<PathBuf>,
    /// PKCS#11: the HSM's module (`/usr/lib/softhsm/libsofthsm2.so` for SoftHSM2).
    pub pkcs11_module: Option<PathBuf>,
    /// PKCS#11: the label of the token that holds the wrapping key.
    pub pkcs11_token: Option<String>,
    /// PKCS#11: the token's user PIN (`MEDVAULT_PKCS11_PIN`).
    pub pkcs11_pin: Option<KeyText>,
    /// PKCS#11: the label of the AES key that wraps the root keys.
    pub pkcs11_key: String,
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
            key_provider: None,
            transit_address: None,
            transit_token: None,
            transit_mount: "transit".into(),
            transit_key: "medvault".into(),
            transit_ca_cert: None,
            pkcs11_module: None,
            pkcs11_token: None,
            pkcs11_pin: None,
            pkcs11_key: "medvault-root-wrap".into(),
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

/// Settings that are text whatever characters they hold (secrets, labels, names), taken from
/// `MEDVAULT_*` exactly as written.
const TEXT_AS_SPELLED: [&str; 6] = [
    "master_key",
    "transit_token",
    "transit_key",
    "pkcs11_pin",
    "pkcs11_token",
    "pkcs11_key",
];

impl Config {
    /// Rocket.toml and `ROCKET_*` as Rocket reads them, then `MEDVAULT_*` on top.
    pub fn figment() -> Figment {
        let mut figment = rocket::Config::figment().merge(Env::prefixed("MEDVAULT_").global());
        // Text as the variable spells it: the environment provider reads values as TOML, so
        // `MEDVAULT_PKCS11_PIN=0427` would be the number 427 and a wrong PIN.
        for key in TEXT_AS_SPELLED {
            if let Ok(raw) = std::env::var(format!("MEDVAULT_{}", key.to_uppercase())) {
                figment = figment.merge(Serialized::global(key, raw));
            }
        }
        figment
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
        self.validate_key_provider()?;
        let key_file = self.key_file_path();
        if let Ok(relative) = absolute(&key_file).strip_prefix(absolute(&self.database_dir())) {
            return Err(ConfigError(format!(
                "key_file must live outside the database folder (it would be {}); backups copy that folder",
                relative.display()
            )));
        }
        Ok(())
    }

    /// Who holds the root key: `key_provider`, or when it is unset the one today's settings
    /// imply (`MEDVAULT_MASTER_KEY` set: `env`; otherwise the key file).
    pub fn key_provider(&self) -> KeyProviderKind {
        match (self.key_provider, &self.master_key) {
            (Some(kind), _) => kind,
            (None, Some(_)) => KeyProviderKind::Env,
            (None, None) => KeyProviderKind::File,
        }
    }

    fn validate_key_provider(&self) -> Result<(), ConfigError> {
        let kind = self.key_provider();
        let missing = |what: &str| {
            Err(ConfigError(format!(
                "key_provider {} needs {what}",
                kind.name()
            )))
        };
        if kind != KeyProviderKind::Env && self.master_key.is_some() {
            return Err(ConfigError(format!(
                "MEDVAULT_MASTER_KEY is set but key_provider is {}: unset one of them, so that \
                 it is clear which root key is in use",
                kind.name()
            )));
        }
        match kind {
            KeyProviderKind::File => Ok(()),
            KeyProviderKind::Env if self.master_key.is_none() => {
                missing("MEDVAULT_MASTER_KEY (the root key, base64)")
            }
            KeyProviderKind::Env => Ok(()),
            KeyProviderKind::Transit => {
                let Some(address) = &self.transit_address else {
                    return missing("transit_address (https://host:8200)");
                };
                if !(address.starts_with("http://") || address.starts_with("https://")) {
                    return Err(ConfigError(format!(
                        "transit_address {address:?} must start with https:// (or http:// on \
                         loopback)"
                    )));
                }
                if self
                    .transit_token
                    .as_ref()
                    .is_none_or(|t| t.expose().is_empty())
                {
                    return missing("transit_token (MEDVAULT_TRANSIT_TOKEN)");
                }
                for (name, value) in [
                    ("transit_mount", &self.transit_mount),
                    ("transit_key", &self.transit_key),
                ] {
                    if value.is_empty()
                        || !value
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_/".contains(c))
                    {
                        return Err(ConfigError(format!(
                            "{name} {value:?} must be letters, digits, '-', '_' or '/'"
                        )));
                    }
                }
                Ok(())
            }
            KeyProviderKind::Pkcs11 => {
                if self.pkcs11_module.is_none() {
                    return missing("pkcs11_module (the HSM's PKCS#11 library)");
                }
                if self.pkcs11_token.as_ref().is_none_or(String::is_empty) {
                    return missing("pkcs11_token (the token's label)");
                }
                if self
                    .pkcs11_pin
                    .as_ref()
                    .is_none_or(|p| p.expose().is_empty())
                {
                    return missing("pkcs11_pin (MEDVAULT_PKCS11_PIN)");
                }
                if self.pkcs11_key.is_empty() {
                    return missing("pkcs11_key (the wrapping key's label)");
                }
                Ok(())
            }
        }
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
    fn the_key_provider_follows_todays_settings_and_refuses_half_given_ones() {
        assert_eq!(Config::default().key_provider(), KeyProviderKind::File);
        let from_env = Config {
            master_key: Some("k".into()),
            ..Config::default()
        };
        assert_eq!(from_env.key_provider(), KeyProviderKind::Env);
        let refused = |config: Config| config.validate().unwrap_err().to_string();
        let both = Config {
            key_provider: Some(KeyProviderKind::Transit),
            ..from_env
        };
        assert!(refused(both).contains("MEDVAULT_MASTER_KEY is set but key_provider is transit"));
        let env_without_key = Config {
            key_provider: Some(KeyProviderKind::Env),
            ..Config::default()
        };
        assert!(refused(env_without_key).contains("needs MEDVAULT_MASTER_KEY"));
        let transit = |address: &str, token: Option<&str>| Config {
            key_provider: Some(KeyProviderKind::Transit),
            transit_address: Some(address.into()),
            transit_token: token.map(KeyText::from),
            ..Config::default()
        };
        assert!(refused(transit("bao:8200", Some("t"))).contains("must start with https://"));
        assert!(refused(transit("https://bao:8200", None)).contains("needs transit_token"));
        transit("https://bao:8200", Some("t")).validate().unwrap();
        let pkcs11 = Config {
            key_provider: Some(KeyProviderKind::Pkcs11),
            pkcs11_module: Some("/usr/lib/softhsm/libsofthsm2.so".into()),
            pkcs11_token: Some("clinic".into()),
            ..Config::default()
        };
        assert!(refused(pkcs11.clone()).contains("needs pkcs11_pin"));
        Config {
            pkcs11_pin: Some("0427".into()),
            ..pkcs11
        }
        .validate()
        .unwrap();
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
