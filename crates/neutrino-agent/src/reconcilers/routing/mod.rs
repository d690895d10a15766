//! The routing reconciler: one namespace per router this host runs (`qrouter-<id>`), with a leg
//! on each of the router's networks (`qr-<port>` inside, `rq-<port>` on the network's bridge)
//! holding the interface's gateway MAC and addresses, the same on every host. So a packet
//! between two subnets of a router is routed on the sender's host.
//!
//! **No MAC flapping.** Every host answers for the gateway MAC, so no bridge may see it arrive
//! from a tunnel. Frames the router sends (except ARP, which the VXLAN devices answer locally
//! and never forward) leave with a source MAC of their own per host and interface
//! (`fa:16:3f:…`, as DVR's `dvr_base_mac`), rewritten in the router namespace's `netdev`
//! egress hook. VMs keep the gateway MAC they learned by ARP; replies are routed by their own
//! host's copy of the router.
//!
//! **SNAT.** VMs without a floating IP leave through the router's active gateway host
//! (centralized SNAT, see `snat`), or through this host's own address (distributed SNAT).
//!
//! Level-triggered and restart-safe: every pass compares the namespaces, legs and rewrite
//! tables the kernel has with what the host's view wants and changes only the difference; a
//! router no longer wanted (also one deleted while the agent was down) is removed.

mod snat;
mod tables;
#[cfg(test)]
mod tests;

use super::{leg_name, PassOutcome, Reconciler, Scope};
use crate::gateway_liveness::GatewayLiveness;
use futures::future::BoxFuture;
use neutrino_api::agent::{HostRouter, HostState};
use neutrino_dataplane::{DataPlane, LinkEvent, MacAddr, RouterPortSpec, RouterRoute, Routers};
use neutrino_domain::naming::bridge_name;
use serde_json::{json, Value};
use snat::{gateway_v4, gateway_v6, snat_leg, SnatRole};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
pub use tables::host_mac;
use tables::{nat_table, rewrite_table};

pub struct RoutingReconciler {
    host: String,
    /// The rewrite tables applied, per router (what the last pass left).
    applied: BTreeMap<String, Value>,
    /// With distributed SNAT: where this host's own external addresses come from.
    snat: Option<crate::client::ServerClient>,
    /// Each router as its last clean pass left it, with its networks' MTUs.
    done: BTreeMap<String, RouterSeen>,
    /// The (floating IP, fixed IP) mappings each router's NAT table has (flushed from
    /// conntrack when one goes).
    nat_pairs: BTreeMap<String, BTreeSet<(String, String)>>,
    /// This host's own address for each router's SNAT (by router and gateway port; the server
    /// keeps it).
    snat_addresses: BTreeMap<String, std::net::IpAddr>,
    /// Which gateway hosts of centralized SNAT are alive (none: all count as alive).
    liveness: Option<Arc<GatewayLiveness>>,
    /// The liveness generation the last pass saw.
    liveness_seen: u64,
}

/// What a router's pass depends on: its entry, its networks' MTUs and this host's SNAT role.
type RouterSeen = (HostRouter, Vec<(String, u32)>, SnatRole);

impl RoutingReconciler {
    /// `snat`: the server to ask for this host's external addresses, for distributed SNAT.
    /// `liveness`: the gateway hosts' liveness, for centralized SNAT (`None`: all count as
    /// alive).
    pub fn new(
        host: &str,
        snat: Option<crate::client::ServerClient>,
        liveness: Option<Arc<GatewayLiveness>>,
    ) -> RoutingReconciler {
        RoutingReconciler {
            host: host.to_string(),
            applied: BTreeMap::new(),
            snat,
            nat_pairs: BTreeMap::new(),
            snat_addresses: BTreeMap::new(),
            done: BTreeMap::new(),
            liveness,
            liveness_seen: 0,
        }
    }

