//! Server-side sessions bound to the browser that opened them.
//!
//! The cookie (private, HttpOnly, SameSite=Strict) holds only a random 256-bit token. The row
//! stores the token's HMAC under a session key that is renewed every interval; at renewal the old
//! digests stop matching and every session ends.

use rocket::http::{Cookie, CookieJar, SameSite};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::State;

use super::refusal::GuardError;
use crate::app::App;
use crate::audit::{action, Actor, Entry, Outcome as AuditOutcome};
use crate::auth::ClientInfo;
use crate::crypto::{random_id, random_token};
use crate::db::models::{NewSession, SessionRow, User, STAGE_FULL};
use crate::db::Conn;
use crate::db::DbError;

pub const SESSION_COOKIE: &str = "mv_session";

/// Sessions are re-checked against the database on every request, but `last_seen_at` is only
/// written when it is this many seconds old, so reading a page does not always cost a write.
const TOUCH_AFTER_SECONDS: i64 = 10;

/// The person behind a request.
pub enum Viewer {
    Guest {
        /// A session cookie came with the request but its session has ended: why, and whose.
        session_ended: Option<EndedSession>,
    },
    SignedIn(Box<SignedInSession>),
}

/// A session that ended on this request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndedSession {
    pub why: SessionEnd,
    /// Whose it was: the page it was opening is offered back to that user's sign-in only.
    pub user_id: String,
}

/// Why a session ended, as the sign-in page tells the person who comes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// No request for `session_idle_timeout` seconds.
    Idle,
    /// `session_lifetime` after sign-in.
    Lifetime,
    /// The request came from another address than the sign-in (the IP binding).
    AddressChanged,
    /// The request came from another browser than the sign-in (the user-agent binding).
    BrowserChanged,
    /// The daily renewal of the session keys.
    KeyRenewed,
    /// Ended elsewhere: signed out in another tab, by the user from another browser, by an
    /// admin, or by a restore.
    Revoked,
    /// The account was deactivated.
    Deactivated,
}

impl SessionEnd {
    /// The word the sign-in page's link carries (`/login?ended=idle`).
    pub fn code(self) -> &'static str {
        match self {
            SessionEnd::Idle => "idle",
            SessionEnd::Lifetime => "lifetime",
            SessionEnd::AddressChanged => "address",
            SessionEnd::BrowserChanged => "browser",
            SessionEnd::KeyRenewed => "renewal",
            SessionEnd::Revoked => "revoked",
            SessionEnd::Deactivated => "deactivated",
        }
    }

    pub fn from_code(code: &str) -> Option<SessionEnd> {
        [
            SessionEnd::Idle,
            SessionEnd::Lifetime,
            SessionEnd::AddressChanged,
            SessionEnd::BrowserChanged,
            SessionEnd::KeyRenewed,
            SessionEnd::Revoked,
            SessionEnd::Deactivated,
        ]
        .into_iter()
        .find(|end| end.code() == code)
    }
}

pub struct SignedInSession {
    pub user: User,
    pub session: SessionRow,
}

impl Viewer {
    /// The viewer the guards resolved for `req`, if they did (a catcher asks).
    pub fn cached<'r>(req: &'r Request<'_>) -> Option<&'r Viewer> {
        req.local_cache(|| {
            Err::<Viewer, rocket::http::Status>(rocket::http::Status::InternalServerError)
        })
        .as_ref()
        .ok()
    }

