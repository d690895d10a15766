//! The real data plane: rtnetlink in the network namespace the agent runs in.
//!
//! Every operation reads what it needs first and only sends a change when the kernel differs
//! from what is asked for. That keeps a converged reconcile free of netlink writes, and above
//! all it means an agent restart never recreates a working bridge or VXLAN device (which would
//! drop every FDB entry and all traffic on the network).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use futures::{Stream, StreamExt, TryStreamExt};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::link::{
    BridgeStpState, InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoVlan, InfoVxlan, LinkAttribute, LinkFlags,
    LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVlan, LinkVxlan, MulticastGroup};
use tokio::sync::mpsc;

use crate::{
    DataPlane, DataPlaneError, Fdb, FdbEntry, Link, LinkEvent, LinkKind, Links, MacAddr, NeighEntry, Neighbours,
    Observed, Result, VlanSpec, VxlanSpec,
};

/// Capacity of each [`DataPlane::link_events`] channel. A consumer that falls this far behind
/// has plenty of pending events to trigger a full resync, so further events are dropped.
const EVENT_QUEUE: usize = 1024;

/// [`DataPlane`] backed by rtnetlink: one request socket, shared by the handles.
pub struct KernelDataPlane {
    links: KernelLinks,
    fdb: KernelFdb,
    neighbours: KernelNeighbours,
    firewall: crate::nft::KernelFirewall,
    routers: crate::router::KernelRouters,
    dhcp: crate::router::KernelRouters,
}

/// The links of the namespace the socket was opened in.
#[derive(Clone)]
pub struct KernelLinks(Arc<Netlink>);

/// The FDB entries of its VXLAN devices.
#[derive(Clone)]
pub struct KernelFdb(Arc<Netlink>);

/// Its neighbour entries.
#[derive(Clone)]
pub struct KernelNeighbours(Arc<Netlink>);

pub(crate) struct Netlink {
    pub(crate) handle: Handle,
    /// The kernel runs one dump at a time per netlink socket and answers a second one with
    /// EBUSY, so concurrent dumps take turns.
    pub(crate) dump_lock: tokio::sync::Mutex<()>,
}

/// A link as the kernel reports it, before master indexes are resolved to names.
#[derive(Debug, Clone)]
pub(crate) struct KernelLink {
    pub(crate) name: String,
    pub(crate) index: u32,
    pub(crate) kind: LinkKind,
    pub(crate) master: Option<u32>,
    pub(crate) up: bool,
    pub(crate) mtu: u32,
    /// UDP destination port, for VXLAN devices.
    vxlan_port: Option<u16>,
    /// IFLA_LINK: the parent of a VLAN sub-interface (the peer of a veth, ...).
    pub(crate) link: Option<u32>,
    /// An isolated bridge port (IFLA_BRPORT_ISOLATED).
    pub(crate) isolated: bool,
}

impl KernelDataPlane {
    /// Opens an rtnetlink connection in the network namespace of the calling thread and runs
    /// it on the current tokio runtime. A netlink socket stays bound to the namespace it was
    /// created in, so this is the namespace every later operation acts on. The socket checks
    /// requests strictly, which is what lets a dump be filtered by device in the kernel.
    pub async fn new() -> Result<Self> {
        Self::with_namespace_prefix("").await
    }

    /// Like [`Self::new`], with router namespaces named `{prefix}qrouter-<router id>`
    /// ([`crate::router_namespace`]): the agents of simulated hosts on one machine each have
    /// their own prefix, since namespace names are global. Only namespaces with this prefix
    /// are ever listed or deleted.
    pub async fn with_namespace_prefix(prefix: &str) -> Result<Self> {
        let (connection, handle, _) = rtnetlink::new_connection_with_strict_check()?;
        tokio::spawn(connection);
        let netlink = Arc::new(Netlink::new(handle));
        Ok(Self {
            links: KernelLinks(netlink.clone()),
            fdb: KernelFdb(netlink.clone()),
            routers: crate::router::KernelRouters::new(netlink.clone(), prefix, crate::NamespaceKind::Router)?,
            dhcp: crate::router::KernelRouters::new(netlink.clone(), prefix, crate::NamespaceKind::Dhcp)?,
            neighbours: KernelNeighbours(netlink),
            firewall: crate::nft::KernelFirewall::of_current_netns()?,
        })
    }
}

impl Netlink {
    pub(crate) fn new(handle: Handle) -> Self {
        Netlink { handle, dump_lock: tokio::sync::Mutex::new(()) }
    }

    /// The link called `name`, or `None` if there is none.
    pub(crate) async fn get_link(&self, name: &str) -> Result<Option<KernelLink>> {
        let mut replies = self.handle.link().get().match_name(name).execute();
        match replies.try_next().await {
            Ok(Some(msg)) => Ok(parse_link(&msg)),
            Ok(None) => Ok(None),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(nl_error("get link", name, e)),
        }
    }

    /// Like [`Self::get_link`], but a missing link is an error.
    pub(crate) async fn require_link(&self, name: &str) -> Result<KernelLink> {
        self.get_link(name).await?.ok_or_else(|| DataPlaneError::NoSuchLink(name.to_string()))
    }

    async fn dump_links(&self) -> Result<Vec<KernelLink>> {
        let msgs: Vec<LinkMessage> =
            self.handle.link().get().execute().try_collect().await.map_err(|e| nl_error("dump links", "", e))?;
        Ok(msgs.iter().filter_map(parse_link).collect())
    }

    /// The neighbour (or, for `AddressFamily::Bridge`, FDB) entries, of one device when
    /// `ifindex` is given (filtered by the kernel: NDA_IFINDEX on a strict socket).
    pub(crate) async fn dump_neighbours(
        &self,
        family: AddressFamily,
        ifindex: Option<u32>,
    ) -> Result<Vec<NeighbourMessage>> {
        let mut request = self.handle.neighbours().get().set_address_family(family);
        if let Some(index) = ifindex {
            request.message_mut().attributes.push(NeighbourAttribute::IfIndex(index));
        }
        request.execute().try_collect().await.map_err(|e| nl_error(&format!("dump {family:?} neighbours"), "", e))
    }

