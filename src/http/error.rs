//! The HTTP error contract: every error is `{"error": code, "message": ...}`
//! with a status that says whose fault it was. Client mistakes are 4xx;
//! server faults are 5xx with the cause logged, not sent.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::ledger::ValidationError;
use crate::proofs::ProofError;
use crate::store::{AppendError, StoreError};

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds for a `Retry-After` header (429).
    retry_after: Option<u64>,
}

/// The body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error, example = json!({"error": "invalid_event", "message": "subject: invalid entity reference \"model\""}))]
pub struct ErrorBody<'a> {
    /// A stable code (`invalid_event`, `not_found`, `forbidden`, ...).
    pub error: &'a str,
    /// What went wrong, for a person.
    pub message: &'a str,
}

impl ApiError {
    /// An error with an explicit status and stable code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    /// 429: this token sent more requests than its rate limit allows.
    pub fn rate_limited(wait: std::time::Duration) -> Self {
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        Self {
            retry_after: Some(seconds),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests for this token; retry in {seconds} s"),
            )
        }
    }

    /// 429: this token has as many requests in progress as it may.
    pub fn too_busy(message: impl Into<String>) -> Self {
        Self { retry_after: Some(1), ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message) }
    }

    /// 400: the request cannot be read.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 422: the request is readable but not acceptable.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500 with an opaque message; the cause goes to the log only.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal server error; see the server log")
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header((actix_web::http::header::RETRY_AFTER, seconds.to_string()));
        }
        response.json(ErrorBody { error: self.code, message: &self.message })
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self::unprocessable("invalid_event", e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Pool(_) | StoreError::Connection(_) => {
                tracing::error!(cause = %e, "database unavailable");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", "the database is unavailable")
            }
            other => Self::internal(other),
        }
    }
}

impl From<AppendError> for ApiError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::IdempotencyConflict { .. } => Self::unprocessable("idempotency_key_reused", e.to_string()),
            AppendError::Storage(cause) => {
                tracing::error!(%cause, "append failed");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "the append could not be committed and was not recorded; retry with the same idempotency key",
                )
            }
            AppendError::Refused(refusal) => {
                let status = match refusal.code {
                    "separation_of_duties" | "not_an_approver" | crate::store::PROJECT_MISMATCH => {
                        StatusCode::FORBIDDEN
                    }
                    "not_found" => StatusCode::NOT_FOUND,
                    _ => StatusCode::CONFLICT,
                };
                Self::new(status, refusal.code, refusal.message)
            }
            AppendError::WriterStopped => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "the server is shutting down")
            }
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
            ProofError::OutOfRange(message) => Self::unprocessable("out_of_range", message),
            ProofError::Store(e) => e.into(),
            other => Self::internal(other),
        }
    }
}
