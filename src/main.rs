//! The `govledger` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use govledger::auth::access::{parse_ttl, Access};
use govledger::auth::{TokenConfig, TokenIssuer};
use govledger::client::{self, Client};
use govledger::config::{Config, DEFAULT_ORIGIN};
use govledger::demo;
use govledger::governance::ApprovalRules;
use govledger::ledger::bundle::{self, BundleContents};
use govledger::ledger::checkpoint::{Checkpoint, NoteVerifier};
use govledger::ledger::personal::MasterKey;
use govledger::process_lock::ProcessLock;
use govledger::proofs::keys::{self, SigningKeyConfig};
use govledger::proofs::{self, Proofs};
use govledger::reports;
use govledger::search::SearchIndex;
use govledger::startup::{Application, StartupError};
use govledger::store::{events, DbConn, EventFilter, StorageTarget, Store, WriterConfig};

// mimalloc: the verifier and the writer allocate many short-lived strings;
// glibc's allocator spent a quarter of verify's time consolidating them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "govledger", version, about = "Append-only, hash-chained governance ledger for ML in production")]
struct Cli {
    /// A TOML file of settings: the flags' names with `_` for `-`
    /// (docs/CONFIG.md). Flags and GOVLEDGER_* variables override it.
    #[arg(long, global = true, env = "GOVLEDGER_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// Request limits; every refusal is a JSON error (docs/CONFIG.md).
#[derive(Args, Clone)]
struct LimitArgs {
    /// Largest request body in bytes (413 above it).
    #[arg(long, env = "GOVLEDGER_MAX_BODY_BYTES", default_value_t = 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_body_bytes: u64,
    /// Most events in one batch request (422 above it).
    #[arg(long, env = "GOVLEDGER_MAX_BATCH_EVENTS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    max_batch_events: u64,
    /// Largest `limit` a list query may ask for (422 above it).
    #[arg(long, env = "GOVLEDGER_MAX_PAGE_SIZE", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_page_size: u32,
    /// Deepest lineage walk a query may ask for (422 above it).
    #[arg(long, env = "GOVLEDGER_MAX_LINEAGE_DEPTH", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_lineage_depth: u32,
    /// Requests per second each token may make, sustained (429 with
    /// Retry-After above it); 0: no limit.
    #[arg(long, env = "GOVLEDGER_RATE_LIMIT", default_value_t = govledger::config::DEFAULT_RATE_LIMIT)]
    rate_limit: u32,
    /// Requests a token may make at once before the rate applies.
    #[arg(long, env = "GOVLEDGER_RATE_LIMIT_BURST", default_value_t = govledger::config::DEFAULT_RATE_LIMIT_BURST,
          value_parser = clap::value_parser!(u32).range(1..))]
    rate_limit_burst: u32,
    /// Requests one token may have in progress at once (429 with Retry-After above it).
    #[arg(long, env = "GOVLEDGER_MAX_IN_FLIGHT", default_value_t = govledger::config::DEFAULT_MAX_IN_FLIGHT,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_in_flight: u32,
    /// Seconds a request body may take to arrive (408 after it).
    #[arg(long, env = "GOVLEDGER_BODY_READ_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    body_read_timeout: u64,
    /// Milliseconds a read may wait for a free database connection before it
    /// is answered 429 with Retry-After (load shedding).
    #[arg(long, env = "GOVLEDGER_QUEUE_WAIT_MS", default_value_t = 250,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    queue_wait_ms: u64,
}

impl LimitArgs {
    fn apply(&self, limits: &mut govledger::config::Limits) -> anyhow::Result<()> {
        limits.max_body_bytes = usize::try_from(self.max_body_bytes)?;
        limits.max_batch_events = usize::try_from(self.max_batch_events)?;
        anyhow::ensure!(
            limits.default_page_size <= self.max_page_size,
            "--max-page-size {} is below the default page size {}",
            self.max_page_size,
            limits.default_page_size
        );
        limits.max_page_size = self.max_page_size;
        limits.max_lineage_depth = self.max_lineage_depth;
        limits.rate_limit_per_second = self.rate_limit;
        limits.rate_limit_burst = self.rate_limit_burst;
        limits.max_in_flight_per_token = self.max_in_flight;
        limits.body_read_timeout = Duration::from_secs(self.body_read_timeout);
        limits.queue_wait = Duration::from_millis(self.queue_wait_ms);
        Ok(())
    }
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
        Ok(StorageTarget::resolve(&self.data_dir, self.database_url.as_deref())?)
    }

    /// For commands that read an existing ledger: refuse to create an empty one.
    fn existing_target(&self) -> anyhow::Result<StorageTarget> {
        let target = self.target()?;
        if let StorageTarget::Sqlite { path } = &target {
            anyhow::ensure!(path.exists(), "no ledger at {} (use --data-dir or --database-url)", path.display());
        }
        Ok(target)
    }
}

