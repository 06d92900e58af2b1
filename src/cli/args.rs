//! Flags shared by several commands: storage, keys, tokens, limits.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use govledger::auth::TokenConfig;
use govledger::config::DEFAULT_ORIGIN;
use govledger::ledger::personal::MasterKey;
use govledger::proofs::keys::SigningKeyConfig;
use govledger::store::StorageTarget;

/// Request limits; every refusal is a JSON error (docs/CONFIG.md).
#[derive(Args, Clone)]
pub struct LimitArgs {
    /// Largest request body in bytes (413 above it).
    #[arg(long, env = "GOVLEDGER_MAX_BODY_BYTES", default_value_t = 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_body_bytes: u64,
    /// Most events in one batch request (422 above it).
    #[arg(long, env = "GOVLEDGER_MAX_BATCH_EVENTS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_batch_events: u64,
    /// Largest `limit` a list query may ask for (422 above it).
    #[arg(long, env = "GOVLEDGER_MAX_PAGE_SIZE", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_page_size: u32,
    /// Deepest lineage walk a query may ask for (422 above it).
    #[arg(long, env = "GOVLEDGER_MAX_LINEAGE_DEPTH", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_lineage_depth: u32,
    /// Requests per second each token may make, sustained (429 with
    /// Retry-After above it); 0: no limit.
    #[arg(long, env = "GOVLEDGER_RATE_LIMIT", default_value_t = govledger::config::DEFAULT_RATE_LIMIT)]
    pub rate_limit: u32,
    /// Requests a token may make at once before the rate applies.
    #[arg(long, env = "GOVLEDGER_RATE_LIMIT_BURST", default_value_t = govledger::config::DEFAULT_RATE_LIMIT_BURST,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_burst: u32,
    /// Requests one token may have in progress at once (429 with Retry-After above it).
    #[arg(long, env = "GOVLEDGER_MAX_IN_FLIGHT", default_value_t = govledger::config::DEFAULT_MAX_IN_FLIGHT,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,
    /// Seconds a request body may take to arrive (408 after it).
    #[arg(long, env = "GOVLEDGER_BODY_READ_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_read_timeout: u64,
    /// Milliseconds a read may wait for a free database connection before it
    /// is answered 429 with Retry-After (load shedding).
    #[arg(long, env = "GOVLEDGER_QUEUE_WAIT_MS", default_value_t = 250,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub queue_wait_ms: u64,
}

