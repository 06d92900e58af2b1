//! Administering subscriptions: each change is a `webhook.*` event, checked
//! before it is recorded; reading them folds those events.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::signing;
use super::subscription::{
    Changed, Created, Creator, Deleted, Filter, SealedSecret, Status, Subscription, Subscriptions, KINDS, SECRET_ALG,
};
use super::target;
use super::{WebhookConfig, WebhookError};
use crate::ledger::personal::MasterKey;
use crate::ledger::{timestamp, EventDraft, Kind};
use crate::store::webhooks::{self as cursors, CursorRow, DeliveryRow};
use crate::store::{events, EventFilter, Store, StoreError};

/// Most entries in each list of a filter.
const MAX_FILTER_ITEMS: usize = 100;
/// Longest description.
const MAX_DESCRIPTION: usize = 1000;

/// Body of `POST /api/v1/webhooks`.
#[derive(utoipa::ToSchema, Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// Where deliveries are POSTed: http(s), a public address unless the
    /// server allows private ones.
    pub url: String,
    /// Which events; none: every event the creator may read.
    #[serde(default)]
    pub filter: Filter,
    #[serde(default)]
    pub description: Option<String>,
}

/// Body of `PATCH /api/v1/webhooks/{id}`: what to change.
#[derive(utoipa::ToSchema, Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    #[serde(default)]
    pub url: Option<String>,
    /// Replaces the whole filter.
    #[serde(default)]
    pub filter: Option<Filter>,
    #[serde(default)]
    pub description: Option<String>,
    /// `paused` or `active` (which also resumes a disabled or failing one).
    #[serde(default)]
    pub status: Option<String>,
    /// Why, for the record.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Where delivery of a subscription stands.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct DeliveryState {
    /// Every event up to this seq was delivered or did not match.
    pub delivered_through: u64,
    /// Events in the ledger after `delivered_through` (matching or not).
    pub behind_events: u64,
    pub last_delivered_at: Option<String>,
    /// The event being retried, when one is.
    pub retrying_seq: Option<u64>,
    pub retrying_since: Option<String>,
    pub retry_attempts: u32,
    pub last_error: Option<String>,
    /// The replica delivering it now, if any.
    pub replica: Option<String>,
}

/// A subscription as the API shows it (never its secret).
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct SubscriptionView {
    pub id: String,
    pub url: String,
    pub description: String,
    pub filter: Filter,
    pub status: Status,
    pub status_reason: Option<String>,
    /// Whose reading rights deliveries follow.
    pub creator: Creator,
    pub created_by: String,
    pub created_at: String,
    pub created_seq: u64,
    /// The seq of the last `webhook.*` event about it.
    pub changed_seq: u64,
    /// Until when the secret replaced by the last rotation still signs.
    pub previous_secret_valid_until: Option<String>,
    pub delivery: DeliveryState,
}

/// A new subscription and its secret, shown this once.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct CreatedSubscription {
    #[serde(flatten)]
    pub subscription: SubscriptionView,
    /// `whsec_` and the base64 of the key: configure the receiver with it.
    pub secret: String,
}

/// A rotated secret, shown this once.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct RotatedSecret {
    pub id: String,
    pub secret: String,
    /// Until then deliveries carry a signature with the old secret too.
    pub previous_secret_valid_until: String,
}

/// The subscriptions of one ledger and their administration.
pub struct Webhooks {
    store: Store,
    master: Option<Arc<MasterKey>>,
    config: WebhookConfig,
    folded: Mutex<Subscriptions>,
    /// Wakes this replica's dispatcher when a subscription changed here.
    pub(crate) changed: tokio::sync::Notify,
}

impl Webhooks {
    pub fn new(store: Store, master: Option<Arc<MasterKey>>, config: WebhookConfig) -> Self {
        Self { store, master, config, folded: Mutex::default(), changed: tokio::sync::Notify::new() }
    }

    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn master(&self) -> Option<&MasterKey> {
        self.master.as_deref()
    }

