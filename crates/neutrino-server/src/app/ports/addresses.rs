//! A port's fixed IPs: requested addresses, or Neutron's automatic choice.

use crate::app::authorize::{authorize_item, ItemAction};
use crate::app::OpContext;
use crate::error::{HttpError, HttpResult};
use neutrino_api::resources::{FixedIp, Port, Subnet};
use neutrino_api::ApiError;
use neutrino_domain::ipam::{eui64_address, IpRange};
use neutrino_domain::mac::mac_bytes;
use neutrino_domain::subnet::is_auto_address;
use neutrino_store::{self as store, Tx};
use std::net::IpAddr;

/// One entry of a request's `fixed_ips`: a subnet, an address, or both.
#[derive(Debug, Clone, Default)]
pub struct FixedIpRequest {
    pub subnet_id: Option<String>,
    pub ip_address: Option<String>,
}

fn parse_fixed_ip(text: &str) -> Result<IpAddr, ApiError> {
    text.parse().map_err(|_| ApiError::invalid_attribute("fixed_ips", format!("'{text}' is not a valid IP address")))
}

pub(crate) fn pools_of(subnet: &Subnet) -> Vec<IpRange> {
    subnet
        .allocation_pools
        .iter()
        .filter_map(|p| Some(IpRange::new(p.start.parse().ok()?, p.end.parse().ok()?)))
        .collect()
}

fn ip_exhausted_on_subnet(subnet_id: &str) -> HttpError {
    HttpError(ApiError::conflict(
        "IpAddressGenerationFailure",
        format!("No more IP addresses available for subnet {subnet_id}."),
    ))
}

fn ip_in_use(ip: IpAddr, subnet_id: &str) -> HttpError {
    HttpError(ApiError::conflict(
        "IpAddressAlreadyAllocated",
        format!("IP address {ip} already allocated in subnet {subnet_id}"),
    ))
}

/// Give the port its addresses: exactly the requested ones, or Neutron's automatic choice
/// (one IPv4 and one stateful IPv6 address, plus an EUI-64 address per SLAAC subnet).
pub(super) async fn assign_fixed_ips(
    ctx: &OpContext,
    tx: &mut Tx,
    port: &Port,
    subnets: &[Subnet],
    requested: Option<Vec<FixedIpRequest>>,
) -> HttpResult<Vec<FixedIp>> {
    let mut out = Vec::new();
    match requested {
        Some(entries) => {
            if !entries.is_empty() && subnets.is_empty() {
                return Err(ApiError::invalid_input("IP allocation requires subnets for network").into());
            }
            for entry in &entries {
                let ip = entry.ip_address.as_deref().map(parse_fixed_ip).transpose()?;
                let subnet = match entry.subnet_id.as_deref() {
                    Some(sid) => match subnets.iter().find(|s| s.id == sid) {
                        Some(subnet) => subnet,
                        None => {
                            // As Neutron: a subnet that does not exist (or that the caller
                            // does not see) is not found; one on another network is invalid.
                            store::get_subnet(tx.conn(), sid).await?;
                            authorize_item(ctx, tx.conn(), "subnet", sid, ItemAction::Read).await?;
                            return Err(ApiError::invalid_input(format!(
                                "Failed to create port on network {}, because fixed_ips included invalid subnet {sid}",
                                port.network_id
                            ))
                            .into());
                        }
                    },
                    None => {
                        let ip = ip
                            .ok_or_else(|| ApiError::invalid_input("IP allocation requires subnet_id or ip_address"))?;
                        subnets.iter().find(|s| subnet_contains(s, ip)).ok_or_else(|| {
                            ApiError::bad_request_kind(
                                "InvalidIpForNetwork",
                                format!(
                                    "IP address {ip} is not a valid IP for any of the subnets on the specified network."
                                ),
                            )
                        })?
                    }
                };
                if let Some(ip) = ip {
                    refuse_on_auto_address_subnet(port, subnet, ip)?;
                }
                let addr = match ip {
                    Some(ip) => allocate_exact(tx, port, subnet, ip, out.len()).await?,
                    None => allocate_from(tx, port, subnet, out.len()).await?,
                };
                out.push(FixedIp { subnet_id: subnet.id.clone(), ip_address: addr.to_string() });
            }
        }
        None => {
            let subnets = &subnets_for_owner(subnets, &port.device_owner);
            for v6_stateful in [false, true] {
                let family: Vec<&Subnet> = subnets
                    .iter()
                    .filter(|s| (s.ip_version == 6) == v6_stateful && !is_auto_address(s.ipv6_address_mode.as_deref()))
                    .collect();
                if family.is_empty() {
                    continue;
                }
                let mut got = None;
                for s in &family {
                    if let Some(ip) =
                        store::allocate_any_ip(tx, &port.network_id, &s.id, &pools_of(s), &port.id, out.len()).await?
                    {
                        got = Some(FixedIp { subnet_id: s.id.clone(), ip_address: ip.to_string() });
                        break;
                    }
                }
                let fixed = got.ok_or_else(|| {
                    HttpError(ApiError::conflict(
                        "IpAddressGenerationFailure",
                        format!("No more IP addresses available on network {}.", port.network_id),
                    ))
                })?;
                out.push(fixed);
            }
            for s in subnets.iter().filter(|s| is_auto_address(s.ipv6_address_mode.as_deref())) {
                let addr = allocate_from(tx, port, s, out.len()).await?;
                out.push(FixedIp { subnet_id: s.id.clone(), ip_address: addr.to_string() });
            }
        }
    }
    Ok(out)
}

