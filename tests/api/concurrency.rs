use std::collections::HashMap;
use std::time::{Duration, Instant};

use govledger::store::{self, DbConn};
use serde_json::{json, Value};

use crate::helpers::{all_events, uuid_like, Backend, Server, TestApp, TestDatabase};
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

/// A replica: the data dir's keys are shared, the search index is its own.
fn replica(db: &TestDatabase) -> Server {
    let index = db.dir.path().join(format!("search-{}", uuid_like())).display().to_string();
    Server::start(db, &["--search-index-dir", &index])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_on_one_postgres_make_one_gapless_chain() {
    let Some(db) = TestDatabase::create(Backend::Postgres) else {
        return;
    };
    // Migrations race too when replicas start together.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| replica(&db));
        let b = s.spawn(|| replica(&db));
        (a.join().unwrap(), b.join().unwrap())
    });
    let token = crate::helpers::mint(db.dir.path(), "writer", &["admin"], &["*"]);
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let base = if w % 2 == 0 { a.1.clone() } else { b.1.clone() };
            tokio::spawn(write_events(base, token.clone(), w, EVENTS_PER_WRITER))
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer finished");
    }
    assert_one_complete_chain(&TestApp::attach(&b.1, &token), &db).await;

    // Behind a load balancer a client may reach either replica: each one's
    // own search index follows the whole ledger, both sign checkpoints with
    // the one shared key, and either one proves an event in the other's tree.
    let total = (WRITERS * EVENTS_PER_WRITER) as u64;
    let mut keys = Vec::new();
    for base in [&a.1, &b.1] {
        let replica = TestApp::attach(base, &token);
        let found = replica.get_json("/api/v1/search?kind=run.completed&consistent=true&limit=1").await;
        assert_eq!(found["total"], total, "{base}: {found}");
        keys.push(replica.get("/api/v1/checkpoint/key").await.text().await.unwrap());
    }
    assert_eq!(keys[0], keys[1], "replicas sign with one key");
    let verifier = govledger::ledger::checkpoint::NoteVerifier::parse(keys[0].trim()).unwrap();
    let note_a = TestApp::attach(&a.1, &token).get("/api/v1/checkpoint").await.text().await.unwrap();
    let checkpoint = verifier.verify(&note_a).expect("a's checkpoint verifies with the shared key");
    assert_eq!(checkpoint.size, total);
    let proof =
        TestApp::attach(&b.1, &token).get_json(&format!("/api/v1/proofs/inclusion?seq=1&tree_size={total}")).await;
    assert_eq!(proof["root_hash"], hex::encode(checkpoint.root), "b proves against a's checkpoint");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_keeps_every_acknowledged_event() {
    let db = TestDatabase::create(Backend::Sqlite).expect("sqlite");
    let server = replica(&db);
    let token = crate::helpers::mint(db.dir.path(), "writer", &["admin"], &["*"]);
    let deadline = Instant::now() + Duration::from_millis(1500);
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let base = server.1.clone();
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
    let status = server.0.wait().unwrap();
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

/// The writer looks up the entities and live lineage edges of every batch.
/// On PostgreSQL tables that autovacuum has not analyzed yet (every new
/// ledger's, for its first minutes) the planner once chose to read them in
/// full for each batch, so appends slowed down as the ledger grew. The
/// writer's lookups must stay on the indexes.
#[test]
fn postgres_writer_reads_projections_through_their_indexes() {
    use diesel::RunQueryDsl;
    let Some(db) = TestDatabase::create(Backend::Postgres) else { return };
    let store = store::Store::open(db.target.clone(), 1, store::WriterConfig::default()).unwrap();
    for batch in 0..40 {
        let drafts = (0..32)
            .map(|i| {
                let request: govledger::ledger::EventRequest = serde_json::from_value(json!({
                    "kind": "run.completed",
                    "subject": format!("run:train-{batch}@{i}"),
                    "inputs": [format!("dataset:features-{i}@1")],
                }))
                .unwrap();
                govledger::ledger::EventDraft::from_request(request).unwrap()
            })
            .collect();
        store.writer().append_blocking("ci".into(), drafts).unwrap();
    }
    // A backend reports its table statistics when it exits.
    store.close();
    #[derive(diesel::QueryableByName, Debug)]
    struct Scans {
        #[diesel(sql_type = diesel::sql_types::Text)]
        relname: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        seq_tup_read: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n_tup_ins: i64,
    }
    let DbConn::Pg(mut conn) = DbConn::establish(&db.target).unwrap() else { unreachable!() };
    let sql = "SELECT relname::text AS relname, COALESCE(seq_tup_read, 0) AS seq_tup_read, \
               n_tup_ins FROM pg_stat_user_tables \
               WHERE relname IN ('entities', 'lineage_edges') ORDER BY relname";
    let deadline = Instant::now() + Duration::from_secs(10);
    let scans = loop {
        diesel::sql_query("SELECT pg_stat_clear_snapshot()").execute(&mut conn).unwrap();
        let scans: Vec<Scans> = diesel::sql_query(sql).load(&mut conn).unwrap();
        // 1,280 runs and as many edges, plus 32 datasets.
        if scans.len() == 2 && scans.iter().all(|s| s.n_tup_ins >= 1280) || Instant::now() > deadline {
            break scans;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(scans.len() == 2 && scans.iter().all(|s| s.n_tup_ins >= 1280), "statistics never arrived: {scans:?}");
    for s in &scans {
        assert_eq!(s.seq_tup_read, 0, "the writer read {} in full: {scans:?}", s.relname);
    }
}
