//! Medical files on disk: the type read from the content, and the encrypted copy under
//! `storage/`, named by the file's random id only (never by anything a user typed).

use std::io::Write;
use std::path::{Path, PathBuf};

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
