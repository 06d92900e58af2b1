//! The project matrix (issues 19 and 20): every route variant, for every
//! role (the seven shipped, one defined without `events read`, one the
//! policy does not define), with a token scoped to project alpha and one for
//! every project, against data of alpha, of beta and of no project. Each
//! cell asserts the status (allowed, or refused with 403/404) and that an
//! allowed answer holds nothing of a project outside the token's scope.
//! A route of the OpenAPI description without a row here fails the test.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{client_with, Backend, TestApp};
use crate::on_both_backends;

const ROLES: [&str; 9] =
    ["admin", "auditor", "viewer", "risk_officer", "data_scientist", "ci", "dpo", "loader", "ghost"];
/// Roles that may read events (every shipped role).
const READERS: &[&str] = &["admin", "auditor", "viewer", "risk_officer", "data_scientist", "ci", "dpo"];
const TARGETS: [&str; 3] = ["alpha", "beta", "none"];
const SCOPES: [&str; 2] = ["alpha", "*"];

/// What a route does with data of a project it may not show.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    /// Answers the one thing asked about, or refuses (403/404).
    One,
    /// A listing: always 200, holding the target's data only when visible.
    Listing,
}

struct Row {
    method: Method,
    /// The OpenAPI path it exercises.
    route: &'static str,
    /// `{T}` is the target's marker (`alpha`, `beta`, `none`); `{SEQ}`,
    /// `{APPROVAL}`, `{N}` are filled per cell.
    path: &'static str,
    body: Option<&'static str>,
    /// Roles whose policy allows it (data and scope permitting).
    roles: &'static [&'static str],
    shape: Shape,
}

fn row(method: Method, route: &'static str, path: &'static str, roles: &'static [&'static str]) -> Row {
    Row { method, route, path, body: None, roles, shape: Shape::One }
}

