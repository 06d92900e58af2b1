use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

async fn appended_event_is_stored_chained_and_readable(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let first = app.append("dataset.version_created", "dataset:transactions@2026-10").await;
    let response = app
        .post_events(&json!({
            "kind": "model.registered",
            "subject": "model:fraud-detector@3",
            "project": "fraud",
            "inputs": ["dataset:transactions@2026-10", "run:train-17"],
            "outputs": ["artifact:fraud-detector-3.onnx"],
            "attributes": {"framework": "xgboost", "metrics": {"auc": 0.93}},
            "occurred_at": "2026-03-03T10:00:00+01:00",
        }))
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["location"], "/api/v1/events/2");
    let second: Value = response.json().await.unwrap();

    assert_eq!(first["seq"], 1);
    assert_eq!(first["prev_hash"], "0".repeat(64));
    assert_eq!(second["seq"], 2);
    assert_eq!(second["prev_hash"], first["hash"]);
    assert_eq!(second["actor"], crate::helpers::TEST_ADMIN);
    assert_eq!(second["project"], "fraud");
    assert_eq!(second["occurred_at"], "2026-03-03T09:00:00.000000Z");
    assert_eq!(second["attributes"], json!({"framework": "xgboost", "metrics": {"auc": 0.93}}));
    assert_eq!(second["inputs"], json!(["dataset:transactions@2026-10", "run:train-17"]));

    let read = app.get_json("/api/v1/events/2").await;
    assert_eq!(read, second);
    let head = app.get_json("/api/v1/head").await;
    assert_eq!(head, json!({"size": 2, "head_hash": second["hash"]}));
    let report = app.get_json("/api/v1/verify").await;
    assert_eq!(report["ok"], true);
    assert_eq!(report["verified"], 2);
    assert_eq!(report["head_hash"], second["hash"]);
}
on_both_backends!(appended_event_is_stored_chained_and_readable, appended_event_is_stored_chained_and_readable);

async fn batch_is_appended_in_order(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let response = app
        .post_events(&json!({"events": [
            {"kind": "run.started", "subject": "run:train-1", "inputs": ["dataset:a@1"]},
            {"kind": "run.completed", "subject": "run:train-1", "outputs": ["model:m@1"]},
            {"kind": "model.registered", "subject": "model:m@1", "inputs": ["run:train-1"]},
        ]}))
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let events = body["events"].as_array().unwrap();
    let kinds: Vec<_> = events.iter().map(|e| (e["seq"].as_u64().unwrap(), e["kind"].as_str().unwrap())).collect();
    assert_eq!(kinds, [(1, "run.started"), (2, "run.completed"), (3, "model.registered")]);
    assert_eq!(events[1]["prev_hash"], events[0]["hash"]);
    assert_eq!(events[2]["prev_hash"], events[1]["hash"]);
}
on_both_backends!(batch_is_appended_in_order, batch_is_appended_in_order);

async fn retried_append_with_same_key_writes_nothing(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let event = json!({"kind": "model.explained", "subject": "model:m@1", "idempotency_key": "ci-run-42"});
    let first = app.post_events(&event).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();

    let retry = app.post_events(&event).await;
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry, first);
    assert_eq!(app.size().await, 1);

    // The same key for different content is a client bug, not a retry.
    let other = app
        .post_events(&json!({"kind": "model.explained", "subject": "model:m@2", "idempotency_key": "ci-run-42"}))
        .await;
    assert_eq!(other.status(), 422);
    let body: Value = other.json().await.unwrap();
    assert_eq!(body["error"], "idempotency_key_reused");
    assert_eq!(app.size().await, 1);

    // Retrying a whole batch returns the original batch.
    let batch = json!({"events": [
        {"kind": "run.started", "subject": "run:r", "idempotency_key": "b-1"},
        {"kind": "run.completed", "subject": "run:r", "idempotency_key": "b-2"},
    ]});
    let created: Value = app.post_events(&batch).await.json().await.unwrap();
    let replayed = app.post_events(&batch).await;
    assert_eq!(replayed.status(), 200);
    assert_eq!(replayed.json::<Value>().await.unwrap(), created);
    assert_eq!(app.size().await, 3);
}
on_both_backends!(retried_append_with_same_key_writes_nothing, retried_append_with_same_key_writes_nothing);

async fn concurrent_retries_record_one_event(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let event = json!({"kind": "deployment.succeeded", "subject": "deployment:prod/m",
        "attributes": {"model": "model:m@1"}, "idempotency_key": "deploy-7"});
    let attempts = (0..20).map(|_| app.post_events(&event));
    let responses = futures_util::future::join_all(attempts).await;
    let mut seqs = Vec::new();
    for response in responses {
        assert!(response.status() == 200 || response.status() == 201);
        seqs.push(response.json::<Value>().await.unwrap()["seq"].as_u64().unwrap());
    }
    assert!(seqs.iter().all(|s| *s == 1), "{seqs:?}");
    assert_eq!(app.size().await, 1);
}
on_both_backends!(concurrent_retries_record_one_event, concurrent_retries_record_one_event);

