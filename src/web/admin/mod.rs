//! `/admin/…`: the admin's pages: users, page access, security, masking, care teams, the audit
//! trail, field encryption and backups.

pub(crate) mod access;
pub(crate) mod audit;
pub(crate) mod backups;
pub(crate) mod care_teams;
pub(crate) mod encryption;
pub(crate) mod masking;
pub(crate) mod security;
pub(crate) mod user_actions;
pub(crate) mod users;

use rocket::Route;

pub fn routes() -> Vec<Route> {
    [
        users::routes(),
        user_actions::routes(),
        access::routes(),
        security::routes(),
        masking::routes(),
        care_teams::routes(),
        audit::routes(),
        encryption::routes(),
        backups::routes(),
    ]
    .concat()
}