    /// The subscriptions as of the head (blocking): folds in the
    /// `webhook.*` events recorded since the last call, by any replica.
    pub fn refresh(&self) -> Result<Subscriptions, StoreError> {
        let mut conn = self.store.conn()?;
        let mut folded = self.folded.lock().unwrap_or_else(|e| e.into_inner());
        // Read up to a head taken first: every event up to it is committed,
        // so no event of one kind is passed over while another is read.
        let head = events::head(&mut conn)?.size;
        if head > folded.through {
            let mut found = Vec::new();
            for kind in KINDS {
                let mut after = folded.through;
                loop {
                    let filter = EventFilter {
                        kind: Some(kind.as_str().into()),
                        after_seq: after,
                        limit: 1000,
                        ..Default::default()
                    };
                    let page = events::list(&mut conn, &filter)?;
                    let full = page.len() == 1000;
                    after = page.last().map_or(after, |e| e.seq);
                    found.extend(page.into_iter().filter(|e| e.seq <= head));
                    if !full || after >= head {
                        break;
                    }
                }
            }
            found.sort_by_key(|e| e.seq);
            folded.apply(&found);
            folded.through = head;
        }
        Ok(folded.clone())
    }

    /// [`Webhooks::refresh`] off the async executor.
    pub async fn current(self: &Arc<Self>) -> Result<Subscriptions, WebhookError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.refresh()).await.map_err(WebhookError::panicked)?.map_err(Into::into)
    }

    /// One subscription, or 404.
    pub async fn get(self: &Arc<Self>, id: &str) -> Result<Subscription, WebhookError> {
        self.current().await?.live.remove(id).ok_or_else(|| WebhookError::NotFound(format!("no webhook {id}")))
    }

    fn master_key(&self) -> Result<&MasterKey, WebhookError> {
        self.master.as_deref().ok_or(WebhookError::NoMasterKey)
    }

    /// Checks a URL's form and where it resolves to.
    async fn checked_url(&self, url: &str) -> Result<String, WebhookError> {
        let parsed = target::parse(url).map_err(|e| WebhookError::Invalid(e.to_string()))?;
        target::check(&parsed, &self.config.addresses).await.map_err(|e| WebhookError::Invalid(e.to_string()))?;
        Ok(url.to_owned())
    }

    /// A new secret, sealed for subscription `id`, and as its owner sees it.
    fn new_secret(&self, id: &str) -> Result<(SealedSecret, String), WebhookError> {
        let master = self.master_key()?;
        let bytes = master.random_secret().map_err(|e| WebhookError::Internal(e.to_string()))?;
        let sealed = master
            .seal_secret(&Subscription::subject_of(id), &bytes)
            .map_err(|e| WebhookError::Internal(e.to_string()))?;
        Ok((SealedSecret { alg: SECRET_ALG.into(), sealed }, signing::display_secret(&bytes)))
    }

    /// Records `webhook.created` for `creator` (whose reach the caller has
    /// checked) and answers the subscription with its secret.
    pub async fn create(
        self: &Arc<Self>,
        actor: &str,
        creator: Creator,
        request: CreateRequest,
    ) -> Result<CreatedSubscription, WebhookError> {
        self.master_key()?;
        let url = self.checked_url(&request.url).await?;
        let filter = validated_filter(request.filter)?;
        let description = validated_description(request.description)?.unwrap_or_default();
        let id = uuid::Uuid::now_v7().to_string();
        let (secret, shown) = self.new_secret(&id)?;
        let attributes = Created { url, description, filter, creator, secret };
        self.record(actor, Kind::WebhookCreated, &id, &attributes).await?;
        let subscription = self.get(&id).await?;
        Ok(CreatedSubscription { subscription: self.view(subscription).await?, secret: shown })
    }

    /// Records `webhook.changed` with what `request` changes.
    pub async fn change(
        self: &Arc<Self>,
        actor: &str,
        id: &str,
        request: ChangeRequest,
    ) -> Result<Subscription, WebhookError> {
        let current = self.get(id).await?;
        let mut change = Changed {
            url: None,
            description: validated_description(request.description)?,
            filter: request.filter.map(validated_filter).transpose()?,
            status: None,
            reason: validated_reason(request.reason)?,
            ..Default::default()
        };
        if let Some(url) = request.url {
            change.url = Some(self.checked_url(&url).await?);
        }
        change.status = match request.status.as_deref() {
            None => None,
            Some("paused") => Some(Status::Paused),
            Some("active") => Some(Status::Active),
            Some(other) => {
                return Err(WebhookError::Invalid(format!(
                    "status: {other:?} is not one a person sets; use `paused` or `active` (disabled and failing are \
                     set by the server, and `active` resumes them)"
                )))
            }
        };
        if change.url.is_none() && change.description.is_none() && change.filter.is_none() && change.status.is_none() {
            return Err(WebhookError::Invalid("nothing to change: give url, filter, description or status".into()));
        }
        if change.status == Some(current.status) && change.url.is_none() && change.filter.is_none() {
            if change.description.is_none() {
                return Err(WebhookError::Invalid(format!("webhook {id} is {} already", current.status.as_str())));
            }
            change.status = None;
        }
        self.record(actor, Kind::WebhookChanged, id, &change).await?;
        self.get(id).await
    }

    /// Rotates the secret: the new one signs from now on, the old one
    /// beside it for [`WebhookConfig::rotation_overlap`].
    pub async fn rotate(self: &Arc<Self>, actor: &str, id: &str) -> Result<RotatedSecret, WebhookError> {
        self.get(id).await?;
        let (secret, shown) = self.new_secret(id)?;
        let overlap = i64::try_from(self.config.rotation_overlap.as_secs()).unwrap_or(i64::MAX);
        let until = crate::store::projections::add_seconds(&timestamp::now(), overlap);
        let change = Changed { secret: Some(secret), previous_secret_until: Some(until.clone()), ..Default::default() };
        self.record(actor, Kind::WebhookChanged, id, &change).await?;
        Ok(RotatedSecret { id: id.to_owned(), secret: shown, previous_secret_valid_until: until })
    }

    /// Asks for delivery to start again at `from_seq` (at least once more,
    /// with the same `webhook-id`s).
    pub async fn replay(self: &Arc<Self>, actor: &str, id: &str, from_seq: u64) -> Result<Subscription, WebhookError> {
        self.get(id).await?;
        let store = self.store.clone();
        let head = tokio::task::spawn_blocking(move || store.head()).await.map_err(WebhookError::panicked)??.size;
        if from_seq == 0 || from_seq > head {
            return Err(WebhookError::Invalid(format!("from_seq: give a seq from 1 to {head}, the head")));
        }
        let change = Changed { replay_from_seq: Some(from_seq), ..Default::default() };
        self.record(actor, Kind::WebhookChanged, id, &change).await?;
        self.get(id).await
    }

    /// Records `webhook.deleted`; delivery stops and its state is dropped.
    pub async fn delete(self: &Arc<Self>, actor: &str, id: &str, reason: Option<String>) -> Result<(), WebhookError> {
        self.get(id).await?;
        let reason = validated_reason(reason)?;
        self.record(actor, Kind::WebhookDeleted, id, &Deleted { reason }).await?;
        Ok(())
    }

    /// The server's own status change (a 410, the retry window passed).
    pub(crate) async fn mark(self: &Arc<Self>, id: &str, status: Status, reason: String) -> Result<(), WebhookError> {
        let change = Changed { status: Some(status), reason: Some(reason), ..Default::default() };
        self.record(super::SERVER_ACTOR, Kind::WebhookChanged, id, &change).await
    }

    async fn record(
        self: &Arc<Self>,
        actor: &str,
        kind: Kind,
        id: &str,
        attributes: &impl Serialize,
    ) -> Result<(), WebhookError> {
        let attributes = serde_json::to_value(attributes).map_err(|e| WebhookError::Internal(e.to_string()))?;
        let draft = EventDraft::server(kind, &Subscription::subject_of(id), None, attributes, None)
            .map_err(|e| WebhookError::Internal(e.to_string()))?;
        self.store.writer().append(actor.to_owned(), vec![draft]).await?;
        self.changed.notify_waiters();
        Ok(())
    }

    /// The API's view of `subscription`, with its delivery state.
    pub async fn view(self: &Arc<Self>, subscription: Subscription) -> Result<SubscriptionView, WebhookError> {
        Ok(self.views(vec![subscription]).await?.pop().unwrap_or_else(|| unreachable!()))
    }

    /// [`Webhooks::view`] of several.
    pub async fn views(
        self: &Arc<Self>,
        subscriptions: Vec<Subscription>,
    ) -> Result<Vec<SubscriptionView>, WebhookError> {
        let store = self.store.clone();
        let ids: Vec<String> = subscriptions.iter().map(|s| s.id.clone()).collect();
        let (head, rows) = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let mut conn = store.conn()?;
            let head = events::head(&mut conn)?.size;
            let rows: Vec<Option<CursorRow>> =
                ids.iter().map(|id| cursors::cursor(&mut conn, id)).collect::<Result<_, _>>()?;
            Ok((head, rows))
        })
        .await
        .map_err(WebhookError::panicked)??;
        let now = timestamp::now();
        Ok(subscriptions.into_iter().zip(rows).map(|(s, row)| view_of(s, row, head, &now)).collect())
    }

    /// The newest attempts at delivering to `id`, newest first.
    pub async fn deliveries(
        self: &Arc<Self>,
        id: &str,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<DeliveryRow>, WebhookError> {
        self.get(id).await?;
        let (store, id) = (self.store.clone(), id.to_owned());
        let rows = tokio::task::spawn_blocking(move || {
            cursors::deliveries(&mut *store.conn()?, &id, i64::from(limit), before)
        })
        .await
        .map_err(WebhookError::panicked)??;
        Ok(rows)
    }
}

