//! Checkpoints, proofs over HTTP, `verify` against checkpoints, and evidence
//! bundles, on real servers and databases.

use std::path::Path;
use std::process::Command;

use govledger::ledger::checkpoint::NoteVerifier;
use govledger::ledger::merkle;
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp, TestDatabase};
use crate::on_both_backends;

fn hash(hex_text: &str) -> [u8; 32] {
    hex::decode(hex_text).unwrap().try_into().unwrap()
}

fn hashes(list: &Value) -> Vec<[u8; 32]> {
    list.as_array().unwrap().iter().map(|h| hash(h.as_str().unwrap())).collect()
}

async fn append_n(app: &TestApp, from: usize, n: usize) {
    let events: Vec<Value> =
        (from..from + n).map(|i| json!({"kind": "model.explained", "subject": format!("model:m@{i}")})).collect();
    assert_eq!(app.post_events(&json!({ "events": events })).await.status(), 201);
}

async fn checkpoint_text(app: &TestApp, query: &str) -> String {
    let response = app.get(&format!("/api/v1/checkpoint{query}")).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    response.text().await.unwrap()
}

async fn checkpoints_and_proofs_verify_over_http(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let empty = app.get("/api/v1/checkpoint").await;
    assert_eq!(empty.status(), 404);

    append_n(&app, 0, 13).await;
    let vkey = app.get("/api/v1/checkpoint/key").await.text().await.unwrap();
    let verifier = NoteVerifier::parse(&vkey).unwrap();
    let note13 = checkpoint_text(&app, "").await;
    let cp13 = verifier.verify(&note13).unwrap();
    assert_eq!(cp13.size, 13);
    assert_eq!(cp13.origin, "govledger");
    // Asking again without growth returns the same signed note.
    assert_eq!(checkpoint_text(&app, "").await, note13);

    append_n(&app, 13, 20).await;
    let note33 = checkpoint_text(&app, "").await;
    let cp33 = verifier.verify(&note33).unwrap();
    assert_eq!(cp33.size, 33);
    assert_eq!(checkpoint_text(&app, "?size=13").await, note13);
    assert_eq!(app.get("/api/v1/checkpoint?size=14").await.status(), 404);

    for seq in [1u64, 7, 13, 16, 33] {
        let proof = app.get_json(&format!("/api/v1/proofs/inclusion?seq={seq}&tree_size=33")).await;
        let event = app.get_json(&format!("/api/v1/events/{seq}")).await;
        assert_eq!(proof["event_hash"], event["hash"]);
        assert_eq!(proof["leaf_index"], seq - 1);
        assert_eq!(hash(proof["root_hash"].as_str().unwrap()), cp33.root);
        let leaf = merkle::leaf_hash(&hash(event["hash"].as_str().unwrap()));
        assert!(merkle::verify_inclusion(seq - 1, 33, &leaf, &hashes(&proof["audit_path"]), &cp33.root), "seq {seq}");
    }
    let old = app.get_json("/api/v1/proofs/inclusion?seq=5&tree_size=13").await;
    let leaf = merkle::leaf_hash(&hash(old["event_hash"].as_str().unwrap()));
    assert!(merkle::verify_inclusion(4, 13, &leaf, &hashes(&old["audit_path"]), &cp13.root));

    let consistency = app.get_json("/api/v1/proofs/consistency?from=13&to=33").await;
    assert_eq!(hash(consistency["from_root"].as_str().unwrap()), cp13.root);
    assert_eq!(hash(consistency["to_root"].as_str().unwrap()), cp33.root);
    assert!(merkle::verify_consistency(13, 33, &cp13.root, &cp33.root, &hashes(&consistency["proof"])));

    for (path, status) in [
        ("/api/v1/proofs/inclusion?seq=0&tree_size=33", 404),
        ("/api/v1/proofs/inclusion?seq=34&tree_size=33", 404),
        ("/api/v1/proofs/inclusion?seq=3&tree_size=34", 422),
        ("/api/v1/proofs/inclusion?seq=x", 400),
        ("/api/v1/proofs/consistency?from=20&to=13", 422),
        ("/api/v1/proofs/consistency?from=0&to=13", 422),
        ("/api/v1/proofs/consistency?from=1&to=99", 422),
        ("/api/v1/checkpoint?size=-1", 400),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status().as_u16(), status, "{path}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{path}");
    }
    let report = app.get_json("/api/v1/verify").await;
    assert_eq!(report["ok"], true);
    assert_eq!(report["checkpoints_verified"], 2);
}
on_both_backends!(checkpoints_and_proofs_verify_over_http, checkpoints_and_proofs_verify_over_http);

