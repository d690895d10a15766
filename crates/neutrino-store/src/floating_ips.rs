//! Floating IPs (each holds a `network:floatingip` port on its external network) and their
//! port forwardings. A fixed IP has at most one floating IP: the unique key on
//! `(fixed_port_id, fixed_ip_address)` settles concurrent associations.

use crate::filters::{col, Column, ColumnType as T, Filter};
use crate::rows::placeholders;
use crate::rows::{int, opt_text, text, Page};
use crate::visibility::Visibility;
use crate::{Result, StoreError, Tx};
use neutrino_api::resources::{FloatingIp, FloatingIpPortDetails, PortForwarding};
use neutrino_domain::changes::{Operation, Resource};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use std::collections::BTreeMap;

const COLUMNS: &[Column] = &[
    col("id", "id", T::Text),
    col("floating_ip_address", "floating_ip_address", T::Text),
    col("floating_network_id", "floating_network_id", T::Text),
    col("router_id", "router_id", T::NullableText),
    col("port_id", "fixed_port_id", T::NullableText),
    col("fixed_ip_address", "fixed_ip_address", T::NullableText),
    col("project_id", "project_id", T::Text),
    col("tenant_id", "project_id", T::Text),
    col("status", "status", T::Text),
    col("description", "description", T::Text),
    col("revision_number", "revision_number", T::Int),
    col("created_at", "created_at", T::Text),
    col("updated_at", "updated_at", T::Text),
];

const SELECT: &str = "SELECT id, project_id, floating_network_id, floating_port_id, floating_ip_address, \
    fixed_port_id, fixed_ip_address, router_id, status, description, dns_name, dns_domain, created_at, updated_at, \
    revision_number FROM floatingips";

/// A floating IP row with its own port.
pub struct FloatingIpRow {
    pub fip: FloatingIp,
    pub floating_port_id: String,
}

fn decode(row: &AnyRow) -> Result<FloatingIpRow> {
    let project_id = text(row, "project_id")?;
    let dns_name = text(row, "dns_name")?;
    let dns_domain = text(row, "dns_domain")?;
    Ok(FloatingIpRow {
        fip: FloatingIp {
            id: text(row, "id")?,
            tenant_id: project_id.clone(),
            project_id,
            floating_ip_address: text(row, "floating_ip_address")?,
            floating_network_id: text(row, "floating_network_id")?,
            router_id: opt_text(row, "router_id")?,
            port_id: opt_text(row, "fixed_port_id")?,
            fixed_ip_address: opt_text(row, "fixed_ip_address")?,
            status: text(row, "status")?,
            description: text(row, "description")?,
            port_details: None,
            port_forwardings: Vec::new(),
            qos_policy_id: None,
            dns_name: Some(dns_name),
            dns_domain: Some(dns_domain),
            tags: Vec::new(),
            created_at: text(row, "created_at")?,
            updated_at: text(row, "updated_at")?,
            revision_number: int(row, "revision_number")? as u64,
        },
        floating_port_id: text(row, "floating_port_id")?,
    })
}