    /// Sends RTM_SETLINK for `name` with the changes in `msg`.
    pub(crate) async fn set_link(&self, op: &str, name: &str, msg: LinkMessage) -> Result<()> {
        self.handle.link().set(msg).execute().await.map_err(|e| nl_error(op, name, e))
    }

    /// Make the bridge port `name` (index `index`) isolated, or not.
    pub(crate) async fn set_isolated(&self, name: &str, index: u32, isolated: bool) -> Result<()> {
        let msg = LinkBridgePort::new(index).isolated(isolated).build();
        self.handle.link().set_port(msg).execute().await.map_err(|e| nl_error("isolate bridge port", name, e))
    }

    pub(crate) async fn set_up(&self, name: &str) -> Result<()> {
        self.set_link("set up", name, LinkUnspec::new_with_name(name).up().build()).await
    }

    /// Sends RTM_NEWLINK (create, exclusive). A link that appeared in the meantime counts as
    /// created: the caller looked it up just before, so this is a race with another creator.
    pub(crate) async fn create_link(&self, op: &str, name: &str, msg: LinkMessage) -> Result<()> {
        match self.handle.link().add(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(nl_error(op, name, e)),
        }
    }

    /// Creates the bridge down, turns IPv6 off, then brings it up, so that it never sends
    /// router solicitations or MLD reports.
    ///
    /// The MTU goes with the RTM_SETLINK, not the RTM_NEWLINK: only a change through the
    /// bridge's change_mtu marks it as set by the user. An MTU given at creation is silently
    /// replaced by the smallest port MTU as soon as a port is attached.
    async fn create_bridge(&self, name: &str, mtu: Option<u32>) -> Result<()> {
        let msg = LinkBridge::new(name).down().stp_state(BridgeStpState::Disabled).forward_delay(0).build();
        self.create_link("create bridge", name, msg).await?;
        set_ipv6_conf(name, "disable_ipv6", "1")?;
        let mut up = LinkUnspec::new_with_name(name).up();
        if let Some(mtu) = mtu {
            up = up.mtu(mtu);
        }
        self.set_link("set up", name, up.build()).await
    }

    /// Creates the VXLAN device down, silences IPv6 on it, then brings it up. No group or
    /// remote: nothing floods until the agent adds FDB entries. Learning is off because the
    /// agent knows every MAC, and `proxy` answers ARP/ND locally from the neighbour table.
    ///
    /// IPv6 stays enabled here, unlike on the bridge: the kernel refuses AF_INET6 neighbour
    /// entries on a device with `disable_ipv6` (EINVAL, "IPv6 is disabled on this device"),
    /// and those entries are what suppresses ND for IPv6 ports. `addr_gen_mode` 1 (none)
    /// gives the device no link-local address, so it still sends no DAD, RS or MLD.
    ///
    /// The device that has the local address becomes the underlay (IFLA_VXLAN_LINK), so the
    /// kernel sizes the MTU to the underlay's minus 50. Without it the device would get 1500
    /// and oversize frames would vanish on a 1500 underlay.
    async fn create_vxlan(&self, spec: &VxlanSpec) -> Result<()> {
        let mut builder = LinkVxlan::new(&spec.name, spec.vni)
            .local(spec.local)
            // The packet library emits IFLA_VXLAN_PORT in network byte order itself.
            .port(spec.port)
            .learning(false)
            .proxy(true);
        match self.device_with_address(spec.local).await? {
            Some(underlay) => builder = builder.dev(underlay),
            None => tracing::warn!(
                name = %spec.name, local = %spec.local,
                "no device has the local address; the vxlan MTU will not follow the underlay"
            ),
        }
        self.create_link("create vxlan", &spec.name, builder.build()).await?;
        set_ipv6_conf(&spec.name, "addr_gen_mode", "1")?;
        self.set_up(&spec.name).await
    }

    /// Creates the VLAN sub-interface down, turns IPv6 off on it (it is a bridge port, and must
    /// not send router solicitations or MLD onto the physical network), then brings it up.
    async fn create_vlan(&self, spec: &VlanSpec, parent_index: u32) -> Result<()> {
        self.create_link("create vlan", &spec.name, vlan_message(spec, parent_index)).await?;
        set_ipv6_conf(&spec.name, "disable_ipv6", "1")?;
        self.set_up(&spec.name).await
    }

    /// The index of the device that has the IPv4 address `ip`.
    async fn device_with_address(&self, ip: Ipv4Addr) -> Result<Option<u32>> {
        // Read the dump to the end (under the lock) so the socket is free for the next one.
        let _turn = self.dump_lock.lock().await;
        let addrs: Vec<_> = self
            .handle
            .address()
            .get()
            .set_address_filter(ip.into())
            .execute()
            .try_collect()
            .await
            .map_err(|e| nl_error(&format!("find device with address {ip}"), "", e))?;
        Ok(addrs.first().map(|a| a.header.index))
    }

    /// Deletes a link; a missing one is success.
    pub(crate) async fn delete_link(&self, name: &str) -> Result<()> {
        let msg = LinkUnspec::new_with_name(name).build();
        match self.handle.link().del_with_message(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if is_absent(&e) => Ok(()),
            Err(e) => Err(nl_error("delete link", name, e)),
        }
    }

    /// Resolves the device of an entry to add; the device must exist.
    pub(crate) async fn device_index(&self, name: &str) -> Result<u32> {
        Ok(self.require_link(name).await?.index)
    }

    /// Sends RTM_DELNEIGH; an entry (or device) that is already gone is success.
    pub(crate) async fn delete_neighbour(&self, op: &str, device: &str, msg: NeighbourMessage) -> Result<()> {
        match self.handle.neighbours().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if is_absent(&e) => Ok(()),
            Err(e) => Err(nl_error(op, device, e)),
        }
    }

    /// Builds the RTM_DELNEIGH for `device`, or `None` when the device is gone (and with it
    /// every entry on it).
    pub(crate) async fn neighbour_message(
        &self,
        device: &str,
        family: AddressFamily,
    ) -> Result<Option<NeighbourMessage>> {
        let Some(link) = self.get_link(device).await? else {
            return Ok(None);
        };
        let mut msg = NeighbourMessage::default();
        msg.header.family = family;
        msg.header.ifindex = link.index;
        Ok(Some(msg))
    }
}

