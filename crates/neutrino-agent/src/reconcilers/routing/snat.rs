//! This host's part in a router's centralized SNAT: which of the router's gateway hosts is
//! active (the first whose host answers), and this host's own SNAT leg when it is one of them.

use crate::gateway_liveness::GatewayLiveness;
use neutrino_api::agent::{HostRouter, HostState};
use neutrino_dataplane::RouterPortSpec;
use neutrino_domain::naming::bridge_name;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// What this host does for a router's centralized SNAT (its VMs without a floating IP, through
/// a gateway host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SnatRole {
    /// Nothing: the router has no gateway that SNATs, or no gateway hosts, or this host SNATs
    /// its own VMs (distributed SNAT).
    None,
    /// This host is the first alive gateway host: it holds the gateway's address and SNATs
    /// the router's subnets to it. `alive`: the liveness of all of them (a change makes it
    /// announce the address again, to take it back from one that stood in).
    Active { alive: Vec<bool> },
    /// Another host is: the router's default routes go to its SNAT port's addresses (IPv6
    /// too, when the port has one: IPv6 is routed through the gateway host, without NAT).
    Via { v4: std::net::IpAddr, v6: Option<std::net::IpAddr> },
    /// No gateway host is alive.
    Nowhere,
    /// Not known yet: a gateway host ranked before the first alive one has not been judged
    /// (the agent has just started, or a gateway host has no address in the view yet). The
    /// router is left as the kernel has it.
    Unknown,
}

/// This host's part in the router's centralized SNAT (none when it SNATs its own VMs:
/// `distributed`), and the underlay addresses of its other gateway hosts (to probe).
pub(super) fn role(
    state: &HostState,
    router: &HostRouter,
    distributed: bool,
    liveness: Option<&GatewayLiveness>,
) -> (SnatRole, BTreeSet<Ipv4Addr>) {
    let mut targets = BTreeSet::new();
    let snats = router.gateway.as_ref().is_some_and(|g| g.enable_snat);
    if !snats || router.snat_gateways.is_empty() || distributed {
        return (SnatRole::None, targets);
    }
    let mut alive = Vec::new();
    let mut first: Option<SnatRole> = None;
    for port_id in &router.snat_gateways {
        if state.local_ports.contains_key(port_id) {
            alive.push(true);
            first.get_or_insert(SnatRole::Active { alive: Vec::new() });
            continue;
        }
        // A gateway host whose port this view does not place (no remote port entry, as
        // without l2population) is not known: never taken for dead, so two gateway hosts
        // cannot both hold the address because they cannot see each other in the view.
        let remote = state.remote_ports.get(port_id);
        let vtep = remote.and_then(|r| r.tunnel_ip.parse::<Ipv4Addr>().ok());
        let address = remote.and_then(|r| r.ip_addresses.iter().find_map(|a| a.parse::<Ipv4Addr>().ok()));
        let v6 = remote.and_then(|r| r.ip_addresses.iter().find_map(|a| a.parse::<std::net::Ipv6Addr>().ok()));
        let up = match (vtep, address) {
            (Some(vtep), Some(_)) => {
                targets.insert(vtep);
                liveness.map_or(Some(true), |l| l.is_alive(vtep))
            }
            _ => None,
        };
        alive.push(up == Some(true));
        match up {
            Some(true) if first.is_none() => {
                first = address.map(|a| SnatRole::Via { v4: a.into(), v6: v6.map(Into::into) })
            }
            None if first.is_none() => first = Some(SnatRole::Unknown),
            _ => {}
        }
    }
    let role = match first {
        Some(SnatRole::Active { .. }) => SnatRole::Active { alive },
        Some(other) => other,
        None => SnatRole::Nowhere,
    };
    (role, targets)
}

/// The gateway's IPv4 address (the address of the router's centralized SNAT).
pub(super) fn gateway_v4(router: &HostRouter) -> Option<std::net::IpAddr> {
    let gateway = router.gateway.as_ref()?;
    gateway.addresses.iter().filter_map(|a| a.parse::<ipnet::IpNet>().ok()).map(|a| a.addr()).find(|a| a.is_ipv4())
}

/// The gateway's IPv6 addresses with their prefixes, and the IPv6 next hop: what the active
/// gateway host holds and routes to for the router's IPv6 subnets (no NAT).
pub(super) fn gateway_v6(router: &HostRouter) -> (Vec<ipnet::IpNet>, Option<std::net::IpAddr>) {
    let Some(gateway) = router.gateway.as_ref() else { return (Vec::new(), None) };
    let addresses = gateway.addresses.iter().filter_map(|a| a.parse::<ipnet::IpNet>().ok());
    let next_hop = gateway.next_hops.iter().filter_map(|h| h.parse::<std::net::IpAddr>().ok()).find(|h| h.is_ipv6());
    (addresses.filter(|a| a.addr().is_ipv6()).collect(), next_hop)
}

/// The leg of this host's centralized SNAT port of the router, when it is one of its gateway
/// hosts: `sg-<port>` inside with the port's MAC and address (a /32: the subnet is the
/// interface's), `tap<port>` outside, which L2 plugs and reports as the port's.
pub(super) fn snat_leg(state: &HostState, router: &HostRouter) -> Option<RouterPortSpec> {
    let (port_id, port) = router.snat_gateways.iter().find_map(|id| Some((id, state.local_ports.get(id)?)))?;
    let network = state.networks.get(&port.network_id)?;
    let address: Ipv4Addr = port.ip_addresses.iter().find_map(|a| a.parse().ok())?;
    let mut addresses = vec![ipnet::IpNet::V4(ipnet::Ipv4Net::new(address, 32).ok()?)];
    let v6 = port.ip_addresses.iter().filter_map(|a| a.parse::<std::net::Ipv6Addr>().ok());
    addresses.extend(v6.filter_map(|a| ipnet::Ipv6Net::new(a, 128).ok()).map(ipnet::IpNet::V6));
    Some(RouterPortSpec {
        name: super::leg_name("sg-", port_id),
        outside: neutrino_domain::naming::tap_name(port_id),
        bridge: bridge_name(&port.network_id),
        mac: port.mac_address.parse().ok()?,
        mtu: network.mtu,
        addresses,
        isolated: false,
    })
}
