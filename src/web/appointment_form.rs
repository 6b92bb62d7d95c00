//! The booking form the doctor's record page and the patient's own page share, read into the
//! domain's [`Booking`] (whose rules live in `records::appointments`).

use rocket::form::FromForm;

use crate::auth::CsrfForm;
use crate::records::appointments::Booking;
use crate::web::FormView;

#[derive(FromForm)]
pub struct AppointmentForm {
    starts_at: String,
    reason: String,
    /// Sent only by a patient's booking form, which chooses among their doctors.
    #[allow(dead_code)]
    doctor_id: Option<String>,
}

/// The booking the form asks for, or `view` with a message at each field that is wrong.
pub fn booking_of(
    form: &CsrfForm<'_, AppointmentForm>,
    now: i64,
    view: FormView,
) -> Result<Booking, FormView> {
    let Some(f) = form.value.as_ref() else {
        return Err(view.error("starts_at", "Choose a time."));
    };
    Booking::check(&f.starts_at, &f.reason, now).map_err(|problems| {
        problems
            .into_iter()
            .fold(view, |view, (field, message)| view.error(field, message))
    })
}