impl DataPlane for KernelDataPlane {
    type Links = KernelLinks;
    type Fdb = KernelFdb;
    type Neighbours = KernelNeighbours;
    type Firewall = crate::nft::KernelFirewall;
    type Routers = crate::router::KernelRouters;

    fn firewall(&self) -> &crate::nft::KernelFirewall {
        &self.firewall
    }

    fn links(&self) -> &KernelLinks {
        &self.links
    }

    fn fdb(&self) -> &KernelFdb {
        &self.fdb
    }

    fn neighbours(&self) -> &KernelNeighbours {
        &self.neighbours
    }

    fn routers(&self) -> &crate::router::KernelRouters {
        &self.routers
    }

    fn dhcp(&self) -> &crate::router::KernelRouters {
        &self.dhcp
    }

    async fn observe(&self) -> Result<Observed> {
        let nl = &self.links.0;
        let _turn = nl.dump_lock.lock().await;
        let raw = nl.dump_links().await?;
        let fdb = nl.dump_neighbours(AddressFamily::Bridge, None).await?;
        let mut neigh = nl.dump_neighbours(AddressFamily::Inet, None).await?;
        neigh.extend(nl.dump_neighbours(AddressFamily::Inet6, None).await?);

        let names: HashMap<u32, &str> = raw.iter().map(|l| (l.index, l.name.as_str())).collect();
        let vxlans: HashMap<u32, &str> = raw
            .iter()
            .filter(|l| matches!(l.kind, LinkKind::Vxlan { .. }))
            .map(|l| (l.index, l.name.as_str()))
            .collect();
        Ok(Observed {
            fdb: fdb.iter().filter_map(|m| parse_fdb(m, &vxlans)).collect(),
            neighbours: neigh.iter().filter_map(|m| parse_neighbour(m, &vxlans)).collect(),
            links: raw.iter().map(|l| resolve_master(l, &names)).collect(),
        })
    }
}

impl Netlink {
    /// The VXLAN device `device` as `{index: name}`, to parse its entries with (empty when it
    /// does not exist or is no VXLAN device).
    async fn vxlan_index(&self, device: &str) -> Result<HashMap<u32, String>> {
        Ok(match self.get_link(device).await? {
            Some(l) if matches!(l.kind, LinkKind::Vxlan { .. }) => HashMap::from([(l.index, device.to_string())]),
            _ => HashMap::new(),
        })
    }
}

impl Links for KernelLinks {
    async fn get(&self, name: &str) -> Result<Option<Link>> {
        let nl = &self.0;
        let Some(link) = nl.get_link(name).await? else {
            return Ok(None);
        };
        // Name the master and the parent (one lookup each, only when there is one).
        let mut names: HashMap<u32, String> = HashMap::new();
        for index in link.master.into_iter().chain(link.link) {
            let mut replies = nl.handle.link().get().match_index(index).execute();
            if let Ok(Some(msg)) = replies.try_next().await {
                if let Some(other) = parse_link(&msg) {
                    names.insert(index, other.name);
                }
            }
        }
        let names: HashMap<u32, &str> = names.iter().map(|(i, n)| (*i, n.as_str())).collect();
        Ok(Some(resolve_master(&link, &names)))
    }

    async fn ensure_bridge(&self, name: &str, mtu: Option<u32>) -> Result<()> {
        let Some(link) = self.0.get_link(name).await? else {
            return self.0.create_bridge(name, mtu).await;
        };
        if link.kind != LinkKind::Bridge {
            tracing::warn!(%name, kind = ?link.kind, "link is not a bridge; recreating it");
            self.0.delete_link(name).await?;
            return self.0.create_bridge(name, mtu).await;
        }
        let mtu = mtu.filter(|&m| m != link.mtu);
        if link.up && mtu.is_none() {
            return Ok(());
        }
        let mut msg = LinkUnspec::new_with_index(link.index).up();
        if let Some(mtu) = mtu {
            msg = msg.mtu(mtu);
        }
        self.0.set_link("update bridge", name, msg.build()).await
    }

    async fn ensure_vxlan(&self, spec: &VxlanSpec) -> Result<()> {
        match self.0.get_link(&spec.name).await? {
            None => self.0.create_vxlan(spec).await,
            Some(link) if vxlan_matches(&link, spec) => {
                if link.up {
                    Ok(())
                } else {
                    self.0.set_up(&spec.name).await
                }
            }
            Some(link) => {
                // VNI, local address and port cannot be changed on a live device.
                tracing::info!(
                    name = %spec.name, have = ?link.kind, want = ?spec,
                    "recreating vxlan"
                );
                self.0.delete_link(&spec.name).await?;
                self.0.create_vxlan(spec).await
            }
        }
    }

    async fn ensure_vlan(&self, spec: &VlanSpec) -> Result<()> {
        let parent = self.0.require_link(&spec.parent).await?;
        match self.0.get_link(&spec.name).await? {
            None => self.0.create_vlan(spec, parent.index).await,
            Some(link) if vlan_matches(&link, spec, parent.index) => {
                let mtu = spec.mtu.filter(|&m| m != link.mtu);
                if link.up && mtu.is_none() {
                    return Ok(());
                }
                let mut msg = LinkUnspec::new_with_index(link.index).up();
                if let Some(mtu) = mtu {
                    msg = msg.mtu(mtu);
                }
                self.0.set_link("update vlan", &spec.name, msg.build()).await
            }
            Some(link) => {
                // The parent and VLAN id of a sub-interface cannot be changed.
                tracing::info!(name = %spec.name, have = ?link.kind, want = ?spec, "recreating vlan");
                self.0.delete_link(&spec.name).await?;
                self.0.create_vlan(spec, parent.index).await
            }
        }
    }

    async fn attach(&self, link: &str, bridge: &str) -> Result<()> {
        let port = self.0.require_link(link).await?;
        let master = self.0.require_link(bridge).await?;
        let enslaved = port.master == Some(master.index);
        if enslaved && port.up {
            return Ok(());
        }
        let mut msg = LinkUnspec::new_with_index(port.index).up();
        if !enslaved {
            msg = msg.controller(master.index);
        }
        self.0.set_link(&format!("attach to {bridge}"), link, msg.build()).await
    }

