//! OpenBao's (or Vault's) transit engine: the root keys are encrypted by a transit key that
//! never leaves the key manager. The token needs, on `MOUNT/…/KEY`: read on `keys/KEY` (the
//! key's type and version, and `/health`'s probe), update on `encrypt/KEY`, `decrypt/KEY` and
//! `rewrap/KEY`.

use std::time::Duration;

use base64::{engine::general_purpose::STANDARD, Engine};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::KeyManagerError;
use crate::config::{Config, KeyText};

/// Transit key types that encrypt with an AEAD (what wrapping a root key needs); RSA keys
/// also "encrypt", but are not what an operator meant to give medvault.
const WRAPPING_TYPES: [&str; 4] = [
    "aes256-gcm96",
    "aes128-gcm96",
    "chacha20-poly1305",
    "xchacha20-poly1305",
];

pub struct Transit {
    agent: ureq::Agent,
    address: String,
    token: KeyText,
    mount: String,
    key: String,
}

#[derive(Deserialize)]
struct Answer<T> {
    data: T,
}

#[derive(Deserialize)]
struct KeyInfo {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    supports_encryption: bool,
    #[serde(default)]
    supports_decryption: bool,
    latest_version: u32,
}

#[derive(Deserialize)]
struct Ciphertext {
    ciphertext: String,
}

#[derive(Deserialize)]
struct Plaintext {
    plaintext: Zeroizing<String>,
}

#[derive(Deserialize)]
struct Errors {
    #[serde(default)]
    errors: Vec<String>,
}

/// What went wrong with one call, before it is put in terms of what the operator checks.
enum CallError {
    Unreachable(String),
    Answered(u16, String),
}

impl Transit {
    pub fn connect(config: &Config) -> Result<Transit, KeyManagerError> {
        let address = config
            .transit_address
            .clone()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string();
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(path) = &config.transit_ca_cert {
            let pem = std::fs::read(path).map_err(|e| {
                KeyManagerError(format!(
                    "cannot read transit_ca_cert {}: {e}",
                    path.display()
                ))
            })?;
            let certs = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(cert)) => Some(Ok(cert)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    KeyManagerError(format!(
                        "transit_ca_cert {} is not a PEM file of certificates: {e}",
                        path.display()
                    ))
                })?;
            if certs.is_empty() {
                return Err(KeyManagerError(format!(
                    "transit_ca_cert {} holds no certificate",
                    path.display()
                )));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .tls_config(tls.build())
            .build()
            .new_agent();
        let transit = Transit {
            agent,
            address,
            token: config.transit_token.clone().unwrap_or_default(),
            mount: config.transit_mount.trim_matches('/').to_string(),
            key: config.transit_key.clone(),
        };
        let info = transit.key_info()?;
        if !WRAPPING_TYPES.contains(&info.kind.as_str())
            || !info.supports_encryption
            || !info.supports_decryption
        {
            return Err(KeyManagerError(format!(
                "transit key {:?} at {} is of type {}, which cannot wrap medvault's root keys. \
                 Give medvault a key of type aes256-gcm96: `bao write -f {}/keys/NAME \
                 type=aes256-gcm96`, and name it in transit_key.",
                transit.key, transit.address, info.kind, transit.mount
            )));
        }
        Ok(transit)
    }

    pub fn key_name(&self) -> &str {
        &self.key
    }

    pub fn describe(&self) -> String {
        format!(
            "transit key {:?} at {}/v1/{}",
            self.key, self.address, self.mount
        )
    }

    pub fn wrap(&self, bytes: &[u8]) -> Result<Vec<u8>, KeyManagerError> {
        // Built by hand, so that the one copy of the key's base64 is wiped (base64 needs no
        // JSON escaping).
        let encoded = Zeroizing::new(STANDARD.encode(bytes));
        let body = Zeroizing::new(format!("{{\"plaintext\":\"{}\"}}", encoded.as_str()));
        let answer: Answer<Ciphertext> = self.post(&format!("encrypt/{}", self.key), &body)?;
        Ok(answer.data.ciphertext.into_bytes())
    }

    /// The root key `wrapped` (a transit ciphertext, `vault:vN:…`) by transit key `key_name`.
    pub fn unwrap(
        &self,
        wrapped: &[u8],
        key_name: &str,
    ) -> Result<Zeroizing<Vec<u8>>, KeyManagerError> {
        let ciphertext = std::str::from_utf8(wrapped)
            .map_err(|_| KeyManagerError("the stored value is not a transit ciphertext".into()))?;
        let body = serde_json::json!({ "ciphertext": ciphertext }).to_string();
        let answer: Answer<Plaintext> = self
            .post_raw(&format!("decrypt/{key_name}"), &body)
            .map_err(|e| match e {
                // The transit key opened nothing: another key (or key manager) wrapped it.
                CallError::Answered(400, errors) => {
                    KeyManagerError::not_this_key(format!("the key manager refused it ({errors})"))
                }
                e => self.explain(&format!("decrypt/{key_name}"), e),
            })?;
        STANDARD
            .decode(answer.data.plaintext.as_bytes())
            .map(Zeroizing::new)
            .map_err(|_| {
                KeyManagerError("the key manager answered a plaintext that is not base64".into())
            })
    }

