//! Commands that run the server or rebuild what it derives from the ledger.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use govledger::auth::{TokenConfig, TokenIssuer};
use govledger::client::Client;
use govledger::config::Config;
use govledger::demo;
use govledger::process_lock::ProcessLock;
use govledger::search::SearchIndex;
use govledger::startup::{Application, StartupError};
use govledger::store::{ConnectionManager, DbConn};

use super::args::{KeyArgs, LimitArgs, MasterKeyArgs, StorageArgs, TokenArgs, WebhookArgs};

/// Arguments of `govledger serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "GOVLEDGER_BIND", default_value = "127.0.0.1:8080")]
    bind: String,
    #[command(flatten)]
    storage: StorageArgs,
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    tokens: TokenArgs,
    #[command(flatten)]
    master_key: MasterKeyArgs,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "GOVLEDGER_WORKERS", default_value_t = 0)]
    workers: usize,
    /// Seconds between checkpoints while the ledger grows (0: only on demand).
    #[arg(long, env = "GOVLEDGER_CHECKPOINT_INTERVAL", default_value_t = 60)]
    checkpoint_interval: u64,
    /// Approval rules (TOML); default: the shipped policies/approvals.toml.
    #[arg(long, env = "GOVLEDGER_APPROVAL_RULES")]
    approval_rules: Option<PathBuf>,
    /// Monitoring rules (TOML), recorded at start if they differ from the
    /// rules in force; default: the recorded rules, else the shipped
    /// policies/monitoring.toml.
    #[arg(long, env = "GOVLEDGER_MONITORING_RULES")]
    monitoring_rules: Option<PathBuf>,
    /// TrueType fonts, tried in order, for the characters the embedded
    /// report fonts lack (CJK); repeatable. Default: those of Debian's
    /// fonts-droid-fallback and fonts-nanum that are installed.
    #[arg(long, env = "GOVLEDGER_REPORT_FONT", value_delimiter = ',')]
    report_font: Vec<PathBuf>,
    /// Report templates; a type without a file there uses the shipped template.
    #[arg(long, env = "GOVLEDGER_TEMPLATES", default_value = "reports")]
    templates: PathBuf,
    /// The search index folder; default DATA_DIR/search-index. Each server
    /// process needs its own (replicas sharing PostgreSQL each follow the ledger).
    #[arg(long, env = "GOVLEDGER_SEARCH_INDEX_DIR")]
    search_index_dir: Option<PathBuf>,
    /// The URL people reach this server at (`https://ledger.example.com`):
    /// printed links use it, and over https the console's cookies are `Secure`.
    #[arg(long, env = "GOVLEDGER_PUBLIC_URL")]
    public_url: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    webhooks: WebhookArgs,
    #[command(flatten)]
    mlflow: super::args::MlflowArgs,
    #[command(flatten)]
    oidc: super::args::OidcArgs,
}

impl ServeArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let storage = &self.storage;
        let mut config = Config::new(self.bind, storage.target()?, &storage.data_dir);
        self.limits.apply(&mut config.limits)?;
        self.webhooks.apply(&mut config.webhooks)?;
        config.writer.master_key = self.master_key.load(&storage.data_dir)?;
        config.templates_dir = self.templates;
        if !self.report_font.is_empty() {
            govledger::reports::pdf::use_fallback_fonts(&self.report_font)?;
        }
        if let Some(dir) = self.search_index_dir {
            config.search_dir = dir;
        }
        if let Some(path) = self.approval_rules {
            config.approval_rules = super::args::read_rules(&path)?;
        }
        if let Some(path) = self.monitoring_rules {
            config.monitoring_rules = Some(super::args::read_monitoring_rules(&path, &config.approval_rules)?);
        }
        config.mlflow = self.mlflow.config(&config.approval_rules)?;
        config.oidc = self.oidc.config(&storage.data_dir)?;
        config.identity_map = self.oidc.identity_map()?;
        config.workers = self.workers;
        if let Some(url) = &self.public_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                anyhow::bail!("--public-url must start with https:// or http://, not {url:?}");
            }
        }
        config.public_url = self.public_url;
        config.tokens = self.tokens.config(&storage.data_dir);
        config.signing_key = self.key.config(&storage.data_dir);
        config.checkpoint_interval =
            (self.checkpoint_interval > 0).then(|| Duration::from_secs(self.checkpoint_interval));
        serve(config)?;
        Ok(ExitCode::SUCCESS)
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    let described = config.storage.describe();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let app = Application::build(config)
            .await
            .map_err(|e| {
                explain_held(
                    e,
                    "stop it first, or, for a second replica on PostgreSQL, give this one its own --search-index-dir",
                )
            })
            .context("cannot start the server")?;
        // Tests and scripts read this line to learn the port when binding port 0.
        println!("govledger listening on http://127.0.0.1:{} ({described})", app.port());
        if let Some(url) = app.first_run_url() {
            // A reader that took only the first line may have closed stdout.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stdout(),
                "No administrator yet: open {url} within 15 minutes to sign in to the console as the first \
                 administrator (the link works once)."
            );
        }
        tracing::info!(port = app.port(), storage = %described, "govledger serving");
        app.run_until_stopped().await?;
        tracing::info!("govledger stopped");
        anyhow::Ok(())
    })
}

/// A startup error, with what to do about a running server that holds the
/// search index (`hint` depends on the command).
fn explain_held(error: StartupError, hint: &str) -> anyhow::Error {
    match error {
        StartupError::Held(held @ govledger::process_lock::LockError::Held { .. }) => {
            anyhow::anyhow!("{held}: {hint}")
        }
        other => other.into(),
    }
}

