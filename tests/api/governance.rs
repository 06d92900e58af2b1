//! The governance domain end to end: the demo story through the HTTP API
//! with tokens of the right roles, and the lineage, impact, gate, as-of and
//! rebuild answers it must give.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::helpers::{client_with, Backend, TestApp};
use crate::on_both_backends;
use govledger::client::Client;
use govledger::demo::{self, Cast, Story};
use govledger::store::{projections, rebuild_projections, DbConn};

async fn play_demo(app: &TestApp) -> Story {
    let admin = Client::new(&app.base, &app.admin_token).unwrap();
    let cast = Cast::mint(&admin).await.unwrap();
    demo::run(&cast).await.unwrap()
}

fn refs(graph: &Value, key: &str) -> BTreeSet<String> {
    graph[key].as_array().unwrap().iter().map(|n| n["ref"].as_str().unwrap().to_owned()).collect()
}

fn edges(graph: &Value) -> BTreeSet<(String, String, String)> {
    graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["source"].as_str().unwrap().into(),
                e["target"].as_str().unwrap().into(),
                e["kind"].as_str().unwrap().into(),
            )
        })
        .collect()
}

fn set<const N: usize>(items: [&str; N]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn triples<const N: usize>(items: [(&str, &str, &str); N]) -> BTreeSet<(String, String, String)> {
    items.iter().map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned())).collect()
}

