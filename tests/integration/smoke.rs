use crate::common;

use common::*;
use medvault::access::Level;
use rocket::http::Status;

#[test]
fn an_admin_signs_in_and_opens_the_dashboard() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let page = admin.get("/dashboard");
    page.assert_status(Status::Ok);
    assert!(page.body.contains("Welcome, admin"));
}
