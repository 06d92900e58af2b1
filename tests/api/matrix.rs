//! The project matrix (issues 19 and 20), driven by the server's route
//! table (`govledger::http::routes::ROUTES`): every route variant, for
//! every role (the seven shipped, one defined without `events read`, one
//! the policy does not define), with a token scoped to project alpha and one
//! for every project, against data of alpha, of beta and of no project.
//! Which roles a cell expects to be allowed comes from the action the table
//! declares for the route, asked of the shipped policy; each cell asserts
//! the status (allowed, or refused with 403/404) and that an allowed answer
//! holds nothing of a project outside the token's scope. A route of the
//! table without a row here fails the test, as does a table that differs
//! from the OpenAPI description.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{json, Value};

use govledger::auth::actions::Scope;
use govledger::auth::{Authorizer, PolicyRules, Principal};
use govledger::http::routes::{Route, ROUTES};

use crate::helpers::{client_with, Backend, TestApp};
use crate::on_both_backends;

const ROLES: [&str; 9] =
    ["admin", "auditor", "viewer", "risk_officer", "data_scientist", "ci", "dpo", "loader", "ghost"];
/// The custom role: it may record datasets, and read nothing.
const LOADER_LINE: &str = "p, loader, *, events/dataset.*, append, allow";
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
    /// For a route that appends: the kind it appends.
    kind: &'static str,
    /// Roles the policy allows but a domain rule refuses (an admin is not
    /// an approver of `policies/approvals.toml`).
    refused_by_rules: &'static [&'static str],
    shape: Shape,
}

fn row(method: Method, route: &'static str, path: &'static str) -> Row {
    Row { method, route, path, body: None, kind: "", refused_by_rules: &[], shape: Shape::One }
}

