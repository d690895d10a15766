//! Subnets.

use crate::filters::{col, Column, ColumnType as T, Filter};
use crate::rows::{boolean, int, json, opt_text, text, Page};
use crate::visibility::Visibility;
use crate::{Result, StoreError, Tx};
use neutrino_api::resources::Subnet;
use neutrino_domain::changes::{Operation, Resource};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;

const COLUMNS: &[Column] = &[
    col("id", "id", T::Text),
    col("name", "name", T::Text),
    col("project_id", "project_id", T::Text),
    col("tenant_id", "project_id", T::Text),
    col("network_id", "network_id", T::Text),
    col("description", "description", T::Text),
    col("ip_version", "ip_version", T::Int),
    col("cidr", "cidr", T::Text),
    col("gateway_ip", "gateway_ip", T::NullableText),
    col("enable_dhcp", "enable_dhcp", T::Bool),
    col("ipv6_ra_mode", "ipv6_ra_mode", T::NullableText),
    col("ipv6_address_mode", "ipv6_address_mode", T::NullableText),
    col("revision_number", "revision_number", T::Int),
    col("subnetpool_id", "subnetpool_id", T::NullableText),
    col("router:external", "(SELECT n.router_external FROM networks n WHERE n.id = subnets.network_id)", T::Bool),
];

const SELECT: &str =
    "SELECT id, project_id, network_id, name, description, ip_version, cidr, gateway_ip, enable_dhcp, \
    ipv6_ra_mode, ipv6_address_mode, allocation_pools, dns_nameservers, host_routes, created_at, updated_at, \
    revision_number, subnetpool_id, service_types, (SELECT n.router_external FROM networks n WHERE n.id = subnets.network_id) AS router_external \
    FROM subnets";

fn decode(row: &AnyRow) -> Result<Subnet> {
    let project_id = text(row, "project_id")?;
    Ok(Subnet {
        id: text(row, "id")?,
        name: text(row, "name")?,
        tenant_id: project_id.clone(),
        project_id,
        network_id: text(row, "network_id")?,
        ip_version: int(row, "ip_version")? as u8,
        subnetpool_id: opt_text(row, "subnetpool_id")?,
        enable_dhcp: boolean(row, "enable_dhcp")?,
        ipv6_ra_mode: opt_text(row, "ipv6_ra_mode")?,
        ipv6_address_mode: opt_text(row, "ipv6_address_mode")?,
        gateway_ip: opt_text(row, "gateway_ip")?,
        cidr: text(row, "cidr")?,
        allocation_pools: json(row, "allocation_pools")?,
        host_routes: json(row, "host_routes")?,
        dns_nameservers: json(row, "dns_nameservers")?,
        description: text(row, "description")?,
        router_external: boolean(row, "router_external")?,
        service_types: json(row, "service_types")?,
        segment_id: None,
        tags: Vec::new(),
        created_at: text(row, "created_at")?,
        updated_at: text(row, "updated_at")?,
        revision_number: int(row, "revision_number")? as u64,
    })
}

pub async fn get_subnet(c: &mut AnyConnection, id: &str) -> Result<Subnet> {
    let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| StoreError::not_found("subnet", id))?;
    let mut subnet = decode(&row)?;
    subnet.tags = crate::tags::tags_of(c, "subnets", id).await?;
    Ok(subnet)
}

/// Owners of the ports that go with their network (Neutron's `AUTO_DELETE_PORT_OWNERS`).
const AUTO_DELETE_PORT_OWNERS: &str = "'network:dhcp', 'network:distributed', 'network:floatingip_agent_gateway'";

/// `shared`: Neutron's filter-only attribute of subnets, the sharing of their network.
fn shared_filter(f: &Filter, w: &mut crate::filters::Where) -> Result<bool> {
    if f.attribute != "shared" {
        return Ok(false);
    }
    let wanted: Vec<bool> =
        f.values.iter().map(|v| crate::filters::boolean_value("shared", v)).collect::<Result<_>>()?;
    let of_shared = "network_id IN (SELECT n.id FROM networks n WHERE n.shared)";
    match (wanted.contains(&true), wanted.contains(&false)) {
        (true, false) => w.add_clause(of_shared),
        (false, true) => w.add_clause(&format!("NOT {of_shared}")),
        _ => {}
    }
    Ok(true)
}

