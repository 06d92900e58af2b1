//! `/api/v1/subjects/{id}`: access answers and erasure of data subjects
//! (docs/PERSONAL_DATA.md). The id in the path is pseudonymised at once and
//! never logged or stored.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::auth::Guarded;
use super::body::OptionalBody;
use super::{ApiError, AppState};
use crate::auth::actions::{EraseSubjects, ReadSubjects};
use crate::governance::subjects;
use crate::governance::subjects::{AccessAnswer, ErasureCertificate};

/// Body of `POST /api/v1/subjects/{id}/erase` (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    /// Why, for the record (e.g. the data-subject request's reference).
    reason: Option<String>,
}

/// `POST /api/v1/subjects/{id}/erase` (dpo, admin): destroys the subject's
/// keys, records `subject.erased`, answers the erasure certificate.
#[utoipa::path(post, path = "/api/v1/subjects/{id}/erase", tag = "subjects",
    params(("id" = String, Path, min_length = 1, max_length = 256, description = "The data subject's id as given in `personal.subject_ids`")),
    request_body(content = Option<EraseRequest>, description = "Optional; may be left out entirely"),
    responses((status = 200, description = "Erased: the certificate. A subject erased already answers that erasure's certificate again, with `replayed: true` and `Idempotent-Replayed: true`, and nothing is written", body = ErasureCertificate)))]
pub async fn erase(
    guard: Guarded<EraseSubjects>,
    state: web::Data<AppState>,
    id: web::Path<String>,
    OptionalBody(request): OptionalBody<EraseRequest>,
) -> Result<HttpResponse, ApiError> {
    let certificate =
        subjects::erase(&state.store, state.master_key.as_deref(), &id, guard.sub(), request.reason).await?;
    let mut response = HttpResponse::Ok();
    if certificate.replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    Ok(response.json(certificate))
}

/// `GET /api/v1/subjects/{id}` (dpo, admin): which events, datasets, runs
/// and models involve the subject (GDPR Art. 15), and their erasures.
#[utoipa::path(get, path = "/api/v1/subjects/{id}", tag = "subjects",
    params(("id" = String, Path, min_length = 1, max_length = 256, description = "The data subject's id")),
    responses((status = 200, description = "The Art. 15 access answer", body = AccessAnswer)))]
pub async fn access(
    guard: Guarded<ReadSubjects>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let inner = state.clone();
    let caller = guard.into_caller();
    let answer = state
        .blocking(move || -> Result<_, ApiError> {
            let readable = caller.readable_projects_in(&mut *inner.store.conn()?)?;
            Ok(subjects::access(&inner.store, inner.master_key.as_deref(), &id, readable.as_deref())?)
        })
        .await??;
    Ok(HttpResponse::Ok().json(answer))
}
