//! Runtime configuration, built once in `main` and passed down as a value so
//! that tests can run many servers in one process.

use std::time::Duration;

use crate::auth::TokenConfig;
use crate::governance::ApprovalRules;
use crate::proofs::keys::SigningKeyConfig;
use crate::store::{StorageTarget, WriterConfig};

/// Request limits. A request over any of them is refused with a JSON error
/// and writes nothing.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body, in bytes (413 above it).
    pub max_body_bytes: usize,
    /// Most events in one `{"events": [...]}` request (422 above it).
    pub max_batch_events: usize,
    /// Largest `limit` a list query may ask for (422 above it).
    pub max_page_size: u32,
    /// `limit` when a list query gives none.
    pub default_page_size: u32,
    /// Deepest lineage walk a query may ask for (422 above it).
    pub max_lineage_depth: u32,
    /// Requests per second each token may make, sustained (429 above it);
    /// 0: no limit.
    pub rate_limit_per_second: u32,
    /// Requests a token may make at once before the rate applies.
    pub rate_limit_burst: u32,
    /// Requests one token may have in progress at once (429 above it).
    pub max_in_flight_per_token: u32,
    /// How long a request body may take to arrive (408 after it), whoever
    /// sends it: a body that never comes must not hold a worker.
    pub body_read_timeout: Duration,
    /// How long a request may wait for a place to read the store (429 with
    /// `Retry-After` after it): load beyond what the server can serve is shed.
    pub queue_wait: Duration,
}

/// Shipped default of [`Limits::rate_limit_per_second`]: generous for a CI
/// pipeline (a batch carries up to 1,000 events), tight enough that one
/// runaway token cannot take the server.
pub const DEFAULT_RATE_LIMIT: u32 = 500;
/// Shipped default of [`Limits::rate_limit_burst`].
pub const DEFAULT_RATE_LIMIT_BURST: u32 = 1000;
/// Shipped default of [`Limits::max_in_flight_per_token`].
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 64;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_batch_events: 1000,
            max_page_size: 1000,
            default_page_size: 100,
            max_lineage_depth: crate::governance::lineage::MAX_DEPTH,
            rate_limit_per_second: DEFAULT_RATE_LIMIT,
            rate_limit_burst: DEFAULT_RATE_LIMIT_BURST,
            max_in_flight_per_token: DEFAULT_MAX_IN_FLIGHT,
            body_read_timeout: Duration::from_secs(30),
            queue_wait: Duration::from_millis(250),
        }
    }
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub bind: String,
    pub storage: StorageTarget,
    pub limits: Limits,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Read connections in the pool.
    pub pool_size: u32,
    pub writer: WriterConfig,
    /// The checkpoint signing key and origin.
    pub signing_key: SigningKeyConfig,
    /// How often a checkpoint is published when the ledger has grown
    /// (`None`: only on demand).
    pub checkpoint_interval: Option<Duration>,
    /// Token keys, issuer and audience.
    pub tokens: TokenConfig,
    /// Report templates; a type without a file there uses the shipped template.
    pub templates_dir: std::path::PathBuf,
    /// The search index folder (one per server process).
    pub search_dir: std::path::PathBuf,
    /// The approval rules (`policies/approvals.toml` unless replaced).
    pub approval_rules: ApprovalRules,
    /// Monitoring rules given by the operator (`--monitoring-rules`): put on
    /// the record at start when they differ from the rules in force. `None`:
    /// the recorded rules, or the shipped policies/monitoring.toml when none
    /// are recorded yet.
    pub monitoring_rules: Option<String>,
    /// The URL people reach the server at (`https://ledger.example.com`),
    /// for the links it prints; over https, console cookies are `Secure`.
    /// `None`: `http://` and the bound address.
    pub public_url: Option<String>,
    /// Webhook delivery: allowed addresses, timeouts, retries, leases.
    pub webhooks: crate::webhooks::WebhookConfig,
    /// The MLflow bridge (`--mlflow-url`): `None` leaves
    /// `/api/v1/integrations/mlflow` refusing every delivery.
    pub mlflow: Option<crate::mlflow::MlflowConfig>,
    /// The OpenID Connect provider people sign in with (`--oidc-issuer`).
    pub oidc: Option<crate::auth::oidc::OidcConfig>,
    /// The identity map given by the operator (`--identity-map`): put on the
    /// record at start when it differs from the map in force. `None`: the
    /// recorded map, or the shipped policies/identity.toml.
    pub identity_map: Option<String>,
}

/// The checkpoint origin when none is configured. Operators should set a
/// unique one (e.g. `ledger.example.com/ml`): it names the log in every
/// checkpoint.
pub const DEFAULT_ORIGIN: &str = "govledger";

impl Config {
    /// Defaults for `storage`, with the signing key in `data_dir`.
    pub fn new(bind: impl Into<String>, storage: StorageTarget, data_dir: &std::path::Path) -> Self {
        Self {
            signing_key: SigningKeyConfig::in_data_dir(data_dir, DEFAULT_ORIGIN),
            checkpoint_interval: Some(Duration::from_secs(60)),
            tokens: TokenConfig::in_data_dir(data_dir),
            approval_rules: ApprovalRules::default_rules(),
            monitoring_rules: None,
            search_dir: data_dir.join(crate::search::INDEX_DIR),
            templates_dir: std::path::PathBuf::from("reports"),
            bind: bind.into(),
            storage,
            limits: Limits::default(),
            workers: 0,
            pool_size: 8,
            writer: WriterConfig::default(),
            public_url: None,
            webhooks: crate::webhooks::WebhookConfig::default(),
            mlflow: None,
            oidc: None,
            identity_map: None,
        }
    }
}
