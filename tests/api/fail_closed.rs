//! The record never says yes by accident (issue 21): undeclared
//! environments are refused, versions are created once, erasure certificates
//! stay true, retries are exact, typos never become identities, and a failed
//! OpenLineage run leaves no live lineage.

use serde_json::{json, Value};

use crate::helpers::{client_with, Backend, TestApp};
use crate::on_both_backends;

/// A registered model version `model:credit@1` of project `credit`.
async fn registered_model(app: &TestApp) {
    app.append_json(&json!({"kind": "dataset.version_created", "subject": "dataset:bureau@1", "project": "credit",
        "attributes": {"row_count": 1200, "checksum": "sha256:aa"}}))
        .await;
    app.append_json(&json!({"kind": "run.completed", "subject": "run:t77", "project": "credit",
        "inputs": ["dataset:bureau@1"], "outputs": ["model:credit@1"]}))
        .await;
    app.append_json(&json!({"kind": "model.registered", "subject": "model:credit@1", "project": "credit",
        "inputs": ["run:t77"]}))
        .await;
}

async fn status_and_body(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn undeclared_environments_are_denied(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    registered_model(&app).await;
    let size = app.size().await;

    let (status, body) =
        status_and_body(app.get("/api/v1/gate?model=model:credit@1&environment=prodution").await).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "unknown_environment");
    assert_eq!(body["gate"]["decision"], "deny");
    assert_eq!(body["gate"]["allowed"], false);
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("prodution") && message.contains("dev, production, staging"), "{message}");
    assert_eq!(app.size().await, size, "the gate records nothing");

    let (status, body) = status_and_body(
        app.client
            .post(app.url("/api/v1/deployments"))
            .json(&json!({"model": "model:credit@1", "environment": "prodution", "project": "credit"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (422, Some("unknown_environment")), "{body}");
    let blocked = body["blocked_event_seq"].as_u64().expect("the refusal is on the record");
    let event = app.get_json(&format!("/api/v1/events/{blocked}")).await;
    assert_eq!(event["kind"], "deployment.blocked");
    assert_eq!(event["subject"], "deployment:prodution/credit");
    assert!(event["attributes"]["reasons"][0].as_str().unwrap().contains("not declared"), "{event}");
    assert_eq!(app.size().await, size + 1, "only the deployment.blocked event");

    let (status, body) = status_and_body(
        app.client
            .post(app.url("/api/v1/approvals"))
            .json(&json!({"model": "model:credit@1", "environment": "prodution"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (422, Some("unknown_environment")), "{body}");
    assert_eq!(app.size().await, size + 1);

    // Declared environments still answer as before: `dev` is declared ungated.
    let dev = app.get_json("/api/v1/gate?model=model:credit@1&environment=dev").await;
    assert_eq!((dev["decision"].as_str(), dev["gated"].as_bool()), (Some("allow"), Some(false)));
    let production = app.get_json("/api/v1/gate?model=model:credit@1&environment=production").await;
    assert_eq!(production["decision"], "deny");

    // The command line exits 1 with DENY, naming the known environments.
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_govledger"))
        .args(["gate", "--model", "model:credit@1", "--environment", "prodution"])
        .env("GOVLEDGER_URL", &app.base)
        .env("GOVLEDGER_TOKEN", &app.admin_token)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert_eq!(cli.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("DENY: ") && stderr.contains("known environments: dev, production, staging"),
        "{stderr}"
    );
}
on_both_backends!(undeclared_environments_are_denied_and_recorded, undeclared_environments_are_denied);

async fn versions_are_created_once(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let first = app
        .append_json(&json!({"kind": "dataset.version_created", "subject": "dataset:transactions@2026-10",
            "project": "fraud", "attributes": {"row_count": 1_200_000, "checksum": "sha256:4f1c"}}))
        .await;
    let size = app.size().await;
    let (status, body) = status_and_body(
        app.post_events(&json!({"kind": "dataset.version_created", "subject": "dataset:transactions@2026-10",
            "project": "fraud", "attributes": {"row_count": 12, "checksum": "sha256:deadbeef"}}))
            .await,
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (409, Some("version_exists")), "{body}");
    assert!(body["message"].as_str().unwrap().contains(&format!("at seq {}", first["seq"])), "{body}");
    assert_eq!(app.size().await, size, "nothing written");
    let entity = app.get_json("/api/v1/entities/dataset:transactions@2026-10").await;
    assert_eq!(entity["state"]["dataset.version_created"]["attributes"]["row_count"], 1_200_000, "{entity}");

    // Twice in one request: refused whole.
    let (status, body) = status_and_body(
        app.post_events(&json!({"events": [
            {"kind": "dataset.version_created", "subject": "dataset:transactions@2026-11"},
            {"kind": "dataset.version_created", "subject": "dataset:transactions@2026-11"},
        ]}))
        .await,
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (409, Some("version_exists")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("earlier in this request"), "{body}");
    assert_eq!(app.size().await, size);

    // A model version too; kinds that may follow a creation still go through.
    app.append_json(&json!({"kind": "run.completed", "subject": "run:r1", "inputs": ["dataset:transactions@2026-10"]}))
        .await;
    app.append_json(&json!({"kind": "model.registered", "subject": "model:m@1", "inputs": ["run:r1"]})).await;
    let (status, _) = status_and_body(
        app.post_events(&json!({"kind": "model.registered", "subject": "model:m@1", "inputs": ["run:r1"],
            "attributes": {"framework": "other"}}))
            .await,
    )
    .await;
    assert_eq!(status, 409);
    for follower in [
        json!({"kind": "dataset.classified", "subject": "dataset:transactions@2026-10", "project": "fraud", "attributes": {"contains_personal_data": false}}),
        json!({"kind": "model.evaluated", "subject": "model:m@1", "attributes": {"metrics": {"auc": 0.9}}}),
        json!({"kind": "model.explained", "subject": "model:m@1", "attributes": {"method": "shap"}}),
        json!({"kind": "model.retired", "subject": "model:m@1"}),
    ] {
        app.append_json(&follower).await;
    }

    // Racing creations of one new version: exactly one is recorded.
    let requests = (0..8).map(|i| {
        app.client
            .post(app.url("/api/v1/events"))
            .json(&json!({"kind": "dataset.version_created", "subject": "dataset:race@1", "attributes": {"row_count": i}}))
            .send()
    });
    let statuses: Vec<u16> =
        futures_util::future::join_all(requests).await.into_iter().map(|r| r.unwrap().status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 7, "{statuses:?}");

    // A retry with the same idempotency key is a replay, not a redefinition.
    let keyed = json!({"kind": "dataset.version_created", "subject": "dataset:keyed@1", "idempotency_key": "load-1"});
    app.append_json(&keyed).await;
    let retry = app.post_events(&keyed).await;
    assert_eq!(retry.status(), 200);
}
on_both_backends!(a_version_is_created_once, versions_are_created_once);

async fn retried_batches_replay(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.append_json(&json!({"kind": "dataset.version_created", "subject": "dataset:transactions@2026-10",
        "project": "fraud"}))
        .await;
    // The README's walk-through batch: only its second event carries a key.
    let batch = json!({"events": [
        {"kind": "run.completed", "subject": "run:train-17", "project": "fraud",
         "inputs": ["dataset:transactions@2026-10"], "outputs": ["model:fraud-detector@3"]},
        {"kind": "model.registered", "subject": "model:fraud-detector@3", "project": "fraud",
         "inputs": ["run:train-17"], "attributes": {"framework": "xgboost"},
         "idempotency_key": "ci-pipeline-4711"}
    ]});
    let first = app.post_events(&batch).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let size = app.size().await;
    let retry = app.post_events(&batch).await;
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.headers()["Idempotent-Replayed"], "true");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["events"], first["events"], "the stored events, as first answered");
    assert_eq!(app.size().await, size);

    // The same key with different content: refused, saying what differs.
    let mut changed = batch.clone();
    changed["events"][0]["outputs"] = json!(["model:fraud-detector@4"]);
    let (status, body) = status_and_body(app.post_events(&changed).await).await;
    assert_eq!((status, body["error"].as_str()), (422, Some("idempotency_key_reused")), "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("event 0 of this request differs")
            && body["message"].as_str().unwrap().contains("outputs"),
        "{body}"
    );
    let mut changed = batch.clone();
    changed["events"][1]["attributes"] = json!({"framework": "lightgbm"});
    let (status, body) = status_and_body(app.post_events(&changed).await).await;
    assert_eq!(status, 422);
    assert!(body["message"].as_str().unwrap().contains("different attributes"), "{body}");
    assert_eq!(app.size().await, size);
}
on_both_backends!(a_retried_batch_returns_the_stored_events, retried_batches_replay);

const MASTER: [u8; 32] = [7u8; 32];

async fn erasure_is_idempotent(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |config| {
        config.writer.master_key = Some(std::sync::Arc::new(govledger::ledger::personal::MasterKey::new(&MASTER)));
    })
    .await
    else {
        return;
    };
    app.append_json(&json!({"kind": "dataset.version_created", "subject": "dataset:crm@1", "project": "crm",
        "personal": {"subject_ids": ["customer-4711"], "fields": {"email": "c@example.org"}}}))
        .await;
    let erase =
        || app.client.post(app.url("/api/v1/subjects/customer-4711/erase")).json(&json!({"reason": "DSR-7"})).send();
    let first = erase().await.unwrap();
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["replayed"], false);
    assert_eq!(first["key_ids_destroyed"].as_array().unwrap().len(), 1);
    let size = app.size().await;

    let again = erase().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["Idempotent-Replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["replayed"], true);
    for field in ["seq", "hash", "erased_at", "key_ids_destroyed", "reason", "pseudonym"] {
        assert_eq!(again[field], first[field], "{field}");
    }
    assert_eq!(app.size().await, size, "nothing new on the record");

    // The certificate still names the key destroyed and the reason.
    let pseudonym = first["pseudonym"].as_str().unwrap();
    let report = app.get_json(&format!("/api/v1/reports/gdpr-erasure?subject={pseudonym}&format=json")).await;
    let text = report.to_string();
    let key = first["key_ids_destroyed"][0].as_str().unwrap();
    assert!(text.contains(key) && text.contains("DSR-7"), "{text}");
    assert!(!text.contains("none held"), "{text}");

    // New data about the same person gets a new key; erasing again is a new
    // erasure, and the certificate lists both, each with its key and reason.
    app.append_json(&json!({"kind": "dataset.version_created", "subject": "dataset:crm@2", "project": "crm",
        "personal": {"subject_ids": ["customer-4711"], "fields": {"email": "c2@example.org"}}}))
        .await;
    let second = app
        .client
        .post(app.url("/api/v1/subjects/customer-4711/erase"))
        .json(&json!({"reason": "DSR-9"}))
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["replayed"], false);
    assert_ne!(second["seq"], first["seq"]);
    let report = app.get_json(&format!("/api/v1/reports/gdpr-erasure?subject={pseudonym}&format=json")).await;
    let erasures: Vec<String> = report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["show"] == "erasure")
        .flat_map(|s| s["statements"].as_array().cloned().unwrap_or_default())
        .map(|s| s["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(erasures.len(), 2, "{erasures:?}");
    assert!(erasures[0].starts_with("Erasure 1 of 2") && erasures[0].contains(key) && erasures[0].contains("DSR-7"));
    let second_key = second["key_ids_destroyed"][0].as_str().unwrap();
    assert!(
        erasures[1].starts_with("Erasure 2 of 2") && erasures[1].contains(second_key) && erasures[1].contains("DSR-9")
    );
}
on_both_backends!(erasing_an_erased_subject_answers_the_first_erasure, erasure_is_idempotent);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typos_never_become_identities() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    let size = app.size().await;
    let mint = |body: Value| app.client.post(app.url("/api/v1/tokens")).json(&body).send();
    let (status, body) =
        status_and_body(mint(json!({"sub": "rita", "roles": ["riskofficer"], "projects": ["*"]})).await.unwrap()).await;
    assert_eq!(status, 422, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("\"riskofficer\"") && message.contains("risk_officer"), "{message}");
    let (status, body) =
        status_and_body(mint(json!({"sub": "rita", "roles": ["risk_officer"], "projects": ["fruad"]})).await.unwrap())
            .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["message"].as_str().unwrap().contains("new_project"), "{body}");
    assert_eq!(app.size().await, size, "refusals write nothing");

    // A project meant to be new, then known; the defaults match the CLI's.
    let new = mint(json!({"sub": "ci-fraud", "roles": ["ci"], "projects": ["fraud"], "new_project": true}));
    assert_eq!(new.await.unwrap().status(), 201);
    let known = mint(json!({"sub": "ds-fraud", "roles": ["data_scientist"], "projects": ["fraud"]}));
    assert_eq!(known.await.unwrap().status(), 201);
    let defaults: Value = mint(json!({"sub": "audrey", "roles": ["auditor"]})).await.unwrap().json().await.unwrap();
    assert_eq!(defaults["projects"], json!(["*"]));
    let ttl = defaults["expires_at"].as_u64().unwrap() - govledger::auth::tokens::now();
    assert!((90 * 86_400 - 60..=90 * 86_400).contains(&ttl), "{ttl}");
    assert!(defaults["expires"].as_str().unwrap().ends_with('Z'), "{defaults}");

    // Listed from the ledger, revocation included.
    let jti = defaults["jti"].as_str().unwrap();
    let revoked = app.client.post(app.url(&format!("/api/v1/tokens/{jti}/revoke"))).send().await.unwrap();
    assert_eq!(revoked.status(), 200);
    let unknown = app.client.post(app.url("/api/v1/tokens/0000-never-issued/revoke")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let listed = app.get_json("/api/v1/tokens").await;
    let tokens = listed["tokens"].as_array().unwrap();
    assert_eq!(
        tokens.iter().map(|t| t["sub"].as_str().unwrap()).collect::<Vec<_>>(),
        ["ci-fraud", "ds-fraud", "audrey"]
    );
    assert_eq!(tokens[2]["revoked"], true);
    assert_eq!(tokens[0]["revoked"], false);
    assert_eq!(tokens[0]["projects"], json!(["fraud"]));
    assert!(chrono::DateTime::parse_from_rfc3339(tokens[0]["expires"].as_str().unwrap()).is_ok());
    let viewer = client_with(&app.token("vic", &["viewer"], &["*"]));
    assert_eq!(viewer.get(app.url("/api/v1/tokens")).send().await.unwrap().status(), 403);

    // The command line refuses the same typos, with exit 1, and writes nothing.
    let before = app.size().await;
    let cli = |args: &[&str]| {
        let mut all: Vec<String> = ["token", "issue", "--sub", "x"].map(String::from).into();
        all.extend(args.iter().map(|a| a.to_string()));
        all.extend(app.db().cli_args());
        std::process::Command::new(env!("CARGO_BIN_EXE_govledger")).args(&all).output().unwrap()
    };
    let superuser = cli(&["--role", "superuser"]);
    assert_eq!(superuser.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&superuser.stderr).contains("known roles: admin"), "{superuser:?}");
    let typo = cli(&["--role", "ci", "--project", "fruad"]);
    assert_eq!(typo.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&typo.stderr).contains("--new-project"), "{typo:?}");
    assert_eq!(app.size().await, before);
    let fresh = cli(&["--role", "ci", "--project", "credit", "--new-project"]);
    assert!(fresh.status.success(), "{fresh:?}");
    let stderr = String::from_utf8_lossy(&fresh.stderr);
    let expires = stderr.rsplit("expires at ").next().unwrap().trim();
    assert!(chrono::DateTime::parse_from_rfc3339(expires).is_ok(), "{stderr}");
}

