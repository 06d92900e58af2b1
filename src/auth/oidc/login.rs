//! The authorization-code flow with PKCE (S256), `state` and `nonce`, as
//! the console runs it.
//!
//! A sign-in that has been started is kept on the server, found by its
//! `state` and bound to the browser that started it by a cookie: a callback
//! whose `state` is unknown, already used, too old, or arrives in another
//! browser is refused before the code is sent anywhere. The code is
//! exchanged with the PKCE verifier, and the ID token must carry the `nonce`
//! of this sign-in, so that a token captured from another sign-in cannot be
//! replayed into this one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::Provider;
use crate::auth::{AuthError, Principal};

/// How long a started sign-in waits for the provider to send the visitor back.
pub const PENDING_TTL: Duration = Duration::from_secs(600);
/// Most sign-ins waiting at once; past it the oldest is dropped.
const MAX_PENDING: usize = 10_000;

fn random_url_safe(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    // As for session ids: an all-zero value from a failed generator is
    // refused by `start` rather than used.
    if SystemRandom::new().fill(&mut buffer).is_err() {
        buffer.fill(0);
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buffer)
}

fn digest(text: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Whether two digests are equal, looking at every byte.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The S256 challenge of a PKCE verifier (RFC 7636, 4.2).
pub fn challenge_of(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest(verifier))
}

struct Pending {
    verifier: Zeroizing<String>,
    nonce: String,
    next: String,
    browser: [u8; 32],
    started: Instant,
}

/// A started sign-in, as the browser is sent off with it.
pub struct Started {
    /// Where to send the browser.
    pub url: String,
    /// The value of the cookie that binds the sign-in to this browser.
    pub browser: String,
}

/// A sign-in the provider has vouched for.
pub struct Completed {
    pub principal: Principal,
    /// The ID token, kept by the session (for its expiry and the logout hint).
    pub id_token: Zeroizing<String>,
    /// The name shown beside the actor.
    pub display: Option<String>,
    pub next: String,
}

/// Why a callback is refused; nothing is signed in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("this sign-in is unknown, was already used, or took longer than 10 minutes: start again")]
    UnknownState,
    #[error("this sign-in was started in another browser: start again here")]
    OtherBrowser,
    #[error("the identity provider refused the sign-in: {0}")]
    Refused(String),
    #[error("the identity provider cannot be reached: {0}")]
    Unreachable(String),
    #[error("the identity provider's ID token is not acceptable: {0}")]
    BadToken(String),
    #[error(transparent)]
    NoAccess(AuthError),
}

/// The sign-ins waiting for the provider.
#[derive(Default)]
pub struct Logins {
    pending: Mutex<HashMap<[u8; 32], Pending>>,
}

