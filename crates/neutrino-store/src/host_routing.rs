//! The routing part of `Store::host_state` (the reference the servers' incremental views are
//! checked against), from the tables, independently of the change log and its model: the
//! routers a host runs (those with an interface on a network of one of its bound ports), and
//! the routed presence that gives it their other networks.

use crate::rows::{boolean, opt_text, text};
use crate::Result;
use neutrino_api::agent::{HostFloatingIp, HostPortForwarding, HostRouter, HostState, RouterGateway, RouterInterface};
use neutrino_domain::routers::{DEVICE_OWNER_ROUTER_GW, DEVICE_OWNER_ROUTER_SNAT, ROUTER_INTERFACE_OWNERS};
use sqlx::{AnyConnection, Row};
use std::collections::BTreeSet;

fn owners() -> String {
    crate::rows::quoted_list(&ROUTER_INTERFACE_OWNERS)
}

/// A router port's addresses with their subnets' prefix lengths, and the subnets' gateways.
async fn addresses(c: &mut AnyConnection, port_id: &str) -> Result<(Vec<String>, Vec<String>)> {
    let rows = sqlx::query(
        "SELECT a.ip_address, s.cidr, s.gateway_ip FROM ip_allocations a JOIN subnets s ON s.id = a.subnet_id \
         WHERE a.port_id = $1 ORDER BY a.position",
    )
    .bind(port_id.to_string())
    .fetch_all(&mut *c)
    .await?;
    let mut out = Vec::new();
    let mut gateways = Vec::new();
    for r in &rows {
        let cidr = text(r, "cidr")?;
        if let Some((_, len)) = cidr.split_once('/') {
            out.push(format!("{}/{len}", text(r, "ip_address")?));
        }
        gateways.extend(opt_text(r, "gateway_ip")?);
    }
    Ok((out, gateways))
}

