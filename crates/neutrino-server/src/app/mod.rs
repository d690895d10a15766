//! The application layer: one function per API operation. Each takes the explicit
//! [`OpContext`] of the caller and a typed request the HTTP layer parsed once, runs in one
//! transaction, and authorizes on the rows it loads in that transaction (so what is checked is
//! what is acted on). The HTTP modules only parse, call one of these, and render.
//!
//! Resources move here one by one; the request middleware (`crate::auth::authorize`) still
//! authorizes those not moved yet, and skips those listed in [`AUTHORIZED_HERE`].

pub mod authorize;
pub mod networks;
pub mod ports;
pub mod security_groups;
pub mod subnets;

/// Who an operation acts for: the request's credentials, whether they are an admin, and the
/// policy. Handlers get it from the request ([`crate::auth::Caller`]); without one a request
/// is refused.
pub type OpContext = crate::auth::Context;

/// Resources whose creates, reads, updates and deletes are authorized by their operations here
/// rather than by the request middleware.
pub const AUTHORIZED_HERE: &[&str] = &["network", "subnet", "port", "security_group", "security_group_rule"];
