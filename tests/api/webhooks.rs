//! Webhooks: subscriptions on the record, and deliveries that the Standard
//! Webhooks reference library (PyPI `standardwebhooks`, through the example
//! receiver in examples/webhooks/) verifies, to real HTTP receivers.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{client_with, in_ci, json_of, Backend, TestApp};
use crate::on_both_backends;

/// The master key of the in-process servers here.
pub const MASTER_KEY_HEX: &str = "6b9f3c1e2d4a5b6c7d8e9f00112233445566778899aabbccddeeff0011223344";

/// A server with a master key, delivering to loopback, retrying fast.
pub async fn webhook_app(backend: Backend, tweak: impl FnOnce(&mut govledger::config::Config)) -> Option<TestApp> {
    TestApp::spawn_with(backend, |c| {
        c.writer.master_key = Some(Arc::new(govledger::ledger::personal::MasterKey::parse(MASTER_KEY_HEX).unwrap()));
        c.webhooks.addresses.allow_private = true;
        c.webhooks.retry_base = Duration::from_secs(1);
        c.webhooks.retry_max_interval = Duration::from_secs(2);
        tweak(c);
    })
    .await
}

/// The example receiver (examples/webhooks/receiver.py), verifying each
/// delivery with `standardwebhooks`, on a port of its own.
pub struct Receiver {
    child: std::process::Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// Whether python3 with `standardwebhooks` is here; in CI it must be.
pub fn receivers_available() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(!in_ci(), "CI must run the webhook tests, but python3 with `pip install standardwebhooks` is missing");
        eprintln!("SKIPPED: the webhook tests need python3 with `pip install standardwebhooks`");
    }
    ok
}

