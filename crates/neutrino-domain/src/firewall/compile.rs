//! From the host's view to the firewall's nftables objects (see `docs/architecture.md`,
//! "Security groups").
//!
//! Ports are told apart by **marks**. With `br_netfilter` the `inet` hooks see bridged
//! traffic with the bridge as input and output device, so the `bridge` table marks it first:
//! a frame from a port gets the port's slot in the low 16 bits (in `prerouting`, after the
//! port's anti-spoofing checks), a frame to a port gets the slot in the high 16 bits (in
//! `forward`, where the output port is known). The `inet` forward chain then jumps by mark to
//! the sending port's egress chain, which goes on to the receiving port's ingress chain when
//! it lets the packet out. A port's chains jump to one chain per security group and
//! direction, shared by every port of the group.
//!
//! Ports of stateless groups are not tracked (`notrack` in the raw hook, by their mark and by
//! bridge and address), so their rules see every packet and replies need rules of their own.
//!
//! Only replies of established connections pass on conntrack alone: packets in a
//! connection's original direction are checked against the rules every time, so a rule,
//! remote member or group removed stops the flows that only it allowed, and re-adding it lets
//! them go on (Neutron deletes conntrack entries for this, and has a long history of missing
//! some).

use super::ir::{Action, Addr, Chain, Family, Hook, Match, Rule, Ruleset, Set, SetKind, SetValue};
use crate::naming::{bridge_name, tap_name};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use neutrino_api::agent::{Direction, EtherType, HostSecurityRule, HostState, LocalPort};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Map of tap → slot (kept in the kernel, so a restarted agent keeps every port's mark).
pub const SLOTS: &str = "slots";
/// Map of bridge → conntrack zone.
pub const ZONES: &str = "zones";
/// The element of [`ZONES`] that keeps the highest zone ever given (not a bridge).
const ZONE_HIGH_WATER: &str = "zone-highwater";
const FROM_PORT: &str = "from_port";
const TO_PORT: &str = "to_port";
const EGRESS: &str = "egress";
const INGRESS: &str = "ingress";
/// Where a packet goes once the sender's egress let it out: the receiver's ingress chain.
const INGRESS_CHECK: &str = "ingress_check";
const STATELESS_SLOTS: &str = "stateless_slots";
const STATELESS_V4: &str = "stateless_v4";
const STATELESS_V6: &str = "stateless_v6";
/// What every filtered port may always send and receive (before its groups' rules).
const COMMON_EGRESS: &str = "common_egress";
const COMMON_INGRESS: &str = "common_ingress";
/// Marks: the sending port's slot in the low half, the receiving port's in the high half.
pub const FROM_MASK: u32 = 0x0000_ffff;
pub const TO_MASK: u32 = 0xffff_0000;

/// Protocols whose rules' port range is a transport port range.
const PORT_PROTOCOLS: [u8; 5] = [6, 17, 33, 132, 136];
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;
// ICMPv6 types.
const MLD_QUERY: u8 = 130;
const MLD_REPORT: u8 = 131;
const MLD2_REPORT: u8 = 143;
const ROUTER_SOLICIT: u8 = 133;
const ROUTER_ADVERT: u8 = 134;
const NEIGHBOUR_SOLICIT: u8 = 135;
const NEIGHBOUR_ADVERT: u8 = 136;
const REDIRECT: u8 = 137;

/// The firewall of one host, and what the compiler decided on the way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirewallIntent {
    pub ruleset: Ruleset,
    /// Local port id → tap → its slot.
    pub ports: BTreeMap<String, (String, u16)>,
    /// Problems with single ports or rules (key → why); they stay closed.
    pub problems: BTreeMap<String, String>,
}

