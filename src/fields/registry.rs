//! Every column of medvault's tables that holds something about a person, and whether it can be
//! encrypted. Known at compile time: the re-encryption job builds its SQL from these names only.

use crate::db::models::records::{ConsultationText, ProfileColumn};
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

/// The patients table: its key, one column per profile field in the profile's own order (the
/// national ID followed by its blind index), and its timestamp. Derived from [`ProfileColumn`],
/// so a new profile field is in the registry (and the re-encryption job) without a second list.
const PATIENT_COLUMNS: [ColumnSpec; ProfileColumn::ALL.len() + 3] = {
    let key = kept_clear(
        "user_id",
        "Patient account",
        "primary key: the patient's random account id",
    );
    let mut columns = [key; ProfileColumn::ALL.len() + 3];
    let mut at = 1;
    let mut i = 0;
    while i < ProfileColumn::ALL.len() {
        let field = ProfileColumn::ALL[i];
        if matches!(field, ProfileColumn::NationalId) {
            columns[at] = searchable(field.name(), field.title(), "national_id_index");
            columns[at + 1] = kept_clear(
                "national_id_index",
                "National ID blind index",
                "a keyed, truncated HMAC used to find a national ID by exact value",
            );
            at += 2;
        } else {
            columns[at] = encryptable(field.name(), field.title());
            at += 1;
        }
        i += 1;
    }
    columns[at] = kept_clear("updated_at", "Updated", "a timestamp");
    assert!(
        at + 1 == columns.len(),
        "every patients column is listed once"
    );
    columns
};

/// The consultations table: who and when in the clear, then one column per
/// [`ConsultationText`], then the timestamps.
const CONSULTATION_COLUMNS: [ColumnSpec; ConsultationText::ALL.len() + 6] = {
    let mut columns =
        [kept_clear("id", "Id", "primary key: random"); ConsultationText::ALL.len() + 6];
    columns[1] = kept_clear("patient_id", "Patient", "finds a patient's record");
    columns[2] = kept_clear("doctor_id", "Doctor", "a doctor's random account id");
    columns[3] = kept_clear("occurred_at", "Date and time", "orders the record");
    let mut i = 0;
    while i < ConsultationText::ALL.len() {
        let field = ConsultationText::ALL[i];
        columns[4 + i] = encryptable(field.name(), field.title());
        i += 1;
    }
    columns[4 + i] = kept_clear("created_at", "Created", "a timestamp");
    columns[5 + i] = kept_clear("updated_at", "Updated", "a timestamp");
    columns
};

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
            kept_clear(
                "two_factor_enabled",
                "Two-factor sign-in on",
                "a flag checked at every sign-in",
            ),
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
        columns: &PATIENT_COLUMNS,
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
        columns: &CONSULTATION_COLUMNS,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Conn, SQLITE_MIGRATIONS};
    use diesel::prelude::*;
    use diesel::sql_types::Text;
    use diesel_migrations::MigrationHarness;

    #[derive(QueryableByName)]
    struct ColumnName {
        #[diesel(sql_type = Text)]
        name: String,
    }

    /// The registry names every column of each table it covers, and no column the table lacks:
    /// the derived lists (profile, consultation) as much as the written ones.
    #[test]
    fn each_table_lists_exactly_the_columns_the_migrations_create() {
        let mut conn = Conn::establish(":memory:").unwrap();
        conn.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
        for table in TABLES {
            let mut actual: Vec<String> = diesel::sql_query(format!(
                "SELECT name FROM pragma_table_info('{}')",
                table.name
            ))
            .load::<ColumnName>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
            let mut listed: Vec<String> =
                table.columns.iter().map(|c| c.name.to_string()).collect();
            actual.sort();
            listed.sort();
            assert_eq!(listed, actual, "table {}", table.name);
            assert!(table.columns.iter().any(|c| c.name == table.row_column));
            assert!(table.columns.iter().any(|c| c.name == table.owner_column));
        }
    }

    #[test]
    fn the_profile_columns_keep_the_profiles_order_and_the_national_id_stays_searchable() {
        let listed = encryptable_in("patients");
        assert_eq!(listed, ProfileColumn::NAMES);
        let national_id = table("patients")
            .and_then(|t| t.columns.iter().find(|c| c.name == "national_id"))
            .unwrap();
        assert_eq!(national_id.blind_index, Some("national_id_index"));
    }
}