/// Arguments of `govledger demo`.
#[derive(Args)]
pub struct DemoArgs {
    #[command(flatten)]
    storage: StorageArgs,
    /// Run against this server instead (GOVLEDGER_TOKEN must be an admin token).
    #[arg(long)]
    url: Option<String>,
}

impl DemoArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let storage = &self.storage;
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        runtime.block_on(async {
            let (admin, server) = match self.url.as_deref() {
                Some(url) => {
                    let token = std::env::var("GOVLEDGER_TOKEN").context("set GOVLEDGER_TOKEN to an admin token")?;
                    (Client::new(url, &token)?, None)
                }
                None => {
                    let mut config = Config::new("127.0.0.1:0", storage.target()?, &storage.data_dir);
                    config.checkpoint_interval = None;
                    let app = Application::build(config).await.map_err(|e| {
                        explain_held(e, "load the demo into that server instead: govledger demo --url http://HOST:PORT (with an admin GOVLEDGER_TOKEN), or stop it first")
                    }).context("cannot open the ledger")?;
                    let base = format!("http://127.0.0.1:{}", app.port());
                    let handle = app.handle();
                    let running = tokio::spawn(app.run_until_stopped());
                    let (issuer, _) = TokenIssuer::load_or_create(&TokenConfig::in_data_dir(&storage.data_dir))?;
                    let (token, _) = issuer.issue("demo-admin", &["admin".to_owned()], &["*".to_owned()], 600)?;
                    (Client::new(&base, &token)?, Some((handle, running)))
                }
            };
            let outcome = async {
                demo::check_ledger_is_free(&admin).await?;
                let cast = demo::Cast::mint(&admin).await?;
                let story = demo::run(&cast).await?;
                anyhow::Ok(story)
            }
            .await;
            if let Some((handle, running)) = server {
                handle.stop(true).await;
                running.await.ok();
            }
            let story = outcome?;
            println!("demo loaded: fraud detection, two model versions, approvals, a blocked deployment, a rollback;");
            println!("  and speech recognition: daily word error rates, a breach, a retraining, a canary");
            println!("  blocked deployment recorded at seq {}", story.blocked_seq);
            println!("  breach of model:speech-asr@1 recorded at seq {}", story.speech_breach_seq);
            println!("  production approval {}", story.production_approval);
            println!("try, with a token (govledger token issue --sub you --role auditor):");
            println!("  GET /api/v1/lineage?node=deployment:production/fraud-detector&direction=upstream");
            println!("  GET /api/v1/impact?node=dataset:transactions@2026-10");
            println!("  GET /api/v1/gate?model=model:fraud-detector@2&environment=production");
            println!("  GET /api/v1/reports/model-dossier?subject=model:speech-asr@1&format=pdf");
            anyhow::Ok(ExitCode::SUCCESS)
        })
    }
}

/// Arguments of `govledger rebuild`.
#[derive(Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    storage: StorageArgs,
}

impl RebuildArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let target = self.storage.existing_target()?;
        // Migrations only: opening the store would first check the very
        // projections (the tiles) this command replaces.
        ConnectionManager::new(target.clone())?.run_migrations()?;
        let mut conn = DbConn::establish(&target)?;
        let started = std::time::Instant::now();
        let replayed = govledger::store::rebuild_projections(&mut conn)?;
        let fingerprint = govledger::store::projections::fingerprint(&mut conn)?;
        println!("rebuilt the projections from {replayed} events in {:.2}s", started.elapsed().as_secs_f64());
        for (table, digest) in fingerprint {
            println!("  {table}: {digest}");
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Arguments of `govledger migrate`.
#[derive(Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    storage: StorageArgs,
}

impl MigrateArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let target = self.storage.existing_target()?;
        let manager = ConnectionManager::new(target)?;
        manager.run_migrations()?;
        let mut conn = manager.connect()?;
        let started = std::time::Instant::now();
        let mut drawn = false;
        let (from, to) = govledger::store::tiles::build(&mut conn, |p| {
            drawn = true;
            super::progress::draw(p.covered, p.head, "events in tiles", started);
        })?;
        if drawn {
            eprintln!();
        }
        if to.covered == from.covered {
            println!("the Merkle tiles were up to date ({} events in full tiles)", to.covered);
        } else {
            let resumed = if from.covered > 0 { format!(", resumed at event {}", from.covered) } else { String::new() };
            println!(
                "built the Merkle tiles of events {}..{} in {:.1}s{resumed}",
                from.covered + 1,
                to.covered,
                started.elapsed().as_secs_f64()
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Arguments of `govledger reindex`.
#[derive(Args)]
pub struct ReindexArgs {
    #[command(flatten)]
    storage: StorageArgs,
    /// The search index folder; default DATA_DIR/search-index.
    #[arg(long, env = "GOVLEDGER_SEARCH_INDEX_DIR")]
    search_index_dir: Option<PathBuf>,
}

impl ReindexArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let target = self.storage.existing_target()?;
        let dir: PathBuf =
            self.search_index_dir.unwrap_or_else(|| self.storage.data_dir.join(govledger::search::INDEX_DIR));
        let _held = ProcessLock::acquire(&dir).map_err(|e| {
            explain_held(
                e.into(),
                "stop that server first: reindex rebuilds the index it reads, and it catches up by itself on start",
            )
        })?;
        let index = SearchIndex::open(&dir, 2, 256 * 1024 * 1024)?;
        index.clear()?;
        let mut conn = DbConn::establish(&target)?;
        let started = std::time::Instant::now();
        let total = index.catch_up(&mut conn, |done, head| super::progress::draw(done, head, "events", started))?;
        eprintln!();
        println!(
            "reindexed {total} events in {:.1}s into {} ({:.1} MB)",
            started.elapsed().as_secs_f64(),
            dir.display(),
            index.size_bytes() as f64 / 1e6
        );
        Ok(ExitCode::SUCCESS)
    }
}
