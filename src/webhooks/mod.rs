//! Webhooks: subscriptions on the record and signed deliveries that follow
//! the ledger (docs/WEBHOOKS.md).
//!
//! A subscription is created, changed and deleted by `webhook.*` events,
//! whose signing secret is sealed with the master key; [`Subscriptions`] is
//! their fold. The [`dispatch`] loop follows the ledger by seq for each
//! subscription it holds the lease of, with a durable cursor, so an event is
//! delivered at least once whatever is killed when, and by one replica at a
//! time when several share PostgreSQL.

pub mod dispatch;
pub mod payload;
pub mod service;
pub mod signing;
pub mod subscription;
pub mod target;

use std::time::Duration;

pub use service::{ChangeRequest, CreateRequest, CreatedSubscription, SubscriptionView, Webhooks};
pub use subscription::{Filter, Status, Subscription, Subscriptions};
pub use target::AddressPolicy;

use crate::store::{AppendError, StoreError};

/// Errors of the webhook services.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    /// Secrets are sealed with the master key; without one there is nowhere
    /// safe to keep them.
    #[error(
        "webhooks need the server's master key, which seals their signing secrets: start it with \
         GOVLEDGER_MASTER_KEY or --master-key-file (docs/PERSONAL_DATA.md)"
    )]
    NoMasterKey,
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Append(#[from] AppendError),
}

impl WebhookError {
    fn panicked(e: tokio::task::JoinError) -> Self {
        Self::Internal(format!("a blocking task failed: {e}"))
    }
}

/// How deliveries are made and retried.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Which addresses may be delivered to.
    pub addresses: AddressPolicy,
    /// How long one attempt may take, connection included.
    pub timeout: Duration,
    /// The wait after the first failure; it doubles with each attempt.
    pub retry_base: Duration,
    /// The longest wait between two attempts.
    pub retry_max_interval: Duration,
    /// How long an event is retried before the subscription is marked failing.
    pub retry_window: Duration,
    /// How long a replica's hold on a subscription lasts without renewal:
    /// the longest a killed replica's subscriptions wait for another.
    pub lease: Duration,
    /// How long a rotated secret keeps signing beside the new one.
    pub rotation_overlap: Duration,
    /// Attempts kept per subscription for `GET .../deliveries`.
    pub keep_attempts: u32,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            addresses: AddressPolicy::default(),
            timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(5),
            retry_max_interval: Duration::from_secs(3600),
            retry_window: Duration::from_secs(24 * 3600),
            lease: Duration::from_secs(10),
            rotation_overlap: Duration::from_secs(24 * 3600),
            keep_attempts: 1000,
        }
    }
}

/// The actor of the events the server records about a subscription on its
/// own (disabling it after a 410, marking it failing).
pub const SERVER_ACTOR: &str = "govledger-webhooks";
