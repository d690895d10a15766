//! The domain: resources' invariants as plain functions. No IO, no async, so everything here
//! is unit tested directly.

pub mod binding;
pub mod changes;
pub mod dhcp;
pub mod dns;
pub mod error;
pub mod firewall;
pub mod host_intent;
pub mod ipam;
pub mod mac;
pub mod mtu;
pub mod naming;
pub mod policy;
pub mod port_options;
pub mod quotas;
pub mod resources;
pub mod router_advert;
pub mod routers;
pub mod security_groups;
pub mod segments;
pub mod subnet;
pub mod subnet_pools;
pub mod topology;
pub mod validators;

pub use error::DomainError;