    /// This host's own address on the router's external network, when the router SNATs and
    /// this host does distributed SNAT.
    async fn snat_address(
        &mut self,
        router_id: &str,
        router: &HostRouter,
        outcome: &mut PassOutcome,
    ) -> Option<std::net::IpAddr> {
        let gateway = router.gateway.as_ref().filter(|g| g.enable_snat)?;
        let client = self.snat.as_ref()?;
        let key = format!("{router_id}/{}", gateway.port_id);
        if let Some(address) = self.snat_addresses.get(&key) {
            return Some(*address);
        }
        match client.host_snat_address(&self.host, router_id).await {
            Ok(Some(address)) => {
                let address: std::net::IpAddr = address.parse().ok()?;
                self.snat_addresses.insert(key, address);
                Some(address)
            }
            Ok(None) => {
                outcome.problems.insert(
                    format!("snat {}", gateway.network_id),
                    "the external network gave this host no IPv4 address".into(),
                );
                None
            }
            Err(e) => {
                outcome.problems.insert(format!("snat {}", gateway.network_id), e.to_string());
                None
            }
        }
    }

    async fn pass<D: DataPlane>(
        &mut self,
        dp: &D,
        state: &HostState,
        scope: &Scope,
    ) -> neutrino_dataplane::Result<PassOutcome> {
        let routers = dp.routers();
        let mut outcome = PassOutcome::default();
        for stale in routers.list().await? {
            // A router no longer here, or down (it routes nothing), goes.
            if !state.routers.get(&stale).is_some_and(|r| r.admin_state_up) {
                routers.delete(&stale).await?;
                self.applied.retain(|k, _| k != &stale && !k.starts_with(&format!("{stale}/")));
                self.nat_pairs.remove(&stale);
                self.done.remove(&stale);
                outcome.changes += 1;
            }
        }
        // One router's failure is its own: the others are still reconciled, and the pass then
        // fails (the caller retries it).
        let mut failed = None;
        // A pass over changes skips the routers whose entry (and networks' MTUs) are as a
        // clean pass left them, unless links changed: work in proportion to what changed.
        let quiet = matches!(scope, Scope::Changes(events) if events.is_empty());
        if let Some(l) = &self.liveness {
            self.liveness_seen = l.generation();
        }
        let mut targets = BTreeSet::new();
        for (router_id, router) in state.routers.iter().filter(|(_, r)| r.admin_state_up) {
            let (role, probe) = snat::role(state, router, self.snat.is_some(), self.liveness.as_deref());
            targets.extend(probe);
            let seen = (router.clone(), network_mtus(state, router), role.clone());
            if quiet && self.done.get(router_id) == Some(&seen) {
                continue;
            }
            if role == SnatRole::Unknown && dp.routers().observe(router_id).await?.is_some() {
                // Left as it is until its gateway hosts are judged (a pass follows then).
                outcome.problems.insert(format!("router {router_id} snat"), "gateway hosts not judged yet".into());
                self.done.remove(router_id);
                continue;
            }
            let problems = outcome.problems.len();
            match self.router_pass(dp, state, router_id, router, &role, &mut outcome).await {
                Ok(()) if outcome.problems.len() == problems => {
                    self.done.insert(router_id.clone(), seen);
                }
                Ok(()) => {
                    self.done.remove(router_id);
                }
                Err(e) => {
                    self.done.remove(router_id);
                    outcome.problems.insert(format!("router {router_id}"), e.to_string());
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(l) = &self.liveness {
            l.set_targets(&targets);
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(outcome),
        }
    }

    async fn router_pass<D: DataPlane>(
        &mut self,
        dp: &D,
        state: &HostState,
        router_id: &str,
        router: &HostRouter,
        role: &SnatRole,
        outcome: &mut PassOutcome,
    ) -> neutrino_dataplane::Result<()> {
        let routers = dp.routers();
        {
            routers.ensure(router_id).await?;
            let observed = routers.observe(router_id).await?.unwrap_or_default();
            let mut wanted: BTreeSet<String> = BTreeSet::new();
            let mut rewrites: Vec<(String, MacAddr)> = Vec::new();
            for (port_id, interface) in &router.interfaces {
                let Some(network) = state.networks.get(&interface.network_id) else {
                    outcome.problems.insert(
                        format!("router {router_id} port {port_id}"),
                        format!("network {} is not wired on this host", interface.network_id),
                    );
                    continue;
                };
                let Ok(mac) = interface.mac_address.parse::<MacAddr>() else { continue };
                let spec = RouterPortSpec {
                    name: leg_name("qr-", port_id),
                    outside: leg_name("rq-", port_id),
                    bridge: bridge_name(&interface.network_id),
                    mac,
                    mtu: network.mtu,
                    addresses: interface.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
                    isolated: false,
                };
                let current = observed.port(&spec.name);
                let same = current.is_some_and(|p| {
                    p.mac == spec.mac && p.mtu == spec.mtu && p.up && sorted(&p.addresses) == sorted(&spec.addresses)
                });
                // A leg whose bridge was made again lost its outside end: ensure it anyway
                // (idempotent, no write when right). A bridge L2 has not made yet is a
                // problem of this leg only, until a later pass.
                match routers.ensure_port(router_id, &spec).await {
                    Err(neutrino_dataplane::DataPlaneError::NoSuchLink(bridge)) => {
                        outcome.problems.insert(
                            format!("router {router_id} port {port_id}"),
                            format!("bridge {bridge} is not there yet"),
                        );
                        continue;
                    }
                    other => other?,
                }
                if !same {
                    outcome.changes += 1;
                    // A leg made (again) lost the egress chain bound to its old device.
                    self.applied.remove(router_id);
                }
                rewrites.push((spec.name.clone(), host_mac(&self.host, port_id)));
                wanted.insert(spec.name);
            }
            // A gateway host's SNAT port: where the other hosts send the router's traffic to
            // the external network while this host is the active one.
            if let Some(spec) = snat_leg(state, router) {
                match routers.ensure_port(router_id, &spec).await {
                    Err(neutrino_dataplane::DataPlaneError::NoSuchLink(bridge)) => {
                        outcome
                            .problems
                            .insert(format!("router {router_id} snat"), format!("bridge {bridge} is not there yet"));
                    }
                    other => {
                        other?;
                        wanted.insert(spec.name);
                    }
                }
            }
            // Floating IPs of local ports: the external leg (`qg-`), with a MAC of this host's
            // own, holds them (so this host answers ARP for them), and NAT maps them. The
            // active gateway host's holds the gateway's address too.
            let snat = match role {
                SnatRole::Active { .. } => gateway_v4(router),
                _ => self.snat_address(router_id, router, outcome).await,
            };
            // Traffic to a gateway host leaves by the default route; floating IPs' traffic is
            // marked and leaves by the external leg. Its addresses then hold no subnet (the
            // external subnet is the gateway host's way too), its next hop is on-link.
            let to_gateway_host = matches!(role, SnatRole::Via { .. } | SnatRole::Nowhere);
            let mut external = self.external_leg(state, router_id, router, snat, to_gateway_host, outcome);
            // The active gateway host also holds the gateway's IPv6 addresses: IPv6 to and from
            // the router's subnets is routed through it, without NAT.
            let (gateway_v6, next_hop_v6) = gateway_v6(router);
            let active = matches!(role, SnatRole::Active { .. });
            if let (true, Some((spec, _))) = (active, external.as_mut()) {
                spec.addresses.extend(gateway_v6.iter().copied());
                spec.addresses.sort();
            }
            let mut marked_routes = Vec::new();
            let mut routes = Vec::new();
            if let Some((spec, next_hop)) = &external {
                let before: BTreeSet<ipnet::IpNet> =
                    observed.port(&spec.name).map(|p| p.addresses.iter().copied().collect()).unwrap_or_default();
                match routers.ensure_port(router_id, spec).await {
                    Err(neutrino_dataplane::DataPlaneError::NoSuchLink(bridge)) => {
                        outcome
                            .problems
                            .insert(format!("router {router_id} gateway"), format!("bridge {bridge} is not there yet"));
                    }
                    other => {
                        other?;
                        wanted.insert(spec.name.clone());
                        if let Some(hop) = next_hop {
                            let default = RouterRoute { destination: default_v4(), via: *hop };
                            if to_gateway_host {
                                marked_routes.push(default);
                            } else {
                                routes.push(default);
                            }
                        }
                        // New addresses are announced; the active gateway host announces the
                        // gateway's on every pass of a change (one that stood in for it may
                        // have announced it last).
                        let reclaim = if matches!(role, SnatRole::Active { .. }) { snat } else { None };
                        for added in spec.addresses.iter().filter(|a| !before.contains(a) || Some(a.addr()) == reclaim)
                        {
                            if let std::net::IpAddr::V4(ip) = added.addr() {
                                routers.announce(router_id, &spec.name, ip).await?;
                                outcome.changes += 1;
                            }
                        }
                    }
                }
            }
            // Addresses a leg had and lost (a floating IP gone): their connections go too.
            for port in &observed.ports {
                let kept: Vec<ipnet::IpNet> = match &external {
                    Some((spec, _)) if spec.name == port.name => spec.addresses.clone(),
                    _ => continue,
                };
                // By address: one that only changed its prefix length (/24 to /32) stays.
                for gone in port.addresses.iter().filter(|a| !kept.iter().any(|k| k.addr() == a.addr())) {
                    routers.flush_conntrack(router_id, gone.addr()).await?;
                }
            }
            // Extra routes (a nexthop off the router's subnets is the kernel's to refuse: that
            // route is this router's problem, the others stay).
            for (destination, nexthop) in &router.routes {
                if let (Ok(destination), Ok(via)) = (destination.parse(), nexthop.parse()) {
                    routes.push(RouterRoute { destination, via });
                }
            }
            if let SnatRole::Via { v4, v6 } = role {
                routes.push(RouterRoute { destination: default_v4(), via: *v4 });
                if let Some(v6) = v6 {
                    routes.push(RouterRoute { destination: default_v6(), via: *v6 });
                }
            }
            if let (true, Some(hop), false) = (active, next_hop_v6, gateway_v6.is_empty()) {
                if external.is_some() {
                    routes.push(RouterRoute { destination: default_v6(), via: hop });
                }
            }
            routes.sort();
            routes.dedup_by(|a, b| a.destination == b.destination);
            if observed.routes != routes {
                routers.set_routes(router_id, &routes).await?;
                outcome.changes += 1;
            }
            if observed.marked_routes != marked_routes {
                let device = external.as_ref().map(|(spec, _)| spec.name.as_str()).unwrap_or_default();
                routers.set_marked_routes(router_id, device, &marked_routes).await?;
                outcome.changes += 1;
            }
            let marking = !marked_routes.is_empty();
            let nat = nat_table(external.as_ref().map(|(s, _)| s.name.as_str()), router, snat, marking);
            for port in observed.ports.iter().filter(|p| !wanted.contains(&p.name)) {
                routers.delete_port(router_id, &port.name).await?;
                outcome.changes += 1;
            }
            // Both tables in one nft transaction (one process per router): after the legs the
            // rewrite chains bind to exist.
            let table = rewrite_table(&rewrites);
            let nat_key = format!("{router_id}/nat");
            let nat_stale = self.applied.get(&nat_key) != Some(&nat);
            let rewrite_stale = self.applied.get(router_id) != Some(&table);
            if nat_stale || rewrite_stale {
                let mut batch = Vec::new();
                for (stale, t) in [(rewrite_stale, &table), (nat_stale, &nat)] {
                    if stale {
                        batch.extend(t["nftables"].as_array().cloned().unwrap_or_default());
                    }
                }
                routers.nft(router_id, &json!({ "nftables": batch })).await?;
                self.applied.insert(nat_key, nat);
                self.applied.insert(router_id.to_string(), table);
                outcome.changes += 1;
            }
            // A mapping that went (a floating IP gone, or now another VM's): its connections
            // go too, so the old mapping cannot linger in conntrack. Kept until flushed.
            let pairs: BTreeSet<(String, String)> = match &external {
                Some(_) => router
                    .floating_ips
                    .values()
                    .map(|f| (f.floating_ip_address.clone(), f.fixed_ip_address.clone()))
                    .collect(),
                None => BTreeSet::new(),
            };
            let old = self.nat_pairs.get(router_id).cloned().unwrap_or_default();
            for (fip, _) in old.difference(&pairs) {
                if let Ok(ip) = fip.parse() {
                    routers.flush_conntrack(router_id, ip).await?;
                }
            }
            self.nat_pairs.insert(router_id.to_string(), pairs);
        }
        Ok(())
    }
}

impl RoutingReconciler {
    /// The external leg of a router on this host, when the router has a gateway and this host
    /// floating IPs through it: the leg and the next hop of the default route.
    fn external_leg(
        &self,
        state: &HostState,
        router_id: &str,
        router: &HostRouter,
        snat: Option<std::net::IpAddr>,
        host_only: bool,
        outcome: &mut PassOutcome,
    ) -> Option<(RouterPortSpec, Option<std::net::IpAddr>)> {
        let gateway = router.gateway.as_ref()?;
        if router.floating_ips.is_empty() && router.port_forwardings.is_empty() && snat.is_none() {
            return None;
        }
        let Some(network) = state.networks.get(&gateway.network_id) else {
            outcome.problems.insert(
                format!("router {router_id} gateway"),
                format!("external network {} is not wired on this host", gateway.network_id),
            );
            return None;
        };
        let prefix = gateway
            .addresses
            .iter()
            .filter_map(|a| a.parse::<ipnet::IpNet>().ok())
            .find(|a| a.addr().is_ipv4())
            .map(|a| a.prefix_len())
            .filter(|_| !host_only)
            .unwrap_or(32);
        let mut addresses: Vec<ipnet::IpNet> = router
            .floating_ips
            .values()
            .filter_map(|f| f.floating_ip_address.parse().ok())
            .chain(router.port_forwardings.values().filter_map(|pf| pf.floating_ip_address.parse().ok()))
            .chain(snat)
            .filter_map(|a| ipnet::IpNet::new(a, prefix).ok())
            .collect();
        addresses.sort();
        addresses.dedup();
        let spec = RouterPortSpec {
            name: leg_name("qg-", &gateway.port_id),
            outside: leg_name("rg-", &gateway.port_id),
            bridge: bridge_name(&gateway.network_id),
            mac: host_mac(&self.host, &gateway.port_id),
            mtu: network.mtu,
            addresses,
            isolated: false,
        };
        let next_hop = gateway.next_hops.iter().filter_map(|h| h.parse().ok()).find(std::net::IpAddr::is_ipv4);
        Some((spec, next_hop))
    }
}

/// The IPv4 default route's destination.
fn default_v4() -> ipnet::IpNet {
    ipnet::IpNet::V4(ipnet::Ipv4Net::default())
}

/// The IPv6 default route's destination.
fn default_v6() -> ipnet::IpNet {
    ipnet::IpNet::V6(ipnet::Ipv6Net::default())
}

/// The MTUs of a router's networks on this host (its legs take them).
fn network_mtus(state: &HostState, router: &HostRouter) -> Vec<(String, u32)> {
    let networks =
        router.interfaces.values().map(|i| &i.network_id).chain(router.gateway.iter().map(|g| &g.network_id));
    networks.filter_map(|n| state.networks.get(n).map(|net| (n.clone(), net.mtu))).collect()
}

fn sorted(addresses: &[ipnet::IpNet]) -> Vec<ipnet::IpNet> {
    let mut v = addresses.to_vec();
    v.sort();
    v
}

/// `qr-`/`rq-` and the port id's first 11 characters (Neutron's names, 14 characters).
impl<D: DataPlane> Reconciler<D> for RoutingReconciler {
    fn name(&self) -> &'static str {
        "routing"
    }

    fn pending(&self) -> bool {
        self.liveness.as_ref().is_some_and(|l| l.generation() != self.liveness_seen)
    }

    fn wants_link_event(&self, event: &LinkEvent) -> bool {
        // A bridge made again (its legs' outside ends went with it).
        let name = event.name();
        name.starts_with("brq") || name.starts_with("rq-") || name.starts_with("rg-")
    }

    fn reconcile<'a>(
        &'a mut self,
        dp: &'a D,
        state: &'a HostState,
        scope: &'a Scope,
    ) -> BoxFuture<'a, neutrino_dataplane::Result<PassOutcome>> {
        Box::pin(async move {
            if *scope == Scope::Full {
                self.applied.clear();
                self.snat_addresses.clear();
                self.done.clear();
            }
            self.pass(dp, state, scope).await
        })
    }
}
