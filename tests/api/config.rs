//! The TOML configuration file: its settings apply, `GOVLEDGER_*` variables
//! override it and flags override both; bad files stop the start with a
//! message naming the file.

use std::process::Command;

use serde_json::json;

use crate::helpers::{mint, Server, TestApp};

/// The largest batch the server at `base` accepts, probing 2..=5.
async fn largest_batch(app: &TestApp) -> usize {
    let mut largest = 0;
    for n in 2..=5 {
        let events: Vec<_> =
            (0..n).map(|i| json!({"kind": "run.updated", "subject": format!("run:c{n}-{i}")})).collect();
        match app.post_events(&json!({ "events": events })).await.status().as_u16() {
            201 => largest = n,
            422 => break,
            other => panic!("unexpected status {other}"),
        }
    }
    largest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_then_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("govledger.toml");
    std::fs::write(
        &file,
        format!(
            "# every key is a flag of `govledger serve`\nbind = \"127.0.0.1:0\"\ndata_dir = {:?}\nworkers = 2\n\
             checkpoint_interval = 0\nmax_batch_events = 2\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    let config = file.display().to_string();
    let serve = |extra: &[&str]| -> Vec<String> {
        ["--config", &config, "serve"].iter().chain(extra).map(|s| s.to_string()).collect()
    };

    let server = Server::spawn(&serve(&[]), &[]);
    assert!(data.join("govledger.db").exists(), "data_dir from the file");
    let app = TestApp::attach(&server.1, &mint(&data, "config-admin", &["admin"], &["*"]));
    assert_eq!(largest_batch(&app).await, 2, "max_batch_events from the file");
    drop(server);

    let server = Server::spawn(&serve(&[]), &[("GOVLEDGER_MAX_BATCH_EVENTS", "3")]);
    let app = TestApp::attach(&server.1, &mint(&data, "config-admin", &["admin"], &["*"]));
    assert_eq!(largest_batch(&app).await, 3, "the environment overrides the file");
    drop(server);

    let server = Server::spawn(&serve(&["--max-batch-events", "4"]), &[("GOVLEDGER_MAX_BATCH_EVENTS", "3")]);
    let app = TestApp::attach(&server.1, &mint(&data, "config-admin", &["admin"], &["*"]));
    assert_eq!(largest_batch(&app).await, 4, "a flag overrides both");
    drop(server);

    // Keys of other commands are ignored: `verify` reads data_dir and skips `bind`.
    let out = Command::new(env!("CARGO_BIN_EXE_govledger")).args(["verify", "--config", &config]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // 2, then 2 + 3, then 2 + 3 + 4 events were accepted.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("OK: 16 events verified"), "{stdout}");
}

#[test]
fn bad_configuration_files_stop_the_start_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("bogus = 1\n", "unknown key `bogus`"),
        // A per-run argument, not a setting: `erase --subject` must be typed.
        ("subject = \"customer-1\"\n", "unknown key `subject`"),
        ("max_batch_events = 0\n", "max-batch-events"),
        ("max_body_bytes = \"lots\"\n", "max-body-bytes"),
        ("bind = [1, 2\n", "govledger.toml"),
        ("rate_limit = { per_second = 3 }\n", "expected a string, number or boolean"),
    ];
    for (text, expected) in cases {
        let file = dir.path().join("govledger.toml");
        std::fs::write(&file, text).unwrap();
        let data = dir.path().join("data");
        let out = Command::new(env!("CARGO_BIN_EXE_govledger"))
            .args(["serve", "--bind", "127.0.0.1:0", "--config"])
            .arg(&file)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text:?} was accepted");
        assert!(stderr.contains(expected) && stderr.contains("govledger.toml"), "{text:?}: {stderr}");
        assert!(!data.join("govledger.db").exists(), "{text:?}: a ledger was created");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_govledger"))
        .args(["serve", "--config"])
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("cannot read the configuration file")
    );
}

#[test]
fn every_setting_of_serve_is_documented() {
    let help = Command::new(env!("CARGO_BIN_EXE_govledger")).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/CONFIG.md")).unwrap();
    let flags: Vec<&str> = help
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|f| !["help", "config"].contains(f))
        .collect();
    assert!(flags.len() > 20, "{help}");
    for flag in flags {
        let key = format!("| `{}` |", flag.replace('-', "_"));
        assert!(docs.contains(&key), "docs/CONFIG.md does not describe `{flag}`");
    }
}

/// `govledger --help` is the first thing an operator reads: every command
/// has its own one-line description (a misplaced doc comment once gave
/// `verify` none and `backup` the description of both).
#[test]
fn every_command_has_its_own_description() {
    let help = Command::new(env!("CARGO_BIN_EXE_govledger")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let commands: Vec<(&str, &str)> = help
        .split("Commands:")
        .nth(1)
        .and_then(|rest| rest.split("Options:").next())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().split_once(' ').or(Some((l.trim(), ""))))
        .filter(|(name, _)| !name.is_empty())
        .map(|(name, text)| (name, text.trim()))
        .collect();
    assert!(commands.iter().any(|(n, _)| *n == "verify"), "{help}");
    for (name, text) in &commands {
        assert!(!text.is_empty(), "`{name}` has no description:\n{help}");
    }
    let backup = commands.iter().find(|(n, _)| *n == "backup").unwrap().1;
    assert!(backup.starts_with("Consistent online copy"), "{backup}");
    let verify = commands.iter().find(|(n, _)| *n == "verify").unwrap().1;
    assert!(verify.starts_with("Recompute the whole chain"), "{verify}");
}
