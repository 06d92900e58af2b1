//! Search over the `govledger demo` ledger: exact results for free text,
//! field filters, time ranges and combinations; facets; pagination; project
//! isolation; and an index that catches up after the server is killed.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::{json, Value};

use crate::helpers::{all_events, client_with, mint, Backend, Server, TestApp, TestDatabase};
use govledger::client::Client;
use govledger::demo::{self, Cast};

async fn search(app: &TestApp, query: &str) -> Value {
    let response = app.get(&format!("/api/v1/search?consistent=true&{query}")).await;
    assert_eq!(response.status(), 200, "{query}");
    response.json().await.unwrap()
}

fn seqs(results: &Value) -> Vec<u64> {
    results["hits"].as_array().unwrap().iter().map(|h| h["seq"].as_u64().unwrap()).collect()
}

fn enc(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every event of the ledger, and the seqs matching `keep`.
fn matching(events: &[Value], keep: impl Fn(&Value) -> bool) -> Vec<u64> {
    let mut seqs: Vec<u64> = events.iter().filter(|e| keep(e)).map(|e| e["seq"].as_u64().unwrap()).collect();
    seqs.sort_unstable_by(|a, b| b.cmp(a));
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_over_the_demo_ledger_return_exactly_the_expected_events() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    let admin = Client::new(&app.base, &app.admin_token).unwrap();
    let story = demo::run(&Cast::mint(&admin).await.unwrap()).await.unwrap();
    let events = all_events(&app).await;
    let head = events.len() as u64;

    // Free text, a phrase: only the rollback's reason says it.
    let phrase = search(&app, &format!("q={}", enc("\"latency regression\""))).await;
    assert_eq!(seqs(&phrase), matching(&events, |e| e["kind"] == "deployment.rolled_back"));
    assert!(phrase["hits"][0]["snippet"].as_str().unwrap().contains("<b>latency</b> <b>regression</b>"));

    // A field filter, sorted by time, with facets.
    let granted = search(&app, "kind=approval.granted&sort=time").await;
    assert_eq!(seqs(&granted), matching(&events, |e| e["kind"] == "approval.granted"));
    assert_eq!(granted["facets"]["actor"], json!({"raj": 4, "rita": 4}));
    assert_eq!(granted["facets"]["entity_type"], json!({"approval": 8}));

    // The query language: field:value, boolean operators.
    let q = enc("kind:model.evaluated AND subject:\"model:fraud-detector@2\"");
    let evaluated = search(&app, &format!("q={q}")).await;
    // Ranked by relevance, where both evaluations tie: compare as sets.
    let sorted = |mut v: Vec<u64>| {
        v.sort_unstable();
        v
    };
    assert_eq!(
        sorted(seqs(&evaluated)),
        sorted(matching(&events, |e| e["kind"] == "model.evaluated" && e["subject"] == "model:fraud-detector@2"))
    );
    let q = enc("ref:\"dataset:transactions@2026-11\" OR text:chargebacks");
    let either = search(&app, &format!("q={q}&sort=time&limit=100")).await;
    assert_eq!(
        seqs(&either),
        matching(&events, |e| {
            let text = e.to_string();
            text.contains("dataset:transactions@2026-11") || text.to_lowercase().contains("chargebacks")
        })
    );
    // Attribute names are searchable words too.
    let fairness = search(&app, &format!("q={}&sort=time", enc("demographic_parity_difference"))).await;
    assert_eq!(
        seqs(&fairness),
        matching(&events, |e| e["attributes"]["fairness_metrics"]["demographic_parity_difference"].is_number())
    );

    // Time ranges: before and after the retraining, alone and with a filter.
    let at = enc(&story.before_retraining);
    let before = search(&app, &format!("to={at}&limit=100")).await;
    let after = search(&app, &format!("from={at}&limit=100")).await;
    let cut = |e: &Value| e["recorded_at"].as_str().unwrap() < story.before_retraining.as_str();
    assert_eq!(seqs(&before), matching(&events, cut));
    assert_eq!(seqs(&after), matching(&events, |e| !cut(e)));
    assert_eq!(before["total"].as_u64().unwrap() + after["total"].as_u64().unwrap(), head);
    // Bounds beyond what the index can count (years past 2262) are clamped, not overflowed.
    assert_eq!(search(&app, &format!("to={}&limit=1", enc("9999-12-31T00:00:00Z"))).await["total"], head);
    assert_eq!(search(&app, &format!("from={}&limit=1", enc("4052-01-01T00:00:00Z"))).await["total"], 0);
    assert_eq!(search(&app, &format!("to={}&limit=1", enc("1066-10-14T09:00:00Z"))).await["total"], 0);
    let early_runs = search(&app, &format!("to={at}&entity_type=run&actor=ci-fraud")).await;
    assert_eq!(
        seqs(&early_runs),
        matching(&events, |e| cut(e) && e["subject"].as_str().unwrap().starts_with("run:") && e["actor"] == "ci-fraud")
    );

    // Facets over everything equal the counts of the listing.
    let everything = search(&app, "limit=1").await;
    assert_eq!(everything["total"], head);
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    for e in &events {
        *by_kind.entry(e["kind"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(everything["facets"]["kind"], serde_json::to_value(&by_kind).unwrap());

    // Pagination walks every hit exactly once, in both sorts.
    for sort in ["time", "relevance"] {
        let q = if sort == "time" { String::new() } else { format!("&q={}", enc("fraud OR approval")) };
        let all = search(&app, &format!("sort={sort}&limit=100{q}")).await;
        let mut walked = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = search(&app, &format!("sort={sort}&limit=7{q}{cursor}")).await;
            walked.extend(seqs(&page));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = format!("&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(walked, seqs(&all), "{sort}");
        assert_eq!(walked.len() as u64, all["total"].as_u64().unwrap());
        assert_eq!(walked.iter().collect::<BTreeSet<_>>().len(), walked.len(), "{sort}: a hit seen twice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_limited_to_one_project_never_sees_another() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    app.post_events(&json!({"events": [
        {"kind": "dataset.registered", "subject": "dataset:loans", "project": "credit",
         "attributes": {"description": "credit score inputs for retail lending"}},
        {"kind": "dataset.registered", "subject": "dataset:tx", "project": "fraud",
         "attributes": {"description": "card transactions"}},
        {"kind": "run.started", "subject": "run:credit-1", "project": "credit"},
        {"kind": "pipeline.checked", "subject": "model:shared@1", "attributes": {"note": "credit score drift"}},
    ]}))
    .await;
    let fraud = TestApp::attach(&app.base, &app.token("fran", &["auditor"], &["fraud"]));
    let everything = search(&fraud, "").await;
    assert_eq!(seqs(&everything), [2]);
    assert_eq!(everything["total"], 1);
    assert_eq!(everything["facets"]["kind"], json!({"dataset.registered": 1}));
    assert_eq!(everything["facets"]["actor"], json!({"test-admin": 1}));
    let credit = search(&fraud, &format!("q={}", enc("\"credit score\""))).await;
    assert_eq!((credit["total"].as_u64(), credit["facets"]["kind"].clone()), (Some(0), json!({})));
    let explicit = search(&fraud, "project=credit").await;
    assert_eq!(explicit["total"], 0);
    // An all-projects reader sees all four, including the project-less one.
    let admin = search(&app, &format!("q={}", enc("\"credit score\""))).await;
    assert_eq!(admin["total"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_are_400_with_the_parsers_message() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    app.append("dataset.registered", "dataset:nesting").await;
    // Ten levels are allowed and answer.
    let ten = app.get("/api/v1/search?consistent=true&q=((((((((((nesting))))))))))").await;
    assert_eq!(ten.status(), 200);
    assert_eq!(ten.json::<Value>().await.unwrap()["total"], 1);
    for (query, status, needle) in [
        ("q=%28unclosed", 400, "Syntax Error"),
        ("q=nosuchfield%3Ax", 400, "nosuchfield"),
        ("sort=sideways", 422, "sort"),
        ("limit=0", 422, "limit"),
        ("from=yesterday", 422, "from"),
        ("sort=time&cursor=r5", 400, "cursor"),
        ("colour=red", 400, "colour"),
        // Found by fuzzing: 40 unclosed parentheses kept the parser busy for hours.
        ("q=a%20((((((((((((((((((((((((((((((((((((((((OR%20(R(%20O%20a%23R(bbg%20", 400, "nests parentheses"),
        ("q=((((((((((((a))))))))))))", 400, "at most 10"),
        // Found by fuzzing: tantivy's grammar panicked on `*` after `-` and a space (was 500).
        ("q=d%20%20-%20%09%09*", 400, "cannot be parsed"),
        ("q=-%20*", 400, "cannot be parsed"),
        ("q=%2B%20*", 400, "cannot be parsed"),
    ] {
        let response = app.get(&format!("/api/v1/search?{query}")).await;
        assert_eq!(response.status(), status, "{query}");
        let body: Value = response.json().await.unwrap();
        assert!(body["message"].as_str().unwrap().contains(needle), "{query}: {body}");
    }
    // The server keeps answering after those.
    assert_eq!(app.get("/api/v1/search?q=nesting").await.status(), 200);
    // Searching needs a token like every other read.
    let anonymous = reqwest::get(app.url("/api/v1/search?q=x")).await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_is_searchable_at_once_with_consistent_and_within_a_second_without() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    let stored: Value = app.append("pipeline.drift_checked", "model:speech@4").await;
    let seq = stored["seq"].as_u64().unwrap();
    let found = search(&app, "q=drift_checked").await;
    assert_eq!(seqs(&found), [seq]);
    let second: Value = app.append("pipeline.drift_checked", "model:speech@5").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let page: Value = app.get("/api/v1/search?q=drift_checked").await.json().await.unwrap();
        if page["total"] == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "event {} not searchable within 1 s", second["seq"]);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn index_catches_up_after_a_kill(backend: Backend) {
    let Some(db) = TestDatabase::create(backend) else { return };
    let token = mint(db.dir.path(), "loader", &["admin"], &["*"]);
    let server = Server::start(&db, &[]);
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (base, client) = (server.1.clone(), client_with(&token));
            tokio::spawn(async move {
                for n in 0.. {
                    let body = json!({"events": (0..20).map(|i| json!({"kind": "run.updated",
                        "subject": format!("run:w{w}"), "attributes": {"parameters": {"step": n * 20 + i}}})).collect::<Vec<_>>()});
                    if client.post(format!("{base}/api/v1/events")).json(&body).send().await.is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    server.kill();
    for w in writers {
        w.await.unwrap();
    }
    let server = Server::start(&db, &[]);
    let app = TestApp::attach(&server.1, &token);
    let head = app.size().await;
    assert!(head > 200, "too few events to mean anything: {head}");
    let mut walked = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = search(&app, &format!("sort=time&limit=100{cursor}")).await;
        assert_eq!(page["total"], head);
        walked.extend(seqs(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(walked, (1..=head).rev().collect::<Vec<_>>());
}
crate::on_both_backends!(index_catches_up_after_a_kill_during_appends, index_catches_up_after_a_kill);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_and_search_from_the_command_line() {
    let db = TestDatabase::create(Backend::Sqlite).unwrap();
    let bin = env!("CARGO_BIN_EXE_govledger");
    let demo = Command::new(bin).arg("demo").args(db.cli_args()).output().unwrap();
    assert!(demo.status.success(), "{}", String::from_utf8_lossy(&demo.stderr));
    let reindex = Command::new(bin).arg("reindex").args(db.cli_args()).output().unwrap();
    let stdout = String::from_utf8_lossy(&reindex.stdout);
    assert!(reindex.status.success(), "{}", String::from_utf8_lossy(&reindex.stderr));
    assert!(String::from_utf8_lossy(&reindex.stderr).contains("] "), "a progress bar on stderr");
    let server = Server::start(&db, &[]);
    let token = mint(db.dir.path(), "audrey", &["auditor"], &["*"]);
    let app = TestApp::attach(&server.1, &token);
    let head = app.size().await;
    // (a token minted with the key offline records nothing: the head is the demo's)
    assert!(stdout.contains(&format!("reindexed {head} events")), "{stdout}");
    let search = Command::new(bin)
        .args(["search", "kind:approval.rejected"])
        .env("GOVLEDGER_URL", &server.1)
        .env("GOVLEDGER_TOKEN", &token)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&search.stdout);
    assert!(search.status.success(), "{}", String::from_utf8_lossy(&search.stderr));
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("approval.rejected") && out.contains("rita"), "{out}");
    assert!(String::from_utf8_lossy(&search.stderr).contains("1 matching events"));
    let bad = Command::new(bin)
        .args(["search", "(unclosed"])
        .env("GOVLEDGER_URL", &server.1)
        .env("GOVLEDGER_TOKEN", &token)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("malformed_query"));
}
