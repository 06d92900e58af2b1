//! The risk officer's inbox: approvals, each with the evidence about its
//! model version that the caller may read.

use std::collections::HashMap;

use serde::Serialize;

use super::approvals::ApprovalView;
use super::lineage::{self, Graph, Walk};
use super::{Governance, GovernanceError};
use crate::store::projections::ApprovalFilter;

/// An approval with the evidence a risk officer decides on.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApprovalWithEvidence {
    #[serde(flatten)]
    pub approval: ApprovalView,
    /// `null` when the model version is not on the record (or not readable).
    pub model_evidence: Option<ModelEvidence>,
}

/// The model version's current state and upstream lineage.
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct ModelEvidence {
    /// For each event kind about the model, the seq of the latest one.
    #[schema(value_type = Object)]
    pub state: serde_json::Value,
    pub upstream: Option<Graph>,
}

/// A page of the inbox; `next_after_seq` is `null` on the last page.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApprovalsPage {
    pub approvals: Vec<ApprovalWithEvidence>,
    pub next_after_seq: Option<i64>,
}

impl Governance {
    /// One page of approvals matching `filter` (at most `page_size`), of
    /// the projects in `readable` (`None`: all), each with its model's
    /// evidence as far as `readable` reaches.
    pub async fn inbox(
        &self,
        mut filter: ApprovalFilter,
        page_size: usize,
        readable: Option<Vec<String>>,
    ) -> Result<ApprovalsPage, GovernanceError> {
        filter.limit = i64::try_from(page_size).unwrap_or(i64::MAX).saturating_add(1);
        let mut approvals = self.approvals(filter).await?;
        let more = approvals.len() > page_size;
        approvals.truncate(page_size);
        let next_after_seq = if more { approvals.last().map(|a| a.requested_seq) } else { None };
        approvals.retain(|a| lineage::project_visible(a.project.as_deref(), readable.as_deref()));
        let store = self.store.clone();
        let models: Vec<String> = approvals.iter().map(|a| a.model.clone()).collect();
        let evidence = tokio::task::spawn_blocking(move || -> Result<_, GovernanceError> {
            let mut conn = store.conn()?;
            let mut out = HashMap::new();
            for model in models {
                if let Some(view) = lineage::entity(&mut conn, &model, readable.as_deref())? {
                    let upstream = lineage::lineage(
                        &mut conn,
                        &model,
                        Walk::Upstream,
                        10,
                        None,
                        readable.as_deref(),
                        lineage::DEFAULT_NODES,
                    )?;
                    out.insert(model, ModelEvidence { state: view.current, upstream });
                }
            }
            Ok(out)
        })
        .await
        .map_err(GovernanceError::panicked)??;
        let approvals = approvals
            .into_iter()
            .map(|approval| ApprovalWithEvidence { model_evidence: evidence.get(&approval.model).cloned(), approval })
            .collect();
        Ok(ApprovalsPage { approvals, next_after_seq })
    }
}
