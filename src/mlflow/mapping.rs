//! How MLflow's registry objects become govledger events: names, entity
//! references, attributes and the idempotency keys derived from MLflow ids.
//! Pure: no I/O, so every rule here is tested without a server.

use std::collections::BTreeMap;

use ring::digest::{digest, SHA256};
use serde_json::{json, Map, Value};

use super::api::{ModelVersion, Run};
use crate::ledger::timestamp;

/// The tag keys MLflow uses to say what a dataset input was for. Inputs for
/// evaluation are not training data: recording them as a run's inputs would
/// make an evaluation on them count as "on training data" for the gate.
const NOT_TRAINING_CONTEXTS: &[&str] = &["eval", "evaluation", "validation", "test", "testing"];

/// The longest idempotency key the API accepts.
const MAX_KEY_LEN: usize = 128;

/// An MLflow name as an entity name: kept when it is already one; otherwise
/// every character outside `[A-Za-z0-9._-]` becomes `-` and a digest of the
/// original is appended, so that `fraud model` and `fraud-model` stay two.
pub fn entity_name(mlflow_name: &str) -> String {
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if !mlflow_name.is_empty() && mlflow_name.len() <= 200 && mlflow_name.chars().all(valid) {
        return mlflow_name.to_owned();
    }
    let cleaned: String = mlflow_name.chars().map(|c| if valid(c) { c } else { '-' }).take(180).collect();
    let short = hex::encode(&digest(&SHA256, mlflow_name.as_bytes()).as_ref()[..4]);
    format!("{}-{short}", cleaned.trim_matches('-')).trim_start_matches('-').to_owned()
}

/// An MLflow version or digest as an entity version.
fn entity_version(text: &str) -> String {
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+');
    if !text.is_empty() && text.len() <= 64 && text.chars().all(valid) {
        text.to_owned()
    } else {
        hex::encode(&digest(&SHA256, text.as_bytes()).as_ref()[..16])
    }
}

pub fn model_ref(name: &str, version: &str) -> String {
    format!("model:{}@{}", entity_name(name), entity_version(version))
}

pub fn registered_model_ref(name: &str) -> String {
    format!("model:{}", entity_name(name))
}

pub fn run_ref(run_id: &str) -> String {
    format!("run:mlflow-{}", entity_name(run_id))
}

/// A model version registered from a path, without an MLflow run: govledger
/// still needs the one training run `model.registered` names.
pub fn runless_ref(name: &str, version: &str) -> String {
    format!("run:mlflow-unknown-{}-{}", entity_name(name), entity_version(version))
}

pub fn dataset_ref(name: &str, digest: &str) -> String {
    format!("dataset:mlflow/{}@{}", entity_name(name), entity_version(digest))
}

pub fn deployment_name(model_name: &str) -> String {
    entity_name(model_name)
}

/// An idempotency key from MLflow identities; long ones are hashed so the
/// key stays within the API's limit and still names one thing.
pub fn key(parts: &[&str]) -> String {
    let joined = format!("mlflow:{}", parts.join(":"));
    if joined.len() <= MAX_KEY_LEN {
        joined
    } else {
        format!("mlflow:sha256:{}", hex::encode(digest(&SHA256, joined.as_bytes())))
    }
}

fn millis_to_rfc3339(ms: Option<i64>) -> Option<String> {
    let ms = ms?;
    let at = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)?;
    timestamp::normalize(&at.to_rfc3339()).ok()
}

fn kv_map(items: &[super::api::KeyValue]) -> Map<String, Value> {
    items.iter().map(|kv| (kv.key.clone(), Value::String(kv.value.clone()))).collect()
}

/// The run's latest metric values; non-finite values have no JSON number.
fn metrics(run: &Run) -> BTreeMap<String, f64> {
    run.data
        .metrics
        .iter()
        .filter_map(|m| m.value.as_f64().filter(|v| v.is_finite()).map(|v| (m.key.clone(), v)))
        .collect()
}

