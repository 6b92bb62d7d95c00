//! `/admin/backups`: list, make, download, delete, restore and upload backups, and set their
//! schedule. A backup is named only by the listing; anything else is refused, shown as a 4xx
//! page and audited. Deleting and restoring ask for confirmation first.

use crate::web::Template;
use rocket::form::FromForm;
use rocket::fs::{NamedFile, TempFile};
use rocket::http::{ContentType, Header, Status};
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect, Responder};
use rocket::uri;
use rocket::{get, post, routes, Route, State};
use rocket_dyn_templates::context;

use crate::access::page;
use crate::app::App;
use crate::audit::{action, Actor, Entry, Outcome};
use crate::auth::{Allowed, CsrfForm};
use crate::backup::{self, schedule::Schedule, BackupError, Origin};
use crate::web::error::{error_page, AppError};
use crate::web::{ButtonForm, Layout};

pub fn routes() -> Vec<Route> {
    routes![
        list_page,
        create,
        download,
        confirm_delete,
        delete,
        confirm_restore,
        restore,
        upload,
        save_schedule
    ]
}

type Who = Allowed<page::AdminBackups>;

/// A page, a redirect after a post, or a refusal rendered as a page.
#[derive(Responder)]
pub enum Answer {
    Page(Template),
    Done(Flash<Redirect>),
    File(Download),
    Refused((Status, Template)),
}

#[derive(Responder)]
pub struct Download {
    file: NamedFile,
    kind: ContentType,
    disposition: Header<'static>,
}

async fn audit(app: &App, entry: Entry) {
    if let Err(e) = app
        .blocking(move |app, conn| Ok(app.audit.append(conn, app.now(), &entry)?))
        .await
    {
        tracing::error!(error = %e, "cannot audit a backup action");
    }
}

/// The answer to a failed backup action, audited as a refusal (a name outside the listing, a
/// failed check) or logged as a failure of ours.
async fn refusal(app: &App, actor: &Actor, what: &str, name: &str, err: BackupError) -> Answer {
    let (status, message) = match &err {
        BackupError::UnknownName(_) => (Status::NotFound, err.to_string()),
        BackupError::Refused(m) => (Status::UnprocessableEntity, format!("Refused: {m}.")),
        BackupError::Busy => (Status::Conflict, format!("Not now: {err}.")),
        BackupError::OtherDatabase => (Status::Conflict, format!("Not on this server: {err}.")),
        BackupError::Failed(m) => {
            tracing::error!(action = what, error = %m, "backup action failed");
            (
                Status::InternalServerError,
                format!("The {what} failed: {m}."),
            )
        }
    };
    let outcome = match err {
        BackupError::Failed(_) | BackupError::Busy => Outcome::Failure,
        _ => Outcome::Denied,
    };
    // The name is shown escaped and stored as given, cut short: it may be anything.
    let shown: String = name.chars().filter(|c| !c.is_control()).take(120).collect();
    audit(
        app,
        Entry::new(actor, action::BACKUP_REFUSED, outcome)
            .target(shown)
            .detail(format!("{what}: {message}")),
    )
    .await;
    Answer::Refused(error_page(status, &message))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> Result<T, BackupError> {
    rocket::tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BackupError::failed("blocking task", e))?
}

#[get("/admin/backups")]
pub(crate) async fn list_page(
    who: Who,
    app: &State<App>,
    flash: Option<FlashMessage<'_>>,
) -> Result<Template, AppError> {
    let layout = Layout::for_user(app, &who, flash);
    let list_app = app.inner().clone();
    let backups = blocking(move || backup::list(&list_app))
        .await
        .map_err(|e| AppError::internal("listing backups", e))?;
    let schedule = app.blocking(|_, conn| Ok(Schedule::load(conn)?)).await?;
    Ok(Template::render(
        "admin/backups",
        context! { layout, backups, schedule, confirm: Option::<()>::None },
    ))
}

#[post("/admin/backups", data = "<_form>")]
async fn create(who: Who, app: &State<App>, _form: CsrfForm<'_, ButtonForm>) -> Answer {
    let (work_app, author) = (app.inner().clone(), who.user.username.clone());
    let made = backup::priority::at_backup_priority(move || {
        backup::create_backup(&work_app, &author, Origin::Manual)
    })
    .await
    .unwrap_or_else(|e| Err(BackupError::failed("backup thread", e)));
    match made {
        Ok(info) => {
            audit(
                app,
                Entry::new(&who.actor(), action::BACKUP_CREATED, Outcome::Success)
                    .target(info.name.clone())
                    .detail(format!("{} bytes", info.size)),
            )
            .await;
            Answer::Done(Flash::success(
                Redirect::to(uri!(crate::web::admin::backups::list_page)),
                format!("Backup {} made.", info.name),
            ))
        }
        Err(e) => refusal(app, &who.actor(), "backup", "", e).await,
    }
}

