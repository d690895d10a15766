//! DHCP as each host answers it for its own ports, as pure functions: what a port's lease is
//! (address, options, routes) from its host view, by the rules Neutron's DHCP agent follows
//! (see `lease_v4`).

mod options;
pub mod v6;

pub use options::{classless_bytes, option_code, ExtraOption, Tag, TaggedOption, IPXE};

use neutrino_api::agent::{HostNetwork, HostSubnet, LocalPort};
use std::net::{IpAddr, Ipv4Addr};

/// The device owner of a network's DHCP port.
pub const DEVICE_OWNER_DHCP: &str = "network:dhcp";

/// The metadata service's address.
pub const METADATA_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

/// What the agent adds to the view: Neutron's DHCP options of the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpSettings {
    /// `[DEFAULT] dhcp_lease_duration` in seconds; `None` is infinite (-1).
    pub lease_seconds: Option<u32>,
    /// `[DEFAULT] dns_domain` (Neutron's default `openstacklocal`).
    pub domain: String,
}

impl Default for DhcpSettings {
    fn default() -> DhcpSettings {
        DhcpSettings { lease_seconds: Some(86400), domain: "openstacklocal".into() }
    }
}

/// A port's IPv4 lease, with every option it is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseV4 {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    /// The address answering (the DHCP port's on the subnet).
    pub server: Ipv4Addr,
    /// `None`: infinite.
    pub lease_seconds: Option<u32>,
    /// Option 3 (none without a gateway, or when blanked by `extra_dhcp_opts`).
    pub router: Option<Ipv4Addr>,
    /// Option 6 (empty: none is announced).
    pub dns_servers: Vec<Ipv4Addr>,
    /// Option 15.
    pub domain: String,
    /// Option 12.
    pub hostname: String,
    /// Option 26.
    pub mtu: u16,
    /// Options 121 and 249 (`(destination, prefix length, next hop)`; next hop 0.0.0.0 is
    /// on-link), the default route last; empty when blanked.
    pub classless_routes: Vec<(Ipv4Addr, u8, Ipv4Addr)>,
    /// The port's other `extra_dhcp_opts` for IPv4, encoded, by option code.
    pub extra: Vec<ExtraOption>,
    /// The port's `extra_dhcp_opts` with tags (`tag:ipxe,bootfile-name`), encoded: sent, in
    /// place of the same option, to a client whose request sets every tag.
    pub tagged: Vec<TaggedOption>,
    /// `server-ip-address`: the header's next server (`siaddr`), else the DHCP port.
    pub next_server: Option<Ipv4Addr>,
}

/// The port's IPv4 address on a DHCP-enabled subnet of its network, and that subnet.
fn dhcp_address<'a>(network: &'a HostNetwork, port: &LocalPort) -> Option<(Ipv4Addr, &'a str, &'a HostSubnet)> {
    port.ip_addresses.iter().find_map(|ip| {
        let IpAddr::V4(ip) = ip.parse().ok()? else { return None };
        network.subnets.iter().find_map(|(id, s)| {
            let cidr: ipnet::Ipv4Net = s.cidr.parse().ok()?;
            (s.enable_dhcp && cidr.contains(&ip)).then_some((ip, id.as_str(), s))
        })
    })
}

/// A port's host name: its `dns_name`, or Neutron's for a port without one (`host-192-0-2-5`,
/// from its first address).
pub fn hostname(dns_name: &str, address: IpAddr) -> String {
    if !dns_name.is_empty() {
        // A fully qualified `dns_name` (`vm1.openstacklocal.`) names the host by its first label.
        return dns_name.split('.').next().unwrap_or(dns_name).to_string();
    }
    format!("host-{}", address.to_string().replace(['.', ':'], "-"))
}

fn first_address(port: &LocalPort) -> Option<IpAddr> {
    port.ip_addresses.iter().find_map(|ip| ip.parse().ok())
}

/// The lease of a local port: its IPv4 fixed IP on a DHCP-enabled subnet, with Neutron's
/// options; `None` when the port has none or the network has no DHCP port there.
///
/// - Router: the subnet's gateway, else the next hop of a `0.0.0.0/0` host route.
/// - DNS: the subnet's `dns_nameservers` (`0.0.0.0` alone: none), else the DHCP port (the
///   host's own responder).
/// - Classless routes: the host routes, on-link routes to the network's other IPv4 subnets,
///   the metadata address via the DHCP port, and the default route last.
/// - `extra_dhcp_opts` replace what they name; a blank `router` or `classless-static-route`
///   suppresses it.
pub fn lease_v4(network: &HostNetwork, port: &LocalPort, settings: &DhcpSettings) -> Option<LeaseV4> {
    let (address, subnet_id, subnet) = dhcp_address(network, port)?;
    let cidr: ipnet::Ipv4Net = subnet.cidr.parse().ok()?;
    let server = network.dhcp.as_ref()?.ip_addresses.iter().find_map(|ip| match ip.parse() {
        Ok(IpAddr::V4(ip)) if cidr.contains(&ip) => Some(ip),
        _ => None,
    })?;
    let host_routes: Vec<(ipnet::Ipv4Net, Ipv4Addr)> =
        subnet.host_routes.iter().filter_map(|(d, n)| Some((d.parse().ok()?, n.parse().ok()?))).collect();
    let default_route = host_routes.iter().find(|(d, _)| d.prefix_len() == 0).map(|(_, n)| *n);
    let gateway = subnet.gateway_ip.as_deref().and_then(|g| g.parse::<Ipv4Addr>().ok());
    // As Neutron's DHCP agent: the gateway, else a default host route's next hop.
    let router = gateway.or(default_route);
    let dns_servers: Vec<Ipv4Addr> = match subnet.dns_nameservers.as_slice() {
        [] => vec![server],
        [only] if only == "0.0.0.0" => Vec::new(),
        given => given.iter().filter_map(|d| d.parse().ok()).collect(),
    };
    let mut routes: Vec<(Ipv4Addr, u8, Ipv4Addr)> = Vec::new();
    for (d, n) in host_routes.iter().filter(|(d, _)| d.prefix_len() != 0) {
        routes.push((d.network(), d.prefix_len(), *n));
    }
    for (id, other) in &network.subnets {
        if id == subnet_id {
            continue;
        }
        if let Ok(other) = other.cidr.parse::<ipnet::Ipv4Net>() {
            routes.push((other.network(), other.prefix_len(), Ipv4Addr::UNSPECIFIED));
        }
    }
    if !host_routes.iter().any(|(d, _)| d.contains(&METADATA_V4) && d.prefix_len() == 32) {
        routes.push((METADATA_V4, 32, server));
    }
    if let Some(router) = router {
        routes.push((Ipv4Addr::UNSPECIFIED, 0, router));
    }
    let mut lease = LeaseV4 {
        address,
        prefix_len: cidr.prefix_len(),
        server,
        lease_seconds: settings.lease_seconds,
        router,
        dns_servers,
        domain: settings.domain.clone(),
        hostname: hostname(&port.dns_name, first_address(port).unwrap_or(IpAddr::V4(address))),
        mtu: network.mtu.min(u16::MAX as u32) as u16,
        classless_routes: routes,
        extra: Vec::new(),
        tagged: Vec::new(),
        next_server: None,
    };
    options::apply_extra(&mut lease, port);
    Some(lease)
}

#[cfg(test)]
mod tests;
