use serde_json::{json, Value};

use crate::helpers::{all_events, Backend, TestApp};
use crate::on_both_backends;

fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

async fn listing_filters_and_paginates(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // 1..=10 model.registered on model:fraud@1..10; 11..=20 alternate kinds on other subjects.
    let mut batch = Vec::new();
    for v in 1..=10 {
        batch.push(json!({"kind": "model.registered", "subject": format!("model:fraud@{v}"), "inputs": ["run:t"]}));
    }
    for i in 11..=20 {
        let (kind, subject) = if i % 2 == 0 {
            ("run.completed", format!("run:d_{i}@1"))
        } else {
            ("dataset.registered", format!("dataset:d_{i}"))
        };
        batch.push(json!({"kind": kind, "subject": subject}));
    }
    batch.push(json!({"kind": "model.registered", "subject": "model:fraudx@1", "inputs": ["run:t"]}));
    assert_eq!(app.post_events(&json!({ "events": batch })).await.status(), 201);

    let page = app.get_json("/api/v1/events?limit=4").await;
    assert_eq!(seqs(page["events"].as_array().unwrap()), [1, 2, 3, 4]);
    assert_eq!(page["next_after_seq"], 4);
    let page = app.get_json("/api/v1/events?limit=4&after_seq=4").await;
    assert_eq!(seqs(page["events"].as_array().unwrap()), [5, 6, 7, 8]);

    // Walking every page visits every event exactly once.
    let mut walked = Vec::new();
    let mut after = 0;
    loop {
        let page = app.get_json(&format!("/api/v1/events?limit=3&after_seq={after}")).await;
        walked.extend(seqs(page["events"].as_array().unwrap()));
        match page["next_after_seq"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(walked, (1..=21).collect::<Vec<_>>());

    let by_kind = app.get_json("/api/v1/events?kind=run.completed").await;
    assert_eq!(seqs(by_kind["events"].as_array().unwrap()), [12, 14, 16, 18, 20]);
    assert_eq!(by_kind["next_after_seq"], Value::Null);

    // A subject without a version matches all its versions, and only that entity.
    let all_versions = app.get_json("/api/v1/events?subject=model:fraud").await;
    assert_eq!(seqs(all_versions["events"].as_array().unwrap()), (1..=10).collect::<Vec<_>>());
    let one_version = app.get_json("/api/v1/events?subject=model:fraud@7").await;
    assert_eq!(seqs(one_version["events"].as_array().unwrap()), [7]);
    // `_` in a name is literal, not a wildcard.
    let underscore = app.get_json("/api/v1/events?subject=dataset:d_11").await;
    assert_eq!(seqs(underscore["events"].as_array().unwrap()), [11]);

    let combined = app.get_json("/api/v1/events?kind=model.registered&actor=test-admin&after_seq=8&limit=5").await;
    assert_eq!(seqs(combined["events"].as_array().unwrap()), [9, 10, 21]);
    let nobody = app.get_json("/api/v1/events?actor=mallory").await;
    assert!(nobody["events"].as_array().unwrap().is_empty());

    assert_eq!(all_events(&app).await.len(), 21);
}
on_both_backends!(listing_filters_and_paginates, listing_filters_and_paginates);
