//! The routing part of host views. A host runs every router that has an interface on a network
//! one of its bound ports is on (its *direct* networks), and such a router's other networks
//! become part of the host's view too (*routed* presence: the network's lowest segment, its
//! remote ports), so the router can reach them from this host.
//!
//! Routed presence counts in the same indexes as bound ports (`host_segments`,
//! `segment_hosts`, `host_networks`, `network_hosts`), each as one more, so the L2 entries of
//! routed networks follow every later change as those of direct ones do. A change that can
//! change which routers a host runs (a router interface added or removed, a host gaining or
//! losing a direct network that has routers) is answered by diffing the affected hosts' whole
//! views, which are few: the hosts of that network or router.

use super::{decrement, remove_from, Topology};
use crate::topology::images::{FloatingIpImage, Image, ObjectChange, ObjectKind, PortImage};
use neutrino_api::agent::{HostFloatingIp, HostPortForwarding, HostRouter, RouterGateway, RouterInterface};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The ports a floating IP reaches: its associated port and its forwardings' internal ports.
pub(crate) fn ports_of_floating_ip(f: &FloatingIpImage) -> BTreeSet<&str> {
    f.port_id
        .iter()
        .map(String::as_str)
        .chain(f.port_forwardings.iter().map(|pf| pf.internal_port_id.as_str()))
        .collect()
}

/// The router a port is an interface of (not its gateway).
pub(super) fn interface_router(p: &PortImage) -> Option<&str> {
    p.router.as_ref().filter(|r| !r.gateway && !r.centralized_snat).map(|r| r.router_id.as_str())
}

/// The router a port is a centralized SNAT port of.
fn snat_router(p: &PortImage) -> Option<&str> {
    p.router.as_ref().filter(|r| r.centralized_snat).map(|r| r.router_id.as_str())
}

/// A router port's addresses with their subnets' prefix lengths.
fn prefixed(p: &PortImage) -> Vec<String> {
    let cidrs = p.router.as_ref().map(|r| r.cidrs.as_slice()).unwrap_or_default();
    p.ip_addresses
        .iter()
        .zip(cidrs)
        .filter_map(|(ip, cidr)| Some(format!("{ip}/{}", cidr.split_once('/')?.1)))
        .collect()
}