/// The master key that protects data subjects' keys (docs/PERSONAL_DATA.md).
#[derive(Args, Clone)]
struct MasterKeyArgs {
    /// File holding the 32-byte master key (64 hex digits or base64), kept
    /// outside the data directory. Without a master key the server refuses
    /// personal data.
    #[arg(long, env = "GOVLEDGER_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
}

impl MasterKeyArgs {
    /// The master key from `GOVLEDGER_MASTER_KEY` or `--master-key-file`.
    fn load(&self, data_dir: &Path) -> anyhow::Result<Option<Arc<MasterKey>>> {
        let from_env = std::env::var("GOVLEDGER_MASTER_KEY").ok().filter(|v| !v.trim().is_empty());
        let text = match (&self.master_key_file, from_env) {
            (Some(_), Some(_)) => anyhow::bail!("set GOVLEDGER_MASTER_KEY or --master-key-file, not both"),
            (None, None) => return Ok(None),
            (None, Some(text)) => text,
            (Some(path), None) => {
                // A key file in the data directory would sit in every copy
                // of it, next to the keys it protects.
                if let (Ok(file), Ok(dir)) = (path.canonicalize(), data_dir.canonicalize()) {
                    anyhow::ensure!(
                        !file.starts_with(&dir),
                        "the master key file {} must be outside the data directory {}",
                        path.display(),
                        data_dir.display()
                    );
                }
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
            }
        };
        Ok(Some(Arc::new(MasterKey::parse(&text).context("invalid master key")?)))
    }
}

#[derive(Args, Clone)]
struct KeyArgs {
    /// The checkpoint signing key (PKCS#8 Ed25519); default DATA_DIR/checkpoint-signing.key.
    /// Replicas sharing a PostgreSQL database must share this file.
    #[arg(long, env = "GOVLEDGER_SIGNING_KEY")]
    signing_key: Option<PathBuf>,
    /// The log's origin line in checkpoints, also the key name.
    #[arg(long, env = "GOVLEDGER_ORIGIN", default_value = DEFAULT_ORIGIN)]
    origin: String,
}

impl KeyArgs {
    fn config(&self, data_dir: &Path) -> SigningKeyConfig {
        match &self.signing_key {
            Some(path) => SigningKeyConfig { path: path.clone(), origin: self.origin.clone() },
            None => SigningKeyConfig::in_data_dir(data_dir, &self.origin),
        }
    }
}

#[derive(Args, Clone)]
struct TokenArgs {
    /// `iss` of the server's tokens.
    #[arg(long, env = "GOVLEDGER_TOKEN_ISSUER", default_value = "govledger")]
    token_issuer: String,
    /// `aud` every accepted token must carry.
    #[arg(long, env = "GOVLEDGER_TOKEN_AUDIENCE", default_value = "govledger")]
    token_audience: String,
    /// The server's token key (Ed25519 PKCS#8); default DATA_DIR/token-signing.key.
    #[arg(long, env = "GOVLEDGER_TOKEN_KEY")]
    token_key: Option<PathBuf>,
    /// Public keys (JWKS file) of an external identity provider whose tokens are accepted.
    #[arg(long, env = "GOVLEDGER_JWKS")]
    jwks: Option<PathBuf>,
    /// `iss` of the identity provider's tokens (required with --jwks).
    #[arg(long, env = "GOVLEDGER_IDP_ISSUER")]
    idp_issuer: Option<String>,
}

