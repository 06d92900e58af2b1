//! Reading JSON request bodies under an explicit size limit, with errors in
//! the API's JSON shape. (`web::Json` answers oversize or malformed bodies
//! with plain-text errors, and the raw payload stream has no limit at all.)

use actix_web::{dev, http::header, web, FromRequest, HttpRequest};
use futures_util::{Stream, StreamExt};

use super::ApiError;

/// A request body as a stream of chunks (`web::Payload` or the extractor's).
pub trait BodyStream: Stream<Item = Result<web::Bytes, actix_web::error::PayloadError>> + Unpin {}

impl<S: Stream<Item = Result<web::Bytes, actix_web::error::PayloadError>> + Unpin> BodyStream for S {}

/// Reads the body as JSON, refusing more than `limit` bytes with 413, a
/// non-JSON content type with 415, and an object with a key given twice
/// with 400: which of two values counts is not for a parser to decide.
pub async fn read_json(
    req: &HttpRequest,
    payload: impl BodyStream,
    limit: usize,
) -> Result<serde_json::Value, ApiError> {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            crate::error_code::ErrorCode::UnsupportedMediaType,
            format!("expected Content-Type: application/json, got {content_type:?}"),
        ));
    }
    let body = read_bytes(req, payload, limit).await?;
    let mut parser = serde_json::Deserializer::from_slice(&body);
    let value = serde::de::DeserializeSeed::deserialize(UniqueKeys, &mut parser)
        .and_then(|v| parser.end().map(|()| v))
        .map_err(|e| {
            ApiError::new(crate::error_code::ErrorCode::MalformedJson, format!("request body is not valid JSON: {e}"))
        })?;
    Ok(value)
}

/// Reads the whole body, refusing more than `limit` bytes with 413 and a
/// body that takes longer than the configured timeout to arrive with 408.
/// The body as UTF-8 text (a policy, rules, a map), `what` naming it in
/// the refusal.
pub async fn read_text(
    req: &HttpRequest,
    payload: impl BodyStream,
    limit: usize,
    what: &str,
) -> Result<String, ApiError> {
    let body = read_bytes(req, payload, limit).await?;
    String::from_utf8(body.to_vec()).map_err(|_| {
        ApiError::new(crate::error_code::ErrorCode::MalformedRequest, format!("{what} must be UTF-8 text"))
    })
}

pub async fn read_bytes(req: &HttpRequest, mut payload: impl BodyStream, limit: usize) -> Result<web::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            crate::error_code::ErrorCode::PayloadTooLarge,
            format!("request body is larger than {limit} bytes"),
        )
    };
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let timeout = req
        .app_data::<web::Data<super::AppState>>()
        .map_or(std::time::Duration::from_secs(30), |s| s.limits.body_read_timeout);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    loop {
        let next = tokio::time::timeout_at(deadline, payload.next()).await.map_err(|_| {
            ApiError::new(
                crate::error_code::ErrorCode::RequestTimeout,
                format!("the request body did not arrive within {} s", timeout.as_secs()),
            )
        })?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| {
            ApiError::new(crate::error_code::ErrorCode::InvalidBody, format!("cannot read request body: {e}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// A JSON request body of type `T`, read as [`read_json`] reads it (size and
/// time limits, no repeated key) and refused with 400 `malformed_request`
/// when it is not a `T`. Put it after the `Caller` in a handler's
/// arguments: the caller is authenticated before the body is read.
pub struct Body<T>(pub T);

impl<T: serde::de::DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = ApiError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        let (req, payload) = (req.clone(), payload.take());
        Box::pin(async move { read_typed(&req, payload, body_limit(&req)).await.map(Body) })
    }
}

/// An optional JSON request body of type `T`: none at all gives
/// `T::default()` (see [`read_optional_json`]); anything else is read and
/// refused as [`Body`] would.
pub struct OptionalBody<T>(pub T);

impl<T: serde::de::DeserializeOwned + Default + 'static> FromRequest for OptionalBody<T> {
    type Error = ApiError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        let (req, payload) = (req.clone(), payload.take());
        Box::pin(async move { read_optional_json(&req, payload, body_limit(&req)).await.map(OptionalBody) })
    }
}

/// Deserializes any JSON value, refusing an object that repeats a key.
struct UniqueKeys;

impl<'de> serde::de::DeserializeSeed<'de> for UniqueKeys {
    type Value = serde_json::Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for UniqueKeys {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(UniqueKeys)? {
            items.push(item);
        }
        Ok(serde_json::Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("the key {key:?} appears twice in one object")));
            }
            let value = map.next_value_seed(UniqueKeys)?;
            object.insert(key, value);
        }
        Ok(serde_json::Value::Object(object))
    }
}

/// Reads an optional JSON request body: none at all (`Content-Length: 0`, or
/// neither a length nor a content type) gives `T::default()`; anything else
/// is read like [`read_json`] and must be a `T`.
pub async fn read_optional_json<T: serde::de::DeserializeOwned + Default>(
    req: &HttpRequest,
    payload: impl BodyStream,
    limit: usize,
) -> Result<T, ApiError> {
    let length = req.headers().get(header::CONTENT_LENGTH);
    let empty = length.is_some_and(|v| v.as_bytes() == b"0")
        || (length.is_none() && req.headers().get(header::CONTENT_TYPE).is_none());
    if empty {
        return Ok(T::default());
    }
    read_typed(req, payload, limit).await
}

/// A JSON body read as [`read_json`] reads it, that must be a `T` (400
/// `malformed_request` otherwise).
async fn read_typed<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    payload: impl BodyStream,
    limit: usize,
) -> Result<T, ApiError> {
    serde_json::from_value(read_json(req, payload, limit).await?)
        .map_err(|e| ApiError::new(crate::error_code::ErrorCode::MalformedRequest, e.to_string()))
}

/// The configured body limit (1 MiB when the app has no state, in unit tests).
fn body_limit(req: &HttpRequest) -> usize {
    req.app_data::<web::Data<super::AppState>>().map_or(1 << 20, |s| s.limits.max_body_bytes)
}

#[cfg(test)]
mod tests {
    use super::UniqueKeys;

    fn parse(text: &str) -> Result<serde_json::Value, serde_json::Error> {
        let mut parser = serde_json::Deserializer::from_str(text);
        let value = serde::de::DeserializeSeed::deserialize(UniqueKeys, &mut parser)?;
        parser.end().map(|()| value)
    }

    #[test]
    fn a_repeated_key_is_refused_at_any_depth_and_everything_else_parses_as_serde_json_does() {
        for bad in [r#"{"kind":"a","kind":"b"}"#, r#"{"x":[{"a":1,"a":1}]}"#, r#"{"e":{"k":{"z":1,"z":2}}}"#] {
            let err = parse(bad).unwrap_err();
            assert!(err.to_string().contains("appears twice"), "{bad}: {err}");
        }
        for good in [r#"{"a":1,"b":[1,2.5,-3,true,null,"x"],"c":{"a":{}}}"#, "[]", "18446744073709551615", r#""é""#] {
            assert_eq!(parse(good).unwrap(), serde_json::from_str::<serde_json::Value>(good).unwrap(), "{good}");
        }
        assert!(parse(r#"{"a":1} trailing"#).is_err());
    }
}
