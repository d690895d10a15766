//! Security groups as nftables objects: the compiler (host view → [`ir::Ruleset`]) and the
//! plan (observed → desired, as one transaction's operations). Pure; the agent's firewall
//! reconciler observes and applies through the data plane.

mod compile;
pub mod ir;
mod plan;
#[cfg(test)]
mod tests;

pub use compile::{compile_firewall, link_local, FirewallIntent, FROM_MASK, SLOTS, TO_MASK, ZONES};
pub use plan::{apply_to, digest, plan, Op};
