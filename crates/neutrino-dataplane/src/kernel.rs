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

use futures::{Stream, StreamExt, TryStreamExt};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::link::{
    BridgeStpState, InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVxlan, MulticastGroup};
use tokio::sync::mpsc;

use crate::{
    DataPlane, DataPlaneError, FdbEntry, Link, LinkEvent, LinkKind, MacAddr, NeighEntry, Observed,
    Result, VxlanSpec,
};

/// Capacity of each [`DataPlane::link_events`] channel. A consumer that falls this far behind
/// has plenty of pending events to trigger a full resync, so further events are dropped.
const EVENT_QUEUE: usize = 1024;

/// [`DataPlane`] backed by rtnetlink.
pub struct KernelDataPlane {
    handle: Handle,
    /// The kernel runs one dump at a time per netlink socket and answers a second one with
    /// EBUSY, so concurrent `observe` calls take turns.
    dump_lock: tokio::sync::Mutex<()>,
}

/// A link as the kernel reports it, before master indexes are resolved to names.
#[derive(Debug, Clone)]
struct KernelLink {
    name: String,
    index: u32,
    kind: LinkKind,
    master: Option<u32>,
    up: bool,
    mtu: u32,
    /// UDP destination port, for VXLAN devices.
    vxlan_port: Option<u16>,
}

