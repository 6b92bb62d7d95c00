//! `/admin/security`: how tightly a session is bound to the browser that opened it.

use rocket::form::FromForm;
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect};
use rocket::{get, post, routes, Route, State};
use rocket_dyn_templates::{context, Template};
use std::sync::atomic::Ordering;

use std::collections::HashSet;

use crate::access::{page, Level};
use crate::app::App;
use crate::audit::{action, Entry, Outcome};
use crate::auth::{Allowed, CsrfForm};
use crate::db::models::Setting;
use crate::error::AppError;
use crate::web::Layout;

pub fn routes() -> Vec<Route> {
    routes![settings_page, save]
}

type Who = Allowed<page::AdminSecurity>;

#[get("/admin/security")]
fn settings_page(who: Who, app: &State<App>, flash: Option<FlashMessage<'_>>) -> Template {
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
    let (app2, actor) = (app.inner().clone(), who.actor());
    app.db
        .run(move |conn| {
            Ok(conn.immediate_transaction(|conn| {
                Setting::set(Setting::BIND_SESSION_IP, &bind_ip.to_string(), conn)?;
                Setting::set(Setting::BIND_SESSION_USER_AGENT, &bind_ua.to_string(), conn)?;
                Setting::set(Setting::REQUIRE_TWO_FACTOR, &required_text, conn)?;
                app2.audit.append(
                    conn,
                    app2.now(),
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
        Redirect::to("/admin/security"),
        "Security settings saved.",
    ))
}