impl LimitArgs {
    pub fn apply(&self, limits: &mut govledger::config::Limits) -> anyhow::Result<()> {
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
pub struct StorageArgs {
    /// Directory for the embedded SQLite database and the server's keys.
    #[arg(long, env = "GOVLEDGER_DATA_DIR", default_value = "./govledger-data")]
    pub data_dir: PathBuf,
    /// Use PostgreSQL instead of the embedded SQLite file (postgres://...).
    #[arg(long, env = "GOVLEDGER_DATABASE_URL")]
    pub database_url: Option<String>,
}

impl StorageArgs {
    pub fn target(&self) -> anyhow::Result<StorageTarget> {
        Ok(StorageTarget::resolve(&self.data_dir, self.database_url.as_deref())?)
    }

    /// For commands that read an existing ledger: refuse to create an empty one.
    pub fn existing_target(&self) -> anyhow::Result<StorageTarget> {
        let target = self.target()?;
        if let StorageTarget::Sqlite { path } = &target {
            anyhow::ensure!(path.exists(), "no ledger at {} (use --data-dir or --database-url)", path.display());
        }
        Ok(target)
    }
}

/// The master key that protects data subjects' keys (docs/PERSONAL_DATA.md).
#[derive(Args, Clone)]
pub struct MasterKeyArgs {
    /// File holding the 32-byte master key (64 hex digits or base64), kept
    /// outside the data directory. Without a master key the server refuses
    /// personal data.
    #[arg(long, env = "GOVLEDGER_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
}

impl MasterKeyArgs {
    /// The master key from `GOVLEDGER_MASTER_KEY` or `--master-key-file`.
    pub fn load(&self, data_dir: &Path) -> anyhow::Result<Option<Arc<MasterKey>>> {
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
pub struct KeyArgs {
    /// The checkpoint signing key (PKCS#8 Ed25519); default DATA_DIR/checkpoint-signing.key.
    /// Replicas sharing a PostgreSQL database must share this file.
    #[arg(long, env = "GOVLEDGER_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// The log's origin line in checkpoints, also the key name.
    #[arg(long, env = "GOVLEDGER_ORIGIN", default_value = DEFAULT_ORIGIN)]
    pub origin: String,
}

impl KeyArgs {
    pub fn config(&self, data_dir: &Path) -> SigningKeyConfig {
        match &self.signing_key {
            Some(path) => SigningKeyConfig { path: path.clone(), origin: self.origin.clone() },
            None => SigningKeyConfig::in_data_dir(data_dir, &self.origin),
        }
    }
}

#[derive(Args, Clone)]
pub struct TokenArgs {
    /// `iss` of the server's tokens.
    #[arg(long, env = "GOVLEDGER_TOKEN_ISSUER", default_value = "govledger")]
    pub token_issuer: String,
    /// `aud` every accepted token must carry.
    #[arg(long, env = "GOVLEDGER_TOKEN_AUDIENCE", default_value = "govledger")]
    pub token_audience: String,
    /// The server's token key (Ed25519 PKCS#8); default DATA_DIR/token-signing.key.
    #[arg(long, env = "GOVLEDGER_TOKEN_KEY")]
    pub token_key: Option<PathBuf>,
    /// Public keys (JWKS file) of an external identity provider whose tokens are accepted.
    #[arg(long, env = "GOVLEDGER_JWKS")]
    pub jwks: Option<PathBuf>,
    /// `iss` of the identity provider's tokens (required with --jwks).
    #[arg(long, env = "GOVLEDGER_IDP_ISSUER")]
    pub idp_issuer: Option<String>,
}

impl TokenArgs {
    pub fn config(&self, data_dir: &Path) -> TokenConfig {
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

/// Approval rules read from a TOML file.
pub fn read_rules(path: &Path) -> anyhow::Result<govledger::governance::ApprovalRules> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    govledger::governance::ApprovalRules::parse(&text).with_context(|| format!("in {}", path.display()))
}

/// Monitoring rules read from a TOML file and checked against the declared
/// environments; the text is what goes on the record.
pub fn read_monitoring_rules(
    path: &Path,
    environments: &govledger::governance::ApprovalRules,
) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    govledger::governance::monitoring_rules::MonitoringRules::parse(&text, environments)
        .with_context(|| format!("in {}", path.display()))?;
    Ok(text)
}

/// Webhook delivery (docs/WEBHOOKS.md).
#[derive(Args, Clone)]
pub struct WebhookArgs {
    /// Deliver to loopback, private and link-local addresses too (tests,
    /// receivers inside the network); by default they are refused.
    #[arg(long, env = "GOVLEDGER_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,
    /// A private network deliveries may reach (CIDR, e.g. 10.1.0.0/16); repeatable.
    #[arg(long = "webhook-allow-network", env = "GOVLEDGER_WEBHOOK_ALLOW_NETWORKS", value_delimiter = ',')]
    pub webhook_allow_networks: Vec<String>,
    /// Seconds one delivery attempt may take.
    #[arg(long, env = "GOVLEDGER_WEBHOOK_TIMEOUT", default_value_t = 10)]
    pub webhook_timeout: u64,
    /// Seconds before the first retry; the wait doubles with each attempt.
    #[arg(long, env = "GOVLEDGER_WEBHOOK_RETRY_BASE", default_value_t = 5)]
    pub webhook_retry_base: u64,
    /// The longest wait between two attempts, in seconds.
    #[arg(long, env = "GOVLEDGER_WEBHOOK_RETRY_MAX", default_value_t = 3600)]
    pub webhook_retry_max: u64,
    /// How long an event is retried before its subscription is marked
    /// failing: `24h`, `90m`, `30s` or seconds.
    #[arg(long, env = "GOVLEDGER_WEBHOOK_RETRY_WINDOW", default_value = "24h")]
    pub webhook_retry_window: String,
    /// Seconds a replica's hold on a subscription lasts unrenewed: how long
    /// a killed replica's subscriptions wait for another to take them.
    #[arg(long, env = "GOVLEDGER_WEBHOOK_LEASE", default_value_t = 10)]
    pub webhook_lease: u64,
}

impl WebhookArgs {
    pub fn apply(&self, config: &mut govledger::webhooks::WebhookConfig) -> anyhow::Result<()> {
        use std::time::Duration;
        config.addresses.allow_private = self.webhook_allow_private;
        config.addresses.allowed_networks = self
            .webhook_allow_networks
            .iter()
            .map(|n| n.parse().map_err(|e: String| anyhow::anyhow!("--webhook-allow-network: {e}")))
            .collect::<anyhow::Result<_>>()?;
        anyhow::ensure!(self.webhook_timeout >= 1, "--webhook-timeout must be at least 1 second");
        anyhow::ensure!(self.webhook_retry_base >= 1, "--webhook-retry-base must be at least 1 second");
        anyhow::ensure!(
            self.webhook_retry_max >= self.webhook_retry_base,
            "--webhook-retry-max must be at least --webhook-retry-base"
        );
        anyhow::ensure!(self.webhook_lease >= 2, "--webhook-lease must be at least 2 seconds");
        let window = govledger::auth::access::parse_ttl(&self.webhook_retry_window)
            .map_err(|e| anyhow::anyhow!("--webhook-retry-window: {e}"))?;
        anyhow::ensure!(window >= 1, "--webhook-retry-window must be at least 1 second");
        config.timeout = Duration::from_secs(self.webhook_timeout);
        config.retry_base = Duration::from_secs(self.webhook_retry_base);
        config.retry_max_interval = Duration::from_secs(self.webhook_retry_max);
        config.retry_window = Duration::from_secs(window);
        config.lease = Duration::from_secs(self.webhook_lease);
        Ok(())
    }
}

/// The MLflow bridge (docs/MLFLOW.md).
#[derive(Args, Clone)]
pub struct MlflowArgs {
    /// The MLflow tracking server whose registry webhooks this server
    /// receives at /api/v1/integrations/mlflow, and reads runs from.
    #[arg(long, env = "GOVLEDGER_MLFLOW_URL")]
    pub mlflow_url: Option<String>,
    /// File holding the secret of MLflow's webhook (never on the command line).
    #[arg(long, env = "GOVLEDGER_MLFLOW_WEBHOOK_SECRET_FILE")]
    pub mlflow_webhook_secret_file: Option<PathBuf>,
    /// The mapping: project, aliases that are deployments, enforce; default:
    /// the shipped policies/mlflow.toml.
    #[arg(long, env = "GOVLEDGER_MLFLOW_MAPPING")]
    pub mlflow_mapping: Option<PathBuf>,
    /// Seconds a request to MLflow may take.
    #[arg(long, env = "GOVLEDGER_MLFLOW_TIMEOUT", default_value_t = 10)]
    pub mlflow_timeout: u64,
}

impl MlflowArgs {
    /// The bridge's settings, `None` without `--mlflow-url`.
    pub fn config(
        &self,
        rules: &govledger::governance::ApprovalRules,
    ) -> anyhow::Result<Option<govledger::mlflow::MlflowConfig>> {
        let Some(url) = &self.mlflow_url else {
            anyhow::ensure!(
                self.mlflow_webhook_secret_file.is_none(),
                "--mlflow-webhook-secret-file needs --mlflow-url"
            );
            return Ok(None);
        };
        let path = self
            .mlflow_webhook_secret_file
            .as_ref()
            .context("--mlflow-url needs --mlflow-webhook-secret-file: without a secret no delivery can be trusted")?;
        let secret = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let secret = secret.trim_end_matches(['\n', '\r']).to_owned();
        anyhow::ensure!(!secret.is_empty(), "{} is empty", path.display());
        Ok(Some(govledger::mlflow::MlflowConfig {
            url: url.clone(),
            webhook_secret: Some(secret),
            mapping: self.mapping(rules)?,
            timeout: std::time::Duration::from_secs(self.mlflow_timeout.max(1)),
        }))
    }

    /// The mapping file, checked against the approval rules.
    pub fn mapping(&self, rules: &govledger::governance::ApprovalRules) -> anyhow::Result<govledger::mlflow::Mapping> {
        match &self.mlflow_mapping {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
                govledger::mlflow::Mapping::parse(&text, rules).with_context(|| format!("in {}", path.display()))
            }
            None => Ok(govledger::mlflow::Mapping::parse(govledger::mlflow::config::DEFAULT_MAPPING, rules)?),
        }
    }
}

/// Sign-in through an OpenID Connect provider (docs/OIDC.md).
#[derive(Args, Clone)]
pub struct OidcArgs {
    /// The provider's issuer URL; its discovery document is read at
    /// ISSUER/.well-known/openid-configuration.
    #[arg(long, env = "GOVLEDGER_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// govledger's client id at the provider.
    #[arg(long, env = "GOVLEDGER_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// File holding the client secret (never on the command line, where `ps` shows it).
    #[arg(long, env = "GOVLEDGER_OIDC_CLIENT_SECRET_FILE")]
    pub oidc_client_secret_file: Option<PathBuf>,
    /// `aud` the provider's tokens must carry; default: the client id.
    #[arg(long, env = "GOVLEDGER_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,
    /// The name on the sign-in button; default: the issuer's host.
    #[arg(long, env = "GOVLEDGER_OIDC_NAME")]
    pub oidc_name: Option<String>,
    /// Longest console session through the provider (e.g. 8h), whatever the ID token's lifetime.
    #[arg(long, env = "GOVLEDGER_OIDC_SESSION_MAX", default_value = "8h")]
    pub oidc_session_max: String,
    /// How often the provider's keys are refreshed (e.g. 1h).
    #[arg(long, env = "GOVLEDGER_OIDC_REFRESH", default_value = "1h")]
    pub oidc_refresh: String,
    /// Switch off console sign-in with a token once a provider is configured
    /// (by default administrators keep it, for when the provider is down).
    #[arg(long, env = "GOVLEDGER_OIDC_NO_TOKEN_SIGNIN")]
    pub oidc_no_token_signin: bool,
    /// The identity map (TOML): claims to roles and projects, and which
    /// identities are one person; recorded at start if it differs from the
    /// map in force. Default: the recorded map, else the shipped
    /// policies/identity.toml (which grants nothing).
    #[arg(long, env = "GOVLEDGER_IDENTITY_MAP")]
    pub identity_map: Option<PathBuf>,
}

impl OidcArgs {
    /// The provider's settings, `None` without `--oidc-issuer`.
    pub fn config(&self, data_dir: &Path) -> anyhow::Result<Option<govledger::auth::oidc::OidcConfig>> {
        let Some(issuer) = &self.oidc_issuer else {
            anyhow::ensure!(
                self.oidc_client_id.is_none() && self.oidc_client_secret_file.is_none(),
                "--oidc-client-id and --oidc-client-secret-file need --oidc-issuer"
            );
            return Ok(None);
        };
        let url = url::Url::parse(issuer).with_context(|| format!("--oidc-issuer {issuer:?} is not a URL"))?;
        let loopback = url.host_str().is_some_and(|h| h == "127.0.0.1" || h == "localhost" || h == "[::1]");
        anyhow::ensure!(
            url.scheme() == "https" || (url.scheme() == "http" && loopback),
            "--oidc-issuer must be an https:// URL (http:// only on loopback, for trials)"
        );
        let client_id = self.oidc_client_id.as_ref().context("--oidc-issuer needs --oidc-client-id")?;
        let mut config = govledger::auth::oidc::OidcConfig::new(issuer, client_id, data_dir);
        if let Some(path) = &self.oidc_client_secret_file {
            let secret = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            let secret = secret.trim_end_matches(['\n', '\r']).to_owned();
            anyhow::ensure!(!secret.is_empty(), "{} is empty", path.display());
            config.client_secret = Some(zeroize::Zeroizing::new(secret));
        }
        if let Some(audience) = &self.oidc_audience {
            config.audience = audience.clone();
        }
        if let Some(name) = &self.oidc_name {
            config.display_name = name.clone();
        }
        let seconds = |flag: &str, text: &str| {
            govledger::auth::access::parse_ttl(text).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
        };
        config.session_max = Duration::from_secs(seconds("--oidc-session-max", &self.oidc_session_max)?);
        config.refresh_interval = Duration::from_secs(seconds("--oidc-refresh", &self.oidc_refresh)?.max(10));
        config.token_signin = !self.oidc_no_token_signin;
        Ok(Some(config))
    }

    /// The identity map's text, if one is given.
    pub fn identity_map(&self) -> anyhow::Result<Option<String>> {
        self.identity_map
            .as_ref()
            .map(|p| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display())))
            .transpose()
    }
}