fn rows() -> Vec<Row> {
    let listing = |route, path| Row { shape: Shape::Listing, ..row(Method::GET, route, path) };
    let post = |route, path, body, kind| Row { body: Some(body), kind, ..row(Method::POST, route, path) };
    vec![
        row(Method::GET, "/api/v1/events/{seq}", "/api/v1/events/{SEQ}"),
        row(Method::GET, "/api/v1/entities/{ref}", "/api/v1/entities/dataset:ds-{T}@1"),
        row(Method::GET, "/api/v1/entities/{ref}", "/api/v1/entities/model:model-{T}@1"),
        row(Method::GET, "/api/v1/entities/{ref}", "/api/v1/entities/run:run-{T}"),
        row(Method::GET, "/api/v1/entities/{ref}", "/api/v1/entities/deployment:dev/svc-{T}"),
        row(Method::GET, "/api/v1/entities/{ref}", "/api/v1/entities/dataset:ds-{T}"),
        row(Method::GET, "/api/v1/lineage", "/api/v1/lineage?node=model:model-{T}@1"),
        row(Method::GET, "/api/v1/lineage", "/api/v1/lineage?node=dataset:ds-{T}@1&direction=downstream"),
        row(Method::GET, "/api/v1/lineage", "/api/v1/lineage?node=deployment:dev/svc-{T}&direction=upstream"),
        row(Method::GET, "/api/v1/lineage", "/api/v1/lineage?node=run:run-{T}&as_of=2099-01-01T00:00:00Z"),
        row(Method::GET, "/api/v1/impact", "/api/v1/impact?node=dataset:ds-{T}@1"),
        row(Method::GET, "/api/v1/impact", "/api/v1/impact?node=run:run-{T}"),
        row(Method::GET, "/api/v1/gate", "/api/v1/gate?model=model:model-{T}@1&environment=staging"),
        row(Method::GET, "/api/v1/gate", "/api/v1/gate?model=model:model-{T}@1&environment=production"),
        row(Method::GET, "/api/v1/approvals/{id}", "/api/v1/approvals/{APPROVAL}"),
        row(Method::GET, "/api/v1/proofs/inclusion", "/api/v1/proofs/inclusion?seq={SEQ}"),
        listing("/api/v1/approvals", "/api/v1/approvals?model=model:model-{T}@1"),
        listing("/api/v1/approvals", "/api/v1/approvals?state=pending"),
        listing("/api/v1/events", "/api/v1/events?subject=model:model-{T}@1"),
        listing("/api/v1/events", "/api/v1/events?limit=1000"),
        listing("/api/v1/events", "/api/v1/events?kind=model.registered"),
        listing("/api/v1/search", "/api/v1/search?q=confidential&consistent=true"),
        listing("/api/v1/search", "/api/v1/search?q=model-{T}&consistent=true"),
        listing("/api/v1/reports/{type}", "/api/v1/reports/audit-trail?format=json"),
        listing("/api/v1/reports/{type}", "/api/v1/reports/model-inventory?format=json"),
        row(
            Method::GET,
            "/api/v1/reports/{type}",
            "/api/v1/reports/model-dossier?subject=model:model-{T}@1&format=json",
        ),
        row(
            Method::GET,
            "/api/v1/reports/{type}",
            "/api/v1/reports/gdpr-processing?subject=dataset:ds-{T}&format=json",
        ),
        post(
            "/api/v1/events",
            "/api/v1/events",
            r#"{"kind": "model.evaluated", "subject": "model:model-{T}@1", {PROJECT} "attributes": {"metrics": {"auc": 0.9}}}"#,
            "model.evaluated",
        ),
        post(
            "/api/v1/events",
            "/api/v1/events",
            r#"{"kind": "model.explained", "subject": "model:model-{T}@1", {PROJECT} "attributes": {"method": "shap"}}"#,
            "model.explained",
        ),
        post(
            "/api/v1/events",
            "/api/v1/events",
            r#"{"kind": "dataset.classified", "subject": "dataset:ds-{T}@1", {PROJECT} "attributes": {"contains_personal_data": false}}"#,
            "dataset.classified",
        ),
        post(
            "/api/v1/events",
            "/api/v1/events",
            r#"{"kind": "run.updated", "subject": "run:run-{T}", {PROJECT} "attributes": {}}"#,
            "run.updated",
        ),
        post(
            "/api/v1/events",
            "/api/v1/events",
            r#"{"events": [{"kind": "run.updated", "subject": "run:run-{T}", {PROJECT} "attributes": {}}]}"#,
            "run.updated",
        ),
        post(
            "/api/v1/events",
            "/api/v1/events",
            r#"{"kind": "deployment.succeeded", "subject": "deployment:dev/svc-{T}", {PROJECT} "attributes": {"model": "model:model-{T}@1"}}"#,
            "deployment.succeeded",
        ),
        post(
            "/api/v1/approvals",
            "/api/v1/approvals",
            r#"{"model": "model:model-{T}@1", "environment": "staging"}"#,
            "approval.requested",
        ),
        post(
            "/api/v1/approvals",
            "/api/v1/approvals",
            r#"{"model": "model:model-{T}@1", "environment": "production"}"#,
            "approval.requested",
        ),
        post(
            "/api/v1/deployments",
            "/api/v1/deployments",
            r#"{"model": "model:model-{T}@1", "environment": "dev", "name": "svc-{T}"}"#,
            "deployment.requested",
        ),
        post(
            "/api/v1/deployments",
            "/api/v1/deployments",
            r#"{"model": "model:model-{T}@1", "environment": "staging", "name": "svc-{T}"}"#,
            "deployment.requested",
        ),
        Row {
            refused_by_rules: &["admin"],
            ..post(
                "/api/v1/approvals/{id}/decision",
                "/api/v1/approvals/{APPROVAL}/decision",
                r#"{"decision": "grant", "reason": "matrix"}"#,
                "approval.granted",
            )
        },
        post(
            "/api/v1/lineage",
            "/api/v1/lineage?project={T}",
            r#"{"eventType": "START", "eventTime": "2026-03-03T09:00:00Z", "run": {"runId": "{UUID}"}, "job": {"namespace": "m", "name": "job-{T}"}, "producer": "matrix", "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json"}"#,
            "run.started",
        ),
        listing("/api/v1/webhooks", "/api/v1/webhooks"),
        row(Method::GET, "/api/v1/webhooks/{id}", "/api/v1/webhooks/{WEBHOOK}"),
        row(Method::GET, "/api/v1/webhooks/{id}/deliveries", "/api/v1/webhooks/{WEBHOOK}/deliveries"),
        post(
            "/api/v1/webhooks",
            "/api/v1/webhooks",
            r#"{"url": "http://127.0.0.1:9/new-{T}", "filter": {"projects": {PROJECTS}}}"#,
            "",
        ),
        Row {
            method: Method::PATCH,
            ..post(
                "/api/v1/webhooks/{id}",
                "/api/v1/webhooks/{WEBHOOK}",
                r#"{"description": "hooks-{T}, changed"}"#,
                "",
            )
        },
        post("/api/v1/webhooks/{id}/rotate-secret", "/api/v1/webhooks/{WEBHOOK}/rotate-secret", "", ""),
        post("/api/v1/webhooks/{id}/replay", "/api/v1/webhooks/{WEBHOOK}/replay?from_seq=1", "", ""),
        // A subscription of its own per cell: one that is deleted is gone for the next.
        row(Method::DELETE, "/api/v1/webhooks/{id}", "/api/v1/webhooks/{FRESH_WEBHOOK}"),
    ]
}

