//! Reading JSON request bodies under an explicit size limit, with errors in
//! the API's JSON shape. (`web::Json` answers oversize or malformed bodies
//! with plain-text errors, and the raw payload stream has no limit at all.)

use actix_web::{http::header, web, HttpRequest};
use futures_util::StreamExt;

use super::ApiError;

/// Reads the body as JSON, refusing more than `limit` bytes with 413 and a
/// non-JSON content type with 415.
pub async fn read_json(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<serde_json::Value, ApiError> {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("expected Content-Type: application/json, got {content_type:?}"),
        ));
    }
    let too_large = || {
        ApiError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is larger than {limit} bytes"),
        )
    };
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request("invalid_body", format!("cannot read request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("malformed_json", format!("request body is not valid JSON: {e}")))
}

/// Reads an optional JSON request body: none at all (`Content-Length: 0`, or
/// neither a length nor a content type) gives `T::default()`; anything else
/// is read like [`read_json`] and must be a `T`.
pub async fn read_optional_json<T: serde::de::DeserializeOwned + Default>(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<T, ApiError> {
    let length = req.headers().get(header::CONTENT_LENGTH);
    let empty = length.is_some_and(|v| v.as_bytes() == b"0")
        || (length.is_none() && req.headers().get(header::CONTENT_TYPE).is_none());
    if empty {
        return Ok(T::default());
    }
    serde_json::from_value(read_json(req, payload, limit).await?)
        .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))
}