/// Fill `state.routers`, and add the routers' networks (as their lowest segment) to
/// `state.networks`. Returns the segments of that routed presence (for remote ports).
pub(crate) async fn host_routers_reference(
    c: &mut AnyConnection,
    host: &str,
    state: &mut HostState,
) -> Result<BTreeSet<String>> {
    let routers = sqlx::query(&format!(
        "SELECT DISTINCT r.device_id FROM ports r WHERE r.device_owner IN ({}) AND r.network_id IN \
         (SELECT p.network_id FROM ports p WHERE p.host_id = $1 AND p.host_id <> '' AND p.segment_id IS NOT NULL) \
         ORDER BY r.device_id",
        owners()
    ))
    .bind(host.to_string())
    .fetch_all(&mut *c)
    .await?;
    let mut routed_networks: BTreeSet<String> = BTreeSet::new();
    for row in &routers {
        let router_id = text(row, "device_id")?;
        let mut router = HostRouter::default();
        let interfaces = sqlx::query(&format!(
            "SELECT id, network_id, mac_address FROM ports WHERE device_id = $1 AND device_owner IN ({}) ORDER BY id",
            owners()
        ))
        .bind(router_id.clone())
        .fetch_all(&mut *c)
        .await?;
        for i in &interfaces {
            let id = text(i, "id")?;
            let network_id = text(i, "network_id")?;
            routed_networks.insert(network_id.clone());
            let (addresses, _) = addresses(c, &id).await?;
            router
                .interfaces
                .insert(id, RouterInterface { network_id, mac_address: text(i, "mac_address")?, addresses });
        }
        // The gateway: the lowest id of the router's gateway ports (there is one).
        let gateway = sqlx::query(
            "SELECT id, network_id FROM ports WHERE device_id = $1 AND device_owner = $2 ORDER BY id LIMIT 1",
        )
        .bind(router_id.clone())
        .bind(DEVICE_OWNER_ROUTER_GW.to_string())
        .fetch_optional(&mut *c)
        .await?;
        if let Some(g) = gateway {
            let port_id = text(&g, "id")?;
            let network_id = text(&g, "network_id")?;
            routed_networks.insert(network_id.clone());
            let (addresses, next_hops) = addresses(c, &port_id).await?;
            let snat = sqlx::query("SELECT enable_snat FROM routers WHERE gw_port_id = $1")
                .bind(port_id.clone())
                .fetch_optional(&mut *c)
                .await?;
            let enable_snat = match snat {
                Some(r) => boolean(&r, "enable_snat")?,
                None => false,
            };
            router.gateway = Some(RouterGateway { port_id, network_id, addresses, next_hops, enable_snat });
        }
        if let Some(r) = sqlx::query("SELECT admin_state_up FROM routers WHERE id = $1")
            .bind(router_id.clone())
            .fetch_optional(&mut *c)
            .await?
        {
            router.admin_state_up = boolean(&r, "admin_state_up")?;
        }
        let routes = sqlx::query(
            "SELECT destination, nexthop FROM router_routes WHERE router_id = $1 ORDER BY destination, nexthop",
        )
        .bind(router_id.clone())
        .fetch_all(&mut *c)
        .await?;
        for r in &routes {
            router.routes.push((text(r, "destination")?, text(r, "nexthop")?));
        }
        let snat_ports = sqlx::query("SELECT id, host_id FROM ports WHERE device_id = $1 AND device_owner = $2")
            .bind(router_id.clone())
            .bind(DEVICE_OWNER_ROUTER_SNAT.to_string())
            .fetch_all(&mut *c)
            .await?;
        let snat_ports: Vec<(String, String)> =
            snat_ports.iter().map(|r| Ok((text(r, "id")?, text(r, "host_id")?))).collect::<Result<_>>()?;
        router.snat_gateways =
            neutrino_domain::routers::snat_order(&router_id, snat_ports.iter().map(|(p, h)| (p.as_str(), h.as_str())));
        // Floating IPs of this host's ports through the router.
        let fips = sqlx::query(
            "SELECT f.id, f.floating_ip_address, f.fixed_ip_address, f.fixed_port_id FROM floatingips f \
             JOIN ports p ON p.id = f.fixed_port_id WHERE f.router_id = $1 AND p.host_id = $2 \
             AND f.fixed_ip_address IS NOT NULL ORDER BY f.id",
        )
        .bind(router_id.clone())
        .bind(host.to_string())
        .fetch_all(&mut *c)
        .await?;
        for f in &fips {
            router.floating_ips.insert(
                text(f, "id")?,
                HostFloatingIp {
                    floating_ip_address: text(f, "floating_ip_address")?,
                    fixed_ip_address: text(f, "fixed_ip_address")?,
                    port_id: text(f, "fixed_port_id")?,
                },
            );
        }
        // Forwardings of the floating IPs whose first forwarding's port is on this host.
        let forwarded = sqlx::query(
            "SELECT f.id, f.floating_ip_address FROM floatingips f WHERE f.router_id = $1 AND \
             (SELECT p.host_id FROM port_forwardings pf JOIN ports p ON p.id = pf.internal_port_id \
              WHERE pf.floatingip_id = f.id ORDER BY pf.id LIMIT 1) = $2",
        )
        .bind(router_id.clone())
        .bind(host.to_string())
        .fetch_all(&mut *c)
        .await?;
        for f in &forwarded {
            let fip = text(f, "id")?;
            let address = text(f, "floating_ip_address")?;
            let pfs = sqlx::query(
                "SELECT id, protocol, internal_ip_address, internal_port_start, internal_port_end, \
                 external_port_start, external_port_end FROM port_forwardings WHERE floatingip_id = $1",
            )
            .bind(fip)
            .fetch_all(&mut *c)
            .await?;
            for pf in &pfs {
                let port = |col: &str| -> Result<u32> { Ok(pf.try_get::<i64, _>(col)? as u32) };
                router.port_forwardings.insert(
                    text(pf, "id")?,
                    HostPortForwarding {
                        floating_ip_address: address.clone(),
                        protocol: text(pf, "protocol")?,
                        internal_ip_address: text(pf, "internal_ip_address")?,
                        internal: (port("internal_port_start")?, port("internal_port_end")?),
                        external: (port("external_port_start")?, port("external_port_end")?),
                    },
                );
            }
        }
        state.routers.insert(router_id, router);
    }
    // Routed presence: each network of those routers as its lowest segment (a network the host
    // also has bound ports on takes the lowest of both).
    let mut segments = BTreeSet::new();
    for network_id in &routed_networks {
        let row = sqlx::query(
            "SELECT s.id, s.network_type, s.physical_network, s.segmentation_id, n.mtu FROM network_segments s \
             JOIN networks n ON n.id = s.network_id WHERE s.network_id = $1 ORDER BY s.id LIMIT 1",
        )
        .bind(network_id.clone())
        .fetch_optional(&mut *c)
        .await?;
        let Some(r) = row else { continue };
        let segment_id = text(&r, "id")?;
        let network = neutrino_api::agent::HostNetwork {
            network_type: text(&r, "network_type")?,
            physical_network: opt_text(&r, "physical_network")?,
            segmentation_id: crate::rows::opt_int(&r, "segmentation_id")?.map(|v| v as u32),
            mtu: r.try_get::<i64, _>("mtu")? as u32,
            subnets: Default::default(),
            dhcp: None,
        };
        state.networks.insert(network_id.clone(), network);
        segments.insert(segment_id);
    }
    Ok(segments)
}