#[get("/admin/backups/<name>/download")]
async fn download(who: Who, app: &State<App>, name: String) -> Answer {
    let (work_app, wanted) = (app.inner().clone(), name.clone());
    let found = blocking(move || backup::find(&work_app, &wanted)).await;
    let (info, path) = match found {
        Ok(found) => found,
        Err(e) => return refusal(app, &who.actor(), "download", &name, e).await,
    };
    match NamedFile::open(&path).await {
        Ok(file) => {
            audit(
                app,
                Entry::new(&who.actor(), action::BACKUP_DOWNLOADED, Outcome::Success)
                    .target(info.name.clone())
                    .detail(format!("{} bytes", info.size)),
            )
            .await;
            Answer::File(Download {
                file,
                kind: ContentType::Binary,
                // The name comes from the listing, so it needs no quoting beyond the quotes.
                disposition: Header::new(
                    "Content-Disposition",
                    format!("attachment; filename=\"{}\"", info.name),
                ),
            })
        }
        Err(e) => {
            refusal(
                app,
                &who.actor(),
                "download",
                &name,
                BackupError::failed("open", e),
            )
            .await
        }
    }
}

/// The confirmation page of a delete or a restore.
async fn confirm_page(who: Who, app: &State<App>, name: String, what: &'static str) -> Answer {
    let (work_app, wanted) = (app.inner().clone(), name.clone());
    let found = blocking(move || backup::find(&work_app, &wanted)).await;
    match found {
        Ok((info, _)) => {
            let layout = Layout::for_user(app, &who, None);
            Answer::Page(Template::render(
                "admin/backups",
                context! {
                    layout,
                    backups: Vec::<()>::new(),
                    schedule: Option::<()>::None,
                    confirm: context! { what, backup: info },
                },
            ))
        }
        Err(e) => refusal(app, &who.actor(), what, &name, e).await,
    }
}

#[get("/admin/backups/<name>/delete")]
pub(crate) async fn confirm_delete(who: Who, app: &State<App>, name: String) -> Answer {
    confirm_page(who, app, name, "delete").await
}

#[get("/admin/backups/<name>/restore")]
pub(crate) async fn confirm_restore(who: Who, app: &State<App>, name: String) -> Answer {
    confirm_page(who, app, name, "restore").await
}

#[derive(FromForm)]
pub struct ConfirmForm {
    #[field(name = "csrf_token")]
    _csrf_token: String,
    /// Set only by the confirmation page's button.
    confirmed: bool,
}

fn confirmed(form: &CsrfForm<'_, ConfirmForm>) -> bool {
    form.value.as_ref().is_some_and(|f| f.confirmed)
}

#[post("/admin/backups/<name>/delete", data = "<form>")]
async fn delete(
    who: Who,
    app: &State<App>,
    name: String,
    form: CsrfForm<'_, ConfirmForm>,
) -> Answer {
    if !confirmed(&form) {
        return Answer::Done(Flash::warning(
            Redirect::to(uri!(crate::web::admin::backups::confirm_delete(
                name = &name
            ))),
            "Confirm the deletion first.",
        ));
    }
    let (work_app, wanted) = (app.inner().clone(), name.clone());
    match blocking(move || backup::delete(&work_app, &wanted)).await {
        Ok(info) => {
            audit(
                app,
                Entry::new(&who.actor(), action::BACKUP_DELETED, Outcome::Success)
                    .target(info.name.clone()),
            )
            .await;
            Answer::Done(Flash::success(
                Redirect::to(uri!(crate::web::admin::backups::list_page)),
                format!("Backup {} deleted.", info.name),
            ))
        }
        Err(e) => refusal(app, &who.actor(), "delete", &name, e).await,
    }
}

