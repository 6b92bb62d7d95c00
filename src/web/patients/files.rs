//! `/patients/<id>/scans` and `/patients/<id>/files/<fid>`: a doctor uploads a scan or another
//! medical file to a record (see `records::files` for its rules) and gets a signed link to one.

use rocket::form::FromForm;
use rocket::fs::TempFile;
use rocket::response::{Flash, Redirect};
use rocket::tokio::io::AsyncReadExt;
use rocket::{get, post, routes, Route, State};

use super::record::{back_to, patient_for_change, rerender, Doctor, RecordForm, Section};
use crate::app::App;
use crate::auth::CsrfForm;
use crate::records::files::{self, Upload, UploadInput};
use crate::web::error::{AppError, Rejected};
use crate::web::files::{file_of, link_for};
use crate::web::form_context_of;

pub fn routes() -> Vec<Route> {
    routes![upload, doctor_link]
}

#[derive(FromForm)]
pub struct ScanForm<'r> {
    category: String,
    description: String,
    taken_on: String,
    file: TempFile<'r>,
}

#[post("/patients/<id>/scans", data = "<form>")]
async fn upload(
    who: Doctor,
    app: &State<App>,
    id: &str,
    form: CsrfForm<'_, ScanForm<'_>>,
) -> Result<Flash<Redirect>, Rejected> {
    let patient = patient_for_change(app, &who, id).await?;
    let max = app.config.max_upload_bytes;
    let mut view = form_context_of(&form.context, &files::FIELD_NAMES);
    let Some(f) = form.value.as_ref() else {
        let too_large_sent = form
            .context
            .field_errors("file")
            .any(|e| matches!(e.kind, rocket::form::error::ErrorKind::InvalidLength { .. }));
        view = if too_large_sent {
            view.error("file", too_large(max))
        } else if !view.errors.contains_key("file") {
            view.error("file", "Choose a file and fill in the form.")
        } else {
            view
        };
        return Err(rerender(app, &who, &patient, RecordForm::Scan, view).await);
    };
    let typed_name = f
        .file
        .raw_name()
        .map(|n| n.dangerous_unsafe_unsanitized_raw().as_str())
        .unwrap_or_default();
    let input = UploadInput {
        category: &f.category,
        description: &f.description,
        taken_on: &f.taken_on,
        typed_name,
        content: read_upload(&f.file, max).await,
    };
    let upload = match Upload::check(input, app.clock.today()) {
        Ok(upload) => upload,
        Err(problems) => {
            let view = view.with_problems(problems);
            return Err(rerender(app, &who, &patient, RecordForm::Scan, view).await);
        }
    };
    let (actor, pid, uploader) = (who.actor(), patient.id.clone(), who.user.id.clone());
    app.blocking(move |app, conn| Ok(files::upload(app, conn, &actor, &pid, &uploader, &upload)?))
        .await?;
    Ok(Flash::success(
        back_to(&patient.id, Section::Files),
        "File uploaded and encrypted.",
    ))
}

fn too_large(max: u64) -> String {
    format!(
        "The file is larger than the {} allowed.",
        crate::web::size_text(max)
    )
}

/// The uploaded bytes, if there are some and not more than `max`.
async fn read_upload(file: &TempFile<'_>, max: u64) -> Result<Vec<u8>, String> {
    if file.len() == 0 {
        return Err("Choose a file: this one is empty.".into());
    }
    if file.len() > max {
        return Err(too_large(max));
    }
    let unreadable = |_| "The file could not be read; try again.".to_string();
    let mut content = Vec::with_capacity(file.len() as usize);
    let mut reader = Box::pin(file.open().await.map_err(unreadable)?);
    reader.read_to_end(&mut content).await.map_err(unreadable)?;
    Ok(content)
}

#[get("/patients/<id>/files/<fid>")]
async fn doctor_link(
    who: Doctor,
    app: &State<App>,
    id: &str,
    fid: &str,
) -> Result<Redirect, AppError> {
    let patient = patient_for_change(app, &who, id).await?;
    let file = file_of(app, &patient.id, fid).await?;
    Ok(Redirect::to(link_for(app, &who.user.id, &file)))
}
