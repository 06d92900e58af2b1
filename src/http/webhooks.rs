//! `/api/v1/webhooks`: subscriptions to signed deliveries of the events
//! (docs/WEBHOOKS.md). A subscription belongs to the projects it delivers
//! from, and a caller sees and manages it only where the policy lets them
//! in every one of those projects (for one over every project: in all, with
//! a token for every project).

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::auth::{Caller, Guarded};
use super::body::{Body, OptionalBody};
use super::params::{bounded_page_size, Seq};
use super::{ApiError, AppState};
use crate::auth::actions::{Guard, ManageWebhooks, ReadWebhooks};
use crate::error_code::ErrorCode;
use crate::store::webhooks::DeliveryRow;
use crate::webhooks::service::RotatedSecret;
use crate::webhooks::subscription::Creator;
use crate::webhooks::{
    ChangeRequest, CreateRequest, CreatedSubscription, Subscription, SubscriptionView, WebhookError,
};

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::Invalid(m) => ApiError::new(ErrorCode::InvalidRequest, m),
            WebhookError::NotFound(m) => ApiError::not_found(m),
            WebhookError::Forbidden(m) => ApiError::new(ErrorCode::Forbidden, m),
            WebhookError::NoMasterKey => ApiError::new(ErrorCode::MasterKeyRequired, e.to_string()),
            WebhookError::Internal(cause) => ApiError::internal(cause),
            WebhookError::Store(e) => e.into(),
            WebhookError::Append(e) => e.into(),
        }
    }
}

/// Whether `caller` may perform `action` on every project `subscription`
/// delivers from.
fn may(caller: &Caller, action: &crate::auth::actions::Action, subscription: &Subscription) -> bool {
    match subscription.projects() {
        None => caller.may(action, "", None),
        Some(projects) => projects.iter().all(|p| caller.may(action, "", Some(p))),
    }
}

/// The subscription `id` if `guard` may manage it: 404 when the caller may
/// not even see it, 403 when it may see but not change it.
async fn managed(state: &AppState, guard: &Guarded<ManageWebhooks>, id: &str) -> Result<Subscription, ApiError> {
    let subscription = state.webhooks.get(id).await?;
    if may(guard, &ManageWebhooks::ACTION, &subscription) {
        return Ok(subscription);
    }
    if may(guard, &ReadWebhooks::ACTION, &subscription) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("{} may not manage webhook {id}, which delivers from projects it may not manage", guard.sub()),
        ));
    }
    Err(ApiError::not_found(format!("no webhook {id}")))
}

/// Checks that the caller may manage, and read events in, every project of
/// `projects`; none means every project, which only a token for every
/// project may ask for (a scoped token names its projects).
fn scoped_projects(guard: &Guarded<ManageWebhooks>, projects: Vec<String>) -> Result<Vec<String>, ApiError> {
    if projects.is_empty() {
        if !guard.token_projects().iter().any(|p| p == "*") {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "a subscription without filter.projects delivers from every project, and {}'s token is for {} \
                     only: name them in filter.projects",
                    guard.sub(),
                    guard.token_projects().join(", ")
                ),
            ));
        }
        guard.require_in(None)?;
        if !guard.reads(None) {
            return Err(ApiError::new(ErrorCode::Forbidden, format!("{} may not read every project", guard.sub())));
        }
    }
    for p in &projects {
        guard.require_in(Some(p))?;
        if !guard.reads(Some(p)) {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("{} may not read events in project {p}, so it may not subscribe to them", guard.sub()),
            ));
        }
    }
    Ok(projects)
}

/// `POST /api/v1/webhooks`: records `webhook.created` and answers the
/// subscription with its signing secret, shown this once.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = CreateRequest,
    responses((status = 201, description = "Created; `secret` is shown this once and sealed on the record", body = CreatedSubscription)))]
pub async fn create(
    guard: Guarded<ManageWebhooks>,
    state: web::Data<AppState>,
    Body(mut request): Body<CreateRequest>,
) -> Result<HttpResponse, ApiError> {
    request.filter.projects = scoped_projects(&guard, std::mem::take(&mut request.filter.projects))?;
    let creator = Creator {
        sub: guard.sub().to_owned(),
        roles: guard.roles().to_vec(),
        projects: guard.token_projects().to_vec(),
    };
    let created = state.webhooks.create(guard.sub(), creator, request).await?;
    Ok(HttpResponse::Created().json(created))
}

/// `GET /api/v1/webhooks`: the subscriptions the caller may see.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    responses((status = 200, description = "Subscriptions, oldest first", body = WebhookList)))]
pub async fn list(guard: Guarded<ReadWebhooks>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let visible: Vec<Subscription> =
        state.webhooks.current().await?.live.into_values().filter(|s| may(&guard, &ReadWebhooks::ACTION, s)).collect();
    let mut webhooks = state.webhooks.views(visible).await?;
    webhooks.sort_by_key(|w| w.created_seq);
    Ok(HttpResponse::Ok().json(WebhookList { webhooks }))
}

/// The answer of `GET /api/v1/webhooks`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<SubscriptionView>,
}

async fn visible(state: &AppState, guard: &Guarded<ReadWebhooks>, id: &str) -> Result<Subscription, ApiError> {
    let subscription = state.webhooks.get(id).await?;
    if !may(guard, &ReadWebhooks::ACTION, &subscription) {
        return Err(ApiError::not_found(format!("no webhook {id}")));
    }
    Ok(subscription)
}

