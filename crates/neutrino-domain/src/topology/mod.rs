//! The agent-facing projection of the cloud, which every host's view is computed from.
//!
//! Every write transaction records in the change log, at one revision, the *image* of each
//! object hosts care about that it touched: a port's host, segment, MAC and addresses; a
//! network's MTU; a segment's type and id; an agent's VTEP. A server folds the log into a
//! [`Topology`] and computes each host's view from it: whole for a snapshot
//! ([`Topology::view`]), and for every later revision only the entries that changed, for the
//! hosts it concerns ([`Topology::apply`]). [`History`] keeps the recent revisions, so that a
//! view at an earlier revision can be rebuilt for an agent that reconnects.

mod images;
mod model;
mod window;

pub use images::{
    AddressGroupImage, AgentImage, FloatingIpImage, ForwardingImage, Image, NetworkImage, ObjectChange, ObjectKind,
    PortImage, Revision, RouterImage, RouterPortImage, Scope, SecurityGroupImage, SegmentImage,
};
pub use model::Topology;
pub use window::History;

#[cfg(test)]
mod tests;
