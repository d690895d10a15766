//! Subnet validation: CIDR, gateway, allocation pools, DNS servers, host routes and overlap,
//! with Neutron's error types and wording.

use crate::ipam::{default_pools, to_u128, IpRange};
use crate::DomainError;
use ipnet::IpNet;
use std::net::IpAddr;

/// What the client asked for the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayRequest {
    /// Not given: Neutron's default (first address for IPv4, the network address for IPv6).
    Default,
    /// `"gateway_ip": null`: no gateway.
    Disabled,
    Address(String),
}

#[derive(Debug, Clone)]
pub struct SubnetRequest {
    pub ip_version: u8,
    pub cidr: String,
    pub gateway: GatewayRequest,
    /// `(start, end)` pairs, or `None` for the default pools.
    pub allocation_pools: Option<Vec<(String, String)>>,
    pub dns_nameservers: Vec<String>,
    /// `(destination, nexthop)` pairs.
    pub host_routes: Vec<(String, String)>,
    pub ipv6_ra_mode: Option<String>,
    pub ipv6_address_mode: Option<String>,
    pub enable_dhcp: bool,
    /// On an update, the subnet as it is (its id names it in messages; DHCP already on skips
    /// the checks for turning it on).
    pub current: Option<CurrentSubnet>,
}

/// What an update's checks need of the subnet as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentSubnet {
    pub id: String,
    pub enable_dhcp: bool,
}

/// `[DEFAULT] max_dns_nameservers` and `max_subnet_host_routes`, at Neutron's defaults.
pub const MAX_DNS_NAMESERVERS: usize = 5;
pub const MAX_SUBNET_HOST_ROUTES: usize = 20;

/// Neutron's `_validate_ip_version`: "<name> '<addr>' does not match the ip_version 'N'".
fn check_version(ip_version: u8, addr: IpAddr, text: &str, name: &str) -> Result<(), DomainError> {
    let version = if addr.is_ipv4() { 4 } else { 6 };
    if version != ip_version {
        return Err(DomainError::invalid(format!("{name} '{text}' does not match the ip_version '{ip_version}'")));
    }
    Ok(())
}

/// What Neutron's `_validate_subnet` refuses of a CIDR: `::`, and with DHCP being turned on,
/// prefixes too long for it, multicast, loopback and `0.0.0.0/x` subnets.
fn check_cidr_for_dhcp(req: &SubnetRequest, cidr: IpNet) -> Result<(), DomainError> {
    if cidr.addr().is_ipv6() && cidr.network() == IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED) {
        return Err(DomainError::invalid("IPv6 subnet '::' is not supported"));
    }
    let dhcp_was_enabled = req.current.as_ref().is_some_and(|c| c.enable_dhcp);
    if !req.enable_dhcp || dhcp_was_enabled {
        return Ok(());
    }
    let too_long = if cidr.addr().is_ipv4() { cidr.prefix_len() > 30 } else { cidr.prefix_len() > 126 };
    if too_long {
        return Err(DomainError::invalid("Subnet has a prefix length that is incompatible with DHCP service enabled"));
    }
    if cidr.network().is_multicast() {
        return Err(DomainError::invalid("Multicast IP subnet is not supported if enable_dhcp is True"));
    }
    if cidr.network().is_loopback() {
        return Err(DomainError::invalid("Loopback IP subnet is not supported if enable_dhcp is True"));
    }
    if cidr.addr().is_ipv4() && to_u128(cidr.network()) == 0 {
        // (Neutron's text ends with a period of its own.)
        return Err(DomainError::invalid("First IP '0.0.0.0' of network is not supported if enable_dhcp is True."));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValidSubnet {
    pub cidr: IpNet,
    pub gateway: Option<IpAddr>,
    pub pools: Vec<IpRange>,
    pub dns_nameservers: Vec<IpAddr>,
    pub host_routes: Vec<(IpNet, IpAddr)>,
    pub ipv6_ra_mode: Option<String>,
    pub ipv6_address_mode: Option<String>,
}

const IPV6_MODES: [&str; 3] = ["slaac", "dhcpv6-stateful", "dhcpv6-stateless"];

/// Parse a CIDR as Neutron does: an address alone is its host prefix
/// (`convert_cidr_to_canonical_format`), host bits are cleared, and the version must match.
pub fn parse_cidr(text: &str, ip_version: u8) -> Result<IpNet, DomainError> {
    let net: IpNet = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => text
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| DomainError::invalid(format!("{text} is not in a CIDR format")))?,
    };
    let version = if net.addr().is_ipv4() { 4 } else { 6 };
    if version != ip_version {
        return Err(DomainError::invalid(format!("cidr '{text}' does not match the ip_version '{ip_version}'")));
    }
    Ok(net.trunc())
}