/// Routes outside any project that change administration state: tested
/// in access.rs (tokens, policies), monitoring.rs (monitoring rules),
/// oidc.rs (the identity map) and personal.rs (erasure). A route of the table outside any project that is
/// neither here nor read by [`ledger_rows`] fails the matrix.
const ADMIN_WRITES: [(&str, &str); 6] = [
    ("POST", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens/{jti}/revoke"),
    ("PUT", "/api/v1/policies"),
    ("PUT", "/api/v1/monitoring/rules"),
    ("PUT", "/api/v1/identity-map"),
    ("POST", "/api/v1/subjects/{id}/erase"),
];

/// The reads outside any project, by route: only an all-project token whose
/// role the policy allows may have them.
fn ledger_rows() -> Vec<(&'static str, &'static str)> {
    vec![
        ("/api/v1/head", "/api/v1/head"),
        ("/api/v1/verify", "/api/v1/verify"),
        ("/api/v1/proofs/consistency", "/api/v1/proofs/consistency?from=1&to=2"),
        ("/api/v1/tokens", "/api/v1/tokens"),
        ("/api/v1/policies", "/api/v1/policies"),
        ("/api/v1/monitoring/rules", "/api/v1/monitoring/rules"),
        ("/api/v1/identity-map", "/api/v1/identity-map"),
        ("/api/v1/subjects/{id}", "/api/v1/subjects/someone"),
    ]
}

fn route_of(method: &str, path: &str) -> &'static Route {
    ROUTES
        .iter()
        .find(|r| r.method == method && r.path == path)
        .unwrap_or_else(|| panic!("{method} {path} is not in the route table"))
}

/// The shipped policy with the loader's line, as the server has it.
async fn policy() -> Authorizer {
    let text = format!("{}\n{LOADER_LINE}\n", govledger::auth::policy::DEFAULT_POLICY);
    Authorizer::new(PolicyRules::parse(&text).unwrap()).await.unwrap()
}

/// Whether the policy lets `role` perform `route`'s action (on `kind`) in
/// `project`, for a token of every project.
fn policy_allows(policy: &Authorizer, role: &str, route: &Route, kind: &str, project: Option<&str>) -> bool {
    let action = route.action.unwrap_or_else(|| panic!("{} {} is public", route.method, route.path));
    let principal = Principal {
        sub: "matrix".into(),
        roles: vec![role.to_owned()],
        projects: vec!["*".into()],
        jti: String::new(),
        exp: u64::MAX,
    };
    policy.allows(&principal, &action.object_for(kind), action.action, project)
}

/// The data: for alpha, beta and no project alike, a dataset, its version,
/// a run, a registered model, a live deployment and a pending approval.
/// Returns, per target, the seq of its model's registration, its approval
/// and a webhook subscription delivering its project's events.
async fn seed(app: &TestApp) -> BTreeMap<&'static str, (u64, String, String)> {
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
        let webhook = subscription(app, target).await;
        out.insert(target, (seq, approval["id"].as_str().unwrap_or_else(|| panic!("{approval}")).to_owned(), webhook));
    }
    out
}

/// A subscription to `target`'s events (every project's for `none`).
async fn subscription(app: &TestApp, target: &str) -> String {
    let projects = if target == "none" { json!([]) } else { json!([target]) };
    let body = json!({"url": format!("http://127.0.0.1:9/hook-{target}"), "description": format!("hooks-{target}"),
                      "filter": {"projects": projects}});
    let created = crate::helpers::json_of(app.client.post(app.url("/api/v1/webhooks")).json(&body)).await;
    created["id"].as_str().unwrap_or_else(|| panic!("{created}")).to_owned()
}

