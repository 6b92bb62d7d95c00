//! Medical records from the attacker's and the careless user's side: every record route asked
//! by people who must not get the record, masking and reveal, emergency access, tampered files
//! and links, bad uploads, script typed into every free-text field, invalid input, care teams
//! and search. `tests/records.rs` has the happy path.

use crate::common;

use std::path::PathBuf;

use common::record_builders::*;
use common::*;
use medvault::access::Level;
use rocket::http::Status;

/// Clinical text written into every entry of the victim's record: if it ever shows on a page
/// served to someone else, the record leaked.
const SECRET: &str = "ZEBRA-4417-clinical";
/// The victim's identifiers, which must not leak either.
const VICTIM_NID: &str = "S7654321A";
const VICTIM_LAST_NAME: &str = "Quillfeather";
/// What attackers try to write; it must never end up in the victim's record.
const HACKED: &str = "HACKED-by-outsider";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A doctor and a patient in their care with a full record carrying [`SECRET`].
struct Victim<'a> {
    doctor: Browser<'a>,
    doctor_id: String,
    patient: Browser<'a>,
    id: String,
    entries: Entries,
}

fn victim(app: &TestApp) -> Victim<'_> {
    let (doctor_id, mut doctor) = sign_in(app, Level::Doctor, "dr.alice");
    let (id, one_time) = register(
        &mut doctor,
        &registration("victim", VICTIM_NID, "Vicky", VICTIM_LAST_NAME),
    );
    let entries = fill_record(&mut doctor, &id, SECRET, "2027-03-01T09:00");
    let patient = patient_signs_in(app, "victim", &one_time);
    Victim {
        doctor,
        doctor_id,
        patient,
        id,
        entries,
    }
}

/// The number of rows of `table`, read straight from the database.
fn table_rows(app: &TestApp, table: &str) -> i64 {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.app().db.conn().expect("conn");
    diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
        .get_result::<Count>(&mut *conn)
        .expect("count")
        .n
}

/// The statuses of all appointments, oldest first.
fn appointment_statuses(app: &TestApp) -> Vec<String> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
    }
    let mut conn = app.app().db.conn().expect("conn");
    diesel::sql_query("SELECT status FROM appointments ORDER BY created_at, id")
        .load::<Row>(&mut *conn)
        .expect("appointments")
        .into_iter()
        .map(|r| r.status)
        .collect()
}

/// Every file under `storage/`: sealed copies and any partial write left behind.
fn stored_files(app: &TestApp) -> Vec<PathBuf> {
    match std::fs::read_dir(app.home.path().join("storage")) {
        Ok(entries) => entries.map(|e| e.expect("entry").path()).collect(),
        Err(_) => Vec::new(),
    }
}

fn audited(app: &TestApp, action: &str) -> usize {
    app.audit_actions().iter().filter(|a| *a == action).count()
}

/// Whether `page` turned the request away: 401, 403 or 404, or a redirect to sign in.
fn is_refusal(page: &Page) -> bool {
    matches!(page.status.code, 401 | 403 | 404)
        || (page.status == Status::SeeOther
            && page
                .location
                .as_deref()
                .is_some_and(|l| l.starts_with("/login")))
}

/// What of the victim's record `page` gives away.
fn leaks(page: &Page) -> Vec<&'static str> {
    let mut found: Vec<&'static str> = [SECRET, VICTIM_NID, VICTIM_LAST_NAME]
        .into_iter()
        .filter(|s| page.body.contains(s))
        .collect();
    if page.bytes.windows(PNG.len()).any(|w| w == PNG) {
        found.push("the scan's content");
    }
    found
}

/// The profile fields, in the order the pages list them.
const PROFILE: [&str; 13] = [
    "national_id",
    "first_name",
    "last_name",
    "date_of_birth",
    "gender",
    "blood_type",
    "phone",
    "email",
    "address",
    "postal_code",
    "height_cm",
    "weight_kg",
    "allergies",
];

/// Saves the masking grid the way the admin's browser does: every `<select>` of the form at
/// `/admin/masking` under the name the page gives it, with its current choice, except the
/// `changes` (field, level, mode). Reading the names from the page keeps this test about the
/// form the admin really has.
fn save_masking(admin: &mut Browser<'_>, changes: &[(&str, &str, &str)]) -> Page {
    let page = admin.get("/admin/masking");
    page.assert_status(Status::Ok);
    let mut pairs = Vec::new();
    for select in page.body.split("<select name=\"").skip(1) {
        let name = &select[..select.find('"').expect("end of name")];
        let options = &select[..select.find("</select>").expect("end of select")];
        let current = options
            .split("<option value=\"")
            .skip(1)
            .find(|o| o.contains("\" selected"))
            .map(|o| &o[..o.find('"').expect("end of value")])
            .unwrap_or_else(|| panic!("a choice for {name}"));
        // The field and level this select is for, as named in its name.
        let field = PROFILE
            .iter()
            .find(|f| name.contains(*f))
            .unwrap_or_else(|| panic!("a field in {name}"));
        let level = ["doctor", "patient", "admin"]
            .into_iter()
            .find(|l| name.contains(l))
            .unwrap_or_else(|| panic!("a level in {name}"));
        let mode = changes
            .iter()
            .find(|(f, l, _)| f == field && *l == level)
            .map_or(current, |(_, _, m)| *m);
        pairs.push((name.to_string(), mode.to_string()));
    }
    assert_eq!(
        pairs.len(),
        PROFILE.len() * 3,
        "one choice per field and level"
    );
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    admin.post("/admin/masking", &refs)
}

/// `text` as Tera's autoescape writes it into a page.
fn escaped(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            '/' => out.push_str("&#x2F;"),
            c => out.push(c),
        }
    }
    out
}

