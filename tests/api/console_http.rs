//! The console over plain HTTP, as a browser without JavaScript (or a
//! forger) sends it: security headers, sign-in by form, sessions that end
//! with their token, CSRF refusals and redirects that stay home.

use reqwest::redirect::Policy;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, TestApp};

/// A client that follows no redirect and keeps no cookie: each test says
/// which cookies it sends.
fn bare() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

/// The value of cookie `name` set by `response`.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response.headers().get_all("set-cookie").iter().find_map(|v| {
        let text = v.to_str().ok()?;
        let (pair, _) = text.split_once(';').unwrap_or((text, ""));
        let (n, value) = pair.split_once('=')?;
        (n == name && !value.is_empty()).then(|| value.to_owned())
    })
}

/// The hidden `csrf` field of a page.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    html[at..at + 64].to_owned()
}

/// Posts the sign-in form with `token` (and `next`), as a browser without
/// JavaScript does: first the form, for its CSRF token and cookie.
async fn post_sign_in(app: &TestApp, token: &str, next: &str) -> reqwest::Response {
    let client = bare();
    let form = client.get(app.url("/ui/login")).send().await.unwrap();
    let login_cookie = set_cookie(&form, "govledger_login").expect("login cookie");
    let csrf = csrf_of(&form.text().await.unwrap());
    client
        .post(app.url("/ui/login"))
        .header("Cookie", format!("govledger_login={login_cookie}"))
        .form(&[("token", token), ("csrf", &csrf), ("next", next)])
        .send()
        .await
        .unwrap()
}

/// The status of a sign-in with `token` through the form.
pub async fn try_sign_in(app: &TestApp, token: &str) -> StatusCode {
    post_sign_in(app, token, "/ui/").await.status()
}

/// Signs in with `token` through the form; returns the session cookie's value.
pub async fn sign_in(app: &TestApp, token: &str) -> String {
    let answer = post_sign_in(app, token, "/ui/search?q=x").await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER, "{}", answer.text().await.unwrap());
    assert_eq!(answer.headers()["location"], "/ui/search?q=x");
    set_cookie(&answer, "govledger_session").expect("session cookie")
}

async fn get_with(app: &TestApp, session: &str, path: &str) -> reqwest::Response {
    bare().get(app.url(path)).header("Cookie", format!("govledger_session={session}")).send().await.unwrap()
}

#[tokio::test]
async fn every_console_answer_carries_a_strict_content_security_policy() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let session = sign_in(&app, &app.admin_token).await;
    for path in ["/ui/login", "/ui/", "/ui/search?q=%22", "/ui/nowhere", "/ui/events/999", "/ui/assets/console.css"] {
        let answer = get_with(&app, &session, path).await;
        let header = |name: &str| answer.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        let csp = header("content-security-policy").unwrap_or_else(|| panic!("{path}: no CSP"));
        for part in ["default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"), "{path}");
        assert!(header("referrer-policy").is_some(), "{path}");
    }
    // No page carries inline script: every <script> has a src.
    let html = get_with(&app, &session, "/ui/").await.text().await.unwrap();
    assert!(html.matches("<script").count() >= 1);
    assert_eq!(html.matches("<script").count(), html.matches("<script src=\"/ui/assets/").count(), "{html}");
    assert_eq!(bare().get(app.url("/")).send().await.unwrap().headers()["location"], "/ui/");
}

