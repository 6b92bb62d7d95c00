//! `/account/2fa`: turning two-factor sign-in on (a server-held secret shown once as a QR
//! code, confirmed by a code, with ten recovery codes shown once) and off.

use crate::web::Template;
use rocket::form::FromForm;
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect};
use rocket::uri;
use rocket::{get, post, routes, Route, State};
use rocket_dyn_templates::context;

use crate::access::page;
use crate::app::App;
use crate::audit::{action, Entry, Outcome};
use crate::auth::{Allowed, CsrfForm};
use crate::crypto::{
    new_totp_secret, random_id, recovery_code_digest, totp_enrolment, totp_secret_text,
    verify_totp, Purpose,
};
use crate::db::models::two_factor::{RecoveryCode, TwoFactor};
use crate::db::models::SessionRow;
use crate::web::error::{AppError, Rejected};
use crate::web::layout::FormView;
use crate::web::login::second_factor::{
    check_second_factor, open_secret, secret_field, CodeForm, RECOVERY_CODES,
};
use crate::web::{ButtonForm, Layout};

pub fn routes() -> Vec<Route> {
    routes![overview, start, confirm, disable]
}

type Who = Allowed<page::AccountTwoFactor>;

#[get("/account/2fa")]
pub(crate) async fn overview(
    who: Who,
    app: &State<App>,
    flash: Option<FlashMessage<'_>>,
) -> Result<Template, AppError> {
    let user_id = who.user.id.clone();
    let unused = app
        .blocking(move |_, conn| Ok(RecoveryCode::count_unused(&user_id, conn)?))
        .await?;
    let required = app.security.two_factor_required(who.user.level());
    let layout = Layout::for_user(app, &who, flash);
    Ok(Template::render(
        "account/two_factor",
        context! { layout, enabled: who.user.two_factor_enabled, unused, required, form: FormView::default() },
    ))
}

/// Makes a new secret, held (sealed) on the server, and shows it to be scanned.
#[post("/account/2fa/start", data = "<_form>")]
async fn start(
    who: Who,
    app: &State<App>,
    _form: CsrfForm<'_, ButtonForm>,
) -> Result<Template, AppError> {
    if who.user.two_factor_enabled {
        return Err(AppError::Conflict(
            "Two-factor sign-in is already on. Turn it off first to enrol another authenticator."
                .into(),
        ));
    }
    let secret = new_totp_secret();
    let user_id = who.user.id.clone();
    let secret_hex = hex::encode(&secret);
    app.blocking(move |app, conn| {
        conn.write_transaction(|conn| {
            // Sealed under the lock, after catching up: the policy is the database's.
            app.catch_up(conn)?;
            let sealed = app.fields.seal(&secret_field(&user_id), &secret_hex)?;
            Ok(TwoFactor::begin_enrolment(
                &user_id,
                &sealed,
                app.now(),
                conn,
            )?)
        })
    })
    .await?;
    Ok(enrol_template(app, &who, &secret, FormView::default()))
}

fn enrol_template(app: &App, who: &Who, secret: &[u8], form: FormView) -> Template {
    let (url, qr) = totp_enrolment(secret, "medvault", &who.user.username);
    let layout = Layout::for_user(app, who, None);
    Template::render(
        "account/two_factor_enrol",
        context! { layout, url, qr, secret_text: totp_secret_text(secret), form },
    )
}

#[post("/account/2fa/confirm", data = "<form>")]
async fn confirm(
    who: Who,
    app: &State<App>,
    form: CsrfForm<'_, CodeForm>,
) -> Result<Template, Rejected> {
    let code = form
        .value
        .as_ref()
        .map(|f| f.code.clone())
        .unwrap_or_default();
    let (user_id, actor) = (who.user.id.clone(), who.actor());
    let this_session = who.session.id.clone();
    let outcome = app
        .blocking(move |app, conn| {
            let Some(enrolment) = TwoFactor::find(&user_id, conn)?.filter(|t| !t.enabled) else {
                return Ok(Err(None));
            };
            let secret = open_secret(app, &enrolment)?;
            let Some(step) = verify_totp(&secret, &code, app.now(), 0) else {
                return Ok(Err(Some(secret)));
            };
            let codes: Vec<String> = (0..RECOVERY_CODES)
                .map(|_| crate::crypto::random_password()[..14].to_string())
                .collect();
            let key = app.keys().purpose_key(Purpose::RecoveryCodes);
            let digests: Vec<(String, String)> = codes
                .iter()
                .map(|c| (random_id(16), recovery_code_digest(&key, &user_id, c)))
                .collect();
            conn.write_transaction(|conn| {
                TwoFactor::enable(&user_id, conn)?;
                TwoFactor::use_step(&user_id, step, conn)?;
                RecoveryCode::replace_all(&user_id, &digests, conn)?;
                // Sessions opened with the password alone end: from now on it takes both.
                let ended = SessionRow::delete_others_of_user(&user_id, &this_session, conn)?;
                app.audit.append(
                    conn,
                    app.now(),
                    &Entry::new(&actor, action::TWO_FACTOR_ENROLLED, Outcome::Success)
                        .detail(format!("{ended} other session(s) ended")),
                )
            })?;
            Ok(Ok(codes))
        })
        .await?;
    match outcome {
        Ok(codes) => {
            let layout = Layout::for_user(app, &who, None);
            Ok(Template::render(
                "account/two_factor_codes",
                context! { layout, codes },
            ))
        }
        Err(Some(secret)) => {
            let view = FormView::default().error(
                "code",
                "That code does not match. Check the authenticator's clock and enter the current code.",
            );
            Err(Rejected::form(enrol_template(app, &who, &secret, view)))
        }
        Err(None) => Err(AppError::Conflict(
            "There is no enrolment in progress. Start again from the two-factor page.".into(),
        )
        .into()),
    }
}

