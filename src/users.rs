//! Creating accounts outside the web pages: the command line and the tests use this.

use crate::access::Level;
use crate::app::App;
use crate::audit::{action, Actor, Entry, Outcome};
use crate::auth::password_policy;
use crate::crypto::random_id;
use crate::db::models::{NewUser, User};
use crate::error::AppError;

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("{0}")]
    Invalid(String),
    #[error("the username {0:?} is taken")]
    Taken(String),
    #[error(transparent)]
    Failed(#[from] AppError),
}

/// Creates an active account with `password`, audited as done by `actor` (the command line
/// names itself). The password must pass the same policy as on the pages.
pub fn create_user(
    app: &App,
    level: Level,
    username: &str,
    password: &str,
    actor: &Actor,
) -> Result<User, CreateUserError> {
    let username = User::normalize_username(username);
    if let Some(problem) = User::username_problem(&username) {
        return Err(CreateUserError::Invalid(problem.into()));
    }
    if level == Level::Guest {
        return Err(CreateUserError::Invalid("a user is an admin, doctor or patient".into()));
    }
    if let Some(problem) = password_policy::problem(password, &username) {
        return Err(CreateUserError::Invalid(problem));
    }
    let hash = app
        .passwords
        .hash(password)
        .map_err(|e| AppError::internal("hash", e))?;
    let mut conn = app.db.conn()?;
    let now = app.now();
    let id = random_id(app.config.id_length);
    let created = conn
        .immediate_transaction(|conn| {
            if User::find_by_username(&username, conn)?.is_some() {
                return Ok(false);
            }
            User::insert(
                &NewUser {
                    id: &id,
                    username: &username,
                    level: level.as_str(),
                    password_hash: &hash,
                    must_change_password: false,
                    active: true,
                    created_at: now,
                    updated_at: now,
                },
                conn,
            )?;
            app.audit.append(
                conn,
                now,
                &Entry::new(actor, action::USER_CREATED, Outcome::Success)
                    .target(format!("user {username}"))
                    .detail(format!("level {}", level.as_str())),
            )?;
            Ok::<_, diesel::result::Error>(true)
        })
        .map_err(AppError::from)?;
    if !created {
        return Err(CreateUserError::Taken(username));
    }
    if level == Level::Admin {
        // The first admin exists: the setup link has no more use.
        let _ = app.setup.current().map(|t| app.setup.redeem(&t));
    }
    Ok(User::find(&id, &mut conn)
        .map_err(AppError::from)?
        .ok_or(AppError::NotFound)?)
}
