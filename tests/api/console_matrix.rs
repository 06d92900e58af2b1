//! The console against the API, page by page, for every shipped role with a
//! token for every project and one scoped to `fraud`: a page answers 200
//! exactly when its API counterpart allows the caller, 403 when the API
//! refuses, and 404 when the API hides the data. The console has no
//! authorization of its own to drift from the API's.

use reqwest::StatusCode;

use crate::console::demo_app;
use crate::console_http::sign_in;
use crate::helpers::client_with;

const ROLES: [&str; 7] = ["admin", "auditor", "viewer", "risk_officer", "data_scientist", "ci", "dpo"];
const SCOPES: [&str; 2] = ["*", "fraud"];

#[tokio::test]
async fn every_console_page_answers_as_its_api_counterpart_for_every_role_and_scope() {
    let (app, story) = demo_app().await;
    let events = app.get_json("/api/v1/events?limit=1000").await;
    let seq_of = |project: Option<&str>| -> u64 {
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["project"].as_str() == project)
            .and_then(|e| e["seq"].as_u64())
            .unwrap()
    };
    let (fraud_seq, credit_seq, none_seq) = (seq_of(Some("fraud")), seq_of(Some("credit")), seq_of(None));
    let approval = story.production_approval.clone();
    // (console page, API counterpart)
    let pages: Vec<(String, String)> = vec![
        ("/ui/".into(), "/api/v1/events?limit=1".into()),
        ("/ui/search?q=fraud".into(), "/api/v1/search?q=fraud".into()),
        (format!("/ui/events/{fraud_seq}"), format!("/api/v1/events/{fraud_seq}")),
        (format!("/ui/events/{credit_seq}"), format!("/api/v1/events/{credit_seq}")),
        (format!("/ui/events/{none_seq}"), format!("/api/v1/events/{none_seq}")),
        ("/ui/entities/dataset:transactions@2026-10".into(), "/api/v1/entities/dataset:transactions@2026-10".into()),
        ("/ui/entities/dataset:bureau@2026-11".into(), "/api/v1/entities/dataset:bureau@2026-11".into()),
        ("/ui/models/model:fraud-detector@2".into(), "/api/v1/entities/model:fraud-detector@2".into()),
        ("/ui/approvals".into(), "/api/v1/approvals".into()),
        (format!("/ui/approvals/{approval}"), format!("/api/v1/approvals/{approval}")),
        ("/ui/deployments".into(), "/api/v1/events?limit=1".into()),
        ("/ui/reports".into(), "/api/v1/reports/model-inventory?format=json".into()),
        ("/ui/subjects".into(), "/api/v1/subjects/anyone".into()),
        ("/ui/admin/tokens".into(), "/api/v1/tokens".into()),
        ("/ui/admin/policy".into(), "/api/v1/policies".into()),
    ];
    let mut cells = 0;
    let mut mismatches = Vec::new();
    for role in ROLES {
        for scope in SCOPES {
            let token = app.token(&format!("m-{role}"), &[role], &[scope]);
            let api = client_with(&token);
            let session = sign_in(&app, &token).await;
            let console = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
            for (page, counterpart) in &pages {
                let expected = match api.get(app.url(counterpart)).send().await.unwrap().status() {
                    StatusCode::FORBIDDEN => StatusCode::FORBIDDEN,
                    StatusCode::NOT_FOUND => StatusCode::NOT_FOUND,
                    // Allowed: an error of the request itself (a subject
                    // id without a master key) is still past the guard.
                    s if s.is_success() || s == StatusCode::UNPROCESSABLE_ENTITY => StatusCode::OK,
                    other => panic!("{counterpart} answered {other} for {role} in {scope}"),
                };
                let got = console
                    .get(app.url(page))
                    .header("Cookie", format!("govledger_session={session}"))
                    .send()
                    .await
                    .unwrap();
                let status = got.status();
                let body = got.text().await.unwrap();
                cells += 1;
                if status != expected {
                    mismatches
                        .push(format!("{role} in {scope}: {page} is {status}, its API {counterpart} says {expected}"));
                }
                // A fraud-scoped page never shows the credit project's data.
                if scope == "fraud" && status == StatusCode::OK && body.contains("dataset:bureau@2026-11") {
                    mismatches.push(format!("{role} in fraud: {page} shows the credit project's dataset"));
                }
            }
        }
    }
    assert_eq!(cells, ROLES.len() * SCOPES.len() * pages.len());
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    // A role the policy gives no read at all cannot sign in.
    app.add_policy_line("p, loader, *, events/dataset.*, append, allow").await;
    let loader = app.token("m-loader", &["loader"], &["*"]);
    let refused = crate::console_http::try_sign_in(&app, &loader).await;
    assert_eq!(refused, StatusCode::FORBIDDEN);
}
