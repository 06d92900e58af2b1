//! Access administration: issuing and revoking tokens and changing the
//! policy, each recorded in the ledger. The policy in force and the revoked
//! tokens are projections of those events, reloaded at start and followed
//! while running, so every replica enforces the same rules.

use std::collections::HashSet;

use serde_json::json;

use super::{AuthError, Authenticator, Authorizer, PolicyError, PolicyRules, Revocations, TokenConfig, TokenIssuer};
use crate::ledger::{EventDraft, EventRequest, Kind, ValidationError};
use crate::store::{AppendError, EventFilter, Store, StoreError};

/// Errors of access administration.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Append(#[from] AppendError),
    #[error("{0}")]
    Invalid(String),
    /// A fault of the server (a panicked blocking task): an opaque 500.
    #[error("{0}")]
    Internal(String),
    #[error("no token with jti {0} was ever issued by this ledger")]
    UnknownToken(String),
    #[error(transparent)]
    IdentityMap(#[from] super::identity::IdentityMapError),
}

/// Every event of `kind` after seq `after`, in seq order.
fn events_of_kind(store: &Store, kind: Kind, after: u64) -> Result<Vec<crate::ledger::Event>, StoreError> {
    let mut found = Vec::new();
    let mut cursor = after;
    loop {
        let filter =
            EventFilter { kind: Some(kind.as_str().into()), after_seq: cursor, limit: 1000, ..Default::default() };
        let page = store.list(&filter)?;
        let Some(last) = page.last().map(|e| e.seq) else { break };
        found.extend(page);
        cursor = last;
    }
    Ok(found)
}

/// The projects the ledger knows: those its events name, and those earlier
/// tokens were issued for.
fn known_projects(store: &Store) -> Result<std::collections::BTreeSet<String>, StoreError> {
    let mut known: std::collections::BTreeSet<String> =
        crate::store::events::projects(&mut *store.conn()?)?.into_iter().collect();
    for event in events_of_kind(store, Kind::TokenIssued, 0)? {
        let a: serde_json::Value = serde_json::from_str(&event.attributes).unwrap_or_default();
        let named = a["projects"].as_array().into_iter().flatten().filter_map(|p| p.as_str());
        known.extend(named.filter(|p| *p != ALL_PROJECTS).map(str::to_owned));
    }
    Ok(known)
}

impl From<ValidationError> for AccessError {
    fn from(e: ValidationError) -> Self {
        Self::Invalid(e.to_string())
    }
}

/// Longest token lifetime: a year.
pub const MAX_TTL_SECONDS: u64 = 366 * 24 * 3600;

/// A token as issued.
#[derive(utoipa::ToSchema, Debug, Clone, serde::Serialize)]
pub struct IssuedToken {
    pub token: String,
    pub jti: String,
    pub sub: String,
    pub roles: Vec<String>,
    pub projects: Vec<String>,
    /// Unix seconds, as the token's `exp` claim.
    pub expires_at: u64,
    /// The same instant in RFC 3339.
    pub expires: String,
}

/// A token as the ledger's `token.issued` and `token.revoked` events
/// describe it (never the token itself).
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenRecord {
    pub jti: String,
    pub sub: String,
    pub roles: Vec<String>,
    pub projects: Vec<String>,
    /// Unix seconds.
    pub expires_at: u64,
    /// RFC 3339.
    pub expires: String,
    /// Who issued it, when, at which seq.
    pub issued_by: String,
    pub issued_at: String,
    pub issued_seq: u64,
    pub revoked: bool,
    /// The seq of its `token.revoked` event.
    pub revoked_seq: Option<u64>,
    /// Whether it had expired when the list was read.
    pub expired: bool,
}

/// A version of the policy, as its `policy.changed` event records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PolicyVersion {
    pub seq: u64,
    pub actor: String,
    pub recorded_at: String,
    pub text: String,
}

/// Defaults shared by `govledger token issue` and `POST /api/v1/tokens`.
pub const DEFAULT_TOKEN_TTL: &str = "90d";
/// Every project: the default when a token names none.
pub const ALL_PROJECTS: &str = "*";

