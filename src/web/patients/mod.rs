//! `/patients`: a doctor's patients (paged, sorted by name or by last change), found by exact
//! national ID through its blind index or by name; `/patients/new` registers a patient with a
//! one-time password shown once.

pub(crate) mod entries;
pub(crate) mod files;
pub(crate) mod record;

use crate::web::Template;
use rocket::request::FlashMessage;
use rocket::{get, post, routes, Route, State};
use rocket_dyn_templates::context;
use serde::Serialize;

use crate::access::Level;
use crate::app::App;
use crate::auth::CsrfForm;
use crate::crypto::random_password;
use crate::db::models::records::{CareTeam, PatientRow};
use crate::db::models::User;
use crate::ids::{DoctorId, PatientId, RowId};
use crate::masking::Mode;
use crate::records::profile::{self, ProfileColumn, Registration};
use crate::records::{self, validate};
use crate::web::error::{AppError, Rejected};
use crate::web::{encode, form_context_of, FormView, Layout, Paging};
use record::{profile_of, Doctor, ProfileForm};

pub fn routes() -> Vec<Route> {
    [
        routes![list, new_patient_page, register],
        record::routes(),
        entries::routes(),
        files::routes(),
    ]
    .concat()
}

const PER_PAGE: usize = 25;

#[derive(Serialize)]
struct PatientLine {
    id: String,
    username: String,
    name: String,
    date_of_birth: String,
    national_id: String,
    national_id_mode: Mode,
    in_care: bool,
    updated_at: i64,
}

fn line(
    app: &App,
    user: &User,
    profile: Option<&PatientRow>,
    mode: Mode,
    in_care: bool,
) -> PatientLine {
    let (dob, nid) = profile
        .map(|p| {
            let sealed = app
                .fields
                .row("patients", RowId(&p.user_id), PatientId(&p.user_id));
            (
                sealed.show("date_of_birth", &p.date_of_birth).text,
                sealed.show("national_id", &p.national_id).text,
            )
        })
        .unwrap_or_default();
    // The list shows no more than the record would: each value as the masking policy says.
    let date_of_birth = match app.masking().mode("date_of_birth", Level::Doctor) {
        Mode::Full => dob,
        Mode::Masked if !dob.is_empty() => crate::masking::mask(&dob),
        Mode::Masked | Mode::Hidden => String::new(),
    };
    PatientLine {
        id: user.id.clone(),
        username: user.username.clone(),
        name: records::patient_name(app, user, profile, Level::Doctor),
        date_of_birth,
        national_id: if mode == Mode::Hidden {
            String::new()
        } else {
            nid
        },
        national_id_mode: mode,
        in_care,
        updated_at: profile.map(|p| p.updated_at).unwrap_or(user.updated_at),
    }
}

