//! What the in-process benches share: a server in a temporary home, and a signed-in client.
#![allow(dead_code)]

use medvault::access::Level;
use medvault::{build_rocket, App, Config};
use rocket::http::{ContentType, Status};
use rocket::local::blocking::Client;
use tempfile::TempDir;

pub const PASSWORD: &str = "a long and private passphrase";

/// A server on a fresh home (kept alive by the returned `TempDir`), without the background
/// re-encryption worker.
pub fn server() -> (TempDir, Client, App) {
    let home = tempfile::tempdir().expect("temp dir");
    let mut config = Config::for_home(home.path());
    config.reencrypt_in_background = false;
    let client = Client::tracked(build_rocket(config).expect("server")).expect("client");
    let app = client.rocket().state::<App>().expect("app").clone();
    (home, client, app)
}

/// Creates `username` at `level` with [`PASSWORD`] and signs the client in through the form.
pub fn sign_in_new_user(client: &Client, app: &App, level: Level, username: &str) {
    let actor = medvault::audit::Actor::default();
    medvault::users::create_user(app, level, username, PASSWORD, &actor).expect("user");
    let login = client
        .get("/login")
        .dispatch()
        .into_string()
        .unwrap_or_default();
    let (status, _) = post(
        client,
        "/login",
        &csrf(&login),
        &[("username", username), ("password", PASSWORD)],
    );
    assert_eq!(status, Status::SeeOther);
}

pub fn csrf(page: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = page.find(marker).expect("csrf") + marker.len();
    page[start..start + page[start..].find('"').expect("end")].to_string()
}

/// Posts `fields` with the CSRF token `token`. The response is read whole and dropped: a
/// local client's response keeps its request, and with it the request's pin on the database,
/// which a restore would wait for.
pub fn post(client: &Client, uri: &str, token: &str, fields: &[(&str, &str)]) -> (Status, String) {
    let mut body = format!(
        "csrf_token={}",
        rocket::http::RawStr::new(token).percent_encode()
    );
    for (k, v) in fields {
        body.push_str(&format!(
            "&{k}={}",
            rocket::http::RawStr::new(v).percent_encode()
        ));
    }
    let res = client
        .post(uri.to_string())
        .header(ContentType::Form)
        .body(body)
        .dispatch();
    (res.status(), res.into_string().unwrap_or_default())
}