/// Compile the host's firewall. `slots` and `zones` are the allocations the kernel holds (tap
/// → slot, bridge → zone): kept for what stays, the lowest free number for what is new.
pub fn compile_firewall(
    state: &HostState,
    slots: &BTreeMap<String, u32>,
    zones: &BTreeMap<String, u32>,
) -> FirewallIntent {
    let mut out = FirewallIntent::default();
    let taps: BTreeMap<String, &str> = state.local_ports.keys().map(|id| (tap_name(id), id.as_str())).collect();
    let slot_of = allocate(slots, taps.keys().cloned().collect(), u16::MAX as u32);
    let bridges: BTreeSet<String> = state.local_ports.values().map(|p| bridge_name(&p.network_id)).collect();
    let zones_in_use: BTreeMap<String, u32> =
        zones.iter().filter(|(k, _)| *k != ZONE_HIGH_WATER).map(|(k, v)| (k.clone(), *v)).collect();
    let zone_of = allocate_above(&zones_in_use, bridges, zones.get(ZONE_HIGH_WATER).copied(), u16::MAX as u32);

    let mut b = Builder::default();
    b.map(Family::Bridge, SLOTS, SetKind::IfnameToMark);
    b.map(Family::Bridge, ZONES, SetKind::IfnameToMark);
    b.map(Family::Bridge, FROM_PORT, SetKind::IfnameToVerdict);
    b.map(Family::Bridge, TO_PORT, SetKind::IfnameToVerdict);
    b.map(Family::Inet, EGRESS, SetKind::MarkToVerdict);
    b.map(Family::Inet, INGRESS, SetKind::MarkToVerdict);
    // Frames of taps the firewall does not know yet (a port just plugged) are dropped.
    b.chain(
        Family::Bridge,
        "prerouting",
        Some((Hook::Prerouting, -200)),
        vec![
            Rule::new(vec![], Action::IifVmap(FROM_PORT.into())),
            Rule::new(vec![Match::Iif("tap*".into())], Action::Drop),
            // Frames from tunnels and uplinks carry no port's mark, whatever they came with.
            Rule::new(vec![], Action::SetMark(0)),
        ],
    );
    b.chain(
        Family::Bridge,
        "forward",
        Some((Hook::Forward, -200)),
        vec![
            Rule::new(vec![], Action::OifVmap(TO_PORT.into())),
            Rule::new(vec![Match::Oif("tap*".into())], Action::Drop),
        ],
    );
    // Ports whose groups are stateless are not tracked: what they send (by mark) and what is
    // sent to their addresses on their bridge.
    b.map(Family::Inet, STATELESS_SLOTS, SetKind::Marks);
    b.map(Family::Inet, STATELESS_V4, SetKind::IfnameIpv4);
    b.map(Family::Inet, STATELESS_V6, SetKind::IfnameIpv6);
    let mut zone_rules = vec![
        Rule::new(vec![Match::MarkIn { mask: FROM_MASK, set: STATELESS_SLOTS.into() }], Action::Notrack),
        Rule::new(vec![Match::IifDestinationIn { v6: false, set: STATELESS_V4.into() }], Action::Notrack),
        Rule::new(vec![Match::IifDestinationIn { v6: true, set: STATELESS_V6.into() }], Action::Notrack),
    ];
    zone_rules.extend(
        zone_of
            .iter()
            .map(|(bridge, zone)| Rule::new(vec![Match::Iif(bridge.clone())], Action::SetCtZone(*zone as u16))),
    );
    zone_rules.push(Rule::new(vec![], Action::Accept));
    for (bridge, zone) in &zone_of {
        b.element(Family::Bridge, ZONES, bridge, Some(SetValue::Mark(*zone)));
    }
    // The highest zone ever given, kept (a network that goes takes its element with it).
    let high = zones.values().chain(zone_of.values()).copied().filter(|z| *z <= u16::MAX as u32).max();
    if let Some(high) = high {
        b.element(Family::Bridge, ZONES, ZONE_HIGH_WATER, Some(SetValue::Mark(high)));
    }
    b.chain(Family::Inet, "zones", Some((Hook::Prerouting, -300)), zone_rules);
    b.chain(
        Family::Inet,
        "forward",
        Some((Hook::Forward, 0)),
        vec![
            // Neither end is a filtered port of this host.
            Rule::new(vec![Match::Mark { mask: u32::MAX, value: 0 }], Action::Accept),
            Rule::new(vec![Match::CtInvalid], Action::Drop),
            Rule::new(vec![], Action::MarkVmap { mask: FROM_MASK, set: EGRESS.into() }),
            // Not sent by a filtered port (or its egress let it out): the receiver decides.
            Rule::new(vec![], Action::Goto(INGRESS_CHECK.into())),
        ],
    );
    b.chain(
        Family::Inet,
        INGRESS_CHECK,
        None,
        vec![
            Rule::new(vec![], Action::MarkVmap { mask: TO_MASK, set: INGRESS.into() }),
            Rule::new(vec![], Action::Accept),
        ],
    );
    b.chain(Family::Inet, COMMON_EGRESS, None, common_egress());
    b.chain(Family::Inet, COMMON_INGRESS, None, common_ingress());

    for (tap, port_id) in &taps {
        let port = &state.local_ports[*port_id];
        let slot = slot_of[tap];
        out.ports.insert(port_id.to_string(), (tap.clone(), slot as u16));
        b.element(Family::Bridge, SLOTS, tap, Some(SetValue::Mark(slot)));
        let from = format!("from-{slot}");
        let to = format!("to-{slot}");
        b.element(Family::Bridge, FROM_PORT, tap, Some(SetValue::Jump(from.clone())));
        b.element(Family::Bridge, TO_PORT, tap, Some(SetValue::Jump(to.clone())));
        if !port.port_security_enabled {
            // No filtering and no spoofing checks: no mark, so the inet table lets it be.
            b.chain(Family::Bridge, &from, None, vec![Rule::new(vec![], Action::Accept)]);
            b.chain(Family::Bridge, &to, None, vec![Rule::new(vec![], Action::Accept)]);
            continue;
        }
        b.chain(Family::Bridge, &from, None, anti_spoofing(port, slot));
        // Only IP and ARP reach a filtered port: VLAN-tagged or other frames would not meet
        // the inet rules.
        let to_rules = vec![
            Rule::new(vec![Match::NotIpOrArp], Action::Drop),
            Rule::new(vec![], Action::SetToSlotAccept(slot << 16)),
        ];
        b.chain(Family::Bridge, &to, None, to_rules);
        let (egress, ingress) = port_filters(state, port, &mut b, &mut out.problems, port_id);
        let (out_chain, in_chain) = (format!("out-{slot}"), format!("in-{slot}"));
        b.chain(Family::Inet, &out_chain, None, egress);
        b.chain(Family::Inet, &in_chain, None, ingress);
        if is_stateless(state, port) {
            b.element(Family::Inet, STATELESS_SLOTS, &slot.to_string(), None);
            let bridge = bridge_name(&port.network_id);
            for (_, net) in sources(port) {
                if net.prefix_len() != net.max_prefix_len() {
                    continue;
                }
                let set = if net.addr().is_ipv6() { STATELESS_V6 } else { STATELESS_V4 };
                b.element(Family::Inet, set, &format!("{bridge} . {}", net.addr()), None);
            }
        }
        b.element(Family::Inet, EGRESS, &slot.to_string(), Some(SetValue::Jump(out_chain)));
        b.element(Family::Inet, INGRESS, &(slot << 16).to_string(), Some(SetValue::Jump(in_chain)));
    }
    out.ruleset = b.ruleset;
    out
}

