//! How a profile field is shown to a level: in full, masked or hidden, with defaults the admin
//! can change at `/admin/masking`, and the mask itself (the `mask` filter of the templates).

use std::collections::HashMap;

use serde::Serialize;

use crate::access::Level;
use crate::db::models::records::ProfileColumn;

/// Values shorter than this are masked whole: with the first and last four characters shown,
/// fewer than three would stay hidden.
const SHORTEST_PARTLY_SHOWN: usize = 8;
/// What a value masked whole looks like, whatever its length (its length is not shown).
const WHOLLY_MASKED: &str = "••••••";

/// The first character, one `•` per hidden character, and the last four characters, counted in
/// characters (not bytes). Too short to mask safely: masked whole. Empty stays empty.
pub fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.is_empty() {
        return String::new();
    }
    if chars.len() < SHORTEST_PARTLY_SHOWN {
        return WHOLLY_MASKED.to_string();
    }
    let hidden = chars.len() - 5;
    let mut out = String::with_capacity(value.len() + hidden * 2);
    out.push(chars[0]);
    out.extend(std::iter::repeat_n('•', hidden));
    out.extend(&chars[chars.len() - 4..]);
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Full,
    Masked,
    Hidden,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Full, Mode::Masked, Mode::Hidden];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Masked => "masked",
            Mode::Hidden => "hidden",
        }
    }

    pub fn parse(text: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.as_str() == text)
    }
}

/// A field of the patient profile: its column, its label, and whether it is masked by default.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ProfileField {
    pub column: &'static str,
    pub title: &'static str,
    masked_by_default: bool,
}

impl ProfileField {
    const fn of(column: ProfileColumn) -> ProfileField {
        use ProfileColumn::*;
        let masked_by_default = match column {
            NationalId | Phone | Address | PostalCode => true,
            FirstName | LastName | DateOfBirth | Gender | BloodType | Email | HeightCm
            | WeightKg | Allergies => false,
        };
        ProfileField {
            column: column.name(),
            title: column.title(),
            masked_by_default,
        }
    }
}

/// The profile in the order pages show it: one entry per [`ProfileColumn`].
pub const PROFILE_FIELDS: &[ProfileField] = &{
    let mut fields = [ProfileField::of(ProfileColumn::NationalId); ProfileColumn::ALL.len()];
    let mut i = 0;
    while i < fields.len() {
        fields[i] = ProfileField::of(ProfileColumn::ALL[i]);
        i += 1;
    }
    fields
};

/// The levels whose view of a profile the admin sets (an admin opens no record by default).
pub const LEVELS: [Level; 3] = [Level::Doctor, Level::Patient, Level::Admin];

pub fn profile_field(column: &str) -> Option<&'static ProfileField> {
    PROFILE_FIELDS.iter().find(|f| f.column == column)
}

/// The admin's table of modes, over the defaults.
#[derive(Clone, Debug, Default)]
pub struct Visibility {
    chosen: HashMap<(String, Level), Mode>,
}

impl Visibility {
    /// From the stored rows; rows naming an unknown field, level or mode are ignored.
    /// The visibility the database holds (`field_visibility`).
    pub fn load(conn: &mut crate::db::Conn) -> diesel::QueryResult<Visibility> {
        Ok(Visibility::from_rows(
            &crate::db::models::records::FieldVisibilityRows::all(conn)?,
        ))
    }

    pub fn from_rows(rows: &[(String, String, String)]) -> Visibility {
        let chosen = rows
            .iter()
            .filter_map(|(field, level, mode)| {
                let field = profile_field(field)?;
                Some((
                    (field.column.to_string(), Level::parse(level)?),
                    Mode::parse(mode)?,
                ))
            })
            .collect();
        Visibility { chosen }
    }

    pub fn mode(&self, column: &str, level: Level) -> Mode {
        if let Some(mode) = self.chosen.get(&(column.to_string(), level)) {
            return *mode;
        }
        match profile_field(column) {
            Some(f) if f.masked_by_default => Mode::Masked,
            Some(_) => Mode::Full,
            None => Mode::Hidden,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_value_shows_its_first_and_last_four_characters() {
        assert_eq!(mask("S1234567D"), "S••••567D");
        assert_eq!(mask("+65 9123 4567"), "+••••••••4567");
    }

    #[test]
    fn short_values_are_masked_whole_and_empty_stays_empty() {
        assert_eq!(mask(""), "");
        for short in ["a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg"] {
            assert_eq!(mask(short), WHOLLY_MASKED, "{short}");
        }
        assert_eq!(mask("abcdefgh"), "a•••efgh");
    }

    #[test]
    fn multi_byte_text_is_masked_by_characters() {
        assert_eq!(mask("東京都千代田区丸の内"), "東•••••区丸の内");
        assert_eq!(mask("ÉÉÉÉÉÉÉÉÉ"), "É••••ÉÉÉÉ");
        assert_eq!(mask("日本語"), WHOLLY_MASKED);
    }

    #[test]
    fn defaults_mask_the_identifying_fields_and_choices_override_them() {
        let defaults = Visibility::default();
        for column in ["national_id", "address", "postal_code", "phone"] {
            assert_eq!(defaults.mode(column, Level::Doctor), Mode::Masked);
            assert_eq!(defaults.mode(column, Level::Patient), Mode::Masked);
        }
        assert_eq!(defaults.mode("allergies", Level::Doctor), Mode::Full);
        let chosen = Visibility::from_rows(&[
            ("phone".into(), "doctor".into(), "hidden".into()),
            ("nonsense".into(), "doctor".into(), "full".into()),
        ]);
        assert_eq!(chosen.mode("phone", Level::Doctor), Mode::Hidden);
        assert_eq!(chosen.mode("phone", Level::Patient), Mode::Masked);
        assert_eq!(chosen.mode("nonsense", Level::Doctor), Mode::Hidden);
    }
}
