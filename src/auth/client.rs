//! The client's address and browser. The address is the socket peer; a forwarding header is
//! believed only from a configured trusted proxy (Rocket's trust in `X-Real-IP` is switched off),
//! and a header that does not name a client address is refused rather than guessed around.

use std::net::IpAddr;

use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::State;

use super::refusal::GuardError;
use crate::app::App;

#[derive(Clone, Debug)]
pub struct ClientInfo {
    pub ip: String,
    pub user_agent: String,
    /// The browser reached medvault over HTTPS: medvault's own TLS, or a trusted proxy that
    /// terminated TLS and says so in `X-Forwarded-Proto`. Cookies are then `Secure` and HSTS is
    /// sent.
    pub https: bool,
}

impl ClientInfo {
    fn resolve(
        req: &Request<'_>,
        trusted_proxies: &[IpAddr],
    ) -> Result<ClientInfo, MalformedForwarding> {
        let peer = req.remote().map(|a| a.ip());
        let https = request_is_https(req, trusted_proxies);
        let ip = match peer {
            Some(peer) if trusted_proxies.contains(&peer) => {
                let entries: Vec<&str> = req
                    .headers()
                    .get("X-Forwarded-For")
                    .flat_map(|h| h.split(','))
                    .collect();
                forwarded_client(&entries, trusted_proxies)?.unwrap_or(peer)
            }
            Some(peer) => peer,
            None => return Ok(ClientInfo::with_ip(req, "unknown".into(), https)),
        };
        Ok(ClientInfo::with_ip(req, ip.to_string(), https))
    }

    fn with_ip(req: &Request<'_>, ip: String, https: bool) -> ClientInfo {
        let user_agent = req
            .headers()
            .get_one("User-Agent")
            .unwrap_or("")
            .chars()
            .take(512)
            .collect();
        ClientInfo {
            ip,
            user_agent,
            https,
        }
    }
}

/// Whether `req` came over HTTPS: Rocket's own TLS, or a trusted proxy whose
/// `X-Forwarded-Proto` (its last entry, the one the nearest proxy wrote) is `https`. The header
/// from any other peer is anyone's to write and is ignored.
pub fn request_is_https(req: &Request<'_>, trusted_proxies: &[IpAddr]) -> bool {
    if req.rocket().config().tls_enabled() {
        return true;
    }
    let from_proxy = req
        .remote()
        .is_some_and(|peer| trusted_proxies.contains(&peer.ip()));
    from_proxy
        && req
            .headers()
            .get("X-Forwarded-Proto")
            .flat_map(|h| h.split(','))
            .last()
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// A trusted proxy's `X-Forwarded-For` whose client entry is not an address (a port, `unknown`,
/// junk, nothing). Taking the proxy itself as the client instead would hand a remote client the
/// proxy's address: loopback's `/metrics`, its sessions, its throttle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MalformedForwarding;

impl MalformedForwarding {
    pub const MESSAGE: &'static str = "The proxy in front of medvault forwarded this request \
        with an X-Forwarded-For header that does not name a client address, so it was refused.";
}

/// Walks `X-Forwarded-For` from the right past the trusted proxies; the first other entry is the
/// client, and it must be a bare IP address. Entries to its left were written by the client and
/// are never read. `Ok(None)`: no header, or every entry is a trusted proxy (the proxy's own
/// request, a health check say).
fn forwarded_client(
    entries: &[&str],
    trusted_proxies: &[IpAddr],
) -> Result<Option<IpAddr>, MalformedForwarding> {
    for entry in entries.iter().rev() {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) if trusted_proxies.contains(&ip) => continue,
            Ok(ip) => return Ok(Some(ip)),
            Err(_) => return Err(MalformedForwarding),
        }
    }
    Ok(None)
}

impl ClientInfo {
    /// The client as the page guards resolved it for `req`, if they did (a catcher asks).
    pub fn cached<'r>(req: &'r Request<'_>) -> Option<&'r ClientInfo> {
        req.local_cache(|| Err::<ClientInfo, MalformedForwarding>(MalformedForwarding))
            .as_ref()
            .ok()
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for &'r ClientInfo {
    type Error = GuardError;

    /// Fails with 400 when a trusted proxy's header names no client address; every page guard
    /// asks for this first, so such a request reaches no handler.
    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, GuardError> {
        let proxies: &[IpAddr] = match req.guard::<&State<App>>().await {
            Outcome::Success(app) => &app.inner().config.trusted_proxies,
            _ => &[],
        };
        match req.local_cache(|| ClientInfo::resolve(req, proxies)) {
            Ok(client) => Outcome::Success(client),
            Err(MalformedForwarding) => Outcome::Error((
                Status::BadRequest,
                GuardError::Malformed(MalformedForwarding::MESSAGE),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(entries: &[&str]) -> Result<Option<IpAddr>, MalformedForwarding> {
        let proxies: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        forwarded_client(entries, &proxies)
    }

    #[test]
    fn the_first_untrusted_entry_from_the_right_is_the_client() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(client(&["203.0.113.7"]), Ok(ip("203.0.113.7")));
        assert_eq!(
            client(&["192.0.2.1", " 203.0.113.7 "]),
            Ok(ip("203.0.113.7"))
        );
        assert_eq!(client(&["203.0.113.7", "10.0.0.2"]), Ok(ip("203.0.113.7")));
        assert_eq!(client(&["2001:db8::7"]), Ok(ip("2001:db8::7")));
        // Whatever the client wrote to the left of its own address is never read.
        assert_eq!(client(&["junk", "203.0.113.7"]), Ok(ip("203.0.113.7")));
        assert_eq!(client(&[]), Ok(None));
        assert_eq!(client(&["10.0.0.2", "127.0.0.1"]), Ok(None));
    }

    #[test]
    fn an_entry_that_is_not_an_address_is_refused() {
        for bad in [
            &["203.0.113.7:51234"][..],
            &["[2001:db8::7]:443"],
            &["unknown"],
            &["junk"],
            &[""],
            &["203.0.113.7", "unknown"],
            &["203.0.113.7", ""],
            &["203.0.113.7", "junk", "10.0.0.2"],
        ] {
            assert_eq!(client(bad), Err(MalformedForwarding), "{bad:?}");
        }
    }
}