fn govledger(args: &[&str], db: &TestDatabase) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_govledger")).args(args).args(db.cli_args()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

fn sql(db: &TestDatabase, statements: &[&str]) {
    use diesel::RunQueryDsl;
    let mut conn = govledger::store::DbConn::establish(&db.target).unwrap();
    for statement in statements {
        govledger::with_conn!(&mut conn, |c| diesel::sql_query(*statement).execute(c)).unwrap();
    }
}

/// The pitfall a hash chain alone cannot catch: cut the end off and append
/// a new, internally consistent history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_and_regrown_log_is_caught_only_by_a_checkpoint() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    append_n(&app, 0, 12).await;
    let kept = checkpoint_text(&app, "").await;
    let kept_file = app.db().dir.path().join("kept-checkpoint.txt");
    std::fs::write(&kept_file, &kept).unwrap();
    let vkey_file = app.db().dir.path().join("server.vkey");
    std::fs::write(&vkey_file, app.get("/api/v1/checkpoint/key").await.text().await.unwrap()).unwrap();

    let (code, out) = govledger(&["verify"], app.db());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("12 events verified, 1 checkpoints consistent (signed)"), "{out}");

    // Rewrite history: drop events 8..12 and grow the log again through the server.
    sql(app.db(), &["DROP TRIGGER events_no_delete", "DELETE FROM events WHERE seq >= 8"]);
    append_n(&app, 100, 6).await;
    assert_eq!(app.size().await, 13);

    let (code, out) = govledger(&["verify"], app.db());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("checkpoint_mismatch"), "{out}");
    assert!(out.contains("history was rewritten"), "{out}");

    // The attacker also removes the server's own checkpoints. The projections
    // still hold what the removed events made...
    sql(app.db(), &["DELETE FROM checkpoints"]);
    let (code, out) = govledger(&["verify"], app.db());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("projection_mismatch") && out.contains("no event creates it"), "{out}");
    // ...so a careful attacker rebuilds them too: the chain alone now verifies...
    let (code, out) = govledger(&["rebuild"], app.db());
    assert_eq!(code, 0, "{out}");
    let (code, out) = govledger(&["verify"], app.db());
    assert_eq!(code, 0, "a rewritten chain is internally consistent: {out}");
    // ...but not against the checkpoint the auditor kept.
    let kept_arg = kept_file.display().to_string();
    let key_arg = vkey_file.display().to_string();
    let (code, out) = govledger(&["verify", "--checkpoint", &kept_arg, "--key-file", &key_arg], app.db());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("checkpoint_mismatch") && out.contains("the given checkpoint"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_log_and_a_forged_checkpoint_are_caught() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    append_n(&app, 0, 10).await;
    let kept = checkpoint_text(&app, "").await;
    let kept_file = app.db().dir.path().join("kept.txt");
    std::fs::write(&kept_file, &kept).unwrap();
    let kept_arg = kept_file.display().to_string();

    sql(app.db(), &["DROP TRIGGER events_no_delete", "DELETE FROM events WHERE seq >= 9"]);
    let (code, out) = govledger(&["verify"], app.db());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("checkpoint_truncated"), "{out}");

    // A stored checkpoint whose signature was tampered with.
    sql(app.db(), &["DELETE FROM checkpoints"]);
    let forged = kept.replace("\n10\n", "\n8\n");
    sql(
        app.db(),
        &[&format!(
            "INSERT INTO checkpoints (tree_size, root_hash, note, created_at) VALUES (8, zeroblob(32), '{}', 'x')",
            forged.replace('\'', "''")
        )],
    );
    let (code, out) = govledger(&["verify"], app.db());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("checkpoint_signature"), "{out}");

    // A kept checkpoint signed by somebody else's key.
    sql(app.db(), &["DELETE FROM checkpoints"]);
    let other = tempfile::tempdir().unwrap();
    let other_key = other.path().join("other.key");
    let signer = govledger::proofs::keys::load_or_create(&govledger::proofs::keys::SigningKeyConfig {
        path: other_key,
        origin: "govledger".into(),
    })
    .unwrap();
    let cp = govledger::ledger::checkpoint::Checkpoint::from_note_unverified(&kept).unwrap();
    let mut wrong = cp.clone();
    wrong.size = 8;
    std::fs::write(&kept_file, signer.sign(&wrong)).unwrap();
    let (code, out) = govledger(&["verify", "--checkpoint", &kept_arg], app.db());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("checkpoint_signature"), "{out}");
}

