//! Monitoring benchmark (docs/BENCHMARKS.md, issue 25): batched metric
//! reports, 100 per request, over HTTP on SQLite, with the shipped
//! threshold rules judging every report in the append transaction, and the
//! same load under rules that declare the metrics but no thresholds. The
//! two alternate, twice, on fresh ledgers.
//!
//! `cargo bench --bench monitoring`; `GOVLEDGER_BENCH_SECONDS` (default 10)
//! sets each run.

use std::time::{Duration, Instant};

use govledger::config::Config;
use govledger::governance::monitoring_rules::DEFAULT_MONITORING_RULES;
use govledger::startup::Application;
use govledger::store::StorageTarget;
use serde_json::json;

// Each bench uses part of the shared client.
#[allow(dead_code)]
#[path = "support/raw_http.rs"]
mod raw_http;
use raw_http::RawHttp;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONNECTIONS: usize = 8;
const PER_REQUEST: usize = 100;

fn main() {
    let seconds = std::env::var("GOVLEDGER_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // The shipped metrics, no thresholds.
    let no_rules = DEFAULT_MONITORING_RULES.split("\n[[thresholds]]").next().unwrap().to_owned();
    println!(
        "== monitoring.metric_reported over HTTP, sqlite, {CONNECTIONS} connections, {PER_REQUEST} reports per request, \
         {seconds} s per run"
    );
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..2 {
        for (i, (name, rules)) in
            [("no thresholds", Some(no_rules.clone())), ("shipped thresholds", None)].into_iter().enumerate()
        {
            let (rate, breaches) = runtime.block_on(load(rules, seconds));
            println!("round {round}, {name:>18}: {rate:.0} metrics/s, {breaches} breaches recorded");
            rates[i].push(rate);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (without, with) = (mean(&rates[0]), mean(&rates[1]));
    println!(
        "mean: {without:.0} metrics/s without thresholds, {with:.0} with the shipped ones ({:+.1}%)",
        100.0 * (with - without) / without
    );
}

/// A fresh SQLite ledger under `rules` (the shipped ones for `None`), a
/// registered model version, and `CONNECTIONS` monitoring jobs posting
/// batches for `seconds`. Every report of a request is its own series (a
/// segment each), every window follows the last, and one window in 25 is
/// below the bound (never three running): every report moves its series,
/// none opens a breach.
async fn load(rules: Option<String>, seconds: u64) -> (f64, usize) {
    let dir = tempfile::tempdir().unwrap();
    let target = StorageTarget::resolve(dir.path(), None).unwrap();
    let mut config = Config::new("127.0.0.1:0", target, dir.path());
    config.workers = 2;
    config.checkpoint_interval = Some(Duration::from_secs(1));
    config.monitoring_rules = rules;
    let (issuer, _) = govledger::auth::TokenIssuer::load_or_create(&config.tokens).unwrap();
    let token = issuer.issue("monitoring-job", &["ci".into()], &["fraud".into()], 3600).unwrap().0;
    let app = Application::build(config).await.unwrap();
    let addr = format!("127.0.0.1:{}", app.port());
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped());
    let mut http = RawHttp::connect(&addr).await;
    http.token = Some(token.clone());
    let setup = json!({"events": [
        {"kind": "run.started", "subject": "run:train-fd1", "project": "fraud"},
        {"kind": "model.registered", "subject": "model:fraud-detector@1", "project": "fraud", "inputs": ["run:train-fd1"]},
    ]});
    assert_eq!(http.post_json("/api/v1/events", &setup.to_string()).await, 201);
    let base = chrono::DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z").unwrap();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|t| {
            let (addr, token) = (addr.clone(), token.clone());
            tokio::spawn(async move {
                let mut connection = RawHttp::connect(&addr).await;
                connection.token = Some(token);
                let (mut n, mut breaches) = (0u64, 0usize);
                while Instant::now() < deadline {
                    let start = base + chrono::Duration::minutes(n as i64);
                    let end = start + chrono::Duration::minutes(1);
                    let events: Vec<_> = (0..PER_REQUEST)
                        .map(|i| {
                            let value = if (n as usize + i).is_multiple_of(25) { 0.85 } else { 0.95 };
                            json!({"kind": "monitoring.metric_reported", "subject": "model:fraud-detector@1",
                                "project": "fraud", "attributes": {"metric": "auc", "value": value,
                                "environment": "production", "segment": format!("job-{t}/segment-{i}"),
                                "window": {"start": start.to_rfc3339(), "end": end.to_rfc3339()}}})
                        })
                        .collect();
                    let body = json!({"events": events}).to_string();
                    let (status, answer) = connection.post_json_body("/api/v1/events", &body).await;
                    assert_eq!(status, 201, "{answer}");
                    breaches += answer.matches("\"monitoring.threshold_breached\"").count();
                    n += 1;
                }
                (n, breaches)
            })
        })
        .collect();
    let (mut requests, mut breaches) = (0, 0);
    for task in tasks {
        let (n, b) = task.await.unwrap();
        requests += n;
        breaches += b;
    }
    let rate = (requests * PER_REQUEST as u64) as f64 / started.elapsed().as_secs_f64();
    handle.stop(true).await;
    server.await.unwrap().unwrap();
    (rate, breaches)
}
