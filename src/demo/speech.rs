//! The demo's monitoring story, in project `speech`: a speech-recognition
//! model decays as users change how they speak. Its word error rate is
//! reported daily, crosses the warning band and then the threshold of
//! policies/monitoring.toml (a breach the server records), a retraining run
//! answers the breach, the new version is approved on a fresh evaluation on
//! held-out data, and goes live through a canary at 10%, then 100%.

use serde_json::{json, Value};

use super::Cast;
use crate::client::{Client, ClientError};
use crate::ledger::Kind;

/// The project of the speech story.
pub const PROJECT: &str = "speech";

/// The entities the story creates.
pub const CREATES: [&str; 7] = [
    "dataset:speech-corpus",
    "dataset:speech-corpus@2026-q3",
    "dataset:speech-corpus@2026-11",
    "dataset:speech-holdout@2026-q3",
    "dataset:speech-holdout@2026-11",
    "model:speech-asr@1",
    "model:speech-asr@2",
];

/// Days of word error rate reported before the breach, oldest first: the
/// warning band (0.10) is crossed on day 8, the threshold (0.12) on day 12.
const DAILY_WER: [f64; 14] =
    [0.081, 0.083, 0.085, 0.088, 0.090, 0.094, 0.097, 0.101, 0.104, 0.108, 0.115, 0.123, 0.127, 0.131];

fn event(kind: Kind, subject: &str, inputs: &[&str], outputs: &[&str], attributes: Value) -> Value {
    super::event_in(PROJECT, kind, subject, inputs, outputs, attributes)
}

/// The window of the day `days_ago` days before today (UTC), a whole day.
fn day(days_ago: i64) -> Value {
    let today = chrono::Utc::now().date_naive().and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let start = today - chrono::Duration::days(days_ago + 1);
    let end = today - chrono::Duration::days(days_ago);
    json!({"start": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
           "end": end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)})
}

fn wer(model: &str, value: f64, window: Value) -> Value {
    event(
        Kind::MonitoringMetricReported,
        "deployment:production/speech-asr",
        &[],
        &[],
        json!({"metric": "word_error_rate", "value": value, "model": model, "window": window, "sample_size": 5200}),
    )
}

async fn train_and_evaluate(
    ci: &Client,
    run: &str,
    corpus: &str,
    holdout: &str,
    model: &str,
    wer: f64,
    triggered_by: Option<u64>,
) -> Result<(), ClientError> {
    let mut started = json!({"pipeline": "asr-training", "code_version": "git:5d1e0aa"});
    if let Some(seq) = triggered_by {
        started["triggered_by"] = seq.into();
    }
    ci.append(event(Kind::RunStarted, run, &[corpus], &[], started)).await?;
    ci.append(event(Kind::RunCompleted, run, &[], &[model], json!({"metrics": {"train_wer": wer - 0.01}}))).await?;
    ci.append(event(
        Kind::ModelRegistered,
        model,
        &[run],
        &[],
        json!({"framework": "whisper-finetune 1.4", "owner": "alice",
               "artifact_uri": format!("s3://models/{}", model.trim_start_matches("model:"))}),
    ))
    .await?;
    ci.append(event(
        Kind::ModelEvaluated,
        model,
        &[holdout],
        &[],
        json!({"metrics": {"word_error_rate": wer}, "thresholds": {"word_error_rate": 0.10}, "passed": wer <= 0.10,
               "notes": "held-out reviewed transcripts, not used in training"}),
    ))
    .await?;
    ci.append(event(
        Kind::ModelExplained,
        model,
        &[],
        &[],
        json!({"intended_use": "Transcribe customer calls for the contact-centre search; a human reviews disputes.",
               "limitations": "Not validated on children's speech or on calls under 8 kHz.",
               "fairness_metrics": {"wer_gap_between_accents": 0.021}}),
    ))
    .await?;
    Ok(())
}

/// Both risk officers grant production for `model`, then the pipeline
/// deploys it through the gate.
async fn approve_for_production(cast: &Cast, model: &str, why: &str) -> Result<(), ClientError> {
    let body = json!({"model": model, "environment": "production", "project": PROJECT, "evidence": [model],
                      "note": format!("promote {model} to production")});
    let approval = cast.ci.post("/api/v1/approvals", &body).await?;
    let id = approval["id"].as_str().unwrap_or_default().to_owned();
    for officer in [&cast.rita, &cast.raj] {
        officer.post(&format!("/api/v1/approvals/{id}/decision"), &json!({"decision": "grant", "reason": why})).await?;
    }
    cast.ci
        .post(
            "/api/v1/deployments",
            &json!({"model": model, "environment": "production", "project": PROJECT, "name": "speech-asr"}),
        )
        .await?;
    Ok(())
}

