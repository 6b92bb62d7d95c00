//! `/account/…`: what each signed-in person does with their own account: the password, the
//! sessions, two-factor sign-in, and (for a patient) who opened their record.

pub(crate) mod access_log;
pub(crate) mod password;
pub(crate) mod sessions;
pub(crate) mod two_factor;

use rocket::Route;

pub fn routes() -> Vec<Route> {
    [
        password::routes(),
        sessions::routes(),
        two_factor::routes(),
        access_log::routes(),
    ]
    .concat()
}