impl TokenArgs {
    fn config(&self, data_dir: &Path) -> TokenConfig {
        let mut config = TokenConfig::in_data_dir(data_dir);
        if let Some(path) = &self.token_key {
            config.key_path = path.clone();
        }
        config.issuer = self.token_issuer.clone();
        config.audience = self.token_audience.clone();
        config.jwks_path = self.jwks.clone();
        config.idp_issuer = self.idp_issuer.clone();
        config
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
        /// Report templates; a type without a file there uses the shipped template.
        #[arg(long, env = "GOVLEDGER_TEMPLATES", default_value = "reports")]
        templates: PathBuf,
        /// The search index folder; default DATA_DIR/search-index. Each server
        /// process needs its own (replicas sharing PostgreSQL each follow the ledger).
        #[arg(long, env = "GOVLEDGER_SEARCH_INDEX_DIR")]
        search_index_dir: Option<PathBuf>,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Erase a data subject (GDPR Art. 17): destroy their key, record
    /// `subject.erased`, print the erasure certificate. The server may be
    /// running (SQLite: it waits for the write lock; PostgreSQL: any replica).
    Erase {
        /// The subject's id, as sent in `personal.subject_ids`.
        #[arg(long)]
        subject: String,
        /// Why, for the record (e.g. the request's reference).
        #[arg(long)]
        reason: Option<String>,
        /// Recorded as the erasure's actor.
        #[arg(long, default_value = "cli")]
        actor: String,
        #[command(flatten)]
        storage: StorageArgs,
        #[command(flatten)]
        master_key: MasterKeyArgs,
    },
    /// Rebuild the search index from the events, with a progress bar
    /// (the server must not be running on this index).
    Reindex {
        #[command(flatten)]
        storage: StorageArgs,
        /// The search index folder; default DATA_DIR/search-index.
        #[arg(long, env = "GOVLEDGER_SEARCH_INDEX_DIR")]
        search_index_dir: Option<PathBuf>,
    },
    /// Print the OpenAPI 3 description of the HTTP API (docs/openapi.json).
    Openapi,
    /// Search the record through a server (GOVLEDGER_URL, GOVLEDGER_TOKEN).
    Search {
        /// The query (docs/SEARCH.md): free text, field:value, "phrases", AND/OR/NOT, ranges.
        query: Option<String>,
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        entity_type: Option<String>,
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        project: Option<String>,
        /// recorded_at from (RFC 3339, inclusive).
        #[arg(long)]
        from: Option<String>,
        /// recorded_at to (RFC 3339, exclusive).
        #[arg(long)]
        to: Option<String>,
        /// relevance or time.
        #[arg(long)]
        sort: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print the whole JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Drop the projections (entities, lineage, approvals) and rebuild them
    /// from the events. Appends wait while it runs.
    Rebuild {
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Append one event through a server (GOVLEDGER_URL, GOVLEDGER_TOKEN),
    /// retrying with one idempotency key. For CI hooks.
    Post {
        /// The event kind, e.g. model.registered.
        #[arg(long)]
        kind: String,
        /// The subject, type:name@version.
        #[arg(long)]
        subject: String,
        /// The project.
        #[arg(long, env = "GOVLEDGER_PROJECT")]
        project: Option<String>,
        /// An input entity (repeatable).
        #[arg(long = "input")]
        inputs: Vec<String>,
        /// An output entity (repeatable).
        #[arg(long = "output")]
        outputs: Vec<String>,
        /// An attribute key=value (repeatable; JSON values are parsed; a.b=1 nests).
        #[arg(long = "attr")]
        attrs: Vec<String>,
        /// A JSON file holding the attributes object (--attr adds to it).
        #[arg(long)]
        attributes_file: Option<PathBuf>,
        /// The idempotency key; default: a fresh one, reused across retries.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Ask the deployment gate (GOVLEDGER_URL, GOVLEDGER_TOKEN): exit 0 when
    /// the deployment is allowed, 1 when it is not.
    Gate {
        /// The model version, model:NAME@VERSION.
        #[arg(long)]
        model: String,
        /// The target environment, e.g. production.
        #[arg(long)]
        environment: String,
    },
    /// Fill an empty ledger with a realistic story, through the HTTP API.
    Demo {
        #[command(flatten)]
        storage: StorageArgs,
        /// Run against this server instead (GOVLEDGER_TOKEN must be an admin token).
        #[arg(long)]
        url: Option<String>,
    },
    /// Consistent online copy of the SQLite ledger and its keys into a new
    /// folder, while the server runs (subject keys are left out; PostgreSQL:
    /// pg_dump, see docs/DEPLOYMENT.md).
    Backup {
        /// The folder to create (or an empty one).
        dir: PathBuf,
        #[command(flatten)]
        storage: StorageArgs,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        tokens: TokenArgs,
    },
    /// Restores a backup into a data directory that holds no ledger, then
    /// verifies the chain and its checkpoints.
    Restore {
        /// The backup folder.
        dir: PathBuf,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Recompute the whole chain and check every checkpoint against it, offline.
    /// Exit 0 when intact, 1 when broken.
    Verify {
        #[command(flatten)]
        storage: StorageArgs,
        #[command(flatten)]
        key: KeyArgs,
        /// Also check a checkpoint you kept (a signed note file).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// The verifier key (signed-note format) to check signatures with;
        /// default: the data directory's signing key.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Tokens for CI systems and the first administrator.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The checkpoint signing key.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Write an evidence bundle: events, their inclusion proofs, a signed
    /// checkpoint and the verifier key.
    Export {
        /// The folder to write (created).
        #[arg(long)]
        bundle: PathBuf,
        /// Only events about this entity (`type:name` matches every version).
        #[arg(long)]
        subject: Option<String>,
        /// First seq to include.
        #[arg(long)]
        from_seq: Option<u64>,
        /// Last seq to include.
        #[arg(long)]
        to_seq: Option<u64>,
        #[command(flatten)]
        storage: StorageArgs,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Build a compliance report as of a fresh signed checkpoint, offline.
    Report {
        /// The report type: audit-trail, model-dossier, model-inventory, gdpr-processing, ai-act-log.
        kind: String,
        /// What the report is about: the model version (model-dossier), the
        /// dataset (gdpr-processing), the deployment (ai-act-log), an entity
        /// instead of a time window (audit-trail).
        #[arg(long, visible_aliases = ["model", "dataset", "deployment", "entity"])]
        subject: Option<String>,
        /// A project: a gdpr-processing report of all its datasets, or the
        /// model-inventory or audit-trail of that project alone.
        #[arg(long)]
        project: Option<String>,
        /// Events recorded from (RFC 3339, inclusive): audit-trail, ai-act-log.
        #[arg(long)]
        from: Option<String>,
        /// Events recorded before (RFC 3339): audit-trail, ai-act-log.
        #[arg(long)]
        to: Option<String>,
        /// The output file.
        #[arg(short = 'o', long)]
        out: PathBuf,
        /// pdf, json or csv (default: from the output file's extension).
        #[arg(long)]
        format: Option<String>,
        /// Also write the matching evidence bundle to this folder.
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// Template folder; a report type without a file there uses the shipped template.
        #[arg(long, env = "GOVLEDGER_TEMPLATES", default_value = "reports")]
        templates: PathBuf,
        /// Approval rules (TOML) deciding findings; default: the shipped policies/approvals.toml.
        #[arg(long, env = "GOVLEDGER_APPROVAL_RULES")]
        approval_rules: Option<PathBuf>,
        #[command(flatten)]
        storage: StorageArgs,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Verify an evidence bundle offline: no server, no database.
    VerifyBundle {
        /// The bundle folder.
        dir: PathBuf,
        /// The verifier key to trust (signed-note format). Without it the
        /// bundle's own key.pub is used, which proves integrity, not origin.
        #[arg(long)]
        key: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Mint a token with the data directory's key, offline, and record
    /// `token.issued` in the ledger (never the token itself).
    Issue {
        /// The token's subject: the actor recorded for what it appends.
        #[arg(long)]
        sub: String,
        /// A role (repeatable): admin, ci, data_scientist, risk_officer, auditor, viewer.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// A project the token may act in (repeatable); default `*`, every project.
        #[arg(long = "project")]
        projects: Vec<String>,
        /// The named projects are meant to be new: they have no events or tokens yet.
        #[arg(long)]
        new_project: bool,
        /// Lifetime: 90d, 12h, 30m or seconds.
        #[arg(long, default_value = govledger::auth::access::DEFAULT_TOKEN_TTL)]
        ttl: String,
        #[command(flatten)]
        storage: StorageArgs,
        #[command(flatten)]
        tokens: TokenArgs,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Print the verifier key in signed-note format (creating the signing key if none exists).
    Show {
        #[command(flatten)]
        storage: StorageArgs,
        #[command(flatten)]
        key: KeyArgs,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(path) = govledger::config_file::path_in(&args) {
        match govledger::config_file::apply(&<Cli as clap::CommandFactory>::command(), args, &path) {
            Ok(with_file) => args = with_file,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    match run(Cli::parse_from(args)) {
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
            key,
            tokens,
            master_key,
            workers,
            checkpoint_interval,
            approval_rules,
            templates,
            search_index_dir,
            limits,
        } => {
            let mut config = Config::new(bind, storage.target()?, &storage.data_dir);
            limits.apply(&mut config.limits)?;
            config.writer.master_key = master_key.load(&storage.data_dir)?;
            config.templates_dir = templates;
            if let Some(dir) = search_index_dir {
                config.search_dir = dir;
            }
            if let Some(path) = approval_rules {
                let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
                config.approval_rules =
                    ApprovalRules::parse(&text).with_context(|| format!("in {}", path.display()))?;
            }
            config.workers = workers;
            config.tokens = tokens.config(&storage.data_dir);
            config.signing_key = key.config(&storage.data_dir);
            config.checkpoint_interval = (checkpoint_interval > 0).then(|| Duration::from_secs(checkpoint_interval));
            serve(config)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { storage, key, checkpoint, key_file, json } => {
            verify(&storage, &key, checkpoint.as_deref(), key_file.as_deref(), json)
        }
        Command::Token { command: TokenCommand::Issue { sub, roles, projects, new_project, ttl, storage, tokens } } => {
            issue_token(&sub, &roles, &projects, new_project, &ttl, &storage, &tokens)
        }
        Command::Key { command: KeyCommand::Show { storage, key } } => {
            let signer = keys::load_or_create(&key.config(&storage.data_dir))?;
            println!("{}", signer.verifier().to_vkey());
            Ok(ExitCode::SUCCESS)
        }
        Command::Export { bundle, subject, from_seq, to_seq, storage, key } => {
            export(&bundle, subject.as_deref(), from_seq, to_seq, &storage, &key)
        }
        Command::VerifyBundle { dir, key } => verify_bundle(&dir, key.as_deref()),
        Command::Report {
            kind,
            subject,
            project,
            from,
            to,
            out,
            format,
            bundle,
            templates,
            approval_rules,
            storage,
            key,
        } => {
            let rules = match approval_rules {
                Some(path) => {
                    let text =
                        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
                    ApprovalRules::parse(&text).with_context(|| format!("in {}", path.display()))?
                }
                None => ApprovalRules::default_rules(),
            };
            let normalize = |t: Option<String>| -> anyhow::Result<Option<String>> {
                Ok(t.map(|t| govledger::ledger::timestamp::normalize(&t)).transpose()?)
            };
            // The command line reads the database directly: its user sees every project.
            let request = reports::ReportRequest {
                kind: reports::ReportType::parse(&kind)?,
                subject,
                project,
                from: normalize(from)?,
                to: normalize(to)?,
                readable: None,
            };
            let format = match format {
                Some(f) => f,
                None => out.extension().and_then(|e| e.to_str()).unwrap_or("pdf").to_owned(),
            };
            report(&request, &format, &out, bundle.as_deref(), &templates, &rules, &storage, &key)
        }
        Command::Rebuild { storage } => rebuild(&storage),
        Command::Backup { dir, storage, key, tokens } => backup(&dir, &storage, &key, &tokens),
        Command::Restore { dir, storage } => restore(&dir, &storage),
        Command::Erase { subject, reason, actor, storage, master_key } => {
            let master = master_key
                .load(&storage.data_dir)?
                .context("erasure needs the master key (GOVLEDGER_MASTER_KEY or --master-key-file)")?;
            let writer = WriterConfig { master_key: Some(master.clone()), ..WriterConfig::default() };
            let (store, writer_thread) = Store::open(storage.existing_target()?, 2, writer)?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let erased = runtime.block_on(govledger::governance::subjects::erase(
                &store,
                Some(&master),
                &subject,
                &actor,
                reason,
            ));
            drop(store);
            writer_thread.join().ok();
            let certificate = erased?;
            println!("{}", serde_json::to_string_pretty(&certificate)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Reindex { storage, search_index_dir } => reindex(&storage, search_index_dir),
        Command::Search { query, kind, entity_type, actor, project, from, to, sort, limit, json } => {
            let mut params = vec![("limit".to_owned(), limit.to_string())];
            for (name, value) in [
                ("q", query),
                ("kind", kind),
                ("entity_type", entity_type),
                ("actor", actor),
                ("project", project),
                ("from", from),
                ("to", to),
                ("sort", sort),
            ] {
                if let Some(value) = value {
                    params.push((name.to_owned(), value));
                }
            }
            let path = format!(
                "/api/v1/search?{}",
                params
                    .iter()
                    .map(|(k, v)| format!("{k}={}", govledger::client::encode_query(v)))
                    .collect::<Vec<_>>()
                    .join("&")
            );
            let results = runtime()?.block_on(Client::from_env()?.get(&path))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                for hit in results["hits"].as_array().into_iter().flatten() {
                    println!(
                        "{:>8}  {}  {:<24} {:<40} {}",
                        hit["seq"],
                        hit["recorded_at"].as_str().unwrap_or_default(),
                        hit["kind"].as_str().unwrap_or_default(),
                        hit["subject"].as_str().unwrap_or_default(),
                        hit["actor"].as_str().unwrap_or_default()
                    );
                }
                eprintln!("{} matching events", results["total"]);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Post { kind, subject, project, inputs, outputs, attrs, attributes_file, idempotency_key } => {
            let file = attributes_file
                .map(|path| -> anyhow::Result<serde_json::Value> {
                    let text =
                        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
                    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
                })
                .transpose()?;
            let event = client::event_from_args(&client::EventArgs {
                kind: &kind,
                subject: &subject,
                project: project.as_deref(),
                inputs: &inputs,
                outputs: &outputs,
                attrs: &attrs,
                attributes_file: file.as_ref(),
                idempotency_key: idempotency_key.as_deref(),
            })?;
            let client = Client::from_env()?;
            let stored = runtime()?.block_on(client.append(event))?;
            println!("{}", serde_json::to_string(&stored)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Gate { model, environment } => {
            let client = Client::from_env()?;
            let decision = runtime()?.block_on(client.gate(&model, &environment))?;
            println!("{}", serde_json::to_string_pretty(&decision)?);
            let allowed = decision["allowed"].as_bool() == Some(true);
            eprintln!(
                "{}: {}",
                if allowed { "ALLOW" } else { "DENY" },
                decision["reasons"].as_array().map_or_else(String::new, |r| r
                    .iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join("; "))
            );
            Ok(if allowed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Demo { storage, url } => demo(&storage, url.as_deref()),
        Command::Openapi => {
            print!("{}", govledger::http::openapi::document());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

fn rebuild(storage: &StorageArgs) -> anyhow::Result<ExitCode> {
    let target = storage.existing_target()?;
    // Opening the store runs migrations, so the projection tables exist.
    let (store, writer_thread) = Store::open(target.clone(), 1, WriterConfig::default())?;
    drop(store);
    writer_thread.join().ok();
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

fn reindex(storage: &StorageArgs, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let target = storage.existing_target()?;
    let dir = dir.unwrap_or_else(|| storage.data_dir.join(govledger::search::INDEX_DIR));
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
    let total = index.catch_up(&mut conn, |done, head| {
        let width: usize = 40;
        let filled = (done * 40).checked_div(head).map_or(width, |f| usize::try_from(f).unwrap_or(width).min(width));
        let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
        eprint!("\r[{}{}] {done}/{head} events, {rate:.0}/s", "#".repeat(filled), " ".repeat(width - filled));
        std::io::stderr().flush().ok();
    })?;
    eprintln!();
    println!(
        "reindexed {total} events in {:.1}s into {} ({:.1} MB)",
        started.elapsed().as_secs_f64(),
        dir.display(),
        index.size_bytes() as f64 / 1e6
    );
    Ok(ExitCode::SUCCESS)
}

fn demo(storage: &StorageArgs, url: Option<&str>) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let (admin, server) = match url {
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
        println!("demo loaded: fraud detection, two model versions, approvals, a blocked deployment, a rollback");
        println!("  blocked deployment recorded at seq {}", story.blocked_seq);
        println!("  production approval {}", story.production_approval);
        println!("try, with a token (govledger token issue --sub you --role auditor):");
        println!("  GET /api/v1/lineage?node=deployment:production/fraud-detector&direction=upstream");
        println!("  GET /api/v1/impact?node=dataset:transactions@2026-10");
        println!("  GET /api/v1/gate?model=model:fraud-detector@2&environment=production");
        anyhow::Ok(ExitCode::SUCCESS)
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
        tracing::info!(port = app.port(), storage = %described, "govledger serving");
        app.run_until_stopped().await?;
        tracing::info!("govledger stopped");
        anyhow::Ok(())
    })
}

/// The actor recorded for tokens minted on the command line: whoever can
/// read the data directory's key.
const LOCAL_ADMIN: &str = "local-admin";

fn issue_token(
    sub: &str,
    roles: &[String],
    projects: &[String],
    new_project: bool,
    ttl: &str,
    storage: &StorageArgs,
    tokens: &TokenArgs,
) -> anyhow::Result<ExitCode> {
    let ttl = parse_ttl(ttl).map_err(anyhow::Error::msg)?;
    let all = govledger::auth::access::ALL_PROJECTS;
    let projects = if projects.is_empty() { vec![all.to_owned()] } else { projects.to_vec() };
    let (store, writer_thread) = Store::open(storage.target()?, 2, WriterConfig::default())?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let issued = runtime.block_on(async {
        let access = Access::load(&tokens.config(&storage.data_dir), &store).await?;
        access.issue_token(&store, LOCAL_ADMIN, sub, roles, &projects, ttl, new_project).await
    });
    drop(store);
    writer_thread.join().ok();
    let issued = match issued {
        Ok(issued) => issued,
        Err(govledger::auth::AccessError::Invalid(message)) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e.into()),
    };
    println!("{}", issued.token);
    eprintln!(
        "issued token {} for {} (roles {}, projects {}), expires at {}",
        issued.jti,
        issued.sub,
        issued.roles.join(","),
        issued.projects.join(","),
        issued.expires
    );
    Ok(ExitCode::SUCCESS)
}

fn read_verifier(path: &Path) -> anyhow::Result<NoteVerifier> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    NoteVerifier::parse(&text).with_context(|| format!("{} is not a verifier key", path.display()))
}

fn backup(dir: &Path, storage: &StorageArgs, key: &KeyArgs, tokens: &TokenArgs) -> anyhow::Result<ExitCode> {
    let StorageTarget::Sqlite { path } = storage.existing_target()? else {
        anyhow::bail!(
            "govledger backup copies the embedded SQLite ledger; for PostgreSQL use \
             `pg_dump --format=custom --exclude-table-data=subject_keys --exclude-table-data=subject_key_log` (see docs/DEPLOYMENT.md)"
        );
    };
    let keys = [key.config(&storage.data_dir).path, tokens.config(&storage.data_dir).key_path];
    let manifest = govledger::store::backup::backup(&path, &keys, dir)?;
    println!(
        "backed up {} events (last checkpoint at {}) and {} key file(s) into {}; subject keys are not in backups",
        manifest.size,
        manifest.last_checkpoint.map_or("none".to_owned(), |c| c.to_string()),
        manifest.files.len() - 1,
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn restore(dir: &Path, storage: &StorageArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        storage.database_url.is_none(),
        "govledger restore brings back an SQLite backup; for PostgreSQL use pg_restore (see docs/DEPLOYMENT.md)"
    );
    let ledger = storage.data_dir.join(govledger::store::connection::SQLITE_FILE);
    anyhow::ensure!(
        !ledger.exists(),
        "{} exists: restore goes into a data directory without a ledger (move it away first)",
        ledger.display()
    );
    let index = storage.data_dir.join(govledger::search::INDEX_DIR);
    anyhow::ensure!(
        !index.exists(),
        "{} belongs to another ledger: remove it (the server rebuilds the index from the restored ledger)",
        index.display()
    );
    let manifest = govledger::store::backup::restore(dir, &storage.data_dir)?;
    let target = storage.target()?;
    let verifier =
        keys::load_existing(&SigningKeyConfig::in_data_dir(&storage.data_dir, DEFAULT_ORIGIN))?.map(|s| s.verifier());
    let report = proofs::verify_ledger(|| DbConn::establish(&target).map(Box::new), verifier.as_ref(), None)
        .with_context(|| format!("cannot verify the restored {}", target.describe()))?;
    if !report.ok || report.verified != manifest.size {
        println!("restored {} events, but they do not verify: {}", manifest.size, serde_json::to_string(&report)?);
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "restored {} events into {}; chain verified and {} checkpoints consistent ({})",
        manifest.size,
        storage.data_dir.display(),
        report.checkpoints_verified,
        if verifier.is_some() { "signed" } else { "no signing key in the backup: signatures unchecked" }
    );
    Ok(ExitCode::SUCCESS)
}

fn verify(
    storage: &StorageArgs,
    key: &KeyArgs,
    kept: Option<&Path>,
    key_file: Option<&Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let target = storage.existing_target()?;
    let key_config = key.config(&storage.data_dir);
    let (verifier, key_source) = match key_file {
        Some(path) => (Some(read_verifier(path)?), format!("--key-file {}", path.display())),
        None => {
            let source = if key.signing_key.is_some() {
                format!("the signing key {} (--signing-key or GOVLEDGER_SIGNING_KEY)", key_config.path.display())
            } else {
                format!("the data directory's signing key {}", key_config.path.display())
            };
            (keys::load_existing(&key_config)?.map(|s| s.verifier()), source)
        }
    };
    let kept_note = match kept {
        Some(path) => {
            anyhow::ensure!(verifier.is_some(), "checking a kept checkpoint needs the verifier key: pass --key-file");
            Some(std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?)
        }
        None => None,
    };
    let started = std::time::Instant::now();
    let report =
        proofs::verify_ledger(|| DbConn::establish(&target).map(Box::new), verifier.as_ref(), kept_note.as_deref())
            .with_context(|| format!("cannot verify {}", target.describe()))?;
    let elapsed = started.elapsed();
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else if let Some(failure) = &report.failure {
        println!(
            "BROKEN at seq {}: {} ({}); {} events verified",
            failure.seq,
            serde_json::to_value(failure.kind)?.as_str().unwrap_or("broken"),
            failure.message,
            report.verified
        );
        if let (govledger::ledger::VerifyFailureKind::CheckpointSignature, Some(v)) = (failure.kind, &verifier) {
            println!(
                "the checkpoints were checked with verifier key {}+{} from {key_source}; if the server signs \
                 with another key, pass its verifier key with --key-file (GET /api/v1/checkpoint/key)",
                v.name(),
                v.key_id_hex()
            );
        }
    } else {
        let signatures = if verifier.is_some() { "signed" } else { "unsigned: no key to check signatures with" };
        println!(
            "OK: {} events verified, {} checkpoints consistent ({signatures}), in {:.2}s, head {}",
            report.verified,
            report.checkpoints_verified,
            elapsed.as_secs_f64(),
            report.head_hash.as_deref().unwrap_or("(empty ledger)")
        );
    }
    Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn export(
    dir: &Path,
    subject: Option<&str>,
    from_seq: Option<u64>,
    to_seq: Option<u64>,
    storage: &StorageArgs,
    key: &KeyArgs,
) -> anyhow::Result<ExitCode> {
    if let Some(subject) = subject {
        govledger::ledger::EntityRef::parse(subject)?;
    }
    anyhow::ensure!(
        !dir.exists() || std::fs::read_dir(dir)?.next().is_none(),
        "{} exists and is not empty",
        dir.display()
    );
    let target = storage.existing_target()?;
    let signer = keys::load_existing(&key.config(&storage.data_dir))?
        .context("no checkpoint signing key: start the server once, or pass --signing-key")?;
    let (store, writer_thread) = Store::open(target, 2, WriterConfig::default())?;
    let proofs = Proofs::new(store.clone(), signer, key.origin.clone())?;
    let checkpoint = proofs.publish()?.context("the ledger is empty: nothing to export")?;
    let from = from_seq.unwrap_or(1).max(1);
    let to = to_seq.unwrap_or(checkpoint.tree_size).min(checkpoint.tree_size);
    anyhow::ensure!(from <= to, "--from-seq must not be after --to-seq");
    let mut selected = Vec::new();
    let mut after = from - 1;
    loop {
        let filter =
            EventFilter { subject: subject.map(str::to_owned), after_seq: after, limit: 1000, ..Default::default() };
        let page = events::list(&mut *store.conn()?, &filter)?;
        let Some(last) = page.last().map(|e| e.seq) else { break };
        selected.extend(page.into_iter().filter(|e| e.seq <= to));
        if last >= to {
            break;
        }
        after = last;
    }
    anyhow::ensure!(!selected.is_empty(), "no events match the selection");
    let statement = write_bundle(&proofs, &checkpoint, &selected, dir)?;
    drop(proofs);
    drop(store);
    writer_thread.join().ok();
    println!(
        "wrote {} events with inclusion proofs against checkpoint {} (root {}) to {}",
        selected.len(),
        statement.size,
        hex::encode(statement.root),
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes the evidence bundle of `events` against `checkpoint` to `dir`.
fn write_bundle(
    proofs: &Proofs,
    checkpoint: &govledger::store::checkpoints::StoredCheckpoint,
    events: &[govledger::ledger::Event],
    dir: &Path,
) -> anyhow::Result<Checkpoint> {
    anyhow::ensure!(
        !dir.exists() || std::fs::read_dir(dir)?.next().is_none(),
        "{} exists and is not empty",
        dir.display()
    );
    let paths = events.iter().map(|e| proofs.audit_path(e.seq, checkpoint.tree_size)).collect::<Result<Vec<_>, _>>()?;
    let statement = Checkpoint::from_note_unverified(&checkpoint.note)?;
    let verifier = proofs.verifier();
    bundle::write(
        dir,
        &BundleContents {
            checkpoint_note: &checkpoint.note,
            verifier: &verifier,
            checkpoint: &statement,
            events: events.iter().zip(paths).collect(),
        },
    )
    .with_context(|| format!("cannot write the bundle to {}", dir.display()))?;
    Ok(statement)
}

#[allow(clippy::too_many_arguments)]
fn report(
    request: &reports::ReportRequest,
    format: &str,
    out: &Path,
    bundle: Option<&Path>,
    templates: &Path,
    rules: &ApprovalRules,
    storage: &StorageArgs,
    key: &KeyArgs,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(matches!(format, "pdf" | "json" | "csv"), "--format must be pdf, json or csv");
    let target = storage.existing_target()?;
    let signer = keys::load_existing(&key.config(&storage.data_dir))?
        .context("no checkpoint signing key: start the server once, or pass --signing-key")?;
    let (store, writer_thread) = Store::open(target, 2, WriterConfig::default())?;
    let proofs = Proofs::new(store.clone(), signer, key.origin.clone())?;
    let checkpoint = proofs.publish()?.context("the ledger is empty: nothing to report")?;
    let (built, cited) = reports::build(request, &store, &proofs, &checkpoint, rules, templates)?;
    let bytes = reports::render(&built, format)?;
    std::fs::write(out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    if let Some(dir) = bundle {
        anyhow::ensure!(!cited.is_empty(), "no events in scope: no bundle to write");
        write_bundle(&proofs, &checkpoint, &cited, dir)?;
    }
    drop(proofs);
    drop(store);
    writer_thread.join().ok();
    println!(
        "wrote the {} report ({} events cited, checkpoint {} root {}) to {}",
        request.kind,
        cited.len(),
        checkpoint.tree_size,
        hex::encode(checkpoint.root_hash),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn verify_bundle(dir: &Path, key: Option<&Path>) -> anyhow::Result<ExitCode> {
    let pinned = key.map(read_verifier).transpose()?;
    match bundle::verify(dir, pinned.as_ref()) {
        Ok(report) => {
            let trust = if report.key_pinned {
                "the given key"
            } else {
                "the bundle's own key.pub: pass --key to check who signed"
            };
            println!(
                "OK: {} events verified against checkpoint {} (root {}), signed by key {} ({trust})",
                report.events, report.tree_size, report.root_hash, report.key_id
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("FAILED: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
