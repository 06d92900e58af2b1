//! `govledger demo`: a realistic story through the public HTTP API, so that a
//! newcomer sees every feature at once and the tests can assert the answers
//! the story must give.
//!
//! Fraud detection at a bank, retrained when new labelled data arrives:
//! two datasets (transactions hold personal data), three training runs (one
//! fails), two model versions with evaluations and explanations, a rejected
//! and granted approvals (production needs two risk officers), a deployment
//! the gate blocks, successful deployments and a rollback in staging.
//!
//! Then the monitoring story of [`speech`], in a project of its own.

use serde_json::{json, Value};

use crate::client::{Client, ClientError};
use crate::ledger::Kind;

pub mod speech;

/// The people of the story, each with a token of their role.
pub struct Cast {
    /// alice: data scientist; registers and classifies the data.
    pub scientist: Client,
    /// ci-fraud: the training and deployment pipeline.
    pub ci: Client,
    /// rita and raj: risk officers (model validation).
    pub rita: Client,
    pub raj: Client,
}

/// The project all demo events belong to.
pub const PROJECT: &str = "fraud";

impl Cast {
    /// Mints the cast's tokens with an admin client (`POST /api/v1/tokens`).
    pub async fn mint(admin: &Client) -> Result<Self, ClientError> {
        let token = |sub: &'static str, role: &'static str| async move {
            let issued = admin
                .post("/api/v1/tokens", &json!({"sub": sub, "roles": [role], "projects": ["*"], "ttl": "1d"}))
                .await?;
            Ok::<_, ClientError>(admin.with_token(issued["token"].as_str().unwrap_or_default()))
        };
        Ok(Self {
            scientist: token("alice", "data_scientist").await?,
            ci: token("ci-fraud", "ci").await?,
            rita: token("rita", "risk_officer").await?,
            raj: token("raj", "risk_officer").await?,
        })
    }
}

/// The entities the story creates. Versions are created once, so the story
/// runs only on a ledger that holds none of them (see [`check_ledger_is_free`]).
pub const CREATES: [&str; 7] = [
    "dataset:transactions",
    "dataset:transactions@2026-10",
    "dataset:transactions@2026-11",
    "dataset:chargebacks@2026-10",
    "dataset:chargebacks@2026-11",
    "model:fraud-detector@1",
    "model:fraud-detector@2",
];