/// Each bad request gets the expected 4xx JSON error and leaves the ledger as it was.
async fn bad_input_is_refused_and_writes_nothing(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| c.limits.max_batch_events = 5).await else {
        return;
    };
    app.append("dataset.registered", "dataset:a").await;
    let head_before = app.get_json("/api/v1/head").await;

    let valid = json!({"kind": "run.started", "subject": "run:r"});
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("wrong type", json!({"kind": 5, "subject": "run:r"}), 400, "malformed_request"),
        ("missing subject", json!({"kind": "run.started"}), 400, "malformed_request"),
        (
            "unknown field",
            json!({"kind": "run.started", "subject": "run:r", "colour": "red"}),
            400,
            "malformed_request",
        ),
        ("bad subject", json!({"kind": "run.started", "subject": "run r"}), 422, "invalid_event"),
        ("bad input ref", json!({"kind": "run.started", "subject": "run:r", "inputs": ["nope"]}), 422, "invalid_event"),
        ("bad kind", json!({"kind": "Started", "subject": "run:r"}), 422, "invalid_event"),
        (
            "array attributes",
            json!({"kind": "run.started", "subject": "run:r", "attributes": [1]}),
            422,
            "invalid_event",
        ),
        (
            "bad occurred_at",
            json!({"kind": "run.started", "subject": "run:r", "occurred_at": "now"}),
            422,
            "invalid_event",
        ),
        ("client seq", json!({"kind": "run.started", "subject": "run:r", "seq": 1}), 422, "server_assigned_field"),
        ("client hash", json!({"kind": "run.started", "subject": "run:r", "hash": "00"}), 422, "server_assigned_field"),
        (
            "client actor",
            json!({"kind": "run.started", "subject": "run:r", "actor": "root"}),
            422,
            "server_assigned_field",
        ),
        ("not an object", json!([valid.clone()]), 400, "malformed_request"),
        ("empty batch", json!({"events": []}), 422, "empty_batch"),
        ("batch with extra key", json!({"events": [valid.clone()], "x": 1}), 400, "malformed_request"),
        (
            "one bad event in a batch",
            json!({"events": [valid.clone(), {"kind": "run.started", "subject": "bad"}]}),
            422,
            "invalid_event",
        ),
        ("batch too large", json!({"events": vec![valid.clone(); 6]}), 422, "batch_too_large"),
        (
            "duplicate key in a batch",
            json!({"events": [
                {"kind": "run.started", "subject": "run:r", "idempotency_key": "k"},
                {"kind": "run.started", "subject": "run:s", "idempotency_key": "k"}]}),
            422,
            "invalid_event",
        ),
    ];
    for (name, body, status, code) in cases {
        let response = app.post_events(&body).await;
        assert_eq!(response.status().as_u16(), status, "{name}");
        let error: Value = response.json().await.unwrap_or_else(|e| panic!("{name}: body is not JSON: {e}"));
        assert_eq!(error["error"], code, "{name}: {error}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}");
    }

    let raw_cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        ("malformed json", "application/json", b"{\"kind\": ".to_vec(), 400, "malformed_json"),
        ("wrong content type", "text/plain", serde_json::to_vec(&valid).unwrap(), 415, "unsupported_media_type"),
        ("oversize body", "application/json", vec![b' '; 2 * 1024 * 1024], 413, "payload_too_large"),
    ];
    for (name, content_type, body, status, code) in raw_cases {
        let response = app
            .client
            .post(app.url("/api/v1/events"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{name}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], code, "{name}");
    }

    assert_eq!(app.get_json("/api/v1/head").await, head_before, "a refused request changed the ledger");
}
on_both_backends!(bad_input_is_refused_and_writes_nothing, bad_input_is_refused_and_writes_nothing);

async fn reads_of_missing_or_malformed_things_are_json_errors(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for (path, status, code) in [
        ("/api/v1/events/1", 404, "not_found"),
        ("/api/v1/events/abc", 400, "malformed_path"),
        ("/api/v1/events?limit=0", 422, "invalid_limit"),
        ("/api/v1/events?limit=100000", 422, "invalid_limit"),
        ("/api/v1/events?subjet=model:m", 400, "malformed_query"),
        ("/api/v1/events?subject=bad", 422, "invalid_query"),
        ("/api/v1/events?after_seq=-1", 400, "malformed_query"),
        ("/api/v1/nothing-here", 404, "not_found"),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status().as_u16(), status, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], code, "{path}");
    }
    let health = app.get_json("/healthz").await;
    assert_eq!(health["status"], "ok");
}
on_both_backends!(
    reads_of_missing_or_malformed_things_are_json_errors,
    reads_of_missing_or_malformed_things_are_json_errors
);

/// Readiness follows the database: ready while it answers, 503 with a JSON
/// error once it is gone, while liveness stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = TestApp::spawn(backend).await else { continue };
        app.append("dataset.registered", "dataset:ready").await;
        let ready = reqwest::get(app.url("/readyz")).await.unwrap();
        assert_eq!(ready.status(), 200);
        assert_eq!(ready.json::<Value>().await.unwrap()["size"], 1);
        if backend == Backend::Postgres {
            // The database disappears under the running server.
            let (base, name) = app.db().pg_admin().unwrap();
            let mut admin = <diesel::pg::PgConnection as diesel::Connection>::establish(&base).unwrap();
            diesel::RunQueryDsl::execute(diesel::sql_query(format!("DROP DATABASE {name} WITH (FORCE)")), &mut admin)
                .unwrap();
            let started = std::time::Instant::now();
            let gone = reqwest::get(app.url("/readyz")).await.unwrap();
            assert_eq!(gone.status(), 503);
            assert!(started.elapsed() < std::time::Duration::from_secs(8), "the probe answers promptly");
            assert_eq!(gone.json::<Value>().await.unwrap()["error"], "not_ready");
            assert_eq!(reqwest::get(app.url("/healthz")).await.unwrap().status(), 200);
        }
    }
}
