//! The console in a real Chromium, on the demo ledger: signing in and out,
//! search and facets, the drawn lineage graph against the API's answer,
//! proofs, the dossier PDF, project walls, CSRF, hostile data and axe-core.

use std::collections::BTreeSet;

use fantoccini::Locator;
use serde_json::{json, Value};

use crate::browser::{turn, Browser};
use crate::helpers::{in_ci, Backend, TestApp};
use govledger::client::Client;
use govledger::demo::{self, Cast, Story};

/// A server with the demo's story, plus a second project (`credit`) whose
/// run reads one of the demo's datasets.
pub async fn demo_app() -> (TestApp, Story) {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite server");
    let admin = Client::new(&app.base, &app.admin_token).unwrap();
    let cast = Cast::mint(&admin).await.unwrap();
    let story = demo::run(&cast).await.unwrap();
    let response = app
        .post_events(&json!({"events": [
            {"kind": "dataset.version_created", "subject": "dataset:bureau@2026-11", "project": "credit",
             "attributes": {"row_count": 90000, "location": "s3://credit/bureau/2026-11"}},
            {"kind": "run.completed", "subject": "run:credit-train-1", "project": "credit",
             "inputs": ["dataset:bureau@2026-11", "dataset:transactions@2026-10"],
             "outputs": ["model:credit-scorer@1"]}
        ]}))
        .await;
    assert_eq!(response.status(), 201);
    (app, story)
}

/// Where screenshots go when `GOVLEDGER_SCREENSHOTS` names a folder
/// (`docs/console/` is refreshed that way); otherwise they are only checked.
async fn keep_screenshot(browser: &Browser, name: &str) {
    browser.eval("window.scrollTo(0, 0)").await;
    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    if let Ok(dir) = std::env::var("GOVLEDGER_SCREENSHOTS") {
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).expect("write screenshot");
    }
}

