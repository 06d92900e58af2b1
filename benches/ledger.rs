//! Ledger benchmarks (docs/BENCHMARKS.md):
//!
//! - durable single-event appends over HTTP with 64 concurrent keep-alive
//!   connections, against the baseline of the storage underneath measured in
//!   the same run (SQLite: single-row insert transactions with the same
//!   pragmas; PostgreSQL: `pgbench`, 16 clients, one insert per transaction);
//! - `verify` throughput over a ledger of 1,000,000 events.
//!
//! - the storage floor (`floor`): the rows the HTTP appends wrote, written
//!   again straight into a fresh ledger in transactions of the same size
//!   (benches/support/floor.rs), with the bytes each event costs.
//!
//! `cargo bench --bench ledger -- [append-sqlite] [append-postgres] [floor] [verify] [personal] [rss] [mixed]`
//! (all by default; `rss` and `mixed` need `cargo build --release` first). `GOVLEDGER_BENCH_SECONDS` (default 10) sets each load
//! phase; `GOVLEDGER_BENCH_VERIFY_EVENTS` (default 1000000) the ledger size;
//! `GOVLEDGER_TEST_POSTGRES_URL` the PostgreSQL server;
//! `GOVLEDGER_BENCH_EVENTS_PER_RUN` (default 1) how many consecutive events of
//! a connection are about the same training run: 1 makes every event a new
//! entity and a new lineage edge (the worst case for the projections).

use std::process::Command;
use std::time::{Duration, Instant};

use diesel::{Connection, RunQueryDsl};
use govledger::config::Config;
use govledger::ledger::personal::MasterKey;
use govledger::ledger::{EventDraft, EventRequest};
use govledger::startup::Application;
use govledger::store::{self, DbConn, StorageTarget, Store, WriterConfig};
use serde_json::json;

// Each bench uses part of the shared client.
#[allow(dead_code)]
#[path = "support/raw_http.rs"]
mod raw_http;
use raw_http::RawHttp;
#[path = "support/floor.rs"]
mod floor;

// The allocator the `govledger` binary runs with (src/main.rs): under
// glibc's, allocation took a tenth of the writer's time here, which the
// server does not pay.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONNECTIONS: usize = 64;
const PGBENCH_CLIENTS: usize = 16;

/// How many distinct data subjects the personal-data load names.
fn personal_subjects() -> u64 {
    env_u64("GOVLEDGER_BENCH_SUBJECTS", 10_000).max(1)
}

/// Consecutive events of one connection about the same run (at least 1).
fn events_per_run() -> u64 {
    env_u64("GOVLEDGER_BENCH_EVENTS_PER_RUN", 1).max(1)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wants = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    let seconds = env_u64("GOVLEDGER_BENCH_SECONDS", 10);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let every_second = Some(Duration::from_secs(1));
    if wants("append-sqlite") {
        let fresh = || {
            let dir = tempfile::tempdir().unwrap();
            let target = StorageTarget::resolve(dir.path(), None).unwrap();
            (dir, target)
        };
        let (dir, target) = fresh();
        let baseline = sqlite_baseline(&dir.path().join("baseline.db"), seconds);
        let result = runtime.block_on(http_appends(target, seconds, every_second));
        report("sqlite", &result, baseline, "single-row INSERT transactions, WAL + synchronous=FULL, 1 connection");
        // The variants run in turn, twice, so that a slow disk minute or a
        // warm-up weighs on each of them alike. What authentication costs is
        // measured on its own (`auth`): the server has no way around it.
        let variants = [
            ("64 actors, checkpoints", every_second, true),
            ("one actor, checkpoints", every_second, false),
            ("one actor, no checkpoint signing", None, false),
        ];
        let mut rates = vec![Vec::new(); variants.len()];
        for _round in 0..2 {
            for (i, (_, interval, distinct)) in variants.iter().enumerate() {
                let (_dir, target) = fresh();
                let r = runtime.block_on(http_appends_as(target, seconds, *interval, *distinct, false));
                rates[i].push(r.appends as f64 / r.elapsed.as_secs_f64());
            }
        }
        let mean = |v: &Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
        for (i, (name, _, _)) in variants.iter().enumerate() {
            println!(
                "alternating runs, {name}: {:.0} appends/s (runs {:?}), {:.2}x the baseline; one actor with checkpoints is {:.1}% of this",
                mean(&rates[i]),
                rates[i].iter().map(|r| r.round()).collect::<Vec<_>>(),
                mean(&rates[i]) / baseline,
                100.0 * mean(&rates[1]) / mean(&rates[i])
            );
        }
    }
    if wants("append-postgres") {
        let base = std::env::var("GOVLEDGER_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let url = fresh_pg_database(&base);
        let baseline = pgbench_baseline(&url, seconds);
        let result =
            runtime.block_on(http_appends(StorageTarget::Postgres { url: url.clone() }, seconds, every_second));
        report("postgresql", &result, baseline, "pgbench -c 16, one INSERT per transaction");
        drop_pg_database(&base, &url);
    }
    if wants("floor") {
        storage_floor(&runtime, seconds, every_second);
    }
    if wants("personal") {
        personal_cost(&runtime, seconds);
    }
    if wants("rss") {
        let events = env_u64("GOVLEDGER_BENCH_VERIFY_EVENTS", 1_000_000);
        let dir = match std::env::var("GOVLEDGER_BENCH_DIR") {
            Ok(dir) => std::path::PathBuf::from(dir),
            Err(_) => tempfile::tempdir().unwrap().keep(),
        };
        load_ledger(&dir, events);
        server_memory(&runtime, &dir, seconds);
    }
    if wants("auth") {
        auth_hot_path(&runtime);
    }
    if wants("mixed") {
        mixed_load(&runtime, seconds);
    }
    if wants("verify") || wants("proofs") {
        let events = env_u64("GOVLEDGER_BENCH_VERIFY_EVENTS", 1_000_000);
        let dir = match std::env::var("GOVLEDGER_BENCH_DIR") {
            Ok(dir) => std::path::PathBuf::from(dir),
            Err(_) => tempfile::tempdir().unwrap().keep(),
        };
        load_ledger(&dir, events);
        if wants("verify") {
            verify_throughput(&dir, events);
        }
        if wants("proofs") {
            proof_latency(&dir, events, &runtime);
        }
        if std::env::var("GOVLEDGER_BENCH_DIR").is_err() {
            std::fs::remove_dir_all(&dir).ok();
        }
    }
}

struct LoadResult {
    appends: usize,
    elapsed: Duration,
    latencies_us: Vec<u64>,
    mean_batch: f64,
    /// Bytes this process wrote through system calls during the load
    /// (`wchar` of /proc/self/io): mostly WAL frames, which bound the writer.
    bytes_written: u64,
    /// CPU time of the ledger writer thread during the load.
    writer_cpu: Duration,
    /// CPU time of the whole process (server, load generator, indexer):
    /// with two cores, what the writer does not use bounds the rest.
    process_cpu: Duration,
}

/// CPU time (user + system) of this process's `ledger-writer` threads.
fn writer_cpu_so_far() -> Duration {
    let ticks: u64 = std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "ledger-writer"))
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .filter_map(|stat| cpu_ticks(&stat))
        .sum();
    // Linux reports them in USER_HZ, 100 per second.
    Duration::from_millis(ticks * 10)
}