/// The datasets a run trained on (its dataset inputs minus evaluation ones).
pub fn training_datasets(run: &Run) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = Vec::new();
    for input in &run.inputs.dataset_inputs {
        let context = input.tags.iter().find(|t| t.key == "mlflow.data.context").map(|t| t.value.to_lowercase());
        if context.as_deref().is_some_and(|c| NOT_TRAINING_CONTEXTS.contains(&c)) {
            continue;
        }
        let d = &input.dataset;
        let subject = dataset_ref(&d.name, &d.digest);
        if out.iter().any(|(s, _)| *s == subject) {
            continue;
        }
        let mut attributes = Map::new();
        attributes.insert("checksum".into(), json!(d.digest));
        if let Some(source) = d.source.as_deref().filter(|s| !s.is_empty()) {
            attributes.insert("location".into(), json!(source.chars().take(2000).collect::<String>()));
        }
        let kind = d.source_type.as_deref().unwrap_or("unknown source");
        attributes.insert("description".into(), json!(format!("MLflow dataset {:?} ({kind})", d.name)));
        if let Some(rows) = d.profile.as_deref().and_then(profile_rows) {
            attributes.insert("row_count".into(), json!(rows));
        }
        out.push((subject, Value::Object(attributes)));
    }
    out
}

/// MLflow's dataset profile is JSON text such as `{"num_rows": 120, ...}`.
fn profile_rows(profile: &str) -> Option<u64> {
    let value: Value = serde_json::from_str(profile).ok()?;
    value.get("num_rows").or_else(|| value.get("num_elements")).and_then(Value::as_u64)
}

/// An event as the API takes it (validated later like any other).
pub fn event(kind: &str, subject: &str, project: &str, inputs: &[String], attributes: Value, key: String) -> Value {
    json!({"kind": kind, "subject": subject, "project": project, "inputs": inputs,
           "attributes": attributes, "idempotency_key": key})
}

/// The events that mirror a run: `run.started` with its training data and
/// params, then how it ended (nothing yet for a run still running).
pub fn run_events(run: &Run, project: &str) -> Vec<Value> {
    let subject = run_ref(&run.info.run_id);
    let datasets: Vec<String> = training_datasets(run).into_iter().map(|(s, _)| s).collect();
    let mut started = Map::new();
    let experiment = run.info.experiment_id.as_deref().unwrap_or("?");
    let name = run.info.run_name.as_deref().unwrap_or(&run.info.run_id);
    started.insert("pipeline".into(), json!(format!("MLflow experiment {experiment}, run {name}")));
    if let Some(commit) = run.data.tags.iter().find(|t| t.key == "mlflow.source.git.commit") {
        started.insert("code_version".into(), json!(format!("git:{}", commit.value)));
    }
    if !run.data.params.is_empty() {
        started.insert("parameters".into(), Value::Object(kv_map(&run.data.params)));
    }
    let mut started_event = event(
        "run.started",
        &subject,
        project,
        &datasets,
        Value::Object(started),
        key(&["run", &run.info.run_id, "started"]),
    );
    if let Some(at) = millis_to_rfc3339(run.info.start_time) {
        started_event["occurred_at"] = json!(at);
    }
    let mut out = vec![started_event];
    let ended = match run.info.status.as_deref() {
        Some("FINISHED") => {
            let mut done = Map::new();
            let m = metrics(run);
            if !m.is_empty() {
                done.insert("metrics".into(), json!(m));
            }
            if let (Some(start), Some(end)) = (run.info.start_time, run.info.end_time) {
                done.insert("duration_seconds".into(), json!((end - start).max(0) as f64 / 1000.0));
            }
            Some(("run.completed", Value::Object(done)))
        }
        Some(status @ ("FAILED" | "KILLED")) => {
            Some(("run.failed", json!({"error": format!("the MLflow run ended {status}")})))
        }
        _ => None,
    };
    if let Some((kind, attributes)) = ended {
        let mut e = event(kind, &subject, project, &[], attributes, key(&["run", &run.info.run_id, "ended"]));
        if let Some(at) = millis_to_rfc3339(run.info.end_time) {
            e["occurred_at"] = json!(at);
        }
        out.push(e);
    }
    out
}