/// Fill port details, port forwardings and tags of a page of floating IPs.
async fn attach(c: &mut AnyConnection, fips: &mut [FloatingIp]) -> Result<()> {
    let mut tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut forwardings: BTreeMap<String, Vec<PortForwarding>> = BTreeMap::new();
    let mut details: BTreeMap<String, FloatingIpPortDetails> = BTreeMap::new();
    for chunk in fips.chunks(500) {
        let ids = placeholders(chunk.len());
        let sql = format!(
            "SELECT resource_id, tag FROM tags WHERE resource_type = 'floatingips' AND resource_id IN ({ids}) \
             ORDER BY resource_id, tag"
        );
        let mut q = sqlx::query(&sql);
        for f in chunk {
            q = q.bind(f.id.clone());
        }
        for r in q.fetch_all(&mut *c).await? {
            tags.entry(text(&r, "resource_id")?).or_default().push(text(&r, "tag")?);
        }
        let sql = format!("{PF_SELECT} WHERE floatingip_id IN ({ids}) ORDER BY floatingip_id, id");
        let mut q = sqlx::query(&sql);
        for f in chunk {
            q = q.bind(f.id.clone());
        }
        for r in q.fetch_all(&mut *c).await? {
            forwardings.entry(text(&r, "floatingip_id")?).or_default().push(decode_forwarding(&r)?);
        }
        let ports: Vec<&String> = chunk.iter().filter_map(|f| f.port_id.as_ref()).collect();
        if ports.is_empty() {
            continue;
        }
        let sql = format!(
            "SELECT id, name, network_id, mac_address, admin_state_up, status, device_id, device_owner FROM ports \
             WHERE id IN ({})",
            placeholders(ports.len())
        );
        let mut q = sqlx::query(&sql);
        for p in ports {
            q = q.bind(p.clone());
        }
        for r in q.fetch_all(&mut *c).await? {
            details.insert(
                text(&r, "id")?,
                FloatingIpPortDetails {
                    name: text(&r, "name")?,
                    network_id: text(&r, "network_id")?,
                    mac_address: text(&r, "mac_address")?,
                    admin_state_up: crate::rows::boolean(&r, "admin_state_up")?,
                    status: text(&r, "status")?,
                    device_id: text(&r, "device_id")?,
                    device_owner: text(&r, "device_owner")?,
                },
            );
        }
    }
    for f in fips {
        f.tags = tags.remove(&f.id).unwrap_or_default();
        f.port_forwardings = forwardings.remove(&f.id).unwrap_or_default().iter().map(Into::into).collect();
        f.port_details = f.port_id.as_ref().and_then(|p| details.get(p).cloned());
    }
    Ok(())
}

pub async fn insert_floatingip(tx: &mut Tx, f: &FloatingIp, floating_port_id: &str) -> Result<()> {
    crate::enforce_quota(tx, neutrino_domain::quotas::QuotaResource::Floatingip, &f.project_id).await?;
    sqlx::query(
        "INSERT INTO floatingips (id, project_id, floating_network_id, floating_port_id, floating_ip_address, \
         fixed_port_id, fixed_ip_address, router_id, status, description, dns_name, dns_domain, created_at, \
         updated_at, revision_number) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(f.id.clone())
    .bind(f.project_id.clone())
    .bind(f.floating_network_id.clone())
    .bind(floating_port_id.to_string())
    .bind(f.floating_ip_address.clone())
    .bind(f.port_id.clone())
    .bind(f.fixed_ip_address.clone())
    .bind(f.router_id.clone())
    .bind(f.status.clone())
    .bind(f.description.clone())
    .bind(f.dns_name.clone().unwrap_or_default())
    .bind(f.dns_domain.clone().unwrap_or_default())
    .bind(f.created_at.clone())
    .bind(f.updated_at.clone())
    .bind(f.revision_number as i64)
    .execute(tx.conn())
    .await?;
    tx.record_change(Resource::FloatingIp, &f.id, Operation::Create);
    Ok(())
}

pub async fn get_floatingip_row(c: &mut AnyConnection, id: &str) -> Result<FloatingIpRow> {
    let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| StoreError::not_found("floatingip", id))?;
    let mut row = decode(&row)?;
    attach(c, std::slice::from_mut(&mut row.fip)).await?;
    Ok(row)
}

pub async fn get_floatingip(c: &mut AnyConnection, id: &str) -> Result<FloatingIp> {
    Ok(get_floatingip_row(c, id).await?.fip)
}

