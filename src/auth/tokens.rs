//! JWT issuing and verification.
//!
//! The server's own tokens are EdDSA (Ed25519) with a key created in the data
//! directory at first start; tokens of an external identity provider are
//! accepted for the keys in a configured JWKS file (RS256, ES256, EdDSA).
//! Validation always pins the algorithm of the key the `kid` names, checks
//! `exp`, `nbf`, `iss` and `aud` with a small leeway, and requires `sub` and
//! `jti`; `alg: none` and unknown `kid`s are refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

use super::{AuthError, Principal, Revocations, TokenCache};
use crate::keyfile;

/// The token key's file name inside the data directory.
pub const TOKEN_KEY_FILE: &str = "token-signing.key";
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: u64 = 5;

/// Where the keys are and what tokens must say.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// The server's Ed25519 token key (PKCS#8), created if missing.
    pub key_path: PathBuf,
    /// `iss` of the server's tokens, and of accepted tokens.
    pub issuer: String,
    /// `aud` every accepted token must carry.
    pub audience: String,
    /// Public keys of an external identity provider (JWKS), by `kid`.
    pub jwks_path: Option<PathBuf>,
    /// `iss` of the identity provider's tokens.
    pub idp_issuer: Option<String>,
}

impl TokenConfig {
    /// Defaults with the key in `data_dir`.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self {
            key_path: data_dir.join(TOKEN_KEY_FILE),
            issuer: "govledger".into(),
            audience: "govledger".into(),
            jwks_path: None,
            idp_issuer: None,
        }
    }
}

/// The claims of a govledger token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: serde_json::Value,
    pub sub: String,
    #[serde(default)]
    pub jti: Option<String>,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub projects: Vec<String>,
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn key_id(public_key: &[u8]) -> String {
    hex::encode(&ring::digest::digest(&ring::digest::SHA256, public_key).as_ref()[..8])
}

/// Mints the server's tokens.
pub struct TokenIssuer {
    encoding: EncodingKey,
    kid: String,
    issuer: String,
    audience: String,
}

impl TokenIssuer {
    /// Loads (or creates) the token key.
    pub fn load_or_create(config: &TokenConfig) -> Result<(Self, (String, DecodingKey)), AuthError> {
        let pkcs8 = keyfile::load_or_create_ed25519(&config.key_path).map_err(AuthError::Key)?;
        let pair =
            Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|e| AuthError::Key(format!("not an Ed25519 key: {e}")))?;
        let public = pair.public_key().as_ref().to_vec();
        let kid = key_id(&public);
        let issuer = Self {
            encoding: EncodingKey::from_ed_der(&pkcs8),
            kid: kid.clone(),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
        };
        Ok((issuer, (kid, DecodingKey::from_ed_der(&public))))
    }

    /// A signed token and its claims.
    pub fn issue(
        &self,
        sub: &str,
        roles: &[String],
        projects: &[String],
        ttl_seconds: u64,
    ) -> Result<(String, Claims), AuthError> {
        let issued_at = now();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: serde_json::Value::String(self.audience.clone()),
            sub: sub.to_owned(),
            jti: Some(uuid::Uuid::now_v7().to_string()),
            iat: issued_at,
            nbf: issued_at,
            exp: issued_at + ttl_seconds,
            roles: roles.to_vec(),
            projects: projects.to_vec(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| AuthError::Key(format!("cannot sign a token: {e}")))?;
        Ok((token, claims))
    }
}

struct TrustedKey {
    key: DecodingKey,
    algorithm: Algorithm,
    issuer: String,
}

/// Verifies bearer tokens.
pub struct Authenticator {
    keys: HashMap<String, TrustedKey>,
    audience: String,
    revoked: Revocations,
    cache: TokenCache,
    /// The OpenID Connect provider, once discovered at start.
    provider: std::sync::OnceLock<Arc<super::oidc::Provider>>,
}