async fn demo_story_answers(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let story = play_demo(&app).await;
    let auditor = TestApp::attach(&app.base, &app.token("audrey", &["auditor"], &["*"]));

    // Which data trained the model serving production, and through which run?
    let upstream =
        auditor.get_json("/api/v1/lineage?node=deployment:production/fraud-detector&direction=upstream").await;
    assert_eq!(
        refs(&upstream, "nodes"),
        set([
            "deployment:production/fraud-detector",
            "model:fraud-detector@2",
            "run:train-fraud-3",
            "dataset:transactions@2026-11",
            "dataset:chargebacks@2026-10",
            "dataset:chargebacks@2026-11",
        ])
    );
    assert_eq!(
        edges(&upstream),
        triples([
            ("model:fraud-detector@2", "deployment:production/fraud-detector", "deployment.succeeded"),
            ("run:train-fraud-3", "model:fraud-detector@2", "run.completed"),
            ("dataset:transactions@2026-11", "run:train-fraud-3", "run.started"),
            ("dataset:chargebacks@2026-10", "run:train-fraud-3", "run.started"),
            ("dataset:chargebacks@2026-10", "model:fraud-detector@2", "model.evaluated"),
            ("dataset:chargebacks@2026-11", "model:fraud-detector@2", "model.evaluated"),
        ])
    );
    // Every edge and node cites the event that created it.
    for edge in upstream["edges"].as_array().unwrap() {
        let event = auditor.get_json(&format!("/api/v1/events/{}", edge["seq"])).await;
        assert_eq!(event["kind"], edge["kind"], "{edge}");
        let named: Vec<&Value> = [&event["subject"]]
            .into_iter()
            .chain(event["inputs"].as_array().unwrap())
            .chain(event["outputs"].as_array().unwrap())
            .collect();
        let model = &event["attributes"]["model"];
        assert!(named.contains(&&edge["source"]) || *model == edge["source"], "{edge} not in {event}");
    }
    for node in upstream["nodes"].as_array().unwrap() {
        let event = auditor.get_json(&format!("/api/v1/events/{}", node["seq"])).await;
        assert!(event.to_string().contains(node["ref"].as_str().unwrap()), "{node} not named by {event}");
    }

    // Impact: what depends on October's transactions, and what is live?
    let impact = auditor.get_json("/api/v1/impact?node=dataset:transactions@2026-10").await;
    assert_eq!(refs(&impact, "model_versions"), set(["model:fraud-detector@1"]));
    let live: Vec<(String, String)> = impact["live_deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["ref"].as_str().unwrap().into(), d["model"].as_str().unwrap().into()))
        .collect();
    assert_eq!(live, [("deployment:staging/fraud-detector".to_owned(), "model:fraud-detector@1".to_owned())]);
    let impact = auditor.get_json("/api/v1/impact?node=dataset:chargebacks@2026-10").await;
    assert_eq!(refs(&impact, "model_versions"), set(["model:fraud-detector@1", "model:fraud-detector@2"]));
    assert_eq!(
        refs(&impact, "live_deployments"),
        set(["deployment:production/fraud-detector", "deployment:staging/fraud-detector"])
    );

    // The gate, with the approval events it relied on.
    let allow = auditor.get_json("/api/v1/gate?model=model:fraud-detector@2&environment=production").await;
    assert_eq!(allow["decision"], "allow", "{allow}");
    let approval = auditor.get_json(&format!("/api/v1/approvals/{}", story.production_approval)).await;
    let grants: Vec<&Value> =
        approval["decisions"].as_array().unwrap().iter().filter(|d| d["decision"] == "grant").collect();
    assert_eq!(grants.iter().map(|g| g["actor"].as_str().unwrap()).collect::<Vec<_>>(), ["rita", "raj"]);
    // The request, both grants, and the held-out evaluation production's
    // `evaluation_max_age` rule relied on.
    let evaluation = &allow["checks"][0];
    assert_eq!((evaluation["rule"].as_str(), evaluation["passed"].as_bool()), (Some("evaluation"), Some(true)));
    assert!(evaluation["reason"].as_str().unwrap().contains("on dataset:chargebacks@2026-11"), "{allow}");
    let mut expected_seqs: Vec<u64> = vec![approval["requested_seq"].as_u64().unwrap()];
    expected_seqs.extend(grants.iter().map(|g| g["seq"].as_u64().unwrap()));
    expected_seqs.push(evaluation["seqs"][0].as_u64().unwrap());
    expected_seqs.sort_unstable();
    assert_eq!(allow["relied_on_seqs"], json!(expected_seqs));
    let deny = auditor.get_json("/api/v1/gate?model=model:fraud-detector@1&environment=production").await;
    assert_eq!(deny["decision"], "deny");
    assert_eq!(deny["reasons"][0], json!(format!("approval {} was rejected", story.rejected_approval)));
    // Version 1 was evaluated on data it was trained on: production's
    // evaluation rule fails too, and the reason says why.
    assert!(deny["reasons"][1].as_str().unwrap().contains("dataset:chargebacks@2026-10, which trained it"), "{deny}");
    assert_eq!(deny["reasons"].as_array().unwrap().len(), 2, "{deny}");
    let staging = auditor.get_json("/api/v1/gate?model=model:fraud-detector@1&environment=staging").await;
    assert_eq!(staging["decision"], "allow");
    // ... only by raj's recorded override of the failing evaluation rule.
    let overridden = &staging["checks"][0]["overridden_by"];
    assert_eq!(
        (overridden["actor"].as_str(), &overridden["rules"]),
        (Some("raj"), &json!(["evaluation"])),
        "{staging}"
    );
    assert!(staging["reasons"][1].as_str().unwrap().contains("overridden by raj"), "{staging}");
    let dev = auditor.get_json("/api/v1/gate?model=model:fraud-detector@1&environment=dev").await;
    assert_eq!((dev["decision"].as_str(), dev["gated"].as_bool()), (Some("allow"), Some(false)));
    let unknown = auditor.get_json("/api/v1/gate?model=model:fraud-detector@9&environment=dev").await;
    assert_eq!(unknown["decision"], "deny");

    // The blocked deployment is on the record, with why.
    let blocked = auditor.get_json(&format!("/api/v1/events/{}", story.blocked_seq)).await;
    assert_eq!(blocked["kind"], "deployment.blocked");
    assert_eq!(blocked["actor"], "ci-fraud");
    let reasons = blocked["attributes"]["reasons"].to_string();
    assert!(reasons.contains("pending: 1 of 2 approvals"), "{reasons}");

    // The inbox: nothing pending at the end; the rejection is listed.
    let pending = auditor.get_json("/api/v1/approvals?state=pending").await;
    assert_eq!(pending["approvals"], json!([]));
    let rejected = auditor.get_json("/api/v1/approvals?state=rejected").await;
    let ids: Vec<&str> = rejected["approvals"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [story.rejected_approval.as_str()]);

    // Staging rolled back to version 1.
    let staging = auditor.get_json("/api/v1/entities/deployment:staging/fraud-detector").await;
    assert_eq!(staging["status"], "rolled_back");
    assert_eq!(staging["state"]["live_model"], "model:fraud-detector@1");
    let kinds: Vec<&str> = staging["history"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "deployment.requested",
            "deployment.succeeded",
            "deployment.requested",
            "deployment.succeeded",
            "deployment.rolled_back"
        ]
    );

    // As of before the retraining, and now.
    let at = &story.before_retraining;
    let path = |as_of: Option<&str>| {
        let mut p = "/api/v1/lineage?node=dataset:chargebacks@2026-10&direction=downstream".to_owned();
        if let Some(t) = as_of {
            p.push_str(&format!("&as_of={}", t.replace('+', "%2B")));
        }
        p
    };
    let before = auditor.get_json(&path(Some(at))).await;
    assert_eq!(
        refs(&before, "nodes"),
        set([
            "dataset:chargebacks@2026-10",
            "run:train-fraud-1",
            "model:fraud-detector@1",
            "deployment:staging/fraud-detector"
        ])
    );
    let now = auditor.get_json(&path(None)).await;
    assert_eq!(
        refs(&now, "nodes"),
        set([
            "dataset:chargebacks@2026-10",
            "run:train-fraud-1",
            "model:fraud-detector@1",
            "run:train-fraud-3",
            "model:fraud-detector@2",
            "deployment:staging/fraud-detector",
            "deployment:production/fraud-detector",
        ])
    );
    // Staging served version 1 before; version 2's staging edge has since
    // ended with the rollback, and version 1 serves it again.
    let staging_before = auditor
        .get_json(&format!(
            "/api/v1/lineage?node=deployment:staging/fraud-detector&direction=upstream&depth=1&as_of={}",
            at.replace('+', "%2B")
        ))
        .await;
    assert_eq!(refs(&staging_before, "nodes"), set(["deployment:staging/fraud-detector", "model:fraud-detector@1"]));

    // Rebuilding the projections from the events gives identical tables.
    let target = app.db().target.clone();
    let (before, after) = tokio::task::spawn_blocking(move || {
        let mut conn = DbConn::establish(&target).unwrap();
        let before = projections::fingerprint(&mut conn).unwrap();
        rebuild_projections(&mut conn).unwrap();
        (before, projections::fingerprint(&mut conn).unwrap())
    })
    .await
    .unwrap();
    let entities: usize = before["entities"].split(' ').next().unwrap().parse().unwrap();
    assert!(entities >= 15, "{before:?}");
    assert_eq!(before, after);
    let verified = auditor.get_json("/api/v1/verify").await;
    assert_eq!(verified["ok"], true);
}
on_both_backends!(demo_story_gives_the_expected_answers, demo_story_answers);

