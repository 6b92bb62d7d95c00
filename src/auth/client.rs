//! The client's address and browser. The address is the socket peer; a forwarding header is
//! believed only from a configured trusted proxy (Rocket's trust in `X-Real-IP` is switched off).

use std::convert::Infallible;
use std::net::IpAddr;

use rocket::request::{FromRequest, Outcome, Request};
use rocket::State;

use crate::app::App;

#[derive(Clone, Debug)]
pub struct ClientInfo {
    pub ip: String,
    pub user_agent: String,
}

impl ClientInfo {
    fn resolve(req: &Request<'_>, trusted_proxies: &[IpAddr]) -> ClientInfo {
        let peer = req.remote().map(|a| a.ip());
        let ip = match peer {
            Some(peer) if trusted_proxies.contains(&peer) => {
                forwarded_client(req, trusted_proxies).unwrap_or(peer)
            }
            Some(peer) => peer,
            None => return ClientInfo::with_ip(req, "unknown".into()),
        };
        ClientInfo::with_ip(req, ip.to_string())
    }

    fn with_ip(req: &Request<'_>, ip: String) -> ClientInfo {
        let user_agent = req
            .headers()
            .get_one("User-Agent")
            .unwrap_or("")
            .chars()
            .take(512)
            .collect();
        ClientInfo { ip, user_agent }
    }
}

/// The rightmost address in `X-Forwarded-For` that is not itself a trusted proxy: entries to its
/// left were written by the client and prove nothing.
fn forwarded_client(req: &Request<'_>, trusted_proxies: &[IpAddr]) -> Option<IpAddr> {
    let chain: Vec<IpAddr> = req
        .headers()
        .get("X-Forwarded-For")
        .flat_map(|h| h.split(','))
        .map(|s| s.trim().parse::<IpAddr>().ok())
        .collect::<Option<Vec<_>>>()?;
    chain
        .into_iter()
        .rev()
        .find(|ip| !trusted_proxies.contains(ip))
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for &'r ClientInfo {
    type Error = Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Infallible> {
        let proxies: &[IpAddr] = match req.guard::<&State<App>>().await {
            Outcome::Success(app) => &app.inner().config.trusted_proxies,
            _ => &[],
        };
        Outcome::Success(req.local_cache(|| ClientInfo::resolve(req, proxies)))
    }
}