#[derive(FromForm)]
pub struct DisableForm {
    password: String,
    code: String,
}

/// Turning two-factor sign-in off needs the password and a current code.
#[post("/account/2fa/disable", data = "<form>")]
async fn disable(
    who: Who,
    app: &State<App>,
    form: CsrfForm<'_, DisableForm>,
) -> Result<Flash<Redirect>, AppError> {
    let (password, code) = form
        .value
        .as_ref()
        .map(|f| (f.password.clone(), f.code.clone()))
        .unwrap_or_default();
    if app.security.two_factor_required(who.user.level()) {
        return Ok(Flash::error(
            Redirect::to(uri!(crate::web::account::two_factor::overview)),
            "Two-factor sign-in is required for your level; it cannot be turned off.",
        ));
    }
    // The password and code are checked like a sign-in: throttled per address, refused while
    // the account is locked, each attempt held until a wrong one is counted. Otherwise a stolen
    // session could guess the password here without limit, even during a lock.
    let back = || Redirect::to(uri!(crate::web::account::two_factor::overview));
    let now = app.now();
    if let Err(wait) = app.brute_force.take_auth_attempt(&who.client.ip, now) {
        return Ok(Flash::error(
            back(),
            format!("Too many attempts from your address. Wait {wait} seconds and try again."),
        ));
    }
    let (user, actor) = (who.user.clone(), who.actor());
    let this_session = who.session.id.clone();
    let done = app
        .blocking(move |app, conn| {
            if let Some(until) = crate::auth::lockout::locked_until(app, &user.username, now, conn)?
            {
                return Ok(Err(format!(
                    "Too many wrong attempts. Try again in {} minute(s); two-factor sign-in stays on.",
                    ((until - now) + 59) / 60
                )));
            }
            let attempt = crate::auth::lockout::begin_attempt(app, &user.username, now, conn)?;
            if attempt.is_refused() {
                return Ok(Err(
                    "Too many attempts at once. Wait a moment and try again.".to_string()
                ));
            }
            let password_ok = app.passwords.verify(&password, &user.password_hash);
            let code_ok = check_second_factor(app, &user.id, &code, conn)?.is_some();
            if !(password_ok && code_ok) {
                crate::auth::count_failure(app, conn, &actor, &user.username, app.now())?;
                app.audit.append(
                    conn,
                    app.now(),
                    &Entry::new(&actor, action::TWO_FACTOR_FAILURE, Outcome::Failure)
                        .detail("turning two-factor off refused"),
                )?;
                return Ok(Err(
                    "The password or the code is wrong; two-factor sign-in stays on.".to_string(),
                ));
            }
            drop(attempt);
            crate::auth::lockout::forget(app, &user.username, now, conn)?;
            conn.write_transaction(|conn| {
                TwoFactor::remove(&user.id, conn)?;
                // Whoever turned it off may not be the owner: the owner's other browsers end.
                let ended = SessionRow::delete_others_of_user(&user.id, &this_session, conn)?;
                app.audit.append(
                    conn,
                    app.now(),
                    &Entry::new(&actor, action::TWO_FACTOR_DISABLED, Outcome::Success)
                        .detail(format!("{ended} other session(s) ended")),
                )
            })?;
            Ok(Ok(()))
        })
        .await?;
    Ok(match done {
        Ok(()) => Flash::success(back(), "Two-factor sign-in is off."),
        Err(message) => Flash::error(back(), message),
    })
}
