//! The one mapping from domain errors to gRPC statuses.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::error::{DomainError, Refusal};

/// The `domain` of every ErrorInfo this service sends.
const ERROR_DOMAIN: &str = "huying";

impl From<DomainError> for Status {
    fn from(error: DomainError) -> Status {
        match error {
            DomainError::InvalidInput(violations) => {
                let summary = violations
                    .iter()
                    .map(|v| format!("{}: {}", v.field, v.reason))
                    .collect::<Vec<_>>()
                    .join("; ");
                let mut details = ErrorDetails::new();
                for violation in violations {
                    details.add_bad_request_violation(violation.field, violation.reason);
                }
                Status::with_error_details(
                    Code::InvalidArgument,
                    format!("invalid request: {summary}"),
                    details,
                )
            }
            DomainError::NotFound(what) => Status::not_found(format!("{what} not found")),
            DomainError::FailedPrecondition(reason) => Status::failed_precondition(reason),
            DomainError::Refused(refusal) => with_error_info(Code::FailedPrecondition, refusal),
            DomainError::Conflict(reason) => Status::aborted(reason),
            DomainError::Unauthenticated(reason) => Status::unauthenticated(reason),
            DomainError::PermissionDenied(reason) => Status::permission_denied(reason),
            DomainError::Forbidden(refusal) => with_error_info(Code::PermissionDenied, refusal),
            DomainError::RateLimited { retry_after } => {
                let seconds = retry_after.as_secs_f64().ceil();
                Status::with_error_details(
                    Code::ResourceExhausted,
                    format!("too many requests; retry in {seconds} s"),
                    ErrorDetails::with_retry_info(Some(retry_after)),
                )
            }
            DomainError::Unavailable(reason) => Status::unavailable(reason),
            DomainError::Unexpected(error) => {
                // The chain names the failed step; no request data is in it.
                tracing::error!(error = %format!("{error:#}"), "unexpected failure");
                Status::internal("internal error")
            }
        }
    }
}

/// A status whose ErrorInfo names the reason for programs.
fn with_error_info(code: Code, refusal: Refusal) -> Status {
    let metadata: std::collections::HashMap<String, String> = refusal
        .metadata
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
    Status::with_error_details(
        code,
        refusal.message,
        ErrorDetails::with_error_info(refusal.reason, ERROR_DOMAIN, metadata),
    )
}
