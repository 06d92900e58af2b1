//! Crash safety: the server is killed with SIGKILL at random moments while 8
//! writers append, 20 times over, and restarted each time. Every event a
//! writer saw acknowledged must be there with the hash it was given, seq has
//! no gap, the chain and the stored checkpoints verify, and the search index
//! catches up.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::helpers::{all_events, client_with, mint, Backend, Server, TestApp, TestDatabase};

/// Kills per backend: 20 in CI; the long run (docs/BENCHMARKS.md) sets
/// `GOVLEDGER_CRASH_KILLS=195`.
fn kills() -> usize {
    std::env::var("GOVLEDGER_CRASH_KILLS").ok().and_then(|k| k.parse().ok()).unwrap_or(20)
}
const WRITERS: usize = 8;

/// seq → (hash, subject) of every acknowledged event.
type Acknowledged = Arc<Mutex<BTreeMap<u64, (String, String)>>>;

/// Appends until the server goes away; records what it acknowledged.
async fn writer(base: String, token: String, w: usize, round: usize, seed: u64, acked: Acknowledged) {
    let client = client_with(&token);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for n in 0.. {
        // Single events and batches, so a kill can fall inside either.
        let size = if rng.gen_bool(0.5) { 1 } else { rng.gen_range(2..=10) };
        let events: Vec<Value> = (0..size)
            .map(|i| {
                json!({"kind": "run.updated", "subject": format!("run:crash-{round}-{w}-{n}-{i}"),
                       "attributes": {"parameters": {"step": n, "item": i}}})
            })
            .collect();
        let body = if size == 1 { events[0].clone() } else { json!({ "events": events }) };
        let Ok(response) = client.post(format!("{base}/api/v1/events")).json(&body).send().await else { return };
        let status = response.status();
        // A kill can cut the body short: then the append was not acknowledged.
        let Ok(text) = response.text().await else { return };
        assert_eq!(status, 201, "an append failed while the server was up: {text}");
        let Ok(stored) = serde_json::from_str::<Value>(&text) else { return };
        let stored = if size == 1 { vec![stored] } else { stored["events"].as_array().cloned().expect("events") };
        let mut acked = acked.lock().unwrap();
        for e in stored {
            let seq = e["seq"].as_u64().expect("seq");
            let entry =
                (e["hash"].as_str().expect("hash").to_owned(), e["subject"].as_str().expect("subject").to_owned());
            assert!(acked.insert(seq, entry).is_none(), "seq {seq} acknowledged twice");
        }
    }
}

async fn survives_sigkill_during_appends(backend: Backend) {
    let Some(db) = TestDatabase::create(backend) else { return };
    let token = mint(db.dir.path(), "crash-writer", &["admin"], &["*"]);
    let seed: u64 =
        std::env::var("GOVLEDGER_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("crash harness seed {seed} (GOVLEDGER_CRASH_SEED reproduces the kill times)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let acked: Acknowledged = Arc::default();
    // A checkpoint every second, so kills also land while one is published.
    let flags = ["--checkpoint-interval", "1"];
    for round in 0..kills() {
        let server = Server::start(&db, &flags);
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| tokio::spawn(writer(server.1.clone(), token.clone(), w, round, rng.gen(), acked.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..1500))).await;
        server.kill();
        for w in writers {
            w.await.expect("writer");
        }
    }

    let server = Server::start(&db, &flags);
    let app = TestApp::attach(&server.1, &token);
    let events = all_events(&app).await;
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 20 * kills(), "too few acknowledged appends to mean anything: {}", acked.len());
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>(), "seq has a gap or is out of order");
    for (seq, (hash, subject)) in &acked {
        let stored = &events.get(*seq as usize - 1).unwrap_or_else(|| panic!("acknowledged seq {seq} is gone"));
        assert_eq!(stored["hash"], hash.as_str(), "acknowledged seq {seq} changed");
        assert_eq!(stored["subject"], subject.as_str(), "acknowledged seq {seq} changed");
    }

    let output = Command::new(env!("CARGO_BIN_EXE_govledger"))
        .args(["verify", "--json"])
        .args(db.cli_args())
        .output()
        .expect("run verify");
    let report: Value = serde_json::from_slice(&output.stdout).expect("verify --json");
    assert!(output.status.success(), "verify failed: {report}");
    assert_eq!(report["ok"], true, "{report}");
    assert!(report["verified"].as_u64() >= Some(events.len() as u64), "{report}");
    assert!(report["checkpoints_verified"].as_u64() >= Some(1), "no checkpoint was checked: {report}");

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = app.get_json("/api/v1/search?kind=run.updated&limit=1").await;
        if found["total"] == events.len() as u64 {
            break;
        }
        assert!(Instant::now() < deadline, "search index stuck at {} of {}", found["total"], events.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
crate::on_both_backends!(acknowledged_events_survive_twenty_sigkills, survives_sigkill_during_appends);
