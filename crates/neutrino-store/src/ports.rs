//! Ports and their IP allocations.

use crate::filters::{col, list_sql, Column, ColumnType as T, Filter, SqlValue, Where};
use crate::rows::{boolean, int, json, text, Page};
use crate::visibility::Visibility;
use crate::{Result, StoreError, Tx};
use neutrino_api::resources::{FixedIp, Port};
use neutrino_domain::changes::{Operation, Resource};
use neutrino_domain::ipam::{first_free, random_candidates, to_u128, IpRange};
use neutrino_domain::topology::ObjectKind;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use std::collections::HashMap;
use std::net::IpAddr;

const COLUMNS: &[Column] = &[
    col("id", "id", T::Text),
    col("name", "name", T::Text),
    col("project_id", "project_id", T::Text),
    col("tenant_id", "project_id", T::Text),
    col("network_id", "network_id", T::Text),
    col("description", "description", T::Text),
    col("mac_address", "mac_address", T::Text),
    col("admin_state_up", "admin_state_up", T::Bool),
    col("status", "status", T::Text),
    col("device_id", "device_id", T::Text),
    col("device_owner", "device_owner", T::Text),
    col("binding:host_id", "host_id", T::Text),
    col("binding:vif_type", "vif_type", T::Text),
    col("binding:vnic_type", "vnic_type", T::Text),
    col("revision_number", "revision_number", T::Int),
    col("port_security_enabled", "port_security_enabled", T::Bool),
];

const SELECT: &str = "SELECT id, project_id, network_id, name, description, mac_address, admin_state_up, status, \
    device_id, device_owner, host_id, vif_type, vif_details, vnic_type, profile, created_at, updated_at, \
    revision_number, port_security_enabled, allowed_address_pairs, extra_dhcp_opts, dns_name FROM ports";

fn decode(row: &AnyRow) -> Result<Port> {
    let project_id = text(row, "project_id")?;
    Ok(Port {
        id: text(row, "id")?,
        name: text(row, "name")?,
        network_id: text(row, "network_id")?,
        tenant_id: project_id.clone(),
        project_id,
        mac_address: text(row, "mac_address")?,
        admin_state_up: boolean(row, "admin_state_up")?,
        status: text(row, "status")?,
        device_id: text(row, "device_id")?,
        device_owner: text(row, "device_owner")?,
        fixed_ips: Vec::new(),
        port_security_enabled: boolean(row, "port_security_enabled")?,
        qos_policy_id: None,
        qos_network_policy_id: None,
        security_groups: Vec::new(),
        vnic_type: text(row, "vnic_type")?,
        profile: json(row, "profile")?,
        host_id: text(row, "host_id")?,
        vif_type: text(row, "vif_type")?,
        vif_details: json(row, "vif_details")?,
        allowed_address_pairs: json(row, "allowed_address_pairs")?,
        extra_dhcp_opts: json(row, "extra_dhcp_opts")?,
        description: text(row, "description")?,
        ip_allocation: "immediate".into(),
        resource_request: None,
        dns_name: Some(text(row, "dns_name")?),
        dns_assignment: None,
        tags: Vec::new(),
        created_at: text(row, "created_at")?,
        updated_at: text(row, "updated_at")?,
        revision_number: int(row, "revision_number")? as u64,
    })
}