    async fn attach_isolated(&self, link: &str, bridge: &str) -> Result<()> {
        let port = self.0.require_link(link).await?;
        let master = self.0.require_link(bridge).await?;
        let enslaved = port.master == Some(master.index);
        if !enslaved {
            let msg = LinkUnspec::new_with_index(port.index).controller(master.index).build();
            self.0.set_link(&format!("attach to {bridge}"), link, msg).await?;
        }
        // Isolated straight after it is enslaved (an uplink is usually up already).
        if !(enslaved && port.isolated) {
            self.0.set_isolated(link, port.index, true).await?;
        }
        if !port.up {
            self.0.set_up(link).await?;
        }
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<()> {
        self.0.delete_link(name).await
    }

    /// Opens a second netlink socket (in the calling thread's namespace) bound to the
    /// RTNLGRP_LINK multicast group. Unlike the request socket it receives unsolicited
    /// messages, so it must not be shared with requests.
    async fn events(&self) -> Result<mpsc::Receiver<LinkEvent>> {
        let (connection, _, messages) = rtnetlink::new_multicast_connection(&[MulticastGroup::Link])?;
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        tokio::spawn(forward_link_events(connection, messages, tx));
        Ok(rx)
    }
}

impl Fdb for KernelFdb {
    async fn list(&self, device: &str) -> Result<Vec<FdbEntry>> {
        let vxlan = self.0.vxlan_index(device).await?;
        let Some(index) = vxlan.keys().next().copied() else {
            return Ok(Vec::new());
        };
        let names: HashMap<u32, &str> = vxlan.iter().map(|(i, n)| (*i, n.as_str())).collect();
        let _turn = self.0.dump_lock.lock().await;
        let msgs = self.0.dump_neighbours(AddressFamily::Bridge, Some(index)).await?;
        Ok(msgs.iter().filter_map(|m| parse_fdb(m, &names)).collect())
    }

    async fn add(&self, entry: &FdbEntry) -> Result<()> {
        let index = self.0.device_index(&entry.device).await?;
        self.0
            .handle
            .neighbours()
            .add_bridge(index, &entry.mac.0)
            .flags(NeighbourFlags::Own)
            .state(NeighbourState::Permanent)
            .destination(entry.dst)
            .replace()
            .execute()
            .await
            .map_err(|e| nl_error(&format!("add fdb {} dst {}", entry.mac, entry.dst), &entry.device, e))
    }

    async fn del(&self, entry: &FdbEntry) -> Result<()> {
        let Some(mut msg) = self.0.neighbour_message(&entry.device, AddressFamily::Bridge).await? else {
            return Ok(());
        };
        msg.header.flags = NeighbourFlags::Own;
        msg.header.state = NeighbourState::Permanent;
        msg.attributes = vec![
            NeighbourAttribute::LinkLayerAddress(entry.mac.0.to_vec()),
            // With NDA_DST only this remote is removed, which is what a "move" needs.
            NeighbourAttribute::Destination(entry.dst.into()),
        ];
        let op = format!("delete fdb {} dst {}", entry.mac, entry.dst);
        self.0.delete_neighbour(&op, &entry.device, msg).await
    }
}

impl Neighbours for KernelNeighbours {
    async fn list(&self, device: &str) -> Result<Vec<NeighEntry>> {
        let vxlan = self.0.vxlan_index(device).await?;
        let Some(index) = vxlan.keys().next().copied() else {
            return Ok(Vec::new());
        };
        let names: HashMap<u32, &str> = vxlan.iter().map(|(i, n)| (*i, n.as_str())).collect();
        let _turn = self.0.dump_lock.lock().await;
        let mut msgs = self.0.dump_neighbours(AddressFamily::Inet, Some(index)).await?;
        msgs.extend(self.0.dump_neighbours(AddressFamily::Inet6, Some(index)).await?);
        Ok(msgs.iter().filter_map(|m| parse_neighbour(m, &names)).collect())
    }

    async fn add(&self, entry: &NeighEntry) -> Result<()> {
        let index = self.0.device_index(&entry.device).await?;
        self.0
            .handle
            .neighbours()
            .add(index, entry.ip)
            .link_layer_address(&entry.mac.0)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .map_err(|e| nl_error(&format!("add neighbour {}", entry.ip), &entry.device, e))
    }

    async fn del(&self, entry: &NeighEntry) -> Result<()> {
        let family = match entry.ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        let Some(mut msg) = self.0.neighbour_message(&entry.device, family).await? else {
            return Ok(());
        };
        msg.attributes = vec![NeighbourAttribute::Destination(entry.ip.into())];
        let op = format!("delete neighbour {}", entry.ip);
        self.0.delete_neighbour(&op, &entry.device, msg).await
    }
}

/// Runs the multicast connection and forwards its link notifications until the receiver is
/// dropped or the socket fails. After an overrun (ENOBUFS: the kernel dropped notifications
/// because we read too slowly) it stops too: closing the channel is how the receiver learns
/// that it missed events and must resubscribe and resync.
async fn forward_link_events<S>(connection: impl Future<Output = ()>, mut messages: S, tx: mpsc::Sender<LinkEvent>)
where
    S: Stream<Item = (NetlinkMessage<RouteNetlinkMessage>, rtnetlink::sys::SocketAddr)> + Unpin,
{
    tokio::pin!(connection);
    loop {
        tokio::select! {
            () = &mut connection => break,
            () = tx.closed() => break,
            next = messages.next() => {
                let Some((msg, _)) = next else { break };
                if matches!(msg.payload, NetlinkPayload::Overrun(_)) {
                    tracing::warn!("link notifications lost (socket overrun); closing the channel");
                    break;
                }
                let Some(event) = link_event(msg) else { continue };
                match tx.try_send(event) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(event)) => {
                        tracing::warn!(?event, "link event queue full; dropping event");
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => break,
                }
            }
        }
    }
}

/// Maps one RTNLGRP_LINK notification to a [`LinkEvent`].
///
/// The bridge also sends AF_BRIDGE RTM_NEWLINK/RTM_DELLINK about its ports; an AF_BRIDGE
/// RTM_DELLINK means "no longer a bridge port", not "gone", so it is reported as a change.
fn link_event(msg: NetlinkMessage<RouteNetlinkMessage>) -> Option<LinkEvent> {
    match msg.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => link_name(&link).map(LinkEvent::Added),
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
            let name = link_name(&link)?;
            if link.header.interface_family == AddressFamily::Bridge {
                Some(LinkEvent::Added(name))
            } else {
                Some(LinkEvent::Removed(name))
            }
        }
        _ => None,
    }
}

