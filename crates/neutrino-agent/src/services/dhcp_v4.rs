//! DHCPv4 answers (RFC 2131) from the leases of one network's local ports: no lease state of
//! its own, since a port's address is its lease. DISCOVER gets an OFFER, a REQUEST for the
//! port's address an ACK and for any other a NAK, INFORM an ACK without an address; RELEASE
//! and DECLINE change nothing (the address stays the port's).

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode, UnknownOption};
use dhcproto::{Decodable, Encodable};
use neutrino_domain::dhcp::{classless_bytes, LeaseV4, IPXE};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};

/// The leases of one network's local ports, by MAC (`fa:16:3e:…`, lower case).
pub type Leases = HashMap<[u8; 6], LeaseV4>;

/// Where an answer goes (to UDP port 68).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    Broadcast,
    /// To this address (its MAC is in the namespace's neighbour table).
    Unicast(Ipv4Addr),
}

/// An encoded answer and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub kind: MessageType,
    pub bytes: Vec<u8>,
    pub to: Destination,
}

/// What a request asks of us, decoded; `None` for what is not ours to answer.
pub fn answer(request: &[u8], leases: &Leases) -> Option<Answer> {
    let msg = Message::from_bytes(request).ok()?;
    if msg.opcode() != Opcode::BootRequest || msg.chaddr().len() < 6 || msg.giaddr() != Ipv4Addr::UNSPECIFIED {
        return None;
    }
    let mac: [u8; 6] = msg.chaddr()[..6].try_into().ok()?;
    let lease = leases.get(&mac)?;
    let requested = match msg.opts().get(OptionCode::RequestedIpAddress) {
        Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
        _ => None,
    };
    let server_id = match msg.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
        _ => None,
    };
    let kind = match msg.opts().msg_type()? {
        MessageType::Discover => MessageType::Offer,
        MessageType::Request => {
            if server_id.is_some_and(|s| s != lease.server) {
                // The client took another server's offer.
                return None;
            }
            let asked = requested.unwrap_or(msg.ciaddr());
            if asked == lease.address {
                MessageType::Ack
            } else {
                MessageType::Nak
            }
        }
        MessageType::Inform => MessageType::Ack,
        MessageType::Release | MessageType::Decline => {
            tracing::info!(mac = ?mac, address = %lease.address, kind = ?msg.opts().msg_type(), "DHCP client let its address go");
            return None;
        }
        _ => return None,
    };
    let inform = msg.opts().has_msg_type(MessageType::Inform);
    let mut reply = Message::default();
    reply
        .set_opcode(Opcode::BootReply)
        .set_xid(msg.xid())
        .set_flags(msg.flags())
        .set_chaddr(msg.chaddr())
        .set_ciaddr(msg.ciaddr())
        .set_siaddr(lease.next_server.unwrap_or(lease.server));
    let opts = reply.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ServerIdentifier(lease.server));
    if kind == MessageType::Nak {
        opts.insert(DhcpOption::Message("wrong address".into()));
        reply.set_flags(Flags::default().set_broadcast());
        return Some(Answer { kind, bytes: reply.to_vec().ok()?, to: Destination::Broadcast });
    }
    if !inform {
        reply.set_yiaddr(lease.address);
    }
    // The tags the request sets, as Neutron's dnsmasq sets them (`--dhcp-match=set:ipxe,175`).
    let tags: &[&str] = if msg.opts().get(OptionCode::from(175)).is_some() { &[IPXE] } else { &[] };
    add_options(&mut reply, lease, !inform, tags);
    let to = if msg.ciaddr() != Ipv4Addr::UNSPECIFIED {
        Destination::Unicast(msg.ciaddr())
    } else if msg.flags().broadcast() {
        Destination::Broadcast
    } else {
        Destination::Unicast(lease.address)
    };
    Some(Answer { kind, bytes: reply.to_vec().ok()?, to })
}

/// Answer requests on `socket` (the network's server socket) until it fails.
pub(crate) async fn serve(network_id: String, socket: tokio::net::UdpSocket, tables: super::Tables) {
    let mut buf = vec![0u8; 1500];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                tracing::warn!(network = %network_id, error = %e, "DHCP server socket failed");
                return;
            }
        };
        let table = super::table_of(&tables, &network_id);
        let Some(answer) = table.and_then(|t| answer(&buf[..len], &t.leases)) else { continue };
        let to = match answer.to {
            Destination::Broadcast => Ipv4Addr::BROADCAST,
            Destination::Unicast(ip) => ip,
        };
        tracing::debug!(network = %network_id, %from, %to, kind = ?answer.kind, "DHCP answer");
        if let Err(e) = socket.send_to(&answer.bytes, SocketAddr::from((to, 68))).await {
            tracing::warn!(network = %network_id, %to, error = %e, "cannot send a DHCP answer");
        }
    }
}

