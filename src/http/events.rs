//! `/api/v1/events`, `/api/v1/head`, `/api/v1/verify`.

use std::collections::HashSet;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::auth::{Caller, Guarded};
use super::body::Body;
use super::params::Seq;
use super::params::{page_size, split_page};
use super::{ApiError, AppState};
use crate::auth::actions::{AppendEvents, ReadEvents, ReadLedger, VerifyLedger};
use crate::governance::{kinds, subjects};
use crate::ledger::event::{EventJson, SERVER_ASSIGNED_FIELDS};
use crate::ledger::personal::MasterKey;
use crate::ledger::{EntityRef, Event, EventDraft, EventKind, EventRequest};
use crate::store::{Appended, ChainReport, EventFilter};

/// `POST /api/v1/events`: one event, or `{"events": [...]}` appended
/// atomically and in order. 201 when written; 200 with
/// `Idempotent-Replayed: true` when the idempotency keys show a retry.
#[utoipa::path(post, path = "/api/v1/events", tag = "events",
    request_body(content = AppendBody, description = "One event, or `{\"events\": [...]}` appended atomically in order"),
    responses(
        (status = 201, description = "Recorded; a batch answers `{\"events\": [...]}`", body = AppendAnswer,
            headers(("Location" = String, description = "The event's URL (single events)"))),
        (status = 200, description = "A retry: every idempotency key was seen before; nothing was written", body = AppendAnswer,
            headers(("Idempotent-Replayed" = String, description = "`true`"))),
    ))]
pub async fn append(
    guard: Guarded<AppendEvents>,
    state: web::Data<AppState>,
    Body(body): Body<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let (drafts, is_batch) = parse_append_body(body, state.limits.max_batch_events, state.master_key.as_deref())?;
    for draft in &drafts {
        guard.require_append(draft.kind.as_str(), draft.project.as_deref())?;
    }
    let caller = guard.into_caller();
    let appended = state.governance.append_events(caller.sub().to_owned(), drafts).await?;
    let (status, replayed) = match &appended {
        Appended::Created(_) => (StatusCode::CREATED, false),
        Appended::Replayed(_) => (StatusCode::OK, true),
    };
    let events = appended.events().to_vec();
    let (events, views) = with_personal(&state, caller, events).await?;
    let mut response = HttpResponse::build(status);
    if replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    let json = to_json(&events, views)?;
    if is_batch {
        Ok(response.json(EventsBatch { events: json }))
    } else {
        let event = json.into_iter().next().ok_or_else(|| ApiError::internal("append returned no event"))?;
        response.insert_header((header::LOCATION, format!("/api/v1/events/{}", event.seq)));
        Ok(response.json(event))
    }
}

/// The personal fields of `events` as `caller` may see them (see
/// [`subjects::reveal`]); reads keys only when an event carries any.
pub async fn with_personal(
    state: &web::Data<AppState>,
    caller: Caller,
    events: Vec<Event>,
) -> Result<(Vec<Event>, Vec<Option<serde_json::Value>>), ApiError> {
    let may_read = |e: &Event| caller.reads_personal(e.project.as_deref());
    if !subjects::needs_keys(&events, may_read) {
        let views = subjects::redacted(&events);
        return Ok((events, views));
    }
    let store = state.store.clone();
    let master = state.master_key.clone();
    state
        .blocking(move || -> Result<_, ApiError> {
            let views = subjects::reveal(&mut *store.conn()?, master.as_deref(), &events, |e| {
                caller.reads_personal(e.project.as_deref())
            })?;
            Ok((events, views))
        })
        .await?
}

fn to_json(events: &[Event], views: Vec<Option<serde_json::Value>>) -> Result<Vec<EventJson<'_>>, ApiError> {
    events
        .iter()
        .zip(views)
        .map(|(e, personal)| Ok(EventJson { personal, ..e.to_json().map_err(ApiError::internal)? }))
        .collect()
}

