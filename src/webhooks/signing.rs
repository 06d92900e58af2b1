//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>): the
//! signed content is `webhook-id.webhook-timestamp.body`, signed with
//! HMAC-SHA256 and sent as `v1,<base64>`; secrets are shown as `whsec_` and
//! the base64 of their bytes. During a secret rotation both secrets sign,
//! space-separated, so receivers can switch at their own pace.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::hmac;

/// The prefix of a secret as shown to its owner.
pub const SECRET_PREFIX: &str = "whsec_";

/// A secret as its owner configures it in their receiver.
pub fn display_secret(bytes: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", B64.encode(bytes))
}

/// The `webhook-signature` header for `body`, signed with every secret in
/// `secrets` (the current one first).
pub fn signature_header(secrets: &[&[u8]], id: &str, timestamp: u64, body: &[u8]) -> String {
    let content = signed_content(id, &timestamp.to_string(), body);
    secrets
        .iter()
        .map(|secret| {
            let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), &content);
            format!("v1,{}", B64.encode(tag.as_ref()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether one of the space-separated `v1,` signatures of `header` signs
/// `id.timestamp.body` with `secret` (compared in constant time). MLflow's
/// webhooks sign this way too.
pub fn verifies(secret: &[u8], id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let content = signed_content(id, timestamp, body);
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    header
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|b64| B64.decode(b64).is_ok_and(|tag| hmac::verify(&key, &content, &tag).is_ok()))
}

fn signed_content(id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
    content.extend_from_slice(id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    content
}

/// The `webhook-id` of event `seq` for subscription `subscription`: the
/// same on every attempt and replay, so receivers can drop duplicates.
pub fn message_id(subscription: &str, seq: u64) -> String {
    format!("msg_{}_{seq}", subscription.replace('-', ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference
    /// libraries (secret, id, timestamp, payload and signature).
    #[test]
    fn signs_as_the_specification_example_does() {
        let secret = B64.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let header = signature_header(&[&secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_rotation_signs_with_both_secrets_and_ids_are_stable() {
        let header = signature_header(&[b"new", b"old"], "id", 1, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        assert_eq!(header.split(' ').nth(1), Some(signature_header(&[b"old"], "id", 1, b"{}").as_str()));
        assert_eq!(message_id("0193-ab", 7), message_id("0193-ab", 7));
        assert_ne!(message_id("0193-ab", 7), message_id("0193-ab", 8));
        assert!(display_secret(b"k").starts_with("whsec_"));
    }
}