#[tokio::test]
async fn a_session_ends_when_its_token_is_revoked() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let issued = app
        .client
        .post(app.url("/api/v1/tokens"))
        .json(&json!({"sub": "ada", "roles": ["auditor"], "ttl": "1h"}))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let session = sign_in(&app, issued["token"].as_str().unwrap()).await;
    assert_eq!(get_with(&app, &session, "/ui/").await.status(), StatusCode::OK);
    let jti = issued["jti"].as_str().unwrap();
    let revoked =
        app.client.post(app.url(&format!("/api/v1/tokens/{jti}/revoke"))).json(&json!({})).send().await.unwrap();
    assert!(revoked.status().is_success(), "{}", revoked.text().await.unwrap());
    let after = get_with(&app, &session, "/ui/search").await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    let to = after.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with("/ui/login?next=/ui/search") && to.contains("why=revoked"), "{to}");
    let told = bare().get(app.url(&to)).send().await.unwrap().text().await.unwrap();
    assert!(told.contains("has been revoked"), "the sign-in page says why");
    // A crafted reason is not put on the page.
    let crafted = bare().get(app.url("/ui/login?why=Call+0800+now")).send().await.unwrap().text().await.unwrap();
    assert!(!crafted.contains("0800"));
    // And the session is gone, not just refused once.
    let again = get_with(&app, &session, "/ui/").await;
    assert!(!again.headers()["location"].to_str().unwrap().contains("why="), "a dead session asks for sign-in");
}

#[tokio::test]
async fn a_post_without_the_sessions_csrf_token_is_refused_and_changes_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let session = sign_in(&app, &app.admin_token).await;
    let cookie = format!("govledger_session={session}");
    for body in [vec![], vec![("csrf", "0".repeat(64))]] {
        let answer = bare().post(app.url("/ui/logout")).header("Cookie", &cookie).form(&body).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::FORBIDDEN);
        assert!(answer.text().await.unwrap().contains("reload the page"));
        let verify = bare().post(app.url("/ui/verify")).header("Cookie", &cookie).form(&body).send().await.unwrap();
        assert_eq!(verify.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(get_with(&app, &session, "/ui/").await.status(), StatusCode::OK, "still signed in");
    // The sign-in form needs its own token too.
    let forged = bare()
        .post(app.url("/ui/login"))
        .form(&[("token", app.admin_token.as_str()), ("csrf", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&forged, "govledger_session").is_none());
}

#[tokio::test]
async fn signing_in_never_sends_the_visitor_to_another_host() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let client = bare();
    for next in ["https://evil.example/", "//evil.example/ui/", "/\\evil.example", "/api/v1/head"] {
        let form = client.get(app.url(&format!("/ui/login?next={}", urlencode(next)))).send().await.unwrap();
        let login = set_cookie(&form, "govledger_login").unwrap();
        let html = form.text().await.unwrap();
        assert!(html.contains("name=\"next\" value=\"/ui/\""), "{next}: the form keeps only a console path");
        let answer = client
            .post(app.url("/ui/login"))
            .header("Cookie", format!("govledger_login={login}"))
            .form(&[("token", app.admin_token.as_str()), ("csrf", &csrf_of(&html)), ("next", next)])
            .send()
            .await
            .unwrap();
        assert_eq!(answer.headers()["location"], "/ui/", "{next}");
    }
    // Signed out, a page asks for sign-in and remembers where it was.
    let answer = client.get(app.url("/ui/entities/model:x@1?depth=2")).send().await.unwrap();
    assert_eq!(answer.headers()["location"], "/ui/login?next=/ui/entities/model%3Ax%401%3Fdepth%3D2");
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

#[tokio::test]
async fn pages_a_caller_may_not_see_are_404_with_words_and_reports_need_their_action() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    app.append_json(&json!({"kind": "dataset.version_created", "subject": "dataset:secret@1", "project": "credit",
        "attributes": {"row_count": 1, "location": "s3://x"}}))
        .await;
    let viewer = sign_in(&app, &app.token("vic", &["viewer"], &["fraud"])).await;
    let page = get_with(&app, &viewer, "/ui/entities/dataset:secret@1").await;
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    let text = page.text().await.unwrap();
    assert!(text.contains("your access does not reach it") && text.contains("<h1>Not found</h1>"));
    assert_eq!(get_with(&app, &viewer, "/ui/events/1").await.status(), StatusCode::NOT_FOUND);
    // A viewer reads events but not reports: the reports page says so.
    let reports = get_with(&app, &viewer, "/ui/reports").await;
    assert_eq!(reports.status(), StatusCode::FORBIDDEN);
    assert!(reports.text().await.unwrap().contains("may not read reports"));
}

