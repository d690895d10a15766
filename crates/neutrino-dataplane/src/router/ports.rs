//! A router's ports: veth pairs whose inside end is in the router's namespace (with the
//! router's MAC and addresses) and whose outside end is a port of a bridge of the host.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{LinkUnspec, LinkVeth};

use super::RouterNs;
use crate::kernel::{errno, is_absent, nl_error, parse_link, KernelLink, Netlink};
use crate::netns;
use crate::{DataPlaneError, LinkKind, MacAddr, ObservedRouterPort, Result, RouterPortSpec};

/// A link of a router's namespace, with its MAC.
pub(super) struct PortLink {
    pub(super) link: KernelLink,
    pub(super) mac: MacAddr,
}

fn parse_port_link(msg: &LinkMessage) -> Option<PortLink> {
    let link = parse_link(msg)?;
    let mac = msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(bytes) => <[u8; 6]>::try_from(bytes.as_slice()).ok().map(MacAddr),
        _ => None,
    });
    Some(PortLink { link, mac: mac.unwrap_or_default() })
}

/// The link `name` in the router's namespace.
pub(super) async fn get_port_link(nl: &Netlink, name: &str) -> Result<Option<PortLink>> {
    let mut replies = nl.handle.link().get().match_name(name).execute();
    match replies.try_next().await {
        Ok(Some(msg)) => Ok(parse_port_link(&msg)),
        Ok(None) => Ok(None),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) => Err(nl_error("get link", name, e)),
    }
}

async fn dump_port_links(nl: &Netlink) -> Result<Vec<PortLink>> {
    let _turn = nl.dump_lock.lock().await;
    let msgs: Vec<LinkMessage> =
        nl.handle.link().get().execute().try_collect().await.map_err(|e| nl_error("dump links", "", e))?;
    Ok(msgs.iter().filter_map(parse_port_link).collect())
}

/// The global-scope addresses of the namespace (of the link `index` only, when given), each
/// with the index of its link.
async fn dump_addresses(nl: &Netlink, index: Option<u32>) -> Result<Vec<(u32, IpNet)>> {
    let _turn = nl.dump_lock.lock().await;
    let mut request = nl.handle.address().get();
    if let Some(index) = index {
        // Filtered by the kernel (a strict socket honours ifa_index in a dump request).
        request.message_mut().header.index = index;
        request = request.set_link_index_filter(index);
    }
    let msgs: Vec<AddressMessage> =
        request.execute().try_collect().await.map_err(|e| nl_error("dump addresses", "", e))?;
    Ok(msgs.iter().filter_map(|m| Some((m.header.index, global_address(m)?))).collect())
}

/// The address with its prefix length of a global-scope entry (not IPv6 link-local, not
/// loopback). IFA_LOCAL is the address; IFA_ADDRESS differs from it only on point-to-point
/// links, where it is the peer's.
pub(super) fn global_address(msg: &AddressMessage) -> Option<IpNet> {
    if msg.header.scope != AddressScope::Universe {
        return None;
    }
    let local = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let address = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(ip) => Some(*ip),
        _ => None,
    });
    IpNet::new(local.or(address)?, msg.header.prefix_len).ok()
}

/// Every link of the router's namespace but `lo`, with its global addresses, sorted.
pub(super) async fn observe(router: &RouterNs) -> Result<Vec<ObservedRouterPort>> {
    let links = dump_port_links(&router.netlink).await?;
    let addresses = dump_addresses(&router.netlink, None).await?;
    let mut ports: Vec<ObservedRouterPort> = links
        .into_iter()
        .filter(|l| l.link.name != "lo")
        .map(|l| {
            let mut mine: Vec<IpNet> =
                addresses.iter().filter(|(index, _)| *index == l.link.index).map(|(_, net)| *net).collect();
            mine.sort();
            ObservedRouterPort { name: l.link.name, mac: l.mac, mtu: l.link.mtu, up: l.link.up, addresses: mine }
        })
        .collect();
    ports.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ports)
}

/// Deletes every veth of the router's namespace (each takes its outside end along).
pub(super) async fn delete_all(router: &RouterNs) -> Result<()> {
    for port in dump_port_links(&router.netlink).await? {
        if port.link.kind == LinkKind::Veth {
            router.netlink.delete_link(&port.link.name).await?;
        }
    }
    Ok(())
}

