//! The one timestamp format the ledger stores and hashes.
//!
//! Fixed width, UTC, microseconds (`2026-11-22T20:08:36.123456Z`): two
//! timestamps compare in time order exactly when their strings compare in
//! byte order, which the store relies on for range filters.

use chrono::{DateTime, SecondsFormat, Utc};

use super::event::ValidationError;

/// Formats a UTC instant in the ledger's canonical form.
pub fn format(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The current time in canonical form.
pub fn now() -> String {
    format(Utc::now())
}

/// Parses any RFC 3339 timestamp (with offset) and returns its canonical form.
pub fn normalize(input: &str) -> Result<String, ValidationError> {
    let parsed = DateTime::parse_from_rfc3339(input).map_err(|e| {
        ValidationError::new(format!("invalid timestamp {input:?}: {e} (expected RFC 3339, e.g. 2026-03-03T09:00:00Z)"))
    })?;
    Ok(format(parsed.with_timezone(&Utc)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_offsets_to_utc_micros() {
        assert_eq!(normalize("2026-03-03T10:00:00+01:00").unwrap(), "2026-03-03T09:00:00.000000Z");
        assert_eq!(normalize("2026-03-03T09:00:00.5Z").unwrap(), "2026-03-03T09:00:00.500000Z");
    }

    #[test]
    fn rejects_non_rfc3339() {
        assert!(normalize("yesterday").is_err());
        assert!(normalize("2026-03-03").is_err());
    }
}