/// As [`allocate`], but a new name gets a number above the highest in use (the lowest free
/// one once that passes `max`): a zone just given up keeps its conntrack entries until they
/// expire, and a new network should not meet them.
fn allocate_above(
    existing: &BTreeMap<String, u32>,
    names: BTreeSet<String>,
    high_water: Option<u32>,
    max: u32,
) -> BTreeMap<String, u32> {
    let mut out: BTreeMap<String, u32> = BTreeMap::new();
    let mut used: BTreeSet<u32> = BTreeSet::new();
    for name in &names {
        if let Some(z) = existing.get(name).filter(|z| (1..=max).contains(*z) && !used.contains(*z)) {
            used.insert(*z);
            out.insert(name.clone(), *z);
        }
    }
    let highest = existing.values().copied().chain(high_water).filter(|z| *z <= max).max();
    let mut next = highest.unwrap_or(0) + 1;
    for name in names {
        if out.contains_key(&name) {
            continue;
        }
        while next <= max && used.contains(&next) {
            next += 1;
        }
        let n = if next <= max { next } else { (1..=max).find(|z| !used.contains(z)).unwrap_or(max) };
        used.insert(n);
        out.insert(name, n);
    }
    out
}

/// A port is stateless when it has groups and all of them are (Neutron refuses a mix).
fn is_stateless(state: &HostState, port: &LocalPort) -> bool {
    let mut groups = port.security_groups.iter().filter_map(|g| state.security_groups.get(g)).peekable();
    groups.peek().is_some() && groups.all(|g| !g.stateful)
}