/// Unix seconds in RFC 3339 (UTC, seconds).
pub fn unix_to_rfc3339(seconds: u64) -> String {
    i64::try_from(seconds)
        .ok()
        .and_then(|s| chrono::DateTime::<chrono::Utc>::from_timestamp(s, 0))
        .map_or_else(|| seconds.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// Authentication, authorization and their administration for one ledger.
pub struct Access {
    pub authenticator: Authenticator,
    pub authorizer: Authorizer,
    issuer: TokenIssuer,
    revocations: Revocations,
    /// The seq up to which policy and revocation events have been applied.
    applied_seq: std::sync::Mutex<u64>,
    /// The identity map in force (`identity.changed`, else the shipped map).
    identity: std::sync::RwLock<std::sync::Arc<super::identity::IdentityMap>>,
    /// The people separation of duties compares, shared with governance.
    people: std::sync::OnceLock<crate::ledger::actor::SharedPeople>,
}

/// Parses `90d`, `12h`, `30m`, `45s` or plain seconds.
pub fn parse_ttl(text: &str) -> Result<u64, String> {
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let n: u64 = number.parse().map_err(|_| format!("invalid ttl {text:?}: expected e.g. 90d, 12h, 30m or 3600"))?;
    let seconds = match unit {
        'd' => n.saturating_mul(86_400),
        'h' => n.saturating_mul(3_600),
        'm' => n.saturating_mul(60),
        's' => n,
        _ => return Err(format!("invalid ttl unit in {text:?}: use d, h, m or s")),
    };
    if seconds == 0 || seconds > MAX_TTL_SECONDS {
        return Err(format!("ttl must be between 1 second and {} days", MAX_TTL_SECONDS / 86_400));
    }
    Ok(seconds)
}

fn draft(kind: Kind, subject: &str, attributes: serde_json::Value) -> Result<EventDraft, AccessError> {
    let request: EventRequest =
        serde_json::from_value(json!({"kind": kind.as_str(), "subject": subject, "attributes": attributes}))
            .map_err(|e| AccessError::Invalid(e.to_string()))?;
    Ok(EventDraft::from_request(request)?)
}

impl Access {
    /// Loads the keys, and the policy and revocations recorded in the ledger.
    pub async fn load(config: &TokenConfig, store: &Store) -> Result<Self, AccessError> {
        let (issuer, own_key) = TokenIssuer::load_or_create(config)?;
        let revocations = Revocations::default();
        let authenticator = Authenticator::new(config, own_key, revocations.clone())?;
        let authorizer = Authorizer::new(PolicyRules::default_policy()?).await?;
        let roles = authorizer.rules().roles();
        let shipped = super::identity::IdentityMap::parse(super::identity::DEFAULT_IDENTITY_MAP, &roles)?;
        let access = Self {
            authenticator,
            authorizer,
            issuer,
            revocations,
            applied_seq: std::sync::Mutex::new(0),
            identity: std::sync::RwLock::new(std::sync::Arc::new(shipped)),
            people: std::sync::OnceLock::new(),
        };
        access.follow_ledger(store).await?;
        Ok(access)
    }

    /// Applies policy changes and revocations recorded since the last call
    /// (by this replica or another).
    pub async fn follow_ledger(&self, store: &Store) -> Result<(), AccessError> {
        let after = *self.applied_seq.lock().unwrap_or_else(|e| e.into_inner());
        let store = store.clone();
        let (events, head) = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let head = store.head()?.size;
            let mut found = Vec::new();
            for kind in [Kind::PolicyChanged, Kind::TokenRevoked, Kind::IdentityChanged] {
                found.extend(events_of_kind(&store, kind, after)?.into_iter().filter(|e| e.seq <= head));
            }
            found.sort_by_key(|e| e.seq);
            Ok((found, head))
        })
        .await
        .map_err(|e| AccessError::Internal(format!("a blocking task failed: {e}")))??;
        let mut revoked: HashSet<String> = HashSet::new();
        let (mut policy, mut identity) = (None, None);
        for event in events {
            let attributes: serde_json::Value = serde_json::from_str(&event.attributes).unwrap_or_default();
            match Kind::from_name(&event.kind) {
                Some(Kind::TokenRevoked) => {
                    if let Some(jti) = event.subject.strip_prefix("token:") {
                        revoked.insert(jti.to_owned());
                    }
                }
                Some(Kind::IdentityChanged) => identity = attributes["identity_map"].as_str().map(str::to_owned),
                _ => policy = attributes["policy"].as_str().map(str::to_owned),
            }
        }
        for jti in revoked {
            self.revocations.revoke(&jti);
        }
        if let Some(text) = policy {
            self.authorizer.replace(PolicyRules::parse(&text)?).await?;
        }
        if let Some(text) = identity.filter(|t| t.as_str() != self.identity().text()) {
            // Recorded by another replica (or earlier): checked like any map,
            // and a map this policy cannot honour is not half-installed.
            match super::identity::IdentityMap::parse(&text, &self.authorizer.rules().roles()) {
                Ok(map) => self.install_identity(map),
                Err(e) => {
                    tracing::error!(error = %e, "the recorded identity map cannot be used; the one in force stays")
                }
            }
        }
        *self.applied_seq.lock().unwrap_or_else(|e| e.into_inner()) = head;
        Ok(())
    }

    /// Mints a token and records `token.issued` (never the token itself).
    /// Every role must be one the policy in force defines, and every project
    /// one the ledger knows (it has events, or an earlier token was issued
    /// for it) unless `new_project` says it is meant to be new: a typo must
    /// not become an identity on the record.
    #[allow(clippy::too_many_arguments)]
    pub async fn issue_token(
        &self,
        store: &Store,
        actor: &str,
        sub: &str,
        roles: &[String],
        projects: &[String],
        ttl_seconds: u64,
        new_project: bool,
    ) -> Result<IssuedToken, AccessError> {
        crate::ledger::actor::validate_subject(sub).map_err(AccessError::Invalid)?;
        if roles.is_empty()
            || roles.iter().any(|r| r.is_empty() || !r.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        {
            return Err(AccessError::Invalid("give at least one role, each lower-case letters and `_`".into()));
        }
        if projects.is_empty() {
            return Err(AccessError::Invalid("give at least one project, or `*` for all".into()));
        }
        let defined = self.authorizer.rules().roles();
        if let Some(unknown) = roles.iter().find(|r| !defined.contains(*r)) {
            return Err(AccessError::Invalid(format!(
                "role {unknown:?} is not defined by the policy in force; known roles: {}",
                defined.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        for p in projects.iter().filter(|p| p.as_str() != ALL_PROJECTS) {
            crate::ledger::event::validate_project(p)?;
        }
        let named: Vec<String> = projects.iter().filter(|p| p.as_str() != ALL_PROJECTS).cloned().collect();
        if !named.is_empty() && !new_project {
            let reading = store.clone();
            let known = tokio::task::spawn_blocking(move || known_projects(&reading))
                .await
                .map_err(|e| AccessError::Internal(format!("a blocking task failed: {e}")))??;
            if let Some(unknown) = named.iter().find(|p| !known.contains(*p)) {
                let listed = if known.is_empty() {
                    "none yet".to_owned()
                } else {
                    known.into_iter().collect::<Vec<_>>().join(", ")
                };
                return Err(AccessError::Invalid(format!(
                    "project {unknown:?} has no events and no tokens yet (known projects: {listed}); if it is meant \
                     to be new, pass --new-project (API: \"new_project\": true)"
                )));
            }
        }
        if ttl_seconds == 0 || ttl_seconds > MAX_TTL_SECONDS {
            return Err(AccessError::Invalid(format!(
                "ttl must be between 1 second and {} days",
                MAX_TTL_SECONDS / 86_400
            )));
        }
        let (token, claims) = self.issuer.issue(sub, roles, projects, ttl_seconds)?;
        let jti = claims.jti.clone().unwrap_or_default();
        let event = draft(
            Kind::TokenIssued,
            &format!("token:{jti}"),
            json!({"sub": sub, "roles": roles, "projects": projects, "expires_at": claims.exp}),
        )?;
        store.writer().append(actor.to_owned(), vec![event]).await?;
        Ok(IssuedToken {
            token,
            jti,
            sub: sub.into(),
            roles: roles.to_vec(),
            projects: projects.to_vec(),
            expires_at: claims.exp,
            expires: unix_to_rfc3339(claims.exp),
        })
    }

    /// Every version of the policy set through the ledger, oldest first:
    /// the seq, actor and time of its `policy.changed` event, and its text.
    pub async fn policy_history(&self, store: &Store) -> Result<Vec<PolicyVersion>, AccessError> {
        let reading = store.clone();
        let events = tokio::task::spawn_blocking(move || events_of_kind(&reading, Kind::PolicyChanged, 0))
            .await
            .map_err(|e| AccessError::Internal(format!("a blocking task failed: {e}")))??;
        Ok(events
            .into_iter()
            .map(|e| {
                let a: serde_json::Value = serde_json::from_str(&e.attributes).unwrap_or_default();
                PolicyVersion {
                    seq: e.seq,
                    actor: e.actor,
                    recorded_at: e.recorded_at,
                    text: a["policy"].as_str().unwrap_or_default().to_owned(),
                }
            })
            .collect())
    }

    /// Every token issued, as the ledger records it, oldest first.
    pub async fn tokens(&self, store: &Store) -> Result<Vec<TokenRecord>, AccessError> {
        let reading = store.clone();
        let events = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let mut found = Vec::new();
            for kind in [Kind::TokenIssued, Kind::TokenRevoked] {
                found.extend(events_of_kind(&reading, kind, 0)?);
            }
            Ok(found)
        })
        .await
        .map_err(|e| AccessError::Internal(format!("a blocking task failed: {e}")))??;
        let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
        let mut records: Vec<TokenRecord> = Vec::new();
        let mut revoked: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
        for event in events {
            let Some(jti) = event.subject.strip_prefix("token:") else { continue };
            let a: serde_json::Value = serde_json::from_str(&event.attributes).unwrap_or_default();
            if event.kind == Kind::TokenRevoked {
                revoked.entry(jti.to_owned()).or_insert(event.seq);
                continue;
            }
            let list = |k: &str| -> Vec<String> {
                a[k].as_array()
                    .map(|v| v.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default()
            };
            let expires_at = a["expires_at"].as_u64().unwrap_or(0);
            records.push(TokenRecord {
                jti: jti.to_owned(),
                sub: a["sub"].as_str().unwrap_or_default().to_owned(),
                roles: list("roles"),
                projects: list("projects"),
                expires_at,
                expires: unix_to_rfc3339(expires_at),
                issued_by: event.actor.clone(),
                issued_at: event.recorded_at.clone(),
                issued_seq: event.seq,
                revoked: false,
                revoked_seq: None,
                expired: expires_at <= now,
            });
        }
        for r in &mut records {
            r.revoked_seq = revoked.get(&r.jti).copied();
            r.revoked = r.revoked_seq.is_some();
        }
        records.sort_by_key(|r| r.issued_seq);
        Ok(records)
    }

    /// Revokes a token by its `jti` and records `token.revoked`. A jti the
    /// ledger never issued is [`AccessError::UnknownToken`] and writes
    /// nothing.
    pub async fn revoke_token(
        &self,
        store: &Store,
        actor: &str,
        jti: &str,
        reason: Option<&str>,
    ) -> Result<(), AccessError> {
        let subject = format!("token:{jti}");
        let reading = store.clone();
        let looked_for = subject.clone();
        let issued = tokio::task::spawn_blocking(move || {
            reading.list(&EventFilter {
                kind: Some(Kind::TokenIssued.as_str().into()),
                subject: Some(looked_for),
                subject_exact: true,
                limit: 1,
                ..Default::default()
            })
        })
        .await
        .map_err(|e| AccessError::Internal(format!("a blocking task failed: {e}")))??;
        if issued.is_empty() {
            return Err(AccessError::UnknownToken(jti.to_owned()));
        }
        let event = draft(Kind::TokenRevoked, &subject, json!({"reason": reason}))?;
        store.writer().append(actor.to_owned(), vec![event]).await?;
        self.revocations.revoke(jti);
        Ok(())
    }

    /// The identity map in force: `given` (put on the record first when it
    /// differs from the recorded map), else the recorded one, else the
    /// shipped map, which grants nothing. Roles are checked against the
    /// policy in force, so a typo refuses the start rather than granting
    /// nothing silently.
    ///
    /// Answers the map and whether it still has to go on the record
    /// ([`Access::record_identity_map`]), which the caller does once
    /// everything else needed to serve is in place, so that a start that
    /// fails records nothing.
    pub async fn identity_map(
        &self,
        store: &Store,
        given: Option<&str>,
    ) -> Result<(super::identity::IdentityMap, bool), AccessError> {
        use super::identity::IdentityMap;
        let reading = store.clone();
        let recorded = tokio::task::spawn_blocking(move || events_of_kind(&reading, Kind::IdentityChanged, 0))
            .await
            .map_err(|e| AccessError::Internal(format!("a blocking task failed: {e}")))??
            .pop()
            .and_then(|e| {
                let a: serde_json::Value = serde_json::from_str(&e.attributes).ok()?;
                a["identity_map"].as_str().map(str::to_owned)
            });
        let roles = self.authorizer.rules().roles();
        match given {
            Some(text) => {
                let map = IdentityMap::parse(text, &roles)?;
                Ok((map, recorded.as_deref() != Some(text)))
            }
            None => {
                let text = recorded.as_deref().unwrap_or(super::identity::DEFAULT_IDENTITY_MAP);
                Ok((IdentityMap::parse(text, &roles)?, false))
            }
        }
    }

    /// The identity map in force.
    pub fn identity(&self) -> std::sync::Arc<super::identity::IdentityMap> {
        self.identity.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Shares the people separation of duties compares (governance's), so
    /// that a new identity map reaches them.
    pub fn share_people(&self, people: crate::ledger::actor::SharedPeople) {
        people.replace(self.identity().people().clone());
        let _ = self.people.set(people);
    }

    /// Puts `map` in force: for separation of duties, for the provider's
    /// people, and for tokens already checked (their roles came from the old map).
    pub fn install_identity(&self, map: super::identity::IdentityMap) {
        if let Some(people) = self.people.get() {
            people.replace(map.people().clone());
        }
        if let Some(provider) = self.authenticator.provider() {
            provider.replace_identity(map.clone());
        }
        self.authenticator.forget_checked();
        *self.identity.write().unwrap_or_else(|e| e.into_inner()) = std::sync::Arc::new(map);
    }

    /// Checks, records (`identity.changed`) and installs a new identity map.
    pub async fn set_identity_map(
        &self,
        store: &Store,
        actor: &str,
        text: &str,
    ) -> Result<std::sync::Arc<super::identity::IdentityMap>, AccessError> {
        let map = super::identity::IdentityMap::parse(text, &self.authorizer.rules().roles())?;
        self.record_identity_map(store, actor, &map).await?;
        self.install_identity(map);
        Ok(self.identity())
    }

    /// Records `identity.changed` with the map's full text.
    pub async fn record_identity_map(
        &self,
        store: &Store,
        actor: &str,
        map: &super::identity::IdentityMap,
    ) -> Result<(), AccessError> {
        let event = draft(Kind::IdentityChanged, "identity_map:default", json!({"identity_map": map.text()}))?;
        store.writer().append(actor.to_owned(), vec![event]).await?;
        Ok(())
    }

    /// Validates and installs a new policy, recording `policy.changed` with
    /// its full text first, so the ledger says who could do what from then on.
    pub async fn set_policy(&self, store: &Store, actor: &str, text: &str) -> Result<PolicyRules, AccessError> {
        let rules = PolicyRules::parse(text)?;
        // Compile before recording, so a policy casbin refuses is never recorded.
        let probe = Authorizer::new(rules.clone()).await?;
        drop(probe);
        let event = draft(Kind::PolicyChanged, "policy:default", json!({"policy": text}))?;
        store.writer().append(actor.to_owned(), vec![event]).await?;
        self.authorizer.replace(rules.clone()).await?;
        Ok(rules)
    }
}