fn view_of(s: Subscription, row: Option<CursorRow>, head: u64, now: &str) -> SubscriptionView {
    let seq = |n: i64| u64::try_from(n).unwrap_or(0);
    let delivered_through = row.as_ref().map_or(s.created_seq, |r| seq(r.delivered_through));
    let held = row.as_ref().filter(|r| r.lease_until > chrono::Utc::now().timestamp_millis());
    let delivery = DeliveryState {
        delivered_through,
        behind_events: head.saturating_sub(delivered_through),
        last_delivered_at: row.as_ref().and_then(|r| r.last_delivered_at.clone()),
        retrying_seq: row.as_ref().and_then(|r| r.retry_seq).map(seq),
        retrying_since: row.as_ref().and_then(|r| r.retry_since.clone()),
        retry_attempts: row.as_ref().map_or(0, |r| u32::try_from(r.retry_attempts).unwrap_or(0)),
        last_error: row.as_ref().and_then(|r| r.last_error.clone()),
        replica: held.and_then(|r| r.lease_owner.clone()),
    };
    SubscriptionView {
        previous_secret_valid_until: s
            .previous_secret
            .as_ref()
            .map(|(_, until)| until.clone())
            .filter(|u| u.as_str() > now),
        id: s.id,
        url: s.url,
        description: s.description,
        filter: s.filter,
        status: s.status,
        status_reason: s.status_reason,
        creator: s.creator,
        created_by: s.created_by,
        created_at: s.created_at,
        created_seq: s.created_seq,
        changed_seq: s.changed_seq,
        delivery,
    }
}

