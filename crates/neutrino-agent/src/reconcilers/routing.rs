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
//! Level-triggered and restart-safe: every pass compares the namespaces, legs and rewrite
//! tables the kernel has with what the host's view wants and changes only the difference; a
//! router no longer wanted (also one deleted while the agent was down) is removed.

use super::{PassOutcome, Reconciler, Scope};
use crate::gateway_liveness::GatewayLiveness;
use futures::future::BoxFuture;
use neutrino_api::agent::{HostRouter, HostState};
use neutrino_dataplane::{DataPlane, LinkEvent, MacAddr, RouterPortSpec, RouterRoute, Routers};
use neutrino_domain::naming::bridge_name;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

/// The table of the source-MAC rewrite in each router namespace.
const REWRITE_TABLE: &str = "neutrino_routing";
/// The table of floating IP NAT in each router namespace.
const NAT_TABLE: &str = "neutrino_nat";

pub struct RoutingReconciler {
    host: String,
    /// The rewrite tables applied, per router (what the last pass left).
    applied: BTreeMap<String, Value>,
    /// With distributed SNAT: where this host's own external addresses come from.
    snat: Option<crate::client::ServerClient>,
    /// Each router as its last clean pass left it, with its networks' MTUs.
    done: BTreeMap<String, (HostRouter, Vec<(String, u32)>, SnatRole)>,
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

/// What this host does for a router's centralized SNAT (its VMs without a floating IP, through
/// a gateway host).
#[derive(Debug, Clone, PartialEq, Eq)]
enum SnatRole {
    /// Nothing: the router has no gateway that SNATs, or no gateway hosts, or this host SNATs
    /// its own VMs (distributed SNAT).
    None,
    /// This host is the first alive gateway host: it holds the gateway's address and SNATs
    /// the router's subnets to it. `alive`: the liveness of all of them (a change makes it
    /// announce the address again, to take it back from one that stood in).
    Active { alive: Vec<bool> },
    /// Another host is: the router's default route goes to its SNAT port's address.
    Via(std::net::IpAddr),
    /// No gateway host is alive.
    Nowhere,
}

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

