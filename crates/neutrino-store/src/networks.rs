//! Networks and their segments.

use crate::filters::{build_where, col, list_sql, Column, ColumnType as T, Filter};
use crate::rows::{boolean, int, json, opt_int, opt_text, text, Page};
use crate::{Result, StoreError, Tx};
use neutrino_api::resources::Network;
use neutrino_domain::segments::{no_tenant_network, segment_in_use, SegmentPlan};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::collections::BTreeMap;

const COLUMNS: &[Column] = &[
    col("id", "id", T::Text),
    col("name", "name", T::Text),
    col("project_id", "project_id", T::Text),
    col("tenant_id", "project_id", T::Text),
    col("description", "description", T::Text),
    col("admin_state_up", "admin_state_up", T::Bool),
    col("status", "status", T::Text),
    col("shared", "shared", T::Bool),
    col("router:external", "router_external", T::Bool),
    col("port_security_enabled", "port_security_enabled", T::Bool),
    col("mtu", "mtu", T::Int),
    col("provider:network_type", "network_type", T::Text),
    col("provider:physical_network", "physical_network", T::NullableText),
    col("provider:segmentation_id", "segmentation_id", T::NullableInt),
    col("revision_number", "revision_number", T::Int),
    col("created_at", "created_at", T::Text),
    col("updated_at", "updated_at", T::Text),
];

const SELECT: &str = "SELECT id, project_id, name, description, admin_state_up, status, shared, router_external, \
    port_security_enabled, mtu, network_type, physical_network, segmentation_id, created_at, updated_at, \
    revision_number, availability_zone_hints, dns_domain FROM networks";

fn decode(row: &AnyRow) -> Result<Network> {
    let project_id = text(row, "project_id")?;
    Ok(Network {
        id: text(row, "id")?,
        name: text(row, "name")?,
        tenant_id: project_id.clone(),
        project_id,
        admin_state_up: boolean(row, "admin_state_up")?,
        mtu: int(row, "mtu")? as u32,
        status: text(row, "status")?,
        subnets: Vec::new(),
        shared: boolean(row, "shared")?,
        port_security_enabled: boolean(row, "port_security_enabled")?,
        qos_policy_id: None,
        router_external: boolean(row, "router_external")?,
        network_type: text(row, "network_type")?,
        physical_network: opt_text(row, "physical_network")?,
        segmentation_id: opt_int(row, "segmentation_id")?.map(|v| v as u32),
        is_default: None,
        availability_zone_hints: json(row, "availability_zone_hints")?,
        availability_zones: Vec::new(),
        ipv4_address_scope: None,
        ipv6_address_scope: None,
        description: text(row, "description")?,
        l2_adjacency: true,
        dns_domain: Some(text(row, "dns_domain")?),
        tags: Vec::new(),
        created_at: text(row, "created_at")?,
        updated_at: text(row, "updated_at")?,
        revision_number: int(row, "revision_number")? as u64,
    })
}

/// A query with the network ids bound to its `$1, …` (when limited to some networks).
fn bound<'q>(sql: &'q str, ids: Option<&[String]>) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut q = sqlx::query(sql);
    for id in ids.unwrap_or_default() {
        q = q.bind(id.clone());
    }
    q
}

