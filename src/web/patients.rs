//! `/patients`: a doctor's patients (paged, sorted by name or by last change), found by exact
//! national ID through its blind index or by name; `/patients/new` registers a patient with a
//! one-time password shown once.

use crate::web::Template;
use rocket::http::Status;
use rocket::request::FlashMessage;
use rocket::{get, post, routes, Route, State};
use rocket_dyn_templates::context;
use serde::Serialize;

use crate::access::Level;
use crate::app::App;
use crate::audit::{action, Entry, Outcome};
use crate::auth::CsrfForm;
use crate::crypto::{random_id, random_password};
use crate::db::models::records::{CareTeam, PatientRow};
use crate::db::models::{NewUser, User};
use crate::masking::Mode;
use crate::records::profile::ProfileColumn;
use crate::records::{self, validate};
use crate::web::error::{AppError, Rejected};
use crate::web::patient_record::{
    check_profile, national_id_taken, seal_profile, Doctor, ProfileForm,
};
use crate::web::{encode, form_context_of, FormView, Layout, Paging};

pub fn routes() -> Vec<Route> {
    routes![list, new_patient_page, register]
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
            let sealed = app.fields.row("patients", &p.user_id, &p.user_id);
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
                    let sealed = app.fields.row("patients", &row.user_id, &row.user_id);
                    if sealed.open("national_id", &row.national_id).ok().as_deref() != Some(&nid) {
                        continue;
                    }
                    let Some(user) = records::find_patient(&row.user_id, conn)? else {
                        continue;
                    };
                    let in_care = CareTeam::is_assigned(&doctor_id, &user.id, conn)?;
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
    let refill = |view: FormView| {
        (
            Status::UnprocessableEntity,
            new_patient_template(app, &who, view),
        )
    };
    let username = User::normalize_username(
        form.value
            .as_ref()
            .and_then(|f| f.username.as_deref())
            .or(form.context.field_value("username"))
            .unwrap_or_default(),
    );
    let profile = check_profile(&form, app.clock.today(), false);
    let mut view = match &profile {
        Ok(_) => form_context_of(&form.context, &names),
        Err(view) => FormView {
            values: view.values.clone(),
            errors: view.errors.clone(),
        },
    };
    view = view.value("username", &username);
    if let Some(problem) = User::username_problem(&username) {
        view = view.error("username", problem);
    }
    let profile = match profile {
        Ok(p) if !view.has_errors() => p,
        _ => return Err(Rejected::page(refill(view))),
    };
    let one_time = random_password();
    let (actor, doctor_id, name, secret) = (
        who.actor(),
        who.user.id.clone(),
        username.clone(),
        one_time.clone(),
    );
    let nid = profile.values["national_id"].clone();
    let created = app
        .blocking(move |app, conn| {
            let hash = app
                .passwords
                .hash(&secret)
                .map_err(|e| AppError::internal("hash", e))?;
            let id = random_id(app.id_length());
            let row = seal_profile(app, &id, &profile, None, &[])?;
            if national_id_taken(app, &nid, &id, conn)? {
                return Ok(Err((
                    "national_id",
                    "Another patient is registered with this national ID.",
                )));
            }
            let now = app.now();
            conn.immediate_transaction(|conn| {
                if User::find_by_username(&name, conn)?.is_some() {
                    return Ok(Err(("username", "This username is taken.")));
                }
                let full_name = format!(
                    "{} {}",
                    profile.values["first_name"], profile.values["last_name"]
                );
                crate::users::insert_account(
                    app,
                    &NewUser {
                        id: &id,
                        username: &name,
                        level: Level::Patient.as_str(),
                        password_hash: &hash,
                        must_change_password: true,
                        active: true,
                        created_at: now,
                        updated_at: now,
                    },
                    (&full_name, &profile.values["email"]),
                    conn,
                )?;
                PatientRow::save(&row, conn)?;
                CareTeam::assign(&doctor_id, &id, &doctor_id, now, conn)?;
                app.audit.append(
                    conn,
                    now,
                    &Entry::new(&actor, action::USER_CREATED, Outcome::Success)
                        .target(format!("user {name}"))
                        .detail("level patient, registered by a doctor"),
                )?;
                records::audit(
                    app,
                    conn,
                    &actor,
                    action::PATIENT_REGISTERED,
                    &id,
                    "profile created",
                )?;
                Ok::<_, AppError>(Ok(id))
            })
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
        Err((field, problem)) => Err(Rejected::page(refill(view.error(field, problem)))),
    }
}
