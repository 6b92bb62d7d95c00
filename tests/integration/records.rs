//! Medical records end to end: a doctor registers and treats a patient, the patient reads their
//! record masked, files are sealed on disk and checked, and everyone else is kept out.

use crate::common;

use common::record_builders::*;
use common::*;
use medvault::access::Level;
use rocket::http::Status;

#[test]
fn a_doctor_registers_a_patient_records_care_and_the_patient_reads_it_masked() {
    let app = TestApp::new();
    let (mut doctor, id) = doctor_with_patient(&app);
    let record = format!("/patients/{id}");
    doctor
        .post(
            &format!("{record}/consultations"),
            &[
                ("occurred_at", "2026-11-20T10:30"),
                ("department", "Cardiology"),
                ("block", "B"),
                ("unit", "07-12"),
                ("diagnosis", "Mild arrhythmia"),
                ("notes", "Follow up in 3 months"),
                ("prescription", "Bisoprolol 2.5 mg"),
            ],
        )
        .assert_redirect(&record);
    doctor
        .post(
            &format!("{record}/vaccinations"),
            &[
                ("vaccine", "Hepatitis B"),
                ("dose_number", "1"),
                ("given_on", "2026-01-10"),
                ("lot", "HB-2231"),
                ("given_by", "Nurse Joy"),
            ],
        )
        .assert_redirect(&record);
    doctor.get(&record);
    doctor
        .post_multipart(
            &format!("{record}/scans"),
            &[
                ("category", "X-ray"),
                ("description", "Chest PA"),
                ("taken_on", "2026-11-19"),
            ],
            "chest.png",
            PNG,
        )
        .assert_redirect(&record);
    doctor
        .post(
            &format!("{record}/appointments"),
            &[
                ("starts_at", "2027-03-01T09:00"),
                ("reason", "Cardiology follow-up"),
            ],
        )
        .assert_redirect(&record);

    let page = doctor.get(&record);
    page.assert_status(Status::Ok);
    for shown in [
        "Mild arrhythmia",
        "Bisoprolol 2.5 mg",
        "Hepatitis B",
        "Chest PA",
        "Cardiology follow-up",
        "Penicillin",
    ] {
        assert!(page.body.contains(shown), "{shown}");
    }
    // Masked for the doctor by default: national ID, phone, address, postal code.
    assert!(page.body.contains("S••••567D"), "{}", page.body);
    assert!(!page.body.contains("S1234567D"));
    assert!(!page.body.contains("10 Downing Street"));
    assert!(!page.body.contains("238801"));

    // The patient sees the same record, masked the same way, and downloads the scan.
    let mut patient = patient_browser(&app);
    let own = patient.get("/records");
    own.assert_status(Status::Ok);
    for shown in [
        "Mild arrhythmia",
        "Hepatitis B",
        "Chest PA",
        "Cardiology follow-up",
    ] {
        assert!(own.body.contains(shown), "{shown}");
    }
    assert!(own.body.contains("S••••567D"));
    assert!(!own.body.contains("S1234567D"));
    let file_id = between(&own.body, "href=\"/records/files/", "\"");
    let link = patient.get(&format!("/records/files/{file_id}"));
    let location = link.location.clone().expect("a signed link");
    assert!(location.starts_with("/files/"), "{location}");
    let download = patient.get(&location);
    download.assert_status(Status::Ok);
    assert_eq!(download.header("Content-Type"), Some("image/png"));
    assert!(download
        .header("Content-Disposition")
        .unwrap()
        .contains("chest.png"));
    assert_eq!(download.bytes, PNG);

    // Nothing readable is on disk or in the database.
    let storage = app.home.path().join("storage");
    for entry in std::fs::read_dir(&storage).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(8).any(|w| w == &PNG[..8]),
            "file stored in the clear"
        );
    }
    let db = database_bytes(app.home.path());
    for secret in [
        "S1234567D",
        "Mild arrhythmia",
        "Penicillin",
        "Hepatitis B",
        "Chest PA",
    ] {
        assert!(
            !db.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} in the clear"
        );
    }

    // The patient sees who opened their record.
    let log = patient.get("/account/access-log");
    log.assert_status(Status::Ok);
    assert!(log.body.contains("dr.grey"));
    assert!(log.body.contains("opened your record"));
    assert!(log.body.contains("downloaded a file") || log.body.contains("added a file"));
}