/// Fill what a network shows of other tables (subnets, tags, address scopes, availability
/// zones), with one query each. Queries are limited to the given networks unless `all` of them
/// are listed, so reading one network (as every port create does) stays an index lookup.
async fn attach_related(c: &mut AnyConnection, nets: &mut [Network], all: bool) -> Result<()> {
    if nets.is_empty() {
        return Ok(());
    }
    let all = all || nets.len() > 500;
    let ids: Vec<String> = nets.iter().map(|n| n.id.clone()).collect();
    // `AND <column> IN ($1, …)`, or nothing when every network is wanted.
    let within = |column: &str| {
        if all {
            String::new()
        } else {
            let placeholders = (1..=ids.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            format!(" AND {column} IN ({placeholders})")
        }
    };
    let only = (!all).then_some(ids.as_slice());

    let mut subnets_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let sql = format!("SELECT network_id, id FROM subnets WHERE 1 = 1{} ORDER BY created_at, id", within("network_id"));
    for r in bound(&sql, only).fetch_all(&mut *c).await? {
        subnets_of.entry(text(&r, "network_id")?).or_default().push(text(&r, "id")?);
    }
    let mut tags_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let sql = format!(
        "SELECT resource_id, tag FROM tags WHERE resource_type = 'networks'{} ORDER BY resource_id, tag",
        within("resource_id")
    );
    for r in bound(&sql, only).fetch_all(&mut *c).await? {
        tags_of.entry(text(&r, "resource_id")?).or_default().push(text(&r, "tag")?);
    }
    // A network is in an address scope through the pools of its subnets.
    let mut scope_of: BTreeMap<(String, i64), String> = BTreeMap::new();
    let sql = format!(
        "SELECT DISTINCT s.network_id, s.ip_version, p.address_scope_id FROM subnets s \
         JOIN subnetpools p ON p.id = s.subnetpool_id WHERE p.address_scope_id IS NOT NULL{}",
        within("s.network_id")
    );
    for r in bound(&sql, only).fetch_all(&mut *c).await? {
        scope_of.insert((text(&r, "network_id")?, int(&r, "ip_version")?), text(&r, "address_scope_id")?);
    }
    // A network is in the zones of the hosts its ports are bound to (no central node).
    let mut zones_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let sql = format!(
        "SELECT DISTINCT p.network_id, a.availability_zone FROM ports p JOIN agents a ON a.host = p.host_id \
         WHERE p.host_id <> ''{} ORDER BY a.availability_zone",
        within("p.network_id")
    );
    for r in bound(&sql, only).fetch_all(&mut *c).await? {
        zones_of.entry(text(&r, "network_id")?).or_default().push(text(&r, "availability_zone")?);
    }
    for n in nets {
        n.availability_zones = zones_of.remove(&n.id).unwrap_or_default();
        n.is_default = n.router_external.then_some(false);
        n.subnets = subnets_of.remove(&n.id).unwrap_or_default();
        n.tags = tags_of.remove(&n.id).unwrap_or_default();
        n.ipv4_address_scope = scope_of.get(&(n.id.clone(), 4)).cloned();
        n.ipv6_address_scope = scope_of.get(&(n.id.clone(), 6)).cloned();
    }
    Ok(())
}

pub async fn get_network(c: &mut AnyConnection, id: &str) -> Result<Network> {
    let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| StoreError::not_found("network", id))?;
    let mut nets = vec![decode(&row)?];
    attach_related(c, &mut nets, false).await?;
    Ok(nets.remove(0))
}

pub async fn list_networks(c: &mut AnyConnection, filters: &[Filter], page: &Page) -> Result<Vec<Network>> {
    let w = build_where(COLUMNS, filters, crate::tags::tag_filter("networks"))?;
    let (sql, w) = list_sql(SELECT, "networks", COLUMNS, w, page)?;
    let mut rows = w.bind(sqlx::query(&sql)).fetch_all(&mut *c).await?;
    if page.page_reverse {
        rows.reverse();
    }
    let mut nets = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
    attach_related(c, &mut nets, filters.is_empty() && page.limit.is_none()).await?;
    Ok(nets)
}

