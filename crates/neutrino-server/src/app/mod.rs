//! The application layer: one function per API operation. Each takes the explicit
//! [`OpContext`] of the caller and a typed request the HTTP layer parsed once, runs in one
//! transaction, and authorizes on the rows it loads in that transaction (so what is checked is
//! what is acted on). The HTTP modules only parse, call one of these, and render.
//!
//! Resources without a module here yet (subnet pools, address scopes, address groups, RBAC
//! policies, segments, ranges, agents, default rules, tags) run their own transactions in their
//! HTTP modules, and authorize there with the same checks ([`authorize::authorize_item`],
//! [`authorize::authorize_create`]) inside those transactions.

pub mod authorize;
pub mod networks;
pub mod ports;
pub mod security_groups;
pub mod subnets;

/// Who an operation acts for: the request's credentials, whether they are an admin, and the
/// policy. Handlers get it from the request ([`crate::auth::Caller`]); without one a request
/// is refused.
pub type OpContext = crate::auth::Context;