/// `GET /api/v1/webhooks/{id}`: one subscription and where its delivery stands.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The subscription's id")),
    responses((status = 200, description = "The subscription", body = SubscriptionView)))]
pub async fn get(
    guard: Guarded<ReadWebhooks>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let subscription = visible(&state, &guard, &id).await?;
    Ok(HttpResponse::Ok().json(state.webhooks.view(subscription).await?))
}

/// `PATCH /api/v1/webhooks/{id}`: pauses, resumes, or changes the URL,
/// filter or description; records `webhook.changed`.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", request_body = ChangeRequest,
    params(("id" = String, Path, description = "The subscription's id")),
    responses((status = 200, description = "The subscription as changed", body = SubscriptionView)))]
pub async fn change(
    guard: Guarded<ManageWebhooks>,
    state: web::Data<AppState>,
    id: web::Path<String>,
    Body(mut request): Body<ChangeRequest>,
) -> Result<HttpResponse, ApiError> {
    managed(&state, &guard, &id).await?;
    if let Some(filter) = request.filter.as_mut() {
        filter.projects = scoped_projects(&guard, std::mem::take(&mut filter.projects))?;
    }
    let changed = state.webhooks.change(guard.sub(), &id, request).await?;
    Ok(HttpResponse::Ok().json(state.webhooks.view(changed).await?))
}

/// Body of `DELETE /api/v1/webhooks/{id}` (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    /// Why, for the record.
    reason: Option<String>,
}

/// `DELETE /api/v1/webhooks/{id}`: records `webhook.deleted`; delivery stops.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The subscription's id")),
    request_body(content = Option<DeleteRequest>, description = "Optional; may be left out entirely"),
    responses((status = 204, description = "Deleted; `webhook.deleted` is on the record")))]
pub async fn delete(
    guard: Guarded<ManageWebhooks>,
    state: web::Data<AppState>,
    id: web::Path<String>,
    OptionalBody(request): OptionalBody<DeleteRequest>,
) -> Result<HttpResponse, ApiError> {
    managed(&state, &guard, &id).await?;
    state.webhooks.delete(guard.sub(), &id, request.reason).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /api/v1/webhooks/{id}/rotate-secret`: a new secret, shown this
/// once; the old one keeps signing beside it for a day.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path, description = "The subscription's id")),
    responses((status = 200, description = "The new secret", body = RotatedSecret)))]
pub async fn rotate_secret(
    guard: Guarded<ManageWebhooks>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    managed(&state, &guard, &id).await?;
    Ok(HttpResponse::Ok().json(state.webhooks.rotate(guard.sub(), &id).await?))
}

/// Query of `POST /api/v1/webhooks/{id}/replay`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReplayQuery {
    /// Delivery starts again at this seq.
    #[param(value_type = u64, minimum = 1)]
    from_seq: Seq,
}

/// `POST /api/v1/webhooks/{id}/replay?from_seq=N`: delivers again every
/// matching event from seq N, with the `webhook-id`s they had.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/replay", tag = "webhooks",
    params(("id" = String, Path, description = "The subscription's id"), ReplayQuery),
    responses((status = 202, description = "Recorded (`webhook.changed` with `replay_from_seq`); delivery follows", body = SubscriptionView)))]
pub async fn replay(
    guard: Guarded<ManageWebhooks>,
    state: web::Data<AppState>,
    id: web::Path<String>,
    web::Query(q): web::Query<ReplayQuery>,
) -> Result<HttpResponse, ApiError> {
    managed(&state, &guard, &id).await?;
    let replayed = state.webhooks.replay(guard.sub(), &id, q.from_seq.0).await?;
    Ok(HttpResponse::Accepted().json(state.webhooks.view(replayed).await?))
}

/// Query of `GET /api/v1/webhooks/{id}/deliveries`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// Attempts per page (default 50, at most 1000).
    limit: Option<u32>,
    /// Only attempts older than this `attempt_id` (the next page).
    before: Option<i64>,
}

/// The answer of `GET /api/v1/webhooks/{id}/deliveries`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DeliveryList {
    /// Newest first.
    pub deliveries: Vec<DeliveryRow>,
    /// `before` for the next page, when there is one.
    pub next_before: Option<i64>,
}

/// `GET /api/v1/webhooks/{id}/deliveries`: recent attempts, newest first,
/// with status, latency and error.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "The subscription's id"), DeliveriesQuery),
    responses((status = 200, description = "Attempts, newest first", body = DeliveryList)))]
pub async fn deliveries(
    guard: Guarded<ReadWebhooks>,
    state: web::Data<AppState>,
    id: web::Path<String>,
    web::Query(q): web::Query<DeliveriesQuery>,
) -> Result<HttpResponse, ApiError> {
    visible(&state, &guard, &id).await?;
    let size = bounded_page_size(q.limit, 50, 1000)?;
    let rows = state.webhooks.deliveries(&id, size as u32 + 1, q.before).await?;
    let (deliveries, more) = super::params::split_page(rows, size);
    let next_before = more.then(|| deliveries.last().map(|d| d.id)).flatten();
    Ok(HttpResponse::Ok().json(DeliveryList { deliveries, next_before }))
}
