//! The command line: clap types and what each command prints. The work
//! itself is in the library, shared with the HTTP API.

mod args;
mod ledger;
mod mlflow;
mod progress;
mod records;
mod remote;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "govledger", version, about = "Append-only, hash-chained governance ledger for ML in production")]
pub struct Cli {
    /// A TOML file of settings: the flags' names with `_` for `-`
    /// (docs/CONFIG.md). Flags and GOVLEDGER_* variables override it.
    #[arg(long, global = true, env = "GOVLEDGER_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Serve(args) => args.run(),
            Command::Erase(args) => args.run(),
            Command::Reindex(args) => args.run(),
            Command::Openapi => {
                print!("{}", govledger::http::openapi::document());
                Ok(ExitCode::SUCCESS)
            }
            Command::Search(args) => args.run(),
            Command::Rebuild(args) => args.run(),
            Command::Migrate(args) => args.run(),
            Command::Post(args) => args.run(),
            Command::Gate(args) => args.run(),
            Command::Mlflow { command } => command.run(),
            Command::Demo(args) => args.run(),
            Command::Backup(args) => args.run(),
            Command::Restore(args) => args.run(),
            Command::Verify(args) => args.run(),
            Command::Token { command } => command.run(),
            Command::Key { command } => command.run(),
            Command::Export(args) => args.run(),
            Command::Report(args) => args.run(),
            Command::VerifyBundle(args) => args.run(),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    // Boxed: its flags outweigh every other command's many times over.
    /// Run the HTTP server.
    Serve(Box<server::ServeArgs>),
    /// Erase a data subject (GDPR Art. 17): destroy their key, record
    /// `subject.erased`, print the erasure certificate. The server may be
    /// running (SQLite: it waits for the write lock; PostgreSQL: any replica).
    Erase(records::EraseArgs),
    /// Rebuild the search index from the events, with a progress bar
    /// (the server must not be running on this index).
    Reindex(server::ReindexArgs),
    /// Print the OpenAPI 3 description of the HTTP API (docs/openapi.json).
    Openapi,
    /// Search the record through a server (GOVLEDGER_URL, GOVLEDGER_TOKEN).
    Search(remote::SearchArgs),
    /// Drop the projections (entities, lineage, approvals) and rebuild them
    /// from the events. Appends wait while it runs.
    Rebuild(server::RebuildArgs),
    /// Run the database migrations and build what they add from the events
    /// (the Merkle tiles), resumably, with a progress bar. The server does
    /// the same on start, without the bar.
    Migrate(server::MigrateArgs),
    /// Append one event through a server (GOVLEDGER_URL, GOVLEDGER_TOKEN),
    /// retrying with one idempotency key. For CI hooks.
    Post(remote::PostArgs),
    /// Ask the deployment gate (GOVLEDGER_URL, GOVLEDGER_TOKEN): exit 0 when
    /// the deployment is allowed, 1 when it is not.
    Gate(remote::GateArgs),
    /// The MLflow bridge (docs/MLFLOW.md).
    Mlflow {
        #[command(subcommand)]
        command: mlflow::MlflowCommand,
    },
    /// Fill an empty ledger with a realistic story, through the HTTP API.
    Demo(server::DemoArgs),
    /// Consistent online copy of the SQLite ledger and its keys into a new
    /// folder, while the server runs (subject keys are left out; PostgreSQL:
    /// pg_dump, see docs/DEPLOYMENT.md).
    Backup(ledger::BackupArgs),
    /// Restores a backup into a data directory that holds no ledger, then
    /// verifies the chain and its checkpoints.
    Restore(ledger::RestoreArgs),
    /// Recompute the whole chain and check every checkpoint against it, offline.
    /// Exit 0 when intact, 1 when broken.
    Verify(ledger::VerifyArgs),
    /// Tokens for CI systems and the first administrator.
    Token {
        #[command(subcommand)]
        command: records::TokenCommand,
    },
    /// The checkpoint signing key.
    Key {
        #[command(subcommand)]
        command: records::KeyCommand,
    },
    /// Write an evidence bundle: events, their inclusion proofs, a signed
    /// checkpoint and the verifier key.
    Export(ledger::ExportArgs),
    /// Build a compliance report as of a fresh signed checkpoint, offline.
    Report(records::ReportArgs),
    /// Verify an evidence bundle offline: no server, no database.
    VerifyBundle(ledger::VerifyBundleArgs),
}

/// A runtime for one client call or one service call of a command.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}
