//! Report generation time (issue 7).
//!
//! Builds two SQLite ledgers in a temporary directory (or GOVLEDGER_BENCH_DIR):
//! - `dossier`: one model version whose upstream lineage holds 10,000 events
//!   (DATASET_CHAINS derivation chains of CHAIN_LENGTH dataset versions feeding
//!   one training run, plus evaluations, explanations, an approval with two
//!   grants and deployments);
//! - `inventory`: INVENTORY_MODELS model versions, each registered, trained,
//!   evaluated, approved by two risk officers and deployed.
//!
//! Then times, RUNS times each, building the report (store reads, lineage
//! walk, findings) and rendering it as PDF and JSON, and prints p50/max.
//!
//! `cargo bench --bench reports [-- dossier inventory]`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use govledger::governance::ApprovalRules;
use govledger::ledger::{EventDraft, EventRequest};
use govledger::proofs::{keys, Proofs};
use govledger::reports::{self, ReportRequest, ReportType};
use govledger::store::{StorageTarget, Store, WriterConfig};
use serde_json::{json, Value};

/// 213 chains × 47 versions = 10,011 dataset events; with the run, model,
/// evaluation, explanation, approval and deployment events, the model's
/// upstream lineage rests on just over 10,000 events and stays within the
/// lineage walk's depth limit (50).
const DATASET_CHAINS: u64 = 213;
const CHAIN_LENGTH: u64 = 47;
const INVENTORY_MODELS: u64 = 5_000;
const RUNS: usize = 5;

fn main() {
    let dir = match std::env::var("GOVLEDGER_BENCH_DIR") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => tempfile::tempdir().unwrap().keep(),
    };
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wants = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    if wants("dossier") {
        let at = dir.join("dossier");
        let events = load(&at, dossier_ledger());
        let request =
            ReportRequest { subject: Some("model:deep@1".into()), ..ReportRequest::new(ReportType::ModelDossier) };
        measure(&at, &request, &format!("model-dossier, upstream lineage of {events} events"));
    }
    if wants("inventory") {
        let at = dir.join("inventory");
        let events = load(&at, inventory_ledger());
        let request = ReportRequest::new(ReportType::ModelInventory);
        measure(&at, &request, &format!("model-inventory, {INVENTORY_MODELS} model versions ({events} events)"));
    }
    if std::env::var("GOVLEDGER_BENCH_DIR").is_err() {
        std::fs::remove_dir_all(&dir).ok();
    }
}

fn draft(value: Value) -> EventDraft {
    let request: EventRequest = serde_json::from_value(value).unwrap();
    EventDraft::from_request(request).unwrap()
}

fn ev(actor: &str, value: Value) -> (String, EventDraft) {
    (actor.to_owned(), draft(value))
}

/// The approval, deployment and evaluation events of one model version.
fn governance_of(model: &str, approval: &str, deployment: &str) -> Vec<(String, EventDraft)> {
    vec![
        ev(
            "ci",
            json!({"kind": "model.evaluated", "subject": model, "project": "bench",
            "attributes": {"metrics": {"auc": 0.94}, "thresholds": {"auc": 0.9}, "passed": true}}),
        ),
        ev(
            "ci",
            json!({"kind": "model.explained", "subject": model, "project": "bench",
            "attributes": {"method": "shap", "intended_use": "Scoring.", "limitations": "None known.",
                           "feature_importances": {"amount": 0.4}}}),
        ),
        ev(
            "ci",
            json!({"kind": "approval.requested", "subject": approval, "project": "bench",
            "attributes": {"model": model, "environment": "production", "evidence": [], "note": "",
                           "required_approvals": 2, "valid_for_seconds": 7_776_000}}),
        ),
        ev(
            "rita",
            json!({"kind": "approval.granted", "subject": approval, "project": "bench",
            "attributes": {"reason": "validated"}}),
        ),
        ev(
            "raj",
            json!({"kind": "approval.granted", "subject": approval, "project": "bench",
            "attributes": {"reason": "validated"}}),
        ),
        ev(
            "ci",
            json!({"kind": "deployment.succeeded", "subject": deployment, "project": "bench",
            "attributes": {"model": model}}),
        ),
    ]
}

fn dossier_ledger() -> Vec<(String, EventDraft)> {
    let mut out = Vec::new();
    let version = |c: u64, l: u64| format!("dataset:chain{c}@v{l}");
    for c in 0..DATASET_CHAINS {
        out.push(ev("alice", json!({"kind": "dataset.version_created", "subject": version(c, 0), "project": "bench"})));
        for l in 1..CHAIN_LENGTH {
            out.push(ev(
                "alice",
                json!({"kind": "dataset.version_created", "subject": version(c, l),
                "inputs": [version(c, l - 1)], "project": "bench"}),
            ));
        }
    }
    let finals: Vec<String> = (0..DATASET_CHAINS).map(|c| version(c, CHAIN_LENGTH - 1)).collect();
    out.push(ev("ci", json!({"kind": "run.started", "subject": "run:deep-1", "inputs": finals, "project": "bench"})));
    out.push(ev(
        "ci",
        json!({"kind": "run.completed", "subject": "run:deep-1", "outputs": ["model:deep@1"], "project": "bench"}),
    ));
    out.push(ev(
        "ci",
        json!({"kind": "model.registered", "subject": "model:deep@1", "inputs": ["run:deep-1"],
        "project": "bench", "attributes": {"owner": "alice", "framework": "xgboost"}}),
    ));
    out.extend(governance_of("model:deep@1", "approval:deep-1", "deployment:production/deep"));
    out
}