/// Keep the numbers `existing` gives the names that stay; give new names the lowest free ones
/// (from 1).
fn allocate(existing: &BTreeMap<String, u32>, names: BTreeSet<String>, max: u32) -> BTreeMap<String, u32> {
    let mut out: BTreeMap<String, u32> = BTreeMap::new();
    let mut used: BTreeSet<u32> = BTreeSet::new();
    for name in &names {
        if let Some(n) = existing.get(name).filter(|n| (1..=max).contains(*n) && !used.contains(*n)) {
            used.insert(*n);
            out.insert(name.clone(), *n);
        }
    }
    let mut next = 1;
    for name in names {
        if out.contains_key(&name) {
            continue;
        }
        while used.contains(&next) {
            next += 1;
        }
        used.insert(next);
        out.insert(name, next);
    }
    out
}

#[derive(Default)]
struct Builder {
    ruleset: Ruleset,
}

impl Builder {
    fn chain(&mut self, family: Family, name: &str, hook: Option<(Hook, i32)>, rules: Vec<Rule>) {
        self.ruleset.chains.insert((family, name.to_string()), Chain { hook, rules });
    }

    fn map(&mut self, family: Family, name: &str, kind: SetKind) {
        let set = Set { kind, elements: BTreeMap::new() };
        self.ruleset.sets.entry((family, name.to_string())).or_insert(set);
    }

    fn element(&mut self, family: Family, set: &str, key: &str, value: Option<SetValue>) {
        if let Some(s) = self.ruleset.sets.get_mut(&(family, set.to_string())) {
            s.elements.insert(key.to_string(), value);
        }
    }
}

/// The addresses a port may send from, with the MAC it may use them with: its fixed IPs with
/// its MAC, and its allowed address pairs.
fn sources(port: &LocalPort) -> Vec<(String, IpNet)> {
    let mut out = Vec::new();
    for ip in &port.ip_addresses {
        if let Some(net) = parse_net(ip) {
            out.push((port.mac_address.to_ascii_lowercase(), net));
        }
    }
    for pair in &port.allowed_address_pairs {
        if let Some(net) = parse_net(&pair.ip_address) {
            out.push((pair.mac_address.to_ascii_lowercase(), net));
        }
    }
    out
}

fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>().ok().or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from)).map(|n| n.trunc())
}

/// The link-local address a MAC gives (EUI-64).
pub fn link_local(mac: &str) -> Option<Ipv6Addr> {
    crate::mac::parse_mac(mac).map(crate::ipam::link_local)
}