pub async fn list_subnets(
    c: &mut AnyConnection,
    filters: &[Filter],
    page: &Page,
    visibility: &Visibility,
) -> Result<Vec<Subnet>> {
    let tags = crate::tags::tag_filter("subnets");
    let special = move |f: &Filter, w: &mut crate::filters::Where| Ok(shared_filter(f, w)? || tags(f, w)?);
    let listed = crate::visibility::Listed { select: SELECT, table: "subnets", columns: COLUMNS };
    let rows = crate::visibility::list_rows(c, listed, filters, page, visibility, special).await?;
    let mut tags = crate::tags::tags_by_id(c, "subnets").await?;
    rows.iter()
        .map(|r| {
            let mut s = decode(r)?;
            s.tags = tags.remove(&s.id).unwrap_or_default();
            Ok(s)
        })
        .collect()
}

/// The subnets of one network, oldest first (the order automatic addresses are taken in).
pub async fn network_subnets(c: &mut AnyConnection, network_id: &str) -> Result<Vec<Subnet>> {
    let rows = sqlx::query(&format!("{SELECT} WHERE network_id = $1 ORDER BY created_at, id"))
        .bind(network_id.to_string())
        .fetch_all(&mut *c)
        .await?;
    rows.iter().map(decode).collect()
}

pub async fn insert_subnet(tx: &mut Tx, s: &Subnet) -> Result<()> {
    crate::enforce_quota(tx, neutrino_domain::quotas::QuotaResource::Subnet, &s.project_id).await?;
    sqlx::query(
        "INSERT INTO subnets (id, project_id, network_id, name, description, ip_version, cidr, gateway_ip, enable_dhcp, \
         ipv6_ra_mode, ipv6_address_mode, allocation_pools, dns_nameservers, host_routes, created_at, updated_at, revision_number, \
         subnetpool_id, service_types) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
    )
    .bind(s.id.clone())
    .bind(s.project_id.clone())
    .bind(s.network_id.clone())
    .bind(s.name.clone())
    .bind(s.description.clone())
    .bind(s.ip_version as i64)
    .bind(s.cidr.clone())
    .bind(s.gateway_ip.clone())
    .bind(s.enable_dhcp)
    .bind(s.ipv6_ra_mode.clone())
    .bind(s.ipv6_address_mode.clone())
    .bind(serde_json::to_string(&s.allocation_pools)?)
    .bind(serde_json::to_string(&s.dns_nameservers)?)
    .bind(serde_json::to_string(&s.host_routes)?)
    .bind(s.created_at.clone())
    .bind(s.updated_at.clone())
    .bind(s.revision_number as i64)
    .bind(s.subnetpool_id.clone())
    .bind(serde_json::to_string(&s.service_types)?)
    .execute(tx.conn())
    .await?;
    tx.revise("networks", &s.network_id).await?;
    tx.touch(neutrino_domain::topology::ObjectKind::Network, &s.network_id);
    tx.record_change(Resource::Subnet, &s.id, Operation::Create);
    Ok(())
}