pub async fn list_floatingips(
    c: &mut AnyConnection,
    filters: &[Filter],
    page: &Page,
    visibility: &Visibility,
) -> Result<Vec<FloatingIp>> {
    let listed = crate::visibility::Listed { select: SELECT, table: "floatingips", columns: COLUMNS };
    let rows =
        crate::visibility::list_rows(c, listed, filters, page, visibility, crate::tags::tag_filter("floatingips"))
            .await?;
    let mut fips = rows.iter().map(|r| decode(r).map(|r| r.fip)).collect::<Result<Vec<_>>>()?;
    attach(c, &mut fips).await?;
    Ok(fips)
}

/// Store a floating IP's association and description, moving its revision from `expected`.
/// A fixed IP that has a floating IP already is a unique violation.
pub async fn update_floatingip(tx: &mut Tx, f: &FloatingIp, expected: u64) -> Result<()> {
    let done = sqlx::query(
        "UPDATE floatingips SET fixed_port_id = $1, fixed_ip_address = $2, router_id = $3, description = $4, \
         status = $5, updated_at = $6, revision_number = $7 WHERE id = $8 AND revision_number = $9",
    )
    .bind(f.port_id.clone())
    .bind(f.fixed_ip_address.clone())
    .bind(f.router_id.clone())
    .bind(f.description.clone())
    .bind(f.status.clone())
    .bind(crate::now_timestamp())
    .bind(expected as i64 + 1)
    .bind(f.id.clone())
    .bind(expected as i64)
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::RevisionMismatch);
    }
    tx.record_change(Resource::FloatingIp, &f.id, Operation::Update);
    Ok(())
}

/// Delete a floating IP row with its forwardings and tags (its port is the caller's).
pub async fn delete_floatingip_row(tx: &mut Tx, id: &str) -> Result<()> {
    for stmt in [
        "DELETE FROM port_forwardings WHERE floatingip_id = $1",
        "DELETE FROM tags WHERE resource_type = 'floatingips' AND resource_id = $1",
        "DELETE FROM floatingips WHERE id = $1",
    ] {
        sqlx::query(stmt).bind(id.to_string()).execute(tx.conn()).await?;
    }
    tx.record_change(Resource::FloatingIp, id, Operation::Delete);
    Ok(())
}

/// The ids of floating IPs matching `column = value` (`router_id`, `fixed_port_id`,
/// `floating_network_id`, `floating_port_id`).
pub async fn floatingips_where(c: &mut AnyConnection, column: &str, value: &str) -> Result<Vec<String>> {
    debug_assert!(["router_id", "fixed_port_id", "floating_network_id", "floating_port_id"].contains(&column));
    let rows = sqlx::query(&format!("SELECT id FROM floatingips WHERE {column} = $1 ORDER BY id"))
        .bind(value.to_string())
        .fetch_all(&mut *c)
        .await?;
    rows.iter().map(|r| text(r, "id")).collect()
}

/// Whether a floating IP reaches its fixed IP on `subnet_id` through `router_id`.
pub async fn floating_ips_through(c: &mut AnyConnection, router_id: &str, subnet_id: &str) -> Result<bool> {
    Ok(sqlx::query(
        "SELECT f.id FROM floatingips f JOIN ip_allocations a ON a.port_id = f.fixed_port_id          AND a.ip_address = f.fixed_ip_address WHERE f.router_id = $1 AND a.subnet_id = $2 LIMIT 1",
    )
    .bind(router_id.to_string())
    .bind(subnet_id.to_string())
    .fetch_optional(&mut *c)
    .await?
    .is_some())
}

/// Dissociate every floating IP of a port (the port is going away).
pub async fn dissociate_port_floatingips(tx: &mut Tx, port_id: &str) -> Result<()> {
    // One statement: a floating IP re-pointed meanwhile by another transaction is not touched.
    let rows = sqlx::query(
        "UPDATE floatingips SET fixed_port_id = NULL, fixed_ip_address = NULL, router_id = NULL, \
         status = 'DOWN', revision_number = revision_number + 1, updated_at = $1 WHERE fixed_port_id = $2 \
         RETURNING id",
    )
    .bind(crate::now_timestamp())
    .bind(port_id.to_string())
    .fetch_all(tx.conn())
    .await?;
    for r in rows {
        tx.record_change(Resource::FloatingIp, &text(&r, "id")?, Operation::Update);
    }
    Ok(())
}