/// The `bridge` chain of frames from a port: mark them with the slot, let through only its
/// own MAC and addresses (ARP included), and never DHCP or RA servers.
fn anti_spoofing(port: &LocalPort, slot: u32) -> Vec<Rule> {
    let mut rules = vec![Rule::new(vec![], Action::SetMark(slot))];
    // No DHCP server, DHCPv6 server, router advertisement or redirect from a VM.
    rules.push(Rule::new(vec![Match::Ipv4, Match::UdpPorts { source: 67, destination: 68 }], Action::Drop));
    rules.push(Rule::new(vec![Match::Ipv6, Match::UdpPorts { source: 547, destination: 546 }], Action::Drop));
    for t in [ROUTER_ADVERT, REDIRECT] {
        rules.push(Rule::new(vec![Match::Ipv6, Match::L4Proto(ICMPV6), Match::Icmp6Type(t)], Action::Drop));
    }
    let sources = sources(port);
    let mut macs: BTreeSet<String> = sources.iter().map(|(m, _)| m.clone()).collect();
    macs.insert(port.mac_address.to_ascii_lowercase());
    for (mac, net) in &sources {
        let ether = Match::EtherSource(mac.clone());
        match net {
            IpNet::V4(v4) => {
                rules.push(Rule::new(
                    vec![ether.clone(), Match::ArpSenderMac(mac.clone()), Match::ArpSenderIp(*v4)],
                    Action::Accept,
                ));
                rules.push(Rule::new(vec![ether, Match::Ip4(Addr::Source, *v4)], Action::Accept));
            }
            IpNet::V6(v6) => rules.push(Rule::new(vec![ether, Match::Ip6(Addr::Source, *v6)], Action::Accept)),
        }
    }
    let own = Match::EtherSource(port.mac_address.to_ascii_lowercase());
    // DHCP discovery and requests before the port has an address.
    rules.push(Rule::new(
        vec![
            own.clone(),
            Match::Ip4(Addr::Source, Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 32).expect("/32")),
            Match::UdpPorts { source: 68, destination: 67 },
        ],
        Action::Accept,
    ));
    for mac in &macs {
        if let Some(ll) = link_local(mac) {
            let ll = Ipv6Net::new(ll, 128).expect("/128");
            rules.push(Rule::new(vec![Match::EtherSource(mac.clone()), Match::Ip6(Addr::Source, ll)], Action::Accept));
        }
    }
    // Duplicate address detection and MLD from the unspecified address.
    let unspecified = Ipv6Net::new(Ipv6Addr::UNSPECIFIED, 128).expect("/128");
    for t in [NEIGHBOUR_SOLICIT, MLD_REPORT, MLD2_REPORT] {
        rules.push(Rule::new(
            vec![own.clone(), Match::Ip6(Addr::Source, unspecified), Match::L4Proto(ICMPV6), Match::Icmp6Type(t)],
            Action::Accept,
        ));
    }
    rules.push(Rule::new(vec![], Action::Drop));
    rules
}

/// Allowed out of every filtered port: replies, DHCP and DHCPv6 requests, router and
/// neighbour solicitations, neighbour advertisements and MLD reports.
fn common_egress() -> Vec<Rule> {
    let allowed = Action::Goto(INGRESS_CHECK.into());
    // Also after reassembly (the bridge table sees fragments one by one): no DHCP server, no
    // router advertisement or redirect from a VM.
    let mut rules = vec![
        Rule::new(vec![Match::Ipv4, Match::UdpPorts { source: 67, destination: 68 }], Action::Drop),
        Rule::new(vec![Match::Ipv6, Match::UdpPorts { source: 547, destination: 546 }], Action::Drop),
        Rule::new(vec![Match::Ipv6, Match::L4Proto(ICMPV6), Match::Icmp6Type(ROUTER_ADVERT)], Action::Drop),
        Rule::new(vec![Match::Ipv6, Match::L4Proto(ICMPV6), Match::Icmp6Type(REDIRECT)], Action::Drop),
        Rule::new(vec![Match::CtEstablishedReply], allowed.clone()),
        Rule::new(vec![Match::CtRelated], allowed.clone()),
        Rule::new(vec![Match::Ipv4, Match::UdpPorts { source: 68, destination: 67 }], allowed.clone()),
        Rule::new(vec![Match::Ipv6, Match::UdpPorts { source: 546, destination: 547 }], allowed.clone()),
    ];
    for t in [ROUTER_SOLICIT, NEIGHBOUR_SOLICIT, NEIGHBOUR_ADVERT, MLD_REPORT, MLD2_REPORT] {
        rules.push(Rule::new(vec![Match::Ipv6, Match::L4Proto(ICMPV6), Match::Icmp6Type(t)], allowed.clone()));
    }
    rules.push(Rule::new(vec![], Action::Return));
    rules
}

/// Allowed into every filtered port: replies, DHCP and DHCPv6 replies, MLD queries, router
/// advertisements and neighbour discovery.
fn common_ingress() -> Vec<Rule> {
    let mut rules = vec![
        Rule::new(vec![Match::CtEstablishedReply], Action::Accept),
        Rule::new(vec![Match::CtRelated], Action::Accept),
        Rule::new(vec![Match::Ipv4, Match::UdpPorts { source: 67, destination: 68 }], Action::Accept),
        Rule::new(vec![Match::Ipv6, Match::UdpPorts { source: 547, destination: 546 }], Action::Accept),
    ];
    for t in [MLD_QUERY, ROUTER_ADVERT, NEIGHBOUR_SOLICIT, NEIGHBOUR_ADVERT] {
        rules.push(Rule::new(vec![Match::Ipv6, Match::L4Proto(ICMPV6), Match::Icmp6Type(t)], Action::Accept));
    }
    rules.push(Rule::new(vec![], Action::Return));
    rules
}