impl Logins {
    /// Starts a sign-in that returns to `redirect_uri` and then to `next`.
    pub fn start(&self, provider: &Provider, redirect_uri: &str, next: &str) -> Option<Started> {
        let (state, nonce, verifier, browser) =
            (random_url_safe(32), random_url_safe(32), random_url_safe(48), random_url_safe(32));
        if [&state, &nonce, &verifier, &browser].iter().any(|v| v.bytes().all(|b| b == b'A')) {
            return None;
        }
        let config = provider.config();
        let mut url = url::Url::parse(&provider.metadata().authorization_endpoint).ok()?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &config.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "openid profile email")
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge_of(&verifier))
            .append_pair("code_challenge_method", "S256");
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|_, p| p.started.elapsed() < PENDING_TTL);
        if pending.len() >= MAX_PENDING {
            let oldest = pending.iter().min_by_key(|(_, p)| p.started).map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                pending.remove(&oldest);
            }
        }
        pending.insert(
            digest(&state),
            Pending {
                verifier: Zeroizing::new(verifier),
                nonce,
                next: next.to_owned(),
                browser: digest(&browser),
                started: Instant::now(),
            },
        );
        Some(Started { url: url.into(), browser })
    }

    /// Takes the sign-in `state` names, once, if `browser` started it.
    fn take(&self, state: &str, browser: Option<&str>) -> Result<Pending, LoginError> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let key = digest(state);
        let found = pending.get(&key).ok_or(LoginError::UnknownState)?;
        if found.started.elapsed() >= PENDING_TTL {
            pending.remove(&key);
            return Err(LoginError::UnknownState);
        }
        let same_browser = browser.is_some_and(|b| same_digest(&digest(b), &found.browser));
        if !same_browser {
            return Err(LoginError::OtherBrowser);
        }
        pending.remove(&key).ok_or(LoginError::UnknownState)
    }

    /// Completes the sign-in `state` names with the provider's `code`.
    pub async fn complete(
        &self,
        provider: &Arc<Provider>,
        redirect_uri: &str,
        state: &str,
        code: &str,
        browser: Option<&str>,
    ) -> Result<Completed, LoginError> {
        let pending = self.take(state, browser)?;
        let id_token = exchange(provider, redirect_uri, code, &pending.verifier).await?;
        let (checking, token, nonce) = (provider.clone(), id_token.clone(), pending.nonce.clone());
        // A key check may refresh the provider's keys, which blocks.
        let (principal, display) = tokio::task::spawn_blocking(move || checking.check_id_token(&token, &nonce))
            .await
            .map_err(|e| LoginError::BadToken(format!("the check did not finish: {e}")))??;
        Ok(Completed { principal, id_token, display, next: pending.next })
    }
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
}

#[derive(serde::Deserialize)]
struct ErrorResponse {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Exchanges `code` at the token endpoint (client_secret_basic when a
/// secret is configured), answering the ID token.
async fn exchange(
    provider: &Provider,
    redirect_uri: &str,
    code: &str,
    verifier: &str,
) -> Result<Zeroizing<String>, LoginError> {
    let config = provider.config();
    let client = super::http_client(config.timeout).map_err(LoginError::Unreachable)?;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ];
    if config.client_secret.is_none() {
        form.push(("client_id", config.client_id.as_str()));
    }
    let mut request = client.post(provider.metadata().token_endpoint).form(&form);
    if let Some(secret) = &config.client_secret {
        // RFC 6749, 2.3.1: both parts form-encoded before the Basic scheme.
        let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        request = request.basic_auth(encode(&config.client_id), Some(encode(secret)));
    }
    let response = request.send().await.map_err(|e| LoginError::Unreachable(e.to_string()))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| LoginError::Unreachable(e.to_string()))?;
    if !status.is_success() {
        let why = serde_json::from_slice::<ErrorResponse>(&body)
            .map(|e| match e.error_description {
                Some(d) => format!("{} ({d})", e.error),
                None => e.error,
            })
            .unwrap_or_else(|_| format!("the token endpoint answered {status}"));
        return Err(LoginError::Refused(why));
    }
    let answer: TokenResponse = serde_json::from_slice(&body)
        .map_err(|e| LoginError::BadToken(format!("the token endpoint's answer is not JSON: {e}")))?;
    answer.id_token.map(Zeroizing::new).ok_or_else(|| LoginError::BadToken("the answer holds no id_token".into()))
}

impl Provider {
    /// Checks an ID token from the code flow: every check of [`Provider::verify`],
    /// and the `nonce` of the sign-in it must belong to.
    pub fn check_id_token(&self, token: &str, nonce: &str) -> Result<(Principal, Option<String>), LoginError> {
        let (_, claims) = self.verify(token).map_err(|e| LoginError::BadToken(e.to_string()))?;
        let carried = claims["nonce"].as_str().unwrap_or_default();
        if !same_digest(&digest(carried), &digest(nonce)) {
            return Err(LoginError::BadToken("its nonce is not this sign-in's".into()));
        }
        let principal = self.principal(token, &claims).map_err(LoginError::NoAccess)?;
        Ok((principal, self.identity().display_name(&claims)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_s256_challenge_is_rfc_7636s() {
        // RFC 7636, appendix B.
        assert_eq!(
            challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
