//! Access administration: issuing and revoking tokens and changing the
//! policy, each recorded in the ledger. The policy in force and the revoked
//! tokens are projections of those events, reloaded at start and followed
//! while running, so every replica enforces the same rules.

use std::collections::HashSet;

use serde_json::json;

use super::{AuthError, Authenticator, Authorizer, PolicyError, PolicyRules, Revocations, TokenConfig, TokenIssuer};
use crate::ledger::{EventDraft, EventRequest, ValidationError};
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
    pub expires_at: u64,
}

/// Authentication, authorization and their administration for one ledger.
pub struct Access {
    pub authenticator: Authenticator,
    pub authorizer: Authorizer,
    issuer: TokenIssuer,
    revocations: Revocations,
    /// The seq up to which policy and revocation events have been applied.
    applied_seq: std::sync::Mutex<u64>,
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

fn draft(kind: &str, subject: &str, attributes: serde_json::Value) -> Result<EventDraft, AccessError> {
    let request: EventRequest =
        serde_json::from_value(json!({"kind": kind, "subject": subject, "attributes": attributes}))
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
        let access = Self { authenticator, authorizer, issuer, revocations, applied_seq: std::sync::Mutex::new(0) };
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
            for kind in ["policy.changed", "token.revoked"] {
                let mut cursor = after;
                loop {
                    let filter =
                        EventFilter { kind: Some(kind.into()), after_seq: cursor, limit: 1000, ..Default::default() };
                    let page = store.list(&filter)?;
                    let Some(last) = page.last().map(|e| e.seq) else { break };
                    found.extend(page.into_iter().filter(|e| e.seq <= head));
                    cursor = last;
                }
            }
            found.sort_by_key(|e| e.seq);
            Ok((found, head))
        })
        .await
        .map_err(|e| AccessError::Invalid(e.to_string()))??;
        let mut revoked: HashSet<String> = HashSet::new();
        let mut policy = None;
        for event in events {
            let attributes: serde_json::Value = serde_json::from_str(&event.attributes).unwrap_or_default();
            match event.kind.as_str() {
                "token.revoked" => {
                    if let Some(jti) = event.subject.strip_prefix("token:") {
                        revoked.insert(jti.to_owned());
                    }
                }
                _ => policy = attributes["policy"].as_str().map(str::to_owned),
            }
        }
        for jti in revoked {
            self.revocations.revoke(&jti);
        }
        if let Some(text) = policy {
            self.authorizer.replace(PolicyRules::parse(&text)?).await?;
        }
        *self.applied_seq.lock().unwrap_or_else(|e| e.into_inner()) = head;
        Ok(())
    }

    /// Mints a token and records `token.issued` (never the token itself).
    pub async fn issue_token(
        &self,
        store: &Store,
        actor: &str,
        sub: &str,
        roles: &[String],
        projects: &[String],
        ttl_seconds: u64,
    ) -> Result<IssuedToken, AccessError> {
        if sub.is_empty() || sub.len() > 200 || sub.chars().any(char::is_control) {
            return Err(AccessError::Invalid("sub must be 1 to 200 printable characters".into()));
        }
        if roles.is_empty()
            || roles.iter().any(|r| r.is_empty() || !r.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        {
            return Err(AccessError::Invalid("give at least one role, each lower-case letters and `_`".into()));
        }
        if projects.is_empty() {
            return Err(AccessError::Invalid("give at least one project, or `*` for all".into()));
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
            "token.issued",
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
        })
    }

    /// Revokes a token by its `jti` and records `token.revoked`.
    pub async fn revoke_token(
        &self,
        store: &Store,
        actor: &str,
        jti: &str,
        reason: Option<&str>,
    ) -> Result<(), AccessError> {
        let event = draft("token.revoked", &format!("token:{jti}"), json!({"reason": reason}))?;
        store.writer().append(actor.to_owned(), vec![event]).await?;
        self.revocations.revoke(jti);
        Ok(())
    }

    /// Validates and installs a new policy, recording `policy.changed` with
    /// its full text first, so the ledger says who could do what from then on.
    pub async fn set_policy(&self, store: &Store, actor: &str, text: &str) -> Result<PolicyRules, AccessError> {
        let rules = PolicyRules::parse(text)?;
        // Compile before recording, so a policy casbin refuses is never recorded.
        let probe = Authorizer::new(rules.clone()).await?;
        drop(probe);
        let event = draft("policy.changed", "policy:default", json!({"policy": text}))?;
        store.writer().append(actor.to_owned(), vec![event]).await?;
        self.authorizer.replace(rules.clone()).await?;
        Ok(rules)
    }
}
