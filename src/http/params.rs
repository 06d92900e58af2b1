//! Parameter types shared by several routes.

use serde::{Deserialize, Deserializer};

use super::ApiError;
use crate::config::Limits;
use crate::error_code::ErrorCode;

/// The page size of a listing: `asked`, or the configured default; 422
/// `invalid_limit` outside 1 to `max_page_size`. Every paginated route
/// asks here, so they share one bound.
pub fn page_size(asked: Option<u32>, limits: &Limits) -> Result<usize, ApiError> {
    bounded_page_size(asked, limits.default_page_size, limits.max_page_size)
}

/// [`page_size`] with a route's own default and a bound below
/// `max_page_size` (search, whose hits carry snippets and facets).
pub fn bounded_page_size(asked: Option<u32>, default: u32, max: u32) -> Result<usize, ApiError> {
    match asked.unwrap_or(default) {
        n if n >= 1 && n <= max => Ok(n as usize),
        _ => Err(ApiError::new(ErrorCode::InvalidLimit, format!("limit must be between 1 and {max}"))),
    }
}

/// The first `size` of `items`, fetched with one more than the page holds,
/// and whether another page follows.
pub fn split_page<T>(mut items: Vec<T>, size: usize) -> (Vec<T>, bool) {
    let more = items.len() > size;
    items.truncate(size);
    (items, more)
}

/// A sequence number or tree size in a path or query string: 0 to 2^63 - 1,
/// the range both databases store and the OpenAPI description promises
/// (`int64`, minimum 0). Larger values are refused as unreadable (400)
/// rather than silently wrapped or clamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seq(pub u64);

impl<'de> Deserialize<'de> for Seq {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = u64::deserialize(deserializer)?;
        if i64::try_from(value).is_err() {
            return Err(serde::de::Error::custom(format!("{value} is larger than 9223372036854775807")));
        }
        Ok(Self(value))
    }
}

impl utoipa::PartialSchema for Seq {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64)))
            .minimum(Some(0))
            .into()
    }
}

impl utoipa::ToSchema for Seq {
    fn name() -> std::borrow::Cow<'static, str> {
        "Seq".into()
    }
}

#[cfg(test)]
mod tests {
    use super::Seq;

    #[derive(serde::Deserialize)]
    struct Query {
        seq: Seq,
    }

    #[test]
    fn sequence_numbers_beyond_int64_are_refused() {
        let ok: Query = serde_urlencoded_like("seq=9223372036854775807").unwrap();
        assert_eq!(ok.seq, Seq(i64::MAX as u64));
        assert!(serde_urlencoded_like("seq=9223372036854775808").is_err());
        assert!(serde_urlencoded_like("seq=-1").is_err());
    }

    fn serde_urlencoded_like(q: &str) -> Result<Query, String> {
        actix_web::web::Query::<Query>::from_query(q).map(|q| q.into_inner()).map_err(|e| e.to_string())
    }
}
