//! A patient's profile row and the list of its columns.

use diesel::prelude::*;

use crate::db::schema::patients;
use crate::db::Conn;
use crate::db::LoadOne;

#[derive(Queryable, Selectable, Insertable, AsChangeset, Clone, Debug)]
#[diesel(table_name = patients)]
pub struct PatientRow {
    pub user_id: String,
    pub national_id: String,
    pub national_id_index: String,
    pub first_name: String,
    pub last_name: String,
    pub date_of_birth: String,
    pub gender: String,
    pub blood_type: String,
    pub phone: String,
    pub email: String,
    pub address: String,
    pub postal_code: String,
    pub height_cm: String,
    pub weight_kg: String,
    pub allergies: String,
    pub updated_at: i64,
}

/// A column of the patient profile, in the order pages show it. Everything that lists the
/// profile (the form, the row, the masking table, the encryption registry's checks) derives from
/// this list, and every `match` on it is exhaustive: a new field that one of them does not
/// handle is a compile error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProfileColumn {
    NationalId,
    FirstName,
    LastName,
    DateOfBirth,
    Gender,
    BloodType,
    Phone,
    Email,
    Address,
    PostalCode,
    HeightCm,
    WeightKg,
    Allergies,
}

impl ProfileColumn {
    pub const ALL: [ProfileColumn; 13] = [
        ProfileColumn::NationalId,
        ProfileColumn::FirstName,
        ProfileColumn::LastName,
        ProfileColumn::DateOfBirth,
        ProfileColumn::Gender,
        ProfileColumn::BloodType,
        ProfileColumn::Phone,
        ProfileColumn::Email,
        ProfileColumn::Address,
        ProfileColumn::PostalCode,
        ProfileColumn::HeightCm,
        ProfileColumn::WeightKg,
        ProfileColumn::Allergies,
    ];

    /// The column names (which are also the form's field names), in the same order.
    pub const NAMES: [&'static str; 13] = {
        let mut names = [""; 13];
        let mut i = 0;
        while i < names.len() {
            names[i] = ProfileColumn::ALL[i].name();
            i += 1;
        }
        names
    };

    pub const fn name(self) -> &'static str {
        match self {
            ProfileColumn::NationalId => "national_id",
            ProfileColumn::FirstName => "first_name",
            ProfileColumn::LastName => "last_name",
            ProfileColumn::DateOfBirth => "date_of_birth",
            ProfileColumn::Gender => "gender",
            ProfileColumn::BloodType => "blood_type",
            ProfileColumn::Phone => "phone",
            ProfileColumn::Email => "email",
            ProfileColumn::Address => "address",
            ProfileColumn::PostalCode => "postal_code",
            ProfileColumn::HeightCm => "height_cm",
            ProfileColumn::WeightKg => "weight_kg",
            ProfileColumn::Allergies => "allergies",
        }
    }

    /// What pages and the encryption page call this column.
    pub const fn title(self) -> &'static str {
        match self {
            ProfileColumn::NationalId => "National ID",
            ProfileColumn::FirstName => "First name",
            ProfileColumn::LastName => "Last name",
            ProfileColumn::DateOfBirth => "Date of birth",
            ProfileColumn::Gender => "Gender",
            ProfileColumn::BloodType => "Blood type",
            ProfileColumn::Phone => "Phone",
            ProfileColumn::Email => "Email",
            ProfileColumn::Address => "Address",
            ProfileColumn::PostalCode => "Postal code",
            ProfileColumn::HeightCm => "Height (cm)",
            ProfileColumn::WeightKg => "Weight (kg)",
            ProfileColumn::Allergies => "Allergies",
        }
    }

    pub fn parse(name: &str) -> Option<ProfileColumn> {
        ProfileColumn::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The stored form of this column in `row`.
    pub fn stored(self, row: &PatientRow) -> &str {
        match self {
            ProfileColumn::NationalId => &row.national_id,
            ProfileColumn::FirstName => &row.first_name,
            ProfileColumn::LastName => &row.last_name,
            ProfileColumn::DateOfBirth => &row.date_of_birth,
            ProfileColumn::Gender => &row.gender,
            ProfileColumn::BloodType => &row.blood_type,
            ProfileColumn::Phone => &row.phone,
            ProfileColumn::Email => &row.email,
            ProfileColumn::Address => &row.address,
            ProfileColumn::PostalCode => &row.postal_code,
            ProfileColumn::HeightCm => &row.height_cm,
            ProfileColumn::WeightKg => &row.weight_kg,
            ProfileColumn::Allergies => &row.allergies,
        }
    }

    /// Puts `stored` (already in its stored form) in this column of `row`.
    pub fn store(self, row: &mut PatientRow, stored: String) {
        let slot = match self {
            ProfileColumn::NationalId => &mut row.national_id,
            ProfileColumn::FirstName => &mut row.first_name,
            ProfileColumn::LastName => &mut row.last_name,
            ProfileColumn::DateOfBirth => &mut row.date_of_birth,
            ProfileColumn::Gender => &mut row.gender,
            ProfileColumn::BloodType => &mut row.blood_type,
            ProfileColumn::Phone => &mut row.phone,
            ProfileColumn::Email => &mut row.email,
            ProfileColumn::Address => &mut row.address,
            ProfileColumn::PostalCode => &mut row.postal_code,
            ProfileColumn::HeightCm => &mut row.height_cm,
            ProfileColumn::WeightKg => &mut row.weight_kg,
            ProfileColumn::Allergies => &mut row.allergies,
        };
        *slot = stored;
    }
}

