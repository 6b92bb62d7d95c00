//! Medical files: the upload command (fields checked, type read from the content, sealed under a
//! key of its own, SHA-256 kept), and the encrypted copy on disk under `storage/`, named by the
//! file's random id only (never by anything a user typed).

use std::io::Write;
use std::path::{Path, PathBuf};

use time::Date;

use super::{validate, FieldProblem};
use crate::audit::{action, Actor};
use crate::crypto::{random_id, seal_file, sha256_hex, FileKey};
use crate::db::models::records::MedicalFileRow;
use crate::db::Conn;
use crate::fields::StoreError;
use crate::ids::{PatientId, RowId};
use crate::services::Services;

/// The categories a file is filed under, in the order the upload form lists them.
pub const CATEGORIES: [&str; 6] = ["X-ray", "CT", "MRI", "Ultrasound", "Lab report", "Other"];

/// The fields of the upload form that are re-filled when it comes back (never the file).
pub const FIELD_NAMES: [&str; 3] = ["category", "description", "taken_on"];

/// The longest name kept of the one the browser sent, in characters.
const TYPED_NAME_MAX_CHARS: usize = 200;

/// What the upload form holds, as sent: the file's bytes, or why they could not be read.
pub struct UploadInput<'a> {
    pub category: &'a str,
    pub description: &'a str,
    pub taken_on: &'a str,
    pub typed_name: &'a str,
    pub content: Result<Vec<u8>, String>,
}

/// A file whose fields and content passed their rules.
pub struct Upload {
    pub category: String,
    pub description: String,
    pub taken_on: String,
    /// The name the browser gave, cut short: kept only sealed, shown escaped, never used as a
    /// path (see [`download_name`]).
    pub typed_name: String,
    pub content: Vec<u8>,
    pub file_type: FileType,
}

impl Upload {
    /// The upload `input` asks for, or each field's problem. `today` bounds the date taken.
    pub fn check(input: UploadInput<'_>, today: Date) -> Result<Upload, Vec<FieldProblem>> {
        let category = if CATEGORIES.contains(&input.category) {
            Ok(input.category.to_string())
        } else {
            Err("Choose one of the listed categories.".to_string())
        };
        let description = validate::text(input.description, 1000, false, "description");
        let taken_on = validate::date(input.taken_on, today, true)
            .map(validate::date_text)
            .map_err(str::to_string);
        let typed = input
            .content
            .and_then(|content| match FileType::sniff(&content) {
                Some(file_type) => Ok((content, file_type)),
                None => Err("This file is not a JPEG, PNG, PDF or DICOM file.".to_string()),
            });
        match (category, description, taken_on, typed) {
            (Ok(category), Ok(description), Ok(taken_on), Ok((content, file_type))) => Ok(Upload {
                category,
                description,
                taken_on,
                typed_name: input
                    .typed_name
                    .chars()
                    .take(TYPED_NAME_MAX_CHARS)
                    .collect(),
                content,
                file_type,
            }),
            (category, description, taken_on, typed) => Err([
                ("category", category.err()),
                ("description", description.err()),
                ("taken_on", taken_on.err()),
                ("file", typed.err()),
            ]
            .into_iter()
            .filter_map(|(field, problem)| Some((field, problem?)))
            .collect()),
        }
    }
}

/// Why an upload could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing a medical file: {0}")]
    Write(#[from] std::io::Error),
}

impl From<crate::fields::SealError> for UploadError {
    fn from(e: crate::fields::SealError) -> Self {
        UploadError::Store(e.into())
    }
}

