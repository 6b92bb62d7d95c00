//! Creating accounts outside the web pages: the command line and the tests use this.

pub mod password_policy;

use crate::access::Level;
use crate::audit::{action, Actor, Entry, Outcome};
use crate::crypto::random_id;
use crate::db::models::{NewUser, User};
use crate::db::Conn;
use crate::fields::StoreError;
use crate::services::Services;

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("{0}")]
    Invalid(String),
    #[error("the username {0:?} is taken")]
    Taken(String),
    #[error("the password could not be hashed: {0}")]
    Hash(String),
    #[error(transparent)]
    Failed(#[from] StoreError),
}

impl From<crate::db::DbError> for CreateUserError {
    fn from(e: crate::db::DbError) -> Self {
        CreateUserError::Failed(e.into())
    }
}

impl From<diesel::result::Error> for CreateUserError {
    fn from(e: diesel::result::Error) -> Self {
        CreateUserError::Failed(e.into())
    }
}

/// Why an account could not be unlocked.
#[derive(Debug, thiserror::Error)]
pub enum UnlockError {
    #[error("there is no account named {0:?}")]
    NoSuchAccount(String),
    #[error(transparent)]
    Failed(#[from] crate::db::DbError),
}

impl From<diesel::result::Error> for UnlockError {
    fn from(e: diesel::result::Error) -> Self {
        UnlockError::Failed(e.into())
    }
}

/// An account whose lockout was lifted.
pub struct Unlocked {
    pub username: String,
    pub was_locked: bool,
}

/// Lifts `username`'s lockout and forgets its failures, audited as done by `actor`: the way
/// back in when every admin is locked out. Every server on the database sees it at the next
/// attempt (the lock lives in `account_lockouts`).
pub fn unlock_account(
    app: &crate::app::App,
    username: &str,
    actor: &Actor,
) -> Result<Unlocked, UnlockError> {
    let username = User::normalize_username(username);
    let mut conn = app.db.conn()?;
    let now = app.now();
    conn.write_transaction(|conn| {
        let Some(user) = User::find_by_username(&username, conn)? else {
            return Err(UnlockError::NoSuchAccount(username.clone()));
        };
        let was_locked = crate::auth::lockout::forget(app, &user.username, now, conn)?;
        app.audit.append(
            conn,
            now,
            &Entry::new(actor, action::ACCOUNT_UNLOCKED, Outcome::Success)
                .target(format!("user {}", user.username))
                .detail(format!("was locked: {was_locked}")),
        )?;
        Ok(Unlocked {
            username: user.username,
            was_locked,
        })
    })
}

/// Creates an active account with `password`, audited as done by `actor` (the command line
/// names itself). The password must pass the same policy as on the pages.
pub fn create_user(
    app: &Services,
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
        return Err(CreateUserError::Invalid(
            "a user is an admin, doctor or patient".into(),
        ));
    }
    if let Some(problem) = password_policy::problem(password, &username) {
        return Err(CreateUserError::Invalid(problem));
    }
    let hash = app
        .passwords
        .hash(password)
        .map_err(|e| CreateUserError::Hash(e.to_string()))?;
    let mut conn = app.db.conn()?;
    let now = app.now();
    let id = random_id(app.id_length());
    let created = conn.write_transaction(|conn| {
        if User::find_by_username(&username, conn)?.is_some() {
            return Ok(false);
        }
        insert_account(
            app,
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
            ("", ""),
            conn,
        )?;
        app.audit.append(
            conn,
            now,
            &Entry::new(actor, action::USER_CREATED, Outcome::Success)
                .target(format!("user {username}"))
                .detail(format!("level {}", level.as_str())),
        )?;
        Ok::<_, StoreError>(true)
    })?;
    if !created {
        return Err(CreateUserError::Taken(username));
    }
    if level == Level::Admin {
        // The first admin exists: the setup link has no more use.
        let _ = app.setup.current().map(|t| app.setup.redeem(&t));
    }
    User::find(&id, &mut conn)?.ok_or(CreateUserError::Failed(StoreError::Db(
        diesel::result::Error::NotFound.into(),
    )))
}

/// Inserts an account and its personal columns (full name, email) in the stored form the
/// encryption policy asks for. Every path that creates an account comes through here.
pub fn insert_account(
    app: &Services,
    new: &NewUser<'_>,
    (full_name, email): (&str, &str),
    conn: &mut Conn,
) -> Result<(), StoreError> {
    // Called inside a write transaction: the policy the values are sealed under is made the
    // database's first (another server may have changed it a moment ago).
    app.catch_up(conn)?;
    User::insert(new, conn)?;
    let [full_name, email, email_index] = app.fields.seal_account(new.id, full_name, email)?;
    User::set_personal(new.id, &full_name, &email, &email_index, conn)?;
    Ok(())
}