const PF_SELECT: &str = "SELECT id, floatingip_id, protocol, internal_port_id, internal_ip_address, \
    internal_port_start, internal_port_end, external_port_start, external_port_end, description FROM port_forwardings";

fn decode_forwarding(r: &AnyRow) -> Result<PortForwarding> {
    let (is, ie) = (int(r, "internal_port_start")? as u32, int(r, "internal_port_end")? as u32);
    let (es, ee) = (int(r, "external_port_start")? as u32, int(r, "external_port_end")? as u32);
    let single = is == ie && es == ee;
    Ok(PortForwarding {
        id: text(r, "id")?,
        protocol: text(r, "protocol")?,
        internal_ip_address: text(r, "internal_ip_address")?,
        internal_port_id: text(r, "internal_port_id")?,
        internal_port: single.then_some(is),
        external_port: single.then_some(es),
        internal_port_range: if is == ie { is.to_string() } else { format!("{is}:{ie}") },
        external_port_range: if es == ee { es.to_string() } else { format!("{es}:{ee}") },
        description: text(r, "description")?,
    })
}

/// A port forwarding as stored: ports as inclusive ranges.
pub struct ForwardingRow {
    pub id: String,
    pub floatingip_id: String,
    pub protocol: String,
    pub internal_port_id: String,
    pub internal_ip_address: String,
    pub internal: (u32, u32),
    pub external: (u32, u32),
    pub description: String,
}

pub async fn list_forwardings(c: &mut AnyConnection, floatingip_id: &str) -> Result<Vec<PortForwarding>> {
    let rows = sqlx::query(&format!("{PF_SELECT} WHERE floatingip_id = $1 ORDER BY id"))
        .bind(floatingip_id.to_string())
        .fetch_all(&mut *c)
        .await?;
    rows.iter().map(decode_forwarding).collect()
}

pub async fn get_forwarding(c: &mut AnyConnection, floatingip_id: &str, id: &str) -> Result<PortForwarding> {
    let row = sqlx::query(&format!("{PF_SELECT} WHERE floatingip_id = $1 AND id = $2"))
        .bind(floatingip_id.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| StoreError::not_found("port_forwarding", id))?;
    decode_forwarding(&row)
}

/// Insert or (when `replace`) update a forwarding; a taken external port is a unique violation.
pub async fn upsert_forwarding(tx: &mut Tx, f: &ForwardingRow, replace: bool) -> Result<()> {
    let sql = if replace {
        "UPDATE port_forwardings SET protocol = $3, internal_port_id = $4, internal_ip_address = $5, \
         internal_port_start = $6, internal_port_end = $7, external_port_start = $8, external_port_end = $9, \
         description = $10 WHERE id = $1 AND floatingip_id = $2"
    } else {
        "INSERT INTO port_forwardings (id, floatingip_id, protocol, internal_port_id, internal_ip_address, \
         internal_port_start, internal_port_end, external_port_start, external_port_end, description) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    };
    sqlx::query(sql)
        .bind(f.id.clone())
        .bind(f.floatingip_id.clone())
        .bind(f.protocol.clone())
        .bind(f.internal_port_id.clone())
        .bind(f.internal_ip_address.clone())
        .bind(f.internal.0 as i64)
        .bind(f.internal.1 as i64)
        .bind(f.external.0 as i64)
        .bind(f.external.1 as i64)
        .bind(f.description.clone())
        .execute(tx.conn())
        .await?;
    bump_floatingip(tx, &f.floatingip_id).await
}

pub async fn delete_forwarding(tx: &mut Tx, floatingip_id: &str, id: &str) -> Result<()> {
    let done = sqlx::query("DELETE FROM port_forwardings WHERE floatingip_id = $1 AND id = $2")
        .bind(floatingip_id.to_string())
        .bind(id.to_string())
        .execute(tx.conn())
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::not_found("port_forwarding", id));
    }
    bump_floatingip(tx, floatingip_id).await
}