fn link_name(msg: &LinkMessage) -> Option<String> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.clone()),
        _ => None,
    })
}

/// Extracts what the agent cares about from an RTM_NEWLINK; `None` without a name.
pub(crate) fn parse_link(msg: &LinkMessage) -> Option<KernelLink> {
    let mut link = KernelLink {
        name: link_name(msg)?,
        index: msg.header.index,
        kind: LinkKind::Other,
        master: None,
        up: msg.header.flags.contains(LinkFlags::Up),
        mtu: 0,
        vxlan_port: None,
        link: None,
        isolated: false,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            LinkAttribute::Link(index) => link.link = Some(*index),
            LinkAttribute::Controller(index) if *index != 0 => link.master = Some(*index),
            LinkAttribute::LinkInfo(infos) => parse_link_info(infos, &mut link),
            _ => {}
        }
    }
    Some(link)
}

fn parse_link_info(infos: &[LinkInfo], link: &mut KernelLink) {
    for info in infos {
        match info {
            LinkInfo::Kind(InfoKind::Bridge) => link.kind = LinkKind::Bridge,
            LinkInfo::Kind(InfoKind::Veth) => link.kind = LinkKind::Veth,
            // The VNI and address come from IFLA_INFO_DATA, whichever order the two arrive in.
            LinkInfo::Kind(InfoKind::Vxlan) if !matches!(link.kind, LinkKind::Vxlan { .. }) => {
                link.kind = LinkKind::Vxlan { vni: 0, local: None };
            }
            LinkInfo::Data(InfoData::Vxlan(data)) => parse_vxlan_data(data, link),
            LinkInfo::Kind(InfoKind::Vlan) if !matches!(link.kind, LinkKind::Vlan { .. }) => {
                link.kind = LinkKind::Vlan { id: 0, parent: None };
            }
            LinkInfo::Data(InfoData::Vlan(data)) => {
                let id = data.iter().find_map(|d| if let InfoVlan::Id(id) = d { Some(*id) } else { None });
                link.kind = LinkKind::Vlan { id: id.unwrap_or(0), parent: None };
            }
            LinkInfo::PortData(InfoPortData::BridgePort(port)) => {
                link.isolated = port.contains(&InfoBridgePort::Isolated(true));
            }
            _ => {}
        }
    }
}

fn parse_vxlan_data(data: &[InfoVxlan], link: &mut KernelLink) {
    let (mut vni, mut local) = (0, None);
    for item in data {
        match item {
            InfoVxlan::Id(id) => vni = *id,
            InfoVxlan::Local(ip) => local = Some(*ip),
            InfoVxlan::Port(port) => link.vxlan_port = Some(*port),
            _ => {}
        }
    }
    link.kind = LinkKind::Vxlan { vni, local };
}

/// The observed link, with the indexes of its master (and of a VLAN's parent) resolved to names.
fn resolve_master(link: &KernelLink, names: &HashMap<u32, &str>) -> Link {
    let kind = match &link.kind {
        LinkKind::Vlan { id, .. } => {
            LinkKind::Vlan { id: *id, parent: link.link.and_then(|i| names.get(&i)).map(|n| n.to_string()) }
        }
        other => other.clone(),
    };
    Link {
        name: link.name.clone(),
        index: link.index,
        kind,
        master: link.master.and_then(|i| names.get(&i)).map(|n| n.to_string()),
        up: link.up,
        mtu: link.mtu,
        isolated: link.isolated,
    }
}

/// Whether an existing device already is the VXLAN device `spec` asks for.
fn vxlan_matches(link: &KernelLink, spec: &VxlanSpec) -> bool {
    link.kind == LinkKind::Vxlan { vni: spec.vni, local: Some(spec.local) } && link.vxlan_port == Some(spec.port)
}

/// Whether an existing device already is the VLAN sub-interface `spec` asks for.
fn vlan_matches(link: &KernelLink, spec: &VlanSpec, parent_index: u32) -> bool {
    matches!(link.kind, LinkKind::Vlan { id, .. } if id == spec.id) && link.link == Some(parent_index)
}

/// The RTM_NEWLINK that creates `spec` on the parent with index `parent_index`: IFLA_IFNAME,
/// IFLA_LINK, IFLA_MTU when asked for, and IFLA_LINKINFO with kind `vlan` and IFLA_VLAN_ID.
/// It is created down, so that IPv6 can be turned off before it sends anything.
fn vlan_message(spec: &VlanSpec, parent_index: u32) -> LinkMessage {
    let mut builder = LinkVlan::new(&spec.name, parent_index, spec.id).down();
    if let Some(mtu) = spec.mtu {
        builder = builder.mtu(mtu);
    }
    builder.build()
}

fn nud_state(msg: &NeighbourMessage) -> u16 {
    u16::from(msg.header.state)
}

/// A static FDB entry with a remote VTEP on one of `vxlans`, or `None` for anything else
/// (learned or local entries, bridge-side entries, the all-zero flood entries).
fn parse_fdb(msg: &NeighbourMessage, vxlans: &HashMap<u32, &str>) -> Option<FdbEntry> {
    let device = vxlans.get(&msg.header.ifindex)?;
    if nud_state(msg) & (libc::NUD_PERMANENT | libc::NUD_NOARP) == 0 {
        return None;
    }
    let mac = neighbour_mac(msg).filter(|m| *m != MacAddr::default())?;
    let dst = msg.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(addr) => address_ip(addr),
        _ => None,
    })?;
    Some(FdbEntry { device: device.to_string(), mac, dst })
}

/// A permanent ARP/ND entry on one of `vxlans`.
pub(crate) fn parse_neighbour(msg: &NeighbourMessage, vxlans: &HashMap<u32, &str>) -> Option<NeighEntry> {
    let device = vxlans.get(&msg.header.ifindex)?;
    if nud_state(msg) & libc::NUD_PERMANENT == 0 {
        return None;
    }
    let ip = msg.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(addr) => address_ip(addr),
        _ => None,
    })?;
    Some(NeighEntry { device: device.to_string(), ip, mac: neighbour_mac(msg)? })
}