#[post("/admin/backups/<name>/restore", data = "<form>")]
async fn restore(
    who: Who,
    app: &State<App>,
    name: String,
    form: CsrfForm<'_, ConfirmForm>,
    pin: crate::web::OwnPin<'_>,
) -> Answer {
    if !confirmed(&form) {
        return Answer::Done(Flash::warning(
            Redirect::to(uri!(crate::web::admin::backups::confirm_restore(
                name = &name
            ))),
            "Confirm the restore first.",
        ));
    }
    // The swap waits for every request in flight to finish: this one included, unless it lets
    // go of its pin. What it does after the restore reads the restored database.
    pin.release();
    let (work_app, wanted, author) = (app.inner().clone(), name.clone(), who.user.username.clone());
    match blocking(move || backup::restore_backup(&work_app, &wanted, &author)).await {
        Ok(done) => {
            // Written to the restored database, so its trail says how it came to be.
            audit(
                app,
                Entry::new(&who.actor(), action::BACKUP_RESTORED, Outcome::Success)
                    .target(done.restored.name.clone())
                    .detail(format!(
                        "state before the restore saved as {}",
                        done.safety_backup
                    )),
            )
            .await;
            Answer::Done(Flash::success(
                Redirect::to(uri!(crate::web::admin::backups::list_page)),
                format!(
                    "Backup {} restored. The state before it was saved as {}.",
                    done.restored.name, done.safety_backup
                ),
            ))
        }
        Err(e) => refusal(app, &who.actor(), "restore", &name, e).await,
    }
}

#[derive(FromForm)]
pub struct UploadForm<'r> {
    #[field(name = "csrf_token")]
    _csrf_token: String,
    file: TempFile<'r>,
    /// The manifest downloaded with the backup, if the admin has it.
    manifest: Option<String>,
}

#[post("/admin/backups/upload", data = "<form>")]
async fn upload(who: Who, app: &State<App>, mut form: CsrfForm<'_, UploadForm<'_>>) -> Answer {
    let Some(values) = form.value.as_mut() else {
        let err = BackupError::Refused(
            "the upload form could not be read (is the file too large?)".into(),
        );
        return refusal(app, &who.actor(), "upload", "", err).await;
    };
    let received = backup::upload_path(app);
    if let Err(e) = values.file.move_copy_to(&received).await {
        return refusal(
            app,
            &who.actor(),
            "upload",
            "",
            BackupError::failed("saving the upload", e),
        )
        .await;
    }
    let manifest = values.manifest.clone();
    let (work_app, author) = (app.inner().clone(), who.user.username.clone());
    let accepted =
        blocking(move || backup::accept_upload(&work_app, &received, manifest.as_deref(), &author))
            .await;
    match accepted {
        Ok(info) => {
            audit(
                app,
                Entry::new(&who.actor(), action::BACKUP_UPLOADED, Outcome::Success)
                    .target(info.name.clone())
                    .detail(format!("{} bytes, checked", info.size)),
            )
            .await;
            Answer::Done(Flash::success(
                Redirect::to(uri!(crate::web::admin::backups::list_page)),
                format!("Upload checked and listed as {}.", info.name),
            ))
        }
        Err(e) => refusal(app, &who.actor(), "upload", "", e).await,
    }
}

#[derive(FromForm)]
pub struct ScheduleForm {
    #[field(name = "csrf_token")]
    _csrf_token: String,
    #[field(validate = range(0..=24 * 366))]
    interval_hours: i64,
    #[field(validate = range(1..=10_000))]
    keep: i64,
}

#[post("/admin/backups/schedule", data = "<form>")]
async fn save_schedule(
    who: Who,
    app: &State<App>,
    form: CsrfForm<'_, ScheduleForm>,
) -> Result<Answer, AppError> {
    let Some(values) = form.value.as_ref() else {
        return Ok(Answer::Refused(error_page(
            Status::UnprocessableEntity,
            "The interval must be 0 to 8784 hours and the number kept 1 to 10000.",
        )));
    };
    let schedule = Schedule {
        interval_hours: values.interval_hours,
        keep: values.keep,
    };
    let (work_app, actor) = (app.inner().clone(), who.actor());
    app.blocking(move |_, conn| {
        Ok(conn.write_transaction(|conn| {
            schedule.save(conn)?;
            work_app.state_seal.reseal(work_app.now(), conn)?;
            work_app.audit.append(
                conn,
                work_app.now(),
                &Entry::new(&actor, action::BACKUP_SETTINGS_SAVED, Outcome::Success).detail(
                    format!(
                        "interval_hours={} keep={}",
                        schedule.interval_hours, schedule.keep
                    ),
                ),
            )
        })?)
    })
    .await?;
    Ok(Answer::Done(Flash::success(
        Redirect::to(uri!(crate::web::admin::backups::list_page)),
        "Backup schedule saved.",
    )))
}
