//! What a reviewer weighs about a model version: its training runs and who
//! ran them, the runs' datasets with their classification, its evaluations
//! metric by metric, and its explanations. The console's model page and
//! approval inbox show it.

use serde::Serialize;

use super::lineage::{self, Visibility, Walk};
use crate::ledger::{EntityRef, Kind};
use crate::store::{events, projections, DbConn, StoreError};

/// A model version's training evidence.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TrainingEvidence {
    pub runs: Vec<RunEvidence>,
    pub datasets: Vec<DatasetEvidence>,
}

/// A run that produced the model.
#[derive(Debug, Clone, Serialize)]
pub struct RunEvidence {
    #[serde(rename = "ref")]
    pub ref_: String,
    pub status: String,
    /// The actors of its `run.started` and `run.completed` events.
    pub ran_by: Vec<String>,
    /// The event that first named it.
    pub seq: i64,
}

/// A dataset a training run read.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetEvidence {
    #[serde(rename = "ref")]
    pub ref_: String,
    /// The attributes of its latest `dataset.classified` event (of the
    /// version, or else of the dataset it is a version of).
    pub classification: Option<serde_json::Value>,
    pub classified_seq: Option<u64>,
    /// The run it was read by.
    pub read_by: String,
}

/// The training evidence of `model` as a reader of `readable` may see it.
pub fn training(conn: &mut DbConn, model: &str, readable: Visibility<'_>) -> Result<TrainingEvidence, StoreError> {
    let Some(graph) = lineage::lineage(conn, model, Walk::Upstream, 2, None, readable, lineage::DEFAULT_NODES)? else {
        return Ok(TrainingEvidence::default());
    };
    let is_type = |r: &str, t: &str| graph.nodes.iter().any(|n| n.ref_ == r && n.entity_type == t);
    let mut evidence = TrainingEvidence::default();
    for edge in graph.edges.iter().filter(|e| e.target == graph.node && is_type(&e.source, "run")) {
        if evidence.runs.iter().any(|r| r.ref_ == edge.source) {
            continue;
        }
        let node = graph.nodes.iter().find(|n| n.ref_ == edge.source);
        let ran_by = projections::actors_of(conn, &edge.source, &[Kind::RunStarted, Kind::RunCompleted])?;
        evidence.runs.push(RunEvidence {
            ref_: edge.source.clone(),
            status: node.map(|n| n.status.clone()).unwrap_or_default(),
            ran_by: ran_by.into_iter().collect(),
            seq: node.map_or(edge.seq, |n| n.seq),
        });
    }
    for run in evidence.runs.clone() {
        for edge in graph.edges.iter().filter(|e| e.target == run.ref_ && is_type(&e.source, "dataset")) {
            if evidence.datasets.iter().any(|d| d.ref_ == edge.source) {
                continue;
            }
            let (classification, classified_seq) = classification(conn, &edge.source, readable)?;
            evidence.datasets.push(DatasetEvidence {
                ref_: edge.source.clone(),
                classification,
                classified_seq,
                read_by: run.ref_.clone(),
            });
        }
    }
    Ok(evidence)
}

/// The latest classification of `dataset`, or of the dataset it is a version of.
fn classification(
    conn: &mut DbConn,
    dataset: &str,
    readable: Visibility<'_>,
) -> Result<(Option<serde_json::Value>, Option<u64>), StoreError> {
    let mut candidates = vec![dataset.to_owned()];
    if let Ok(r) = EntityRef::parse(dataset) {
        if r.version().is_some() {
            candidates.push(format!("{}:{}", r.entity_type(), r.name()));
        }
    }
    for candidate in candidates {
        let Some(row) = projections::entity(conn, &candidate)? else { continue };
        let state: serde_json::Value = serde_json::from_str(&row.state).unwrap_or_default();
        let Some(seq) = state[Kind::DatasetClassified.as_str()].as_u64() else { continue };
        if let Some(event) =
            events::by_seq(conn, seq)?.filter(|e| lineage::project_visible(e.project.as_deref(), readable))
        {
            let attributes = serde_json::from_str(&event.attributes).unwrap_or_default();
            return Ok((Some(attributes), Some(seq)));
        }
    }
    Ok((None, None))
}

/// One metric of an evaluation, beside its threshold.
#[derive(Debug, Clone, Serialize)]
pub struct MetricLine {
    pub name: String,
    pub value: String,
    pub threshold: Option<String>,
    /// Whether the value is at or above the threshold: a plain comparison;
    /// the evaluation's own `passed` is the verdict.
    pub at_or_above: Option<bool>,
}