/// Adds `upload` to `patient_id`'s record, uploaded by `uploaded_by`: the content sealed under a
/// new key of its own and written whole to disk, then its row and audit event in one
/// transaction (the file is removed again if that fails). Returns the file's id.
pub fn upload(
    app: &Services,
    conn: &mut Conn,
    actor: &Actor,
    patient_id: &str,
    uploaded_by: &str,
    upload: &Upload,
) -> Result<String, UploadError> {
    let id = random_id(app.id_length());
    let key = FileKey::generate();
    let sealed_file = seal_file(&key, &id, &upload.content);
    let digest = sha256_hex(&upload.content);
    let storage = app.config.storage_dir();
    write_sealed(&storage, &id, &sealed_file)?;
    let saved = conn.write_transaction(|conn| -> Result<(), StoreError> {
        // The row's values are sealed under the lock, after catching up: the policy is the
        // database's. (The file itself is sealed with its own key, whatever the policy.)
        app.catch_up(conn)?;
        let sealed = app
            .fields
            .row("medical_files", RowId(&id), PatientId(patient_id));
        let row = MedicalFileRow {
            id: id.clone(),
            patient_id: patient_id.to_string(),
            uploaded_by: uploaded_by.to_string(),
            category: sealed.seal("category", &upload.category)?,
            description: sealed.seal("description", &upload.description)?,
            taken_on: sealed.seal("taken_on", &upload.taken_on)?,
            file_name: sealed.seal("file_name", &upload.typed_name)?,
            content_type: upload.file_type.content_type().to_string(),
            size_bytes: upload.content.len() as i64,
            sha256: sealed.seal("sha256", &digest)?,
            file_key: sealed.seal("file_key", &key.to_text())?,
            created_at: app.now(),
        };
        MedicalFileRow::insert(&row, conn)?;
        super::audit(
            app,
            conn,
            actor,
            action::FILE_UPLOADED,
            patient_id,
            format!("file {id}, {} bytes, {}", row.size_bytes, row.content_type),
        )?;
        Ok(())
    });
    if let Err(e) = saved {
        // No row points at the file: take it away again.
        remove_sealed(&storage, &id);
        return Err(e.into());
    }
    Ok(id)
}

/// A type medvault accepts, told from the first bytes of the content, never from the name or
/// the browser's claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    Jpeg,
    Png,
    Pdf,
    Dicom,
}

impl FileType {
    pub fn sniff(content: &[u8]) -> Option<FileType> {
        if content.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(FileType::Jpeg)
        } else if content.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(FileType::Png)
        } else if content.starts_with(b"%PDF-") {
            Some(FileType::Pdf)
        } else if content.len() >= 132 && &content[128..132] == b"DICM" {
            // DICOM Part 10: a 128-byte preamble, then the magic.
            Some(FileType::Dicom)
        } else {
            None
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            FileType::Jpeg => "image/jpeg",
            FileType::Png => "image/png",
            FileType::Pdf => "application/pdf",
            FileType::Dicom => "application/dicom",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            FileType::Jpeg => "jpg",
            FileType::Png => "png",
            FileType::Pdf => "pdf",
            FileType::Dicom => "dcm",
        }
    }

    pub fn from_content_type(text: &str) -> Option<FileType> {
        [
            FileType::Jpeg,
            FileType::Png,
            FileType::Pdf,
            FileType::Dicom,
        ]
        .into_iter()
        .find(|t| t.content_type() == text)
    }
}

/// Where the encrypted copy of file `id` lives. Ids are random letters and digits; anything
/// else is refused so that no id can point outside `storage/`.
pub fn stored_path(storage: &Path, id: &str) -> Option<PathBuf> {
    let safe = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric());
    safe.then(|| storage.join(format!("{id}.sealed")))
}

/// Writes `sealed` as file `id`, whole or not at all: a temporary file, flushed to disk, then
/// renamed into place.
pub fn write_sealed(storage: &Path, id: &str, sealed: &[u8]) -> std::io::Result<()> {
    let path = stored_path(storage, id)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "bad file id"))?;
    std::fs::create_dir_all(storage)?;
    let temp = storage.join(format!(".{id}.partial"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    // Sealed, but still nobody else's on this machine, whatever the umask.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temp)?;
    file.write_all(sealed)?;
    file.sync_all()?;
    std::fs::rename(&temp, &path)
}

pub fn read_sealed(storage: &Path, id: &str) -> std::io::Result<Vec<u8>> {
    let path = stored_path(storage, id)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "bad file id"))?;
    std::fs::read(path)
}

