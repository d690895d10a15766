//! DHCPv6 answers (RFC 8415) from the leases of one network's local ports, which are their
//! fixed IPs: no lease state of its own. SOLICIT gets an ADVERTISE (preference 255, so the
//! client need not wait for others), REQUEST, RENEW and REBIND a REPLY with the port's
//! address (an address it no longer has is given back with lifetimes 0), CONFIRM a REPLY that
//! says whether its addresses are still on-link, RELEASE and DECLINE a REPLY that changes
//! nothing, and INFORMATION-REQUEST (stateless) a REPLY with the options alone.
//!
//! The client is the port whose EUI-64 link-local address it sends from (the only link-local
//! address the firewall lets a filtered port use), else the one its DUID names by MAC.

use dhcproto::v6::{
    DhcpOption, DhcpOptions, IAAddr, Message, MessageType, OptionCode, Status, StatusCode, UnknownOption, IANA,
};
use dhcproto::{Decodable, Encodable, Name};
use neutrino_domain::dhcp::v6::LeaseV6;
use neutrino_domain::ipam::link_local_mac;
use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::str::FromStr;

/// The DHCPv6 leases of one network's local ports, by MAC.
pub type Leases = HashMap<[u8; 6], LeaseV6>;

/// The DUID this host answers with for a network: DUID-LL of the DHCP port's MAC (the same on
/// every host, as the port is).
pub fn server_duid(mac: [u8; 6]) -> Vec<u8> {
    let mut duid = vec![0, 3, 0, 1];
    duid.extend(mac);
    duid
}

/// The MAC a DUID-LLT (1) or DUID-LL (3) of Ethernet (1) names.
fn duid_mac(duid: &[u8]) -> Option<[u8; 6]> {
    let mac = match duid {
        [0, 1, 0, 1, _, _, _, _, mac @ ..] | [0, 3, 0, 1, mac @ ..] => mac,
        _ => return None,
    };
    mac.try_into().ok()
}

/// The lease of the client that sent `msg` from `from`: the port of its EUI-64 link-local
/// address. Only a sender whose address is of another form (which port security lets no
/// filtered port use) is known by the MAC of its DUID: a filtered VM cannot name another's.
fn lease_of<'a>(msg: &Message, from: Ipv6Addr, leases: &'a Leases) -> Option<&'a LeaseV6> {
    if let Some(mac) = link_local_mac(from) {
        return leases.get(&mac);
    }
    let Some(DhcpOption::ClientId(duid)) = msg.opts().get(OptionCode::ClientId) else { return None };
    leases.get(&duid_mac(duid)?)
}

fn lifetime(seconds: Option<u32>, fraction: (u32, u32)) -> u32 {
    match seconds {
        None => u32::MAX,
        Some(s) => (u64::from(s) * u64::from(fraction.0) / u64::from(fraction.1)) as u32,
    }
}

/// The IA_NA of the reply for the client's `asked` one: the port's address (and any other
/// address the client holds, with lifetimes 0).
fn ia_na(asked: &IANA, address: Ipv6Addr, lease: &LeaseV6) -> IANA {
    let mut opts = DhcpOptions::new();
    let valid = lifetime(lease.lease_seconds, (1, 1));
    opts.insert(DhcpOption::IAAddr(IAAddr {
        addr: address,
        preferred_life: valid,
        valid_life: valid,
        opts: DhcpOptions::new(),
    }));
    for old in asked.opts.iter() {
        if let DhcpOption::IAAddr(a) = old {
            if a.addr != address {
                opts.insert(DhcpOption::IAAddr(IAAddr {
                    addr: a.addr,
                    preferred_life: 0,
                    valid_life: 0,
                    opts: DhcpOptions::new(),
                }));
            }
        }
    }
    IANA { id: asked.id, t1: lifetime(lease.lease_seconds, (1, 2)), t2: lifetime(lease.lease_seconds, (4, 5)), opts }
}

fn status(status: Status, msg: &str) -> DhcpOption {
    DhcpOption::StatusCode(StatusCode { status, msg: msg.to_string() })
}

