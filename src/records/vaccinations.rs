//! Vaccinations: a dose of a vaccine, recorded by a doctor. Doses of one vaccine come in order,
//! each on or after the one before; the order is checked inside the transaction that records
//! the dose, so two doses recorded at once cannot both pass.

use time::Date;

use super::{validate, FieldProblem};
use crate::audit::Actor;
use crate::crypto::random_id;
use crate::db::models::records::VaccinationRow;
use crate::db::Conn;
use crate::fields::StoreError;
use crate::ids::{PatientId, RowId};
use crate::services::Services;

/// The fields of the vaccination form, which are also the row's (encryptable) columns.
pub const FIELD_NAMES: [&str; 5] = ["vaccine", "dose_number", "given_on", "lot", "given_by"];

/// The highest dose number accepted.
const MAX_DOSE: u32 = 20;

/// A dose whose fields passed their rules, trimmed; `given_on` is `YYYY-MM-DD`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dose {
    pub vaccine: String,
    pub number: u32,
    pub given_on: String,
    pub lot: String,
    pub given_by: String,
}

/// What the vaccination form holds, as typed.
pub struct DoseInput<'a> {
    pub vaccine: &'a str,
    pub dose_number: &'a str,
    pub given_on: &'a str,
    pub lot: &'a str,
    pub given_by: &'a str,
}

impl Dose {
    /// The dose typed in `input`, or each field's problem. `today` bounds the date given.
    pub fn check(input: &DoseInput<'_>, today: Date) -> Result<Dose, Vec<FieldProblem>> {
        let vaccine = validate::text(input.vaccine, 100, true, "vaccine");
        let number = validate::whole_number(input.dose_number, 1, MAX_DOSE, "dose number");
        let given_on = validate::date(input.given_on, today, true)
            .map(validate::date_text)
            .map_err(str::to_string);
        let lot = validate::text(input.lot, 50, false, "lot");
        let given_by = validate::text(input.given_by, 100, true, "name of who gave it");
        match (vaccine, number, given_on, lot, given_by) {
            (Ok(vaccine), Ok(number), Ok(given_on), Ok(lot), Ok(given_by)) => Ok(Dose {
                vaccine,
                number,
                given_on,
                lot,
                given_by,
            }),
            (vaccine, number, given_on, lot, given_by) => Err([
                ("vaccine", vaccine.err()),
                ("dose_number", number.err()),
                ("given_on", given_on.err()),
                ("lot", lot.err()),
                ("given_by", given_by.err()),
            ]
            .into_iter()
            .filter_map(|(field, problem)| Some((field, problem?)))
            .collect()),
        }
    }
}

/// Why a dose that passed its field rules cannot be recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DoseRefusal {
    /// It does not follow the doses already recorded of its vaccine (the message says how).
    OutOfOrder(String),
    /// A recorded dose failed its integrity check, so the order cannot be checked.
    RecordUnreadable,
}

impl DoseRefusal {
    pub fn message(&self) -> String {
        match self {
            DoseRefusal::OutOfOrder(message) => message.clone(),
            DoseRefusal::RecordUnreadable => "A recorded vaccination failed its integrity check; \
                the dose order cannot be checked. Ask an admin."
                .into(),
        }
    }
}

/// Records `dose` in `patient_id`'s record, by the doctor `recorded_by`, if it follows the doses
/// already recorded of its vaccine; returns its id.
pub fn record(
    app: &Services,
    conn: &mut Conn,
    actor: &Actor,
    patient_id: &str,
    recorded_by: &str,
    dose: &Dose,
) -> Result<Result<String, DoseRefusal>, StoreError> {
    let id = random_id(app.id_length());
    conn.write_transaction(|conn| {
        // Sealed under the lock, after catching up: the policy is the database's.
        app.catch_up(conn)?;
        let sealed = app
            .fields
            .row("vaccinations", RowId(&id), PatientId(patient_id));
        let row = VaccinationRow {
            id: id.clone(),
            patient_id: patient_id.to_string(),
            recorded_by: recorded_by.to_string(),
            vaccine: sealed.seal("vaccine", &dose.vaccine)?,
            dose_number: sealed.seal("dose_number", &dose.number.to_string())?,
            given_on: sealed.seal("given_on", &dose.given_on)?,
            lot: sealed.seal("lot", &dose.lot)?,
            given_by: sealed.seal("given_by", &dose.given_by)?,
            created_at: app.now(),
        };
        let recorded = VaccinationRow::for_patient(patient_id, conn)?;
        let Some(doses) = doses_of(app, &dose.vaccine, &recorded) else {
            return Ok(Err(DoseRefusal::RecordUnreadable));
        };
        if let Some(problem) = dose_order_problem(&doses, dose.number, &dose.given_on) {
            return Ok(Err(DoseRefusal::OutOfOrder(problem)));
        }
        VaccinationRow::insert(&row, conn)?;
        super::changed(
            app,
            conn,
            actor,
            patient_id,
            format!("vaccination {id} added"),
        )?;
        Ok(Ok(id))
    })
}