/// Splits a request body into validated drafts; `true` for the batch form.
pub fn parse_append_body(
    body: serde_json::Value,
    max_batch: usize,
    master_key: Option<&MasterKey>,
) -> Result<(Vec<EventDraft>, bool), ApiError> {
    let (items, batch) = match body {
        serde_json::Value::Object(mut map) if map.contains_key("events") => {
            if map.len() != 1 {
                return Err(ApiError::new(
                    crate::error_code::ErrorCode::MalformedRequest,
                    "a batch body must contain only `events`",
                ));
            }
            match map.remove("events") {
                Some(serde_json::Value::Array(items)) => (items, true),
                _ => {
                    return Err(ApiError::new(
                        crate::error_code::ErrorCode::MalformedRequest,
                        "`events` must be an array",
                    ))
                }
            }
        }
        single => (vec![single], false),
    };
    if items.is_empty() {
        return Err(ApiError::new(
            crate::error_code::ErrorCode::EmptyBatch,
            "`events` must contain at least one event",
        ));
    }
    if items.len() > max_batch {
        return Err(ApiError::new(
            crate::error_code::ErrorCode::BatchTooLarge,
            format!("a batch may hold at most {max_batch} events; this one has {}", items.len()),
        ));
    }
    let mut drafts = Vec::with_capacity(items.len());
    let mut keys = HashSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let at = |msg: String| {
            if batch {
                format!("events[{i}]: {msg}")
            } else {
                msg
            }
        };
        let serde_json::Value::Object(fields) = &item else {
            return Err(ApiError::new(
                crate::error_code::ErrorCode::MalformedRequest,
                at("an event must be a JSON object".into()),
            ));
        };
        if let Some(field) = SERVER_ASSIGNED_FIELDS.iter().find(|f| fields.contains_key(**f)) {
            return Err(ApiError::new(
                crate::error_code::ErrorCode::ServerAssignedField,
                at(format!("`{field}` is assigned by the server and must not be sent")),
            ));
        }
        let request: EventRequest = serde_json::from_value(item)
            .map_err(|e| ApiError::new(crate::error_code::ErrorCode::MalformedRequest, at(e.to_string())))?;
        let draft = EventDraft::from_request_with(request, master_key)
            .map_err(|e| ApiError::new(crate::error_code::ErrorCode::InvalidEvent, at(e.to_string())))?;
        if let Some(endpoint) = kinds::endpoint_for(draft.kind.as_str()) {
            return Err(ApiError::new(
                crate::error_code::ErrorCode::UseEndpoint,
                at(format!("{} events are recorded only by the server, through {endpoint}", draft.kind)),
            ));
        }
        kinds::validate(&draft)
            .map_err(|e| ApiError::new(crate::error_code::ErrorCode::InvalidEvent, at(e.to_string())))?;
        if let Some(key) = &draft.idempotency_key {
            if !keys.insert(key.clone()) {
                return Err(ApiError::new(
                    crate::error_code::ErrorCode::InvalidEvent,
                    at(format!("idempotency_key {key:?} is used twice in this request")),
                ));
            }
        }
        drafts.push(draft);
    }
    Ok((drafts, batch))
}

/// `GET /api/v1/events/{seq}`.
/// An event the caller may not read is answered exactly like one that does
/// not exist.
#[utoipa::path(get, path = "/api/v1/events/{seq}", tag = "events",
    params(("seq" = Seq, Path, description = "The event's sequence number, from 1")),
    responses((status = 200, description = "The event", body = EventJson)))]
pub async fn get(
    guard: Guarded<ReadEvents>,
    state: web::Data<AppState>,
    seq: web::Path<Seq>,
) -> Result<HttpResponse, ApiError> {
    let Seq(seq) = seq.into_inner();
    let (event, personal) = read_one(&state, guard, seq).await?;
    Ok(HttpResponse::Ok().json(EventJson { personal, ..event.to_json().map_err(ApiError::internal)? }))
}

/// Event `seq` with its personal fields as the caller may see them; 404
/// for an event the caller may not read, exactly as for one that does not
/// exist. The one path of the API and the console.
pub async fn read_one(
    state: &web::Data<AppState>,
    guard: Guarded<ReadEvents>,
    seq: u64,
) -> Result<(Event, Option<serde_json::Value>), ApiError> {
    let store = state.store.clone();
    let event = state.blocking(move || store.event(seq)).await??;
    match event.filter(|e| guard.allows_in(e.project.as_deref())) {
        Some(event) => {
            let (mut events, mut views) = with_personal(state, guard.into_caller(), vec![event]).await?;
            Ok((events.remove(0), views.remove(0)))
        }
        None => Err(ApiError::not_found(format!("no event with seq {seq}"))),
    }
}

