//! HTTPS served by medvault itself (Rocket's `tls` feature). The certificate chain and key that
//! `ROCKET_TLS` or `[default.tls]` name are read and parsed before anything else starts: a path
//! that is wrong, a file that cannot be read or one that holds no PEM certificate or key stops
//! the start with a message naming it, before the database is opened, rather than Rocket's
//! error at launch (or, as before the feature was compiled in, plain HTTP without a word).

use rocket::config::TlsConfig;
use rocket::figment::Figment;

/// Whether `figment` asks for TLS; an error names the file or setting to fix.
pub fn check(figment: &Figment) -> Result<bool, String> {
    // Rocket's defaults carry `tls` as an empty option: only a value set by the operator counts.
    let tls: Option<TlsConfig> = match figment.find_value("tls") {
        Err(_) => None,
        Ok(_) => figment.extract_inner("tls").map_err(|e| {
            format!("the TLS settings (ROCKET_TLS or [default.tls]) are not valid: {e}")
        })?,
    };
    let Some(tls) = tls else {
        return Ok(false);
    };
    // Parsed as Rocket will parse them at launch, with its own functions.
    use rocket::http::tls::util::{load_certs, load_private_key};
    // `either` is Rocket's own dependency; its inherent `either` needs no import of the type.
    let certs = tls.certs().either(
        |path| read_file("certificate chain (tls.certs)", path),
        |bytes| Ok(inline("certificate chain (tls.certs)", bytes)),
    )?;
    let found = load_certs(&mut &certs.bytes[..])
        .map_err(|e| format!("cannot parse the TLS {}: {e}", certs.named))?;
    if found.is_empty() {
        return Err(format!(
            "the TLS {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            certs.named
        ));
    }
    let key = tls.key().either(
        |path| read_file("private key (tls.key)", path),
        |bytes| Ok(inline("private key (tls.key)", bytes)),
    )?;
    load_private_key(&mut &key.bytes[..]).map_err(|e| {
        format!(
            "the TLS {} holds no PEM private key that can be used (PKCS#8, RSA or EC): {e}",
            key.named
        )
    })?;
    Ok(true)
}

/// A file's contents, with how a message names it.
struct Read {
    named: String,
    bytes: Vec<u8>,
}

fn read_file(what: &str, path: std::path::PathBuf) -> Result<Read, String> {
    let named = format!("{what} {}", path.display());
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read the TLS {named}: {e}"))?;
    Ok(Read { named, bytes })
}

fn inline(what: &str, bytes: &[u8]) -> Read {
    Read {
        named: format!("{what} given inline"),
        bytes: bytes.to_vec(),
    }
}