/// Store an updated subnet (the caller validated it), with revision compare-and-swap.
pub async fn update_subnet(tx: &mut Tx, s: &Subnet) -> Result<()> {
    let done = sqlx::query(
        "UPDATE subnets SET name = $1, description = $2, gateway_ip = $3, enable_dhcp = $4, allocation_pools = $5, \
         dns_nameservers = $6, host_routes = $7, updated_at = $8, revision_number = revision_number + 1, \
         service_types = $11 WHERE id = $9 AND revision_number = $10",
    )
    .bind(s.name.clone())
    .bind(s.description.clone())
    .bind(s.gateway_ip.clone())
    .bind(s.enable_dhcp)
    .bind(serde_json::to_string(&s.allocation_pools)?)
    .bind(serde_json::to_string(&s.dns_nameservers)?)
    .bind(serde_json::to_string(&s.host_routes)?)
    .bind(s.updated_at.clone())
    .bind(s.id.clone())
    .bind(s.revision_number as i64)
    .bind(serde_json::to_string(&s.service_types)?)
    .execute(tx.conn())
    .await?;
    tx.updated(done.rows_affected(), Resource::Subnet, &s.id)?;
    // Router ports' images carry their subnets' gateways (the routers' next hops).
    let router_ports = sqlx::query(
        "SELECT DISTINCT p.id FROM ports p JOIN ip_allocations a ON a.port_id = p.id \
         WHERE a.subnet_id = $1 AND p.device_owner = $2",
    )
    .bind(s.id.clone())
    .bind(neutrino_domain::routers::DEVICE_OWNER_ROUTER_GW.to_string())
    .fetch_all(tx.conn())
    .await?;
    for r in router_ports {
        tx.touch(neutrino_domain::topology::ObjectKind::Port, &text(&r, "id")?);
    }
    // The network's image shows its subnets.
    tx.touch(neutrino_domain::topology::ObjectKind::Network, &s.network_id);
    tx.revise("networks", &s.network_id).await
}

/// Delete a subnet, as Neutron does: never while a router interface has an address from it;
/// otherwise only when no user port has one, except on an IPv6 auto-address subnet (SLAAC,
/// DHCPv6 stateless), whose addresses are taken off the ports. Ports that go with their
/// network (DHCP, distributed) lose their addresses from it.
pub async fn delete_subnet(tx: &mut Tx, id: &str) -> Result<()> {
    tx.lock_parent("subnets", id).await?;
    let subnet = get_subnet(tx.conn(), id).await?;
    let holders_by = |owners: &str, negate: bool| {
        format!(
            "SELECT DISTINCT p.id FROM ip_allocations a JOIN ports p ON p.id = a.port_id \
             WHERE a.subnet_id = $1 AND p.device_owner {}IN ({owners})",
            if negate { "NOT " } else { "" }
        )
    };
    let in_use = || {
        neutrino_domain::DomainError::conflict(
            "SubnetInUse",
            format!(
                "Unable to complete operation on subnet {id}: One or more ports have an IP allocation from this subnet."
            ),
        )
    };
    let router_ports =
        sqlx::query(&holders_by(&crate::rows::quoted_list(&neutrino_domain::routers::ROUTER_INTERFACE_OWNERS), false))
            .bind(id.to_string())
            .fetch_all(tx.conn())
            .await?;
    if !router_ports.is_empty() {
        return Err(in_use().into());
    }
    let auto_address = [subnet.ipv6_address_mode.as_deref(), subnet.ipv6_ra_mode.as_deref()]
        .iter()
        .any(|m| matches!(m, Some("slaac") | Some("dhcpv6-stateless")));
    if !auto_address {
        let users =
            sqlx::query(&holders_by(AUTO_DELETE_PORT_OWNERS, true)).bind(id.to_string()).fetch_all(tx.conn()).await?;
        if !users.is_empty() {
            return Err(in_use().into());
        }
    }
    let holders = sqlx::query("SELECT DISTINCT port_id FROM ip_allocations WHERE subnet_id = $1")
        .bind(id.to_string())
        .fetch_all(tx.conn())
        .await?;
    sqlx::query("DELETE FROM ip_allocations WHERE subnet_id = $1").bind(id.to_string()).execute(tx.conn()).await?;
    for h in &holders {
        let port_id = text(h, "port_id")?;
        tx.revise("ports", &port_id).await?;
        tx.touch(neutrino_domain::topology::ObjectKind::Port, &port_id);
    }
    crate::tags::clear_tags(tx, "subnets", id).await?;
    sqlx::query("DELETE FROM subnets WHERE id = $1").bind(id.to_string()).execute(tx.conn()).await?;
    tx.revise("networks", &subnet.network_id).await?;
    tx.touch(neutrino_domain::topology::ObjectKind::Network, &subnet.network_id);
    tx.record_change(Resource::Subnet, id, Operation::Delete);
    Ok(())
}
