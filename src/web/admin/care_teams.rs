//! `/admin/care-teams`: which doctor treats which patient. An admin assigns and unassigns; a
//! doctor opens only the records of their patients (or under emergency access).

use std::collections::HashMap;

use crate::web::Template;
use rocket::form::FromForm;
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect};
use rocket::uri;
use rocket::{get, post, routes, Route, State};
use rocket_dyn_templates::context;
use serde::Serialize;

use crate::access::{page, Level};
use crate::app::App;
use crate::audit::{action, Entry, Outcome};
use crate::auth::{Allowed, CsrfForm};
use crate::db::models::records::CareTeam;
use crate::db::models::{User, UserFilter};
use crate::ids::{DoctorId, PatientId, UserId};
use crate::records::{self};
use crate::web::error::AppError;
use crate::web::Layout;

pub fn routes() -> Vec<Route> {
    routes![care_teams, change_care_team]
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
pub(crate) async fn care_teams(
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
    let back = Redirect::to(uri!(crate::web::admin::care_teams::care_teams));
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
            conn.write_transaction(|conn| {
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
