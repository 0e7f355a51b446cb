//! One way for every service to fail: an [`ApiError`] that becomes a `tonic::Status` with rich
//! `google.rpc` details (BadRequest field violations, ErrorInfo, ResourceInfo, RetryInfo,
//! RequestInfo), so clients in any language read the same structure.
//!
//! Internal errors are logged with their whole chain and answered as INTERNAL with the request id
//! only: no SQL, no file paths, no stack.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::context::current_request_id;

/// The `domain` of every ErrorInfo detail Agora sends.
pub const ERROR_DOMAIN: &str = "agora";

/// A failure a handler answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; each violation names a field.
    #[error("{message}")]
    InvalidArgument {
        /// A summary for people.
        message: String,
        /// What is wrong, field by field.
        violations: Vec<FieldViolation>,
    },
    /// The named resource does not exist (or the caller may not know it does).
    #[error("{resource} not found")]
    NotFound {
        /// The resource type, e.g. `session`.
        resource: &'static str,
        /// Its id as the caller gave it.
        id: String,
    },
    /// The resource the call would create exists already.
    #[error("{message}")]
    AlreadyExists {
        /// Machine-readable reason, e.g. `EMAIL_TAKEN`.
        reason: &'static str,
        /// A summary for people.
        message: String,
    },
    /// No valid credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// Valid credentials that do not allow this call.
    #[error("{0}")]
    PermissionDenied(String),
    /// The system is not in a state that allows the call.
    #[error("{message}")]
    FailedPrecondition {
        /// Machine-readable reason, e.g. `OUT_OF_STOCK`.
        reason: &'static str,
        /// A summary for people.
        message: String,
    },
    /// Too many calls; retry after the given delay.
    #[error("{message}")]
    ResourceExhausted {
        /// Machine-readable reason, e.g. `LOGIN_THROTTLED`.
        reason: &'static str,
        /// A summary for people.
        message: String,
        /// When a retry may succeed.
        retry_after: Duration,
    },
    /// A dependency is down; the call may be retried.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an infrastructure failure; the chain is logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// An INVALID_ARGUMENT with one field violation.
    pub fn invalid_field(field: impl Into<String>, description: impl Into<String>) -> Self {
        let mut violations = FieldViolations::default();
        violations.add(field, description);
        violations.into_error()
    }

    /// An INTERNAL error from anything that failed inside.
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        Self::Internal(error.into())
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        let message = error.to_string();
        let mut details = ErrorDetails::new();
        let code = match error {
            ApiError::InvalidArgument { violations, .. } => {
                details.set_bad_request(violations);
                Code::InvalidArgument
            }
            ApiError::NotFound { resource, id } => {
                details.set_resource_info(resource, id, "", "");
                Code::NotFound
            }
            ApiError::AlreadyExists { reason, .. } => {
                details.set_error_info(reason, ERROR_DOMAIN, []);
                Code::AlreadyExists
            }
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
            ApiError::PermissionDenied(_) => Code::PermissionDenied,
            ApiError::FailedPrecondition { reason, .. } => {
                details.set_error_info(reason, ERROR_DOMAIN, []);
                Code::FailedPrecondition
            }
            ApiError::ResourceExhausted {
                reason,
                retry_after,
                ..
            } => {
                details.set_error_info(reason, ERROR_DOMAIN, []);
                details.set_retry_info(Some(retry_after));
                Code::ResourceExhausted
            }
            ApiError::Unavailable(_) => Code::Unavailable,
            ApiError::Internal(source) => {
                tracing::error!(error = format!("{source:#}"), "internal error");
                Code::Internal
            }
        };
        if let Some(request_id) = current_request_id() {
            details.set_request_info(request_id, "");
        }
        Status::with_error_details(code, message, details)
    }
}

/// Collects field violations while a request is parsed, so one answer lists every problem.
#[derive(Debug, Default)]
pub struct FieldViolations(Vec<FieldViolation>);

impl FieldViolations {
    /// Records that `field` (a dotted path, e.g. `lines[2].quantity`) is wrong.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Records the error of a parse result and returns its value, if any.
    pub fn take<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.add(field, error.to_string());
                None
            }
        }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The violations as one INVALID_ARGUMENT.
    pub fn into_error(self) -> ApiError {
        let message = match self.0.as_slice() {
            [only] => format!("invalid {}: {}", only.field, only.description),
            many => format!("{} invalid fields", many.len()),
        };
        ApiError::InvalidArgument {
            message,
            violations: self.0,
        }
    }

    /// `Ok(value)` when nothing was recorded, else the violations, for a service's error to
    /// wrap.
    ///
    /// # Errors
    /// At least one violation was recorded.
    pub fn into_result<T>(self, value: T) -> Result<T, Self> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    /// `Ok(())` when nothing was recorded, else the violations as one INVALID_ARGUMENT.
    ///
    /// # Errors
    /// At least one violation was recorded.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.into_error())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_come_back_as_bad_request_details() {
        let mut violations = FieldViolations::default();
        violations.add("email", "not an email address");
        violations.add("password", "too short");
        let status = Status::from(violations.into_error());
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let bad_request = details.bad_request().expect("BadRequest detail");
        let fields: Vec<_> = bad_request
            .field_violations
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["email", "password"]);
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let error = anyhow::anyhow!("connection to 10.0.0.7:5432 refused").context("insert user");
        let status = Status::from(ApiError::internal(error));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
        assert!(!format!("{:?}", status.details()).contains("5432"));
    }

    #[tokio::test]
    async fn errors_carry_the_request_id_of_the_call() {
        let call = crate::context::CallContext {
            request_id: "req-42".into(),
            deadline: None,
        };
        let status = call
            .scope(async { Status::from(ApiError::Unavailable("down".into())) })
            .await;
        let details = status.get_error_details();
        assert_eq!(
            details.request_info().expect("RequestInfo").request_id,
            "req-42"
        );
    }

    #[test]
    fn throttling_says_when_to_retry() {
        let status = Status::from(ApiError::ResourceExhausted {
            reason: "LOGIN_THROTTLED",
            message: "too many attempts".into(),
            retry_after: Duration::from_secs(30),
        });
        let details = status.get_error_details();
        assert_eq!(
            details.retry_info().and_then(|r| r.retry_delay),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            details.error_info().expect("ErrorInfo").reason,
            "LOGIN_THROTTLED"
        );
    }
}