/// The port's egress and ingress chains (`inet`): the traffic always allowed, then a jump to
/// each of its groups' chains (one pair per group, shared by every port in it: a rule
/// change rewrites one chain), then drop.
fn port_filters(
    state: &HostState,
    port: &LocalPort,
    b: &mut Builder,
    problems: &mut BTreeMap<String, String>,
    port_id: &str,
) -> (Vec<Rule>, Vec<Rule>) {
    let mut egress = vec![Rule::new(vec![], Action::Jump(COMMON_EGRESS.into()))];
    let mut ingress = vec![Rule::new(vec![], Action::Jump(COMMON_INGRESS.into()))];
    for group_id in &port.security_groups {
        let Some(group) = state.security_groups.get(group_id) else {
            problems.insert(format!("port {port_id}"), format!("security group {group_id} is not known yet"));
            continue;
        };
        let (out_chain, in_chain) = (format!("sg-out-{group_id}"), format!("sg-in-{group_id}"));
        if !b.ruleset.chains.contains_key(&(Family::Inet, out_chain.clone())) {
            let (mut out_rules, mut in_rules) = (Vec::new(), Vec::new());
            for rule in &group.rules {
                let (chain, verdict) = match rule.direction {
                    Direction::Egress => (&mut out_rules, Action::Goto(INGRESS_CHECK.into())),
                    Direction::Ingress => (&mut in_rules, Action::Accept),
                };
                for matches in rule_matches(state, rule, b) {
                    chain.push(Rule::new(matches, verdict.clone()));
                }
            }
            out_rules.push(Rule::new(vec![], Action::Return));
            in_rules.push(Rule::new(vec![], Action::Return));
            b.chain(Family::Inet, &out_chain, None, out_rules);
            b.chain(Family::Inet, &in_chain, None, in_rules);
        }
        egress.push(Rule::new(vec![], Action::Jump(out_chain)));
        ingress.push(Rule::new(vec![], Action::Jump(in_chain)));
    }
    egress.push(Rule::new(vec![], Action::Drop));
    ingress.push(Rule::new(vec![], Action::Drop));
    (egress, ingress)
}

/// The match lists one security group rule becomes (none when it can match nothing, two
/// when a remote group has both addresses and prefixes).
fn rule_matches(state: &HostState, rule: &HostSecurityRule, b: &mut Builder) -> Vec<Vec<Match>> {
    let v6 = rule.ethertype == EtherType::IPv6;
    let mut m = vec![if v6 { Match::Ipv6 } else { Match::Ipv4 }];
    // Neutron reads ICMP in an IPv6 rule as ICMPv6.
    // Protocol 0 is any, as Neutron's drivers read it (no packet has l4proto 0).
    let protocol = rule.protocol.filter(|p| *p != 0).map(|p| if v6 && p == ICMP { ICMPV6 } else { p });
    if let Some(p) = protocol {
        m.push(Match::L4Proto(p));
        let (min, max) = (rule.port_range_min, rule.port_range_max);
        if PORT_PROTOCOLS.contains(&p) {
            if let Some(min) = min {
                let max = max.unwrap_or(min);
                m.push(Match::DestinationPorts(min as u16, max as u16));
            }
        } else if p == ICMP || p == ICMPV6 {
            if let Some(t) = min {
                m.push(if p == ICMP { Match::IcmpType(t as u8) } else { Match::Icmp6Type(t as u8) });
                if let Some(code) = max {
                    m.push(if p == ICMP { Match::IcmpCode(code as u8) } else { Match::Icmp6Code(code as u8) });
                }
            }
        }
    }
    // The remote end: the source of ingress traffic, the destination of egress traffic.
    let remote = match rule.direction {
        Direction::Ingress => Addr::Source,
        Direction::Egress => Addr::Destination,
    };
    if let Some(prefix) = rule.remote_ip_prefix.as_deref().and_then(parse_net) {
        match prefix {
            IpNet::V4(n) if !v6 => {
                if n.prefix_len() > 0 {
                    m.push(Match::Ip4(remote, n));
                }
            }
            IpNet::V6(n) if v6 => {
                if n.prefix_len() > 0 {
                    m.push(Match::Ip6(remote, n));
                }
            }
            _ => return Vec::new(),
        }
        return vec![m];
    }
    let in_set = |name: String| if v6 { Match::Ip6In(remote, name) } else { Match::Ip4In(remote, name) };
    if let Some(ag) = rule.remote_address_group_id.as_deref() {
        return vec![[m, vec![in_set(address_group_set(state, ag, v6, b))]].concat()];
    }
    let Some(group) = rule.remote_group_id.as_deref() else {
        return vec![m];
    };
    let (addresses, prefixes) = remote_group_sets(state, group, v6, b);
    let mut out = Vec::new();
    // The address set always exists (members come and go element by element).
    out.push([m.clone(), vec![in_set(addresses)]].concat());
    if let Some(prefixes) = prefixes {
        out.push([m, vec![in_set(prefixes)]].concat());
    }
    out
}

