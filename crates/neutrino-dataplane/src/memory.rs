//! An in-memory model of the kernel, for unit tests of reconcilers.
//!
//! It follows the kernel where reconcilers can tell the difference: FDB entries are keyed by
//! device and MAC (an add with another destination replaces it), neighbours by device and IP,
//! deleting a link takes its entries with it and un-enslaves the ports of a deleted bridge,
//! deleting a parent deletes its VLAN sub-interfaces, and [`DataPlane::observe`] and the
//! handles' lists apply the same filters as the kernel implementation. It can play a kernel
//! without 802.1Q support ([`MemoryDataPlane::refuse_vlans`]). Every call that changes
//! something counts as one mutation, so a test can assert that a converged reconcile does
//! nothing; every read counts too ([`MemoryDataPlane::reads`]), so a test can assert what a
//! pass looked at.
//!
//! Routers ([`MemoryRouters`]) are namespaces with ports, routes and a record of what was
//! applied or sent; a port's outside end is a link of the host, enslaved to its bridge.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

mod router;
pub use router::MemoryRouters;

use crate::{
    DataPlane, DataPlaneError, Fdb, FdbEntry, Link, LinkEvent, LinkKind, Links, MacAddr, NeighEntry, Neighbours,
    Observed, Result, VlanSpec, VxlanSpec,
};

/// MTU of a new bridge without ports, and of external links.
const DEFAULT_MTU: u32 = 1500;
/// MTU the kernel picks for a VXLAN device on a 1500-byte underlay (minus 50 bytes).
const VXLAN_MTU: u32 = 1450;
/// Capacity of each event channel, as in the kernel implementation.
const EVENT_QUEUE: usize = 1024;

/// [`DataPlane`] that keeps its state in memory.
#[derive(Default)]
pub struct MemoryDataPlane {
    links: MemoryLinks,
    fdb: MemoryFdb,
    neighbours: MemoryNeighbours,
    firewall: MemoryFirewall,
    routers: MemoryRouters,
    dhcp: MemoryRouters,
}

/// The firewall's objects, as [`neutrino_domain::firewall::apply_to`] leaves them.
#[derive(Default, Clone)]
pub struct MemoryFirewall {
    ruleset: Arc<std::sync::Mutex<neutrino_domain::firewall::ir::ObservedRuleset>>,
    /// Plans applied (each one transaction).
    pub applies: Arc<std::sync::atomic::AtomicUsize>,
}

