//! Personal data and erasure by crypto-shredding (issue 8), against a real
//! server on SQLite and PostgreSQL.

use std::path::Path;

use base64::Engine as _;
use govledger::ledger::personal::MasterKey;
use govledger::store::{subjects, DbConn};
use serde_json::{json, Value};

use crate::helpers::{client_with, Backend, TestApp};

const MASTER: [u8; 32] = [3u8; 32];

async fn spawn(backend: Backend) -> Option<TestApp> {
    spawn_folding_after(backend, govledger::store::WriterConfig::default().fold_keys_after).await
}

/// A server whose writer folds the key log after `keys` new keys.
async fn spawn_folding_after(backend: Backend, keys: usize) -> Option<TestApp> {
    TestApp::spawn_with(backend, |config| {
        config.writer.master_key = Some(std::sync::Arc::new(MasterKey::new(&MASTER)));
        config.writer.fold_keys_after = keys;
    })
    .await
}

/// Keys in the key log and in the folded key store.
fn key_tables(conn: &mut DbConn) -> (i64, i64) {
    #[derive(diesel::QueryableByName)]
    struct Counts {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        logged: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        folded: i64,
    }
    let counts: Counts = govledger::with_conn!(conn, |c| {
        diesel::RunQueryDsl::get_result(
        diesel::sql_query(
            "SELECT (SELECT COUNT(*) FROM subject_key_log) AS logged, (SELECT COUNT(*) FROM subject_keys) AS folded"
        ),
        c
    )
    })
    .unwrap();
    (counts.logged, counts.folded)
}

fn personal_event(kind: &str, subject: &str, ids: &[&str], fields: Option<Value>) -> Value {
    let mut personal = json!({"subject_ids": ids});
    if let Some(f) = fields {
        personal["fields"] = f;
    }
    json!({"kind": kind, "subject": subject, "project": "crm", "personal": personal})
}

/// A store on `db` with the test master key, as a server opens it.
fn open_store(db: &crate::helpers::TestDatabase) -> govledger::store::Store {
    let master = std::sync::Arc::new(MasterKey::new(&MASTER));
    let config = govledger::store::WriterConfig { master_key: Some(master), ..Default::default() };
    govledger::store::Store::open(db.target.clone(), 2, config).unwrap()
}

/// A `customer.contacted` draft about `who`, its note naming `n`.
fn contact(who: &[&str], n: usize) -> govledger::ledger::EventDraft {
    let event =
        personal_event("customer.contacted", "model:churn@1", who, Some(json!({"note": format!("contact {n}")})));
    let request: govledger::ledger::EventRequest = serde_json::from_value(event).unwrap();
    govledger::ledger::EventDraft::from_request_with(request, Some(&MasterKey::new(&MASTER))).unwrap()
}

/// Every file under `dir`, read whole.
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path.display().to_string(), bytes));
        }
    }
    out
}

fn found_in(files: &[(String, Vec<u8>)], needle: &[u8]) -> Vec<String> {
    files.iter().filter(|(_, b)| b.windows(needle.len()).any(|w| w == needle)).map(|(p, _)| p.clone()).collect()
}

