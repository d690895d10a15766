//! IPv6 for a host's own ports, as pure functions: the router advertisement a router leg
//! sends (Neutron's radvd configuration), and a port's DHCPv6 lease (stateful: its fixed IP
//! on a `dhcpv6-stateful` subnet; stateless: options only).

use super::DhcpSettings;
use crate::ipam::eui64_address;
use neutrino_api::agent::{HostNetwork, HostSubnet, LocalPort};
use std::net::{IpAddr, Ipv6Addr};

/// The metadata service's IPv6 address (link-local).
pub const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0xa9fe, 0xa9fe);

/// `ipv6_ra_mode` / `ipv6_address_mode` values.
pub const SLAAC: &str = "slaac";
pub const DHCPV6_STATEFUL: &str = "dhcpv6-stateful";
pub const DHCPV6_STATELESS: &str = "dhcpv6-stateless";

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
    /// The lifetime of RDNSS and the metadata route.
    pub option_lifetime: u32,
}

fn v6_subnets(network: &HostNetwork) -> impl Iterator<Item = (ipnet::Ipv6Net, &HostSubnet)> {
    network.subnets.values().filter_map(|s| Some((s.cidr.parse::<ipnet::Ipv6Net>().ok()?, s)))
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
    /// kernel to fill. Options: source link-layer address, MTU, prefixes, RDNSS and a route to
    /// the metadata address (`fe80::a9fe:a9fe/128`, as Neutron's radvd announces it).
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
        // Route information (RFC 4191): the metadata address, medium preference.
        out.extend([24, 3, 128, 0]);
        out.extend(self.option_lifetime.to_be_bytes());
        out.extend(METADATA_V6.octets());
        out
    }
}

/// A port's DHCPv6 lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseV6 {
    /// Its fixed IP on a `dhcpv6-stateful` subnet (none: options only, stateless).
    pub address: Option<Ipv6Addr>,
    /// Its link-local address (EUI-64 of its MAC): the only one a filtered port may send from.
    pub link_local: Ipv6Addr,
    /// None: infinite.
    pub lease_seconds: Option<u32>,
    /// The subnet's IPv6 `dns_nameservers` (`::` alone: none), else the DHCP port's address.
    pub dns_servers: Vec<Ipv6Addr>,
    /// The domain search list (the DHCP domain).
    pub domain_search: Vec<String>,
    /// The port's other IPv6 `extra_dhcp_opts`, encoded: `(option code, value)`.
    pub extra: Vec<(u16, Vec<u8>)>,
}

/// dnsmasq's DHCPv6 option names (`option6:` in its configuration).
const NAMES_V6: &[(&str, u16)] = &[
    ("dns-server", 23),
    ("domain-search", 24),
    ("sntp-server", 31),
    ("information-refresh-time", 32),
    ("ntp-server", 56),
    ("bootfile-url", 59),
    ("bootfile-param", 60),
];

/// The code of an IPv6 option as Neutron passes it to dnsmasq: a name or a number, either
/// after `option6:` (tags before it are ignored).
pub fn option6_code(name: &str) -> Option<u16> {
    let name = name.rsplit(',').next().unwrap_or(name).trim();
    let name = name.strip_prefix("option6:").unwrap_or(name);
    if let Ok(code) = name.parse::<u16>() {
        return Some(code);
    }
    NAMES_V6.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, c)| *c)
}

/// IPv6 addresses of an option's value, as dnsmasq writes them (`[2001:db8::1],[…]`).
fn addresses_v6(value: &str) -> Vec<Ipv6Addr> {
    value.split(',').filter_map(|a| a.trim().trim_start_matches('[').trim_end_matches(']').parse().ok()).collect()
}

