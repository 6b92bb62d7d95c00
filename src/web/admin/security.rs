//! `/admin/security`: how tightly a session is bound to the browser that opened it, who must
//! use two-factor sign-in, and the anti-brute-force methods with their parameters.

use crate::web::Template;
use rocket::form::FromForm;
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect};
use rocket::uri;
use rocket::{get, post, routes, Route, State};
use rocket_dyn_templates::context;
use std::sync::atomic::Ordering;

use std::collections::HashSet;

use crate::access::{page, Level};
use crate::app::App;
use crate::audit::{action, Entry, Outcome};
use crate::auth::{Allowed, CsrfForm};
use crate::brute_force::BruteForcePolicy;
use crate::db::models::Setting;
use crate::web::error::AppError;
use crate::web::Layout;

pub fn routes() -> Vec<Route> {
    routes![settings_page, save, save_brute_force]
}

type Who = Allowed<page::AdminSecurity>;

#[get("/admin/security")]
pub(crate) fn settings_page(
    who: Who,
    app: &State<App>,
    flash: Option<FlashMessage<'_>>,
) -> Template {
    let layout = Layout::for_user(app, &who, flash);
    let config = &app.config;
    Template::render(
        "admin/security",
        context! {
            layout,
            bind_ip: app.security.bind_ip(),
            bind_user_agent: app.security.bind_user_agent(),
            require_2fa: Level::SIGNED_IN
                .iter()
                .map(|l| context! { level: l.as_str(), title: l.title(), required: app.security.two_factor_required(*l) })
                .collect::<Vec<_>>(),
            idle_minutes: config.session_idle_timeout / 60,
            lifetime_hours: config.session_lifetime as f64 / 3600.0,
            key_interval_hours: config.session_key_interval as f64 / 3600.0,
            trusted_proxies: config.trusted_proxies.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            policy: app.brute_force.policy(),
        },
    )
}

#[derive(FromForm)]
pub struct SecurityForm {
    bind_ip: bool,
    bind_user_agent: bool,
    require_2fa: Vec<String>,
}

#[post("/admin/security", data = "<form>")]
async fn save(
    who: Who,
    app: &State<App>,
    form: CsrfForm<'_, SecurityForm>,
) -> Result<Flash<Redirect>, AppError> {
    let Some(values) = form.value.as_ref() else {
        return Err(AppError::BadRequest(
            "The settings form could not be read.".into(),
        ));
    };
    let (bind_ip, bind_ua) = (values.bind_ip, values.bind_user_agent);
    let Some(required): Option<HashSet<Level>> =
        values.require_2fa.iter().map(|l| Level::parse(l)).collect()
    else {
        return Err(AppError::BadRequest(
            "Two-factor sign-in can be required only of admin, doctor or patient.".into(),
        ));
    };
    let mut required_names: Vec<&str> = required.iter().map(|l| l.as_str()).collect();
    required_names.sort();
    let required_text = required_names.join(",");
    let actor = who.actor();
    app.blocking(move |app, conn| {
        Ok(conn.write_transaction(|conn| {
            Setting::set(Setting::BIND_SESSION_IP, &bind_ip.to_string(), conn)?;
            Setting::set(Setting::BIND_SESSION_USER_AGENT, &bind_ua.to_string(), conn)?;
            Setting::set(Setting::REQUIRE_TWO_FACTOR, &required_text, conn)?;
            app.state_seal.reseal(app.now(), conn)?;
            app.audit.append(
                conn,
                app.now(),
                &Entry::new(&actor, action::SECURITY_SETTINGS_SAVED, Outcome::Success).detail(
                    format!(
                        "bind_ip={bind_ip} bind_user_agent={bind_ua} require_2fa={required_text}"
                    ),
                ),
            )
        })?)
    })
    .await?;
    app.security.bind_ip.store(bind_ip, Ordering::Relaxed);
    app.security
        .bind_user_agent
        .store(bind_ua, Ordering::Relaxed);
    app.security.set_two_factor_required(required);
    Ok(Flash::success(
        Redirect::to(uri!(crate::web::admin::security::settings_page)),
        "Security settings saved.",
    ))
}