/// `fixed_ips=ip_address=X`, `fixed_ips=subnet_id=Y` and `fixed_ips=ip_address_substr=Z`
/// filters, as Neutron's ML2 reads them: repeated keys mean any of their values, different
/// keys must all hold (each on some address of the port).
fn fixed_ips_filter(f: &Filter, w: &mut Where) -> Result<bool> {
    if f.attribute != "fixed_ips" {
        return Ok(false);
    }
    let (mut addresses, mut subnets, mut substrings) = (Vec::new(), Vec::new(), Vec::new());
    for v in &f.values {
        // As neutron-lib's `convert_kvp_str_to_list`; keys Neutron does not filter on are ignored.
        let (key, value) = v.split_once('=').ok_or_else(|| {
            StoreError::from(neutrino_domain::DomainError::invalid(format!("'{v}' is not of the form <key>=[value]")))
        })?;
        match key {
            "ip_address" => addresses.push(SqlValue::Text(value.to_string())),
            "subnet_id" => subnets.push(SqlValue::Text(value.to_string())),
            "ip_address_substr" => substrings.push(SqlValue::Text(format!("%{value}%"))),
            _ => {}
        }
    }
    if !addresses.is_empty() {
        w.add_raw_list("id IN (SELECT port_id FROM ip_allocations WHERE ip_address IN ({}))", addresses);
    }
    if !subnets.is_empty() {
        w.add_raw_list("id IN (SELECT port_id FROM ip_allocations WHERE subnet_id IN ({}))", subnets);
    }
    if !substrings.is_empty() {
        w.add_raw_any("id IN (SELECT port_id FROM ip_allocations WHERE ip_address LIKE {})", substrings);
    }
    Ok(true)
}

/// `security_groups=X` (repeated: any of them): ports in one of the groups.
fn security_groups_filter(f: &Filter, w: &mut Where) -> bool {
    if f.attribute != "security_groups" {
        return false;
    }
    let groups = f.values.iter().map(|g| SqlValue::Text(g.clone())).collect();
    w.add_raw_list("id IN (SELECT port_id FROM port_security_groups WHERE security_group_id IN ({}))", groups);
    true
}

/// `mac_address=X`: compared as Neutron does, whatever the case the client wrote.
fn mac_filter(f: &Filter, w: &mut Where) -> bool {
    if f.attribute != "mac_address" {
        return false;
    }
    let macs = f.values.iter().map(|m| SqlValue::Text(m.to_ascii_lowercase().replace('-', ":"))).collect();
    w.add_raw_list("mac_address IN ({})", macs);
    true
}

fn port_filter(f: &Filter, w: &mut Where) -> Result<bool> {
    Ok(fixed_ips_filter(f, w)?
        || security_groups_filter(f, w)
        || mac_filter(f, w)
        || crate::tags::tag_filter("ports")(f, w)?)
}

/// Fill `fixed_ips`, `tags` and `security_groups` of the listed ports: one query each over the
/// same condition.
async fn attach_fixed_ips(c: &mut AnyConnection, ports: &mut [Port], w: &Where) -> Result<()> {
    if ports.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT port_id, subnet_id, ip_address FROM ip_allocations WHERE port_id IN (SELECT id FROM ports{}) \
         ORDER BY port_id, position",
        w.sql()
    );
    let rows = w.bind(sqlx::query(&sql)).fetch_all(&mut *c).await?;
    let index: HashMap<String, usize> = ports.iter().enumerate().map(|(i, p)| (p.id.clone(), i)).collect();
    for r in rows {
        if let Some(i) = index.get(&text(&r, "port_id")?) {
            ports[*i]
                .fixed_ips
                .push(FixedIp { subnet_id: text(&r, "subnet_id")?, ip_address: text(&r, "ip_address")? });
        }
    }
    // Tags and security groups of the same ports only.
    let tags_sql = format!(
        "SELECT resource_id, tag FROM tags WHERE resource_type = 'ports' AND resource_id IN (SELECT id FROM ports{}) \
         ORDER BY resource_id, tag",
        w.sql()
    );
    for r in w.bind(sqlx::query(&tags_sql)).fetch_all(&mut *c).await? {
        if let Some(i) = index.get(&text(&r, "resource_id")?) {
            ports[*i].tags.push(text(&r, "tag")?);
        }
    }
    let groups_sql = format!(
        "SELECT port_id, security_group_id FROM port_security_groups WHERE port_id IN (SELECT id FROM ports{}) \
         ORDER BY port_id, security_group_id",
        w.sql()
    );
    for r in w.bind(sqlx::query(&groups_sql)).fetch_all(&mut *c).await? {
        if let Some(i) = index.get(&text(&r, "port_id")?) {
            ports[*i].security_groups.push(text(&r, "security_group_id")?);
        }
    }
    Ok(())
}