/// The answer to `request` from `from` (a link-local address), or `None` when it is not ours
/// to answer (another server's, a port not of this host, a stateless port asking for an
/// address).
pub fn answer(request: &[u8], from: Ipv6Addr, leases: &Leases, server_id: &[u8]) -> Option<Vec<u8>> {
    let msg = Message::from_bytes(request).ok()?;
    let kind = msg.msg_type();
    let lease = lease_of(&msg, from, leases)?;
    let asked_server = match msg.opts().get(OptionCode::ServerId) {
        Some(DhcpOption::ServerId(id)) => Some(id.as_slice()),
        _ => None,
    };
    let to_us = matches!(kind, MessageType::Request | MessageType::Renew | MessageType::Release | MessageType::Decline);
    if (to_us && asked_server != Some(server_id)) || (!to_us && asked_server.is_some_and(|s| s != server_id)) {
        return None;
    }
    let client_id = msg.opts().get(OptionCode::ClientId).cloned();
    let asked_ias: Vec<&IANA> = msg
        .opts()
        .iter()
        .filter_map(|o| match o {
            DhcpOption::IANA(ia) => Some(ia),
            _ => None,
        })
        .collect();
    let mut reply = Message::new_with_id(MessageType::Reply, msg.xid());
    let opts = reply.opts_mut();
    match kind {
        MessageType::Solicit | MessageType::Request | MessageType::Renew | MessageType::Rebind => {
            client_id.as_ref()?;
            let Some(address) = lease.address else {
                if !matches!(kind, MessageType::Renew | MessageType::Rebind) {
                    // Stateless: no address to offer.
                    return None;
                }
                // An address this port no longer has (its subnet became stateless).
                for ia in &asked_ias {
                    let mut none = IANA { id: ia.id, t1: 0, t2: 0, opts: DhcpOptions::new() };
                    none.opts.insert(status(Status::NoBinding, "no address for this client"));
                    opts.insert(DhcpOption::IANA(none));
                }
                return finish(reply, server_id, client_id, lease);
            };
            if kind == MessageType::Solicit {
                opts.insert(DhcpOption::Preference(255));
            }
            // The address in the first IA only (an address belongs to one IA).
            for (i, ia) in asked_ias.iter().enumerate() {
                if i == 0 {
                    opts.insert(DhcpOption::IANA(ia_na(ia, address, lease)));
                } else {
                    let mut none = IANA { id: ia.id, t1: 0, t2: 0, opts: DhcpOptions::new() };
                    none.opts.insert(status(Status::NoAddrsAvail, "one address per client"));
                    opts.insert(DhcpOption::IANA(none));
                }
            }
        }
        MessageType::Confirm => {
            let addresses: Vec<Ipv6Addr> = asked_ias
                .iter()
                .flat_map(|ia| ia.opts.iter())
                .filter_map(|o| match o {
                    DhcpOption::IAAddr(a) => Some(a.addr),
                    _ => None,
                })
                .collect();
            if addresses.is_empty() {
                // Nothing to confirm: no reply (RFC 8415 §18.3.3).
                return None;
            }
            let on_link = addresses.iter().all(|a| Some(*a) == lease.address);
            opts.insert(if on_link {
                status(Status::Success, "all addresses still on link")
            } else {
                status(Status::NotOnLink, "not this link's address")
            });
        }
        MessageType::Release | MessageType::Decline => {
            tracing::info!(client = %from, ?kind, "DHCPv6 client let its address go");
            opts.insert(status(Status::Success, "the address stays the port's"));
        }
        MessageType::InformationRequest => {}
        _ => return None,
    }
    if kind == MessageType::Solicit {
        reply.set_msg_type(MessageType::Advertise);
    }
    finish(reply, server_id, client_id, lease)
}

/// The reply with the identities and the lease's options, encoded.
fn finish(mut reply: Message, server_id: &[u8], client_id: Option<DhcpOption>, lease: &LeaseV6) -> Option<Vec<u8>> {
    let opts = reply.opts_mut();
    opts.insert(DhcpOption::ServerId(server_id.to_vec()));
    if let Some(client) = client_id {
        opts.insert(client);
    }
    if !lease.dns_servers.is_empty() {
        opts.insert(DhcpOption::DomainNameServers(lease.dns_servers.clone()));
    }
    let search: Vec<Name> = lease
        .domain_search
        .iter()
        .filter_map(|d| Name::from_str(&format!("{}.", d.trim_end_matches('.'))).ok())
        .collect();
    if !search.is_empty() {
        opts.insert(DhcpOption::DomainSearchList(search));
    }
    for (code, value) in &lease.extra {
        opts.insert(DhcpOption::Unknown(UnknownOption::new(OptionCode::from(*code), value.clone())));
    }
    reply.to_vec().ok()
}