/// Refuses a ledger that already holds one of the story's entities, naming
/// it and the seq that created it, before anything is written.
pub async fn check_ledger_is_free(admin: &Client) -> Result<(), ClientError> {
    for r in CREATES.iter().chain(speech::CREATES.iter()) {
        match admin.get(&format!("/api/v1/entities/{r}")).await {
            Err(ClientError::Api { status: 404, .. }) => {}
            Ok(entity) if entity["status"] == "referenced" => {}
            Ok(entity) => {
                return Err(ClientError::Config(format!(
                    "this ledger already holds {r} (recorded at seq {}); the demo creates it, and a version is \
                     created only once: load the demo into a fresh --data-dir",
                    entity["created_seq"]
                )))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What the story produced, for printing and for the tests' assertions.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Story {
    /// `recorded_at` of the last event before the retraining on new data.
    pub before_retraining: String,
    pub rejected_approval: String,
    pub production_approval: String,
    pub staging_approvals: Vec<String>,
    /// The seq of the `deployment.blocked` event.
    pub blocked_seq: u64,
    /// The seq of the breach of `model:speech-asr@1` that triggered its retraining.
    pub speech_breach_seq: u64,
}

fn event(kind: Kind, subject: &str, inputs: &[&str], outputs: &[&str], attributes: Value) -> Value {
    event_in(PROJECT, kind, subject, inputs, outputs, attributes)
}

/// An event of the story's `project`, as `POST /api/v1/events` takes it.
fn event_in(project: &str, kind: Kind, subject: &str, inputs: &[&str], outputs: &[&str], attributes: Value) -> Value {
    json!({"kind": kind.as_str(), "subject": subject, "project": project, "inputs": inputs, "outputs": outputs,
           "attributes": attributes})
}

async fn train(
    ci: &Client,
    run: &str,
    inputs: &[&str],
    model: &str,
    auc: f64,
    code_version: &str,
) -> Result<(), ClientError> {
    ci.append(event(
        Kind::RunStarted,
        run,
        inputs,
        &[],
        json!({"pipeline": "fraud-training", "code_version": code_version,
               "parameters": {"max_depth": 6, "learning_rate": 0.1}}),
    ))
    .await?;
    ci.append(event(Kind::RunCompleted, run, &[], &[model], json!({"metrics": {"train_auc": auc + 0.02}}))).await?;
    ci.append(event(
        Kind::ModelRegistered,
        model,
        &[run],
        &[],
        json!({"framework": "xgboost 2.1", "owner": "alice",
        "artifact_uri": format!("s3://models/{}", model.trim_start_matches("model:"))}),
    ))
    .await?;
    ci.append(event(
        Kind::ModelEvaluated,
        model,
        &["dataset:chargebacks@2026-10"],
        &[],
        json!({"metrics": {"auc": auc, "recall_at_1pct_fpr": ((auc - 0.3) * 100.0).round() / 100.0}, "thresholds": {"auc": 0.92},
               "passed": auc >= 0.92}),
    ))
    .await?;
    ci.append(event(
        Kind::ModelExplained,
        model,
        &[],
        &[],
        json!({"method": "shap", "feature_importances": {"amount": 0.41, "merchant_risk": 0.33, "hour": 0.12},
               "intended_use": "Score card transactions for fraud review; a human decides.",
               "limitations": "Not validated for merchants onboarded in the last 30 days.",
               "fairness_metrics": {"demographic_parity_difference": 0.03}}),
    ))
    .await?;
    Ok(())
}

async fn request_approval(ci: &Client, model: &str, environment: &str) -> Result<String, ClientError> {
    let body = json!({"model": model, "environment": environment, "project": PROJECT,
                      "evidence": [model], "note": format!("promote {model} to {environment}")});
    let approval = ci.post("/api/v1/approvals", &body).await?;
    Ok(approval["id"].as_str().unwrap_or_default().to_owned())
}

async fn decide(officer: &Client, id: &str, decision: &str, reason: &str) -> Result<Value, ClientError> {
    officer.post(&format!("/api/v1/approvals/{id}/decision"), &json!({"decision": decision, "reason": reason})).await
}

/// A grant of a version that fails the environment's rules: it needs an
/// override reason, recorded with it.
async fn grant_overriding(officer: &Client, id: &str, reason: &str, why: &str) -> Result<Value, ClientError> {
    let body = json!({"decision": "grant", "reason": reason, "override_reason": why});
    officer.post(&format!("/api/v1/approvals/{id}/decision"), &body).await
}

async fn deploy(ci: &Client, model: &str, environment: &str) -> Result<Value, ClientError> {
    ci.post(
        "/api/v1/deployments",
        &json!({"model": model, "environment": environment, "project": PROJECT,
                                           "name": "fraud-detector"}),
    )
    .await
}

async fn succeeded(ci: &Client, model: &str, environment: &str) -> Result<(), ClientError> {
    let subject = format!("deployment:{environment}/fraud-detector");
    ci.append(event(Kind::DeploymentSucceeded, &subject, &[], &[], json!({"model": model}))).await?;
    Ok(())
}

/// Plays the story. The ledger should hold no governance events yet.
pub async fn run(cast: &Cast) -> Result<Story, ClientError> {
    let Cast { scientist, ci, rita, raj } = cast;
    // The data.
    scientist
        .append(event(
            Kind::DatasetRegistered,
            "dataset:transactions",
            &[],
            &[],
            json!({"owner": "payments-data", "description": "Card transactions with customer identifiers",
                   "location": "s3://lake/transactions/"}),
        ))
        .await?;
    scientist
        .append(event(Kind::DatasetClassified, "dataset:transactions", &[], &[],
            json!({"contains_personal_data": true, "personal_data_categories": ["customer_id", "card_number_hash", "location"],
                   "legal_basis": "legitimate_interests", "retention": "P5Y", "purpose": "fraud prevention"})))
        .await?;
    scientist
        .append(event(
            Kind::DatasetVersionCreated,
            "dataset:transactions@2026-10",
            &[],
            &[],
            json!({"row_count": 48_211_003, "location": "s3://lake/transactions/2026-10/", "checksum": "sha256:4f1c"}),
        ))
        .await?;
    scientist
        .append(event(
            Kind::DatasetRegistered,
            "dataset:chargebacks",
            &[],
            &[],
            json!({"owner": "disputes-team", "description": "Confirmed fraud labels from chargebacks"}),
        ))
        .await?;
    scientist
        .append(event(
            Kind::DatasetClassified,
            "dataset:chargebacks",
            &[],
            &[],
            json!({"contains_personal_data": false}),
        ))
        .await?;
    scientist
        .append(event(
            Kind::DatasetVersionCreated,
            "dataset:chargebacks@2026-10",
            &[],
            &[],
            json!({"row_count": 91_344, "location": "s3://lake/chargebacks/2026-10/"}),
        ))
        .await?;

    // First model, trained on October's data.
    train(
        ci,
        "run:train-fraud-1",
        &["dataset:transactions@2026-10", "dataset:chargebacks@2026-10"],
        "model:fraud-detector@1",
        0.90,
        "git:3f2a9c1",
    )
    .await?;
    // Production needs AUC >= 0.92: the validators say no.
    let rejected = request_approval(ci, "model:fraud-detector@1", "production").await?;
    decide(rita, &rejected, "reject", "AUC 0.90 is below the 0.92 required for production").await?;
    // Staging takes one approval, and a passing evaluation on data the
    // version was not trained on, which version 1 lacks: raj overrides,
    // and the override is on the record (and a finding in its dossier).
    let staging_1 = request_approval(ci, "model:fraud-detector@1", "staging").await?;
    grant_overriding(
        raj,
        &staging_1,
        "good enough to shadow-score in staging",
        "staging shadow-scores only, no customer sees its scores; a holdout evaluation follows with November's labels",
    )
    .await?;
    deploy(ci, "model:fraud-detector@1", "staging").await?;
    succeeded(ci, "model:fraud-detector@1", "staging").await?;

    // A retraining attempt that fails.
    ci.append(event(
        Kind::RunStarted,
        "run:train-fraud-2",
        &["dataset:transactions@2026-10"],
        &[],
        json!({"pipeline": "fraud-training", "code_version": "git:77b0e2d"}),
    ))
    .await?;
    let last = ci
        .append(event(
            Kind::RunFailed,
            "run:train-fraud-2",
            &[],
            &[],
            json!({"error": "out of memory while building the feature matrix"}),
        ))
        .await?;
    let before_retraining = last["recorded_at"].as_str().unwrap_or_default().to_owned();
    // recorded_at has microsecond resolution: keep the retraining strictly later.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    // November's labelled data arrives; retrain.
    scientist
        .append(event(
            Kind::DatasetVersionCreated,
            "dataset:transactions@2026-11",
            &[],
            &[],
            json!({"row_count": 50_902_118, "location": "s3://lake/transactions/2026-11/"}),
        ))
        .await?;
    scientist
        .append(event(
            Kind::DatasetVersionCreated,
            "dataset:chargebacks@2026-11",
            &[],
            &[],
            json!({"row_count": 88_412, "location": "s3://lake/chargebacks/2026-11/"}),
        ))
        .await?;
    train(
        ci,
        "run:train-fraud-3",
        &["dataset:transactions@2026-11", "dataset:chargebacks@2026-10"],
        "model:fraud-detector@2",
        0.94,
        "git:91c4d07",
    )
    .await?;
    // The evaluation the gates rely on: November's labels, which no
    // training run read.
    ci.append(event(
        Kind::ModelEvaluated,
        "model:fraud-detector@2",
        &["dataset:chargebacks@2026-11"],
        &[],
        json!({"metrics": {"auc": 0.94, "recall_at_1pct_fpr": 0.63}, "thresholds": {"auc": 0.92}, "passed": true,
               "notes": "holdout: labels of November, not used in training"}),
    ))
    .await?;

    // Production approval of version 2: two risk officers are needed.
    let production = request_approval(ci, "model:fraud-detector@2", "production").await?;
    decide(rita, &production, "grant", "AUC 0.94, explanations reviewed, fairness within bounds").await?;
    // The pipeline tries too early: blocked, and on the record.
    let blocked_seq = match deploy(ci, "model:fraud-detector@2", "production").await {
        Err(ClientError::Api { status: 409, body, .. }) => body["blocked_event_seq"].as_u64().unwrap_or_default(),
        Err(e) => return Err(e),
        Ok(_) => return Err(ClientError::Config("the gate let an unapproved deployment through".into())),
    };
    decide(raj, &production, "grant", "second validation signed off").await?;
    deploy(ci, "model:fraud-detector@2", "production").await?;
    succeeded(ci, "model:fraud-detector@2", "production").await?;

    // Staging tries version 2, sees a latency regression, rolls back to 1.
    let staging_2 = request_approval(ci, "model:fraud-detector@2", "staging").await?;
    decide(rita, &staging_2, "grant", "approved for staging").await?;
    deploy(ci, "model:fraud-detector@2", "staging").await?;
    succeeded(ci, "model:fraud-detector@2", "staging").await?;
    ci.append(event(
        Kind::DeploymentRolledBack,
        "deployment:staging/fraud-detector",
        &[],
        &[],
        json!({"model": "model:fraud-detector@1", "reason": "p99 latency regression on the new feature store"}),
    ))
    .await?;

    let speech_breach_seq = speech::run(cast).await?;

    Ok(Story {
        speech_breach_seq,
        before_retraining,
        rejected_approval: rejected,
        production_approval: production,
        staging_approvals: vec![staging_1, staging_2],
        blocked_seq,
    })
}
