//! What the record forms accept: dates as dates, numbers as numbers, a national ID in its
//! format. Each check returns the value as it is stored (normalised) or a message for the field.

use time::{Date, OffsetDateTime, PrimitiveDateTime};

const DATE: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");
const DATE_TIME: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");

pub const BLOOD_TYPES: [&str; 9] = ["A+", "A-", "B+", "B-", "AB+", "AB-", "O+", "O-", "unknown"];
pub const GENDERS: [&str; 4] = ["female", "male", "other", "undisclosed"];

/// A date `YYYY-MM-DD` between 1900 and `today` (inclusive) when `not_future`.
pub fn date(text: &str, today: Date, not_future: bool) -> Result<Date, &'static str> {
    let date = Date::parse(text.trim(), DATE).map_err(|_| "Enter a date like 2024-03-31.")?;
    if date.year() < 1900 {
        return Err("Enter a date after 1900.");
    }
    if not_future && date > today {
        return Err("This date is in the future.");
    }
    Ok(date)
}

pub fn date_text(date: Date) -> String {
    date.format(DATE).unwrap_or_default()
}

/// A date and time `YYYY-MM-DDTHH:MM` (what a browser's datetime-local field sends), read as
/// UTC, as seconds since the epoch, between 1900 and 2200.
pub fn date_time(text: &str) -> Result<i64, &'static str> {
    let at = PrimitiveDateTime::parse(text.trim(), DATE_TIME)
        .map_err(|_| "Enter a date and time like 2024-03-31T14:30.")?
        .assume_utc();
    if !(1900..2200).contains(&at.year()) {
        return Err("Enter a date between 1900 and 2200.");
    }
    Ok(at.unix_timestamp())
}

/// The datetime-local form of `seconds`, to re-fill a form.
pub fn date_time_text(seconds: i64) -> String {
    OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// A decimal number in `min..=max`, kept with at most one decimal place.
pub fn number(text: &str, min: f64, max: f64, what: &'static str) -> Result<String, String> {
    let text = text.trim();
    let value: f64 = text
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| format!("Enter the {what} as a number, like 72.5."))?;
    if !(min..=max).contains(&value) {
        return Err(format!("Enter a {what} between {min} and {max}."));
    }
    Ok(format!("{:.1}", (value * 10.0).round() / 10.0))
}

/// A whole number in `min..=max`.
pub fn whole_number(text: &str, min: u32, max: u32, what: &'static str) -> Result<u32, String> {
    let value: u32 = text
        .trim()
        .parse()
        .map_err(|_| format!("Enter the {what} as a whole number."))?;
    if !(min..=max).contains(&value) {
        return Err(format!("Enter a {what} between {min} and {max}."));
    }
    Ok(value)
}

/// A national ID in the NRIC style: a letter, seven digits, a letter (`S1234567D`).
pub fn national_id(text: &str) -> Result<String, &'static str> {
    let id = text.trim().to_uppercase();
    let bytes = id.as_bytes();
    let well_formed = bytes.len() == 9
        && bytes[0].is_ascii_uppercase()
        && bytes[1..8].iter().all(u8::is_ascii_digit)
        && bytes[8].is_ascii_uppercase();
    if well_formed {
        Ok(id)
    } else {
        Err("Enter a national ID like S1234567D: a letter, seven digits and a letter.")
    }
}

/// Free text of at most `max` characters, trimmed; `required` refuses an empty one.
pub fn text(value: &str, max: usize, required: bool, what: &str) -> Result<String, String> {
    let value = value.trim();
    if required && value.is_empty() {
        return Err(format!("Enter the {what}."));
    }
    if value.chars().count() > max {
        return Err(format!("The {what} has at most {max} characters."));
    }
    Ok(value.to_string())
}

/// The longest email address, in bytes: SMTP limits a path to 256 octets with its brackets.
pub const EMAIL_MAX_BYTES: usize = 254;