/// The doses already recorded of `vaccine` (compared without case), with their dates; `None` if
/// one of `rows` cannot be opened.
fn doses_of(app: &Services, vaccine: &str, rows: &[VaccinationRow]) -> Option<Vec<(u32, String)>> {
    let mut doses = Vec::new();
    for row in rows {
        let sealed = app
            .fields
            .row("vaccinations", RowId(&row.id), PatientId(&row.patient_id));
        let name = sealed.open("vaccine", &row.vaccine).ok()?;
        let number = sealed.open("dose_number", &row.dose_number).ok()?;
        let date = sealed.open("given_on", &row.given_on).ok()?;
        if name.to_lowercase() == vaccine.to_lowercase() {
            doses.push((number.parse().unwrap_or(0), date));
        }
    }
    Some(doses)
}

/// Why dose `dose` given on `given_on` cannot follow `doses` (number, date) of its vaccine.
fn dose_order_problem(doses: &[(u32, String)], dose: u32, given_on: &str) -> Option<String> {
    if doses.iter().any(|(n, _)| *n == dose) {
        return Some(format!("Dose {dose} of this vaccine is already recorded."));
    }
    let expected = doses.iter().map(|(n, _)| *n).max().unwrap_or(0) + 1;
    if dose != expected {
        return Some(format!(
            "Doses come in order: the next dose of this vaccine is dose {expected}."
        ));
    }
    // Dates are YYYY-MM-DD, so text order is date order.
    if let Some((_, previous)) = doses.iter().find(|(n, _)| *n == dose - 1) {
        if given_on < previous.as_str() {
            return Some(format!(
                "Dose {dose} cannot be given before dose {} ({previous}).",
                dose - 1
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encryption_registry_lists_exactly_the_dose_fields() {
        let encryptable = crate::fields::registry::encryptable_in("vaccinations");
        assert_eq!(encryptable, FIELD_NAMES);
    }

    #[test]
    fn doses_come_in_order() {
        assert_eq!(dose_order_problem(&[], 1, "2024-01-01"), None);
        assert!(dose_order_problem(&[], 2, "2024-01-01").is_some());
        let one = [(1, "2024-01-01".to_string())];
        assert_eq!(dose_order_problem(&one, 2, "2024-02-01"), None);
        assert!(dose_order_problem(&one, 1, "2024-02-01").is_some());
        assert!(dose_order_problem(&one, 3, "2024-02-01").is_some());
        assert!(dose_order_problem(&one, 2, "2023-12-31").is_some());
        assert_eq!(dose_order_problem(&one, 2, "2024-01-01"), None);
    }

    fn today() -> Date {
        Date::from_calendar_date(2026, time::Month::December, 2).unwrap()
    }

    fn input<'a>(dose_number: &'a str, given_on: &'a str) -> DoseInput<'a> {
        DoseInput {
            vaccine: " MMR ",
            dose_number,
            given_on,
            lot: "",
            given_by: "Nurse Ana",
        }
    }

    #[test]
    fn a_dose_has_a_number_from_1_to_20_and_a_date_not_in_the_future() {
        let dose = Dose::check(&input("2", "2026-12-02"), today()).unwrap();
        assert_eq!((dose.vaccine.as_str(), dose.number), ("MMR", 2));
        for (number, given_on, field) in [
            ("0", "2026-12-01", "dose_number"),
            ("21", "2026-12-01", "dose_number"),
            ("two", "2026-12-01", "dose_number"),
            ("1", "2026-12-03", "given_on"),
            ("1", "1899-12-31", "given_on"),
            ("1", "02/12/2026", "given_on"),
        ] {
            let problems = Dose::check(&input(number, given_on), today()).unwrap_err();
            let fields: Vec<&str> = problems.iter().map(|(f, _)| *f).collect();
            assert_eq!(fields, [field], "{number} on {given_on}");
        }
    }

    #[test]
    fn a_dose_needs_its_vaccine_and_who_gave_it() {
        let blank = DoseInput {
            vaccine: " ",
            dose_number: "1",
            given_on: "2026-12-01",
            lot: &"L".repeat(51),
            given_by: "",
        };
        let problems = Dose::check(&blank, today()).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, ["vaccine", "lot", "given_by"]);
    }
}
