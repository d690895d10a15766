//! Data plane: the narrow interface between the agent's reconcilers and the kernel.
//!
//! Reconcilers read the observed state (all of it with [`DataPlane::observe`], or only the
//! objects a change concerns through the sub-handles), compute a diff against the desired
//! state, and apply it through the primitive operations. Every operation is idempotent
//! (adding what exists or deleting what is gone is not an error), so a reconciler may be
//! interrupted and restarted at any point.
//!
//! Two implementations exist: [`kernel::KernelDataPlane`] (rtnetlink, the real thing) and
//! [`memory::MemoryDataPlane`] (an in-memory model for unit tests of reconcilers). The
//! scenarios of the `contract` test module run against both.
//!
//! Routers live in network namespaces of their own (one per router and host, joined to the
//! networks' bridges by veth pairs); [`DataPlane::routers`] manages them.

#[cfg(test)]
mod contract;
pub mod kernel;
mod mac;
pub mod memory;
mod netns;
pub mod nft;
pub mod probe;
pub mod router;
pub mod sockets;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};

pub use mac::MacAddr;

/// Errors from the data plane layer.
#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    #[error("netlink: {0}")]
    Netlink(String),
    #[error("no such link: {0}")]
    NoSuchLink(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("unsupported by this kernel: {0}")]
    Unsupported(String),
    #[error("nftables: {0}")]
    Nftables(String),
    /// The router has no namespace on this host (see [`Routers::ensure`]).
    #[error("no such router namespace: {0}")]
    NoSuchRouter(String),
    /// The `conntrack` tool failed.
    #[error("conntrack: {0}")]
    Conntrack(String),
}

pub type Result<T> = std::result::Result<T, DataPlaneError>;

/// The kind of a link, as far as the agent cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    Bridge,
    Vxlan {
        vni: u32,
        local: Option<Ipv4Addr>,
    },
    /// An 802.1Q sub-interface: VLAN `id` on the link `parent` (`None` when the kernel reports
    /// a parent that is not in the same namespace).
    Vlan {
        id: u16,
        parent: Option<String>,
    },
    Veth,
    Other,
}

/// One link as observed in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub index: u32,
    pub kind: LinkKind,
    /// Name of the bridge this link is enslaved to.
    pub master: Option<String>,
    /// Administratively up (IFF_UP).
    pub up: bool,
    pub mtu: u32,
    /// An isolated bridge port: it forwards to and from the bridge's other ports, never to
    /// another isolated one (uplinks and service legs, so that a leg with the same MAC on every
    /// host never reaches the physical network).
    pub isolated: bool,
}

/// A VXLAN device to create (Linux-bridge agent style: one device per network, learning off,
/// ARP proxy on, no default remote so nothing floods).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSpec {
    pub name: String,
    pub vni: u32,
    pub local: Ipv4Addr,
    /// UDP destination port (4789).
    pub port: u16,
}

/// An 802.1Q VLAN sub-interface to create on a physical interface (Linux-bridge agent style:
/// one per VLAN network, enslaved to the network's bridge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanSpec {
    pub name: String,
    /// The interface the tagged frames leave by.
    pub parent: String,
    /// VLAN id, 1–4094.
    pub id: u16,
    /// `None` inherits the parent's MTU.
    pub mtu: Option<u32>,
}

/// A static FDB entry on a VXLAN device: frames for `mac` go to the VTEP `dst`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FdbEntry {
    pub device: String,
    pub mac: MacAddr,
    pub dst: IpAddr,
}

/// A permanent neighbour (ARP/ND) entry: answers ARP for `ip` with `mac` on `device`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NeighEntry {
    pub device: String,
    pub ip: IpAddr,
    pub mac: MacAddr,
}

/// What the kernel has now, restricted to what the agent manages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub links: Vec<Link>,
    /// Static (permanent/noarp) FDB entries with a destination, on VXLAN devices only.
    pub fdb: Vec<FdbEntry>,
    /// Permanent neighbour entries on VXLAN devices only.
    pub neighbours: Vec<NeighEntry>,
}

impl Observed {
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }
}

/// A link appeared, changed or went away (from kernel link notifications).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    Added(String),
    Removed(String),
}

impl LinkEvent {
    /// The link the event is about.
    pub fn name(&self) -> &str {
        match self {
            LinkEvent::Added(n) | LinkEvent::Removed(n) => n,
        }
    }
}

