//! Gates that read evaluations and monitoring: what policies/approvals.toml
//! asks of a version beyond its approvals (a passing, fresh evaluation on
//! data it was not trained on; no open breach), the override a grant must
//! give when the version falls short, and the dossier finding it leaves.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{client_with, Backend, TestApp};
use crate::on_both_backends;

const MODEL: &str = "model:fraud-x@1";

/// Production with one approver, evaluations valid for 10 seconds (so a
/// test can watch one go stale) and no open breach allowed.
const RULES: &str = r#"
[environments.dev]
gated = false

[environments.staging]
approvals_required = 1
approver_roles = ["risk_officer"]
valid_for = "1d"

[environments.production]
approvals_required = 1
approver_roles = ["risk_officer"]
valid_for = "1d"
evaluation_max_age = "10s"
no_open_breach = true
"#;

async fn status_and_body(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn app(backend: Backend) -> Option<TestApp> {
    TestApp::spawn_with(backend, |c| {
        c.approval_rules = govledger::governance::ApprovalRules::parse(RULES).unwrap();
    })
    .await
}

/// Trained by run:r1 on dataset:train@1, registered, approval requested
/// for production by the pipeline; answers the approval's id.
async fn setup(app: &TestApp) -> String {
    let body = json!({"events": [
        {"kind": "run.started", "subject": "run:r1", "project": "fraud", "inputs": ["dataset:train@1"]},
        {"kind": "run.completed", "subject": "run:r1", "project": "fraud", "outputs": [MODEL]},
        {"kind": "model.registered", "subject": MODEL, "project": "fraud", "inputs": ["run:r1"]},
    ]});
    assert_eq!(app.post_events(&body).await.status(), 201);
    request(app).await
}

async fn request(app: &TestApp) -> String {
    let ci = client_with(&app.token("pipeline", &["ci"], &["*"]));
    let ask = json!({"model": MODEL, "environment": "production"});
    let approval = crate::helpers::json_of(ci.post(app.url("/api/v1/approvals")).json(&ask)).await;
    approval["id"].as_str().unwrap().to_owned()
}

async fn evaluate(app: &TestApp, dataset: &str, passed: bool) -> u64 {
    let e = app
        .append_json(&json!({"kind": "model.evaluated", "subject": MODEL, "project": "fraud", "inputs": [dataset],
                             "attributes": {"metrics": {"auc": 0.95}, "thresholds": {"auc": 0.92}, "passed": passed}}))
        .await;
    e["seq"].as_u64().unwrap()
}

async fn grant(app: &TestApp, who: &str, id: &str, why: Option<&str>) -> (u16, Value) {
    let officer = client_with(&app.token(who, &["risk_officer"], &["*"]));
    let mut body = json!({"decision": "grant", "reason": "reviewed"});
    if let Some(why) = why {
        body["override_reason"] = json!(why);
    }
    let response = officer.post(app.url(&format!("/api/v1/approvals/{id}/decision"))).json(&body).send().await.unwrap();
    status_and_body(response).await
}

async fn gate(app: &TestApp) -> Value {
    app.get_json(&format!("/api/v1/gate?model={MODEL}&environment=production")).await
}

fn check<'a>(gate: &'a Value, rule: &str) -> &'a Value {
    gate["checks"].as_array().unwrap().iter().find(|c| c["rule"] == rule).unwrap_or_else(|| panic!("{gate}"))
}

