//! The PostgreSQL lineage readers stay on their indexes on a deployment
//! whose tables autovacuum has not analyzed yet (issue 29, part 5): a
//! lineage walk on a fresh ledger must not read its edge table in full.

use diesel::{Connection, QueryableByName, RunQueryDsl};
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp};

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// How long PostgreSQL 15 may keep an idle backend's table statistics
/// before publishing them (PGSTAT_IDLE_INTERVAL is 10 s), with a margin.
const STATS_DELAY: std::time::Duration = std::time::Duration::from_secs(11);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_readers_use_their_indexes_before_the_first_analyze() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else { return };
    let (base, name) = app.db().pg_admin().unwrap();
    let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
    let mut pg = diesel::pg::PgConnection::establish(&url).unwrap();
    // As on a new deployment: autovacuum has not got to the tables yet.
    for table in ["entities", "lineage_edges"] {
        diesel::sql_query(format!("ALTER TABLE {table} SET (autovacuum_enabled = false)")).execute(&mut pg).unwrap();
    }
    // 2,000 dataset versions read by 200 training runs, ten each, each run
    // making a model: a few thousand edges over a few hundred pages.
    for batch in 0..4 {
        let mut events: Vec<Value> = Vec::new();
        for run in batch * 50..(batch + 1) * 50 {
            let inputs: Vec<String> = (0..10).map(|i| format!("dataset:d{run}-{i}@1")).collect();
            for input in &inputs {
                events.push(json!({"kind": "dataset.version_created", "subject": input, "project": "credit"}));
            }
            events.push(json!({"kind": "run.completed", "subject": format!("run:r{run}"), "project": "credit",
                               "inputs": inputs, "outputs": [format!("model:m{run}@1")]}));
            events.push(json!({"kind": "model.registered", "subject": format!("model:m{run}@1"),
                               "project": "credit", "inputs": [format!("run:r{run}")]}));
        }
        let response = app.post_events(&json!({"events": events})).await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    }
    // The planner knows nothing of the rows: never analyzed (-1), or analyzed empty (0).
    let estimate: Vec<Count> =
        diesel::sql_query("SELECT reltuples::bigint AS n FROM pg_class WHERE relname = 'lineage_edges'")
            .load(&mut pg)
            .unwrap();
    assert!(estimate[0].n <= 0, "the edges were analyzed with rows in them ({})", estimate[0].n);
    // Counters start from zero once the appends' statistics are in.
    tokio::time::sleep(STATS_DELAY).await;
    diesel::sql_query("SELECT pg_stat_reset()").execute(&mut pg).unwrap();
    for run in [0, 77, 199] {
        let graph = app.get_json(&format!("/api/v1/lineage?node=model:m{run}@1&direction=upstream&depth=10")).await;
        assert_eq!(graph["nodes"].as_array().map(Vec::len), Some(12), "{graph}");
        let impact = app.get_json(&format!("/api/v1/impact?node=dataset:d{run}-3@1")).await;
        assert!(impact.to_string().contains(&format!("model:m{run}@1")), "{impact}");
    }
    tokio::time::sleep(STATS_DELAY).await;
    let scans: Vec<Count> = diesel::sql_query(
        "SELECT COALESCE(SUM(seq_scan), 0)::bigint AS n FROM pg_stat_user_tables WHERE relname = 'lineage_edges'",
    )
    .load(&mut pg)
    .unwrap();
    let indexed: Vec<Count> = diesel::sql_query(
        "SELECT COALESCE(SUM(idx_scan), 0)::bigint AS n FROM pg_stat_user_tables WHERE relname = 'lineage_edges'",
    )
    .load(&mut pg)
    .unwrap();
    assert!(indexed[0].n > 0, "the walks' statistics were published ({} index scans)", indexed[0].n);
    assert_eq!(scans[0].n, 0, "lineage and impact scanned the edge table in full ({} times)", scans[0].n);
}