/// A ledger with a model version whose training and registration were done by
/// known people, and an approval request by a third.
pub(crate) async fn model_awaiting_approval(app: &TestApp, environment: &str) -> String {
    let trainer = client_with(&app.token("tom", &["data_scientist", "risk_officer"], &["*"]));
    let registrar = client_with(&app.token("reg", &["ci", "risk_officer"], &["*"]));
    let requester = client_with(&app.token("req", &["ci", "risk_officer"], &["*"]));
    let post = |client: &reqwest::Client, body: Value| client.post(app.url("/api/v1/events")).json(&body).send();
    assert_eq!(
        post(&trainer, json!({"kind": "run.started", "subject": "run:t1", "inputs": ["dataset:loans@1"]}))
            .await
            .unwrap()
            .status(),
        201
    );
    let registered = post(
        &registrar,
        json!({"kind": "model.registered", "subject": "model:credit@1", "inputs": ["run:t1"], "project": "credit"}),
    )
    .await
    .unwrap();
    assert_eq!(registered.status(), 201);
    crate::helpers::evaluate_on_holdout(app, "model:credit@1", Some("credit")).await;
    let requested = requester
        .post(app.url("/api/v1/approvals"))
        .json(&json!({"model": "model:credit@1", "environment": environment, "evidence": ["dataset:loans@1"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(requested.status(), 201);
    let body: Value = requested.json().await.unwrap();
    assert_eq!(body["state"], "pending");
    assert_eq!(body["project"], "credit");
    body["id"].as_str().unwrap().to_owned()
}

async fn decide(app: &TestApp, who: &str, roles: &[&str], id: &str, decision: &str) -> (u16, Value) {
    let client = client_with(&app.token(who, roles, &["*"]));
    let response = client
        .post(app.url(&format!("/api/v1/approvals/{id}/decision")))
        .json(&json!({"decision": decision, "reason": format!("{who} says {decision}")}))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn gate(app: &TestApp) -> Value {
    app.get_json("/api/v1/gate?model=model:credit@1&environment=production").await
}

async fn separation_of_duties_and_quorum(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let id = model_awaiting_approval(&app, "production").await;
    let size = app.size().await;

    // Everyone who produced or asked for the model is refused, even with the approver role.
    for (who, roles, why) in [
        ("req", &["ci", "risk_officer"][..], "requested approval"),
        ("reg", &["ci", "risk_officer"][..], "registered model:credit@1"),
        ("tom", &["data_scientist", "risk_officer"][..], "ran run:t1"),
    ] {
        let (status, body) = decide(&app, who, roles, &id, "grant").await;
        assert_eq!(status, 403, "{who}: {body}");
        assert_eq!(body["error"], "separation_of_duties");
        assert!(body["message"].as_str().unwrap().contains(why), "{body}");
        let (status, _) = decide(&app, who, roles, &id, "reject").await;
        assert_eq!(status, 403, "{who} may not reject either");
    }
    // Roles that may not approve at all.
    for roles in [&["viewer"][..], &["admin"][..], &["data_scientist"][..]] {
        let (status, body) = decide(&app, "someone", roles, &id, "grant").await;
        assert_eq!(status, 403, "{roles:?}: {body}");
        assert_eq!(body["error"], "forbidden");
    }
    // The generic append route cannot be used to bypass the rules.
    let officer = client_with(&app.token("rita", &["risk_officer"], &["*"]));
    let bypass = officer
        .post(app.url("/api/v1/events"))
        .json(&json!({"kind": "approval.granted", "subject": format!("approval:{id}"), "attributes": {"reason": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bypass.status(), 422);
    assert_eq!(bypass.json::<Value>().await.unwrap()["error"], "use_endpoint");
    assert_eq!(app.size().await, size, "refused decisions wrote nothing");

    // Quorum: production needs two distinct approvers.
    let (status, body) = decide(&app, "rita", &["risk_officer"], &id, "grant").await;
    assert_eq!((status, body["state"].as_str()), (200, Some("pending")), "{body}");
    let (status, body) = decide(&app, "rita", &["risk_officer"], &id, "grant").await;
    assert_eq!((status, body["error"].as_str()), (409, Some("already_decided")));
    assert_eq!(gate(&app).await["decision"], "deny");
    let (status, body) = decide(&app, "raj", &["risk_officer"], &id, "grant").await;
    assert_eq!((status, body["state"].as_str()), (200, Some("granted")), "{body}");
    assert_eq!(body["valid"], true);
    assert_eq!(gate(&app).await["decision"], "allow");
    // A decided approval takes no more grants or rejections; it can be revoked.
    let (status, _) = decide(&app, "rob", &["risk_officer"], &id, "reject").await;
    assert_eq!(status, 409);
    let (status, body) = decide(&app, "rob", &["risk_officer"], &id, "revoke").await;
    assert_eq!((status, body["state"].as_str()), (200, Some("revoked")));
    let after = gate(&app).await;
    assert_eq!(after["decision"], "deny");
    assert_eq!(after["reasons"], json!([format!("approval {id} was revoked")]));

    // The deployment endpoint refuses and records the refusal.
    let ci = client_with(&app.token("pipeline", &["ci"], &["*"]));
    let size = app.size().await;
    let refused = ci
        .post(app.url("/api/v1/deployments"))
        .json(&json!({"model": "model:credit@1", "environment": "production", "idempotency_key": "deploy-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "deployment_blocked");
    assert_eq!(body["blocked_event_seq"], size + 1);
    // A retry with the same key gets the same answer and records nothing more.
    let retry = ci
        .post(app.url("/api/v1/deployments"))
        .json(&json!({"model": "model:credit@1", "environment": "production", "idempotency_key": "deploy-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 409);
    assert_eq!(retry.json::<Value>().await.unwrap()["blocked_event_seq"], size + 1);
    assert_eq!(app.size().await, size + 1);
}
on_both_backends!(separation_of_duties_and_quorum_are_enforced, separation_of_duties_and_quorum);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_expire() {
    let rules = "[environments.production]\napprovals_required = 1\napprover_roles = [\"risk_officer\"]\nvalid_for = \"2s\"\n\n[environments.staging]\ngated = false\n";
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.approval_rules = govledger::governance::ApprovalRules::parse(rules).unwrap();
    })
    .await
    else {
        return;
    };
    let id = model_awaiting_approval(&app, "production").await;
    let (status, body) = decide(&app, "rita", &["risk_officer"], &id, "grant").await;
    assert_eq!((status, body["state"].as_str()), (200, Some("granted")));
    assert_eq!(gate(&app).await["decision"], "allow");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let expired = gate(&app).await;
    assert_eq!(expired["decision"], "deny");
    assert!(expired["reasons"][0].as_str().unwrap().contains("expired"), "{expired}");
    // Staging is declared ungated by these rules: no approval needed.
    let staging = app.get_json("/api/v1/gate?model=model:credit@1&environment=staging").await;
    assert_eq!(staging["decision"], "allow");
    assert_eq!(staging["gated"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_kinds_refuse_bad_attributes_and_write_nothing() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    let cases = [
        (json!({"kind": "model.registered", "subject": "model:m@1"}), "exactly one training run"),
        (json!({"kind": "model.registered", "subject": "model:m", "inputs": ["run:r"]}), "versioned reference"),
        (
            json!({"kind": "model.evaluated", "subject": "model:m@1", "attributes": {"metrics": {}}}),
            "at least one metric",
        ),
        (
            json!({"kind": "model.evaluated", "subject": "model:m@1", "attributes": {"metrics": {"auc": "high"}}}),
            "invalid type",
        ),
        (
            json!({"kind": "dataset.registered", "subject": "dataset:d", "attributes": {"ownr": "x"}}),
            "unknown field `ownr`",
        ),
        (
            json!({"kind": "dataset.classified", "subject": "dataset:d", "attributes": {"contains_personal_data": true}}),
            "legal_basis",
        ),
        (
            json!({"kind": "dataset.classified", "subject": "dataset:d", "attributes": {"contains_personal_data": true, "legal_basis": "because", "retention": "P1Y"}}),
            "unknown variant",
        ),
        (json!({"kind": "run.started", "subject": "model:m@1"}), "`run:` entity"),
        (json!({"kind": "model.promoted", "subject": "model:m@1"}), "unknown kind"),
        (
            json!({"kind": "deployment.succeeded", "subject": "deployment:prod/m", "attributes": {"model": "model:m"}}),
            "model version",
        ),
        (
            json!({"kind": "deployment.succeeded", "subject": "deployment:m", "attributes": {"model": "model:m@1"}}),
            "ENVIRONMENT/NAME",
        ),
        (json!({"kind": "approval.requested", "subject": "approval:a"}), "POST /api/v1/approvals"),
    ];
    for (event, expected) in cases {
        let response = app.post_events(&event).await;
        assert_eq!(response.status(), 422, "{event}");
        let body: Value = response.json().await.unwrap();
        assert!(body["message"].as_str().unwrap().contains(expected), "{event}: {body}");
    }
    assert_eq!(app.size().await, 0);
    // Kinds outside the governed namespaces stay free-form.
    let custom = json!({"kind": "pipeline.drift_checked", "subject": "model:m@1", "attributes": {"psi": 0.31}});
    assert_eq!(app.post_events(&custom).await.status(), 201);
}

fn python_with_openlineage() -> Option<&'static str> {
    let found = std::process::Command::new("python3")
        .args(["-c", "import openlineage.client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("python3");
    }
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
        panic!("CI must run the OpenLineage client test, but python3 with openlineage-python is missing");
    }
    eprintln!("SKIPPED: the OpenLineage test needs python3 with openlineage-python (pip install openlineage-python)");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openlineage_python_client_events_become_runs_with_lineage() {
    let Some(python) = python_with_openlineage() else { return };
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    let token = app.token("airflow", &["ci"], &["*"]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/openlineage_client.py");
    let base = app.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python).arg(script).env("GOVLEDGER_URL", base).env("GOVLEDGER_TOKEN", token).output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let run_id = serde_json::from_str::<Value>(stdout.trim()).unwrap()["run_id"].as_str().unwrap().to_owned();

    // START and COMPLETE are recorded once each, though COMPLETE was sent twice.
    let events = crate::helpers::all_events(&app).await;
    let kinds: Vec<(&str, &str)> =
        events.iter().map(|e| (e["kind"].as_str().unwrap(), e["actor"].as_str().unwrap())).collect();
    assert_eq!(kinds, [("run.started", "airflow"), ("run.completed", "airflow")]);
    let run = format!("run:{run_id}");
    let entity = app.get_json(&format!("/api/v1/entities/{run}")).await;
    assert_eq!(entity["status"], "completed");
    // The original facets are kept.
    let facets = &events[0]["attributes"]["openlineage"]["inputs"][0]["facets"]["schema"]["fields"][0];
    assert_eq!(facets["name"], "amount");
    let lineage = app.get_json(&format!("/api/v1/lineage?node={run}&direction=both")).await;
    assert_eq!(
        refs(&lineage, "nodes"),
        set([
            run.as_str(),
            "job:airflow/fraud_training.train_model",
            "dataset:postgres/warehouse_5432/public.transactions",
            "dataset:s3/models/fraud/model.pkl",
        ])
    );
    let impact = app.get_json("/api/v1/impact?node=dataset:postgres/warehouse_5432/public.transactions").await;
    assert_eq!(impact["model_versions"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_queries_validate_their_input() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    for (path, status, code) in [
        ("/api/v1/lineage?node=nope", 422, "invalid_query"),
        ("/api/v1/lineage?node=model:m@1&direction=sideways", 422, "invalid_query"),
        ("/api/v1/lineage?node=model:m@1&depth=0", 422, "invalid_depth"),
        ("/api/v1/lineage?node=model:m@1&depth=51", 422, "invalid_depth"),
        ("/api/v1/lineage?node=model:m@1&as_of=yesterday", 422, "invalid_query"),
        ("/api/v1/lineage?node=model:m@1", 404, "not_found"),
        ("/api/v1/impact?node=dataset:d@1", 404, "not_found"),
        ("/api/v1/entities/dataset:d@1", 404, "not_found"),
        ("/api/v1/gate?model=model:m&environment=production", 422, "invalid_request"),
        ("/api/v1/gate?model=model:m@1", 400, "malformed_query"),
        ("/api/v1/approvals?state=maybe", 422, "invalid_query"),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(response.json::<Value>().await.unwrap()["error"], code, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_hides_projects_the_caller_cannot_read() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    app.post_events(&json!({"events": [
        {"kind": "dataset.version_created", "subject": "dataset:raw@1", "project": "fraud"},
        {"kind": "run.started", "subject": "run:shared-prep", "project": "fraud", "inputs": ["dataset:raw@1"], "outputs": ["dataset:clean@1"]},
        {"kind": "dataset.version_created", "subject": "dataset:clean@1", "project": "fraud"},
        {"kind": "run.started", "subject": "run:credit-train", "project": "credit", "inputs": ["dataset:clean@1"]},
    ]}))
    .await;
    let fraud_only = TestApp::attach(&app.base, &app.token("f", &["auditor"], &["fraud"]));
    let graph = fraud_only.get_json("/api/v1/lineage?node=dataset:raw@1&direction=downstream").await;
    assert_eq!(refs(&graph, "nodes"), set(["dataset:raw@1", "run:shared-prep", "dataset:clean@1"]));
    assert!(!graph.to_string().contains("credit-train"));
    assert_eq!(graph["hidden_nodes"], 1, "the credit run is counted, not named");
    let everyone = app.get_json("/api/v1/lineage?node=dataset:raw@1&direction=downstream").await;
    assert!(refs(&everyone, "nodes").contains("run:credit-train"));
}

fn cli(app: &TestApp, token: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_govledger"))
        .args(args)
        .env("GOVLEDGER_URL", &app.base)
        .env("GOVLEDGER_TOKEN", token)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_and_gate_from_the_command_line() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    let ci = app.token("ci-bot", &["ci"], &["*"]);
    let (app2, ci2) = (TestApp::attach(&app.base, &app.admin_token), ci.clone());
    let output = tokio::task::spawn_blocking(move || {
        cli(
            &app2,
            &ci2,
            &[
                "post",
                "--kind",
                "model.registered",
                "--subject",
                "model:churn@4",
                "--input",
                "run:train-9",
                "--input",
                "dataset:customers@7",
                "--attr",
                "framework=lightgbm",
                "--attr",
                "metrics.auc=0.87",
                "--project",
                "crm",
            ],
        )
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stored: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(stored["seq"], 1);
    assert_eq!(stored["actor"], "ci-bot");
    assert_eq!(stored["attributes"], json!({"framework": "lightgbm", "metrics": {"auc": 0.87}}));
    assert!(stored["idempotency_key"].as_str().unwrap().starts_with("client-"));

    // A bad event: a clear message and a non-zero exit, nothing written.
    let (app2, ci2) = (TestApp::attach(&app.base, &app.admin_token), ci.clone());
    let output = tokio::task::spawn_blocking(move || {
        cli(&app2, &ci2, &["post", "--kind", "model.registered", "--subject", "model:churn@5"])
    })
    .await
    .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("exactly one training run"));
    assert_eq!(app.size().await, 1);

    // The gate: exit 0 for an ungated environment, 1 for production without approval.
    for (environment, code) in [("dev", 0), ("production", 1)] {
        let (app2, ci2) = (TestApp::attach(&app.base, &app.admin_token), ci.clone());
        let output = tokio::task::spawn_blocking(move || {
            cli(&app2, &ci2, &["gate", "--model", "model:churn@4", "--environment", environment])
        })
        .await
        .unwrap();
        assert_eq!(output.status.code(), Some(code), "{environment}: {}", String::from_utf8_lossy(&output.stderr));
        let decision: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(decision["allowed"], code == 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_command_fills_an_empty_ledger_once() {
    let db = crate::helpers::TestDatabase::create(Backend::Sqlite).unwrap();
    let run = |db_args: Vec<String>| {
        std::process::Command::new(env!("CARGO_BIN_EXE_govledger")).arg("demo").args(db_args).output().unwrap()
    };
    let args = db.cli_args();
    let first = tokio::task::spawn_blocking(move || run(args)).await.unwrap();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(String::from_utf8_lossy(&first.stdout).contains("blocked deployment recorded at seq"));
    let args = db.cli_args();
    let second = tokio::task::spawn_blocking(move || run(args)).await.unwrap();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("already holds dataset:transactions"));
    let mut verify = vec!["verify".to_owned()];
    verify.extend(db.cli_args());
    let verified = std::process::Command::new(env!("CARGO_BIN_EXE_govledger")).args(verify).output().unwrap();
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stdout));

    // `govledger rebuild` reproduces the projections the appends wrote, table by table.
    let before = projections::fingerprint(&mut DbConn::establish(&db.target).unwrap()).unwrap();
    let mut rebuild = vec!["rebuild".to_owned()];
    rebuild.extend(db.cli_args());
    let rebuilt = std::process::Command::new(env!("CARGO_BIN_EXE_govledger")).args(rebuild).output().unwrap();
    let stdout = String::from_utf8_lossy(&rebuilt.stdout);
    assert!(rebuilt.status.success(), "{stdout}{}", String::from_utf8_lossy(&rebuilt.stderr));
    for (table, digest) in &before {
        assert!(stdout.contains(&format!("{table}: {digest}")), "{table} changed: {stdout}");
    }
    assert_eq!(projections::fingerprint(&mut DbConn::establish(&db.target).unwrap()).unwrap(), before);

    // A ledger written before the projections existed (simulated: emptied
    // tables and a backlog up to the head) is caught up when the store opens.
    {
        use diesel::RunQueryDsl;
        let mut conn = DbConn::establish(&db.target).unwrap();
        projections::clear(&mut conn).unwrap();
        let DbConn::Sqlite(c) = &mut conn else { unreachable!() };
        diesel::sql_query("UPDATE projection_state SET backlog_until = (SELECT MAX(seq) FROM events)")
            .execute(c)
            .unwrap();
    }
    assert_ne!(projections::fingerprint(&mut DbConn::establish(&db.target).unwrap()).unwrap(), before);
    let store = govledger::store::Store::open(db.target.clone(), 1, govledger::store::WriterConfig::default()).unwrap();
    store.close();
    let mut conn = DbConn::establish(&db.target).unwrap();
    assert_eq!(projections::fingerprint(&mut conn).unwrap(), before);
    assert_eq!(projections::backlog_until(&mut conn).unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openlineage_dataset_and_job_events_and_bad_input() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    let post = |body: Value| app.client.post(app.url("/api/v1/lineage?project=lake")).json(&body).send();
    let dataset = json!({"eventTime": "2026-03-03T09:00:00Z", "producer": "dbt",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/DatasetEvent",
        "dataset": {"namespace": "bigquery", "name": "proj.sales.orders", "facets": {"x_owner": {"team": "sales"}}}});
    let response = post(dataset.clone()).await.unwrap();
    assert_eq!(response.status(), 201);
    let stored: Value = response.json().await.unwrap();
    assert_eq!(
        (stored["kind"].as_str(), stored["subject"].as_str()),
        (Some("dataset.registered"), Some("dataset:bigquery/proj.sales.orders"))
    );
    assert_eq!(stored["project"], "lake");
    assert_eq!(stored["attributes"]["openlineage"]["dataset"]["facets"]["x_owner"]["team"], "sales");
    assert_eq!(post(dataset).await.unwrap().status(), 200, "a retried event writes nothing");
    let job = json!({"eventTime": "2026-03-03T09:00:00Z", "producer": "dbt", "schemaURL": "x",
        "job": {"namespace": "dbt", "name": "sales.daily"},
        "inputs": [{"namespace": "bigquery", "name": "proj.sales.orders"}],
        "outputs": [{"namespace": "bigquery", "name": "proj.sales.daily"}]});
    let stored: Value = post(job).await.unwrap().json().await.unwrap();
    assert_eq!(stored["kind"], "job.registered");
    assert_eq!(stored["inputs"], json!(["dataset:bigquery/proj.sales.orders"]));
    assert_eq!(stored["outputs"], json!(["dataset:bigquery/proj.sales.daily"]));
    for bad in [
        json!({"eventType": "START", "run": {"runId": "r"}}),
        json!({"eventTime": "2026-03-03T09:00:00Z", "eventType": "PAUSED", "run": {"runId": "r"}}),
        json!({"eventTime": "2026-03-03T09:00:00Z", "dataset": {"namespace": "", "name": "x"}}),
        json!([1, 2]),
    ] {
        let response = post(bad.clone()).await.unwrap();
        assert_eq!(response.status(), 422, "{bad}");
        assert_eq!(response.json::<Value>().await.unwrap()["error"], "invalid_openlineage_event");
    }
    assert_eq!(app.size().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_retries_until_the_server_answers() {
    // Reserve a port, start `govledger post` against it while nothing
    // listens, then start the server there: the retries land the event once.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let db = crate::helpers::TestDatabase::create(Backend::Sqlite).unwrap();
    let token = crate::helpers::mint(db.dir.path(), "ci-bot", &["ci"], &["*"]);
    let post = std::process::Command::new(env!("CARGO_BIN_EXE_govledger"))
        .args(["post", "--kind", "run.started", "--subject", "run:late-1"])
        .env("GOVLEDGER_URL", format!("http://127.0.0.1:{port}"))
        .env("GOVLEDGER_TOKEN", token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let mut config = govledger::config::Config::new(format!("127.0.0.1:{port}"), db.target.clone(), db.dir.path());
    config.workers = 1;
    let app = govledger::startup::Application::build(config).await.unwrap();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    let output = tokio::task::spawn_blocking(move || post.wait_with_output()).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("retrying with the same idempotency key"), "{stderr}");
    let stored: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!((stored["seq"].as_u64(), stored["subject"].as_str()), (Some(1), Some("run:late-1")));
    handle.stop(true).await;
}
