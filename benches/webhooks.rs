//! Webhook benchmarks (docs/BENCHMARKS.md, issue 24):
//!
//! - `append`: durable single-event appends over HTTP (64 keep-alive
//!   connections, as `--bench ledger -- append-sqlite`) with no subscription
//!   and with 10 subscriptions matching every event, delivered to a local
//!   receiver that verifies each signature; the two alternate, twice, on
//!   fresh ledgers, so that a slow disk minute weighs on both alike;
//! - `lag`: appends paced at 1,000 per second, and the time from each
//!   event's `recorded_at` to its first delivery, with 1 and 10 subscriptions.
//!
//! `cargo bench --bench webhooks -- [append] [lag]` (both by default);
//! `GOVLEDGER_BENCH_SECONDS` (default 10) sets each load phase.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use govledger::config::Config;
use govledger::ledger::personal::MasterKey;
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

const CONNECTIONS: usize = 64;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wants = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    let seconds = std::env::var("GOVLEDGER_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let receiver = Receiver::start();
    if wants("append") {
        println!("== appends over HTTP, sqlite, {CONNECTIONS} keep-alive connections, {seconds} s per run");
        let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for round in 0..2 {
            for (i, subscriptions) in [0usize, 10].into_iter().enumerate() {
                let outcome = runtime.block_on(load(&receiver, subscriptions, seconds, None));
                println!(
                    "round {round}, {subscriptions:>2} subscriptions: {:.0} appends/s, {} deliveries verified during \
                     the load ({:.0}/s), {} bad signatures",
                    outcome.rate,
                    outcome.delivered,
                    outcome.delivered as f64 / seconds as f64,
                    outcome.bad
                );
                rates[i].push(outcome.rate);
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (without, with) = (mean(&rates[0]), mean(&rates[1]));
        println!(
            "mean: {without:.0} appends/s without subscriptions, {with:.0} with 10 ({:+.1}%)",
            100.0 * (with - without) / without
        );
    }
    if wants("lag") {
        for subscriptions in [1usize, 10] {
            let outcome = runtime.block_on(load(&receiver, subscriptions, seconds.max(20), Some(1000)));
            let mut lags = outcome.lags_ms.clone();
            lags.sort_by(f64::total_cmp);
            let at = |p: f64| lags.get(((lags.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0);
            println!(
                "== delivery lag at {:.0} appends/s, {subscriptions} subscription(s): {} first deliveries, p50 {:.1} ms, \
                 p99 {:.1} ms, max {:.1} ms, {} bad signatures",
                outcome.rate,
                lags.len(),
                at(0.5),
                at(0.99),
                lags.last().copied().unwrap_or(0.0),
                outcome.bad
            );
        }
    }
}

struct Outcome {
    rate: f64,
    delivered: u64,
    bad: u64,
    /// Milliseconds from `recorded_at` to the first delivery, per (subscription, event).
    lags_ms: Vec<f64>,
}

/// A server on a fresh SQLite ledger with `subscriptions` subscriptions
/// matching every event, under 64 connections appending for `seconds`, as
/// fast as they can or `paced` appends per second in all. With `paced`,
/// waits for every delivery before stopping.
async fn load(receiver: &Receiver, subscriptions: usize, seconds: u64, paced: Option<u32>) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let target = StorageTarget::resolve(dir.path(), None).unwrap();
    let mut config = Config::new("127.0.0.1:0", target, dir.path());
    config.writer.master_key = Some(Arc::new(MasterKey::new(&[9u8; 32])));
    config.webhooks.addresses.allow_private = true;
    config.workers = 2;
    config.checkpoint_interval = Some(Duration::from_secs(1));
    let (issuer, _) = govledger::auth::TokenIssuer::load_or_create(&config.tokens).unwrap();
    let admin = issuer.issue("bench-admin", &["admin".into()], &["*".into()], 3600).unwrap().0;
    let tokens: Vec<String> = (0..CONNECTIONS)
        .map(|t| issuer.issue(&format!("ci-{t}"), &["ci".into()], &["bench".into()], 3600).unwrap().0)
        .collect();
    let app = Application::build(config).await.unwrap();
    let addr = format!("127.0.0.1:{}", app.port());
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped());
    receiver.reset();
    let mut http = RawHttp::connect(&addr).await;
    http.token = Some(admin);
    for i in 0..subscriptions {
        let path = format!("/hook/{}", uuid::Uuid::now_v7().simple());
        let body = json!({"url": format!("http://{}{path}", receiver.addr), "description": format!("bench {i}")});
        let (status, created) = http.post_json_body("/api/v1/webhooks", &body.to_string()).await;
        assert_eq!(status, 201, "{created}");
        let created: serde_json::Value = serde_json::from_str(&created).unwrap();
        let secret = created["secret"].as_str().unwrap().trim_start_matches("whsec_");
        receiver
            .secrets
            .lock()
            .unwrap()
            .insert(path, base64::engine::general_purpose::STANDARD.decode(secret).unwrap());
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|t| {
            let (addr, token) = (addr.clone(), tokens[t].clone());
            tokio::spawn(async move {
                let mut connection = RawHttp::connect(&addr).await;
                connection.token = Some(token);
                let mut ticks = paced.map(|rate| {
                    let every = Duration::from_secs_f64(CONNECTIONS as f64 / f64::from(rate));
                    let mut t = tokio::time::interval(every);
                    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    t
                });
                let mut n = 0u64;
                while Instant::now() < deadline {
                    if let Some(ticks) = ticks.as_mut() {
                        ticks.tick().await;
                    }
                    let body = json!({"kind": "run.completed", "subject": format!("run:bench-{t}@{n}"), "project": "bench",
                        "inputs": [format!("dataset:bench-{t}@1")],
                        "attributes": {"metrics": {"accuracy": 0.93, "rows": 12345.0, "task": t}}});
                    assert_eq!(connection.post_json("/api/v1/events", &body.to_string()).await, 201);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut appends = 0;
    for task in tasks {
        appends += task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let delivered = receiver.stats.lock().unwrap().deliveries;
    if paced.is_some() {
        let expected = appends * subscriptions as u64;
        let waiting = Instant::now();
        while (receiver.stats.lock().unwrap().first.len() as u64) < expected
            && waiting.elapsed() < Duration::from_secs(60)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    handle.stop(true).await;
    server.await.unwrap().unwrap();
    let stats = receiver.stats.lock().unwrap();
    Outcome { rate: appends as f64 / elapsed.as_secs_f64(), delivered, bad: stats.bad, lags_ms: stats.lags_ms.clone() }
}

#[derive(Default)]
struct Stats {
    deliveries: u64,
    bad: u64,
    first: HashSet<String>,
    lags_ms: Vec<f64>,
}

/// A receiver on its own thread (standing for one on another machine):
/// HTTP/1.1 keep-alive, verifies each Standard Webhooks signature with the
/// subscription's secret and answers 200.
struct Receiver {
    addr: String,
    secrets: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    stats: Arc<Mutex<Stats>>,
}

impl Receiver {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let secrets: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let stats: Arc<Mutex<Stats>> = Arc::default();
        let (s, st) = (secrets.clone(), stats.clone());
        std::thread::spawn(move || {
            // GOVLEDGER_BENCH_RECEIVER_NICE=19 stands the receiver on another
            // machine: it then takes only the CPU the server leaves.
            if let Some(nice) = std::env::var("GOVLEDGER_BENCH_RECEIVER_NICE").ok().and_then(|n| n.parse().ok()) {
                rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice).unwrap();
            }
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    tokio::spawn(serve(stream, s.clone(), st.clone()));
                }
            });
        });
        Self { addr, secrets, stats }
    }

    fn reset(&self) {
        *self.stats.lock().unwrap() = Stats::default();
        self.secrets.lock().unwrap().clear();
    }
}

async fn serve(stream: tokio::net::TcpStream, secrets: Arc<Mutex<HashMap<String, Vec<u8>>>>, stats: Arc<Mutex<Stats>>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    stream.set_nodelay(true).ok();
    let (read, mut write) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(read);
    let mut line = String::new();
    loop {
        let (mut path, mut length, mut id, mut timestamp, mut signature) =
            (String::new(), 0usize, String::new(), String::new(), String::new());
        loop {
            line.clear();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(rest) = l.strip_prefix("POST ") {
                path = rest.split(' ').next().unwrap_or_default().to_owned();
            } else if let Some((name, value)) = l.split_once(':') {
                let value = value.trim().to_owned();
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.parse().unwrap_or(0),
                    "webhook-id" => id = value,
                    "webhook-timestamp" => timestamp = value,
                    "webhook-signature" => signature = value,
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let verified = secrets.lock().unwrap().get(&path).is_some_and(|secret| {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
            let content = [id.as_bytes(), b".", timestamp.as_bytes(), b".", &body].concat();
            let expected = base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, &content));
            signature.split(' ').any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
        });
        {
            let mut stats = stats.lock().unwrap();
            stats.deliveries += 1;
            if !verified {
                stats.bad += 1;
            } else if stats.first.insert(id.clone()) {
                let text = String::from_utf8_lossy(&body);
                let recorded = text
                    .split("\"recorded_at\":\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .and_then(|r| chrono::DateTime::parse_from_rfc3339(r).ok());
                if let Some(at) = recorded {
                    let lag = chrono::Utc::now() - at.with_timezone(&chrono::Utc);
                    stats.lags_ms.push(lag.num_microseconds().unwrap_or(0) as f64 / 1000.0);
                }
            }
        }
        let status = if verified { "200 OK" } else { "401 Unauthorized" };
        let reply = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
        if write.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}