async fn failed_openlineage_runs(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let post = |body: Value| app.client.post(app.url("/api/v1/lineage?project=fraud")).json(&body).send();
    let run = |event_type: &str, time: &str, run_id: &str| {
        json!({"eventType": event_type, "eventTime": time, "run": {"runId": run_id},
            "job": {"namespace": "airflow", "name": "train"},
            "inputs": [{"namespace": "s3://lake", "name": "in"}],
            "outputs": [{"namespace": "s3://lake", "name": "out"}],
            "producer": "test", "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json"})
    };
    let (status, body) = status_and_body(post(run("START", "2026-03-03T09:00:00Z", "abc")).await.unwrap()).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["message"].as_str().unwrap().contains("not a UUID"), "{body}");

    let id = "0190a3c5-1d2e-7b7f-8e0a-1234567890ab";
    assert_eq!(post(run("START", "2026-03-03T09:00:00Z", id)).await.unwrap().status(), 201);
    let during = app.get_json("/api/v1/lineage?node=dataset:s3/lake/out&direction=upstream").await;
    assert_eq!(during["edges"].as_array().unwrap().len(), 3, "{during}");
    let fail = run("FAIL", "2026-03-03T09:05:00Z", id);
    assert_eq!(post(fail.clone()).await.unwrap().status(), 201);
    let retry = post(fail).await.unwrap();
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.headers()["Idempotent-Replayed"], "true");

    let after = app.get_json("/api/v1/lineage?node=dataset:s3/lake/out&direction=upstream").await;
    assert_eq!(after["edges"], json!([]), "the failed run's output is not live lineage: {after}");
    let run_entity = app.get_json(&format!("/api/v1/entities/run:{id}")).await;
    assert_eq!(run_entity["status"], "failed");
    // What it read stays on the record.
    let upstream = app.get_json(&format!("/api/v1/lineage?node=run:{id}&direction=upstream")).await;
    assert_eq!(upstream["edges"].as_array().unwrap().len(), 2, "{upstream}");
}
on_both_backends!(a_failed_openlineage_run_leaves_no_live_outputs, failed_openlineage_runs);