fn parse_ip(text: &str, what: &str) -> Result<IpAddr, DomainError> {
    text.parse().map_err(|_| DomainError::invalid(format!("'{text}' is not a valid IP address for {what}")))
}

pub fn format_range(r: &IpRange) -> String {
    format!("{}-{}", r.first, r.last)
}

/// Validate a new subnet against the subnets already on its network.
pub fn validate_subnet(req: &SubnetRequest, network_id: &str, existing: &[IpNet]) -> Result<ValidSubnet, DomainError> {
    if req.ip_version != 4 && req.ip_version != 6 {
        return Err(DomainError::invalid(format!("{} is not in [4, 6]", req.ip_version)));
    }
    let cidr = parse_cidr(&req.cidr, req.ip_version)?;
    check_cidr_for_dhcp(req, cidr)?;
    validate_ipv6_modes(req)?;
    if is_auto_address(req.ipv6_address_mode.as_deref()) && cidr.prefix_len() != 64 {
        return Err(DomainError::invalid(format!(
            "Invalid CIDR {cidr} for IPv6 address mode. OpenStack uses the EUI-64 address format, which requires the prefix to be /64"
        )));
    }
    if existing.iter().any(|e| e.contains(&cidr.network()) || cidr.contains(&e.network())) {
        return Err(DomainError::invalid(format!(
            "Requested subnet with cidr: {} for network: {network_id} overlaps with another subnet",
            req.cidr
        )));
    }
    let gateway = match &req.gateway {
        GatewayRequest::Disabled => None,
        GatewayRequest::Default => Some(if req.ip_version == 6 {
            cidr.network()
        } else {
            crate::ipam::from_u128(to_u128(cidr.network()) + 1, cidr.network())
        }),
        GatewayRequest::Address(text) => {
            let gw = parse_ip(text, "gateway_ip")?;
            check_version(req.ip_version, gw, text, "gateway_ip")?;
            // As Neutron's `check_gateway_invalid_in_subnet`: a gateway outside the subnet is
            // accepted (nothing tells what it is on); inside an IPv4 one it may be neither the
            // network nor the broadcast address.
            if cidr.contains(&gw) && cidr.addr().is_ipv4() && (gw == cidr.network() || gw == cidr.broadcast()) {
                return Err(DomainError::invalid("Gateway is not valid on subnet"));
            }
            Some(gw)
        }
    };
    let pools = match &req.allocation_pools {
        None => default_pools(cidr, gateway),
        Some(given) => validate_pools(cidr, given, gateway)?,
    };
    let subnet_label = req.current.as_ref().map(|c| c.id.clone()).unwrap_or_else(|| "new subnet".into());
    if req.dns_nameservers.len() > MAX_DNS_NAMESERVERS {
        return Err(DomainError::bad_request(
            "DNSNameServersExhausted",
            format!(
                "Unable to complete operation for {subnet_label}. The number of DNS nameservers exceeds the limit {MAX_DNS_NAMESERVERS}."
            ),
        ));
    }
    let dns_nameservers = validate_dns(&req.dns_nameservers)?;
    for (addr, text) in dns_nameservers.iter().zip(&req.dns_nameservers) {
        check_version(req.ip_version, *addr, text, "dns_nameserver")?;
    }
    if req.host_routes.len() > MAX_SUBNET_HOST_ROUTES {
        return Err(DomainError::bad_request(
            "HostRoutesExhausted",
            format!(
                "Unable to complete operation for {subnet_label}. The number of host routes exceeds the limit {MAX_SUBNET_HOST_ROUTES}."
            ),
        ));
    }
    let host_routes = req
        .host_routes
        .iter()
        .map(|(d, n)| {
            let dest: IpNet = d.parse().map_err(|_| DomainError::invalid(format!("'{d}' is not a valid IP subnet")))?;
            let nexthop = parse_ip(n, "nexthop")?;
            check_version(req.ip_version, nexthop, n, "nexthop")?;
            check_version(req.ip_version, dest.addr(), d, "destination")?;
            Ok((dest, nexthop))
        })
        .collect::<Result<Vec<_>, DomainError>>()?;
    Ok(ValidSubnet {
        cidr,
        gateway,
        pools,
        dns_nameservers,
        host_routes,
        ipv6_ra_mode: req.ipv6_ra_mode.clone(),
        ipv6_address_mode: req.ipv6_address_mode.clone(),
    })
}