    pub fn signed_in(&self) -> Option<&SignedInSession> {
        match self {
            Viewer::SignedIn(s) => Some(s),
            Viewer::Guest { .. } => None,
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for &'r Viewer {
    type Error = GuardError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, GuardError> {
        let viewer = req
            .local_cache_async(async {
                resolve(req).await.map_err(|e| {
                    tracing::error!(error = %e, "cannot resolve the session");
                    e.status()
                })
            })
            .await;
        match viewer {
            Ok(viewer) => Outcome::Success(viewer),
            Err(status) => Outcome::Error((
                *status,
                GuardError::Internal("session lookup failed".into()),
            )),
        }
    }
}

/// Why a session is ended on this request: the kind, for the sign-in page, and the words for
/// the audit trail.
fn binding_problem(
    app: &App,
    row: &SessionRow,
    client: &ClientInfo,
    now: i64,
) -> Option<(SessionEnd, String)> {
    if now - row.last_seen_at > app.config.session_idle_timeout {
        return Some((SessionEnd::Idle, "idle timeout".into()));
    }
    if now - row.created_at > app.config.session_lifetime {
        return Some((SessionEnd::Lifetime, "lifetime reached".into()));
    }
    if app.security.bind_ip() && row.ip != client.ip {
        return Some((
            SessionEnd::AddressChanged,
            format!("address changed from {} to {}", row.ip, client.ip),
        ));
    }
    if app.security.bind_user_agent() && row.user_agent != client.user_agent {
        return Some((
            SessionEnd::BrowserChanged,
            "browser (user agent) changed".into(),
        ));
    }
    None
}

async fn resolve(req: &Request<'_>) -> Result<Viewer, GuardError> {
    let Some(cookie) = req.cookies().get_private(SESSION_COOKIE) else {
        return Ok(Viewer::Guest {
            session_ended: None,
        });
    };
    let token = cookie.value().to_string();
    let app = match req.guard::<&State<App>>().await {
        Outcome::Success(app) => app.inner().clone(),
        _ => return Err(GuardError::Internal("application state missing".into())),
    };
    let client = match req.guard::<&ClientInfo>().await {
        Outcome::Success(c) => c.clone(),
        Outcome::Error((_, e)) => return Err(e),
        Outcome::Forward(_) => return Err(GuardError::Internal("client info missing".into())),
    };
    let viewer = app
        .db
        .clone()
        .run(move |conn| resolve_token(&app, &token, &client, conn))
        .await?;
    // A half-signed-in session keeps its cookie for the second-factor page.
    if let Viewer::Guest {
        session_ended: Some(_),
    } = viewer
    {
        remove_session_cookie(req.cookies());
    }
    Ok(viewer)
}

fn resolve_token(
    app: &App,
    token: &str,
    client: &ClientInfo,
    conn: &mut Conn,
) -> Result<Viewer, GuardError> {
    let now = app.now();
    let epoch = app.sessions.epoch(now);
    let ended = |why, user_id: &str| Viewer::Guest {
        session_ended: Some(EndedSession {
            why,
            user_id: user_id.to_string(),
        }),
    };
    let Some((row, user)) = SessionRow::find_with_user(&app.sessions.digest(token, epoch), conn)?
    else {
        // A digest under the previous key means the session key was renewed under it.
        if let Some(old) = SessionRow::find_by_digest(&app.sessions.digest(token, epoch - 1), conn)?
        {
            end_with_audit(app, &old, client, "session key renewed", conn)?;
            return Ok(ended(SessionEnd::KeyRenewed, &old.user_id));
        }
        // Whose it was is gone with the row.
        return Ok(ended(SessionEnd::Revoked, ""));
    };
    if !row.is_full() {
        // Half signed in: only the second-factor page reads this session.
        return Ok(Viewer::Guest {
            session_ended: None,
        });
    }
    let Some(user) = user.filter(|u| u.active) else {
        end_with_audit(app, &row, client, "account deactivated", conn)?;
        return Ok(ended(SessionEnd::Deactivated, &row.user_id));
    };
    if let Some((why, problem)) = binding_problem(app, &row, client, now) {
        end_with_audit(app, &row, client, &problem, conn)?;
        return Ok(ended(why, &row.user_id));
    }
    let mut session = row;
    if now - session.last_seen_at >= TOUCH_AFTER_SECONDS {
        SessionRow::touch(&session.id, now, conn)?;
        session.last_seen_at = now;
    }
    Ok(Viewer::SignedIn(Box::new(SignedInSession {
        user,
        session,
    })))
}

fn end_with_audit(
    app: &App,
    row: &SessionRow,
    client: &ClientInfo,
    reason: &str,
    conn: &mut Conn,
) -> Result<(), DbError> {
    let actor_name = User::find(&row.user_id, conn)?
        .map(|u| u.username)
        .unwrap_or_default();
    conn.write_transaction(|conn| {
        SessionRow::delete(&row.id, conn)?;
        let actor = Actor {
            id: row.user_id.clone(),
            name: actor_name,
            ip: client.ip.clone(),
        };
        app.audit.append(
            conn,
            app.now(),
            &Entry::new(&actor, action::SESSION_ENDED, AuditOutcome::Success)
                .target(format!("session {}", row.id))
                .detail(reason),
        )
    })?;
    Ok(())
}

/// Signs `user` in from `client`: sweeps dead sessions, ends the session the browser had (a
/// fresh token at every sign-in), writes the new row and the audit event. Returns the token.
pub fn start_session(
    app: &App,
    user: &User,
    client: &ClientInfo,
    previous_token: Option<&str>,
    stage: &str,
    conn: &mut Conn,
) -> Result<String, DbError> {
    let now = app.now();
    let epoch = app.sessions.epoch(now);
    let token = random_token();
    conn.write_transaction(|conn| {
        SessionRow::delete_stale(
            epoch,
            now - app.config.session_idle_timeout,
            now - app.config.session_lifetime,
            conn,
        )?;
        if let Some(previous) = previous_token {
            if let Some(old) =
                SessionRow::find_by_digest(&app.sessions.digest(previous, epoch), conn)?
            {
                SessionRow::delete(&old.id, conn)?;
            }
        }
        let id = random_id(app.id_length());
        SessionRow::insert(
            &NewSession {
                id: &id,
                token_digest: &app.sessions.digest(&token, epoch),
                key_epoch: epoch,
                user_id: &user.id,
                csrf_token: &random_token(),
                ip: &client.ip,
                user_agent: &client.user_agent,
                created_at: now,
                last_seen_at: now,
                stage,
            },
            conn,
        )?;
        let actor = Actor {
            id: user.id.clone(),
            name: user.username.clone(),
            ip: client.ip.clone(),
        };
        let detail = if stage == STAGE_FULL {
            "signed in"
        } else {
            "password accepted; waiting for the second factor"
        };
        app.audit.append(
            conn,
            now,
            &Entry::new(&actor, action::LOGIN_SUCCESS, AuditOutcome::Success)
                .target(format!("session {id}"))
                .detail(detail),
        )
    })?;
    Ok(token)
}

/// Ends `session` on sign-out.
pub fn end_session(
    app: &App,
    session: &SessionRow,
    actor: &Actor,
    conn: &mut Conn,
) -> Result<(), DbError> {
    conn.write_transaction(|conn| {
        SessionRow::delete(&session.id, conn)?;
        app.audit.append(
            conn,
            app.now(),
            &Entry::new(actor, action::LOGOUT, AuditOutcome::Success)
                .target(format!("session {}", session.id)),
        )
    })?;
    Ok(())
}

pub fn set_session_cookie(cookies: &CookieJar<'_>, token: String, secure: bool) {
    let cookie = Cookie::build((SESSION_COOKIE, token))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .path("/")
        .expires(None);
    cookies.add_private(cookie);
}

pub fn remove_session_cookie(cookies: &CookieJar<'_>) {
    cookies.remove_private(Cookie::build(SESSION_COOKIE).path("/"));
}
