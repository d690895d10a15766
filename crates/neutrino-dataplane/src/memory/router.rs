//! Routers in the in-memory model: namespaces by name, each with ports, gateway routes, and a
//! record of the nftables batches applied, the announcements sent and the conntrack flushes.
//!
//! It follows the kernel where reconcilers can tell the difference: only namespaces with the
//! prefix are listed; a port's outside end is a veth link of the host enslaved to the bridge,
//! and deleting either end (or the namespace) deletes the pair; a route needs its gateway on
//! a subnet of an up port, and a deleted port takes the routes through it along. nftables is
//! not modelled: `nft_list` answers what a test set with [`MemoryDataPlane::set_nft_table`].
//! Changes count as mutations; announcements and flushes are recorded instead.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use serde_json::Value;

use super::{MemoryDataPlane, Shared, State};
use crate::{
    DataPlaneError, LinkKind, MacAddr, NamespaceKind, ObservedRouter, ObservedRouterPort, Result, RouterPortSpec,
    RouterRoute, Routers,
};

/// One network namespace.
#[derive(Debug, Default, Clone)]
pub(super) struct Namespace {
    /// By the inside end's name.
    ports: BTreeMap<String, Port>,
    /// Gateway routes: destination → gateway.
    routes: BTreeMap<IpNet, IpAddr>,
    /// Routes of marked traffic (with their rules while there are any).
    marked_routes: BTreeMap<IpNet, IpAddr>,
    /// The port the marked routes go out of (they go with it).
    marked_device: String,
    /// Whether `lo` is up and the sysctls set (not so in one made by someone else).
    prepared: bool,
    nft_batches: Vec<Value>,
    nft_tables: BTreeMap<(String, String), Value>,
    announcements: Vec<(String, Ipv4Addr)>,
    conntrack_flushes: Vec<IpAddr>,
    /// Permanent neighbour entries by device.
    neighbours: BTreeMap<String, BTreeMap<IpAddr, MacAddr>>,
}

#[derive(Debug, Clone)]
struct Port {
    outside: String,
    mac: MacAddr,
    mtu: u32,
    up: bool,
    addresses: BTreeSet<IpNet>,
}

/// [`Routers`] in memory.
#[derive(Default, Clone)]
pub struct MemoryRouters {
    shared: Shared,
    /// What our namespaces' names start with: the prefix and `qrouter-`.
    start: String,
}

impl MemoryRouters {
    pub(super) fn new(shared: Shared, prefix: &str, kind: NamespaceKind) -> Self {
        MemoryRouters { shared, start: format!("{prefix}{}", kind.tag()) }
    }

    fn name(&self, router_id: &str) -> String {
        format!("{}{router_id}", self.start)
    }

    /// Runs `op` on the router's namespace (which must exist) and counts a mutation when it
    /// reports a change.
    fn mutate(&self, router_id: &str, op: impl FnOnce(&mut State, &str) -> Result<bool>) -> Result<()> {
        let name = self.name(router_id);
        self.shared.mutate(|state| {
            if !state.namespaces.contains_key(&name) {
                return Err(DataPlaneError::NoSuchRouter(name.clone()));
            }
            op(state, &name)
        })
    }
}

impl MemoryDataPlane {
    /// Simulates a namespace made by someone else (another agent, `ip netns add`), under its
    /// full name: it holds nothing and is not prepared. Not counted as a mutation.
    pub fn add_external_namespace(&self, name: &str) {
        self.lock().namespaces.entry(name.to_string()).or_default();
    }

    /// The nftables batches applied in the router's namespace, oldest first.
    pub fn nft_batches(&self, router_id: &str) -> Vec<Value> {
        self.namespace(router_id).map(|ns| ns.nft_batches).unwrap_or_default()
    }

    /// What [`Routers::nft_list`] answers for the table from now on (`None`: no such table).
    pub fn set_nft_table(&self, router_id: &str, family: &str, table: &str, listing: Option<Value>) {
        let name = self.routers.name(router_id);
        let mut state = self.lock();
        let Some(ns) = state.namespaces.get_mut(&name) else { return };
        let key = (family.to_string(), table.to_string());
        match listing {
            Some(value) => ns.nft_tables.insert(key, value),
            None => ns.nft_tables.remove(&key),
        };
    }

    /// The gratuitous ARPs sent from the router's namespace: (device, IP), oldest first.
    pub fn announcements(&self, router_id: &str) -> Vec<(String, Ipv4Addr)> {
        self.namespace(router_id).map(|ns| ns.announcements).unwrap_or_default()
    }

    /// The permanent neighbour entries on `device` of the DHCP namespace of `network_id`.
    pub fn dhcp_neighbours(&self, network_id: &str, device: &str) -> BTreeMap<IpAddr, MacAddr> {
        let state = self.lock();
        let ns = state.namespaces.get(&self.dhcp.name(network_id));
        ns.and_then(|ns| ns.neighbours.get(device).cloned()).unwrap_or_default()
    }

