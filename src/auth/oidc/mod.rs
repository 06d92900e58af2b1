//! An OpenID Connect provider: its discovery document and signing keys,
//! and the checks a token it signed must pass.
//!
//! The keys (JWKS) come from the provider's `jwks_uri` and are kept in
//! memory and in the data directory. A token naming a `kid` the cache does
//! not hold triggers one refresh, at most once a minute, so that a key the
//! provider rotated in is accepted without a restart while a stream of forged
//! `kid`s cannot make the server hammer the provider. A scheduled refresh
//! drops keys the provider withdrew. When the provider cannot be reached the
//! cached keys go on being used: it being down does not sign anyone out.

pub mod login;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::identity::{actor_of, IdentityMap};
use super::{AuthError, Principal};

/// Least time between two refreshes asked for by an unknown `kid`.
pub const KID_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// How the provider is reached and what its tokens must say.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The issuer URL; discovery is at `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// The client secret (read from a file, never a flag value).
    pub client_secret: Option<Zeroizing<String>>,
    /// `aud` a token must carry: the client id unless configured.
    pub audience: String,
    /// The name on the sign-in button.
    pub display_name: String,
    /// Longest console session, whatever the ID token's lifetime.
    pub session_max: Duration,
    /// How often the keys are refreshed on schedule.
    pub refresh_interval: Duration,
    /// Timeout of each request to the provider.
    pub timeout: Duration,
    /// Where the last discovery document and keys are kept, so that a
    /// restart while the provider is down still checks tokens.
    pub cache_path: PathBuf,
    /// Whether the console still offers token sign-in (to administrators).
    pub token_signin: bool,
}

impl OidcConfig {
    /// Defaults for `issuer` and `client_id`, caching in `data_dir`.
    pub fn new(issuer: &str, client_id: &str, data_dir: &std::path::Path) -> Self {
        let host = url::Url::parse(issuer).ok().and_then(|u| u.host_str().map(str::to_owned));
        Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            client_id: client_id.to_owned(),
            client_secret: None,
            audience: client_id.to_owned(),
            display_name: host.unwrap_or_else(|| issuer.to_owned()),
            session_max: Duration::from_secs(8 * 3600),
            refresh_interval: Duration::from_secs(3600),
            timeout: Duration::from_secs(10),
            cache_path: data_dir.join("oidc-cache.json"),
            token_signin: true,
        }
    }
}

/// The parts of the discovery document govledger uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_session_endpoint: Option<String>,
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Cached {
    metadata: Metadata,
    jwks: serde_json::Value,
}

struct Key {
    key: DecodingKey,
    algorithm: Algorithm,
}

/// Why the provider could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("identity provider {0}: {1}")]
    Unreachable(String, String),
    #[error("identity provider {0}: {1}")]
    Invalid(String, String),
}

/// The provider, its keys and the identity map its people are read through.
pub struct Provider {
    config: OidcConfig,
    metadata: RwLock<Metadata>,
    keys: RwLock<Arc<HashMap<String, Key>>>,
    last_kid_refresh: Mutex<Option<Instant>>,
    identity: RwLock<Arc<IdentityMap>>,
}

fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<serde_json::Value, String> {
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("GET {url} answered {status}"));
    }
    response.json().await.map_err(|e| format!("GET {url}: not JSON: {e}"))
}

/// The algorithm a key is used with: its `alg`, else the one its type
/// implies (RS256 for RSA, as OpenID Connect defaults to).
fn algorithm_of(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    if let Some(alg) = jwk.common.key_algorithm {
        return match alg.to_string().as_str() {
            "RS256" => Some(Algorithm::RS256),
            "RS384" => Some(Algorithm::RS384),
            "RS512" => Some(Algorithm::RS512),
            "PS256" => Some(Algorithm::PS256),
            "ES256" => Some(Algorithm::ES256),
            "ES384" => Some(Algorithm::ES384),
            "EdDSA" => Some(Algorithm::EdDSA),
            _ => None,
        };
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => Some(Algorithm::ES256),
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P384 => Some(Algorithm::ES384),
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => Some(Algorithm::EdDSA),
        // Symmetric keys are never trusted: a client secret must not sign tokens.
        _ => None,
    }
}

