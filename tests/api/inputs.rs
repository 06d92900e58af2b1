//! Inputs are unambiguous and every request is bounded (issue 20): repeated
//! JSON keys, look-alike subjects, over-long path parameters, bodies that
//! never arrive and tokens that hold too many requests are refused with a
//! JSON error, and nothing is written.

use std::io::{Read, Write};

use serde_json::{json, Value};

use crate::helpers::{client_with, mint, Backend, Server, TestApp, TestDatabase};

async fn status_and_body(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_key_is_refused_and_writes_nothing() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    let size = app.size().await;
    let body = r#"{"kind":"monitoring.a","kind":"monitoring.b","subject":"model:m@1"}"#;
    let response = app
        .client
        .post(app.url("/api/v1/events"))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, answer) = status_and_body(response).await;
    assert_eq!((status, answer["error"].as_str()), (400, Some("malformed_json")), "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("\"kind\" appears twice"), "{answer}");
    assert_eq!(app.size().await, size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_alike_subjects_are_one_person_or_refused() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    for sub in ["alice ", " alice", "alice\u{200b}", "e\u{0301}lise"] {
        let response = app
            .client
            .post(app.url("/api/v1/tokens"))
            .json(&json!({"sub": sub, "roles": ["risk_officer"]}))
            .send()
            .await
            .unwrap();
        let (status, body) = status_and_body(response).await;
        assert_eq!(status, 422, "{sub:?}: {body}");
    }
    // alice registers a model; "Alice" is the same person and may not approve it.
    let alice = client_with(&app.token("alice", &["data_scientist"], &["*"]));
    for event in [
        json!({"kind": "run.completed", "subject": "run:r", "project": "p", "outputs": ["model:m@1"]}),
        json!({"kind": "model.registered", "subject": "model:m@1", "project": "p", "inputs": ["run:r"]}),
    ] {
        assert_eq!(alice.post(app.url("/api/v1/events")).json(&event).send().await.unwrap().status(), 201);
    }
    let ci = client_with(&app.token("ci", &["ci"], &["*"]));
    let ask = json!({"model": "model:m@1", "environment": "staging"});
    let approval = crate::helpers::json_of(ci.post(app.url("/api/v1/approvals")).json(&ask)).await;
    let id = approval["id"].as_str().unwrap();
    let shouting = client_with(&app.token("Alice", &["risk_officer"], &["*"]));
    let response = shouting
        .post(app.url(&format!("/api/v1/approvals/{id}/decision")))
        .json(&json!({"decision": "grant", "reason": "fine"}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_body(response).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("separation_of_duties")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_parameters_are_length_checked_as_described() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    let long = "x".repeat(300);
    for path in [format!("/api/v1/subjects/{long}"), format!("/api/v1/approvals/{long}")] {
        let (status, body) = status_and_body(app.get(&path).await).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }
}

/// Sends `head` and `body` on a raw connection and reads the answer.
fn raw(addr: &str, head: &str, body: &[u8], read_timeout: std::time::Duration) -> (String, std::net::TcpStream) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(read_timeout)).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&answer).contains("\"message\"") {
            break;
        }
    }
    (String::from_utf8_lossy(&answer).into_owned(), stream)
}

