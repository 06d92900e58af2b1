//! `govledger mlflow import`: the registry as it stands, mirrored once.
//! Versions are written in chunks, each one transaction, so an interrupted
//! import resumes where it stopped and a second one writes nothing.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::api::{ModelVersion, Run};
use super::bridge::{Bridge, BridgeError};

/// Versions per transaction: large enough to amortize the commit, small
/// enough that an interruption loses little work.
const CHUNK_VERSIONS: usize = 200;
/// Runs fetched from MLflow at once.
const FETCH_CONCURRENCY: usize = 8;

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct ImportReport {
    pub models: usize,
    pub versions: usize,
    /// Events written by this import (0 on a repeat).
    pub events_written: usize,
    /// Aliases that are deployments, and what became of each.
    pub aliases: Vec<String>,
    /// Seconds spent waiting for MLflow's answers (excluded from the rate).
    pub mlflow_seconds: f64,
    /// Seconds spent recording.
    pub record_seconds: f64,
}

/// Mirrors the registered models named in `only` (all when empty): their
/// versions, runs with dataset inputs, and current aliases. `progress`
/// hears (versions done, versions in all). Aliases on versions the gate
/// denies are recorded as blocked; they are moved back only with `enforce`.
pub async fn import(
    bridge: &Bridge,
    only: &[String],
    enforce: bool,
    mut progress: impl FnMut(usize, usize),
) -> Result<ImportReport, BridgeError> {
    let mut report = ImportReport::default();
    let waiting = std::time::Instant::now();
    let mut models = bridge.registered_models().await?;
    if !only.is_empty() {
        let missing: Vec<&String> = only.iter().filter(|n| !models.iter().any(|m| &&m.name == n)).collect();
        if !missing.is_empty() {
            return Err(BridgeError::Invalid(format!(
                "MLflow has no registered model named {}",
                missing.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
            )));
        }
        models.retain(|m| only.contains(&m.name));
    }
    let mut versions: Vec<ModelVersion> = Vec::new();
    for model in &models {
        let mut found = bridge.versions_of(&model.name).await?;
        found.sort_by_key(|v| v.version.parse::<u64>().unwrap_or(u64::MAX));
        versions.extend(found);
    }
    let run_ids: BTreeSet<String> =
        versions.iter().filter_map(|v| v.run_id.clone()).filter(|r| !r.is_empty()).collect();
    let fetched: Vec<(String, Option<Run>)> = stream::iter(run_ids.into_iter().map(|id| async move {
        let run = bridge.run(&id).await?;
        Ok::<_, BridgeError>((id, run))
    }))
    .buffer_unordered(FETCH_CONCURRENCY)
    .try_collect()
    .await?;
    let runs: BTreeMap<String, Run> = fetched.into_iter().filter_map(|(id, run)| Some((id, run?))).collect();
    report.mlflow_seconds = waiting.elapsed().as_secs_f64();
    report.models = models.len();
    report.versions = versions.len();

    let recording = std::time::Instant::now();
    progress(0, versions.len());
    for (i, chunk) in versions.chunks(CHUNK_VERSIONS).enumerate() {
        let events: Vec<_> = chunk
            .iter()
            .flat_map(|v| bridge.version_events(v, v.run_id.as_ref().and_then(|id| runs.get(id))))
            .collect();
        report.events_written += bridge.append_new(events).await?.len();
        progress((i * CHUNK_VERSIONS + chunk.len()).min(versions.len()), versions.len());
    }
    report.record_seconds = recording.elapsed().as_secs_f64();

    for model in &models {
        for entry in &model.aliases {
            let occasion = format!("import:{}:{}:{}", model.name, entry.alias, entry.version);
            let outcome = bridge.alias_set(&model.name, &entry.alias, &entry.version, &occasion, enforce).await?;
            report.events_written += outcome.recorded.len();
            report.aliases.push(outcome.summary);
        }
    }
    Ok(report)
}
