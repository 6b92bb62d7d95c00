//! `/admin/…`: the admin's pages: users, page access, security, masking, care teams, the audit
//! trail, field encryption and backups.

mod access;
mod audit;
mod backups;
mod care_teams;
mod encryption;
mod masking;
mod security;
mod user_actions;
mod users;

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
