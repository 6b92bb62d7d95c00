//! The patient profile's rules: what each field accepts, as it is typed.

use time::Date;

use super::validate;
pub use crate::db::models::records::ProfileColumn;

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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_list_of_columns_is_the_list_of_names_and_masking_fields() {
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