/// A server with a master key and one event naming data subject `id`
/// (email `email`); returns it and the event's seq.
pub async fn with_personal_data(id: &str, email: &str) -> (TestApp, u64) {
    use govledger::ledger::personal::MasterKey;
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.writer.master_key = Some(std::sync::Arc::new(MasterKey::new(&[5u8; 32])));
    })
    .await
    .unwrap();
    let event = app
        .append_json(&json!({"kind": "customer.complaint_logged", "subject": "model:churn@1", "project": "crm",
            "personal": {"subject_ids": [id], "fields": {"email": email}}}))
        .await;
    let seq = event["seq"].as_u64().unwrap();
    (app, seq)
}

#[tokio::test]
async fn the_event_page_shows_personal_fields_to_those_who_may_read_them_and_erased_after_erasure() {
    let (app, seq) = with_personal_data("alice-4711", "alice@example.org").await;
    let path = format!("/ui/events/{seq}");
    let dpo_token = app.token("dora", &["dpo"], &["*"]);
    let dpo = sign_in(&app, &dpo_token).await;
    let auditor = sign_in(&app, &app.token("ada", &["auditor"], &["*"])).await;
    let page = get_with(&app, &dpo, &path).await.text().await.unwrap();
    assert!(page.contains("alice@example.org"), "the DPO reads the field in clear");
    let page = get_with(&app, &auditor, &path).await.text().await.unwrap();
    assert!(!page.contains("alice@example.org") && page.contains("[redacted]"), "an auditor does not");
    let erased = crate::helpers::client_with(&dpo_token)
        .post(app.url("/api/v1/subjects/alice-4711/erase"))
        .json(&json!({"reason": "DSR-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status(), 200);
    let page = get_with(&app, &dpo, &path).await.text().await.unwrap();
    assert!(!page.contains("alice@example.org") && page.contains("[erased]"));
}

#[tokio::test]
async fn the_one_event_bundle_verifies_offline() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    for i in 0..5 {
        app.append("dataset.version_created", &format!("dataset:d{i}@1")).await;
    }
    let session = sign_in(&app, &app.admin_token).await;
    let answer = get_with(&app, &session, "/ui/events/3/bundle.tar").await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.headers()["content-type"], "application/x-tar");
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("b.tar");
    std::fs::write(&tar, answer.bytes().await.unwrap()).unwrap();
    let untar = std::process::Command::new("tar").arg("xf").arg(&tar).arg("-C").arg(dir.path()).status().unwrap();
    assert!(untar.success());
    let verified = std::process::Command::new(env!("CARGO_BIN_EXE_govledger"))
        .arg("verify-bundle")
        .arg(dir.path().join("event-3"))
        .output()
        .unwrap();
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("event-3/bundle.json")).unwrap()).unwrap();
    assert_eq!(manifest["events"].as_array().unwrap().len(), 1);
    assert_eq!(manifest["events"][0]["seq"], 3);
}

#[tokio::test]
async fn over_https_the_console_cookies_are_secure() {
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.public_url = Some("https://ledger.example.com".into());
    })
    .await
    .unwrap();
    assert!(app.first_run_url.as_deref().unwrap().starts_with("https://ledger.example.com/ui/login?code="));
    let client = bare();
    let form = client.get(app.url("/ui/login")).send().await.unwrap();
    let cookies: Vec<String> =
        form.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert!(cookies.iter().all(|c| c.contains("Secure") && c.contains("HttpOnly") && c.contains("SameSite=Strict")));
}

