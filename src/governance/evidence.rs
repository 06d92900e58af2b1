//! What a model version was trained from, as a reviewer reads it: its
//! training runs and who ran them, and the runs' datasets with their
//! classification. The console's model page shows it; so will the
//! approval inbox.

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