async fn as_of_answers_carry_status(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    registered_model(&app).await;
    let before_retirement = app.get_json("/api/v1/head").await;
    let at = app.get_json(&format!("/api/v1/events/{}", before_retirement["size"])).await["recorded_at"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    app.append_json(&json!({"kind": "model.retired", "subject": "model:credit@1", "project": "credit"})).await;

    let now = app.get_json("/api/v1/lineage?node=model:credit@1&direction=upstream").await;
    let then = app.get_json(&format!("/api/v1/lineage?node=model:credit@1&direction=upstream&as_of={at}")).await;
    let status = |graph: &Value, r: &str| {
        graph["nodes"].as_array().unwrap().iter().find(|n| n["ref"] == r).unwrap()["status"].clone()
    };
    assert_eq!(status(&now, "model:credit@1"), "retired");
    assert_eq!(status(&then, "model:credit@1"), "registered");
    assert_eq!(status(&then, "run:t77"), "completed");
    assert_eq!(status(&then, "dataset:bureau@1"), "created");
    let keys = |graph: &Value| -> Vec<Vec<String>> {
        graph["nodes"].as_array().unwrap().iter().map(|n| n.as_object().unwrap().keys().cloned().collect()).collect()
    };
    assert_eq!(keys(&now), keys(&then), "the same node fields now and as of a time");
}
on_both_backends!(as_of_lineage_carries_the_status_of_the_time, as_of_answers_carry_status);

fn govledger(args: &[&str], data_dir: &std::path::Path) -> std::process::Output {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend(["--data-dir".to_owned(), data_dir.display().to_string()]);
    std::process::Command::new(env!("CARGO_BIN_EXE_govledger")).args(&all).output().unwrap()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn commands_against_a_held_data_dir_say_which_server_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::helpers::Server::start_in(dir.path(), &[]);
    let pid = format!("(pid {})", server.0.id());
    for (args, hint) in [
        (vec!["demo"], "govledger demo --url"),
        (vec!["reindex"], "stop that server first"),
        (vec!["serve", "--bind", "127.0.0.1:0"], "stop it first"),
    ] {
        let output = govledger(&args, dir.path());
        let text = stderr(&output);
        assert!(!output.status.success(), "{args:?}: {text}");
        assert!(text.contains("held by a running govledger process") && text.contains(&pid), "{args:?}: {text}");
        assert!(text.contains(hint), "{args:?}: {text}");
        if args[0] != "serve" {
            assert!(!text.contains("--search-index-dir"), "{args:?} has no such flag: {text}");
        }
    }
    server.kill();
    // Once it is gone, the directory is free again.
    let reindex = govledger(&["reindex"], dir.path());
    assert!(reindex.status.success(), "{}", stderr(&reindex));
}

#[test]
fn a_port_in_use_is_reported_once_and_leaves_no_database() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bind = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let output = govledger(&["serve", "--bind", &bind], dir.path());
    let text = stderr(&output);
    assert!(!output.status.success());
    assert_eq!(text.matches("in use").count(), 1, "{text}");
    assert!(text.contains(&format!("cannot listen on {bind}")), "{text}");
    assert!(!dir.path().join(govledger::store::connection::SQLITE_FILE).exists(), "a database was created");
}

