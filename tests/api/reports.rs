//! Reports from the `govledger demo` ledger: reproducible PDFs read back,
//! every cited event checkable against the evidence bundle, JSON and CSV
//! carrying the same citations, and broken templates refused by line.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::helpers::{Backend, TestDatabase};
use govledger::reports::pdf::extract_text;

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
    let citations: Vec<&Value> =
        report["sections"].as_array().unwrap().iter().flat_map(|s| s["citations"].as_array().unwrap()).collect();
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
    let text = extract_text(&first).unwrap();
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
    let kinds: Vec<&str> = staging["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["citations"].as_array().unwrap())
        .map(|c| c["kind"].as_str().unwrap())
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
    let reworded =
        shipped.replace("title = \"Audit trail\"", "title = \"Model Governance Trail, reworded by compliance\"");
    std::fs::write(templates.path().join("audit-trail.toml"), reworded).unwrap();
    let dir = templates.path().display().to_string();
    let out = path(templates.path(), "r.pdf");
    ok(&govledger(&["report", "audit-trail", "--templates", &dir, "--out", &out], &db));
    let text = extract_text(&std::fs::read(&out).unwrap()).unwrap();
    assert!(text.contains("Model Governance Trail, reworded by compliance"), "{}", &text[..200]);

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
