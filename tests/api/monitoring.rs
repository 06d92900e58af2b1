//! Monitoring on the record: metric reports judged against the thresholds
//! of the monitoring rules inside their append transaction, breaches and
//! recoveries recorded once by the server, rules changes on the record, and
//! bad reports refused with nothing written.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{json_of, Backend, TestApp};
use crate::on_both_backends;

const MODEL: &str = "model:fraud-detector@1";
const BREACHED: &str = "monitoring.threshold_breached";
const RECOVERED: &str = "monitoring.threshold_recovered";

/// Registers `model` (trained by a run of its own) in project `fraud`.
async fn register(app: &TestApp, model: &str) {
    let run = format!("run:train-{}", model.trim_start_matches("model:").replace('@', "-"));
    let body = json!({"events": [
        {"kind": "run.started", "subject": run, "project": "fraud"},
        {"kind": "model.registered", "subject": model, "project": "fraud", "inputs": [run]},
    ]});
    assert_eq!(app.post_events(&body).await.status(), 201);
}

/// A daily AUC report for November `day` in production.
fn auc(model: &str, day: u32, value: f64) -> Value {
    json!({
        "kind": "monitoring.metric_reported", "subject": model, "project": "fraud",
        "attributes": {
            "metric": "auc", "value": value, "environment": "production",
            "window": {"start": format!("2026-11-{day:02}T00:00:00Z"), "end": format!("2026-11-{:02}T00:00:00Z", day + 1)}
        }
    })
}

/// Every event of `kind`, in seq order.
async fn of_kind(app: &TestApp, kind: &str) -> Vec<Value> {
    crate::helpers::all_events(app).await.into_iter().filter(|e| e["kind"] == kind).collect()
}

/// The shipped rule `fraud-auc` (min 0.90, warning 0.92, 3 consecutive
/// windows): one batch with a good day and four bad ones opens one critical
/// breach at the third bad day, citing the three reports and the rules on
/// the record; a replay of the batch adds nothing; two good days do not
/// recover, the third does.
async fn breach_and_recovery_follow_the_consecutive_window_rule(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    register(&app, MODEL).await;
    let mut batch: Vec<Value> =
        [0.95, 0.89, 0.88, 0.87, 0.86].iter().zip(1..).map(|(v, d)| auc(MODEL, d, *v)).collect();
    for (i, e) in batch.iter_mut().enumerate() {
        e["idempotency_key"] = json!(format!("auc-nov-{i}"));
    }
    let response = app.post_events(&json!({"events": batch})).await;
    assert_eq!(response.status(), 201);
    let answer: Value = response.json().await.unwrap();
    let events = answer["events"].as_array().unwrap();
    // The five reports, then what the server recorded because of them.
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds[..5], ["monitoring.metric_reported"; 5]);
    assert_eq!(kinds[5..], ["monitoring.rules_changed", BREACHED]);
    let report_seqs: Vec<u64> = events[..5].iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    let (rules, breach) = (&events[5], &events[6]);
    assert_eq!(breach["actor"], "govledger-monitoring");
    assert_eq!(breach["subject"], MODEL);
    assert_eq!(breach["project"], "fraud");
    let a = &breach["attributes"];
    assert_eq!(a["rule"], "fraud-auc");
    assert_eq!(a["severity"], "critical");
    assert_eq!(a["rules_seq"], rules["seq"]);
    assert_eq!(a["report_seq"], report_seqs[3], "the third bad day crossed");
    assert_eq!(a["report_seqs"], json!(report_seqs[1..4]));
    assert_eq!((a["threshold"].as_f64(), a["value"].as_f64()), (Some(0.90), Some(0.87)));
    assert_eq!(a["environment"], "production");

    // The monitoring job retries the same batch: nothing new.
    let size = app.size().await;
    let replay = app.post_events(&json!({"events": batch})).await;
    assert_eq!(replay.status(), 200);
    assert_eq!(app.size().await, size);

    for (day, value) in [(6, 0.95), (7, 0.96)] {
        app.append_json(&auc(MODEL, day, value)).await;
    }
    assert!(of_kind(&app, RECOVERED).await.is_empty(), "two good windows of three");
    // A late report for a window already counted does not count again.
    app.append_json(&auc(MODEL, 2, 0.99)).await;
    assert!(of_kind(&app, RECOVERED).await.is_empty(), "a late window is recorded but not counted");
    app.append_json(&auc(MODEL, 8, 0.97)).await;
    let recovered = of_kind(&app, RECOVERED).await;
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0]["attributes"]["breach_seq"], breach["seq"]);
    assert_eq!(recovered[0]["attributes"]["severity"], "ok");
    assert_eq!(of_kind(&app, BREACHED).await.len(), 1, "one breach, recorded once");
    let verify = app.get_json("/api/v1/verify").await;
    assert_eq!(verify["ok"], true, "{verify}");
}

