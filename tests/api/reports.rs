//! Reports from the `govledger demo` ledger: reproducible PDFs read back,
//! every cited event checkable against the evidence bundle, JSON and CSV
//! carrying the same citations, and broken templates refused by line.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

use crate::helpers::{Backend, TestDatabase};

/// The text of a PDF as `pdftotext` reads it, after `qpdf --check` has
/// accepted the file. Outside CI, without those tools, `None` and a reason.
pub(crate) fn pdf_text(pdf: &[u8]) -> Option<String> {
    // `pdftotext -v` is the version flag that exits 0 (`--version` does not).
    let have = |tool: &str, flag: &str| Command::new(tool).arg(flag).output().is_ok_and(|o| o.status.success());
    if !have("pdftotext", "-v") || !have("qpdf", "--version") {
        if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
            panic!("CI must check PDFs, but pdftotext or qpdf is missing (apt-get install poppler-utils qpdf)");
        }
        eprintln!("SKIPPED: reading PDFs back needs pdftotext and qpdf (apt-get install poppler-utils qpdf)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.pdf");
    std::fs::write(&file, pdf).unwrap();
    let check = Command::new("qpdf").arg("--check").arg(&file).output().unwrap();
    assert!(check.status.success(), "qpdf --check: {}", String::from_utf8_lossy(&check.stdout));
    let text = Command::new("pdftotext").args(["-layout", "-enc", "UTF-8"]).arg(&file).arg("-").output().unwrap();
    assert!(text.status.success());
    // poppler repairs what it cannot read, and says so on stderr.
    assert!(text.stderr.is_empty(), "pdftotext: {}", String::from_utf8_lossy(&text.stderr));
    Some(String::from_utf8(text.stdout).unwrap())
}

