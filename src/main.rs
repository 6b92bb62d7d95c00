#![forbid(unsafe_code)]
//! The medvault command line: serve the pages, or administer accounts.

use std::io::BufRead;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use medvault::access::Level;
use medvault::audit::{action, Actor, Entry, Outcome};
use medvault::backup::{self, Origin};
use medvault::{build_rocket, App, Config};

/// mimalloc instead of glibc's malloc: a rendered record page allocates thousands of small
/// strings and values, and glibc's allocator took a sixth of the server's CPU under load
/// (malloc, free and their consolidation in `perf`; BENCHMARKS.md). mimalloc's per-thread free
/// lists also return memory to the system instead of keeping one arena per blocking thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "medvault",
    version,
    about = "Medical records, encrypted at rest"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the web pages (the default).
    Serve,
    /// Manage accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Make a backup of the database now (safe while the server runs).
    Backup,
    /// List the backups, newest first.
    Backups,
    /// Check a listed backup and put it in place (the current state is backed up first).
    /// While a server runs on the same home, the server does it (requests wait a moment).
    Restore {
        /// A name as `medvault backups` lists it.
        name: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account; the password is read from the first line of standard input.
    Create {
        #[arg(long, value_enum)]
        level: LevelArg,
        #[arg(long)]
        username: String,
    },
    /// Lift an account's lockout and forget its failed attempts (the same as the unlock button
    /// at /admin/users, for when no admin can sign in). Safe while the server runs.
    Unlock {
        /// The account's username.
        username: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LevelArg {
    Admin,
    Doctor,
    Patient,
}

impl From<LevelArg> for Level {
    fn from(level: LevelArg) -> Level {
        match level {
            LevelArg::Admin => Level::Admin,
            LevelArg::Doctor => Level::Doctor,
            LevelArg::Patient => Level::Patient,
        }
    }
}

fn main() -> ExitCode {
    medvault::logging::init(
        std::io::stdout,
        std::io::IsTerminal::is_terminal(&std::io::stdout()),
    );
    let cli = Cli::parse();
    let config = match Config::load() {
        Ok(config) => config,
        Err(e) => return fail(e),
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config),
        Command::User {
            command: UserCommand::Create { level, username },
        } => create_user(config, level.into(), &username),
        Command::User {
            command: UserCommand::Unlock { username },
        } => unlock_user(config, &username),
        Command::Backup => backup(config),
        Command::Backups => list_backups(config),
        Command::Restore { name } => restore(config, &name),
    }
}

fn fail(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("medvault: {error}");
    ExitCode::FAILURE
}

fn serve(config: Config) -> ExitCode {
    // Held until the process ends, so that a command-line restore knows the server runs.
    let _lock = match backup::lock::hold_server_lock(&config) {
        Ok(lock) => lock,
        Err(e) => return fail(e),
    };
    let rocket = match build_rocket(config) {
        Ok(rocket) => rocket,
        Err(e) => return fail(e),
    };
    // Kept past the launch, which consumes the server, to give its leases up at the end.
    let services = rocket.state::<App>().map(|app| app.services());
    if let Some(app) = rocket.state::<App>() {
        backup::remove_leftovers(app);
        // Only the server runs the schedule: tests build the server without this thread and
        // call `backup::schedule::run_due_backups` themselves.
        backup::schedule::spawn_worker(app.services());
        backup::requests::spawn_worker(app.services());
    }
    let served = rocket::execute(rocket.launch());
    if let Some(services) = services {
        services.release_leases();
    }
    match served {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn create_user(config: Config, level: Level, username: &str) -> ExitCode {
    let mut password = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut password) {
        return fail(format!("cannot read the password from standard input: {e}"));
    }
    let password = password.trim_end_matches(['\r', '\n']);
    let app = match App::open(config) {
        Ok(app) => app,
        Err(e) => return fail(e),
    };
    let actor = Actor {
        id: String::new(),
        name: "command line".into(),
        ip: "local".into(),
    };
    match medvault::users::create_user(&app, level, username, password, &actor) {
        Ok(user) => {
            println!("created {} {} (id {})", user.level, user.username, user.id);
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn unlock_user(config: Config, username: &str) -> ExitCode {
    let app = match App::open(config) {
        Ok(app) => app,
        Err(e) => return fail(e),
    };
    match medvault::users::unlock_account(&app, username, &command_line_actor()) {
        Ok(unlocked) => {
            println!(
                "{} can sign in again ({})",
                unlocked.username,
                if unlocked.was_locked {
                    "the lock was lifted"
                } else {
                    "it was not locked; its failed attempts are forgotten"
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn command_line_actor() -> Actor {
    Actor {
        id: String::new(),
        name: "command line".into(),
        ip: "local".into(),
    }
}

fn audit(app: &App, entry: &Entry) {
    let written = app
        .db
        .conn()
        .and_then(|mut conn| Ok(app.audit.append(&mut conn, app.now(), entry)?));
    if let Err(e) = written {
        eprintln!("medvault: warning: cannot audit: {e}");
    }
}

fn backup(config: Config) -> ExitCode {
    let app = match App::open(config) {
        Ok(app) => app,
        Err(e) => return fail(e),
    };
    // Beside a running server, the command's backup yields to its pages, as the server's own do.
    backup::priority::lower_this_thread();
    match backup::create_backup(&app, "command line", Origin::Manual) {
        Ok(info) => {
            audit(
                &app,
                &Entry::new(
                    &command_line_actor(),
                    action::BACKUP_CREATED,
                    Outcome::Success,
                )
                .target(info.name.clone())
                .detail(format!("{} bytes", info.size)),
            );
            println!("{}", info.name);
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn list_backups(config: Config) -> ExitCode {
    // Listing reads the folder only: no database, no key needed.
    match backup::list_dir(&config.backups_dir()) {
        Ok(list) => {
            for b in list {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    b.name,
                    b.created_at,
                    b.size,
                    b.author,
                    if b.verified {
                        "verified"
                    } else {
                        "not verified"
                    }
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn restore(config: Config, name: &str) -> ExitCode {
    let answer = |answer: Result<String, String>| match answer {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    };
    if backup::lock::server_is_running(&config) {
        // The running server restores, so that nobody swaps the file under its connections.
        let id = match backup::requests::submit(&config, name) {
            Ok(id) => id,
            Err(e) => return fail(format!("cannot leave a restore request: {e}")),
        };
        let limit = std::time::Duration::from_secs(600);
        if let Some(done) = backup::requests::wait(&config, &id, limit) {
            return answer(done);
        }
        // The server stopped before it took the request: restore here.
    }
    // Held while restoring, so that a server cannot start in the middle.
    let _lock = match backup::lock::hold_server_lock(&config) {
        Ok(lock) => lock,
        Err(e) => return fail(e),
    };
    let app = match App::open_for_restore(config) {
        Ok(app) => app,
        Err(e) => return fail(e),
    };
    answer(backup::requests::restore_for_command_line(&app, name))
}
