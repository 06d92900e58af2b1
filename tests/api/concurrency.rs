use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use govledger::store::{self, DbConn};
use serde_json::{json, Value};

use crate::helpers::{all_events, uuid_like, Backend, TestApp, TestDatabase};
use crate::on_both_backends;

const WRITERS: usize = 16;
const EVENTS_PER_WRITER: usize = 500;

/// Posts `count` events as writer `w`, each on its own keep-alive connection.
async fn write_events(base: String, token: String, w: usize, count: usize) {
    let client = crate::helpers::client_with(&token);
    for n in 0..count {
        let response = client
            .post(format!("{base}/api/v1/events"))
            .json(&json!({
                "kind": "run.completed",
                "subject": format!("run:writer-{w}@{n}"),
                "attributes": {"metrics": {"writer": w, "n": n}},
            }))
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), 201, "writer {w} event {n}");
    }
}

/// Exactly the expected events, seq 1..=N with no gap, each writer's events
/// in the order it sent them, and a chain that verifies offline.
async fn assert_one_complete_chain(reader: &TestApp, db: &TestDatabase) {
    let events = all_events(reader).await;
    let total = WRITERS * EVENTS_PER_WRITER;
    assert_eq!(events.len(), total);
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=total as u64).collect::<Vec<_>>());
    let mut next_n: HashMap<u64, u64> = HashMap::new();
    for e in &events {
        let w = e["attributes"]["metrics"]["writer"].as_u64().unwrap();
        let n = e["attributes"]["metrics"]["n"].as_u64().unwrap();
        let expected = next_n.entry(w).or_default();
        assert_eq!(n, *expected, "writer {w}'s events are out of order");
        *expected += 1;
    }
    assert!(next_n.values().all(|n| *n == EVENTS_PER_WRITER as u64));
    for pair in events.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }
    let report = store::verify_target(&db.target).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.verified, total as u64);
}

async fn sixteen_concurrent_writers_make_one_gapless_chain(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(write_events(app.base.clone(), app.admin_token.clone(), w, EVENTS_PER_WRITER)))
        .collect();
    for writer in writers {
        writer.await.expect("writer finished");
    }
    assert_one_complete_chain(&app, app.db()).await;
}
on_both_backends!(sixteen_concurrent_writers_make_one_gapless_chain, sixteen_concurrent_writers_make_one_gapless_chain);

/// A `govledger serve` process and the port it bound.
struct ServerProcess {
    child: Child,
    base: String,
}

impl ServerProcess {
    fn start(db: &TestDatabase) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_govledger"))
            .arg("serve")
            .args(["--bind", "127.0.0.1:0", "--workers", "2"])
            .args(db.cli_args())
            // Replicas share the data dir's keys but each has its own search index.
            .arg("--search-index-dir")
            .arg(db.dir.path().join(format!("search-{}", uuid_like())))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("server process starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("reads the listening line");
        let addr = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        Self { child, base: addr }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_on_one_postgres_make_one_gapless_chain() {
    let Some(db) = TestDatabase::create(Backend::Postgres) else {
        return;
    };
    // Migrations race too when replicas start together.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| ServerProcess::start(&db));
        let b = s.spawn(|| ServerProcess::start(&db));
        (a.join().unwrap(), b.join().unwrap())
    });
    let token = crate::helpers::mint(db.dir.path(), "writer", &["admin"], &["*"]);
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let base = if w % 2 == 0 { a.base.clone() } else { b.base.clone() };
            tokio::spawn(write_events(base, token.clone(), w, EVENTS_PER_WRITER))
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer finished");
    }
    assert_one_complete_chain(&TestApp::attach(&b.base, &token), &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_keeps_every_acknowledged_event() {
    let db = TestDatabase::create(Backend::Sqlite).expect("sqlite");
    let server = ServerProcess::start(&db);
    let token = crate::helpers::mint(db.dir.path(), "writer", &["admin"], &["*"]);
    let deadline = Instant::now() + Duration::from_millis(1500);
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let base = server.base.clone();
            let token = token.clone();
            tokio::spawn(async move {
                let client = crate::helpers::client_with(&token);
                let mut acknowledged = Vec::new();
                for n in 0.. {
                    let sent = client
                        .post(format!("{base}/api/v1/events"))
                        .json(&json!({"kind": "run.completed", "subject": format!("run:w{w}@{n}")}))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 201 => acknowledged.push(r.json::<Value>().await.unwrap()),
                        _ if Instant::now() > deadline => break,
                        Ok(r) => panic!("unexpected status {} before shutdown", r.status()),
                        Err(e) => panic!("request failed before shutdown: {e}"),
                    }
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep_until((deadline).into()).await;
    server.signal("-TERM");
    let mut acknowledged = Vec::new();
    for w in writers {
        acknowledged.extend(w.await.unwrap());
    }
    let mut server = server;
    let status = server.child.wait().unwrap();
    assert!(status.success(), "server exited with {status}");
    assert!(acknowledged.len() > 50, "too few appends to mean anything: {}", acknowledged.len());

    let mut conn = DbConn::establish(&db.target).unwrap();
    for event in &acknowledged {
        let seq = event["seq"].as_u64().unwrap();
        let stored = store::events::by_seq(&mut conn, seq).unwrap().expect("acknowledged event is stored");
        assert_eq!(hex::encode(stored.hash), event["hash"].as_str().unwrap());
    }
    let report = store::verify_target(&db.target).unwrap();
    assert!(report.ok, "{report:?}");
}
