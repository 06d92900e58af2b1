//! Building and running the server: the seam that `main` and the tests share.

use std::net::TcpListener;

use actix_web::{dev::Server, web, App, HttpServer};

use crate::config::Config;
use crate::governance::Governance;
use crate::http::{self, AppState};
use crate::search::SearchIndex;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::access::{Access, AccessError};
use crate::proofs::{keys, ProofError, Proofs};
use crate::store::{Store, StoreError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Proofs(#[from] ProofError),
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Search(#[from] crate::search::SearchError),
    #[error(transparent)]
    Monitoring(#[from] crate::governance::monitoring::MonitoringError),
    #[error(transparent)]
    Governance(#[from] crate::governance::GovernanceError),
    /// The search index directory belongs to another running server.
    #[error(transparent)]
    Mlflow(#[from] crate::mlflow::api::MlflowError),
    #[error(transparent)]
    Held(#[from] crate::process_lock::LockError),
    #[error("{0}")]
    Oidc(String),
    // `error` rather than `source`: the message already says it, and a
    // source would print it a second time in the error's chain.
    #[error("cannot listen on {bind}: {error}")]
    Bind { bind: String, error: std::io::Error },
}

/// The actor of `identity.changed` when `--identity-map` changes the map at start.
pub const IDENTITY_ACTOR: &str = "govledger-identity";

/// The threads that run the HTTP handlers' blocking reads: as many as
/// pooled connections, shared by every worker.
struct ReaderPool(Option<tokio::runtime::Runtime>);

impl ReaderPool {
    fn start(threads: u32) -> Result<Self, StartupError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(threads.max(1) as usize)
            .thread_keep_alive(Duration::from_secs(60))
            .thread_name("store-reader")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Thread(format!("cannot start the reader pool: {e}")))?;
        Ok(Self(Some(runtime)))
    }

    fn handle(&self) -> tokio::runtime::Handle {
        self.0.as_ref().map(|r| r.handle().clone()).unwrap_or_else(tokio::runtime::Handle::current)
    }
}

impl Drop for ReaderPool {
    // A runtime cannot be dropped from async code, where the server stops:
    // its threads finish the reads in hand on their own.
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// A bound, ready-to-run server.
pub struct Application {
    port: u16,
    /// The one-time sign-in URL of a ledger without an administrator.
    first_run_url: Option<String>,
    server: Server,
    proofs: Arc<Proofs>,
    checkpoint_interval: Option<Duration>,
    access: Arc<Access>,
    search: Arc<SearchIndex>,
    webhooks: Arc<crate::webhooks::Webhooks>,
    store: Store,
    /// Runs the HTTP handlers' blocking reads (`AppState::blocking_pool`).
    _blocking_pool: ReaderPool,
    _index_lock: crate::process_lock::ProcessLock,
}

impl Application {
    /// Binds, takes the search index directory, opens storage (running
    /// migrations) and starts the writer. Binding and locking come first so
    /// that a port in use or a running server leaves no new database behind.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let bind_error = |error| StartupError::Bind { bind: config.bind.clone(), error };
        let listener = TcpListener::bind(&config.bind).map_err(bind_error)?;
        let port = listener.local_addr().map_err(bind_error)?.port();
        let index_lock = crate::process_lock::ProcessLock::acquire(&config.search_dir)?;
        let store = Store::open(config.storage.clone(), config.pool_size, config.writer.clone())?;
        let signer = keys::load_or_create(&config.signing_key)?;
        let proofs = Arc::new(Proofs::new(store.clone(), signer, config.signing_key.origin.clone())?);
        let access = Arc::new(Access::load(&config.tokens, &store).await?);
        // Opened here, caught up by the follower once serving: a large backlog
        // must not hold up the start (searches report `indexed_seq`).
        let search = Arc::new(SearchIndex::open(&config.search_dir, 1, 32 * 1024 * 1024)?);
        let blocking_pool = ReaderPool::start(config.pool_size)?;
        let webhooks = Arc::new(crate::webhooks::Webhooks::new(
            store.clone(),
            config.writer.master_key.clone(),
            config.webhooks.clone(),
        ));
        let public_url = config
            .public_url
            .clone()
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("http://{}", reachable(&config.bind, port)));
        let mut console = crate::http::console::ConsoleState {
            secure_cookies: config.public_url.as_deref().is_some_and(|u| u.starts_with("https://")),
            public_url: public_url.clone(),
            ..Default::default()
        };
        // First run: no administrator token was ever issued on this ledger.
        let first_run_url = match crate::http::console::admin_token_issued(&access, &store).await {
            Ok(false) => Some(format!("{public_url}/ui/login?code={}", console.first_run.issue())),
            Ok(true) => None,
            Err(e) => {
                tracing::warn!(error = %e, "could not tell whether an administrator exists; no first-run code");
                None
            }
        };
        let governance =
            Governance::new(store.clone(), config.approval_rules.clone(), config.monitoring_rules.clone())?;
        if let Some(text) = &config.monitoring_rules {
            governance.record_monitoring_rules(crate::governance::monitoring::MONITOR_ACTOR, text, false).await?;
        }
        let (identity, unrecorded) = access.identity_map(&store, config.identity_map.as_deref()).await?;
        let to_record = unrecorded.then(|| identity.clone());
        if let Some(oidc) = &config.oidc {
            let provider = crate::auth::oidc::Provider::discover(oidc.clone(), identity.clone())
                .await
                .map_err(|e| StartupError::Oidc(e.to_string()))?;
            provider.spawn_refresher();
            let origins = crate::http::console::oidc::provider_origins(&provider);
            console.content_security_policy = crate::http::console::content_security_policy(&origins);
            access.authenticator.set_provider(provider);
        }
        if let Some(map) = to_record {
            access.record_identity_map(&store, IDENTITY_ACTOR, &map).await?;
        }
        access.install_identity(identity);
        access.share_people(governance.people().clone());
        let console = Arc::new(console);
        let mlflow = match &config.mlflow {
            Some(c) => Some(crate::mlflow::Bridge::new(
                governance.clone(),
                crate::mlflow::api::Mlflow::new(&c.url, c.timeout)?,
                c.mapping.clone(),
                access.authorizer.clone(),
                c.webhook_secret.clone(),
            )),
            None => None,
        };
        let state = web::Data::new(AppState {
            store: store.clone(),
            proofs: proofs.clone(),
            access: access.clone(),
            governance,
            search: search.clone(),
            templates_dir: config.templates_dir.clone(),
            limits: config.limits.clone(),
            rate_limiter: Arc::new(crate::http::ratelimit::RateLimiter::new(
                config.limits.rate_limit_per_second,
                config.limits.rate_limit_burst,
            )),
            in_flight: Arc::default(),
            blocking_slots: Arc::new(tokio::sync::Semaphore::new(config.pool_size.max(1) as usize)),
            blocking_pool: blocking_pool.handle(),
            master_key: config.writer.master_key.clone(),
            webhooks: webhooks.clone(),
            console,
            mlflow,
        });
        let mut server = HttpServer::new(move || App::new().app_data(state.clone()).configure(http::configure))
            // In-flight requests (and so in-flight commits) get this long to finish on SIGTERM/SIGINT.
            .shutdown_timeout(30);
        if config.workers > 0 {
            server = server.workers(config.workers);
        }
        let server = server.listen(listener).map_err(bind_error)?.run();
        Ok(Self {
            port,
            first_run_url,
            server,
            proofs,
            checkpoint_interval: config.checkpoint_interval,
            access,
            search,
            webhooks,
            store,
            _blocking_pool: blocking_pool,
            _index_lock: index_lock,
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The one-time URL that signs in the first administrator, on a ledger
    /// where no administrator token was ever issued (valid 15 minutes, once).
    pub fn first_run_url(&self) -> Option<&str> {
        self.first_run_url.as_deref()
    }

    /// A handle to stop the server from elsewhere (tests, signal handlers).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (SIGTERM/SIGINT or the handle), then waits for
    /// the writer to commit what was already queued.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let publisher =
            self.checkpoint_interval.map(|every| tokio::spawn(publish_checkpoints(self.proofs.clone(), every)));
        let follower = tokio::spawn(follow_access(self.access.clone(), self.store.clone()));
        let indexer = tokio::spawn(crate::search::follow(self.search.clone(), self.store.clone()));
        let (stop_delivery, delivery_stops) = tokio::sync::watch::channel(false);
        let dispatcher =
            crate::webhooks::dispatch::spawn(self.webhooks.clone(), self.access.authorizer.clone(), delivery_stops);
        if let Err(e) = &dispatcher {
            tracing::error!(error = %e, "cannot start webhook delivery");
        }
        let served = self.server.await;
        // Delivery writes where it stands and lets its subscriptions go to
        // another replica; what it could not write in time is delivered
        // again after the restart, with the same webhook-ids.
        let _ = stop_delivery.send(true);
        if let Ok(thread) = dispatcher {
            let joined = tokio::task::spawn_blocking(move || thread.join());
            let _ = tokio::time::timeout(Duration::from_secs(5), joined).await;
        }
        indexer.abort();
        if let Some(publisher) = publisher {
            publisher.abort();
        }
        follower.abort();
        drop(self.proofs);
        drop(self.access);
        drop(self.search);
        drop(self.webhooks);
        served?;
        // The workers' app states, holding the other handles, are gone: this
        // close waits for the writer to stop.
        let store = self.store;
        tokio::task::spawn_blocking(move || store.close()).await.ok();
        Ok(())
    }
}

/// The address a person on this machine reaches a server bound to `bind`
/// at: a wildcard address becomes the loopback one.
fn reachable(bind: &str, port: u16) -> String {
    let host = bind.rsplit_once(':').map_or(bind, |(h, _)| h);
    let host = match host {
        "" | "0.0.0.0" | "[::]" | "::" => "127.0.0.1",
        h => h,
    };
    format!("{host}:{port}")
}

/// Publishes a checkpoint every `every` while the ledger grows. Signing runs
/// on the blocking pool, never in the writer, so appends are not held up.
async fn publish_checkpoints(proofs: Arc<Proofs>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let proofs = proofs.clone();
        match tokio::task::spawn_blocking(move || proofs.publish()).await {
            Ok(Ok(Some(cp))) => tracing::debug!(tree_size = cp.tree_size, "checkpoint published"),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot publish a checkpoint"),
            Err(e) => tracing::warn!(error = %e, "checkpoint task failed"),
        }
    }
}

/// How often a replica picks up policy changes and revocations made through
/// another replica (the bound documented in docs/ACCESS.md).
pub const ACCESS_FOLLOW_INTERVAL: Duration = Duration::from_secs(2);

async fn follow_access(access: Arc<Access>, store: Store) {
    let mut ticks = tokio::time::interval(ACCESS_FOLLOW_INTERVAL);
    loop {
        ticks.tick().await;
        if let Err(e) = access.follow_ledger(&store).await {
            tracing::warn!(error = %e, "cannot follow policy and revocation events");
        }
    }
}
