//! Who is asking: the client's address, the browser-bound session, the page guards and CSRF.

pub mod client;
mod csrf;
mod guard;
pub mod refusal;
mod session;

pub use client::ClientInfo;
pub use csrf::{login_csrf_token, CsrfForm};
pub use guard::{page_of, Allowed, Public, SignedIn};
pub use session::{
    end_session, remove_session_cookie, set_session_cookie, start_session, SignedInSession, Viewer,
    SESSION_COOKIE,
};

/// Counts a wrong password or code against `account` and, when that locks it, writes the lock
/// to the audit trail (named after `actor`), in the caller's transaction if it has one.
pub fn count_failure(
    app: &crate::app::App,
    conn: &mut crate::db::Conn,
    actor: &crate::audit::Actor,
    account: &str,
    now: i64,
) -> diesel::QueryResult<()> {
    use crate::audit::{action, Entry, Outcome};
    if let crate::brute_force::FailureOutcome::LockedUntil(until) =
        app.brute_force.record_failure(account, now)
    {
        app.audit.append(
            conn,
            now,
            &Entry::new(actor, action::ACCOUNT_LOCKED, Outcome::Denied)
                .target(format!("user {}", actor.name))
                .detail(format!("locked for {} s", until - now)),
        )?;
    }
    Ok(())
}
