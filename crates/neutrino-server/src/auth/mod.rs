//! Authentication (`[DEFAULT] auth_strategy`: `keystone` or `noauth`) and the request context
//! every handler acts for.
//!
//! The middleware turns the request's token into a [`Context`] (Keystone validates it; noauth
//! trusts the `X-Project-Id`/`X-Roles` headers or makes the caller an admin), authorizes writes
//! and item reads against the policy (see [`authorize`]), and runs the handler with the context
//! in a task-local, where [`current`] finds it.

pub mod authorize;
pub mod keystone;

use crate::App;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use neutrino_domain::policy::{Credentials, Rules};
use std::sync::Arc;

pub use keystone::{KeystoneConfig, KeystoneValidator};

/// `[DEFAULT] auth_strategy`.
#[derive(Debug, Clone, Default)]
// Made once per process: the size of the Keystone variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum AuthStrategy {
    /// Every caller is an admin, acting in `X-Project-Id` (or the configured default project).
    #[default]
    NoAuth,
    /// Tokens are validated against Keystone v3.
    Keystone(KeystoneConfig),
}

/// Who the request acts for.
#[derive(Debug, Clone)]
pub struct Context {
    pub creds: Credentials,
    /// The policy's `context_is_admin`.
    pub is_admin: bool,
    pub policy: Arc<Rules>,
}

impl Context {
    pub fn project_id(&self) -> Option<&str> {
        self.creds.project_id.as_deref()
    }
}

tokio::task_local! {
    static CONTEXT: Arc<Context>;
}

/// The context of the request being handled. Outside of one (a task that lost it, code run
/// without a request) it fails closed: no project, no role, not an admin, so every policy
/// check refuses and every list is empty.
pub fn current() -> Arc<Context> {
    CONTEXT.try_with(Arc::clone).unwrap_or_else(|_| {
        static NOBODY: std::sync::OnceLock<Arc<Context>> = std::sync::OnceLock::new();
        NOBODY
            .get_or_init(|| {
                Arc::new(Context {
                    creds: Credentials { user_id: None, project_id: None, roles: Vec::new() },
                    is_admin: false,
                    policy: Arc::new(Rules::neutron_defaults()),
                })
            })
            .clone()
    })
}

/// Paths anyone may read: version discovery.
fn is_public(path: &str) -> bool {
    matches!(path, "/" | "/v2.0" | "/v2.0/")
}

pub async fn middleware(State(app): State<App>, req: Request, next: Next) -> Response {
    if is_public(req.uri().path()) {
        return next.run(req).await;
    }
    let creds = match &app.keystone {
        None => noauth_credentials(&req, &app),
        Some(keystone) => {
            let Some(token) = req.headers().get("x-auth-token").and_then(|v| v.to_str().ok()) else {
                return unauthorized(keystone.www_authenticate_uri());
            };
            match keystone.validate(token).await {
                Ok(Some(c)) => c,
                Ok(None) => return unauthorized(keystone.www_authenticate_uri()),
                Err(e) => {
                    tracing::error!(error = %e, "cannot validate tokens with Keystone");
                    let err = neutrino_api::ApiError::new(503, "ServiceUnavailable", "Identity service unavailable");
                    return crate::error::HttpError(err).into_response();
                }
            }
        }
    };
    let is_admin = app.policy.allows("context_is_admin", &creds, &serde_json::Value::Null);
    let ctx = Arc::new(Context { creds, is_admin, policy: app.policy.clone() });
    let mut req = match CONTEXT.scope(ctx.clone(), authorize::request(app.clone(), req)).await {
        Ok(req) => req,
        Err(response) => return response,
    };
    req.extensions_mut().insert(Caller(ctx.clone()));
    CONTEXT.scope(ctx, next.run(req)).await
}

/// The caller of a request, for handlers to pass to the application layer explicitly. A
/// request that reached a handler without passing the authentication middleware has none, and
/// is refused (never treated as anyone's).
#[derive(Clone)]
pub struct Caller(pub Arc<Context>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = crate::error::HttpError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            crate::error::HttpError(neutrino_api::ApiError::new(
                401,
                "Unauthorized",
                "The request you have made requires authentication.",
            ))
        })
    }
}

/// noauth: an admin in `X-Project-Id` (else the configured project); `X-Roles` narrows the
/// roles, which lets tests and tools act as a member or reader without Keystone.
fn noauth_credentials(req: &Request, app: &App) -> Credentials {
    let header = |name: &str| {
        req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty()).map(String::from)
    };
    let roles = match header("x-roles") {
        Some(r) => r.split(',').map(|r| r.trim().to_ascii_lowercase()).filter(|r| !r.is_empty()).collect(),
        None => vec!["admin".into(), "member".into(), "reader".into()],
    };
    Credentials {
        user_id: header("x-user-id"),
        project_id: Some(
            header("x-project-id")
                .or_else(|| header("x-tenant-id"))
                .unwrap_or_else(|| app.config.noauth_project.clone()),
        ),
        roles,
    }
}

/// keystonemiddleware's 401: a JSON body and where to get a token.
fn unauthorized(www_authenticate_uri: &str) -> Response {
    let body = serde_json::json!({"error": {"code": 401, "title": "Unauthorized",
        "message": "The request you have made requires authentication."}});
    let mut resp = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("Keystone uri=\"{www_authenticate_uri}\"")) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::FromRequestParts;

    #[tokio::test]
    async fn a_request_without_a_caller_is_refused() {
        let (mut parts, _) = axum::http::Request::new(()).into_parts();
        let refused = Caller::from_request_parts(&mut parts, &()).await.err().expect("refused");
        assert_eq!(refused.0.status, 401);
        let ctx = Arc::new(Context {
            creds: Credentials { user_id: None, project_id: Some("p".into()), roles: vec!["member".into()] },
            is_admin: false,
            policy: Arc::new(Rules::neutron_defaults()),
        });
        parts.extensions.insert(Caller(ctx));
        let caller = Caller::from_request_parts(&mut parts, &()).await.expect("the middleware's caller");
        assert_eq!(caller.0.project_id(), Some("p"));
    }
}
