//! The `govledger` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use govledger::config::Config;
use govledger::startup::Application;
use govledger::store::{self, StorageTarget};

// mimalloc: the verifier and the writer allocate many short-lived strings;
// glibc's allocator spent a quarter of verify's time consolidating them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "govledger",
    version,
    about = "Append-only, hash-chained governance ledger for ML in production"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct StorageArgs {
    /// Directory for the embedded SQLite database and the server's keys.
    #[arg(long, env = "GOVLEDGER_DATA_DIR", default_value = "./govledger-data")]
    data_dir: PathBuf,
    /// Use PostgreSQL instead of the embedded SQLite file (postgres://...).
    #[arg(long, env = "GOVLEDGER_DATABASE_URL")]
    database_url: Option<String>,
}

impl StorageArgs {
    fn target(&self) -> anyhow::Result<StorageTarget> {
        Ok(StorageTarget::resolve(
            &self.data_dir,
            self.database_url.as_deref(),
        )?)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, env = "GOVLEDGER_BIND", default_value = "127.0.0.1:8080")]
        bind: String,
        #[command(flatten)]
        storage: StorageArgs,
        /// HTTP worker threads (default: one per core).
        #[arg(long, env = "GOVLEDGER_WORKERS", default_value_t = 0)]
        workers: usize,
    },
    /// Recompute the whole chain offline; exit 0 when intact, 1 when broken.
    Verify {
        #[command(flatten)]
        storage: StorageArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            bind,
            storage,
            workers,
        } => {
            let mut config = Config::new(bind, storage.target()?);
            config.workers = workers;
            serve(config)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { storage, json } => verify(&storage.target()?, json),
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    let described = config.storage.describe();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let app = Application::build(config).context("cannot start the server")?;
        // Tests and scripts read this line to learn the port when binding port 0.
        println!(
            "govledger listening on http://127.0.0.1:{} ({described})",
            app.port()
        );
        tracing::info!(port = app.port(), storage = %described, "govledger serving");
        app.run_until_stopped().await?;
        tracing::info!("govledger stopped");
        anyhow::Ok(())
    })
}

fn verify(target: &StorageTarget, json: bool) -> anyhow::Result<ExitCode> {
    if let StorageTarget::Sqlite { path } = target {
        anyhow::ensure!(
            path.exists(),
            "no ledger at {} (use --data-dir or --database-url)",
            path.display()
        );
    }
    let started = std::time::Instant::now();
    let report = store::verify_target(target)
        .with_context(|| format!("cannot verify {}", target.describe()))?;
    let elapsed = started.elapsed();
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else if let Some(failure) = &report.failure {
        println!(
            "BROKEN at seq {}: {} ({}); {} events before it verified",
            failure.seq,
            serde_json::to_value(failure.kind)?
                .as_str()
                .unwrap_or("broken"),
            failure.message,
            report.verified
        );
    } else {
        println!(
            "OK: {} events verified in {:.2}s, head {}",
            report.verified,
            elapsed.as_secs_f64(),
            report.head_hash.as_deref().unwrap_or("(empty ledger)")
        );
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