fn neighbour_mac(msg: &NeighbourMessage) -> Option<MacAddr> {
    msg.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(bytes) => bytes.as_slice().try_into().ok().map(MacAddr),
        _ => None,
    })
}

/// NDA_DST as an IP. In AF_BRIDGE messages the library cannot know the address family and
/// hands over raw bytes, so the length decides.
fn address_ip(addr: &NeighbourAddress) -> Option<IpAddr> {
    match addr {
        NeighbourAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        NeighbourAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        NeighbourAddress::Other(bytes) => match bytes.len() {
            4 => <[u8; 4]>::try_from(bytes.as_slice()).ok().map(|b| Ipv4Addr::from(b).into()),
            16 => <[u8; 16]>::try_from(bytes.as_slice()).ok().map(|b| Ipv6Addr::from(b).into()),
            _ => None,
        },
        _ => None,
    }
}

/// Writes a per-device IPv6 sysctl, used to keep infrastructure devices from sending
/// RS/DAD/MLD that would be flooded to every VTEP. It must happen before the device goes up.
///
/// The sysctl tree follows the calling thread's network namespace, which is the one the
/// netlink socket was opened in as long as the agent does not switch namespaces. A kernel
/// without IPv6 has no such file, which is fine.
fn set_ipv6_conf(device: &str, key: &str, value: &str) -> Result<()> {
    let path = format!("/proc/sys/net/ipv6/conf/{device}/{key}");
    match std::fs::write(&path, value) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io::Error::new(e.kind(), format!("{path}: {e}")).into()),
    }
}

/// The errno of a netlink NACK (positive, like `libc::ENOENT`).
pub(crate) fn errno(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|code| -code.get()),
        _ => None,
    }
}

/// Whether the error says the object (or the device it lives on) does not exist.
pub(crate) fn is_absent(err: &rtnetlink::Error) -> bool {
    matches!(errno(err), Some(libc::ENOENT | libc::ESRCH | libc::ENODEV))
}