/// Every forwarding of the floating IP, as stored (for overlap checks).
pub async fn forwarding_rows(c: &mut AnyConnection, floatingip_id: &str) -> Result<Vec<ForwardingRow>> {
    let rows = sqlx::query(&format!("{PF_SELECT} WHERE floatingip_id = $1 ORDER BY id"))
        .bind(floatingip_id.to_string())
        .fetch_all(&mut *c)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ForwardingRow {
                id: text(r, "id")?,
                floatingip_id: text(r, "floatingip_id")?,
                protocol: text(r, "protocol")?,
                internal_port_id: text(r, "internal_port_id")?,
                internal_ip_address: text(r, "internal_ip_address")?,
                internal: (int(r, "internal_port_start")? as u32, int(r, "internal_port_end")? as u32),
                external: (int(r, "external_port_start")? as u32, int(r, "external_port_end")? as u32),
                description: text(r, "description")?,
            })
        })
        .collect()
}

/// Delete the forwardings whose internal port is `port_id` (the port is going away).
pub async fn delete_port_forwardings_of(tx: &mut Tx, port_id: &str) -> Result<()> {
    let rows = sqlx::query("SELECT DISTINCT floatingip_id FROM port_forwardings WHERE internal_port_id = $1")
        .bind(port_id.to_string())
        .fetch_all(tx.conn())
        .await?;
    sqlx::query("DELETE FROM port_forwardings WHERE internal_port_id = $1")
        .bind(port_id.to_string())
        .execute(tx.conn())
        .await?;
    for r in rows {
        bump_floatingip(tx, &text(&r, "floatingip_id")?).await?;
    }
    Ok(())
}

/// Whether a port is the internal port of some forwarding.
pub async fn port_has_forwardings(c: &mut AnyConnection, port_id: &str) -> Result<bool> {
    Ok(sqlx::query("SELECT id FROM port_forwardings WHERE internal_port_id = $1 LIMIT 1")
        .bind(port_id.to_string())
        .fetch_optional(&mut *c)
        .await?
        .is_some())
}

/// Whether `project_id` may put gateways and floating IPs on the external network `network_id`:
/// it owns it, or an `access_as_external` policy names it or everyone.
pub async fn network_external_to(c: &mut AnyConnection, network_id: &str, project_id: &str) -> Result<bool> {
    Ok(sqlx::query(
        "SELECT id FROM networks WHERE id = $1 AND (project_id = $2 OR id IN (SELECT object_id FROM rbac_policies          WHERE object_type = 'network' AND action = 'access_as_external' AND target_project IN ($2, '*')))",
    )
    .bind(network_id.to_string())
    .bind(project_id.to_string())
    .fetch_optional(&mut *c)
    .await?
    .is_some())
}

/// Lock the floating IP's row (PostgreSQL) and say whether it exists.
pub async fn lock_floatingip(tx: &mut Tx, id: &str) -> Result<()> {
    let lock = if tx.backend() == crate::Backend::Postgres { " FOR UPDATE" } else { "" };
    let found = sqlx::query(&format!("SELECT id FROM floatingips WHERE id = $1{lock}"))
        .bind(id.to_string())
        .fetch_optional(tx.conn())
        .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::not_found("floatingip", id)),
    }
}

async fn bump_floatingip(tx: &mut Tx, id: &str) -> Result<()> {
    sqlx::query("UPDATE floatingips SET revision_number = revision_number + 1, updated_at = $1 WHERE id = $2")
        .bind(crate::now_timestamp())
        .bind(id.to_string())
        .execute(tx.conn())
        .await?;
    tx.record_change(Resource::FloatingIp, id, Operation::Update);
    Ok(())
}