/// Query string of `GET /api/v1/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only events of this kind.
    kind: Option<String>,
    /// Only events about this entity; without a version, about any of its versions.
    #[param(value_type = Option<EntityRef>)]
    subject: Option<String>,
    /// Only events recorded by this actor.
    actor: Option<String>,
    /// The cursor: `next_after_seq` of the previous page.
    #[param(value_type = Option<Seq>)]
    after_seq: Option<Seq>,
    /// Page size: 1 to the configured maximum (default 1000), default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// `GET /api/v1/events?kind=&subject=&actor=&after_seq=&limit=`, ascending
/// by seq. `next_after_seq` is the cursor for the next page, `null` on the
/// last one.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(ListQuery),
    responses((status = 200, description = "Events in ascending seq", body = EventsPage)))]
pub async fn list(
    guard: Guarded<ReadEvents>,
    state: web::Data<AppState>,
    web::Query(q): web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_size(q.limit, &state.limits)?;
    let caller = guard.into_caller();
    if let Some(kind) = &q.kind {
        EventKind::parse(kind).map_err(|e| ApiError::new(crate::error_code::ErrorCode::InvalidQuery, e.to_string()))?;
    }
    if let Some(subject) = &q.subject {
        EntityRef::parse(subject)
            .map_err(|e| ApiError::new(crate::error_code::ErrorCode::InvalidQuery, e.to_string()))?;
    }
    let store = state.store.clone();
    let who = caller.clone();
    let projects = state.blocking(move || who.readable_projects_in(&mut *store.conn()?)).await??;
    let filter = EventFilter {
        kind: q.kind,
        subject: q.subject,
        subject_exact: false,
        actor: q.actor,
        projects,
        after_seq: q.after_seq.map_or(0, |Seq(s)| s),
        // One more than asked, to know whether another page follows.
        limit: u32::try_from(limit + 1).unwrap_or(u32::MAX),
    };
    let store = state.store.clone();
    let events = state.blocking(move || store.list(&filter)).await??;
    let (events, more) = split_page(events, limit);
    let next_after_seq = if more { events.last().map(|e| e.seq) } else { None };
    let (events, views) = with_personal(&state, caller, events).await?;
    Ok(HttpResponse::Ok().json(EventsPage { events: to_json(&events, views)?, next_after_seq }))
}

/// The answer to a batch append.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct EventsBatch<'a> {
    events: Vec<EventJson<'a>>,
}

/// A page of a listing; `next_after_seq` is `null` on the last page.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct EventsPage<'a> {
    events: Vec<EventJson<'a>>,
    next_after_seq: Option<u64>,
}

/// What `POST /api/v1/events` takes (for the OpenAPI description; the
/// handler reads the body itself to tell the two forms apart).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum AppendBody {
    One(Box<EventRequest>),
    Batch(EventsRequest),
}

/// A batch of events to append atomically, in order.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // never read: it only describes the batch form
pub struct EventsRequest {
    events: Vec<EventRequest>,
}

/// What `POST /api/v1/events` answers: the stored event, or the batch.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // never built: it only describes the two answers
pub enum AppendAnswer<'a> {
    One(Box<EventJson<'a>>),
    Batch(EventsBatch<'a>),
}

/// The ledger's size and the hash of its last event (`null` when empty).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Head {
    size: u64,
    head_hash: Option<String>,
}

/// `GET /api/v1/head`: the ledger's size and last hash.
#[utoipa::path(get, path = "/api/v1/head", tag = "events",
    responses((status = 200, description = "The ledger's size and last hash", body = Head)))]
pub async fn head(_: Guarded<ReadLedger>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let head = state.blocking(move || store.head()).await??;
    Ok(HttpResponse::Ok().json(Head { size: head.size, head_hash: head.hash.map(hex::encode) }))
}

/// `GET /api/v1/verify`: recomputes the whole chain, like `govledger verify`.
#[utoipa::path(get, path = "/api/v1/verify", tag = "events",
    responses((status = 200, description = "Whether the chain and stored checkpoints verify; the first failure otherwise", body = ChainReport)))]
pub async fn verify(_: Guarded<VerifyLedger>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let proofs = state.proofs.clone();
    let report = state.blocking(move || proofs.verify()).await??;
    Ok(HttpResponse::Ok().json(report))
}
