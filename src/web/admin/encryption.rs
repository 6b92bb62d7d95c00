//! `/admin/encryption`: which columns are encrypted, under which cipher and hash per table, the
//! length of new ids, the width of blind indexes, root-key rotation, and the re-encryption job.

use std::collections::{HashMap, HashSet};

use crate::web::Template;
use rocket::form::FromForm;
use rocket::http::Status;
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect};
use rocket::uri;
use rocket::{get, post, routes, Route, State};
use rocket_dyn_templates::context;
use serde::Serialize;

use crate::access::page;
use crate::app::App;
use crate::audit::{action, Entry, Outcome};
use crate::auth::{Allowed, CsrfForm};
use crate::crypto::{Cipher, HashAlg, Strength, Suite};
use crate::db::models::{key_check, JobLease, Setting};
use crate::fields::registry::{self, TABLES};
use crate::fields::{policy, Policy};
use crate::reencryption::{job, rotation};
use crate::web::error::{AppError, Rejected};
use crate::web::Layout;

pub fn routes() -> Vec<Route> {
    routes![overview, save, rotate]
}

type Who = Allowed<page::AdminEncryption>;

#[derive(Serialize)]
struct Choice {
    key: &'static str,
    title: &'static str,
    warning: Option<&'static str>,
    selected: bool,
}

fn warning(strength: Strength) -> Option<&'static str> {
    match strength {
        Strength::Modern => None,
        Strength::Legacy => Some("legacy"),
        Strength::Broken => Some("broken"),
    }
}

#[derive(Serialize)]
struct ColumnView {
    value: String,
    name: &'static str,
    title: &'static str,
    encrypted: bool,
    not_encryptable: Option<&'static str>,
    searchable: bool,
    always_encrypted: bool,
}

#[derive(Serialize)]
struct TableView {
    name: &'static str,
    title: &'static str,
    suite: String,
    suite_warning: Option<&'static str>,
    ciphers: Vec<Choice>,
    hashes: Vec<Choice>,
    columns: Vec<ColumnView>,
}

fn tables(policy: &Policy) -> Vec<TableView> {
    TABLES
        .iter()
        .map(|t| {
            let suite = policy.suite_for(t.name);
            TableView {
                name: t.name,
                title: t.title,
                suite: suite.title(),
                suite_warning: warning(suite.strength()),
                ciphers: Cipher::ALL
                    .iter()
                    .map(|c| Choice {
                        key: c.key(),
                        title: c.title(),
                        warning: warning(c.strength()),
                        selected: *c == suite.cipher,
                    })
                    .collect(),
                hashes: HashAlg::ALL
                    .iter()
                    .map(|h| Choice {
                        key: h.key(),
                        title: h.title(),
                        warning: warning(h.strength()),
                        selected: *h == suite.hash,
                    })
                    .collect(),
                columns: t
                    .columns
                    .iter()
                    .map(|c| ColumnView {
                        value: format!("{}.{}", t.name, c.name),
                        name: c.name,
                        title: c.title,
                        encrypted: policy.is_encrypted(t.name, c.name),
                        not_encryptable: c.not_encryptable,
                        searchable: c.blind_index.is_some(),
                        always_encrypted: c.always_encrypted,
                    })
                    .collect(),
            }
        })
        .collect()
}

#[derive(Serialize)]
struct KeyVersion {
    version: i32,
    created_at: i64,
    retired: bool,
    current: bool,
}

async fn page(app: &App, layout: Layout, status: Status) -> Result<(Status, Template), AppError> {
    let (census, latest, versions, runner) = app
        .blocking(move |app, conn| {
            let census = job::census(app, conn)?;
            let latest = job::Job::latest(conn)?;
            // Which server runs the job, when several share the database.
            let runner = JobLease::holder(job::LEASE, conn)?
                .filter(|lease| lease.remaining_ms > 0)
                .map(|lease| lease.holder);
            let current = app.fields.crypto().current_key_version() as i32;
            let versions: Vec<KeyVersion> = key_check::all_with_state(conn)?
                .into_iter()
                .map(|(version, created_at, retired)| KeyVersion {
                    version,
                    created_at,
                    retired,
                    current: version == current,
                })
                .collect();
            Ok((census, latest, versions, runner))
        })
        .await?;
    let policy = app.fields.policy();
    let running = latest.as_ref().is_some_and(job::Job::is_running);
    let others: Vec<_> = registry::OTHER_PERSONAL_COLUMNS
        .iter()
        .map(|(table, c)| context! { table, name: c.name, title: c.title, reason: c.not_encryptable })
        .collect();
    Ok((
        status,
        Template::render(
            "admin/encryption",
            context! {
                layout,
                tables: tables(&policy),
                others,
                census,
                done: census.total - census.stale,
                job: latest,
                running,
                runner,
                versions,
                id_length: app.id_length(),
                blind_index_bits: policy.blind_index_bits,
                key_from_env: app.config.key_provider() == crate::config::KeyProviderKind::Env,
                key_held_by: app.key_manager.as_ref().map(|m| m.describe()),
                current_version: app.fields.crypto().current_key_version(),
            },
        ),
    ))
}