/// The data plane of one network namespace, as sub-handles in the style of rtnetlink's
/// `Handle`: [`DataPlane::links`], [`DataPlane::fdb`], [`DataPlane::neighbours`],
/// [`DataPlane::firewall`], and [`DataPlane::routers`] for the routers' namespaces of the
/// host. Every operation is idempotent. Later features add handles of their own here, without
/// changing the ones that exist.
pub trait DataPlane: Send + Sync + 'static {
    type Links: Links;
    type Fdb: Fdb;
    type Neighbours: Neighbours;
    type Firewall: Firewall;
    type Routers: Routers;
    fn links(&self) -> &Self::Links;
    fn fdb(&self) -> &Self::Fdb;
    fn neighbours(&self) -> &Self::Neighbours;
    /// The security group firewall (nftables).
    fn firewall(&self) -> &Self::Firewall;
    /// The routers' namespaces on this host (distributed routing).
    fn routers(&self) -> &Self::Routers;
    /// The networks' service namespaces on this host (`qdhcp-<network id>`: DHCP, metadata
    /// and DNS answered by the network's DHCP port), with the same operations.
    fn dhcp(&self) -> &Self::Routers;
    /// Every link, and the static FDB and permanent neighbour entries of every VXLAN device,
    /// in one read (for a full pass; a targeted pass asks the handles for what it needs).
    fn observe(&self) -> impl Future<Output = Result<Observed>> + Send;
}

/// Links: bridges, VXLAN devices, VLAN sub-interfaces, and the taps others create.
pub trait Links: Send + Sync {
    /// The link called `name`, with its master (and a VLAN's parent) as names.
    fn get(&self, name: &str) -> impl Future<Output = Result<Option<Link>>> + Send;
    /// Create a bridge (STP off, forward delay 0, IPv6 off on it) and set it up. On an existing
    /// bridge only the MTU (when given) and the up state are corrected.
    fn ensure_bridge(&self, name: &str, mtu: Option<u32>) -> impl Future<Output = Result<()>> + Send;
    /// Create a VXLAN device (learning off, proxy on, no IPv6 address so it sends no IPv6 noise,
    /// underlay = the device owning `local`) and set it up. An existing device with the same
    /// VNI, local address and port is kept as it is (so its FDB survives an agent restart);
    /// one that differs is deleted and recreated.
    fn ensure_vxlan(&self, spec: &VxlanSpec) -> impl Future<Output = Result<()>> + Send;
    /// Create an 802.1Q sub-interface and set it up. An existing link with the same parent and
    /// VLAN id is kept (only its MTU, when given, and its up state are corrected); any other
    /// link of that name is deleted and recreated. A kernel without 802.1Q support answers
    /// [`DataPlaneError::Unsupported`], a missing parent [`DataPlaneError::NoSuchLink`].
    fn ensure_vlan(&self, spec: &VlanSpec) -> impl Future<Output = Result<()>> + Send;
    /// Enslave `link` to `bridge` and set it up.
    fn attach(&self, link: &str, bridge: &str) -> impl Future<Output = Result<()>> + Send;
    /// Enslave `link` to `bridge` as an isolated port (see [`Link::isolated`]) and set it up.
    fn attach_isolated(&self, link: &str, bridge: &str) -> impl Future<Output = Result<()>> + Send;
    /// Delete a link; deleting a missing link succeeds.
    fn delete(&self, name: &str) -> impl Future<Output = Result<()>> + Send;
    /// Subscribe to link notifications. Each call returns a new receiver. The channel closes
    /// when notifications were lost (kernel socket overrun): resubscribe, then resync.
    fn events(&self) -> impl Future<Output = Result<tokio::sync::mpsc::Receiver<LinkEvent>>> + Send;
}

/// Static FDB entries of VXLAN devices (L2 population: remote MAC → VTEP).
pub trait Fdb: Send + Sync {
    /// The static entries with a destination on `device` (none when it does not exist).
    fn list(&self, device: &str) -> impl Future<Output = Result<Vec<FdbEntry>>> + Send;
    /// Add or replace a static FDB entry (NTF_SELF, NUD_PERMANENT) with a destination VTEP.
    fn add(&self, entry: &FdbEntry) -> impl Future<Output = Result<()>> + Send;
    fn del(&self, entry: &FdbEntry) -> impl Future<Output = Result<()>> + Send;
}

/// Permanent neighbour entries (the ARP/ND responder of VXLAN devices).
pub trait Neighbours: Send + Sync {
    /// The permanent entries on `device` (none when it does not exist).
    fn list(&self, device: &str) -> impl Future<Output = Result<Vec<NeighEntry>>> + Send;
    /// Add or replace a permanent neighbour entry.
    fn add(&self, entry: &NeighEntry) -> impl Future<Output = Result<()>> + Send;
    fn del(&self, entry: &NeighEntry) -> impl Future<Output = Result<()>> + Send;
}