/// A `model.evaluated` event, as a reviewer reads it.
#[derive(Debug, Clone, Serialize)]
pub struct EvaluationEvidence {
    pub seq: u64,
    pub recorded_at: String,
    pub actor: String,
    /// The datasets it was evaluated on (its inputs).
    pub datasets: Vec<String>,
    pub metrics: Vec<MetricLine>,
    /// The evaluator's verdict, when it gave one.
    pub passed: Option<bool>,
}

/// A `model.explained` event: the model card's fields.
#[derive(Debug, Clone, Serialize)]
pub struct ExplanationEvidence {
    pub seq: u64,
    pub recorded_at: String,
    pub method: Option<String>,
    pub intended_use: Option<String>,
    pub limitations: Option<String>,
    /// Largest first.
    pub feature_importances: Vec<(String, String)>,
    pub fairness_metrics: Vec<(String, String)>,
}

/// The events of `kind` about exactly `model` that a reader of `readable`
/// may see, oldest first (at most 1,000).
fn about(
    conn: &mut DbConn,
    model: &str,
    kind: Kind,
    readable: Visibility<'_>,
) -> Result<Vec<crate::ledger::Event>, StoreError> {
    let filter = crate::store::EventFilter {
        kind: Some(kind.as_str().into()),
        subject: Some(model.to_owned()),
        subject_exact: true,
        limit: 1000,
        ..Default::default()
    };
    Ok(events::list(conn, &filter)?
        .into_iter()
        .filter(|e| lineage::project_visible(e.project.as_deref(), readable))
        .collect())
}

/// A metric map (`{"auc": 0.94, ...}`) as name and printed value, in name order.
fn metric_pairs(value: &serde_json::Value) -> Vec<(String, String)> {
    value
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect())
        .unwrap_or_default()
}

/// The evaluations of `model`, newest first.
pub fn evaluations(
    conn: &mut DbConn,
    model: &str,
    readable: Visibility<'_>,
) -> Result<Vec<EvaluationEvidence>, StoreError> {
    let mut out: Vec<EvaluationEvidence> = about(conn, model, Kind::ModelEvaluated, readable)?
        .into_iter()
        .map(|e| {
            let a: serde_json::Value = serde_json::from_str(&e.attributes).unwrap_or_default();
            let thresholds = &a["thresholds"];
            let metrics = metric_pairs(&a["metrics"])
                .into_iter()
                .map(|(name, value)| {
                    let threshold = thresholds.get(&name).map(|t| t.to_string());
                    let at_or_above = match (a["metrics"][&name].as_f64(), thresholds[&name].as_f64()) {
                        (Some(v), Some(t)) => Some(v >= t),
                        _ => None,
                    };
                    MetricLine { name, value, threshold, at_or_above }
                })
                .collect();
            EvaluationEvidence {
                seq: e.seq,
                recorded_at: e.recorded_at.clone(),
                actor: e.actor.clone(),
                datasets: e.inputs.clone(),
                metrics,
                passed: a["passed"].as_bool(),
            }
        })
        .collect();
    out.reverse();
    Ok(out)
}

/// The explanations of `model`, newest first.
pub fn explanations(
    conn: &mut DbConn,
    model: &str,
    readable: Visibility<'_>,
) -> Result<Vec<ExplanationEvidence>, StoreError> {
    let mut out: Vec<ExplanationEvidence> = about(conn, model, Kind::ModelExplained, readable)?
        .into_iter()
        .map(|e| {
            let a: serde_json::Value = serde_json::from_str(&e.attributes).unwrap_or_default();
            let text = |k: &str| a[k].as_str().map(str::to_owned);
            let mut importances = metric_pairs(&a["feature_importances"]);
            importances.sort_by(|x, y| {
                let num = |s: &str| s.parse::<f64>().unwrap_or(0.0);
                num(&y.1).total_cmp(&num(&x.1))
            });
            ExplanationEvidence {
                seq: e.seq,
                recorded_at: e.recorded_at.clone(),
                method: text("method"),
                intended_use: text("intended_use"),
                limitations: text("limitations"),
                feature_importances: importances,
                fairness_metrics: metric_pairs(&a["fairness_metrics"]),
            }
        })
        .collect();
    out.reverse();
    Ok(out)
}

/// Everything a reviewer weighs about a model version: its training, its
/// evaluations and its explanations.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ModelReview {
    pub training: TrainingEvidence,
    pub evaluations: Vec<EvaluationEvidence>,
    pub explanations: Vec<ExplanationEvidence>,
}

/// [`ModelReview`] of `model` for a reader of `readable`.
pub fn review(conn: &mut DbConn, model: &str, readable: Visibility<'_>) -> Result<ModelReview, StoreError> {
    Ok(ModelReview {
        training: training(conn, model, readable)?,
        evaluations: evaluations(conn, model, readable)?,
        explanations: explanations(conn, model, readable)?,
    })
}