fn inventory_ledger() -> Vec<(String, EventDraft)> {
    let mut out = Vec::new();
    for m in 0..INVENTORY_MODELS {
        // 1,000 models with 5 versions each.
        let model = format!("model:m{}@{}", m % 1000, m / 1000 + 1);
        let run = format!("run:train{m}");
        let data = format!("dataset:d{}@1", m % 1000);
        if m < 1000 {
            out.push(ev("alice", json!({"kind": "dataset.version_created", "subject": data, "project": "bench"})));
        }
        out.push(ev("ci", json!({"kind": "run.started", "subject": run, "inputs": [data], "project": "bench"})));
        out.push(ev("ci", json!({"kind": "run.completed", "subject": run, "outputs": [model], "project": "bench"})));
        out.push(ev(
            "ci",
            json!({"kind": "model.registered", "subject": model, "inputs": [run], "project": "bench",
            "attributes": {"owner": "alice"}}),
        ));
        out.extend(governance_of(&model, &format!("approval:a{m}"), &format!("deployment:production/m{}", m % 1000)));
    }
    out
}

/// Appends `events` to a new ledger at `dir` (or reuses one), returns its size.
fn load(dir: &Path, events: Vec<(String, EventDraft)>) -> u64 {
    std::fs::create_dir_all(dir).unwrap();
    let target = StorageTarget::resolve(dir, None).unwrap();
    let store = Store::open(target, 2, WriterConfig::default()).unwrap();
    let have = store.head().unwrap().size;
    if have == 0 {
        let started = Instant::now();
        for chunk in events.chunks(2000) {
            // One actor per append call: group by consecutive actor.
            let mut i = 0;
            while i < chunk.len() {
                let actor = &chunk[i].0;
                let j = chunk[i..].iter().position(|(a, _)| a != actor).map_or(chunk.len(), |p| i + p);
                store
                    .writer()
                    .append_blocking(actor.clone(), chunk[i..j].iter().map(|(_, d)| d.clone()).collect())
                    .unwrap();
                i = j;
            }
        }
        println!("== loaded {} events into {} in {:.1}s", events.len(), dir.display(), started.elapsed().as_secs_f64());
    } else {
        assert_eq!(have, events.len() as u64, "{} holds another ledger; remove it", dir.display());
        println!("== reusing the ledger of {have} events in {}", dir.display());
    }
    let size = store.head().unwrap().size;
    store.close();
    size
}

fn measure(dir: &Path, request: &ReportRequest, what: &str) {
    let target = StorageTarget::resolve(dir, None).unwrap();
    let store = Store::open(target, 2, WriterConfig::default()).unwrap();
    let signer = keys::load_or_create(&keys::SigningKeyConfig::in_data_dir(dir, "govledger-bench")).unwrap();
    let proofs = Proofs::new(store.clone(), signer, "govledger-bench".into()).unwrap();
    let checkpoint = proofs.publish().unwrap().unwrap();
    let rules = ApprovalRules::default_rules();
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports");
    let mut build = Vec::new();
    let mut pdf = Vec::new();
    let mut json = Vec::new();
    let mut summary = String::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let (report, cited) = reports::build(request, &store, &proofs, &checkpoint, &rules, &templates).unwrap();
        build.push(started.elapsed());
        let started = Instant::now();
        let bytes = reports::render(&report, reports::ReportFormat::Pdf).unwrap();
        pdf.push(started.elapsed());
        let started = Instant::now();
        let json_bytes = reports::render(&report, reports::ReportFormat::Json).unwrap();
        json.push(started.elapsed());
        let statements: usize = report.sections.iter().map(|s| s.statements.len()).sum();
        summary = format!(
            "{statements} statements citing {} events; PDF {:.1} MB, JSON {:.1} MB",
            cited.len(),
            bytes.len() as f64 / 1e6,
            json_bytes.len() as f64 / 1e6
        );
    }
    let total: Vec<Duration> = (0..RUNS).map(|i| build[i] + pdf[i]).collect();
    println!("== {what}: {summary}");
    println!("   build            {}", stats(build));
    println!("   render PDF       {}", stats(pdf));
    println!("   render JSON      {}", stats(json));
    println!("   build + PDF      {}", stats(total));
    drop(proofs);
    store.close();
}

fn stats(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "p50 {:8.1} ms, max {:8.1} ms ({} runs)",
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() - 1]),
        samples.len()
    )
}