fn rows() -> Vec<Row> {
    let listing =
        |route, path| Row { method: Method::GET, route, path, body: None, roles: READERS, shape: Shape::Listing };
    let post = |route, path, body, roles| Row {
        method: Method::POST,
        route,
        path,
        body: Some(body),
        roles,
        shape: Shape::One,
    };
    const REPORTS: &[&str] = &["admin", "auditor", "risk_officer", "dpo"];
    const MODEL_WRITERS: &[&str] = &["admin", "data_scientist", "ci"];
    const DATASET_WRITERS: &[&str] = &["admin", "data_scientist", "ci", "loader"];
    const DEPLOYERS: &[&str] = &["admin", "ci"];
    vec![
        row(Method::GET, "/api/v1/events/{seq}", "/api/v1/events/{SEQ}", READERS),
        row(Method::GET, "/api/v1/entities/{ref}", "/api/v1/entities/dataset:ds-{T}@1", READERS),
        row(Method::GET, "/api/v1/entities/{ref}", "/api/v1/entities/model:model-{T}@1", READERS),
        row(Method::GET, "/api/v1/entities/{ref}", "/api/v1/entities/run:run-{T}", READERS),
        row(Method::GET, "/api/v1/entities/{ref}", "/api/v1/entities/deployment:dev/svc-{T}", READERS),
        row(Method::GET, "/api/v1/entities/{ref}", "/api/v1/entities/dataset:ds-{T}", READERS),
        row(Method::GET, "/api/v1/lineage", "/api/v1/lineage?node=model:model-{T}@1", READERS),
        row(Method::GET, "/api/v1/lineage", "/api/v1/lineage?node=dataset:ds-{T}@1&direction=downstream", READERS),
        row(Method::GET, "/api/v1/lineage", "/api/v1/lineage?node=deployment:dev/svc-{T}&direction=upstream", READERS),
        row(Method::GET, "/api/v1/lineage", "/api/v1/lineage?node=run:run-{T}&as_of=2099-01-01T00:00:00Z", READERS),
        row(Method::GET, "/api/v1/impact", "/api/v1/impact?node=dataset:ds-{T}@1", READERS),
        row(Method::GET, "/api/v1/impact", "/api/v1/impact?node=run:run-{T}", READERS),
        row(Method::GET, "/api/v1/gate", "/api/v1/gate?model=model:model-{T}@1&environment=staging", READERS),
        row(Method::GET, "/api/v1/gate", "/api/v1/gate?model=model:model-{T}@1&environment=production", READERS),
        row(Method::GET, "/api/v1/approvals/{id}", "/api/v1/approvals/{APPROVAL}", READERS),
        row(Method::GET, "/api/v1/proofs/inclusion", "/api/v1/proofs/inclusion?seq={SEQ}", READERS),
        listing("/api/v1/approvals", "/api/v1/approvals?model=model:model-{T}@1"),
        listing("/api/v1/approvals", "/api/v1/approvals?state=pending"),
        listing("/api/v1/events", "/api/v1/events?subject=model:model-{T}@1"),
        listing("/api/v1/events", "/api/v1/events?limit=1000"),
        listing("/api/v1/events", "/api/v1/events?kind=model.registered"),
        listing("/api/v1/search", "/api/v1/search?q=confidential&consistent=true"),
        listing("/api/v1/search", "/api/v1/search?q=model-{T}&consistent=true"),
        Row { roles: REPORTS, ..listing("/api/v1/reports/{type}", "/api/v1/reports/audit-trail?format=json") },
        Row { roles: REPORTS, ..listing("/api/v1/reports/{type}", "/api/v1/reports/model-inventory?format=json") },
        Row {
            roles: REPORTS,
            ..row(
                Method::GET,
                "/api/v1/reports/{type}",
                "/api/v1/reports/model-dossier?subject=model:model-{T}@1&format=json",
                REPORTS,
            )
        },
        Row {
            roles: REPORTS,
            ..row(
                Method::GET,
                "/api/v1/reports/{type}",
                "/api/v1/reports/gdpr-processing?subject=dataset:ds-{T}&format=json",
                REPORTS,
            )
        },
        post(
            "/api/v1/events",
            "/api/v1/events",
            r#"{"kind": "model.evaluated", "subject": "model:model-{T}@1", {PROJECT} "attributes": {"metrics": {"auc": 0.9}}}"#,
            MODEL_WRITERS,
        ),
        post(
            "/api/v1/events",
            "/api/v1/events",
            r#"{"kind": "model.explained", "subject": "model:model-{T}@1", {PROJECT} "attributes": {"method": "shap"}}"#,
            MODEL_WRITERS,
        ),
        post(
            "/api/v1/events",
            "/api/v1/events",
            r#"{"kind": "dataset.classified", "subject": "dataset:ds-{T}@1", {PROJECT} "attributes": {"contains_personal_data": false}}"#,
            DATASET_WRITERS,
        ),
        post(
            "/api/v1/events",
            "/api/v1/events",
            r#"{"kind": "run.updated", "subject": "run:run-{T}", {PROJECT} "attributes": {}}"#,
            MODEL_WRITERS,
        ),
        post(
            "/api/v1/events",
            "/api/v1/events",
            r#"{"events": [{"kind": "run.updated", "subject": "run:run-{T}", {PROJECT} "attributes": {}}]}"#,
            MODEL_WRITERS,
        ),
        post(
            "/api/v1/events",
            "/api/v1/events",
            r#"{"kind": "deployment.succeeded", "subject": "deployment:dev/svc-{T}", {PROJECT} "attributes": {"model": "model:model-{T}@1"}}"#,
            DEPLOYERS,
        ),
        post(
            "/api/v1/approvals",
            "/api/v1/approvals",
            r#"{"model": "model:model-{T}@1", "environment": "staging"}"#,
            MODEL_WRITERS,
        ),
        post(
            "/api/v1/approvals",
            "/api/v1/approvals",
            r#"{"model": "model:model-{T}@1", "environment": "production"}"#,
            MODEL_WRITERS,
        ),
        post(
            "/api/v1/deployments",
            "/api/v1/deployments",
            r#"{"model": "model:model-{T}@1", "environment": "dev", "name": "svc-{T}"}"#,
            DEPLOYERS,
        ),
        post(
            "/api/v1/deployments",
            "/api/v1/deployments",
            r#"{"model": "model:model-{T}@1", "environment": "staging", "name": "svc-{T}"}"#,
            DEPLOYERS,
        ),
        post(
            "/api/v1/approvals/{id}/decision",
            "/api/v1/approvals/{APPROVAL}/decision",
            r#"{"decision": "grant", "reason": "matrix"}"#,
            &["risk_officer"],
        ),
        post(
            "/api/v1/lineage",
            "/api/v1/lineage?project={T}",
            r#"{"eventType": "START", "eventTime": "2026-03-03T09:00:00Z", "run": {"runId": "{UUID}"}, "job": {"namespace": "m", "name": "job-{T}"}, "producer": "matrix", "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json"}"#,
            MODEL_WRITERS,
        ),
    ]
}