fn add_options(reply: &mut Message, lease: &LeaseV4, with_lease: bool, tags: &[&str]) {
    let opts = reply.opts_mut();
    if with_lease {
        let seconds = lease.lease_seconds.unwrap_or(u32::MAX);
        opts.insert(DhcpOption::AddressLeaseTime(seconds));
        if lease.lease_seconds.is_some() {
            opts.insert(DhcpOption::Renewal(seconds / 2));
            opts.insert(DhcpOption::Rebinding(seconds / 8 * 7));
        }
    }
    let mask = if lease.prefix_len == 0 { 0 } else { u32::MAX << (32 - lease.prefix_len as u32) };
    opts.insert(DhcpOption::SubnetMask(Ipv4Addr::from(mask)));
    opts.insert(DhcpOption::BroadcastAddr(Ipv4Addr::from(u32::from(lease.address) | !mask)));
    if let Some(router) = lease.router {
        opts.insert(DhcpOption::Router(vec![router]));
    }
    if !lease.dns_servers.is_empty() {
        opts.insert(DhcpOption::DomainNameServer(lease.dns_servers.clone()));
    }
    if !lease.domain.is_empty() {
        opts.insert(DhcpOption::DomainName(lease.domain.clone()));
    }
    opts.insert(DhcpOption::Hostname(lease.hostname.clone()));
    opts.insert(DhcpOption::InterfaceMtu(lease.mtu));
    if !lease.classless_routes.is_empty() {
        let bytes = classless_bytes(&lease.classless_routes);
        opts.insert(DhcpOption::Unknown(UnknownOption::new(OptionCode::from(121), bytes.clone())));
        opts.insert(DhcpOption::Unknown(UnknownOption::new(OptionCode::from(249), bytes)));
    }
    for extra in &lease.extra {
        opts.insert(DhcpOption::Unknown(UnknownOption::new(OptionCode::from(extra.code), extra.value.clone())));
    }
    // A tagged option the request matches takes the place of the same untagged one.
    for extra in lease.tagged.iter().filter(|t| t.applies(tags)).map(|t| &t.option) {
        opts.insert(DhcpOption::Unknown(UnknownOption::new(OptionCode::from(extra.code), extra.value.clone())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 0, 5];

    fn leases() -> Leases {
        let lease = LeaseV4 {
            address: "192.0.2.5".parse().unwrap(),
            prefix_len: 24,
            server: "192.0.2.2".parse().unwrap(),
            lease_seconds: Some(86400),
            router: Some("192.0.2.1".parse().unwrap()),
            dns_servers: vec!["192.0.2.2".parse().unwrap()],
            domain: "openstacklocal".into(),
            hostname: "host-192-0-2-5".into(),
            mtu: 1450,
            classless_routes: vec![
                ("169.254.169.254".parse().unwrap(), 32, "192.0.2.2".parse().unwrap()),
                (Ipv4Addr::UNSPECIFIED, 0, "192.0.2.1".parse().unwrap()),
            ],
            extra: vec![neutrino_domain::dhcp::ExtraOption { code: 66, value: b"tftp".to_vec() }],
            tagged: vec![neutrino_domain::dhcp::TaggedOption {
                tags: vec![neutrino_domain::dhcp::Tag { name: IPXE.into(), negated: false }],
                option: neutrino_domain::dhcp::ExtraOption { code: 66, value: b"ipxe-tftp".to_vec() },
            }],
            next_server: None,
        };
        HashMap::from([(MAC, lease)])
    }

    fn request(kind: MessageType, ciaddr: Ipv4Addr, requested: Option<&str>) -> Vec<u8> {
        let mut msg = Message::new(ciaddr, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, &MAC);
        msg.opts_mut().insert(DhcpOption::MessageType(kind));
        if let Some(ip) = requested {
            msg.opts_mut().insert(DhcpOption::RequestedIpAddress(ip.parse().unwrap()));
        }
        msg.to_vec().unwrap()
    }

    fn decode(answer: &Answer) -> Message {
        Message::from_bytes(&answer.bytes).unwrap()
    }

    #[test]
    fn a_discover_gets_the_ports_address_and_options() {
        let answer = answer(&request(MessageType::Discover, Ipv4Addr::UNSPECIFIED, None), &leases()).unwrap();
        assert_eq!((answer.kind, answer.to), (MessageType::Offer, Destination::Unicast("192.0.2.5".parse().unwrap())));
        let reply = decode(&answer);
        assert_eq!(reply.opcode(), Opcode::BootReply);
        assert_eq!(reply.yiaddr(), "192.0.2.5".parse::<Ipv4Addr>().unwrap());
        let opts = reply.opts();
        assert_eq!(opts.get(OptionCode::SubnetMask), Some(&DhcpOption::SubnetMask("255.255.255.0".parse().unwrap())));
        assert_eq!(opts.get(OptionCode::Router), Some(&DhcpOption::Router(vec!["192.0.2.1".parse().unwrap()])));
        assert_eq!(opts.get(OptionCode::InterfaceMtu), Some(&DhcpOption::InterfaceMtu(1450)));
        assert_eq!(opts.get(OptionCode::AddressLeaseTime), Some(&DhcpOption::AddressLeaseTime(86400)));
        let Some(DhcpOption::ClasslessStaticRoute(routes)) = opts.get(OptionCode::ClasslessStaticRoute) else {
            panic!("no classless routes: {opts:?}")
        };
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[1].0.prefix_len(), 0, "the default route last");
        assert!(opts.get(OptionCode::from(249)).is_some());
        let tftp = |reply: &Message| match reply.opts().get(OptionCode::from(66)) {
            Some(DhcpOption::Unknown(o)) => o.data().to_vec(),
            Some(DhcpOption::TFTPServerName(name)) => name.clone(),
            other => panic!("option 66: {other:?}"),
        };
        assert_eq!(tftp(&reply), b"tftp", "the untagged option");
        // An iPXE client (option 175) gets the `tag:ipxe` one in its place.
        let mut ipxe = Message::from_bytes(&request(MessageType::Discover, Ipv4Addr::UNSPECIFIED, None)).unwrap();
        ipxe.opts_mut().insert(DhcpOption::Unknown(UnknownOption::new(OptionCode::from(175), vec![1, 1, 1])));
        let offer = super::answer(&ipxe.to_vec().unwrap(), &leases()).unwrap();
        assert_eq!(tftp(&decode(&offer)), b"ipxe-tftp");
    }

    #[test]
    fn a_request_for_the_ports_address_is_acked_and_any_other_naked() {
        let ack = answer(&request(MessageType::Request, Ipv4Addr::UNSPECIFIED, Some("192.0.2.5")), &leases()).unwrap();
        assert_eq!(ack.kind, MessageType::Ack);
        let nak = answer(&request(MessageType::Request, Ipv4Addr::UNSPECIFIED, Some("192.0.2.9")), &leases()).unwrap();
        assert_eq!((nak.kind, nak.to), (MessageType::Nak, Destination::Broadcast));
        // A renewal (from its address) is answered to that address; one for an old address is refused.
        let renew = answer(&request(MessageType::Request, "192.0.2.5".parse().unwrap(), None), &leases()).unwrap();
        assert_eq!((renew.kind, renew.to), (MessageType::Ack, Destination::Unicast("192.0.2.5".parse().unwrap())));
        let stale = answer(&request(MessageType::Request, "192.0.2.77".parse().unwrap(), None), &leases()).unwrap();
        assert_eq!(stale.kind, MessageType::Nak);
    }

    #[test]
    fn strangers_releases_and_informs() {
        let mut other = leases();
        let lease = other.remove(&MAC).unwrap();
        other.insert([0xfa, 0x16, 0x3e, 0, 0, 6], lease);
        assert!(answer(&request(MessageType::Discover, Ipv4Addr::UNSPECIFIED, None), &other).is_none());
        assert!(answer(&request(MessageType::Release, "192.0.2.5".parse().unwrap(), None), &leases()).is_none());
        let inform = answer(&request(MessageType::Inform, "192.0.2.5".parse().unwrap(), None), &leases()).unwrap();
        let reply = decode(&inform);
        assert_eq!(reply.yiaddr(), Ipv4Addr::UNSPECIFIED);
        assert!(reply.opts().get(OptionCode::AddressLeaseTime).is_none());
        assert!(answer(b"garbage", &leases()).is_none());
    }
}
