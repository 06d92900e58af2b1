//! Console sessions, kept by the server: a random 256-bit id in a cookie,
//! mapped to the token the visitor signed in with. The token itself is
//! checked again on every request (revocation, expiry), exactly as a
//! bearer token is, so a session never outlives it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::cookie::{Cookie, SameSite};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// The session cookie's name.
pub const COOKIE: &str = "govledger_session";
/// The cookie that carries the sign-in form's CSRF token before a session exists.
pub const LOGIN_COOKIE: &str = "govledger_login";
/// A session unused this long ends, whatever its token's lifetime.
const IDLE_SECONDS: u64 = 12 * 3600;
/// Most live sessions; past it the oldest idle one ends first.
const MAX_SESSIONS: usize = 10_000;

/// One signed-in visitor.
pub struct Session {
    /// The token the visitor signed in with; never written anywhere.
    pub token: Zeroizing<String>,
    /// Every state-changing form carries it.
    pub csrf: String,
    /// The token's expiry (Unix seconds).
    pub expires_at: u64,
    /// The actor the token stands for, as its sign-in was recorded.
    pub actor: String,
    /// How the visitor signed in: `token`, `first_run` or `oidc` (whose
    /// token is the provider's ID token).
    pub method: &'static str,
    /// The name the provider gives the person, shown beside the actor.
    pub display: Option<String>,
    last_seen: Mutex<u64>,
}

/// The live sessions, keyed by the SHA-256 of their ids, so that a lookup
/// takes the same time whatever the id guessed.
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<[u8; 32], Arc<Session>>>,
}

/// 32 random bytes, hex.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    // The system generator does not fail on the platforms we run on; if it
    // ever did, an all-zero id would be refused below rather than issued.
    if SystemRandom::new().fill(&mut bytes).is_err() {
        bytes = [0; 32];
    }
    hex::encode(bytes)
}

/// The hash of a session id that the ledger records for its sign-in and
/// sign-out (never the id itself, which would let a reader of the ledger
/// take over the session).
pub fn recorded_hash(id: &str) -> String {
    hex::encode(digest(id))
}

fn digest(id: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, id.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn now() -> u64 {
    crate::auth::tokens::now()
}

/// Whether `a` and `b` are equal, in time independent of where they
/// differ: their digests are compared byte by byte, all of them.
pub fn same_secret(a: &str, b: &str) -> bool {
    same_digest(&digest(a), &digest(b))
}

/// Whether two digests are equal, looking at every byte.
pub fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    /// Starts a session for `token` (expiring at `expires_at`), signed in
    /// by `method`; returns its id.
    pub fn start(
        &self,
        token: &str,
        expires_at: u64,
        actor: &str,
        method: &'static str,
        display: Option<String>,
    ) -> Option<String> {
        let id = random_hex();
        if id.bytes().all(|b| b == b'0') {
            return None;
        }
        let session = Session {
            token: Zeroizing::new(token.to_owned()),
            csrf: random_hex(),
            expires_at,
            actor: actor.to_owned(),
            method,
            display,
            last_seen: Mutex::new(now()),
        };
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let at = now();
        live.retain(|_, s| s.usable(at));
        if live.len() >= MAX_SESSIONS {
            let oldest = live.iter().min_by_key(|(_, s)| s.seen()).map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                live.remove(&oldest);
            }
        }
        live.insert(digest(&id), Arc::new(session));
        Some(id)
    }

    /// The live session with id `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let key = digest(id);
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let at = now();
        match live.get(&key) {
            Some(s) if s.usable(at) => {
                *s.last_seen.lock().unwrap_or_else(|e| e.into_inner()) = at;
                Some(s.clone())
            }
            Some(_) => {
                live.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session with id `id` (sign-out, or its token was refused).
    pub fn end(&self, id: &str) {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).remove(&digest(id));
    }

    /// How many sessions are live.
    pub fn len(&self) -> usize {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Session {
    fn seen(&self) -> u64 {
        *self.last_seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn usable(&self, at: u64) -> bool {
        at < self.expires_at && at.saturating_sub(self.seen()) < IDLE_SECONDS
    }
}

/// A console cookie: `HttpOnly; SameSite=Strict; Path=/ui`, and `Secure`
/// when the console is served over https.
pub fn cookie(name: &'static str, value: String, secure: bool) -> Cookie<'static> {
    Cookie::build(name, value).path("/ui").http_only(true).same_site(SameSite::Strict).secure(secure).finish()
}

/// The cookie that removes `name`.
pub fn removal(name: &'static str, secure: bool) -> Cookie<'static> {
    let mut c = cookie(name, String::new(), secure);
    c.make_removal();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_id_only_and_ends_on_request() {
        let sessions = Sessions::default();
        let id = sessions.start("tok", now() + 60, "alice", "token", None).unwrap();
        assert_eq!(id.len(), 64, "256 bits, hex");
        assert_eq!(sessions.get(&id).unwrap().token.as_str(), "tok");
        assert!(sessions.get(&random_hex()).is_none());
        sessions.end(&id);
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn a_session_ends_with_its_token() {
        let sessions = Sessions::default();
        let id = sessions.start("tok", now().saturating_sub(1), "alice", "token", None).unwrap();
        assert!(sessions.get(&id).is_none());
        assert!(sessions.is_empty());
    }
}