impl PatientRow {
    /// A profile with nothing in it yet, for a patient registered now.
    pub fn empty(user_id: &str) -> PatientRow {
        PatientRow {
            user_id: user_id.to_string(),
            national_id: String::new(),
            national_id_index: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            date_of_birth: String::new(),
            gender: String::new(),
            blood_type: String::new(),
            phone: String::new(),
            email: String::new(),
            address: String::new(),
            postal_code: String::new(),
            height_cm: String::new(),
            weight_kg: String::new(),
            allergies: String::new(),
            updated_at: 0,
        }
    }

    pub fn find(user_id: &str, conn: &mut Conn) -> QueryResult<Option<PatientRow>> {
        patients::table
            .find(user_id)
            .select(PatientRow::as_select())
            .load_one(conn)
    }

    pub fn find_by_national_id_index(
        indexes: &[String],
        conn: &mut Conn,
    ) -> QueryResult<Vec<PatientRow>> {
        patients::table
            .filter(patients::national_id_index.eq_any(indexes))
            .select(PatientRow::as_select())
            .load(conn)
    }

    /// Inserts the profile, or replaces every column but its creation.
    pub fn save(row: &PatientRow, conn: &mut Conn) -> QueryResult<()> {
        crate::db::per_backend!(conn, |inner| diesel::insert_into(patients::table)
            .values(row)
            .on_conflict(patients::user_id)
            .do_update()
            .set((
                patients::national_id.eq(&row.national_id),
                patients::national_id_index.eq(&row.national_id_index),
                patients::first_name.eq(&row.first_name),
                patients::last_name.eq(&row.last_name),
                patients::date_of_birth.eq(&row.date_of_birth),
                patients::gender.eq(&row.gender),
                patients::blood_type.eq(&row.blood_type),
                patients::phone.eq(&row.phone),
                patients::email.eq(&row.email),
                patients::address.eq(&row.address),
                patients::postal_code.eq(&row.postal_code),
                patients::height_cm.eq(&row.height_cm),
                patients::weight_kg.eq(&row.weight_kg),
                patients::allergies.eq(&row.allergies),
                patients::updated_at.eq(row.updated_at),
            ))
            .execute(inner))
        .map(|_| ())
    }
}
