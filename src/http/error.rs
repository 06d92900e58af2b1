//! The HTTP error contract: every error is `{"error": code, "message": ...}`
//! with a status that says whose fault it was. Client mistakes are 4xx;
//! server faults are 5xx with the cause logged, not sent.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::error_code::ErrorCode;
use crate::ledger::ValidationError;
use crate::proofs::ProofError;
use crate::store::{AppendError, StoreError};

/// An error answered to an HTTP client; its status is its code's.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    /// Seconds for a `Retry-After` header (429).
    retry_after: Option<u64>,
}

/// The body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error, example = json!({"error": "invalid_event", "message": "subject: invalid entity reference \"model\""}))]
pub struct ErrorBody<'a> {
    /// A stable code (`invalid_event`, `not_found`, `forbidden`, ...; README.md lists them all).
    pub error: &'a str,
    /// What went wrong, for a person.
    pub message: &'a str,
}

impl ApiError {
    /// An error with a stable code; the status is the code's.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry_after: None }
    }

    /// 429: this token sent more requests than its rate limit allows.
    pub fn rate_limited(wait: std::time::Duration) -> Self {
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        Self {
            retry_after: Some(seconds),
            ..Self::new(ErrorCode::RateLimited, format!("too many requests for this token; retry in {seconds} s"))
        }
    }

    /// 429: this token has as many requests in progress as it may.
    pub fn too_busy(message: impl Into<String>) -> Self {
        Self { retry_after: Some(1), ..Self::new(ErrorCode::RateLimited, message) }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// 500 with an opaque message; the cause goes to the log only.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(ErrorCode::Internal, "internal server error; see the server log")
    }

    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The HTTP status of its code.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// What went wrong, for a person.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status());
        if let Some(seconds) = self.retry_after {
            response.insert_header((actix_web::http::header::RETRY_AFTER, seconds.to_string()));
        }
        response.json(ErrorBody { error: self.code.name(), message: &self.message })
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self::new(ErrorCode::InvalidEvent, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Pool(_) | StoreError::Connection(_) => {
                tracing::error!(cause = %e, "database unavailable");
                Self::new(ErrorCode::StorageUnavailable, "the database is unavailable")
            }
            other => Self::internal(other),
        }
    }
}

impl From<AppendError> for ApiError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::IdempotencyConflict { .. } => Self::new(ErrorCode::IdempotencyKeyReused, e.to_string()),
            AppendError::Storage(cause) => {
                tracing::error!(%cause, "append failed");
                Self::new(
                    ErrorCode::StorageUnavailable,
                    "the append could not be committed and was not recorded; retry with the same idempotency key",
                )
            }
            AppendError::Refused(refusal) => Self::new(refusal.code, refusal.message),
            AppendError::WriterStopped => Self::new(ErrorCode::ShuttingDown, "the server is shutting down"),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Self::internal(e)
    }
}

impl From<ProofError> for ApiError {
    fn from(e: ProofError) -> Self {
        match e {
            ProofError::OutOfRange(message) => Self::new(ErrorCode::OutOfRange, message),
            ProofError::Store(e) => e.into(),
            other => Self::internal(other),
        }
    }
}

impl From<crate::governance::GovernanceError> for ApiError {
    fn from(e: crate::governance::GovernanceError) -> Self {
        match e {
            crate::governance::GovernanceError::Invalid(m) => {
                ApiError::new(crate::error_code::ErrorCode::InvalidRequest, m)
            }
            crate::governance::GovernanceError::InvalidMonitoringRules(m) => {
                ApiError::new(crate::error_code::ErrorCode::InvalidMonitoringRules, m)
            }
            crate::governance::GovernanceError::NotFound(m) => ApiError::not_found(m),
            crate::governance::GovernanceError::Forbidden(m) => {
                ApiError::new(crate::error_code::ErrorCode::Forbidden, m)
            }
            crate::governance::GovernanceError::ProjectMismatch(m) => {
                ApiError::new(crate::error_code::ErrorCode::ProjectMismatch, m)
            }
            crate::governance::GovernanceError::Blocked { .. } => {
                ApiError::new(crate::error_code::ErrorCode::DeploymentBlocked, e.to_string())
            }
            crate::governance::GovernanceError::UnknownEnvironment { .. } => {
                ApiError::new(crate::error_code::ErrorCode::UnknownEnvironment, e.to_string())
            }
            crate::governance::GovernanceError::Internal(cause) => ApiError::internal(cause),
            crate::governance::GovernanceError::Store(e) => e.into(),
            crate::governance::GovernanceError::Append(e) => e.into(),
        }
    }
}

impl From<crate::mlflow::BridgeError> for ApiError {
    fn from(e: crate::mlflow::BridgeError) -> Self {
        use crate::error_code::ErrorCode;
        use crate::mlflow::BridgeError;
        match e {
            BridgeError::Mlflow(e) => ApiError::new(ErrorCode::UpstreamUnavailable, e.to_string()),
            BridgeError::Governance(e) => e.into(),
            BridgeError::Append(e) => e.into(),
            BridgeError::Forbidden(m) => ApiError::new(ErrorCode::Forbidden, m),
            BridgeError::Invalid(m) => ApiError::new(ErrorCode::InvalidRequest, m),
        }
    }
}