/// The firewall's nftables objects (two tables called `neutrino`; see
/// `neutrino_domain::firewall`).
pub trait Firewall: Send + Sync {
    /// Make bridged IP traffic go through the `inet` hooks (`br_netfilter`'s
    /// `bridge-nf-call-iptables` and `-ip6tables` on), or say why it cannot.
    fn prepare(&self) -> impl Future<Output = Result<()>> + Send;
    /// The chains (with their digest) and sets of the firewall's tables.
    fn observe(&self) -> impl Future<Output = Result<neutrino_domain::firewall::ir::ObservedRuleset>> + Send;
    /// Make the changes of a plan, all in one transaction (all or nothing).
    fn apply(&self, ops: &[neutrino_domain::firewall::Op]) -> impl Future<Output = Result<()>> + Send;
}

/// The name of a router's network namespace: `{prefix}qrouter-{router_id}`. The prefix
/// (empty in production) keeps the agents of simulated hosts on one machine, and tests, apart:
/// namespace names are global to the machine.
pub fn router_namespace(prefix: &str, router_id: &str) -> String {
    format!("{prefix}{ROUTER_NAMESPACE}{router_id}")
}

/// What comes between the prefix and the router id in a router namespace's name (Neutron's).
pub const ROUTER_NAMESPACE: &str = "qrouter-";

/// The kinds of namespace a [`Routers`] handle manages: routers (`qrouter-<router id>`) or
/// the networks' DHCP services (`qdhcp-<network id>`, Neutron's name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceKind {
    Router,
    Dhcp,
}

impl NamespaceKind {
    /// What comes between the prefix and the id in the namespace's name.
    pub fn tag(self) -> &'static str {
        match self {
            NamespaceKind::Router => ROUTER_NAMESPACE,
            NamespaceKind::Dhcp => "qdhcp-",
        }
    }
}

/// A router's leg on one network: a veth pair whose inside end (`name`, e.g.
/// `qr-<port id[:11]>` or `qg-<...>`) lives in the router's namespace and whose outside end
/// (`outside`, e.g. `rq-<port id[:11]>`) is enslaved to `bridge` in the host's namespace.
/// Link names have at most 15 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterPortSpec {
    /// The inside end, in the router's namespace.
    pub name: String,
    /// The outside end, in the host's namespace.
    pub outside: String,
    /// The network's bridge in the host's namespace; it must exist.
    pub bridge: String,
    /// The inside end's MAC: the router port's (the same on every host).
    pub mac: MacAddr,
    /// Of both ends.
    pub mtu: u32,
    /// The inside end's addresses with their prefix length, IPv4 and IPv6 (the gateway IPs,
    /// the same on every host, so IPv6 ones are added without duplicate address detection).
    pub addresses: Vec<ipnet::IpNet>,
    /// The outside end is an isolated bridge port: it never reaches the uplink (a DHCP leg,
    /// which answers this host's ports only).
    pub isolated: bool,
}

/// A link in a router's namespace, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedRouterPort {
    /// The link's name (the inside end of a port).
    pub name: String,
    pub mac: MacAddr,
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Global-scope addresses only (no IPv6 link-local), sorted.
    pub addresses: Vec<ipnet::IpNet>,
}

/// A route through a gateway in a router's main table: `destination` via `via`. A default
/// route is `0.0.0.0/0` or `::/0`. Both have the same address family. Host bits of the
/// destination are ignored (it is taken as its network), and a table has one route per
/// destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouterRoute {
    pub destination: ipnet::IpNet,
    /// The gateway (RTA_GATEWAY), on the subnet of one of the router's ports.
    pub via: IpAddr,
}

/// What a router's namespace holds, restricted to what the agent manages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedRouter {
    /// Every link in the namespace except `lo`, sorted by name.
    pub ports: Vec<ObservedRouterPort>,
    /// The main table's unicast routes that have a gateway, IPv4 and IPv6, sorted (connected
    /// routes are the kernel's, from the addresses, and not listed).
    pub routes: Vec<RouterRoute>,
    /// The routes of traffic marked [`ROUTE_MARK`] (see [`Routers::set_marked_routes`]),
    /// sorted; none unless its policy rules are in place too.
    pub marked_routes: Vec<RouterRoute>,
}

/// The packet mark (`meta mark`) a router's nftables give traffic that is to be routed by
/// [`MARKED_TABLE`] (a floating IP's, which leaves by the host's external leg while the
/// router's other traffic goes to a gateway host).
pub const ROUTE_MARK: u32 = 0x4e;
/// The routing table of marked traffic in a router namespace.
pub const MARKED_TABLE: u32 = 78;

impl ObservedRouter {
    /// The port whose inside end is `name`.
    pub fn port(&self, name: &str) -> Option<&ObservedRouterPort> {
        self.ports.iter().find(|p| p.name == name)
    }
}

