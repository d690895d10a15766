//! Routers, their interfaces and extra routes, and floating IPs: the rules Neutron's L3 plugin
//! applies, as plain functions.

use crate::DomainError;
use ipnet::IpNet;
use std::net::IpAddr;

pub const DEVICE_OWNER_ROUTER_INTF: &str = "network:router_interface";
pub const DEVICE_OWNER_DVR_INTERFACE: &str = "network:router_interface_distributed";
pub const DEVICE_OWNER_HA_INTF: &str = "network:ha_router_replicated_interface";
pub const DEVICE_OWNER_ROUTER_GW: &str = "network:router_gateway";
pub const DEVICE_OWNER_FLOATINGIP: &str = "network:floatingip";
pub const DEVICE_OWNER_ROUTER_SNAT: &str = "network:router_centralized_snat";
/// A host's own address on an external network (its `device_id` is the host).
pub const DEVICE_OWNER_AGENT_GW: &str = "network:floatingip_agent_gateway";

/// The owners of a router's interface ports.
pub const ROUTER_INTERFACE_OWNERS: [&str; 3] =
    [DEVICE_OWNER_ROUTER_INTF, DEVICE_OWNER_DVR_INTERFACE, DEVICE_OWNER_HA_INTF];

/// Owners of ports only the L3 plugin may delete (`L3PortInUse` otherwise).
pub fn is_router_owned(device_owner: &str) -> bool {
    ROUTER_INTERFACE_OWNERS.contains(&device_owner)
        || [DEVICE_OWNER_ROUTER_GW, DEVICE_OWNER_FLOATINGIP, DEVICE_OWNER_ROUTER_SNAT].contains(&device_owner)
}

/// The device owner of interfaces of a router (`distributed` or not), as Neutron's.
pub fn interface_owner(distributed: bool) -> &'static str {
    if distributed {
        DEVICE_OWNER_DVR_INTERFACE
    } else {
        DEVICE_OWNER_ROUTER_INTF
    }
}

/// Where a gateway host stands for a router's centralized SNAT: every host ranks the gateway
/// hosts of a router alike, and each router ranks them differently (rendezvous hashing), so
/// routers spread over the gateway hosts and a host that goes moves only its own routers.
pub fn snat_rank(router_id: &str, host: &str) -> u64 {
    // FNV-1a (64 bits): stable across builds and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in router_id.bytes().chain([0]).chain(host.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The gateway hosts that serve a router's centralized SNAT: the `max` best ranked of
/// `candidates`.
pub fn snat_hosts<'a>(router_id: &str, candidates: impl IntoIterator<Item = &'a str>, max: usize) -> Vec<String> {
    let mut ranked: Vec<(u64, &str)> = candidates.into_iter().map(|h| (snat_rank(router_id, h), h)).collect();
    ranked.sort();
    ranked.dedup();
    ranked.into_iter().take(max).map(|(_, h)| h.to_string()).collect()
}

/// A router's centralized SNAT ports (`(port, host)`) in the order their hosts rank: the first
/// that is alive is the active one.
pub fn snat_order<'a>(router_id: &str, ports: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<String> {
    let mut ranked: Vec<(u64, &str)> = ports.into_iter().map(|(p, h)| (snat_rank(router_id, h), p)).collect();
    ranked.sort();
    ranked.into_iter().map(|(_, p)| p.to_string()).collect()
}

/// An extra route, parsed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    pub destination: IpNet,
    pub nexthop: IpAddr,
}

impl Route {
    /// As the API shows it: the destination as given (its network address) and the nexthop.
    pub fn destination_text(&self) -> String {
        self.destination.to_string()
    }
}

/// Python's rendering of a list of routes (`[{'destination': ..., 'nexthop': ...}]`), as
/// Neutron's messages print them.
pub fn python_routes(routes: &[Route]) -> String {
    let items: Vec<String> =
        routes.iter().map(|r| format!("{{'destination': '{}', 'nexthop': '{}'}}", r.destination, r.nexthop)).collect();
    format!("[{}]", items.join(", "))
}

/// Check extra routes against the router's interfaces (`connected`: each interface address
/// with its subnet's prefix), as Neutron's `_validate_routes`: a nexthop must be on a connected
/// subnet and must not be one of the router's own addresses.
pub fn check_routes(routes: &[Route], connected: &[IpNet]) -> Result<(), DomainError> {
    for route in routes {
        let invalid = |reason: &str| {
            DomainError::bad_request(
                "InvalidRoutes",
                format!("Invalid format for routes: {}, {reason}.", python_routes(routes)),
            )
        };
        if !connected.iter().any(|c| c.contains(&route.nexthop)) {
            return Err(invalid("the nexthop is not connected with router"));
        }
        if connected.iter().any(|c| c.addr() == route.nexthop) {
            return Err(invalid("the nexthop is used by router"));
        }
    }
    Ok(())
}

