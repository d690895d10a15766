//! A router's gateway routes: the unicast routes of its main table that go through a gateway
//! (the extra routes and the default route of a Neutron router). Connected routes are the
//! kernel's, from the ports' addresses, and never touched.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::packet_route::rule::{RuleAttribute, RuleMessage};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::RouteMessageBuilder;

use super::RouterNs;
use crate::kernel::{is_absent, nl_error};
use crate::{DataPlaneError, Result, RouterRoute};

/// A gateway route as observed, with its metric (which a delete must name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KernelRoute {
    pub(super) route: RouterRoute,
    priority: Option<u32>,
    /// The output link's index.
    oif: Option<u32>,
}

/// The gateway routes of the main table, IPv4 then IPv6, sorted.
pub(super) async fn observe(router: &RouterNs) -> Result<Vec<KernelRoute>> {
    observe_table(router, u32::from(RouteHeader::RT_TABLE_MAIN)).await
}

/// The gateway routes of `table`, IPv4 then IPv6, sorted.
async fn observe_table(router: &RouterNs, table: u32) -> Result<Vec<KernelRoute>> {
    let nl = &router.netlink;
    let _turn = nl.dump_lock.lock().await;
    let mut out = Vec::new();
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        // On a strict socket the kernel filters the dump by table and type (and would by
        // protocol, which is why that is left unset).
        let mut request = RouteMessage::default();
        request.header.address_family = family;
        request.header.table = u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
        request.attributes.push(RouteAttribute::Table(table));
        request.header.kind = RouteType::Unicast;
        let msgs: Vec<RouteMessage> = nl
            .handle
            .route()
            .get(request)
            .execute()
            .try_collect()
            .await
            .map_err(|e| nl_error("dump routes", &router.name, e))?;
        out.extend(msgs.iter().filter_map(|m| parse_route_of(m, table)));
    }
    out.sort_by_key(|r| r.route);
    Ok(out)
}

/// A unicast route of the main table with a gateway (RTA_GATEWAY); `None` for any other.
#[cfg(test)]
pub(super) fn parse_route(msg: &RouteMessage) -> Option<KernelRoute> {
    parse_route_of(msg, u32::from(RouteHeader::RT_TABLE_MAIN))
}

/// A unicast route of `wanted` with a gateway; `None` for any other.
fn parse_route_of(msg: &RouteMessage, wanted: u32) -> Option<KernelRoute> {
    if msg.header.kind != RouteType::Unicast {
        return None;
    }
    let mut table = u32::from(msg.header.table);
    let (mut destination, mut via, mut priority, mut oif) = (None, None, None, None);
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(addr) => destination = route_ip(addr),
            RouteAttribute::Gateway(addr) => via = route_ip(addr),
            RouteAttribute::Priority(p) => priority = Some(*p),
            _ => {}
        }
    }
    if table != wanted {
        return None;
    }
    let via = via?;
    // A default route has no RTA_DST.
    let destination = match (destination, msg.header.address_family) {
        (Some(ip), _) => ip,
        (None, AddressFamily::Inet) => Ipv4Addr::UNSPECIFIED.into(),
        (None, AddressFamily::Inet6) => Ipv6Addr::UNSPECIFIED.into(),
        (None, _) => return None,
    };
    let destination = IpNet::new(destination, msg.header.destination_prefix_length).ok()?;
    Some(KernelRoute { route: RouterRoute { destination, via }, priority, oif })
}

fn route_ip(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(ip) => Some((*ip).into()),
        RouteAddress::Inet6(ip) => Some((*ip).into()),
        _ => None,
    }
}

/// Makes the gateway routes exactly `routes`: missing or changed ones are added or replaced
/// first (so a changed gateway leaves no gap), then those not asked for are deleted.
pub(super) async fn converge(router: &RouterNs, routes: &[RouterRoute]) -> Result<()> {
    converge_table(router, u32::from(RouteHeader::RT_TABLE_MAIN), routes, None).await
}

