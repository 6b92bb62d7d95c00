//! Consultations: what a doctor writes after seeing a patient. The rule of each field, and the
//! commands that add one, edit one and open one for editing, each with its audit event.

use super::{validate, FieldProblem};
use crate::audit::{action, Actor};
use crate::crypto::random_id;
use crate::db::models::records::ConsultationRow;
pub use crate::db::models::records::ConsultationText;
use crate::db::Conn;
use crate::fields::{Shown, StoreError};
use crate::ids::{PatientId, RowId};
use crate::services::Services;

/// The form field (and row column) of the consultation's date and time.
pub const OCCURRED_AT: &str = "occurred_at";

impl ConsultationText {
    /// The longest value in characters, whether it is required, and what the person is told
    /// the field is.
    fn rule(self) -> (usize, bool, &'static str) {
        match self {
            ConsultationText::Department => (100, true, "department"),
            ConsultationText::Block => (20, false, "block"),
            ConsultationText::Unit => (20, false, "unit"),
            ConsultationText::Diagnosis => (2000, true, "diagnosis"),
            ConsultationText::Notes => (10000, false, "notes"),
            ConsultationText::Prescription => (4000, false, "prescription"),
        }
    }
}

/// Every field of the consultation form: the date and time, then the texts.
pub const FIELD_NAMES: [&str; 7] = {
    let mut names = [OCCURRED_AT; 7];
    let mut i = 0;
    while i < ConsultationText::ALL.len() {
        names[i + 1] = ConsultationText::ALL[i].name();
        i += 1;
    }
    names
};

/// A consultation whose fields passed their rules, trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consultation {
    pub occurred_at: i64,
    texts: [String; 6],
}

impl Consultation {
    /// The consultation typed as `occurred_at` (`2024-03-31T14:30`, UTC) and `text` of each
    /// field, or each field's problem.
    pub fn check<'a>(
        occurred_at: &str,
        text: impl Fn(ConsultationText) -> &'a str,
    ) -> Result<Consultation, Vec<FieldProblem>> {
        let mut problems = Vec::new();
        let occurred_at = validate::date_time(occurred_at)
            .map_err(|e| problems.push((OCCURRED_AT, e.to_string())))
            .unwrap_or_default();
        let texts = ConsultationText::ALL.map(|field| {
            let (max, required, what) = field.rule();
            validate::text(text(field), max, required, what)
                .map_err(|e| problems.push((field.name(), e)))
                .unwrap_or_default()
        });
        if problems.is_empty() {
            Ok(Consultation { occurred_at, texts })
        } else {
            Err(problems)
        }
    }

    pub fn text(&self, field: ConsultationText) -> &str {
        &self.texts[field as usize]
    }

    /// `row` with this consultation's values, sealed under `row`'s own keys.
    fn seal_into(&self, app: &Services, row: &mut ConsultationRow) -> Result<(), StoreError> {
        let (id, owner) = (row.id.clone(), row.patient_id.clone());
        let sealed = app
            .fields
            .row("consultations", RowId(&id), PatientId(&owner));
        row.occurred_at = self.occurred_at;
        for field in ConsultationText::ALL {
            field.store(row, sealed.seal(field.name(), self.text(field))?);
        }
        Ok(())
    }
}

/// Adds `consultation` to `patient_id`'s record, written by `doctor_id`; returns its id.
pub fn add(
    app: &Services,
    conn: &mut Conn,
    actor: &Actor,
    patient_id: &str,
    doctor_id: &str,
    consultation: &Consultation,
) -> Result<String, StoreError> {
    let now = app.now();
    let mut row = ConsultationRow {
        id: random_id(app.id_length()),
        patient_id: patient_id.to_string(),
        doctor_id: doctor_id.to_string(),
        occurred_at: 0,
        department: String::new(),
        block: String::new(),
        unit: String::new(),
        diagnosis: String::new(),
        notes: String::new(),
        prescription: String::new(),
        created_at: now,
        updated_at: now,
    };
    conn.write_transaction(|conn| {
        app.catch_up(conn)?;
        consultation.seal_into(app, &mut row)?;
        ConsultationRow::insert(&row, conn)?;
        super::changed(
            app,
            conn,
            actor,
            patient_id,
            format!("consultation {} added", row.id),
        )?;
        Ok(row.id.clone())
    })
}