    /// The addresses whose conntrack entries were flushed in the router's namespace.
    pub fn conntrack_flushes(&self, router_id: &str) -> Vec<IpAddr> {
        self.namespace(router_id).map(|ns| ns.conntrack_flushes).unwrap_or_default()
    }

    fn namespace(&self, router_id: &str) -> Option<Namespace> {
        self.lock().namespaces.get(&self.routers.name(router_id)).cloned()
    }
}

impl State {
    fn namespace_mut(&mut self, name: &str) -> &mut Namespace {
        self.namespaces.get_mut(name).expect("checked by MemoryRouters::mutate")
    }

    /// A veth end in the host went: its peer inside a router goes too.
    pub(super) fn remove_router_port_by_outside(&mut self, outside: &str) {
        for ns in self.namespaces.values_mut() {
            if ns.ports.values().any(|p| p.outside == outside) {
                ns.ports.retain(|_, p| p.outside != outside);
                ns.drop_unreachable_routes();
            }
        }
    }

    fn ensure_router_port(&mut self, ns_name: &str, spec: &RouterPortSpec) -> Result<bool> {
        let bridge = self.require(&spec.bridge)?;
        if bridge.kind != LinkKind::Bridge {
            return Err(DataPlaneError::Netlink(format!("attach to {} {}: not a bridge", spec.bridge, spec.outside)));
        }
        let mut changed = false;
        let outside_ok = self.link(&spec.outside).is_some_and(|l| l.kind == LinkKind::Veth);
        let ns = self.namespace_mut(ns_name);
        let paired = ns.ports.get(&spec.name).is_some_and(|p| p.outside == spec.outside);
        if !(paired && outside_ok) {
            // Recreate the pair, as the kernel implementation does with a broken one.
            if let Some(old) = ns.ports.remove(&spec.name) {
                self.remove_link(&old.outside);
            }
            self.remove_link(&spec.outside);
            self.add_link(&spec.outside, LinkKind::Veth, spec.mtu, false);
            let new = Port {
                outside: spec.outside.clone(),
                mac: spec.mac,
                mtu: spec.mtu,
                up: true,
                addresses: BTreeSet::new(),
            };
            self.namespace_mut(ns_name).ports.insert(spec.name.clone(), new);
            changed = true;
        }
        let ns = self.namespace_mut(ns_name);
        let port = ns.ports.get_mut(&spec.name).expect("inserted above");
        let addresses: BTreeSet<IpNet> = spec.addresses.iter().copied().collect();
        if port.mac != spec.mac || port.mtu != spec.mtu || !port.up || port.addresses != addresses {
            *port = Port { outside: spec.outside.clone(), mac: spec.mac, mtu: spec.mtu, up: true, addresses };
            ns.drop_unreachable_routes();
            changed = true;
        }
        let outside = self.require(&spec.outside)?;
        let isolated = outside.isolated && outside.master.as_deref() == Some(spec.bridge.as_str());
        if outside.mtu != spec.mtu
            || outside.master.as_deref() != Some(spec.bridge.as_str())
            || !outside.up
            || isolated != spec.isolated
        {
            self.update(&spec.outside, |l| {
                l.mtu = spec.mtu;
                l.master = Some(spec.bridge.clone());
                l.up = true;
                l.isolated = spec.isolated;
            });
            changed = true;
        }
        Ok(changed)
    }

    fn delete_router_port(&mut self, ns_name: &str, name: &str) -> bool {
        let Some(ns) = self.namespaces.get_mut(ns_name) else { return false };
        let Some(port) = ns.ports.remove(name) else { return false };
        ns.drop_unreachable_routes();
        self.remove_link(&port.outside);
        true
    }
}

impl Namespace {
    /// Whether `ip` is on the subnet of an up port (else the kernel answers ENETUNREACH).
    fn reaches(&self, ip: IpAddr) -> bool {
        self.ports.values().any(|p| p.up && p.addresses.iter().any(|net| net.contains(&ip)))
    }

    fn drop_unreachable_routes(&mut self) {
        let routes = std::mem::take(&mut self.routes);
        self.routes = routes.into_iter().filter(|(_, via)| self.reaches(*via)).collect();
        if !self.ports.get(&self.marked_device).is_some_and(|p| p.up) {
            self.marked_routes.clear();
        }
    }

    fn set_routes(&mut self, routes: &[RouterRoute], marked: bool) -> Result<bool> {
        let want = crate::router::desired_routes(routes)?;
        if let Some((destination, via)) = want.iter().find(|(_, via)| !marked && !self.reaches(**via)) {
            return Err(DataPlaneError::Netlink(format!("add route {destination} via {via}: Network is unreachable")));
        }
        let table = if marked { &mut self.marked_routes } else { &mut self.routes };
        if *table == want {
            return Ok(false);
        }
        *table = want;
        Ok(true)
    }

