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

#[cfg(test)]
mod contract;
pub mod kernel;
mod mac;
pub mod memory;
pub mod nft;

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

/// The data plane of one network namespace, as sub-handles in the style of rtnetlink's
/// `Handle`: [`DataPlane::links`], [`DataPlane::fdb`], [`DataPlane::neighbours`]. Every
/// operation is idempotent. Later features add handles of their own here (addresses, routes,
/// nftables) and a handle per network namespace (routers live in their own), without
/// changing the ones that exist.
pub trait DataPlane: Send + Sync + 'static {
    type Links: Links;
    type Fdb: Fdb;
    type Neighbours: Neighbours;
    type Firewall: Firewall;
    fn links(&self) -> &Self::Links;
    fn fdb(&self) -> &Self::Fdb;
    fn neighbours(&self) -> &Self::Neighbours;
    /// The security group firewall (nftables).
    fn firewall(&self) -> &Self::Firewall;
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
