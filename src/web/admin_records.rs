//! The admin's side of the records: `/admin/care-teams` (which doctor treats which patient) and
//! `/admin/masking` (per profile field and level: shown in full, masked or hidden). An admin
//! arranges access to records but opens none.

use std::collections::HashMap;

use crate::web::Template;
use rocket::form::FromForm;
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect};
use rocket::{get, post, routes, Route, State};
use rocket_dyn_templates::context;
use serde::Serialize;

use crate::access::{page, Level};
use crate::app::App;
use crate::audit::{action, Entry, Outcome};
use crate::auth::{Allowed, CsrfForm};
use crate::db::models::records::{CareTeam, FieldVisibilityRows};
use crate::db::models::{User, UserFilter};
use crate::ids::{DoctorId, PatientId, UserId};
use crate::masking::{Mode, LEVELS, PROFILE_FIELDS};
use crate::records::{self};
use crate::web::error::AppError;
use crate::web::Layout;

pub fn routes() -> Vec<Route> {
    routes![care_teams, change_care_team, masking, save_masking]
}

#[derive(Serialize)]
struct Person {
    id: String,
    username: String,
    name: String,
}

#[derive(Serialize)]
struct Assignment {
    doctor: Person,
    patient: Person,
}

fn person(app: &App, user: &User) -> Person {
    Person {
        id: user.id.clone(),
        username: user.username.clone(),
        name: records::display_name(app, user),
    }
}

#[get("/admin/care-teams")]
async fn care_teams(
    who: Allowed<page::AdminCareTeams>,
    app: &State<App>,
    flash: Option<FlashMessage<'_>>,
) -> Result<Template, AppError> {
    let (doctors, patients, assignments) = app
        .blocking(move |app, conn| {
            let of_level = |level, conn: &mut crate::db::Conn| -> Result<Vec<User>, AppError> {
                let filter = UserFilter {
                    search: None,
                    level: Some(level),
                };
                Ok(User::list(&filter, 0, 10_000, conn)?.0)
            };
            let doctors = of_level(Level::Doctor, conn)?;
            let patients = of_level(Level::Patient, conn)?;
            let by_id: HashMap<&str, &User> = doctors
                .iter()
                .chain(patients.iter())
                .map(|u| (u.id.as_str(), u))
                .collect();
            let assignments: Vec<Assignment> = CareTeam::all(conn)?
                .iter()
                .filter_map(|(d, p)| {
                    Some(Assignment {
                        doctor: person(app, by_id.get(d.as_str())?),
                        patient: person(app, by_id.get(p.as_str())?),
                    })
                })
                .collect();
            let doctors: Vec<Person> = doctors.iter().map(|u| person(app, u)).collect();
            let patients: Vec<Person> = patients.iter().map(|u| person(app, u)).collect();
            Ok((doctors, patients, assignments))
        })
        .await?;
    let layout = Layout::for_user(app, &who, flash);
    Ok(Template::render(
        "admin/care_teams",
        context! { layout, doctors, patients, assignments },
    ))
}

#[derive(FromForm)]
pub struct CareForm {
    doctor_id: String,
    patient_id: String,
    /// `assign` or `unassign`.
    change: String,
}

#[post("/admin/care-teams", data = "<form>")]
async fn change_care_team(
    who: Allowed<page::AdminCareTeams>,
    app: &State<App>,
    form: CsrfForm<'_, CareForm>,
) -> Result<Flash<Redirect>, AppError> {
    let back = Redirect::to("/admin/care-teams");
    let Some(f) = form.value.as_ref() else {
        return Ok(Flash::error(back, "Choose a doctor and a patient."));
    };
    let assign = match f.change.as_str() {
        "assign" => true,
        "unassign" => false,
        _ => return Err(AppError::BadRequest("Unknown change.".into())),
    };
    let actor = who.actor();
    let (doctor_id, patient_id) = (f.doctor_id.clone(), f.patient_id.clone());
    let outcome = app
        .blocking(move |app, conn| {
            conn.immediate_transaction(|conn| {
                let doctor = User::find(&doctor_id, conn)?.filter(|u| u.level() == Level::Doctor);
                let patient = records::find_patient(&patient_id, conn)?;
                let (Some(doctor), Some(patient)) = (doctor, patient) else {
                    return Ok(Err("Choose a doctor and a patient from the lists."));
                };
                let changed = if assign {
                    CareTeam::assign(
                        DoctorId(&doctor.id),
                        PatientId(&patient.id),
                        UserId(&actor.id),
                        app.now(),
                        conn,
                    )?
                } else {
                    CareTeam::unassign(DoctorId(&doctor.id), PatientId(&patient.id), conn)?
                };
                if !changed {
                    return Ok(Err(if assign {
                        "This doctor already treats this patient."
                    } else {
                        "This doctor did not treat this patient."
                    }));
                }
                let act = if assign {
                    action::CARE_ASSIGNED
                } else {
                    action::CARE_UNASSIGNED
                };
                app.audit.append(
                    conn,
                    app.now(),
                    &Entry::new(&actor, act, Outcome::Success)
                        .target(records::audit_target(&patient.id))
                        .detail(format!("doctor {}", doctor.username)),
                )?;
                Ok::<_, AppError>(Ok(if assign {
                    format!("{} now treats {}.", doctor.username, patient.username)
                } else {
                    format!("{} no longer treats {}.", doctor.username, patient.username)
                }))
            })
        })
        .await?;
    Ok(match outcome {
        Ok(message) => Flash::success(back, message),
        Err(problem) => Flash::error(back, problem),
    })
}

#[derive(Serialize)]
struct MaskingRow {
    column: &'static str,
    title: &'static str,
    /// One per level of [`LEVELS`]: (form key `field-level`, current mode).
    cells: Vec<(String, &'static str)>,
}

#[get("/admin/masking")]
async fn masking(
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
        conn.immediate_transaction(|conn| {
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
    Ok(Flash::success(Redirect::to("/admin/masking"), "Saved."))
}
