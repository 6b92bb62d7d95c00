#![forbid(unsafe_code)]
//! The medvault command line: serve the pages, or administer accounts.

use std::io::BufRead;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use medvault::access::Level;
use medvault::audit::Actor;
use medvault::{build_rocket, App, Config};

#[derive(Parser)]
#[command(name = "medvault", version, about = "Medical records, encrypted at rest")]
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MEDVAULT_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
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
    }
}

fn fail(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("medvault: {error}");
    ExitCode::FAILURE
}

fn serve(config: Config) -> ExitCode {
    let rocket = match build_rocket(config) {
        Ok(rocket) => rocket,
        Err(e) => return fail(e),
    };
    match rocket::execute(rocket.launch()) {
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
