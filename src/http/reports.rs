//! `GET /api/v1/reports/{type}`.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::auth::Guarded;
use super::{ApiError, AppState};
use crate::auth::actions::ReadReports;
use crate::ledger::timestamp;
use crate::reports::{self, ReportError, ReportFormat, ReportRequest, ReportType};

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::Invalid(m) => ApiError::new(crate::error_code::ErrorCode::InvalidReport, m),
            ReportError::NotFound(m) => ApiError::not_found(m),
            ReportError::Store(e) => e.into(),
            ReportError::Proof(e) => e.into(),
            other => ApiError::internal(other),
        }
    }
}

/// The projects whose events may go into the caller's reports (`None`: all):
/// those it may both read events and reports in. 403 when there is none.
pub fn report_projects(
    guard: &Guarded<ReadReports>,
    conn: &mut crate::store::DbConn,
) -> Result<Option<Vec<String>>, ApiError> {
    let readable = guard.readable_projects_in(conn)?;
    if guard.allows_in(None) {
        return Ok(readable);
    }
    let candidates = match readable {
        Some(projects) => projects,
        None => crate::store::events::projects(conn)?,
    };
    let allowed: Vec<String> = candidates.into_iter().filter(|p| guard.allows_in(Some(p))).collect();
    if allowed.is_empty() {
        // Refused, with the message every other route gives.
        guard.require_in(None)?;
    }
    Ok(Some(allowed))
}

/// Query of `GET /api/v1/reports/{type}`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// The model, dataset, deployment or subject the report is about.
    pub subject: Option<String>,
    /// Limit the inventory or audit trail to one project.
    pub project: Option<String>,
    /// RFC 3339 start of the window.
    pub from: Option<String>,
    /// RFC 3339 end of the window.
    pub to: Option<String>,
    /// `pdf` (default), `json` or `csv`.
    pub format: Option<String>,
}

/// `GET /api/v1/reports/{type}?subject=&project=&from=&to=&format=pdf|json|csv`:
/// a report as of a freshly signed checkpoint, the same bytes `govledger
/// report` writes for the same ledger state.
#[utoipa::path(get, path = "/api/v1/reports/{type}", tag = "reports", params(ReportQuery,
        ("type" = ReportType, Path, description = "The report type (reports/README.md)")),
    responses(
        (status = 200, description = "The report, as of a freshly signed checkpoint; every statement cites seq and hash", content(
            (Vec<u8> = "application/pdf"),
            (Object = "application/json"),
            (String = "text/csv"),
        )),
    ))]
pub async fn report(
    guard: Guarded<ReadReports>,
    state: web::Data<AppState>,
    kind: web::Path<String>,
    query: web::Query<ReportQuery>,
) -> Result<HttpResponse, ApiError> {
    let kind = ReportType::parse(&kind.into_inner())?;
    download(&state, guard, kind, query.into_inner()).await
}

/// Report `kind` as `q` asks for it, as a download: the one path of the
/// API and the console.
pub async fn download(
    state: &web::Data<AppState>,
    guard: Guarded<ReadReports>,
    kind: ReportType,
    q: ReportQuery,
) -> Result<HttpResponse, ApiError> {
    let format = ReportFormat::parse(q.format.as_deref().unwrap_or("pdf"))
        .map_err(|e| ApiError::new(crate::error_code::ErrorCode::InvalidQuery, e.to_string()))?;
    let normalize = |name: &str, t: Option<String>| -> Result<Option<String>, ApiError> {
        t.map(|t| timestamp::normalize(&t))
            .transpose()
            .map_err(|e| ApiError::new(crate::error_code::ErrorCode::InvalidQuery, format!("{name}: {e}")))
    };
    let request = ReportRequest {
        kind,
        subject: q.subject,
        project: q.project,
        from: normalize("from", q.from)?,
        to: normalize("to", q.to)?,
        // Filled in below, off the async executor: it may read the projects.
        readable: None,
    };
    let state2 = state.clone();
    let bytes = state
        .blocking(move || -> Result<Vec<u8>, ApiError> {
            let mut request = request;
            request.readable = report_projects(&guard, &mut *state2.store.conn()?)?;
            let produced = reports::produce(
                &request,
                &state2.store,
                &state2.proofs,
                state2.governance.rules(),
                &state2.templates_dir,
                format,
            )?;
            Ok(produced.bytes)
        })
        .await??;
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{kind}.{}\"", format.extension())))
        .body(bytes))
}

/// The model dossier of `model`, built as of the latest signed checkpoint
/// (signing none per view), for reading on screen.
pub async fn dossier(
    state: &web::Data<AppState>,
    guard: Guarded<ReadReports>,
    model: String,
) -> Result<reports::Report, ApiError> {
    let state2 = state.clone();
    state
        .blocking(move || -> Result<reports::Report, ApiError> {
            let mut request = ReportRequest::new(ReportType::ModelDossier);
            request.subject = Some(model);
            request.readable = report_projects(&guard, &mut *state2.store.conn()?)?;
            let checkpoint = match state2.proofs.latest()? {
                Some(c) => c,
                None => state2.proofs.publish()?.ok_or_else(|| ApiError::not_found("the ledger is empty"))?,
            };
            let (report, _) = reports::build(
                &request,
                &state2.store,
                &state2.proofs,
                &checkpoint,
                state2.governance.rules(),
                &state2.templates_dir,
            )?;
            Ok(report)
        })
        .await?
}

#[cfg(test)]
mod tests {
    /// The names the OpenAPI description gives (serde's) are the ones the
    /// handler parses.
    #[test]
    fn the_described_report_types_are_the_served_ones() {
        let schema = serde_json::to_value(<super::ReportType as utoipa::PartialSchema>::schema()).unwrap();
        let described: Vec<&str> = schema["enum"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        let served: Vec<&str> = super::ReportType::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(described, served);
        assert!(served.iter().all(|k| super::ReportType::parse(k).is_ok()));
    }
}