fn validate_ipv6_modes(req: &SubnetRequest) -> Result<(), DomainError> {
    for (attr, mode) in [("ipv6_ra_mode", &req.ipv6_ra_mode), ("ipv6_address_mode", &req.ipv6_address_mode)] {
        if let Some(m) = mode {
            if req.ip_version != 6 {
                return Err(DomainError::invalid(format!("{attr} is not valid when ip_version is 4")));
            }
            if !IPV6_MODES.contains(&m.as_str()) {
                return Err(DomainError::invalid(format!("'{m}' is not in {IPV6_MODES:?}")));
            }
        }
    }
    if !req.enable_dhcp && (req.ipv6_ra_mode.is_some() || req.ipv6_address_mode.is_some()) {
        return Err(DomainError::invalid(
            "ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False",
        ));
    }
    if let (Some(ra), Some(addr)) = (&req.ipv6_ra_mode, &req.ipv6_address_mode) {
        if ra != addr {
            return Err(DomainError::invalid(format!(
                "ipv6_ra_mode set to '{ra}' with ipv6_address_mode set to '{addr}' is not valid. If both attributes are set, they must be the same value"
            )));
        }
    }
    Ok(())
}

/// Validate client-given pools: inside the CIDR, start <= end, no overlap, gateway outside.
pub fn validate_pools(
    cidr: IpNet,
    given: &[(String, String)],
    gateway: Option<IpAddr>,
) -> Result<Vec<IpRange>, DomainError> {
    let mut pools = Vec::with_capacity(given.len());
    for (start, end) in given {
        let (first, last) = (parse_ip(start, "allocation_pools")?, parse_ip(end, "allocation_pools")?);
        let range = IpRange::new(first, last);
        if first.is_ipv4() != cidr.addr().is_ipv4() || to_u128(first) > to_u128(last) {
            return Err(DomainError::bad_request(
                "InvalidAllocationPool",
                format!("The allocation pool {} is not valid.", format_range(&range)),
            ));
        }
        let v4_reserved = cidr.addr().is_ipv4()
            && cidr.prefix_len() < 31
            && (range.contains(cidr.network()) || range.contains(cidr.broadcast()));
        if !cidr.contains(&first) || !cidr.contains(&last) || v4_reserved {
            return Err(DomainError::bad_request(
                "OutOfBoundsAllocationPool",
                format!("The allocation pool {} spans beyond the subnet cidr {cidr}.", format_range(&range)),
            ));
        }
        pools.push(range);
    }
    for (i, a) in pools.iter().enumerate() {
        for b in &pools[i + 1..] {
            if a.overlaps(b) {
                return Err(DomainError::conflict(
                    "OverlappingAllocationPools",
                    format!(
                        "Found overlapping allocation pools: {} {} for subnet {cidr}.",
                        format_range(a),
                        format_range(b)
                    ),
                ));
            }
        }
    }
    if let Some(gw) = gateway {
        if let Some(p) = pools.iter().find(|p| p.contains(gw)) {
            return Err(DomainError::conflict(
                "GatewayConflictWithAllocationPools",
                format!("Gateway ip {gw} conflicts with allocation pool {}", format_range(p)),
            ));
        }
    }
    Ok(pools)
}