/// Panics unless no markup an attacker typed made it into `page` raw.
#[track_caller]
fn assert_no_raw_markup(what: &str, page: &Page) {
    let body = page.body.to_lowercase();
    for raw in ["<script", "<img", "onerror=alert(1)>"] {
        assert!(
            !body.contains(raw),
            "{what}: {raw} served raw:\n{}",
            page.body
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Nobody outside the care team gets a record, whatever route or id they try
// ---------------------------------------------------------------------------------------------

/// One request an outsider tries.
enum Attempt {
    Get(String),
    Post(String, Form),
    Upload(String),
}

impl Attempt {
    fn send(&self, browser: &mut Browser<'_>) -> Page {
        match self {
            Attempt::Get(uri) => browser.get(uri),
            Attempt::Post(uri, form) => post(browser, uri, form),
            Attempt::Upload(uri) => {
                // A page with the CSRF token first, so that only the record check can refuse.
                browser.get("/account/password");
                browser.post_multipart(uri, &scan_fields(HACKED), "x.png", PNG)
            }
        }
    }

    fn label(&self) -> String {
        match self {
            Attempt::Get(uri) => format!("GET {uri}"),
            Attempt::Post(uri, form) => format!("POST {uri} {:?}", form.0.first()),
            Attempt::Upload(uri) => format!("POST (multipart) {uri}"),
        }
    }
}

/// Every record route, aimed at the victim's record and entries; `link` is a download link the
/// victim's doctor was issued.
fn attempts_on(victim_id: &str, e: &Entries, link: &str) -> Vec<Attempt> {
    let r = format!("/patients/{victim_id}");
    let (c, f, a) = (&e.consultation, &e.file, &e.appointment);
    vec![
        Attempt::Get(r.clone()),
        Attempt::Post(
            format!("{r}/reveal"),
            Form::new(&[("field", "national_id")]),
        ),
        Attempt::Post(
            format!("{r}/profile"),
            registration("victim", VICTIM_NID, HACKED, HACKED),
        ),
        Attempt::Post(format!("{r}/consultations"), consultation(HACKED)),
        Attempt::Get(format!("{r}/consultations/{c}")),
        Attempt::Post(format!("{r}/consultations/{c}"), consultation(HACKED)),
        Attempt::Upload(format!("{r}/scans")),
        Attempt::Get(format!("{r}/files/{f}")),
        Attempt::Post(
            format!("{r}/vaccinations"),
            vaccination(HACKED, "1", "2026-01-10"),
        ),
        Attempt::Post(
            format!("{r}/appointments"),
            appointment("2027-04-01T09:00", HACKED),
        ),
        Attempt::Post(
            format!("{r}/appointments/{a}"),
            Form::new(&[("change", "cancel")]),
        ),
        Attempt::Post(
            format!("{r}/appointments/{a}"),
            Form::new(&[("change", "reschedule"), ("starts_at", "2027-05-01T09:00")]),
        ),
        Attempt::Post(
            format!("{r}/appointments/{a}"),
            Form::new(&[("change", "done")]),
        ),
        Attempt::Get(format!("/records/files/{f}")),
        Attempt::Post(format!("/records/appointments/{a}/cancel"), Form::new(&[])),
        Attempt::Get(link.to_string()),
    ]
}

/// What is wrong with the answer `page` to an outsider's `attempt`: anything but a refusal, or
/// any of the victim's record in it.
fn problems(who: &str, attempt: &Attempt, page: &Page) -> Vec<String> {
    let mut found = Vec::new();
    if !is_refusal(page) {
        found.push(format!(
            "{who}: {} answered {} (location {:?})",
            attempt.label(),
            page.status,
            page.location
        ));
    }
    let leaked = leaks(page);
    if !leaked.is_empty() {
        found.push(format!("{who}: {} leaked {leaked:?}", attempt.label()));
    }
    found
}

/// What only non-doctors are refused: a doctor may search any national ID and ask for
/// emergency access by design (tested below).
fn doctor_only_attempts(victim_id: &str) -> Vec<Attempt> {
    vec![
        Attempt::Get(format!("/patients?q={VICTIM_NID}")),
        Attempt::Get(format!("/patients?q={VICTIM_LAST_NAME}")),
        Attempt::Post(
            format!("/patients/{victim_id}/emergency"),
            Form::new(&[("reason", "I would like to read this record, please")]),
        ),
    ]
}

#[test]
fn every_record_route_refuses_outsiders_and_shows_them_nothing() {
    let app = TestApp::new();
    let mut v = victim(&app);
    let link = v
        .doctor
        .get(&format!("/patients/{}/files/{}", v.id, v.entries.file))
        .location
        .expect("a signed link for the victim's doctor");

    let (_, mut bob) = sign_in(&app, Level::Doctor, "dr.bob");
    let (bobs_patient, _) = register(
        &mut bob,
        &registration("bobs.patient", "S1111111B", "Bobby", "Tables"),
    );
    let (_, mut mallory) = sign_in(&app, Level::Patient, "mallory");
    let (_, mut admin) = sign_in(&app, Level::Admin, "admin");
    let mut guest = app.browser();

    // Each outsider can use their own pages: a refusal below is about the victim's record, not
    // a broken account.
    bob.get(&format!("/patients/{bobs_patient}"))
        .assert_status(Status::Ok);
    mallory.get("/records").assert_status(Status::Ok);
    admin.get("/admin/care-teams").assert_status(Status::Ok);

    let mut failures = Vec::new();
    for attempt in attempts_on(&v.id, &v.entries, &link) {
        for (who, browser) in [
            ("unassigned doctor", &mut bob),
            ("another patient", &mut mallory),
            ("admin", &mut admin),
            ("guest", &mut guest),
        ] {
            let page = attempt.send(browser);
            failures.extend(problems(who, &attempt, &page));
        }
    }
    for attempt in doctor_only_attempts(&v.id) {
        for (who, browser) in [
            ("another patient", &mut mallory),
            ("admin", &mut admin),
            ("guest", &mut guest),
        ] {
            let page = attempt.send(browser);
            failures.extend(problems(who, &attempt, &page));
        }
    }

    // The victim's entries under the id of the unassigned doctor's own patient: the record
    // check passes, so only matching each entry to its patient keeps them out (404).
    let own = format!("/patients/{bobs_patient}");
    let e = &v.entries;
    for attempt in [
        Attempt::Get(format!("{own}/consultations/{}", e.consultation)),
        Attempt::Post(
            format!("{own}/consultations/{}", e.consultation),
            consultation(HACKED),
        ),
        Attempt::Get(format!("{own}/files/{}", e.file)),
        Attempt::Post(
            format!("{own}/appointments/{}", e.appointment),
            Form::new(&[("change", "cancel")]),
        ),
        Attempt::Post(
            format!("{own}/appointments/{}", e.appointment),
            Form::new(&[("change", "reschedule"), ("starts_at", "2027-06-01T09:00")]),
        ),
    ] {
        let page = attempt.send(&mut bob);
        if page.status != Status::NotFound {
            failures.push(format!(
                "unassigned doctor via own patient: {} answered {}",
                attempt.label(),
                page.status
            ));
        }
        failures.extend(problems(
            "unassigned doctor via own patient",
            &attempt,
            &page,
        ));
    }
    // A doctor's id is no patient's: nothing to open, nothing to grant.
    for attempt in [
        Attempt::Get(format!("/patients/{}", v.doctor_id)),
        Attempt::Post(
            format!("/patients/{}/emergency", v.doctor_id),
            Form::new(&[("reason", "Checking a colleague's record, urgently")]),
        ),
    ] {
        let page = attempt.send(&mut bob);
        if page.status != Status::NotFound {
            failures.push(format!("{} answered {}", attempt.label(), page.status));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Nothing was written: one entry of each kind, the appointment still booked, no grant.
    assert_eq!(table_rows(&app, "consultations"), 1);
    assert_eq!(table_rows(&app, "vaccinations"), 1);
    assert_eq!(table_rows(&app, "medical_files"), 1);
    assert_eq!(stored_files(&app).len(), 1);
    assert_eq!(table_rows(&app, "emergency_grants"), 0);
    assert_eq!(appointment_statuses(&app), ["booked"]);
    let record = v.doctor.get(&format!("/patients/{}", v.id));
    record.assert_status(Status::Ok);
    assert!(record.body.contains(&format!("Diagnosis {SECRET}")));
    assert!(record.body.contains("Vicky"));
    assert!(!record.body.contains(HACKED), "{}", record.body);
    let own_record = v.patient.get("/records");
    assert!(own_record.body.contains(&format!("Diagnosis {SECRET}")));
    assert!(!own_record.body.contains(HACKED));
    // The doctor's refusals are on the audit trail.
    assert!(audited(&app, "record.refused") > 0);

    // Control: the same requests go through for the record's own doctor and patient, so the
    // refusals above came from the access checks and not from a mistyped route.
    for attempt in attempts_on(&v.id, &v.entries, &link)
        .into_iter()
        .chain(doctor_only_attempts(&v.id))
    {
        let (who, browser) = if attempt.label().contains(" /records/") {
            ("the patient", &mut v.patient)
        } else {
            ("the doctor", &mut v.doctor)
        };
        let page = attempt.send(browser);
        assert!(
            !is_refusal(&page) && page.status.code < 500,
            "{who}: {} answered {}",
            attempt.label(),
            page.status
        );
    }
}

#[test]
fn a_doctor_cannot_add_a_consultation_to_another_doctors_patient() {
    let app = TestApp::new();
    let mut v = victim(&app);
    let (_, mut bob) = sign_in(&app, Level::Doctor, "dr.bob");
    let refused_before = audited(&app, "record.refused");

    let page = post(
        &mut bob,
        &format!("/patients/{}/consultations", v.id),
        &consultation(HACKED),
    );
    page.assert_status(Status::Forbidden);
    assert!(leaks(&page).is_empty());

    // Nothing written: the database has the one consultation, and so does the rightful
    // doctor's page.
    assert_eq!(table_rows(&app, "consultations"), 1);
    let record = v.doctor.get(&format!("/patients/{}", v.id));
    assert_eq!(record.body.matches("<article class=\"entry\">").count(), 1);
    assert!(!record.body.contains(HACKED));
    assert_eq!(audited(&app, "record.refused"), refused_before + 1);
}

#[test]
fn a_patient_reaches_neither_another_patients_files_nor_appointments() {
    let app = TestApp::new();
    let mut v = victim(&app);
    let (_, mut mallory) = sign_in(&app, Level::Patient, "mallory");
    let (file, appt) = (v.entries.file.clone(), v.entries.appointment.clone());

    let page = mallory.get(&format!("/records/files/{file}"));
    page.assert_status(Status::NotFound);
    assert!(page.location.is_none());
    let page = mallory.post(&format!("/records/appointments/{appt}/cancel"), &[]);
    page.assert_status(Status::NotFound);
    assert_eq!(appointment_statuses(&app), ["booked"]);
    // Booking with a doctor who does not treat her is refused too, and writes nothing.
    let page = post(
        &mut mallory,
        "/records/appointments",
        &appointment("2027-03-02T09:00", HACKED).with("doctor_id", &v.doctor_id),
    );
    page.assert_status(Status::UnprocessableEntity);
    // She has no doctor, so the page says she cannot book rather than naming the field.
    assert!(
        page.body.contains("Choose one of your doctors.")
            || page.body.contains("No doctor is assigned to you yet"),
        "{}",
        page.body
    );
    assert!(leaks(&page).is_empty());
    assert_eq!(table_rows(&app, "appointments"), 1);
    // Her own record is empty: nothing of the victim's is in it.
    let own = mallory.get("/records");
    own.assert_status(Status::Ok);
    assert!(leaks(&own).is_empty());

    // The same two requests work for the owner, so the 404s above were the ownership check.
    let link = v.patient.get(&format!("/records/files/{file}"));
    assert!(link
        .location
        .as_deref()
        .unwrap_or("")
        .starts_with("/files/"));
    v.patient
        .post(&format!("/records/appointments/{appt}/cancel"), &[])
        .assert_redirect("/records");
    assert_eq!(appointment_statuses(&app), ["cancelled"]);
}

// ---------------------------------------------------------------------------------------------
// 2. Masking and reveal
// ---------------------------------------------------------------------------------------------

#[test]
fn identifiers_are_masked_by_default_and_the_admin_can_hide_or_unmask_them() {
    let app = TestApp::new();
    let mut v = victim(&app);
    let record = format!("/patients/{}", v.id);

    // Defaults, for the doctor and for the patient alike.
    for (who, page) in [
        ("doctor", v.doctor.get(&record)),
        ("patient", v.patient.get("/records")),
    ] {
        page.assert_status(Status::Ok);
        for (full, masked) in [
            (VICTIM_NID, "S••••321A"),
            ("+65 6123 4567", "+••••••••4567"),
            ("10 Downing Street", "1••••••••••••reet"),
        ] {
            assert!(!page.body.contains(full), "{who} sees {full}");
            assert!(page.body.contains(masked), "{who} does not see {masked}");
        }
        assert!(!page.body.contains("238801"), "{who} sees the postal code");
        assert!(page.body.contains("<dt>Address</dt>"));
        assert!(page.body.contains("Penicillin"), "not masked by default");
    }

    // A doctor cannot change the masking for themself.
    let page = v
        .doctor
        .post("/admin/masking", &[("mode[national_id:doctor]", "full")]);
    page.assert_status(Status::Forbidden);
    assert!(!v.doctor.get(&record).body.contains(VICTIM_NID));

    let (_, mut admin) = sign_in(&app, Level::Admin, "admin");
    let page = save_masking(
        &mut admin,
        &[
            ("address", "patient", "hidden"),
            ("national_id", "doctor", "full"),
            ("phone", "doctor", "full"),
        ],
    );
    assert_eq!(
        page.status,
        Status::SeeOther,
        "the masking form, as the page names its fields, is refused: {}",
        page.body
            .split("<p>")
            .nth(1)
            .and_then(|m| m.split("</p>").next())
            .unwrap_or(&page.body)
    );
    assert_eq!(audited(&app, "admin.masking_saved"), 1);

    // Hidden for the patient: neither the value nor its label.
    let own = v.patient.get("/records");
    assert!(!own.body.contains("<dt>Address</dt>"), "{}", own.body);
    assert!(!own.body.contains("1••••••••••••reet"));
    assert!(!own.body.contains("10 Downing Street"));
    // The patient's other masks are unchanged.
    assert!(own.body.contains("S••••321A"));
    assert!(!own.body.contains(VICTIM_NID));

    // Full for the doctor, on the record and in the list.
    let page = v.doctor.get(&record);
    assert!(page.body.contains(VICTIM_NID), "{}", page.body);
    assert!(page.body.contains("+65 6123 4567"));
    assert!(
        page.body.contains("1••••••••••••reet"),
        "address still masked"
    );
    assert!(!page.body.contains("10 Downing Street"));
    assert!(v.doctor.get("/patients").body.contains(VICTIM_NID));
    // A value shown in full is not "revealed" (nothing to audit).
    v.doctor
        .post(&format!("{record}/reveal"), &[("field", "national_id")])
        .assert_status(Status::BadRequest);

    // A mode that does not exist is refused and changes nothing.
    let page = save_masking(&mut admin, &[("national_id", "doctor", "visible")]);
    page.assert_status(Status::BadRequest);
    assert!(v.doctor.get(&record).body.contains(VICTIM_NID));
    assert!(!v.patient.get("/records").body.contains("<dt>Address</dt>"));
    assert_eq!(audited(&app, "admin.masking_saved"), 1);

    // Hidden for the doctor: not shown, and not revealable either.
    save_masking(&mut admin, &[("phone", "doctor", "hidden")]).assert_redirect("/admin/masking");
    let page = v.doctor.get(&record);
    assert!(!page.body.contains("<dt>Phone</dt>"));
    assert!(!page.body.contains("+••••••••4567"));
    let page = v
        .doctor
        .post(&format!("{record}/reveal"), &[("field", "phone")]);
    page.assert_status(Status::BadRequest);
    assert!(!page.body.contains("+65 6123 4567"));
    assert_eq!(audited(&app, "record.field_revealed"), 0);
}

#[test]
fn a_doctor_reveals_one_masked_value_once_and_the_patient_sees_it() {
    let app = TestApp::new();
    let mut v = victim(&app);
    let record = format!("/patients/{}", v.id);
    let reveal = format!("{record}/reveal");

    let page = v.doctor.post(&reveal, &[("field", "national_id")]);
    page.assert_status(Status::Ok);
    assert!(page.body.contains(VICTIM_NID), "{}", page.body);
    assert!(!page.body.contains("10 Downing Street"), "only that field");
    assert_eq!(audited(&app, "record.field_revealed"), 1);
    // Once: the next view is masked again.
    assert!(!v.doctor.get(&record).body.contains(VICTIM_NID));

    // Only a masked value can be revealed: a value shown in full, a hidden one, a made-up one.
    for field in ["first_name", "password_hash", "national_id_index", ""] {
        let page = v.doctor.post(&reveal, &[("field", field)]);
        page.assert_status(Status::BadRequest);
        assert!(!page.body.contains(VICTIM_NID));
    }
    assert_eq!(audited(&app, "record.field_revealed"), 1);

    // A doctor outside the care team reveals nothing.
    let (_, mut bob) = sign_in(&app, Level::Doctor, "dr.bob");
    let page = bob.post(&reveal, &[("field", "national_id")]);
    page.assert_status(Status::Forbidden);
    assert!(leaks(&page).is_empty());

    let log = v.patient.get("/account/access-log");
    assert!(log.body.contains("revealed a masked value"), "{}", log.body);
}

// ---------------------------------------------------------------------------------------------
// 3. Emergency access
// ---------------------------------------------------------------------------------------------

#[test]
fn emergency_access_needs_a_reason_is_audited_shown_to_the_patient_and_expires() {
    // Sessions outlive the hour the grant lasts, so that the refusal at the end is the grant's
    // expiry and not a signed-out doctor.
    let app = TestApp::with_config(|c| c.session_idle_timeout = 2 * 3600);
    let mut v = victim(&app);
    let (_, mut bob) = sign_in(&app, Level::Doctor, "dr.bob");
    let record = format!("/patients/{}", v.id);
    let emergency = format!("{record}/emergency");

    let page = bob.get(&record);
    page.assert_status(Status::Forbidden);
    assert!(page.body.contains(&format!("action=\"{emergency}\"")));
    assert!(page.body.contains("name=\"reason\""));
    assert!(leaks(&page).is_empty(), "{:?}", leaks(&page));

    // Too short, then too long: 422, the reason typed back in the form, nothing granted.
    let page = bob.post(&emergency, &[("reason", "need it")]);
    page.assert_status(Status::UnprocessableEntity);
    assert!(page.body.contains(">need it</textarea>"), "{}", page.body);
    assert!(page.body.contains("at least 15 characters"));
    assert!(leaks(&page).is_empty());
    let long = "x".repeat(501);
    let page = bob.post(&emergency, &[("reason", &long)]);
    page.assert_status(Status::UnprocessableEntity);
    assert!(page.body.contains("at most 500 characters"));
    assert!(leaks(&page).is_empty());
    assert_eq!(table_rows(&app, "emergency_grants"), 0);
    bob.get(&record).assert_status(Status::Forbidden);

    let reason = "Unconscious in the emergency room, allergy check";
    bob.post(&emergency, &[("reason", reason)])
        .assert_redirect(&record);
    let page = bob.get(&record);
    page.assert_status(Status::Ok);
    assert!(page.body.contains(&format!("Diagnosis {SECRET}")));
    assert!(page.body.contains("Emergency access until"));
    assert_eq!(audited(&app, "record.emergency_access"), 1);
    // The grant opens the files as well.
    let link = bob.get(&format!("{record}/files/{}", v.entries.file));
    let link = link.location.expect("a signed link");
    assert_eq!(bob.get(&link).bytes, PNG);

    let log = v.patient.get("/account/access-log");
    log.assert_status(Status::Ok);
    assert!(log.body.contains(reason), "{}", log.body);
    assert!(log.body.contains("used emergency access"));
    assert!(log.body.contains("dr.bob"));

    app.clock.advance(3601);
    let page = bob.get(&record);
    page.assert_status(Status::Forbidden);
    assert!(page.body.contains(&format!("action=\"{emergency}\"")));
    assert!(leaks(&page).is_empty());
    post(
        &mut bob,
        &format!("{record}/consultations"),
        &consultation(HACKED),
    )
    .assert_status(Status::Forbidden);
    let page = bob.get(&format!("{record}/files/{}", v.entries.file));
    page.assert_status(Status::Forbidden);
    assert_eq!(table_rows(&app, "consultations"), 1);
}

// ---------------------------------------------------------------------------------------------
// 4. Files: tampering on disk, links, uploads
// ---------------------------------------------------------------------------------------------

/// The download link the doctor gets for `file` of `patient_id`.
fn doctor_link(doctor: &mut Browser<'_>, patient_id: &str, file: &str) -> String {
    let page = doctor.get(&format!("/patients/{patient_id}/files/{file}"));
    page.assert_status(Status::SeeOther);
    page.location.expect("a signed link")
}

#[test]
fn a_file_altered_on_disk_is_refused_with_409_and_audited() {
    let app = TestApp::new();
    let mut v = victim(&app);
    let link = doctor_link(&mut v.doctor, &v.id, &v.entries.file);
    assert_eq!(v.doctor.get(&link).bytes, PNG, "served before the change");

    let files = stored_files(&app);
    assert_eq!(files.len(), 1, "{files:?}");
    let mut sealed = std::fs::read(&files[0]).unwrap();
    let middle = sealed.len() / 2;
    sealed[middle] ^= 0x01;
    std::fs::write(&files[0], &sealed).unwrap();

    // A fresh link, so that only the file's content can be the reason for refusing it.
    let link = doctor_link(&mut v.doctor, &v.id, &v.entries.file);
    let page = v.doctor.get(&link);
    page.assert_status(Status::Conflict);
    assert!(page.body.contains("Integrity error"));
    assert!(!page.bytes.windows(8).any(|w| w == &PNG[..8]));
    let own = v.patient.get(&format!("/records/files/{}", v.entries.file));
    let page = v
        .patient
        .get(own.location.as_deref().expect("a signed link"));
    page.assert_status(Status::Conflict);
    assert_eq!(audited(&app, "record.file_integrity_error"), 2);
}

#[test]
fn expired_altered_and_borrowed_links_are_refused_and_audited() {
    let app = TestApp::new();
    let mut v = victim(&app);
    let link = doctor_link(&mut v.doctor, &v.id, &v.entries.file);
    assert_eq!(
        v.doctor.get(&link).bytes,
        PNG,
        "the link works for its holder"
    );

    let token = link.strip_prefix("/files/").expect("a /files/ link");
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 5, "user.patient.file.expiry.mac: {token}");
    let (user, patient, expiry, mac) = (parts[0], parts[1], parts[3], parts[4]);
    let file = format!("{patient}.{}", parts[2]);
    let flipped_mac = {
        let mut chars: Vec<char> = mac.chars().collect();
        let last = chars.len() - 1;
        chars[last] = if chars[last] == '0' { '1' } else { '0' };
        chars.into_iter().collect::<String>()
    };
    let later: i64 = expiry.parse::<i64>().unwrap() + 3600;
    let mut tampered = vec![
        format!("/files/{user}.{file}.{expiry}.{flipped_mac}"),
        format!("/files/{user}.{file}.{later}.{mac}"),
        format!("/files/{user}.{file}.{expiry}"),
        format!("/files/{user}.{file}.{expiry}.{mac}.{mac}"),
        "/files/garbage".to_string(),
    ];
    // The victim rewriting the user part to their own id: the MAC covers it.
    tampered.push(format!("/files/{}.{file}.{expiry}.{mac}", v.id));
    // Another patient's id in the patient part: the MAC covers it too.
    tampered.push(format!(
        "/files/{user}.{}.{}.{expiry}.{mac}",
        v.doctor_id, parts[2]
    ));
    let mut refusals = 0;
    for altered in &tampered {
        let page = v.doctor.get(altered);
        assert_eq!(page.status, Status::Forbidden, "{altered}: {}", page.body);
        assert!(leaks(&page).is_empty());
        refusals += 1;
    }

    // The link is the doctor's: nobody else may use it, not even the file's own patient.
    let (_, mut bob) = sign_in(&app, Level::Doctor, "dr.bob");
    let (_, mut mallory) = sign_in(&app, Level::Patient, "mallory");
    for (who, browser) in [
        ("the patient", &mut v.patient),
        ("another doctor", &mut bob),
        ("another patient", &mut mallory),
    ] {
        let page = browser.get(&link);
        assert_eq!(page.status, Status::Forbidden, "{who}: {}", page.body);
        assert!(leaks(&page).is_empty(), "{who}");
        refusals += 1;
    }
    // And the other way round: the patient's own link is refused to their doctor.
    let own = v
        .patient
        .get(&format!("/records/files/{}", v.entries.file))
        .location
        .expect("a signed link");
    v.doctor.get(&own).assert_status(Status::Forbidden);
    refusals += 1;
    assert_eq!(v.patient.get(&own).bytes, PNG);

    // Past its lifetime (300 s) the link is refused to its holder too.
    app.clock.advance(301);
    v.doctor.get(&link).assert_status(Status::Forbidden);
    refusals += 1;
    assert_eq!(audited(&app, "record.file_link_refused"), refusals);
    assert_eq!(audited(&app, "record.file_downloaded"), 2);
}

#[test]
fn a_link_stops_working_when_the_doctor_leaves_the_care_team() {
    let app = TestApp::new();
    let mut v = victim(&app);
    let link = doctor_link(&mut v.doctor, &v.id, &v.entries.file);
    let (_, mut admin) = sign_in(&app, Level::Admin, "admin");
    admin
        .post(
            "/admin/care-teams",
            &[
                ("doctor_id", &v.doctor_id),
                ("patient_id", &v.id),
                ("change", "unassign"),
            ],
        )
        .assert_redirect("/admin/care-teams");
    let page = v.doctor.get(&link);
    assert!(is_refusal(&page), "{}", page.status);
    assert!(leaks(&page).is_empty());
}

/// The doctor's browser on a record with a fresh CSRF token, ready to upload.
fn ready_to_upload<'a>(app: &'a TestApp) -> (Browser<'a>, String) {
    let (_, mut doctor) = sign_in(app, Level::Doctor, "dr.alice");
    let (id, _) = register(
        &mut doctor,
        &registration("up.patient", "S2222222C", "Upton", "Loader"),
    );
    doctor.get(&format!("/patients/{id}"));
    (doctor, id)
}

#[test]
fn a_file_that_is_not_a_medical_file_is_refused_with_the_form_refilled() {
    let app = TestApp::new();
    let (mut doctor, id) = ready_to_upload(&app);
    let uri = format!("/patients/{id}/scans");
    for (name, content) in [
        ("evil.png", &b"<script>alert(1)</script>"[..]),
        ("evil.html", &b"<html><body>not an image</body></html>"[..]),
        ("evil.exe", &b"MZ\x90\x00\x03\x00\x00\x00"[..]),
    ] {
        let page = doctor.post_multipart(&uri, &scan_fields("Chest PA after fall"), name, content);
        assert_eq!(
            page.status,
            Status::UnprocessableEntity,
            "{name}: {}",
            page.body
        );
        assert!(
            page.body.contains("value=\"Chest PA after fall\""),
            "{name}"
        );
        assert!(page
            .body
            .contains("This file is not a JPEG, PNG, PDF or DICOM file."));
        assert_no_raw_markup(name, &page);
    }
    assert_eq!(table_rows(&app, "medical_files"), 0);
    assert!(stored_files(&app).is_empty(), "{:?}", stored_files(&app));
    assert!(doctor
        .get(&format!("/patients/{id}"))
        .body
        .contains("No file yet."));
}

#[test]
fn an_empty_file_is_refused() {
    let app = TestApp::new();
    let (mut doctor, id) = ready_to_upload(&app);
    let page = doctor.post_multipart(
        &format!("/patients/{id}/scans"),
        &scan_fields("Empty scan"),
        "empty.png",
        b"",
    );
    page.assert_status(Status::UnprocessableEntity);
    assert!(page.body.contains("Choose a file"), "{}", page.body);
    assert!(page.body.contains("value=\"Empty scan\""));
    assert_eq!(table_rows(&app, "medical_files"), 0);
    assert!(stored_files(&app).is_empty());
}

/// `len` bytes that start like a PNG: refused, if at all, for their size and not their type.
fn large_png(len: usize) -> Vec<u8> {
    let mut content = PNG.to_vec();
    content.resize(len, b'x');
    content
}

#[test]
fn an_oversized_file_is_refused_and_nothing_is_stored() {
    let app = TestApp::with_config(|c| c.max_upload_bytes = 2048);
    let (mut doctor, id) = ready_to_upload(&app);
    let uri = format!("/patients/{id}/scans");
    for len in [2049, 5000] {
        let page = doctor.post_multipart(&uri, &scan_fields("Too big"), "big.png", &large_png(len));
        assert_eq!(
            page.status,
            Status::UnprocessableEntity,
            "{len}: {}",
            page.body
        );
        assert!(page.body.contains("larger than"), "{len}: {}", page.body);
        assert!(page.body.contains("value=\"Too big\""));
    }
    assert_eq!(table_rows(&app, "medical_files"), 0);
    assert!(stored_files(&app).is_empty(), "{:?}", stored_files(&app));
    // A file of exactly the limit is accepted: the limit is inclusive.
    doctor
        .post_multipart(
            &uri,
            &scan_fields("Just fits"),
            "fits.png",
            &large_png(2048),
        )
        .assert_redirect(&format!("/patients/{id}"));
    assert_eq!(stored_files(&app).len(), 1);
}

#[test]
fn the_upload_form_and_its_error_state_the_real_limit() {
    // With a limit of 2 KiB, "0 MiB" or "0.0 MiB" tells the doctor that nothing is allowed.
    let app = TestApp::with_config(|c| c.max_upload_bytes = 2048);
    let (mut doctor, id) = ready_to_upload(&app);
    let form = doctor.get(&format!("/patients/{id}"));
    let hint = between(&form.body, "<p class=\"hint\">JPEG", "</p>");
    let page = doctor.post_multipart(
        &format!("/patients/{id}/scans"),
        &scan_fields("Too big"),
        "big.png",
        &large_png(5000),
    );
    page.assert_status(Status::UnprocessableEntity);
    let error = between(&page.body, "<p class=\"error\" id=\"file-error\">", "</p>");
    let zero = |text: &str| text.contains(" 0 MiB") || text.contains(" 0.0 MiB");
    assert!(
        !zero(&hint) && !zero(&error),
        "a 2048-byte limit is stated as zero: hint \"JPEG{hint}\", error \"{error}\""
    );
}

#[test]
fn a_file_within_the_configured_limit_is_accepted() {
    // The default limit is 20 MiB; 1.5 MiB is well within it (and above Rocket's own 1 MiB
    // default for files, which the configured limit must replace).
    let app = TestApp::new();
    let (mut doctor, id) = ready_to_upload(&app);
    let page = doctor.post_multipart(
        &format!("/patients/{id}/scans"),
        &scan_fields("Large CT"),
        "ct.png",
        &large_png(1536 * 1024),
    );
    assert_eq!(
        page.status,
        Status::SeeOther,
        "{}",
        page.body
            .split("<p class=\"error\"")
            .nth(1)
            .unwrap_or(&page.body[..page.body.len().min(400)])
    );
    assert_eq!(table_rows(&app, "medical_files"), 1);
}

// ---------------------------------------------------------------------------------------------
// 5. Script typed into every free-text field comes back escaped
// ---------------------------------------------------------------------------------------------

#[test]
fn script_typed_into_every_free_text_field_comes_back_escaped() {
    let app = TestApp::new();
    let (alice_id, mut alice) = sign_in(&app, Level::Doctor, "dr.alice");
    let (_, mut admin) = sign_in(&app, Level::Admin, "admin");

    // One payload per field, each naming its field, so that each is checked on its own. Block,
    // unit and postal code allow 20, 20 and 12 characters.
    let profile = [
        ("first_name", r#"<script>alert("first")</script>"#),
        ("last_name", r#""><img src=x onerror=alert("last")>"#),
        ("address", r#"<script>alert("address")</script>"#),
        ("postal_code", "<img id=pc>"),
        (
            "allergies",
            r#"<script>alert("allergy")</script>"><img src=x onerror=alert(1)>"#,
        ),
    ];
    let consult = [
        ("department", r#"<script>alert("dept")</script>"#),
        ("block", "<img id=blk>"),
        ("unit", r#""><img id=u>"#),
        ("diagnosis", r#"<script>alert("diag")</script>"#),
        ("notes", r#""><img src=x onerror=alert("notes")>"#),
        ("prescription", r#"<script>alert("rx")</script>"#),
    ];
    let vaccine = [
        ("vaccine", r#"<script>alert("vax")</script>"#),
        ("lot", r#""><img src=x onerror=alert("lot")>"#),
        ("given_by", r#"<script>alert("by")</script>"#),
    ];
    let description = r#""><img src=x onerror=alert("desc")>"#;
    let doctor_reason = r#"<script>alert("appt")</script>"#;
    let own_reason = r#""><img src=x onerror=alert("own")>"#;
    let emergency_reason = r#"<script>alert("emergency")</script>"#;

    let mut form = registration("xss.patient", "S3333333D", "x", "x");
    for (name, value) in profile {
        form = form.with(name, value);
    }
    let (id, one_time) = register(&mut alice, &form);
    let record = format!("/patients/{id}");
    let mut form = consultation("plain");
    for (name, value) in consult {
        form = form.with(name, value);
    }
    post(&mut alice, &format!("{record}/consultations"), &form).assert_redirect(&record);
    let mut form = vaccination("x", "1", "2026-01-10");
    for (name, value) in vaccine {
        form = form.with(name, value);
    }
    post(&mut alice, &format!("{record}/vaccinations"), &form).assert_redirect(&record);
    alice.get(&record);
    alice
        .post_multipart(
            &format!("{record}/scans"),
            &scan_fields(description),
            "<img src=x onerror=alert(1)>.png",
            PNG,
        )
        .assert_redirect(&record);
    post(
        &mut alice,
        &format!("{record}/appointments"),
        &appointment("2027-03-01T09:00", doctor_reason),
    )
    .assert_redirect(&record);
    let mut patient = patient_signs_in(&app, "xss.patient", &one_time);
    post(
        &mut patient,
        "/records/appointments",
        &appointment("2027-03-02T09:00", own_reason).with("doctor_id", &alice_id),
    )
    .assert_redirect("/records");
    let (_, mut bob) = sign_in(&app, Level::Doctor, "dr.bob");
    bob.post(
        &format!("{record}/emergency"),
        &[("reason", emergency_reason)],
    )
    .assert_redirect(&record);

    let clinical: Vec<&str> = profile
        .iter()
        .chain(consult.iter())
        .chain(vaccine.iter())
        .map(|(_, v)| *v)
        .chain([description, doctor_reason, own_reason])
        .collect();
    // Address and postal code are masked by default (the mask of the payload is checked for raw
    // markup like the rest); their whole values are on the page a reveal shows.
    let masked = [profile[2].1, profile[3].1];
    let clinical: Vec<&str> = clinical
        .into_iter()
        .filter(|p| !masked.contains(p))
        .collect();
    let reveal = format!("{record}/reveal");
    let doctor_page = alice.get(&record);
    let consultation_id = id_after(&doctor_page.body, &format!("{record}/consultations/"));
    let file_id = id_after(&doctor_page.body, &format!("{record}/files/"));
    let pages: Vec<(&str, Page, Vec<&str>)> = vec![
        ("doctor's record", doctor_page, clinical.clone()),
        (
            "emergency doctor's record",
            bob.get(&record),
            clinical.clone(),
        ),
        (
            "patient's record",
            patient.get("/records"),
            clinical.clone(),
        ),
        (
            "revealed address",
            alice.post(&reveal, &[("field", "address")]),
            vec![masked[0]],
        ),
        (
            "revealed postal code",
            alice.post(&reveal, &[("field", "postal_code")]),
            vec![masked[1]],
        ),
        (
            "consultation edit form",
            alice.get(&format!("{record}/consultations/{consultation_id}")),
            consult.iter().map(|(_, v)| *v).collect(),
        ),
        (
            "patient list",
            alice.get("/patients"),
            vec![profile[0].1, profile[1].1],
        ),
        (
            "access log",
            patient.get("/account/access-log"),
            vec![emergency_reason],
        ),
        // The account's full name is the profile's name; the admin sees it.
        ("care teams", admin.get("/admin/care-teams"), vec![]),
    ];
    for (what, page, payloads) in &pages {
        page.assert_status(Status::Ok);
        assert_no_raw_markup(what, page);
        for payload in payloads {
            assert!(
                page.body.contains(&escaped(payload)),
                "{what}: {payload} is not shown escaped:\n{}",
                page.body
            );
        }
    }

    // Typed back into a form that failed: still escaped.
    let page = post(
        &mut alice,
        &format!("{record}/consultations"),
        &consultation("x")
            .with("occurred_at", "2023-02-30T10:00")
            .with("diagnosis", r#"<script>alert("again")</script>"#),
    );
    page.assert_status(Status::UnprocessableEntity);
    assert_no_raw_markup("re-filled consultation form", &page);
    assert!(page
        .body
        .contains(&escaped(r#"<script>alert("again")</script>"#)));
    let page = post(
        &mut alice,
        "/patients/new",
        &registration(
            "xss.two",
            "S4444444E",
            r#""><img src=x onerror=alert(1)>"#,
            "x",
        )
        .with("date_of_birth", "yesterday"),
    );
    page.assert_status(Status::UnprocessableEntity);
    assert_no_raw_markup("re-filled registration form", &page);

    // The typed file name never reaches a header unescaped.
    let link = alice
        .get(&format!("{record}/files/{file_id}"))
        .location
        .expect("a signed link");
    let download = alice.get(&link);
    download.assert_status(Status::Ok);
    let disposition = download.header("Content-Disposition").unwrap_or_default();
    assert!(!disposition.contains('<'), "{disposition}");
    assert_eq!(disposition.matches('"').count(), 2, "{disposition}");
}

// ---------------------------------------------------------------------------------------------
// 6. Invalid input: 422, the form re-filled with a clear message, nothing written
// ---------------------------------------------------------------------------------------------

#[test]
fn registration_refuses_bad_input_with_the_form_refilled_and_writes_nothing() {
    let app = TestApp::new();
    let (_, mut doctor) = sign_in(&app, Level::Doctor, "dr.alice");
    register(
        &mut doctor,
        &registration("first.pat", "S1234567D", "First", "Patient"),
    );
    let (users, patients) = (table_rows(&app, "users"), table_rows(&app, "patients"));

    let good = registration("second.pat", "S7654321A", "Second", "Patient");
    // (what, field, typed, message, what the form shows again)
    let cases = [
        (
            "an impossible date of birth",
            "date_of_birth",
            "2023-02-30",
            "Enter a date like 2024-03-31.",
            Some("value=\"2023-02-30\""),
        ),
        (
            "a date of birth in words",
            "date_of_birth",
            "yesterday",
            "Enter a date like 2024-03-31.",
            Some("value=\"yesterday\""),
        ),
        (
            "a date of birth in the future",
            "date_of_birth",
            "2030-01-01",
            "This date is in the future.",
            Some("value=\"2030-01-01\""),
        ),
        (
            "a weight in words",
            "weight_kg",
            "heavy",
            "Enter the weight in kg as a number",
            Some("value=\"heavy\""),
        ),
        (
            "a height out of range",
            "height_cm",
            "999",
            "Enter a height in cm between 20 and 280.",
            Some("value=\"999\""),
        ),
        (
            "a negative weight",
            "weight_kg",
            "-5",
            "Enter a weight in kg between 0.5 and 500.",
            Some("value=\"-5\""),
        ),
        (
            "a malformed national ID",
            "national_id",
            "S12345",
            "Enter a national ID like S1234567D",
            Some("value=\"S12345\""),
        ),
        (
            "the national ID of another patient",
            "national_id",
            "S1234567D",
            "Another patient is registered with this national ID.",
            Some("value=\"S1234567D\""),
        ),
        (
            "that national ID in lower case",
            "national_id",
            "s1234567d",
            "Another patient is registered with this national ID.",
            None,
        ),
        (
            "a taken username",
            "username",
            "first.pat",
            "This username is taken.",
            Some("value=\"first.pat\""),
        ),
        (
            "the doctor's own username in capitals",
            "username",
            "DR.ALICE",
            "This username is taken.",
            Some("value=\"dr.alice\""),
        ),
        (
            "a blood type not listed",
            "blood_type",
            "Z+",
            "Choose one of the listed blood types.",
            None,
        ),
        (
            "a phone in words",
            "phone",
            "call me",
            "Enter a phone number of 6 to 15 digits",
            Some("value=\"call me\""),
        ),
    ];
    for (what, field, typed, message, refilled) in cases {
        let page = post(
            &mut doctor,
            "/patients/new",
            &good.clone().with(field, typed),
        );
        assert_eq!(
            page.status,
            Status::UnprocessableEntity,
            "{what}: {}",
            page.body
        );
        assert!(
            page.body.contains(message),
            "{what}: {message}\n{}",
            page.body
        );
        assert!(page.body.contains("value=\"Second\""), "{what}: re-filled");
        if let Some(refilled) = refilled {
            assert!(page.body.contains(refilled), "{what}: {refilled}");
        }
        assert!(!page.body.contains("is registered</h1>"), "{what}");
    }
    assert_eq!(table_rows(&app, "users"), users, "no account was created");
    assert_eq!(
        table_rows(&app, "patients"),
        patients,
        "no profile was created"
    );
    assert!(doctor.get("/patients").body.contains("1 patient<"));
}

#[test]
fn a_profile_edit_with_bad_values_is_refused_and_the_profile_kept() {
    let app = TestApp::new();
    let mut v = victim(&app);
    let (_, mut bob) = sign_in(&app, Level::Doctor, "dr.bob");
    register(
        &mut bob,
        &registration("other.pat", "S9999999Z", "Otto", "Other"),
    );
    let uri = format!("/patients/{}/profile", v.id);
    let good = registration("victim", "", "Vicky", VICTIM_LAST_NAME)
        .with("phone", "")
        .with("address", "")
        .with("postal_code", "");
    for (what, field, typed, message) in [
        (
            "weight in words",
            "weight_kg",
            "abc",
            "Enter the weight in kg as a number",
        ),
        (
            "height out of range",
            "height_cm",
            "1e9",
            "Enter a height in cm between 20 and 280.",
        ),
        (
            "birth in the future",
            "date_of_birth",
            "2031-05-05",
            "This date is in the future.",
        ),
        (
            "national ID of another patient",
            "national_id",
            "S9999999Z",
            "Another patient is registered with this national ID.",
        ),
        (
            "a last name too long",
            "last_name",
            "y".repeat(101).as_str(),
            "The last name has at most 100 characters.",
        ),
    ] {
        let page = post(&mut v.doctor, &uri, &good.clone().with(field, typed));
        assert_eq!(
            page.status,
            Status::UnprocessableEntity,
            "{what}: {}",
            page.body
        );
        assert!(page.body.contains(message), "{what}: {message}");
    }
    let page = v.doctor.get(&format!("/patients/{}", v.id));
    assert!(page.body.contains("60.5"), "weight kept");
    assert!(page.body.contains("1980-02-29"), "birth date kept");
    assert!(page.body.contains("S••••321A"), "national ID kept");
}

#[test]
fn consultation_dates_and_texts_are_checked_and_nothing_is_written() {
    let app = TestApp::new();
    let (_, mut doctor) = sign_in(&app, Level::Doctor, "dr.alice");
    let (id, _) = register(
        &mut doctor,
        &registration("c.patient", "S5555555F", "Connie", "Sult"),
    );
    let record = format!("/patients/{id}");
    let uri = format!("{record}/consultations");
    for (what, field, typed, message) in [
        (
            "an impossible date",
            "occurred_at",
            "2023-02-30T10:00",
            "Enter a date and time like 2024-03-31T14:30.",
        ),
        (
            "a date in words",
            "occurred_at",
            "yesterday",
            "Enter a date and time like 2024-03-31T14:30.",
        ),
        (
            "a date out of range",
            "occurred_at",
            "2301-01-01T10:00",
            "Enter a date between 1900 and 2200.",
        ),
        ("no diagnosis", "diagnosis", "  ", "Enter the diagnosis."),
        (
            "a block too long",
            "block",
            "B-1234567890123456789",
            "The block has at most 20 characters.",
        ),
    ] {
        let page = post(
            &mut doctor,
            &uri,
            &consultation("typed-but-refused").with(field, typed),
        );
        assert_eq!(
            page.status,
            Status::UnprocessableEntity,
            "{what}: {}",
            page.body
        );
        assert!(page.body.contains(message), "{what}: {message}");
        assert!(
            page.body.contains(">Notes typed-but-refused</textarea>"),
            "{what}: re-filled"
        );
    }
    assert_eq!(table_rows(&app, "consultations"), 0);
    assert!(doctor.get(&record).body.contains("No consultation yet."));

    // Editing with a bad date changes nothing either.
    post(&mut doctor, &uri, &consultation("original")).assert_redirect(&record);
    let page = doctor.get(&record);
    let cid = id_after(&page.body, &format!("{uri}/"));
    let page = post(
        &mut doctor,
        &format!("{uri}/{cid}"),
        &consultation("edited").with("occurred_at", "2023-02-30T10:00"),
    );
    page.assert_status(Status::UnprocessableEntity);
    assert!(page.body.contains("Enter a date and time like"));
    assert!(page.body.contains(">Diagnosis edited</textarea>"));
    let page = doctor.get(&record);
    assert!(page.body.contains("Diagnosis original"));
    assert!(!page.body.contains("Diagnosis edited"));
    // An id that is no consultation of this patient: 404.
    post(
        &mut doctor,
        &format!("{uri}/nosuchconsultation"),
        &consultation("edited"),
    )
    .assert_status(Status::NotFound);
}

#[test]
fn vaccination_doses_come_in_order_with_real_dates() {
    let app = TestApp::new();
    let (_, mut doctor) = sign_in(&app, Level::Doctor, "dr.alice");
    let (id, _) = register(
        &mut doctor,
        &registration("v.patient", "S6666666G", "Vax", "Ination"),
    );
    let record = format!("/patients/{id}");
    let uri = format!("{record}/vaccinations");
    let refused = |doctor: &mut Browser<'_>, form: Form, message: &str| {
        let page = post(doctor, &uri, &form);
        assert_eq!(
            page.status,
            Status::UnprocessableEntity,
            "{message}: {}",
            page.body
        );
        assert!(page.body.contains(message), "{message}\n{}", page.body);
        assert!(
            page.body.contains("value=\"HB-2231\""),
            "{message}: re-filled"
        );
    };

    refused(
        &mut doctor,
        vaccination("Hepatitis B", "2", "2026-01-10"),
        "Doses come in order: the next dose of this vaccine is dose 1.",
    );
    refused(
        &mut doctor,
        vaccination("Hepatitis B", "two", "2026-01-10"),
        "Enter the dose number as a whole number.",
    );
    refused(
        &mut doctor,
        vaccination("Hepatitis B", "0", "2026-01-10"),
        "Enter a dose number between 1 and 20.",
    );
    refused(
        &mut doctor,
        vaccination("Hepatitis B", "1", "2023-02-30"),
        "Enter a date like 2024-03-31.",
    );
    refused(
        &mut doctor,
        vaccination("Hepatitis B", "1", "2030-01-01"),
        "This date is in the future.",
    );
    assert_eq!(table_rows(&app, "vaccinations"), 0);
    assert!(doctor.get(&record).body.contains("No vaccination yet."));

    post(
        &mut doctor,
        &uri,
        &vaccination("Hepatitis B", "1", "2026-01-10"),
    )
    .assert_redirect(&record);
    refused(
        &mut doctor,
        vaccination("Hepatitis B", "1", "2026-02-10"),
        "Dose 1 of this vaccine is already recorded.",
    );
    refused(
        &mut doctor,
        vaccination("hepatitis b", "1", "2026-02-10"),
        "Dose 1 of this vaccine is already recorded.",
    );
    refused(
        &mut doctor,
        vaccination("Hepatitis B", "3", "2026-03-10"),
        "the next dose of this vaccine is dose 2.",
    );
    refused(
        &mut doctor,
        vaccination("Hepatitis B", "2", "2025-12-31"),
        "Dose 2 cannot be given before dose 1 (2026-01-10).",
    );
    assert_eq!(table_rows(&app, "vaccinations"), 1);
    // The next dose, in order, is accepted; so is dose 1 of another vaccine.
    post(
        &mut doctor,
        &uri,
        &vaccination("Hepatitis B", "2", "2026-02-10"),
    )
    .assert_redirect(&record);
    post(
        &mut doctor,
        &uri,
        &vaccination("Tetanus", "1", "2026-02-10"),
    )
    .assert_redirect(&record);
    assert_eq!(table_rows(&app, "vaccinations"), 3);
}

#[test]
fn scan_forms_with_bad_dates_or_categories_are_refused() {
    let app = TestApp::new();
    let (mut doctor, id) = ready_to_upload(&app);
    let uri = format!("/patients/{id}/scans");
    for (what, fields, message) in [
        (
            "an impossible date",
            vec![
                ("category", "X-ray"),
                ("description", "Knee"),
                ("taken_on", "2023-02-30"),
            ],
            "Enter a date like 2024-03-31.",
        ),
        (
            "a date in the future",
            vec![
                ("category", "X-ray"),
                ("description", "Knee"),
                ("taken_on", "2030-01-01"),
            ],
            "This date is in the future.",
        ),
        (
            "a category not listed",
            vec![
                ("category", "Malware"),
                ("description", "Knee"),
                ("taken_on", "2026-11-19"),
            ],
            "Choose one of the listed categories.",
        ),
    ] {
        let page = doctor.post_multipart(&uri, &fields, "knee.png", PNG);
        assert_eq!(
            page.status,
            Status::UnprocessableEntity,
            "{what}: {}",
            page.body
        );
        assert!(page.body.contains(message), "{what}: {message}");
        assert!(page.body.contains("value=\"Knee\""), "{what}: re-filled");
    }
    assert_eq!(table_rows(&app, "medical_files"), 0);
    assert!(stored_files(&app).is_empty());
}

#[test]
fn appointments_must_be_in_the_future_and_at_a_free_time() {
    let app = TestApp::new();
    let (alice_id, mut doctor) = sign_in(&app, Level::Doctor, "dr.alice");
    let (first, _) = register(
        &mut doctor,
        &registration("first.pat", "S1212121A", "First", "Patient"),
    );
    let (second, one_time) = register(
        &mut doctor,
        &registration("second.pat", "S3434343B", "Second", "Patient"),
    );
    let (bob_id, _) = sign_in(&app, Level::Doctor, "dr.bob");
    let mut patient = patient_signs_in(&app, "second.pat", &one_time);

    let book = |browser: &mut Browser<'_>, uri: &str, form: Form, message: &str| {
        let page = post(browser, uri, &form);
        assert_eq!(
            page.status,
            Status::UnprocessableEntity,
            "{uri} {message}: {}",
            page.body
        );
        assert!(
            page.body.contains(message),
            "{uri}: {message}\n{}",
            page.body
        );
        assert!(
            page.body.contains("value=\"Check-up please\""),
            "{uri} {message}: re-filled"
        );
    };
    let at_first = format!("/patients/{first}/appointments");
    let at_second = format!("/patients/{second}/appointments");
    // Now is 2027-01-15 08:00 UTC.
    book(
        &mut doctor,
        &at_first,
        appointment("2020-01-01T09:00", "Check-up please"),
        "Choose a time in the future.",
    );
    book(
        &mut doctor,
        &at_first,
        appointment("2027-01-15T07:59", "Check-up please"),
        "Choose a time in the future.",
    );
    book(
        &mut doctor,
        &at_first,
        appointment("yesterday", "Check-up please"),
        "Enter a date and time like 2024-03-31T14:30.",
    );
    book(
        &mut doctor,
        &at_first,
        appointment("2027-02-30T09:00", "Check-up please"),
        "Enter a date and time like 2024-03-31T14:30.",
    );
    assert_eq!(table_rows(&app, "appointments"), 0);

    post(
        &mut doctor,
        &at_first,
        &appointment("2027-03-01T09:00", "First's check-up"),
    )
    .assert_redirect(&format!("/patients/{first}"));
    // The doctor is taken at 09:00: not for another patient, not by the patient themself.
    book(
        &mut doctor,
        &at_second,
        appointment("2027-03-01T09:00", "Check-up please"),
        "The doctor already has an appointment at this time.",
    );
    let own = appointment("2027-03-01T09:00", "Check-up please").with("doctor_id", &alice_id);
    book(
        &mut patient,
        "/records/appointments",
        own.clone(),
        "The doctor already has an appointment at this time.",
    );
    book(
        &mut patient,
        "/records/appointments",
        own.clone().with("starts_at", "2026-12-01T09:00"),
        "Choose a time in the future.",
    );
    book(
        &mut patient,
        "/records/appointments",
        own.clone().with("doctor_id", &bob_id),
        "Choose one of your doctors.",
    );
    assert_eq!(table_rows(&app, "appointments"), 1);

    // Moving an appointment into the past or onto a taken time changes nothing.
    post(
        &mut doctor,
        &at_second,
        &appointment("2027-03-01T10:00", "Second's check-up"),
    )
    .assert_redirect(&format!("/patients/{second}"));
    let page = doctor.get(&format!("/patients/{second}"));
    let aid = id_after(&page.body, &format!("action=\"{at_second}/"));
    for time in ["2027-03-01T09:00", "2020-01-01T09:00", "never"] {
        let page = doctor.post(
            &format!("{at_second}/{aid}"),
            &[("change", "reschedule"), ("starts_at", time)],
        );
        page.assert_redirect(&format!("/patients/{second}"));
        let after = doctor.get(&format!("/patients/{second}"));
        assert!(
            after.body.contains("flash-error"),
            "{time}: an error is shown"
        );
        assert!(after.body.contains("2027-03-01 10:00 UTC"), "{time}");
    }
    assert_eq!(appointment_statuses(&app), ["booked", "booked"]);
    doctor
        .post(&format!("{at_second}/{aid}"), &[("change", "delete")])
        .assert_status(Status::BadRequest);
    assert_eq!(table_rows(&app, "appointments"), 2);
}

// ---------------------------------------------------------------------------------------------
// 7. Care teams
// ---------------------------------------------------------------------------------------------

#[test]
fn the_admin_assigns_and_unassigns_a_patient_and_the_record_opens_and_closes() {
    let app = TestApp::new();
    let (alice_id, mut alice) = sign_in(&app, Level::Doctor, "dr.alice");
    let (bob_id, _) = sign_in(&app, Level::Doctor, "dr.bob");
    let (_, mut admin) = sign_in(&app, Level::Admin, "admin");
    let patient_id = app.create_user(Level::Patient, "walk.in");
    let record = format!("/patients/{patient_id}");
    let listed = format!("href=\"{record}\"");

    alice.get(&record).assert_status(Status::Forbidden);
    assert!(!alice.get("/patients").body.contains(&listed));
    // A doctor cannot put the patient in their own care.
    alice
        .post(
            "/admin/care-teams",
            &[
                ("doctor_id", &alice_id),
                ("patient_id", &patient_id),
                ("change", "assign"),
            ],
        )
        .assert_status(Status::Forbidden);
    alice.get(&record).assert_status(Status::Forbidden);

    let change = |admin: &mut Browser<'_>, doctor: &str, patient: &str, change: &str| {
        admin
            .post(
                "/admin/care-teams",
                &[
                    ("doctor_id", doctor),
                    ("patient_id", patient),
                    ("change", change),
                ],
            )
            .assert_redirect("/admin/care-teams");
        admin.get("/admin/care-teams")
    };
    let page = change(&mut admin, &alice_id, &patient_id, "assign");
    assert!(
        page.body.contains("dr.alice now treats walk.in."),
        "{}",
        page.body
    );
    assert_eq!(audited(&app, "care.assigned"), 1);
    assert!(alice.get("/patients").body.contains(&listed));
    let opened = alice.get(&record);
    opened.assert_status(Status::Ok);
    assert!(opened.body.contains("No profile yet"));

    // Assigning twice, or someone who is not a doctor or not a patient, changes nothing.
    let page = change(&mut admin, &alice_id, &patient_id, "assign");
    assert!(page.body.contains("already treats"));
    let page = change(&mut admin, &alice_id, &bob_id, "assign");
    assert!(page.body.contains("Choose a doctor and a patient"));
    let page = change(&mut admin, &patient_id, &patient_id, "assign");
    assert!(page.body.contains("Choose a doctor and a patient"));
    assert_eq!(audited(&app, "care.assigned"), 1);
    assert_eq!(table_rows(&app, "care_assignments"), 1);

    let page = change(&mut admin, &alice_id, &patient_id, "unassign");
    assert!(page.body.contains("dr.alice no longer treats walk.in."));
    assert_eq!(audited(&app, "care.unassigned"), 1);
    alice.get(&record).assert_status(Status::Forbidden);
    assert!(!alice.get("/patients").body.contains(&listed));
    post(
        &mut alice,
        &format!("{record}/consultations"),
        &consultation(HACKED),
    )
    .assert_status(Status::Forbidden);
    assert_eq!(table_rows(&app, "consultations"), 0);

    // The patient sees both changes of their care.
    let mut patient = app.browser();
    patient.login("walk.in", PASSWORD).assert_redirect("/");
    let log = patient.get("/account/access-log");
    assert!(
        log.body.contains("put you in a doctor&#x27;s care"),
        "{}",
        log.body
    );
    assert!(log.body.contains("ended a doctor&#x27;s care of you"));
}

// ---------------------------------------------------------------------------------------------
// 8. Search
// ---------------------------------------------------------------------------------------------

#[test]
fn search_finds_by_exact_national_id_anywhere_and_by_name_only_in_care() {
    let app = TestApp::new();
    let (_, mut alice) = sign_in(&app, Level::Doctor, "dr.alice");
    let (_, mut bob) = sign_in(&app, Level::Doctor, "dr.bob");
    let (harold, _) = register(
        &mut alice,
        &registration("harold", "S1111111A", "Harold", "Finch"),
    );
    let (harriet, _) = register(
        &mut alice,
        &registration("harriet", "S2222222B", "Harriet", "Jones"),
    );
    let (harvey, _) = register(
        &mut bob,
        &registration("harvey", "S3333333C", "Harvey", "Dent"),
    );
    let link = |id: &str| format!("href=\"/patients/{id}\"");

    // Exact national ID: found even outside the doctor's care, and flagged as such.
    let page = alice.get("/patients?q=S3333333C");
    page.assert_status(Status::Ok);
    assert!(page.body.contains(&link(&harvey)), "{}", page.body);
    assert!(page.body.contains("Harvey Dent"));
    assert!(page.body.contains("not in your care"));
    assert!(!page.body.contains(&link(&harold)));
    // In lower case and with spaces it is the same ID.
    let page = alice.get("/patients?q=%20s3333333c%20");
    assert!(page.body.contains(&link(&harvey)));
    // Found, but still closed.
    alice
        .get(&format!("/patients/{harvey}"))
        .assert_status(Status::Forbidden);
    // One of the doctor's own: not flagged.
    let page = alice.get("/patients?q=S1111111A");
    assert!(page.body.contains(&link(&harold)));
    assert!(!page.body.contains("not in your care"));
    // Part of an ID finds nothing: the ID is only looked up whole.
    let page = alice.get("/patients?q=S33333");
    assert!(!page.body.contains(&link(&harvey)));
    assert!(page.body.contains("No patient matches."));

    // By name: the doctor's own patients only.
    let page = alice.get("/patients?q=har");
    assert!(page.body.contains(&link(&harold)));
    assert!(page.body.contains(&link(&harriet)));
    assert!(!page.body.contains(&link(&harvey)), "{}", page.body);
    assert!(!page.body.contains("Harvey"));
    let page = alice.get("/patients?q=Dent");
    assert!(!page.body.contains(&link(&harvey)));
    assert!(page.body.contains("No patient matches."));
    let page = alice.get("/patients?q=jones");
    assert!(page.body.contains(&link(&harriet)));
    assert!(!page.body.contains(&link(&harold)));
}

#[test]
fn an_altered_value_is_audited_on_every_page_that_opens_it_and_counted_for_admins() {
    let app = TestApp::new();
    let mut v = victim(&app);
    let cid = v.entries.consultation.clone();
    // Someone with the file moves the diagnosis into the notes column of the same row: both
    // were sealed for their own column, so both now fail.
    app.raw_sql(&format!(
        "UPDATE consultations SET diagnosis = notes WHERE id = '{cid}';"
    ));
    let before = audited(&app, "encryption.integrity_error");
    assert_eq!(before, 0);

    let record = format!("/patients/{}", v.id);
    let page = v.doctor.get(&record);
    page.assert_status(Status::Ok);
    assert!(page.body.contains("Integrity error"), "{}", page.body);
    assert_eq!(audited(&app, "encryption.integrity_error"), 1);
    v.doctor
        .get(&format!("{record}/consultations/{cid}"))
        .assert_status(Status::Ok);
    assert_eq!(audited(&app, "encryption.integrity_error"), 2);
    let own = v.patient.get("/records");
    assert!(
        own.body.contains("Your clinic has been told"),
        "{}",
        own.body
    );
    assert_eq!(audited(&app, "encryption.integrity_error"), 3);

    // Each event names the patient and where the value stands; the patient's log shows it.
    let mut conn = app.app().db.conn().unwrap();
    use diesel::prelude::*;
    use medvault::db::schema::audit_events;
    let events: Vec<(String, String)> = audit_events::table
        .filter(audit_events::action.eq("encryption.integrity_error"))
        .select((audit_events::target, audit_events::detail))
        .load(&mut *conn)
        .unwrap();
    drop(conn);
    for (target, detail) in &events {
        assert_eq!(target, &format!("patient {}", v.id));
        assert_eq!(detail, &format!("consultation {cid} diagnosis"));
    }
    let log = v.patient.get("/account/access-log");
    assert!(
        log.body.contains("met a value altered in the database"),
        "{}",
        log.body
    );

    // Admins see the count on their dashboard, and the events behind a filter of the trail.
    let mut admin = app.signed_in(Level::Admin, "admin");
    let dashboard = admin.get("/dashboard");
    assert!(
        dashboard.body.contains(
            "<strong>3</strong> <a href=\"/admin/audit?action=encryption.integrity_error\">altered values</a>"
        ),
        "{}",
        dashboard.body
    );
    let trail = admin.get("/admin/audit?action=encryption.integrity_error");
    trail.assert_status(Status::Ok);
    assert_eq!(
        trail
            .body
            .matches(&format!("consultation {cid} diagnosis"))
            .count(),
        3
    );
}

#[test]
fn masking_edited_in_the_file_while_the_server_runs_changes_nothing() {
    let app = TestApp::new();
    let mut v = victim(&app);
    let record = format!("/patients/{}", v.id);
    assert!(!v.doctor.get(&record).body.contains(VICTIM_NID));
    // National IDs are masked for doctors by default; the file now says "full".
    app.raw_sql(
        "INSERT INTO field_visibility (field, level, mode) VALUES ('national_id', 'doctor', 'full');",
    );
    let page = v.doctor.get(&record);
    page.assert_status(Status::Ok);
    assert!(!page.body.contains(VICTIM_NID), "{}", page.body);
}

#[test]
fn a_refused_download_link_leaves_its_token_in_no_audit_target() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let token = "c2VjcmV0LWRvd25sb2FkLXRva2Vu";
    admin
        .get(&format!("/files/{token}"))
        .assert_status(Status::Forbidden);
    let mut conn = app.app().db.conn().unwrap();
    use diesel::prelude::*;
    use medvault::db::schema::audit_events;
    let events: Vec<(String, String, String)> = audit_events::table
        .select((
            audit_events::action,
            audit_events::target,
            audit_events::detail,
        ))
        .load(&mut *conn)
        .unwrap();
    let denied = events
        .iter()
        .find(|(action, _, _)| action == "access.denied")
        .expect("the refusal is audited");
    assert_eq!(denied.1, "GET /files/<token>");
    assert!(events
        .iter()
        .all(|(_, t, d)| !t.contains(token) && !d.contains(token)));
}

#[test]
fn a_lookup_outside_ones_care_shows_only_what_masking_allows_and_is_in_the_patients_log() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let (_, mut alice) = sign_in(&app, Level::Doctor, "dr.alice");
    let (_, mut bob) = sign_in(&app, Level::Doctor, "dr.bob");
    let (harvey, one_time) = register(
        &mut bob,
        &registration("harvey", "S3333333C", "Harvey", "Dent"),
    );
    // The admin hides names and the date of birth from doctors.
    save_masking(
        &mut admin,
        &[
            ("first_name", "doctor", "hidden"),
            ("last_name", "doctor", "hidden"),
            ("date_of_birth", "doctor", "hidden"),
        ],
    )
    .assert_redirect("/admin/masking");
    let page = alice.get("/patients?q=S3333333C");
    page.assert_status(Status::Ok);
    assert!(
        page.body.contains(&format!("href=\"/patients/{harvey}\"")),
        "{}",
        page.body
    );
    for hidden in ["Harvey", "Dent", "1980-02-29"] {
        assert!(
            !page.body.contains(hidden),
            "{hidden} on the list: {}",
            page.body
        );
    }
    // Nor does the refused record's heading show the hidden name.
    let refused = alice.get(&format!("/patients/{harvey}"));
    assert!(!refused.body.contains("Dent"), "{}", refused.body);
    // Bob, whose patient it is, sees the same policy on his list.
    let own = bob.get("/patients");
    assert!(!own.body.contains("Dent"), "{}", own.body);
    // The lookup is audited and the patient sees it in the access log.
    assert_eq!(audited(&app, "record.looked_up"), 1);
    let mut patient = patient_signs_in(&app, "harvey", &one_time);
    let log = patient.get("/account/access-log");
    assert!(
        log.body
            .contains("found you by national ID (outside their care)"),
        "{}",
        log.body
    );
    // A lookup of one's own patient is not an event.
    bob.get("/patients?q=S3333333C").assert_status(Status::Ok);
    assert_eq!(audited(&app, "record.looked_up"), 1);
}

#[test]
fn reloading_a_record_cannot_push_a_reveal_out_of_the_patients_access_log() {
    let app = TestApp::new();
    let mut v = victim(&app);
    let record = format!("/patients/{}", v.id);
    v.doctor.get(&record).assert_status(Status::Ok);
    v.doctor
        .post(&format!("{record}/reveal"), &[("field", "national_id")])
        .assert_status(Status::Ok);
    // Then 520 reloads, more than the old log's 500 lines.
    for _ in 0..520 {
        v.doctor.get(&record);
    }
    let log = v.patient.get("/account/access-log");
    log.assert_status(Status::Ok);
    assert!(log.body.contains("revealed a masked value"), "{}", log.body);
    assert!(
        log.body.contains("opened your record 520 times, between"),
        "{}",
        log.body
    );
    // Everything is one page of a few lines; a later page is there, and empty.
    assert!(log.body.matches("<tr><td>").count() < 50, "{}", log.body);
    v.patient
        .get("/account/access-log?page=2")
        .assert_status(Status::Ok);
}
