//! What a delivery carries and to whom: the Standard Webhooks body of an
//! event, and whether a subscription's creator could read it.

use serde_json::json;

use super::subscription::Subscription;
use crate::auth::actions::{Guard, ReadEvents};
use crate::auth::{Authorizer, Principal};
use crate::ledger::personal::{Envelope, REDACTED};
use crate::ledger::Event;

/// The body of event's delivery: `{"type", "timestamp", "data"}`, where
/// `data` is the event as `GET /api/v1/events/{seq}` answers a reader who
/// may not see personal fields in clear (they are `"[redacted]"`; the
/// sealed envelope is what the chain holds).
pub fn body(event: &Event) -> Result<Vec<u8>, serde_json::Error> {
    let sealed = Envelope::of_attributes(&event.attributes).is_some_and(|e| e.sealed.is_some());
    let data = crate::ledger::event::EventJson { personal: sealed.then(|| json!(REDACTED)), ..event.to_json()? };
    serde_json::to_vec(&json!({"type": event.kind.as_str(), "timestamp": event.recorded_at, "data": data}))
}

/// Who a subscription reads as, judged afresh for every event.
pub struct Reader {
    principal: Principal,
    authorizer: Authorizer,
}

impl Reader {
    pub fn new(subscription: &Subscription, authorizer: Authorizer) -> Self {
        Self { principal: subscription.creator.principal(), authorizer }
    }

    /// Whether the subscription's creator may read events in `project`
    /// under the policy in force now.
    pub fn reads(&self, project: Option<&str>) -> bool {
        let action = ReadEvents::ACTION;
        self.authorizer.allows(&self.principal, action.object, action.action, project)
    }
}

/// Whether `event` goes to `subscription`: its filter matches and its
/// creator may read it.
pub fn delivers(subscription: &Subscription, reader: &Reader, event: &Event) -> bool {
    subscription.filter.matches(event.kind.as_str(), event.project.as_deref(), subject_type(&event.subject))
        && reader.reads(event.project.as_deref())
}

fn subject_type(subject: &str) -> &str {
    subject.split_once(':').map_or(subject, |(t, _)| t)
}