on_both_backends!(consecutive_windows, breach_and_recovery_follow_the_consecutive_window_rule);

/// A warning opens first when the value nears the bound; crossing it
/// later escalates, citing the warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warning_band_alarms_before_the_bound_and_escalates() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    register(&app, MODEL).await;
    let batch: Vec<Value> =
        [0.91, 0.915, 0.91, 0.89, 0.88, 0.85].iter().zip(1..).map(|(v, d)| auc(MODEL, d, *v)).collect();
    // A monitoring job runs with the `ci` role of the shipped policy.
    let job = crate::helpers::client_with(&app.token("monitoring-job", &["ci"], &["fraud"]));
    let response = job.post(app.url("/api/v1/events")).json(&json!({"events": batch})).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let breaches = of_kind(&app, BREACHED).await;
    let severities: Vec<&str> = breaches.iter().map(|b| b["attributes"]["severity"].as_str().unwrap()).collect();
    assert_eq!(severities, ["warning", "critical"]);
    assert_eq!(breaches[1]["attributes"]["breach_seq"], breaches[0]["seq"]);
}

/// Reports arriving at two replicas on one PostgreSQL at once: every
/// series moves in the append transaction, so the breach is recorded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_record_a_breach_once() {
    let Some(db) = crate::helpers::TestDatabase::create(Backend::Postgres) else { return };
    let token = crate::helpers::mint(db.dir.path(), "monitoring-job", &["admin"], &["*"]);
    let index = |n: &str| db.dir.path().join(n).display().to_string();
    let (index_one, index_two) = (index("index-one"), index("index-two"));
    let one = crate::helpers::Server::start(&db, &["--search-index-dir", &index_one]);
    let two = crate::helpers::Server::start(&db, &["--search-index-dir", &index_two]);
    let (first, second) = (TestApp::attach(&one.1, &token), TestApp::attach(&two.1, &token));
    register(&first, MODEL).await;
    // Each replica gets every window, out of step with the other: the
    // series counts each window once, whichever replica reports it first.
    let post_all = async |app: &TestApp, offset: usize| {
        for day in 0..20u32 {
            let d = (day + offset as u32) % 20 + 1;
            let response = app.post_events(&json!({"events": [auc(MODEL, d, 0.80)]})).await;
            assert_eq!(response.status(), 201);
        }
    };
    tokio::join!(post_all(&first, 0), post_all(&second, 10));
    let breaches = of_kind(&first, BREACHED).await;
    assert_eq!(breaches.len(), 1, "{breaches:#?}");
    let verify = second.get_json("/api/v1/verify").await;
    assert_eq!(verify["ok"], true, "{verify}");
    drop((one, two));
}