/// Wraps a netlink failure with the operation and device, and the errno text.
pub(crate) fn nl_error(op: &str, device: &str, err: rtnetlink::Error) -> DataPlaneError {
    let detail = match errno(&err) {
        Some(code) => io::Error::from_raw_os_error(code).to_string(),
        None => err.to_string(),
    };
    let message = if device.is_empty() { format!("{op}: {detail}") } else { format!("{op} {device}: {detail}") };
    if errno(&err) == Some(libc::EOPNOTSUPP) {
        DataPlaneError::Unsupported(message)
    } else {
        DataPlaneError::Netlink(message)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;

    const BRIDGE: &str = "brqtest";
    const VXLAN: &str = "vx-test";

    /// Runs `scenario` on a thread of its own that first moves into a new, empty network
    /// namespace, so nothing touches the host's interfaces. Network namespaces are per
    /// thread, and the netlink sockets, sysctl writes and child processes of that thread all
    /// act in it. The namespace goes away with the thread and its sockets.
    ///
    /// The tests using it are `#[ignore]`d (they need root); run with `--include-ignored`
    /// (as CI does) they fail without root rather than pass.
    pub(crate) fn in_new_netns<F, Fut>(scenario: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root to create a network namespace");
        let thread = std::thread::spawn(move || {
            // SAFETY: unshare(CLONE_NEWNET) only changes the calling thread's namespace.
            let unshared = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(unshared, 0, "unshare(CLONE_NEWNET): {}", io::Error::last_os_error());
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            runtime.expect("tokio runtime").block_on(scenario());
        });
        thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// Taps come from outside the agent: here `ip` makes a veth pair (a child process of the
    /// thread acts in the thread's namespace).
    struct IpCommand;

    impl crate::contract::Outside for IpCommand {
        fn add_tap(&self, name: &str) {
            let peer = format!("{name}p");
            let status = std::process::Command::new("ip")
                .args(["link", "add", name, "type", "veth", "peer", "name", &peer])
                .status()
                .expect("ip runs");
            assert!(status.success(), "ip link add {name}");
        }
    }

    #[test]
    #[ignore = "needs root (CI runs it)"]
    fn the_kernel_keeps_the_contract() {
        in_new_netns(|| async {
            let dp = KernelDataPlane::new().await.unwrap();
            dp.links().ensure_bridge("brqlo", None).await.unwrap();
            dp.links.0.set_up("lo").await.unwrap();
            dp.links().delete("brqlo").await.unwrap();
            crate::contract::run(&dp, &IpCommand).await;
        });
    }

    fn spec(vni: u32) -> VxlanSpec {
        VxlanSpec { name: VXLAN.into(), vni, local: Ipv4Addr::LOCALHOST, port: 4789 }
    }

    fn mac(last: u8) -> MacAddr {
        MacAddr([0xfa, 0x16, 0x3e, 0, 0, last])
    }

    fn fdb_entry() -> FdbEntry {
        FdbEntry { device: VXLAN.into(), mac: mac(1), dst: Ipv4Addr::new(192, 0, 2, 10).into() }
    }

    fn neighbours() -> [NeighEntry; 2] {
        [
            NeighEntry { device: VXLAN.into(), ip: Ipv4Addr::new(10, 0, 0, 5).into(), mac: mac(1) },
            NeighEntry { device: VXLAN.into(), ip: "fd00::5".parse().unwrap(), mac: mac(1) },
        ]
    }

    /// Neither device has an IPv6 address, so neither can send DAD, RS or MLD. (`thread-self`:
    /// `/proc/self/net` would show the main thread's namespace.)
    fn assert_no_ipv6_address(devices: &[&str]) {
        let addrs = std::fs::read_to_string("/proc/thread-self/net/if_inet6").unwrap();
        for line in addrs.lines() {
            let dev = line.split_whitespace().last().unwrap_or_default();
            assert!(!devices.contains(&dev), "unexpected IPv6 address: {line}");
        }
    }

    fn sysctl(path: &str) -> String {
        std::fs::read_to_string(format!("/proc/sys/net/{path}")).unwrap().trim().to_string()
    }

    /// Builds a bridge with a VXLAN port and entries, and checks it is all observed.
    async fn build_network(dp: &KernelDataPlane) -> Observed {
        dp.links().ensure_bridge(BRIDGE, Some(1400)).await.unwrap();
        dp.links().ensure_vxlan(&spec(4242)).await.unwrap();
        dp.links().attach(VXLAN, BRIDGE).await.unwrap();
        dp.fdb().add(&fdb_entry()).await.unwrap();
        for n in neighbours() {
            dp.neighbours().add(&n).await.unwrap();
        }

        // Concurrent dumps on one socket would get EBUSY without the dump lock.
        let (obs, again) = tokio::join!(dp.observe(), dp.observe());
        let obs = obs.unwrap();
        assert_eq!(obs, again.unwrap());

        let bridge = obs.link(BRIDGE).expect("bridge observed");
        assert_eq!((&bridge.kind, bridge.up, bridge.mtu), (&LinkKind::Bridge, true, 1400));
        let vx = obs.link(VXLAN).expect("vxlan observed");
        let kind = LinkKind::Vxlan { vni: 4242, local: Some(Ipv4Addr::LOCALHOST) };
        assert_eq!((&vx.kind, vx.master.as_deref(), vx.up), (&kind, Some(BRIDGE), true));
        // 127.0.0.1 lives on lo, which therefore is the underlay that sets the MTU.
        assert_eq!(vx.mtu, obs.link("lo").unwrap().mtu - 50);
        assert_eq!(obs.fdb, vec![fdb_entry()]);
        assert_eq!(obs.neighbours.len(), 2);
        assert!(neighbours().iter().all(|n| obs.neighbours.contains(n)));
        assert_eq!(sysctl(&format!("ipv6/conf/{BRIDGE}/disable_ipv6")), "1");
        assert_eq!(sysctl(&format!("ipv6/conf/{VXLAN}/addr_gen_mode")), "1");
        assert_no_ipv6_address(&[BRIDGE, VXLAN]);
        obs
    }

    /// What an agent restart does: a new connection ensures everything again, and nothing is
    /// recreated or changed.
    async fn restart_keeps_devices(before: &Observed) {
        let dp = KernelDataPlane::new().await.unwrap();
        dp.links().ensure_bridge(BRIDGE, Some(1400)).await.unwrap();
        dp.links().ensure_vxlan(&spec(4242)).await.unwrap();
        dp.links().attach(VXLAN, BRIDGE).await.unwrap();
        let after = dp.observe().await.unwrap();
        assert_eq!(after.link(VXLAN).unwrap().index, before.link(VXLAN).unwrap().index);
        assert_eq!(after.link(BRIDGE).unwrap().index, before.link(BRIDGE).unwrap().index);
        assert_eq!(after.fdb, before.fdb, "entries survive because the device was kept");
    }

    async fn delete_entries(dp: &KernelDataPlane) {
        let stale = FdbEntry { dst: Ipv4Addr::new(192, 0, 2, 99).into(), ..fdb_entry() };
        dp.fdb().del(&stale).await.unwrap();
        assert_eq!(dp.observe().await.unwrap().fdb, vec![fdb_entry()], "other dst untouched");
        for _ in 0..2 {
            dp.fdb().del(&fdb_entry()).await.unwrap();
            for n in neighbours() {
                dp.neighbours().del(&n).await.unwrap();
            }
        }
        let obs = dp.observe().await.unwrap();
        assert!(obs.fdb.is_empty() && obs.neighbours.is_empty(), "{obs:?}");
    }

    async fn mismatch_recreates(dp: &KernelDataPlane, before: &Observed) {
        dp.links().ensure_vxlan(&spec(4243)).await.unwrap();
        let obs = dp.observe().await.unwrap();
        let vx = obs.link(VXLAN).unwrap();
        assert_ne!(vx.index, before.link(VXLAN).unwrap().index);
        assert_eq!(vx.kind, LinkKind::Vxlan { vni: 4243, local: Some(Ipv4Addr::LOCALHOST) });
        assert_eq!(vx.master, None);
    }

    async fn delete_links(dp: &KernelDataPlane) {
        for _ in 0..2 {
            dp.links().delete(VXLAN).await.unwrap();
            dp.links().delete(BRIDGE).await.unwrap();
        }
        let obs = dp.observe().await.unwrap();
        assert!(obs.link(VXLAN).is_none() && obs.link(BRIDGE).is_none());
        let missing = dp.fdb().add(&fdb_entry()).await;
        assert!(matches!(missing, Err(DataPlaneError::NoSuchLink(n)) if n == VXLAN));
        let missing = dp.links().attach(VXLAN, BRIDGE).await;
        assert!(matches!(missing, Err(DataPlaneError::NoSuchLink(_))));
        dp.fdb().del(&fdb_entry()).await.unwrap();
        dp.neighbours().del(&neighbours()[0]).await.unwrap();
    }

    /// Reads events until the bridge has been both added and removed.
    async fn expect_bridge_events(events: &mut mpsc::Receiver<LinkEvent>) {
        let mut added = false;
        loop {
            let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
                .await
                .expect("link event within 5 s")
                .expect("event channel open");
            match event {
                LinkEvent::Added(name) if name == BRIDGE => added = true,
                LinkEvent::Removed(name) if name == BRIDGE => break,
                _ => {}
            }
        }
        assert!(added, "RTM_NEWLINK for {BRIDGE} reported");
    }

    fn fdb_message(ifindex: u32, state: NeighbourState, mac: MacAddr, dst: &[u8]) -> NeighbourMessage {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        msg.header.ifindex = ifindex;
        msg.header.state = state;
        msg.attributes = vec![NeighbourAttribute::LinkLayerAddress(mac.0.to_vec())];
        if !dst.is_empty() {
            let dst = NeighbourAddress::Other(dst.to_vec());
            msg.attributes.push(NeighbourAttribute::Destination(dst));
        }
        msg
    }

    #[test]
    fn fdb_dump_keeps_static_remote_entries_on_vxlans_only() {
        let vxlans = HashMap::from([(3, VXLAN)]);
        let dst = [192, 0, 2, 10];
        let parse = |m: NeighbourMessage| parse_fdb(&m, &vxlans);
        let noarp = parse(fdb_message(3, NeighbourState::Noarp, mac(1), &dst));
        assert_eq!(noarp, Some(fdb_entry()));
        let v6 = parse(fdb_message(3, NeighbourState::Permanent, mac(1), &[0xfd; 16]));
        assert_eq!(v6.unwrap().dst, "fdfd:fdfd:fdfd:fdfd:fdfd:fdfd:fdfd:fdfd".parse::<IpAddr>().unwrap());
        // Learned, on another device, without a remote, or the all-zero flood entry.
        assert_eq!(parse(fdb_message(3, NeighbourState::Reachable, mac(1), &dst)), None);
        assert_eq!(parse(fdb_message(2, NeighbourState::Permanent, mac(1), &dst)), None);
        assert_eq!(parse(fdb_message(3, NeighbourState::Permanent, mac(1), &[])), None);
        assert_eq!(parse(fdb_message(3, NeighbourState::Permanent, MacAddr::default(), &dst)), None);
    }

    #[test]
    fn bridge_port_removal_is_a_change_not_a_removal() {
        let notification = |family, del: bool| {
            let mut link = LinkMessage::default();
            link.header.interface_family = family;
            link.attributes.push(LinkAttribute::IfName("tap1".into()));
            let msg = if del { RouteNetlinkMessage::DelLink(link) } else { RouteNetlinkMessage::NewLink(link) };
            link_event(NetlinkMessage::from(msg))
        };
        let added = Some(LinkEvent::Added("tap1".into()));
        assert_eq!(notification(AddressFamily::Unspec, false), added);
        assert_eq!(notification(AddressFamily::Bridge, true), added);
        let removed = Some(LinkEvent::Removed("tap1".into()));
        assert_eq!(notification(AddressFamily::Unspec, true), removed);
    }

    fn vlan_spec(mtu: Option<u32>) -> VlanSpec {
        VlanSpec { name: "eth1.100".into(), parent: "eth1".into(), id: 100, mtu }
    }

    #[test]
    fn vlan_message_asks_for_an_8021q_sub_interface_of_the_parent() {
        let msg = vlan_message(&vlan_spec(Some(1400)), 7);
        let attrs = &msg.attributes;
        assert!(attrs.contains(&LinkAttribute::IfName("eth1.100".into())));
        assert!(attrs.contains(&LinkAttribute::Link(7)), "IFLA_LINK is the parent: {attrs:?}");
        assert!(attrs.contains(&LinkAttribute::Mtu(1400)));
        let info = attrs.iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(info) => Some(info.clone()),
            _ => None,
        });
        let info = info.expect("IFLA_LINKINFO");
        assert!(info.contains(&LinkInfo::Kind(InfoKind::Vlan)), "{info:?}");
        assert!(info.contains(&LinkInfo::Data(InfoData::Vlan(vec![InfoVlan::Id(100)]))), "{info:?}");
        assert!(!msg.header.flags.contains(LinkFlags::Up), "created down");

        let inherit = vlan_message(&vlan_spec(None), 7);
        assert!(!inherit.attributes.iter().any(|a| matches!(a, LinkAttribute::Mtu(_))), "no MTU: the parent's");
    }

    #[test]
    fn observed_vlan_names_its_id_and_parent() {
        let msg = vlan_message(&vlan_spec(None), 7);
        let mut parsed = parse_link(&msg).unwrap();
        parsed.index = 8;
        assert_eq!(parsed.kind, LinkKind::Vlan { id: 100, parent: None });
        assert!(vlan_matches(&parsed, &vlan_spec(None), 7));
        assert!(!vlan_matches(&parsed, &vlan_spec(None), 9), "another parent");
        assert!(!vlan_matches(&parsed, &VlanSpec { id: 101, ..vlan_spec(None) }, 7), "another id");
        let names = HashMap::from([(7, "eth1"), (8, "eth1.100")]);
        let link = resolve_master(&parsed, &names);
        assert_eq!(link.kind, LinkKind::Vlan { id: 100, parent: Some("eth1".into()) });
    }

    /// On a kernel with 802.1Q a VLAN sub-interface is created once and observed; on one
    /// without, creation fails as unsupported and leaves nothing behind.
    async fn vlan_on_a_dummy_parent(dp: &KernelDataPlane) {
        // A bridge serves as parent: it needs no module beyond what the agent needs anyway.
        dp.links().ensure_bridge("brqparent", None).await.unwrap();
        let spec = VlanSpec { parent: "brqparent".into(), ..vlan_spec(None) };
        match dp.links().ensure_vlan(&spec).await {
            Ok(()) => {
                dp.links().ensure_vlan(&spec).await.unwrap();
                let obs = dp.observe().await.unwrap();
                let vlan = obs.link("eth1.100").expect("vlan observed");
                assert_eq!(vlan.kind, LinkKind::Vlan { id: 100, parent: Some("brqparent".into()) });
                assert!(vlan.up);
                eprintln!("this kernel supports 802.1Q");
            }
            Err(DataPlaneError::Unsupported(reason)) => {
                eprintln!("this kernel has no 802.1Q: {reason}");
                assert!(dp.observe().await.unwrap().link("eth1.100").is_none());
            }
            Err(e) => panic!("unexpected error creating a vlan: {e}"),
        }
        let missing = dp.links().ensure_vlan(&VlanSpec { parent: "nosuch0".into(), ..vlan_spec(None) }).await;
        assert!(matches!(missing, Err(DataPlaneError::NoSuchLink(n)) if n == "nosuch0"));
        dp.links().delete("eth1.100").await.unwrap();
        dp.links().delete("brqparent").await.unwrap();
    }

    #[test]
    #[ignore = "needs root (CI runs it)"]
    fn kernel_data_plane_in_a_private_netns() {
        in_new_netns(|| async {
            let dp = KernelDataPlane::new().await.unwrap();
            dp.links.0.set_up("lo").await.unwrap();
            let mut events = dp.links().events().await.unwrap();

            let built = build_network(&dp).await;
            restart_keeps_devices(&built).await;
            delete_entries(&dp).await;
            mismatch_recreates(&dp, &built).await;
            delete_links(&dp).await;
            expect_bridge_events(&mut events).await;
            vlan_on_a_dummy_parent(&dp).await;
        });
    }
}