pub fn remove_sealed(storage: &Path, id: &str) {
    if let Some(path) = stored_path(storage, id) {
        let _ = std::fs::remove_file(path);
    }
}

/// A name safe to offer in `Content-Disposition`: the typed name's letters, digits, dots,
/// dashes and underscores, with the extension of the real type.
pub fn download_name(typed: &str, file_type: FileType) -> String {
    let stem: String = Path::new(typed)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(80)
        .collect();
    let stem = if stem.trim_matches('.').is_empty() {
        "medical-file".to_string()
    } else {
        stem
    };
    format!("{stem}.{}", file_type.extension())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(category: &'static str, content: Result<Vec<u8>, String>) -> UploadInput<'static> {
        UploadInput {
            category,
            description: " left wrist ",
            taken_on: "2026-12-01",
            typed_name: "scan.png",
            content,
        }
    }

    fn today() -> Date {
        Date::from_calendar_date(2026, time::Month::December, 2).unwrap()
    }

    #[test]
    fn an_upload_is_a_listed_category_and_a_file_of_a_known_type() {
        let png = b"\x89PNG\r\n\x1a\n rest".to_vec();
        let upload = Upload::check(input("X-ray", Ok(png)), today()).unwrap();
        assert_eq!(upload.file_type, FileType::Png);
        assert_eq!(upload.description, "left wrist");
        let problems = Upload::check(input("x-ray", Ok(b"GIF89a".to_vec())), today())
            .err()
            .unwrap();
        let fields: Vec<&str> = problems.iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, ["category", "file"]);
        let unread = Upload::check(input("CT", Err("too large".into())), today())
            .err()
            .unwrap();
        assert_eq!(unread, [("file", "too large".to_string())]);
    }

    #[test]
    fn the_typed_name_is_cut_to_200_characters() {
        let long = "é".repeat(300);
        let mut typed = input("MRI", Ok(b"%PDF-1.7".to_vec()));
        typed.typed_name = &long;
        let upload = Upload::check(typed, today()).unwrap();
        assert_eq!(upload.typed_name.chars().count(), 200);
    }

    #[test]
    fn types_come_from_the_content() {
        assert_eq!(
            FileType::sniff(b"\xFF\xD8\xFF\xE0rest"),
            Some(FileType::Jpeg)
        );
        assert_eq!(
            FileType::sniff(b"\x89PNG\r\n\x1a\nrest"),
            Some(FileType::Png)
        );
        assert_eq!(FileType::sniff(b"%PDF-1.7"), Some(FileType::Pdf));
        let mut dicom = vec![0u8; 128];
        dicom.extend_from_slice(b"DICMrest");
        assert_eq!(FileType::sniff(&dicom), Some(FileType::Dicom));
        assert_eq!(FileType::sniff(b"<html><script>"), None);
        assert_eq!(FileType::sniff(b"MZ\x90\x00"), None);
        assert_eq!(FileType::sniff(b""), None);
    }

    #[test]
    fn stored_paths_stay_inside_storage() {
        let storage = Path::new("/srv/storage");
        assert_eq!(
            stored_path(storage, "abc123"),
            Some(PathBuf::from("/srv/storage/abc123.sealed"))
        );
        for bad in ["", "../x", "a/b", "a.b", "..", "x\0y"] {
            assert_eq!(stored_path(storage, bad), None, "{bad:?}");
        }
    }

    #[test]
    fn download_names_are_tame() {
        assert_eq!(
            download_name("chest x-ray.png", FileType::Png),
            "chestx-ray.png"
        );
        assert_eq!(
            download_name("../../etc/passwd", FileType::Pdf),
            "passwd.pdf"
        );
        assert_eq!(download_name("\"; evil", FileType::Jpeg), "evil.jpg");
        assert_eq!(download_name("", FileType::Dicom), "medical-file.dcm");
    }
}