/// Unknown metrics, bad windows, values out of range, undeclared
/// environments, unregistered models and traffic shares that do not sum to
/// 100 are refused with 422 and the reason, and nothing is written, not
/// even the good events of the same batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reports_are_refused_and_nothing_is_written() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    register(&app, MODEL).await;
    let with = |patch: Value| {
        let mut e = auc(MODEL, 1, 0.95);
        for (k, v) in patch.as_object().unwrap() {
            e["attributes"][k] = v.clone();
        }
        e
    };
    let traffic = |shares: Value| {
        json!({"kind": "deployment.traffic_changed", "subject": "deployment:production/fraud", "project": "fraud",
               "attributes": {"shares": shares, "strategy": "canary"}})
    };
    let cases = [
        (with(json!({"metric": "acuracy"})), "unknown_metric", "declared metrics: accuracy, auc"),
        (
            with(json!({"window": {"start": "2026-11-02T00:00:00Z", "end": "2026-11-01T00:00:00Z"}})),
            "invalid_event",
            "start must be before end",
        ),
        (
            with(json!({"window": {"start": "2026-11-02T00:00:00Z", "end": "2099-11-01T00:00:00Z"}})),
            "invalid_event",
            "366 days",
        ),
        (with(json!({"window": {"start": "2026-11-02"}})), "invalid_event", "`end`"),
        (with(json!({"value": 1.7})), "invalid_event", "outside auc's range [0, 1]"),
        (with(json!({"environment": "prodution"})), "unknown_environment", "known environments: dev, production"),
        (auc("model:fraud-detector@9", 1, 0.95), "invalid_event", "not a registered model version"),
        (auc("dataset:transactions@1", 1, 0.95), "invalid_event", "model version or a deployment"),
        (traffic(json!({"model:fraud-detector@1": 90, "model:fraud-detector@2": 20})), "invalid_event", "sum to 110%"),
        (traffic(json!({"model:fraud-detector@1": 100, "model:x": 0})), "invalid_event", "not a model version"),
        (json!({"kind": BREACHED, "subject": MODEL, "attributes": {}}), "use_endpoint", "recorded only by the server"),
        (
            json!({"kind": "monitoring.rules_changed", "subject": "policy:monitoring", "attributes": {}}),
            "use_endpoint",
            "PUT /api/v1/monitoring/rules",
        ),
        (
            json!({"kind": "monitoring.anomaly", "subject": MODEL}),
            "invalid_event",
            "known kinds: monitoring.metric_reported",
        ),
    ];
    let size = app.size().await;
    for (bad, code, says) in cases {
        for body in [bad.clone(), json!({"events": [auc(MODEL, 3, 0.95), bad.clone()]})] {
            let response = app.post_events(&body).await;
            assert_eq!(response.status(), 422, "{body}");
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["error"], code, "{body}: {error}");
            let message = error["message"].as_str().unwrap();
            assert!(message.contains(says), "{body}: {message}");
        }
    }
    // A report on a deployment of another project naming this project's model.
    let mut elsewhere = auc(MODEL, 1, 0.95);
    elsewhere["subject"] = json!("deployment:production/fraud");
    elsewhere["project"] = json!("other");
    elsewhere["attributes"]["model"] = json!(MODEL);
    elsewhere["attributes"].as_object_mut().unwrap().remove("environment");
    let error = json_of(app.client.post(app.url("/api/v1/events")).json(&elsewhere)).await;
    assert_eq!(error["error"], "project_mismatch", "{error}");
    // A traffic split of another project's deployment sharing this project's model.
    let mut split = traffic(json!({"model:fraud-detector@1": 100}));
    split["project"] = json!("other");
    split["subject"] = json!("deployment:production/other");
    split["attributes"]["strategy"] = json!("full");
    let error = json_of(app.client.post(app.url("/api/v1/events")).json(&split)).await;
    assert_eq!(error["error"], "project_mismatch", "{error}");
    assert_eq!(app.size().await, size, "nothing was written");
    let ok = traffic(json!({"model:fraud-detector@1": 90.5, "model:fraud-detector@2": 9.5}));
    app.append_json(&ok).await;
}