/// Device owners of router interfaces, which may take any address of a SLAAC subnet.
const ROUTER_INTERFACE_OWNERS: [&str; 3] =
    ["network:router_interface", "network:ha_router_replicated_interface", "network:router_interface_distributed"];

/// An address asked for on a SLAAC (or DHCPv6-stateless) subnet must be the port's EUI-64
/// address, as Neutron's `AllocationOnAutoAddressSubnet` (router interfaces excepted).
fn refuse_on_auto_address_subnet(port: &Port, subnet: &Subnet, ip: IpAddr) -> HttpResult<()> {
    if !is_auto_address(subnet.ipv6_address_mode.as_deref())
        || ROUTER_INTERFACE_OWNERS.contains(&port.device_owner.as_str())
    {
        return Ok(());
    }
    let eui64 =
        subnet.cidr.parse().ok().zip(mac_bytes(&port.mac_address)).and_then(|(cidr, mac)| eui64_address(cidr, mac));
    if eui64 == Some(ip) {
        return Ok(());
    }
    Err(HttpError(ApiError::bad_request_kind(
        "AllocationOnAutoAddressSubnet",
        format!(
            "IPv6 address {ip} cannot be directly assigned to a port on subnet {} as the subnet is configured for automatic addresses",
            subnet.id
        ),
    )))
}

/// Subnets automatic addresses may come from, by `service_types`: those reserved for the
/// port's device owner if there are any, else those reserved for nobody.
fn subnets_for_owner(subnets: &[Subnet], device_owner: &str) -> Vec<Subnet> {
    let for_owner: Vec<Subnet> =
        subnets.iter().filter(|s| s.service_types.iter().any(|t| t == device_owner)).cloned().collect();
    if !for_owner.is_empty() {
        return for_owner;
    }
    subnets.iter().filter(|s| s.service_types.is_empty()).cloned().collect()
}

fn subnet_contains(subnet: &Subnet, ip: IpAddr) -> bool {
    subnet.cidr.parse::<ipnet::IpNet>().is_ok_and(|c| c.contains(&ip))
}

/// Hold exactly `ip` on `subnet`.
async fn allocate_exact(tx: &mut Tx, port: &Port, subnet: &Subnet, ip: IpAddr, position: usize) -> HttpResult<IpAddr> {
    let cidr: ipnet::IpNet = subnet.cidr.parse().map_err(|_| ApiError::internal("stored CIDR is invalid"))?;
    let v4_reserved =
        cidr.addr().is_ipv4() && cidr.prefix_len() < 31 && (ip == cidr.network() || ip == cidr.broadcast());
    if !cidr.contains(&ip) || v4_reserved {
        return Err(HttpError(ApiError::new(
            400,
            "InvalidIpForSubnet",
            format!("IP address {ip} is not a valid IP for the specified subnet."),
        )));
    }
    // (The gateway address too, as Neutron's IPAM: only allocations are checked.)
    if !store::allocate_specific_ip(tx, &port.network_id, &subnet.id, ip, &port.id, position).await? {
        return Err(ip_in_use(ip, &subnet.id));
    }
    Ok(ip)
}

/// Take an address from `subnet`: EUI-64 on SLAAC subnets, else from the pools.
async fn allocate_from(tx: &mut Tx, port: &Port, subnet: &Subnet, position: usize) -> HttpResult<IpAddr> {
    if is_auto_address(subnet.ipv6_address_mode.as_deref()) {
        let cidr = subnet.cidr.parse().map_err(|_| ApiError::internal("stored CIDR is invalid"))?;
        let mac = mac_bytes(&port.mac_address).ok_or_else(|| ApiError::internal("stored MAC is invalid"))?;
        let ip = eui64_address(cidr, mac).ok_or_else(|| {
            ApiError::invalid_input(format!("Subnet {} is not a /64; SLAAC needs a /64 prefix", subnet.id))
        })?;
        if !store::allocate_specific_ip(tx, &port.network_id, &subnet.id, ip, &port.id, position).await? {
            return Err(ip_in_use(ip, &subnet.id));
        }
        return Ok(ip);
    }
    store::allocate_any_ip(tx, &port.network_id, &subnet.id, &pools_of(subnet), &port.id, position)
        .await?
        .ok_or_else(|| ip_exhausted_on_subnet(&subnet.id))
}
