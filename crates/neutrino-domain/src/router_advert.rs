//! The router advertisement a router leg sends (RFC 4861), as Neutron's radvd configuration
//! makes it from the leg's subnets, as a pure function and its encoding.

use crate::dhcp::v6::{v6_subnets, DHCPV6_STATEFUL, DHCPV6_STATELESS, SLAAC};
use neutrino_api::agent::{HostNetwork, HostSubnet};
use std::net::{IpAddr, Ipv6Addr};

/// At most this many RDNSS entries (Neutron's).
const MAX_RDNSS: usize = 3;
/// The smallest link MTU of IPv6: a smaller network MTU is not announced.
const IPV6_MIN_MTU: u32 = 1280;
/// radvd's defaults for a prefix's lifetimes (seconds).
const VALID_LIFETIME: u32 = 86400;
const PREFERRED_LIFETIME: u32 = 14400;

/// `[DEFAULT] min_rtr_adv_interval` and `max_rtr_adv_interval` (seconds, Neutron's 30 and 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaSettings {
    pub min_interval: u32,
    pub max_interval: u32,
}

impl Default for RaSettings {
    fn default() -> RaSettings {
        RaSettings { min_interval: 30, max_interval: 100 }
    }
}

/// A prefix announced: on-link, and autonomous (SLAAC) or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaPrefix {
    pub prefix: ipnet::Ipv6Net,
    pub autonomous: bool,
}

/// A router leg's advertisement, as Neutron's radvd configuration makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterAdvert {
    /// M: addresses by DHCPv6 (a `dhcpv6-stateful` subnet).
    pub managed: bool,
    /// O: other configuration by DHCPv6 (a `dhcpv6-stateless` subnet).
    pub other: bool,
    /// The network's MTU (none below 1280).
    pub mtu: Option<u32>,
    pub prefixes: Vec<RaPrefix>,
    /// The `dns_nameservers` of its SLAAC subnets (at most 3).
    pub rdnss: Vec<Ipv6Addr>,
    /// The router lifetime (3 × the maximum interval, radvd's default).
    pub router_lifetime: u16,
    /// The lifetime of RDNSS.
    pub option_lifetime: u32,
}

/// The advertisement of a router leg with `addresses` (`2001:db8::1/64`) on `network`:
/// `None` when it has no IPv6 address there. Every IPv6 subnet of the leg is announced by its
/// `ipv6_ra_mode`: `slaac` and `dhcpv6-stateless` autonomous, `dhcpv6-stateful` not, and one
/// without an RA mode not at all (the leg still advertises itself as a router, as radvd does).
pub fn router_advert(network: &HostNetwork, addresses: &[String], settings: &RaSettings) -> Option<RouterAdvert> {
    let ips: Vec<Ipv6Addr> = addresses
        .iter()
        .filter_map(|a| a.split('/').next()?.parse::<IpAddr>().ok())
        .filter_map(|ip| match ip {
            IpAddr::V6(ip) => Some(ip),
            IpAddr::V4(_) => None,
        })
        .collect();
    let subnets: Vec<(ipnet::Ipv6Net, &HostSubnet)> =
        v6_subnets(network).filter(|(cidr, _)| ips.iter().any(|ip| cidr.contains(ip))).collect();
    if subnets.is_empty() {
        return None;
    }
    let mode = |s: &HostSubnet, m: &str| s.ipv6_ra_mode.as_deref() == Some(m);
    let mut prefixes = Vec::new();
    let mut rdnss = Vec::new();
    for (cidr, s) in &subnets {
        if mode(s, SLAAC) || mode(s, DHCPV6_STATELESS) {
            prefixes.push(RaPrefix { prefix: *cidr, autonomous: true });
        }
        if mode(s, SLAAC) {
            rdnss.extend(s.dns_nameservers.iter().filter_map(|d| d.parse::<Ipv6Addr>().ok()));
        }
    }
    for (cidr, s) in &subnets {
        if mode(s, DHCPV6_STATEFUL) {
            prefixes.push(RaPrefix { prefix: *cidr, autonomous: false });
        }
    }
    rdnss.retain(|d| !d.is_unspecified());
    rdnss.truncate(MAX_RDNSS);
    let max = settings.max_interval.max(4);
    Some(RouterAdvert {
        managed: subnets.iter().any(|(_, s)| mode(s, DHCPV6_STATEFUL)),
        other: subnets.iter().any(|(_, s)| mode(s, DHCPV6_STATELESS)),
        mtu: (network.mtu >= IPV6_MIN_MTU).then_some(network.mtu),
        prefixes,
        rdnss,
        router_lifetime: (3 * max).min(9000) as u16,
        option_lifetime: 3 * max,
    })
}

