//! The nftables objects the firewall is made of, as plain data: what the compiler produces and
//! the data plane renders (to nftables' JSON API) and observes back.

use ipnet::{Ipv4Net, Ipv6Net};
use std::collections::{BTreeMap, BTreeSet};

/// The two tables, both named `neutrino`: `bridge` (port security, and the marks that tell
/// ports apart) and `inet` (conntrack zones and the stateful filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Bridge,
    Inet,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::Bridge, Family::Inet];

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Bridge => "bridge",
            Family::Inet => "inet",
        }
    }
}

/// The name of both tables.
pub const TABLE: &str = "neutrino";
/// The `inet` set (of 15-character tokens, as interface names) that records the content of
/// every chain: a chain is up to date when the token of its name and digest is in it. So
/// the firewall is observed from its chains' names and its sets alone, without listing
/// rules (which costs a second at 20 000 rules).
pub const MANIFEST: &str = "manifest";

/// Everything the firewall wants in the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub chains: BTreeMap<(Family, String), Chain>,
    pub sets: BTreeMap<(Family, String), Set>,
}

/// A chain: a base chain has a hook; every chain ends with a terminal rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub hook: Option<(Hook, i32)>,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Prerouting,
    Forward,
}

impl Hook {
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Forward => "forward",
        }
    }
}

/// A set or map, with its elements in canonical text: an address (`192.0.2.5`), a prefix
/// (`192.0.2.0/28`), an interface name or a mark (decimal); a map's values are a mark
/// (decimal) or a chain to jump to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    pub kind: SetKind,
    pub elements: BTreeMap<String, Option<SetValue>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    /// Single IPv4 addresses (a hash: members may share an address).
    Ipv4Addresses,
    /// IPv4 prefixes (an interval set, written whole when it changes: intervals cannot overlap).
    Ipv4Prefixes,
    Ipv6Addresses,
    Ipv6Prefixes,
    /// Interface name → mark (data kept for the agent: the slot of each tap, the zone of
    /// each bridge).
    IfnameToMark,
    /// Interface name → verdict.
    IfnameToVerdict,
    /// Mark → verdict.
    MarkToVerdict,
    /// Interface-name-sized strings (the manifest).
    Tokens,
    /// Marks (the slots of ports without connection tracking).
    Marks,
    /// `bridge . address` (the addresses of ports without connection tracking, per bridge):
    /// keys are `brq… . 192.0.2.5`.
    IfnameIpv4,
    IfnameIpv6,
}

impl SetKind {
    /// Interval sets are written whole; the others element by element.
    pub fn is_interval(self) -> bool {
        matches!(self, SetKind::Ipv4Prefixes | SetKind::Ipv6Prefixes)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SetValue {
    Mark(u32),
    Jump(String),
}

/// One rule: every match, then the action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub matches: Vec<Match>,
    pub action: Action,
}

impl Rule {
    pub fn new(matches: Vec<Match>, action: Action) -> Rule {
        Rule { matches, action }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addr {
    Source,
    Destination,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// `iifname` (a trailing `*` is a wildcard).
    Iif(String),
    Oif(String),
    EtherSource(String),
    ArpSenderMac(String),
    ArpSenderIp(Ipv4Net),
    Ip4(Addr, Ipv4Net),
    Ip6(Addr, Ipv6Net),
    /// The address is in a set (by name).
    Ip4In(Addr, String),
    Ip6In(Addr, String),
    Ipv4,
    Ipv6,
    L4Proto(u8),
    /// Transport destination port range (TCP, UDP, SCTP, DCCP, UDP-Lite).
    DestinationPorts(u16, u16),
    UdpPorts {
        source: u16,
        destination: u16,
    },
    IcmpType(u8),
    IcmpCode(u8),
    Icmp6Type(u8),
    Icmp6Code(u8),
    CtInvalid,
    CtRelated,
    /// A reply of an established connection.
    CtEstablishedReply,
    /// `meta mark & mask == value`.
    Mark {
        mask: u32,
        value: u32,
    },
    /// `meta mark & mask` is in a set of marks.
    MarkIn {
        mask: u32,
        set: String,
    },
    /// `iifname . ip daddr` (or `ip6 daddr`) is in a set.
    IifDestinationIn {
        v6: bool,
        set: String,
    },
    /// `ether type` is none of IPv4, IPv6 and ARP (in the bridge family).
    NotIpOrArp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Accept,
    Drop,
    Return,
    Jump(String),
    Goto(String),
    SetMark(u32),
    /// `meta mark set meta mark & 0xffff | bits` (the receiving port's slot in the high half,
    /// the sender's kept), then accept.
    SetToSlotAccept(u32),
    SetCtZone(u16),
    /// No connection tracking (stateless security groups), and accept: nothing later in the
    /// raw hook may set a zone (which would track the packet again).
    Notrack,
    /// `iifname vmap @set`.
    IifVmap(String),
    OifVmap(String),
    /// `meta mark & mask vmap @set`.
    MarkVmap {
        mask: u32,
        set: String,
    },
}

/// What the data plane finds of the firewall: its chains (with the digest their last rule
/// carries, when the observation read rules; `None` otherwise), and per set its elements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedRuleset {
    pub tables: BTreeSet<Family>,
    pub chains: BTreeMap<(Family, String), Option<String>>,
    pub sets: BTreeMap<(Family, String), BTreeMap<String, Option<SetValue>>>,
}