#[get("/patients?<q>&<sort>&<page>")]
async fn list(
    who: Doctor,
    app: &State<App>,
    flash: Option<FlashMessage<'_>>,
    q: Option<String>,
    sort: Option<String>,
    page: Option<i64>,
) -> Result<Template, AppError> {
    let query = q.clone().unwrap_or_default().trim().to_string();
    let sort = match sort.as_deref() {
        Some("recent") => "recent",
        _ => "name",
    };
    let (doctor_id, actor) = (who.user.id.clone(), who.actor());
    let national_id = validate::national_id(&query).ok();
    let mut lines = app
        .blocking(move |app, conn| {
            let mode = app.masking().mode("national_id", Level::Doctor);
            if let Some(nid) = national_id {
                // Exact national ID: any patient, through the blind index; those outside the
                // doctor's care are listed as such (opening them needs emergency access).
                let indexes = app
                    .fields
                    .blind_index_candidates("patients", "national_id", &nid)?;
                let mut found = Vec::new();
                for row in PatientRow::find_by_national_id_index(&indexes, conn)? {
                    let sealed =
                        app.fields
                            .row("patients", RowId(&row.user_id), PatientId(&row.user_id));
                    if sealed.open("national_id", &row.national_id).ok().as_deref() != Some(&nid) {
                        continue;
                    }
                    let Some(user) = records::find_patient(&row.user_id, conn)? else {
                        continue;
                    };
                    let in_care =
                        CareTeam::is_assigned(DoctorId(&doctor_id), PatientId(&user.id), conn)?;
                    if !in_care {
                        records::audit_lookup(app, conn, &actor, &user.id)?;
                    }
                    found.push(line(app, &user, Some(&row), mode, in_care));
                }
                return Ok(found);
            }
            Ok(CareTeam::patients_of(&doctor_id, conn)?
                .iter()
                .map(|(user, profile)| line(app, user, profile.as_ref(), mode, true))
                .collect::<Vec<_>>())
        })
        .await?;
    if !query.is_empty() && validate::national_id(&query).is_err() {
        let needle = query.to_lowercase();
        lines.retain(|l| l.name.to_lowercase().contains(&needle) || l.username.contains(&needle));
    }
    match sort {
        "recent" => lines.sort_by_key(|l| std::cmp::Reverse(l.updated_at)),
        _ => lines.sort_by_key(|l| l.name.to_lowercase()),
    }
    let paging = Paging::new(page.unwrap_or(1), PER_PAGE as i64, lines.len() as i64);
    let start = paging.offset(PER_PAGE as i64) as usize;
    let patients: Vec<PatientLine> = lines.into_iter().skip(start).take(PER_PAGE).collect();
    let layout = Layout::for_user(app, &who, flash);
    let pager_base = format!("/patients?q={}&sort={sort}&", encode(&query));
    Ok(Template::render(
        "records/patients",
        context! { layout, patients, paging, q: query, sort, pager_base },
    ))
}

fn new_patient_template(app: &App, who: &Doctor, form: FormView) -> Template {
    let layout = Layout::for_user(app, who, None);
    Template::render(
        "records/patient_new",
        context! { layout, form, blood_types: validate::BLOOD_TYPES, genders: validate::GENDERS,
        today: validate::date_text(app.clock.today()) },
    )
}

#[get("/patients/new")]
fn new_patient_page(who: Doctor, app: &State<App>) -> Template {
    new_patient_template(app, &who, FormView::default())
}

/// Registers a patient: the account (one-time password, forced change), the profile and the
/// doctor's care of them, in one transaction.
#[post("/patients/new", data = "<form>")]
async fn register(
    who: Doctor,
    app: &State<App>,
    form: CsrfForm<'_, ProfileForm>,
) -> Result<Template, Rejected> {
    let mut names = ProfileColumn::NAMES.to_vec();
    names.push("username");
    let refill = |view: FormView| Rejected::form(new_patient_template(app, &who, view));
    let username = User::normalize_username(
        form.value
            .as_ref()
            .and_then(|f| f.username.as_deref())
            .or(form.context.field_value("username"))
            .unwrap_or_default(),
    );
    let view = form_context_of(&form.context, &names).value("username", &username);
    let profile = profile_of(&form, app.clock.today(), &[], view.clone());
    let username_problem = User::username_problem(&username);
    let profile = match (profile, username_problem) {
        (Ok(profile), None) => profile,
        (Ok(_), Some(problem)) => return Err(refill(view.error("username", problem))),
        (Err(refused), problem) => {
            let refused = match problem {
                Some(problem) => refused.error("username", problem),
                None => refused,
            };
            return Err(refill(refused));
        }
    };
    let one_time = random_password();
    let (actor, doctor_id, name, secret) = (
        who.actor(),
        who.user.id.clone(),
        username.clone(),
        one_time.clone(),
    );
    let created = app
        .blocking(move |app, conn| {
            // Hashed before the transaction: it is slow on purpose, and needs no lock.
            let hash = app
                .passwords
                .hash(&secret)
                .map_err(|e| AppError::internal("hash", e))?;
            let new = Registration {
                username: &name,
                password_hash: &hash,
                profile: &profile,
            };
            Ok::<_, AppError>(profile::register(app, conn, &actor, &doctor_id, &new)?)
        })
        .await?;
    match created {
        Ok(id) => {
            let layout = Layout::for_user(app, &who, None);
            Ok(Template::render(
                "records/patient_created",
                context! { layout, id, username, one_time },
            ))
        }
        Err((field, problem)) => Err(refill(view.error(field, problem))),
    }
}
