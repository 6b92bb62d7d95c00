//! The patient profile: what each field accepts, as it is typed, and the commands that register
//! a patient and save a profile. A national ID belongs to one patient: it is checked inside the
//! transaction that writes it, so two registrations at once cannot both take it.

use time::Date;

use super::{validate, FieldProblem};
use crate::access::Level;
use crate::audit::{action, Actor, Entry, Outcome};
use crate::crypto::random_id;
pub use crate::db::models::records::ProfileColumn;
use crate::db::models::records::{CareTeam, PatientRow};
use crate::db::models::{NewUser, User};
use crate::db::Conn;
use crate::fields::StoreError;
use crate::ids::{DoctorId, PatientId, RowId, UserId};
use crate::services::Services;

pub const NATIONAL_ID_TAKEN: &str = "Another patient is registered with this national ID.";
pub const USERNAME_TAKEN: &str = "This username is taken.";

/// The longest name, address, postal code and allergy list, in characters.
const NAME_MAX_CHARS: usize = 100;
const ADDRESS_MAX_CHARS: usize = 300;
const POSTAL_CODE_MAX_CHARS: usize = 12;
const ALLERGIES_MAX_CHARS: usize = 2000;

/// `text` typed into `column`, checked and normalised, or what is wrong with it. `today` bounds
/// the date of birth.
pub fn check(column: ProfileColumn, text: &str, today: Date) -> Result<String, String> {
    let listed = |choices: &[&str], what: &str| {
        if choices.contains(&text) {
            Ok(text.to_string())
        } else {
            Err(format!("Choose one of the listed {what}."))
        }
    };
    let optional_number = |min, max, what| {
        if text.trim().is_empty() {
            Ok(String::new())
        } else {
            validate::number(text, min, max, what)
        }
    };
    match column {
        ProfileColumn::NationalId => validate::national_id(text).map_err(str::to_string),
        ProfileColumn::FirstName => validate::text(text, NAME_MAX_CHARS, true, "first name"),
        ProfileColumn::LastName => validate::text(text, NAME_MAX_CHARS, true, "last name"),
        ProfileColumn::DateOfBirth => validate::date(text, today, true)
            .map(validate::date_text)
            .map_err(str::to_string),
        ProfileColumn::Gender => listed(&validate::GENDERS, "genders"),
        ProfileColumn::BloodType => listed(&validate::BLOOD_TYPES, "blood types"),
        ProfileColumn::Phone => validate::phone(text).map_err(str::to_string),
        ProfileColumn::Email => validate::email(text).map_err(str::to_string),
        ProfileColumn::Address => validate::text(text, ADDRESS_MAX_CHARS, false, "address"),
        ProfileColumn::PostalCode => {
            validate::text(text, POSTAL_CODE_MAX_CHARS, false, "postal code")
        }
        ProfileColumn::HeightCm => optional_number(20.0, 280.0, "height in cm"),
        ProfileColumn::WeightKg => optional_number(0.5, 500.0, "weight in kg"),
        ProfileColumn::Allergies => validate::text(text, ALLERGIES_MAX_CHARS, false, "allergies"),
    }
}

/// A profile as typed, checked and normalised. A column is `None` where the form left blank a
/// field the doctor never saw in full: the stored value stays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    values: [Option<String>; 13],
    /// What each kept column's rule says of a blank value, for a profile not yet stored.
    blank_problems: Vec<FieldProblem>,
}

