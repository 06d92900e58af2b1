//! Projects are walls (issue 20): an entity belongs to the project of the
//! event that created it, no other project can change, approve, deploy or
//! read it, and data without a project is visible only to readers of every
//! project. Every repro of the attack run, against SQLite and PostgreSQL.

use serde_json::{json, Value};

use crate::helpers::{client_with, Backend, TestApp};
use crate::on_both_backends;

struct Tenants {
    app: TestApp,
    alpha_ci: reqwest::Client,
    alpha_ds: reqwest::Client,
    alpha_risk: reqwest::Client,
    alpha_auditor: reqwest::Client,
    beta_ds: reqwest::Client,
    beta_ci: reqwest::Client,
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Project beta holds a trained, registered model with two versions and a
/// live deployment; project alpha holds tokens and nothing else yet.
async fn tenants(backend: Backend) -> Option<Tenants> {
    let app = TestApp::spawn(backend).await?;
    let token = |sub: &str, role: &str, project: &str| client_with(&app.token(sub, &[role], &[project]));
    let t = Tenants {
        alpha_ci: token("alpha-ci", "ci", "alpha"),
        alpha_ds: token("alpha-ds", "data_scientist", "alpha"),
        alpha_risk: token("alpha-risk", "risk_officer", "alpha"),
        alpha_auditor: token("alpha-auditor", "auditor", "alpha"),
        beta_ds: token("beta-ds", "data_scientist", "beta"),
        beta_ci: token("beta-ci", "ci", "beta"),
        app,
    };
    let post = |client: &reqwest::Client, body: Value| client.post(t.app.url("/api/v1/events")).json(&body);
    for body in [
        json!({"kind": "dataset.version_created", "subject": "dataset:beta-data@1", "project": "beta",
            "attributes": {"description": "beta's confidential loan book"}}),
        json!({"kind": "run.completed", "subject": "run:beta-train", "project": "beta",
            "inputs": ["dataset:beta-data@1"], "outputs": ["model:beta-model@1", "model:beta-model@2"]}),
        json!({"kind": "model.registered", "subject": "model:beta-model@1", "project": "beta", "inputs": ["run:beta-train"]}),
        json!({"kind": "model.registered", "subject": "model:beta-model@2", "project": "beta", "inputs": ["run:beta-train"]}),
    ] {
        let (status, answer) = send(post(&t.beta_ds, body)).await;
        assert_eq!(status, 201, "{answer}");
    }
    let (status, answer) = send(post(
        &t.beta_ci,
        json!({"kind": "deployment.succeeded",
        "subject": "deployment:production/beta-svc", "project": "beta", "attributes": {"model": "model:beta-model@1"}}),
    ))
    .await;
    assert_eq!(status, 201, "{answer}");
    Some(t)
}

async fn another_project_cannot_approve(backend: Backend) {
    let Some(t) = tenants(backend).await else { return };
    let size = t.app.size().await;
    let ask = |model: &str, project: &str| {
        t.alpha_ci
            .post(t.app.url("/api/v1/approvals"))
            .json(&json!({"model": model, "environment": "staging", "project": project}))
    };
    // The answer for beta's real model and for one that does not exist is
    // the same: alpha learns nothing of what beta holds.
    let (real, real_body) = send(ask("model:beta-model@2", "alpha")).await;
    let (missing, missing_body) = send(ask("model:beta-model@99", "alpha")).await;
    assert_eq!((real, missing), (404, 404), "{real_body} {missing_body}");
    assert_eq!(
        real_body["message"].as_str().unwrap().replace("@2", "@N"),
        missing_body["message"].as_str().unwrap().replace("@99", "@N")
    );
    // Even an all-project token cannot file beta's model under alpha.
    let (status, body) = send(
        t.app
            .client
            .post(t.app.url("/api/v1/approvals"))
            .json(&json!({"model": "model:beta-model@2", "environment": "staging", "project": "alpha"})),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (403, Some("project_mismatch")), "{body}");
    assert!(!body["message"].as_str().unwrap().contains("project beta"), "names nothing of the other project: {body}");
    assert_eq!(t.app.size().await, size, "nothing written");
    // Without a project, the approval takes the model's.
    let (status, approval) = send(
        t.beta_ci
            .post(t.app.url("/api/v1/approvals"))
            .json(&json!({"model": "model:beta-model@2", "environment": "staging"})),
    )
    .await;
    assert_eq!((status, approval["project"].as_str()), (201, Some("beta")), "{approval}");
    // alpha's risk officer cannot see it, decide on it, or open the gate with it.
    let id = approval["id"].as_str().unwrap();
    let (status, _) = send(
        t.alpha_risk
            .post(t.app.url(&format!("/api/v1/approvals/{id}/decision")))
            .json(&json!({"decision": "grant", "reason": "looks fine"})),
    )
    .await;
    assert_eq!(status, 404);
    let inbox = t.alpha_risk.get(t.app.url("/api/v1/approvals?state=pending")).send().await.unwrap();
    let inbox: Value = inbox.json().await.unwrap();
    assert_eq!(inbox["approvals"], json!([]), "{inbox}");
    let (status, _) =
        send(t.alpha_ci.get(t.app.url("/api/v1/gate?model=model:beta-model@2&environment=staging"))).await;
    assert_eq!(status, 404);
    let gate = t.app.get_json("/api/v1/gate?model=model:beta-model@2&environment=staging").await;
    assert_eq!(gate["decision"], "deny", "{gate}");
}
on_both_backends!(another_project_cannot_approve_or_open_the_gate, another_project_cannot_approve);

async fn another_project_cannot_change(backend: Backend) {
    let Some(t) = tenants(backend).await else { return };
    let size = t.app.size().await;
    let post = |client: &reqwest::Client, body: Value| client.post(t.app.url("/api/v1/events")).json(&body);
    for (client, body) in [
        (&t.alpha_ds, json!({"kind": "model.retired", "subject": "model:beta-model@1", "project": "alpha"})),
        (
            &t.alpha_ci,
            json!({"kind": "deployment.succeeded", "subject": "deployment:production/beta-svc",
            "project": "alpha", "attributes": {"model": "model:beta-model@2"}}),
        ),
        // Its own deployment, serving beta's model.
        (
            &t.alpha_ci,
            json!({"kind": "deployment.succeeded", "subject": "deployment:production/alpha-svc",
            "project": "alpha", "attributes": {"model": "model:beta-model@1"}}),
        ),
        // An event without a project about beta's model.
        (
            &t.app.client,
            json!({"kind": "model.evaluated", "subject": "model:beta-model@1",
            "attributes": {"metrics": {"auc": 0.1}}}),
        ),
    ] {
        let (status, answer) = send(post(client, body.clone())).await;
        assert_eq!((status, answer["error"].as_str()), (403, Some("project_mismatch")), "{body}: {answer}");
    }
    assert_eq!(t.app.size().await, size, "nothing written");
    let model = t.app.get_json("/api/v1/entities/model:beta-model@1").await;
    assert_eq!(model["status"], "registered");
    let deployment = t.app.get_json("/api/v1/entities/deployment:production/beta-svc").await;
    assert_eq!(deployment["state"]["live_model"], "model:beta-model@1", "{deployment}");
    // beta itself still can.
    let (status, _) =
        send(post(&t.beta_ds, json!({"kind": "model.retired", "subject": "model:beta-model@1", "project": "beta"})))
            .await;
    assert_eq!(status, 201);
}
on_both_backends!(another_project_cannot_change_an_entity, another_project_cannot_change);

async fn naming_does_not_squat(backend: Backend) {
    let Some(t) = tenants(backend).await else { return };
    let post = |client: &reqwest::Client, body: Value| client.post(t.app.url("/api/v1/events")).json(&body);
    // alpha names beta's future dataset before beta records it.
    let (status, _) = send(post(
        &t.alpha_ci,
        json!({"kind": "run.started", "subject": "run:alpha-train",
        "project": "alpha", "inputs": ["dataset:beta-future@1"]}),
    ))
    .await;
    assert_eq!(status, 201);
    let (status, body) = send(post(
        &t.beta_ds,
        json!({"kind": "dataset.version_created",
        "subject": "dataset:beta-future@1", "project": "beta",
        "attributes": {"description": "secret merger data", "location": "s3://beta/secret/"}}),
    ))
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(t.beta_ds.get(t.app.url("/api/v1/entities/dataset:beta-future@1"))).await;
    assert_eq!((status, body["project"].as_str()), (200, Some("beta")), "{body}");
    let (status, body) = send(t.alpha_ci.get(t.app.url("/api/v1/entities/dataset:beta-future@1"))).await;
    assert_eq!(status, 404, "{body}");
    // alpha's own event still names the input it wrote; nothing of beta's
    // dataset itself shows, and no edge leads to it.
    let (status, entity) = send(t.alpha_ci.get(t.app.url("/api/v1/entities/run:alpha-train"))).await;
    assert_eq!(status, 200);
    assert_eq!(entity["upstream"], json!([]), "{entity}");
    assert!(!entity.to_string().contains("secret"), "{entity}");
    let (status, graph) = send(t.alpha_ci.get(t.app.url("/api/v1/lineage?node=run:alpha-train"))).await;
    assert_eq!(status, 200);
    assert!(!graph.to_string().contains("beta-future") && !graph.to_string().contains("secret"), "{graph}");
    assert_eq!(graph["hidden_nodes"], 1, "{graph}");
    // A version nobody created yet is nobody's: a scoped reader does not see it.
    let (status, _) = send(post(
        &t.alpha_ci,
        json!({"kind": "run.started", "subject": "run:alpha-2",
        "project": "alpha", "outputs": ["dataset:unborn@1"]}),
    ))
    .await;
    assert_eq!(status, 201);
    let (status, _) = send(t.alpha_auditor.get(t.app.url("/api/v1/entities/dataset:unborn@1"))).await;
    assert_eq!(status, 404);
}
on_both_backends!(naming_an_entity_does_not_make_it_yours, naming_does_not_squat);

async fn reads_follow_one_rule(backend: Backend) {
    let Some(t) = tenants(backend).await else { return };
    // An alpha approval whose model was trained on beta's data: the inbox
    // shows alpha's evidence and nothing of beta's.
    let post = |client: &reqwest::Client, body: Value| client.post(t.app.url("/api/v1/events")).json(&body);
    for body in [
        json!({"kind": "run.completed", "subject": "run:alpha-train", "project": "alpha",
            "inputs": ["dataset:beta-data@1"], "outputs": ["model:alpha-model@1"]}),
        json!({"kind": "model.registered", "subject": "model:alpha-model@1", "project": "alpha", "inputs": ["run:alpha-train"]}),
    ] {
        let (status, answer) = send(post(&t.alpha_ds, body)).await;
        assert_eq!(status, 201, "{answer}");
    }
    let (status, _) = send(
        t.alpha_ci
            .post(t.app.url("/api/v1/approvals"))
            .json(&json!({"model": "model:alpha-model@1", "environment": "staging"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, inbox) = send(t.alpha_risk.get(t.app.url("/api/v1/approvals?model=model:alpha-model@1"))).await;
    assert_eq!(status, 200);
    assert_eq!(inbox["approvals"].as_array().unwrap().len(), 1);
    assert!(!inbox.to_string().contains("beta"), "{inbox}");

    // Events without a project: only readers of every project see them.
    t.app
        .append_json(&json!({"kind": "dataset.version_created", "subject": "dataset:orphan@1",
        "attributes": {"description": "no project"}}))
        .await;
    let scoped = &t.alpha_auditor;
    for path in [
        "/api/v1/entities/dataset:orphan@1",
        "/api/v1/lineage?node=dataset:orphan@1",
        "/api/v1/impact?node=dataset:orphan@1",
    ] {
        let (status, body) = send(scoped.get(t.app.url(path))).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(t.app.get(path).await.status(), 200, "{path} for a reader of every project");
    }
    let (status, trail) = send(scoped.get(t.app.url("/api/v1/reports/audit-trail?format=json"))).await;
    assert_eq!(status, 200, "{trail}");
    let text = trail.to_string();
    assert!(!text.contains("orphan") && !text.contains("beta-model"), "{text}");

    // The gate answers a token scoped to the model's own project (issue 19).
    let alpha_gate = t.alpha_ci.get(t.app.url("/api/v1/gate?model=model:alpha-model@1&environment=production"));
    let (status, gate) = send(alpha_gate).await;
    assert_eq!((status, gate["decision"].as_str()), (200, Some("deny")), "{gate}");

    // A role without `events read`, and a role the policy does not define, see nothing.
    t.app.add_policy_line("p, loader, *, events/dataset.*, append, allow").await;
    for role in ["loader", "ghost"] {
        let client = client_with(&t.app.token(&format!("{role}-user"), &[role], &["*"]));
        for path in [
            "/api/v1/entities/model:beta-model@1",
            "/api/v1/lineage?node=model:beta-model@1",
            "/api/v1/impact?node=dataset:beta-data@1",
            "/api/v1/entities/dataset:orphan@1",
        ] {
            let (status, body) = send(client.get(t.app.url(path))).await;
            assert!(status == 404 || status == 403, "{role} {path}: {status} {body}");
        }
        let (status, _) =
            send(client.get(t.app.url("/api/v1/gate?model=model:beta-model@1&environment=staging"))).await;
        assert!(status == 404 || status == 403, "{role} gate: {status}");
    }
}
on_both_backends!(reads_follow_one_rule_across_routes, reads_follow_one_rule);

/// An event recorded by a server from before projects were walls: chained
/// correctly, but about another project's entity. Written straight into the
/// database, as only an old ledger can hold it.
fn old_ledger_event(app: &TestApp, kind: &str, subject: &str, project: &str) -> u64 {
    use govledger::ledger::Event;
    use govledger::store::{events, DbConn};
    let mut conn = DbConn::establish(&app.db().target).unwrap();
    let head = events::head(&mut conn).unwrap();
    let mut event = Event {
        seq: head.size + 1,
        id: "01a2331f-0000-7000-8000-00000000beef".into(),
        recorded_at: head.recorded_at.clone().unwrap(),
        actor: "alpha-ds".into(),
        kind: kind.into(),
        subject: subject.into(),
        project: Some(project.into()),
        inputs: Vec::new(),
        outputs: Vec::new(),
        attributes: "{}".into(),
        occurred_at: None,
        idempotency_key: None,
        prev_hash: head.hash.unwrap(),
        hash: [0; 32],
    };
    event.hash = govledger::ledger::event_hash(&event);
    events::insert(&mut conn, &[events::EventRow::from_event(&event)]).unwrap();
    govledger::store::rebuild_projections(&mut conn).unwrap();
    event.seq
}

async fn old_breaches_are_findings(backend: Backend) {
    let Some(t) = tenants(backend).await else { return };
    let seq = old_ledger_event(&t.app, "model.retired", "model:beta-model@1", "alpha");
    let verify = t.app.get_json("/api/v1/verify").await;
    assert_eq!(verify["failure"], Value::Null, "the old event is a valid part of the chain: {verify}");
    // The rebuilt projections keep beta as the owner.
    let model = t.app.get_json("/api/v1/entities/model:beta-model@1").await;
    assert_eq!(model["project"], "beta");
    let inventory = t.app.get_json("/api/v1/reports/model-inventory?format=json").await;
    let findings: Vec<(String, u64)> =
        findings_of(&inventory).into_iter().filter(|(text, _)| text.contains("must stay in its project")).collect();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].1, seq);
    assert!(findings[0].0.contains("created in project beta") && findings[0].0.contains("recorded in project alpha"));
    // A reader of beta alone does not learn of alpha's event.
    let beta_auditor = client_with(&t.app.token("beta-auditor", &["auditor"], &["beta"]));
    let (status, scoped) = send(beta_auditor.get(t.app.url("/api/v1/reports/model-inventory?format=json"))).await;
    assert_eq!(status, 200);
    assert!(!scoped.to_string().contains("must stay in its project"), "{scoped}");
}
on_both_backends!(an_old_ledger_s_cross_project_events_are_findings, old_breaches_are_findings);

async fn forged_approval_rows(backend: Backend) {
    use diesel::RunQueryDsl;
    let Some(t) = tenants(backend).await else { return };
    let (status, approval) = send(
        t.beta_ci
            .post(t.app.url("/api/v1/approvals"))
            .json(&json!({"model": "model:beta-model@2", "environment": "staging"})),
    )
    .await;
    assert_eq!(status, 201, "{approval}");
    let id = approval["id"].as_str().unwrap().to_owned();
    // Someone with the database files grants it without any event.
    let mut conn = govledger::store::DbConn::establish(&t.app.db().target).unwrap();
    for sql in [
        format!(
            "UPDATE approvals SET state = 'granted', granted_at = '2026-01-01T00:00:00.000000Z', \
             expires_at = '2099-01-01T00:00:00.000000Z' WHERE id = '{id}'"
        ),
        format!("INSERT INTO approval_decisions VALUES (0, '{id}', 'mallory', 'grant', 'forged', '2026-01-01T00:00:00.000000Z')"),
        format!("INSERT INTO approval_decisions VALUES (-1, '{id}', 'trudy', 'grant', 'forged', '2026-01-01T00:00:00.000000Z')"),
    ] {
        govledger::with_conn!(&mut conn, |c| diesel::sql_query(&sql).execute(c)).unwrap();
    }
    // verify names the table and key...
    let verify = t.app.get_json("/api/v1/verify").await;
    assert_eq!(verify["ok"], false, "{verify}");
    assert_eq!(verify["failure"]["kind"], "projection_mismatch", "{verify}");
    assert!(verify["failure"]["message"].as_str().unwrap().contains(&format!("approvals row {id}")), "{verify}");
    // ...and the gate, which reads the approval's own events, is not fooled.
    let gate = t.app.get_json("/api/v1/gate?model=model:beta-model@2&environment=staging").await;
    assert_eq!(gate["decision"], "deny", "{gate}");
    assert!(gate["reasons"][0].as_str().unwrap().contains("pending: 0 of 1"), "{gate}");
    let (status, blocked) = send(
        t.beta_ci
            .post(t.app.url("/api/v1/deployments"))
            .json(&json!({"model": "model:beta-model@2", "environment": "staging"})),
    )
    .await;
    assert_eq!(status, 409, "{blocked}");
    let event = t.app.get_json(&format!("/api/v1/events/{}", blocked["blocked_event_seq"])).await;
    assert!(!event["attributes"]["approval_seqs"].as_array().unwrap().contains(&json!(0)), "{event}");
}
on_both_backends!(a_forged_approval_row_is_caught_by_verify_and_ignored_by_the_gate, forged_approval_rows);

async fn old_redefinitions_are_findings(backend: Backend) {
    let Some(t) = tenants(backend).await else { return };
    // An old ledger redefined the dataset beta's models were trained on.
    let seq = old_ledger_event(&t.app, "dataset.version_created", "dataset:beta-data@1", "beta");
    let text_of = |report: &Value| -> Vec<(String, u64)> {
        findings_of(report).into_iter().filter(|(text, _)| text.contains("created again")).collect()
    };
    let inventory = t.app.get_json("/api/v1/reports/model-inventory?format=json").await;
    let dossier = t.app.get_json("/api/v1/reports/model-dossier?subject=model:beta-model@2&format=json").await;
    for report in [&inventory, &dossier] {
        let found = text_of(report);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].1, seq, "the finding cites the redefinition");
        assert!(found[0].0.contains("dataset:beta-data@1 was created again at seq"), "{found:?}");
    }
}
on_both_backends!(an_old_ledger_s_redefined_version_is_a_finding, old_redefinitions_are_findings);

/// The statements of a report's findings sections: (text, seq).
fn findings_of(report: &Value) -> Vec<(String, u64)> {
    report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["show"] == "findings")
        .flat_map(|s| s["statements"].as_array().cloned().unwrap_or_default())
        .map(|s| (s["text"].as_str().unwrap().to_owned(), s["seq"].as_u64().unwrap()))
        .collect()
}
