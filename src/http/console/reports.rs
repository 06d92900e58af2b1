//! `/ui/reports`: a form per report type, downloading what
//! `GET /api/v1/reports/{type}` hands out (the same builders and bytes).

use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::page::{self, day_or_time, given, Chrome, ConsoleError, Viewer};
use crate::auth::actions::ReadReports;
use crate::http::reports::ReportQuery;
use crate::http::AppState;
use crate::reports::ReportType;

/// A subject field of a report form.
pub struct SubjectField {
    pub label: &'static str,
    pub placeholder: &'static str,
    /// The entity type suggestions are drawn from (`""`: any).
    pub entity_type: &'static str,
    pub required: bool,
}

/// One report type's form.
pub struct ReportForm {
    pub name: &'static str,
    pub title: &'static str,
    pub about: &'static str,
    pub subject: Option<SubjectField>,
    pub project: bool,
    pub window: bool,
}

fn forms() -> Vec<ReportForm> {
    ReportType::ALL
        .iter()
        .map(|t| {
            let subject = |label, placeholder, entity_type, required| {
                Some(SubjectField { label, placeholder, entity_type, required })
            };
            match t {
                ReportType::ModelDossier => ReportForm {
                    name: t.name(),
                    title: "Model dossier (SR 11-7)",
                    about: "One model version: card, lineage, evaluations, approvals, deployments and open findings.",
                    subject: subject("Model version", "model:fraud-detector@2", "model", true),
                    project: false,
                    window: false,
                },
                ReportType::ModelInventory => ReportForm {
                    name: t.name(),
                    title: "Model inventory",
                    about: "Every model version, its status, approvals and where it is live.",
                    subject: None,
                    project: true,
                    window: false,
                },
                ReportType::GdprProcessing => ReportForm {
                    name: t.name(),
                    title: "GDPR record of processing (Art. 30)",
                    about: "A dataset, or every dataset of a project: personal data, legal basis, retention, use.",
                    subject: subject("Dataset (or give a project)", "dataset:transactions", "dataset", false),
                    project: true,
                    window: false,
                },
                ReportType::GdprErasure => ReportForm {
                    name: t.name(),
                    title: "GDPR erasure certificate",
                    about: "What was erased for a data subject, and when.",
                    subject: subject("Data subject", "subject:PSEUDONYM", "subject", true),
                    project: false,
                    window: false,
                },
                ReportType::AiActLog => ReportForm {
                    name: t.name(),
                    title: "EU AI Act log (Art. 12)",
                    about: "A deployment's record over a time window.",
                    subject: subject("Deployment", "deployment:production/fraud-detector", "deployment", true),
                    project: false,
                    window: true,
                },
                ReportType::AuditTrail => ReportForm {
                    name: t.name(),
                    title: "Audit trail",
                    about: "Every event about an entity, or in a time window (and project), each with its hash.",
                    subject: subject("Entity (optional)", "model:fraud-detector", "", false),
                    project: true,
                    window: true,
                },
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "reports.html", config = "src/http/console/askama.toml")]
struct ReportsPage {
    chrome: Chrome,
    forms: Vec<ReportForm>,
}

/// `GET /ui/reports`: refused, as the API refuses every report, to a
/// caller with no project to report on.
pub async fn page(
    req: actix_web::HttpRequest,
    viewer: Viewer<ReadReports>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let guard = viewer.also::<ReadReports>(&req)?;
    let store = state.store.clone();
    state
        .blocking(move || -> Result<_, crate::http::ApiError> {
            crate::http::reports::report_projects(&guard, &mut *store.conn()?)
        })
        .await??;
    page::html(&ReportsPage { chrome: viewer.chrome("Reports", "reports"), forms: forms() })
}

/// A report form as submitted: empty fields are "not given".
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportFormQuery {
    #[serde(default)]
    subject: String,
    #[serde(default)]
    project: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    format: String,
}

/// `GET /ui/reports/{type}?subject=&project=&from=&to=&format=`.
pub async fn download(
    viewer: Viewer<ReadReports>,
    state: web::Data<AppState>,
    kind: web::Path<String>,
    q: web::Query<ReportFormQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let kind = ReportType::parse(&kind.into_inner()).map_err(crate::http::ApiError::from)?;
    let query = ReportQuery {
        subject: given(&q.subject),
        project: given(&q.project),
        // A report's window takes in its last day.
        from: day_or_time(&q.from, false),
        to: day_or_time(&q.to, true),
        format: given(&q.format),
    };
    Ok(crate::http::reports::download(&state, viewer.guard, kind, query).await?)
}
