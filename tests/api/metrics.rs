//! `GET /metrics`: Prometheus text format, and the counters move with what
//! the server does.

use std::collections::BTreeMap;

use serde_json::json;

use crate::helpers::{client_with, mint, Backend, Server, TestApp, TestDatabase};

/// Parses the exposition, checking every line's shape on the way.
async fn scrape(app: &TestApp) -> BTreeMap<String, f64> {
    let response = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    let kind = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    let text = response.text().await.unwrap();
    let mut series = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (key, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("malformed line {line:?}"));
        let name_ok = key.split('{').next().unwrap().chars().all(|c| c.is_ascii_lowercase() || c == '_');
        assert!(name_ok && (!key.contains('{') || key.ends_with("\"}")), "malformed series {key:?}");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a number in {line:?}"));
        assert!(series.insert(key.to_owned(), value).is_none(), "{key} twice");
    }
    // Histograms: cumulative buckets ending in +Inf = count.
    for name in
        ["govledger_append_duration_seconds", "govledger_group_commit_events", "govledger_search_duration_seconds"]
    {
        let buckets: Vec<f64> =
            series.iter().filter(|(k, _)| k.starts_with(&format!("{name}_bucket{{"))).map(|(_, v)| *v).collect();
        assert!(buckets.len() > 3, "{name} has no buckets");
        let inf = series[&format!("{name}_bucket{{le=\"+Inf\"}}")];
        assert_eq!(inf, series[&format!("{name}_count")], "{name}");
        assert!(buckets.iter().all(|b| *b <= inf), "{name}: a bucket above +Inf");
    }
    series
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_appends_auth_failures_searches_and_checkpoints() {
    // Its own process: the metrics are per process, and tests share this one.
    let Some(db) = TestDatabase::create(Backend::Sqlite) else { return };
    let server = Server::start(&db, &[]);
    let app = TestApp::attach(&server.1, &mint(db.dir.path(), "metrics-admin", &["admin"], &["*"]));
    let before = scrape(&app).await;
    let metric = |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);

    app.append("dataset.registered", "dataset:metrics").await;
    let batch = json!({"events": (0..4).map(|i| json!({"kind": "run.updated", "subject": format!("run:m{i}")})).collect::<Vec<_>>()});
    assert_eq!(app.post_events(&batch).await.status(), 201);
    let no_token = reqwest::Client::new().get(app.url("/api/v1/head")).send().await.unwrap();
    assert_eq!(no_token.status(), 401);
    let forged = client_with("not-a-token").get(app.url("/api/v1/head")).send().await.unwrap();
    assert_eq!(forged.status(), 401);
    let viewer = client_with(&mint(db.dir.path(), "vera", &["viewer"], &["*"]));
    let forbidden =
        viewer.post(app.url("/api/v1/events")).json(&json!({"kind": "x.y", "subject": "run:z"})).send().await;
    assert_eq!(forbidden.unwrap().status(), 403);
    assert_eq!(app.get("/api/v1/search?q=metrics&consistent=true").await.status(), 200);
    assert_eq!(app.get("/api/v1/checkpoint").await.status(), 200);

    let after = scrape(&app).await;
    let delta = |k: &str| metric(&after, k) - metric(&before, k);
    assert_eq!(delta("govledger_appended_events_total"), 5.0);
    assert_eq!(metric(&after, "govledger_ledger_events"), 5.0);
    assert_eq!(delta("govledger_append_duration_seconds_count"), 2.0);
    assert!(delta("govledger_group_commit_events_sum") >= 5.0);
    assert_eq!(delta("govledger_auth_failures_total{reason=\"missing_token\"}"), 1.0);
    assert_eq!(delta("govledger_auth_failures_total{reason=\"invalid_token\"}"), 1.0);
    assert_eq!(delta("govledger_auth_failures_total{reason=\"forbidden\"}"), 1.0);
    assert_eq!(delta("govledger_auth_failures_total{reason=\"revoked\"}"), 0.0);
    assert_eq!(delta("govledger_search_duration_seconds_count"), 1.0);
    assert_eq!(metric(&after, "govledger_search_index_lag_events"), 0.0);
    let age = after["govledger_checkpoint_age_seconds"];
    assert!((0.0..60.0).contains(&age), "checkpoint age {age}");
    assert_eq!(after["govledger_checkpoint_behind_events"], 0.0);
    assert!(!before.contains_key("govledger_checkpoint_age_seconds"), "an empty ledger has no checkpoint age");
}
