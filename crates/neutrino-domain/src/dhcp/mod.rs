//! DHCP as each host answers it for its own ports, as pure functions: what a port's lease is
//! (address, options, routes) from its host view, by the rules Neutron's DHCP agent follows.

/// The device owner of a network's DHCP port.
pub const DEVICE_OWNER_DHCP: &str = "network:dhcp";