impl RouterAdvert {
    /// The ICMPv6 message (type 134) from a leg with `mac`; its checksum is left 0 for the
    /// kernel to fill. Options: source link-layer address, MTU, prefixes and RDNSS. (Neutron's
    /// radvd also routes `fe80::a9fe:a9fe/128` to the router, where its metadata proxy is;
    /// here that address is on the VM's link, in the DHCP namespace, so no route is sent.)
    pub fn encode(&self, mac: [u8; 6]) -> Vec<u8> {
        let mut out = vec![134, 0, 0, 0, 64];
        out.push(if self.managed { 0x80 } else { 0 } | if self.other { 0x40 } else { 0 });
        out.extend(self.router_lifetime.to_be_bytes());
        out.extend([0u8; 8]); // reachable time, retransmission timer: unspecified
        out.extend([1, 1]);
        out.extend(mac);
        if let Some(mtu) = self.mtu {
            out.extend([5, 1, 0, 0]);
            out.extend(mtu.to_be_bytes());
        }
        for p in &self.prefixes {
            out.extend([3, 4, p.prefix.prefix_len(), 0x80 | if p.autonomous { 0x40 } else { 0 }]);
            out.extend(VALID_LIFETIME.to_be_bytes());
            out.extend(PREFERRED_LIFETIME.to_be_bytes());
            out.extend([0u8; 4]);
            out.extend(p.prefix.network().octets());
        }
        if !self.rdnss.is_empty() {
            out.extend([25, 1 + 2 * self.rdnss.len() as u8, 0, 0]);
            out.extend(self.option_lifetime.to_be_bytes());
            for d in &self.rdnss {
                out.extend(d.octets());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::v6::tests::{network, subnet};
    use crate::dhcp::v6::{DHCPV6_STATEFUL, DHCPV6_STATELESS, SLAAC};

    #[test]
    fn the_advert_follows_each_subnets_ra_mode_as_radvd_is_configured() {
        let mut slaac = subnet("2001:db8:1::/64", Some(SLAAC), Some(SLAAC));
        slaac.dns_nameservers = vec!["2001:db8::53".into(), "192.0.2.53".into()];
        let stateful = subnet("2001:db8:2::/64", Some(DHCPV6_STATEFUL), Some(DHCPV6_STATEFUL));
        let outside = subnet("2001:db8:3::/64", Some(SLAAC), Some(SLAAC));
        let net = network(vec![slaac, stateful, outside, subnet("192.0.2.0/24", None, None)]);
        let addresses = vec!["2001:db8:1::1/64".into(), "2001:db8:2::1/64".into(), "192.0.2.1/24".into()];
        let ra = router_advert(&net, &addresses, &RaSettings::default()).unwrap();
        assert!(ra.managed && !ra.other);
        assert_eq!(ra.mtu, Some(1450));
        assert_eq!(
            ra.prefixes,
            vec![
                RaPrefix { prefix: "2001:db8:1::/64".parse().unwrap(), autonomous: true },
                RaPrefix { prefix: "2001:db8:2::/64".parse().unwrap(), autonomous: false },
            ],
            "only the leg's own subnets, the stateful one not autonomous"
        );
        assert_eq!(ra.rdnss, vec!["2001:db8::53".parse::<Ipv6Addr>().unwrap()]);
        assert_eq!(ra.router_lifetime, 300);
        let stateless = network(vec![subnet("2001:db8:1::/64", Some(DHCPV6_STATELESS), Some(DHCPV6_STATELESS))]);
        let ra = router_advert(&stateless, &["2001:db8:1::1/64".into()], &RaSettings::default()).unwrap();
        assert!(!ra.managed && ra.other && ra.prefixes[0].autonomous);
        let none = network(vec![subnet("2001:db8:1::/64", None, None)]);
        let ra = router_advert(&none, &["2001:db8:1::1/64".into()], &RaSettings::default()).unwrap();
        assert!(ra.prefixes.is_empty() && !ra.managed && !ra.other, "a router, announcing no prefix");
        assert_eq!(router_advert(&none, &["192.0.2.1/24".into()], &RaSettings::default()), None);
    }

    #[test]
    fn the_advert_encodes_flags_and_options() {
        let net = network(vec![subnet("2001:db8:1::/64", Some(DHCPV6_STATEFUL), Some(DHCPV6_STATEFUL))]);
        let mut ra = router_advert(&net, &["2001:db8:1::1/64".into()], &RaSettings::default()).unwrap();
        ra.rdnss = vec!["2001:db8::53".parse().unwrap()];
        let bytes = ra.encode([0xfa, 0x16, 0x3e, 1, 2, 3]);
        assert_eq!(&bytes[..8], &[134, 0, 0, 0, 64, 0x80, 1, 44]);
        assert_eq!(&bytes[16..24], &[1, 1, 0xfa, 0x16, 0x3e, 1, 2, 3]);
        assert_eq!(&bytes[24..32], &[5, 1, 0, 0, 0, 0, 0x05, 0xaa]);
        assert_eq!(&bytes[32..36], &[3, 4, 64, 0x80], "on-link, not autonomous");
        assert_eq!(&bytes[64..72], &[25, 3, 0, 0, 0, 0, 1, 44]);
        assert_eq!(bytes.len(), 88, "no route option: the metadata address is on-link, in the DHCP namespace");
        let mut stopping = ra.clone();
        stopping.router_lifetime = 0;
        assert_eq!(&stopping.encode([0xfa, 0x16, 0x3e, 1, 2, 3])[6..8], &[0, 0], "a leg that stops says so");
    }
}