#[get("/admin/encryption")]
pub(crate) async fn overview(
    who: Who,
    app: &State<App>,
    flash: Option<FlashMessage<'_>>,
) -> Result<(Status, Template), AppError> {
    page(app, Layout::for_user(app, &who, flash), Status::Ok).await
}

#[derive(FromForm)]
pub struct PolicyForm {
    cipher: HashMap<String, String>,
    hash: HashMap<String, String>,
    encrypt: Vec<String>,
    id_length: usize,
    blind_index_bits: u32,
}

/// The policy the form asks for, or what is wrong with it. A table the form does not name
/// keeps its suite; a secret column stays encrypted whatever the form says.
fn read_policy(form: &PolicyForm, current: &Policy) -> Result<Policy, String> {
    let mut suites = HashMap::new();
    for table in TABLES {
        let suite = match (form.cipher.get(table.name), form.hash.get(table.name)) {
            (None, None) => current.suite_for(table.name),
            (cipher, hash) => Suite::parse_keys(
                cipher.map(String::as_str).unwrap_or_default(),
                hash.map(String::as_str).unwrap_or_default(),
            )
            .map_err(|e| format!("{}: {e}. Choose from the lists.", table.title))?,
        };
        // Each file's own AES key is sealed with this table's suite: a cipher within reach of
        // a search here (DES's 56 bits, 3DES's 112, RC4's biases) would weaken every file at once.
        if table.name == "medical_files"
            && matches!(
                suite.cipher,
                Cipher::DesCbc | Cipher::TripleDesEde3Cbc | Cipher::Rc4Drop3072
            )
        {
            return Err(format!(
                "{}: {} cannot be chosen here: it also seals each file's own key, so it would \
                 weaken every file. Choose an AEAD cipher (or AES-256-CBC, Blowfish or CAST-128 \
                 for compatibility).",
                table.title,
                suite.cipher.title()
            ));
        }
        suites.insert(table.name.to_string(), suite);
    }
    let mut encrypted: HashSet<(String, String)> = registry::encryptable_columns()
        .into_iter()
        .filter(|(_, c)| c.always_encrypted)
        .map(|(t, c)| (t.name.to_string(), c.name.to_string()))
        .collect();
    for value in &form.encrypt {
        let (table, column) = value
            .split_once('.')
            .filter(|(t, c)| registry::is_encryptable(t, c))
            .ok_or_else(|| format!("{value:?} is not an encryptable column."))?;
        encrypted.insert((table.to_string(), column.to_string()));
    }
    if !(16..=256).contains(&form.blind_index_bits) || form.blind_index_bits % 8 != 0 {
        return Err("Blind indexes are 16 to 256 bits, in steps of 8.".into());
    }
    if !(8..=64).contains(&form.id_length) {
        return Err("New ids have 8 to 64 characters.".into());
    }
    Ok(Policy {
        suites,
        encrypted,
        blind_index_bits: form.blind_index_bits,
    })
}

/// Legacy or broken choices, named for the audit trail.
fn weak_choices(policy: &Policy) -> Vec<String> {
    policy
        .suites
        .iter()
        .filter(|(_, s)| s.strength() != Strength::Modern)
        .map(|(t, s)| format!("{t}: {} ({})", s.title(), s.strength().title()))
        .collect()
}