/// `PUT /api/v1/monitoring/rules` records new rules (admins only, checked
/// first); the next breach cites them. Bad rules say what to fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_changes_are_on_the_record_and_breaches_cite_them() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    register(&app, MODEL).await;
    let get = app.get("/api/v1/monitoring/rules").await;
    assert_eq!(get.headers()["monitoring-rules-seq"], "0", "not recorded until used or changed");
    let shipped = get.text().await.unwrap();
    assert!(shipped.contains("name = \"fraud-auc\""));

    let put = |token: Option<&str>, text: String| {
        let client = token.map_or_else(|| app.client.clone(), crate::helpers::client_with);
        client.put(app.url("/api/v1/monitoring/rules")).header("Content-Type", "application/toml").body(text)
    };
    let size = app.size().await;
    let bad = shipped.replace("consecutive = 3", "consecutive = 0");
    let error = json_of(put(None, bad)).await;
    assert_eq!(error["error"], "invalid_monitoring_rules", "{error}");
    assert!(error["message"].as_str().unwrap().contains("consecutive must be between 1 and 100"), "{error}");
    let officer = app.token("rita", &["risk_officer"], &["*"]);
    let stricter = shipped.replace("min = 0.90\nwarning = 0.92\nconsecutive = 3", "min = 0.93\nconsecutive = 1");
    assert_ne!(stricter, shipped);
    assert_eq!(put(Some(&officer), stricter.clone()).send().await.unwrap().status(), 403);
    assert_eq!(app.size().await, size, "nothing recorded");

    let changed = put(None, stricter.clone()).send().await.unwrap();
    assert_eq!(changed.status(), 200);
    let seq: u64 = changed.headers()["monitoring-rules-seq"].to_str().unwrap().parse().unwrap();
    let event = app.get_json(&format!("/api/v1/events/{seq}")).await;
    assert_eq!(event["kind"], "monitoring.rules_changed");
    assert_eq!(event["attributes"]["rules"], stricter.as_str());
    assert_eq!(app.get("/api/v1/monitoring/rules").await.text().await.unwrap(), stricter);

    let report = app.append_json(&auc(MODEL, 1, 0.925)).await;
    let breaches = of_kind(&app, BREACHED).await;
    assert_eq!(breaches.len(), 1, "0.925 is below the new bound, one window suffices");
    assert_eq!(breaches[0]["attributes"]["rules_seq"], seq);
    assert_eq!(breaches[0]["attributes"]["report_seq"], report["seq"]);
}

/// A subscription to `monitoring.*` is told of the breach, signed, with
/// what it takes to act on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaches_are_delivered_to_subscribers() {
    use crate::webhooks::{free_port, receivers_available, subscribe, webhook_app, Receiver};
    if !receivers_available() {
        return;
    }
    let Some(app) = webhook_app(Backend::Sqlite, |_| {}).await else { return };
    register(&app, MODEL).await;
    let port = free_port();
    let created = subscribe(
        &app,
        json!({"url": format!("http://127.0.0.1:{port}/hook"), "filter": {"kinds": [BREACHED, RECOVERED, "monitoring.drift_detected"]}}),
    )
    .await;
    let receiver = Receiver::start(port, &[created["secret"].as_str().unwrap()], &[]);
    let batch: Vec<Value> = [0.80, 0.80, 0.80].iter().zip(1..).map(|(v, d)| auc(MODEL, d, *v)).collect();
    let answer: Value = app.post_events(&json!({"events": batch})).await.json().await.unwrap();
    let breach = answer["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(breach["kind"], BREACHED);
    receiver.wait_for(&BTreeSet::from([breach["seq"].as_u64().unwrap()]), Duration::from_secs(20)).await;
    let records = receiver.records();
    crate::webhooks::assert_verified_and_ids_stable(&records);
    let kinds: BTreeSet<&str> = records.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, BTreeSet::from([BREACHED]), "the reports themselves are not subscribed to");
    let data = &records[0]["data"];
    assert_eq!((data["subject"].as_str(), data["attributes"]["rule"].as_str()), (Some(MODEL), Some("fraud-auc")));
    assert_eq!(data["attributes"]["report_seqs"].as_array().unwrap().len(), 3);
}