#[test]
fn the_demo_refuses_a_ledger_that_holds_its_versions() {
    let dir = tempfile::tempdir().unwrap();
    let admin = crate::helpers::mint(dir.path(), "walker", &["admin"], &["*"]);
    let server = crate::helpers::Server::start_in(dir.path(), &[]);
    let post = std::process::Command::new(env!("CARGO_BIN_EXE_govledger"))
        .args(["post", "--kind", "dataset.version_created", "--subject", "dataset:transactions@2026-10"])
        .env("GOVLEDGER_URL", &server.1)
        .env("GOVLEDGER_TOKEN", &admin)
        .output()
        .unwrap();
    assert!(post.status.success(), "{}", stderr(&post));
    let demo = std::process::Command::new(env!("CARGO_BIN_EXE_govledger"))
        .args(["demo", "--url", &server.1])
        .env("GOVLEDGER_TOKEN", &admin)
        .output()
        .unwrap();
    let text = stderr(&demo);
    assert!(!demo.status.success());
    assert!(text.contains("already holds dataset:transactions@2026-10 (recorded at seq"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_with_another_key_says_which_key_it_used() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    registered_model(&app).await;
    assert_eq!(app.get("/api/v1/checkpoint").await.status(), 200);
    let other = tempfile::tempdir().unwrap();
    let vkey = govledger(&["key", "show"], other.path());
    let vkey_path = other.path().join("other.vkey");
    std::fs::write(&vkey_path, &vkey.stdout).unwrap();
    let vkey_arg = vkey_path.display().to_string();
    let output = govledger(&["verify", "--key-file", &vkey_arg], app.db().dir.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    // name+key_id+base64 (which may itself hold a `+`).
    let vkey_text = String::from_utf8_lossy(&vkey.stdout);
    let name_and_id = vkey_text.trim().splitn(3, '+').take(2).collect::<Vec<_>>().join("+");
    assert!(stdout.contains(&format!("checked with verifier key {name_and_id}")), "{stdout}");
    assert!(stdout.contains(&format!("from --key-file {vkey_arg}")), "{stdout}");
}
