//! Request limits set on the command line, answered with 413/422/429 JSON
//! errors that change nothing; per-token rate limits.

use std::process::Command;

use serde_json::{json, Value};

use crate::helpers::{client_with, mint, Backend, Server, TestApp, TestDatabase};

async fn refused(response: reqwest::Response, status: u16, code: &str) -> reqwest::header::HeaderMap {
    assert_eq!(response.status(), status);
    let headers = response.headers().clone();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    headers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_from_flags_and_per_token_rate_limits() {
    let Some(db) = TestDatabase::create(Backend::Sqlite) else { return };
    let flags = [
        "--max-body-bytes",
        "4096",
        "--max-batch-events",
        "2",
        "--max-page-size",
        "150",
        "--max-lineage-depth",
        "3",
        "--rate-limit",
        "2",
        "--rate-limit-burst",
        "4",
    ];
    let server = Server::start(&db, &flags);
    // A fresh token per request, so the rate limit stays out of the way.
    let fresh =
        || client_with(&mint(db.dir.path(), &format!("ci-{}", crate::helpers::uuid_like()), &["admin"], &["*"]));
    let url = |path: &str| format!("{}{path}", server.1);
    let event = json!({"kind": "run.updated", "subject": "run:limits"});
    assert_eq!(fresh().post(url("/api/v1/events")).json(&event).send().await.unwrap().status(), 201);

    let big = json!({"kind": "run.updated", "subject": "run:limits", "attributes": {"notes": "x".repeat(5000)}});
    refused(fresh().post(url("/api/v1/events")).json(&big).send().await.unwrap(), 413, "payload_too_large").await;
    let batch = json!({"events": [event.clone(), event.clone(), event.clone()]});
    refused(fresh().post(url("/api/v1/events")).json(&batch).send().await.unwrap(), 422, "batch_too_large").await;
    refused(fresh().get(url("/api/v1/events?limit=151")).send().await.unwrap(), 422, "invalid_limit").await;
    assert_eq!(fresh().get(url("/api/v1/events?limit=150")).send().await.unwrap().status(), 200);
    let deep = url("/api/v1/lineage?node=run:limits&depth=4");
    refused(fresh().get(deep).send().await.unwrap(), 422, "invalid_depth").await;

    // One token: a burst of 4, then 429 with Retry-After; other tokens unaffected.
    let busy = client_with(&mint(db.dir.path(), "busy-ci", &["ci"], &["*"]));
    for _ in 0..4 {
        assert_eq!(busy.get(url("/api/v1/head")).send().await.unwrap().status(), 200);
    }
    let headers = refused(busy.get(url("/api/v1/head")).send().await.unwrap(), 429, "rate_limited").await;
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    refused(busy.post(url("/api/v1/events")).json(&event).send().await.unwrap(), 429, "rate_limited").await;
    assert_eq!(fresh().get(url("/api/v1/head")).send().await.unwrap().status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(busy.get(url("/api/v1/head")).send().await.unwrap().status(), 200, "refilled at 2/s");

    // Nothing refused was recorded.
    let app = TestApp::attach(&server.1, &mint(db.dir.path(), "auditor", &["admin"], &["*"]));
    assert_eq!(app.size().await, 1);
}

#[test]
fn invalid_limits_stop_the_server_with_a_message() {
    for (flag, value) in [("--max-batch-events", "0"), ("--max-body-bytes", "lots"), ("--max-page-size", "10")] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_govledger"))
            .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args([flag, value])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} {value} was accepted");
        assert!(stderr.contains(flag.trim_start_matches('-')) || stderr.contains(flag), "{flag}: {stderr}");
        assert!(!dir.path().join("govledger.db").exists(), "{flag}: a ledger was created");
    }
}