/// An email address, trimmed and lower-cased: `local@domain.tld` without spaces, at most
/// [`EMAIL_MAX_BYTES`] bytes (counted as mail servers count them, not in characters). Empty is
/// allowed: the field is optional everywhere.
pub fn email(text: &str) -> Result<String, &'static str> {
    let email = text.trim().to_lowercase();
    let well_formed = email
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if email.is_empty() {
        Ok(email)
    } else if email.len() > EMAIL_MAX_BYTES || email.contains(char::is_whitespace) || !well_formed {
        Err("Enter an email like name@example.org, or leave it empty.")
    } else {
        Ok(email)
    }
}

/// A phone number: digits with an optional leading `+`, spaces and dashes, 6 to 20 characters.
pub fn phone(text: &str) -> Result<String, &'static str> {
    let phone = text.trim();
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    let allowed = phone
        .chars()
        .enumerate()
        .all(|(i, c)| c.is_ascii_digit() || c == ' ' || c == '-' || (i == 0 && c == '+'));
    if phone.is_empty() || (allowed && (6..=15).contains(&digits) && phone.len() <= 20) {
        Ok(phone.to_string())
    } else {
        Err("Enter a phone number of 6 to 15 digits, like +65 6123 4567.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        Date::from_calendar_date(2026, time::Month::November, 23).unwrap()
    }

    #[test]
    fn dates_are_dates() {
        assert!(date("2024-02-29", today(), true).is_ok());
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "31/12/2020",
            "",
            "yesterday",
            "1850-01-01",
        ] {
            assert!(date(bad, today(), true).is_err(), "{bad}");
        }
        assert!(date("2030-01-01", today(), true).is_err());
        assert!(date("2030-01-01", today(), false).is_ok());
    }

    #[test]
    fn date_times_round_trip() {
        let at = date_time("2026-11-23T09:30").unwrap();
        assert_eq!(date_time_text(at), "2026-11-23T09:30");
        assert!(date_time("2026-11-23 09:30:00").is_err());
        assert!(date_time("2026-11-31T09:30").is_err());
    }

    #[test]
    fn numbers_are_numbers_in_range() {
        assert_eq!(number("72.46", 1.0, 500.0, "weight").unwrap(), "72.5");
        for bad in ["", "seventy", "NaN", "inf", "-3", "1e9", "72,5"] {
            assert!(number(bad, 1.0, 500.0, "weight").is_err(), "{bad}");
        }
        assert_eq!(whole_number("2", 1, 10, "dose").unwrap(), 2);
        assert!(whole_number("2.5", 1, 10, "dose").is_err());
        assert!(whole_number("0", 1, 10, "dose").is_err());
    }

    #[test]
    fn an_email_is_one_rule_counted_in_bytes() {
        assert_eq!(email("  Ana@Example.ORG ").unwrap(), "ana@example.org");
        assert_eq!(email("").unwrap(), "");
        let longest = format!("{}@example.org", "a".repeat(EMAIL_MAX_BYTES - 12));
        assert_eq!(email(&longest).unwrap().len(), EMAIL_MAX_BYTES);
        assert!(email(&format!("a{longest}")).is_err());
        // 136 characters but 260 bytes: too long for a mail server, so refused.
        let wide = format!("{}@example.org", "é".repeat(124));
        assert!(wide.chars().count() < EMAIL_MAX_BYTES && wide.len() > EMAIL_MAX_BYTES);
        assert!(email(&wide).is_err());
        for bad in [
            "ana",
            "@example.org",
            "ana@example",
            "ana maria@example.org",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn national_ids_have_their_format() {
        assert_eq!(national_id(" s1234567d ").unwrap(), "S1234567D");
        for bad in [
            "1234567",
            "S123456D",
            "S12345678D",
            "SS234567D",
            "S1234567",
            "S12345É7D",
        ] {
            assert!(national_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phones_and_texts() {
        assert!(phone("+65 6123-4567").is_ok());
        assert!(phone("").is_ok());
        assert!(phone("call me").is_err());
        assert!(phone("6+5").is_err());
        assert!(text(" ", 10, true, "diagnosis").is_err());
        assert!(text("é".repeat(10).as_str(), 10, true, "diagnosis").is_ok());
        assert!(text("é".repeat(11).as_str(), 10, true, "diagnosis").is_err());
    }
}