    /// This host's part in the router's centralized SNAT, and the underlay addresses of its
    /// other gateway hosts (to probe).
    fn snat_role(&self, state: &HostState, router: &HostRouter) -> (SnatRole, BTreeSet<Ipv4Addr>) {
        let mut targets = BTreeSet::new();
        let snats = router.gateway.as_ref().is_some_and(|g| g.enable_snat);
        if !snats || router.snat_gateways.is_empty() || self.snat.is_some() {
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
            let remote = state.remote_ports.get(port_id);
            let vtep = remote.and_then(|r| r.tunnel_ip.parse::<Ipv4Addr>().ok());
            let address = remote.and_then(|r| r.ip_addresses.iter().find_map(|a| a.parse::<Ipv4Addr>().ok()));
            let (Some(vtep), Some(address)) = (vtep, address) else {
                alive.push(false);
                continue;
            };
            targets.insert(vtep);
            let up = self.liveness.as_ref().is_none_or(|l| l.is_alive(vtep));
            alive.push(up);
            if up {
                first.get_or_insert(SnatRole::Via(address.into()));
            }
        }
        let role = match first {
            Some(SnatRole::Active { .. }) => SnatRole::Active { alive },
            Some(other) => other,
            None => SnatRole::Nowhere,
        };
        (role, targets)
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
            let (role, probe) = self.snat_role(state, router);
            targets.extend(probe);
            let seen = (router.clone(), network_mtus(state, router), role.clone());
            if quiet && self.done.get(router_id) == Some(&seen) {
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
            let to_gateway_host = matches!(role, SnatRole::Via(_) | SnatRole::Nowhere);
            let external = self.external_leg(state, router_id, router, snat, to_gateway_host, outcome);
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
                for gone in port.addresses.iter().filter(|a| !kept.contains(a)) {
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
            if let SnatRole::Via(address) = role {
                routes.push(RouterRoute { destination: default_v4(), via: *address });
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
        };
        let next_hop = gateway.next_hops.iter().filter_map(|h| h.parse().ok()).find(std::net::IpAddr::is_ipv4);
        Some((spec, next_hop))
    }
}

/// The NAT of a router namespace (table `ip neutrino_nat`, replaced whole in one
/// transaction): each floating IP of this host DNATs to its fixed IP and its fixed IP SNATs to
/// it out of the external leg; with distributed SNAT (`snat`: this host's own address) the
/// router's subnets SNAT to that address after them; nothing else leaves by that leg.
fn nat_table(external: Option<&str>, router: &HostRouter, snat: Option<std::net::IpAddr>, marking: bool) -> Value {
    let table = json!({"family": "ip", "name": NAT_TABLE});
    let mut batch = vec![json!({"add": {"table": table}}), json!({"delete": {"table": table}})];
    let Some(leg) = external else {
        return json!({ "nftables": batch });
    };
    batch.push(json!({"add": {"table": table}}));
    for (name, kind, hook, prio) in [
        ("prerouting", "nat", "prerouting", -100),
        ("postrouting", "nat", "postrouting", 100),
        ("forward", "filter", "forward", 0),
    ] {
        batch.push(json!({"add": {"chain": {"family": "ip", "table": NAT_TABLE, "name": name,
            "type": kind, "hook": hook, "prio": prio, "policy": "accept"}}}));
    }
    let rule = |chain: &str, expr: Vec<Value>| json!({"add": {"rule": {"family": "ip", "table": NAT_TABLE, "chain": chain, "expr": expr}}});
    let addr = |field: &str, value: &str| json!({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": field}}, "right": value}});
    let oif = json!({"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": leg}});
    if marking {
        // What the floating IPs send (and the replies of forwarded connections) is routed by
        // the marked table, out of the external leg; the rest goes to a gateway host.
        batch.push(json!({"add": {"chain": {"family": "ip", "table": NAT_TABLE, "name": "mark",
            "type": "filter", "hook": "prerouting", "prio": -150, "policy": "accept"}}}));
        let not_external = json!({"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": leg}});
        let set = json!({"mangle": {"key": {"meta": {"key": "mark"}}, "value": neutrino_dataplane::ROUTE_MARK}});
        for f in router.floating_ips.values() {
            batch.push(rule("mark", vec![not_external.clone(), addr("saddr", &f.fixed_ip_address), set.clone()]));
        }
        let forwarded = json!({"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}});
        batch.push(rule("mark", vec![not_external, forwarded, set]));
    }
    for f in router.floating_ips.values() {
        batch.push(rule(
            "prerouting",
            vec![addr("daddr", &f.floating_ip_address), json!({"dnat": {"addr": f.fixed_ip_address}})],
        ));
        batch.push(rule(
            "postrouting",
            vec![oif.clone(), addr("saddr", &f.fixed_ip_address), json!({"snat": {"addr": f.floating_ip_address}})],
        ));
        batch.push(rule("forward", vec![oif.clone(), addr("saddr", &f.fixed_ip_address), json!({"accept": null})]));
    }
    // Port forwardings: the floating IP's external ports to an internal address's; a range
    // goes port by port (as Neutron maps ranges of one size, or onto one internal port).
    for pf in router.port_forwardings.values() {
        let ported = ["tcp", "udp", "sctp", "dccp"].contains(&pf.protocol.as_str());
        if !ported || pf.external.1 - pf.external.0 > 1000 {
            continue;
        }
        for (i, external) in (pf.external.0..=pf.external.1).enumerate() {
            let internal = if pf.internal.0 == pf.internal.1 { pf.internal.0 } else { pf.internal.0 + i as u32 };
            let dport = json!({"match": {"op": "==", "left": {"payload": {"protocol": pf.protocol, "field": "dport"}},
                "right": external}});
            batch.push(rule(
                "prerouting",
                vec![
                    addr("daddr", &pf.floating_ip_address),
                    dport,
                    json!({"dnat": {"addr": pf.internal_ip_address, "port": internal}}),
                ],
            ));
        }
    }
    // Replies of forwarded connections leave by the external leg too.
    batch.push(rule(
        "forward",
        vec![
            oif.clone(),
            json!({"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}}),
            json!({"accept": null}),
        ],
    ));
    if let Some(own) = snat {
        let subnets: BTreeSet<ipnet::IpNet> = router
            .interfaces
            .values()
            .flat_map(|i| i.addresses.iter())
            .filter_map(|a| a.parse::<ipnet::IpNet>().ok())
            .filter(|a| a.addr().is_ipv4())
            .map(|a| a.trunc())
            .collect();
        for subnet in subnets {
            let from = json!({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                "right": {"prefix": {"addr": subnet.addr().to_string(), "len": subnet.prefix_len()}}}});
            batch
                .push(rule("postrouting", vec![oif.clone(), from.clone(), json!({"snat": {"addr": own.to_string()}})]));
            batch.push(rule("forward", vec![oif.clone(), from, json!({"accept": null})]));
        }
    }
    batch.push(rule("forward", vec![oif, json!({"drop": null})]));
    json!({ "nftables": batch })
}

/// The IPv4 default route's destination.
fn default_v4() -> ipnet::IpNet {
    ipnet::IpNet::V4(ipnet::Ipv4Net::default())
}

/// The gateway's IPv4 address (the address of the router's centralized SNAT).
fn gateway_v4(router: &HostRouter) -> Option<std::net::IpAddr> {
    let gateway = router.gateway.as_ref()?;
    gateway.addresses.iter().filter_map(|a| a.parse::<ipnet::IpNet>().ok()).map(|a| a.addr()).find(|a| a.is_ipv4())
}

/// The leg of this host's centralized SNAT port of the router, when it is one of its gateway
/// hosts: `sg-<port>` inside with the port's MAC and address (a /32: the subnet is the
/// interface's), `tap<port>` outside, which L2 plugs and reports as the port's.
fn snat_leg(state: &HostState, router: &HostRouter) -> Option<RouterPortSpec> {
    let (port_id, port) = router.snat_gateways.iter().find_map(|id| Some((id, state.local_ports.get(id)?)))?;
    let network = state.networks.get(&port.network_id)?;
    let address: Ipv4Addr = port.ip_addresses.iter().find_map(|a| a.parse().ok())?;
    Some(RouterPortSpec {
        name: leg_name("sg-", port_id),
        outside: neutrino_domain::naming::tap_name(port_id),
        bridge: bridge_name(&port.network_id),
        mac: port.mac_address.parse().ok()?,
        mtu: network.mtu,
        addresses: vec![ipnet::IpNet::V4(ipnet::Ipv4Net::new(address, 32).ok()?)],
    })
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
fn leg_name(prefix: &str, port_id: &str) -> String {
    format!("{prefix}{}", &port_id[..port_id.len().min(11)])
}

/// The source MAC this host's copy of a router interface sends with: `fa:16:3f` and three
/// bytes of a hash of the host and the port (DVR's `dvr_base_mac` prefix).
pub fn host_mac(host: &str, port_id: &str) -> MacAddr {
    // FNV-1a: stable across builds and platforms.
    let mut h: u32 = 0x811c_9dc5;
    for b in host.bytes().chain([0]).chain(port_id.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let [a, b, c, _] = h.to_be_bytes();
    MacAddr([0xfa, 0x16, 0x3f, a, b, c])
}

/// The rewrite table of one router namespace, replaced whole in one transaction: per leg, an
/// egress chain that gives every frame but ARP the host's source MAC.
fn rewrite_table(legs: &[(String, MacAddr)]) -> Value {
    let table = json!({"family": "netdev", "name": REWRITE_TABLE});
    let mut batch = vec![json!({"add": {"table": table}}), json!({"delete": {"table": table}})];
    batch.push(json!({"add": {"table": table}}));
    for (device, mac) in legs {
        batch.push(json!({"add": {"chain": {
            "family": "netdev", "table": REWRITE_TABLE, "name": device,
            "type": "filter", "hook": "egress", "dev": device, "prio": 0, "policy": "accept"
        }}}));
        batch.push(json!({"add": {"rule": {
            "family": "netdev", "table": REWRITE_TABLE, "chain": device,
            "expr": [
                {"match": {"op": "!=", "left": {"payload": {"protocol": "ether", "field": "type"}}, "right": "arp"}},
                {"mangle": {"key": {"payload": {"protocol": "ether", "field": "saddr"}}, "value": mac.to_string()}}
            ]
        }}}));
    }
    json!({ "nftables": batch })
}

impl<D: DataPlane> Reconciler<D> for RoutingReconciler {
    fn name(&self) -> &'static str {
        "routing"
    }

    fn pending(&self) -> bool {
        self.liveness.as_ref().is_some_and(|l| l.generation() != self.liveness_seen)
    }

    fn wants_link_event(&self, event: &LinkEvent) -> bool {
        // A bridge made again (its legs' outside ends went with it).
        let name = match event {
            LinkEvent::Added(n) | LinkEvent::Removed(n) => n,
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use neutrino_api::agent::{HostNetwork, HostRouter, RouterInterface};
    use neutrino_dataplane::memory::MemoryDataPlane;
    use neutrino_dataplane::Links;

    fn state(addresses: &[&str]) -> HostState {
        let mut s = HostState::default();
        s.networks.insert(
            "net-a".into(),
            HostNetwork { network_type: "vxlan".into(), physical_network: None, segmentation_id: Some(7), mtu: 1450 },
        );
        let mut r = HostRouter::default();
        r.interfaces.insert(
            "port-aaaaaaaaaaaa".into(),
            RouterInterface {
                network_id: "net-a".into(),
                mac_address: "fa:16:3e:00:00:01".into(),
                addresses: addresses.iter().map(|a| a.to_string()).collect(),
            },
        );
        s.routers.insert("r1".into(), r);
        s
    }

    #[tokio::test]
    async fn routers_converge_and_a_second_pass_changes_nothing() {
        let dp = MemoryDataPlane::new();
        dp.links().ensure_bridge(&bridge_name("net-a"), None).await.unwrap();
        let mut r = RoutingReconciler::new("h1", None, None);
        let s = state(&["192.0.2.1/24"]);
        let first = Reconciler::<MemoryDataPlane>::reconcile(&mut r, &dp, &s, &Scope::Full).await.unwrap();
        assert!(first.changes > 0);
        let observed = dp.routers().observe("r1").await.unwrap().unwrap();
        assert_eq!(observed.ports.len(), 1);
        assert_eq!(observed.ports[0].addresses, vec!["192.0.2.1/24".parse::<ipnet::IpNet>().unwrap()]);
        let before = dp.reads().routers;
        let again = Reconciler::<MemoryDataPlane>::reconcile(&mut r, &dp, &s, &Scope::Changes(vec![])).await.unwrap();
        assert_eq!(again.changes, 0);
        assert_eq!(dp.reads().routers - before, 1, "an unchanged router is not read again (only the namespace list)");
        // A changed router is.
        let moved = state(&["192.0.2.1/24", "192.0.2.9/24"]);
        let changed =
            Reconciler::<MemoryDataPlane>::reconcile(&mut r, &dp, &moved, &Scope::Changes(vec![])).await.unwrap();
        assert!(changed.changes > 0);
        let addresses = &dp.routers().observe("r1").await.unwrap().unwrap().ports[0].addresses;
        assert_eq!(addresses.len(), 2);
        // The router goes: its namespace goes.
        let gone = HostState::default();
        Reconciler::<MemoryDataPlane>::reconcile(&mut r, &dp, &gone, &Scope::Changes(vec![])).await.unwrap();
        assert!(dp.routers().list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn centralized_snat_goes_to_the_first_alive_gateway_host_and_fails_over() {
        use neutrino_api::agent::{LocalPort, RemotePort, RouterGateway};
        let dp = MemoryDataPlane::new();
        for net in ["net-a", "ext"] {
            dp.links().ensure_bridge(&bridge_name(net), None).await.unwrap();
        }
        let mut s = state(&["192.0.2.1/24"]);
        let flat =
            HostNetwork { network_type: "flat".into(), physical_network: None, segmentation_id: None, mtu: 1500 };
        s.networks.insert("ext".into(), flat);
        let router = s.routers.get_mut("r1").unwrap();
        router.gateway = Some(RouterGateway {
            port_id: "gwport-aaaaaaa".into(),
            network_id: "ext".into(),
            addresses: vec!["203.0.113.10/24".into()],
            next_hops: vec!["203.0.113.1".into()],
            enable_snat: true,
        });
        // The first gateway host is another; the second is this one.
        router.snat_gateways = vec!["sg-remote-aaaa".into(), "sg-local-bbbbb".into()];
        s.remote_ports.insert(
            "sg-remote-aaaa".into(),
            RemotePort {
                network_id: "net-a".into(),
                mac_address: "fa:16:3e:00:00:0a".into(),
                ip_addresses: vec!["192.0.2.5".into()],
                tunnel_ip: "198.51.100.12".into(),
            },
        );
        s.local_ports.insert(
            "sg-local-bbbbb".into(),
            LocalPort {
                network_id: "net-a".into(),
                mac_address: "fa:16:3e:00:00:0b".into(),
                ip_addresses: vec!["192.0.2.6".into()],
                port_security_enabled: false,
                ..LocalPort::default()
            },
        );
        let liveness = GatewayLiveness::new(std::time::Duration::from_secs(1), 3, Arc::new(tokio::sync::Notify::new()));
        let mut r = RoutingReconciler::new("h2", None, Some(liveness.clone()));
        Reconciler::<MemoryDataPlane>::reconcile(&mut r, &dp, &s, &Scope::Full).await.unwrap();
        let observed = dp.routers().observe("r1").await.unwrap().unwrap();
        let default = |via: &str| RouterRoute { destination: default_v4(), via: via.parse().unwrap() };
        assert_eq!(observed.routes, vec![default("192.0.2.5")], "through the first gateway host");
        let names: Vec<&str> = observed.ports.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["qr-port-aaaaaa", "sg-sg-local-bb"], "its own SNAT leg, no external leg");
        assert!(!Reconciler::<MemoryDataPlane>::pending(&r));
        // The first one dies: this host takes the gateway's address and announces it.
        liveness.set("198.51.100.12".parse().unwrap(), false);
        assert!(Reconciler::<MemoryDataPlane>::pending(&r));
        Reconciler::<MemoryDataPlane>::reconcile(&mut r, &dp, &s, &Scope::Changes(vec![])).await.unwrap();
        let observed = dp.routers().observe("r1").await.unwrap().unwrap();
        assert_eq!(observed.routes, vec![default("203.0.113.1")]);
        let external = observed.port("qg-gwport-aaaa").expect("the external leg");
        assert_eq!(external.addresses, vec!["203.0.113.10/24".parse::<ipnet::IpNet>().unwrap()]);
        assert!(dp.announcements("r1").contains(&("qg-gwport-aaaa".into(), "203.0.113.10".parse().unwrap())));
        // It comes back: the traffic goes to it again, and this host lets the address go.
        liveness.set("198.51.100.12".parse().unwrap(), true);
        Reconciler::<MemoryDataPlane>::reconcile(&mut r, &dp, &s, &Scope::Changes(vec![])).await.unwrap();
        let observed = dp.routers().observe("r1").await.unwrap().unwrap();
        assert_eq!(observed.routes, vec![default("192.0.2.5")]);
        assert!(observed.port("qg-gwport-aaaa").is_none());
    }

    #[test]
    fn host_macs_differ_per_host_and_keep_the_dvr_prefix() {
        let a = host_mac("h1", "p");
        assert_eq!(&a.0[..3], &[0xfa, 0x16, 0x3f]);
        assert_ne!(a, host_mac("h2", "p"));
        assert_eq!(a, host_mac("h1", "p"));
    }
}