/// The anti-brute-force methods; a box left unticked switches its method off.
#[derive(FromForm)]
pub struct BruteForceForm {
    lockout_enabled: bool,
    #[field(validate = range(1..=100))]
    lockout_failures: u32,
    #[field(validate = range(1..=1440))]
    lockout_window_minutes: i64,
    #[field(validate = range(1..=1440))]
    lockout_minutes: i64,
    /// Absent from an older form: the default cap. 1 to 1440, like the first lock.
    lockout_max_minutes: Option<i64>,
    throttle_enabled: bool,
    #[field(validate = range(1..=1000))]
    throttle_burst: u32,
    #[field(validate = range(1..=1000))]
    throttle_per_minute: u32,
    delay_enabled: bool,
    #[field(validate = range(1..=10_000))]
    delay_base_ms: u64,
    #[field(validate = range(1..=30_000))]
    delay_max_ms: u64,
    rate_limit_enabled: bool,
    #[field(validate = range(1..=100_000))]
    rate_limit_burst: u32,
    #[field(validate = range(1..=100_000))]
    rate_limit_per_minute: u32,
}

#[post("/admin/security/brute-force", data = "<form>")]
async fn save_brute_force(
    who: Who,
    app: &State<App>,
    form: CsrfForm<'_, BruteForceForm>,
) -> Result<Flash<Redirect>, AppError> {
    let Some(f) = form.value.as_ref() else {
        let problems: Vec<String> = form
            .context
            .errors()
            .map(|e| {
                let name = e.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
                format!("{name}: {e}")
            })
            .collect();
        return Ok(Flash::error(
            Redirect::to(uri!(crate::web::admin::security::settings_page)),
            format!("Nothing was saved. {}", problems.join("; ")),
        ));
    };
    let policy = BruteForcePolicy {
        lockout_enabled: f.lockout_enabled,
        lockout_failures: f.lockout_failures,
        lockout_window_seconds: f.lockout_window_minutes * 60,
        lockout_seconds: f.lockout_minutes * 60,
        lockout_max_seconds: f
            .lockout_max_minutes
            .map(|m| m.clamp(1, 1440).max(f.lockout_minutes) * 60)
            .unwrap_or(
                BruteForcePolicy::default()
                    .lockout_max_seconds
                    .max(f.lockout_minutes * 60),
            ),
        throttle_enabled: f.throttle_enabled,
        throttle_burst: f.throttle_burst,
        throttle_per_minute: f.throttle_per_minute,
        delay_enabled: f.delay_enabled,
        delay_base_ms: f.delay_base_ms,
        delay_max_ms: f.delay_max_ms.max(f.delay_base_ms),
        rate_limit_enabled: f.rate_limit_enabled,
        rate_limit_burst: f.rate_limit_burst,
        rate_limit_per_minute: f.rate_limit_per_minute,
    };
    let json =
        serde_json::to_string(&policy).map_err(|e| AppError::internal("brute-force policy", e))?;
    let actor = who.actor();
    let detail = json.clone();
    app.blocking(move |app, conn| {
        Ok(conn.write_transaction(|conn| {
            Setting::set(Setting::BRUTE_FORCE_POLICY, &json, conn)?;
            app.state_seal.reseal(app.now(), conn)?;
            app.audit.append(
                conn,
                app.now(),
                &Entry::new(&actor, action::SECURITY_SETTINGS_SAVED, Outcome::Success)
                    .detail(detail),
            )
        })?)
    })
    .await?;
    app.brute_force.set_policy(policy);
    Ok(Flash::success(
        Redirect::to(uri!(crate::web::admin::security::settings_page)),
        "Anti-brute-force settings saved.",
    ))
}
