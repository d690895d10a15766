//! The DHCP reconciler: for each network with local ports and a DHCP port, a namespace
//! (`qdhcp-<network id>`) with one leg on the network's bridge (`ns-<port>` inside, `dh-<port>`
//! on the bridge) holding the DHCP port's MAC and addresses, the same on every host, and
//! 169.254.169.254. Its neighbour table knows every local port of the network, so answers
//! never wait for ARP. The host's servers ([`crate::services::HostServices`]: DHCP and the
//! metadata proxy) answer there from the table of the local ports; nothing crosses a tunnel,
//! since the VXLAN devices flood nothing and other hosts answer for their own ports. On flat
//! and VLAN networks the leg's outside end is an isolated bridge port, as the uplink is, so
//! the leg (the same MAC on every host) never reaches the physical network.
//!
//! Level-triggered and restart-safe: namespaces of networks no longer served go (also those
//! left by an agent that stopped), and a pass over changes skips networks as the last clean
//! pass left them.

use super::{leg_name, PassOutcome, Reconciler, Scope};
use crate::services::{HostServices, Instance, NetworkTable, Server};
use futures::future::BoxFuture;
use neutrino_api::agent::{HostNetwork, HostState, LocalPort};
use neutrino_dataplane::{DataPlane, LinkEvent, MacAddr, RouterPortSpec, Routers};
use neutrino_domain::dhcp::v6::{lease_v6, METADATA_V6};
use neutrino_domain::dhcp::{hostname, lease_v4, DhcpSettings, METADATA_V4};
use neutrino_domain::ipam::link_local;
use neutrino_domain::naming::bridge_name;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

/// A remote port's name and addresses.
type RemoteName = (String, Vec<String>);
type Seen = (HostNetwork, Vec<(String, LocalPort)>, Vec<RemoteName>);
/// One network's pass: its id, entry, local ports and remote ports' names.
type NetworkHere<'a> = (&'a str, &'a HostNetwork, &'a [(String, LocalPort)], &'a [RemoteName]);

pub struct DhcpReconciler {
    settings: DhcpSettings,
    /// The servers (none: the kernel state only, as in the in-memory tests).
    service: Option<Arc<HostServices>>,
    /// Each network as its last clean pass left it, with its local ports and the names and
    /// addresses of its remote ones.
    done: BTreeMap<String, Seen>,
    /// The network entry each network's namespace and leg were last made right for: a pass
    /// where only its ports changed writes their neighbours and table alone.
    legs: BTreeMap<String, HostNetwork>,
}

impl DhcpReconciler {
    pub fn new(settings: DhcpSettings, service: Option<Arc<HostServices>>) -> DhcpReconciler {
        DhcpReconciler { settings, service, done: BTreeMap::new(), legs: BTreeMap::new() }
    }