/// CPU time (user + system) of this process, all threads.
fn process_cpu_so_far() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| cpu_ticks(&s)).unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// utime + stime of a `stat` line.
fn cpu_ticks(stat: &str) -> Option<u64> {
    // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// `wchar` of /proc/self/io (0 where there is none).
fn bytes_written_so_far() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| io.lines().find_map(|l| l.strip_prefix("wchar: ")?.trim().parse().ok()))
        .unwrap_or(0)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

fn report(backend: &str, r: &LoadResult, baseline_per_s: f64, baseline_name: &str) {
    let rate = r.appends as f64 / r.elapsed.as_secs_f64();
    println!("== append over HTTP, {backend}, {CONNECTIONS} keep-alive connections");
    println!(
        "govledger: {:.0} appends/s ({} in {:.1}s), p50 {:.2} ms, p99 {:.2} ms, mean events per commit {:.1}",
        rate,
        r.appends,
        r.elapsed.as_secs_f64(),
        percentile(&r.latencies_us, 0.50),
        percentile(&r.latencies_us, 0.99),
        r.mean_batch
    );
    println!("baseline ({baseline_name}): {baseline_per_s:.0} tx/s");
    println!("ratio govledger / baseline: {:.2}x", rate / baseline_per_s);
}

/// Appends over HTTP with tokens of the `ci` role (each connection its own),
/// or with authentication switched off to measure what it costs.
async fn http_appends(target: StorageTarget, seconds: u64, checkpoint_interval: Option<Duration>) -> LoadResult {
    http_appends_as(target, seconds, checkpoint_interval, true, false).await
}

