//! The one place where every layer's error becomes a Neutron error response.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use neutrino_api::ApiError;
use neutrino_domain::DomainError;
use neutrino_store::attempt::{self, Transient};
use neutrino_store::StoreError;

/// An [`ApiError`] on its way out as an HTTP response.
#[derive(Debug)]
pub struct HttpError(pub ApiError);

pub type HttpResult<T> = Result<T, HttpError>;

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::info!(error = %self.0, "request refused for now");
        } else if status.is_server_error() {
            tracing::error!(error = %self.0, "request failed");
        }
        (status, axum::Json(self.0.body())).into_response()
    }
}

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        HttpError(e)
    }
}

impl From<DomainError> for HttpError {
    fn from(e: DomainError) -> Self {
        HttpError(match e {
            DomainError::InvalidInput(m) => ApiError::invalid_input(m),
            DomainError::BadRequest { kind, message } => ApiError::new(400, kind, message),
            DomainError::Conflict { kind, message } => ApiError::new(409, kind, message),
            DomainError::NotFound { kind, message } => ApiError::new(404, kind, message),
            DomainError::Unavailable { kind, message } => ApiError::new(503, kind, message),
        })
    }
}

impl From<StoreError> for HttpError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { resource, id } => HttpError(ApiError::not_found(resource, &id)),
            StoreError::Domain(d) => d.into(),
            StoreError::RevisionMismatch => HttpError(ApiError::new(
                412,
                "RevisionNumberConstraintFailed",
                "Constrained revision number does not match the current revision",
            )),
            StoreError::RevisionConstraint { expected, current } => HttpError(ApiError::new(
                412,
                "RevisionNumberConstraintFailed",
                format!("Constrained to {expected}, but current revision is {current}"),
            )),
            StoreError::BadFilter(m) => HttpError(ApiError::bad_request(m)),
            // An object another one still refers to (a race the operation's own checks lost,
            // e.g. a port deleted while a floating IP was being associated with it): a
            // conflict to retry, never a 500.
            ref fk if fk.is_foreign_key_violation() => HttpError(ApiError::conflict(
                "InUse",
                "The resource is in use by another one changed at the same time; retry the request.",
            )),
            ref busy if busy.transient().is_some() => {
                let failure = busy.transient().unwrap_or(Transient::Unavailable);
                // The retry around the request reads this (crate::resilience).
                attempt::note_transient(failure);
                tracing::warn!(error = %busy, "the database could not take the request");
                let message = match failure {
                    Transient::Conflict => "The database is busy; retry the request.",
                    Transient::Unavailable | Transient::TimedOut => "The database is not available; retry the request.",
                };
                HttpError(ApiError::new(503, "ServiceUnavailable", message))
            }
            // A NUL character (a path id, say): PostgreSQL cannot hold one in text (22021),
            // so nothing can match it. Bodies and queries are refused earlier (request.rs).
            ref nul if nul.is_nul_in_text() => {
                HttpError(ApiError::invalid_input("the NUL character (\\u0000) is not allowed in strings"))
            }
            other => HttpError(ApiError::internal(format!("Request Failed: internal server error: {other}"))),
        }
    }
}
