use neutrino_domain::DomainError;

/// Everything the store can fail with. The server maps it to the API error once.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The resource (`network`, `subnet`, `port`, ...) does not exist.
    #[error("{resource} {id} not found")]
    NotFound { resource: &'static str, id: String },
    /// A rule of the domain refused the change (also used for conflicts found in SQL).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// A compare-and-swap update found the row's revision moved.
    #[error("revision mismatch")]
    RevisionMismatch,
    /// `If-Match: revision_number=N` named another revision than the item's.
    #[error("constrained to revision {expected}, but the current revision is {current}")]
    RevisionConstraint { expected: u64, current: u64 },
    /// A list filter named an unknown attribute or had a bad value.
    #[error("{0}")]
    BadFilter(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn not_found(resource: &'static str, id: impl Into<String>) -> Self {
        StoreError::NotFound { resource, id: id.into() }
    }

    /// Whether the database could not answer this time (worth a retry by the client: 503).
    pub fn is_busy(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::PoolTimedOut) => true,
            // PostgreSQL gave up on this transaction to let another through (a deadlock, a
            // serialization failure): the request may simply be sent again.
            StoreError::Database(sqlx::Error::Database(e)) => {
                matches!(e.code().as_deref(), Some("40P01") | Some("40001"))
            }
            _ => false,
        }
    }

    /// Whether the database refused the write because of a unique key.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }

    /// Whether the database refused the write because a referenced row is gone.
    pub fn is_foreign_key_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.is_foreign_key_violation())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

/// `If-Match: revision_number=N` against an item at revision `current`.
pub fn check_revision(if_revision: Option<u64>, current: u64) -> std::result::Result<(), StoreError> {
    match if_revision {
        Some(expected) if expected != current => Err(StoreError::RevisionConstraint { expected, current }),
        _ => Ok(()),
    }
}
