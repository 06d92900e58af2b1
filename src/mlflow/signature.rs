//! MLflow's webhook signature: `X-MLflow-Signature: v1,<base64 HMAC-SHA256>`
//! over `delivery_id.timestamp.body`, keyed with the webhook's secret
//! (mlflow/webhooks/delivery.py): the Standard Webhooks scheme our own
//! webhooks sign with, so the same code checks it.

use crate::webhooks::signing;

/// The maximum distance between a delivery's timestamp and our clock:
/// older deliveries could be replays.
pub const TOLERANCE_SECONDS: i64 = 300;

/// Why a delivery is not authentic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no webhook secret is configured (--mlflow-webhook-secret-file), so no delivery can be authenticated")]
    NoSecret,
    #[error("the {0} header is missing")]
    Missing(&'static str),
    #[error("the X-MLflow-Timestamp header is not Unix seconds")]
    BadTimestamp,
    #[error("the delivery is {0} s away from this server's clock (at most {TOLERANCE_SECONDS} s): a replay, or a clock to fix")]
    Stale(i64),
    #[error("the signature does not match the configured secret")]
    Mismatch,
}

/// The headers a delivery's authenticity rests on.
pub struct Signed<'a> {
    pub delivery_id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Checks that `body` was signed with `secret` by MLflow, recently.
pub fn verify(secret: Option<&str>, headers: &Signed<'_>, body: &[u8], now: i64) -> Result<(), SignatureError> {
    let secret = secret.ok_or(SignatureError::NoSecret)?;
    let delivery_id = headers.delivery_id.ok_or(SignatureError::Missing("X-MLflow-Delivery-Id"))?;
    let timestamp = headers.timestamp.ok_or(SignatureError::Missing("X-MLflow-Timestamp"))?;
    let signature = headers.signature.ok_or(SignatureError::Missing("X-MLflow-Signature"))?;
    let sent: i64 = timestamp.parse().map_err(|_| SignatureError::BadTimestamp)?;
    if (now - sent).abs() > TOLERANCE_SECONDS {
        return Err(SignatureError::Stale(now - sent));
    }
    if signing::verifies(secret.as_bytes(), delivery_id, timestamp, body, signature) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Signs like MLflow does (for tests and senders of test deliveries).
pub fn sign(secret: &str, delivery_id: &str, timestamp: u64, body: &[u8]) -> String {
    signing::signature_header(&[secret.as_bytes()], delivery_id, timestamp, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers<'a>(signature: &'a str, timestamp: &'a str) -> Signed<'a> {
        Signed { delivery_id: Some("d-1"), timestamp: Some(timestamp), signature: Some(signature) }
    }

    #[test]
    fn a_signature_made_like_mlflow_verifies_and_any_change_fails() {
        let body = br#"{"entity":"model_version","action":"created"}"#;
        let good = sign("s3cret", "d-1", 1000, body);
        assert_eq!(verify(Some("s3cret"), &headers(&good, "1000"), body, 1010), Ok(()));
        assert_eq!(verify(Some("other"), &headers(&good, "1000"), body, 1010), Err(SignatureError::Mismatch));
        assert_eq!(verify(Some("s3cret"), &headers(&good, "1001"), body, 1010), Err(SignatureError::Mismatch));
        assert_eq!(verify(Some("s3cret"), &headers(&good, "1000"), b"{}", 1010), Err(SignatureError::Mismatch));
        assert_eq!(verify(Some("s3cret"), &headers(&good, "1000"), body, 2000), Err(SignatureError::Stale(1000)));
        assert_eq!(verify(None, &headers(&good, "1000"), body, 1010), Err(SignatureError::NoSecret));
        let rotated = format!("v1,AAAA {good}");
        assert_eq!(verify(Some("s3cret"), &headers(&rotated, "1000"), body, 1010), Ok(()));
        let unsigned = Signed { signature: None, ..headers(&good, "1000") };
        assert_eq!(verify(Some("s3cret"), &unsigned, body, 1010), Err(SignatureError::Missing("X-MLflow-Signature")));
    }
}