pub async fn get_port(c: &mut AnyConnection, id: &str) -> Result<Port> {
    let mut ports = list_ports(
        c,
        &[Filter { attribute: "id".into(), values: vec![id.to_string()] }],
        &Page::default(),
        &Visibility::Everything,
    )
    .await?;
    ports.pop().ok_or_else(|| StoreError::not_found("port", id))
}

pub async fn list_ports(
    c: &mut AnyConnection,
    filters: &[Filter],
    page: &Page,
    visibility: &Visibility,
) -> Result<Vec<Port>> {
    crate::visibility::marker_must_exist(c, "ports", page, visibility).await?;
    // The WHERE is needed again for the addresses of a whole list.
    let w = crate::visibility::build_where_for("ports", COLUMNS, filters, visibility, port_filter)?;
    let (sql, w) = list_sql(SELECT, "ports", COLUMNS, w, page)?;
    let mut rows = w.bind(sqlx::query(&sql)).fetch_all(&mut *c).await?;
    if page.page_reverse {
        rows.reverse();
    }
    let mut ports = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
    if page.limit.is_some() {
        // The page boundary is not expressible as the same WHERE; select by the ids we got.
        let mut by_id = Where::default();
        let ids: Vec<String> = ports.iter().map(|p| p.id.clone()).collect();
        by_id.add_in_texts("id", ids);
        attach_fixed_ips(c, &mut ports, &by_id).await?;
    } else {
        attach_fixed_ips(c, &mut ports, &w).await?;
    }
    Ok(ports)
}

/// Insert the port row (addresses are allocated separately). Returns `false`, changing
/// nothing, when the MAC is already used on the network.
pub async fn insert_port(tx: &mut Tx, p: &Port) -> Result<bool> {
    // The network's DHCP port counts, but is never refused (as Neutron's DHCP agent makes it).
    if p.device_owner != neutrino_domain::dhcp::DEVICE_OWNER_DHCP {
        crate::enforce_quota(tx, neutrino_domain::quotas::QuotaResource::Port, &p.project_id).await?;
    }
    let done = sqlx::query(
        "INSERT INTO ports (id, project_id, network_id, name, description, mac_address, admin_state_up, status, \
         device_id, device_owner, host_id, vif_type, vif_details, vnic_type, profile, created_at, updated_at, revision_number, \
         port_security_enabled, allowed_address_pairs, extra_dhcp_opts, dns_name) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22) \
         ON CONFLICT DO NOTHING",
    )
    .bind(p.id.clone())
    .bind(p.project_id.clone())
    .bind(p.network_id.clone())
    .bind(p.name.clone())
    .bind(p.description.clone())
    .bind(p.mac_address.clone())
    .bind(p.admin_state_up)
    .bind(p.status.clone())
    .bind(p.device_id.clone())
    .bind(p.device_owner.clone())
    .bind(p.host_id.clone())
    .bind(p.vif_type.clone())
    .bind(serde_json::to_string(&p.vif_details)?)
    .bind(p.vnic_type.clone())
    .bind(serde_json::to_string(&p.profile)?)
    .bind(p.created_at.clone())
    .bind(p.updated_at.clone())
    .bind(p.revision_number as i64)
    .bind(p.port_security_enabled)
    .bind(serde_json::to_string(&p.allowed_address_pairs)?)
    .bind(serde_json::to_string(&p.extra_dhcp_opts)?)
    .bind(p.dns_name.clone().unwrap_or_default())
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    tx.record_change(Resource::Port, &p.id, Operation::Create);
    Ok(true)
}

