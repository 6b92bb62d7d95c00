//! Headers on every response, and the backstop of deny-by-default: a response from a route that
//! passed through no page guard is replaced by a refusal.

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::{ContentType, Header, Status};
use rocket::{Request, Response};

use crate::access::Page;
use crate::auth::page_of;

pub struct SecurityHeaders;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
                   base-uri 'none'";

#[rocket::async_trait]
impl Fairing for SecurityHeaders {
    fn info(&self) -> Info {
        Info {
            name: "Security headers and page-guard backstop",
            kind: Kind::Response,
        }
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        let page = page_of(req);
        if req.route().is_some() && page.is_none() {
            tracing::error!(route = %crate::auth::refusal::route_of(req), "a route without a page guard answered; refused");
            let body = "<!doctype html><title>Forbidden</title><p>You do not have access to this page.</p>";
            res.set_status(Status::Forbidden);
            res.set_header(ContentType::HTML);
            res.set_sized_body(body.len(), std::io::Cursor::new(body));
        }
        res.set_header(Header::new("Content-Security-Policy", CSP));
        res.set_header(Header::new("X-Content-Type-Options", "nosniff"));
        res.set_header(Header::new("X-Frame-Options", "DENY"));
        // same-origin, not no-referrer: browsers send `Origin: null` under no-referrer, which
        // would defeat the Origin check on our own forms.
        res.set_header(Header::new("Referrer-Policy", "same-origin"));
        res.set_header(Header::new("Cross-Origin-Opener-Policy", "same-origin"));
        res.set_header(Header::new(
            "Permissions-Policy",
            "camera=(), microphone=(), geolocation=(), interest-cohort=()",
        ));
        if page != Some(Page::Static) {
            res.set_header(Header::new("Cache-Control", "no-store"));
        }
        let proxies: &[std::net::IpAddr] = req
            .rocket()
            .state::<crate::app::App>()
            .map(|app| app.config.trusted_proxies.as_slice())
            .unwrap_or(&[]);
        if crate::auth::client::request_is_https(req, proxies) {
            res.set_header(Header::new(
                "Strict-Transport-Security",
                "max-age=31536000; includeSubDomains",
            ));
        }
        res.remove_header("Server");
    }
}