/// The signing keys of a JWKS, by `kid`; keys for encryption, without a
/// `kid` or of an algorithm not accepted are left out.
fn signing_keys(jwks: &serde_json::Value) -> Result<HashMap<String, Key>, String> {
    let set: JwkSet = serde_json::from_value(jwks.clone()).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let (Some(kid), Some(algorithm)) = (jwk.common.key_id.clone(), algorithm_of(jwk)) else { continue };
        if let Ok(key) = DecodingKey::from_jwk(jwk) {
            keys.insert(kid, Key { key, algorithm });
        }
    }
    Ok(keys)
}

impl Provider {
    /// Discovers the provider and fetches its keys; when it cannot be
    /// reached, starts from the cached document and keys of an earlier run.
    pub async fn discover(config: OidcConfig, identity: IdentityMap) -> Result<Arc<Self>, ProviderError> {
        let issuer = config.issuer.clone();
        let fetched = Self::fetch(&config).await;
        let cached = match fetched {
            Ok(cached) => {
                Self::save(&config, &cached);
                cached
            }
            Err(ProviderError::Unreachable(_, why)) => {
                let text = std::fs::read_to_string(&config.cache_path).map_err(|_| {
                    ProviderError::Unreachable(issuer.clone(), format!("{why}, and no keys are cached from a past run"))
                })?;
                tracing::warn!(issuer = %issuer, error = %why, "the identity provider is unreachable; using its cached keys");
                serde_json::from_str::<Cached>(&text).ok().filter(|c| c.metadata.issuer == issuer).ok_or_else(|| {
                    ProviderError::Unreachable(issuer.clone(), format!("{why}; the cache is unusable"))
                })?
            }
            Err(e) => return Err(e),
        };
        let keys = signing_keys(&cached.jwks).map_err(|e| ProviderError::Invalid(issuer.clone(), e))?;
        Ok(Arc::new(Self {
            config,
            metadata: RwLock::new(cached.metadata),
            keys: RwLock::new(Arc::new(keys)),
            last_kid_refresh: Mutex::new(None),
            identity: RwLock::new(Arc::new(identity)),
        }))
    }

    async fn fetch(config: &OidcConfig) -> Result<Cached, ProviderError> {
        let issuer = config.issuer.clone();
        let unreachable = |e: String| ProviderError::Unreachable(issuer.clone(), e);
        let client = http_client(config.timeout).map_err(unreachable)?;
        let url = format!("{}/.well-known/openid-configuration", config.issuer);
        let document = get_json(&client, &url).await.map_err(unreachable)?;
        let metadata: Metadata = serde_json::from_value(document)
            .map_err(|e| ProviderError::Invalid(issuer.clone(), format!("discovery document: {e}")))?;
        // OpenID Connect Discovery 1.0, 4.3: the document must be the
        // issuer's own, or its keys could vouch for another issuer's tokens.
        if metadata.issuer.trim_end_matches('/') != config.issuer {
            return Err(ProviderError::Invalid(
                issuer.clone(),
                format!("the discovery document names issuer {:?}", metadata.issuer),
            ));
        }
        let jwks = get_json(&client, &metadata.jwks_uri).await.map_err(unreachable)?;
        Ok(Cached { metadata, jwks })
    }