/// `distinct_actors`: each connection's token has its own subject (64 CI
/// jobs), or all share one.
async fn http_appends_as(
    target: StorageTarget,
    seconds: u64,
    checkpoint_interval: Option<Duration>,
    distinct_actors: bool,
    personal: bool,
) -> LoadResult {
    let key_dir = tempfile::tempdir().unwrap();
    let mut config = Config::new("127.0.0.1:0", target.clone(), key_dir.path());
    config.writer.master_key = Some(std::sync::Arc::new(MasterKey::new(&[9u8; 32])));
    config.workers = 2;
    config.checkpoint_interval = checkpoint_interval;
    let (issuer, _) = govledger::auth::TokenIssuer::load_or_create(&config.tokens).unwrap();
    let tokens: Vec<String> = (0..CONNECTIONS)
        .map(|t| {
            let sub = if distinct_actors { format!("ci-{t}") } else { "benchmark".to_owned() };
            issuer.issue(&sub, &["ci".into()], &["bench".into()], 3600).unwrap().0
        })
        .collect();
    let app = Application::build(config).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped());
    let written_before = bytes_written_so_far();
    let writer_cpu_before = writer_cpu_so_far();
    let process_cpu_before = process_cpu_so_far();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let addr = base.trim_start_matches("http://").to_owned();
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|t| {
            let addr = addr.clone();
            let token = tokens[t].clone();
            tokio::spawn(async move {
                let mut connection = RawHttp::connect(&addr).await;
                connection.token = Some(token);
                let mut latencies = Vec::new();
                let mut n = 0u64;
                let events_per_run = events_per_run();
                while Instant::now() < deadline {
                    let mut body = json!({
                        "kind": "run.completed",
                        "subject": format!("run:bench-{t}@{}", n / events_per_run),
                        "project": "bench",
                        "inputs": [format!("dataset:bench-{t}@1")],
                        "attributes": {"metrics": {"accuracy": 0.93, "rows": 12345.0, "task": t}},
                    });
                    if personal {
                        // GOVLEDGER_BENCH_SUBJECTS customers (default 10,000).
                        let customer = (t as u64 * 7919 + n) % personal_subjects();
                        body["personal"] = json!({"subject_ids": [format!("customer-{customer}")],
                            "fields": {"email": format!("c{customer}@example.org"), "note": "called about a declined payment"}});
                    }
                    let body = body.to_string();
                    let sent = Instant::now();
                    let status = connection.post_json("/api/v1/events", &body).await;
                    assert_eq!(status, 201);
                    latencies.push(sent.elapsed().as_micros() as u64);
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies_us = Vec::new();
    for task in tasks {
        latencies_us.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    let bytes_written = bytes_written_so_far() - written_before;
    let writer_cpu = writer_cpu_so_far().saturating_sub(writer_cpu_before);
    let process_cpu = process_cpu_so_far().saturating_sub(process_cpu_before);
    handle.stop(true).await;
    server.await.unwrap().unwrap();
    latencies_us.sort_unstable();
    let appends = latencies_us.len();
    let commits = count_commits_hint(&target, appends);
    LoadResult { appends, elapsed, latencies_us, mean_batch: commits, bytes_written, writer_cpu, process_cpu }
}

/// Mean events per commit, from how many distinct `recorded_at` values the
/// appended events carry (one per transaction).
fn count_commits_hint(target: &StorageTarget, appends: usize) -> f64 {
    let mut conn = DbConn::establish(target).unwrap();
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = "SELECT COUNT(DISTINCT recorded_at) AS n FROM events";
    let counted: Count = govledger::with_conn!(&mut conn, |c| diesel::sql_query(sql).get_result(c)).unwrap();
    appends as f64 / counted.n.max(1) as f64
}

/// WAL bytes PostgreSQL has written since its statistics were reset.
fn pg_wal_bytes(url: &str) -> u64 {
    #[derive(diesel::QueryableByName)]
    struct Bytes {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = diesel::pg::PgConnection::establish(url).unwrap();
    let bytes: Bytes =
        diesel::sql_query("SELECT wal_bytes::bigint AS n FROM pg_stat_wal").get_result(&mut conn).unwrap();
    bytes.n as u64
}

/// govledger's durable HTTP appends against the storage floor, on both
/// backends, each with what an event costs in bytes written.
fn storage_floor(runtime: &tokio::runtime::Runtime, seconds: u64, checkpoints: Option<Duration>) {
    let line = |backend: &str, r: &LoadResult, f: &floor::Floor, served_bytes: f64, what: &str| {
        let rate = r.appends as f64 / r.elapsed.as_secs_f64();
        println!("== storage floor, {backend}");
        println!(
            "govledger over HTTP: {rate:.0} appends/s ({} events, {:.1} per commit), {served_bytes:.0} {what} per event",
            r.appends, r.mean_batch
        );
        println!(
            "floor (the same {} events, {} per commit): {:.0} events/s, {:.0} {what} per event",
            f.events, f.per_commit, f.events_per_s, f.bytes_per_event
        );
        println!("ratio govledger / floor: {:.2}x (goal >= 0.8)", rate / f.events_per_s);
    };
    let dir = tempfile::tempdir().unwrap();
    let result =
        runtime.block_on(http_appends(StorageTarget::resolve(dir.path(), None).unwrap(), seconds, checkpoints));
    let per_commit = result.mean_batch.round().max(1.0) as u64;
    let sqlite = floor::sqlite(dir.path(), per_commit);
    // govledger's figure includes its search index; the floor has none.
    let served_bytes = result.bytes_written as f64 / result.appends as f64;
    line("sqlite", &result, &sqlite, served_bytes, "bytes written (wchar)");

    let base = std::env::var("GOVLEDGER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let url = fresh_pg_database(&base);
    let wal_before = pg_wal_bytes(&url);
    let result = runtime.block_on(http_appends(StorageTarget::Postgres { url: url.clone() }, seconds, checkpoints));
    let served_wal = (pg_wal_bytes(&url) - wal_before) as f64 / result.appends as f64;
    let per_commit = result.mean_batch.round().max(1.0) as u64;
    let postgres = floor::postgres(&url, per_commit);
    line("postgresql", &result, &postgres, served_wal, "WAL bytes (pg_stat_wal)");
    drop_pg_database(&base, &url);
}

fn sqlite_baseline(path: &std::path::Path, seconds: u64) -> f64 {
    let mut conn = diesel::sqlite::SqliteConnection::establish(&path.to_string_lossy()).unwrap();
    for pragma in ["PRAGMA busy_timeout = 10000", "PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL"] {
        diesel::sql_query(pragma).execute(&mut conn).unwrap();
    }
    diesel::sql_query("CREATE TABLE baseline (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
        .execute(&mut conn)
        .unwrap();
    let payload = "x".repeat(300);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut n = 0u64;
    while Instant::now() < deadline {
        conn.immediate_transaction(|c| {
            diesel::sql_query("INSERT INTO baseline (payload) VALUES (?)")
                .bind::<diesel::sql_types::Text, _>(&payload)
                .execute(c)
        })
        .unwrap();
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn fresh_pg_database(base: &str) -> String {
    let mut admin = diesel::pg::PgConnection::establish(base).expect("PostgreSQL reachable");
    let name = format!("govledger_bench_{}", std::process::id());
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).unwrap();
    diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin).unwrap();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    format!("{prefix}/{name}")
}

fn drop_pg_database(base: &str, url: &str) {
    let mut admin = diesel::pg::PgConnection::establish(base).unwrap();
    let name = url.rsplit('/').next().unwrap();
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).ok();
}

fn pgbench_baseline(url: &str, seconds: u64) -> f64 {
    let mut conn = diesel::pg::PgConnection::establish(url).unwrap();
    diesel::sql_query("CREATE TABLE baseline (id BIGSERIAL PRIMARY KEY, payload TEXT NOT NULL)")
        .execute(&mut conn)
        .unwrap();
    let script = std::env::temp_dir().join(format!("govledger-pgbench-{}.sql", std::process::id()));
    std::fs::write(&script, format!("INSERT INTO baseline (payload) VALUES ('{}');\n", "x".repeat(300))).unwrap();
    let output = Command::new("pgbench")
        .args(["-n", "-c", &PGBENCH_CLIENTS.to_string(), "-j", "2", "-T", &seconds.to_string(), "-f"])
        .arg(&script)
        .arg(url)
        .output()
        .expect("pgbench runs (apt-get install postgresql-contrib)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no tps in pgbench output: {stdout}{}", String::from_utf8_lossy(&output.stderr)))
}

/// Fills `dir` with `events` events through the real writer, unless it holds them already.
fn load_ledger(dir: &std::path::Path, events: u64) {
    let target = StorageTarget::resolve(dir, None).unwrap();
    let store = Store::open(target.clone(), 2, WriterConfig::default()).unwrap();
    let have = store.head().unwrap().size;
    let started = Instant::now();
    let batch = 2000u64;
    for start in (have..events).step_by(batch as usize) {
        let drafts = (start..(start + batch).min(events))
            .map(|i| {
                let request: EventRequest = serde_json::from_value(json!({
                    "kind": "model.evaluated",
                    "subject": format!("model:m{}@{}", i % 5000, i),
                    "project": "bench",
                    "inputs": [format!("dataset:d{}@1", i % 700)],
                    "attributes": {"metrics": {"auc": 0.91, "rows": i}},
                }))
                .unwrap();
                EventDraft::from_request(request).unwrap()
            })
            .collect();
        store.writer().append_blocking("bench".into(), drafts).unwrap();
    }
    let load = started.elapsed();
    store.close();
    let db_bytes = std::fs::metadata(dir.join("govledger.db")).map(|m| m.len()).unwrap_or(0);
    println!(
        "== ledger of {events} events, sqlite ({:.0} MB database, {} loaded in {:.1}s)",
        db_bytes as f64 / 1e6,
        events.saturating_sub(have),
        load.as_secs_f64()
    );
}

fn verify_throughput(dir: &std::path::Path, events: u64) {
    let target = StorageTarget::resolve(dir, None).unwrap();
    let binary = env!("CARGO_MANIFEST_DIR").to_owned() + "/target/release/govledger";
    let started = Instant::now();
    let report = store::verify_target(&target).unwrap();
    let elapsed = started.elapsed();
    assert!(report.ok && report.verified == events);
    println!(
        "in-process verify_chain: {:.0} events/s ({:.2}s)",
        events as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    if std::path::Path::new(&binary).exists() {
        let started = Instant::now();
        let output = Command::new(&binary).arg("verify").arg("--data-dir").arg(dir).output().unwrap();
        let elapsed = started.elapsed();
        assert!(output.status.success());
        println!(
            "`govledger verify` (whole command): {:.0} events/s ({:.2}s): {}",
            events as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64(),
            String::from_utf8_lossy(&output.stdout).trim()
        );
    }
}

/// Threads of `pid` (Linux).
fn thread_count(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// Resident memory of `pid` in MB (Linux).
fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// Issue 9: the memory of the release server (its own process) on the
/// ledger in `dir`: while its search index catches up, idle, and under the
/// append load (64 connections, 64 tokens) for `seconds`.
fn server_memory(runtime: &tokio::runtime::Runtime, dir: &std::path::Path, seconds: u64) {
    use std::io::BufRead;
    let binary = env!("CARGO_MANIFEST_DIR").to_owned() + "/target/release/govledger";
    if !std::path::Path::new(&binary).exists() {
        println!("== server memory: skipped, build {binary} first (cargo build --release)");
        return;
    }
    let mut child = Command::new(&binary)
        .args(["serve", "--bind", "127.0.0.1:0", "--workers", "2", "--checkpoint-interval", "1", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.split_whitespace().find_map(|w| w.strip_prefix("http://")).unwrap().to_owned();
    let sample = |stop: std::sync::Arc<std::sync::atomic::AtomicBool>| {
        std::thread::spawn(move || {
            let mut peak: f64 = 0.0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_mb(pid));
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        })
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample(stop.clone());
    let started = Instant::now();
    let caught_up = runtime.block_on(async {
        let mut http = RawHttp::connect(&addr).await;
        loop {
            let (status, body) = http.get_body("/metrics").await;
            assert_eq!(status, 200);
            let lag = body.lines().find_map(|l| l.strip_prefix("govledger_search_index_lag_events ")).unwrap_or("1");
            if lag.trim() == "0" {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let catch_up_peak = sampler.join().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let idle = rss_mb(pid);

    let (issuer, _) =
        govledger::auth::TokenIssuer::load_or_create(&govledger::auth::TokenConfig::in_data_dir(dir)).unwrap();
    let tokens: Vec<String> = (0..CONNECTIONS)
        .map(|t| issuer.issue(&format!("ci-{t}"), &["ci".into()], &["bench".into()], 3600).unwrap().0)
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample(stop.clone());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let appended: u64 = runtime.block_on(async {
        let tasks: Vec<_> = tokens
            .into_iter()
            .enumerate()
            .map(|(t, token)| {
                let addr = addr.clone();
                tokio::spawn(async move {
                    let mut http = RawHttp::connect(&addr).await;
                    http.token = Some(token);
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        let body = json!({"kind": "run.completed", "subject": format!("run:rss-{t}@{n}"),
                            "project": "bench", "inputs": [format!("dataset:bench-{t}@1")],
                            "attributes": {"metrics": {"accuracy": 0.93, "rows": 12345.0}}});
                        assert_eq!(http.post_json("/api/v1/events", &body.to_string()).await, 201);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let mut sum = 0;
        for t in tasks {
            sum += t.await.unwrap();
        }
        sum
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let load_peak = sampler.join().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let after = rss_mb(pid);
    child.kill().ok();
    child.wait().ok();
    println!("== server memory (release binary, its own process, RSS)");
    println!("search index catching up from scratch: {:.1}s, peak {catch_up_peak:.0} MB", caught_up.as_secs_f64());
    println!("idle on the ledger: {idle:.0} MB");
    println!(
        "under the append load ({CONNECTIONS} connections, {appended} appends in {seconds}s): peak {load_peak:.0} MB; 2 s after: {after:.0} MB"
    );
}

/// Starts the release binary on `dir` with `flags`; its pid and address.
fn release_server(dir: &std::path::Path, flags: &[&str]) -> Option<(std::process::Child, String)> {
    use std::io::BufRead;
    let binary = env!("CARGO_MANIFEST_DIR").to_owned() + "/target/release/govledger";
    if !std::path::Path::new(&binary).exists() {
        println!("skipped: build {binary} first (cargo build --release)");
        return None;
    }
    let mut child = Command::new(&binary)
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(flags)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.split_whitespace().find_map(|w| w.strip_prefix("http://")).unwrap().to_owned();
    Some((child, addr))
}

/// What one request of the mixed load came to.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Ok,
    Limited,
    ServerError,
    Timeout,
    Other,
}

/// Issue 20: 200 connections of the release server with its shipped
/// limits, for `seconds`: 100 append, 40 read events, 30 ask for the
/// lineage and 30 for the impact of a dataset with 10,000 downstream edges.
/// Twenty tokens share them, so the per-token limits come into play.
fn mixed_load(runtime: &tokio::runtime::Runtime, seconds: u64) {
    println!("== mixed load, 200 connections (release binary, its own process, shipped limits)");
    let dir = tempfile::tempdir().unwrap();
    let Some((mut child, addr)) = release_server(dir.path(), &["--workers", "2"]) else { return };
    let pid = child.id();
    let (issuer, _) =
        govledger::auth::TokenIssuer::load_or_create(&govledger::auth::TokenConfig::in_data_dir(dir.path())).unwrap();
    let tokens: Vec<String> =
        (0..20).map(|t| issuer.issue(&format!("ci-{t}"), &["ci".into()], &["bench".into()], 3600).unwrap().0).collect();
    runtime.block_on(async {
        let mut http = RawHttp::connect(&addr).await;
        http.token = Some(tokens[0].clone());
        let hub = json!({"kind": "dataset.version_created", "subject": "dataset:hub@1", "project": "bench"});
        assert_eq!(http.post_json("/api/v1/events", &hub.to_string()).await, 201);
        for chunk in 0..10 {
            let events: Vec<serde_json::Value> = (0..1000)
                .map(|i| {
                    json!({"kind": "run.started", "subject": format!("run:hub-{chunk}-{i}"), "project": "bench",
                    "inputs": ["dataset:hub@1"]})
                })
                .collect();
            assert_eq!(http.post_json("/api/v1/events", &json!({ "events": events }).to_string()).await, 201);
        }
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut peak, mut threads): (f64, u64) = (0.0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_mb(pid));
                threads = threads.max(thread_count(pid));
                std::thread::sleep(Duration::from_millis(50));
            }
            (peak, threads)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let results: Vec<(&'static str, Vec<(Outcome, u64)>)> = runtime.block_on(async {
        let tasks: Vec<_> = (0..200usize)
            .map(|c| {
                let addr = addr.clone();
                let token = tokens[c % tokens.len()].clone();
                tokio::spawn(async move {
                    // GOVLEDGER_BENCH_MIX=appends (or reads) keeps only that
                    // half, to tell which one a figure comes from.
                    let mix = std::env::var("GOVLEDGER_BENCH_MIX").unwrap_or_default();
                    let kind = match (mix.as_str(), c) {
                        ("appends", _) => "append",
                        ("reads", 0..=99) => "read",
                        (_, 0..=99) => "append",
                        (_, 100..=139) => "read",
                        (_, 140..=169) => "lineage",
                        _ => "impact",
                    };
                    let mut http = RawHttp::connect(&addr).await;
                    http.token = Some(token);
                    let mut seen = Vec::new();
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        let started = Instant::now();
                        let call = async {
                            match kind {
                                "append" => {
                                    let body = json!({"kind": "run.completed", "subject": format!("run:mixed-{c}-{n}"),
                                        "project": "bench", "inputs": ["dataset:hub@1"]});
                                    http.post_json("/api/v1/events", &body.to_string()).await
                                }
                                "read" if n.is_multiple_of(2) => {
                                    http.get(&format!("/api/v1/events/{}", 1 + n % 11)).await
                                }
                                "read" => http.get(&format!("/api/v1/events?limit=100&after_seq={}", n % 5000)).await,
                                "lineage" => http.get("/api/v1/lineage?node=dataset:hub@1&direction=downstream").await,
                                _ => http.get("/api/v1/impact?node=dataset:hub@1").await,
                            }
                        };
                        let outcome = match tokio::time::timeout(Duration::from_secs(30), call).await {
                            Err(_) => Outcome::Timeout,
                            Ok(200 | 201) => Outcome::Ok,
                            Ok(429) => Outcome::Limited,
                            Ok(500..=599) => Outcome::ServerError,
                            Ok(_) => Outcome::Other,
                        };
                        seen.push((outcome, started.elapsed().as_micros() as u64));
                        if outcome == Outcome::Timeout {
                            break;
                        }
                        if outcome == Outcome::Limited {
                            // As a client honouring Retry-After would.
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        n += 1;
                    }
                    (kind, seen)
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.unwrap());
        }
        all
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (peak, threads) = sampler.join().unwrap();
    child.kill().ok();
    child.wait().ok();
    println!("server threads at most: {threads}");
    let mut every: Vec<u64> = Vec::new();
    for kind in ["append", "read", "lineage", "impact"] {
        let of_kind: Vec<(Outcome, u64)> =
            results.iter().filter(|(k, _)| *k == kind).flat_map(|(_, v)| v.iter().copied()).collect();
        let count = |o: Outcome| of_kind.iter().filter(|(x, _)| *x == o).count();
        let mut micros: Vec<u64> = of_kind.iter().map(|(_, us)| *us).collect();
        micros.sort_unstable();
        every.extend(&micros);
        println!(
            "{kind}: {} requests ({} ok, {} 429, {} 5xx, {} timeouts, {} other), p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            of_kind.len(),
            count(Outcome::Ok),
            count(Outcome::Limited),
            count(Outcome::ServerError),
            count(Outcome::Timeout),
            count(Outcome::Other),
            percentile(&micros, 0.50),
            percentile(&micros, 0.99),
            micros.last().copied().unwrap_or(0) as f64 / 1000.0
        );
    }
    every.sort_unstable();
    println!(
        "all: {} requests in {seconds}s, p99 {:.1} ms (goal < 500 ms), max {:.1} ms; server RSS peak {peak:.0} MB (goal < 300 MB)",
        every.len(),
        percentile(&every, 0.99),
        every.last().copied().unwrap_or(0) as f64 / 1000.0
    );
}

fn stats(name: &str, mut micros: Vec<u64>) {
    micros.sort_unstable();
    println!(
        "{name}: {} runs, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        micros.len(),
        percentile(&micros, 0.50),
        percentile(&micros, 0.99),
        micros.last().copied().unwrap_or(0) as f64 / 1000.0
    );
}

fn proof_latency(dir: &std::path::Path, events: u64, runtime: &tokio::runtime::Runtime) {
    use govledger::proofs::keys::{self, SigningKeyConfig};
    use govledger::proofs::Proofs;
    use rand::{Rng, SeedableRng};
    let target = StorageTarget::resolve(dir, None).unwrap();
    let key = SigningKeyConfig::in_data_dir(dir, "govledger");
    let store = Store::open(target.clone(), 4, WriterConfig::default()).unwrap();
    let started = Instant::now();
    let proofs = Proofs::new(store.clone(), keys::load_or_create(&key).unwrap(), "govledger".into()).unwrap();
    println!("== proofs at {events} events");
    println!("proof service started (tiles' right edge read) in {:.3}s", started.elapsed().as_secs_f64());
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let runs = 5000;
    let mut inclusion = Vec::with_capacity(runs);
    for _ in 0..runs {
        let seq = rng.gen_range(1..=events);
        let t = Instant::now();
        proofs.inclusion(seq, Some(events)).unwrap();
        inclusion.push(t.elapsed().as_micros() as u64);
    }
    stats("inclusion proof, in-process", inclusion);
    let mut consistency = Vec::with_capacity(runs);
    for _ in 0..runs {
        let from = rng.gen_range(1..=events);
        let t = Instant::now();
        proofs.consistency(from, events).unwrap();
        consistency.push(t.elapsed().as_micros() as u64);
    }
    stats("consistency proof, in-process", consistency);
    let t = Instant::now();
    proofs.publish().unwrap();
    println!("checkpoint signed and stored in {:.3} ms", t.elapsed().as_secs_f64() * 1000.0);
    drop(proofs);
    store.close();

    runtime.block_on(async {
        let mut config = Config::new("127.0.0.1:0", target.clone(), dir);
        config.workers = 2;
        // 4,000 proofs back to back from one token: latency, not the rate limit.
        config.limits.rate_limit_per_second = 0;
        let (issuer, _) = govledger::auth::TokenIssuer::load_or_create(&config.tokens).unwrap();
        let auditor = issuer.issue("auditor", &["auditor".into()], &["*".into()], 3600).unwrap().0;
        let app = Application::build(config).await.unwrap();
        let addr = format!("127.0.0.1:{}", app.port());
        let handle = app.handle();
        let server = tokio::spawn(app.run_until_stopped());
        let mut connection = RawHttp::connect(&addr).await;
        connection.token = Some(auditor);
        for (name, make) in [
            (
                "inclusion proof, HTTP",
                Box::new(|r: &mut rand::rngs::StdRng| {
                    format!("/api/v1/proofs/inclusion?seq={}&tree_size={events}", r.gen_range(1..=events))
                }) as Box<dyn Fn(&mut rand::rngs::StdRng) -> String>,
            ),
            (
                "consistency proof, HTTP",
                Box::new(|r: &mut rand::rngs::StdRng| {
                    format!("/api/v1/proofs/consistency?from={}&to={events}", r.gen_range(1..=events))
                }),
            ),
        ] {
            let mut micros = Vec::new();
            for _ in 0..2000 {
                let path = make(&mut rng);
                let t = Instant::now();
                assert_eq!(connection.get(&path).await, 200);
                micros.push(t.elapsed().as_micros() as u64);
            }
            stats(name, micros);
        }
        handle.stop(true).await;
        server.await.unwrap().unwrap();
    });
    restart_to_ready(dir, events, runtime);
}

/// Issue 29: how long the release server takes from exec to a 200 from
/// `/readyz` on the ledger in `dir` (its search index already caught up by
/// the first start), and its resident memory then: the median of five.
fn restart_to_ready(dir: &std::path::Path, events: u64, runtime: &tokio::runtime::Runtime) {
    let mut times = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..6 {
        let started = Instant::now();
        let Some((mut child, addr)) = release_server(dir, &["--workers", "2"]) else { return };
        runtime.block_on(async {
            let mut http = RawHttp::connect(&addr).await;
            while http.get("/readyz").await != 200 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        times.push(started.elapsed().as_secs_f64());
        rss.push(rss_mb(child.id()));
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        child.wait().unwrap();
    }
    // The first start may catch the search index up; the other five are restarts.
    times.remove(0);
    rss.remove(0);
    times.sort_by(f64::total_cmp);
    rss.sort_by(f64::total_cmp);
    println!(
        "restart of the release server on {events} events to /readyz 200: median {:.3}s (max {:.3}s), RSS then {:.0} MB",
        times[2], times[4], rss[2]
    );
}

/// The cost of authenticating a token and authorizing one action, first
/// time and on repeat calls (the per-request cost of access control).
fn auth_hot_path(runtime: &tokio::runtime::Runtime) {
    use govledger::auth::{Authenticator, Authorizer, PolicyRules, Revocations, TokenConfig, TokenIssuer};
    let dir = tempfile::tempdir().unwrap();
    let config = TokenConfig::in_data_dir(dir.path());
    let (issuer, own) = TokenIssuer::load_or_create(&config).unwrap();
    let authenticator = Authenticator::new(&config, own, Revocations::default()).unwrap();
    let authorizer = runtime.block_on(Authorizer::new(PolicyRules::default_policy().unwrap())).unwrap();
    let fresh: Vec<String> = (0..2000)
        .map(|i| issuer.issue(&format!("ci-{i}"), &["ci".into()], &["fraud".into()], 3600).unwrap().0)
        .collect();
    let started = Instant::now();
    for token in &fresh {
        authenticator.authenticate(token).unwrap();
    }
    let first = started.elapsed().as_secs_f64() * 1e6 / fresh.len() as f64;
    let runs = 200_000;
    let started = Instant::now();
    for i in 0..runs {
        let principal = authenticator.authenticate(&fresh[i % 64]).unwrap();
        assert!(authorizer.allows(&principal, "events/dataset.registered", "append", Some("fraud")));
    }
    let repeat = started.elapsed().as_secs_f64() * 1e6 / runs as f64;
    println!("== access control hot path");
    println!("first verification of a token (EdDSA signature, claims): {first:.1} us");
    println!("repeat call, authenticate + authorize one append (cached): {repeat:.2} us");
}

/// Issue 8: what sealing personal fields costs the append rate (the same
/// load with and without a `personal` part, alternating,
/// `GOVLEDGER_BENCH_ROUNDS` times each, default 2), and
/// how long erasing a subject named by 10,000 events takes.
fn personal_cost(runtime: &tokio::runtime::Runtime, seconds: u64) {
    let every_second = Some(Duration::from_secs(1));
    let mut plain = Vec::new();
    let mut sealed = Vec::new();
    let rounds: usize = std::env::var("GOVLEDGER_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(2);
    for _round in 0..rounds {
        for (with_personal, results) in [(false, &mut plain), (true, &mut sealed)] {
            let dir = tempfile::tempdir().unwrap();
            let target = StorageTarget::resolve(dir.path(), None).unwrap();
            results.push(runtime.block_on(http_appends_as(target, seconds, every_second, true, with_personal)));
        }
    }
    let rates = |v: &Vec<LoadResult>| v.iter().map(|r| r.appends as f64 / r.elapsed.as_secs_f64()).collect::<Vec<_>>();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let per_append =
        |v: &Vec<LoadResult>| mean(&v.iter().map(|r| r.bytes_written as f64 / r.appends as f64).collect::<Vec<_>>());
    let (plain_rates, sealed_rates) = (rates(&plain), rates(&sealed));
    println!("== personal data, sqlite, {CONNECTIONS} connections, alternating runs");
    println!(
        "without personal: {:.0} appends/s {:?}; with personal (1 subject, 2 fields, {} subjects): {:.0} appends/s {:?}; cost {:.1}%",
        mean(&plain_rates),
        plain_rates.iter().map(|r| r.round()).collect::<Vec<_>>(),
        personal_subjects(),
        mean(&sealed_rates),
        sealed_rates.iter().map(|r| r.round()).collect::<Vec<_>>(),
        100.0 * (1.0 - mean(&sealed_rates) / mean(&plain_rates))
    );
    println!(
        "bytes written per append: {:.0} without, {:.0} with personal ({:+.1}%)",
        per_append(&plain),
        per_append(&sealed),
        100.0 * (per_append(&sealed) / per_append(&plain) - 1.0)
    );
    for (what, cpu) in [
        ("writer", (|r: &LoadResult| r.writer_cpu) as fn(&LoadResult) -> Duration),
        ("process", |r: &LoadResult| r.process_cpu),
    ] {
        let per_append = |v: &Vec<LoadResult>| {
            mean(&v.iter().map(|r| cpu(r).as_secs_f64() * 1e6 / r.appends as f64).collect::<Vec<_>>())
        };
        println!(
            "{what} CPU per append: {:.0} us without, {:.0} us with personal ({:+.1}%)",
            per_append(&plain),
            per_append(&sealed),
            100.0 * (per_append(&sealed) / per_append(&plain) - 1.0)
        );
    }
    // Each alternating pair ran back to back: their ratio is spared the
    // drift between pairs, which on this VM is as large as the effect.
    let mut pairs: Vec<f64> = plain_rates.iter().zip(&sealed_rates).map(|(p, s)| 100.0 * (1.0 - s / p)).collect();
    pairs.sort_by(f64::total_cmp);
    println!(
        "cost per pair: {:?}, median {:.1}%",
        pairs.iter().map(|c| (c * 10.0).round() / 10.0).collect::<Vec<_>>(),
        pairs[pairs.len() / 2]
    );

    let dir = tempfile::tempdir().unwrap();
    let target = StorageTarget::resolve(dir.path(), None).unwrap();
    let master = std::sync::Arc::new(MasterKey::new(&[9u8; 32]));
    let config = WriterConfig { master_key: Some(master.clone()), ..WriterConfig::default() };
    let store = Store::open(target, 2, config).unwrap();
    for chunk in 0..10 {
        let drafts: Vec<EventDraft> = (0..2000)
            .map(|i| {
                // Every other event names the subject being erased.
                let who = if i % 2 == 0 { "customer-42".to_owned() } else { format!("customer-{}", chunk * 2000 + i) };
                let request: EventRequest = serde_json::from_value(json!({
                    "kind": "customer.contacted", "subject": "model:churn@1",
                    "personal": {"subject_ids": [who], "fields": {"note": format!("contact {chunk}/{i}")}}
                }))
                .unwrap();
                EventDraft::from_request_with(request, Some(&master)).unwrap()
            })
            .collect();
        store.writer().append_blocking("crm".into(), drafts).unwrap();
    }
    let started = Instant::now();
    let certificate = runtime
        .block_on(govledger::governance::subjects::erase(&store, Some(&master), "customer-42", "dpo", None))
        .unwrap();
    let took = started.elapsed();
    println!(
        "erasing a subject named by {} of 20,000 events: {:.1} ms (key destroyed, event recorded, WAL truncated)",
        certificate.events_affected,
        took.as_secs_f64() * 1000.0
    );
    store.close();
}
