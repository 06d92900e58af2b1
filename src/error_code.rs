//! Every error code the API answers, in one table: its stable snake_case
//! name, its HTTP status and what it means. `ApiError` and the refusals made
//! inside the append transaction carry an [`ErrorCode`], so a refusal's
//! status is decided here, once, and never by matching strings. The table in
//! README.md is checked against this one by a test.
//!
//! Naming rule: `malformed_*` (400) is a request that cannot be read as
//! what it claims to be; `invalid_*` (422) one that can be read but is not
//! acceptable.

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = ($name:literal, $status:literal, $meaning:literal), )*) => {
        /// A stable error code of the API.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as clients see it, `{"error": name}`.
            pub const fn name(self) -> &'static str {
                match self { $(ErrorCode::$variant => $name,)* }
            }

            /// The HTTP status it is answered with.
            pub const fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            /// What it means, in one line, for the documentation.
            pub const fn meaning(self) -> &'static str {
                match self { $(ErrorCode::$variant => $meaning,)* }
            }
        }
    };
}

error_codes! {
    MalformedJson = ("malformed_json", 400, "the body is not JSON, or an object in it repeats a key"),
    MalformedRequest = ("malformed_request", 400, "the body is JSON of the wrong shape: a wrong type, an unknown or missing field"),
    MalformedQuery = ("malformed_query", 400, "the query string cannot be read: an unknown parameter or a wrong type"),
    MalformedPath = ("malformed_path", 400, "a path parameter cannot be read (e.g. a seq that is not a number)"),
    InvalidBody = ("invalid_body", 400, "the body could not be read from the connection"),
    Unauthenticated = ("unauthenticated", 401, "a missing, malformed, expired, wrongly signed or revoked token"),
    InvalidSignature = ("invalid_signature", 401, "an integration's delivery (MLflow's webhook) is unsigned, wrongly signed or more than 5 minutes old; nothing was recorded"),
    Forbidden = ("forbidden", 403, "the token's roles or projects do not allow it"),
    SeparationOfDuties = ("separation_of_duties", 403, "whoever requested, registered or trained a model version may not decide on it"),
    ProjectMismatch = ("project_mismatch", 403, "the request names another project than the one its data belongs to"),
    NotFound = ("not_found", 404, "no such thing, or one the caller may not read"),
    IntegrationNotConfigured = ("integration_not_configured", 404, "the server was started without this integration (`--mlflow-url`)"),
    MethodNotAllowed = ("method_not_allowed", 405, "the path does not serve this method (`Allow` lists those it does)"),
    RequestTimeout = ("request_timeout", 408, "the request body did not arrive in time"),
    DeploymentBlocked = ("deployment_blocked", 409, "the gate denied the deployment; `deployment.blocked` is on the record"),
    ApprovalNotPending = ("approval_not_pending", 409, "the approval's state does not allow this decision"),
    AlreadyDecided = ("already_decided", 409, "this approver has decided on this approval already"),
    ModelRetired = ("model_retired", 409, "the model version is retired"),
    VersionExists = ("version_exists", 409, "a dataset or model version is created once; this one exists"),
    PersonalData = ("personal_data", 409, "a subject key does not open with the configured master key"),
    MasterKeyRequired = ("master_key_required", 409, "webhooks need the server's master key, which seals their signing secrets"),
    /// Never answered: an erasure of a subject erased already answers that
    /// erasure's certificate again.
    AlreadyErased = ("already_erased", 409, "the subject is erased already (the erasure answers the earlier certificate instead)"),
    PayloadTooLarge = ("payload_too_large", 413, "the body is larger than the configured limit"),
    UnsupportedMediaType = ("unsupported_media_type", 415, "the body's Content-Type is not the one the route reads"),
    InvalidRequest = ("invalid_request", 422, "a field's value is not acceptable (an unknown role or project, a bad reference, a ttl out of range, ...)"),
    InvalidQuery = ("invalid_query", 422, "a query parameter's value is not acceptable"),
    InvalidPath = ("invalid_path", 422, "a path parameter is not acceptable (e.g. a malformed entity reference)"),
    InvalidEvent = ("invalid_event", 422, "a bad kind, entity reference, timestamp or attribute"),
    InvalidOpenlineageEvent = ("invalid_openlineage_event", 422, "not an OpenLineage event govledger can record"),
    InvalidPolicy = ("invalid_policy", 422, "the policy text does not parse; the message names the line"),
    InvalidReport = ("invalid_report", 422, "a malformed or missing report subject, or an empty ledger"),
    InvalidDepth = ("invalid_depth", 422, "a lineage depth outside 1 and the configured maximum"),
    InvalidLimit = ("invalid_limit", 422, "a page or node limit outside the allowed range"),
    UnknownEnvironment = ("unknown_environment", 422, "the environment is not declared in policies/approvals.toml"),
    UnknownMetric = ("unknown_metric", 422, "the metric is not declared in the monitoring rules in force (policies/monitoring.toml)"),
    OverrideReasonRequired = ("override_reason_required", 422, "the version fails a rule of the environment (evaluation, open breach): a grant must give an `override_reason`"),
    InvalidIdentityMap = ("invalid_identity_map", 422, "the identity map does not parse, or grants a role the policy does not define; the message says what to fix"),
    InvalidMonitoringRules = ("invalid_monitoring_rules", 422, "the monitoring rules do not parse or name what is not declared; the message says what to fix"),
    UseEndpoint = ("use_endpoint", 422, "approval, deployment-request, erasure, webhook and monitoring-rule kinds, and breaches, are recorded only by the server"),
    ServerAssignedField = ("server_assigned_field", 422, "the request sets a field only the server assigns (seq, hash, actor, ...)"),
    IdempotencyKeyReused = ("idempotency_key_reused", 422, "the idempotency key was used for different content; the message says what differs"),
    EmptyBatch = ("empty_batch", 422, "a batch with no events"),
    BatchTooLarge = ("batch_too_large", 422, "a batch with more events than the configured limit"),
    OutOfRange = ("out_of_range", 422, "a proof for a seq or tree size the ledger does not have"),
    RateLimited = ("rate_limited", 429, "the token sent more requests, or has more in progress, than it may; see `Retry-After`"),
    Internal = ("internal", 500, "a fault of the server; the cause is in its log"),
    UpstreamUnavailable = ("upstream_unavailable", 502, "the integration's own server (MLflow) failed or could not be reached; the delivery may be retried"),
    StorageUnavailable = ("storage_unavailable", 503, "the database is unavailable; nothing was recorded: retry with the same idempotency key"),
    ShuttingDown = ("shutting_down", 503, "the server is stopping"),
    NotReady = ("not_ready", 503, "`/readyz`: the database or the writer is not ready"),
    IndexLagging = ("index_lagging", 503, "a `consistent=true` search found the index still catching up"),
}