impl Authenticator {
    /// Trusts the server's own key and, if configured, the identity provider's JWKS.
    pub fn new(config: &TokenConfig, own: (String, DecodingKey), revoked: Revocations) -> Result<Self, AuthError> {
        let mut keys = HashMap::new();
        keys.insert(own.0, TrustedKey { key: own.1, algorithm: Algorithm::EdDSA, issuer: config.issuer.clone() });
        if let Some(path) = &config.jwks_path {
            let issuer = config
                .idp_issuer
                .clone()
                .ok_or_else(|| AuthError::Key("a JWKS file needs the identity provider's issuer".into()))?;
            let text = std::fs::read_to_string(path).map_err(|e| AuthError::Key(format!("{}: {e}", path.display())))?;
            let set: JwkSet = serde_json::from_str(&text)
                .map_err(|e| AuthError::Key(format!("{}: not a JWKS: {e}", path.display())))?;
            for jwk in &set.keys {
                let kid =
                    jwk.common.key_id.clone().ok_or_else(|| AuthError::Key("every JWKS key needs a kid".into()))?;
                let algorithm = match jwk.common.key_algorithm.map(|a| a.to_string()).as_deref() {
                    Some("RS256") => Algorithm::RS256,
                    Some("ES256") => Algorithm::ES256,
                    Some("EdDSA") => Algorithm::EdDSA,
                    other => return Err(AuthError::Key(format!("key {kid}: algorithm {other:?} is not accepted"))),
                };
                let key = DecodingKey::from_jwk(jwk).map_err(|e| AuthError::Key(format!("key {kid}: {e}")))?;
                keys.insert(kid, TrustedKey { key, algorithm, issuer: issuer.clone() });
            }
        }
        Ok(Self {
            keys,
            audience: config.audience.clone(),
            revoked,
            cache: TokenCache::default(),
            provider: std::sync::OnceLock::new(),
        })
    }

    /// Trusts the tokens of `provider` (once; later calls are ignored).
    pub fn set_provider(&self, provider: Arc<super::oidc::Provider>) {
        if self.provider.set(provider).is_err() {
            tracing::warn!("an identity provider was already configured");
        }
    }

    /// Forgets every checked token, so that the next request of each is
    /// checked (and mapped) again.
    pub fn forget_checked(&self) {
        self.cache.clear();
    }

    /// The OpenID Connect provider, if one is configured.
    pub fn provider(&self) -> Option<&Arc<super::oidc::Provider>> {
        self.provider.get()
    }

    /// The principal a bearer token stands for.
    pub fn authenticate(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        let now = now();
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut cache_key = [0u8; 32];
        cache_key.copy_from_slice(digest.as_ref());
        let cached = self.cache.get(&cache_key, now).filter(|(_, kid)| {
            // A provider's token is good only while the provider still
            // publishes its key: a withdrawn key ends it at the next refresh.
            kid.as_ref().is_none_or(|kid| self.provider.get().is_some_and(|p| p.has_key(kid)))
        });
        let principal = match cached {
            Some((principal, _)) => principal,
            None => {
                let (principal, kid) = self.verify(token)?;
                let principal = Arc::new(principal);
                self.cache.put(cache_key, (principal.clone(), kid), now);
                principal
            }
        };
        if self.revoked.contains(&principal.jti) {
            return Err(AuthError::Revoked);
        }
        Ok(principal)
    }

    /// Checks a token, answering its principal and, for a provider's token,
    /// the `kid` of the key it was checked with.
    fn verify(&self, token: &str) -> Result<(Principal, Option<String>), AuthError> {
        let invalid = |why: String| AuthError::Invalid(why);
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(format!("malformed: {e}")))?;
        let kid = header.kid.ok_or_else(|| invalid("no kid in the header".into()))?;
        let Some(trusted) = self.keys.get(&kid) else {
            return match self.provider.get() {
                Some(provider) => {
                    let (kid, claims) = provider.verify(token)?;
                    Ok((provider.principal(token, &claims)?, Some(kid)))
                }
                None => Err(invalid(format!("unknown kid {kid:?}"))),
            };
        };
        if header.alg != trusted.algorithm {
            return Err(invalid(format!("algorithm {:?} is not the key's algorithm", header.alg)));
        }
        let mut validation = Validation::new(trusted.algorithm);
        validation.algorithms = vec![trusted.algorithm];
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.validate_exp = true;
        validation.leeway = LEEWAY_SECONDS;
        validation.set_issuer(&[trusted.issuer.as_str()]);
        validation.set_audience(&[self.audience.as_str()]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &trusted.key, &validation).map_err(|e| invalid(e.to_string()))?;
        let claims = data.claims;
        let jti = claims.jti.filter(|j| !j.is_empty()).ok_or_else(|| invalid("the jti claim is required".into()))?;
        if claims.sub.is_empty() {
            return Err(invalid("the sub claim is required".into()));
        }
        Ok((Principal { sub: claims.sub, roles: claims.roles, projects: claims.projects, jti, exp: claims.exp }, None))
    }
}
