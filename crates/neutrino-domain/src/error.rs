/// Everything the domain can refuse, with Neutron's error type names. The server maps each
/// variant to its HTTP status once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// 400 `InvalidInput`; the text goes after "Invalid input for operation: ".
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// 400 with a specific Neutron type.
    #[error("{kind}: {message}")]
    BadRequest { kind: &'static str, message: String },
    /// 404 with a specific Neutron type.
    #[error("{kind}: {message}")]
    NotFound { kind: &'static str, message: String },
    /// 409 with a specific Neutron type.
    #[error("{kind}: {message}")]
    Conflict { kind: &'static str, message: String },
    /// 503 with a specific Neutron type (exhausted resources).
    #[error("{kind}: {message}")]
    Unavailable { kind: &'static str, message: String },
}

impl DomainError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        DomainError::InvalidInput(msg.into())
    }
    pub fn conflict(kind: &'static str, message: impl Into<String>) -> Self {
        DomainError::Conflict { kind, message: message.into() }
    }
    pub fn bad_request(kind: &'static str, message: impl Into<String>) -> Self {
        DomainError::BadRequest { kind, message: message.into() }
    }
    pub fn not_found(kind: &'static str, message: impl Into<String>) -> Self {
        DomainError::NotFound { kind, message: message.into() }
    }
}
