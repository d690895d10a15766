//! The `NeutronError` body and the API error every layer maps into once.

use serde::{Deserialize, Serialize};

/// `{"NeutronError": {"type": ..., "message": ..., "detail": ""}}`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NeutronErrorBody {
    #[serde(rename = "NeutronError")]
    pub error: NeutronErrorInner,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NeutronErrorInner {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    #[serde(default)]
    pub detail: String,
}

/// An API failure: HTTP status plus Neutron's error type name and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub kind: String,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.kind, self.message)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    pub fn new(status: u16, kind: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError { status, kind: kind.into(), message: message.into() }
    }

    /// 400 `InvalidInput` with Neutron's "Invalid input for operation: " prefix.
    pub fn invalid_input(reason: impl std::fmt::Display) -> Self {
        Self::new(400, "InvalidInput", format!("Invalid input for operation: {reason}."))
    }

    /// 400 for one attribute whose value its validator refuses: "Invalid input for X.
    /// Reason: Y." Neutron's API layer raises these as `HTTPBadRequest` (converters, and the
    /// plugins, raise `InvalidInput` with "Invalid input for operation: ...").
    pub fn invalid_attribute(attr: &str, reason: impl std::fmt::Display) -> Self {
        Self::new(400, "HTTPBadRequest", format!("Invalid input for {attr}. Reason: {reason}."))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "HTTPBadRequest", message)
    }

    /// 400 with a specific Neutron type.
    pub fn bad_request_kind(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(400, kind, message)
    }

    pub fn malformed_body() -> Self {
        Self::bad_request("Body contains invalid data")
    }

    /// 404 `<Resource>NotFound` with Neutron's wording, e.g. "Network X could not be found."
    pub fn not_found(resource: &str, id: &str) -> Self {
        let message = match resource {
            "security_group" => format!("Security group {id} does not exist"),
            "security_group_rule" => format!("Security group rule {id} does not exist"),
            "subnetpool" => format!("Subnet pool {id} could not be found."),
            "address_scope" => format!("Address scope {id} could not be found."),
            "address_group" => format!("Address group {id} could not be found."),
            "default_security_group_rule" => format!("Default Security Group rule {id} does not exist"),
            "network_segment_range" => format!("Network Segment Range {id} could not be found."),
            // Neutron names the object's type when it knows it; by id alone it does not.
            "rbac_policy" => format!("RBAC policy of type unknown with ID {id} not found"),
            "floatingip" => format!("Floating IP {id} could not be found"),
            "port_forwarding" => format!("Port Forwarding {id} could not be found."),
            other => format!("{} {id} could not be found.", camel(other)),
        };
        let kind = match resource {
            "subnetpool" => "SubnetPoolNotFound".to_string(),
            "floatingip" => "FloatingIPNotFound".to_string(),
            other => format!("{}NotFound", camel(other)),
        };
        Self::new(404, kind, message)
    }

    /// A 404 of a kind of its own (`RouterInterfaceNotFound`, ...).
    pub fn not_found_kind(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(404, kind, message)
    }

    pub fn no_route() -> Self {
        Self::new(404, "HTTPNotFound", "The resource could not be found.")
    }

    pub fn conflict(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(409, kind, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "HTTPInternalServerError", message)
    }

    pub fn body(&self) -> NeutronErrorBody {
        NeutronErrorBody {
            error: NeutronErrorInner { kind: self.kind.clone(), message: self.message.clone(), detail: String::new() },
        }
    }
}

/// `network` → `Network`, `subnet_pool` → `SubnetPool`.
fn camel(resource: &str) -> String {
    resource
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_matches_neutron_wording() {
        let e = ApiError::not_found("network", "abc");
        assert_eq!(e.status, 404);
        assert_eq!(e.kind, "NetworkNotFound");
        assert_eq!(e.message, "Network abc could not be found.");
    }

    #[test]
    fn body_serializes_as_neutron_error() {
        let v = serde_json::to_value(ApiError::malformed_body().body()).unwrap();
        assert_eq!(v["NeutronError"]["type"], "HTTPBadRequest");
        assert_eq!(v["NeutronError"]["detail"], "");
    }
}
