//! DHCPv6 for a host's own ports, as pure functions: a port's lease (stateful: its fixed IP on
//! a `dhcpv6-stateful` subnet; stateless: options only) with its IPv6 `extra_dhcp_opts`. (The
//! router advertisements are `crate::router_advert`.)

use super::DhcpSettings;
use neutrino_api::agent::{HostNetwork, HostSubnet, LocalPort};
use std::net::Ipv6Addr;

/// The metadata service's IPv6 address (link-local).
pub const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0xa9fe, 0xa9fe);

/// `ipv6_ra_mode` / `ipv6_address_mode` values.
pub const SLAAC: &str = "slaac";
pub const DHCPV6_STATEFUL: &str = "dhcpv6-stateful";
pub const DHCPV6_STATELESS: &str = "dhcpv6-stateless";

pub(crate) fn v6_subnets(network: &HostNetwork) -> impl Iterator<Item = (ipnet::Ipv6Net, &HostSubnet)> {
    network.subnets.values().filter_map(|s| Some((s.cidr.parse::<ipnet::Ipv6Net>().ok()?, s)))
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
            // The exchange itself: ids, addresses, preference, relay and status, unicast.
            1..=3 | 5..=9 | 12..=14 => continue,
            31 => addresses_v6(value).iter().flat_map(|a| a.octets()).collect(),
            32 => match value.parse::<u32>() {
                Ok(seconds) => seconds.to_be_bytes().to_vec(),
                Err(_) => continue,
            },
            // NTP servers (RFC 5908): each an address suboption.
            56 => addresses_v6(value).iter().flat_map(|a| [&[0u8, 1, 0, 16][..], &a.octets()].concat()).collect(),
            // Boot parameters (RFC 5970): each with its length.
            60 => value
                .split(',')
                .flat_map(|p| [&(p.len().min(u16::MAX as usize) as u16).to_be_bytes()[..], p.as_bytes()].concat())
                .collect(),
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
    let link_local = crate::ipam::link_local(crate::mac::parse_mac(&port.mac_address)?);
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
pub(crate) mod tests {
    use super::*;
    use neutrino_api::agent::DhcpServer;

    pub(crate) fn subnet(cidr: &str, ra: Option<&str>, address: Option<&str>) -> HostSubnet {
        HostSubnet {
            cidr: cidr.into(),
            enable_dhcp: true,
            ipv6_ra_mode: ra.map(String::from),
            ipv6_address_mode: address.map(String::from),
            ..HostSubnet::default()
        }
    }

    pub(crate) fn network(subnets: Vec<HostSubnet>) -> HostNetwork {
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
