//! `GET /metrics`: Prometheus text for operators. A response fairing counts requests by route
//! pattern and status and times them; sign-ins and lockouts come from the audit trail and the
//! backup age from the backup folder. Only loopback, or a request with the configured token,
//! may read it: the figures say how the clinic works.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use diesel::prelude::*;
use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::{ContentType, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::{get, routes, Build, Data, Response, Rocket, Route, State};

use crate::access::page;
use crate::app::App;
use crate::audit::action;
use crate::auth::{ClientInfo, Public};
use crate::crypto::constant_time_eq;
use crate::web::error::AppError;

pub fn routes() -> Vec<Route> {
    routes![metrics]
}

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default, Clone)]
struct Series {
    count: u64,
    sum: f64,
    /// Non-cumulative counts per bucket; the last slot is +Inf.
    buckets: [u64; BUCKETS.len() + 1],
}

/// Request counts and latencies by (method, route pattern, status).
#[derive(Default)]
pub struct RequestStats {
    series: Mutex<BTreeMap<(String, String, u16), Series>>,
}

impl RequestStats {
    fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let s = series
            .entry((method.to_string(), route.to_string(), status))
            .or_default();
        s.count += 1;
        s.sum += seconds;
        let slot = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        s.buckets[slot] += 1;
    }

    fn render(&self, out: &mut String) {
        let series = self
            .series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        out.push_str(
            "# HELP medvault_http_requests_total Requests answered, by route and status.\n",
        );
        out.push_str("# TYPE medvault_http_requests_total counter\n");
        for ((method, route, status), s) in &series {
            let _ = writeln!(
                out,
                "medvault_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {}",
                escape(route),
                s.count
            );
        }
        out.push_str("# HELP medvault_http_request_duration_seconds Time to answer, by route.\n");
        out.push_str("# TYPE medvault_http_request_duration_seconds histogram\n");
        let mut by_route: BTreeMap<(String, String), Series> = BTreeMap::new();
        for ((method, route, _), s) in series {
            let total = by_route.entry((method, route)).or_default();
            total.count += s.count;
            total.sum += s.sum;
            for (t, b) in total.buckets.iter_mut().zip(s.buckets) {
                *t += b;
            }
        }
        for ((method, route), s) in by_route {
            let labels = format!("method=\"{method}\",route=\"{}\"", escape(&route));
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(s.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "medvault_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "medvault_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "medvault_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "medvault_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Counts and times every response. Attached in `build_rocket`; it manages the shared
/// [`RequestStats`] so that the `/metrics` route can read them.
#[derive(Default, Clone)]
pub struct RequestMetrics {
    stats: Arc<RequestStats>,
}

struct Started(Instant);

#[rocket::async_trait]
impl Fairing for RequestMetrics {
    fn info(&self) -> Info {
        Info {
            name: "request metrics",
            kind: Kind::Ignite | Kind::Request | Kind::Response,
        }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> rocket::fairing::Result {
        Ok(rocket.manage(self.stats.clone()))
    }

    async fn on_request(&self, req: &mut Request<'_>, _data: &mut Data<'_>) {
        req.local_cache(|| Started(Instant::now()));
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        let seconds = req
            .local_cache(|| Started(Instant::now()))
            .0
            .elapsed()
            .as_secs_f64();
        // The route's pattern, never the path: ids and names stay out of the labels.
        let route = req
            .route()
            .map(|r| {
                let uri = r.uri.to_string();
                uri.split('?').next().unwrap_or_default().to_string()
            })
            .unwrap_or_else(|| "unmatched".into());
        tracing::info!(
            target: "medvault::access",
            method = req.method().as_str(),
            route = route.as_str(),
            status = res.status().code,
            ms = (seconds * 1e5).round() / 100.0,
        );
        self.stats
            .record(req.method().as_str(), &route, res.status().code, seconds);
    }
}

/// Loopback, or `Authorization: Bearer <metrics_token>` compared in constant time.
pub struct MetricsReader;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for MetricsReader {
    type Error = AppError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, AppError> {
        let token = req
            .rocket()
            .state::<App>()
            .and_then(|app| app.config.metrics_token.clone())
            .filter(|t| !t.is_empty());
        let offered = req
            .headers()
            .get_one("Authorization")
            .and_then(|h| h.strip_prefix("Bearer "));
        if let (Some(token), Some(offered)) = (token, offered) {
            if constant_time_eq(token.as_bytes(), offered.as_bytes()) {
                return Outcome::Success(MetricsReader);
            }
        }
        let loopback = match req.guard::<&ClientInfo>().await {
            Outcome::Success(client) => {
                client.ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
            }
            _ => false,
        };
        if loopback {
            Outcome::Success(MetricsReader)
        } else {
            Outcome::Error((Status::Forbidden, AppError::Forbidden))
        }
    }
}

#[get("/metrics")]
async fn metrics(
    _page: Public<page::Metrics>,
    _reader: MetricsReader,
    app: &State<App>,
    stats: &State<Arc<RequestStats>>,
) -> Result<(ContentType, String), AppError> {
    let mut out = String::new();
    stats.render(&mut out);
    let counts = app
        .blocking(|_, conn| {
            use crate::db::schema::audit_events::dsl as a;
            let rows: Vec<(String, i64)> = a::audit_events
                .filter(a::action.eq_any([
                    action::LOGIN_SUCCESS,
                    action::LOGIN_FAILURE,
                    action::ACCOUNT_LOCKED,
                ]))
                .group_by(a::action)
                .select((a::action, diesel::dsl::count_star()))
                .load(conn)?;
            Ok(rows)
        })
        .await?;
    let count_of = |name: &str| {
        counts
            .iter()
            .find(|(a, _)| a == name)
            .map_or(0, |(_, n)| *n)
    };
    out.push_str(
        "# HELP medvault_field_operations_total Field values sealed, opened, and refused (integrity errors) since the start.\n",
    );
    out.push_str("# TYPE medvault_field_operations_total counter\n");
    let ops = &app.fields.operations;
    for (kind, counter) in [
        ("seal", &ops.sealed),
        ("open", &ops.opened),
        ("refused", &ops.refused),
    ] {
        let _ = writeln!(
            out,
            "medvault_field_operations_total{{operation=\"{kind}\"}} {}",
            counter.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    out.push_str("# HELP medvault_logins_total Sign-ins recorded in the audit trail.\n");
    out.push_str("# TYPE medvault_logins_total counter\n");
    let _ = writeln!(
        out,
        "medvault_logins_total{{outcome=\"success\"}} {}",
        count_of(action::LOGIN_SUCCESS)
    );
    let _ = writeln!(
        out,
        "medvault_logins_total{{outcome=\"failure\"}} {}",
        count_of(action::LOGIN_FAILURE)
    );
    out.push_str("# HELP medvault_lockouts_total Accounts locked, from the audit trail.\n");
    out.push_str("# TYPE medvault_lockouts_total counter\n");
    let _ = writeln!(
        out,
        "medvault_lockouts_total {}",
        count_of(action::ACCOUNT_LOCKED)
    );
    let backups = crate::backup::list(app).unwrap_or_default();
    out.push_str("# HELP medvault_backups Backups in the backup folder.\n");
    out.push_str("# TYPE medvault_backups gauge\n");
    let _ = writeln!(out, "medvault_backups {}", backups.len());
    if let Some(newest) = backups.first() {
        out.push_str("# HELP medvault_backup_age_seconds Age of the newest backup.\n");
        out.push_str("# TYPE medvault_backup_age_seconds gauge\n");
        let _ = writeln!(
            out,
            "medvault_backup_age_seconds {}",
            (app.now() - newest.created_at).max(0)
        );
    }
    Ok((ContentType::Plain, out))
}
