//! Keystone v3 wire format shared by the server (its service token) and the agent.

use serde_json::{json, Value};

/// Password credentials scoped to a project, as `[keystone_authtoken]` names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordAuth {
    pub auth_url: String,
    pub username: String,
    pub password: String,
    pub project_name: String,
    pub user_domain_name: String,
    pub project_domain_name: String,
}

impl PasswordAuth {
    /// `<auth_url>/v3/auth/tokens` (the `/v3` added when missing).
    pub fn tokens_url(&self) -> String {
        let base = self.auth_url.trim_end_matches('/');
        if base.ends_with("/v3") {
            format!("{base}/auth/tokens")
        } else {
            format!("{base}/v3/auth/tokens")
        }
    }

    /// The `POST /v3/auth/tokens` body.
    pub fn request_body(&self) -> Value {
        json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": self.username, "password": self.password, "domain": {"name": self.user_domain_name}}}},
            "scope": {"project": {"name": self.project_name, "domain": {"name": self.project_domain_name}}}}})
    }
}