/// Store the mutable attributes of an existing port, with revision compare-and-swap.
pub async fn update_port_row(tx: &mut Tx, p: &Port, expected_revision: u64) -> Result<()> {
    let done = sqlx::query(
        "UPDATE ports SET name = $1, description = $2, mac_address = $3, admin_state_up = $4, status = $5, \
         device_id = $6, device_owner = $7, host_id = $8, vif_type = $9, vif_details = $10, vnic_type = $11, \
         profile = $12, updated_at = $13, revision_number = $14, port_security_enabled = $17, \
         allowed_address_pairs = $18, extra_dhcp_opts = $19, dns_name = $20 WHERE id = $15 AND revision_number = $16",
    )
    .bind(p.name.clone())
    .bind(p.description.clone())
    .bind(p.mac_address.clone())
    .bind(p.admin_state_up)
    .bind(p.status.clone())
    .bind(p.device_id.clone())
    .bind(p.device_owner.clone())
    .bind(p.host_id.clone())
    .bind(p.vif_type.clone())
    .bind(serde_json::to_string(&p.vif_details)?)
    .bind(p.vnic_type.clone())
    .bind(serde_json::to_string(&p.profile)?)
    .bind(p.updated_at.clone())
    .bind(p.revision_number as i64)
    .bind(p.id.clone())
    .bind(expected_revision as i64)
    .bind(p.port_security_enabled)
    .bind(serde_json::to_string(&p.allowed_address_pairs)?)
    .bind(serde_json::to_string(&p.extra_dhcp_opts)?)
    .bind(p.dns_name.clone().unwrap_or_default())
    .execute(tx.conn())
    .await?;
    tx.updated(done.rows_affected(), Resource::Port, &p.id)
}

pub async fn delete_port(tx: &mut Tx, id: &str) -> Result<()> {
    let gone = sqlx::query("DELETE FROM ports WHERE id = $1 RETURNING network_id, device_owner")
        .bind(id.to_string())
        .fetch_optional(tx.conn())
        .await?;
    let Some(gone) = gone else {
        return Err(StoreError::not_found("port", id));
    };
    if text(&gone, "device_owner")? == neutrino_domain::dhcp::DEVICE_OWNER_DHCP {
        // The network's image shows its DHCP port.
        tx.touch(ObjectKind::Network, &text(&gone, "network_id")?);
    }
    sqlx::query("DELETE FROM ip_allocations WHERE port_id = $1").bind(id.to_string()).execute(tx.conn()).await?;
    crate::tags::clear_tags(tx, "ports", id).await?;
    tx.record_change(Resource::Port, id, Operation::Delete);
    Ok(())
}

/// Release every address of a port (before re-allocating on update).
pub async fn release_port_ips(tx: &mut Tx, port_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM ip_allocations WHERE port_id = $1").bind(port_id.to_string()).execute(tx.conn()).await?;
    tx.touch(ObjectKind::Port, port_id);
    Ok(())
}

async fn try_insert_ip(
    tx: &mut Tx,
    network_id: &str,
    subnet_id: &str,
    ip: IpAddr,
    port_id: &str,
    position: usize,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO ip_allocations (network_id, ip_address, subnet_id, port_id, position) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(network_id.to_string())
    .bind(ip.to_string())
    .bind(subnet_id.to_string())
    .bind(port_id.to_string())
    .bind(position as i64)
    .execute(tx.conn())
    .await?;
    tx.touch(ObjectKind::Port, port_id);
    Ok(done.rows_affected() == 1)
}

/// Hold exactly `ip` for the port; `false` if another port has it.
pub async fn allocate_specific_ip(
    tx: &mut Tx,
    network_id: &str,
    subnet_id: &str,
    ip: IpAddr,
    port_id: &str,
    position: usize,
) -> Result<bool> {
    try_insert_ip(tx, network_id, subnet_id, ip, port_id, position).await
}

