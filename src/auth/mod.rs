//! Who is asking: the client's address, the browser-bound session, the page guards and CSRF.

pub mod client;
mod csrf;
mod guard;
pub mod lockout;
pub mod refusal;
mod session;

pub use client::ClientInfo;
pub use csrf::{login_csrf_token, CsrfForm};
pub use guard::{page_of, Allowed, Public, SignedIn};
pub use session::{
    end_session, remove_session_cookie, set_session_cookie, start_session, SessionEnd,
    SignedInSession, Viewer, SESSION_COOKIE,
};

pub use lockout::count_failure;