    async fn pass<D: DataPlane>(
        &mut self,
        dp: &D,
        state: &HostState,
        scope: &Scope,
    ) -> neutrino_dataplane::Result<PassOutcome> {
        let namespaces = dp.dhcp();
        let mut outcome = PassOutcome::default();
        let mut ports: BTreeMap<&str, Vec<(String, LocalPort)>> = BTreeMap::new();
        for (id, port) in &state.local_ports {
            ports.entry(port.network_id.as_str()).or_default().push((id.clone(), port.clone()));
        }
        let wanted: BTreeMap<&str, &HostNetwork> = state
            .networks
            .iter()
            .filter(|(id, n)| ports.contains_key(id.as_str()) && serves_dhcp(n))
            .map(|(id, n)| (id.as_str(), n))
            .collect();
        let existing: BTreeSet<String> = namespaces.list().await?.into_iter().collect();
        for stale in existing.iter().filter(|id| !wanted.contains_key(id.as_str())) {
            namespaces.delete(stale).await?;
            self.done.remove(stale);
            outcome.changes += 1;
        }
        if let Some(service) = &self.service {
            for network in service.networks().iter().filter(|n| !wanted.contains_key(n.as_str())) {
                service.stop(network);
            }
        }
        self.done.retain(|id, _| wanted.contains_key(id.as_str()));
        self.legs.retain(|id, _| wanted.contains_key(id.as_str()));
        // A bridge or leg came, went or changed: those networks' legs are looked at again (and
        // only theirs: a bridge's every change is an event).
        let touched: BTreeSet<&str> = match scope {
            Scope::Changes(events) => events
                .iter()
                .filter_map(|e| {
                    let name = e.name();
                    wanted.iter().find(|(id, n)| names_network(name, id, n)).map(|(id, _)| *id)
                })
                .collect(),
            Scope::Full => BTreeSet::new(),
        };
        self.legs.retain(|id, _| !touched.contains(id.as_str()));
        let mut failed = None;
        for (network_id, network) in wanted {
            let local = ports.remove(network_id).unwrap_or_default();
            let serving = self
                .service
                .as_ref()
                .is_none_or(|s| s.servers(has_ipv6(network)).iter().all(|k| s.serving(network_id, *k)));
            let remote: Vec<(String, Vec<String>)> = state
                .remote_ports
                .values()
                .filter(|r| r.network_id == network_id)
                .map(|r| (r.dns_name.clone(), r.ip_addresses.clone()))
                .collect();
            let seen = (network.clone(), local.clone(), remote.clone());
            if !touched.contains(network_id) && serving && self.done.get(network_id) == Some(&seen) {
                outcome.ready.extend(local.iter().map(|(id, _)| (id.clone(), true)));
                continue;
            }
            let problems = outcome.problems.len();
            let here = (network_id, network, local.as_slice(), remote.as_slice());
            let result = self.network_pass(dp, here, existing.contains(network_id), &mut outcome).await;
            let done = matches!(result, Ok(true)) && outcome.problems.len() == problems;
            outcome.ready.extend(local.iter().map(|(id, _)| (id.clone(), done)));
            match result {
                Ok(_) if done => {
                    self.done.insert(network_id.to_string(), seen);
                }
                Ok(_) => {
                    self.done.remove(network_id);
                }
                Err(e) => {
                    self.done.remove(network_id);
                    outcome.problems.insert(format!("dhcp {network_id}"), e.to_string());
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(outcome),
        }
    }

    /// One network: its namespace, leg, neighbours, leases and server. `Ok(false)` when it
    /// must wait (its bridge is not there yet).
    async fn network_pass<D: DataPlane>(
        &mut self,
        dp: &D,
        (network_id, network, local, remote): NetworkHere<'_>,
        existed: bool,
        outcome: &mut PassOutcome,
    ) -> neutrino_dataplane::Result<bool> {
        let namespaces = dp.dhcp();
        let Some(dhcp) = &network.dhcp else { return Ok(false) };
        let Ok(mac) = dhcp.mac_address.parse::<MacAddr>() else { return Ok(false) };
        let spec = RouterPortSpec {
            name: leg_name("ns-", &dhcp.port_id),
            outside: leg_name("dh-", &dhcp.port_id),
            bridge: bridge_name(network_id),
            mac,
            mtu: network.mtu,
            addresses: leg_addresses(network),
            // Kept off the uplink (isolated, as uplinks are): on a flat or VLAN network
            // every host's leg has this MAC and address.
            isolated: true,
        };
        let leg_known = existed && self.legs.get(network_id) == Some(network);
        let mut leg_was_there = true;
        if !leg_known {
            self.legs.remove(network_id);
            namespaces.ensure(network_id).await?;
            let before = namespaces.observe(network_id).await?.unwrap_or_default();
            match namespaces.ensure_port(network_id, &spec).await {
                Err(neutrino_dataplane::DataPlaneError::NoSuchLink(bridge)) => {
                    outcome.problems.insert(format!("dhcp {network_id}"), format!("bridge {bridge} is not there yet"));
                    return Ok(false);
                }
                other => other?,
            }
            leg_was_there = before.port(&spec.name).is_some();
            if !leg_was_there || before.ports.len() != 1 {
                outcome.changes += 1;
                // Another leg (a DHCP port that changed) goes.
                for other in before.ports.iter().filter(|p| p.name != spec.name) {
                    namespaces.delete_port(network_id, &other.name).await?;
                }
            }
            self.legs.insert(network_id.to_string(), network.clone());
        }
        let mut neighbours = Vec::new();
        let mut table = NetworkTable::default();
        let ipv6 = has_ipv6(network);
        for (_, port) in local {
            let Ok(mac) = port.mac_address.parse::<MacAddr>() else { continue };
            let mut addresses: Vec<IpAddr> = port.ip_addresses.iter().filter_map(|ip| ip.parse().ok()).collect();
            if ipv6 {
                // Its link-local address too: DHCPv6 answers go there, and metadata on
                // fe80::a9fe:a9fe comes from there (SLAAC ports as well).
                addresses.push(IpAddr::V6(link_local(mac.0)));
            }
            for ip in addresses {
                neighbours.push((ip, mac));
                let instance = Instance { device_id: port.device_id.clone(), project_id: port.project_id.clone() };
                table.instances.insert(ip, instance);
            }
            if let Some(lease) = lease_v4(network, port, &self.settings) {
                table.leases.insert(mac.0, lease);
            }
            if let Some(lease) = lease_v6(network, port, &self.settings) {
                table.leases_v6.insert(mac.0, lease);
            }
            add_name(&mut table, &port.dns_name, &port.ip_addresses, &self.settings.domain);
        }
        for (dns_name, addresses) in remote {
            add_name(&mut table, dns_name, addresses, &self.settings.domain);
        }
        table.server_mac = Some(mac.0);
        namespaces.set_neighbours(network_id, &spec.name, &neighbours).await?;
        let Some(service) = &self.service else { return Ok(true) };
        service.publish(network_id, table);
        let fresh = !existed || !leg_was_there;
        if fresh {
            // Servers on a namespace or leg made again: their sockets go first (they hold the
            // ports the new ones bind).
            service.stop_servers(network_id).await;
        }
        let servers = service.servers(has_ipv6(network));
        service.retain_servers(network_id, &servers);
        for server in servers {
            if !fresh && service.serving(network_id, server) {
                continue;
            }
            match server {
                Server::DhcpV4 => {
                    let device = spec.name.clone();
                    let socket = namespaces
                        .in_namespace(network_id, move || neutrino_dataplane::sockets::dhcp_v4_server(&device))
                        .await?;
                    service.serve_dhcp(network_id, socket)?;
                }
                Server::DhcpV6 => {
                    let device = spec.name.clone();
                    let (socket, _) = namespaces
                        .in_namespace(network_id, move || neutrino_dataplane::sockets::dhcp_v6_server(&device))
                        .await?;
                    service.serve_dhcp_v6(network_id, socket)?;
                }
                Server::Dns => {
                    let socket = namespaces.in_namespace(network_id, neutrino_dataplane::sockets::dns_server).await?;
                    service.serve_dns(network_id, server, socket)?;
                }
                Server::DnsTcp => {
                    let listener =
                        namespaces.in_namespace(network_id, neutrino_dataplane::sockets::dns_tcp_listener).await?;
                    service.serve_dns_tcp(network_id, listener)?;
                }
                Server::DnsV6 => {
                    let socket =
                        namespaces.in_namespace(network_id, neutrino_dataplane::sockets::dns_server_v6).await?;
                    service.serve_dns(network_id, server, socket)?;
                }
                Server::Metadata => {
                    let listener = namespaces
                        .in_namespace(network_id, || neutrino_dataplane::sockets::metadata_listener(METADATA_V4.into()))
                        .await?;
                    service.serve_metadata(network_id, server, listener)?;
                }
                Server::MetadataV6 => {
                    let device = spec.name.clone();
                    let listener = namespaces
                        .in_namespace(network_id, move || {
                            neutrino_dataplane::sockets::metadata_listener_v6(METADATA_V6, &device)
                        })
                        .await?;
                    service.serve_metadata(network_id, server, listener)?;
                }
            }
            tracing::info!(network = %network_id, ?server, "listening");
            outcome.changes += 1;
        }
        Ok(true)
    }
}

/// Whether the link `name` is the network's bridge or the outside end of its DHCP leg.
fn names_network(name: &str, network_id: &str, network: &HostNetwork) -> bool {
    name == bridge_name(network_id) || network.dhcp.as_ref().is_some_and(|d| name == leg_name("dh-", &d.port_id))
}

/// A port's name (its `dns_assignment`) for the DNS responder.
fn add_name(table: &mut NetworkTable, dns_name: &str, addresses: &[String], domain: &str) {
    let ips: Vec<IpAddr> = addresses.iter().filter_map(|a| a.parse().ok()).collect();
    if let Some(first) = ips.first() {
        table.names.add(&hostname(dns_name, *first), domain, &ips);
    }
}

/// Whether the network has a DHCP port with an address and a subnet with DHCP.
fn serves_dhcp(network: &HostNetwork) -> bool {
    network.dhcp.as_ref().is_some_and(|d| !d.ip_addresses.is_empty()) && network.subnets.values().any(|s| s.enable_dhcp)
}

/// Whether the network's DHCP port has an IPv6 address (DHCPv6 is served there).
fn has_ipv6(network: &HostNetwork) -> bool {
    network.dhcp.iter().flat_map(|d| &d.ip_addresses).any(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
}

/// The DHCP port's addresses with their subnets' prefix lengths, and the metadata address.
fn leg_addresses(network: &HostNetwork) -> Vec<ipnet::IpNet> {
    let mut out: Vec<ipnet::IpNet> = Vec::new();
    for ip in network.dhcp.iter().flat_map(|d| &d.ip_addresses).filter_map(|ip| ip.parse::<IpAddr>().ok()) {
        let subnet =
            network.subnets.values().filter_map(|s| s.cidr.parse::<ipnet::IpNet>().ok()).find(|c| c.contains(&ip));
        if let Some(cidr) = subnet {
            out.extend(ipnet::IpNet::new(ip, cidr.prefix_len()).ok());
        }
    }
    out.extend(ipnet::IpNet::new(IpAddr::V4(METADATA_V4), 32).ok());
    if has_ipv6(network) {
        out.extend(ipnet::IpNet::new(IpAddr::V6(METADATA_V6), 64).ok());
    }
    out.sort();
    out
}

impl<D: DataPlane> Reconciler<D> for DhcpReconciler {
    fn name(&self) -> &'static str {
        "dhcp"
    }

    fn wants_link_event(&self, event: &LinkEvent) -> bool {
        // A bridge made again, or a leg's outside end gone.
        let name = event.name();
        name.starts_with("brq") || name.starts_with("dh-")
    }

    fn reconcile<'a>(
        &'a mut self,
        dp: &'a D,
        state: &'a HostState,
        scope: &'a Scope,
    ) -> BoxFuture<'a, neutrino_dataplane::Result<PassOutcome>> {
        Box::pin(async move {
            if *scope == Scope::Full {
                self.done.clear();
                self.legs.clear();
            }
            self.pass(dp, state, scope).await
        })
    }
}

#[cfg(test)]
mod tests;
