//! Who may do what: JWT authentication and casbin authorization.
//!
//! [`Authenticator`] turns a bearer token into a [`Principal`] (verified
//! once, then cached by the token's hash until it expires); [`Authorizer`]
//! answers whether one of the principal's roles may perform an action on an
//! object in a project, from the casbin model and policy in `policies/`.
//! Both are consulted in one place, the HTTP layer's `Guarded` extractor,
//! for the actions of [`actions`].

pub mod access;
pub mod actions;
pub mod identity;
pub mod oidc;
pub mod policy;
pub mod tokens;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

pub use crate::ledger::actor::{same_subject, validate_subject};
pub use access::AccessError;

pub use policy::{Authorizer, PolicyError, PolicyRules};
pub use tokens::{Authenticator, Claims, TokenConfig, TokenIssuer};

/// Why a request is not authenticated (401) or not allowed (403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("token has been revoked")]
    Revoked,
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("token signing key: {0}")]
    Key(String),
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub sub: String,
    pub roles: Vec<String>,
    /// Projects the token may act in; `*` for all.
    pub projects: Vec<String>,
    pub jti: String,
    pub exp: u64,
}

impl Principal {
    /// Whether the token's project scope includes `project` (`None`: events
    /// outside any project, which only all-project tokens reach).
    pub fn in_scope(&self, project: Option<&str>) -> bool {
        self.projects.iter().any(|p| p == "*" || Some(p.as_str()) == project)
    }

    /// Whether the token may reach every project.
    pub fn all_projects(&self) -> bool {
        self.projects.iter().any(|p| p == "*")
    }
}

/// Revoked token ids, shared between the authenticator and the services
/// that revoke (a projection of the `token.revoked` events).
#[derive(Debug, Default, Clone)]
pub struct Revocations {
    inner: Arc<RwLock<HashSet<String>>>,
}

impl Revocations {
    /// Marks `jti` revoked.
    pub fn revoke(&self, jti: &str) {
        self.inner.write().unwrap_or_else(|e| e.into_inner()).insert(jti.to_owned());
    }

    /// Replaces the whole set (after reloading it from the ledger).
    pub fn replace(&self, jtis: HashSet<String>) {
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = jtis;
    }

    /// Whether `jti` is revoked.
    pub fn contains(&self, jti: &str) -> bool {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).contains(jti)
    }
}

/// A small bounded cache of verified tokens, keyed by the token's SHA-256.
#[derive(Debug, Default)]
struct TokenCache {
    /// Each principal with the `kid` of the provider key that vouched for it.
    entries: RwLock<HashMap<[u8; 32], CachedPrincipal>>,
}

type CachedPrincipal = (Arc<Principal>, Option<String>);

const TOKEN_CACHE_MAX: usize = 10_000;

impl TokenCache {
    fn get(&self, key: &[u8; 32], now: u64) -> Option<CachedPrincipal> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.get(key).filter(|(p, _)| p.exp > now).cloned()
    }

    fn clear(&self) {
        self.entries.write().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn put(&self, key: [u8; 32], principal: CachedPrincipal, now: u64) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= TOKEN_CACHE_MAX {
            entries.retain(|_, (p, _)| p.exp > now);
            if entries.len() >= TOKEN_CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(key, principal);
    }
}