/// Routes the matrix does not cover with data of a project, and why: they
/// are public, about the whole ledger (refused to scoped tokens), or about
/// administration (tested in access.rs and inputs.rs).
const ELSEWHERE: [(&str, &str); 14] = [
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/checkpoint"),
    ("GET", "/api/v1/checkpoint/key"),
    ("GET", "/api/v1/head"),
    ("GET", "/api/v1/verify"),
    ("GET", "/api/v1/proofs/consistency"),
    ("POST", "/api/v1/tokens"),
    ("GET", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens/{jti}/revoke"),
    ("GET", "/api/v1/policies"),
    ("PUT", "/api/v1/policies"),
];
/// Routes about data subjects, whose pseudonyms belong to no project:
/// only all-project `dpo` and `admin` tokens reach them (personal.rs).
const SUBJECT_ROUTES: [(&str, &str); 2] = [("GET", "/api/v1/subjects/{id}"), ("POST", "/api/v1/subjects/{id}/erase")];

/// The data: for alpha, beta and no project alike, a dataset, its version,
/// a run, a registered model, a live deployment and a pending approval.
/// Returns, per target, the seq of its model's registration and its approval.
async fn seed(app: &TestApp) -> BTreeMap<&'static str, (u64, String)> {
    let mut out = BTreeMap::new();
    for target in TARGETS {
        let project = if target == "none" { Value::Null } else { json!(target) };
        let events = json!({"events": [
            {"kind": "dataset.registered", "subject": format!("dataset:ds-{target}"), "project": project,
             "attributes": {"description": format!("confidential data of {target}")}},
            {"kind": "dataset.version_created", "subject": format!("dataset:ds-{target}@1"), "project": project},
            {"kind": "run.completed", "subject": format!("run:run-{target}"), "project": project,
             "inputs": [format!("dataset:ds-{target}@1")], "outputs": [format!("model:model-{target}@1")]},
            {"kind": "model.registered", "subject": format!("model:model-{target}@1"), "project": project,
             "inputs": [format!("run:run-{target}")]},
            {"kind": "deployment.succeeded", "subject": format!("deployment:dev/svc-{target}"), "project": project,
             "attributes": {"model": format!("model:model-{target}@1")}},
        ]});
        // The pipeline's own token: its subject is neither admin nor approver.
        let pipeline = client_with(&app.token(&format!("pipeline-{target}"), &["admin"], &["*"]));
        let stored: Value =
            pipeline.post(app.url("/api/v1/events")).json(&events).send().await.unwrap().json().await.unwrap();
        let seq = stored["events"][3]["seq"].as_u64().unwrap_or_else(|| panic!("{stored}"));
        let ask = json!({"model": format!("model:model-{target}@1"), "environment": "staging"});
        let approval = crate::helpers::json_of(pipeline.post(app.url("/api/v1/approvals")).json(&ask)).await;
        out.insert(target, (seq, approval["id"].as_str().unwrap_or_else(|| panic!("{approval}")).to_owned()));
    }
    out
}