async fn get_event(client: &reqwest::Client, app: &TestApp, seq: u64) -> Value {
    let response = client.get(app.url(&format!("/api/v1/events/{seq}"))).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// With `fold_keys_after` 1 every key is folded into the key store before
/// the erasure; with the default they are all still in the key log.
async fn erasure_shreds_one_subject(backend: Backend, fold_keys_after: usize) {
    let Some(app) = spawn_folding_after(backend, fold_keys_after).await else { return };
    let alice = ["alice-4711"];
    let e1 = app
        .append_json(&personal_event(
            "customer.complaint_logged",
            "model:churn@1",
            &alice,
            Some(json!({"email": "alice@example.org", "note": "Alice Unique Note"})),
        ))
        .await;
    let e2 = app
        .append_json(&personal_event(
            "customer.complaint_logged",
            "model:churn@1",
            &["bob-0815"],
            Some(json!({"email": "bob@example.org"})),
        ))
        .await;
    // A training set's list of subjects: pseudonyms only, no fields.
    let e3 = app
        .append_json(&personal_event("dataset.version_created", "dataset:crm@1", &["alice-4711", "bob-0815"], None))
        .await;
    // One note about both: unreadable once either is erased.
    let e4 = app
        .append_json(&personal_event(
            "customer.complaint_logged",
            "model:churn@1",
            &["alice-4711", "bob-0815"],
            Some(json!({"note": "joint note XYZ"})),
        ))
        .await;
    let seq = |e: &Value| e["seq"].as_u64().unwrap();

    // The stored event holds ciphertext and pseudonyms only.
    let stored = e1["attributes"]["personal"].to_string();
    for clear in ["alice@example.org", "Alice Unique Note", "alice-4711"] {
        assert!(!stored.contains(clear), "{clear} in {stored}");
    }
    let master = MasterKey::new(&MASTER);
    let pseudonym = master.pseudonym("alice-4711");
    assert_eq!(e1["attributes"]["personal"]["subjects"], json!([pseudonym]));

    // Who sees what.
    let dpo = client_with(&app.token("dora", &["dpo"], &["*"]));
    let viewer = client_with(&app.token("vic", &["viewer"], &["*"]));
    assert_eq!(get_event(&dpo, &app, seq(&e1)).await["personal"]["fields"]["email"], "alice@example.org");
    assert_eq!(get_event(&app.client, &app, seq(&e4)).await["personal"]["fields"]["note"], "joint note XYZ");
    assert_eq!(get_event(&viewer, &app, seq(&e1)).await["personal"]["fields"], "[redacted]");
    let listed: Value = viewer.get(app.url("/api/v1/events?limit=10")).send().await.unwrap().json().await.unwrap();
    assert!(!listed.to_string().contains("alice@example.org"));

    // Art. 15 access answer.
    let access: Value = dpo.get(app.url("/api/v1/subjects/alice-4711")).send().await.unwrap().json().await.unwrap();
    let seqs: Vec<u64> = access["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [seq(&e1), seq(&e3), seq(&e4)]);
    assert_eq!(access["datasets"], json!(["dataset:crm@1"]));
    assert_eq!(access["models"], json!(["model:churn@1"]));
    assert_eq!(access["events"][0]["fields"]["note"], "Alice Unique Note");
    assert_eq!(viewer.get(app.url("/api/v1/subjects/alice-4711")).send().await.unwrap().status(), 403);

    // Alice's key as stored, and in clear, to look for after the erasure.
    let mut conn = DbConn::establish(&app.db().target).unwrap();
    let expected_tables = if fold_keys_after == 1 { (0, 2) } else { (2, 0) };
    assert_eq!(key_tables(&mut conn), expected_tables, "(logged, folded) keys of Alice and Bob");
    let alice_key = subjects::keys_of(&mut conn, std::slice::from_ref(&pseudonym)).unwrap().remove(&pseudonym).unwrap();
    let bob_key = subjects::keys_of(&mut conn, &[master.pseudonym("bob-0815")]).unwrap();
    let bob_wrapped = bob_key.values().next().unwrap().wrapped.clone();
    let alice_secret = master.unwrap(&alice_key.key_id, &alice_key.wrapped).unwrap().secret;
    drop(conn);

    // Erasure: refused to a viewer, done for the DPO.
    let refused = viewer.post(app.url("/api/v1/subjects/alice-4711/erase")).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let response = dpo
        .post(app.url("/api/v1/subjects/alice-4711/erase"))
        .json(&json!({"reason": "DSR-2026-118"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let certificate: Value = response.json().await.unwrap();
    assert_eq!(certificate["pseudonym"], pseudonym);
    assert_eq!(certificate["events_affected"], 3);
    assert_eq!(certificate["event_seqs"], json!([seq(&e1), seq(&e3), seq(&e4)]));
    assert_eq!(certificate["key_ids_destroyed"], json!([alice_key.key_id]));
    assert_eq!(certificate["requested_by"], "dora");
    let erasure = get_event(&app.client, &app, certificate["seq"].as_u64().unwrap()).await;
    assert_eq!(erasure["kind"], "subject.erased");
    assert_eq!(erasure["attributes"]["reason"], "DSR-2026-118");

    // Nobody, admin included, reads Alice's fields; Bob's are intact.
    assert_eq!(get_event(&app.client, &app, seq(&e1)).await["personal"]["fields"], "[erased]");
    assert_eq!(get_event(&dpo, &app, seq(&e4)).await["personal"]["fields"], "[erased]");
    assert_eq!(get_event(&app.client, &app, seq(&e2)).await["personal"]["fields"]["email"], "bob@example.org");
    let access: Value = dpo.get(app.url("/api/v1/subjects/alice-4711")).send().await.unwrap().json().await.unwrap();
    assert_eq!(access["erased"], true);
    assert_eq!(access["events"][0]["fields"], "[erased]");
    // The events are unchanged: the chain, proofs and checkpoints verify.
    assert_eq!(get_event(&app.client, &app, seq(&e1)).await["hash"], e1["hash"]);
    let verify = app.get_json("/api/v1/verify").await;
    assert_eq!(verify["failure"], Value::Null, "{verify}");
    let proof = app.get_json(&format!("/api/v1/proofs/inclusion?seq={}", seq(&e1))).await;
    assert!(proof["proof"].is_array() || proof["hashes"].is_array() || proof.is_object(), "{proof}");
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_govledger"))
        .arg("verify")
        .args(app.db().cli_args())
        .output()
        .unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stdout));
    // A new event about Alice gets a new key and is readable again.
    let again = app
        .append_json(&personal_event(
            "customer.complaint_logged",
            "model:churn@1",
            &alice,
            Some(json!({"note": "came back"})),
        ))
        .await;
    assert_eq!(get_event(&dpo, &app, seq(&again)).await["personal"]["fields"]["note"], "came back");
    assert_eq!(get_event(&dpo, &app, seq(&e1)).await["personal"]["fields"], "[erased]");

    // The search index caught up with every event, including the erasure.
    let search: Value = app.get_json("/api/v1/search?q=churn&consistent=true").await;
    assert!(search.is_object());

    if backend == Backend::Sqlite {
        // Nothing of Alice in any file of the data directory: database, WAL,
        // search index, keys.
        let files = files_under(app.db().dir.path());
        let b64 = base64::engine::general_purpose::STANDARD;
        assert!(!found_in(&files, bob_wrapped.as_bytes()).is_empty(), "the scan must see Bob's stored key");
        for (what, needle) in [
            ("email", b"alice@example.org".to_vec()),
            ("note", b"Alice Unique Note".to_vec()),
            ("joint note", b"joint note XYZ".to_vec()),
            ("raw id", b"alice-4711".to_vec()),
            ("wrapped key", alice_key.wrapped.as_bytes().to_vec()),
            ("key", alice_secret.to_vec()),
            ("key, base64", b64.encode(alice_secret).into_bytes()),
            ("key, hex", hex::encode(alice_secret).into_bytes()),
        ] {
            let hits = found_in(&files, &needle);
            assert!(hits.is_empty(), "Alice's {what} found in {hits:?}");
        }
    }

    // The pseudonym index is a projection: rebuilt from the events, equal.
    let target = app.db().target.clone();
    let (before, after) = tokio::task::spawn_blocking(move || {
        let mut conn = DbConn::establish(&target).unwrap();
        let before = govledger::store::projections::fingerprint(&mut conn).unwrap();
        govledger::store::rebuild_projections(&mut conn).unwrap();
        (before, govledger::store::projections::fingerprint(&mut conn).unwrap())
    })
    .await
    .unwrap();
    assert!(before["subject_events"].starts_with("7 rows"), "{before:?}");
    assert_eq!(before, after);

    // The gdpr-erasure report cites the erasure and every affected event.
    let report = app.get_json(&format!("/api/v1/reports/gdpr-erasure?subject=subject%3A{pseudonym}&format=json")).await;
    let cited: Vec<u64> = report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["statements"].as_array().cloned().unwrap_or_default())
        .map(|s| s["seq"].as_u64().unwrap())
        .collect();
    for s in [seq(&e1), seq(&e3), seq(&e4), certificate["seq"].as_u64().unwrap()] {
        assert!(cited.contains(&s), "{s} not cited in {report}");
    }
    assert!(!report.to_string().contains("alice-4711"));

    // The command line erases too, with the master key from the environment.
    let erase = std::process::Command::new(env!("CARGO_BIN_EXE_govledger"))
        .args(["erase", "--subject", "bob-0815", "--reason", "DSR-2026-119"])
        .args(app.db().cli_args())
        .env("GOVLEDGER_MASTER_KEY", hex::encode(MASTER))
        .output()
        .unwrap();
    assert!(erase.status.success(), "{}", String::from_utf8_lossy(&erase.stderr));
    let printed: Value = serde_json::from_slice(&erase.stdout).unwrap();
    assert_eq!(printed["pseudonym"], master.pseudonym("bob-0815"));
    assert_eq!(printed["events_affected"], 3);
    assert_eq!(get_event(&app.client, &app, seq(&e2)).await["personal"]["fields"], "[erased]");
    let no_key = std::process::Command::new(env!("CARGO_BIN_EXE_govledger"))
        .args(["erase", "--subject", "bob-0815"])
        .args(app.db().cli_args())
        .env_remove("GOVLEDGER_MASTER_KEY")
        .output()
        .unwrap();
    assert!(!no_key.status.success());
    assert!(String::from_utf8_lossy(&no_key.stderr).contains("master key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_shreds_one_subject_on_sqlite() {
    erasure_shreds_one_subject(Backend::Sqlite, 2000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_shreds_one_subject_on_postgres() {
    erasure_shreds_one_subject(Backend::Postgres, 2000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_shreds_one_subject_whose_key_was_folded_on_sqlite() {
    erasure_shreds_one_subject(Backend::Sqlite, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_shreds_one_subject_whose_key_was_folded_on_postgres() {
    erasure_shreds_one_subject(Backend::Postgres, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_during_concurrent_appends_loses_nothing() {
    let Some(app) = spawn(Backend::Sqlite).await else { return };
    let before = app.size().await;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let client = app.client.clone();
            let url = app.url("/api/v1/events");
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for i in 0..60 {
                    let subject = format!("customer-{}", (w + i) % 3);
                    let body = personal_event(
                        "customer.contacted",
                        "model:churn@1",
                        &[&subject],
                        Some(json!({"note": format!("writer {w} event {i}")})),
                    );
                    let response = client.post(&url).json(&body).send().await.unwrap();
                    assert_eq!(response.status(), 201);
                    acknowledged.push(response.json::<Value>().await.unwrap()["seq"].as_u64().unwrap());
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let dpo = client_with(&app.token("dora", &["dpo"], &["*"]));
    let response = dpo.post(app.url("/api/v1/subjects/customer-0/erase")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let certificate: Value = response.json().await.unwrap();
    let mut acknowledged = Vec::new();
    for w in writers {
        acknowledged.extend(w.await.unwrap());
    }
    // Every acknowledged event is there, seq has no gap, the chain verifies.
    assert_eq!(app.size().await, before + 240 + 1);
    let events = crate::helpers::all_events(&app).await;
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=before + 241).collect::<Vec<_>>());
    for s in &acknowledged {
        assert!(seqs.contains(s));
    }
    assert_eq!(app.get_json("/api/v1/verify").await["failure"], Value::Null);
    // The certificate counts exactly customer-0's events before the erasure,
    // and exactly those read as erased.
    let erased_at = certificate["seq"].as_u64().unwrap();
    let pseudonym = MasterKey::new(&MASTER).pseudonym("customer-0");
    let names_customer_0 =
        |e: &Value| e["attributes"]["personal"]["subjects"].as_array().is_some_and(|s| s[0] == pseudonym);
    let before_erasure: Vec<u64> = events
        .iter()
        .filter(|e| names_customer_0(e) && e["seq"].as_u64().unwrap() < erased_at)
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(certificate["event_seqs"], json!(before_erasure));
    for e in events.iter().filter(|e| names_customer_0(e)) {
        let s = e["seq"].as_u64().unwrap();
        let fields = get_event(&dpo, &app, s).await["personal"]["fields"].clone();
        if s < erased_at {
            assert_eq!(fields, "[erased]", "seq {s}");
        } else {
            assert!(fields["note"].is_string(), "seq {s} after the erasure has a new key: {fields}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_is_refused_without_a_master_key_and_bad_input_writes_nothing() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    let body = personal_event("customer.contacted", "model:churn@1", &["c-1"], Some(json!({"note": "x"})));
    let response = app.post_events(&body).await;
    assert_eq!(response.status(), 422);
    let error: Value = response.json().await.unwrap();
    assert!(error["message"].as_str().unwrap().contains("master key"), "{error}");
    assert_eq!(app.client.post(app.url("/api/v1/subjects/c-1/erase")).send().await.unwrap().status(), 422);
    assert_eq!(app.size().await, 0);

    let Some(app) = spawn(Backend::Sqlite).await else { return };
    for (bad, why) in [
        (json!({"kind": "a.b", "subject": "model:m@1", "personal": {"subject_ids": []}}), "no subject"),
        (json!({"kind": "a.b", "subject": "model:m@1", "personal": {"subject_ids": ["x", "x"]}}), "twice"),
        (
            json!({"kind": "a.b", "subject": "model:m@1", "personal": {"subject_ids": ["x"], "fields": "text"}}),
            "fields",
        ),
        (json!({"kind": "a.b", "subject": "model:m@1", "personal": {"subject_ids": ["x"], "other": 1}}), "unknown"),
        (
            json!({"kind": "a.b", "subject": "model:m@1", "attributes": {"personal": {"subjects": ["forged"]}}}),
            "forged",
        ),
        (json!({"kind": "subject.erased", "subject": "subject:abc"}), "endpoint only"),
    ] {
        let response = app.post_events(&bad).await;
        assert!(response.status().is_client_error(), "{why}: {}", response.status());
        assert!(response.json::<Value>().await.unwrap()["error"].is_string(), "{why}");
    }
    assert_eq!(app.size().await, 0);
    // Erasing someone the ledger knows nothing about: 404, nothing recorded.
    assert_eq!(app.client.post(app.url("/api/v1/subjects/nobody/erase")).send().await.unwrap().status(), 404);
    assert_eq!(app.size().await, 0);
}

/// The pseudonym index is written after the appends, in large batches: a
/// subject's events must be complete whether they are indexed yet or not,
/// and the index filled in later must hold exactly what the envelopes say.
async fn index_follows_the_ledger(backend: Backend) {
    use govledger::ledger::EventDraft;
    let Some(db) = crate::helpers::TestDatabase::create(backend) else { return };
    let master = std::sync::Arc::new(MasterKey::new(&MASTER));
    let store = open_store(&db);
    let mut expected: std::collections::BTreeMap<&str, Vec<u64>> = Default::default();
    for chunk in 0..5 {
        let drafts: Vec<EventDraft> =
            (0..500).map(|i| contact(&[if i % 3 == 0 { "ada" } else { "bob" }], chunk * 500 + i)).collect();
        store.writer().append("crm".into(), drafts).await.unwrap();
        for i in 0..500 {
            expected.entry(if i % 3 == 0 { "ada" } else { "bob" }).or_default().push((chunk * 500 + i + 1) as u64);
        }
    }
    store.writer().append("crm".into(), vec![contact(&["cy"], 2500), contact(&["ada"], 2501)]).await.unwrap();
    expected.entry("cy").or_default().push(2501);
    expected.entry("ada").or_default().push(2502);
    let mut conn = DbConn::establish(&db.target).unwrap();
    let indexed_rows = |conn: &mut DbConn| subjects::all_named(conn).unwrap().len();
    for (who, seqs) in &expected {
        assert_eq!(&subjects::events_of(&mut conn, &master.pseudonym(who)).unwrap(), seqs, "{who} while indexing");
    }
    assert_eq!(indexed_rows(&mut conn), 2502);
    store.close();

    // Reopening indexes whatever the writer had not: the table alone is complete.
    let store = open_store(&db);
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let table: Count = govledger::with_conn!(&mut conn, |c| diesel::RunQueryDsl::get_result(
        diesel::sql_query("SELECT COUNT(*) AS n FROM subject_events"),
        c
    ))
    .unwrap();
    assert_eq!(table.n, 2502, "the index table itself holds every mention after a restart");
    for (who, seqs) in &expected {
        assert_eq!(&subjects::events_of(&mut conn, &master.pseudonym(who)).unwrap(), seqs, "{who} after indexing");
    }
    // Erasure counts from index and tail alike.
    let certificate = govledger::governance::subjects::erase(&store, Some(&master), "ada", "dpo", None).await.unwrap();
    assert_eq!(certificate.events_affected, expected["ada"].len() as u64);
    store.close();
}
crate::on_both_backends!(the_pseudonym_index_follows_the_ledger, index_follows_the_ledger);

/// Upgrading a ledger whose key store predates the table keyed by pseudonym
/// and the key log keeps every key, and so does going back: losing one
/// would erase a person nobody asked to erase.
async fn keys_survive_the_key_store_migration(backend: Backend) {
    use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
    const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
    const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");
    let Some(db) = crate::helpers::TestDatabase::create(backend) else { return };
    let master = std::sync::Arc::new(MasterKey::new(&MASTER));
    let store = open_store(&db);
    store.writer().append("crm".into(), vec![contact(&["ada"], 1), contact(&["bob", "cy"], 2)]).await.unwrap();
    store.close();
    let mut conn = DbConn::establish(&db.target).unwrap();
    assert_eq!(key_tables(&mut conn), (3, 0), "the keys are in the key log");

    // Back to the key store of 2026-11-24 (a rowid table keyed by key id,
    // no key log; Merkle tiles, monitoring series, webhook delivery state and
    // entity ownership reverted first),
    // with the keys in it; then
    // open as an upgraded server does.
    let schema_query = match &mut conn {
        DbConn::Sqlite(c) => {
            for _ in 0..6 {
                c.revert_last_migration(SQLITE).unwrap();
            }
            "SELECT sql FROM sqlite_master WHERE name = 'subject_keys'"
        }
        DbConn::Pg(c) => {
            for _ in 0..6 {
                c.revert_last_migration(POSTGRES).unwrap();
            }
            "SELECT pg_get_constraintdef(oid) AS sql FROM pg_constraint WHERE conname = 'subject_keys_pkey'"
        }
    };
    let old_schema = govledger::with_conn!(&mut conn, |c| diesel::RunQueryDsl::get_result::<Sql>(
        diesel::sql_query(schema_query),
        c
    ))
    .unwrap()
    .sql;
    assert!(old_schema.contains("key_id"), "reverted to the table keyed by key id: {old_schema}");
    // The key log's down migration put its keys in the old table.
    assert_eq!(subjects::folded_keys_of(&mut conn, &[master.pseudonym("ada")]).unwrap().len(), 1);

    let store = open_store(&db);
    let events: Vec<_> = (1..=2).map(|s| store.event(s).unwrap().unwrap()).collect();
    let shown = govledger::governance::subjects::reveal(&mut conn, Some(&master), &events, |_| true).unwrap();
    assert_eq!(shown[0].as_ref().unwrap()["fields"]["note"], "contact 1");
    assert_eq!(shown[1].as_ref().unwrap()["fields"]["note"], "contact 2");
    // And the upgraded store goes on using them: no new key for a known subject.
    store.writer().append("crm".into(), vec![contact(&["ada"], 3)]).await.unwrap();
    let keys = subjects::keys_of(&mut conn, &["ada", "bob", "cy"].map(|w| master.pseudonym(w))).unwrap();
    assert_eq!(keys.len(), 3);
    let events: Vec<_> = (1..=3).map(|s| store.event(s).unwrap().unwrap()).collect();
    let shown = govledger::governance::subjects::reveal(&mut conn, Some(&master), &events, |_| true).unwrap();
    assert_eq!(shown[2].as_ref().unwrap()["fields"]["note"], "contact 3");
    store.close();
}
crate::on_both_backends!(the_key_store_migration_keeps_every_key, keys_survive_the_key_store_migration);

#[derive(diesel::QueryableByName)]
struct Sql {
    #[diesel(sql_type = diesel::sql_types::Text)]
    sql: String,
}

/// Each writer keeps the subject keys it used between batches. Another
/// replica (or the `erase` command) may erase a subject meanwhile, or
/// erase and see them again: sealing a new event with the key it still
/// held would make that event unreadable for good, and keep alive a key
/// the certificate says was destroyed.
async fn writers_drop_keys_another_writer_changed(backend: Backend) {
    let Some(db) = crate::helpers::TestDatabase::create(backend) else { return };
    let master = std::sync::Arc::new(MasterKey::new(&MASTER));
    let a = open_store(&db);
    let b = open_store(&db);
    let key_of = |conn: &mut DbConn, who: &str| {
        subjects::keys_of(conn, &[master.pseudonym(who)]).unwrap().into_values().map(|k| k.key_id).collect::<Vec<_>>()
    };
    let sealed_with = |event: &govledger::ledger::Event| {
        let attributes: Value = serde_json::from_str(&event.attributes).unwrap();
        attributes["personal"]["sealed"]["key_ids"][0].as_str().unwrap().to_owned()
    };
    // Replica A uses ada's and bob's keys in two batches (the second from its cache).
    a.writer().append("crm".into(), vec![contact(&["ada"], 1), contact(&["bob"], 2)]).await.unwrap();
    a.writer().append("crm".into(), vec![contact(&["ada"], 3), contact(&["bob"], 4)]).await.unwrap();
    let mut conn = DbConn::establish(&db.target).unwrap();
    let (ada_before, bob_before) = (key_of(&mut conn, "ada"), key_of(&mut conn, "bob"));

    // Replica B erases ada, and erases bob who then contacts support again.
    govledger::governance::subjects::erase(&b, Some(&master), "ada", "dpo", None).await.unwrap();
    govledger::governance::subjects::erase(&b, Some(&master), "bob", "dpo", None).await.unwrap();
    b.writer().append("crm".into(), vec![contact(&["bob"], 7)]).await.unwrap();
    let bob_again = key_of(&mut conn, "bob");
    assert_ne!(bob_again, bob_before);

    // A seals both with the keys the store holds now, not the ones it kept.
    let appended = a.writer().append("crm".into(), vec![contact(&["ada"], 8), contact(&["bob"], 9)]).await.unwrap();
    let (ada_new, bob_new) = (&appended.events()[0], &appended.events()[1]);
    let ada_now = key_of(&mut conn, "ada");
    assert_eq!(ada_now.len(), 1, "ada seen again gets a key");
    assert_ne!(ada_now, ada_before, "not the destroyed one");
    assert_eq!(sealed_with(ada_new), ada_now[0]);
    assert_eq!(sealed_with(bob_new), bob_again[0], "bob's key as replica B created it");
    let events: Vec<_> = (1..=ada_new.seq + 1).filter_map(|s| a.event(s).unwrap()).collect();
    let shown = govledger::governance::subjects::reveal(&mut conn, Some(&master), &events, |_| true).unwrap();
    let note = |seq: u64| shown[seq as usize - 1].as_ref().unwrap()["fields"].clone();
    assert_eq!(note(ada_new.seq)["note"], "contact 8");
    assert_eq!(note(bob_new.seq)["note"], "contact 9");
    assert_eq!(note(7)["note"], "contact 7");
    for erased in [1, 2, 3, 4] {
        assert_eq!(note(erased), "[erased]", "event {erased}");
    }
    a.close();
    b.close();
}
crate::on_both_backends!(a_writer_drops_keys_another_writer_changed, writers_drop_keys_another_writer_changed);