/// Approval rules without the shipped rules' `production`: the shipped
/// thresholds for it watch nothing, and the server still starts and judges
/// the others. Rules sent by a person that name it are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_rules_for_an_undeclared_environment_watch_nothing() {
    let rules =
        "[environments.staging]\napprovals_required = 1\napprover_roles = [\"risk_officer\"]\nvalid_for = \"30d\"\n";
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.approval_rules = govledger::governance::ApprovalRules::parse(rules).unwrap();
    })
    .await
    else {
        return;
    };
    register(&app, MODEL).await;
    let staging = |day: u32| {
        let mut e = auc(MODEL, day, 0.5);
        e["attributes"]["environment"] = json!("staging");
        e
    };
    let batch: Vec<Value> = (1..=3).map(staging).collect();
    assert_eq!(app.post_events(&json!({"events": batch})).await.status(), 201);
    assert_eq!(of_kind(&app, BREACHED).await.len(), 1, "fraud-auc applies in every environment");
    let shipped = app.get("/api/v1/monitoring/rules").await.text().await.unwrap();
    let put = app.client.put(app.url("/api/v1/monitoring/rules")).body(shipped).send().await.unwrap();
    assert_eq!(put.status(), 422);
    let error: Value = put.json().await.unwrap();
    assert!(error["message"].as_str().unwrap().contains("\"production\" is not declared"), "{error}");
    let empty = app.client.put(app.url("/api/v1/monitoring/rules")).body("").send().await.unwrap();
    assert_eq!(empty.status(), 422, "an empty body would stop all monitoring");
}

/// The statements of the sections of `report` showing `show`.
fn shown<'a>(report: &'a Value, show: &str) -> Vec<&'a Value> {
    report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["show"] == show)
        .flat_map(|s| s["statements"].as_array().unwrap())
        .collect()
}

