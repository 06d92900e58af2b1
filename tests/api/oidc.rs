//! Sign-in through a real OpenID provider: the npm package `oidc-provider`,
//! run by Node.js from tests/oidc/provider.mjs on loopback. The flows are
//! driven over plain HTTP with a cookie jar (so that each step can be
//! tampered with) and, once, in the shared Chromium.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use govledger::auth::identity::IdentityMap;
use govledger::auth::oidc::{OidcConfig, Provider};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{json, Value};

use crate::helpers::{all_events, client_with, in_ci, Backend, TestApp};

const CLIENT_ID: &str = "govledger";
const CLIENT_SECRET: &str = "test-client-secret";

/// The folder holding the `oidc-provider` package, or `None` (skipped, with
/// the reason printed) outside CI.
fn node_modules() -> Option<PathBuf> {
    let dir = std::env::var_os("GOVLEDGER_TEST_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ci-node/node_modules"));
    let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let why = if !node {
        "Node.js is not installed (apt-get install nodejs npm)".to_owned()
    } else if !dir.join("oidc-provider/package.json").is_file() {
        format!(
            "oidc-provider is not installed in {} (npm install --prefix target/ci-node oidc-provider@9)",
            dir.display()
        )
    } else {
        return Some(dir);
    };
    if in_ci() {
        panic!("CI must run the OpenID Connect tests, but {why}");
    }
    eprintln!("SKIPPED: the OpenID Connect tests need a real provider: {why}");
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `oidc-provider`.
struct Op {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    modules: PathBuf,
    settings: Value,
}

impl Op {
    /// A provider for a govledger at `app_port`, with `accounts`.
    fn start(modules: &Path, app_port: u16, accounts: Value, id_token_ttl: u64) -> Op {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let settings = json!({
            "port": port,
            "issuer": format!("http://127.0.0.1:{port}"),
            "keys_file": dir.path().join("keys.json"),
            "id_token_ttl": id_token_ttl,
            "clients": [{
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [format!("http://127.0.0.1:{app_port}/ui/login/oidc/callback")],
                "post_logout_redirect_uris": [format!("http://127.0.0.1:{app_port}/ui/login")],
            }],
            "accounts": accounts,
        });
        let mut op = Op { child: None, port, dir, modules: modules.to_path_buf(), settings };
        op.run(false, None);
        op
    }

    fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer())
    }

    /// (Re)starts the provider on its port; `rotate` adds a new signing
    /// key, `keep` withdraws all but the first N.
    fn run(&mut self, rotate: bool, keep: Option<usize>) {
        self.stop();
        let mut settings = self.settings.clone();
        settings["rotate"] = json!(rotate);
        settings["keep"] = json!(keep);
        let path = self.dir.path().join("settings.json");
        std::fs::write(&path, settings.to_string()).unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc/provider.mjs");
        let mut child = Command::new("node")
            .arg(script)
            .arg(&path)
            .env("GOVLEDGER_TEST_NODE_MODULES", &self.modules)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        while line.is_empty() || !line.starts_with("listening") {
            line.clear();
            assert!(reader.read_line(&mut line).unwrap() > 0, "the provider stopped before listening");
        }
        self.child = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The kids the provider publishes.
    async fn kids(&self) -> Vec<String> {
        let jwks: Value = reqwest::get(self.url("/jwks")).await.unwrap().json().await.unwrap();
        jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
    }

    async fn set_accounts(&self, accounts: Value) {
        let response = reqwest::Client::new().post(self.url("/test/accounts")).json(&accounts).send().await.unwrap();
        assert_eq!(response.status(), 204);
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A browser without a browser: cookies (by name, as one site's are) and
/// manual redirects, so a test sees and can change every step.
#[derive(Default)]
struct Jar {
    cookies: BTreeMap<String, String>,
}

impl Jar {
    fn client() -> reqwest::Client {
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let header = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let request = if header.is_empty() { request } else { request.header(COOKIE, header) };
        let response = request.send().await.expect("request sent");
        for value in response.headers().get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let removed = text.contains("Max-Age=0") || text.contains("1970");
            if value.is_empty() || removed {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        response
    }

    async fn get(&mut self, url: &str) -> reqwest::Response {
        self.send(Self::client().get(url)).await
    }
}

fn location(response: &reqwest::Response, base: &str) -> String {
    assert_eq!(response.status(), 303, "expected a redirect from {}", response.url());
    let to = response.headers()[LOCATION].to_str().unwrap();
    url::Url::parse(base).unwrap().join(to).unwrap().to_string()
}

/// Follows the provider's side of a sign-in for `login`, from the
/// authorization URL to the redirect back: answers the callback URL.
async fn at_provider(jar: &mut Jar, op: &Op, authorize: &str, login: &str) -> String {
    let response = jar.get(authorize).await;
    let interaction = location(&response, &op.issuer());
    if !interaction.starts_with(&op.url("/interaction/")) {
        // Still signed in at the provider: it answers at once.
        return interaction;
    }
    let page = jar.get(&interaction).await;
    assert_eq!(page.status(), 200);
    let submitted =
        jar.send(Jar::client().post(format!("{interaction}/login")).form(&[("login", login), ("password", "x")])).await;
    let resume = location(&submitted, &op.issuer());
    let back = jar.get(&resume).await;
    location(&back, &op.issuer())
}

/// Starts a console sign-in at `app` and walks it through the provider:
/// answers the callback URL, not yet opened.
async fn console_callback(jar: &mut Jar, app: &TestApp, op: &Op, login: &str) -> String {
    let started = jar.get(&app.url("/ui/login/oidc?next=/ui/approvals")).await;
    let authorize = location(&started, &app.base);
    assert!(authorize.starts_with(&op.url("/auth?")), "{authorize}");
    for needed in ["code_challenge_method=S256", "code_challenge=", "state=", "nonce=", "client_id=govledger"] {
        assert!(authorize.contains(needed), "{needed} missing from {authorize}");
    }
    at_provider(jar, op, &authorize, login).await
}

/// A full console sign-in of `login`; answers the page the visitor lands on.
async fn console_sign_in(jar: &mut Jar, app: &TestApp, op: &Op, login: &str) -> reqwest::Response {
    let callback = console_callback(jar, app, op, login).await;
    jar.get(&callback).await
}

/// Plays a client of `op` itself, to obtain an ID token for `login` (what a
/// pipeline or a CLI would send as a bearer token). Answers the token.
async fn id_token(op: &Op, app_port: u16, login: &str, nonce: &str) -> String {
    let verifier = "a-verifier-of-at-least-forty-three-characters-long-0123456789";
    let challenge = govledger::auth::oidc::login::challenge_of(verifier);
    let redirect_uri = format!("http://127.0.0.1:{app_port}/ui/login/oidc/callback");
    let mut authorize = url::Url::parse(&op.url("/auth")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", CLIENT_ID)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", "openid profile email")
        .append_pair("state", "test-state")
        .append_pair("nonce", nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let mut jar = Jar::default();
    let callback = at_provider(&mut jar, op, authorize.as_str(), login).await;
    let code = url::Url::parse(&callback).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let answer: Value = Jar::client()
        .post(op.url("/token"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect_uri),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["id_token"].as_str().unwrap_or_else(|| panic!("no id_token: {answer}")).to_owned()
}

fn accounts() -> Value {
    json!({
        "alice": {"sub": "alice-1", "groups": ["risk-officers-emea", "staff"], "email": "alice@example.com",
                  "name": "Alice Moreau"},
        "bob": {"sub": "bob-1", "groups": ["staff"], "email": "bob@example.com", "name": "Bob Lind"},
        "tom": {"sub": "tom-1", "groups": ["risk-officers-emea"], "name": "Tom Berg"},
    })
}

fn identity_map(issuer: &str) -> String {
    format!(
        r#"
[[map]]
claim = "groups"
value = "risk-officers-emea"
roles = ["risk_officer"]
projects = ["credit", "fraud"]

[[map]]
claim = "groups"
value = "staff"
roles = ["viewer"]
projects = ["credit"]

[[person]]
name = "Tom Berg"
identities = ["tom", "oidc:{issuer}|tom-1"]
"#
    )
}

/// govledger's settings for `op`, caching its keys at `cache`.
fn oidc_config(op: &Op, refresh: Duration, cache: PathBuf) -> OidcConfig {
    let mut oidc = OidcConfig::new(&op.issuer(), CLIENT_ID, Path::new("/nonexistent"));
    oidc.client_secret = Some(zeroize::Zeroizing::new(CLIENT_SECRET.to_owned()));
    oidc.display_name = "Test IdP".into();
    oidc.refresh_interval = refresh;
    oidc.cache_path = cache;
    oidc
}

/// A provider and a govledger that trusts it, on SQLite.
async fn pair(modules: &Path, id_token_ttl: u64, refresh: Duration) -> (Op, TestApp, u16) {
    pair_with(modules, id_token_ttl, refresh, |_| {}).await
}

/// [`pair`], with the server's configuration changed by `tweak`.
async fn pair_with(
    modules: &Path,
    id_token_ttl: u64,
    refresh: Duration,
    tweak: impl FnOnce(&mut govledger::config::Config),
) -> (Op, TestApp, u16) {
    let app_port = free_port();
    let op = Op::start(modules, app_port, accounts(), id_token_ttl);
    let oidc = oidc_config(&op, refresh, op.dir.path().join("oidc-cache.json"));
    let map = identity_map(&op.issuer());
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.bind = format!("127.0.0.1:{app_port}");
        c.oidc = Some(oidc);
        c.identity_map = Some(map);
        tweak(c);
    })
    .await
    .expect("sqlite");
    (op, app, app_port)
}

fn events_of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

#[tokio::test]
async fn a_console_sign_in_through_the_provider_maps_groups_and_is_on_the_record() {
    let Some(modules) = node_modules() else { return };
    let (op, app, _) = pair(&modules, 60, Duration::from_secs(3600)).await;
    let actor = format!("oidc:{}|alice-1", op.issuer());

    let mut jar = Jar::default();
    let landed = console_sign_in(&mut jar, &app, &op, "alice").await;
    assert_eq!(location(&landed, &app.base), app.url("/ui/approvals"), "back where the sign-in started");
    let page = jar.get(&app.url("/ui/")).await;
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        policy.contains(&format!("form-action 'self' {};", op.issuer())),
        "the sign-out form's redirect to the provider is allowed, and only that: {policy}"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("Alice Moreau"), "the display name is shown");
    assert!(html.contains("risk_officer, viewer"), "both matching rules' roles are united: {html}");

    let events = all_events(&app).await;
    let changed = events_of(&events, "identity.changed");
    assert_eq!(changed.len(), 1, "the map given at start is on the record");
    assert!(changed[0]["attributes"]["identity_map"].as_str().unwrap().contains("risk-officers-emea"));
    let started = events_of(&events, "session.started");
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["actor"], actor.as_str());
    assert_eq!(started[0]["attributes"]["method"], "oidc");
    let hash = started[0]["attributes"]["session_sha256"].as_str().unwrap().to_owned();
    let session_id = jar.cookies["govledger_session"].clone();
    assert_eq!(hash, govledger::http::console::session::recorded_hash(&session_id));
    assert!(started[0]["attributes"].get("personal").is_none(), "no master key: the name is not recorded at all");
    let recorded = serde_json::to_string(&events).unwrap();
    for personal in ["alice@example.com", "Alice Moreau", session_id.as_str(), "127.0.0.1\""] {
        assert!(!recorded.contains(personal), "{personal} must not be on the record");
    }

    // Sign-out ends the session here, is recorded, and ends it at the
    // provider (RP-initiated logout, with the ID token as the hint).
    let csrf =
        regex::Regex::new(r#"name="csrf" value="([0-9a-f]{64})""#).unwrap().captures(&html).unwrap()[1].to_owned();
    let out = jar.send(Jar::client().post(app.url("/ui/logout")).form(&[("csrf", csrf.as_str())])).await;
    let to = location(&out, &app.base);
    assert!(to.starts_with(&op.url("/session/end?id_token_hint=")), "{to}");
    assert!(to.contains("post_logout_redirect_uri="), "{to}");
    let after = jar.get(&app.url("/ui/")).await;
    assert!(location(&after, &app.base).contains("/ui/login"), "signed out");
    let events = all_events(&app).await;
    let ended = events_of(&events, "session.ended");
    assert_eq!(ended.len(), 1);
    assert_eq!(
        (ended[0]["actor"].as_str(), ended[0]["attributes"]["session_sha256"].as_str()),
        (Some(actor.as_str()), Some(hash.as_str()))
    );

    // A person whose groups no rule maps gets no access, not a default role.
    op.set_accounts(json!({"nobody": {"sub": "n-1", "groups": ["contractors"]}})).await;
    let mut jar = Jar::default();
    let refused = console_sign_in(&mut jar, &app, &op, "nobody").await;
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("no rule of the identity map matches"));
    assert!(!jar.cookies.contains_key("govledger_session"));
}

#[tokio::test]
async fn the_persons_name_goes_on_the_record_only_sealed_and_erasable() {
    let Some(modules) = node_modules() else { return };
    let master = std::sync::Arc::new(govledger::ledger::personal::MasterKey::new(&[7u8; 32]));
    let (op, app, _) =
        pair_with(&modules, 60, Duration::from_secs(3600), |c| c.writer.master_key = Some(master.clone())).await;
    let mut jar = Jar::default();
    assert_eq!(console_sign_in(&mut jar, &app, &op, "alice").await.status(), 303);
    let events = all_events(&app).await;
    let started = events_of(&events, "session.started")[0].clone();
    let seq = started["seq"].as_u64().unwrap();
    let event = |token: String| {
        let url = app.url(&format!("/api/v1/events/{seq}"));
        async move { client_with(&token).get(url).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let dpo = app.token("dora", &["dpo"], &["*"]);
    assert_eq!(event(dpo.clone()).await["personal"]["fields"]["display_name"], "Alice Moreau");
    assert_eq!(event(app.token("ada", &["auditor"], &["*"])).await["personal"]["fields"], "[redacted]");
    let mut conn = govledger::store::DbConn::establish(&app.db().target).unwrap();
    let stored = govledger::store::events::by_seq(&mut conn, seq).unwrap().unwrap();
    assert!(!stored.attributes.contains("Alice"), "sealed, never in the clear: {}", stored.attributes);
    drop(conn);

    // The person is a data subject like any other: erasing them shreds the name.
    let actor = started["actor"].as_str().unwrap();
    let erase = app.url(&format!(
        "/api/v1/subjects/{}/erase",
        url::form_urlencoded::byte_serialize(actor.as_bytes()).collect::<String>()
    ));
    let erased = client_with(&dpo).post(erase).json(&json!({"reason": "left the bank"})).send().await.unwrap();
    assert_eq!(erased.status(), 200, "{}", erased.text().await.unwrap());
    assert_eq!(event(dpo).await["personal"]["fields"], "[erased]");
}

#[tokio::test]
async fn tampered_replayed_and_foreign_sign_ins_are_refused() {
    let Some(modules) = node_modules() else { return };
    let (op, app, app_port) = pair(&modules, 60, Duration::from_secs(3600)).await;
    let size = app.size().await;
    let refused = |r: &reqwest::Response| r.status() == 401 || r.status() == 403;

    // `state` changed on the way back: unknown, refused before the code is used.
    let mut jar = Jar::default();
    let callback = console_callback(&mut jar, &app, &op, "alice").await;
    let state = url::Url::parse(&callback).unwrap().query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let tampered = callback.replace(&format!("state={state}"), "state=forged");
    let response = jar.get(&tampered).await;
    assert!(refused(&response), "{}", response.status());
    assert!(response.text().await.unwrap().contains("unknown"));
    // The callback in another browser (no binding cookie) is refused too.
    let mut other = Jar::default();
    let response = other.get(&callback).await;
    assert_eq!(response.status(), 401);
    assert!(response.text().await.unwrap().contains("another browser"));
    // The genuine callback still signs in, once; replaying it is refused.
    let response = jar.get(&callback).await;
    assert_eq!(response.status(), 303);
    assert!(jar.cookies.contains_key("govledger_session"));
    let mut replay = Jar { cookies: jar.cookies.clone() };
    replay.cookies.remove("govledger_session");
    let response = replay.get(&callback).await;
    assert!(refused(&response), "a used state is refused");

    // The code of one sign-in sent with the state of another: the PKCE
    // verifier is not the code's, and the provider refuses the exchange.
    let mut jar = Jar::default();
    let first = console_callback(&mut jar, &app, &op, "alice").await;
    let second_started = jar.get(&app.url("/ui/login/oidc")).await;
    let second_state = url::Url::parse(&location(&second_started, &app.base))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let first_state =
        url::Url::parse(&first).unwrap().query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let swapped = first.replace(&format!("state={first_state}"), &format!("state={second_state}"));
    let response = jar.get(&swapped).await;
    assert!(refused(&response), "{}", response.status());
    assert!(response.text().await.unwrap().contains("refused the sign-in"));
    // That code is spent: the provider refuses it with its own state too.
    let response = jar.get(&first).await;
    assert!(refused(&response));

    // An ID token whose nonce is not the sign-in's is refused.
    let token = id_token(&op, app_port, "alice", "nonce-of-another-sign-in").await;
    let provider = Provider::discover(
        OidcConfig {
            cache_path: op.dir.path().join("probe-cache.json"),
            ..OidcConfig::new(&op.issuer(), CLIENT_ID, op.dir.path())
        },
        IdentityMap::parse(
            &identity_map(&op.issuer()),
            &["risk_officer", "viewer"].iter().map(|r| r.to_string()).collect(),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let wrong = provider.check_id_token(&token, "this-sign-in's-nonce").expect_err("refused");
    assert!(wrong.to_string().contains("nonce"), "{wrong}");
    assert!(provider.check_id_token(&token, "nonce-of-another-sign-in").is_ok());

    // A token from another issuer, even signed with the same key, is refused.
    let mut foreign = Op::start(&modules, app_port, accounts(), 60);
    std::fs::copy(op.dir.path().join("keys.json"), foreign.dir.path().join("keys.json")).unwrap();
    foreign.run(false, None);
    assert_eq!(foreign.kids().await, op.kids().await, "the same key");
    let token = id_token(&foreign, app_port, "alice", "n").await;
    let answer = client_with(&token).get(app.url("/api/v1/events")).send().await.unwrap();
    assert_eq!(answer.status(), 401);
    let body: Value = answer.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("InvalidIssuer"), "{body}");
    assert!(provider.check_id_token(&token, "n").is_err());

    // None of it wrote anything but the one good sign-in.
    let events = all_events(&app).await;
    assert_eq!(app.size().await, size + 1);
    assert_eq!(events_of(&events, "session.started").len(), 1);
}

#[tokio::test]
async fn rotated_keys_are_picked_up_and_withdrawn_keys_refused() {
    let Some(modules) = node_modules() else { return };
    let (mut op, app, app_port) = pair(&modules, 600, Duration::from_secs(2)).await;
    let old = id_token(&op, app_port, "alice", "n1").await;
    let unused_old = id_token(&op, app_port, "alice", "n2").await;
    let read = |token: &str| client_with(token).get(app.url("/api/v1/events?limit=1")).send();
    assert_eq!(read(&old).await.unwrap().status(), 200, "an API bearer token from the provider");

    // The provider is down: tokens signed with cached keys are still checked.
    op.stop();
    assert_eq!(read(&unused_old).await.unwrap().status(), 200, "verified with the cached key, not a cached answer");

    // The provider rotates in a new key: a token naming it is accepted after one refresh.
    op.run(true, None);
    let kids = op.kids().await;
    assert_eq!(kids.len(), 2);
    let new = id_token(&op, app_port, "alice", "n3").await;
    let new_kid = jsonwebtoken::decode_header(&new).unwrap().kid.unwrap();
    assert_eq!(new_kid, kids[0], "signed with the new key");
    assert_eq!(read(&new).await.unwrap().status(), 200);
    assert_eq!(read(&old).await.unwrap().status(), 200, "the old key is still published");

    // The provider withdraws the old key: once the cache refreshes, its tokens are refused.
    op.run(false, Some(1));
    assert_eq!(op.kids().await, vec![new_kid]);
    let mut refused = false;
    for _ in 0..50 {
        if read(&old).await.unwrap().status() == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(refused, "a token of a withdrawn key is refused after the scheduled refresh");
    assert_eq!(read(&new).await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_provider_down_at_start_is_survived_only_with_its_cached_keys() {
    let Some(modules) = node_modules() else { return };
    let (mut op, _app, app_port) = pair(&modules, 600, Duration::from_secs(3600)).await;
    let token = id_token(&op, app_port, "alice", "n").await;
    op.stop();

    // Another server started while the provider is down, from the keys the
    // first one cached, checks the provider's tokens.
    let cached = oidc_config(&op, Duration::from_secs(3600), op.dir.path().join("oidc-cache.json"));
    let map = identity_map(&op.issuer());
    let second = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.oidc = Some(cached);
        c.identity_map = Some(map.clone());
    })
    .await
    .unwrap();
    assert_eq!(client_with(&token).get(second.url("/api/v1/events")).send().await.unwrap().status(), 200);

    // Without a cache it cannot check anything: the start fails, says why,
    // and writes nothing (not even the identity map).
    let db = crate::helpers::TestDatabase::create(Backend::Sqlite).unwrap();
    let mut config = govledger::config::Config::new("127.0.0.1:0", db.target.clone(), db.dir.path());
    config.oidc = Some(oidc_config(&op, Duration::from_secs(3600), db.dir.path().join("oidc-cache.json")));
    config.identity_map = Some(map);
    let refused = govledger::startup::Application::build(config).await.err().expect("the start fails").to_string();
    assert!(refused.contains("no keys are cached"), "{refused}");
    let store = govledger::store::Store::open(db.target.clone(), 1, Default::default()).unwrap();
    assert_eq!(store.head().unwrap().size, 0);
}

#[test]
fn provider_settings_are_checked_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "").unwrap();
    for (args, expected) in [
        (vec!["--oidc-issuer", "http://idp.example.com", "--oidc-client-id", "g"], "must be an https:// URL"),
        (vec!["--oidc-issuer", "https://idp.example.com"], "needs --oidc-client-id"),
        (vec!["--oidc-client-id", "g"], "need --oidc-issuer"),
        (
            vec![
                "--oidc-issuer",
                "https://idp.example.com",
                "--oidc-client-id",
                "g",
                "--oidc-client-secret-file",
                secret.to_str().unwrap(),
            ],
            "is empty",
        ),
    ] {
        let data = dir.path().join("data");
        let out = Command::new(env!("CARGO_BIN_EXE_govledger"))
            .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!data.join("govledger.db").exists(), "{args:?}: a ledger was created");
    }
    // A rule granting a role the policy does not define refuses the start.
    let map = dir.path().join("identity.toml");
    std::fs::write(&map, "[[map]]\nclaim = \"groups\"\nvalue = \"g\"\nroles = [\"risk_oficer\"]\nprojects = [\"*\"]\n")
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_govledger"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data2"))
        .arg("--identity-map")
        .arg(&map)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("risk_oficer"), "{stderr}");
}