/// Apply the port's IPv6 `extra_dhcp_opts`: `dns-server` and `domain-search` replace what the
/// lease computes; `information-refresh-time` is a number; an address list (`sntp-server`) is
/// addresses; any other is sent as its text (`bootfile-url`).
fn apply_extra_v6(lease: &mut LeaseV6, port: &LocalPort) {
    for opt in port.extra_dhcp_opts.iter().filter(|o| o.ip_version == 6) {
        let Some(code) = option6_code(&opt.opt_name) else { continue };
        let value = opt.opt_value.trim();
        let encoded = match code {
            23 => {
                lease.dns_servers = addresses_v6(value);
                continue;
            }
            24 => {
                lease.domain_search =
                    value.split(',').map(str::trim).filter(|d| !d.is_empty()).map(String::from).collect();
                continue;
            }
            // The exchange itself: client and server ids, addresses, preference, status.
            1..=3 | 5 | 7 | 13 | 14 => continue,
            31 => addresses_v6(value).iter().flat_map(|a| a.octets()).collect(),
            32 => match value.parse::<u32>() {
                Ok(seconds) => seconds.to_be_bytes().to_vec(),
                Err(_) => continue,
            },
            _ => value.as_bytes().to_vec(),
        };
        lease.extra.retain(|(c, _)| *c != code);
        lease.extra.push((code, encoded));
    }
}

fn is_dhcpv6(s: &HostSubnet) -> bool {
    s.enable_dhcp && matches!(s.ipv6_address_mode.as_deref(), Some(DHCPV6_STATEFUL | DHCPV6_STATELESS))
}

/// The DHCPv6 lease of a local port: `None` when its network has no DHCP-enabled
/// `dhcpv6-stateful` or `dhcpv6-stateless` subnet where the port has an address (or the MAC is
/// not one).
pub fn lease_v6(network: &HostNetwork, port: &LocalPort, settings: &DhcpSettings) -> Option<LeaseV6> {
    let mac = crate::mac::parse_mac(&port.mac_address)?;
    let link_local = match eui64_address("fe80::/64".parse().ok()?, mac)? {
        IpAddr::V6(ip) => ip,
        IpAddr::V4(_) => return None,
    };
    let addresses: Vec<Ipv6Addr> = port.ip_addresses.iter().filter_map(|ip| ip.parse().ok()).collect();
    let on = |cidr: &ipnet::Ipv6Net| addresses.iter().copied().find(|ip| cidr.contains(ip));
    let mut served: Vec<(ipnet::Ipv6Net, &HostSubnet)> =
        v6_subnets(network).filter(|(cidr, s)| is_dhcpv6(s) && on(cidr).is_some()).collect();
    // The stateful subnet first: it gives the address and the options.
    served.sort_by_key(|(_, s)| s.ipv6_address_mode.as_deref() != Some(DHCPV6_STATEFUL));
    let (cidr, subnet) = served.first()?;
    let address = (subnet.ipv6_address_mode.as_deref() == Some(DHCPV6_STATEFUL)).then(|| on(cidr)).flatten();
    let server = network
        .dhcp
        .iter()
        .flat_map(|d| &d.ip_addresses)
        .filter_map(|ip| ip.parse::<Ipv6Addr>().ok())
        .find(|ip| cidr.contains(ip));
    let dns_servers = match subnet.dns_nameservers.as_slice() {
        [] => server.into_iter().collect(),
        [only] if only == "::" => Vec::new(),
        given => given.iter().filter_map(|d| d.parse().ok()).collect(),
    };
    let mut lease = LeaseV6 {
        address,
        link_local,
        lease_seconds: settings.lease_seconds,
        dns_servers,
        domain_search: vec![settings.domain.clone()],
        extra: Vec::new(),
    };
    apply_extra_v6(&mut lease, port);
    Some(lease)
}

#[cfg(test)]
mod tests {
    use super::*;
    use neutrino_api::agent::DhcpServer;