/// The dataset versions a run trained on, as creating events.
pub fn dataset_events(run: &Run, project: &str) -> Vec<Value> {
    training_datasets(run)
        .into_iter()
        .map(|(subject, attributes)| {
            let k = key(&["dataset", &subject]);
            event("dataset.version_created", &subject, project, &[], attributes, k)
        })
        .collect()
}

/// The run that trained a version: its MLflow run, or a stand-in run for a
/// version registered without one.
pub fn training_run_of(version: &ModelVersion) -> String {
    match version.run_id.as_deref().filter(|r| !r.is_empty()) {
        Some(run_id) => run_ref(run_id),
        None => runless_ref(&version.name, &version.version),
    }
}

/// The stand-in run of a version registered without an MLflow run.
pub fn runless_events(version: &ModelVersion, project: &str) -> Vec<Value> {
    let subject = runless_ref(&version.name, &version.version);
    let source = version.source.as_deref().unwrap_or("an unknown source");
    let attributes = json!({"pipeline": format!("unknown: registered in MLflow from {source} without a run")});
    vec![event("run.started", &subject, project, &[], attributes, key(&["runless", &version.name, &version.version]))]
}

/// The run of a version whose MLflow run cannot be read any more (deleted):
/// still the run that trained it, with what is known of it.
pub fn missing_run_events(run_id: &str, project: &str) -> Vec<Value> {
    let attributes = json!({"pipeline": format!("MLflow run {run_id}, which MLflow no longer serves (deleted?)")});
    vec![event("run.started", &run_ref(run_id), project, &[], attributes, key(&["run", run_id, "started"]))]
}

/// `model.registered` for a version, naming its training run.
pub fn version_event(version: &ModelVersion, run: Option<&Run>, project: &str) -> Value {
    let subject = model_ref(&version.name, &version.version);
    let mut attributes = Map::new();
    if let Some(source) = version.source.as_deref().filter(|s| !s.is_empty()) {
        attributes.insert("artifact_uri".into(), json!(source));
    }
    if let Some(owner) = version.user_id.as_deref().filter(|s| !s.is_empty()) {
        attributes.insert("owner".into(), json!(owner));
    }
    if let Some(description) = version.description.as_deref().filter(|s| !s.is_empty()) {
        attributes.insert("description".into(), json!(description));
    }
    if let Some(run) = run {
        let m = metrics(run);
        if !m.is_empty() {
            attributes.insert("metrics".into(), json!(m));
        }
        if let Some(flavor) = run.data.tags.iter().find(|t| t.key == "mlflow.log-model.history").and_then(flavor_of) {
            attributes.insert("framework".into(), json!(flavor));
        }
    }
    let mut tags = kv_map(&version.tags);
    tags.insert("govledger.mlflow.name".into(), json!(version.name));
    tags.insert("govledger.mlflow.version".into(), json!(version.version));
    if let Some(run_id) = &version.run_id {
        tags.insert("govledger.mlflow.run_id".into(), json!(run_id));
    }
    attributes.insert("tags".into(), Value::Object(tags));
    let mut e = event(
        "model.registered",
        &subject,
        project,
        &[training_run_of(version)],
        Value::Object(attributes),
        key(&["model-version", &version.name, &version.version]),
    );
    if let Some(at) = millis_to_rfc3339(version.creation_timestamp) {
        e["occurred_at"] = json!(at);
    }
    e
}