/// Insert a network and give it its segment, in the caller's transaction.
pub async fn insert_network(tx: &mut Tx, net: &mut Network, plan: &SegmentPlan) -> Result<()> {
    sqlx::query(
        "INSERT INTO networks (id, project_id, name, description, admin_state_up, status, shared, router_external, \
         port_security_enabled, mtu, network_type, physical_network, segmentation_id, created_at, updated_at, revision_number, \
         availability_zone_hints, dns_domain) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL, $12, $13, $14, $15, $16)",
    )
    .bind(net.id.clone())
    .bind(net.project_id.clone())
    .bind(net.name.clone())
    .bind(net.description.clone())
    .bind(net.admin_state_up)
    .bind(net.status.clone())
    .bind(net.shared)
    .bind(net.router_external)
    .bind(net.port_security_enabled)
    .bind(net.mtu as i64)
    .bind(net.network_type.clone())
    .bind(net.created_at.clone())
    .bind(net.updated_at.clone())
    .bind(net.revision_number as i64)
    .bind(serde_json::to_string(&net.availability_zone_hints)?)
    .bind(net.dns_domain.clone().unwrap_or_default())
    .execute(tx.conn())
    .await?;
    let (physnet, seg) = match plan {
        SegmentPlan::Nothing { .. } => (None, None),
        SegmentPlan::Reserve { network_type, physical_network, segmentation_id } => {
            reserve_segment(tx, &net.id, network_type, physical_network.as_deref(), *segmentation_id).await?;
            (physical_network.clone(), *segmentation_id)
        }
        SegmentPlan::Allocate { network_type, ranges } => {
            let id = allocate_segment(tx, &net.id, network_type, ranges).await?;
            (None, Some(id))
        }
    };
    if physnet.is_some() || seg.is_some() {
        sqlx::query("UPDATE networks SET physical_network = $1, segmentation_id = $2 WHERE id = $3")
            .bind(physnet.clone())
            .bind(seg.map(|s| s as i64))
            .bind(net.id.clone())
            .execute(tx.conn())
            .await?;
    }
    net.physical_network = physnet;
    net.segmentation_id = seg;
    tx.record_change("network", &net.id, "create").await
}

async fn reserve_segment(
    tx: &mut Tx,
    network_id: &str,
    network_type: &str,
    physnet: Option<&str>,
    seg: Option<u32>,
) -> Result<()> {
    let inserted = sqlx::query(
        "INSERT INTO segment_allocations (network_type, physical_network, segmentation_id, network_id) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(network_type.to_string())
    .bind(physnet.unwrap_or_default().to_string())
    .bind(seg.unwrap_or(0) as i64)
    .bind(network_id.to_string())
    .execute(tx.conn())
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(segment_in_use(network_type, physnet, seg).into());
    }
    Ok(())
}

/// Take the lowest free segment id in `ranges` with one `INSERT ... SELECT`. The primary key
/// settles races: a loser's insert does nothing, and it simply asks again (each statement
/// sees the winner's commit), so the loop ends when it wins or the ranges are full.
async fn allocate_segment(tx: &mut Tx, network_id: &str, network_type: &str, ranges: &[(u32, u32)]) -> Result<u32> {
    const FREE_CANDIDATE: &str = "SELECT c FROM ( \
            SELECT CAST($1 AS BIGINT) AS c \
            UNION ALL \
            SELECT a.segmentation_id + 1 AS c FROM segment_allocations a \
              WHERE a.network_type = $3 AND a.physical_network = '' \
                AND a.segmentation_id >= $1 AND a.segmentation_id < $2 \
        ) cand \
        WHERE NOT EXISTS (SELECT 1 FROM segment_allocations b \
            WHERE b.network_type = $3 AND b.physical_network = '' AND b.segmentation_id = cand.c) \
        ORDER BY c LIMIT 1";
    for (start, end) in ranges {
        loop {
            let insert = format!(
                "INSERT INTO segment_allocations (network_type, physical_network, segmentation_id, network_id) \
                 SELECT $3, '', c, $4 FROM ({FREE_CANDIDATE}) free WHERE true \
                 ON CONFLICT DO NOTHING RETURNING segmentation_id"
            );
            let row = sqlx::query(&insert)
                .bind(*start as i64)
                .bind(*end as i64)
                .bind(network_type.to_string())
                .bind(network_id.to_string())
                .fetch_optional(tx.conn())
                .await?;
            if let Some(r) = row {
                return Ok(r.try_get::<i64, _>("segmentation_id")? as u32);
            }
            let still_free = sqlx::query(FREE_CANDIDATE)
                .bind(*start as i64)
                .bind(*end as i64)
                .bind(network_type.to_string())
                .fetch_optional(tx.conn())
                .await?;
            if still_free.is_none() {
                break;
            }
        }
    }
    Err(no_tenant_network().into())
}