#[test]
fn a_body_that_never_arrives_times_out_and_a_busy_token_waits() {
    let Some(db) = TestDatabase::create(Backend::Sqlite) else { return };
    let server = Server::start(&db, &["--body-read-timeout", "1", "--max-in-flight", "2"]);
    let token = mint(db.dir.path(), "slow-ci", &["admin"], &["*"]);
    let addr = server.1.trim_start_matches("http://").to_owned();
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 500\r\n\r\n"
    );
    // 8 bytes of a promised 500: answered 408 once the timeout passes.
    let started = std::time::Instant::now();
    let (answer, _) = raw(&addr, &head, br#"{"kind":"#, std::time::Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"error\":\"request_timeout\""), "{answer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());

    // Two requests of one token in progress: a third is 429 with Retry-After.
    let held: Vec<_> = (0..2)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(&addr).unwrap();
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(b"{").unwrap();
            stream
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let get = format!("GET /api/v1/head HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
    let (answer, _) = raw(&addr, &get, b"", std::time::Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("\"error\":\"rate_limited\""), "{answer}");
    // Once they are answered (timed out), the token may go on.
    drop(held);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (answer, _) = raw(&addr, &get, b"", std::time::Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_policy_is_a_json_413() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    let huge = format!("p, admin, *, *, *, allow\n{}", "# padding\n".repeat(200_000));
    let response =
        app.client.put(app.url("/api/v1/policies")).header("Content-Type", "text/csv").body(huge).send().await.unwrap();
    let (status, body) = status_and_body(response).await;
    assert_eq!((status, body["error"].as_str()), (413, Some("payload_too_large")), "{body}");
}

#[test]
fn the_shipped_limits_are_on() {
    let limits = govledger::config::Limits::default();
    assert_eq!(limits.rate_limit_per_second, 500);
    assert_eq!(limits.rate_limit_burst, 1000);
    assert_eq!(limits.max_in_flight_per_token, 64);
    assert_eq!(limits.body_read_timeout, std::time::Duration::from_secs(30));
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_govledger")).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("[default: 500]") && help.contains("[default: 64]"), "{help}");
}

async fn lineage_answers_are_bounded(backend: crate::helpers::Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.append_json(&json!({"kind": "dataset.version_created", "subject": "dataset:popular@1", "project": "p"})).await;
    for chunk in 0..3 {
        let events: Vec<Value> = (0..1000)
            .map(|i| {
                json!({"kind": "run.started", "subject": format!("run:r-{chunk}-{i}"), "project": "p",
                "inputs": ["dataset:popular@1"]})
            })
            .collect();
        assert_eq!(app.post_events(&json!({ "events": events })).await.status(), 201);
    }
    let graph = app.get_json("/api/v1/lineage?node=dataset:popular@1&direction=downstream").await;
    let nodes = graph["nodes"].as_array().unwrap().len();
    assert_eq!(nodes, 500, "the default limit");
    assert_eq!((graph["truncated"].as_bool(), graph["node_limit"].as_u64()), (Some(true), Some(500)));
    assert!(graph["omitted_nodes"].as_u64().unwrap() > 0, "{}", graph["omitted_nodes"]);
    assert!(graph.to_string().len() < 200_000, "a 500-node answer stays small");
    let all = app.get_json("/api/v1/lineage?node=dataset:popular@1&direction=downstream&limit=5000").await;
    assert_eq!((all["nodes"].as_array().unwrap().len(), all["truncated"].as_bool()), (3001, Some(false)));
    let (status, body) = status_and_body(app.get("/api/v1/lineage?node=dataset:popular@1&limit=5001").await).await;
    assert_eq!((status, body["error"].as_str()), (422, Some("invalid_limit")), "{body}");
    let impact = app.get_json("/api/v1/impact?node=dataset:popular@1&limit=10").await;
    assert_eq!(impact["truncated"], true, "{impact}");
    let entity = app.get_json("/api/v1/entities/dataset:popular@1").await;
    assert_eq!(entity["downstream"].as_array().unwrap().len(), 1000);
    assert_eq!(entity["edges_truncated"], true);
}
crate::on_both_backends!(lineage_impact_and_entities_answer_within_their_limits, lineage_answers_are_bounded);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_beyond_what_the_server_can_serve_are_shed_with_429() {
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.pool_size = 1;
        c.limits.queue_wait = std::time::Duration::from_millis(1);
    })
    .await
    else {
        return;
    };
    app.append_json(&json!({"kind": "dataset.version_created", "subject": "dataset:d@1", "project": "p"})).await;
    let requests = (0..40).map(|_| app.client.get(app.url("/api/v1/lineage?node=dataset:d@1")).send());
    let answers = futures_util::future::join_all(requests).await;
    let mut shed = 0;
    for answer in answers {
        let answer = answer.unwrap();
        match answer.status().as_u16() {
            200 => {}
            429 => {
                shed += 1;
                assert_eq!(answer.headers()["retry-after"], "1");
                let body: Value = answer.json().await.unwrap();
                assert_eq!(body["error"], "rate_limited", "{body}");
            }
            other => panic!("{other}: {}", answer.text().await.unwrap()),
        }
    }
    assert!(shed > 0, "40 readers at once on one connection with a 1 ms queue: some must be shed");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("govledger_shed_requests_total"), "{metrics}");
}