/// Plays the story; answers the seq of the breach.
pub async fn run(cast: &Cast) -> Result<u64, ClientError> {
    let Cast { scientist, ci, .. } = cast;
    scientist
        .append(event(
            Kind::DatasetRegistered,
            "dataset:speech-corpus",
            &[],
            &[],
            json!({"owner": "voice-data", "description": "Recorded customer calls with reviewed transcripts"}),
        ))
        .await?;
    scientist
        .append(event(
            Kind::DatasetClassified,
            "dataset:speech-corpus",
            &[],
            &[],
            json!({"contains_personal_data": true, "personal_data_categories": ["voice", "call_content"],
                   "legal_basis": "consent", "retention": "P2Y", "purpose": "speech recognition"}),
        ))
        .await?;
    for (version, rows) in [
        ("dataset:speech-corpus@2026-q3", 1_204_311),
        ("dataset:speech-holdout@2026-q3", 20_000),
        ("dataset:speech-corpus@2026-11", 402_977),
        ("dataset:speech-holdout@2026-11", 12_000),
    ] {
        scientist.append(event(Kind::DatasetVersionCreated, version, &[], &[], json!({"row_count": rows}))).await?;
    }
    train_and_evaluate(
        ci,
        "run:train-asr-1",
        "dataset:speech-corpus@2026-q3",
        "dataset:speech-holdout@2026-q3",
        "model:speech-asr@1",
        0.079,
        None,
    )
    .await?;
    approve_for_production(cast, "model:speech-asr@1", "WER 0.079 on held-out calls, within the 0.10 target").await?;
    ci.append(event(
        Kind::DeploymentSucceeded,
        "deployment:production/speech-asr",
        &[],
        &[],
        json!({"model": "model:speech-asr@1"}),
    ))
    .await?;

    // The monitoring job reports daily; the server judges each report.
    let mut breach = None;
    for (i, value) in DAILY_WER.iter().enumerate() {
        let days_ago = i64::try_from(DAILY_WER.len() - i).unwrap_or(0) + 3;
        let answer = ci.append(wer("model:speech-asr@1", *value, day(days_ago))).await?;
        let _ = answer;
        if breach.is_none() {
            breach = critical_breach(ci).await?;
        }
    }
    let Some(breach) = breach else {
        return Err(ClientError::Config("the rising word error rate opened no breach".into()));
    };
    ci.append(event(
        Kind::MonitoringDriftDetected,
        "deployment:production/speech-asr",
        &[],
        &[],
        json!({"feature": "speaking_rate", "statistic": "psi", "value": 0.27, "threshold": 0.2,
               "reference": "dataset:speech-corpus@2026-q3", "model": "model:speech-asr@1", "window": day(3)}),
    ))
    .await?;

    // Retraining on recent calls answers the breach.
    train_and_evaluate(
        ci,
        "run:train-asr-2",
        "dataset:speech-corpus@2026-11",
        "dataset:speech-holdout@2026-11",
        "model:speech-asr@2",
        0.084,
        Some(breach),
    )
    .await?;
    approve_for_production(
        cast,
        "model:speech-asr@2",
        "fresh held-out evaluation: WER 0.084; retrained on November calls",
    )
    .await?;
    let traffic = |shares: Value, strategy: &str| {
        event(
            Kind::DeploymentTrafficChanged,
            "deployment:production/speech-asr",
            &[],
            &[],
            json!({"shares": shares, "strategy": strategy}),
        )
    };
    ci.append(traffic(json!({"model:speech-asr@2": 10, "model:speech-asr@1": 90}), "canary")).await?;
    for days_ago in [2, 1] {
        ci.append(wer("model:speech-asr@1", 0.133, day(days_ago))).await?;
        ci.append(wer("model:speech-asr@2", 0.085, day(days_ago))).await?;
    }
    ci.append(traffic(json!({"model:speech-asr@2": 100}), "full")).await?;
    ci.append(event(
        Kind::DeploymentSucceeded,
        "deployment:production/speech-asr",
        &[],
        &[],
        json!({"model": "model:speech-asr@2"}),
    ))
    .await?;
    Ok(breach)
}

/// The seq of the critical breach of speech-asr@1, once recorded.
async fn critical_breach(ci: &Client) -> Result<Option<u64>, ClientError> {
    let page = ci.get("/api/v1/events?kind=monitoring.threshold_breached&subject=model:speech-asr@1&limit=100").await?;
    Ok(page["events"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["attributes"]["severity"] == "critical")
        .and_then(|e| e["seq"].as_u64()))
}