/// Replaces consultation `id` of `patient_id` with `consultation`; `None` if the patient has no
/// such consultation.
pub fn edit(
    app: &Services,
    conn: &mut Conn,
    actor: &Actor,
    patient_id: &str,
    id: &str,
    consultation: &Consultation,
) -> Result<Option<()>, StoreError> {
    conn.write_transaction(|conn| {
        app.catch_up(conn)?;
        let Some(mut row) = ConsultationRow::find(patient_id, id, conn)? else {
            return Ok(None);
        };
        consultation.seal_into(app, &mut row)?;
        row.updated_at = app.now();
        ConsultationRow::update(&row, conn)?;
        super::changed(
            app,
            conn,
            actor,
            patient_id,
            format!("consultation {id} edited"),
        )?;
        Ok(Some(()))
    })
}

/// A consultation opened for its edit form.
pub struct Opened {
    pub id: String,
    pub occurred_at: i64,
    /// Each text field as the doctor sees it; one that failed its integrity check is blank.
    pub texts: Vec<(ConsultationText, Shown)>,
}

impl Opened {
    pub fn integrity_error(&self) -> bool {
        self.texts.iter().any(|(_, shown)| shown.integrity_error)
    }
}

/// Consultation `id` of `patient_id` opened to be edited, audited as a view (and any value
/// that failed its integrity check as such); `None` if the patient has no such consultation.
pub fn open_for_edit(
    app: &Services,
    conn: &mut Conn,
    actor: &Actor,
    patient_id: &str,
    id: &str,
) -> Result<Option<Opened>, StoreError> {
    let Some(row) = ConsultationRow::find(patient_id, id, conn)? else {
        return Ok(None);
    };
    let sealed = app
        .fields
        .row("consultations", RowId(&row.id), PatientId(patient_id));
    let opened = Opened {
        texts: ConsultationText::ALL
            .into_iter()
            .map(|field| (field, sealed.show(field.name(), field.stored(&row))))
            .collect(),
        id: row.id,
        occurred_at: row.occurred_at,
    };
    let broken: Vec<String> = opened
        .texts
        .iter()
        .filter(|(_, shown)| shown.integrity_error)
        .map(|(field, _)| format!("consultation {id} {}", field.name()))
        .collect();
    super::audit(
        app,
        conn,
        actor,
        action::RECORD_VIEWED,
        patient_id,
        format!("consultation {id}"),
    )?;
    super::audit_integrity_errors(app, conn, actor, patient_id, &broken)?;
    Ok(Some(opened))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encryption_registry_lists_exactly_the_consultation_texts() {
        let encryptable = crate::fields::registry::encryptable_in("consultations");
        let texts: Vec<&str> = ConsultationText::ALL.map(ConsultationText::name).to_vec();
        assert_eq!(encryptable, texts);
    }

    fn typed<'a>(values: &'a [(&'a str, &'a str)]) -> impl Fn(ConsultationText) -> &'a str {
        move |field| {
            values
                .iter()
                .find(|(name, _)| *name == field.name())
                .map_or("", |(_, v)| *v)
        }
    }

    #[test]
    fn a_consultation_needs_a_time_a_department_and_a_diagnosis() {
        let ok = Consultation::check(
            "2024-03-31T14:30",
            typed(&[("department", " Cardiology "), ("diagnosis", "Angina")]),
        )
        .unwrap();
        assert_eq!(ok.text(ConsultationText::Department), "Cardiology");
        assert_eq!(ok.text(ConsultationText::Prescription), "");
        let problems = Consultation::check("31/03/2024", typed(&[])).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, ["occurred_at", "department", "diagnosis"]);
    }

    #[test]
    fn each_text_has_its_limit_in_characters() {
        let long_block = "é".repeat(21);
        let problems = Consultation::check(
            "2024-03-31T14:30",
            typed(&[
                ("department", "A"),
                ("diagnosis", "B"),
                ("block", &long_block),
            ]),
        )
        .unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, "block");
        let block = "é".repeat(20);
        let notes = "n".repeat(10000);
        assert!(Consultation::check(
            "2024-03-31T14:30",
            typed(&[
                ("department", "A"),
                ("diagnosis", "B"),
                ("block", &block),
                ("notes", &notes),
            ]),
        )
        .is_ok());
    }

    #[test]
    fn the_form_names_are_the_time_and_the_texts() {
        assert_eq!(
            FIELD_NAMES,
            [
                "occurred_at",
                "department",
                "block",
                "unit",
                "diagnosis",
                "notes",
                "prescription"
            ]
        );
        for (i, field) in ConsultationText::ALL.into_iter().enumerate() {
            assert_eq!(field as usize, i, "the texts array is indexed by the enum");
        }
    }
}