/// A free loopback port (for a subscription created before its receiver
/// starts: the receiver needs the secret the creation answers).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Receiver {
    /// Starts the receiver on `port` with `secrets` and `extra` options.
    pub fn start(port: u16, secrets: &[&str], extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("deliveries.jsonl");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/webhooks/receiver.py");
        let mut command = std::process::Command::new("python3");
        command.arg(script).args(["--port", &port.to_string(), "--log", &log.display().to_string()]);
        for s in secrets {
            command.args(["--secret", s]);
        }
        let mut child = command.args(extra).stdout(std::process::Stdio::piped()).spawn().expect("start the receiver");
        let mut line = String::new();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut line).expect("the receiver's first line");
        assert!(line.starts_with("listening on"), "{line}");
        // The receiver prints what it acts on; nobody needs to read it here.
        std::thread::spawn(move || for _ in out.lines() {});
        Self { child, log, _dir: dir }
    }

    /// Every delivery it got, in arrival order.
    pub fn records(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// The deliveries it acknowledged (2xx), in arrival order.
    pub fn acknowledged(&self) -> Vec<Value> {
        self.records().into_iter().filter(|r| r["status"].as_u64().is_some_and(|s| (200..300).contains(&s))).collect()
    }

    /// Waits until it acknowledged every seq of `seqs`.
    pub async fn wait_for(&self, seqs: &BTreeSet<u64>, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let got: BTreeSet<u64> = self.acknowledged().iter().filter_map(|r| r["seq"].as_u64()).collect();
            if seqs.is_subset(&got) {
                return;
            }
            let missing: Vec<&u64> = seqs.difference(&got).take(10).collect();
            assert!(Instant::now() < deadline, "after {timeout:?} the receiver still lacks seqs {missing:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Every delivery was verified by the reference library, and duplicates of
/// an event carry its `webhook-id`, which no other event shares.
pub fn assert_verified_and_ids_stable(records: &[Value]) {
    let mut ids: BTreeMap<u64, String> = BTreeMap::new();
    let mut seqs: BTreeMap<String, u64> = BTreeMap::new();
    for r in records {
        assert_eq!(r["verified"], true, "a delivery failed verification: {r}");
        let (seq, id) = (r["seq"].as_u64().unwrap(), r["webhook_id"].as_str().unwrap().to_owned());
        assert_eq!(ids.entry(seq).or_insert_with(|| id.clone()), &id, "seq {seq} came with two webhook-ids");
        assert_eq!(seqs.entry(id.clone()).or_insert(seq), &seq, "{id} was used for two events");
    }
}

/// Creates a subscription; answers it with its secret.
pub async fn subscribe(app: &TestApp, body: Value) -> Value {
    let response = app.client.post(app.url("/api/v1/webhooks")).json(&body).send().await.unwrap();
    let status = response.status();
    let created: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{created}");
    created
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn subscriptions_are_on_the_record_with_their_secrets_sealed(backend: Backend) {
    let Some(app) = webhook_app(backend, |_| {}).await else { return };
    let created = subscribe(
        &app,
        json!({"url": "http://127.0.0.1:9/hook", "filter": {"kinds": ["approval.*", "deployment.blocked"]},
               "description": "risk team"}),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(created["status"], "active");
    assert_eq!(created["creator"]["sub"], crate::helpers::TEST_ADMIN);

    // Shown once: neither the subscription nor the record holds it in clear.
    let shown = app.get_json(&format!("/api/v1/webhooks/{id}")).await;
    assert!(shown.get("secret").is_none(), "{shown}");
    assert_eq!(shown["description"], "risk team");
    let listed = app.get_json("/api/v1/webhooks").await;
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 1);
    let key = secret.trim_start_matches("whsec_");
    let record = app.get_json("/api/v1/events?kind=webhook.created").await;
    let event = &record["events"][0];
    assert_eq!(event["subject"], format!("webhook:{id}"));
    let text = event.to_string();
    assert!(!text.contains(key), "the secret is on the record in clear: {text}");
    assert_eq!(event["attributes"]["secret"]["alg"], "A256GCM");

    // Nobody records webhook events through /api/v1/events.
    for kind in ["webhook.created", "webhook.changed", "webhook.deleted"] {
        let forged = json!({"kind": kind, "subject": format!("webhook:{id}"), "attributes": {}});
        let answer = app.post_events(&forged).await;
        assert_eq!(answer.status(), 422, "{kind}");
        assert_eq!(answer.json::<Value>().await.unwrap()["error"], "use_endpoint");
    }

    // Pause, resume, change, rotate, delete: each a webhook event.
    let patch = |body: Value| app.client.patch(app.url(&format!("/api/v1/webhooks/{id}"))).json(&body).send();
    let paused: Value =
        patch(json!({"status": "paused", "reason": "receiver maintenance"})).await.unwrap().json().await.unwrap();
    assert_eq!(paused["status"], "paused");
    assert_eq!(paused["status_reason"], "receiver maintenance");
    let again = patch(json!({"status": "paused"})).await.unwrap();
    assert_eq!(again.status(), 422, "pausing a paused subscription changes nothing");
    let bad = patch(json!({"status": "disabled"})).await.unwrap();
    assert_eq!(bad.status(), 422, "disabled is the server's to set");
    let resumed: Value =
        patch(json!({"status": "active", "filter": {"kinds": ["approval.*"]}})).await.unwrap().json().await.unwrap();
    assert_eq!(resumed["status"], "active");
    assert_eq!(resumed["filter"]["kinds"], json!(["approval.*"]));
    let rotated = json_of(app.client.post(app.url(&format!("/api/v1/webhooks/{id}/rotate-secret")))).await;
    assert_ne!(rotated["secret"], created["secret"]);
    assert!(rotated["previous_secret_valid_until"].as_str().is_some());
    let changes = app.get_json("/api/v1/events?kind=webhook.changed").await;
    assert_eq!(changes["events"].as_array().unwrap().len(), 3);
    assert!(!changes.to_string().contains(rotated["secret"].as_str().unwrap().trim_start_matches("whsec_")));
    let deleted = app
        .client
        .delete(app.url(&format!("/api/v1/webhooks/{id}")))
        .json(&json!({"reason": "team disbanded"}))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(app.get(&format!("/api/v1/webhooks/{id}")).await.status(), 404);
    let gone = app.get_json("/api/v1/events?kind=webhook.deleted").await;
    assert_eq!(gone["events"][0]["attributes"]["reason"], "team disbanded");
    assert_eq!(app.get_json("/api/v1/webhooks").await["webhooks"], json!([]));
}
on_both_backends!(subscriptions_are_on_the_record, subscriptions_are_on_the_record_with_their_secrets_sealed);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_subscriptions_are_refused_with_the_reason_and_nothing_recorded() {
    let Some(app) = webhook_app(Backend::Sqlite, |_| {}).await else { return };
    let size = app.size().await;
    for (body, code, says) in [
        (json!({"url": "ftp://example.com/"}), "invalid_request", "http"),
        (json!({"url": "https://user:pw@example.com/"}), "invalid_request", "credentials"),
        (
            json!({"url": "http://127.0.0.1:9/", "filter": {"kinds": ["approval.grnted"]}}),
            "invalid_request",
            "approval.granted",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "filter": {"entity_types": ["Model"]}}),
            "invalid_request",
            "entity type",
        ),
        (json!({"url": "http://127.0.0.1:9/", "filter": {"kinds": ["x"], "typo": 1}}), "malformed_request", "typo"),
        (json!({"url": "http://no-such-host.invalid/"}), "invalid_request", "resolve"),
    ] {
        let answer = json_of(app.client.post(app.url("/api/v1/webhooks")).json(&body)).await;
        assert_eq!(answer["error"], code, "{body}: {answer}");
        assert!(answer["message"].as_str().unwrap().contains(says), "{body}: {answer}");
    }
    assert_eq!(app.size().await, size, "a refused subscription writes nothing");

    // Auditors read subscriptions but do not manage them; others see none.
    let auditor = client_with(&app.token("audrey", &["auditor"], &["*"]));
    let created = subscribe(&app, json!({"url": "http://127.0.0.1:9/"})).await;
    let id = created["id"].as_str().unwrap();
    let answer = auditor.post(app.url("/api/v1/webhooks")).json(&json!({"url": "http://127.0.0.1:9/"})).send().await;
    assert_eq!(answer.unwrap().status(), 403);
    let seen = auditor.get(app.url(&format!("/api/v1/webhooks/{id}"))).send().await.unwrap();
    assert_eq!(seen.status(), 200);
    let refused = auditor.delete(app.url(&format!("/api/v1/webhooks/{id}"))).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let viewer = client_with(&app.token("vic", &["viewer"], &["*"]));
    let listed: Value = viewer.get(app.url("/api/v1/webhooks")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["webhooks"], json!([]), "a viewer sees no subscription");
    assert_eq!(viewer.get(app.url(&format!("/api/v1/webhooks/{id}"))).send().await.unwrap().status(), 404);
    let unknown = app.client.patch(app.url("/api/v1/webhooks/nope")).json(&json!({"status": "paused"})).send().await;
    assert_eq!(unknown.unwrap().status(), 404);
    let replay = app.client.post(app.url(&format!("/api/v1/webhooks/{id}/replay?from_seq=0"))).send().await.unwrap();
    assert_eq!(replay.status(), 422);

    // Without a master key there is nowhere to keep a secret.
    let Some(bare) = TestApp::spawn_with(Backend::Sqlite, |c| c.webhooks.addresses.allow_private = true).await else {
        return;
    };
    let answer =
        json_of(bare.client.post(bare.url("/api/v1/webhooks")).json(&json!({"url": "http://127.0.0.1:9/"}))).await;
    assert_eq!(answer["error"], "master_key_required", "{answer}");
}

/// By default deliveries go to public addresses only: each of these is
/// refused at creation (a resolution check; nothing is sent anywhere).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_and_loopback_targets_are_refused_without_the_allow_option() {
    let Some(app) = webhook_app(Backend::Sqlite, |c| c.webhooks.addresses.allow_private = false).await else { return };
    for url in [
        "http://127.0.0.1/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ] {
        let answer = json_of(app.client.post(app.url("/api/v1/webhooks")).json(&json!({"url": url}))).await;
        assert_eq!(answer["error"], "invalid_request", "{url}: {answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains("--webhook-allow-private"), "{url}: {message}");
    }
    assert_eq!(app.get_json("/api/v1/events?kind=webhook.created").await["events"], json!([]));

    // An allowed network lets its addresses through, and only those.
    let Some(app) = webhook_app(Backend::Sqlite, |c| {
        c.webhooks.addresses.allow_private = false;
        c.webhooks.addresses.allowed_networks = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await
    else {
        return;
    };
    subscribe(&app, json!({"url": "http://127.0.0.1:9/hook"})).await;
    let answer = json_of(app.client.post(app.url("/api/v1/webhooks")).json(&json!({"url": "http://10.0.0.1/"}))).await;
    assert_eq!(answer["error"], "invalid_request");
}

/// The flow a risk officer is notified of: each delivery verified by the
/// reference library, in seq order, carrying what it takes to act.
async fn notifications_carry_what_it_takes_to_act(backend: Backend) {
    if !receivers_available() {
        return;
    }
    let Some(app) = webhook_app(backend, |_| {}).await else { return };
    let port = free_port();
    let created = subscribe(
        &app,
        json!({"url": format!("http://127.0.0.1:{port}/hook"),
               "filter": {"kinds": ["approval.*", "deployment.blocked", "subject.erased"]}}),
    )
    .await;
    let receiver = Receiver::start(port, &[created["secret"].as_str().unwrap()], &[]);
    app.append_json(&json!({"kind": "run.started", "subject": "run:train-1", "project": "fraud"})).await;
    app.append_json(&json!({"kind": "model.registered", "subject": "model:fraud-detector@1", "project": "fraud",
                           "inputs": ["run:train-1"]}))
        .await;
    crate::helpers::evaluate_on_holdout(&app, "model:fraud-detector@1", Some("fraud")).await;
    let requested = json_of(app.client.post(app.url("/api/v1/approvals")).json(&json!({
        "model": "model:fraud-detector@1", "environment": "production", "note": "promote"
    })))
    .await;
    let approval = requested["id"].as_str().expect("approval id").to_owned();
    let officer = client_with(&app.token("olivia", &["risk_officer"], &["*"]));
    let decision = officer
        .post(app.url(&format!("/api/v1/approvals/{approval}/decision")))
        .json(&json!({"decision": "grant", "reason": "evidence reviewed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(decision.status(), 200, "{}", decision.text().await.unwrap());
    let blocked = app
        .client
        .post(app.url("/api/v1/deployments"))
        .json(&json!({"model": "model:fraud-detector@1", "environment": "production"}))
        .send()
        .await
        .unwrap();
    assert_eq!(blocked.status(), 409, "one grant of two does not open the production gate");
    let matching: BTreeSet<u64> = crate::helpers::all_events(&app)
        .await
        .iter()
        .filter(|e| e["kind"].as_str().is_some_and(|k| k.starts_with("approval.") || k == "deployment.blocked"))
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(matching.len(), 3);
    receiver.wait_for(&matching, Duration::from_secs(20)).await;
    let records = receiver.acknowledged();
    assert_verified_and_ids_stable(&records);
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, matching.iter().copied().collect::<Vec<_>>(), "one delivery each, in seq order");
    let of = |kind: &str| records.iter().find(|r| r["type"] == kind).unwrap()["data"].clone();
    let asked = of("approval.requested");
    assert_eq!(asked["attributes"]["model"], "model:fraud-detector@1");
    assert_eq!(asked["attributes"]["environment"], "production");
    assert_eq!(asked["attributes"]["required_approvals"], 2);
    assert_eq!(asked["project"], "fraud");
    assert!(asked["hash"].as_str().is_some_and(|h| h.len() == 64), "{asked}");
    let granted = of("approval.granted");
    assert_eq!(granted["attributes"]["grants"], 1, "{granted}");
    assert_eq!(granted["attributes"]["required_approvals"], 2);
    assert_eq!(granted["attributes"]["state"], "pending");
    assert_eq!(granted["attributes"]["model"], "model:fraud-detector@1");
    let stopped = of("deployment.blocked");
    assert!(!stopped["attributes"]["reasons"].as_array().unwrap().is_empty(), "{stopped}");
    // The body's `data` is the event as the API answers it.
    let stored = app.get_json(&format!("/api/v1/events/{}", granted["seq"])).await;
    assert_eq!(stored, granted);
}
on_both_backends!(notifications, notifications_carry_what_it_takes_to_act);

/// Breaches, recoveries and drift, recorded by the server or a detector,
/// reach a subscriber of those kinds, verified, with what an on-call
/// engineer acts on (rule, severity, value, the reports it cites).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_alarms_are_delivered() {
    if !receivers_available() {
        return;
    }
    let Some(app) = webhook_app(Backend::Sqlite, |_| {}).await else { return };
    let port = free_port();
    let kinds = ["monitoring.threshold_breached", "monitoring.threshold_recovered", "monitoring.drift_detected"];
    let created =
        subscribe(&app, json!({"url": format!("http://127.0.0.1:{port}/hook"), "filter": {"kinds": kinds}})).await;
    let receiver = Receiver::start(port, &[created["secret"].as_str().unwrap()], &[]);
    let model = "model:fraud-detector@1";
    app.append_json(&json!({"events": [
        {"kind": "run.started", "subject": "run:train-1", "project": "fraud"},
        {"kind": "model.registered", "subject": model, "project": "fraud", "inputs": ["run:train-1"]}]}))
        .await;
    let day = |d: u32, v: f64| {
        json!({"kind": "monitoring.metric_reported", "subject": model, "project": "fraud",
               "attributes": {"metric": "auc", "value": v, "environment": "production",
                 "window": {"start": format!("2026-11-{d:02}T00:00:00Z"), "end": format!("2026-11-{:02}T00:00:00Z", d + 1)}}})
    };
    let values = [0.85, 0.85, 0.85, 0.95, 0.95, 0.95];
    let reports: Vec<Value> = values.iter().zip(1..).map(|(v, d)| day(d, *v)).collect();
    app.append_json(&json!({"events": reports})).await;
    app.append_json(&json!({"kind": "monitoring.drift_detected", "subject": model, "project": "fraud",
        "attributes": {"feature": "amount", "statistic": "psi", "value": 0.31, "reference": "dataset:train@1",
          "environment": "production", "window": {"start": "2026-11-01T00:00:00Z", "end": "2026-11-08T00:00:00Z"}}}))
        .await;
    let expected: BTreeSet<u64> = crate::helpers::all_events(&app)
        .await
        .iter()
        .filter(|e| kinds.contains(&e["kind"].as_str().unwrap()))
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(expected.len(), 3, "a breach, its recovery and the drift");
    receiver.wait_for(&expected, Duration::from_secs(20)).await;
    let records = receiver.acknowledged();
    assert_verified_and_ids_stable(&records);
    let types: Vec<&str> = records.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(types, kinds);
    let breach = &records[0]["data"];
    assert_eq!(breach["actor"], "govledger-monitoring");
    assert_eq!(breach["attributes"]["rule"], "fraud-auc");
    assert_eq!(breach["attributes"]["severity"], "critical");
    assert_eq!(breach["attributes"]["report_seqs"].as_array().unwrap().len(), 3);
    assert_eq!(records[1]["data"]["attributes"]["breach_seq"], breach["seq"]);
    assert_eq!(records[2]["data"]["attributes"]["statistic"], "psi");
}

/// A receiver that answers 500 for 30 s gets every event afterwards, in seq
/// order; the failed attempts are listed with status and error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_30_seconds_then_gets_everything_in_seq_order() {
    if !receivers_available() {
        return;
    }
    let Some(app) = webhook_app(Backend::Sqlite, |_| {}).await else { return };
    let port = free_port();
    let created =
        subscribe(&app, json!({"url": format!("http://127.0.0.1:{port}/hook"), "filter": {"kinds": ["run.*"]}})).await;
    let id = created["id"].as_str().unwrap();
    let receiver = Receiver::start(port, &[created["secret"].as_str().unwrap()], &["--fail-for", "30"]);
    let started = Instant::now();
    let mut matching = BTreeSet::new();
    for i in 0..30 {
        let e = app.append("run.started", &format!("run:r{i}")).await;
        matching.insert(e["seq"].as_u64().unwrap());
        app.append("dataset.registered", &format!("dataset:d{i}")).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    receiver.wait_for(&matching, Duration::from_secs(60)).await;
    assert!(started.elapsed() >= Duration::from_secs(30));
    let records = receiver.records();
    assert_verified_and_ids_stable(&records);
    let failed = records.iter().filter(|r| r["status"] == 500).count();
    assert!(failed >= 10, "the first event was retried while the receiver failed ({failed} attempts)");
    let delivered: Vec<u64> = receiver.acknowledged().iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(delivered, matching.iter().copied().collect::<Vec<_>>(), "in seq order, each once");
    let listed = format!("/api/v1/webhooks/{id}/deliveries?limit=1000");
    // Attempts are written a few times a second.
    wait_until("every attempt is listed", Duration::from_secs(5), async || {
        let rows = app.get_json(&listed).await;
        rows["deliveries"].as_array().unwrap().iter().filter(|r| r["result"] == "delivered").count() >= 30
    })
    .await;
    let attempts = app.get_json(&listed).await;
    let rows = attempts["deliveries"].as_array().unwrap();
    let a_failure = rows.iter().find(|r| r["result"] == "failed").expect("failed attempts are listed");
    assert_eq!(a_failure["status_code"], 500);
    assert!(a_failure["next_attempt_at"].as_str().is_some());
    assert!(a_failure["latency_micros"].as_u64().is_some());
    assert!(rows.iter().filter(|r| r["result"] == "delivered").count() >= 30);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let count = |result: &str| -> u64 {
        let line = format!("govledger_webhook_deliveries_total{{result=\"{result}\"}} ");
        metrics.lines().find_map(|l| l.strip_prefix(&line)).unwrap().parse().unwrap()
    };
    assert!(count("failed") >= 10 && count("delivered") >= 30, "{metrics}");
    assert!(metrics.contains(&format!("govledger_webhook_lag_events{{webhook=\"{id}\"}}")), "{metrics}");
    assert!(metrics.contains("govledger_webhooks_failing 0"), "{metrics}");
}

/// 410 Gone disables the subscription, on the record, and nothing more is
/// sent to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_410_disables_its_subscription() {
    if !receivers_available() {
        return;
    }
    let Some(app) = webhook_app(Backend::Sqlite, |_| {}).await else { return };
    let port = free_port();
    let created = subscribe(&app, json!({"url": format!("http://127.0.0.1:{port}/hook")})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let receiver = Receiver::start(port, &[created["secret"].as_str().unwrap()], &["--answer", "410"]);
    app.append("dataset.registered", "dataset:first").await;
    let path = format!("/api/v1/webhooks/{id}");
    wait_until("the subscription is disabled", Duration::from_secs(20), async || {
        app.get_json(&path).await["status"] == "disabled"
    })
    .await;
    let shown = app.get_json(&path).await;
    assert!(shown["status_reason"].as_str().unwrap().contains("410"), "{shown}");
    let changed = app.get_json("/api/v1/events?kind=webhook.changed").await;
    assert_eq!(changed["events"][0]["actor"], "govledger-webhooks");
    assert_eq!(changed["events"][0]["attributes"]["status"], "disabled");
    app.append("dataset.registered", "dataset:second").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.records().len(), 1, "nothing is sent after the 410");
    let rows = app.get_json(&format!("{path}/deliveries")).await;
    assert_eq!(rows["deliveries"][0]["result"], "gone");
}

/// An event not delivered within the retry window marks its subscription
/// failing, on the record; resuming tries that event again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_undelivered_within_the_retry_window_marks_the_subscription_failing() {
    if !receivers_available() {
        return;
    }
    let Some(app) = webhook_app(Backend::Sqlite, |c| c.webhooks.retry_window = Duration::from_secs(3)).await else {
        return;
    };
    let port = free_port();
    let created = subscribe(&app, json!({"url": format!("http://127.0.0.1:{port}/hook")})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let down = Receiver::start(port, &[&secret], &["--answer", "503"]);
    let first = app.append("dataset.registered", "dataset:stuck").await["seq"].as_u64().unwrap();
    let path = format!("/api/v1/webhooks/{id}");
    wait_until("the subscription is failing", Duration::from_secs(20), async || {
        app.get_json(&path).await["status"] == "failing"
    })
    .await;
    let shown = app.get_json(&path).await;
    assert!(shown["status_reason"].as_str().unwrap().contains(&format!("seq {first}")), "{shown}");
    let rows = app.get_json(&format!("{path}/deliveries")).await;
    assert_eq!(rows["deliveries"][0]["result"], "failing");
    assert!(rows["deliveries"].as_array().unwrap().iter().all(|r| r["status_code"] == 503));
    wait_until("the failing gauge shows it", Duration::from_secs(5), async || {
        app.get("/metrics").await.text().await.unwrap().contains("govledger_webhooks_failing 1")
    })
    .await;
    drop(down);
    let up = Receiver::start(port, &[&secret], &[]);
    let resumed = app.client.patch(app.url(&path)).json(&json!({"status": "active"})).send().await.unwrap();
    assert_eq!(resumed.status(), 200);
    up.wait_for(&BTreeSet::from([first]), Duration::from_secs(20)).await;
}

/// A subscription created with a token for one project delivers that
/// project's events only, whatever its filter asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_scoped_subscriber_never_receives_another_projects_events() {
    if !receivers_available() {
        return;
    }
    let Some(app) = webhook_app(Backend::Sqlite, |_| {}).await else { return };
    app.add_policy_line("p, data_scientist, *, webhooks, manage, allow").await;
    app.add_policy_line("p, data_scientist, *, webhooks, read, allow").await;
    for project in ["fraud", "credit"] {
        app.append_json(
            &json!({"kind": "dataset.registered", "subject": format!("dataset:{project}-seed"), "project": project}),
        )
        .await;
    }
    let scientist = client_with(&app.token("sam", &["data_scientist"], &["fraud"]));
    let port = free_port();
    let answer = scientist
        .post(app.url("/api/v1/webhooks"))
        .json(&json!({"url": format!("http://127.0.0.1:{port}/hook"), "filter": {"projects": ["credit"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403, "a fraud token cannot subscribe to credit");
    let everything = json!({"url": format!("http://127.0.0.1:{port}/hook")});
    let answer = json_of(scientist.post(app.url("/api/v1/webhooks")).json(&everything)).await;
    assert_eq!(answer["error"], "forbidden", "nor to every project: {answer}");
    assert!(answer["message"].as_str().unwrap().contains("filter.projects"), "{answer}");
    let created: Value = scientist
        .post(app.url("/api/v1/webhooks"))
        .json(&json!({"url": format!("http://127.0.0.1:{port}/hook"), "filter": {"projects": ["fraud"]}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["filter"]["projects"], json!(["fraud"]), "{created}");
    let receiver = Receiver::start(port, &[created["secret"].as_str().unwrap()], &[]);
    let mut fraud = BTreeSet::new();
    for i in 0..20 {
        for project in ["fraud", "credit"] {
            let e = app
                .append_json(
                    &json!({"kind": "run.started", "subject": format!("run:{project}-{i}"), "project": project}),
                )
                .await;
            if project == "fraud" {
                fraud.insert(e["seq"].as_u64().unwrap());
            }
        }
    }
    app.append("team.note", "dataset:unscoped").await;
    receiver.wait_for(&fraud, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let records = receiver.records();
    assert_verified_and_ids_stable(&records);
    assert!(records.iter().all(|r| r["project"] == "fraud"), "{records:?}");
    // The admin's subscriptions are not the scientist's to see.
    subscribe(&app, json!({"url": "http://127.0.0.1:9/"})).await;
    let listed: Value = scientist.get(app.url("/api/v1/webhooks")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 1, "{listed}");
}

/// A replay sends again with the same webhook-ids; after a rotation both
/// secrets sign, so a receiver holding either verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_repeat_ids_and_rotations_sign_with_both_secrets() {
    if !receivers_available() {
        return;
    }
    let Some(app) = webhook_app(Backend::Sqlite, |_| {}).await else { return };
    let port = free_port();
    let created =
        subscribe(&app, json!({"url": format!("http://127.0.0.1:{port}/hook"), "filter": {"kinds": ["run.*"]}})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let old = created["secret"].as_str().unwrap().to_owned();
    let receiver = Receiver::start(port, &[&old], &[]);
    let mut first = BTreeSet::new();
    for i in 0..5 {
        first.insert(app.append("run.started", &format!("run:a{i}")).await["seq"].as_u64().unwrap());
    }
    receiver.wait_for(&first, Duration::from_secs(20)).await;
    let from = *first.iter().nth(2).unwrap();
    let replayed =
        app.client.post(app.url(&format!("/api/v1/webhooks/{id}/replay?from_seq={from}"))).send().await.unwrap();
    assert_eq!(replayed.status(), 202);
    wait_until("the replay is delivered", Duration::from_secs(20), async || receiver.acknowledged().len() >= 8).await;
    let records = receiver.acknowledged();
    assert_verified_and_ids_stable(&records);
    let again: Vec<u64> = records[5..].iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(again, first.iter().copied().filter(|s| *s >= from).collect::<Vec<_>>());
    assert!(records[5..].iter().all(|r| r["duplicate"] == true));

    let rotated = json_of(app.client.post(app.url(&format!("/api/v1/webhooks/{id}/rotate-secret")))).await;
    let new = rotated["secret"].as_str().unwrap().to_owned();
    drop(receiver);
    let with_new = Receiver::start(port, &[&new], &[]);
    let next = app.append("run.started", "run:after-rotation").await["seq"].as_u64().unwrap();
    with_new.wait_for(&BTreeSet::from([next]), Duration::from_secs(20)).await;
    assert_verified_and_ids_stable(&with_new.records());
    drop(with_new);
    let with_old = Receiver::start(port, &[&old], &[]);
    let last = app.append("run.started", "run:still-old").await["seq"].as_u64().unwrap();
    with_old.wait_for(&BTreeSet::from([last]), Duration::from_secs(20)).await;
    assert_verified_and_ids_stable(&with_old.records());
}

/// `govledger serve` flags for the process tests: deliver to loopback,
/// retry every second or two, hand a killed replica's subscriptions on
/// after 3 s.
const SERVE_FLAGS: [&str; 8] = [
    "--webhook-allow-private",
    "--webhook-retry-base",
    "1",
    "--webhook-retry-max",
    "2",
    "--webhook-lease",
    "3",
    "--checkpoint-interval=0",
];

/// Appends `count` events of `kind` in batches of 1 to 10 until done or
/// the server goes away; answers the seqs it saw acknowledged.
async fn append_until_killed(base: String, token: String, kind: &'static str, tag: String, count: usize) -> Vec<u64> {
    use rand::Rng;
    let client = client_with(&token);
    let mut acked = Vec::new();
    let mut n = 0;
    while n < count {
        let size: usize = rand::thread_rng().gen_range(1..=10usize).min(count - n);
        let events: Vec<Value> =
            (0..size).map(|i| json!({"kind": kind, "subject": format!("run:{tag}-{}", n + i)})).collect();
        let Ok(response) = client.post(format!("{base}/api/v1/events")).json(&json!({"events": events})).send().await
        else {
            break;
        };
        let status = response.status();
        let Ok(body) = response.json::<Value>().await else { break };
        assert_eq!(status, 201, "{body}");
        acked.extend(body["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()));
        n += size;
        let pause = Duration::from_millis(rand::thread_rng().gen_range(0..10));
        tokio::time::sleep(pause).await;
    }
    acked
}

/// The seqs of every event of `kind` in the ledger.
async fn committed(app: &TestApp, kind: &str) -> BTreeSet<u64> {
    crate::helpers::all_events(app)
        .await
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| e["seq"].as_u64().unwrap())
        .collect()
}

/// SIGKILL at random moments during 2,000 appends that match a
/// subscription, ten times: every matching event is delivered at least
/// once, duplicates carry the same webhook-id, and the subscription whose
/// filter excludes them gets none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_matching_event_is_delivered_at_least_once_across_ten_kills() {
    use rand::Rng;
    if !receivers_available() {
        return;
    }
    let Some(db) = crate::helpers::TestDatabase::create(Backend::Sqlite) else { return };
    let env = [("GOVLEDGER_MASTER_KEY", MASTER_KEY_HEX)];
    let token = crate::helpers::mint(db.dir.path(), "crash-writer", &["admin"], &["*"]);
    let server = crate::helpers::Server::start_env(&db, &SERVE_FLAGS, &env);
    let app = TestApp::attach(&server.1, &token);
    let (port_a, port_b) = (free_port(), free_port());
    let a =
        subscribe(&app, json!({"url": format!("http://127.0.0.1:{port_a}/a"), "filter": {"kinds": ["run.started"]}}))
            .await;
    let b =
        subscribe(&app, json!({"url": format!("http://127.0.0.1:{port_b}/b"), "filter": {"kinds": ["run.completed"]}}))
            .await;
    let receiver_a = Receiver::start(port_a, &[a["secret"].as_str().unwrap()], &[]);
    let receiver_b = Receiver::start(port_b, &[b["secret"].as_str().unwrap()], &[]);
    server.kill();
    let mut acked = BTreeSet::new();
    for round in 0..10 {
        let server = crate::helpers::Server::start_env(&db, &SERVE_FLAGS, &env);
        let matching =
            tokio::spawn(append_until_killed(server.1.clone(), token.clone(), "run.started", format!("m{round}"), 200));
        let other = tokio::spawn(append_until_killed(
            server.1.clone(),
            token.clone(),
            "run.completed",
            format!("o{round}"),
            20,
        ));
        tokio::time::sleep(Duration::from_millis(rand::thread_rng().gen_range(100..1500))).await;
        server.kill();
        acked.extend(matching.await.unwrap());
        other.await.unwrap();
    }
    let server = crate::helpers::Server::start_env(&db, &SERVE_FLAGS, &env);
    let app = TestApp::attach(&server.1, &token);
    let matching = committed(&app, "run.started").await;
    let excluded = committed(&app, "run.completed").await;
    assert!(acked.is_subset(&matching), "an acknowledged append is missing from the ledger");
    assert!(acked.len() >= 500, "the kills left too few appends to mean anything ({})", acked.len());
    receiver_a.wait_for(&matching, Duration::from_secs(120)).await;
    receiver_b.wait_for(&excluded, Duration::from_secs(60)).await;
    let records = receiver_a.records();
    assert_verified_and_ids_stable(&records);
    assert!(records.iter().all(|r| r["type"] == "run.started"), "the run.completed filter let another kind through");
    assert!(receiver_b.records().iter().all(|r| r["type"] == "run.completed"));
    let duplicates = records.len() - matching.len();
    eprintln!(
        "{} matching events ({} acknowledged), {duplicates} delivered twice or more",
        matching.len(),
        acked.len()
    );
}

/// Two replicas on one PostgreSQL: one delivers; when it is killed the
/// other takes over from the cursor, so no event is lost, and duplicates
/// come only after the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_delivery_and_a_killed_ones_subscription_moves_on() {
    if !receivers_available() {
        return;
    }
    let Some(db) = crate::helpers::TestDatabase::create(Backend::Postgres) else { return };
    let env = [("GOVLEDGER_MASTER_KEY", MASTER_KEY_HEX)];
    let token = crate::helpers::mint(db.dir.path(), "replica-writer", &["admin"], &["*"]);
    let index_one = db.dir.path().join("index-one").display().to_string();
    let index_two = db.dir.path().join("index-two").display().to_string();
    let flags = |index: &str| -> Vec<String> {
        SERVE_FLAGS.iter().map(|f| f.to_string()).chain(["--search-index-dir".into(), index.to_owned()]).collect()
    };
    let one_flags = flags(&index_one);
    let one = crate::helpers::Server::start_env(&db, &one_flags.iter().map(String::as_str).collect::<Vec<_>>(), &env);
    let first = TestApp::attach(&one.1, &token);
    let port = free_port();
    let created =
        subscribe(&first, json!({"url": format!("http://127.0.0.1:{port}/hook"), "filter": {"kinds": ["run.*"]}}))
            .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let receiver = Receiver::start(port, &[created["secret"].as_str().unwrap()], &[]);
    let path = format!("/api/v1/webhooks/{id}");
    wait_until("replica one takes the subscription", Duration::from_secs(10), async || {
        first.get_json(&path).await["delivery"]["replica"].is_string()
    })
    .await;
    let holder = first.get_json(&path).await["delivery"]["replica"].clone();
    let two_flags = flags(&index_two);
    let two = crate::helpers::Server::start_env(&db, &two_flags.iter().map(String::as_str).collect::<Vec<_>>(), &env);
    let second = TestApp::attach(&two.1, &token);

    let before = tokio::join!(
        append_until_killed(one.1.clone(), token.clone(), "run.started", "one".into(), 300),
        append_until_killed(two.1.clone(), token.clone(), "run.started", "two".into(), 300),
    );
    let mut expected: BTreeSet<u64> = before.0.into_iter().chain(before.1).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    one.kill();
    expected.extend(append_until_killed(two.1.clone(), token.clone(), "run.updated", "after".into(), 300).await);
    receiver.wait_for(&expected, Duration::from_secs(60)).await;
    let moved = second.get_json(&path).await["delivery"]["replica"].clone();
    assert!(moved.is_string() && moved != holder, "replica two took over: {moved} (was {holder})");
    let records = receiver.records();
    assert_verified_and_ids_stable(&records);
    let mut seen = BTreeSet::new();
    for r in &records {
        let seq = r["seq"].as_u64().unwrap();
        if !seen.insert(seq) {
            assert!(r["received_at"].as_f64().unwrap() >= killed_at, "seq {seq} was delivered twice before any kill");
        }
    }
    assert_eq!(
        seen,
        committed(&second, "run.started").await.union(&committed(&second, "run.updated").await).copied().collect()
    );
}

/// One receiver that takes longer than the timeout to answer does not
/// hold up another subscription's deliveries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_delays_only_its_own_deliveries() {
    if !receivers_available() {
        return;
    }
    let Some(app) = webhook_app(Backend::Sqlite, |c| c.webhooks.timeout = Duration::from_secs(2)).await else { return };
    let (slow_port, fast_port) = (free_port(), free_port());
    let runs = json!({"kinds": ["run.*"]});
    let slow = subscribe(&app, json!({"url": format!("http://127.0.0.1:{slow_port}/slow"), "filter": runs})).await;
    let fast = subscribe(&app, json!({"url": format!("http://127.0.0.1:{fast_port}/fast"), "filter": runs})).await;
    let slow_receiver = Receiver::start(slow_port, &[slow["secret"].as_str().unwrap()], &["--delay", "5"]);
    let fast_receiver = Receiver::start(fast_port, &[fast["secret"].as_str().unwrap()], &[]);
    let started = Instant::now();
    let mut seqs = BTreeSet::new();
    for i in 0..10 {
        seqs.insert(app.append("run.started", &format!("run:s{i}")).await["seq"].as_u64().unwrap());
    }
    fast_receiver.wait_for(&seqs, Duration::from_secs(3)).await;
    assert!(started.elapsed() < Duration::from_secs(4), "the fast receiver waited for the slow one");
    // govledger gives up on each attempt after 2 s and retries the same
    // event, so its receiver (which may not have flushed its log yet) has
    // seen no other.
    let first = *seqs.first().unwrap();
    let slow_seqs: BTreeSet<u64> = slow_receiver.records().iter().filter_map(|r| r["seq"].as_u64()).collect();
    assert!(slow_seqs.iter().all(|s| *s == first), "the slow one is still on its first event: {slow_seqs:?}");
    let id = slow["id"].as_str().unwrap();
    wait_until("the timeout is listed", Duration::from_secs(10), async || {
        let rows = app.get_json(&format!("/api/v1/webhooks/{id}/deliveries")).await;
        rows["deliveries"][0]["error"].as_str().is_some_and(|e| e.contains("timed out"))
    })
    .await;
}

/// `Retry-After` on a 503 is waited for, even when the backoff would retry
/// sooner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_on_503_is_honoured() {
    if !receivers_available() {
        return;
    }
    let Some(app) = webhook_app(Backend::Sqlite, |c| c.webhooks.retry_max_interval = Duration::from_secs(10)).await
    else {
        return;
    };
    let port = free_port();
    let created = subscribe(&app, json!({"url": format!("http://127.0.0.1:{port}/hook")})).await;
    let receiver =
        Receiver::start(port, &[created["secret"].as_str().unwrap()], &["--fail-for", "1", "--retry-after", "4"]);
    let seq = app.append("dataset.registered", "dataset:later").await["seq"].as_u64().unwrap();
    receiver.wait_for(&BTreeSet::from([seq]), Duration::from_secs(20)).await;
    let records = receiver.records();
    assert_verified_and_ids_stable(&records);
    assert_eq!(records[0]["status"], 503);
    let gap = records[1]["received_at"].as_f64().unwrap() - records[0]["received_at"].as_f64().unwrap();
    assert!(gap >= 3.9, "retried {gap:.1} s after a 503 with Retry-After: 4 (the backoff alone waits 0.5 to 1 s)");
}
