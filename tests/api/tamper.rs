//! `govledger verify` against ledgers altered directly in the database, the
//! way someone with access to the files would do it.

use std::process::Command;

use diesel::RunQueryDsl;
use govledger::ledger::{EventDraft, EventRequest};
use govledger::store::{DbConn, Store, WriterConfig};
use serde_json::json;

use crate::helpers::{Backend, TestDatabase};

/// A database with `n` events appended through the real writer.
fn ledger_with_events(backend: Backend, n: usize) -> Option<TestDatabase> {
    ledger_with(
        backend,
        n,
        |i| json!({"kind": "pipeline.checked", "subject": format!("model:fraud@{i}"), "attributes": {"auc": 0.9, "rows": i}}),
    )
}

/// A database holding `make(1..=n)`, appended through the real writer.
fn ledger_with(backend: Backend, n: usize, make: impl Fn(usize) -> serde_json::Value) -> Option<TestDatabase> {
    let db = TestDatabase::create(backend)?;
    let store = Store::open(db.target.clone(), 2, WriterConfig::default()).unwrap();
    let drafts = (1..=n)
        .map(|i| {
            let request: EventRequest = serde_json::from_value(make(i)).unwrap();
            EventDraft::from_request(request).unwrap()
        })
        .collect();
    store.writer().append_blocking("tester".into(), drafts).unwrap();
    store.close();
    Some(db)
}

/// Runs SQL with the append-only triggers out of the way.
fn tamper(db: &TestDatabase, statements: &[&str]) {
    let mut conn = DbConn::establish(&db.target).unwrap();
    let disable: &[&str] = match conn {
        DbConn::Sqlite(_) => &["DROP TRIGGER events_no_update", "DROP TRIGGER events_no_delete"],
        DbConn::Pg(_) => &["ALTER TABLE events DISABLE TRIGGER USER"],
    };
    for sql in disable.iter().chain(statements) {
        govledger::with_conn!(&mut conn, |c| diesel::sql_query(*sql).execute(c)).unwrap();
    }
}

fn run_verify(db: &TestDatabase) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_govledger")).arg("verify").args(db.cli_args()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code().unwrap_or(-1), stdout)
}

fn assert_verify_catches(backend: Backend, statements: &[&str], expected: &str) {
    let Some(db) = ledger_with_events(backend, 12) else {
        return;
    };
    let (code, out) = run_verify(&db);
    assert_eq!(code, 0, "intact ledger must verify: {out}");
    assert!(out.starts_with("OK: 12 events verified"), "{out}");
    tamper(&db, statements);
    let (code, out) = run_verify(&db);
    assert_eq!(code, 1, "tampered ledger verified: {out}");
    assert!(out.starts_with(expected), "expected {expected:?}, got {out:?}");
}

const MODIFIED_ATTRIBUTE: &[&str] = &[r#"UPDATE events SET attributes = '{"auc":0.99,"rows":5}' WHERE seq = 5"#];
const MODIFIED_HASH_SQLITE: &[&str] = &["UPDATE events SET hash = randomblob(32) WHERE seq = 7"];
const MODIFIED_HASH_PG: &[&str] = &["UPDATE events SET hash = sha256('forged') WHERE seq = 7"];
const DELETED_ROW: &[&str] = &["DELETE FROM events WHERE seq = 9"];
const SWAPPED_ROWS: &[&str] = &[
    "UPDATE events SET seq = 1000 WHERE seq = 3",
    "UPDATE events SET seq = 3 WHERE seq = 4",
    "UPDATE events SET seq = 4 WHERE seq = 1000",
];

#[test]
fn verify_catches_a_modified_attribute() {
    assert_verify_catches(Backend::Sqlite, MODIFIED_ATTRIBUTE, "BROKEN at seq 5: hash_mismatch");
    assert_verify_catches(Backend::Postgres, MODIFIED_ATTRIBUTE, "BROKEN at seq 5: hash_mismatch");
}

#[test]
fn verify_catches_a_modified_hash() {
    assert_verify_catches(Backend::Sqlite, MODIFIED_HASH_SQLITE, "BROKEN at seq 7: hash_mismatch");
    assert_verify_catches(Backend::Postgres, MODIFIED_HASH_PG, "BROKEN at seq 7: hash_mismatch");
}

#[test]
fn verify_catches_a_deleted_row() {
    assert_verify_catches(Backend::Sqlite, DELETED_ROW, "BROKEN at seq 9: gap");
    assert_verify_catches(Backend::Postgres, DELETED_ROW, "BROKEN at seq 9: gap");
}

#[test]
fn verify_catches_a_swapped_pair_of_rows() {
    assert_verify_catches(Backend::Sqlite, SWAPPED_ROWS, "BROKEN at seq 3: broken_link");
    assert_verify_catches(Backend::Postgres, SWAPPED_ROWS, "BROKEN at seq 3: broken_link");
}

#[test]
fn the_database_itself_refuses_updates_and_deletes() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(db) = ledger_with_events(backend, 3) else {
            continue;
        };
        let mut conn = DbConn::establish(&db.target).unwrap();
        for sql in ["UPDATE events SET actor = 'mallory' WHERE seq = 2", "DELETE FROM events WHERE seq = 3"] {
            let result = govledger::with_conn!(&mut conn, |c| diesel::sql_query(sql).execute(c));
            let error = result.expect_err("append-only trigger must refuse");
            assert!(error.to_string().contains("append-only"), "{error}");
        }
        let (code, _) = run_verify(&db);
        assert_eq!(code, 0);
    }
}