/// [`converge`] for the routes of `table` (`onlink`: out of this link index, their gateways
/// taken as on it).
async fn converge_table(router: &RouterNs, table: u32, routes: &[RouterRoute], onlink: Option<u32>) -> Result<()> {
    let want = super::desired_routes(routes)?;
    let have = observe_table(router, table).await?;
    let nl = &router.netlink;
    for (destination, via) in &want {
        // On-link routes must also leave by their link (a leg made anew has another index).
        let same = |h: &&KernelRoute| {
            h.route.destination == *destination && h.route.via == *via && onlink.is_none_or(|i| h.oif == Some(i))
        };
        if have.iter().any(|h| same(&h)) {
            continue;
        }
        let mut msg = route_message(*destination, *via, table)?;
        if let Some(index) = onlink {
            msg.header.flags |= rtnetlink::packet_route::route::RouteFlags::Onlink;
            msg.attributes.push(RouteAttribute::Oif(index));
        }
        nl.handle
            .route()
            .add(msg)
            .replace()
            .execute()
            .await
            .map_err(|e| nl_error(&format!("add route {destination} via {via}"), &router.name, e))?;
    }
    for stale in have.iter().filter(|h| want.get(&h.route.destination) != Some(&h.route.via)) {
        let RouterRoute { destination, via } = stale.route;
        let mut msg = route_message(destination, via, table)?;
        // Match the route whatever its scope and protocol (as `ip route del` does).
        msg.header.scope = RouteScope::NoWhere;
        msg.header.protocol = RouteProtocol::Unspec;
        if let Some(priority) = stale.priority {
            msg.attributes.push(RouteAttribute::Priority(priority));
        }
        match nl.handle.route().del(msg).execute().await {
            Ok(()) => {}
            Err(e) if is_absent(&e) => {}
            Err(e) => return Err(nl_error(&format!("delete route {destination} via {via}"), &router.name, e)),
        }
    }
    Ok(())
}

/// The RTM_NEWROUTE of a static unicast route in `table`.
fn route_message(destination: IpNet, via: IpAddr, table: u32) -> Result<RouteMessage> {
    let builder = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(destination.addr(), destination.prefix_len())
        .and_then(|b| b.gateway(via))
        .map_err(|e| DataPlaneError::Netlink(format!("route {destination} via {via}: {e}")))?;
    Ok(builder.table_id(table).build())
}

/// The policy rules that send marked traffic ([`crate::ROUTE_MARK`]) to
/// [`crate::MARKED_TABLE`]: first the main table for anything but its default route (so
/// marked traffic between the router's subnets, and to extra routes, stays routed as the
/// rest), then the marked table. As `(priority, suppress_prefixlength, table)`.
const MARK_RULES: [(u32, Option<u32>, u32); 2] =
    [(31000, Some(0), RouteHeader::RT_TABLE_MAIN as u32), (31001, None, crate::MARKED_TABLE)];

/// Our mark rules as the kernel has them (the messages, to delete them by).
async fn observe_rules(router: &RouterNs) -> Result<Vec<(u32, RuleMessage)>> {
    let nl = &router.netlink;
    let _turn = nl.dump_lock.lock().await;
    let msgs: Vec<RuleMessage> = nl
        .handle
        .rule()
        .get(rtnetlink::IpVersion::V4)
        .execute()
        .try_collect()
        .await
        .map_err(|e| nl_error("dump rules", &router.name, e))?;
    let mut ours = Vec::new();
    for msg in msgs {
        let mut priority = None;
        let mut mark = None;
        for attr in &msg.attributes {
            match attr {
                RuleAttribute::Priority(p) => priority = Some(*p),
                RuleAttribute::FwMark(m) => mark = Some(*m),
                _ => {}
            }
        }
        if let (Some(p), Some(crate::ROUTE_MARK)) = (priority, mark) {
            if MARK_RULES.iter().any(|(q, _, _)| *q == p) {
                ours.push((p, msg));
            }
        }
    }
    Ok(ours)
}

