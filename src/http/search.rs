//! `GET /api/v1/search`.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::auth::{Caller, Guarded};
use super::params::bounded_page_size;
use super::{ApiError, AppState};
use crate::auth::actions::ReadEvents;
use crate::search::query::SearchResults;
use crate::search::query::{Sort, MAX_LIMIT};

/// Hits per page when the query gives no `limit`: a search is read by a
/// person, and each hit carries snippets.
const DEFAULT_LIMIT: u32 = 20;
use crate::search::{SearchError, SearchRequest};
use crate::store::events;

/// How long `consistent=true` waits for the index to reach the head.
const CONSISTENT_WAIT: Duration = Duration::from_secs(10);

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> Self {
        match e {
            SearchError::Query(message) => ApiError::new(crate::error_code::ErrorCode::MalformedQuery, message),
            SearchError::Lagging { .. } => ApiError::new(crate::error_code::ErrorCode::IndexLagging, e.to_string()),
            SearchError::Store(e) => e.into(),
            other => ApiError::internal(other),
        }
    }
}

/// Query string of `GET /api/v1/search`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// The query (docs/SEARCH.md); all events without it.
    pub q: Option<String>,
    pub kind: Option<String>,
    /// The subject's entity type (`model`, `dataset`, ...).
    pub entity_type: Option<String>,
    pub actor: Option<String>,
    pub project: Option<String>,
    /// RFC 3339 lower bound of `recorded_at`.
    pub from: Option<String>,
    /// RFC 3339 upper bound of `recorded_at`.
    pub to: Option<String>,
    /// `relevance` (default with `q`) or `time`.
    #[param(pattern = "^(relevance|time)$")]
    pub sort: Option<String>,
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Wait until the index holds every event recorded before the request.
    pub consistent: Option<bool>,
}

/// `GET /api/v1/search?q=&kind=&entity_type=&actor=&project=&from=&to=&sort=&limit=&cursor=&consistent=`.
/// Only events the caller may read are searched, counted and faceted.
#[utoipa::path(get, path = "/api/v1/search", tag = "search", params(SearchQuery),
    responses((status = 200, description = "Hits, totals and facets over the events the caller may read", body = SearchResults)))]
pub async fn search(
    guard: Guarded<ReadEvents>,
    state: web::Data<AppState>,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let started = std::time::Instant::now();
    let answer = run(&state, guard.into_caller(), query.into_inner()).await;
    crate::metrics::get().search_seconds.observe_duration(started.elapsed());
    Ok(HttpResponse::Ok().json(answer?))
}

/// The search `q` asks for, over the events `caller` may read: the one
/// path of the API and the console.
pub async fn run(state: &web::Data<AppState>, caller: Caller, q: SearchQuery) -> Result<SearchResults, ApiError> {
    let sort = match q.sort.as_deref() {
        None if q.q.as_deref().is_none_or(|s| s.trim().is_empty()) => Sort::Time,
        None | Some("relevance") => Sort::Relevance,
        Some("time") => Sort::Time,
        Some(other) => {
            return Err(ApiError::new(
                crate::error_code::ErrorCode::InvalidQuery,
                format!("sort must be relevance or time, not {other:?}"),
            ))
        }
    };
    let limit = bounded_page_size(q.limit, DEFAULT_LIMIT, u32::try_from(MAX_LIMIT).unwrap_or(u32::MAX))?;
    for (name, value) in [("from", &q.from), ("to", &q.to)] {
        if let Some(t) = value {
            crate::ledger::timestamp::normalize(t)
                .map_err(|e| ApiError::new(crate::error_code::ErrorCode::InvalidQuery, format!("{name}: {e}")))?;
        }
    }
    let store = state.store.clone();
    let (projects, head) = state
        .blocking(move || -> Result<_, ApiError> {
            let mut conn = store.conn()?;
            let projects = caller.readable_projects_in(&mut conn)?;
            Ok((projects, events::head(&mut conn)?.size))
        })
        .await??;
    if q.consistent == Some(true) {
        state.search.wait_for(head, CONSISTENT_WAIT).await?;
    }
    let request = SearchRequest {
        q: q.q.unwrap_or_default(),
        kind: q.kind,
        entity_type: q.entity_type,
        actor: q.actor,
        project: q.project,
        from: q.from,
        to: q.to,
        sort,
        limit,
        cursor: q.cursor,
        projects,
    };
    let index = state.search.clone();
    Ok(state.blocking(move || index.search(&request)).await??)
}