/// Creates or corrects the port `spec`; see [`crate::Routers::ensure_port`].
pub(super) async fn ensure(
    host: &Netlink,
    host_netns: &Arc<File>,
    router: &RouterNs,
    spec: &RouterPortSpec,
) -> Result<()> {
    let bridge = host.require_link(&spec.bridge).await?;
    let inside = get_port_link(&router.netlink, &spec.name).await?;
    let outside = host.get_link(&spec.outside).await?;
    let (inside, outside) = match (inside, outside) {
        // A veth pair with both names, whose ends are each other's peer (IFLA_LINK).
        (Some(i), Some(o))
            if i.link.kind == LinkKind::Veth && o.kind == LinkKind::Veth && i.link.link == Some(o.index) =>
        {
            (i, o)
        }
        (inside, outside) => {
            if inside.is_some() || outside.is_some() {
                tracing::info!(namespace = %router.name, port = %spec.name, "recreating a broken router port");
            }
            if inside.is_some() {
                router.netlink.delete_link(&spec.name).await?;
            }
            if outside.is_some() {
                host.delete_link(&spec.outside).await?;
            }
            create(host, host_netns, router, spec).await?;
            let inside = get_port_link(&router.netlink, &spec.name).await?;
            (
                inside.ok_or_else(|| DataPlaneError::NoSuchLink(spec.name.clone()))?,
                host.require_link(&spec.outside).await?,
            )
        }
    };
    converge_addresses(router, inside.link.index, &spec.addresses).await?;

    let mut change = LinkUnspec::new_with_index(inside.link.index);
    let mut changed = false;
    if inside.mac != spec.mac {
        change = change.address(spec.mac.0.to_vec());
        changed = true;
    }
    if inside.link.mtu != spec.mtu {
        change = change.mtu(spec.mtu);
        changed = true;
    }
    if !inside.link.up {
        change = change.up();
        changed = true;
    }
    if changed {
        router.netlink.set_link("update router port", &spec.name, change.build()).await?;
    }

    let attached = outside.master == Some(bridge.index);
    let mut change = LinkUnspec::new_with_index(outside.index);
    let mut changed = false;
    if outside.mtu != spec.mtu {
        change = change.mtu(spec.mtu);
        changed = true;
    }
    if !attached {
        change = change.controller(bridge.index);
        changed = true;
    }
    if changed {
        host.set_link(&format!("attach to {}", spec.bridge), &spec.outside, change.build()).await?;
    }
    // Isolated before it goes up (a port attached anew has the bridge's defaults), so a leg
    // that must not reach the uplink never does, not even with its first MLD report.
    let isolated = attached && outside.isolated;
    if spec.isolated != isolated {
        host.set_isolated(&spec.outside, outside.index, spec.isolated).await?;
    }
    if !outside.up {
        host.set_up(&spec.outside).await?;
    }
    Ok(())
}

/// Creates the veth pair, down: the outside end in the host's namespace, the inside end
/// directly in the router's (IFLA_NET_NS_FD on the peer) with its MAC and MTU. The outside end
/// gets no IPv6 (it is a bridge port, and must not send router solicitations, MLD or DAD into
/// the network), which must be set before it goes up.
async fn create(host: &Netlink, host_netns: &Arc<File>, router: &RouterNs, spec: &RouterPortSpec) -> Result<()> {
    let peer = LinkUnspec::new_with_name(&spec.name)
        .address(spec.mac.0.to_vec())
        .mtu(spec.mtu)
        .setns_by_fd(router.netns.as_raw_fd())
        .build();
    let msg = LinkVeth::new(&spec.outside, &spec.name)
        .mtu(spec.mtu)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    host.create_link("create router port", &spec.outside, msg).await?;
    let key = format!("ipv6/conf/{}/disable_ipv6", spec.outside);
    netns::on_thread(Some(host_netns.clone()), move || netns::converge_sysctls(&[(key.as_str(), "1")])).await?;
    Ok(())
}

/// Makes the global addresses of the link `index` exactly `want` (link-local ones stay).
/// Stale ones go first, so that a prefix length change is a replacement.
async fn converge_addresses(router: &RouterNs, index: u32, want: &[IpNet]) -> Result<()> {
    let nl = &router.netlink;
    let have: BTreeSet<IpNet> = dump_addresses(nl, Some(index)).await?.into_iter().map(|(_, net)| net).collect();
    let want: BTreeSet<IpNet> = want.iter().copied().collect();
    for net in have.difference(&want) {
        match nl.handle.address().del(address_message(index, *net)).execute().await {
            Ok(()) => {}
            Err(e) if is_absent(&e) || errno(&e) == Some(libc::EADDRNOTAVAIL) => {}
            Err(e) => return Err(nl_error(&format!("delete address {net}"), &router.name, e)),
        }
    }
    for net in want.difference(&have) {
        let mut request = nl.handle.address().add(index, net.addr(), net.prefix_len());
        if net.addr().is_ipv6() {
            // The same gateway address is on this router on every host: no DAD (which would
            // also leave it tentative, unusable, for a second).
            let msg = request.message_mut();
            msg.header.flags = AddressHeaderFlags::Nodad;
            msg.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match request.execute().await {
            Ok(()) => {}
            Err(e) if errno(&e) == Some(libc::EEXIST) => {}
            Err(e) => return Err(nl_error(&format!("add address {net}"), &router.name, e)),
        }
    }
    Ok(())
}

/// The RTM_DELADDR for `net` on the link `index`.
fn address_message(index: u32, net: IpNet) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = match net.addr() {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    msg.header.prefix_len = net.prefix_len();
    msg.header.index = index;
    msg.attributes = vec![AddressAttribute::Local(net.addr()), AddressAttribute::Address(net.addr())];
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_global_addresses_are_observed_by_their_local_address() {
        let mut msg = address_message(3, "192.0.2.1/24".parse().unwrap());
        assert_eq!(global_address(&msg), Some("192.0.2.1/24".parse().unwrap()));
        // Point-to-point: IFA_ADDRESS is the peer.
        msg.attributes = vec![
            AddressAttribute::Address("192.0.2.9".parse().unwrap()),
            AddressAttribute::Local("192.0.2.1".parse().unwrap()),
        ];
        assert_eq!(global_address(&msg), Some("192.0.2.1/24".parse().unwrap()));
        let mut link_local = address_message(3, "fe80::1/64".parse().unwrap());
        link_local.header.scope = AddressScope::Link;
        assert_eq!(global_address(&link_local), None);
    }
}
