//! Every request pins the database it starts with (see `db`), so that a restore swapping the
//! file never shows one request part of the old data and part of the new.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rocket::fairing::{Fairing, Info, Kind};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::Data;

use crate::app::App;
use crate::db::RequestPin;

/// How long a request arriving during a swap waits before it goes on unpinned (it then waits
/// for a connection like any other caller).
const WAIT_FOR_SWAP: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct PinSlot(Mutex<Option<RequestPin>>);

pub struct PinDatabase;

#[rocket::async_trait]
impl Fairing for PinDatabase {
    fn info(&self) -> Info {
        Info {
            name: "pin the database for each request",
            kind: Kind::Request,
        }
    }

    async fn on_request(&self, req: &mut Request<'_>, _data: &mut Data<'_>) {
        let Some(app) = req.rocket().state::<App>() else {
            return;
        };
        let deadline = Instant::now() + WAIT_FOR_SWAP;
        loop {
            if let Some(pin) = app.db.try_pin() {
                *req.local_cache(PinSlot::default)
                    .0
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(pin);
                return;
            }
            if Instant::now() >= deadline {
                return;
            }
            rocket::tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The request's own pin, for the one handler that must let go of it: the restore, which waits
/// for every pinned request to finish.
pub struct OwnPin<'r>(&'r PinSlot);

impl OwnPin<'_> {
    pub fn release(&self) {
        self.0 .0.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for OwnPin<'r> {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(OwnPin(req.local_cache(PinSlot::default)))
    }
}
