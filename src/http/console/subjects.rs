//! `/ui/subjects`: the data-protection officer's pages: a data subject's
//! Art. 15 access answer on screen, and their erasure (Art. 17) with a
//! confirmation step, through the services behind `/api/v1/subjects/{id}`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::page::{self, given, see_other, urlencode, utc, Chrome, ConsoleError, Viewer};
use crate::auth::actions::{EraseSubjects, Guard as _, ReadSubjects};
use crate::governance::subjects::{self, AccessAnswer};
use crate::http::{ApiError, AppState};

#[derive(Template)]
#[template(path = "subjects.html", config = "src/http/console/askama.toml")]
struct SubjectPage {
    chrome: Chrome,
    /// The id typed, for the form; the answer is about it.
    id: String,
    answer: Option<AccessAnswer>,
    /// Personal fields of each event, pretty-printed.
    fields: Vec<String>,
    may_erase: bool,
    may_report: bool,
    /// The erasure just recorded.
    erased_seq: Option<u64>,
    error: Option<String>,
}

impl SubjectPage {
    fn entity_href(&self, r: &str) -> String {
        super::svg::entity_href(r)
    }

    fn utc(&self, t: &str) -> String {
        utc(t)
    }

    fn certificate(&self, pseudonym: &str) -> String {
        format!("/ui/reports/gdpr-erasure?subject={}&format=pdf", urlencode(&subjects::subject_ref(pseudonym)))
    }

    fn action(&self) -> String {
        format!("/ui/subjects/{}/erase", urlencode(&self.id))
    }
}

/// Query of `/ui/subjects`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectQuery {
    #[serde(default)]
    id: String,
    erased: Option<u64>,
}

async fn answer_page(
    viewer: &Viewer<ReadSubjects>,
    state: &web::Data<AppState>,
    id: String,
    erased_seq: Option<u64>,
    error: Option<(StatusCode, String)>,
) -> Result<HttpResponse, ConsoleError> {
    let caller = viewer.guard.caller().clone();
    let may_erase = caller.may(&EraseSubjects::ACTION, "", None);
    let may_report = caller.may(&crate::auth::actions::ReadReports::ACTION, "", None);
    let (answer, fields) = if id.is_empty() {
        (None, Vec::new())
    } else {
        let inner = state.clone();
        let subject = id.clone();
        let answer = state
            .blocking(move || -> Result<_, ApiError> {
                let readable = caller.readable_projects_in(&mut *inner.store.conn()?)?;
                Ok(subjects::access(&inner.store, inner.master_key.as_deref(), &subject, readable.as_deref())?)
            })
            .await??;
        let fields =
            answer.events.iter().map(|e| serde_json::to_string_pretty(&e.fields).unwrap_or_default()).collect();
        (Some(answer), fields)
    };
    let (status, error) = match error {
        Some((s, e)) => (s, Some(e)),
        None => (StatusCode::OK, None),
    };
    let page = SubjectPage {
        chrome: viewer.chrome("Data subject", "subjects"),
        id,
        answer,
        fields,
        may_erase,
        may_report,
        erased_seq,
        error,
    };
    page::html_with(status, &page)
}

/// `GET /ui/subjects?id=`: the form, and the answer for the id typed.
pub async fn find(
    viewer: Viewer<ReadSubjects>,
    state: web::Data<AppState>,
    q: web::Query<SubjectQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let q = q.into_inner();
    answer_page(&viewer, &state, given(&q.id).unwrap_or_default(), q.erased, None).await
}

/// `GET /ui/subjects/{id}?erased=SEQ`: the Art. 15 answer.
pub async fn page(
    viewer: Viewer<ReadSubjects>,
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<SubjectQuery>,
) -> Result<HttpResponse, ConsoleError> {
    answer_page(&viewer, &state, id.into_inner(), q.erased, None).await
}

/// Form of `POST /ui/subjects/{id}/erase`.
#[derive(Debug, Deserialize)]
pub struct EraseForm {
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/subjects/{id}/erase`: erases once the officer has typed the id
/// again, through the service behind `POST /api/v1/subjects/{id}/erase`.
pub async fn erase(
    eraser: Viewer<EraseSubjects>,
    reader: Viewer<ReadSubjects>,
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: web::Form<EraseForm>,
) -> Result<HttpResponse, ConsoleError> {
    eraser.check_csrf(&form.csrf)?;
    let id = id.into_inner();
    if form.confirm != id {
        let why = "type the subject's id again, exactly, to confirm the erasure: it cannot be undone".to_owned();
        return answer_page(&reader, &state, id, None, Some((StatusCode::UNPROCESSABLE_ENTITY, why))).await;
    }
    let reason = given(&form.reason);
    match subjects::erase(&state.store, state.master_key.as_deref(), &id, eraser.guard.sub(), reason).await {
        Ok(certificate) => Ok(see_other(&format!("/ui/subjects/{}?erased={}", urlencode(&id), certificate.seq))),
        Err(e) => {
            let e = ApiError::from(e);
            answer_page(&reader, &state, id, None, Some((e.status(), e.message().to_owned()))).await
        }
    }
}