/// The first model flavor named in MLflow's log-model history tag.
fn flavor_of(history: &super::api::KeyValue) -> Option<String> {
    let entries: Value = serde_json::from_str(&history.value).ok()?;
    let flavors = entries.as_array()?.first()?.get("flavors")?.as_object()?;
    flavors.keys().find(|k| k.as_str() != "python_function").or_else(|| flavors.keys().next()).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlflow::api::{Dataset, DatasetInput, KeyValue, RunData, RunInfo, RunInputs};

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue { key: key.into(), value: value.into() }
    }

    fn run(status: &str) -> Run {
        let input = |name: &str, context: &str| DatasetInput {
            tags: vec![kv("mlflow.data.context", context)],
            dataset: Dataset {
                name: name.into(),
                digest: "ab12cd34".into(),
                source_type: Some("local".into()),
                source: Some("file:///data/x.csv".into()),
                profile: Some(r#"{"num_rows": 150}"#.into()),
            },
        };
        Run {
            info: RunInfo {
                run_id: "0123abcd".into(),
                experiment_id: Some("1".into()),
                status: Some(status.into()),
                start_time: Some(1_764_000_000_000),
                end_time: Some(1_764_000_090_500),
                user_id: Some("dana".into()),
                run_name: Some("bright-owl".into()),
            },
            data: RunData {
                metrics: vec![crate::mlflow::api::Metric { key: "auc".into(), value: json!(0.93), step: Some(0) }],
                params: vec![kv("max_depth", "6")],
                tags: vec![kv("mlflow.source.git.commit", "91c4d07")],
            },
            inputs: RunInputs { dataset_inputs: vec![input("iris train", "training"), input("iris holdout", "eval")] },
        }
    }

    #[test]
    fn names_that_are_not_entity_names_are_cleaned_and_kept_apart() {
        assert_eq!(entity_name("fraud-detector"), "fraud-detector");
        let spaced = entity_name("fraud detector");
        assert!(spaced.starts_with("fraud-detector-") && spaced != entity_name("fraud-detector"));
        assert_ne!(entity_name("a b"), entity_name("a/b"));
        for name in ["fraud detector", "中文模型", "a/b", " x "] {
            assert!(crate::ledger::EntityRef::parse(&model_ref(name, "3")).is_ok(), "{name}");
        }
        assert!(key(&[&"x".repeat(300)]).len() <= MAX_KEY_LEN);
    }

    #[test]
    fn runs_carry_training_data_params_and_how_they_ended() {
        let events = run_events(&run("FINISHED"), "fraud");
        assert_eq!(events[0]["kind"], "run.started");
        assert_eq!(events[0]["inputs"].as_array().map(Vec::len), Some(1), "the eval dataset is not training data");
        assert!(events[0]["inputs"][0].as_str().is_some_and(|s| s.starts_with("dataset:mlflow/iris-train-")));
        assert_eq!(events[0]["attributes"]["parameters"]["max_depth"], "6");
        assert_eq!(events[0]["attributes"]["code_version"], "git:91c4d07");
        assert_eq!(events[1]["kind"], "run.completed");
        assert_eq!(events[1]["attributes"]["metrics"]["auc"], 0.93);
        assert_eq!(events[1]["attributes"]["duration_seconds"], 90.5);
        assert_eq!(run_events(&run("FAILED"), "fraud")[1]["kind"], "run.failed");
        assert_eq!(run_events(&run("RUNNING"), "fraud").len(), 1);
        let datasets = dataset_events(&run("FINISHED"), "fraud");
        assert_eq!(datasets.len(), 1);
        assert_eq!(datasets[0]["attributes"]["row_count"], 150);
    }

    #[test]
    fn versions_name_their_run_and_keep_mlflow_ids_in_tags() {
        let version = ModelVersion {
            name: "iris".into(),
            version: "2".into(),
            creation_timestamp: Some(1_764_000_100_000),
            user_id: Some("dana".into()),
            description: None,
            source: Some("models:/m-123".into()),
            run_id: Some("0123abcd".into()),
            status: Some("READY".into()),
            tags: vec![kv("team", "risk")],
            aliases: vec![],
        };
        let e = version_event(&version, Some(&run("FINISHED")), "fraud");
        assert_eq!(e["subject"], "model:iris@2");
        assert_eq!(e["inputs"], json!(["run:mlflow-0123abcd"]));
        assert_eq!(e["attributes"]["tags"]["team"], "risk");
        assert_eq!(e["attributes"]["tags"]["govledger.mlflow.run_id"], "0123abcd");
        assert_eq!(e["idempotency_key"], "mlflow:model-version:iris:2");
        let runless = ModelVersion { run_id: None, ..version };
        assert_eq!(version_event(&runless, None, "fraud")["inputs"], json!(["run:mlflow-unknown-iris-2"]));
    }
}