#[tokio::test]
async fn a_changed_identity_map_is_on_the_record_and_applies_at_once() {
    let Some(modules) = node_modules() else { return };
    let (op, app, app_port) = pair(&modules, 600, Duration::from_secs(3600)).await;
    let bearer = id_token(&op, app_port, "alice", "n").await;
    let read = || client_with(&bearer).get(app.url("/api/v1/events?limit=1")).send();
    assert_eq!(read().await.unwrap().status(), 200);
    let put = |text: String, token: String| {
        client_with(&token)
            .put(app.url("/api/v1/identity-map"))
            .header("Content-Type", "application/toml")
            .body(text)
            .send()
    };
    let size = app.size().await;

    // A typo in a role is refused, names itself, and changes nothing.
    let typo = identity_map(&op.issuer()).replace("\"viewer\"", "\"veiwer\"");
    let refused = put(typo, app.admin_token.clone()).await.unwrap();
    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_identity_map");
    assert!(body["message"].as_str().unwrap().contains("veiwer"), "{body}");
    let empty = put(String::new(), app.admin_token.clone()).await.unwrap();
    assert_eq!(empty.status(), 422, "an empty body is a body lost, not a map that grants nothing");
    // Only administrators change it.
    assert_eq!(put(identity_map(&op.issuer()), bearer.clone()).await.unwrap().status(), 403);
    assert_eq!(app.size().await, size);

    // The risk officers' rule withdrawn: alice keeps `viewer` through `staff`,
    // from her very next request, although her token was checked already.
    let narrower =
        identity_map(&op.issuer()).replace("value = \"risk-officers-emea\"", "value = \"risk-officers-apac\"");
    let answer = put(narrower.clone(), app.admin_token.clone()).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(app.get("/api/v1/identity-map").await.text().await.unwrap(), narrower);
    let events = all_events(&app).await;
    let changed = events_of(&events, "identity.changed");
    assert_eq!(changed.len(), 2);
    assert_eq!(changed[1]["actor"], crate::helpers::TEST_ADMIN);
    assert_eq!(changed[1]["attributes"]["identity_map"], narrower.as_str());
    assert_eq!(read().await.unwrap().status(), 200, "still a viewer of credit");
    let approvals = client_with(&bearer).get(app.url("/api/v1/approvals")).send().await.unwrap();
    assert_eq!(approvals.status(), 200);
    let decision = client_with(&bearer)
        .post(app.url("/api/v1/events"))
        .json(&json!({"kind": "dataset.registered", "subject": "dataset:x", "project": "credit"}))
        .send()
        .await
        .unwrap();
    assert_eq!(decision.status(), 403, "a viewer appends nothing");
    // With no rule left for her, she has no access at all.
    let none = narrower.replace("value = \"staff\"", "value = \"staff-emea\"");
    assert_eq!(put(none, app.admin_token.clone()).await.unwrap().status(), 200);
    assert_eq!(read().await.unwrap().status(), 403);
}

