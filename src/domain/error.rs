use std::time::Duration;

/// One reason why one field of a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub reason: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Everything a caller can be told went wrong. The gRPC edge maps each
/// variant to one status code.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("the request is invalid")]
    InvalidInput(Vec<FieldViolation>),

    #[error("{0} not found")]
    NotFound(&'static str),

    #[error("{0}")]
    FailedPrecondition(String),

    /// A precondition an app acts on by its stable reason (show the privacy
    /// notice, offer another sign-in, …).
    #[error("{}", .0.message)]
    Refused(Refusal),

    /// Another writer changed the record first; the caller may re-read and retry.
    #[error("{0}")]
    Conflict(String),

    #[error("{0}")]
    Unauthenticated(String),

    #[error("{0}")]
    PermissionDenied(String),

    /// The caller may not do this for a stated, programmatic reason (a
    /// block in force, …).
    #[error("{}", .0.message)]
    Forbidden(Refusal),

    #[error("too many requests, retry in {} s", retry_after.as_secs())]
    RateLimited { retry_after: Duration },

    #[error("{0}")]
    Unavailable(String),

    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidInput(vec![FieldViolation::new(field, reason)])
    }
}

/// Why a request was refused, for programs: `reason` is a stable
/// UPPER_SNAKE_CASE name, `metadata` what the app needs to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
    pub metadata: Vec<(&'static str, String)>,
}

impl Refusal {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            message: message.into(),
            metadata: Vec::new(),
        }
    }

    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Refusal {
        self.metadata.push((key, value.into()));
        self
    }
}

/// Collects field violations so that a request reports all of its problems
/// at once rather than one per round trip.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn push(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(FieldViolation::new(field, reason));
    }

    /// Records the error of a parse, returning the parsed value if it succeeded.
    pub fn check<T>(&mut self, parsed: Result<T, FieldViolation>) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(violation) => {
                self.0.push(violation);
                None
            }
        }
    }

    pub fn into_result(self) -> Result<(), DomainError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DomainError::InvalidInput(self.0))
        }
    }
}
