//! The pages, in folders that follow the URL map (`account/`, `admin/`, `login/`, `patients/`,
//! `records/`), and what every page shares: the layout, the headers, the error page.

mod account;
mod admin;
mod appointment_form;
mod blocking;
pub mod catchers;
pub mod error;
mod files;
mod headers;
mod home;
mod layout;
mod login;
pub mod metrics;
pub mod page;
mod patients;
mod records;
mod request_pin;
mod setup;
pub mod tls;

pub use error::{AppError, Rejected};
pub use headers::SecurityHeaders;
pub use layout::{form_context, form_context_of, FormView, Layout, Paging};
pub use page::{Template, Templates};
pub use request_pin::{OwnPin, PinDatabase};

use rocket::form::FromForm;
use rocket::Route;

/// Every route medvault mounts at `/`.
pub fn routes() -> Vec<Route> {
    [
        home::routes(),
        login::routes(),
        setup::routes(),
        account::routes(),
        admin::routes(),
        metrics::routes(),
        patients::routes(),
        records::routes(),
        files::routes(),
    ]
    .concat()
}

/// A form whose only field is its CSRF token: the buttons that sign out, revoke or delete.
#[derive(FromForm)]
pub struct ButtonForm {
    #[field(name = "csrf_token")]
    _csrf_token: String,
}

/// `text` percent-encoded for a query string.
pub fn encode(text: &str) -> String {
    rocket::http::RawStr::new(text).percent_encode().to_string()
}

/// Tera filters the templates use: `datetime` shows seconds since the epoch as UTC.
pub fn register_filters(tera: &mut rocket_dyn_templates::tera::Tera) {
    tera.register_filter("datetime", datetime_filter);
    tera.register_filter("mask", mask_filter);
}

fn datetime_filter(
    value: &rocket_dyn_templates::tera::Value,
    _args: &std::collections::HashMap<String, rocket_dyn_templates::tera::Value>,
) -> rocket_dyn_templates::tera::Result<rocket_dyn_templates::tera::Value> {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    let text = value
        .as_i64()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(format).ok())
        .unwrap_or_default();
    Ok(rocket_dyn_templates::tera::Value::String(text))
}

/// `mask`: see [`crate::masking::mask`]; a value that is not text is masked whole.
fn mask_filter(
    value: &rocket_dyn_templates::tera::Value,
    _args: &std::collections::HashMap<String, rocket_dyn_templates::tera::Value>,
) -> rocket_dyn_templates::tera::Result<rocket_dyn_templates::tera::Value> {
    let text = match value.as_str() {
        Some(text) => crate::masking::mask(text),
        None => crate::masking::mask("masked"),
    };
    Ok(rocket_dyn_templates::tera::Value::String(text))
}

/// `bytes` as people read sizes: `20 MiB`, `1.5 MiB`, `2 KiB`, `900 bytes`.
pub fn size_text(bytes: u64) -> String {
    let (value, unit) = if bytes >= 1 << 20 {
        (bytes as f64 / (1u64 << 20) as f64, "MiB")
    } else if bytes >= 1 << 10 {
        (bytes as f64 / 1024.0, "KiB")
    } else {
        return format!("{bytes} bytes");
    };
    let text = format!("{value:.1}");
    format!("{} {unit}", text.trim_end_matches(".0"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(super::size_text(20 << 20), "20 MiB");
        assert_eq!(super::size_text(3 << 19), "1.5 MiB");
        assert_eq!(super::size_text(2048), "2 KiB");
        assert_eq!(super::size_text(900), "900 bytes");
    }
}