    fn observed(&self) -> ObservedRouter {
        let ports = self
            .ports
            .iter()
            .map(|(name, p)| ObservedRouterPort {
                name: name.clone(),
                mac: p.mac,
                mtu: p.mtu,
                up: p.up,
                addresses: p.addresses.iter().copied().collect(),
            })
            .collect();
        let listed = |table: &BTreeMap<IpNet, IpAddr>| {
            table.iter().map(|(destination, via)| RouterRoute { destination: *destination, via: *via }).collect()
        };
        ObservedRouter { ports, routes: listed(&self.routes), marked_routes: listed(&self.marked_routes) }
    }
}

impl Routers for MemoryRouters {
    async fn list(&self) -> Result<Vec<String>> {
        let mut state = self.shared.lock();
        state.reads.routers += 1;
        let ids =
            state.namespaces.keys().filter_map(|n| n.strip_prefix(self.start.as_str())).filter(|id| !id.is_empty());
        Ok(ids.map(String::from).collect())
    }

    async fn ensure(&self, router_id: &str) -> Result<()> {
        let name = self.name(router_id);
        self.shared.mutate(|state| {
            let ns = state.namespaces.entry(name).or_default();
            Ok(!std::mem::replace(&mut ns.prepared, true))
        })
    }

    async fn delete(&self, router_id: &str) -> Result<()> {
        let name = self.name(router_id);
        self.shared.mutate(|state| {
            let Some(ns) = state.namespaces.remove(&name) else { return Ok(false) };
            for port in ns.ports.values() {
                state.remove_link(&port.outside);
            }
            Ok(true)
        })
    }

    async fn observe(&self, router_id: &str) -> Result<Option<ObservedRouter>> {
        let mut state = self.shared.lock();
        state.reads.routers += 1;
        Ok(state.namespaces.get(&self.name(router_id)).map(Namespace::observed))
    }

    async fn ensure_port(&self, router_id: &str, spec: &RouterPortSpec) -> Result<()> {
        crate::router::check_port_names(spec)?;
        self.mutate(router_id, |state, ns| state.ensure_router_port(ns, spec))
    }

    async fn delete_port(&self, router_id: &str, name: &str) -> Result<()> {
        let ns = self.name(router_id);
        self.shared.mutate(|state| Ok(state.delete_router_port(&ns, name)))
    }

    async fn set_routes(&self, router_id: &str, routes: &[RouterRoute]) -> Result<()> {
        self.mutate(router_id, |state, ns| state.namespace_mut(ns).set_routes(routes, false))
    }

    async fn set_marked_routes(&self, router_id: &str, device: &str, routes: &[RouterRoute]) -> Result<()> {
        self.mutate(router_id, |state, ns| {
            let ns = state.namespace_mut(ns);
            if !routes.is_empty() && !ns.ports.get(device).is_some_and(|p| p.up) {
                return Err(DataPlaneError::NoSuchLink(device.to_string()));
            }
            let moved = std::mem::replace(&mut ns.marked_device, device.to_string()) != device;
            Ok(ns.set_routes(routes, true)? || (moved && !routes.is_empty()))
        })
    }

    async fn nft(&self, router_id: &str, batch: &Value) -> Result<()> {
        self.mutate(router_id, |state, ns| {
            state.namespace_mut(ns).nft_batches.push(batch.clone());
            Ok(true)
        })
    }

    async fn nft_list(&self, router_id: &str, family: &str, table: &str) -> Result<Option<Value>> {
        let mut state = self.shared.lock();
        state.reads.routers += 1;
        let Some(ns) = state.namespaces.get(&self.name(router_id)) else { return Ok(None) };
        Ok(ns.nft_tables.get(&(family.to_string(), table.to_string())).cloned())
    }

    async fn announce(&self, router_id: &str, device: &str, ip: Ipv4Addr) -> Result<()> {
        self.mutate(router_id, |state, ns| {
            let ns = state.namespace_mut(ns);
            if !ns.ports.contains_key(device) {
                return Err(DataPlaneError::NoSuchLink(device.to_string()));
            }
            ns.announcements.push((device.to_string(), ip));
            Ok(false)
        })
    }

    async fn flush_conntrack(&self, router_id: &str, ip: IpAddr) -> Result<()> {
        if let Some(ns) = self.shared.lock().namespaces.get_mut(&self.name(router_id)) {
            ns.conntrack_flushes.push(ip);
        }
        Ok(())
    }