/// A breach on the record is charted and listed in the dossier, answered
/// by a retraining run that cites it (`triggered_by`), flagged while the
/// version is live, and covered by the AI Act log's post-market section.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_chart_breaches_and_follow_the_retraining_they_trigger() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    register(&app, MODEL).await;
    let live = json!({"kind": "deployment.succeeded", "subject": "deployment:production/fraud", "project": "fraud",
                      "attributes": {"model": MODEL}});
    app.append_json(&live).await;
    let reports: Vec<Value> = [0.95, 0.89, 0.88, 0.87].iter().zip(1..).map(|(v, d)| auc(MODEL, d, *v)).collect();
    let answer = app.append_json(&json!({"events": reports})).await;
    let breach = answer["events"].as_array().unwrap().iter().find(|e| e["kind"] == BREACHED).unwrap().clone();
    let breach_seq = breach["seq"].as_u64().unwrap();

    // A run answers the breach; one naming a report instead is refused.
    let size = app.size().await;
    let wrong = json!({"kind": "run.started", "subject": "run:retrain", "project": "fraud",
                       "attributes": {"triggered_by": answer["events"][0]["seq"]}});
    let refused = app.post_events(&wrong).await;
    assert_eq!(refused.status(), 422);
    let error: Value = refused.json().await.unwrap();
    assert!(error["message"].as_str().unwrap().contains("attributes.triggered_by"), "{error}");
    assert_eq!(app.size().await, size, "nothing written");
    let started = app
        .append_json(&json!({"kind": "run.started", "subject": "run:retrain", "project": "fraud",
                             "attributes": {"triggered_by": breach_seq}}))
        .await;
    let body = json!({"events": [
        {"kind": "run.completed", "subject": "run:retrain", "project": "fraud", "outputs": ["model:fraud-detector@2"]},
        {"kind": "model.registered", "subject": "model:fraud-detector@2", "project": "fraud", "inputs": ["run:retrain"]},
    ]});
    assert_eq!(app.post_events(&body).await.status(), 201);

    let dossier = app.get_json(&format!("/api/v1/reports/model-dossier?subject={MODEL}&format=json")).await;
    let section = dossier["sections"].as_array().unwrap().iter().find(|s| s["show"] == "monitoring").unwrap();
    let chart = &section["charts"][0];
    assert_eq!(chart["y_label"], "auc");
    assert_eq!(chart["series"][0]["name"], "production");
    assert_eq!(chart["series"][0]["points"].as_array().unwrap().len(), 4);
    assert_eq!(
        chart["limits"],
        json!([{"label": "fraud-auc min", "value": 0.9}, {"label": "fraud-auc warning", "value": 0.92}])
    );
    let monitoring = shown(&dossier, "monitoring");
    let listed = monitoring.iter().find(|s| s["seq"] == breach_seq).expect("the breach is listed");
    assert!(
        listed["text"].as_str().unwrap().starts_with("BREACH (critical): rule fraud-auc in production"),
        "{listed}"
    );
    assert!(
        monitoring.iter().any(|s| s["seq"] == started["seq"]
            && s["text"]
                .as_str()
                .unwrap()
                .contains(&format!("breach of seq {breach_seq} (fraud-auc) triggered run:retrain"))),
        "{monitoring:?}"
    );
    let open: Vec<&Value> = shown(&dossier, "findings").into_iter().filter(|f| f["seq"] == breach_seq).collect();
    assert_eq!(open.len(), 1, "the open breach of a live version is a finding");
    assert!(open[0]["text"]
        .as_str()
        .unwrap()
        .contains("is live in deployment:production/fraud with an open monitoring breach"));
    let inventory = app.get_json("/api/v1/reports/model-inventory?format=json").await;
    assert!(shown(&inventory, "findings").iter().any(|f| f["seq"] == breach_seq), "the inventory flags it too");

    // A canary of the new version in production, unapproved.
    let canary = app
        .append_json(&json!({"kind": "deployment.traffic_changed", "subject": "deployment:production/fraud",
            "project": "fraud", "attributes": {"shares": {MODEL: 90, "model:fraud-detector@2": 10}, "strategy": "canary"}}))
        .await;

    // The new version's dossier shows where it came from, and that its
    // canary served production without an approval.
    let next = app.get_json("/api/v1/reports/model-dossier?subject=model:fraud-detector@2&format=json").await;
    let unapproved: Vec<&Value> = shown(&next, "findings").into_iter().filter(|f| f["seq"] == canary["seq"]).collect();
    assert_eq!(unapproved.len(), 1, "{next}");
    assert!(unapproved[0]["text"]
        .as_str()
        .unwrap()
        .contains("was given 10% of the traffic of deployment:production/fraud"));
    let answered = shown(&next, "monitoring");
    assert!(
        answered.iter().any(|s| s["seq"] == started["seq"]
            && s["text"]
                .as_str()
                .unwrap()
                .contains(&format!("in answer to monitoring.threshold_breached of seq {breach_seq} about {MODEL}"))),
        "{answered:?}"
    );

    // Art. 72: the AI Act log of the deployment covers its monitoring.
    let log = app.get_json("/api/v1/reports/ai-act-log?subject=deployment%3Aproduction%2Ffraud&format=json").await;
    let post_market = shown(&log, "post_market_monitoring");
    assert!(post_market.iter().any(|s| s["seq"] == breach_seq), "{post_market:?}");
    assert!(post_market.iter().any(|s| s["text"].as_str().unwrap().starts_with("auc in production: 4 report(s)")));

    // The PDF draws the chart; its labels read back, and qpdf accepts it.
    let pdf = app.get(&format!("/api/v1/reports/model-dossier?subject={MODEL}&format=pdf")).await;
    assert_eq!(pdf.status(), 200);
    let Some(text) = crate::reports::pdf_text(&pdf.bytes().await.unwrap()) else { return };
    for label in [
        "auc of model:fraud-detector@1 by observation window",
        "window end (UTC)",
        "fraud-auc min 0.9",
        "fraud-auc warning 0.92",
        "2026-11-02",
        "2026-11-05",
        "production",
    ] {
        assert!(text.contains(label), "{label} not in the PDF's text");
    }
}
