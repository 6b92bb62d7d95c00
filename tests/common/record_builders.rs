//! Builders for the record tests: valid forms changed one field at a time, a doctor with a
//! registered patient, a record filled through the doctor's forms.

use super::*;
use medvault::access::Level;
use rocket::http::Status;

/// PNG magic and a few bytes: the server reads the type from the content, never from the name.
pub const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR-not-a-real-image-but-png-magic";

/// A form as (name, value) pairs: built from a valid default, then changed one field at a time
/// so that each case differs from a good form by exactly what it tests.
#[derive(Clone)]
pub struct Form(pub Vec<(&'static str, String)>);

impl Form {
    pub fn new(pairs: &[(&'static str, &str)]) -> Form {
        Form(pairs.iter().map(|(k, v)| (*k, v.to_string())).collect())
    }

    pub fn with(mut self, name: &'static str, value: &str) -> Form {
        match self.0.iter_mut().find(|(k, _)| *k == name) {
            Some(pair) => pair.1 = value.to_string(),
            None => self.0.push((name, value.to_string())),
        }
        self
    }

    pub fn pairs(&self) -> Vec<(&str, &str)> {
        self.0.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

pub fn post(browser: &mut Browser<'_>, uri: &str, form: &Form) -> Page {
    browser.post(uri, &form.pairs())
}

/// A complete, valid registration (and profile) form.
pub fn registration(username: &str, national_id: &str, first_name: &str, last_name: &str) -> Form {
    Form::new(&[
        ("username", username),
        ("national_id", national_id),
        ("first_name", first_name),
        ("last_name", last_name),
        ("date_of_birth", "1980-02-29"),
        ("gender", "female"),
        ("blood_type", "O+"),
        ("phone", "+65 6123 4567"),
        ("email", "patient@example.org"),
        ("address", "10 Downing Street"),
        ("postal_code", "238801"),
        ("height_cm", "165"),
        ("weight_kg", "60.5"),
        ("allergies", "Penicillin"),
    ])
}

/// A valid consultation whose diagnosis, notes and prescription carry `text`.
pub fn consultation(text: &str) -> Form {
    Form::new(&[
        ("occurred_at", "2026-11-20T10:30"),
        ("department", "Cardiology"),
        ("block", "B"),
        ("unit", "07-12"),
        ("diagnosis", &format!("Diagnosis {text}")),
        ("notes", &format!("Notes {text}")),
        ("prescription", &format!("Prescription {text}")),
    ])
}

pub fn vaccination(vaccine: &str, dose: &str, given_on: &str) -> Form {
    Form::new(&[
        ("vaccine", vaccine),
        ("dose_number", dose),
        ("given_on", given_on),
        ("lot", "HB-2231"),
        ("given_by", "Nurse Joy"),
    ])
}

pub fn appointment(starts_at: &str, reason: &str) -> Form {
    Form::new(&[("starts_at", starts_at), ("reason", reason)])
}

/// The fields of the scan form besides the file.
pub fn scan_fields(description: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("category", "X-ray"),
        ("description", description),
        ("taken_on", "2026-11-19"),
    ]
}

/// A new user of `level` signed in with [`PASSWORD`]; returns their id and browser.
pub fn sign_in<'a>(app: &'a TestApp, level: Level, username: &str) -> (String, Browser<'a>) {
    let id = app.create_user(level, username);
    let mut browser = app.browser();
    browser
        .login(username, PASSWORD)
        .assert_status(Status::SeeOther);
    (id, browser)
}

/// Registers a patient through `/patients/new`; returns their id and one-time password.
pub fn register(doctor: &mut Browser<'_>, form: &Form) -> (String, String) {
    let page = post(doctor, "/patients/new", form);
    page.assert_status(Status::Ok);
    let one_time = between(&page.body, "<code>", "</code>");
    let id = between(&page.body, "href=\"/patients/", "\"");
    (id, one_time)
}

/// The registered patient `username` replaces the one-time password and signs in with theirs.
pub fn patient_signs_in<'a>(app: &'a TestApp, username: &str, one_time: &str) -> Browser<'a> {
    let mut first = app.browser();
    first
        .login(username, one_time)
        .assert_redirect("/account/password");
    first
        .post(
            "/account/password",
            &[
                ("current_password", one_time),
                ("new_password", PASSWORD),
                ("confirm_password", PASSWORD),
            ],
        )
        .assert_redirect("/");
    let mut patient = app.browser();
    patient.login(username, PASSWORD).assert_redirect("/");
    patient
}

/// The id after the first `prefix` in `html` (ids are letters and digits).
pub fn id_after(html: &str, prefix: &str) -> String {
    let start = html
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix} in the page: {html}"))
        + prefix.len();
    html[start..]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect()
}

/// The ids of one entry of each kind in a record.
pub struct Entries {
    pub consultation: String,
    pub file: String,
    pub appointment: String,
}

/// Fills the record of `patient_id` through the doctor's forms: a consultation, a vaccination,
/// a scan and an appointment at `starts_at`, each carrying `text`.
pub fn fill_record(
    doctor: &mut Browser<'_>,
    patient_id: &str,
    text: &str,
    starts_at: &str,
) -> Entries {
    let record = format!("/patients/{patient_id}");
    post(
        doctor,
        &format!("{record}/consultations"),
        &consultation(text),
    )
    .assert_redirect(&record);
    post(
        doctor,
        &format!("{record}/vaccinations"),
        &vaccination(&format!("Vaccine {text}"), "1", "2026-01-10"),
    )
    .assert_redirect(&record);
    // A page with the session's CSRF token, which the multipart helper sends.
    doctor.get(&record);
    let description = format!("Scan {text}");
    doctor
        .post_multipart(
            &format!("{record}/scans"),
            &scan_fields(&description),
            "chest.png",
            PNG,
        )
        .assert_redirect(&record);
    post(
        doctor,
        &format!("{record}/appointments"),
        &appointment(starts_at, &format!("Appointment {text}")),
    )
    .assert_redirect(&record);
    let page = doctor.get(&record);
    page.assert_status(Status::Ok);
    Entries {
        consultation: id_after(&page.body, &format!("{record}/consultations/")),
        file: id_after(&page.body, &format!("{record}/files/")),
        appointment: id_after(&page.body, &format!("action=\"{record}/appointments/")),
    }
}

/// A doctor ("dr.grey") with one patient ("pat.one") in their care whose profile is filled in;
/// the patient has replaced the one-time password with [`PASSWORD`]. Returns the doctor's
/// browser and the patient's id.
pub fn doctor_with_patient(app: &TestApp) -> (Browser<'_>, String) {
    let mut doctor = app.signed_in(Level::Doctor, "dr.grey");
    let form = registration("pat.one", "S1234567D", "Patricia", "Onewater")
        .with("email", "pat@example.org");
    let page = post(&mut doctor, "/patients/new", &form);
    page.assert_status(Status::Ok);
    assert!(page.body.contains("pat.one is registered"), "{}", page.body);
    let one_time = between(&page.body, "<code>", "</code>");
    let id = between(&page.body, "href=\"/patients/", "\"");
    replace_one_time_password(app, "pat.one", &one_time);
    (doctor, id)
}

/// The patient of [`doctor_with_patient`], signed in.
pub fn patient_browser(app: &TestApp) -> Browser<'_> {
    let mut patient = app.browser();
    patient.login("pat.one", PASSWORD).assert_redirect("/");
    patient
}
