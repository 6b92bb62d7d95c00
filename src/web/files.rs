//! `/files/<token>`: the download behind a signed, expiring link, issued only after the
//! authorisation check. The link, the user, the file's integrity and its digest are all
//! checked before a byte leaves.

use rocket::http::{ContentType, Header};
use rocket::response::Responder;
use rocket::{get, routes, uri, Route, State};

use crate::access::page;
use crate::app::App;
use crate::audit::{action, Actor, Entry, Outcome};
use crate::auth::Allowed;
use crate::crypto::{file_link_token, open_file, sha256_hex, verify_file_link, FileKey, Purpose};
use crate::db::models::records::MedicalFileRow;
use crate::ids::{PatientId, RowId};
use crate::records::files::{self, FileType};
use crate::records::{self};
use crate::web::error::AppError;

pub fn routes() -> Vec<Route> {
    routes![download]
}

/// A signed link to `file` for `user_id`, valid for the configured lifetime.
pub(super) fn link_for(app: &App, user_id: &str, file: &MedicalFileRow) -> String {
    let key = app.keys().purpose_key(Purpose::FileLinks);
    let expires_at = app.now() + app.config.file_link_lifetime;
    let token = file_link_token(&key, user_id, &file.patient_id, &file.id, expires_at);
    uri!(download(token = &token)).to_string()
}

/// The file `fid` of patient `id`, if it is theirs; 404 otherwise.
pub(super) async fn file_of(
    app: &App,
    patient_id: &str,
    fid: &str,
) -> Result<MedicalFileRow, AppError> {
    let (pid, fid) = (patient_id.to_string(), fid.to_string());
    app.blocking(move |_, conn| MedicalFileRow::find(&pid, &fid, conn)?.ok_or(AppError::NotFound))
        .await
}

/// A file's content on its way out: type, a safe name, never cached.
pub struct Download {
    content: Vec<u8>,
    content_type: ContentType,
    name: String,
}

impl<'r> Responder<'r, 'static> for Download {
    fn respond_to(self, req: &'r rocket::Request<'_>) -> rocket::response::Result<'static> {
        rocket::Response::build_from(self.content.respond_to(req)?)
            .header(self.content_type)
            .header(Header::new(
                "Content-Disposition",
                format!("attachment; filename=\"{}\"", self.name),
            ))
            .ok()
    }
}

async fn audit_file(
    app: &App,
    actor: &Actor,
    act: &'static str,
    outcome: Outcome,
    target: String,
    detail: String,
) {
    let entry = Entry::new(actor, act, outcome)
        .target(target)
        .detail(detail);
    if let Err(e) = app
        .blocking(move |app, conn| Ok(app.audit.append(conn, app.now(), &entry)?))
        .await
    {
        tracing::error!(error = %e, "cannot audit a file download");
    }
}

#[get("/files/<token>")]
async fn download(
    who: Allowed<page::Files>,
    app: &State<App>,
    token: &str,
) -> Result<Download, AppError> {
    let actor = who.actor();
    let key = app.keys().purpose_key(Purpose::FileLinks);
    let link = verify_file_link(&key, token);
    let refusal = match &link {
        None => Some("altered or malformed link"),
        Some(l) if l.user_id != who.user.id => Some("link issued to another user"),
        Some(l) if l.expires_at <= app.now() => Some("expired link"),
        Some(_) => None,
    };
    let Some(link) = link.filter(|_| refusal.is_none()) else {
        let why = refusal.unwrap_or_default();
        audit_file(
            app,
            &actor,
            action::FILE_LINK_REFUSED,
            Outcome::Denied,
            "file link".into(),
            why.into(),
        )
        .await;
        return Err(AppError::Forbidden);
    };
    let (viewer, pid, fid) = (
        who.user.clone(),
        link.patient_id.clone(),
        link.file_id.clone(),
    );
    // The link was issued after an authorisation check; the check runs again in case the
    // care assignment or emergency access ended since.
    let file = app
        .blocking(move |app, conn| {
            let file = MedicalFileRow::find(&pid, &fid, conn)?.ok_or(AppError::NotFound)?;
            records::relation(&viewer, &file.patient_id, app.now(), conn)?
                .ok_or(AppError::NotFound)?;
            Ok(file)
        })
        .await?;
    let target = records::audit_target(&file.patient_id);
    match open_stored(app, &file).await {
        Ok(content) => {
            audit_file(
                app,
                &actor,
                action::FILE_DOWNLOADED,
                Outcome::Success,
                target,
                format!("file {}", file.id),
            )
            .await;
            let file_type =
                FileType::from_content_type(&file.content_type).unwrap_or(FileType::Pdf);
            let name = app
                .fields
                .row(
                    "medical_files",
                    RowId(&file.id),
                    PatientId(&file.patient_id),
                )
                .open("file_name", &file.file_name)
                .unwrap_or_default();
            Ok(Download {
                content,
                content_type: ContentType::parse_flexible(file_type.content_type())
                    .unwrap_or(ContentType::Binary),
                name: files::download_name(&name, file_type),
            })
        }
        Err(why) => {
            tracing::error!(file = %file.id, why, "medical file refused");
            audit_file(
                app,
                &actor,
                action::FILE_INTEGRITY_ERROR,
                Outcome::Failure,
                target,
                format!("file {}: {why}", file.id),
            )
            .await;
            Err(AppError::Conflict(
                "Integrity error: this file was altered or damaged on disk and is not served. \
                 The event is audited; ask an admin to restore it from a backup."
                    .into(),
            ))
        }
    }
}

/// The plain content of a stored file, if its key, its sealed copy and its digest all hold.
async fn open_stored(app: &App, file: &MedicalFileRow) -> Result<Vec<u8>, &'static str> {
    let file = file.clone();
    let opened = app
        .blocking(move |app, _| {
            let sealed = app.fields.row(
                "medical_files",
                RowId(&file.id),
                PatientId(&file.patient_id),
            );
            let opened = (|| {
                let key_text = sealed
                    .open("file_key", &file.file_key)
                    .map_err(|_| "file key refused")?;
                let key = FileKey::from_text(&key_text).map_err(|_| "file key malformed")?;
                let digest = sealed
                    .open("sha256", &file.sha256)
                    .map_err(|_| "digest refused")?;
                let stored = files::read_sealed(&app.config.storage_dir(), &file.id)
                    .map_err(|_| "missing on disk")?;
                let content =
                    open_file(&key, &file.id, stored).map_err(|_| "failed authentication")?;
                if sha256_hex(&content) != digest {
                    return Err("SHA-256 mismatch");
                }
                Ok(content.to_vec())
            })();
            Ok(opened)
        })
        .await;
    opened.unwrap_or(Err("database unavailable"))
}