    fn save(config: &OidcConfig, cached: &Cached) {
        if let Ok(text) = serde_json::to_string(cached) {
            let tmp = config.cache_path.with_extension("json.tmp");
            if std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &config.cache_path)).is_err() {
                tracing::warn!(path = %config.cache_path.display(), "cannot cache the identity provider's keys");
            }
        }
    }

    /// Fetches the discovery document and keys again and installs them;
    /// on failure the keys in use stay.
    pub async fn refresh(&self) -> Result<usize, ProviderError> {
        let cached = Self::fetch(&self.config).await?;
        self.install(cached)
    }

    /// Puts a fetched document and its keys in use, and caches them; keys
    /// that cannot be used leave those in use in place.
    fn install(&self, cached: Cached) -> Result<usize, ProviderError> {
        let keys = signing_keys(&cached.jwks).map_err(|e| ProviderError::Invalid(self.config.issuer.clone(), e))?;
        let count = keys.len();
        Self::save(&self.config, &cached);
        *self.metadata.write().unwrap_or_else(|e| e.into_inner()) = cached.metadata;
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(count)
    }

    /// Refreshes on schedule until the process ends.
    pub fn spawn_refresher(self: &Arc<Self>) {
        let provider = Arc::downgrade(self);
        let every = self.config.refresh_interval;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let Some(provider) = provider.upgrade() else { return };
                if let Err(e) = provider.refresh().await {
                    tracing::warn!(error = %e, "the identity provider's keys were not refreshed; the cached keys stay");
                }
            }
        });
    }

    /// A refresh because a token named `kid`, unless one ran in the last
    /// minute. Runs on a thread of its own: token checks are synchronous.
    fn refresh_for_unknown_kid(&self, kid: &str) -> bool {
        {
            let mut last = self.last_kid_refresh.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < KID_REFRESH_INTERVAL) {
                return false;
            }
            *last = Some(Instant::now());
        }
        tracing::info!(kid = %kid, "a token names a key not in the cache; refreshing the identity provider's keys");
        let config = self.config.clone();
        let fetched = std::thread::scope(|s| {
            s.spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                Some(runtime.block_on(Self::fetch(&config)))
            })
            .join()
            .ok()
            .flatten()
        });
        match fetched.map(|f| f.and_then(|cached| self.install(cached))) {
            Some(Ok(_)) => true,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "the identity provider's keys were not refreshed; the cached keys stay");
                false
            }
            None => false,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// The discovery document in use.
    pub fn metadata(&self) -> Metadata {
        self.metadata.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The identity map in force.
    pub fn identity(&self) -> Arc<IdentityMap> {
        self.identity.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Installs a new identity map.
    pub fn replace_identity(&self, map: IdentityMap) {
        *self.identity.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(map);
    }

    /// Whether the cache holds key `kid` (a cached token's key must still be
    /// one the provider publishes).
    pub fn has_key(&self, kid: &str) -> bool {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).contains_key(kid)
    }

    /// Checks a token of the provider: signature with the key its `kid`
    /// names (and that key's algorithm only), issuer, audience, expiry and
    /// not-before. Answers the verified claims.
    pub fn verify(&self, token: &str) -> Result<(String, serde_json::Value), AuthError> {
        let invalid = |why: String| AuthError::Invalid(why);
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(format!("malformed: {e}")))?;
        let kid = header.kid.ok_or_else(|| invalid("no kid in the header".into()))?;
        if !self.has_key(&kid) {
            self.refresh_for_unknown_kid(&kid);
        }
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        let key = keys.get(&kid).ok_or_else(|| {
            invalid(format!("unknown kid {kid:?}: the identity provider {} does not publish it", self.config.issuer))
        })?;
        if header.alg != key.algorithm {
            return Err(invalid(format!("algorithm {:?} is not the key's algorithm", header.alg)));
        }
        let mut validation = Validation::new(key.algorithm);
        validation.algorithms = vec![key.algorithm];
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.validate_exp = true;
        validation.leeway = super::tokens::LEEWAY_SECONDS;
        validation.set_issuer(&[self.config.issuer.as_str()]);
        validation.set_audience(&[self.config.audience.as_str()]);
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &validation)
            .map_err(|e| invalid(e.to_string()))?;
        Ok((kid, data.claims))
    }

    /// The principal the verified `claims` stand for, through the identity
    /// map: no matching rule, no access.
    pub fn principal(&self, token: &str, claims: &serde_json::Value) -> Result<Principal, AuthError> {
        let sub = claims["sub"].as_str().filter(|s| !s.is_empty());
        let sub = sub.ok_or_else(|| AuthError::Invalid("the sub claim is required".into()))?;
        let actor = actor_of(&self.config.issuer, sub);
        crate::ledger::actor::validate_subject(&actor)
            .map_err(|e| AuthError::Invalid(format!("the provider's subject cannot be an actor: {e}")))?;
        let identity = self.identity();
        let grant = identity.grant(claims).ok_or_else(|| {
            AuthError::Forbidden(format!(
                "{actor} signed in, but no rule of the identity map matches their claims, so they have no access; \
                 an administrator maps their group in the identity map"
            ))
        })?;
        // ID tokens carry no `jti`; the token's own digest then names it, for
        // revocation and the per-token limits.
        let jti = match claims["jti"].as_str().filter(|j| !j.is_empty()) {
            Some(jti) => jti.to_owned(),
            None => {
                let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
                format!("oidc-{}", hex::encode(&digest.as_ref()[..16]))
            }
        };
        Ok(Principal {
            sub: actor,
            roles: grant.roles,
            projects: grant.projects,
            jti,
            exp: claims["exp"].as_u64().unwrap_or(0),
        })
    }
}