/// Changes a client may make to a network.
#[derive(Debug, Clone, Default)]
pub struct NetworkPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub admin_state_up: Option<bool>,
    pub mtu: Option<u32>,
    pub shared: Option<bool>,
    pub port_security_enabled: Option<bool>,
    pub router_external: Option<bool>,
    pub dns_domain: Option<String>,
}

/// Apply `patch`, bumping `revision_number` (compare-and-swap when `if_revision` is given).
pub async fn update_network(tx: &mut Tx, id: &str, patch: &NetworkPatch, if_revision: Option<u64>) -> Result<Network> {
    let mut net = get_network(tx.conn(), id).await?;
    if if_revision.is_some_and(|r| r != net.revision_number) {
        return Err(StoreError::RevisionMismatch);
    }
    if let Some(v) = &patch.name {
        net.name = v.clone();
    }
    if let Some(v) = &patch.description {
        net.description = v.clone();
    }
    if let Some(v) = patch.admin_state_up {
        net.admin_state_up = v;
    }
    if let Some(v) = patch.mtu {
        net.mtu = v;
    }
    if let Some(v) = patch.shared {
        net.shared = v;
    }
    if let Some(v) = patch.port_security_enabled {
        net.port_security_enabled = v;
    }
    if let Some(v) = patch.router_external {
        net.router_external = v;
    }
    if let Some(v) = &patch.dns_domain {
        net.dns_domain = Some(v.clone());
    }
    net.updated_at = crate::now_timestamp();
    let done = sqlx::query(
        "UPDATE networks SET name = $1, description = $2, admin_state_up = $3, mtu = $4, shared = $5, \
         port_security_enabled = $6, updated_at = $7, revision_number = revision_number + 1, router_external = $10, \
         dns_domain = $11 \
         WHERE id = $8 AND revision_number = $9",
    )
    .bind(net.name.clone())
    .bind(net.description.clone())
    .bind(net.admin_state_up)
    .bind(net.mtu as i64)
    .bind(net.shared)
    .bind(net.port_security_enabled)
    .bind(net.updated_at.clone())
    .bind(id.to_string())
    .bind(net.revision_number as i64)
    .bind(net.router_external)
    .bind(net.dns_domain.clone().unwrap_or_default())
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::RevisionMismatch);
    }
    net.revision_number += 1;
    tx.record_change("network", id, "update").await?;
    Ok(net)
}

/// Delete a network that has no ports but network-owned ones (which go with it, as do its
/// subnets and segments). Fails with `NetworkInUse` listing the ports otherwise.
pub async fn delete_network(tx: &mut Tx, id: &str) -> Result<()> {
    get_network(tx.conn(), id).await?;
    let rows = sqlx::query("SELECT id, device_owner FROM ports WHERE network_id = $1 ORDER BY id")
        .bind(id.to_string())
        .fetch_all(tx.conn())
        .await?;
    let mut in_use = Vec::new();
    for r in &rows {
        if !text(r, "device_owner")?.starts_with("network:") {
            in_use.push(text(r, "id")?);
        }
    }
    if !in_use.is_empty() {
        return Err(neutrino_domain::DomainError::conflict(
            "NetworkInUse",
            format!(
                "Unable to complete operation on network {id}. There are one or more ports still in use on the network, id for these ports is: {}.",
                in_use.join(",")
            ),
        )
        .into());
    }
    for stmt in [
        "DELETE FROM tags WHERE resource_type = 'ports' AND resource_id IN (SELECT id FROM ports WHERE network_id = $1)",
        "DELETE FROM tags WHERE resource_type = 'subnets' AND resource_id IN (SELECT id FROM subnets WHERE network_id = $1)",
        "DELETE FROM tags WHERE resource_type = 'networks' AND resource_id = $1",
        "DELETE FROM ip_allocations WHERE network_id = $1",
        "DELETE FROM ports WHERE network_id = $1",
        "DELETE FROM subnets WHERE network_id = $1",
        "DELETE FROM segment_allocations WHERE network_id = $1",
        "DELETE FROM networks WHERE id = $1",
    ] {
        sqlx::query(stmt).bind(id.to_string()).execute(tx.conn()).await?;
    }
    tx.record_change("network", id, "delete").await
}
