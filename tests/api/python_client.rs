//! The Python client's own suite (clients/python/tests, pytest) against the
//! server binary of this build: the client, its independent verifier, the
//! `govledger-py` script, and the MLflow bridge against a real MLflow. On the
//! machine's `python3` (with MLflow), and on each interpreter named in
//! GOVLEDGER_TEST_PYTHONS (`.ci/run` names the oldest and newest it finds),
//! where the MLflow part is left to the first.

use std::process::Command;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
}

fn has_pytest(python: &str) -> bool {
    Command::new(python).args(["-c", "import pytest"]).output().is_ok_and(|o| o.status.success())
}

fn run_suite(python: &str, with_mlflow: bool) {
    if !has_pytest(python) {
        assert!(!in_ci(), "CI must run the Python client's tests, but {python} has no pytest");
        eprintln!("SKIPPED: the Python client's tests need pytest for {python} (pip install pytest ./clients/python)");
        return;
    }
    let mut command = Command::new(python);
    command
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "clients/python/tests"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("GOVLEDGER_BIN", env!("CARGO_BIN_EXE_govledger"))
        .env_remove("GOVLEDGER_URL")
        .env_remove("GOVLEDGER_TOKEN");
    if !with_mlflow {
        command.env("GOVLEDGER_SKIP_MLFLOW", "1");
    }
    let output = command.output().expect("pytest runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{python}:\n{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains(" passed"), "{python} ran no tests:\n{stdout}");
}

#[test]
fn python_client_suite_with_mlflow() {
    run_suite("python3", true);
}

#[test]
fn python_client_suite_on_oldest_and_newest_python() {
    let listed = std::env::var("GOVLEDGER_TEST_PYTHONS").unwrap_or_default();
    let pythons: Vec<&str> = listed.split(':').filter(|p| !p.is_empty()).collect();
    if pythons.is_empty() {
        assert!(!in_ci(), "CI must name the oldest and newest Python in GOVLEDGER_TEST_PYTHONS");
        eprintln!("SKIPPED: no GOVLEDGER_TEST_PYTHONS (colon-separated interpreters) to test the client on");
        return;
    }
    for python in pythons {
        run_suite(python, false);
    }
}