impl Profile {
    /// The profile typed as `text` of each column, or each field's problem. A blank value of a
    /// column in `kept_if_blank` keeps the stored one.
    pub fn check<'a>(
        text: impl Fn(ProfileColumn) -> &'a str,
        today: Date,
        kept_if_blank: &[ProfileColumn],
    ) -> Result<Profile, Vec<FieldProblem>> {
        let mut problems = Vec::new();
        let mut blank_problems = Vec::new();
        let values = ProfileColumn::ALL.map(|column| {
            let typed = text(column);
            if typed.trim().is_empty() && kept_if_blank.contains(&column) {
                if let Err(problem) = check(column, "", today) {
                    blank_problems.push((column.name(), problem));
                }
                return None;
            }
            check(column, typed, today)
                .map_err(|problem| problems.push((column.name(), problem)))
                .ok()
        });
        if problems.is_empty() {
            Ok(Profile {
                values,
                blank_problems,
            })
        } else {
            Err(problems)
        }
    }

    /// The value typed for `column`, or `None` if the stored one stays.
    pub fn value(&self, column: ProfileColumn) -> Option<&str> {
        self.values[column as usize].as_deref()
    }

    /// The row to store for `patient_id`: `current` (if any) with this profile's values sealed
    /// over it, or the field a new profile lacks.
    fn sealed_over(
        &self,
        app: &Services,
        patient_id: &str,
        current: Option<PatientRow>,
    ) -> Result<Result<PatientRow, FieldProblem>, StoreError> {
        let is_new = current.is_none();
        if let (true, Some(problem)) = (is_new, self.blank_problems.first()) {
            return Ok(Err(problem.clone()));
        }
        let sealed = app
            .fields
            .row("patients", RowId(patient_id), PatientId(patient_id));
        let mut row = current.unwrap_or_else(|| PatientRow::empty(patient_id));
        for column in ProfileColumn::ALL {
            let value = match (self.value(column), is_new) {
                (Some(value), _) => value,
                (None, true) => "",
                (None, false) => continue,
            };
            if column == ProfileColumn::NationalId {
                row.national_id_index = app.fields.blind_index("patients", column.name(), value)?;
            }
            column.store(&mut row, sealed.seal(column.name(), value)?);
        }
        row.updated_at = app.now();
        Ok(Ok(row))
    }

    /// Whether this profile's national ID is already another patient's than `patient_id`.
    fn national_id_taken(
        &self,
        app: &Services,
        patient_id: &str,
        conn: &mut Conn,
    ) -> Result<bool, StoreError> {
        let Some(national_id) = self.value(ProfileColumn::NationalId) else {
            return Ok(false);
        };
        if national_id.is_empty() {
            return Ok(false);
        }
        let indexes = app
            .fields
            .blind_index_candidates("patients", "national_id", national_id)?;
        let rows = PatientRow::find_by_national_id_index(&indexes, conn)?;
        Ok(rows.iter().any(|row| {
            row.user_id != patient_id
                && app
                    .fields
                    .row("patients", RowId(&row.user_id), PatientId(&row.user_id))
                    .open("national_id", &row.national_id)
                    .is_ok_and(|v| v == national_id)
        }))
    }
}

/// Saves `profile` as patient `patient_id`'s, unless its national ID is another patient's.
pub fn save(
    app: &Services,
    conn: &mut Conn,
    actor: &Actor,
    patient_id: &str,
    profile: &Profile,
) -> Result<Result<(), FieldProblem>, StoreError> {
    conn.write_transaction(|conn| {
        app.catch_up(conn)?;
        let current = PatientRow::find(patient_id, conn)?;
        let row = match profile.sealed_over(app, patient_id, current)? {
            Ok(row) => row,
            Err(problem) => return Ok(Err(problem)),
        };
        if profile.national_id_taken(app, patient_id, conn)? {
            return Ok(Err(("national_id", NATIONAL_ID_TAKEN.into())));
        }
        PatientRow::save(&row, conn)?;
        super::changed(app, conn, actor, patient_id, "profile saved")?;
        Ok(Ok(()))
    })
}

/// A patient account to create: its (normalised, checked) username and one-time password's
/// hash, and its profile.
pub struct Registration<'a> {
    pub username: &'a str,
    pub password_hash: &'a str,
    pub profile: &'a Profile,
}