fn validate_dns(servers: &[String]) -> Result<Vec<IpAddr>, DomainError> {
    let mut out: Vec<IpAddr> = Vec::with_capacity(servers.len());
    for s in servers {
        let ip = s.parse().map_err(|_| DomainError::invalid(format!("'{s}' is not a valid nameserver")))?;
        if out.contains(&ip) {
            return Err(DomainError::invalid(format!("Duplicate nameserver '{s}'")));
        }
        out.push(ip);
    }
    Ok(out)
}

/// Whether ports get their address from this IPv6 subnet by SLAAC (EUI-64) rather than IPAM.
pub fn is_auto_address(address_mode: Option<&str>) -> bool {
    matches!(address_mode, Some("slaac") | Some("dhcpv6-stateless"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(cidr: &str, v: u8) -> SubnetRequest {
        SubnetRequest {
            current: None,
            ip_version: v,
            cidr: cidr.into(),
            gateway: GatewayRequest::Default,
            allocation_pools: None,
            dns_nameservers: vec![],
            host_routes: vec![],
            ipv6_ra_mode: None,
            ipv6_address_mode: None,
            enable_dhcp: true,
        }
    }

    #[test]
    fn bad_cidr_uses_neutron_wording() {
        let e = validate_subnet(&req("10.999.0.0/24", 4), "n", &[]).unwrap_err();
        assert_eq!(e, DomainError::invalid("10.999.0.0/24 is not in a CIDR format"));
    }

    #[test]
    fn version_mismatch_is_rejected() {
        let e = validate_subnet(&req("10.31.0.0/24", 6), "n", &[]).unwrap_err();
        assert_eq!(e, DomainError::invalid("cidr '10.31.0.0/24' does not match the ip_version '6'"));
    }

    #[test]
    fn overlapping_subnets_are_rejected() {
        let existing = vec!["10.30.0.0/24".parse().unwrap()];
        let e = validate_subnet(&req("10.30.0.128/25", 4), "net1", &existing).unwrap_err();
        assert_eq!(
            e,
            DomainError::invalid(
                "Requested subnet with cidr: 10.30.0.128/25 for network: net1 overlaps with another subnet"
            )
        );
    }

    #[test]
    fn gateway_inside_a_given_pool_conflicts() {
        let mut r = req("10.0.0.0/24", 4);
        r.allocation_pools = Some(vec![("10.0.0.1".into(), "10.0.0.10".into())]);
        let e = validate_subnet(&r, "n", &[]).unwrap_err();
        assert!(matches!(e, DomainError::Conflict { kind: "GatewayConflictWithAllocationPools", .. }));
    }

    #[test]
    fn pool_outside_cidr_is_out_of_bounds() {
        let mut r = req("10.0.0.0/24", 4);
        r.allocation_pools = Some(vec![("10.0.0.10".into(), "10.0.1.10".into())]);
        let e = validate_subnet(&r, "n", &[]).unwrap_err();
        assert!(matches!(e, DomainError::BadRequest { kind: "OutOfBoundsAllocationPool", .. }));
    }

    #[test]
    fn v6_defaults_match_the_sample() {
        let mut r = req("fd00:30::/64", 6);
        r.ipv6_ra_mode = Some("slaac".into());
        r.ipv6_address_mode = Some("slaac".into());
        let s = validate_subnet(&r, "n", &[]).unwrap();
        assert_eq!(s.gateway, Some("fd00:30::".parse().unwrap()));
        assert_eq!(s.pools[0].first, "fd00:30::1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn ipv6_mode_matrix_follows_neutron() {
        let mut r = req("fd00:1::/64", 6);
        r.ipv6_ra_mode = Some("slaac".into());
        r.ipv6_address_mode = Some("dhcpv6-stateful".into());
        assert!(validate_subnet(&r, "n", &[]).is_err(), "modes must agree");
        r.ipv6_address_mode = Some("slaac".into());
        assert!(validate_subnet(&r, "n", &[]).is_ok());
        r.enable_dhcp = false;
        assert!(validate_subnet(&r, "n", &[]).is_err(), "modes need DHCP enabled");
        let mut r = req("fd00:1::/80", 6);
        r.ipv6_address_mode = Some("slaac".into());
        assert!(validate_subnet(&r, "n", &[]).is_err(), "SLAAC needs a /64");
        r.ipv6_address_mode = Some("dhcpv6-stateful".into());
        assert!(validate_subnet(&r, "n", &[]).is_ok());
        let mut v4 = req("10.0.0.0/24", 4);
        v4.ipv6_address_mode = Some("slaac".into());
        assert!(validate_subnet(&v4, "n", &[]).is_err());
    }

    #[test]
    fn subnets_dhcp_cannot_serve_are_refused_as_neutron_does() {
        let refused = |cidr: &str, v: u8| validate_subnet(&req(cidr, v), "n", &[]).unwrap_err().to_string();
        assert!(refused("192.0.2.0/31", 4).contains("incompatible with DHCP"));
        assert!(refused("2001:db8::/127", 6).contains("incompatible with DHCP"));
        assert!(refused("224.0.0.0/24", 4).contains("Multicast IP subnet"));
        assert!(refused("127.0.0.0/24", 4).contains("Loopback IP subnet"));
        assert!(refused("0.0.0.0/8", 4).contains("First IP '0.0.0.0'"));
        assert!(refused("::/64", 6).contains("IPv6 subnet '::' is not supported"));
        let mut without_dhcp = req("192.0.2.0/31", 4);
        without_dhcp.enable_dhcp = false;
        assert!(validate_subnet(&without_dhcp, "n", &[]).is_ok());
        // Already on: an update does not judge it again.
        let mut already = req("192.0.2.0/31", 4);
        already.current = Some(CurrentSubnet { id: "s".into(), enable_dhcp: true });
        assert!(validate_subnet(&already, "n", &[]).is_ok());
        let mut v6_dns = req("192.0.2.0/24", 4);
        v6_dns.dns_nameservers = vec!["2001:db8::53".into()];
        assert_eq!(
            validate_subnet(&v6_dns, "n", &[]).unwrap_err(),
            DomainError::invalid("dns_nameserver '2001:db8::53' does not match the ip_version '4'")
        );
        let mut many = req("192.0.2.0/24", 4);
        many.dns_nameservers = (1..=6).map(|i| format!("198.51.100.{i}")).collect();
        assert!(matches!(
            validate_subnet(&many, "n", &[]),
            Err(DomainError::BadRequest { kind: "DNSNameServersExhausted", .. })
        ));
    }

    #[test]
    fn cidrs_are_made_canonical() {
        assert_eq!(parse_cidr("10.0.0.5/24", 4).unwrap().to_string(), "10.0.0.0/24");
        assert_eq!(parse_cidr("2001:db8::1/64", 6).unwrap().to_string(), "2001:db8::/64");
        assert_eq!(parse_cidr("192.0.2.7", 4).unwrap().to_string(), "192.0.2.7/32");
        assert!(parse_cidr("10.999.0.0/24", 4).is_err());
        assert!(parse_cidr("10.0.0.0/24", 6).is_err());
    }

    #[test]
    fn gateways_outside_the_subnet_are_accepted_but_not_its_network_or_broadcast() {
        let mut r = req("10.0.0.0/24", 4);
        r.gateway = GatewayRequest::Address("192.0.2.1".into());
        assert!(validate_subnet(&r, "n", &[]).is_ok());
        for bad in ["10.0.0.0", "10.0.0.255"] {
            r.gateway = GatewayRequest::Address(bad.into());
            let e = validate_subnet(&r, "n", &[]).unwrap_err();
            assert_eq!(e, DomainError::invalid("Gateway is not valid on subnet"), "{bad}");
        }
    }
}