#[tokio::test]
async fn signing_in_and_out_with_a_token() {
    let Some((_turn, browser)) = turn().await else { return };
    let (app, _) = demo_app().await;
    let token = app.token("ada-auditor", &["auditor"], &["*"]);
    browser.client.delete_all_cookies().await.ok();
    // Signed out, a page sends the visitor to sign in, and back after.
    browser.open(&app, "/ui/search?q=fraud").await;
    assert_eq!(browser.path().await, "/ui/login");
    let label = browser.text("label[for='token']").await;
    assert_eq!(label, "Access token");
    browser.client.find(Locator::Css("input[name='token']")).await.unwrap().send_keys(&token).await.unwrap();
    browser.follow("form[action='/ui/login'] button[type='submit']").await;
    assert_eq!(browser.path().await, "/ui/search");
    assert!(browser.text("header").await.contains("ada-auditor"));
    let session = browser.client.get_named_cookie("govledger_session").await.expect("session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(format!("{:?}", session.same_site()), "Some(Strict)");
    assert_eq!(session.path(), Some("/ui"));
    assert_eq!(session.value().len(), 64, "256 random bits, hex");

    // Signing out ends the session on the server: the old cookie is dead.
    browser.follow("form.signout button").await;
    assert_eq!(browser.path().await, "/ui/login");
    let stale = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let answer = stale
        .get(app.url("/ui/"))
        .header("Cookie", format!("govledger_session={}", session.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    assert!(answer.headers()["location"].to_str().unwrap().starts_with("/ui/login"));

    // A wrong token is refused on the form, with the reason.
    browser.open(&app, "/ui/login").await;
    browser.client.find(Locator::Css("input[name='token']")).await.unwrap().send_keys("not-a-token").await.unwrap();
    browser.follow("form[action='/ui/login'] button[type='submit']").await;
    assert!(browser.text("[role='alert']").await.contains("not accepted"));
}

#[tokio::test]
async fn the_first_run_code_signs_in_the_first_administrator_once() {
    let Some((_turn, browser)) = turn().await else { return };
    let app = TestApp::spawn(Backend::Sqlite).await.expect("server");
    let url = app.first_run_url.clone().expect("no administrator token is on the record: a code is printed");
    browser.client.delete_all_cookies().await.ok();
    browser.client.goto(&url).await.unwrap();
    let name = browser.client.find(Locator::Css("#sub")).await.expect("the first-run form");
    name.clear().await.unwrap();
    name.send_keys("grace").await.unwrap();
    browser.follow("form[action='/ui/login/first-run'] button").await;
    assert_eq!(browser.path().await, "/ui/", "{}", browser.text("main").await);
    assert!(browser.text("header").await.contains("grace"));
    assert!(browser.text("header").await.contains("admin"));
    // On the record: a token.issued event by the first-run code.
    let issued = app.get_json("/api/v1/events?kind=token.issued").await;
    let events = issued["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["actor"], "first-run-code");
    assert_eq!(events[0]["attributes"]["sub"], "grace");
    // The code is spent: the link no longer offers the form.
    browser.client.delete_all_cookies().await.unwrap();
    browser.client.goto(&url).await.unwrap();
    assert!(browser.client.find(Locator::Css("#sub")).await.is_err());
}

#[tokio::test]
async fn a_search_narrowed_by_clicking_a_facet() {
    let Some((_turn, browser)) = turn().await else { return };
    let (app, _) = demo_app().await;
    browser.sign_in(&app, &app.token("ada", &["auditor"], &["*"])).await;
    browser.open(&app, "/ui/search?q=fraud").await;
    let total = |text: String| -> u64 { text.split_whitespace().next().unwrap().parse().unwrap() };
    let all = total(browser.text("#total").await);
    assert!(all > 5, "{all}");
    let facet = browser.client.find(Locator::Css("a[data-facet='kind'][data-value='model.evaluated']")).await.unwrap();
    let count: u64 = facet
        .find(Locator::XPath("following-sibling::span"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .trim_matches(|c| c == '(' || c == ')')
        .parse()
        .unwrap();
    browser.follow_element(facet).await;
    let narrowed = total(browser.text("#total").await);
    assert_eq!(narrowed, count, "the facet's count is what clicking it finds");
    assert!(narrowed < all);
    let kinds: Vec<String> = futures_texts(browser, ".hits li > a:first-child").await;
    assert!(!kinds.is_empty() && kinds.iter().all(|k| k.ends_with("model.evaluated")), "{kinds:?}");
    // The API answers the same.
    let api = app.get_json("/api/v1/search?q=fraud&kind=model.evaluated").await;
    assert_eq!(api["total"].as_u64().unwrap(), narrowed);
    keep_screenshot(browser, "search").await;

    // A malformed query shows the parser's message, on the search page.
    browser.open(&app, "/ui/search?q=%22unclosed").await;
    assert!(browser.text("[role='alert']").await.contains("could not be read"));
    assert!(browser.client.find(Locator::Css("input#q")).await.is_ok(), "the form stays, to fix the query");
}

async fn futures_values(browser: &Browser, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in browser.client.find_all(Locator::Css(css)).await.unwrap() {
        out.push(e.attr("value").await.unwrap().unwrap_or_default());
    }
    out
}

async fn futures_texts(browser: &Browser, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in browser.client.find_all(Locator::Css(css)).await.unwrap() {
        out.push(e.text().await.unwrap());
    }
    out
}

#[tokio::test]
async fn the_production_deployments_graph_is_the_apis_lineage_and_nodes_link_to_entities() {
    let Some((_turn, browser)) = turn().await else { return };
    let (app, _) = demo_app().await;
    browser.sign_in(&app, &app.token("ada", &["auditor"], &["*"])).await;
    // An event page signs a checkpoint when none holds the event yet.
    browser.open(&app, &format!("/ui/events/{}", app.size().await)).await;
    browser.open(&app, "/ui/").await;
    assert!(browser.text("#checkpoint + p").await.starts_with("Tree size"));
    browser.follow("form[action='/ui/verify'] button").await;
    let verification = browser.text("section[aria-labelledby='verification']").await;
    assert!(verification.contains("Verified") && verification.contains("asked by ada"), "{verification}");
    let live = browser.text("section[aria-labelledby='live'] tbody").await;
    assert!(live.contains("production deployment:production/fraud-detector model:fraud-detector@2"), "{live}");
    keep_screenshot(browser, "overview").await;
    let node = "deployment:production/fraud-detector";
    browser.open(&app, &format!("/ui/entities/{node}?direction=upstream&depth=10")).await;
    let drawn: BTreeSet<String> = {
        let mut refs = BTreeSet::new();
        for a in browser.client.find_all(Locator::Css("#graph svg a")).await.unwrap() {
            refs.insert(a.attr("data-ref").await.unwrap().unwrap());
        }
        refs
    };
    let api = app.get_json(&format!("/api/v1/lineage?node={node}&direction=upstream&depth=10")).await;
    let expected: BTreeSet<String> =
        api["nodes"].as_array().unwrap().iter().map(|n| n["ref"].as_str().unwrap().to_owned()).collect();
    assert_eq!(drawn, expected);
    // Each edge is labelled with its event's kind and seq.
    let labels = futures_texts(browser, "#graph svg .edge-label").await;
    for e in api["edges"].as_array().unwrap() {
        let label = format!("{} #{}", e["kind"].as_str().unwrap(), e["seq"]);
        assert!(labels.iter().any(|l| l.starts_with(&label)), "{label} not in {labels:?}");
    }
    keep_screenshot(browser, "entity-graph").await;
    // A node is a link to its entity's page.
    let dataset = expected.iter().find(|r| r.starts_with("dataset:")).unwrap().clone();
    browser.follow(&format!("#graph svg a[data-ref='{dataset}']")).await;
    assert_eq!(browser.text("h1").await, dataset);
}

#[tokio::test]
async fn an_event_page_shows_its_proof_verified() {
    let Some((_turn, browser)) = turn().await else { return };
    let (app, _) = demo_app().await;
    browser.sign_in(&app, &app.token("ada", &["auditor"], &["*"])).await;
    browser.open(&app, "/ui/events/3").await;
    assert_eq!(browser.text("#proof-verdict").await, "Verified");
    let line = browser.text("#proof-line").await;
    let key = app.get("/api/v1/checkpoint/key").await.text().await.unwrap();
    let key_name = key.split('+').next().unwrap();
    assert!(line.starts_with("Included in checkpoint "), "{line}");
    assert!(line.contains(&format!("signed by {key_name}")), "{line}");
    let event = app.get_json("/api/v1/events/3").await;
    assert_eq!(browser.text("#event-hash").await, event["hash"].as_str().unwrap());
    keep_screenshot(browser, "event").await;
    // The downloaded proof checks out against the checkpoint it names.
    let cookie = browser.client.get_named_cookie("govledger_session").await.unwrap();
    let proof: Value = reqwest::Client::new()
        .get(app.url("/ui/events/3/proof.json"))
        .header("Cookie", format!("govledger_session={}", cookie.value()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(proof["proof"]["event_hash"], event["hash"]);
    assert!(proof["checkpoint"].as_str().unwrap().contains(&format!("\n{}\n", proof["proof"]["tree_size"])));
}

#[tokio::test]
async fn the_dossier_pdf_downloads_and_qpdf_accepts_it() {
    let Some((_turn, browser)) = turn().await else { return };
    if !pdf_tools_present() {
        return;
    }
    let (app, _) = demo_app().await;
    browser.sign_in(&app, &app.token("ada", &["auditor"], &["*"])).await;
    browser.open(&app, "/ui/models/model:fraud-detector@2").await;
    assert!(browser.text("#gates").await.contains("May it be deployed"));
    let evaluations = browser.text("section[data-show='evaluations']").await;
    assert!(evaluations.contains("auc"), "{evaluations}");
    keep_screenshot(browser, "model").await;
    // With JavaScript on, a report's subject picker suggests as you type.
    browser.open(&app, "/ui/reports").await;
    let picker = browser.client.find(Locator::Css("#model-dossier-subject")).await.unwrap();
    picker.send_keys("fraud det").await.unwrap();
    let mut suggested = Vec::new();
    for _ in 0..100 {
        suggested = futures_values(browser, "#model-dossier-suggestions option").await;
        if !suggested.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(suggested.iter().any(|v| v == "model:fraud-detector@2"), "{suggested:?}");
    assert!(suggested.iter().all(|v| v.starts_with("model:")), "only models: {suggested:?}");
    browser.open(&app, "/ui/models/model:fraud-detector@2").await;
    let target = browser.downloads.join("model-dossier.pdf");
    let _ = std::fs::remove_file(&target);
    browser.click("#dossier-download").await;
    let mut waited = 0;
    while !target.exists() && waited < 300 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    assert!(target.exists(), "the download did not arrive in {}", browser.downloads.display());
    let check = std::process::Command::new("qpdf").arg("--check").arg(&target).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let text = std::process::Command::new("pdftotext").arg(&target).arg("-").output().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("model:fraud-detector@2"));
    std::fs::remove_file(&target).ok();
}

#[tokio::test]
async fn a_project_scoped_auditor_sees_nothing_of_another_project() {
    let Some((_turn, browser)) = turn().await else { return };
    let (app, _) = demo_app().await;
    browser.sign_in(&app, &app.token("fay", &["auditor"], &["fraud"])).await;
    // Another project's entity: a 404 page that says so in words.
    browser.open(&app, "/ui/entities/dataset:bureau@2026-11").await;
    assert_eq!(browser.text("h1").await, "Not found");
    assert!(browser.text("[role='alert']").await.contains("your access does not reach it"));
    // Its events: no search hit, no facet.
    browser.open(&app, "/ui/search?q=bureau").await;
    assert!(browser.text("#total").await.starts_with("0 "), "{}", browser.text("#total").await);
    browser.open(&app, "/ui/search?q=credit").await;
    assert!(browser.client.find(Locator::Css("a[data-value='run:credit-train-1']")).await.is_err());
    // Its run, which read a fraud dataset: not a node of that dataset's graph.
    browser.open(&app, "/ui/entities/dataset:transactions@2026-10?direction=downstream&depth=3").await;
    let drawn = futures_texts(browser, "#graph svg a .label").await;
    assert!(!drawn.is_empty());
    assert!(drawn.iter().all(|r| !r.contains("credit")), "{drawn:?}");
    assert!(browser.text("#graph-summary").await.contains("left out"));
    // An all-project auditor does see it (the test above is not vacuous).
    browser.sign_in(&app, &app.token("ada", &["auditor"], &["*"])).await;
    browser.open(&app, "/ui/entities/dataset:transactions@2026-10?direction=downstream&depth=3").await;
    assert!(futures_texts(browser, "#graph svg a .label").await.iter().any(|r| r.contains("credit-train")));
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused() {
    let Some((_turn, browser)) = turn().await else { return };
    let (app, _) = demo_app().await;
    browser.sign_in(&app, &app.admin_token).await;
    browser.open(&app, "/ui/").await;
    browser
        .eval("document.querySelector('form.signout input[name=csrf]').value = 'forged'; document.querySelector('form.signout').submit();")
        .await;
    browser.client.wait().for_element(Locator::Css("h1")).await.unwrap();
    assert_eq!(browser.text("h1").await, "Not allowed");
    assert!(browser.text("main").await.contains("403"));
    // Still signed in: the forged form changed nothing.
    browser.open(&app, "/ui/").await;
    assert_eq!(browser.path().await, "/ui/");
    browser.eval("document.querySelector('form[action=\"/ui/verify\"] input[name=csrf]').remove(); document.querySelector('form[action=\"/ui/verify\"]').submit();").await;
    browser.client.wait().for_element(Locator::Css("h1")).await.unwrap();
    assert_eq!(browser.text("h1").await, "Not allowed", "a form without the field at all");
}

/// Whether qpdf and pdftotext are here (in CI they must be).
fn pdf_tools_present() -> bool {
    let have =
        |tool: &str, flag: &str| std::process::Command::new(tool).arg(flag).output().is_ok_and(|o| o.status.success());
    if have("pdftotext", "-v") && have("qpdf", "--version") {
        return true;
    }
    if in_ci() {
        panic!("CI must check the dossier PDF, but pdftotext or qpdf is missing");
    }
    eprintln!("SKIPPED: checking the dossier PDF needs qpdf and pdftotext (apt-get install poppler-utils qpdf)");
    false
}

/// Names, attributes and facets that would run script if rendered as HTML.
pub const HOSTILE: [&str; 3] =
    ["<script>window.__xss=1</script>", "\"><img src=x onerror=\"window.__xss=2\">", "javascript:window.__xss=3"];

/// Records hostile data: an entity whose name holds markup, attributes and
/// an OpenLineage facet with script and `javascript:` URLs.
pub async fn record_hostile(app: &TestApp) -> (String, u64) {
    let subject = "dataset:x-svg-onload@1".to_owned();
    app.append_json(&json!({"kind": "dataset.version_created", "subject": subject, "project": "fraud",
        "attributes": {"row_count": 1, "location": HOSTILE[2], "description": HOSTILE[0]}}))
        .await;
    // A team's own kind: free-form attributes, any text.
    let event = app
        .append_json(&json!({"kind": "review.note", "subject": subject, "project": "fraud",
            "attributes": {"owner": HOSTILE[1], "link": HOSTILE[2], "name": "Zürich → 東京 ✓",
                           "<script>window.__xss=7</script>": "a hostile key"}}))
        .await;
    let ol = json!({
        "eventType": "COMPLETE", "eventTime": "2026-12-01T10:00:00Z",
        "producer": "javascript:window.__xss=5", "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": "01934b9e-0000-7000-8000-000000000001",
                "facets": {"evil": {"_producer": HOSTILE[2], "_schemaURL": HOSTILE[2], "html": HOSTILE[0]}}},
        "job": {"namespace": "fraud", "name": "<img src=x onerror=window.__xss=6>"},
        "inputs": [], "outputs": []
    });
    let response = app.client.post(app.url("/api/v1/lineage?project=fraud")).json(&ol).send().await.unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    (subject, event["seq"].as_u64().unwrap())
}

#[tokio::test]
async fn hostile_data_renders_as_inert_text() {
    let Some((_turn, browser)) = turn().await else { return };
    let (app, _) = demo_app().await;
    let (subject, seq) = record_hostile(&app).await;
    let head = app.size().await;
    browser.sign_in(&app, &app.admin_token).await;
    for path in [
        format!("/ui/events/{seq}"),
        format!("/ui/events/{head}"),
        format!("/ui/entities/{subject}"),
        "/ui/search?q=xss".to_owned(),
        "/ui/search?q=script".to_owned(),
        "/ui/".to_owned(),
    ] {
        browser.open(&app, &path).await;
        assert_eq!(browser.eval("return window.__xss === undefined").await, json!(true), "{path} ran script");
        assert!(browser.client.find(Locator::Css("main img, main script")).await.is_err(), "{path}");
    }
    browser.open(&app, &format!("/ui/events/{seq}")).await;
    let attributes = browser.text("#attributes").await;
    assert!(attributes.contains("<img src=x onerror=") && attributes.contains("Zürich → 東京 ✓"), "{attributes}");
    assert!(attributes.contains("<script>window.__xss=7</script>"), "{attributes}");
    browser.open(&app, &format!("/ui/events/{}", seq - 1)).await;
    assert!(browser.text("#attributes").await.contains(HOSTILE[0]));
    browser.open(&app, &format!("/ui/events/{head}")).await;
    assert!(browser.text("#attributes").await.contains("<img src=x onerror=window.__xss=6>"));
}

/// axe-core, from `GOVLEDGER_TEST_AXE` (CI installs it with npm).
fn axe_source() -> Option<String> {
    let path = std::env::var("GOVLEDGER_TEST_AXE").ok();
    match path.as_deref().map(std::fs::read_to_string) {
        Some(Ok(source)) => Some(source),
        other => {
            let why = match other {
                Some(Err(e)) => format!("GOVLEDGER_TEST_AXE: {e}"),
                _ => "set GOVLEDGER_TEST_AXE to axe-core's axe.min.js (npm install axe-core)".to_owned(),
            };
            if in_ci() {
                panic!("CI must run the accessibility checks, but {why}");
            }
            eprintln!("SKIPPED: the accessibility checks need axe-core: {why}");
            None
        }
    }
}

#[tokio::test]
async fn every_page_passes_axe_core_without_a_serious_violation() {
    let Some((_turn, browser)) = turn().await else { return };
    let Some(axe) = axe_source() else { return };
    let (app, story) = demo_app().await;
    let mut pages = vec!["/ui/login".to_owned()];
    browser.client.delete_all_cookies().await.ok();
    let mut failures = Vec::new();
    let mut check = |path: String, violations: Value| {
        let serious: Vec<&Value> = violations
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect();
        for v in serious {
            let nodes: Vec<&str> =
                v["nodes"].as_array().unwrap().iter().filter_map(|n| n["html"].as_str()).take(3).collect();
            failures.push(format!("{path}: {} ({}): {nodes:?}", v["id"], v["help"]));
        }
    };
    browser.open(&app, &pages[0]).await;
    check(pages[0].clone(), run_axe(browser, &axe).await);
    browser.sign_in(&app, &app.admin_token).await;
    pages = vec![
        "/ui/".into(),
        "/ui/search?q=fraud".into(),
        "/ui/search?q=%22unclosed".into(),
        "/ui/events/5".into(),
        "/ui/entities/deployment:production/fraud-detector?direction=upstream&depth=10".into(),
        "/ui/models/model:fraud-detector@2".into(),
        "/ui/reports".into(),
        "/ui/entities/dataset:nothing-here@1".into(),
        "/ui/approvals?state=".into(),
        format!("/ui/approvals/{}", story.production_approval),
        "/ui/deployments?model=model:fraud-detector@1&environment=production".into(),
        "/ui/subjects?id=nobody-1".into(),
        "/ui/admin/tokens".into(),
        "/ui/admin/policy".into(),
    ];
    for path in pages {
        browser.open(&app, &path).await;
        if path == "/ui/reports" {
            keep_screenshot(browser, "reports").await;
        }
        check(path, run_axe(browser, &axe).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Fails on any serious or critical axe-core violation of the open page
/// (skipped, with the reason printed, without axe-core outside CI).
pub(crate) async fn assert_accessible(browser: &Browser, what: &str) {
    let Some(axe) = axe_source() else { return };
    let violations = run_axe(browser, &axe).await;
    let serious: Vec<String> = violations
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .map(|v| format!("{} ({})", v["id"], v["help"]))
        .collect();
    assert!(serious.is_empty(), "{what}: {serious:?}");
}

async fn run_axe(browser: &Browser, axe: &str) -> Value {
    browser.client.execute(axe, vec![]).await.expect("inject axe-core");
    let script = "const done = arguments[arguments.length - 1]; \
                  axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations), e => done(String(e)));";
    let violations = browser.client.execute_async(script, vec![]).await.expect("axe.run");
    assert!(violations.is_array(), "axe failed: {violations}");
    violations
}

/// A model version trained by `tom` (a data scientist who is also a risk
/// officer), registered and evaluated by alice, awaiting two production
/// approvals; returns the approval's id.
async fn awaiting_production(app: &TestApp) -> String {
    let alice = crate::helpers::client_with(&app.token("alice", &["data_scientist"], &["*"]));
    let tom = crate::helpers::client_with(&app.token("tom", &["data_scientist", "risk_officer"], &["*"]));
    let post = |client: reqwest::Client, body: Value| {
        let url = app.url("/api/v1/events");
        async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        }
    };
    post(
        alice.clone(),
        json!({"kind": "dataset.version_created", "subject": "dataset:loans@1", "project": "credit",
        "attributes": {"row_count": 10, "location": "s3://credit/loans/1"}}),
    )
    .await;
    post(tom.clone(), json!({"events": [
        {"kind": "run.started", "subject": "run:scorer-train-1", "project": "credit", "inputs": ["dataset:loans@1"]},
        {"kind": "run.completed", "subject": "run:scorer-train-1", "project": "credit", "outputs": ["model:scorer@1"]}]}))
    .await;
    post(alice.clone(), json!({"events": [
        {"kind": "model.registered", "subject": "model:scorer@1", "project": "credit", "inputs": ["run:scorer-train-1"]},
        {"kind": "model.evaluated", "subject": "model:scorer@1", "project": "credit", "inputs": ["dataset:loans@1"],
         "attributes": {"metrics": {"auc": 0.95}, "thresholds": {"auc": 0.92}, "passed": true}}]}))
    .await;
    let requested: Value = alice
        .post(app.url("/api/v1/approvals"))
        .json(&json!({"model": "model:scorer@1", "environment": "production", "note": "quarterly refresh"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    requested["id"].as_str().expect("approval id").to_owned()
}

/// Grants approval `id` in the console as the signed-in officer, with an
/// override reason when the page asks for one.
async fn grant_in_console(browser: &Browser, app: &TestApp, id: &str, reason: &str, why: Option<&str>) -> String {
    browser.open(app, &format!("/ui/approvals/{id}")).await;
    browser.client.find(Locator::Css("#reason")).await.unwrap().send_keys(reason).await.unwrap();
    if let Some(why) = why {
        browser.client.find(Locator::Css("#override_reason")).await.unwrap().send_keys(why).await.unwrap();
    }
    browser.follow("button[name='decision'][value='grant']").await;
    browser.text("#recorded").await
}

/// scorer@1 was evaluated on loans@1, its own training data: production
/// asks for an evaluation on other data, so every grant needs an override.
const OVERRIDE: &str = "holdout evaluation scheduled; limited rollout approved by the model risk committee";

#[tokio::test]
async fn the_production_quorum_is_reached_in_the_browser_and_refusals_write_nothing() {
    let Some((_turn, browser)) = turn().await else { return };
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let id = awaiting_production(&app).await;
    // rita's inbox shows it, with its evidence.
    browser.sign_in(&app, &app.token("rita", &["risk_officer"], &["*"])).await;
    browser.open(&app, "/ui/approvals").await;
    let card = browser.text(&format!("section[data-id='{id}']")).await;
    for expected in [
        "model:scorer@1",
        "production",
        "alice",
        "run:scorer-train-1",
        "run by tom",
        "dataset:loans@1",
        "auc",
        "0.95",
        "0.92",
        "passed",
        "0 of 2 granted",
        "fails 1 rule(s) of production",
        "was on dataset:loans@1, which trained it",
    ] {
        assert!(card.contains(expected), "{expected} not in {card}");
    }
    keep_screenshot(browser, "inbox").await;
    // A grant without an override reason is refused, saying what to add,
    // and writes nothing.
    let size = app.size().await;
    browser.open(&app, &format!("/ui/approvals/{id}")).await;
    browser.client.find(Locator::Css("#reason")).await.unwrap().send_keys("looks fine").await.unwrap();
    browser.follow("button[name='decision'][value='grant']").await;
    let refused = browser.text("#refused").await;
    assert!(refused.contains("override_reason") && refused.contains("which trained it"), "{refused}");
    assert_eq!(app.size().await, size);
    let recorded = grant_in_console(browser, &app, &id, "validated: AUC above threshold", Some(OVERRIDE)).await;
    assert!(recorded.starts_with("Recorded as event #"), "{recorded}");
    assert!(browser.text(".quorum").await.starts_with("1 of 2 granted: rita"));
    // The recorded event links to its page, with its proof.
    browser.follow("#recorded a").await;
    assert_eq!(browser.text("#proof-verdict").await, "Verified");
    assert!(browser.text("#attributes").await.contains("validated: AUC above threshold"));

    // tom trained it: no button, and a forged POST is refused.
    browser.sign_in(&app, &app.token("tom", &["data_scientist", "risk_officer"], &["*"])).await;
    browser.open(&app, &format!("/ui/approvals/{id}")).await;
    assert!(browser.text("#barred").await.contains("separation of duties"));
    assert!(browser.client.find(Locator::Css("button[name='decision']")).await.is_err());
    keep_screenshot(browser, "decision-barred").await;
    let size = app.size().await;
    forge_decision(browser, &id).await;
    assert!(browser.text("#refused").await.contains("separation of duties"));
    assert_eq!(app.size().await, size, "the refused decision wrote nothing");
    // An auditor, forging the same, is refused too (her sign-in is on the record).
    browser.sign_in(&app, &app.token("ada", &["auditor"], &["*"])).await;
    let size = app.size().await;
    browser.open(&app, &format!("/ui/approvals/{id}")).await;
    assert!(browser.client.find(Locator::Css("button[name='decision']")).await.is_err());
    forge_decision(browser, &id).await;
    assert!(browser.text("#refused").await.contains("ada may not append events/approval.granted"));
    assert_eq!(app.size().await, size);

    // raj's grant completes the quorum: the gate now allows production.
    browser.sign_in(&app, &app.token("raj", &["risk_officer"], &["*"])).await;
    grant_in_console(browser, &app, &id, "second line review done", Some(OVERRIDE)).await;
    assert!(browser.text(".quorum").await.starts_with("2 of 2 granted"));
    keep_screenshot(browser, "decision").await;
    browser.open(&app, "/ui/models/model:scorer@1").await;
    let gates = browser.text("#gates + p + table").await;
    assert!(gates.lines().any(|l| l.starts_with("production allow")), "{gates}");
    let api = app.get_json("/api/v1/gate?model=model:scorer@1&environment=production").await;
    assert_eq!(api["allowed"], true);
    let overridden = &api["checks"][0]["overridden_by"];
    assert_eq!((overridden["actor"].as_str(), overridden["reason"].as_str()), (Some("rita"), Some(OVERRIDE)), "{api}");
}

/// Posts a grant for approval `id` from the page the browser is on, with
/// the session's own CSRF token: what a hand-made form would send.
async fn forge_decision(browser: &Browser, id: &str) {
    let script = format!(
        "const f = document.createElement('form'); f.method = 'post'; f.action = '/ui/approvals/{id}';
         for (const [k, v] of [['decision', 'grant'], ['reason', 'forged'],
                               ['csrf', document.querySelector('input[name=csrf]').value]]) {{
           const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i); }}
         document.body.appendChild(f); window.__left = false; f.submit();"
    );
    browser.eval(&script).await;
    // The old page set `__left`; the answer's page has none.
    for _ in 0..200 {
        let fresh = browser.client.execute("return window.__left === undefined && document.readyState", vec![]).await;
        if fresh.is_ok_and(|v| v == "complete") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the forged form's answer never arrived");
}

#[tokio::test]
async fn the_deployments_page_shows_what_is_live_under_which_approvals_and_asks_the_gate() {
    let Some((_turn, browser)) = turn().await else { return };
    let (app, story) = demo_app().await;
    browser.sign_in(&app, &app.token("ada", &["auditor"], &["*"])).await;
    browser.open(&app, "/ui/deployments").await;
    let production = browser.text("table[data-environment='production']").await;
    assert!(production.contains("model:fraud-detector@2"), "{production}");
    assert!(production.contains(&format!("approval {} granted by", story.production_approval)), "{production}");
    assert!(production.contains("rita") && production.contains("raj") && production.contains("allow"));
    let blocked = browser.text(".timeline li[data-what='blocked']").await;
    assert!(blocked.contains("pending: 1 of 2 approvals"), "the gate's reasons: {blocked}");
    assert!(browser.client.find(Locator::Css(".timeline li[data-what='rolled_back']")).await.is_ok());
    keep_screenshot(browser, "deployments").await;
    // The gate form, for a version whose evaluation failed, and a mistyped environment.
    browser.client.find(Locator::Css("#gate-model")).await.unwrap().send_keys("model:fraud-detector@1").await.unwrap();
    browser.client.find(Locator::Css("#gate-environment")).await.unwrap().send_keys("production").await.unwrap();
    browser.follow("form[action='/ui/deployments#check'] button").await;
    let answer = browser.text("#gate-answer").await;
    let api = app.get_json("/api/v1/gate?model=model:fraud-detector@1&environment=production").await;
    assert!(answer.starts_with("deny"), "{answer}");
    for reason in api["reasons"].as_array().unwrap() {
        assert!(answer.contains(reason.as_str().unwrap()), "{reason} not in {answer}");
    }
    browser.open(&app, "/ui/deployments?model=model:fraud-detector@2&environment=prod").await;
    let answer = browser.text("#gate-answer").await;
    assert!(answer.starts_with("deny") && answer.contains("not declared"), "{answer}");
}

#[tokio::test]
async fn a_data_protection_officer_answers_access_and_erases_end_to_end() {
    let Some((_turn, browser)) = turn().await else { return };
    let (app, seq) = crate::console_http::with_personal_data("alice-4711", "alice@example.org").await;
    // An auditor has no data-protection entry and is refused the pages.
    browser.sign_in(&app, &app.token("ada", &["auditor"], &["*"])).await;
    assert!(!browser.text("header nav").await.contains("Data protection"));
    browser.open(&app, "/ui/subjects/alice-4711").await;
    assert_eq!(browser.text("h1").await, "Not allowed");

    browser.sign_in(&app, &app.token("dora", &["dpo"], &["*"])).await;
    browser.follow("header nav a[href='/ui/subjects']").await;
    browser.client.find(Locator::Css("#id")).await.unwrap().send_keys("alice-4711").await.unwrap();
    browser.follow("form[action='/ui/subjects'] button").await;
    assert!(browser.text(".subject-fields").await.contains("alice@example.org"));
    assert_eq!(browser.text("#subject-state").await, "held");
    keep_screenshot(browser, "subject").await;
    // A mistyped confirmation erases nothing.
    let size = app.size().await;
    browser.client.find(Locator::Css("#confirm")).await.unwrap().send_keys("alice-4712").await.unwrap();
    browser.follow("form[action='/ui/subjects/alice-4711/erase'] button").await;
    assert!(browser.text("#refused").await.contains("type the subject's id again"));
    assert_eq!(app.size().await, size);
    browser.client.find(Locator::Css("#confirm")).await.unwrap().send_keys("alice-4711").await.unwrap();
    browser.client.find(Locator::Css("#erase-reason")).await.unwrap().send_keys("DSR-2026-118").await.unwrap();
    browser.follow("form[action='/ui/subjects/alice-4711/erase'] button").await;
    assert!(browser.text("#erased").await.starts_with("Erased: recorded as event #"));
    assert_eq!(browser.text("#subject-state").await, "erased");
    // The certificate downloads; the event page shows the fields erased.
    let href = browser.client.find(Locator::Css("#certificate")).await.unwrap().attr("href").await.unwrap().unwrap();
    let cookie = browser.client.get_named_cookie("govledger_session").await.unwrap();
    let pdf = reqwest::Client::new()
        .get(app.url(&href))
        .header("Cookie", format!("govledger_session={}", cookie.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.status(), 200);
    assert!(pdf.bytes().await.unwrap().starts_with(b"%PDF"));
    browser.open(&app, &format!("/ui/events/{seq}")).await;
    let personal = browser.text("#personal").await;
    assert!(personal.contains("[erased]") && !personal.contains("alice@example.org"), "{personal}");
}

#[tokio::test]
async fn a_token_issued_and_revoked_in_the_admin_pages_stops_working_on_the_api_at_once() {
    let Some((_turn, browser)) = turn().await else { return };
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    app.append("dataset.version_created", "dataset:d@1").await;
    browser.sign_in(&app, &app.admin_token).await;
    browser.follow("header nav a[href='/ui/admin/tokens']").await;
    for (field, value) in [("#sub", "ci-bot"), ("#roles", "auditor"), ("#ttl", "1h")] {
        browser.client.find(Locator::Css(field)).await.unwrap().send_keys(value).await.unwrap();
    }
    browser.follow("form[action='/ui/admin/tokens'] button").await;
    let token = browser.client.find(Locator::Css("#new-token")).await.unwrap().prop("value").await.unwrap().unwrap();
    assert!(browser.text("#issued-token").await.contains("shown this once"));
    keep_screenshot(browser, "token-issued").await;
    let api = crate::helpers::client_with(&token);
    assert_eq!(api.get(app.url("/api/v1/head")).send().await.unwrap().status(), 200, "the new token works");
    // Revoke it, with a reason.
    let row = "tr:has(td:first-child)";
    let rows = browser.client.find_all(Locator::Css(row)).await.unwrap();
    let mut target = None;
    for r in rows {
        if r.text().await.unwrap().starts_with("ci-bot") {
            target = Some(r);
            break;
        }
    }
    let row = target.expect("the token is listed");
    row.find(Locator::Css("input[name='reason']")).await.unwrap().send_keys("left the team").await.unwrap();
    let button = row.find(Locator::Css("button")).await.unwrap();
    browser.follow_element(button).await;
    assert!(browser.text("#revoked").await.contains("is revoked"));
    assert_eq!(api.get(app.url("/api/v1/head")).send().await.unwrap().status(), 401, "revoked at once");
    // The policy page lists the default; an auditor sees no token controls.
    browser.follow("header nav a[href='/ui/admin/policy']").await;
    assert!(browser.text("#policy-text").await.contains("p, auditor, *, events, read, allow"));
    browser.sign_in(&app, &app.token("ada", &["auditor"], &["*"])).await;
    assert!(!browser.text("header nav").await.contains("Tokens"));
    browser.open(&app, "/ui/admin/tokens").await;
    assert_eq!(browser.text("h1").await, "Not allowed");
}