impl ErrorCode {
    /// The README's table of codes, as this enum gives it.
    pub fn markdown_table() -> String {
        let mut out = String::from("| code | status | meaning |\n|---|---|---|\n");
        for code in Self::ALL.iter().filter(|c| **c != Self::AlreadyErased) {
            out.push_str(&format!("| `{}` | {} | {} |\n", code.name(), code.status(), code.meaning()));
        }
        out
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn names_are_unique_snake_case_and_statuses_are_errors() {
        let mut names = std::collections::BTreeSet::new();
        for code in ErrorCode::ALL {
            assert!(names.insert(code.name()), "{} twice", code.name());
            assert!(code.name().chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{}", code.name());
            assert!((400..600).contains(&code.status()), "{}", code.name());
            assert!(!code.meaning().is_empty());
        }
    }

    #[test]
    fn the_readme_table_is_this_table() {
        let readme = include_str!("../README.md");
        let start = readme.find("<!-- error-codes -->").expect("README marks the table") + "<!-- error-codes -->".len();
        let end = readme.find("<!-- /error-codes -->").expect("README marks the table's end");
        assert_eq!(
            readme[start..end].trim(),
            ErrorCode::markdown_table().trim(),
            "README.md's table of error codes differs from src/error_code.rs; put this between the markers:\n{}",
            ErrorCode::markdown_table()
        );
    }
}