/// The set of an address group's CIDRs of one IP version (an interval set, merged; empty when
/// the group is not known yet, which matches nothing).
fn address_group_set(state: &HostState, id: &str, v6: bool, b: &mut Builder) -> String {
    let name = format!("ag{}-{id}", if v6 { "6" } else { "4" });
    if b.ruleset.sets.contains_key(&(Family::Inet, name.clone())) {
        return name;
    }
    b.map(Family::Inet, &name, if v6 { SetKind::Ipv6Prefixes } else { SetKind::Ipv4Prefixes });
    let nets: Vec<IpNet> = state
        .address_groups
        .get(id)
        .into_iter()
        .flat_map(|g| g.addresses.iter())
        .filter_map(|a| parse_net(a))
        .filter(|n| n.addr().is_ipv6() == v6)
        .collect();
    for net in IpNet::aggregate(&nets) {
        b.element(Family::Inet, &name, &interval_key(&net), None);
    }
    name
}

/// An interval set's element as nftables lists it: a host prefix as its address.
fn interval_key(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

/// The sets of a remote group's member addresses for one IP version: single addresses, and
/// (only when some member has one) prefixes.
fn remote_group_sets(state: &HostState, group: &str, v6: bool, b: &mut Builder) -> (String, Option<String>) {
    let tag = if v6 { "6" } else { "4" };
    let addresses = format!("rg{tag}-{group}");
    let prefixes = format!("rgn{tag}-{group}");
    if b.ruleset.sets.contains_key(&(Family::Inet, addresses.clone())) {
        let has_prefixes = b.ruleset.sets.contains_key(&(Family::Inet, prefixes.clone()));
        return (addresses, has_prefixes.then_some(prefixes));
    }
    let kind = if v6 { SetKind::Ipv6Addresses } else { SetKind::Ipv4Addresses };
    b.map(Family::Inet, &addresses, kind);
    let mut nets: Vec<IpNet> = Vec::new();
    // Member keys are `<group>/<port>`: the group's members are one range of the map.
    let members = state.group_members.range(format!("{group}/")..format!("{group}0"));
    for net in members.flat_map(|(_, m)| m.addresses.iter()).filter_map(|a| parse_net(a)) {
        if net.addr().is_ipv6() != v6 {
            continue;
        }
        if net.prefix_len() == net.max_prefix_len() {
            b.element(Family::Inet, &addresses, &net.addr().to_string(), None);
        } else {
            nets.push(net);
        }
    }
    if nets.is_empty() {
        return (addresses, None);
    }
    let kind = if v6 { SetKind::Ipv6Prefixes } else { SetKind::Ipv4Prefixes };
    b.map(Family::Inet, &prefixes, kind);
    // Interval sets refuse overlapping elements: merge them first.
    for net in IpNet::aggregate(&nets) {
        b.element(Family::Inet, &prefixes, &interval_key(&net), None);
    }
    (addresses, Some(prefixes))
}