/// A new interface's subnet must not overlap a subnet the router already has an interface on
/// (`existing`: id and CIDR), as Neutron's `_check_for_dup_router_subnets`.
pub fn check_no_overlap(
    router_id: &str,
    subnet_id: &str,
    cidr: IpNet,
    existing: &[(String, IpNet)],
) -> Result<(), DomainError> {
    for (other_id, other) in existing {
        if other_id == subnet_id {
            return Err(DomainError::bad_request(
                "BadRequest",
                format!("Bad router request: Router already has a port on subnet {subnet_id}."),
            ));
        }
        if other.contains(&cidr.network()) || cidr.contains(&other.network()) {
            return Err(DomainError::bad_request(
                "BadRequest",
                format!(
                    "Bad router request: Cidr {cidr} of subnet {subnet_id} overlaps with cidr {other} of subnet {other_id}."
                ),
            ));
        }
    }
    let _ = router_id;
    Ok(())
}

/// The extra routes after `add_extraroutes` (a set union, in order) or `remove_extraroutes`
/// (absent ones ignored).
pub fn merge_routes(old: &[Route], change: &[Route], add: bool) -> Vec<Route> {
    if add {
        let mut out = old.to_vec();
        for r in change {
            if !out.contains(r) {
                out.push(r.clone());
            }
        }
        out
    } else {
        old.iter().filter(|r| !change.contains(r)).cloned().collect()
    }
}

/// A port forwarding's port or port range (`"80"` or `"8000:8010"`), as 1–65535 inclusive.
pub fn parse_port_range(text: &str) -> Option<(u32, u32)> {
    let (a, b) = match text.split_once(':') {
        Some((a, b)) => (a, b),
        None => (text, text),
    };
    let a: u32 = a.trim().parse().ok()?;
    let b: u32 = b.trim().parse().ok()?;
    ((1..=65535).contains(&a) && (1..=65535).contains(&b) && a <= b).then_some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_hosts_rank_alike_everywhere_and_differently_per_router() {
        let hosts = ["gw1", "gw2", "gw3", "gw4"];
        let a = snat_hosts("router-a", hosts, 2);
        assert_eq!(a.len(), 2);
        assert_eq!(a, snat_hosts("router-a", hosts.iter().rev().copied(), 2), "the order given does not matter");
        // Routers spread: not every router has the same first host.
        let firsts: std::collections::BTreeSet<String> =
            (0..20).map(|i| snat_hosts(&format!("router-{i}"), hosts, 1).remove(0)).collect();
        assert!(firsts.len() > 1);
        // A host that goes moves only the routers it served first.
        let without: Vec<&str> = hosts.iter().copied().filter(|h| *h != a[0]).collect();
        assert_eq!(snat_hosts("router-a", without, 1)[0], a[1]);
        let order = snat_order("router-a", [("p2", a[1].as_str()), ("p1", a[0].as_str())]);
        assert_eq!(order, vec!["p1".to_string(), "p2".to_string()]);
    }

    fn route(d: &str, n: &str) -> Route {
        Route { destination: d.parse().unwrap(), nexthop: n.parse().unwrap() }
    }

    #[test]
    fn routes_need_a_connected_nexthop_that_is_not_the_router() {
        let connected: Vec<IpNet> = vec!["192.0.2.1/24".parse().unwrap()];
        assert!(check_routes(&[route("198.51.100.0/24", "192.0.2.10")], &connected).is_ok());
        let e = check_routes(&[route("198.51.100.0/24", "203.0.113.1")], &connected).unwrap_err();
        assert!(e.to_string().contains("the nexthop is not connected with router"), "{e}");
        let e = check_routes(&[route("198.51.100.0/24", "192.0.2.1")], &connected).unwrap_err();
        assert!(e.to_string().contains("the nexthop is used by router"), "{e}");
    }

    #[test]
    fn overlapping_interfaces_are_refused() {
        let existing = vec![("s1".to_string(), "192.0.2.0/24".parse().unwrap())];
        assert!(check_no_overlap("r", "s2", "198.51.100.0/24".parse().unwrap(), &existing).is_ok());
        assert!(check_no_overlap("r", "s2", "192.0.2.128/25".parse().unwrap(), &existing).is_err());
        assert!(check_no_overlap("r", "s1", "192.0.2.0/24".parse().unwrap(), &existing).is_err());
    }

    #[test]
    fn extra_routes_merge_as_sets() {
        let a = route("198.51.100.0/24", "192.0.2.10");
        let b = route("203.0.113.0/24", "192.0.2.11");
        assert_eq!(merge_routes(std::slice::from_ref(&a), &[a.clone(), b.clone()], true), vec![a.clone(), b.clone()]);
        assert_eq!(
            merge_routes(&[a.clone(), b.clone()], &[b.clone(), route("10.0.0.0/8", "192.0.2.12")], false),
            vec![a]
        );
    }

    #[test]
    fn port_ranges_parse() {
        assert_eq!(parse_port_range("80"), Some((80, 80)));
        assert_eq!(parse_port_range("8000:8010"), Some((8000, 8010)));
        assert_eq!(parse_port_range("0"), None);
        assert_eq!(parse_port_range("9:8"), None);
    }
}
