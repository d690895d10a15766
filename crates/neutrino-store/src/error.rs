use crate::attempt::Transient;
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

    /// Whether the database could not answer this time, for reasons that are not the
    /// request's: worth sending again (503 with `Retry-After`), and, when the attempt
    /// committed nothing, retried by the server itself first (see [`crate::attempt`]).
    pub fn transient(&self) -> Option<Transient> {
        let StoreError::Database(e) = self else { return None };
        match e {
            // PostgreSQL gave up on this transaction to let another through (a serialization
            // failure, a deadlock): it was rolled back whole.
            sqlx::Error::Database(db) => match db.code().as_deref() {
                Some("40001" | "40P01") => Some(Transient::Conflict),
                // The server is shutting down or starting (57P01-57P03), the connection
                // broke (08xxx), or it has no connection to spare (53300).
                Some(code) if code.starts_with("57P") || code.starts_with("08") || code == "53300" => {
                    Some(Transient::Unavailable)
                }
                _ => None,
            },
            sqlx::Error::PoolTimedOut => Some(Transient::TimedOut),
            sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => Some(Transient::Unavailable),
            _ => None,
        }
    }

    /// Whether PostgreSQL refused a string holding a NUL character (22021: it cannot store one).
    pub fn is_nul_in_text(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.code().as_deref() == Some("22021"))
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
