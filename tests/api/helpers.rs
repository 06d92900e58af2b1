//! Spawning real servers on real databases for the tests.

use diesel::{Connection, RunQueryDsl};
use govledger::config::Config;
use govledger::startup::Application;
use govledger::store::StorageTarget;
use serde_json::{json, Value};

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database on `backend`, dropped when this goes away.
pub struct TestDatabase {
    pub target: StorageTarget,
    pub dir: tempfile::TempDir,
    pg_admin: Option<(String, String)>,
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The PostgreSQL server for tests, or `None` (with the reason printed) when
/// there is none outside CI. Inside CI a missing PostgreSQL fails the test.
pub fn postgres_base_url() -> Option<String> {
    let url = std::env::var("GOVLEDGER_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
    match diesel::pg::PgConnection::establish(&url) {
        Ok(_) => Some(url),
        Err(e) if in_ci() => {
            panic!("CI must run the PostgreSQL tests, but {url} is unreachable: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: PostgreSQL tests need a server at {url} (set GOVLEDGER_TEST_POSTGRES_URL): {e}");
            None
        }
    }
}

impl TestDatabase {
    pub fn create(backend: Backend) -> Option<Self> {
        let dir = tempfile::tempdir().expect("tempdir");
        match backend {
            Backend::Sqlite => {
                let target = StorageTarget::resolve(dir.path(), None).expect("sqlite target");
                Some(Self { target, dir, pg_admin: None })
            }
            Backend::Postgres => {
                let base = postgres_base_url()?;
                let name = format!("govledger_test_{}", uuid_like());
                let mut admin = diesel::pg::PgConnection::establish(&base).expect("connect to postgres");
                diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin).expect("create database");
                let (prefix, _) = base.rsplit_once('/').expect("database url has a path");
                let url = format!("{prefix}/{name}");
                Some(Self { target: StorageTarget::Postgres { url }, dir, pg_admin: Some((base, name)) })
            }
        }
    }

    /// The PostgreSQL server's URL and this test's database name.
    pub fn pg_admin(&self) -> Option<(String, String)> {
        self.pg_admin.clone()
    }

    /// `--data-dir` / `--database-url` arguments for the binary.
    pub fn cli_args(&self) -> Vec<String> {
        let mut args = vec!["--data-dir".to_owned(), self.dir.path().display().to_string()];
        if let StorageTarget::Postgres { url } = &self.target {
            args.push("--database-url".to_owned());
            args.push(url.clone());
        }
        args
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((base, name)) = &self.pg_admin {
            if let Ok(mut admin) = diesel::pg::PgConnection::establish(base) {
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).ok();
            }
        }
    }
}

pub fn uuid_like() -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().gen();
    format!("{n:016x}")
}

/// The subject of the admin token tests use by default.
pub const TEST_ADMIN: &str = "test-admin";

/// Mints a token with the server's token key in `data_dir`.
pub fn mint(data_dir: &std::path::Path, sub: &str, roles: &[&str], projects: &[&str]) -> String {
    let config = govledger::auth::TokenConfig::in_data_dir(data_dir);
    let (issuer, _) = govledger::auth::TokenIssuer::load_or_create(&config).expect("token key");
    let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    let projects: Vec<String> = projects.iter().map(|p| p.to_string()).collect();
    issuer.issue(sub, &roles, &projects, 3600).expect("token").0
}

/// An HTTP client that sends `token` with every request.
pub fn client_with(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("header");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder().default_headers(headers).build().expect("client")
}

/// A real server on a real database, listening on a random port.
pub struct TestApp {
    pub base: String,
    /// Sends an admin token (all projects) with every request.
    pub client: reqwest::Client,
    pub admin_token: String,
    pub db: Option<TestDatabase>,
    /// The console's one-time sign-in URL (no administrator token was
    /// issued on the record: tests mint theirs offline).
    pub first_run_url: Option<String>,
    handle: Option<actix_web::dev::ServerHandle>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<Self> {
        let db = TestDatabase::create(backend)?;
        let mut config = Config::new("127.0.0.1:0", db.target.clone(), db.dir.path());
        config.workers = 2;
        config.pool_size = 4;
        // Many tests hammer the server with one token on purpose; the limits
        // that protect it are tested on their own (limits.rs).
        config.limits.rate_limit_per_second = 0;
        config.limits.max_in_flight_per_token = 10_000;
        tweak(&mut config);
        let app = Application::build(config).await.expect("server starts");
        let base = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        let first_run_url = app.first_run_url().map(str::to_owned);
        tokio::spawn(app.run_until_stopped());
        let admin_token = mint(db.dir.path(), TEST_ADMIN, &["admin"], &["*"]);
        Some(Self {
            base,
            client: client_with(&admin_token),
            admin_token,
            db: Some(db),
            first_run_url,
            handle: Some(handle),
        })
    }

    /// A client for a server running elsewhere (another process), with `token`.
    pub fn attach(base: &str, token: &str) -> Self {
        Self {
            base: base.to_owned(),
            client: client_with(token),
            admin_token: token.to_owned(),
            db: None,
            first_run_url: None,
            handle: None,
        }
    }