fn validated_description(text: Option<String>) -> Result<Option<String>, WebhookError> {
    match text {
        Some(t) if t.len() > MAX_DESCRIPTION => {
            Err(WebhookError::Invalid(format!("description: at most {MAX_DESCRIPTION} bytes")))
        }
        other => Ok(other.map(|t| t.trim().to_owned())),
    }
}

fn validated_reason(text: Option<String>) -> Result<Option<String>, WebhookError> {
    match text {
        Some(t) if t.len() > 4000 => Err(WebhookError::Invalid("reason: at most 4000 bytes".into())),
        Some(t) if t.trim().is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// A filter whose every entry could match something: kind patterns are
/// kinds or `namespace.*`, a kind in a namespace the server gives meaning
/// to is one it knows (a typo would silently match nothing), projects and
/// entity types are well-formed; duplicates are dropped.
pub fn validated_filter(mut filter: Filter) -> Result<Filter, WebhookError> {
    let bad = |m: String| Err(WebhookError::Invalid(format!("filter.{m}")));
    for (name, list) in
        [("kinds", &filter.kinds), ("projects", &filter.projects), ("entity_types", &filter.entity_types)]
    {
        if list.len() > MAX_FILTER_ITEMS {
            return bad(format!("{name}: at most {MAX_FILTER_ITEMS} entries"));
        }
    }
    let known_namespaces: std::collections::BTreeSet<&str> = Kind::ALL.iter().map(|k| k.namespace()).collect();
    for pattern in &filter.kinds {
        if pattern == "*" {
            continue;
        }
        let (name, wildcard) = match pattern.strip_suffix(".*") {
            Some(namespace) => (format!("{namespace}.x"), true),
            None => (pattern.clone(), false),
        };
        if crate::ledger::EventKind::parse(&name).is_err() {
            return bad(format!("kinds: {pattern:?} is not a kind (`model.registered`) or a namespace (`approval.*`)"));
        }
        let namespace = name.split('.').next().unwrap_or_default();
        if !wildcard && known_namespaces.contains(namespace) && Kind::from_name(pattern).is_none() {
            let known: Vec<&str> =
                Kind::ALL.iter().filter(|k| k.namespace() == namespace).map(|k| k.as_str()).collect();
            return bad(format!(
                "kinds: {pattern:?} is not a kind; the `{namespace}.*` kinds are {}",
                known.join(", ")
            ));
        }
    }
    for project in &filter.projects {
        crate::ledger::event::validate_project(project).map_err(|e| WebhookError::Invalid(format!("filter.{e}")))?;
    }
    for t in &filter.entity_types {
        let ok = !t.is_empty()
            && t.len() <= 64
            && t.starts_with(|c: char| c.is_ascii_lowercase())
            && t.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !ok {
            return bad(format!("entity_types: {t:?} is not an entity type such as `model` or `deployment`"));
        }
    }
    for list in [&mut filter.kinds, &mut filter.projects, &mut filter.entity_types] {
        list.sort();
        list.dedup();
    }
    if filter.kinds.iter().any(|k| k == "*") {
        filter.kinds.clear();
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_refuse_typos_in_known_namespaces_and_accept_own_kinds() {
        let of = |kinds: &[&str]| Filter { kinds: kinds.iter().map(|k| k.to_string()).collect(), ..Default::default() };
        assert!(validated_filter(of(&["approval.*", "deployment.blocked"])).is_ok());
        assert!(validated_filter(of(&["team.thing_happened"])).is_ok(), "a team's own kinds are free-form");
        assert!(validated_filter(of(&["approval.grantd"])).is_err());
        assert!(validated_filter(of(&["Approval.*"])).is_err());
        assert!(validated_filter(of(&["approval"])).is_err());
        assert!(validated_filter(of(&["*", "approval.*"])).unwrap().kinds.is_empty(), "`*` is every kind");
        let bad_type = Filter { entity_types: vec!["Model".into()], ..Default::default() };
        assert!(validated_filter(bad_type).is_err());
        let bad_project = Filter { projects: vec!["*".into()], ..Default::default() };
        assert!(validated_filter(bad_project).is_err());
    }
}