#[tokio::test]
async fn a_page_with_a_200_node_drawing_weighs_under_300_kb() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    app.append_json(&json!({"kind": "dataset.version_created", "subject": "dataset:transactions-hub@2026-11",
        "project": "fraud", "attributes": {"row_count": 1, "location": "s3://lake/hub"}}))
        .await;
    let runs: Vec<serde_json::Value> = (0..260)
        .map(|i| {
            json!({"kind": "run.started", "subject": format!("run:feature-pipeline-nightly-{i:04}"), "project": "fraud",
                   "inputs": ["dataset:transactions-hub@2026-11"]})
        })
        .collect();
    assert_eq!(app.post_events(&json!({"events": runs})).await.status(), 201);
    let session = sign_in(&app, &app.admin_token).await;
    let page = get_with(&app, &session, "/ui/entities/dataset:transactions-hub@2026-11?direction=downstream&depth=1")
        .await
        .text()
        .await
        .unwrap();
    let drawn = page.matches("data-ref=").count();
    assert_eq!(drawn, 200, "the drawing holds the 200 nodes it may");
    assert!(page.contains("Cut at 200 nodes"), "the drawing says it was cut");
    assert!(page.len() < 300 * 1024, "{} KB", page.len() / 1024);
    eprintln!("a page with a 200-node drawing: {} KB", page.len() / 1024);
}