/// Take a free address from the pools, or `None` if the subnet is full.
///
/// A few random candidates first (cheap, and concurrent creates rarely collide); then the
/// lowest free address computed from what is allocated. The primary key settles races: a
/// losing insert does nothing and the loop asks again with the winner now visible.
pub async fn allocate_any_ip(
    tx: &mut Tx,
    network_id: &str,
    subnet_id: &str,
    pools: &[IpRange],
    port_id: &str,
    position: usize,
) -> Result<Option<IpAddr>> {
    let candidates = random_candidates(pools, 6, &mut rand::thread_rng());
    for ip in candidates {
        if try_insert_ip(tx, network_id, subnet_id, ip, port_id, position).await? {
            return Ok(Some(ip));
        }
    }
    loop {
        let rows = sqlx::query("SELECT ip_address FROM ip_allocations WHERE subnet_id = $1")
            .bind(subnet_id.to_string())
            .fetch_all(tx.conn())
            .await?;
        let mut taken: Vec<IpAddr> = rows.iter().filter_map(|r| text(r, "ip_address").ok()?.parse().ok()).collect();
        taken.sort_by_key(|ip| to_u128(*ip));
        let Some(ip) = first_free(pools, &taken) else {
            return Ok(None);
        };
        if try_insert_ip(tx, network_id, subnet_id, ip, port_id, position).await? {
            return Ok(Some(ip));
        }
    }
}

/// Keep the port's rendered API body (`ports.body`) current. Every transaction that changes
/// a port, its addresses or its status ends with this, so that lists are one column read per
/// port: listing thousands of ports is otherwise dominated by decoding every value of every
/// row. The body is the serialization of [`Port`] itself, so it cannot drift from `show`.
pub async fn store_port_body(tx: &mut Tx, port: &Port) -> Result<()> {
    let mut shaped = port.clone();
    finish_port(&mut shaped, tx.dns_domain.as_deref());
    sqlx::query("UPDATE ports SET body = $1 WHERE id = $2")
        .bind(serde_json::to_string(&shaped)?)
        .bind(port.id.clone())
        .execute(tx.conn())
        .await?;
    tx.port_body_fresh(&port.id);
    Ok(())
}

/// DNS attributes on (with `dns_assignment` computed) or off (absent), as Neutron shows them.
pub fn finish_port(port: &mut Port, dns_domain: Option<&str>) {
    match dns_domain {
        None => {
            port.dns_name = None;
            port.dns_assignment = None;
        }
        Some(domain) => {
            let name = port.dns_name.clone().unwrap_or_default();
            let ips: Vec<String> = port.fixed_ips.iter().map(|f| f.ip_address.clone()).collect();
            port.dns_assignment = Some(neutrino_domain::dns::dns_assignment(&name, &ips, domain));
            port.dns_name = Some(name);
        }
    }
}

/// Re-render the body of a port from its rows (after a change made in SQL only).
pub async fn refresh_port_body(tx: &mut Tx, id: &str) -> Result<()> {
    let port = get_port(tx.conn(), id).await?;
    store_port_body(tx, &port).await
}

/// Ports as their rendered JSON bodies: `(id, json)` in id order.
pub async fn list_ports_json(
    c: &mut AnyConnection,
    filters: &[Filter],
    page: &Page,
    visibility: &Visibility,
) -> Result<Vec<(String, String)>> {
    let listed = crate::visibility::Listed { select: "SELECT id, body FROM ports", table: "ports", columns: COLUMNS };
    let rows = crate::visibility::list_rows(c, listed, filters, page, visibility, port_filter).await?;
    rows.iter().map(|r| Ok((text(r, "id")?, text(r, "body")?))).collect()
}

/// `(subnet id, address)` of every allocation on a network.
pub async fn network_allocations(c: &mut AnyConnection, network_id: &str) -> Result<Vec<(String, String)>> {
    let rows = sqlx::query("SELECT subnet_id, ip_address FROM ip_allocations WHERE network_id = $1")
        .bind(network_id.to_string())
        .fetch_all(&mut *c)
        .await?;
    rows.iter().map(|r| Ok((text(r, "subnet_id")?, text(r, "ip_address")?))).collect()
}

/// Record the segment a port is bound to (`None`: not bound).
pub async fn set_port_segment(tx: &mut Tx, port_id: &str, segment_id: Option<&str>) -> Result<()> {
    sqlx::query("UPDATE ports SET segment_id = $1 WHERE id = $2")
        .bind(segment_id.map(String::from))
        .bind(port_id.to_string())
        .execute(tx.conn())
        .await?;
    tx.touch(ObjectKind::Port, port_id);
    Ok(())
}