impl KernelDataPlane {
    /// Opens an rtnetlink connection in the network namespace of the calling thread and runs
    /// it on the current tokio runtime. A netlink socket stays bound to the namespace it was
    /// created in, so this is the namespace every later operation acts on.
    pub async fn new() -> Result<Self> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        Ok(Self { handle, dump_lock: tokio::sync::Mutex::new(()) })
    }

    /// The link called `name`, or `None` if there is none.
    async fn get_link(&self, name: &str) -> Result<Option<KernelLink>> {
        let mut replies = self.handle.link().get().match_name(name).execute();
        match replies.try_next().await {
            Ok(Some(msg)) => Ok(parse_link(&msg)),
            Ok(None) => Ok(None),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(nl_error("get link", name, e)),
        }
    }

    /// Like [`Self::get_link`], but a missing link is an error.
    async fn require_link(&self, name: &str) -> Result<KernelLink> {
        self.get_link(name).await?.ok_or_else(|| DataPlaneError::NoSuchLink(name.to_string()))
    }

    async fn dump_links(&self) -> Result<Vec<KernelLink>> {
        let msgs: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| nl_error("dump links", "", e))?;
        Ok(msgs.iter().filter_map(parse_link).collect())
    }

    async fn dump_neighbours(&self, family: AddressFamily) -> Result<Vec<NeighbourMessage>> {
        self.handle
            .neighbours()
            .get()
            .set_address_family(family)
            .execute()
            .try_collect()
            .await
            .map_err(|e| nl_error(&format!("dump {family:?} neighbours"), "", e))
    }

    /// Sends RTM_SETLINK for `name` with the changes in `msg`.
    async fn set_link(&self, op: &str, name: &str, msg: LinkMessage) -> Result<()> {
        self.handle.link().set(msg).execute().await.map_err(|e| nl_error(op, name, e))
    }

    async fn set_up(&self, name: &str) -> Result<()> {
        self.set_link("set up", name, LinkUnspec::new_with_name(name).up().build()).await
    }

    /// Sends RTM_NEWLINK (create, exclusive). A link that appeared in the meantime counts as
    /// created: the caller looked it up just before, so this is a race with another creator.
    async fn create_link(&self, op: &str, name: &str, msg: LinkMessage) -> Result<()> {
        match self.handle.link().add(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(nl_error(op, name, e)),
        }
    }

    /// Creates the bridge down, turns IPv6 off, then brings it up, so that it never sends
    /// router solicitations or MLD reports.
    async fn create_bridge(&self, name: &str, mtu: Option<u32>) -> Result<()> {
        let mut builder =
            LinkBridge::new(name).down().stp_state(BridgeStpState::Disabled).forward_delay(0);
        if let Some(mtu) = mtu {
            builder = builder.mtu(mtu);
        }
        self.create_link("create bridge", name, builder.build()).await?;
        disable_ipv6(name)?;
        self.set_up(name).await
    }

    /// Creates the VXLAN device down, turns IPv6 off, then brings it up. No group or remote:
    /// nothing floods until the agent adds FDB entries. Learning is off because the agent
    /// knows every MAC, and `proxy` answers ARP/ND locally from the neighbour table.
    async fn create_vxlan(&self, spec: &VxlanSpec) -> Result<()> {
        let msg = LinkVxlan::new(&spec.name, spec.vni)
            .local(spec.local)
            // The packet library emits IFLA_VXLAN_PORT in network byte order itself.
            .port(spec.port)
            .learning(false)
            .proxy(true)
            .build();
        self.create_link("create vxlan", &spec.name, msg).await?;
        disable_ipv6(&spec.name)?;
        self.set_up(&spec.name).await
    }

    /// Resolves the device of an entry to add; the device must exist.
    async fn device_index(&self, name: &str) -> Result<u32> {
        Ok(self.require_link(name).await?.index)
    }

    /// Sends RTM_DELNEIGH; an entry (or device) that is already gone is success.
    async fn delete_neighbour(&self, op: &str, device: &str, msg: NeighbourMessage) -> Result<()> {
        match self.handle.neighbours().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if is_absent(&e) => Ok(()),
            Err(e) => Err(nl_error(op, device, e)),
        }
    }

    /// Builds the RTM_DELNEIGH for `device`, or `None` when the device is gone (and with it
    /// every entry on it).
    async fn neighbour_message(
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
    async fn observe(&self) -> Result<Observed> {
        let _turn = self.dump_lock.lock().await;
        let raw = self.dump_links().await?;
        let fdb = self.dump_neighbours(AddressFamily::Bridge).await?;
        let mut neigh = self.dump_neighbours(AddressFamily::Inet).await?;
        neigh.extend(self.dump_neighbours(AddressFamily::Inet6).await?);

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

    async fn ensure_bridge(&self, name: &str, mtu: Option<u32>) -> Result<()> {
        let Some(link) = self.get_link(name).await? else {
            return self.create_bridge(name, mtu).await;
        };
        if link.kind != LinkKind::Bridge {
            tracing::warn!(%name, kind = ?link.kind, "link is not a bridge; recreating it");
            self.delete_link(name).await?;
            return self.create_bridge(name, mtu).await;
        }
        let mtu = mtu.filter(|&m| m != link.mtu);
        if link.up && mtu.is_none() {
            return Ok(());
        }
        let mut msg = LinkUnspec::new_with_index(link.index).up();
        if let Some(mtu) = mtu {
            msg = msg.mtu(mtu);
        }
        self.set_link("update bridge", name, msg.build()).await
    }

    async fn ensure_vxlan(&self, spec: &VxlanSpec) -> Result<()> {
        match self.get_link(&spec.name).await? {
            None => self.create_vxlan(spec).await,
            Some(link) if vxlan_matches(&link, spec) => {
                if link.up {
                    Ok(())
                } else {
                    self.set_up(&spec.name).await
                }
            }
            Some(link) => {
                // VNI, local address and port cannot be changed on a live device.
                tracing::info!(name = %spec.name, have = ?link.kind, want = ?spec, "recreating vxlan");
                self.delete_link(&spec.name).await?;
                self.create_vxlan(spec).await
            }
        }
    }

    async fn attach(&self, link: &str, bridge: &str) -> Result<()> {
        let port = self.require_link(link).await?;
        let master = self.require_link(bridge).await?;
        let enslaved = port.master == Some(master.index);
        if enslaved && port.up {
            return Ok(());
        }
        let mut msg = LinkUnspec::new_with_index(port.index).up();
        if !enslaved {
            msg = msg.controller(master.index);
        }
        self.set_link(&format!("attach to {bridge}"), link, msg.build()).await
    }

    async fn delete_link(&self, name: &str) -> Result<()> {
        let msg = LinkUnspec::new_with_name(name).build();
        match self.handle.link().del_with_message(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if is_absent(&e) => Ok(()),
            Err(e) => Err(nl_error("delete link", name, e)),
        }
    }

    async fn add_fdb(&self, entry: &FdbEntry) -> Result<()> {
        let index = self.device_index(&entry.device).await?;
        self.handle
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

    async fn del_fdb(&self, entry: &FdbEntry) -> Result<()> {
        let Some(mut msg) = self.neighbour_message(&entry.device, AddressFamily::Bridge).await?
        else {
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
        self.delete_neighbour(&op, &entry.device, msg).await
    }

    async fn add_neighbour(&self, entry: &NeighEntry) -> Result<()> {
        let index = self.device_index(&entry.device).await?;
        self.handle
            .neighbours()
            .add(index, entry.ip)
            .link_layer_address(&entry.mac.0)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .map_err(|e| nl_error(&format!("add neighbour {}", entry.ip), &entry.device, e))
    }

    async fn del_neighbour(&self, entry: &NeighEntry) -> Result<()> {
        let family = match entry.ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        let Some(mut msg) = self.neighbour_message(&entry.device, family).await? else {
            return Ok(());
        };
        msg.attributes = vec![NeighbourAttribute::Destination(entry.ip.into())];
        let op = format!("delete neighbour {}", entry.ip);
        self.delete_neighbour(&op, &entry.device, msg).await
    }

    /// Opens a second netlink socket (in the calling thread's namespace) bound to the
    /// RTNLGRP_LINK multicast group. Unlike the request socket it receives unsolicited
    /// messages, so it must not be shared with requests.
    async fn link_events(&self) -> Result<mpsc::Receiver<LinkEvent>> {
        let (connection, _, messages) = rtnetlink::new_multicast_connection(&[MulticastGroup::Link])?;
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        tokio::spawn(forward_link_events(connection, messages, tx));
        Ok(rx)
    }
}

/// Runs the multicast connection and forwards its link notifications until the receiver is
/// dropped or the socket fails (for example ENOBUFS after an overflow; the receiver then sees
/// the channel close and should resubscribe and resync).
async fn forward_link_events<S>(
    connection: impl Future<Output = ()>,
    mut messages: S,
    tx: mpsc::Sender<LinkEvent>,
) where
    S: Stream<Item = (NetlinkMessage<RouteNetlinkMessage>, rtnetlink::sys::SocketAddr)> + Unpin,
{
    tokio::pin!(connection);
    loop {
        tokio::select! {
            () = &mut connection => break,
            () = tx.closed() => break,
            next = messages.next() => {
                let Some((msg, _)) = next else { break };
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
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
            link_name(&link).map(LinkEvent::Added)
        }
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
fn parse_link(msg: &LinkMessage) -> Option<KernelLink> {
    let mut link = KernelLink {
        name: link_name(msg)?,
        index: msg.header.index,
        kind: LinkKind::Other,
        master: None,
        up: msg.header.flags.contains(LinkFlags::Up),
        mtu: 0,
        vxlan_port: None,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
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
            LinkInfo::Kind(InfoKind::Vxlan) => {
                if !matches!(link.kind, LinkKind::Vxlan { .. }) {
                    link.kind = LinkKind::Vxlan { vni: 0, local: None };
                }
            }
            LinkInfo::Data(InfoData::Vxlan(data)) => parse_vxlan_data(data, link),
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

fn resolve_master(link: &KernelLink, names: &HashMap<u32, &str>) -> Link {
    Link {
        name: link.name.clone(),
        index: link.index,
        kind: link.kind.clone(),
        master: link.master.and_then(|i| names.get(&i)).map(|n| n.to_string()),
        up: link.up,
        mtu: link.mtu,
    }
}

/// Whether an existing device already is the VXLAN device `spec` asks for.
fn vxlan_matches(link: &KernelLink, spec: &VxlanSpec) -> bool {
    link.kind == LinkKind::Vxlan { vni: spec.vni, local: Some(spec.local) }
        && link.vxlan_port == Some(spec.port)
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
fn parse_neighbour(msg: &NeighbourMessage, vxlans: &HashMap<u32, &str>) -> Option<NeighEntry> {
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

/// Turns IPv6 off on an infrastructure device so it sends no RS/DAD/MLD that would be flooded
/// to every VTEP. The sysctl tree follows the calling thread's network namespace, which is the
/// one the netlink socket was opened in as long as the agent does not switch namespaces. A
/// kernel without IPv6 has no such file, which is fine.
fn disable_ipv6(name: &str) -> Result<()> {
    let path = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
    match std::fs::write(&path, "1") {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io::Error::new(e.kind(), format!("{path}: {e}")).into()),
    }
}

/// The errno of a netlink NACK (positive, like `libc::ENOENT`).
fn errno(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|code| -code.get()),
        _ => None,
    }
}

/// Whether the error says the object (or the device it lives on) does not exist.
fn is_absent(err: &rtnetlink::Error) -> bool {
    matches!(errno(err), Some(libc::ENOENT | libc::ESRCH | libc::ENODEV))
}

/// Wraps a netlink failure with the operation and device, and the errno text.
fn nl_error(op: &str, device: &str, err: rtnetlink::Error) -> DataPlaneError {
    let detail = match errno(&err) {
        Some(code) => io::Error::from_raw_os_error(code).to_string(),
        None => err.to_string(),
    };
    let message = if device.is_empty() {
        format!("{op}: {detail}")
    } else {
        format!("{op} {device}: {detail}")
    };
    if errno(&err) == Some(libc::EOPNOTSUPP) {
        DataPlaneError::Unsupported(message)
    } else {
        DataPlaneError::Netlink(message)
    }
}