    fn subnet(cidr: &str, ra: Option<&str>, address: Option<&str>) -> HostSubnet {
        HostSubnet {
            cidr: cidr.into(),
            enable_dhcp: true,
            ipv6_ra_mode: ra.map(String::from),
            ipv6_address_mode: address.map(String::from),
            ..HostSubnet::default()
        }
    }

    fn network(subnets: Vec<HostSubnet>) -> HostNetwork {
        HostNetwork {
            mtu: 1450,
            subnets: subnets.into_iter().enumerate().map(|(i, s)| (format!("s{i}"), s)).collect(),
            dhcp: Some(DhcpServer {
                port_id: "d".into(),
                mac_address: "fa:16:3e:00:00:02".into(),
                ip_addresses: vec!["2001:db8:1::2".into(), "2001:db8:2::2".into()],
            }),
            ..HostNetwork::default()
        }
    }

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
        assert_eq!(&bytes[88..92], &[24, 3, 128, 0]);
        assert_eq!(bytes.len(), 112);
    }

    #[test]
    fn a_lease_is_the_fixed_ip_of_a_stateful_subnet_or_options_only() {
        let stateful = subnet("2001:db8:1::/64", Some(DHCPV6_STATEFUL), Some(DHCPV6_STATEFUL));
        let mut stateless = subnet("2001:db8:2::/64", Some(DHCPV6_STATELESS), Some(DHCPV6_STATELESS));
        stateless.dns_nameservers = vec!["2001:db8::53".into()];
        let port = LocalPort {
            mac_address: "fa:16:3e:71:04:65".into(),
            ip_addresses: vec!["2001:db8:1::9".into(), "2001:db8:2::f816:3eff:fe71:465".into()],
            ..LocalPort::default()
        };
        let settings = DhcpSettings::default();
        let lease = lease_v6(&network(vec![stateful.clone(), stateless.clone()]), &port, &settings).unwrap();
        assert_eq!(lease.address, Some("2001:db8:1::9".parse().unwrap()));
        assert_eq!(lease.link_local, "fe80::f816:3eff:fe71:465".parse::<Ipv6Addr>().unwrap());
        assert_eq!(lease.dns_servers, vec!["2001:db8:1::2".parse::<Ipv6Addr>().unwrap()], "the DHCP port");
        let lease = lease_v6(&network(vec![stateless]), &port, &settings).unwrap();
        assert_eq!(lease.address, None);
        assert_eq!(lease.dns_servers, vec!["2001:db8::53".parse::<Ipv6Addr>().unwrap()]);
        let slaac = subnet("2001:db8:2::/64", Some(SLAAC), Some(SLAAC));
        assert_eq!(lease_v6(&network(vec![slaac]), &port, &settings), None, "SLAAC needs no DHCPv6");
        let mut with_opts = port.clone();
        let opt = |name: &str, value: &str| neutrino_api::agent::ExtraDhcpOpt {
            opt_name: name.into(),
            opt_value: value.into(),
            ip_version: 6,
        };
        with_opts.extra_dhcp_opts = vec![
            opt("dns-server", "[2001:db8::99]"),
            opt("option6:domain-search", "example.test,openstacklocal"),
            opt("bootfile-url", "tftp://[2001:db8::69]/boot.efi"),
            opt("router", "2001:db8::1"),
        ];
        let lease = lease_v6(&network(vec![stateful.clone()]), &with_opts, &settings).unwrap();
        assert_eq!(lease.dns_servers, vec!["2001:db8::99".parse::<Ipv6Addr>().unwrap()]);
        assert_eq!(lease.domain_search, ["example.test", "openstacklocal"]);
        assert_eq!(lease.extra, vec![(59, b"tftp://[2001:db8::69]/boot.efi".to_vec())], "an unknown name is left out");
        let mut off = subnet("2001:db8:1::/64", Some(DHCPV6_STATEFUL), Some(DHCPV6_STATEFUL));
        off.enable_dhcp = false;
        assert_eq!(lease_v6(&network(vec![off]), &port, &settings), None);
    }
}