/// The routes of marked traffic, when both mark rules are in place (else none).
pub(super) async fn observe_marked(router: &RouterNs) -> Result<Vec<RouterRoute>> {
    let rules = observe_rules(router).await?;
    if !MARK_RULES.iter().all(|(p, _, _)| rules.iter().any(|(q, _)| q == p)) {
        return Ok(Vec::new());
    }
    Ok(observe_table(router, crate::MARKED_TABLE).await?.into_iter().map(|r| r.route).collect())
}

/// Make the marked traffic's routes exactly `routes`, with the mark rules while there are any.
pub(super) async fn converge_marked(router: &RouterNs, device: &str, routes: &[RouterRoute]) -> Result<()> {
    let nl = &router.netlink;
    let rules = observe_rules(router).await?;
    if routes.is_empty() {
        for (_, msg) in rules {
            match nl.handle.rule().del(msg).execute().await {
                Ok(()) => {}
                Err(e) if is_absent(&e) => {}
                Err(e) => return Err(nl_error("delete mark rule", &router.name, e)),
            }
        }
        return converge_table(router, crate::MARKED_TABLE, &[], None).await;
    }
    let index = nl.require_link(device).await?.index;
    converge_table(router, crate::MARKED_TABLE, routes, Some(index)).await?;
    for (priority, suppress, table) in MARK_RULES {
        if rules.iter().any(|(p, _)| *p == priority) {
            continue;
        }
        let mut add = nl
            .handle
            .rule()
            .add()
            .v4()
            .priority(priority)
            .fw_mark(crate::ROUTE_MARK)
            .table_id(table)
            .action(rtnetlink::packet_route::rule::RuleAction::ToTable);
        add.message_mut().attributes.push(RuleAttribute::FwMask(crate::ROUTE_MARK));
        if let Some(len) = suppress {
            add.message_mut().attributes.push(RuleAttribute::SuppressPrefixLen(len));
        }
        add.execute().await.map_err(|e| nl_error("add mark rule", &router.name, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(family: AddressFamily, attributes: Vec<RouteAttribute>, dst_len: u8) -> RouteMessage {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.kind = RouteType::Unicast;
        msg.header.destination_prefix_length = dst_len;
        msg.attributes = attributes;
        msg
    }

    #[test]
    fn only_main_table_unicast_routes_with_a_gateway_are_ours() {
        let gateway = RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(192, 0, 2, 254)));
        let dst = RouteAttribute::Destination(RouteAddress::Inet(Ipv4Addr::new(203, 0, 113, 0)));
        let route = parse_route(&message(
            AddressFamily::Inet,
            vec![dst.clone(), gateway.clone(), RouteAttribute::Priority(5)],
            24,
        ));
        let route = route.expect("a gateway route");
        assert_eq!(route.route.destination, "203.0.113.0/24".parse::<IpNet>().unwrap());
        assert_eq!(route.priority, Some(5));

        let default = parse_route(&message(AddressFamily::Inet, vec![gateway.clone()], 0)).unwrap();
        assert_eq!(default.route.destination, "0.0.0.0/0".parse::<IpNet>().unwrap(), "no RTA_DST");
        let gateway6 = RouteAttribute::Gateway(RouteAddress::Inet6("2001:db8::1".parse().unwrap()));
        let default6 = parse_route(&message(AddressFamily::Inet6, vec![gateway6], 0)).unwrap();
        assert_eq!(default6.route.destination, "::/0".parse::<IpNet>().unwrap());

        assert_eq!(parse_route(&message(AddressFamily::Inet, vec![dst.clone()], 24)), None, "connected");
        let other_table = message(AddressFamily::Inet, vec![dst, gateway.clone(), RouteAttribute::Table(1000)], 24);
        assert_eq!(parse_route(&other_table), None);
        let mut blackhole = message(AddressFamily::Inet, vec![gateway], 0);
        blackhole.header.kind = RouteType::BlackHole;
        assert_eq!(parse_route(&blackhole), None);
    }
}