#[test]
fn editing_one_profile_field_keeps_the_others_and_never_puts_masked_values_in_the_form() {
    let app = TestApp::new();
    let (mut doctor, id) = doctor_with_patient(&app);
    let record = format!("/patients/{id}");
    let page = doctor.get(&record);
    // What the doctor sees in full starts the edit form; masked values stay out of the page.
    assert_eq!(
        input_value(&page.body, "first_name").as_deref(),
        Some("Patricia")
    );
    assert_eq!(
        input_value(&page.body, "weight_kg").as_deref(),
        Some("60.5")
    );
    assert_eq!(
        input_value(&page.body, "national_id").unwrap_or_default(),
        ""
    );
    assert_eq!(input_value(&page.body, "address").unwrap_or_default(), "");
    assert!(!page.body.contains("S1234567D") && !page.body.contains("Downing"));

    // The browser sends the form back with one change; the blank masked fields keep theirs.
    let mut fields: Vec<(&str, String)> = [
        "first_name",
        "last_name",
        "date_of_birth",
        "email",
        "height_cm",
        "weight_kg",
    ]
    .iter()
    .map(|n| (*n, input_value(&page.body, n).unwrap_or_default()))
    .collect();
    fields.extend([
        ("gender", "female".to_string()),
        ("blood_type", "O+".to_string()),
        ("allergies", "Penicillin, latex".to_string()),
        ("national_id", String::new()),
        ("phone", String::new()),
        ("address", String::new()),
        ("postal_code", String::new()),
    ]);
    let form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    doctor
        .post(&format!("{record}/profile"), &form)
        .assert_redirect(&record);
    let after = doctor.get(&record).body;
    assert!(after.contains("Penicillin, latex"));
    assert!(after.contains("pat@example.org") && after.contains("60.5"));
    assert!(after.contains("S••••567D"), "the national ID is kept");
    assert!(
        after.contains("+••••••••4567"),
        "the phone is kept: {after}"
    );
    // The patient still finds their own national ID the same way.
    let mut patient = patient_browser(&app);
    assert!(patient.get("/records").body.contains("S••••567D"));
}

#[test]
fn two_registrations_of_one_national_id_at_once_make_one_patient() {
    use medvault::records::profile::{self, Profile, Registration, NATIONAL_ID_TAKEN};
    let app = TestApp::new();
    app.signed_in(Level::Doctor, "dr.grey");
    let services = app.app();
    let doctor = {
        let mut conn = services.db.conn().expect("connection");
        medvault::db::models::User::find_by_username("dr.grey", &mut conn)
            .expect("query")
            .expect("the doctor")
    };
    let typed = |column: profile::ProfileColumn| match column.name() {
        "national_id" => "S7654321A",
        "first_name" => "Twin",
        "last_name" => "Entry",
        "date_of_birth" => "1990-01-01",
        "gender" => "other",
        "blood_type" => "A+",
        _ => "",
    };
    let today = services.clock.today();
    let profile = Profile::check(typed, today, &[]).expect("a valid profile");
    let actor = medvault::audit::Actor::default();
    // Two doctors' browsers send the same registration in the same moment, under two usernames:
    // both pass the check before either writes, unless it is made inside the transaction.
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let registrations: Vec<_> = ["twin.one", "twin.two"]
            .map(|username| {
                let (profile, actor, doctor) = (&profile, &actor, &doctor.id);
                scope.spawn(move || {
                    let mut conn = services.db.conn().expect("connection");
                    let new = Registration {
                        username,
                        password_hash: "not a real hash",
                        profile,
                    };
                    profile::register(services, &mut conn, actor, doctor, &new).expect("stored")
                })
            })
            .into_iter()
            .collect();
        registrations
            .into_iter()
            .map(|r| r.join().unwrap())
            .collect()
    });
    let made = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(made, 1, "{outcomes:?}");
    assert!(
        outcomes.contains(&Err(("national_id", NATIONAL_ID_TAKEN.to_string()))),
        "{outcomes:?}"
    );
}