    /// Mints a token for this server.
    pub fn token(&self, sub: &str, roles: &[&str], projects: &[&str]) -> String {
        mint(self.db().dir.path(), sub, roles, projects)
    }

    /// The database of an in-process server.
    pub fn db(&self) -> &TestDatabase {
        self.db.as_ref().expect("in-process server")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post_events(&self, body: &Value) -> reqwest::Response {
        self.client.post(self.url("/api/v1/events")).json(body).send().await.expect("request sent")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request sent")
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("json body")
    }

    pub async fn size(&self) -> u64 {
        self.get_json("/api/v1/head").await["size"].as_u64().expect("size")
    }

    /// Appends one simple event and returns it.
    pub async fn append(&self, kind: &str, subject: &str) -> Value {
        self.append_json(&json!({"kind": kind, "subject": subject})).await
    }

    /// Appends one event and returns it as stored.
    pub async fn append_json(&self, event: &Value) -> Value {
        let response = self.post_events(event).await;
        let status = response.status();
        let body: Value = response.json().await.expect("json body");
        assert_eq!(status, 201, "{event} was refused: {body}");
        body
    }
}

/// Records a passing evaluation of `model` (in `project`) on a holdout
/// dataset no run trained it on: what the gated environments of
/// policies/approvals.toml ask before a grant needs no override.
pub async fn evaluate_on_holdout(app: &TestApp, model: &str, project: Option<&str>) -> Value {
    app.append_json(&json!({"kind": "model.evaluated", "subject": model, "project": project,
                           "inputs": ["dataset:holdout@1"],
                           "attributes": {"metrics": {"auc": 0.95}, "thresholds": {"auc": 0.9}, "passed": true}}))
        .await
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // The stop command is sent on the call; the returned future only waits for it.
        if let Some(handle) = &self.handle {
            drop(handle.stop(false));
        }
    }
}

/// Sends `request` and reads its answer as JSON, whatever its status.
pub async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.expect("request sent").json().await.expect("json body")
}

impl TestApp {
    /// Adds `line` to the policy in force (with the admin token).
    pub async fn add_policy_line(&self, line: &str) {
        let policy = self.get("/api/v1/policies").await.text().await.expect("policy");
        let put = self.client.put(self.url("/api/v1/policies")).header("Content-Type", "text/csv");
        let response = put.body(format!("{policy}\n{line}\n")).send().await.expect("request sent");
        assert_eq!(response.status(), 200, "{line}");
    }
}

/// Reads every event through the paginated listing.
pub async fn all_events(app: &TestApp) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = app.get_json(&format!("/api/v1/events?limit=1000&after_seq={after}")).await;
        events.extend(page["events"].as_array().expect("events").iter().cloned());
        match page["next_after_seq"].as_u64() {
            Some(next) => after = next,
            None => return events,
        }
    }
}

/// `govledger serve` as a separate process, killed (SIGKILL) when dropped.
pub struct Server(pub std::process::Child, pub String);

impl Server {
    /// Starts the binary on `db` with `extra` flags; returns once it listens.
    pub fn start(db: &TestDatabase, extra: &[&str]) -> Self {
        Self::start_with(db.cli_args(), extra, &[])
    }

    /// [`Server::start`] with extra environment variables.
    pub fn start_env(db: &TestDatabase, extra: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::start_with(db.cli_args(), extra, envs)
    }

    /// Starts the binary on the SQLite ledger in `data_dir`.
    pub fn start_in(data_dir: &std::path::Path, extra: &[&str]) -> Self {
        Self::start_with(vec!["--data-dir".to_owned(), data_dir.display().to_string()], extra, &[])
    }

    fn start_with(storage: Vec<String>, extra: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut args: Vec<String> = ["serve", "--bind", "127.0.0.1:0", "--workers", "2"].map(String::from).into();
        // As for in-process servers: the limits are tested on their own
        // (a test that sets one passes its own flag).
        for (flag, off) in [("--rate-limit", "0"), ("--max-in-flight", "10000")] {
            if !extra.contains(&flag) {
                args.extend([flag.to_owned(), off.to_owned()]);
            }
        }
        args.extend(storage);
        args.extend(extra.iter().map(|a| a.to_string()));
        Self::spawn(&args, envs)
    }

    /// `govledger ARGS` with extra environment variables.
    pub fn spawn(args: &[String], envs: &[(&str, &str)]) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_govledger"))
            .args(args)
            .envs(envs.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start govledger serve");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("first line");
        let base = line.split_whitespace().find(|w| w.starts_with("http://")).expect("listening address").to_owned();
        Self(child, base)
    }

    /// Sends `signal` (e.g. `-TERM`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill").args([signal, &self.0.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// SIGKILL: no shutdown hook runs.
    pub fn kill(mut self) {
        self.0.kill().expect("kill");
        self.0.wait().expect("wait");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// Declares one test per backend running the same async body.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:path) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $body($crate::helpers::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $body($crate::helpers::Backend::Postgres).await;
            }
        }
    };
}