#[tokio::test]
async fn an_expired_approval_shows_as_expired_and_no_longer_counts() {
    let rules = govledger::governance::ApprovalRules::parse(
        "[environments.staging]\napprovals_required = 1\napprover_roles = [\"risk_officer\"]\nvalid_for = \"2\"\n",
    )
    .unwrap();
    let app = TestApp::spawn_with(Backend::Sqlite, |config| config.approval_rules = rules).await.unwrap();
    app.append_json(&json!({"kind": "run.completed", "subject": "run:short-1", "project": "p",
        "outputs": ["model:short@1"]}))
        .await;
    app.append_json(&json!({"kind": "model.registered", "subject": "model:short@1", "project": "p",
        "inputs": ["run:short-1"]}))
        .await;
    let requested: serde_json::Value = app
        .client
        .post(app.url("/api/v1/approvals"))
        .json(&json!({"model": "model:short@1", "environment": "staging"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = requested["id"].as_str().unwrap().to_owned();
    let rita_token = app.token("rita", &["risk_officer"], &["*"]);
    let rita = sign_in(&app, &rita_token).await;
    // The grant, through the console's form.
    let form = get_with(&app, &rita, &format!("/ui/approvals/{id}")).await.text().await.unwrap();
    let granted = bare()
        .post(app.url(&format!("/ui/approvals/{id}")))
        .header("Cookie", format!("govledger_session={rita}"))
        .form(&[("decision", "grant"), ("reason", "fine for a trial"), ("csrf", &csrf_of(&form))])
        .send()
        .await
        .unwrap();
    assert_eq!(granted.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.get_json("/api/v1/gate?model=model:short@1&environment=staging").await["allowed"], true);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let page = get_with(&app, &rita, &format!("/ui/approvals/{id}")).await.text().await.unwrap();
    assert!(page.contains("<dd class=\"approval-state\">expired</dd>"), "shown as expired");
    assert_eq!(app.get_json("/api/v1/gate?model=model:short@1&environment=staging").await["allowed"], false);
    let model = get_with(&app, &rita, "/ui/models/model:short@1").await.text().await.unwrap();
    assert!(model.contains("verdict bad\">deny"), "the model page's gate no longer allows it");
    // An empty reason is refused on the page, and nothing is written.
    let size = app.size().await;
    let refused = bare()
        .post(app.url(&format!("/ui/approvals/{id}")))
        .header("Cookie", format!("govledger_session={rita}"))
        .form(&[("decision", "revoke"), ("reason", " "), ("csrf", &csrf_of(&form))])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text().await.unwrap().contains("give a reason"));
    assert_eq!(app.size().await, size);
    // With a reason, the revocation is recorded and shown.
    let revoked = bare()
        .post(app.url(&format!("/ui/approvals/{id}")))
        .header("Cookie", format!("govledger_session={rita}"))
        .form(&[("decision", "revoke"), ("reason", "trial over"), ("csrf", &csrf_of(&form))])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    let to = revoked.headers()["location"].to_str().unwrap().to_owned();
    let page = get_with(&app, &rita, &to).await.text().await.unwrap();
    assert!(page.contains("(approval.revoked)") && page.contains("<dd class=\"approval-state\">revoked</dd>"));
    assert_eq!(app.size().await, size + 1);
}

#[tokio::test]
async fn the_policy_page_shows_its_history_and_a_diff_between_versions() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    app.add_policy_line("p, loader, *, events/dataset.*, append, allow").await;
    let changed = app.get_json("/api/v1/events?kind=policy.changed").await;
    let seq = changed["events"][0]["seq"].as_u64().unwrap();
    let admin = sign_in(&app, &app.admin_token).await;
    let page = get_with(&app, &admin, &format!("/ui/admin/policy?from=0&to={seq}")).await.text().await.unwrap();
    assert!(page.contains(&format!("event #{seq}")) && page.contains(super::helpers::TEST_ADMIN));
    assert!(page.contains("<span class=\"added\">+ p, loader, *, events/dataset.*, append, allow</span>"), "{page}");
    assert!(!page.contains("class=\"removed\""), "nothing was removed");
    let bad = get_with(&app, &admin, "/ui/admin/policy?from=0&to=99999").await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn an_auditor_sees_no_controls_and_every_forged_post_is_refused_and_writes_nothing() {
    let (app, _) = with_personal_data("bob-1", "bob@example.org").await;
    let auditor = sign_in(&app, &app.token("ada", &["auditor"], &["*"])).await;
    let overview = get_with(&app, &auditor, "/ui/").await.text().await.unwrap();
    for absent in ["/ui/admin/tokens", "/ui/subjects"] {
        assert!(!overview.contains(&format!("href=\"{absent}\"")), "an auditor's menu has no {absent}");
    }
    let csrf = csrf_of(&overview);
    let size = app.size().await;
    let cookie = format!("govledger_session={auditor}");
    for (path, form) in [
        ("/ui/subjects/bob-1/erase", vec![("confirm", "bob-1"), ("reason", "x")]),
        ("/ui/admin/tokens", vec![("sub", "mallory"), ("roles", "admin")]),
        ("/ui/admin/tokens/0000/revoke", vec![("reason", "x")]),
    ] {
        let mut form = form;
        form.push(("csrf", &csrf));
        let answer = bare().post(app.url(path)).header("Cookie", &cookie).form(&form).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(answer.text().await.unwrap().contains("Not allowed"), "{path}");
    }
    assert_eq!(app.size().await, size, "nothing was written");
}

#[tokio::test]
async fn reports_download_in_every_format_and_a_missing_subject_says_what_to_fix() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    app.append_json(&json!({"kind": "dataset.version_created", "subject": "dataset:d@1", "project": "p",
        "attributes": {"row_count": 1, "location": "s3://d"}}))
        .await;
    let admin = sign_in(&app, &app.admin_token).await;
    for (format, content_type) in [("pdf", "application/pdf"), ("json", "application/json"), ("csv", "text/csv")] {
        let answer =
            get_with(&app, &admin, &format!("/ui/reports/audit-trail?subject=&project=p&from=&to=&format={format}"))
                .await;
        assert_eq!(answer.status(), StatusCode::OK, "{format}");
        assert!(answer.headers()["content-type"].to_str().unwrap().starts_with(content_type), "{format}");
        assert!(answer.headers()["content-disposition"].to_str().unwrap().contains(&format!("audit-trail.{format}")));
    }
    let missing = get_with(&app, &admin, "/ui/reports/model-dossier?subject=&format=pdf").await;
    assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(missing.text().await.unwrap().contains("model-dossier needs a subject"));
}

#[tokio::test]
async fn an_entity_drawn_as_of_before_it_existed_says_so_on_its_page() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    app.append_json(&json!({"kind": "dataset.version_created", "subject": "dataset:d@1", "project": "p",
        "attributes": {"row_count": 1, "location": "s3://d"}}))
        .await;
    let admin = sign_in(&app, &app.admin_token).await;
    let page = get_with(&app, &admin, "/ui/entities/dataset:d@1?direction=both&depth=2&as_of=2000-01-01T00:00:00Z")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("No drawing: no entity dataset:d@1 (at that time)"), "{page}");
    let bad = get_with(&app, &admin, "/ui/entities/dataset:d@1?depth=11").await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.text().await.unwrap().contains("depth must be a whole number from 1 to 10"));
}

