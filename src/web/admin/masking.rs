//! `/admin/masking`: per profile field and level, whether a value is shown in full, masked or
//! hidden.

use std::collections::HashMap;

use crate::web::Template;
use rocket::form::FromForm;
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect};
use rocket::uri;
use rocket::{get, post, routes, Route, State};
use rocket_dyn_templates::context;
use serde::Serialize;

use crate::access::page;
use crate::app::App;
use crate::audit::{action, Entry, Outcome};
use crate::auth::{Allowed, CsrfForm};
use crate::db::models::records::FieldVisibilityRows;
use crate::masking::{Mode, LEVELS, PROFILE_FIELDS};
use crate::web::error::AppError;
use crate::web::Layout;

pub fn routes() -> Vec<Route> {
    routes![masking, save_masking]
}

#[derive(Serialize)]
struct MaskingRow {
    column: &'static str,
    title: &'static str,
    /// One per level of [`LEVELS`]: (form key `field-level`, current mode).
    cells: Vec<(String, &'static str)>,
}

#[get("/admin/masking")]
pub(crate) async fn masking(
    who: Allowed<page::AdminMasking>,
    app: &State<App>,
    flash: Option<FlashMessage<'_>>,
) -> Result<Template, AppError> {
    let visibility = app.masking();
    let rows: Vec<MaskingRow> = PROFILE_FIELDS
        .iter()
        .map(|f| MaskingRow {
            column: f.column,
            title: f.title,
            cells: LEVELS
                .iter()
                .map(|l| {
                    (
                        format!("{}-{}", f.column, l.as_str()),
                        visibility.mode(f.column, *l).as_str(),
                    )
                })
                .collect(),
        })
        .collect();
    let levels: Vec<&str> = LEVELS.iter().map(|l| l.title()).collect();
    let modes: Vec<&str> = Mode::ALL.iter().map(|m| m.as_str()).collect();
    let layout = Layout::for_user(app, &who, flash);
    Ok(Template::render(
        "admin/masking",
        context! { layout, rows, levels, modes },
    ))
}

#[derive(FromForm)]
pub struct MaskingForm {
    /// `field-level` to mode (Rocket reads a `:` in a map key as a separator).
    mode: HashMap<String, String>,
}

#[post("/admin/masking", data = "<form>")]
async fn save_masking(
    who: Allowed<page::AdminMasking>,
    app: &State<App>,
    form: CsrfForm<'_, MaskingForm>,
) -> Result<Flash<Redirect>, AppError> {
    let Some(f) = form.value.as_ref() else {
        return Err(AppError::BadRequest("The form could not be read.".into()));
    };
    let mut rows = Vec::new();
    for field in PROFILE_FIELDS {
        for level in LEVELS {
            let key = format!("{}-{}", field.column, level.as_str());
            let mode = f
                .mode
                .get(&key)
                .and_then(|m| Mode::parse(m))
                .ok_or_else(|| {
                    AppError::BadRequest(format!(
                        "Choose full, masked or hidden for {} ({}).",
                        field.title,
                        level.title()
                    ))
                })?;
            rows.push((
                field.column.to_string(),
                level.as_str().to_string(),
                mode.as_str().to_string(),
            ));
        }
    }
    let actor = who.actor();
    app.blocking(move |app, conn| {
        conn.write_transaction(|conn| {
            let summary: Vec<String> = rows
                .iter()
                .filter(|(_, _, m)| m != "full")
                .map(|(f, l, m)| format!("{f}:{l}={m}"))
                .collect();
            FieldVisibilityRows::replace_all(&rows, conn)?;
            app.state_seal.reseal(app.now(), conn)?;
            app.audit.append(
                conn,
                app.now(),
                &Entry::new(&actor, action::MASKING_SAVED, Outcome::Success)
                    .target("profile fields")
                    .detail(summary.join(", ")),
            )?;
            Ok::<_, AppError>(crate::masking::Visibility::load(conn)?)
        })
    })
    .await
    .map(|saved| app.set_masking(saved))?;
    Ok(Flash::success(
        Redirect::to(uri!(crate::web::admin::masking::masking)),
        "Saved.",
    ))
}