#[test]
fn verify_reports_json_and_a_missing_ledger_is_an_error() {
    let Some(db) = ledger_with_events(Backend::Sqlite, 2) else {
        return;
    };
    let output =
        Command::new(env!("CARGO_BIN_EXE_govledger")).args(["verify", "--json"]).args(db.cli_args()).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["verified"], 2);

    let empty = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_govledger"))
        .args(["verify", "--data-dir"])
        .arg(empty.path().join("nothing"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no ledger at"));
}

/// The parallel verifier splits 12 events into ranges 1-4, 5-8, 9-12 and must
/// report exactly what a sequential scan reports, including at range edges.
#[test]
fn parallel_verification_reports_what_a_sequential_scan_reports() {
    let cases: &[&[&str]] = &[
        &[],
        &[r#"UPDATE events SET attributes = '{}' WHERE seq = 4"#],
        &[r#"UPDATE events SET attributes = '{}' WHERE seq = 5"#],
        &[r#"UPDATE events SET attributes = '{}' WHERE seq = 9"#],
        &["UPDATE events SET hash = randomblob(32) WHERE seq = 8"],
        &["UPDATE events SET hash = randomblob(32) WHERE seq = 4"],
        &["DELETE FROM events WHERE seq = 5"],
        &["DELETE FROM events WHERE seq = 8"],
        &["DELETE FROM events WHERE seq = 1"],
        &["DELETE FROM events WHERE seq = 12"],
        &["UPDATE events SET inputs = 'not json' WHERE seq = 9"],
        &[
            "UPDATE events SET seq = 1000 WHERE seq = 4",
            "UPDATE events SET seq = 4 WHERE seq = 5",
            "UPDATE events SET seq = 5 WHERE seq = 1000",
        ],
        &[r#"UPDATE events SET attributes = '{}' WHERE seq = 10"#, "DELETE FROM events WHERE seq = 6"],
    ];
    for statements in cases {
        let db = ledger_with_events(Backend::Sqlite, 12).unwrap();
        tamper(&db, statements);
        let connect = || DbConn::establish(&db.target).map(Box::new);
        let sequential = govledger::store::verify_chain_in_ranges(connect, 1, 0).unwrap();
        let parallel = govledger::store::verify_chain_in_ranges(connect, 3, 0).unwrap();
        assert_eq!(parallel, sequential, "{statements:?}");
        assert_eq!(
            sequential.ok,
            statements.is_empty() || statements[0].contains("seq = 12"),
            "{statements:?}: {sequential:?}"
        );
    }
}

/// A ledger whose events use every field, so that every column can be altered.
fn ledger_with_full_events(n: usize) -> TestDatabase {
    ledger_with(Backend::Sqlite, n, |i| {
        json!({
            "kind": "pipeline.checked",
            "subject": format!("model:fraud@{i}"),
            "project": "fraud",
            "inputs": [format!("dataset:d@{i}")],
            "outputs": [format!("artifact:a@{i}")],
            "attributes": {"rows": i},
            "occurred_at": "2026-03-03T09:00:00Z",
            "idempotency_key": format!("key-{i}"),
        })
    })
    .unwrap()
}

#[test]
fn verify_catches_a_change_to_any_stored_field() {
    let changes = [
        ("id", "UPDATE events SET id = 'forged-id' WHERE seq = 6"),
        ("recorded_at", "UPDATE events SET recorded_at = '2020-01-01T00:00:00.000000Z' WHERE seq = 6"),
        ("actor", "UPDATE events SET actor = 'mallory' WHERE seq = 6"),
        ("kind", "UPDATE events SET kind = 'model.retired' WHERE seq = 6"),
        ("subject", "UPDATE events SET subject = 'model:fraud@99' WHERE seq = 6"),
        ("project", "UPDATE events SET project = 'other' WHERE seq = 6"),
        ("project removed", "UPDATE events SET project = NULL WHERE seq = 6"),
        ("inputs", r#"UPDATE events SET inputs = '["dataset:d@7"]' WHERE seq = 6"#),
        ("inputs reordered", r#"UPDATE events SET inputs = '[]' WHERE seq = 6"#),
        ("outputs", r#"UPDATE events SET outputs = '["artifact:a@7"]' WHERE seq = 6"#),
        ("attributes", r#"UPDATE events SET attributes = '{"rows":7}' WHERE seq = 6"#),
        ("occurred_at", "UPDATE events SET occurred_at = NULL WHERE seq = 6"),
        ("idempotency_key", "UPDATE events SET idempotency_key = 'key-x' WHERE seq = 6"),
        ("prev_hash", "UPDATE events SET prev_hash = randomblob(32) WHERE seq = 6"),
        ("hash", "UPDATE events SET hash = randomblob(32) WHERE seq = 6"),
    ];
    for (field, statement) in changes {
        let db = ledger_with_full_events(10);
        tamper(&db, &[statement]);
        let (code, out) = run_verify(&db);
        assert_eq!(code, 1, "a changed {field} verified: {out}");
        assert!(out.starts_with("BROKEN at seq 6:"), "{field}: {out}");
    }
}

#[test]
fn verify_catches_an_inserted_event() {
    let db = ledger_with_full_events(10);
    // Make room at seq 6 and insert a forged event that chains correctly to seq 5.
    tamper(
        &db,
        &[
            "UPDATE events SET seq = seq + 1000 WHERE seq >= 6",
            "UPDATE events SET seq = seq - 999 WHERE seq >= 1006",
            "INSERT INTO events (seq, id, recorded_at, actor, kind, subject, project, inputs, outputs, attributes, \
             occurred_at, idempotency_key, prev_hash, hash) SELECT 6, 'forged', recorded_at, actor, kind, subject, \
             project, inputs, outputs, attributes, occurred_at, 'forged-key', hash, randomblob(32) FROM events WHERE seq = 5",
        ],
    );
    let (code, out) = run_verify(&db);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("BROKEN at seq 6:"), "{out}");
}

#[test]
fn an_unreadable_event_row_is_corrupt_row_at_its_seq() {
    let Some(db) = ledger_with_events(Backend::Sqlite, 6) else { return };
    // Bytes that are not UTF-8 in a text column: the row cannot be decoded.
    tamper(&db, &["UPDATE events SET actor = CAST(X'FF00FEC3' AS BLOB) WHERE seq = 4"]);
    let (code, out) = run_verify(&db);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("BROKEN at seq 4: corrupt_row"), "{out}");
}

#[test]
fn a_changed_projection_row_is_a_projection_mismatch() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(db) = ledger_with(
            backend,
            3,
            |i| json!({"kind": "dataset.version_created", "subject": format!("dataset:d@{i}"), "project": "p"}),
        ) else {
            continue;
        };
        assert_eq!(run_verify(&db).0, 0);
        tamper(&db, &["UPDATE entities SET project = 'mallory' WHERE ref = 'dataset:d@2'"]);
        let (code, out) = run_verify(&db);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("projection_mismatch") && out.contains("entities row dataset:d@2"), "{out}");
    }
}

#[test]
fn damaged_sqlite_pages_are_storage_corrupt() {
    // Fewer events than a Merkle tile: the damage must land on a B-tree page.
    let Some(db) = ledger_with_events(Backend::Sqlite, 250) else { return };
    let govledger::store::StorageTarget::Sqlite { path } = &db.target else { unreachable!() };
    // Overwrite a page in the middle of the file (an index page, not the
    // events: the chain itself still verifies).
    let mut bytes = std::fs::read(path).unwrap();
    let page = 4096;
    let pages = bytes.len() / page;
    assert!(pages > 8, "{pages} pages");
    let target = (pages - 2) * page;
    for b in &mut bytes[target + 100..target + 400] {
        *b = 0xA5;
    }
    std::fs::write(path, bytes).unwrap();
    let (code, out) = run_verify(&db);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("storage_corrupt") && out.contains("in database main"), "{out}");
}