fn fill(template: &str, target: &str, seq: u64, approval: &str) -> String {
    let project = if target == "none" { String::new() } else { format!("\"project\": \"{target}\",") };
    template
        .replace("{T}", target)
        .replace("{SEQ}", &seq.to_string())
        .replace("{APPROVAL}", approval)
        .replace("{PROJECT}", &project)
        .replace("{UUID}", &uuid_v4())
}

fn uuid_v4() -> String {
    let n: u128 = rand::random();
    let h = format!("{n:032x}");
    format!("{}-{}-4{}-8{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

async fn the_project_matrix(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let data = seed(&app).await;
    app.add_policy_line("p, loader, *, events/dataset.*, append, allow").await;

    // Every route of the description is in the matrix or named above.
    let doc: Value = app.get_json("/api/v1/openapi.json").await;
    let rows = rows();
    let covered: BTreeSet<(String, String)> = rows.iter().map(|r| (r.method.to_string(), r.route.to_owned())).collect();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let key = (method.to_uppercase(), path.clone());
            let named = ELSEWHERE.iter().chain(&SUBJECT_ROUTES).any(|(m, p)| *m == key.0 && *p == key.1);
            assert!(covered.contains(&key) || named, "{} {} has no row in the project matrix", key.0, key.1);
        }
    }

    let mut cells = 0;
    let mut failures = Vec::new();
    for role in ROLES {
        for scope in SCOPES {
            let client = client_with(&app.token(&format!("{role}-{}", scope.replace('*', "all")), &[role], &[scope]));
            let foreign: Vec<&str> = if scope == "*" { vec![] } else { vec!["-beta", "-none", "of beta", "of none"] };
            for r in &rows {
                for target in TARGETS {
                    cells += 1;
                    let (seq, approval) = &data[target];
                    let path = fill(r.path, target, *seq, approval);
                    let mut request = client.request(r.method.clone(), app.url(&path));
                    if let Some(body) = r.body {
                        request =
                            request.header("Content-Type", "application/json").body(fill(body, target, *seq, approval));
                    }
                    let response = request.send().await.unwrap();
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap();
                    let in_scope = scope == "*" || scope == target;
                    let policy_allows = r.roles.contains(&role);
                    let cell = format!(
                        "{role} scope {scope} {} {path} (target {target}): {status} {}",
                        r.method,
                        &text[..text.len().min(300)]
                    );
                    match r.shape {
                        Shape::One => {
                            let allowed = policy_allows && in_scope;
                            let refused = matches!(status, 403 | 404);
                            if allowed == refused || status == 401 || status >= 500 {
                                failures
                                    .push(format!("expected {}: {cell}", if allowed { "allowed" } else { "refused" }));
                            }
                        }
                        Shape::Listing => {
                            let own_marker = format!("-{target}");
                            let shows = text.contains(&own_marker) || text.contains(&format!("of {target}"));
                            if !policy_allows {
                                if status == 200 && shows || status >= 500 || status == 401 {
                                    failures.push(format!("expected nothing: {cell}"));
                                }
                            } else if status != 200 {
                                failures.push(format!("expected 200: {cell}"));
                            } else if shows != in_scope && !(in_scope && r.path.contains("state=pending")) {
                                // Pending approvals come and go as the matrix decides them.
                                failures.push(format!(
                                    "expected the target {}: {cell}",
                                    if in_scope { "shown" } else { "left out" }
                                ));
                            }
                        }
                    }
                    if status < 300 && foreign.iter().any(|m| text.contains(m)) {
                        failures.push(format!("another project's data in the answer: {cell}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {cells} cells failed:\n{}", failures.len(), failures.join("\n"));
    eprintln!(
        "project matrix: {cells} cells ({} route variants x {} roles x {} scopes x {} targets)",
        rows.len(),
        ROLES.len(),
        SCOPES.len(),
        TARGETS.len()
    );
}
on_both_backends!(every_route_every_role_every_scope_every_target, the_project_matrix);