/// The routers of this host: one network namespace each ([`router_namespace`]), with the
/// router's ports, routes, NAT (nftables) and conntrack state. Every operation is idempotent
/// and reads before it writes, so a converged router sees no change at all (its traffic is
/// never disturbed by a reconcile). Only namespaces named with this data plane's prefix and
/// `qrouter-` are ever touched.
///
/// Writes into a router that has no namespace fail with [`DataPlaneError::NoSuchRouter`];
/// reads answer `None`, and deletes (and conntrack flushes) succeed.
pub trait Routers: Send + Sync {
    /// The ids of the routers that have a namespace here, sorted (a file left without a
    /// namespace counts, so that it can be deleted; [`Routers::ensure`] repairs it).
    fn list(&self) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Create the router's namespace if missing (like `ip netns add`), set `lo` up, and turn
    /// it into a router: forwarding on (IPv4 and IPv6), no reverse path filter (traffic
    /// arrives asymmetrically when every host routes), no ICMP redirects (every host has the
    /// gateway address), IPv6 duplicate address detection off (for the same reason), and
    /// secondary IPv4 addresses promoted when a primary goes. On an existing namespace only
    /// these are checked.
    fn ensure(&self, router_id: &str) -> impl Future<Output = Result<()>> + Send;
    /// Delete the router's namespace with its ports (the veth pairs go with their inside end).
    fn delete(&self, router_id: &str) -> impl Future<Output = Result<()>> + Send;
    /// The router's ports and gateway routes, or `None` when it has no namespace.
    fn observe(&self, router_id: &str) -> impl Future<Output = Result<Option<ObservedRouter>>> + Send;
    /// Create or correct a port: the veth pair, the inside end's MAC, MTU and exactly
    /// `addresses` (others are removed; IPv6 link-local ones are kept), both ends up, the
    /// outside end enslaved to the bridge (a missing bridge is [`DataPlaneError::NoSuchLink`]).
    /// A port that is as asked is not written to; a broken one (an end missing, the ends not
    /// each other's peer) is recreated. Names longer than 15 characters are refused.
    fn ensure_port(&self, router_id: &str, spec: &RouterPortSpec) -> impl Future<Output = Result<()>> + Send;
    /// Delete the port whose inside end is `name` (with the veth pair).
    fn delete_port(&self, router_id: &str, name: &str) -> impl Future<Output = Result<()>> + Send;
    /// Make the main table's gateway routes exactly `routes` (connected routes are left alone).
    fn set_routes(&self, router_id: &str, routes: &[RouterRoute]) -> impl Future<Output = Result<()>> + Send;
    /// Make the routes of traffic marked [`ROUTE_MARK`] exactly `routes` (table
    /// [`MARKED_TABLE`]), out of `device` with their gateways on it (whether or not an address
    /// there covers them), with policy rules that look there for marked traffic the main
    /// table has only its default route for; no rules when `routes` is empty.
    fn set_marked_routes(
        &self,
        router_id: &str,
        device: &str,
        routes: &[RouterRoute],
    ) -> impl Future<Output = Result<()>> + Send;
    /// Apply an nftables batch in libnftables' JSON format (`{"nftables": [...]}`) in the
    /// router's namespace, in one transaction (all or nothing).
    fn nft(&self, router_id: &str, batch: &serde_json::Value) -> impl Future<Output = Result<()>> + Send;
    /// `nft -j list table <family> <table>` in the router's namespace, or `None` when the
    /// table (or the namespace) does not exist.
    fn nft_list(
        &self,
        router_id: &str,
        family: &str,
        table: &str,
    ) -> impl Future<Output = Result<Option<serde_json::Value>>> + Send;
    /// Send a gratuitous ARP (a request with sender and target IP `ip`, from the device's MAC
    /// to the broadcast address) out of `device` in the router's namespace, so that neighbours
    /// update a stale entry for `ip` (a floating IP that moved); the kernel data plane sends
    /// it twice more in the next second and a half, without waiting for them.
    fn announce(&self, router_id: &str, device: &str, ip: Ipv4Addr) -> impl Future<Output = Result<()>> + Send;
    /// Delete the connection tracking entries with `ip` as an original or reply source or
    /// destination in the router's namespace (a floating IP that moved or went, so its NAT
    /// state does not outlive it). A host without the `conntrack` tool answers
    /// [`DataPlaneError::Unsupported`].
    fn flush_conntrack(&self, router_id: &str, ip: IpAddr) -> impl Future<Output = Result<()>> + Send;
    /// Make the permanent neighbour entries on `device` in the namespace exactly `entries`
    /// (address → MAC; the kernel's own entries are left alone).
    fn set_neighbours(
        &self,
        router_id: &str,
        device: &str,
        entries: &[(IpAddr, MacAddr)],
    ) -> impl Future<Output = Result<()>> + Send;
    /// Run `f` on a thread inside the namespace, to open sockets there (a socket stays in the
    /// namespace it was made in). The in-memory model has no sockets: `Unsupported`.
    fn in_namespace<T: Send + 'static>(
        &self,
        router_id: &str,
        f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> impl Future<Output = Result<T>> + Send;
}