    async fn set_neighbours(&self, router_id: &str, device: &str, entries: &[(IpAddr, MacAddr)]) -> Result<()> {
        let want: BTreeMap<IpAddr, MacAddr> = entries.iter().copied().collect();
        self.mutate(router_id, |state, name| {
            let ns = state.namespace_mut(name);
            if !ns.ports.contains_key(device) {
                return Err(DataPlaneError::NoSuchLink(device.to_string()));
            }
            let have = ns.neighbours.entry(device.to_string()).or_default();
            Ok(std::mem::replace(have, want) != *have)
        })
    }

    async fn in_namespace<T: Send + 'static>(
        &self,
        _router_id: &str,
        _f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> Result<T> {
        Err(DataPlaneError::Unsupported("sockets in the in-memory model".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DataPlane, Links};

    fn spec(addresses: &[&str]) -> RouterPortSpec {
        RouterPortSpec {
            name: "qr-1".into(),
            outside: "rq-1".into(),
            bridge: "brq1".into(),
            mac: MacAddr([0xfa, 0x16, 0x3e, 0, 0, 1]),
            mtu: 1450,
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
            isolated: false,
        }
    }

    async fn router_with_port(dp: &MemoryDataPlane) {
        dp.links().ensure_bridge("brq1", None).await.unwrap();
        dp.routers().ensure("r1").await.unwrap();
        dp.routers().ensure_port("r1", &spec(&["192.0.2.1/24"])).await.unwrap();
    }

    #[tokio::test]
    async fn only_namespaces_with_the_prefix_are_routers() {
        let dp = MemoryDataPlane::with_namespace_prefix("host1-");
        dp.add_external_namespace("qrouter-r9");
        dp.add_external_namespace("host2-qrouter-r8");
        dp.add_external_namespace("host1-qrouter-r7");
        dp.routers().ensure("r1").await.unwrap();
        assert_eq!(dp.routers().list().await.unwrap(), vec!["r1".to_string(), "r7".to_string()]);
        // One made by someone else is prepared by ensure: that is a change.
        dp.routers().ensure("r7").await.unwrap();
        assert_eq!(dp.mutations(), 2);
        assert_eq!(dp.reads().routers, 1);
    }

    #[tokio::test]
    async fn deleting_the_outside_end_deletes_the_port_and_its_routes() {
        let dp = MemoryDataPlane::new();
        router_with_port(&dp).await;
        let via = RouterRoute { destination: "203.0.113.0/24".parse().unwrap(), via: "192.0.2.254".parse().unwrap() };
        dp.routers().set_routes("r1", &[via]).await.unwrap();
        dp.links().delete("rq-1").await.unwrap();
        let observed = dp.routers().observe("r1").await.unwrap().unwrap();
        assert!(observed.ports.is_empty() && observed.routes.is_empty(), "{observed:?}");
    }

    #[tokio::test]
    async fn deleting_the_bridge_releases_the_outside_end() {
        let dp = MemoryDataPlane::new();
        router_with_port(&dp).await;
        dp.links().delete("brq1").await.unwrap();
        assert_eq!(dp.snapshot().link("rq-1").unwrap().master, None);
        dp.links().ensure_bridge("brq1", None).await.unwrap();
        let before = dp.mutations();
        dp.routers().ensure_port("r1", &spec(&["192.0.2.1/24"])).await.unwrap();
        assert_eq!(dp.mutations(), before + 1, "re-enslaved");
        assert_eq!(dp.snapshot().link("rq-1").unwrap().master.as_deref(), Some("brq1"));
    }

    #[tokio::test]
    async fn nft_announcements_and_flushes_are_recorded() {
        let dp = MemoryDataPlane::new();
        router_with_port(&dp).await;
        let batch = serde_json::json!({"nftables": [{"add": {"table": {"family": "ip", "name": "neutrino_nat"}}}]});
        dp.routers().nft("r1", &batch).await.unwrap();
        assert_eq!(dp.nft_batches("r1"), vec![batch.clone()]);
        assert_eq!(dp.routers().nft_list("r1", "ip", "neutrino_nat").await.unwrap(), None, "not modelled");
        dp.set_nft_table("r1", "ip", "neutrino_nat", Some(batch.clone()));
        assert_eq!(dp.routers().nft_list("r1", "ip", "neutrino_nat").await.unwrap(), Some(batch));

        let mutations = dp.mutations();
        let ip = Ipv4Addr::new(192, 0, 2, 1);
        dp.routers().announce("r1", "qr-1", ip).await.unwrap();
        assert!(matches!(dp.routers().announce("r1", "qr-9", ip).await, Err(DataPlaneError::NoSuchLink(_))));
        dp.routers().flush_conntrack("r1", ip.into()).await.unwrap();
        assert_eq!(dp.announcements("r1"), vec![("qr-1".to_string(), ip)]);
        assert_eq!(dp.conntrack_flushes("r1"), vec![IpAddr::from(ip)]);
        assert_eq!(dp.mutations(), mutations, "packets and flushes are not state");
    }
}