#[post("/admin/encryption", data = "<form>")]
async fn save(
    who: Who,
    app: &State<App>,
    form: CsrfForm<'_, PolicyForm>,
) -> Result<Flash<Redirect>, Rejected> {
    let refuse = |message: String| async {
        let layout = Layout::for_user(app, &who, None).with_message("error", message);
        page(app, layout, Status::UnprocessableEntity).await
    };
    let parsed = match form.value.as_ref() {
        Some(values) => read_policy(values, &app.fields.policy()).map(|p| (p, values.id_length)),
        None => Err(
            "The form is incomplete; every table needs a cipher and a hash, and the \
                     id length and blind index width must be whole numbers."
                .into(),
        ),
    };
    let (policy, id_length) = match parsed {
        Ok(ok) => ok,
        Err(message) => {
            return Err(refuse(message)
                .await
                .map_or_else(Rejected::from, Rejected::page))
        }
    };
    let old = app.fields.policy();
    let changed = *old != policy;
    let previously_plain = old.plain_columns();
    let weak = weak_choices(&policy);
    let mut detail = format!(
        "suites: {}; encrypted: {}; blind index bits {}; id length {id_length}",
        policy
            .suites
            .iter()
            .map(|(t, s)| format!("{t}={s}"))
            .collect::<Vec<_>>()
            .join(" "),
        {
            let mut cols: Vec<_> = policy
                .encrypted
                .iter()
                .map(|(t, c)| format!("{t}.{c}"))
                .collect();
            cols.sort();
            cols.join(" ")
        },
        policy.blind_index_bits,
    );
    if !weak.is_empty() {
        detail.push_str(&format!("; WEAK SUITE CHOSEN: {}", weak.join(", ")));
    }
    // The new policy is in force before the job starts, so the job never rewrites to the old one;
    // and the values in their old forms stay readable from this moment until the job is done.
    if changed {
        app.fields.expect_migration(&previously_plain);
    }
    app.fields.set_policy(policy.clone());
    let actor = who.actor();
    let saved = app
        .blocking(move |app, conn| {
            conn.write_transaction(|conn| {
                let now = app.now();
                policy.save(now, conn)?;
                Setting::set(policy::ID_LENGTH_SETTING, &id_length.to_string(), conn)?;
                app.state_seal.reseal(now, conn)?;
                let outcome = if weak.is_empty() {
                    Outcome::Success
                } else {
                    Outcome::Failure
                };
                app.audit.append(
                    conn,
                    now,
                    &Entry::new(&actor, action::ENCRYPTION_POLICY_SAVED, outcome).detail(detail),
                )?;
                if changed {
                    job::start(app, "encryption policy changed", previously_plain, conn)?;
                }
                Ok::<_, AppError>(())
            })
        })
        .await;
    if let Err(e) = saved {
        app.fields.set_policy((*old).clone());
        return Err(e.into());
    }
    app.set_id_length(id_length);
    if changed {
        app.job_signal.notify();
    }
    let message = match (changed, weak_choices(&app.fields.policy()).is_empty()) {
        (false, _) => "Saved. No value needs rewriting.",
        (true, true) => "Saved. Values are being rewritten to the new policy in the background.",
        (true, false) => "Saved with a legacy or broken suite, as chosen. Values are being rewritten in the background.",
    };
    Ok(Flash::success(
        Redirect::to(uri!(crate::web::admin::encryption::overview)),
        message,
    ))
}

/// The rotate button names the version it rotates from, so that a form sent twice (a double
/// click, a reload) rotates once.
#[derive(FromForm)]
pub struct RotateForm {
    from_version: Option<u32>,
}

#[post("/admin/encryption/rotate", data = "<form>")]
async fn rotate(
    who: Who,
    app: &State<App>,
    form: CsrfForm<'_, RotateForm>,
) -> Result<Flash<Redirect>, AppError> {
    let (rotating, actor) = (app.inner().clone(), who.actor());
    let from = form.value.as_ref().and_then(|f| f.from_version);
    let outcome = rocket::tokio::task::spawn_blocking(move || {
        rotation::rotate_root_key(&rotating, &actor, from)
    })
    .await
    .map_err(|e| AppError::internal("rotation task", e))?;
    match outcome {
        Ok(rotation::Rotation::Rotated(version)) => Ok(Flash::success(
            Redirect::to(uri!(crate::web::admin::encryption::overview)),
            format!("Root key version {version} is in use; older values are being re-encrypted."),
        )),
        Ok(rotation::Rotation::AlreadyAt(version)) => Ok(Flash::success(
            Redirect::to(uri!(crate::web::admin::encryption::overview)),
            format!("Root key version {version} is already in use: the form was sent twice, and the key was rotated once."),
        )),
        Err(rotation::RotationError::Refused(message)) => {
            Ok(Flash::error(Redirect::to(uri!(crate::web::admin::encryption::overview)), message))
        }
        Err(e) => Err(e.into()),
    }
}
