//! The first administrator's way in, as Jupyter and Grafana do it: on a
//! ledger where no administrator token was ever issued, the server prints
//! a sign-in URL with a one-time code. Only the code's SHA-256 is kept; it
//! works once, for 15 minutes, and using it issues an administrator token,
//! which puts `token.issued` (actor [`ACTOR`]) on the record.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::session::random_hex;

/// How long the printed code works.
pub const VALID_FOR: Duration = Duration::from_secs(15 * 60);
/// The actor of the `token.issued` event the code's use records.
pub const ACTOR: &str = "first-run-code";

/// The pending one-time code, if any.
#[derive(Default)]
pub struct FirstRun {
    pending: Mutex<Option<Pending>>,
}

struct Pending {
    digest: [u8; 32],
    expires: Instant,
}

/// Why a code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeRefused {
    #[error("this sign-in code is not valid: it was used already, or mistyped, or no first-run code was issued")]
    Unknown,
    #[error("this sign-in code has expired (it works for 15 minutes); restart the server for a new one")]
    Expired,
}

fn digest(code: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, code.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl FirstRun {
    /// Issues a new code (replacing any pending one) and returns it in clear,
    /// for the one line the server prints.
    pub fn issue(&self) -> String {
        let code = random_hex();
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Pending { digest: digest(&code), expires: Instant::now() + VALID_FOR });
        code
    }

    /// Whether a code is waiting to be used.
    pub fn is_pending(&self) -> bool {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_some_and(|p| p.expires > Instant::now())
    }

    /// Uses `code`: it is spent whether or not what follows succeeds, so a
    /// code can never sign in twice.
    pub fn redeem(&self, code: &str) -> Result<(), CodeRefused> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = pending.as_ref() else { return Err(CodeRefused::Unknown) };
        if !super::session::same_digest(&p.digest, &digest(code.trim())) {
            return Err(CodeRefused::Unknown);
        }
        let expired = p.expires <= Instant::now();
        *pending = None;
        if expired {
            Err(CodeRefused::Expired)
        } else {
            Ok(())
        }
    }

    /// Withdraws the pending code (an administrator token now exists).
    pub fn withdraw(&self) {
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_works_once() {
        let first = FirstRun::default();
        let code = first.issue();
        assert_eq!(first.redeem("wrong"), Err(CodeRefused::Unknown));
        assert!(first.is_pending(), "a wrong guess does not spend the code");
        assert_eq!(first.redeem(&code), Ok(()));
        assert_eq!(first.redeem(&code), Err(CodeRefused::Unknown));
        assert!(!first.is_pending());
    }
}