/// Answer DHCPv6 on `socket` (in the network's namespace) until it fails.
pub(crate) async fn serve(network_id: String, socket: tokio::net::UdpSocket, tables: super::Tables) {
    let mut buf = vec![0u8; 1500];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                tracing::warn!(network = %network_id, error = %e, "DHCPv6 socket failed");
                return;
            }
        };
        let SocketAddr::V6(from) = from else { continue };
        if from.ip().segments()[0] & 0xffc0 != 0xfe80 {
            continue;
        }
        let Some(table) = super::table_of(&tables, &network_id) else { continue };
        let Some(server_mac) = table.server_mac else { continue };
        let Some(bytes) = answer(&buf[..len], *from.ip(), &table.leases_v6, &server_duid(server_mac)) else {
            continue;
        };
        let to = SocketAddrV6::new(*from.ip(), from.port(), 0, from.scope_id());
        if let Err(e) = socket.send_to(&bytes, to).await {
            tracing::debug!(network = %network_id, client = %from, error = %e, "DHCPv6 answer not sent");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0xfa, 0x16, 0x3e, 0x71, 0x04, 0x65];
    const SERVER: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 0, 2];

    fn leases(address: Option<&str>) -> Leases {
        let lease = LeaseV6 {
            address: address.map(|a| a.parse().unwrap()),
            link_local: "fe80::f816:3eff:fe71:465".parse().unwrap(),
            lease_seconds: Some(86400),
            dns_servers: vec!["2001:db8:1::2".parse().unwrap()],
            domain_search: vec!["openstacklocal".into()],
            extra: vec![(59, b"tftp://[2001:db8::69]/boot.efi".to_vec())],
        };
        HashMap::from([(MAC, lease)])
    }

    fn request(kind: MessageType, server: bool, ia_address: Option<&str>) -> Vec<u8> {
        let mut msg = Message::new_with_id(kind, [1, 2, 3]);
        let opts = msg.opts_mut();
        opts.insert(DhcpOption::ClientId(vec![0, 4, 9, 9, 9, 9]));
        if server {
            opts.insert(DhcpOption::ServerId(server_duid(SERVER)));
        }
        let mut ia = IANA { id: 7, t1: 0, t2: 0, opts: DhcpOptions::new() };
        if let Some(a) = ia_address {
            ia.opts.insert(DhcpOption::IAAddr(IAAddr {
                addr: a.parse().unwrap(),
                preferred_life: 0,
                valid_life: 0,
                opts: DhcpOptions::new(),
            }));
        }
        if kind != MessageType::InformationRequest {
            opts.insert(DhcpOption::IANA(ia));
        }
        msg.to_vec().unwrap()
    }

    fn addresses(reply: &Message) -> Vec<(Ipv6Addr, u32)> {
        let Some(DhcpOption::IANA(ia)) = reply.opts().get(OptionCode::IANA) else { return vec![] };
        ia.opts
            .iter()
            .filter_map(|o| match o {
                DhcpOption::IAAddr(a) => Some((a.addr, a.valid_life)),
                _ => None,
            })
            .collect()
    }

    fn ask(bytes: &[u8], from: &str, leases: &Leases) -> Option<Message> {
        let reply = answer(bytes, from.parse().unwrap(), leases, &server_duid(SERVER))?;
        Some(Message::from_bytes(&reply).unwrap())
    }

    const LL: &str = "fe80::f816:3eff:fe71:465";

    #[test]
    fn a_stateful_port_is_offered_and_given_its_fixed_ip() {
        let leases = leases(Some("2001:db8:1::9"));
        let adv = ask(&request(MessageType::Solicit, false, None), LL, &leases).unwrap();
        assert_eq!(adv.msg_type(), MessageType::Advertise);
        assert_eq!(adv.xid(), [1, 2, 3]);
        assert_eq!(addresses(&adv), vec![("2001:db8:1::9".parse().unwrap(), 86400)]);
        assert_eq!(adv.opts().get(OptionCode::Preference), Some(&DhcpOption::Preference(255)));
        assert_eq!(
            adv.opts().get(OptionCode::DomainNameServers),
            Some(&DhcpOption::DomainNameServers(vec!["2001:db8:1::2".parse().unwrap()]))
        );
        let reply = ask(&request(MessageType::Request, true, None), LL, &leases).unwrap();
        assert_eq!(reply.msg_type(), MessageType::Reply);
        let Some(DhcpOption::IANA(ia)) = reply.opts().get(OptionCode::IANA) else { panic!("an IA_NA") };
        assert_eq!((ia.id, ia.t1, ia.t2), (7, 43200, 69120));
        assert_eq!(ask(&request(MessageType::Request, false, None), LL, &leases), None, "not addressed to us");
    }

    #[test]
    fn a_renew_of_an_old_address_gets_the_new_one_and_the_old_one_ended() {
        let leases = leases(Some("2001:db8:1::9"));
        let reply = ask(&request(MessageType::Renew, true, Some("2001:db8:1::5")), LL, &leases).unwrap();
        let mut got = addresses(&reply);
        got.sort();
        assert_eq!(got, vec![("2001:db8:1::5".parse().unwrap(), 0), ("2001:db8:1::9".parse().unwrap(), 86400)]);
        assert!(ask(&request(MessageType::Confirm, false, None), LL, &leases).is_none(), "nothing to confirm");
        let confirm = ask(&request(MessageType::Confirm, false, Some("2001:db8:1::5")), LL, &leases).unwrap();
        assert_eq!(
            confirm.opts().get(OptionCode::StatusCode),
            Some(&status(Status::NotOnLink, "not this link's address"))
        );
    }

    #[test]
    fn a_stateless_port_gets_options_only() {
        let leases = leases(None);
        assert_eq!(ask(&request(MessageType::Solicit, false, None), LL, &leases), None);
        let renew = ask(&request(MessageType::Renew, true, Some("2001:db8:1::5")), LL, &leases).unwrap();
        let Some(DhcpOption::IANA(ia)) = renew.opts().get(OptionCode::IANA) else { panic!("an IA_NA") };
        assert_eq!(ia.opts.get(OptionCode::StatusCode), Some(&status(Status::NoBinding, "no address for this client")));
        let reply = ask(&request(MessageType::InformationRequest, false, None), LL, &leases).unwrap();
        assert_eq!(reply.msg_type(), MessageType::Reply);
        assert!(addresses(&reply).is_empty());
        assert!(reply.opts().get(OptionCode::DomainNameServers).is_some());
        assert!(reply.opts().get(OptionCode::DomainSearchList).is_some());
        let Some(DhcpOption::Unknown(boot)) = reply.opts().get(OptionCode::from(59)) else { panic!("bootfile-url") };
        assert_eq!(boot.data(), b"tftp://[2001:db8::69]/boot.efi", "extra_dhcp_opts for IPv6 are sent");
    }

    #[test]
    fn the_client_is_the_port_of_its_link_local_address_or_of_its_duid() {
        let leases = leases(Some("2001:db8:1::9"));
        let info = request(MessageType::InformationRequest, false, None);
        assert!(ask(&info, "fe80::1", &leases).is_none(), "an unknown client");
        let mut msg = Message::new_with_id(MessageType::Solicit, [1, 2, 3]);
        let mut duid = vec![0, 1, 0, 1, 0, 0, 0, 1];
        duid.extend(MAC);
        msg.opts_mut().insert(DhcpOption::ClientId(duid));
        msg.opts_mut().insert(DhcpOption::IANA(IANA { id: 1, t1: 0, t2: 0, opts: DhcpOptions::new() }));
        let bytes = msg.to_vec().unwrap();
        assert!(ask(&bytes, "fe80::1234", &leases).is_some(), "by its DUID-LLT");
        let mut other = leases.clone();
        let mut lease = other[&MAC].clone();
        lease.address = Some("2001:db8:1::7".parse().unwrap());
        other.insert([0xfa, 0x16, 0x3e, 0, 0, 7], lease);
        let reply = ask(&bytes, "fe80::f816:3eff:fe00:7", &other).unwrap();
        assert_eq!(addresses(&reply)[0].0, "2001:db8:1::7".parse::<Ipv6Addr>().unwrap(), "the sender's own port");
        // A filtered VM (it sends from its EUI-64 address) naming another port's MAC in its
        // DUID gets nothing, whether or not its own port has a lease.
        assert!(ask(&bytes, "fe80::f816:3eff:fe00:8", &leases).is_none(), "no lease by a borrowed DUID");
    }
}
