//! What host views carry for DHCP: a network's subnets and its DHCP port, read from the
//! tables for the network's image in the change log and for `Store::host_state`.

use crate::rows::{opt_text, text};
use crate::Result;
use neutrino_api::agent::{DhcpServer, HostState, HostSubnet};
use neutrino_api::resources::HostRoute;
use neutrino_domain::dhcp::DEVICE_OWNER_DHCP;
use sqlx::AnyConnection;
use std::collections::BTreeMap;

/// Per network of `ids`: its subnets by id, and its DHCP port (the server's: device
/// `dhcp-<network>`, the lowest id should there be more).
pub(crate) async fn network_dhcp_parts(
    c: &mut AnyConnection,
    ids: &[&str],
) -> Result<BTreeMap<String, (BTreeMap<String, HostSubnet>, Option<DhcpServer>)>> {
    let mut out: BTreeMap<String, (BTreeMap<String, HostSubnet>, Option<DhcpServer>)> = BTreeMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let list = crate::rows::placeholders(ids.len());
    let sql = format!(
        "SELECT id, network_id, cidr, gateway_ip, enable_dhcp, dns_nameservers, host_routes, ipv6_ra_mode, \
         ipv6_address_mode FROM subnets WHERE network_id IN ({list}) ORDER BY network_id, id"
    );
    for r in crate::change_log::rows_for(c, &sql, ids).await? {
        let routes: Vec<HostRoute> = serde_json::from_str(&text(&r, "host_routes")?)?;
        let subnet = HostSubnet {
            cidr: text(&r, "cidr")?,
            gateway_ip: opt_text(&r, "gateway_ip")?,
            enable_dhcp: crate::rows::boolean(&r, "enable_dhcp")?,
            dns_nameservers: serde_json::from_str(&text(&r, "dns_nameservers")?)?,
            host_routes: routes.into_iter().map(|h| (h.destination, h.nexthop)).collect(),
            ipv6_ra_mode: opt_text(&r, "ipv6_ra_mode")?,
            ipv6_address_mode: opt_text(&r, "ipv6_address_mode")?,
        };
        out.entry(text(&r, "network_id")?).or_default().0.insert(text(&r, "id")?, subnet);
    }
    let sql = format!(
        "SELECT p.id, p.network_id, p.mac_address, a.ip_address FROM ports p \
         LEFT JOIN ip_allocations a ON a.port_id = p.id \
         WHERE p.device_owner = '{DEVICE_OWNER_DHCP}' AND p.device_id = 'dhcp-' || p.network_id \
         AND p.network_id IN ({list}) \
         ORDER BY p.network_id, p.id, a.position"
    );
    for r in crate::change_log::rows_for(c, &sql, ids).await? {
        let (port_id, network_id) = (text(&r, "id")?, text(&r, "network_id")?);
        let entry = &mut out.entry(network_id).or_default().1;
        let server = entry.get_or_insert_with(|| DhcpServer {
            port_id: port_id.clone(),
            mac_address: String::new(),
            ip_addresses: Vec::new(),
        });
        if server.port_id != port_id {
            continue;
        }
        server.mac_address = text(&r, "mac_address")?;
        server.ip_addresses.extend(opt_text(&r, "ip_address")?);
    }
    Ok(out)
}

/// Give every network of a reference view its subnets and DHCP port.
pub(crate) async fn fill_reference(c: &mut AnyConnection, state: &mut HostState) -> Result<()> {
    let ids: Vec<String> = state.networks.keys().cloned().collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut parts = network_dhcp_parts(c, &refs).await?;
    for (id, network) in state.networks.iter_mut() {
        if let Some((subnets, dhcp)) = parts.remove(id) {
            network.subnets = subnets;
            network.dhcp = dhcp;
        }
    }
    Ok(())
}

/// The networks with a DHCP-enabled subnet but no DHCP port of the server's (a database from
/// before DHCP ports).
pub async fn networks_without_dhcp_port(c: &mut AnyConnection) -> Result<Vec<String>> {
    let rows = sqlx::query(&format!(
        "SELECT DISTINCT s.network_id FROM subnets s WHERE s.enable_dhcp AND NOT EXISTS \
         (SELECT 1 FROM ports p WHERE p.network_id = s.network_id AND p.device_owner = '{DEVICE_OWNER_DHCP}' \
         AND p.device_id = 'dhcp-' || s.network_id) ORDER BY s.network_id"
    ))
    .fetch_all(&mut *c)
    .await?;
    rows.iter().map(|r| text(r, "network_id")).collect()
}
