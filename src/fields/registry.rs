//! Every column of medvault's tables that holds something about a person, and whether it can be
//! encrypted. Known at compile time: the re-encryption job builds its SQL from these names only.

use serde::Serialize;

#[derive(Clone, Copy, Debug, Serialize)]
pub struct ColumnSpec {
    pub name: &'static str,
    pub title: &'static str,
    /// `None`: encryptable. `Some(reason)`: must stay readable to the database, and why.
    pub not_encryptable: Option<&'static str>,
    /// Whether a new installation encrypts it.
    pub encrypted_by_default: bool,
    /// The column holding this one's blind index, if it is searchable by exact value.
    pub blind_index: Option<&'static str>,
    /// A secret that must never be stored plain (the admin picks only its suite).
    pub always_encrypted: bool,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct TableSpec {
    pub name: &'static str,
    pub title: &'static str,
    /// The column naming the row (its id) and the one naming its owner (a user id): both are
    /// bound into every sealed value and drive the per-row key.
    pub row_column: &'static str,
    pub owner_column: &'static str,
    pub columns: &'static [ColumnSpec],
}

const fn encryptable(name: &'static str, title: &'static str) -> ColumnSpec {
    ColumnSpec {
        name,
        title,
        not_encryptable: None,
        encrypted_by_default: true,
        blind_index: None,
        always_encrypted: false,
    }
}

const fn secret(name: &'static str, title: &'static str) -> ColumnSpec {
    ColumnSpec {
        always_encrypted: true,
        ..encryptable(name, title)
    }
}

const fn searchable(name: &'static str, title: &'static str, index: &'static str) -> ColumnSpec {
    ColumnSpec {
        blind_index: Some(index),
        ..encryptable(name, title)
    }
}

const fn kept_clear(name: &'static str, title: &'static str, why: &'static str) -> ColumnSpec {
    ColumnSpec {
        name,
        title,
        not_encryptable: Some(why),
        encrypted_by_default: false,
        blind_index: None,
        always_encrypted: false,
    }
}

pub const TABLES: &[TableSpec] = &[
    TableSpec {
        name: "users",
        title: "Accounts",
        row_column: "id",
        owner_column: "id",
        columns: &[
            kept_clear(
                "id",
                "Id",
                "primary key: random, never derived from personal data",
            ),
            kept_clear(
                "username",
                "Username",
                "sign-in name: looked up at every sign-in and searched by admins",
            ),
            kept_clear("level", "Level", "decides page access on every request"),
            kept_clear(
                "password_hash",
                "Password",
                "already an argon2id hash with a pepper",
            ),
            kept_clear("must_change_password", "Must change password", "a flag"),
            kept_clear("active", "Active", "a flag checked on every request"),
            kept_clear("created_at", "Created", "a timestamp"),
            kept_clear("updated_at", "Updated", "a timestamp"),
            encryptable("full_name", "Full name"),
            searchable("email", "Email", "email_index"),
            kept_clear(
                "email_index",
                "Email blind index",
                "a keyed, truncated HMAC used to find an email by exact value",
            ),
        ],
    },
    TableSpec {
        name: "two_factor",
        title: "Two-factor sign-in",
        row_column: "user_id",
        owner_column: "user_id",
        columns: &[
            kept_clear("user_id", "Account", "foreign key: the account's random id"),
            secret("secret", "TOTP secret"),
            kept_clear("enabled", "Enabled", "a flag checked at every sign-in"),
            kept_clear(
                "last_used_step",
                "Last used step",
                "compared at every sign-in so that no code works twice",
            ),
            kept_clear("created_at", "Created", "a timestamp"),
        ],
    },
    TableSpec {
        name: "patients",
        title: "Patient profiles",
        row_column: "user_id",
        owner_column: "user_id",
        columns: &[
            kept_clear(
                "user_id",
                "Patient account",
                "primary key: the patient's random account id",
            ),
            searchable("national_id", "National ID", "national_id_index"),
            kept_clear(
                "national_id_index",
                "National ID blind index",
                "a keyed, truncated HMAC used to find a national ID by exact value",
            ),
            encryptable("first_name", "First name"),
            encryptable("last_name", "Last name"),
            encryptable("date_of_birth", "Date of birth"),
            encryptable("gender", "Gender"),
            encryptable("blood_type", "Blood type"),
            encryptable("phone", "Phone"),
            encryptable("email", "Email"),
            encryptable("address", "Address"),
            encryptable("postal_code", "Postal code"),
            encryptable("height_cm", "Height"),
            encryptable("weight_kg", "Weight"),
            encryptable("allergies", "Allergies"),
            kept_clear("updated_at", "Updated", "a timestamp"),
        ],
    },
    TableSpec {
        name: "emergency_grants",
        title: "Emergency access",
        row_column: "id",
        owner_column: "patient_id",
        columns: &[
            kept_clear("id", "Id", "primary key: random"),
            kept_clear("doctor_id", "Doctor", "decides access on every request"),
            kept_clear("patient_id", "Patient", "decides access on every request"),
            encryptable("reason", "Reason"),
            kept_clear("granted_at", "Granted", "a timestamp"),
            kept_clear("expires_at", "Expires", "compared on every request"),
        ],
    },
    TableSpec {
        name: "consultations",
        title: "Consultations",
        row_column: "id",
        owner_column: "patient_id",
        columns: &[
            kept_clear("id", "Id", "primary key: random"),
            kept_clear("patient_id", "Patient", "finds a patient's record"),
            kept_clear("doctor_id", "Doctor", "a doctor's random account id"),
            kept_clear("occurred_at", "Date and time", "orders the record"),
            encryptable("department", "Department"),
            encryptable("block", "Block"),
            encryptable("unit", "Unit"),
            encryptable("diagnosis", "Diagnosis"),
            encryptable("notes", "Notes"),
            encryptable("prescription", "Prescription"),
            kept_clear("created_at", "Created", "a timestamp"),
            kept_clear("updated_at", "Updated", "a timestamp"),
        ],
    },
    TableSpec {
        name: "medical_files",
        title: "Scans and files",
        row_column: "id",
        owner_column: "patient_id",
        columns: &[
            kept_clear(
                "id",
                "Id",
                "primary key: random; also names the encrypted file on disk",
            ),
            kept_clear("patient_id", "Patient", "finds a patient's record"),
            kept_clear("uploaded_by", "Uploaded by", "a doctor's random account id"),
            encryptable("category", "Category"),
            encryptable("description", "Description"),
            encryptable("taken_on", "Date taken"),
            encryptable("file_name", "File name"),
            kept_clear(
                "content_type",
                "Type",
                "sent with every download: JPEG, PNG, PDF or DICOM",
            ),
            kept_clear("size_bytes", "Size", "a size"),
            encryptable("sha256", "SHA-256 of the content"),
            secret("file_key", "File key"),
            kept_clear("created_at", "Created", "a timestamp"),
        ],
    },
    TableSpec {
        name: "vaccinations",
        title: "Vaccinations",
        row_column: "id",
        owner_column: "patient_id",
        columns: &[
            kept_clear("id", "Id", "primary key: random"),
            kept_clear("patient_id", "Patient", "finds a patient's record"),
            kept_clear("recorded_by", "Recorded by", "a doctor's random account id"),
            encryptable("vaccine", "Vaccine"),
            encryptable("dose_number", "Dose number"),
            encryptable("given_on", "Date given"),
            encryptable("lot", "Lot"),
            encryptable("given_by", "Given by"),
            kept_clear("created_at", "Created", "a timestamp"),
        ],
    },
    TableSpec {
        name: "appointments",
        title: "Appointments",
        row_column: "id",
        owner_column: "patient_id",
        columns: &[
            kept_clear("id", "Id", "primary key: random"),
            kept_clear("patient_id", "Patient", "finds a patient's appointments"),
            kept_clear("doctor_id", "Doctor", "finds a doctor's appointments"),
            kept_clear("starts_at", "Time", "orders and schedules appointments"),
            encryptable("reason", "Reason"),
            kept_clear("status", "Status", "booked, changed, cancelled or done"),
            kept_clear("created_at", "Created", "a timestamp"),
            kept_clear("updated_at", "Updated", "a timestamp"),
        ],
    },
];

/// Columns kept in other tables that name people, shown on the encryption page with the reason
/// they stay readable.
pub const OTHER_PERSONAL_COLUMNS: &[(&str, ColumnSpec)] = &[
    (
        "sessions",
        kept_clear(
            "ip",
            "Client address",
            "compared on every request to bind the session; rows live 8 hours at most",
        ),
    ),
    (
        "sessions",
        kept_clear(
            "user_agent",
            "Browser",
            "compared on every request to bind the session; rows live 8 hours at most",
        ),
    ),
    (
        "audit_events",
        kept_clear(
            "actor_name, ip, target, detail",
            "Audit columns",
            "covered by the audit chain's HMAC: rewriting them would break it",
        ),
    ),
];

pub fn table(name: &str) -> Option<&'static TableSpec> {
    TABLES.iter().find(|t| t.name == name)
}

/// Every encryptable (table, column), in a fixed order: the job's cursor indexes this list.
pub fn encryptable_columns() -> Vec<(&'static TableSpec, &'static ColumnSpec)> {
    TABLES
        .iter()
        .flat_map(|t| {
            t.columns
                .iter()
                .filter(|c| c.not_encryptable.is_none())
                .map(move |c| (t, c))
        })
        .collect()
}

/// The encryptable columns of `table`, in the registry's order (none for an unknown table).
pub fn encryptable_in(table: &str) -> Vec<&'static str> {
    encryptable_columns()
        .into_iter()
        .filter(|(t, _)| t.name == table)
        .map(|(_, c)| c.name)
        .collect()
}

pub fn is_encryptable(table: &str, column: &str) -> bool {
    encryptable_columns()
        .iter()
        .any(|(t, c)| t.name == table && c.name == column)
}