/// Signs in to the console with `token` through the form: the answer's status and text.
async fn token_sign_in(app: &TestApp, token: &str) -> (u16, String) {
    let mut jar = Jar::default();
    let form = jar.get(&app.url("/ui/login")).await.text().await.unwrap();
    assert!(form.contains("Sign in with Test IdP") && form.contains("(administrators)"), "{form}");
    let csrf =
        regex::Regex::new(r#"name="csrf" value="([0-9a-f]{64})""#).unwrap().captures(&form).unwrap()[1].to_owned();
    let form = [("token", token), ("csrf", csrf.as_str())];
    let response = jar.send(Jar::client().post(app.url("/ui/login")).form(&form)).await;
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn with_a_provider_only_administrators_sign_in_with_a_token() {
    let Some(modules) = node_modules() else { return };
    let (_op, app, _) = pair(&modules, 600, Duration::from_secs(3600)).await;
    let (status, page) = token_sign_in(&app, &app.token("rita", &["risk_officer"], &["*"])).await;
    assert_eq!(status, 403);
    assert!(page.contains("only administrators sign in with a token here; sign in with Test IdP"), "{page}");
    let (status, _) = token_sign_in(&app, &app.admin_token).await;
    assert_eq!(status, 303, "the administrator's way in when the provider is down");
    let events = all_events(&app).await;
    let started = events_of(&events, "session.started");
    assert_eq!(started.len(), 1);
    assert_eq!(
        (started[0]["actor"].as_str(), started[0]["attributes"]["method"].as_str()),
        (Some(crate::helpers::TEST_ADMIN), Some("token"))
    );
}

#[tokio::test]
async fn a_console_session_ends_at_the_configured_maximum_before_its_id_token() {
    let Some(modules) = node_modules() else { return };
    let (op, app, _) = pair_with(&modules, 600, Duration::from_secs(3600), |c| {
        c.oidc.as_mut().unwrap().session_max = Duration::from_secs(2);
    })
    .await;
    let mut jar = Jar::default();
    assert_eq!(console_sign_in(&mut jar, &app, &op, "alice").await.status(), 303);
    assert_eq!(jar.get(&app.url("/ui/")).await.status(), 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let page = jar.get(&app.url("/ui/")).await;
    assert!(location(&page, &app.base).contains("/ui/login"), "the ID token lives 10 minutes, the session 2 seconds");
}

#[tokio::test]
async fn token_sign_in_can_be_switched_off_entirely() {
    let Some(modules) = node_modules() else { return };
    let (_op, app, _) = pair_with(&modules, 600, Duration::from_secs(3600), |c| {
        c.oidc.as_mut().unwrap().token_signin = false;
    })
    .await;
    let mut jar = Jar::default();
    let form = jar.get(&app.url("/ui/login")).await.text().await.unwrap();
    assert!(form.contains("Sign in with Test IdP") && !form.contains("name=\"token\""), "{form}");
    // A hand-made post, with the sign-in form's CSRF token (its cookie).
    let csrf = jar.cookies["govledger_login"].clone();
    let form = [("token", app.admin_token.as_str()), ("csrf", csrf.as_str())];
    let response = jar.send(Jar::client().post(app.url("/ui/login")).form(&form)).await;
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("sign-in with a token is switched off"));
    assert!(events_of(&all_events(&app).await, "session.started").is_empty());
}

#[tokio::test]
async fn a_person_removed_from_their_group_loses_access_once_the_tokens_expire() {
    let Some(modules) = node_modules() else { return };
    let (op, app, app_port) = pair(&modules, 3, Duration::from_secs(3600)).await;
    let mut jar = Jar::default();
    let landed = console_sign_in(&mut jar, &app, &op, "alice").await;
    assert_eq!(landed.status(), 303);
    assert_eq!(jar.get(&app.url("/ui/")).await.status(), 200);
    let bearer = id_token(&op, app_port, "alice", "n").await;
    assert_eq!(client_with(&bearer).get(app.url("/api/v1/events")).send().await.unwrap().status(), 200);

    let mut changed = accounts();
    changed["alice"]["groups"] = json!([]);
    op.set_accounts(changed).await;
    // The ID token lives 3 seconds; bearer checks allow 5 seconds of clock skew.
    tokio::time::sleep(Duration::from_secs(9)).await;

    let page = jar.get(&app.url("/ui/")).await;
    assert!(location(&page, &app.base).contains("/ui/login"), "the console session ended with the ID token");
    assert_eq!(client_with(&bearer).get(app.url("/api/v1/events")).send().await.unwrap().status(), 401);
    let again = console_sign_in(&mut jar, &app, &op, "alice").await;
    assert_eq!(again.status(), 403, "signed in again, now without a mapped group");
    let fresh = id_token(&op, app_port, "alice", "n").await;
    let answer = client_with(&fresh).get(app.url("/api/v1/events")).send().await.unwrap();
    assert_eq!(answer.status(), 403);
}

#[tokio::test]
async fn separation_of_duties_sees_one_person_behind_two_identities() {
    let Some(modules) = node_modules() else { return };
    let (op, app, app_port) = pair(&modules, 600, Duration::from_secs(3600)).await;
    // `tom` ran the training with a CLI token; the identity map declares
    // him and his provider identity one person.
    let id = crate::governance::model_awaiting_approval(&app, "production").await;
    let decide = |token: String| {
        let url = app.url(&format!("/api/v1/approvals/{id}/decision"));
        async move {
            let response = client_with(&token)
                .post(url)
                .json(&json!({"decision": "grant", "reason": "looks fine"}))
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let size = app.size().await;
    let (status, body) = decide(id_token(&op, app_port, "tom", "n").await).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("separation_of_duties")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("ran run:t1"), "{body}");
    assert_eq!(app.size().await, size, "nothing written");
    // Another officer signed in the same way is a different person.
    let (status, body) = decide(id_token(&op, app_port, "alice", "n").await).await;
    assert_eq!(status, 200, "{body}");
    let events = all_events(&app).await;
    let granted = events_of(&events, "approval.granted");
    assert_eq!(granted[0]["actor"], format!("oidc:{}|alice-1", op.issuer()));
}

#[tokio::test]
async fn a_person_signs_in_and_out_through_the_provider_in_a_real_browser() {
    let Some(modules) = node_modules() else { return };
    let Some((_turn, browser)) = crate::browser::turn().await else { return };
    let (op, app, _) = pair(&modules, 60, Duration::from_secs(3600)).await;
    browser.open(&app, "/ui/login").await;
    browser.client.delete_all_cookies().await.unwrap();
    browser.open(&app, "/ui/login?next=/ui/approvals").await;
    browser.follow("a[href^='/ui/login/oidc']").await;
    assert!(browser.client.current_url().await.unwrap().as_str().starts_with(&op.url("/interaction/")));
    let field = browser.client.find(fantoccini::Locator::Css("#login")).await.unwrap();
    field.send_keys("alice").await.unwrap();
    browser.follow("#submit").await;
    assert_eq!(browser.path().await, "/ui/approvals");
    browser.open(&app, "/ui/").await;
    let who = browser.text(".who").await;
    assert!(who.contains("Alice Moreau") && who.contains("risk_officer"), "{who}");
    crate::console::assert_accessible(browser, "overview after signing in with the provider").await;

    browser.follow("form[action='/ui/logout'] button").await;
    assert!(browser.client.current_url().await.unwrap().as_str().starts_with(&op.url("/session/end")));
    browser.follow("#confirm").await;
    assert_eq!(browser.path().await, "/ui/login", "back at govledger's sign-in page");
    browser.open(&app, "/ui/").await;
    assert_eq!(browser.path().await, "/ui/login", "signed out of govledger");
    let events = all_events(&app).await;
    assert_eq!(events_of(&events, "session.started").len(), 1);
    assert_eq!(events_of(&events, "session.ended").len(), 1);
}