impl Topology {
    /// The routers with an interface on `network`.
    pub fn routers_on<'a>(&'a self, network: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.network_routers.get(network).into_iter().flat_map(|r| r.keys()).map(String::as_str)
    }

    /// The interface ports of `router`.
    pub fn interfaces_of<'a>(&'a self, router: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.router_ports.get(router).into_iter().flatten().map(String::as_str)
    }

    /// The gateway port of `router`.
    pub fn gateway_of(&self, router: &str) -> Option<&str> {
        self.router_gateways.get(router).and_then(|g| g.first()).map(String::as_str)
    }

    /// Every port that is a gateway of `router` (one, unless the log is mid-change).
    pub fn gateways_of<'a>(&'a self, router: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.router_gateways.get(router).into_iter().flatten().map(String::as_str)
    }

    /// The centralized SNAT ports of `router` (one per gateway host).
    pub fn snat_ports_of<'a>(&'a self, router: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.router_snat_ports.get(router).into_iter().flatten().map(String::as_str)
    }

    /// The floating IPs of `port`'s fixed IPs.
    pub fn floating_ips_of<'a>(&'a self, port: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.port_floating_ips.get(port).into_iter().flatten().map(String::as_str)
    }

    /// The segments of `network`.
    pub fn segments_of<'a>(&'a self, network: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.network_segments.get(network).into_iter().flatten().map(String::as_str)
    }

    /// The hosts whose routers (and routed networks) a change can change, judged before it
    /// applies: those of a router interface's router and network, and the hosts a port's
    /// binding leaves or joins on a network that has routers.
    pub(super) fn routing_hosts(&self, change: &ObjectChange) -> BTreeSet<String> {
        let mut hosts = BTreeSet::new();
        match change.kind {
            ObjectKind::Port => {
                let old = self.ports.get(&change.id).map(Arc::as_ref);
                let new = match &change.image {
                    Some(Image::Port(p)) => Some(p.as_ref()),
                    _ => None,
                };
                if old == new {
                    return hosts;
                }
                for p in old.iter().chain(new.iter()) {
                    if let Some(router) = interface_router(p) {
                        hosts.extend(self.router_hosts.get(router).into_iter().flatten().cloned());
                        hosts.extend(self.network_hosts.get(&p.network_id).into_iter().flatten().cloned());
                    }
                    if let Some(router) = p.router.as_ref().filter(|r| r.gateway || r.centralized_snat) {
                        hosts.extend(self.router_hosts.get(&router.router_id).into_iter().flatten().cloned());
                    }
                }
                let placement = |p: &PortImage| p.bound().map(|(h, _)| (h.to_string(), p.network_id.clone()));
                // A port with floating IPs takes them to its new host.
                let has_fips = self.port_floating_ips.get(&change.id).is_some_and(|f| !f.is_empty());
                if has_fips && old.map(|p| &p.host) != new.map(|p| &p.host) {
                    hosts.extend(old.iter().chain(new.iter()).filter(|p| !p.host.is_empty()).map(|p| p.host.clone()));
                }
                if old.and_then(placement) != new.and_then(placement) {
                    for p in old.iter().chain(new.iter()) {
                        if self.network_routers.get(&p.network_id).is_some_and(|r| !r.is_empty()) {
                            if let Some((host, _)) = p.bound() {
                                hosts.insert(host.to_string());
                            }
                        }
                    }
                }
            }
            ObjectKind::Router => {
                hosts.extend(self.router_hosts.get(&change.id).into_iter().flatten().cloned());
            }
            ObjectKind::FloatingIp => {
                let mut ports: BTreeSet<String> = BTreeSet::new();
                if let Some(f) = self.floating_ips.get(&change.id) {
                    ports.extend(ports_of_floating_ip(f).into_iter().map(String::from));
                }
                if let Some(Image::FloatingIp(f)) = &change.image {
                    ports.extend(ports_of_floating_ip(f).into_iter().map(String::from));
                }
                for port in &ports {
                    if let Some(p) = self.ports.get(port).filter(|p| !p.host.is_empty()) {
                        hosts.insert(p.host.clone());
                    }
                }
            }
            ObjectKind::Segment => {
                let network = self.segments.get(&change.id).map(|s| s.network_id.clone()).or(match &change.image {
                    Some(Image::Segment(s)) => Some(s.network_id.clone()),
                    _ => None,
                });
                // The hosts of the routers with an interface or their gateway on the network
                // may change the segment they are on there (a segment change is rare: the
                // gateways are looked through).
                let Some(network) = network else { return hosts };
                let mut routers: BTreeSet<&str> = self.routers_on(&network).collect();
                for (router, ports) in &self.router_gateways {
                    if ports.iter().any(|p| self.ports.get(p).is_some_and(|p| p.network_id == network)) {
                        routers.insert(router);
                    }
                }
                for router in routers {
                    hosts.extend(self.router_hosts.get(router).into_iter().flatten().cloned());
                }
            }
            _ => {}
        }
        hosts
    }

    /// Keep the router indexes of a port right (before and after its image changes).
    pub(super) fn index_router_port(&mut self, id: &str, p: &PortImage, add: bool) {
        if let Some(router) = snat_router(p) {
            if add {
                self.router_snat_ports.entry(router.to_string()).or_default().insert(id.to_string());
            } else {
                remove_from(&mut self.router_snat_ports, router, id);
            }
        }
        if let Some(r) = p.router.as_ref().filter(|r| r.gateway) {
            if add {
                self.router_gateways.entry(r.router_id.clone()).or_default().insert(id.to_string());
            } else {
                remove_from(&mut self.router_gateways, &r.router_id, id);
            }
        }
        let Some(router) = interface_router(p) else { return };
        if add {
            self.router_ports.entry(router.to_string()).or_default().insert(id.to_string());
            *self.network_routers.entry(p.network_id.clone()).or_default().entry(router.to_string()).or_default() += 1;
        } else {
            remove_from(&mut self.router_ports, router, id);
            if decrement(self.network_routers.get_mut(&p.network_id), router)
                && self.network_routers.get(&p.network_id).is_some_and(BTreeMap::is_empty)
            {
                self.network_routers.remove(&p.network_id);
            }
        }
    }

    /// The networks a host has bound ports on (not counting routed presence).
    fn direct_networks(&self, host: &str) -> Vec<String> {
        let routed = self.routed.get(host);
        self.host_networks
            .get(host)
            .into_iter()
            .flatten()
            .filter(|(network, segments)| {
                let total: u32 = segments.values().sum();
                let own = u32::from(routed.is_some_and(|r| r.contains_key(*network)));
                total > own
            })
            .map(|(network, _)| network.clone())
            .collect()
    }

    /// Recompute which routers `host` runs and its routed presence on their networks.
    pub(super) fn refresh_routing(&mut self, host: &str) {
        let mut routers: BTreeSet<String> = BTreeSet::new();
        for network in self.direct_networks(host) {
            routers.extend(self.network_routers.get(&network).into_iter().flat_map(|r| r.keys().cloned()));
        }
        let mut desired: BTreeMap<String, String> = BTreeMap::new();
        for router in &routers {
            let gateway = self.router_gateways.get(router).and_then(|g| g.first());
            for port in self.router_ports.get(router).into_iter().flatten().chain(gateway) {
                let Some(p) = self.ports.get(port) else { continue };
                if let Some(segment) = self.network_segments.get(&p.network_id).and_then(|s| s.first()) {
                    desired.insert(p.network_id.clone(), segment.clone());
                }
            }
        }
        let old_routers = self.host_routers.remove(host).unwrap_or_default();
        for r in old_routers.difference(&routers) {
            remove_from(&mut self.router_hosts, r, host);
        }
        for r in &routers {
            self.router_hosts.entry(r.clone()).or_default().insert(host.to_string());
        }
        if !routers.is_empty() {
            self.host_routers.insert(host.to_string(), routers);
        }
        let current = self.routed.remove(host).unwrap_or_default();
        for (network, segment) in &current {
            if desired.get(network) != Some(segment) {
                self.remove_presence(host, network, segment);
            }
        }
        for (network, segment) in &desired {
            if current.get(network) != Some(segment) {
                self.add_presence(host, network, segment);
            }
        }
        if !desired.is_empty() {
            self.routed.insert(host.to_string(), desired);
        }
    }

    /// One more reason for `host` to be on `segment` of `network` (a bound port, or a router).
    pub(super) fn add_presence(&mut self, host: &str, network: &str, segment: &str) {
        *self.host_segments.entry(host.to_string()).or_default().entry(segment.to_string()).or_default() += 1;
        self.segment_hosts.entry(segment.to_string()).or_default().insert(host.to_string());
        let networks = self.host_networks.entry(host.to_string()).or_default();
        *networks.entry(network.to_string()).or_default().entry(segment.to_string()).or_default() += 1;
        self.network_hosts.entry(network.to_string()).or_default().insert(host.to_string());
    }

    /// One reason less (see [`Topology::add_presence`]).
    pub(super) fn remove_presence(&mut self, host: &str, network: &str, segment: &str) {
        if decrement(self.host_segments.get_mut(host), segment) {
            remove_from(&mut self.segment_hosts, segment, host);
        }
        if self.host_segments.get(host).is_some_and(BTreeMap::is_empty) {
            self.host_segments.remove(host);
        }
        let segments = self.host_networks.get_mut(host).and_then(|n| n.get_mut(network));
        decrement(segments, segment);
        let network_left = self.host_networks.get(host).and_then(|n| n.get(network)).is_some_and(|s| s.is_empty());
        if network_left {
            if let Some(networks) = self.host_networks.get_mut(host) {
                networks.remove(network);
                if networks.is_empty() {
                    self.host_networks.remove(host);
                }
            }
            remove_from(&mut self.network_hosts, network, host);
        }
    }

    /// The routers of a host's view.
    pub(super) fn router_entries(&self, host: &str) -> BTreeMap<String, HostRouter> {
        let mut out = BTreeMap::new();
        for router in self.host_routers.get(host).into_iter().flatten() {
            out.insert(router.clone(), self.router_entry(router, host));
        }
        out
    }

    fn router_entry(&self, router: &str, host: &str) -> HostRouter {
        let mut interfaces = BTreeMap::new();
        let mut floating_ips = BTreeMap::new();
        for port in self.router_ports.get(router).into_iter().flatten() {
            let Some(p) = self.ports.get(port) else { continue };
            interfaces.insert(
                port.clone(),
                RouterInterface {
                    network_id: p.network_id.clone(),
                    mac_address: p.mac_address.clone(),
                    addresses: prefixed(p),
                },
            );
        }
        // The floating IPs of this host's ports through this router, and the forwardings of
        // the floating IPs whose first forwarding is to one of them.
        let mut port_forwardings = BTreeMap::new();
        for port in self.ports_on_host.get(host).into_iter().flatten() {
            for id in self.port_floating_ips.get(port).into_iter().flatten() {
                let Some(f) = self.floating_ips.get(id) else { continue };
                if f.router_id.as_deref() != Some(router) {
                    continue;
                }
                if f.port_forwardings.first().is_some_and(|pf| &pf.internal_port_id == port) {
                    for pf in &f.port_forwardings {
                        port_forwardings.insert(
                            pf.id.clone(),
                            HostPortForwarding {
                                floating_ip_address: f.floating_ip_address.clone(),
                                protocol: pf.protocol.clone(),
                                internal_ip_address: pf.internal_ip_address.clone(),
                                internal: pf.internal,
                                external: pf.external,
                            },
                        );
                    }
                }
                if f.port_id.as_deref() != Some(port.as_str()) {
                    continue;
                }
                let Some(fixed) = f.fixed_ip_address.clone() else { continue };
                floating_ips.insert(
                    id.clone(),
                    HostFloatingIp {
                        floating_ip_address: f.floating_ip_address.clone(),
                        fixed_ip_address: fixed,
                        port_id: port.clone(),
                    },
                );
            }
        }
        let gateway = self.gateway_of(router).and_then(|id| {
            let p = self.ports.get(id)?;
            let image = p.router.as_ref()?;
            let next_hops = image.gateways.iter().filter(|g| !g.is_empty()).cloned().collect();
            Some(RouterGateway {
                port_id: id.to_string(),
                network_id: p.network_id.clone(),
                addresses: prefixed(p),
                next_hops,
                enable_snat: image.snat,
            })
        });
        let (routes, admin_state_up) = match self.routers.get(router) {
            Some(r) => (r.routes.clone(), r.admin_state_up),
            None => (Vec::new(), true),
        };
        let snat_ports = self.snat_ports_of(router).filter_map(|id| Some((id, self.ports.get(id)?.host.as_str())));
        let snat_gateways = crate::routers::snat_order(router, snat_ports);
        HostRouter { interfaces, gateway, floating_ips, port_forwardings, routes, admin_state_up, snat_gateways }
    }
}