    /// A ciphertext of an older version of the transit key, rewrapped under its newest
    /// (`rewrap` never shows the key manager's plaintext to anyone); one of another transit
    /// key (transit_key changed), unwrapped and wrapped again under the configured one.
    pub fn rewrap_if_stale(
        &self,
        wrapped: &[u8],
        key_name: &str,
    ) -> Result<Option<Vec<u8>>, KeyManagerError> {
        if key_name != self.key {
            let bytes = self.unwrap(wrapped, key_name)?;
            return self.wrap(&bytes).map(Some);
        }
        let latest = self.key_info()?.latest_version;
        let version = std::str::from_utf8(wrapped)
            .ok()
            .and_then(|c| c.strip_prefix("vault:v"))
            .and_then(|rest| rest.split(':').next())
            .and_then(|v| v.parse::<u32>().ok());
        if version.is_some_and(|v| v >= latest) {
            return Ok(None);
        }
        let ciphertext = String::from_utf8_lossy(wrapped).into_owned();
        let body = serde_json::json!({ "ciphertext": ciphertext }).to_string();
        let answer: Answer<Ciphertext> = self.post(&format!("rewrap/{}", self.key), &body)?;
        Ok(Some(answer.data.ciphertext.into_bytes()))
    }

    /// Asked with a short timeout: `/health` waits on it (at most once per probe interval).
    pub fn reachable(&self) -> bool {
        self.key_info_within(Duration::from_secs(2)).is_ok()
    }

    fn key_info(&self) -> Result<KeyInfo, KeyManagerError> {
        self.key_info_within(Duration::from_secs(10))
    }

    fn key_info_within(&self, timeout: Duration) -> Result<KeyInfo, KeyManagerError> {
        let path = format!("keys/{}", self.key);
        let request = self
            .agent
            .get(&self.url(&path))
            .config()
            .timeout_global(Some(timeout))
            .build()
            .header("X-Vault-Token", self.token.expose());
        let answer: Answer<KeyInfo> = self.answer(&path, request.call())?;
        Ok(answer.data)
    }

    fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &str,
    ) -> Result<T, KeyManagerError> {
        self.post_raw(path, body).map_err(|e| self.explain(path, e))
    }

    fn post_raw<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &str,
    ) -> Result<T, CallError> {
        let sent = self
            .agent
            .post(&self.url(path))
            .header("X-Vault-Token", self.token.expose())
            .header("Content-Type", "application/json")
            .send(body.as_bytes());
        read_answer(sent)
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/{}/{path}", self.address, self.mount)
    }

    fn answer<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, KeyManagerError> {
        read_answer(sent).map_err(|e| self.explain(path, e))
    }

    /// One failed call in terms of what the operator checks.
    fn explain(&self, path: &str, error: CallError) -> KeyManagerError {
        let at = format!("{}/v1/{}/{path}", self.address, self.mount);
        KeyManagerError(match error {
            CallError::Unreachable(e) => format!(
                "cannot reach the key manager at {}: {e}. Check transit_address, that the \
                 server runs and is unsealed, and that this machine may connect to it.",
                self.address
            ),
            CallError::Answered(403, _) => format!(
                "the key manager refused the token for {at} (permission denied). Check \
                 transit_token, and that its policy allows read on {m}/keys/{k} and update on \
                 {m}/encrypt/{k}, {m}/decrypt/{k} and {m}/rewrap/{k}.",
                m = self.mount,
                k = self.key
            ),
            CallError::Answered(404, _) if path.starts_with("keys/") => format!(
                "there is no transit key {:?} at {}/v1/{}. Create it with `bao write -f \
                 {}/keys/{} type=aes256-gcm96`, or check transit_mount and transit_key.",
                self.key, self.address, self.mount, self.mount, self.key
            ),
            CallError::Answered(503, errors) => format!(
                "the key manager at {} is not serving ({errors}): unseal it, or point \
                 transit_address at the active server.",
                self.address
            ),
            CallError::Answered(status, errors) => {
                format!("the key manager answered {status} to {at}: {errors}")
            }
        })
    }
}

/// The JSON of a 200 answer; any other status with the key manager's own error messages.
fn read_answer<T: serde::de::DeserializeOwned>(
    sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<T, CallError> {
    let mut response = sent.map_err(|e| CallError::Unreachable(e.to_string()))?;
    let status = response.status().as_u16();
    let text = Zeroizing::new(
        response
            .body_mut()
            .with_config()
            .limit(1024 * 1024)
            .read_to_string()
            .map_err(|e| CallError::Unreachable(e.to_string()))?,
    );
    if status != 200 {
        let errors = serde_json::from_str::<Errors>(&text)
            .map(|e| e.errors.join("; "))
            .unwrap_or_default();
        return Err(CallError::Answered(status, errors));
    }
    serde_json::from_str(&text)
        .map_err(|e| CallError::Answered(status, format!("an answer medvault cannot read: {e}")))
}