fn export(db: &TestDatabase, bundle: &Path, extra: &[&str]) -> (i32, String) {
    let bundle_arg = bundle.display().to_string();
    let mut args = vec!["export", "--bundle", &bundle_arg];
    args.extend_from_slice(extra);
    govledger(&args, db)
}

fn verify_bundle(bundle: &Path, key: Option<&Path>) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_govledger"));
    command.arg("verify-bundle").arg(bundle);
    if let Some(key) = key {
        command.arg("--key").arg(key);
    }
    let output = command.output().unwrap();
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stdout).into_owned())
}

async fn evidence_bundles_verify_offline_and_catch_any_changed_byte(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.post_events(&json!({"events": [
        {"kind": "dataset.version_created", "subject": "dataset:loans@1", "attributes": {"description": "Zoë 李", "row_count": 10}},
        {"kind": "run.completed", "subject": "run:train-1", "inputs": ["dataset:loans@1"]},
        {"kind": "model.registered", "subject": "model:credit@1", "inputs": ["run:train-1"], "attributes": {"metrics": {"auc": 0.8125}}},
        {"kind": "model.evaluated", "subject": "model:credit@1", "attributes": {"metrics": {"gini": 0.6}}},
        {"kind": "model.registered", "subject": "model:other@1", "inputs": ["run:train-1"]},
    ]}))
    .await;
    let out_dir = tempfile::tempdir().unwrap();
    let bundle = out_dir.path().join("credit-bundle");
    let (code, out) = export(app.db(), &bundle, &["--subject", "model:credit"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("wrote 2 events"), "{out}");
    let key = out_dir.path().join("server.vkey");
    std::fs::write(&key, app.get("/api/v1/checkpoint/key").await.text().await.unwrap()).unwrap();

    let (code, out) = verify_bundle(&bundle, Some(&key));
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("OK: 2 events verified against checkpoint 5"), "{out}");
    let (code, out) = verify_bundle(&bundle, None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("pass --key"), "{out}");

    // A range export and an empty selection.
    let range = out_dir.path().join("range");
    let (code, out) = export(app.db(), &range, &["--from-seq", "2", "--to-seq", "4"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(verify_bundle(&range, Some(&key)).0, 0);
    let (code, out) = export(app.db(), &out_dir.path().join("none"), &["--subject", "model:nothing"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no events match"), "{out}");

    // One changed byte in any file, anywhere, is caught (checked in-process for speed).
    let pinned = NoteVerifier::parse(&std::fs::read_to_string(&key).unwrap()).unwrap();
    let mut files = vec![bundle.join("bundle.json"), bundle.join("checkpoint.txt"), bundle.join("key.pub")];
    for folder in ["events", "proofs"] {
        for entry in std::fs::read_dir(bundle.join(folder)).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    assert_eq!(files.len(), 7);
    let mut checked = 0;
    for file in &files {
        let original = std::fs::read(file).unwrap();
        for i in 0..original.len() {
            for mask in [0x01u8, 0x20] {
                let mut changed = original.clone();
                changed[i] ^= mask;
                std::fs::write(file, &changed).unwrap();
                let result = govledger::ledger::bundle::verify(&bundle, Some(&pinned));
                assert!(result.is_err(), "{} byte {i} ^ {mask:#x} was accepted", file.display());
                checked += 1;
            }
        }
        std::fs::write(file, &original).unwrap();
    }
    assert!(checked > 2000);
    assert_eq!(verify_bundle(&bundle, Some(&key)).0, 0);

    // Removing, adding or swapping files is caught and the failing item named.
    let event_file = files.iter().find(|f| f.to_string_lossy().contains("/events/")).unwrap().clone();
    let saved = std::fs::read(&event_file).unwrap();
    std::fs::remove_file(&event_file).unwrap();
    let (code, out) = verify_bundle(&bundle, Some(&key));
    assert_eq!(code, 1);
    assert!(out.starts_with("FAILED: events/"), "{out}");
    std::fs::write(&event_file, &saved).unwrap();
    std::fs::write(bundle.join("events").join("extra.json"), "{}\n").unwrap();
    let (code, out) = verify_bundle(&bundle, Some(&key));
    assert_eq!(code, 1);
    assert!(out.contains("events/extra.json: is not listed"), "{out}");
}
on_both_backends!(
    evidence_bundles_verify_offline_and_catch_any_changed_byte,
    evidence_bundles_verify_offline_and_catch_any_changed_byte
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_show_prints_the_key_the_server_signs_with() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    let (code, out) = govledger(&["key", "show"], app.db());
    assert_eq!(code, 0, "{out}");
    let served = app.get("/api/v1/checkpoint/key").await.text().await.unwrap();
    let printed = out.lines().find(|l| l.starts_with("govledger+")).unwrap_or_default();
    assert_eq!(format!("{printed}\n"), served);
    append_n(&app, 0, 3).await;
    let note = checkpoint_text(&app, "").await;
    assert_eq!(NoteVerifier::parse(printed).unwrap().verify(&note).unwrap().size, 3);
    let key_file = app.db().dir.path().join(govledger::proofs::keys::SIGNING_KEY_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

/// `GET /api/v1/verify` while events are appended and checkpoints signed
/// every few milliseconds: every answer is intact. A checkpoint signed after
/// the verifier read the head covers more events than it checked, and must
/// not be reported as a sign of removed events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_during_appends_and_checkpoints_reports_intact() {
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.checkpoint_interval = Some(std::time::Duration::from_millis(5));
    })
    .await
    else {
        return;
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let appender = {
        let (client, url, stop) = (app.client.clone(), app.url("/api/v1/events"), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            // Bounded, so that each verification (which reads the whole
            // ledger) stays short however fast the appends go.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 1500 {
                let events: Vec<Value> =
                    (0..20).map(|i| json!({"kind": "run.updated", "subject": format!("run:r{n}@{i}")})).collect();
                let response = client.post(&url).json(&json!({ "events": events })).send().await.unwrap();
                assert_eq!(response.status(), 201);
                n += 1;
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            n
        })
    };
    // Before the fix, four runs out of four reported a truncation here.
    let started = std::time::Instant::now();
    let mut runs = 0;
    while runs < 100 && started.elapsed() < std::time::Duration::from_secs(15) {
        let report = app.get_json("/api/v1/verify").await;
        assert_eq!(report["ok"], true, "{report}");
        runs += 1;
    }
    assert!(runs >= 10, "only {runs} verifications ran during the appends");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(appender.await.unwrap() > 0);
    let report = app.get_json("/api/v1/verify").await;
    assert_eq!(report["ok"], true, "{report}");
    assert!(report["checkpoints_verified"].as_u64().unwrap() > 1, "{report}");
}