/// Registers a patient in one transaction: the account (which must change its password), the
/// profile, and the care of `doctor_id`, who registers them; returns the new account's id.
pub fn register(
    app: &Services,
    conn: &mut Conn,
    actor: &Actor,
    doctor_id: &str,
    new: &Registration<'_>,
) -> Result<Result<String, FieldProblem>, StoreError> {
    let id = random_id(app.id_length());
    let now = app.now();
    conn.write_transaction(|conn| {
        app.catch_up(conn)?;
        let row = match new.profile.sealed_over(app, &id, None)? {
            Ok(row) => row,
            Err(problem) => return Ok(Err(problem)),
        };
        if new.profile.national_id_taken(app, &id, conn)? {
            return Ok(Err(("national_id", NATIONAL_ID_TAKEN.into())));
        }
        if User::find_by_username(new.username, conn)?.is_some() {
            return Ok(Err(("username", USERNAME_TAKEN.into())));
        }
        let text = |column| new.profile.value(column).unwrap_or_default();
        let full_name = format!(
            "{} {}",
            text(ProfileColumn::FirstName),
            text(ProfileColumn::LastName)
        );
        crate::users::insert_account(
            app,
            &NewUser {
                id: &id,
                username: new.username,
                level: Level::Patient.as_str(),
                password_hash: new.password_hash,
                must_change_password: true,
                active: true,
                created_at: now,
                updated_at: now,
            },
            (&full_name, text(ProfileColumn::Email)),
            conn,
        )?;
        PatientRow::save(&row, conn)?;
        CareTeam::assign(
            DoctorId(doctor_id),
            PatientId(&id),
            UserId(doctor_id),
            now,
            conn,
        )?;
        app.audit.append(
            conn,
            now,
            &Entry::new(actor, action::USER_CREATED, Outcome::Success)
                .target(format!("user {}", new.username))
                .detail("level patient, registered by a doctor"),
        )?;
        super::audit(
            app,
            conn,
            actor,
            action::PATIENT_REGISTERED,
            &id,
            "profile created",
        )?;
        Ok(Ok(id))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encryption_registry_lists_exactly_the_profile_columns() {
        let encryptable = crate::fields::registry::encryptable_in("patients");
        assert_eq!(encryptable, ProfileColumn::NAMES);
    }

    fn today() -> Date {
        Date::from_calendar_date(2026, time::Month::December, 2).unwrap()
    }

    #[test]
    fn each_field_takes_what_its_rule_allows() {
        let ok = |c, t: &str| check(c, t, today());
        assert_eq!(
            ok(ProfileColumn::NationalId, " s1234567d ").unwrap(),
            "S1234567D"
        );
        assert_eq!(ok(ProfileColumn::FirstName, " Ana ").unwrap(), "Ana");
        assert!(ok(ProfileColumn::FirstName, " ").is_err());
        assert!(ok(ProfileColumn::LastName, &"x".repeat(101)).is_err());
        assert_eq!(
            ok(ProfileColumn::DateOfBirth, "1980-02-29").unwrap(),
            "1980-02-29"
        );
        assert!(ok(ProfileColumn::DateOfBirth, "2026-12-03").is_err());
        assert_eq!(ok(ProfileColumn::Gender, "female").unwrap(), "female");
        assert!(ok(ProfileColumn::Gender, "Female").is_err());
        assert!(ok(ProfileColumn::BloodType, "C+").is_err());
        assert_eq!(ok(ProfileColumn::Email, "").unwrap(), "");
        assert_eq!(ok(ProfileColumn::Address, "").unwrap(), "");
        assert!(ok(ProfileColumn::PostalCode, "1234567890123").is_err());
        assert_eq!(ok(ProfileColumn::HeightCm, " ").unwrap(), "");
        assert!(ok(ProfileColumn::HeightCm, "19").is_err());
        assert!(ok(ProfileColumn::WeightKg, "501").is_err());
        assert!(ok(ProfileColumn::Allergies, &"é".repeat(2001)).is_err());
        assert!(ok(ProfileColumn::Allergies, &"é".repeat(2000)).is_ok());
    }

    fn typed<'a>(values: &'a [(&'a str, &'a str)]) -> impl Fn(ProfileColumn) -> &'a str {
        move |column| {
            values
                .iter()
                .find(|(name, _)| *name == column.name())
                .map_or("", |(_, v)| *v)
        }
    }

    const FULL: [(&str, &str); 6] = [
        ("national_id", "S1234567D"),
        ("first_name", "Ana"),
        ("last_name", "Lim"),
        ("date_of_birth", "1980-02-29"),
        ("gender", "female"),
        ("blood_type", "O+"),
    ];

    #[test]
    fn a_profile_reports_every_wrong_field_at_once() {
        let problems = Profile::check(typed(&[("gender", "x"), ("height_cm", "3")]), today(), &[])
            .unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            fields,
            [
                "national_id",
                "first_name",
                "last_name",
                "date_of_birth",
                "gender",
                "blood_type",
                "height_cm"
            ]
        );
        let profile = Profile::check(typed(&FULL), today(), &[]).unwrap();
        assert_eq!(profile.value(ProfileColumn::FirstName), Some("Ana"));
        assert_eq!(profile.value(ProfileColumn::Phone), Some(""));
    }

    #[test]
    fn a_blank_field_the_doctor_never_saw_keeps_its_value_but_a_visible_one_is_checked() {
        let without_id: Vec<(&str, &str)> = FULL[1..].to_vec();
        let kept = [ProfileColumn::NationalId, ProfileColumn::Phone];
        let profile = Profile::check(typed(&without_id), today(), &kept).unwrap();
        assert_eq!(profile.value(ProfileColumn::NationalId), None);
        assert_eq!(profile.value(ProfileColumn::Phone), None);
        assert_eq!(profile.value(ProfileColumn::Email), Some(""));
        // Kept, but a profile not stored yet has nothing to keep: the rule of a blank value.
        assert_eq!(profile.blank_problems.len(), 1);
        assert_eq!(profile.blank_problems[0].0, "national_id");
        // Shown in full, a blank national ID is refused rather than stored blank.
        let problems = Profile::check(typed(&without_id), today(), &[]).unwrap_err();
        assert_eq!(problems[0].0, "national_id");
    }

    #[test]
    fn the_list_of_columns_is_the_list_of_names_and_masking_fields() {
        for (i, column) in ProfileColumn::ALL.into_iter().enumerate() {
            assert_eq!(column as usize, i, "profile values are indexed by the enum");
        }
        assert_eq!(ProfileColumn::NAMES.len(), ProfileColumn::ALL.len());
        for (column, name) in ProfileColumn::ALL.into_iter().zip(ProfileColumn::NAMES) {
            assert_eq!(column.name(), name);
            assert_eq!(ProfileColumn::parse(name), Some(column));
        }
        let masking: Vec<&str> = crate::masking::PROFILE_FIELDS
            .iter()
            .map(|f| f.column)
            .collect();
        assert_eq!(masking, ProfileColumn::NAMES);
    }
}