fn fill(template: &str, target: &str, seq: u64, approval: &str, webhook: &str) -> String {
    let project = if target == "none" { String::new() } else { format!("\"project\": \"{target}\",") };
    let projects = if target == "none" { "[]".to_owned() } else { format!("[\"{target}\"]") };
    template
        .replace("{T}", target)
        .replace("{PROJECTS}", &projects)
        .replace("{WEBHOOK}", webhook)
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
    // Subscriptions need the master key that seals their secrets.
    let Some(app) = crate::webhooks::webhook_app(backend, |_| {}).await else { return };
    let data = seed(&app).await;
    app.add_policy_line(LOADER_LINE).await;
    let policy = policy().await;

    // The table is the OpenAPI description's list of routes, and every
    // route of it is covered: by a row on project data, by a read outside
    // any project, as an administration write, or as public.
    let doc: Value = app.get_json("/api/v1/openapi.json").await;
    let described: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(|m| (m.to_uppercase(), path.clone())))
        .collect();
    let table: BTreeSet<(String, String)> = ROUTES.iter().map(|r| (r.method.to_owned(), r.path.to_owned())).collect();
    assert_eq!(described, table, "the route table and the OpenAPI description differ");
    let rows = rows();
    let covered: BTreeSet<(String, String)> = rows.iter().map(|r| (r.method.to_string(), r.route.to_owned())).collect();
    for route in ROUTES {
        let key = (route.method.to_owned(), route.path.to_owned());
        let ok = match route.action.map(|a| a.scope) {
            None => true,
            Some(Scope::Data) => covered.contains(&key),
            Some(Scope::Ledger) => {
                ADMIN_WRITES.contains(&(route.method, route.path))
                    || route.method == "GET" && ledger_rows().iter().any(|(r, _)| *r == route.path)
            }
        };
        assert!(ok, "{} {} has no row in the project matrix", route.method, route.path);
    }

    let mut cells = 0;
    let mut failures = Vec::new();
    // Public routes answer without a token; reads outside any project only
    // an all-project token the policy allows.
    for route in ROUTES.iter().filter(|r| r.action.is_none()) {
        cells += 1;
        let status = reqwest::get(app.url(route.path)).await.unwrap().status().as_u16();
        if matches!(status, 401 | 403) || status >= 500 {
            failures.push(format!("public {} {}: {status}", route.method, route.path));
        }
    }
    for role in ROLES {
        for scope in SCOPES {
            let client = client_with(&app.token(&format!("{role}-{}", scope.replace('*', "all")), &[role], &[scope]));
            for (route, path) in ledger_rows() {
                cells += 1;
                let route = route_of("GET", route);
                let status = client.get(app.url(path)).send().await.unwrap().status().as_u16();
                let allowed = scope == "*" && policy_allows(&policy, role, route, "", None);
                if allowed == (status == 403) || status == 401 || status >= 500 {
                    failures.push(format!("{role} scope {scope} GET {path}: {status}, expected allowed {allowed}"));
                }
            }
        }
    }

    for role in ROLES {
        for scope in SCOPES {
            let client = client_with(&app.token(&format!("{role}-{}", scope.replace('*', "all")), &[role], &[scope]));
            let foreign: Vec<&str> = if scope == "*" { vec![] } else { vec!["-beta", "-none", "of beta", "of none"] };
            for r in &rows {
                for target in TARGETS {
                    cells += 1;
                    let (seq, approval, webhook) = &data[target];
                    let path = fill(r.path, target, *seq, approval, webhook);
                    let path = if path.contains("{FRESH_WEBHOOK}") {
                        path.replace("{FRESH_WEBHOOK}", &subscription(&app, target).await)
                    } else {
                        path
                    };
                    let mut request = client.request(r.method.clone(), app.url(&path));
                    if let Some(body) = r.body.filter(|b| !b.is_empty()) {
                        let body = fill(body, target, *seq, approval, webhook);
                        request = request.header("Content-Type", "application/json").body(body);
                    }
                    let response = request.send().await.unwrap();
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap();
                    let in_scope = scope == "*" || scope == target;
                    let route = route_of(r.method.as_str(), r.route);
                    let policy_allows = policy_allows(&policy, role, route, r.kind, Some("alpha"))
                        && !r.refused_by_rules.contains(&role);
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