fn reasons(gate: &Value) -> String {
    gate["reasons"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect::<Vec<_>>().join(" | ")
}

/// Reports a daily AUC below the fraud-auc minimum (0.90) for three
/// days: a critical breach opens; answers its seq.
async fn breach(app: &TestApp) -> u64 {
    let reports: Vec<Value> = (1..=3)
        .map(|day| {
            json!({"kind": "monitoring.metric_reported", "subject": MODEL, "project": "fraud",
                   "attributes": {"metric": "auc", "value": 0.85, "environment": "production",
                     "window": {"start": format!("2026-11-{day:02}T00:00:00Z"), "end": format!("2026-11-{:02}T00:00:00Z", day + 1)}}})
        })
        .collect();
    let answer = app.append_json(&json!({"events": reports})).await;
    let breach = answer["events"].as_array().unwrap().iter().find(|e| e["kind"] == "monitoring.threshold_breached");
    breach.unwrap_or_else(|| panic!("no breach in {answer}"))["seq"].as_u64().unwrap()
}

async fn evaluations_gate_the_version(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let id = setup(&app).await;

    // Not evaluated: a grant must say why it goes ahead; nothing is written.
    let size = app.size().await;
    let (status, body) = grant(&app, "rita", &id, None).await;
    assert_eq!((status, body["error"].as_str()), (422, Some("override_reason_required")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("has no evaluation on the record"), "{body}");
    assert_eq!(app.size().await, size);
    let inbox = app.get_json(&format!("/api/v1/approvals/{id}")).await;
    assert_eq!(inbox["checks"][0]["passed"], false, "the approval shows the failure: {inbox}");

    // Evaluated on its own training data: it still fails, naming the dataset.
    let own = evaluate(&app, "dataset:train@1", true).await;
    let g = gate(&app).await;
    let evaluation = check(&g, "evaluation");
    assert_eq!(evaluation["passed"], false);
    let reason = evaluation["reason"].as_str().unwrap();
    assert!(reason.contains(&format!("seq {own} was on dataset:train@1, which trained it")), "{reason}");

    // A failing evaluation on other data: the newest one counts.
    let failed = evaluate(&app, "dataset:holdout@1", false).await;
    let g = gate(&app).await;
    assert!(check(&g, "evaluation")["reason"].as_str().unwrap().contains("did not pass"), "{g}");
    assert_eq!(check(&g, "evaluation")["seqs"], json!([failed]));
    let (status, _) = grant(&app, "rita", &id, None).await;
    assert_eq!(status, 422);

    // A passing fresh one on other data: granted with no override, allowed,
    // and the gate cites the evaluation it relied on.
    let passing = evaluate(&app, "dataset:holdout@2", true).await;
    let (status, body) = grant(&app, "rita", &id, None).await;
    assert_eq!((status, body["state"].as_str()), (200, Some("granted")), "{body}");
    let g = gate(&app).await;
    assert_eq!(g["decision"], "allow", "{g}");
    assert_eq!(check(&g, "evaluation")["passed"], true);
    assert!(g["relied_on_seqs"].as_array().unwrap().contains(&json!(passing)), "{g}");
    assert!(g["relied_on"].as_array().unwrap().iter().any(|c| c["seq"] == passing && c["hash"].is_string()));
    assert_eq!(check(&g, "no_open_breach")["passed"], true);

    // Ten seconds on, the evaluation is stale: denied, with the reason.
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    let g = gate(&app).await;
    assert_eq!(g["decision"], "deny", "{g}");
    assert!(reasons(&g).contains("too long ago"), "{g}");
    let ci = client_with(&app.token("pipeline", &["ci"], &["*"]));
    let deploy = json!({"model": MODEL, "environment": "production"});
    let refused = ci.post(app.url("/api/v1/deployments")).json(&deploy).send().await.unwrap();
    let (status, body) = status_and_body(refused).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("deployment_blocked")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("rule evaluation"), "{body}");

    // A fresh evaluation opens it again, and the deployment goes through.
    evaluate(&app, "dataset:holdout@3", true).await;
    assert_eq!(gate(&app).await["decision"], "allow");
    let accepted = ci.post(app.url("/api/v1/deployments")).json(&deploy).send().await.unwrap();
    assert_eq!(accepted.status(), 201);
}
on_both_backends!(a_gate_reads_the_version_s_evaluations, evaluations_gate_the_version);

async fn breaches_need_an_override(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let id = setup(&app).await;
    evaluate(&app, "dataset:holdout@1", true).await;
    // An override given while nothing fails is recorded, and covers nothing.
    let (status, body) = grant(&app, "rita", &id, Some("belt and braces")).await;
    assert_eq!(status, 200, "{body}");
    let breach = breach(&app).await;
    let g = gate(&app).await;
    assert_eq!(g["decision"], "deny", "an override given before the breach does not cover it: {g}");
    let open = check(&g, "no_open_breach");
    assert_eq!((open["passed"].as_bool(), &open["seqs"]), (Some(false), &json!([breach])));
    assert!(reasons(&g).contains("fraud-auc in production"), "{g}");

    // A reject takes no override; a blank one is refused too.
    let second = request(&app).await;
    let officer = client_with(&app.token("raj", &["risk_officer"], &["*"]));
    for body in [
        json!({"decision": "reject", "reason": "no", "override_reason": "why"}),
        json!({"decision": "grant", "reason": "ok", "override_reason": "  "}),
    ] {
        let r =
            officer.post(app.url(&format!("/api/v1/approvals/{second}/decision"))).json(&body).send().await.unwrap();
        let (status, answer) = status_and_body(r).await;
        assert_eq!((status, answer["error"].as_str()), (422, Some("invalid_request")), "{body}: {answer}");
    }
    // raj overrides the breach on a new approval: recorded with the rule
    // and what it found; the gate allows and names the override.
    let why = "AUC dip traced to a labelling delay; the retrained version is two days out";
    let (status, body) = grant(&app, "raj", &second, Some(why)).await;
    assert_eq!(status, 200, "{body}");
    let grant_seq = body["decisions"][0]["seq"].as_u64().unwrap();
    let recorded = app.get_json(&format!("/api/v1/events/{grant_seq}")).await;
    let a = &recorded["attributes"];
    assert_eq!((a["override_reason"].as_str(), &a["overridden"]), (Some(why), &json!(["no_open_breach"])), "{a}");
    assert!(a["failed_checks"][0].as_str().unwrap().contains("open monitoring breach"), "{a}");
    let g = gate(&app).await;
    assert_eq!(g["decision"], "allow", "{g}");
    assert_eq!(check(&g, "no_open_breach")["overridden_by"]["seq"], grant_seq);
    assert!(reasons(&g).contains(&format!("overridden by raj at seq {grant_seq}: {why}")), "{g}");

    // The dossier's findings show the override, citing the grant.
    let dossier = app.get_json(&format!("/api/v1/reports/model-dossier?subject={MODEL}&format=json")).await;
    let findings: Vec<&Value> = dossier["sections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["show"] == "findings")
        .flat_map(|s| s["statements"].as_array().unwrap())
        .collect();
    let overriding = findings
        .iter()
        .find(|f| f["seq"] == grant_seq)
        .unwrap_or_else(|| panic!("no finding cites the grant: {findings:?}"));
    let text = overriding["text"].as_str().unwrap();
    assert!(text.contains("overriding rule no_open_breach") && text.contains(why), "{text}");
}
on_both_backends!(an_open_breach_needs_an_override_that_the_dossier_reports, breaches_need_an_override);