impl MemoryFirewall {
    pub fn ruleset(&self) -> neutrino_domain::firewall::ir::ObservedRuleset {
        self.ruleset.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl crate::Firewall for MemoryFirewall {
    async fn prepare(&self) -> Result<()> {
        Ok(())
    }

    async fn observe(&self) -> Result<neutrino_domain::firewall::ir::ObservedRuleset> {
        Ok(self.ruleset())
    }

    async fn apply(&self, ops: &[neutrino_domain::firewall::Op]) -> Result<()> {
        let mut r = self.ruleset.lock().unwrap_or_else(|p| p.into_inner());
        neutrino_domain::firewall::apply_to(&mut r, ops);
        self.applies.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// The state every handle of one [`MemoryDataPlane`] shares.
#[derive(Default, Clone)]
struct Shared(Arc<Mutex<State>>);

#[derive(Default, Clone)]
pub struct MemoryLinks(Shared);

#[derive(Default, Clone)]
pub struct MemoryFdb(Shared);

#[derive(Default, Clone)]
pub struct MemoryNeighbours(Shared);

/// What a pass read, by kind of read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reads {
    /// Whole reads ([`DataPlane::observe`]).
    pub observes: usize,
    /// Single links read by name.
    pub links: usize,
    /// Lists of one device's FDB or neighbour entries.
    pub entry_lists: usize,
    /// Router reads: lists of namespaces, observed routers, listed nftables tables.
    pub routers: usize,
}

#[derive(Default)]
struct State {
    links: Vec<Link>,
    /// All FDB entries, including those `observe` hides (zero MAC, non-VXLAN devices).
    fdb: BTreeSet<FdbEntry>,
    /// All neighbour entries, including those on non-VXLAN devices.
    neighbours: BTreeSet<NeighEntry>,
    /// UDP port of each VXLAN device (not part of [`LinkKind`], but a mismatch recreates).
    vxlan_ports: HashMap<String, u16>,
    /// Why VLAN creation fails, when playing a kernel without 802.1Q.
    vlan_refusal: Option<String>,
    last_index: u32,
    mutations: usize,
    reads: Reads,
    subscribers: Vec<mpsc::Sender<LinkEvent>>,
    /// Network namespaces by name (router namespaces, and others for the filters to skip).
    namespaces: std::collections::BTreeMap<String, router::Namespace>,
}

impl MemoryDataPlane {
    pub fn new() -> Self {
        Self::with_state(State::default())
    }

    /// With router namespaces named `{prefix}qrouter-<router id>`, as
    /// [`crate::kernel::KernelDataPlane::with_namespace_prefix`].
    pub fn with_namespace_prefix(prefix: &str) -> Self {
        let mut dp = Self::new();
        dp.routers = MemoryRouters::new(dp.links.0.clone(), prefix, crate::NamespaceKind::Router);
        dp.dhcp = MemoryRouters::new(dp.links.0.clone(), prefix, crate::NamespaceKind::Dhcp);
        dp
    }

    fn with_state(state: State) -> Self {
        let shared = Shared(Arc::new(Mutex::new(state)));
        Self {
            links: MemoryLinks(shared.clone()),
            fdb: MemoryFdb(shared.clone()),
            routers: MemoryRouters::new(shared.clone(), "", crate::NamespaceKind::Router),
            dhcp: MemoryRouters::new(shared.clone(), "", crate::NamespaceKind::Dhcp),
            neighbours: MemoryNeighbours(shared),
            firewall: MemoryFirewall::default(),
        }
    }

    /// Starts from a given state, e.g. what a previous agent run left in the kernel.
    /// VXLAN devices in it are taken to use port 4789.
    pub fn from_observed(observed: Observed) -> Self {
        let state = State {
            last_index: observed.links.iter().map(|l| l.index).max().unwrap_or(0),
            vxlan_ports: observed
                .links
                .iter()
                .filter(|l| matches!(l.kind, LinkKind::Vxlan { .. }))
                .map(|l| (l.name.clone(), 4789))
                .collect(),
            links: observed.links,
            fdb: observed.fdb.into_iter().collect(),
            neighbours: observed.neighbours.into_iter().collect(),
            ..State::default()
        };
        Self::with_state(state)
    }

    /// How many calls so far changed something.
    pub fn mutations(&self) -> usize {
        self.lock().mutations
    }

    /// What has been read so far.
    pub fn reads(&self) -> Reads {
        self.lock().reads
    }

    /// What [`DataPlane::observe`] would return, without a runtime.
    pub fn snapshot(&self) -> Observed {
        self.lock().observed()
    }

    /// Simulates a link created by someone else (a hypervisor's tap): it appears down and
    /// unattached, replacing any link of that name, and subscribers get
    /// [`LinkEvent::Added`]. Not counted as a mutation.
    pub fn add_external_link(&self, name: &str, kind: LinkKind) {
        let mut state = self.lock();
        state.remove_link(name);
        state.add_link(name, kind, DEFAULT_MTU, false);
    }

    /// Plays a kernel without 802.1Q support: from now on [`DataPlane::ensure_vlan`] fails with
    /// [`DataPlaneError::Unsupported`] and `reason`.
    pub fn refuse_vlans(&self, reason: &str) {
        self.lock().vlan_refusal = Some(reason.to_string());
    }

    /// Simulates a link deleted by someone else; subscribers get [`LinkEvent::Removed`].
    /// Not counted as a mutation.
    pub fn remove_external_link(&self, name: &str) {
        self.lock().remove_link(name);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.links.0.lock()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in another test thread must not hide this test's result.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `op` on the state and counts a mutation when it reports a change.
    fn mutate(&self, op: impl FnOnce(&mut State) -> Result<bool>) -> Result<()> {
        let mut state = self.lock();
        if op(&mut state)? {
            state.mutations += 1;
        }
        Ok(())
    }
}

impl State {
    fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    fn require(&self, name: &str) -> Result<&Link> {
        self.link(name).ok_or_else(|| DataPlaneError::NoSuchLink(name.to_string()))
    }

    /// Applies `change` to the link `name` if it exists, and reports it as a link event.
    fn update(&mut self, name: &str, change: impl FnOnce(&mut Link)) {
        if let Some(link) = self.links.iter_mut().find(|l| l.name == name) {
            change(link);
            self.emit(LinkEvent::Added(name.to_string()));
        }
    }

    fn add_link(&mut self, name: &str, kind: LinkKind, mtu: u32, up: bool) {
        self.last_index += 1;
        let link =
            Link { name: name.to_string(), index: self.last_index, kind, master: None, up, mtu, isolated: false };
        self.links.push(link);
        self.emit(LinkEvent::Added(name.to_string()));
    }

    /// Removes a link the way the kernel does: its FDB and neighbour entries go with it, the
    /// ports of a bridge are released and its VLAN sub-interfaces deleted. Returns whether it
    /// existed.
    fn remove_link(&mut self, name: &str) -> bool {
        let before = self.links.len();
        self.links.retain(|l| l.name != name);
        if self.links.len() == before {
            return false;
        }
        self.fdb.retain(|e| e.device != name);
        self.neighbours.retain(|e| e.device != name);
        self.vxlan_ports.remove(name);
        self.remove_router_port_by_outside(name);
        let ports: Vec<String> =
            self.links.iter().filter(|l| l.master.as_deref() == Some(name)).map(|l| l.name.clone()).collect();
        for port in ports {
            self.update(&port, |l| {
                l.master = None;
                l.isolated = false;
            });
        }
        let vlans: Vec<String> = self
            .links
            .iter()
            .filter(|l| matches!(&l.kind, LinkKind::Vlan { parent: Some(p), .. } if p == name))
            .map(|l| l.name.clone())
            .collect();
        for vlan in vlans {
            self.remove_link(&vlan);
        }
        self.emit(LinkEvent::Removed(name.to_string()));
        true
    }

    /// Sends `event` to every live subscriber; a full queue drops it, a closed one goes away.
    fn emit(&mut self, event: LinkEvent) {
        self.subscribers.retain(|tx| match tx.try_send(event.clone()) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
    }

    fn is_vxlan(&self, name: &str) -> bool {
        self.link(name).is_some_and(|l| matches!(l.kind, LinkKind::Vxlan { .. }))
    }

    /// The state filtered like the kernel implementation's `observe`.
    fn observed(&self) -> Observed {
        Observed {
            links: self.links.clone(),
            fdb: self.observed_fdb().cloned().collect(),
            neighbours: self.observed_neighbours().cloned().collect(),
        }
    }

    fn observed_fdb(&self) -> impl Iterator<Item = &FdbEntry> {
        self.fdb.iter().filter(|e| e.mac != MacAddr::default() && self.is_vxlan(&e.device))
    }

    fn observed_neighbours(&self) -> impl Iterator<Item = &NeighEntry> {
        self.neighbours.iter().filter(|e| self.is_vxlan(&e.device))
    }

    fn ensure_bridge(&mut self, name: &str, mtu: Option<u32>) -> bool {
        let Some(link) = self.link(name) else {
            self.add_link(name, LinkKind::Bridge, mtu.unwrap_or(DEFAULT_MTU), true);
            return true;
        };
        if link.kind != LinkKind::Bridge {
            self.remove_link(name);
            self.add_link(name, LinkKind::Bridge, mtu.unwrap_or(DEFAULT_MTU), true);
            return true;
        }
        let mtu = mtu.unwrap_or(link.mtu);
        if link.up && link.mtu == mtu {
            return false;
        }
        self.update(name, |l| {
            l.up = true;
            l.mtu = mtu;
        });
        true
    }

    fn ensure_vxlan(&mut self, spec: &VxlanSpec) -> bool {
        let kind = LinkKind::Vxlan { vni: spec.vni, local: Some(spec.local) };
        match self.link(&spec.name) {
            Some(link) if link.kind == kind && self.vxlan_ports.get(&spec.name) == Some(&spec.port) => {
                if link.up {
                    return false;
                }
                self.update(&spec.name, |l| l.up = true);
            }
            _ => {
                self.remove_link(&spec.name);
                self.add_link(&spec.name, kind, VXLAN_MTU, true);
                self.vxlan_ports.insert(spec.name.clone(), spec.port);
            }
        }
        true
    }

    fn ensure_vlan(&mut self, spec: &VlanSpec) -> Result<bool> {
        if let Some(reason) = &self.vlan_refusal {
            return Err(DataPlaneError::Unsupported(format!("create vlan {}: {reason}", spec.name)));
        }
        let parent_mtu = self.require(&spec.parent)?.mtu;
        let kind = LinkKind::Vlan { id: spec.id, parent: Some(spec.parent.clone()) };
        match self.link(&spec.name) {
            Some(link) if link.kind == kind => {
                let mtu = spec.mtu.unwrap_or(link.mtu);
                if link.up && link.mtu == mtu {
                    return Ok(false);
                }
                self.update(&spec.name, |l| {
                    l.up = true;
                    l.mtu = mtu;
                });
            }
            _ => {
                self.remove_link(&spec.name);
                self.add_link(&spec.name, kind, spec.mtu.unwrap_or(parent_mtu), true);
            }
        }
        Ok(true)
    }

    fn attach(&mut self, link: &str, bridge: &str) -> Result<bool> {
        let master = self.require(bridge)?;
        if master.kind != LinkKind::Bridge || link == bridge {
            return Err(DataPlaneError::Netlink(format!("attach to {bridge} {link}: not a bridge")));
        }
        let port = self.require(link)?;
        if port.up && port.master.as_deref() == Some(bridge) {
            return Ok(false);
        }
        let moved = port.master.as_deref() != Some(bridge);
        self.update(link, |l| {
            l.up = true;
            l.master = Some(bridge.to_string());
            // A port of another bridge (or none) starts with the bridge's defaults.
            l.isolated &= !moved;
        });
        Ok(true)
    }

    fn add_fdb(&mut self, entry: &FdbEntry) -> Result<bool> {
        self.require(&entry.device)?;
        if self.fdb.contains(entry) {
            return Ok(false);
        }
        // NLM_F_REPLACE: one destination per MAC and device.
        self.fdb.retain(|e| !(e.device == entry.device && e.mac == entry.mac));
        self.fdb.insert(entry.clone());
        Ok(true)
    }

    fn add_neighbour(&mut self, entry: &NeighEntry) -> Result<bool> {
        self.require(&entry.device)?;
        if self.neighbours.contains(entry) {
            return Ok(false);
        }
        self.remove_neighbour(entry);
        self.neighbours.insert(entry.clone());
        Ok(true)
    }

    /// Removes the entry for the entry's device and IP, whatever its MAC (as RTM_DELNEIGH).
    fn remove_neighbour(&mut self, entry: &NeighEntry) -> bool {
        let before = self.neighbours.len();
        self.neighbours.retain(|e| !(e.device == entry.device && e.ip == entry.ip));
        self.neighbours.len() != before
    }
}

impl DataPlane for MemoryDataPlane {
    type Links = MemoryLinks;
    type Fdb = MemoryFdb;
    type Neighbours = MemoryNeighbours;
    type Firewall = MemoryFirewall;
    type Routers = MemoryRouters;

    fn firewall(&self) -> &MemoryFirewall {
        &self.firewall
    }

    fn links(&self) -> &MemoryLinks {
        &self.links
    }

    fn fdb(&self) -> &MemoryFdb {
        &self.fdb
    }

    fn neighbours(&self) -> &MemoryNeighbours {
        &self.neighbours
    }

    fn routers(&self) -> &MemoryRouters {
        &self.routers
    }

    fn dhcp(&self) -> &MemoryRouters {
        &self.dhcp
    }

    async fn observe(&self) -> Result<Observed> {
        let mut state = self.lock();
        state.reads.observes += 1;
        Ok(state.observed())
    }
}

impl Links for MemoryLinks {
    async fn get(&self, name: &str) -> Result<Option<Link>> {
        let mut state = self.0.lock();
        state.reads.links += 1;
        Ok(state.link(name).cloned())
    }

    async fn ensure_bridge(&self, name: &str, mtu: Option<u32>) -> Result<()> {
        self.0.mutate(|s| Ok(s.ensure_bridge(name, mtu)))
    }

    async fn ensure_vxlan(&self, spec: &VxlanSpec) -> Result<()> {
        self.0.mutate(|s| Ok(s.ensure_vxlan(spec)))
    }

    async fn ensure_vlan(&self, spec: &VlanSpec) -> Result<()> {
        self.0.mutate(|s| s.ensure_vlan(spec))
    }

    async fn attach(&self, link: &str, bridge: &str) -> Result<()> {
        self.0.mutate(|s| s.attach(link, bridge))
    }

    async fn attach_isolated(&self, link: &str, bridge: &str) -> Result<()> {
        self.0.mutate(|s| {
            let attached = s.attach(link, bridge)?;
            if s.require(link)?.isolated {
                return Ok(attached);
            }
            s.update(link, |l| l.isolated = true);
            Ok(true)
        })
    }

    async fn delete(&self, name: &str) -> Result<()> {
        self.0.mutate(|s| Ok(s.remove_link(name)))
    }

    async fn events(&self) -> Result<mpsc::Receiver<LinkEvent>> {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        self.0.lock().subscribers.push(tx);
        Ok(rx)
    }
}

impl Fdb for MemoryFdb {
    async fn list(&self, device: &str) -> Result<Vec<FdbEntry>> {
        let mut state = self.0.lock();
        state.reads.entry_lists += 1;
        Ok(state.observed_fdb().filter(|e| e.device == device).cloned().collect())
    }

    async fn add(&self, entry: &FdbEntry) -> Result<()> {
        self.0.mutate(|s| s.add_fdb(entry))
    }

    async fn del(&self, entry: &FdbEntry) -> Result<()> {
        self.0.mutate(|s| Ok(s.fdb.remove(entry)))
    }
}

impl Neighbours for MemoryNeighbours {
    async fn list(&self, device: &str) -> Result<Vec<NeighEntry>> {
        let mut state = self.0.lock();
        state.reads.entry_lists += 1;
        Ok(state.observed_neighbours().filter(|e| e.device == device).cloned().collect())
    }

    async fn add(&self, entry: &NeighEntry) -> Result<()> {
        self.0.mutate(|s| s.add_neighbour(entry))
    }

    async fn del(&self, entry: &NeighEntry) -> Result<()> {
        self.0.mutate(|s| Ok(s.remove_neighbour(entry)))
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn vxlan(name: &str, vni: u32) -> VxlanSpec {
        VxlanSpec { name: name.into(), vni, local: Ipv4Addr::new(192, 0, 2, 1), port: 4789 }
    }

    fn mac(last: u8) -> MacAddr {
        MacAddr([0xfa, 0x16, 0x3e, 0, 0, last])
    }

    fn fdb(device: &str, last: u8, dst: [u8; 4]) -> FdbEntry {
        FdbEntry { device: device.into(), mac: mac(last), dst: IpAddr::from(dst) }
    }

    fn neigh(device: &str, ip: [u8; 4], last: u8) -> NeighEntry {
        NeighEntry { device: device.into(), ip: IpAddr::from(ip), mac: mac(last) }
    }

    /// A bridge with a VXLAN port, as a network reconciler would leave it.
    async fn network(dp: &MemoryDataPlane) {
        dp.links().ensure_bridge("brq1", None).await.unwrap();
        dp.links().ensure_vxlan(&vxlan("vx-1", 1)).await.unwrap();
        dp.links().attach("vx-1", "brq1").await.unwrap();
    }

    #[tokio::test]
    async fn ensure_bridge_creates_once() {
        let dp = MemoryDataPlane::new();
        dp.links().ensure_bridge("brq1", Some(1450)).await.unwrap();
        dp.links().ensure_bridge("brq1", Some(1450)).await.unwrap();
        dp.links().ensure_bridge("brq1", None).await.unwrap();
        assert_eq!(dp.mutations(), 1);
        let obs = dp.observe().await.unwrap();
        let br = obs.link("brq1").unwrap();
        assert_eq!((br.kind.clone(), br.up, br.mtu), (LinkKind::Bridge, true, 1450));
        dp.links().ensure_bridge("brq1", Some(1400)).await.unwrap();
        assert_eq!(dp.snapshot().link("brq1").unwrap().mtu, 1400);
        assert_eq!(dp.mutations(), 2);
    }

    #[tokio::test]
    async fn ensure_vxlan_recreates_only_on_mismatch() {
        let dp = MemoryDataPlane::new();
        dp.links().ensure_vxlan(&vxlan("vx-1", 1)).await.unwrap();
        let index = dp.snapshot().link("vx-1").unwrap().index;
        dp.links().ensure_vxlan(&vxlan("vx-1", 1)).await.unwrap();
        assert_eq!(dp.snapshot().link("vx-1").unwrap().index, index);
        assert_eq!(dp.mutations(), 1);

        dp.links().ensure_vxlan(&vxlan("vx-1", 2)).await.unwrap();
        let link = dp.snapshot().link("vx-1").cloned().unwrap();
        assert_ne!(link.index, index);
        assert_eq!(link.kind, LinkKind::Vxlan { vni: 2, local: Some(Ipv4Addr::new(192, 0, 2, 1)) });
        assert_eq!(link.mtu, VXLAN_MTU);

        dp.links().ensure_vxlan(&VxlanSpec { port: 8472, ..vxlan("vx-1", 2) }).await.unwrap();
        assert_ne!(dp.snapshot().link("vx-1").unwrap().index, link.index);
        assert_eq!(dp.mutations(), 3);
    }

    #[tokio::test]
    async fn attach_enslaves_and_sets_up_once() {
        let dp = MemoryDataPlane::new();
        dp.links().ensure_bridge("brq1", None).await.unwrap();
        dp.add_external_link("tap1", LinkKind::Veth);
        assert!(!dp.snapshot().link("tap1").unwrap().up);
        dp.links().attach("tap1", "brq1").await.unwrap();
        dp.links().attach("tap1", "brq1").await.unwrap();
        let tap = dp.snapshot().link("tap1").cloned().unwrap();
        assert_eq!((tap.master.as_deref(), tap.up), (Some("brq1"), true));
        assert_eq!(dp.mutations(), 2);
    }

    #[tokio::test]
    async fn attach_needs_both_links_and_a_bridge() {
        let dp = MemoryDataPlane::new();
        dp.links().ensure_bridge("brq1", None).await.unwrap();
        dp.add_external_link("tap1", LinkKind::Veth);
        let missing = dp.links().attach("tap9", "brq1").await;
        assert!(matches!(missing, Err(DataPlaneError::NoSuchLink(n)) if n == "tap9"));
        let no_bridge = dp.links().attach("tap1", "brq9").await;
        assert!(matches!(no_bridge, Err(DataPlaneError::NoSuchLink(n)) if n == "brq9"));
        assert!(dp.links().attach("brq1", "tap1").await.is_err());
        assert_eq!(dp.mutations(), 1);
    }

    #[tokio::test]
    async fn deleting_a_bridge_releases_its_ports() {
        let dp = MemoryDataPlane::new();
        network(&dp).await;
        dp.links().delete("brq1").await.unwrap();
        dp.links().delete("brq1").await.unwrap();
        let obs = dp.snapshot();
        assert!(obs.link("brq1").is_none());
        assert_eq!(obs.link("vx-1").unwrap().master, None);
        assert_eq!(dp.mutations(), 4);
    }

    #[tokio::test]
    async fn deleting_a_vxlan_drops_its_entries() {
        let dp = MemoryDataPlane::new();
        network(&dp).await;
        dp.fdb().add(&fdb("vx-1", 1, [192, 0, 2, 2])).await.unwrap();
        dp.neighbours().add(&neigh("vx-1", [10, 0, 0, 1], 1)).await.unwrap();
        assert_eq!((dp.snapshot().fdb.len(), dp.snapshot().neighbours.len()), (1, 1));
        dp.links().delete("vx-1").await.unwrap();
        let obs = dp.snapshot();
        assert!(obs.fdb.is_empty() && obs.neighbours.is_empty());
        // Recreating the device does not bring the entries back.
        dp.links().ensure_vxlan(&vxlan("vx-1", 1)).await.unwrap();
        assert!(dp.snapshot().fdb.is_empty());
    }

    #[tokio::test]
    async fn fdb_add_replaces_the_destination() {
        let dp = MemoryDataPlane::new();
        network(&dp).await;
        let base = dp.mutations();
        let old = fdb("vx-1", 1, [192, 0, 2, 2]);
        let moved = fdb("vx-1", 1, [192, 0, 2, 3]);
        dp.fdb().add(&old).await.unwrap();
        dp.fdb().add(&old).await.unwrap();
        dp.fdb().add(&moved).await.unwrap();
        assert_eq!(dp.snapshot().fdb, vec![moved.clone()]);
        // Deleting the stale destination is a no-op, like NDA_DST in the kernel.
        dp.fdb().del(&old).await.unwrap();
        assert_eq!(dp.snapshot().fdb, vec![moved.clone()]);
        dp.fdb().del(&moved).await.unwrap();
        assert!(dp.snapshot().fdb.is_empty());
        assert_eq!(dp.mutations() - base, 3);
    }

    #[tokio::test]
    async fn observe_filters_like_the_kernel() {
        let dp = MemoryDataPlane::new();
        network(&dp).await;
        dp.fdb().add(&FdbEntry { mac: MacAddr::default(), ..fdb("vx-1", 0, [192, 0, 2, 2]) }).await.unwrap();
        dp.fdb().add(&fdb("brq1", 1, [192, 0, 2, 2])).await.unwrap();
        dp.neighbours().add(&neigh("brq1", [10, 0, 0, 1], 1)).await.unwrap();
        let obs = dp.snapshot();
        assert!(obs.fdb.is_empty() && obs.neighbours.is_empty());
    }

    #[tokio::test]
    async fn entries_need_an_existing_device() {
        let dp = MemoryDataPlane::new();
        let err = dp.fdb().add(&fdb("vx-9", 1, [192, 0, 2, 2])).await;
        assert!(matches!(err, Err(DataPlaneError::NoSuchLink(_))));
        let err = dp.neighbours().add(&neigh("vx-9", [10, 0, 0, 1], 1)).await;
        assert!(matches!(err, Err(DataPlaneError::NoSuchLink(_))));
        dp.fdb().del(&fdb("vx-9", 1, [192, 0, 2, 2])).await.unwrap();
        dp.neighbours().del(&neigh("vx-9", [10, 0, 0, 1], 1)).await.unwrap();
        dp.links().delete("vx-9").await.unwrap();
        assert_eq!(dp.mutations(), 0);
    }

    #[tokio::test]
    async fn neighbours_are_keyed_by_ip() {
        let dp = MemoryDataPlane::new();
        network(&dp).await;
        let base = dp.mutations();
        dp.neighbours().add(&neigh("vx-1", [10, 0, 0, 1], 1)).await.unwrap();
        dp.neighbours().add(&neigh("vx-1", [10, 0, 0, 1], 1)).await.unwrap();
        dp.neighbours().add(&neigh("vx-1", [10, 0, 0, 1], 2)).await.unwrap();
        assert_eq!(dp.snapshot().neighbours, vec![neigh("vx-1", [10, 0, 0, 1], 2)]);
        dp.neighbours().del(&neigh("vx-1", [10, 0, 0, 1], 7)).await.unwrap();
        assert!(dp.snapshot().neighbours.is_empty());
        assert_eq!(dp.mutations() - base, 3);
    }

    fn vlan(name: &str, parent: &str, id: u16) -> VlanSpec {
        VlanSpec { name: name.into(), parent: parent.into(), id, mtu: None }
    }

    #[tokio::test]
    async fn ensure_vlan_creates_on_the_parent_once_and_recreates_on_mismatch() {
        let dp = MemoryDataPlane::new();
        dp.add_external_link("eth1", LinkKind::Other);
        dp.links().ensure_vlan(&vlan("eth1.100", "eth1", 100)).await.unwrap();
        dp.links().ensure_vlan(&vlan("eth1.100", "eth1", 100)).await.unwrap();
        let link = dp.snapshot().link("eth1.100").cloned().unwrap();
        assert_eq!(link.kind, LinkKind::Vlan { id: 100, parent: Some("eth1".into()) });
        assert_eq!((link.up, link.mtu), (true, DEFAULT_MTU), "up, with the parent's MTU");
        assert_eq!(dp.mutations(), 1);

        dp.links().ensure_vlan(&VlanSpec { mtu: Some(1400), ..vlan("eth1.100", "eth1", 100) }).await.unwrap();
        let same = dp.snapshot().link("eth1.100").cloned().unwrap();
        assert_eq!((same.index, same.mtu), (link.index, 1400), "an MTU change keeps the device");

        dp.links().ensure_vlan(&vlan("eth1.100", "eth1", 101)).await.unwrap();
        let other = dp.snapshot().link("eth1.100").cloned().unwrap();
        assert_ne!(other.index, link.index);
        assert_eq!(other.kind, LinkKind::Vlan { id: 101, parent: Some("eth1".into()) });
        assert_eq!(dp.mutations(), 3);
    }

    #[tokio::test]
    async fn ensure_vlan_needs_the_parent_and_a_kernel_with_8021q() {
        let dp = MemoryDataPlane::new();
        let missing = dp.links().ensure_vlan(&vlan("eth1.100", "eth1", 100)).await;
        assert!(matches!(missing, Err(DataPlaneError::NoSuchLink(n)) if n == "eth1"));
        dp.add_external_link("eth1", LinkKind::Other);
        dp.refuse_vlans("Operation not supported");
        let refused = dp.links().ensure_vlan(&vlan("eth1.100", "eth1", 100)).await;
        assert!(matches!(refused, Err(DataPlaneError::Unsupported(m)) if m.contains("Operation not supported")));
        assert!(dp.snapshot().link("eth1.100").is_none());
        assert_eq!(dp.mutations(), 0);
    }

    #[tokio::test]
    async fn deleting_a_parent_deletes_its_vlans_and_a_bridge_only_releases_them() {
        let dp = MemoryDataPlane::new();
        dp.add_external_link("eth1", LinkKind::Other);
        dp.links().ensure_bridge("brq1", None).await.unwrap();
        dp.links().ensure_vlan(&vlan("eth1.100", "eth1", 100)).await.unwrap();
        dp.links().attach("eth1.100", "brq1").await.unwrap();
        dp.links().delete("brq1").await.unwrap();
        assert_eq!(dp.snapshot().link("eth1.100").unwrap().master, None);
        dp.remove_external_link("eth1");
        assert!(dp.snapshot().link("eth1.100").is_none());
    }

    #[tokio::test]
    async fn link_events_reach_live_subscribers() {
        let dp = MemoryDataPlane::new();
        let mut events = dp.links().events().await.unwrap();
        let dropped = dp.links().events().await.unwrap();
        drop(dropped);
        dp.add_external_link("tap1", LinkKind::Veth);
        dp.remove_external_link("tap1");
        assert_eq!(events.recv().await, Some(LinkEvent::Added("tap1".into())));
        assert_eq!(events.recv().await, Some(LinkEvent::Removed("tap1".into())));
        assert!(events.try_recv().is_err());
        assert_eq!(dp.lock().subscribers.len(), 1);
        assert_eq!(dp.mutations(), 0);
    }

    #[tokio::test]
    async fn from_observed_round_trips() {
        let dp = MemoryDataPlane::new();
        network(&dp).await;
        dp.fdb().add(&fdb("vx-1", 1, [192, 0, 2, 2])).await.unwrap();
        let copy = MemoryDataPlane::from_observed(dp.snapshot());
        assert_eq!(copy.snapshot(), dp.snapshot());
        copy.links().ensure_vxlan(&vxlan("vx-1", 1)).await.unwrap();
        copy.links().ensure_bridge("brq1", None).await.unwrap();
        copy.links().attach("vx-1", "brq1").await.unwrap();
        assert_eq!(copy.mutations(), 0);
        copy.links().ensure_bridge("brq2", None).await.unwrap();
        assert!(copy.snapshot().link("brq2").unwrap().index > copy.snapshot().link("vx-1").unwrap().index);
    }
}