/// A `govledger serve` process, killed when dropped (a failing test
/// leaves no server behind), with its stdout's lines.
struct Serving(std::process::Child, std::io::Lines<std::io::BufReader<std::process::ChildStdout>>);

impl Serving {
    fn start(data_dir: &std::path::Path) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_govledger"))
            .args(["serve", "--bind", "127.0.0.1:0", "--workers", "1", "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        Self(child, lines)
    }

    fn line(&mut self) -> Option<String> {
        self.1.next().map(Result::unwrap)
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serve_prints_a_one_time_sign_in_link_on_a_ledger_without_an_administrator() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Serving::start(dir.path());
    let listening = server.line().unwrap();
    let first_run = server.line().unwrap();
    assert!(listening.starts_with("govledger listening on http://127.0.0.1:"), "{listening}");
    let url = first_run.split_whitespace().find(|w| w.contains("/ui/login?code=")).expect("a sign-in link").to_owned();
    assert!(first_run.contains("within 15 minutes") && first_run.contains("works once"), "{first_run}");
    let page = bare().get(&url).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("First run: sign in as the first administrator"), "{page}");
    drop(server);
    // Once an administrator token is on the record, no link is printed.
    let issued = std::process::Command::new(env!("CARGO_BIN_EXE_govledger"))
        .args(["token", "issue", "--sub", "root", "--role", "admin", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(issued.status.success(), "{}", String::from_utf8_lossy(&issued.stderr));
    let mut server = Serving::start(dir.path());
    assert!(server.line().unwrap().starts_with("govledger listening"));
    let _ = server.0.kill();
    assert!(server.line().is_none(), "no sign-in link once an administrator exists");
}

/// The model page charts what monitoring reported, with the rule's limits,
/// and lists the breach; a segment name from the record is escaped inside
/// the SVG.
#[tokio::test]
async fn the_model_page_charts_monitoring_and_escapes_what_the_record_says() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let model = "model:fraud-chart@1";
    let body = serde_json::json!({"events": [
        {"kind": "run.started", "subject": "run:chart", "project": "fraud"},
        {"kind": "model.registered", "subject": model, "project": "fraud", "inputs": ["run:chart"]},
    ]});
    assert_eq!(app.post_events(&body).await.status(), 201);
    let reports: Vec<serde_json::Value> = [0.95, 0.89, 0.88, 0.87]
        .iter()
        .zip(1..)
        .map(|(v, day)| {
            serde_json::json!({"kind": "monitoring.metric_reported", "subject": model, "project": "fraud",
                "attributes": {"metric": "auc", "value": v, "environment": "production", "segment": "<b>EU</b>",
                  "window": {"start": format!("2026-11-{day:02}T00:00:00Z"), "end": format!("2026-11-{:02}T00:00:00Z", day + 1)}}})
        })
        .collect();
    assert_eq!(app.post_events(&serde_json::json!({"events": reports})).await.status(), 201);
    let session = sign_in(&app, &app.admin_token).await;
    let page = get_with(&app, &session, &format!("/ui/models/{model}")).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<svg class="chart""#), "no chart on the page");
    assert!(html.contains("fraud-auc min 0.9") && html.contains("fraud-auc warning 0.92"));
    assert!(html.contains("production &lt;b&gt;EU&lt;/b&gt;") && !html.contains("<b>EU</b>"), "the segment is escaped");
    assert!(html.contains("BREACH (critical): rule fraud-auc in production"));
}