fn govledger(args: &[&str], db: &TestDatabase) -> Output {
    Command::new(env!("CARGO_BIN_EXE_govledger"))
        .args(args)
        .args(db.cli_args())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

#[test]
fn audit_trail_reports_are_reproducible_and_verifiable() {
    let db = TestDatabase::create(Backend::Sqlite).unwrap();
    ok(&govledger(&["demo"], &db));
    let out = tempfile::tempdir().unwrap();
    let (a, b, bundle) = (path(out.path(), "a.pdf"), path(out.path(), "b.pdf"), path(out.path(), "bundle"));
    ok(&govledger(&["report", "audit-trail", "--out", &a, "--bundle", &bundle], &db));
    ok(&govledger(&["report", "audit-trail", "--out", &b], &db));
    let (first, second) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(first.starts_with(b"%PDF-"));
    assert_eq!(first, second, "the same ledger and template give a byte-identical PDF");

    // The JSON carries what the PDF shows; every cited event is in the bundle,
    // whose proofs and signature verify offline.
    let json_path = path(out.path(), "a.json");
    ok(&govledger(&["report", "audit-trail", "--out", &json_path], &db));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let checkpoint = &report["checkpoint"];
    // Sections without citations leave the field out.
    let citations: Vec<Value> = report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["citations"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(citations.len() as u64, checkpoint["tree_size"].as_u64().unwrap());
    let verified =
        ok(&Command::new(env!("CARGO_BIN_EXE_govledger")).args(["verify-bundle", &bundle]).output().unwrap());
    assert!(verified.contains(&format!("root {}", checkpoint["root_hash"].as_str().unwrap())), "{verified}");
    let bundled: Vec<Value> = std::fs::read_dir(Path::new(&bundle).join("events"))
        .unwrap()
        .map(|e| serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
        .collect();
    assert_eq!(bundled.len(), citations.len());
    for c in &citations {
        assert!(bundled.iter().any(|e| e["seq"] == c["seq"] && e["hash"] == c["hash"]), "{c} not in the bundle");
    }

    // Read the PDF back: the checkpoint, the verification result and every
    // cited seq and hash are in its text.
    let Some(text) = pdf_text(&first) else { return };
    assert!(text.contains(checkpoint["root_hash"].as_str().unwrap()), "root hash missing");
    assert!(text.contains(&format!("tree size {}", checkpoint["tree_size"])));
    assert!(text.contains(&format!("key id {}", checkpoint["key_id"].as_str().unwrap())));
    assert!(text.contains("intact,"), "chain verification result missing");
    assert!(text.contains("govledger verify-bundle"), "the appendix explains how to check");
    for c in &citations {
        assert!(text.contains(&format!("hash {}", c["hash"].as_str().unwrap())), "{c} hash missing");
        assert!(text.contains(c["kind"].as_str().unwrap()));
    }

    // CSV: one row per citation, same seqs and hashes.
    let csv_path = path(out.path(), "a.csv");
    ok(&govledger(&["report", "audit-trail", "--out", &csv_path], &db));
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    assert_eq!(csv.lines().count(), citations.len() + 1);
    assert!(csv.lines().nth(1).unwrap().contains(citations[0]["hash"].as_str().unwrap()));

    // An entity's trail: just its events.
    let entity = path(out.path(), "staging.json");
    ok(&govledger(&["report", "audit-trail", "--entity", "deployment:staging/fraud-detector", "--out", &entity], &db));
    let staging: Value = serde_json::from_str(&std::fs::read_to_string(&entity).unwrap()).unwrap();
    let kinds: Vec<String> = staging["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["citations"].as_array().cloned().unwrap_or_default())
        .map(|c| c["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds.len(), 5);
    assert!(kinds.iter().all(|k| k.starts_with("deployment.")));
}

#[test]
fn templates_change_wording_without_recompiling_and_broken_ones_name_the_line() {
    let db = TestDatabase::create(Backend::Sqlite).unwrap();
    ok(&govledger(&["demo"], &db));
    let templates = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/reports/audit-trail.toml")).unwrap();
    let reworded = shipped.replace("title = \"Audit trail\"", "title = \"Журнал аудита — Ζωή Müller, reworded\"");
    std::fs::write(templates.path().join("audit-trail.toml"), reworded).unwrap();
    let dir = templates.path().display().to_string();
    let out = path(templates.path(), "r.pdf");
    ok(&govledger(&["report", "audit-trail", "--templates", &dir, "--out", &out], &db));
    if let Some(text) = pdf_text(&std::fs::read(&out).unwrap()) {
        // Not Latin-1, and still rendered as written.
        assert!(text.contains("Журнал аудита — Ζωή Müller, reworded"), "{}", &text[..300.min(text.len())]);
    }

    let broken = shipped.replace("show = \"events\"", "show = \"everything\"");
    std::fs::write(templates.path().join("audit-trail.toml"), &broken).unwrap();
    let line = broken.lines().position(|l| l.contains("everything")).unwrap() + 1;
    let failed = govledger(&["report", "audit-trail", "--templates", &dir, "--out", &out], &db);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains(&format!("audit-trail.toml: line {line}: show = \"everything\"")), "{stderr}");
    let unknown = govledger(&["report", "model-card", "--out", &out], &db);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown report"));
}

fn statements(report: &Value, show: &str) -> Vec<(String, u64, String)> {
    report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["show"] == show)
        .flat_map(|s| s["statements"].as_array().cloned().unwrap_or_default())
        .map(|s| {
            (s["text"].as_str().unwrap().to_owned(), s["seq"].as_u64().unwrap(), s["hash"].as_str().unwrap().to_owned())
        })
        .collect()
}

async fn dossier_and_inventory(backend: Backend) {
    let Some(app) = crate::helpers::TestApp::spawn(backend).await else { return };
    let admin = govledger::client::Client::new(&app.base, &app.admin_token).unwrap();
    govledger::demo::run(&govledger::demo::Cast::mint(&admin).await.unwrap()).await.unwrap();
    // Someone deploys version 1 to production by hand, without an approval:
    // the ledger records the fact, and the reports must flag it.
    let manual = app
        .append_json(
            &serde_json::json!({"kind": "deployment.succeeded", "subject": "deployment:production/fraud-detector",
            "project": "fraud", "attributes": {"model": "model:fraud-detector@1", "reason": "hotfix"}}),
        )
        .await;
    let events = crate::helpers::all_events(&app).await;
    let by_seq = |seq: u64| events.iter().find(|e| e["seq"] == seq).unwrap().clone();
    let db = app.db();
    let out = tempfile::tempdir().unwrap();
    let run = |args: Vec<String>| {
        let mut all = vec!["report".to_owned()];
        all.extend(args);
        all.extend(db.cli_args());
        Command::new(env!("CARGO_BIN_EXE_govledger"))
            .args(&all)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
    };
    let dossier = path(out.path(), "d2.json");
    let bundle = path(out.path(), "d2-bundle");
    ok(&run(vec![
        "model-dossier".into(),
        "--model".into(),
        "model:fraud-detector@2".into(),
        "--out".into(),
        dossier.clone(),
        "--bundle".into(),
        bundle.clone(),
    ]));
    let d2: Value = serde_json::from_str(&std::fs::read_to_string(&dossier).unwrap()).unwrap();
    assert_eq!(d2["title"], "Model dossier: model:fraud-detector@2");
    let appendix = d2["appendix"]["text"].as_str().unwrap();
    assert!(
        appendix.contains(&format!("tree size {}", d2["checkpoint"]["tree_size"])) && !appendix.contains('{'),
        "{appendix}"
    );
    // Every statement cites a real event by seq and hash.
    let all: Vec<(String, u64, String)> = d2["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["statements"].as_array().cloned().unwrap_or_default())
        .map(|s| {
            (s["text"].as_str().unwrap().to_owned(), s["seq"].as_u64().unwrap(), s["hash"].as_str().unwrap().to_owned())
        })
        .collect();
    for (text, seq, hash) in &all {
        assert_eq!(by_seq(*seq)["hash"].as_str().unwrap(), hash, "{text}");
    }
    let registered =
        events.iter().find(|e| e["kind"] == "model.registered" && e["subject"] == "model:fraud-detector@2").unwrap();
    assert_eq!(statements(&d2, "model_card")[0].1, registered["seq"].as_u64().unwrap());
    assert!(statements(&d2, "model_card").iter().any(|s| s.0.starts_with("Intended use: Score card transactions")));
    let lineage = statements(&d2, "lineage");
    assert_eq!(lineage.len(), 5, "{lineage:?}");
    assert!(lineage.iter().any(|s| s.0 == "model:fraud-detector@2 was evaluated on dataset:chargebacks@2026-11."));
    assert!(lineage.iter().any(|s| s.0 == "run:train-fraud-3 was made from dataset:transactions@2026-11."));
    let diagram = &d2["sections"].as_array().unwrap().iter().find(|s| s["show"] == "lineage").unwrap()["diagram"];
    assert_eq!(
        diagram["columns"],
        serde_json::json!([
            ["dataset:chargebacks@2026-10", "dataset:transactions@2026-11"],
            ["dataset:chargebacks@2026-11", "run:train-fraud-3"],
            ["model:fraud-detector@2"]
        ])
    );
    let approvals: Vec<String> = statements(&d2, "approvals").into_iter().map(|s| s.0).collect();
    assert!(
        approvals.iter().any(|a| a.starts_with("granted by rita"))
            && approvals.iter().any(|a| a.starts_with("granted by raj"))
    );
    let deployments: Vec<String> = statements(&d2, "deployments").into_iter().map(|s| s.0).collect();
    assert!(deployments[0].starts_with("deployment:production/fraud-detector: blocked at"), "{deployments:?}");
    // The whole story: the staging rollback and the manual production
    // deployment of version 1 both took version 2 out of service.
    let rollback = events
        .iter()
        .find(|e| e["kind"] == "deployment.rolled_back" && e["subject"] == "deployment:staging/fraud-detector")
        .unwrap();
    let d2_deployments = statements(&d2, "deployments");
    let displaced: Vec<&(String, u64, String)> =
        d2_deployments.iter().filter(|s| s.0.contains("no longer serves there")).collect();
    assert_eq!(
        displaced.iter().map(|s| s.1).collect::<Vec<_>>(),
        [rollback["seq"].as_u64().unwrap(), manual["seq"].as_u64().unwrap()],
        "{deployments:?}"
    );
    assert!(displaced[0].0.contains("rolled back to model:fraud-detector@1"), "{displaced:?}");
    assert!(
        deployments.last().unwrap().starts_with("model:fraud-detector@2 is not live anywhere as of checkpoint"),
        "{deployments:?}"
    );
    assert_eq!(statements(&d2, "findings").len(), 1);
    assert!(statements(&d2, "findings")[0].0.starts_with("No open findings"));
    // The bundle holds every cited event and verifies.
    ok(&Command::new(env!("CARGO_BIN_EXE_govledger")).args(["verify-bundle", &bundle]).output().unwrap());
    let bundled = std::fs::read_dir(Path::new(&bundle).join("events")).unwrap().count();
    assert_eq!(bundled, all.iter().map(|s| s.1).collect::<std::collections::BTreeSet<_>>().len());

    // Version 1: the manual production deployment is a finding citing it.
    let d1_path = path(out.path(), "d1.json");
    ok(&run(vec![
        "model-dossier".into(),
        "--model".into(),
        "model:fraud-detector@1".into(),
        "--out".into(),
        d1_path.clone(),
    ]));
    let d1: Value = serde_json::from_str(&std::fs::read_to_string(&d1_path).unwrap()).unwrap();
    let findings = statements(&d1, "findings");
    assert_eq!(findings.len(), 3, "{findings:?}");
    assert!(findings[0].0.contains("went live in production") && findings[0].0.contains("without a valid approval"));
    assert_eq!(findings[0].1, manual["seq"].as_u64().unwrap());
    // Version 1 failed its evaluation (auc 0.90 against 0.92) and is live.
    let evaluated_1 =
        events.iter().find(|e| e["kind"] == "model.evaluated" && e["subject"] == "model:fraud-detector@1").unwrap()
            ["seq"]
            .as_u64()
            .unwrap();
    // raj granted staging although version 1 failed the evaluation rule:
    // the override is a finding citing his grant, with his reason.
    let override_grant = events
        .iter()
        .find(|e| e["kind"] == "approval.granted" && e["attributes"]["override_reason"].is_string())
        .unwrap();
    assert_eq!(override_grant["actor"], "raj");
    assert_eq!(findings[1].1, override_grant["seq"].as_u64().unwrap());
    assert!(
        findings[1].0.contains("for staging was granted by raj")
            && findings[1].0.contains("overriding rule evaluation")
            && findings[1].0.contains("staging shadow-scores only"),
        "{findings:?}"
    );
    assert_eq!(findings[2].1, evaluated_1);
    assert!(
        findings[2].0.contains("is live in deployment:production/fraud-detector, deployment:staging/fraud-detector")
            && findings[2].0.contains("did not pass its thresholds (auc 0.9 against 0.92)"),
        "{findings:?}"
    );
    let d1_deployments: Vec<String> = statements(&d1, "deployments").into_iter().map(|s| s.0).collect();
    assert!(
        d1_deployments.last().unwrap().starts_with(&format!(
            "model:fraud-detector@1 is live now in deployment:production/fraud-detector (since seq {}) and deployment:staging/fraud-detector (since seq {})",
            manual["seq"], rollback["seq"]
        )),
        "{d1_deployments:?}"
    );

    // The inventory: both versions, and the same finding.
    let inventory_path = path(out.path(), "inventory.pdf");
    ok(&run(vec!["model-inventory".into(), "--out".into(), inventory_path.clone()]));
    let json_path = path(out.path(), "inventory.json");
    ok(&run(vec!["model-inventory".into(), "--out".into(), json_path.clone()]));
    let inventory: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert!(!inventory["appendix"]["text"].as_str().unwrap().contains('{'), "placeholders left in the appendix");
    let rows = statements(&inventory, "inventory");
    assert_eq!(rows.len(), 4, "the fraud and speech versions: {rows:?}");
    assert!(
        rows[1].0.starts_with("model:fraud-detector@2: owner alice, active;") && rows[1].0.contains("production valid")
    );
    assert_eq!(
        statements(&inventory, "findings").iter().map(|f| f.1).collect::<Vec<_>>(),
        [manual["seq"].as_u64().unwrap(), override_grant["seq"].as_u64().unwrap(), evaluated_1]
    );
    if let Some(text) = pdf_text(&std::fs::read(&inventory_path).unwrap()) {
        assert!(text.contains("went live in production"));
        // The findings table: the evidence's seq in its column, its hash under the row.
        assert!(text.contains(&format!("hash {}", manual["hash"].as_str().unwrap())));
        assert!(text.lines().any(|l| l.trim_start().starts_with(&format!("{} ", manual["seq"]))), "the seq column");
        assert!(text.contains("alice"), "the owner's name");
    }
    // GDPR record of processing: classification, every use, where deployed.
    let gdpr_path = path(out.path(), "gdpr.json");
    ok(&run(vec![
        "gdpr-processing".into(),
        "--dataset".into(),
        "dataset:transactions".into(),
        "--out".into(),
        gdpr_path.clone(),
    ]));
    let gdpr: Value = serde_json::from_str(&std::fs::read_to_string(&gdpr_path).unwrap()).unwrap();
    let classification = statements(&gdpr, "classification");
    assert_eq!(classification.len(), 1);
    assert!(classification[0].0.contains("legal basis legitimate_interests; retention P5Y"), "{classification:?}");
    assert_eq!(by_seq(classification[0].1)["kind"], "dataset.classified");
    let usage: Vec<String> = statements(&gdpr, "usage").into_iter().map(|s| s.0).collect();
    for expected in [
        "run:train-fraud-1 read dataset:transactions@2026-10.",
        "run:train-fraud-2 read dataset:transactions@2026-10.",
        "run:train-fraud-3 read dataset:transactions@2026-11.",
        "model:fraud-detector@1 was made from run:train-fraud-1.",
        "model:fraud-detector@2 was made from run:train-fraud-3.",
    ] {
        assert!(usage.contains(&expected.to_owned()), "{expected} missing from {usage:?}");
    }
    let deployed: Vec<String> = statements(&gdpr, "deployments").into_iter().map(|s| s.0).collect();
    assert!(
        deployed.iter().any(|d| d.starts_with("deployment:production/fraud-detector serves model:fraud-detector@1")),
        "{deployed:?}"
    );
    assert!(statements(&gdpr, "findings").is_empty());
    let project_path = path(out.path(), "gdpr-project.pdf");
    ok(&run(vec!["gdpr-processing".into(), "--project".into(), "fraud".into(), "--out".into(), project_path]));

    // AI Act log of staging, from the moment version 2 went live there.
    let staging_events: Vec<&Value> =
        events.iter().filter(|e| e["subject"] == "deployment:staging/fraud-detector").collect();
    let v2_live = staging_events
        .iter()
        .find(|e| e["kind"] == "deployment.succeeded" && e["attributes"]["model"] == "model:fraud-detector@2")
        .unwrap();
    let ai_path = path(out.path(), "ai.json");
    ok(&run(vec![
        "ai-act-log".into(),
        "--deployment".into(),
        "deployment:staging/fraud-detector".into(),
        "--from".into(),
        v2_live["recorded_at"].as_str().unwrap().to_owned(),
        "--out".into(),
        ai_path.clone(),
    ]));
    let ai: Value = serde_json::from_str(&std::fs::read_to_string(&ai_path).unwrap()).unwrap();
    let record: Vec<u64> = statements(&ai, "record_keeping").into_iter().map(|s| s.1).collect();
    assert_eq!(record, [v2_live["seq"].as_u64().unwrap(), staging_events.last().unwrap()["seq"].as_u64().unwrap()]);
    let models: Vec<String> = statements(&ai, "models").into_iter().map(|s| s.0).collect();
    assert!(models.iter().any(|m| m.starts_with("model:fraud-detector@1: registered")), "{models:?}");
    assert!(models.iter().any(|m| m.starts_with("model:fraud-detector@2: registered")), "{models:?}");
    assert!(statements(&ai, "data")
        .iter()
        .any(|d| d.0.contains("rests on dataset:transactions@2026-11, which contains personal data (")));
    let ai_pdf = path(out.path(), "ai.pdf");
    ok(&run(vec![
        "ai-act-log".into(),
        "--deployment".into(),
        "deployment:staging/fraud-detector".into(),
        "--out".into(),
        ai_pdf.clone(),
    ]));
    if let Some(text) = pdf_text(&std::fs::read(&ai_pdf).unwrap()) {
        assert!(text.contains("Record of events (Art. 12)"));
    }

    // Reproducible.
    let again = path(out.path(), "inventory2.pdf");
    ok(&run(vec!["model-inventory".into(), "--out".into(), again.clone()]));
    assert_eq!(std::fs::read(&inventory_path).unwrap(), std::fs::read(&again).unwrap());
}
crate::on_both_backends!(
    model_dossier_and_inventory_cite_their_evidence_and_find_unapproved_deployments,
    dossier_and_inventory
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_over_http_match_the_command_line_and_hold_nothing_of_other_projects() {
    let Some(app) = crate::helpers::TestApp::spawn(Backend::Sqlite).await else { return };
    let admin = govledger::client::Client::new(&app.base, &app.admin_token).unwrap();
    govledger::demo::run(&govledger::demo::Cast::mint(&admin).await.unwrap()).await.unwrap();
    let auditor = crate::helpers::client_with(&app.token("audrey", &["auditor"], &["*"]));
    let url = app.url("/api/v1/reports/model-dossier?subject=model%3Afraud-detector%402");
    let response = auditor.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    let served = response.bytes().await.unwrap().to_vec();
    // The command line, on the same ledger state, writes the same bytes.
    let out = tempfile::tempdir().unwrap();
    let file = path(out.path(), "d.pdf");
    let mut args =
        vec!["report".to_owned(), "model-dossier".into(), "--subject".into(), "model:fraud-detector@2".into()];
    args.extend(["-o".to_owned(), file.clone()]);
    args.extend(app.db().cli_args());
    ok(&Command::new(env!("CARGO_BIN_EXE_govledger"))
        .args(&args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap());
    assert_eq!(std::fs::read(&file).unwrap(), served);
    let json: Value = auditor.get(format!("{url}&format=json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(json["report"], "model-dossier");

    // A second project, whose names must not reach fraud's readers.
    for event in [
        json!({"kind": "dataset.registered", "subject": "dataset:bureau-files", "project": "credit",
               "attributes": {"owner": "zoltan-secret-owner"}}),
        json!({"kind": "dataset.version_created", "subject": "dataset:bureau-files@2026-09", "project": "credit"}),
        json!({"kind": "dataset.classified", "subject": "dataset:bureau-files", "project": "credit",
               "attributes": {"contains_personal_data": true, "legal_basis": "contract", "retention": "P7Y"}}),
        json!({"kind": "run.started", "subject": "run:credit-train-1", "project": "credit",
               "inputs": ["dataset:bureau-files@2026-09"]}),
        json!({"kind": "run.completed", "subject": "run:credit-train-1", "project": "credit",
               "outputs": ["model:credit-scorer@1"]}),
        json!({"kind": "model.registered", "subject": "model:credit-scorer@1", "project": "credit",
               "inputs": ["run:credit-train-1"], "attributes": {"owner": "zoltan-secret-owner"}}),
    ] {
        app.append_json(&event).await;
    }
    let pdf_of = |response: reqwest::Response| async move {
        assert_eq!(response.status(), 200);
        pdf_text(&response.bytes().await.unwrap())
    };
    let everyone = pdf_of(auditor.get(app.url("/api/v1/reports/model-inventory")).send().await.unwrap()).await;
    if let Some(text) = &everyone {
        assert!(text.contains("credit-scorer") && text.contains("fraud-detector"), "{text}");
    }
    let limited = crate::helpers::client_with(&app.token("fran", &["auditor"], &["fraud"]));
    let narrowed = [
        (&limited, "/api/v1/reports/model-inventory"),
        (&auditor, "/api/v1/reports/model-inventory?project=fraud"),
        (&limited, "/api/v1/reports/audit-trail"),
        (&auditor, "/api/v1/reports/audit-trail?project=fraud"),
        (&limited, "/api/v1/reports/model-dossier?subject=model%3Afraud-detector%402"),
        (&limited, "/api/v1/reports/gdpr-processing?project=fraud"),
        (&limited, "/api/v1/reports/gdpr-processing?subject=dataset%3Atransactions"),
        (&limited, "/api/v1/reports/ai-act-log?subject=deployment%3Aproduction%2Ffraud-detector"),
    ];
    for (client, path_and_query) in narrowed {
        let separator = if path_and_query.contains('?') { '&' } else { '?' };
        let response = client.get(app.url(&format!("{path_and_query}{separator}format=json"))).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path_and_query}");
        let json: Value = response.json().await.unwrap();
        let text = json.to_string();
        assert!(text.contains("fraud-detector"), "{path_and_query}: {text}");
        for secret in ["credit", "bureau-files", "zoltan-secret-owner"] {
            assert!(!text.contains(secret), "{path_and_query} shows {secret}: {text}");
        }
        if let Some(text) = pdf_of(client.get(app.url(path_and_query)).send().await.unwrap()).await {
            assert!(text.contains("fraud-detector"), "{path_and_query}");
            for secret in ["credit", "bureau-files", "zoltan-secret-owner"] {
                assert!(!text.contains(secret), "{path_and_query} PDF shows {secret}");
            }
        }
    }
    // Another project's subjects read as unknown (404, as for a subject that
    // does not exist), and its project is refused the same way.
    for path_and_query in [
        "/api/v1/reports/model-dossier?subject=model%3Acredit-scorer%401",
        "/api/v1/reports/gdpr-processing?subject=dataset%3Abureau-files",
        "/api/v1/reports/gdpr-processing?project=credit",
        "/api/v1/reports/model-inventory?project=credit",
    ] {
        let response = limited.get(app.url(path_and_query)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path_and_query}");
        let body = response.json::<Value>().await.unwrap();
        assert!(!body["message"].as_str().unwrap().contains("zoltan"), "{body}");
    }
    let viewer = crate::helpers::client_with(&app.token("vic", &["viewer"], &["fraud"]));
    let refused = viewer.get(app.url("/api/v1/reports/model-inventory")).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(refused.json::<Value>().await.unwrap()["error"], "forbidden");
    // The full auditor's dossier of the credit model does exist.
    let credit = auditor
        .get(app.url("/api/v1/reports/model-dossier?subject=model%3Acredit-scorer%401&format=json"))
        .send()
        .await
        .unwrap();
    assert_eq!(credit.status(), 200);
    for (path_and_query, status) in [
        ("/api/v1/reports/nope", 404),
        ("/api/v1/reports/model-dossier", 422),
        ("/api/v1/reports/model-dossier?subject=model%3Anope%401", 404),
        ("/api/v1/reports/audit-trail?format=docx", 422),
        ("/api/v1/reports/audit-trail?from=yesterday", 422),
    ] {
        let response = auditor.get(app.url(path_and_query)).send().await.unwrap();
        assert_eq!(response.status(), status, "{path_and_query}");
        assert!(response.json::<Value>().await.unwrap()["error"].is_string());
    }
}

/// A CSV export opened in a spreadsheet runs nothing: a cell the record
/// fills with a formula (here, an actor's name) is neutralized, and the
/// file parses back as the rows cited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_exports_neutralize_formulas_for_spreadsheets() {
    let Some(app) = crate::helpers::TestApp::spawn(Backend::Sqlite).await else { return };
    let formula = "=HYPERLINK(\"http://evil.example/\",\"open\")";
    for (i, sub) in [formula, "+cmd", "@SUM(A1)", "-2+3"].into_iter().enumerate() {
        let writer = crate::helpers::client_with(&app.token(sub, &["data_scientist"], &["*"]));
        let response = writer
            .post(app.url("/api/v1/events"))
            .json(&serde_json::json!({"kind": "dataset.version_created", "subject": format!("dataset:x{i}@1"),
                                      "project": "credit", "attributes": {"description": "=1+1"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{sub}");
    }
    let csv = app.get("/api/v1/reports/audit-trail?format=csv").await.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let actor = headers.iter().position(|h| h == "actor").unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let actors: Vec<&str> = rows.iter().map(|r| &r[actor]).collect();
    for cell in rows.iter().flat_map(|r| r.iter()) {
        assert!(!cell.starts_with(['=', '+', '-', '@', '\t', '\r']), "a live formula cell: {cell:?}");
    }
    assert!(actors.contains(&format!("'{formula}").as_str()), "{actors:?}");
    assert!(actors.contains(&"'-2+3") && actors.contains(&"'+cmd") && actors.contains(&"'@SUM(A1)"), "{actors:?}");
    // The JSON export keeps the record's text exactly.
    let json = app.get("/api/v1/reports/audit-trail?format=json").await.text().await.unwrap();
    assert!(json.contains("=HYPERLINK(\\\"http://evil.example/\\\""), "{}", &json[..json.len().min(400)]);
}

/// Titles, headings and statements wrap by the glyphs' widths: a dossier of
/// a model with a 200-character name keeps that text between the margins,
/// read from the PDF's own word boxes (`pdftotext -bbox`). The citation
/// tables (7 pt) are not yet laid out as tables and are left out of the check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_names_wrap_within_the_margins() {
    let Some(app) = crate::helpers::TestApp::spawn(Backend::Sqlite).await else { return };
    let name = format!("{}{}", "W".repeat(100), "m".repeat(100));
    let model = format!("model:{name}@1");
    app.post_events(&json!({"events": [
        {"kind": "run.completed", "subject": "run:train-long", "project": "credit", "outputs": [model]},
        {"kind": "model.registered", "subject": model, "project": "credit", "inputs": ["run:train-long"]},
    ]}))
    .await;
    let pdf = app.get(&format!("/api/v1/reports/model-dossier?subject={model}")).await.bytes().await.unwrap();
    let Some(text) = pdf_text(&pdf) else { return };
    assert!(text.contains(&"W".repeat(20)), "the name is in the text");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("d.pdf");
    std::fs::write(&file, &pdf).unwrap();
    let bbox = Command::new("pdftotext").args(["-bbox", "-enc", "UTF-8"]).arg(&file).arg("-").output().unwrap();
    let html = String::from_utf8(bbox.stdout).unwrap();
    // A4 is 595.3 pt wide with 20 mm (56.7 pt) margins.
    let (left, right) = (56.0, 595.3 - 56.0);
    let number = |word: &str, attribute: &str| -> f32 {
        let at = word.find(&format!("{attribute}=\"")).unwrap() + attribute.len() + 2;
        word[at..].split('"').next().unwrap().parse().unwrap()
    };
    let mut checked = 0;
    for word in html.split("<word ").skip(1) {
        let (x_min, x_max) = (number(word, "xMin"), number(word, "xMax"));
        let height = number(word, "yMax") - number(word, "yMin");
        if height < 8.5 {
            continue;
        }
        checked += 1;
        let content = word.split('>').nth(1).unwrap_or_default().split('<').next().unwrap_or_default();
        assert!(x_min >= left - 0.5 && x_max <= right + 0.5, "{content:?} runs from {x_min} to {x_max} pt");
    }
    assert!(checked > 20, "{checked} words checked");
}

/// Whether the fallback fonts for CJK are installed; outside CI, a reason
/// when they are not.
fn fallback_fonts_installed() -> bool {
    let fonts = govledger::reports::pdf::FALLBACK_FONTS;
    if Path::new(fonts[0]).is_file() && Path::new(fonts[2]).is_file() {
        return true;
    }
    let why = "CJK in reports needs the fallback fonts (apt-get install fonts-droid-fallback fonts-nanum)";
    if crate::helpers::in_ci() {
        panic!("CI must check it, but {why}");
    }
    eprintln!("SKIPPED: {why}");
    false
}

/// Latin, Greek, Cyrillic, Chinese, Japanese, Korean, and an emoji no
/// installed font has.
const SCRIPTS: &str = "Latin Ελληνικά Кириллица 中文说明：仅供内部使用。 日本語のテキスト 한국어 텍스트 😀";

#[tokio::test]
async fn every_script_is_in_the_text_and_what_no_font_has_is_replaced_and_reported() {
    if !fallback_fonts_installed() {
        return;
    }
    let Some(app) = crate::helpers::TestApp::spawn(Backend::Sqlite).await else { return };
    let register = |model: &str, intended_use: &str| {
        json!({"events": [
            {"kind": "run.completed", "subject": format!("run:{}", model.replace([':', '@'], "-")), "project": "credit",
             "outputs": [model]},
            {"kind": "model.registered", "subject": model, "project": "credit",
             "inputs": [format!("run:{}", model.replace([':', '@'], "-"))]},
            {"kind": "model.explained", "subject": model, "project": "credit",
             "attributes": {"method": "shap", "intended_use": intended_use}},
        ]})
    };
    // Entity names are ASCII; people's names and free text are not.
    let wang = crate::helpers::client_with(&app.token("王芳", &["data_scientist"], &["*"]));
    for body in [register("model:risk@1", SCRIPTS), register("model:plain@1", &"Latin only, and as long.".repeat(3))] {
        let response = wang.post(app.url("/api/v1/events")).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    }
    app.append_json(&json!({"kind": "deployment.succeeded", "subject": "deployment:staging/risk", "project": "credit",
                            "attributes": {"model": "model:risk@1"}}))
        .await;

    for (kind, query) in [
        ("model-dossier", "subject=model:risk@1"),
        ("ai-act-log", "subject=deployment:staging/risk"),
        ("audit-trail", "project=credit"),
        ("model-inventory", "project=credit"),
    ] {
        let response = app.get(&format!("/api/v1/reports/{kind}?{query}")).await;
        let status = response.status();
        assert_eq!(
            status,
            200,
            "{kind}: {}",
            if status == 200 { String::new() } else { response.text().await.unwrap() }
        );
        let response = app.get(&format!("/api/v1/reports/{kind}?{query}")).await;
        let pdf = response.bytes().await.unwrap();
        let Some(text) = pdf_text(&pdf) else { return };
        let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(text.contains("王芳"), "{kind}: the actor's Chinese name is in the text");
        let free_text = matches!(kind, "model-dossier" | "ai-act-log");
        if free_text {
            for word in ["Ελληνικά", "Кириллица", "中文说明", "仅供内部使用", "日本語のテキスト", "한국어", "\u{fffd}"]
            {
                assert!(text.contains(word), "{kind}: {word:?} is missing from the text:\n{text}");
            }
            assert!(text.contains("Warning: no font covers U+1F600"), "{kind}: the PDF says what it replaced");
        }
        let json: Value = app.get(&format!("/api/v1/reports/{kind}?{query}&format=json")).await.json().await.unwrap();
        let warnings = json["warnings"].as_array().map(Vec::len).unwrap_or(0);
        assert_eq!(warnings, usize::from(free_text), "{kind}: {}", json["warnings"]);
    }
    // Only the glyphs used are embedded: CJK costs kilobytes, not the font's megabytes.
    let size = |subject: &'static str| {
        let url = app.url(&format!("/api/v1/reports/model-dossier?subject={subject}"));
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap().bytes().await.unwrap().len() }
    };
    let (cjk, plain) = (size("model:risk@1").await, size("model:plain@1").await);
    assert!(cjk < plain + 300 * 1024, "the CJK dossier is {cjk} bytes, the plain one {plain}");
    let json: Value =
        app.get("/api/v1/reports/model-dossier?subject=model:plain@1&format=json").await.json().await.unwrap();
    assert!(json.get("warnings").is_none(), "nothing to warn of in a Latin report");
}

#[tokio::test]
async fn the_audit_trail_is_a_table_whose_cells_stay_in_their_columns_and_whose_header_repeats() {
    let Some(app) = crate::helpers::TestApp::spawn(Backend::Sqlite).await else { return };
    let long = format!("dataset:{}", "segment-".repeat(24));
    let actor = format!("oidc:https://login.example.com/realms/{}|00u1dana", "bank".repeat(8));
    let writer = crate::helpers::client_with(&app.token(&actor, &["data_scientist"], &["*"]));
    let events: Vec<Value> = (0..150)
        .map(|i| json!({"kind": "dataset.registered", "subject": format!("{long}{i}"), "project": "credit"}))
        .collect();
    let response = writer.post(app.url("/api/v1/events")).json(&json!({"events": events})).send().await.unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let pdf = app.get("/api/v1/reports/audit-trail?project=credit").await.bytes().await.unwrap();
    let Some(text) = pdf_text(&pdf) else { return };
    assert!(text.contains("segment-segment"), "the long subjects are in the text");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.pdf");
    std::fs::write(&file, &pdf).unwrap();
    let bbox = Command::new("pdftotext").args(["-bbox", "-enc", "UTF-8"]).arg(&file).arg("-").output().unwrap();
    let html = String::from_utf8(bbox.stdout).unwrap();
    let number = |word: &str, attribute: &str| -> f32 {
        let at = word.find(&format!("{attribute}=\"")).unwrap() + attribute.len() + 2;
        word[at..].split('"').next().unwrap().parse().unwrap()
    };
    // Column edges (mm from the left margin, 20 mm) in points.
    let edges: Vec<f32> = [12.0f32, 50.5, 89.5, 133.5].iter().map(|mm| (20.0 + mm) * 72.0 / 25.4).collect();
    let mut headers = 0;
    let mut cells = 0;
    for page in html.split("<page ").skip(1) {
        for word in page.split("<word ").skip(1) {
            let content = word.split('>').nth(1).unwrap_or_default().split('<').next().unwrap_or_default();
            let (x_min, x_max) = (number(word, "xMin"), number(word, "xMax"));
            if content == "recorded_at" {
                headers += 1;
            }
            // pdftotext's boxes are the font's (about 2.4 times the size):
            // table text is 6.5 pt, so about 15.6 pt high, the hash notes
            // (6 pt) and everything else out of that band.
            let height = number(word, "yMax") - number(word, "yMin");
            if !(15.0..16.3).contains(&height) {
                continue;
            }
            cells += 1;
            for edge in &edges {
                assert!(
                    !(x_min < edge - 0.5 && x_max > edge + 0.5),
                    "{content:?} ({x_min}..{x_max} pt) crosses the column edge at {edge} pt"
                );
            }
        }
    }
    assert!(cells > 600, "{cells} cell words checked");
    assert!(headers >= 3, "the header row is repeated on every page of the table ({headers} seen)");
}

/// What PDF/A-2b asks of a file's structure, checked one requirement at a
/// time (veraPDF, the reference validator, is a Java download outside the
/// package registries this machine reaches). `title` and `created` are what
/// the metadata must say.
pub(crate) fn assert_pdf_a_2b(pdf: &[u8], title: &str, created: &str, what: &str) {
    use printpdf::lopdf::{Document, Object};
    // 6.1.2: header, then a comment of four bytes above 127.
    assert!(pdf.starts_with(b"%PDF-1.") && (b'0'..=b'7').contains(&pdf[7]), "{what}: header");
    let second = pdf[9..].split(|b| *b == b'\n').next().unwrap();
    assert!(
        second.first() == Some(&b'%') && second.iter().filter(|b| **b > 127).count() >= 4,
        "{what}: binary comment"
    );
    let doc = Document::load_mem(pdf).unwrap();
    // 6.1.3: an /ID, no encryption.
    let id = doc.trailer.get(b"ID").and_then(Object::as_array).expect("an /ID");
    assert_eq!(id.len(), 2, "{what}");
    assert!(doc.trailer.get(b"Encrypt").is_err(), "{what}: not encrypted");
    let catalog = doc.catalog().unwrap();
    // 6.6.2: an XMP packet, unfiltered, naming PDF/A-2b, agreeing with the information dictionary.
    let metadata = doc.get_object(catalog.get(b"Metadata").unwrap().as_reference().unwrap()).unwrap();
    let Object::Stream(metadata) = metadata else { panic!("{what}: metadata is a stream") };
    assert!(metadata.dict.get(b"Filter").is_err(), "{what}: the XMP packet is not filtered");
    assert_eq!(metadata.dict.get(b"Subtype").unwrap().as_name_str().unwrap(), "XML");
    let xmp = String::from_utf8(metadata.content.clone()).unwrap();
    assert!(xmp.starts_with("<?xpacket begin=\"\u{feff}\""), "{what}: an XMP packet");
    assert!(xmp.contains("<pdfaid:part>2</pdfaid:part>") && xmp.contains("<pdfaid:conformance>B</pdfaid:conformance>"));
    let between = |open: &str, close: &str| -> String {
        let at = xmp.find(open).unwrap_or_else(|| panic!("{what}: {open} in the XMP")) + open.len();
        xmp[at..].split(close).next().unwrap().to_owned()
    };
    let escaped = title
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;");
    assert_eq!(between("<dc:title><rdf:Alt><rdf:li xml:lang=\"x-default\">", "<"), escaped, "{what}: dc:title");
    let date = format!("{}Z", &created[..19]);
    assert_eq!(between("<xmp:CreateDate>", "<"), date, "{what}: the checkpoint's time");
    let info = doc.get_dictionary(doc.trailer.get(b"Info").unwrap().as_reference().unwrap()).unwrap();
    let text = |key: &[u8]| -> String {
        let bytes = info.get(key).unwrap().as_str().unwrap();
        if let [0xfe, 0xff, rest @ ..] = bytes {
            let units: Vec<u16> = rest.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            String::from_utf16(&units).unwrap()
        } else {
            String::from_utf8(bytes.to_vec()).unwrap()
        }
    };
    assert_eq!(text(b"Title"), title, "{what}: Info /Title = dc:title");
    assert_eq!(text(b"Author"), between("<dc:creator><rdf:Seq><rdf:li>", "<"), "{what}: Author = dc:creator");
    assert_eq!(text(b"Producer"), between("<pdf:Producer>", "<"), "{what}");
    let compact: String = date.chars().filter(char::is_ascii_digit).collect();
    assert_eq!(text(b"CreationDate"), format!("D:{compact}Z"), "{what}: CreationDate = xmp:CreateDate");
    assert_eq!(text(b"ModDate"), format!("D:{compact}Z"), "{what}");
    for key in [&b"Trapped"[..], b"GTS_PDFXVersion", b"Keywords"] {
        assert!(info.get(key).is_err(), "{what}: {} has no XMP counterpart here", String::from_utf8_lossy(key));
    }
    // 6.2.3: an sRGB output intent for the DeviceRGB/DeviceGray drawing.
    let intents = catalog.get(b"OutputIntents").unwrap().as_array().unwrap();
    let intent = match &intents[0] {
        Object::Dictionary(d) => d,
        other => doc.get_dictionary(other.as_reference().unwrap()).unwrap(),
    };
    assert_eq!(intent.get(b"S").unwrap().as_name_str().unwrap(), "GTS_PDFA1", "{what}");
    let Object::Stream(profile) =
        doc.get_object(intent.get(b"DestOutputProfile").unwrap().as_reference().unwrap()).unwrap()
    else {
        panic!("{what}: the profile is a stream")
    };
    assert_eq!(profile.dict.get(b"N").unwrap().as_i64().unwrap(), 3);
    let icc = profile.decompressed_content().unwrap_or_else(|_| profile.content.clone());
    assert!(
        &icc[36..40] == b"acsp" && &icc[16..20] == b"RGB " && icc[8] < 5,
        "{what}: an RGB ICC profile, version < 5"
    );
    // 6.9: optional content configurations are named.
    if let Ok(properties) = catalog.get(b"OCProperties").and_then(Object::as_dict) {
        let default = properties.get(b"D").unwrap().as_dict().unwrap();
        assert!(default.get(b"Name").is_ok() && default.get(b"AS").is_err(), "{what}: named layer configuration");
    }
    for (number, object) in &doc.objects {
        let dict = match object {
            Object::Dictionary(d) => d,
            Object::Stream(s) => &s.dict,
            _ => continue,
        };
        let name = |key: &[u8]| dict.get(key).and_then(Object::as_name_str).ok();
        // 6.2.11: every font embedded; TrueType CID fonts map CIDs to glyphs.
        if name(b"Type") == Some("FontDescriptor") {
            assert!(
                dict.get(b"FontFile2").is_ok() || dict.get(b"FontFile").is_ok() || dict.get(b"FontFile3").is_ok(),
                "{what}: font descriptor {number:?} has its font embedded"
            );
        }
        if name(b"Subtype") == Some("CIDFontType2") {
            assert!(dict.get(b"CIDToGIDMap").is_ok(), "{what}: CIDFontType2 {number:?} has a CIDToGIDMap");
        }
        if name(b"Type") == Some("Font") && name(b"Subtype") == Some("Type1") {
            panic!("{what}: {number:?} is an unembedded standard font");
        }
        // 6.4: no transparency; 6.6.1: no actions, no JavaScript; 6.1.7: no LZW.
        assert!(dict.get(b"SMask").map_or(true, |m| m.as_name_str().is_ok_and(|n| n == "None")), "{what}: soft mask");
        for key in [&b"CA"[..], b"ca"] {
            assert!(dict.get(key).map_or(true, |v| v.as_float().is_ok_and(|f| f >= 1.0)), "{what}: transparency");
        }
        if let Ok(group) = dict.get(b"Group").and_then(Object::as_dict) {
            assert_ne!(group.get(b"S").and_then(Object::as_name_str).ok(), Some("Transparency"), "{what}");
        }
        for key in [&b"JS"[..], b"JavaScript", b"AA", b"EmbeddedFiles", b"Launch"] {
            assert!(dict.get(key).is_err(), "{what}: {} in {number:?}", String::from_utf8_lossy(key));
        }
        assert_ne!(name(b"Filter"), Some("LZWDecode"), "{what}");
    }
    // 6.2.4.3: device colour only in the output intent's space (RGB): no CMYK operators.
    for page in doc.get_pages().values() {
        let content = doc.get_page_content(*page).unwrap();
        let ops = printpdf::lopdf::content::Content::decode(&content).unwrap().operations;
        assert!(
            ops.iter().all(|o| o.operator != "k" && o.operator != "K"),
            "{what}: CMYK colour without a CMYK intent"
        );
    }
}

/// Latin, Greek, Cyrillic, Chinese, Japanese, Korean, Arabic, Hebrew and
/// an emoji no installed font has.
const ALL_SCRIPTS: &str =
    "Latin Ελληνικά Кириллица 中文说明：仅供内部使用。 日本語のテキスト 한국어 텍스트 النموذج للاستخدام الداخلي עברית בלבד 😀";

#[tokio::test]
async fn every_report_type_is_archival_reproducible_and_holds_every_script_and_long_name() {
    use unicode_normalization::UnicodeNormalization;
    if !fallback_fonts_installed() {
        return;
    }
    let Some(app) = crate::helpers::TestApp::spawn(Backend::Sqlite).await else { return };
    let long = format!("{}{}", "W".repeat(100), "m".repeat(100));
    let (unversioned, model, run) = (format!("dataset:{long}"), format!("model:{long}@1"), format!("run:{long}"));
    let dataset = format!("{unversioned}@1");
    let deployment = format!("deployment:staging/{}", "w".repeat(150));
    let wang = crate::helpers::client_with(&app.token("王芳", &["data_scientist"], &["*"]));
    let body = json!({"events": [
        {"kind": "dataset.registered", "subject": unversioned, "project": "credit"},
        {"kind": "dataset.classified", "subject": unversioned, "project": "credit",
         "attributes": {"contains_personal_data": true, "personal_data_categories": ["email"],
                        "legal_basis": "contract", "retention": "P7Y", "purpose": ALL_SCRIPTS}},
        {"kind": "dataset.version_created", "subject": dataset, "project": "credit"},
        {"kind": "run.completed", "subject": run, "project": "credit", "inputs": [dataset], "outputs": [model]},
        {"kind": "model.registered", "subject": model, "project": "credit", "inputs": [run]},
        {"kind": "model.explained", "subject": model, "project": "credit",
         "attributes": {"method": "shap", "intended_use": ALL_SCRIPTS}},
        {"kind": "model.evaluated", "subject": model, "project": "credit", "inputs": [dataset],
         "attributes": {"metrics": {"auc": 0.93}, "thresholds": {"auc": 0.9}, "passed": true}},
    ]});
    let response = wang.post(app.url("/api/v1/events")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    // 24 more inputs of the run: more than a column of the diagram holds.
    let features: Vec<Value> = (0..24)
        .flat_map(|i| {
            let feature = format!("dataset:feature-{i:02}@1");
            [
                json!({"kind": "dataset.version_created", "subject": feature, "project": "credit"}),
                json!({"kind": "run.started", "subject": run, "project": "credit", "inputs": [feature]}),
            ]
        })
        .collect();
    let response = wang.post(app.url("/api/v1/events")).json(&json!({"events": features})).send().await.unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    app.append_json(&json!({"kind": "deployment.succeeded", "subject": deployment, "project": "credit",
                            "attributes": {"model": model}}))
        .await;

    let queries = [
        ("model-dossier", format!("subject={model}"), true),
        ("ai-act-log", format!("subject={deployment}"), true),
        ("gdpr-processing", format!("subject={dataset}"), true),
        ("audit-trail", "project=credit".to_owned(), false),
        ("model-inventory", "project=credit".to_owned(), false),
    ];
    for (kind, query, free_text) in queries {
        let response = app.get(&format!("/api/v1/reports/{kind}?{query}")).await;
        assert_eq!(response.status(), 200, "{kind}");
        let pdf = response.bytes().await.unwrap();
        let again = app.get(&format!("/api/v1/reports/{kind}?{query}")).await.bytes().await.unwrap();
        assert!(pdf == again, "{kind}: regenerating gives the same bytes");
        let json: Value = app.get(&format!("/api/v1/reports/{kind}?{query}&format=json")).await.json().await.unwrap();
        assert_pdf_a_2b(&pdf, json["title"].as_str().unwrap(), json["as_of"].as_str().unwrap(), kind);
        let Some(text) = pdf_text(&pdf) else { return };
        // Presentation forms (how Arabic is drawn) read back as the letters.
        let text: String = text.nfkc().collect::<String>().split_whitespace().collect::<Vec<_>>().join(" ");
        if free_text {
            for word in ["Ελληνικά", "Кириллица", "中文说明", "仅供内部使用", "日本語のテキスト", "한국어", "\u{fffd}"]
            {
                assert!(text.contains(word), "{kind}: {word:?} is missing from the text:\n{text}");
            }
            // Right to left: pdftotext gives the words in logical order, or as drawn.
            for word in ["النموذج", "للاستخدام", "الداخلي", "עברית", "בלבד"] {
                let drawn: String = word.chars().rev().collect();
                assert!(text.contains(word) || text.contains(&drawn), "{kind}: {word:?} is missing:\n{text}");
            }
            assert!(text.contains("Warning: no font covers U+1F600"), "{kind}: the PDF says what it replaced");
        }
        // Nothing lost: the 200-character name is drawn in full at least once.
        assert!(text.matches('W').count() >= 100, "{kind}: the long name is cut:\n{text}");
        assert!(json.to_string().contains(&long), "{kind}: the JSON holds the full name");
        assert_within_margins(&pdf, kind);
        if kind == "model-dossier" {
            // 25 datasets in one column: nine drawn, the rest summarized, and the JSON says which.
            let diagram = json["sections"].as_array().unwrap().iter().find_map(|s| s.get("diagram")).unwrap();
            let summarized = diagram["summarized"]["+16 more datasets"].as_array().unwrap();
            assert_eq!(summarized.len(), 16, "{diagram}");
            assert!(text.contains("+16 more datasets"), "the summary box is drawn");
        }
        if kind == "model-inventory" {
            assert_table_columns(&pdf, "owner", &[35.0, 53.0, 65.0, 95.0, 137.0, 158.0]);
        }
    }
}

/// A word as `pdftotext -bbox` places it, in points from the top left.
struct Word {
    page: usize,
    text: String,
    x_min: f32,
    x_max: f32,
    y_min: f32,
    y_max: f32,
}

/// Every word of `pdf`, with its box.
fn words_of(pdf: &[u8]) -> Vec<Word> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("w.pdf");
    std::fs::write(&file, pdf).unwrap();
    let bbox = Command::new("pdftotext").args(["-bbox", "-enc", "UTF-8"]).arg(&file).arg("-").output().unwrap();
    let html = String::from_utf8(bbox.stdout).unwrap();
    let number = |word: &str, attribute: &str| -> f32 {
        let at = word.find(&format!("{attribute}=\"")).unwrap() + attribute.len() + 2;
        word[at..].split('"').next().unwrap().parse().unwrap()
    };
    let mut words = Vec::new();
    for (page, html) in html.split("<page ").skip(1).enumerate() {
        for word in html.split("<word ").skip(1) {
            words.push(Word {
                page: page + 1,
                text: word.split('>').nth(1).unwrap_or_default().split('<').next().unwrap_or_default().to_owned(),
                x_min: number(word, "xMin"),
                x_max: number(word, "xMax"),
                y_min: number(word, "yMin"),
                y_max: number(word, "yMax"),
            });
        }
    }
    words
}

/// No word of the table on page 1 whose header holds `header_word`
/// crosses the edges of its columns (mm from the left margin). Table text
/// is 7 pt, which pdftotext boxes about 16.7 pt high.
fn assert_table_columns(pdf: &[u8], header_word: &str, edges_mm: &[f32]) {
    let edges: Vec<f32> = edges_mm.iter().map(|mm| (20.0 + mm) * 72.0 / 25.4).collect();
    let words: Vec<Word> = words_of(pdf).into_iter().filter(|w| w.page == 1).collect();
    let top = words.iter().find(|w| w.text == header_word).map(|w| w.y_min).expect("the table's header");
    // The table ends at the next heading (larger text).
    let bottom =
        words.iter().filter(|w| w.y_min > top && w.y_max - w.y_min > 25.0).map(|w| w.y_min).fold(f32::MAX, f32::min);
    let mut cells = 0;
    for word in words.iter().filter(|w| (top..bottom).contains(&w.y_min) && (16.3..17.1).contains(&(w.y_max - w.y_min)))
    {
        cells += 1;
        for edge in &edges {
            assert!(
                !(word.x_min < edge - 0.5 && word.x_max > edge + 0.5),
                "{:?} ({}..{} pt) crosses the column edge at {edge} pt",
                word.text,
                word.x_min,
                word.x_max
            );
        }
    }
    assert!(cells >= 20, "{cells} cell words checked");
}

/// No word of `pdf` crosses the 20 mm margins of an A4 page.
fn assert_within_margins(pdf: &[u8], what: &str) {
    let (left, right) = (56.0, 595.3 - 56.0);
    let words = words_of(pdf);
    for w in &words {
        assert!(
            w.x_min >= left - 0.5 && w.x_max <= right + 0.5,
            "{what}: {:?} runs from {} to {} pt on page {}",
            w.text,
            w.x_min,
            w.x_max,
            w.page
        );
    }
    assert!(words.len() > 50, "{what}: {} words checked", words.len());
}
