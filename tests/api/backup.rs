//! `govledger backup` while the server appends, `govledger restore`, and the
//! restored ledger verifying against its checkpoints; no subject key in the
//! backup; damaged backups and occupied targets refused.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use govledger::store::{DbConn, StorageTarget};
use serde_json::{json, Value};

use crate::helpers::{client_with, mint, Backend, Server, TestApp, TestDatabase};

fn govledger(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_govledger")).args(args).output().expect("run govledger")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn files_under(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| (e.path().display().to_string(), std::fs::read(e.path()).unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_during_writes_restores_and_verifies() {
    let Some(db) = TestDatabase::create(Backend::Sqlite) else { return };
    let secrets = tempfile::tempdir().unwrap();
    let master_file = secrets.path().join("master.key");
    std::fs::write(&master_file, "11".repeat(32)).unwrap();
    let master_arg = master_file.display().to_string();
    let server = Server::start(&db, &["--checkpoint-interval", "1", "--master-key-file", &master_arg]);
    let token = mint(db.dir.path(), "backup-test", &["admin"], &["*"]);
    let app = TestApp::attach(&server.1, &token);
    let personal = app
        .append_json(&json!({"kind": "customer.contacted", "subject": "model:churn@1", "project": "crm",
            "personal": {"subject_ids": ["customer-77"], "fields": {"note": "asked about her loan"}}}))
        .await;
    assert_eq!(personal["personal"]["fields"]["note"], "asked about her loan");

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (base, client, stop) = (server.1.clone(), client_with(&token), stop.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let body = json!({"kind": "run.updated", "subject": format!("run:backup-{w}-{n}")});
                    let response = client.post(format!("{base}/api/v1/events")).json(&body).send().await.unwrap();
                    assert_eq!(response.status(), 201);
                    n += 1;
                }
                n
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A checkpoint before the snapshot for certain (the interval may not have come round on a busy machine).
    assert_eq!(app.get("/api/v1/checkpoint").await.status(), 200);

    let backup_dir = tempfile::tempdir().unwrap();
    let dir = backup_dir.path().join("monday");
    let live = db.dir.path().display().to_string();
    let dir_arg = dir.display().to_string();
    let made = {
        let (live, dir_arg) = (live.clone(), dir_arg.clone());
        tokio::task::spawn_blocking(move || govledger(&["backup", &dir_arg, "--data-dir", &live])).await.unwrap()
    };
    assert!(made.status.success(), "{}", text(&made));
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let written: u64 = futures_sum(writers).await;
    assert!(written > 0);
    let live_size = app.size().await;

    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let size = manifest["size"].as_u64().unwrap();
    assert!(size > 1 && size < live_size, "the backup is a snapshot taken mid-load: {size} of {live_size}");
    assert!(manifest["last_checkpoint"].as_u64().is_some_and(|c| c <= size), "{manifest}");
    assert_eq!(manifest["subject_keys"], "excluded");

    // No subject key material in the backup; the live data dir has it (control).
    let live_target = db.target.clone();
    let wrapped: Vec<String> = {
        use govledger::store::schema::{subject_key_log, subject_keys};
        let mut conn = DbConn::establish(&live_target).unwrap();
        let mut folded: Vec<String> =
            govledger::with_conn!(&mut conn, |c| subject_keys::table.select(subject_keys::wrapped).load(c)).unwrap();
        let logged: Vec<String> =
            govledger::with_conn!(&mut conn, |c| subject_key_log::table.select(subject_key_log::wrapped).load(c))
                .unwrap();
        folded.extend(logged);
        folded
    };
    assert_eq!(wrapped.len(), 1);
    let everything_live: Vec<u8> = files_under(db.dir.path()).into_iter().flat_map(|(_, b)| b).collect();
    assert!(contains(&everything_live, wrapped[0].as_bytes()), "control: the live ledger holds the wrapped key");
    for (file, bytes) in files_under(&dir) {
        assert!(!contains(&bytes, wrapped[0].as_bytes()), "{file} holds a subject key");
    }

    // A backup never overwrites: the folder now has files.
    let again = govledger(&["backup", &dir_arg, "--data-dir", &live]);
    assert!(!again.status.success() && text(&again).contains("not empty"), "{}", text(&again));
    server.kill();

    // Restore into a fresh data directory: it verifies, and equals the live prefix.
    let restored = tempfile::tempdir().unwrap();
    let restored_arg = restored.path().display().to_string();
    let out = govledger(&["restore", &dir_arg, "--data-dir", &restored_arg]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("signed"), "{}", text(&out));
    let verify = govledger(&["verify", "--json", "--data-dir", &restored_arg]);
    let report: Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["verified"], size);
    assert!(report["checkpoints_verified"].as_u64() >= Some(1), "{report}");
    let hash_at = |target: &StorageTarget, seq: i64| -> Vec<u8> {
        use govledger::store::schema::events;
        let mut conn = DbConn::establish(target).unwrap();
        govledger::with_conn!(&mut conn, |c| events::table.find(seq).select(events::hash).first(c)).unwrap()
    };
    let restored_target = StorageTarget::resolve(restored.path(), None).unwrap();
    assert_eq!(hash_at(&restored_target, size as i64), hash_at(&live_target, size as i64));

    // A server on the restored ledger serves it; the personal fields are gone with the keys.
    let server = Server::start_in(restored.path(), &["--master-key-file", &master_arg]);
    let app = TestApp::attach(&server.1, &mint(restored.path(), "auditor", &["admin"], &["*"]));
    assert_eq!(app.size().await, size);
    let event = app.get_json(&format!("/api/v1/events/{}", personal["seq"])).await;
    assert_eq!(event["hash"], personal["hash"]);
    assert_eq!(event["personal"]["fields"], "[erased]");
    drop(server);

    // Bad input changes nothing: an occupied target, a damaged backup.
    let out = govledger(&["restore", &dir_arg, "--data-dir", &restored_arg]);
    assert!(!out.status.success() && text(&out).contains("exists"), "{}", text(&out));
    let mut copy = std::fs::read(dir.join("govledger.db")).unwrap();
    let middle = copy.len() / 2;
    copy[middle] ^= 0x01;
    std::fs::write(dir.join("govledger.db"), copy).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let out = govledger(&["restore", &dir_arg, "--data-dir", &fresh.path().display().to_string()]);
    assert!(!out.status.success() && text(&out).contains("does not match the manifest"), "{}", text(&out));
    assert!(!fresh.path().join("govledger.db").exists());
}

async fn futures_sum(tasks: Vec<tokio::task::JoinHandle<u64>>) -> u64 {
    let mut sum = 0;
    for t in tasks {
        sum += t.await.unwrap();
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_of_postgres_points_to_pg_dump() {
    let Some(db) = TestDatabase::create(Backend::Postgres) else { return };
    let mut args = vec!["backup".to_owned(), db.dir.path().join("b").display().to_string()];
    args.extend(db.cli_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = govledger(&args);
    assert!(!out.status.success() && text(&out).contains("pg_dump"), "{}", text(&out));
}
