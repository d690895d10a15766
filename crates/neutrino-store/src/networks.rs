//! Networks and their segments.

use crate::filters::{col, Column, ColumnType as T, Filter};
use crate::rows::{boolean, int, json, opt_int, opt_text, text, Page};
use crate::visibility::Visibility;
use crate::{Result, StoreError, Tx};
use neutrino_api::resources::{Network, ProviderSegment};
use neutrino_domain::changes::{Operation, Resource};
use neutrino_domain::segments::SegmentPlan;
use neutrino_domain::topology::ObjectKind;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
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
    col("is_default", "is_default", T::Bool),
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
    revision_number, availability_zone_hints, dns_domain, is_default FROM networks";

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
        provider: Some(ProviderSegment {
            network_type: text(row, "network_type")?,
            physical_network: opt_text(row, "physical_network")?,
            segmentation_id: opt_int(row, "segmentation_id")?.map(|v| v as u32),
        }),
        segments: None,
        is_default: Some(boolean(row, "is_default")?),
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
    // Multi-segment networks show `segments` instead of `provider:*`.
    let mut segments_of: BTreeMap<String, Vec<ProviderSegment>> = BTreeMap::new();
    let sql = format!(
        "SELECT network_id, network_type, physical_network, segmentation_id FROM network_segments \
         WHERE network_id IN (SELECT network_id FROM network_segments GROUP BY network_id HAVING COUNT(*) > 1){} \
         ORDER BY network_id, segment_index",
        within("network_id")
    );
    for r in bound(&sql, only).fetch_all(&mut *c).await? {
        segments_of.entry(text(&r, "network_id")?).or_default().push(ProviderSegment {
            network_type: text(&r, "network_type")?,
            physical_network: opt_text(&r, "physical_network")?,
            segmentation_id: opt_int(&r, "segmentation_id")?.map(|v| v as u32),
        });
    }
    for n in nets {
        if let Some(segments) = segments_of.remove(&n.id) {
            n.provider = None;
            n.segments = Some(segments);
        }
        n.availability_zones = zones_of.remove(&n.id).unwrap_or_default();
        n.is_default = n.router_external.then(|| n.is_default.unwrap_or(false));
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

/// What decides who may see and use a network: its owner and how it is shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAccess {
    pub project_id: String,
    pub shared: bool,
    pub router_external: bool,
}

/// How a transaction holds a network it creates something on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkUse {
    /// A port: many may be created at once (`FOR SHARE`).
    Share,
    /// A subnet, which also revises the network row: creates take turns (`FOR NO KEY UPDATE`),
    /// as two share locks both upgrading would deadlock.
    Revise,
}

/// Hold a network's row for the rest of the transaction against changes of who may use it
/// (PostgreSQL: RBAC changes lock the row `FOR UPDATE` first, so they wait for this
/// transaction, or it for them and then reads their outcome; SQLite's writers take turns).
pub async fn lock_network_for_use(tx: &mut Tx, id: &str, how: NetworkUse) -> Result<()> {
    if tx.backend() == crate::Backend::Postgres {
        let lock = match how {
            NetworkUse::Share => "FOR SHARE",
            NetworkUse::Revise => "FOR NO KEY UPDATE",
        };
        sqlx::query(&format!("SELECT id FROM networks WHERE id = $1 {lock}"))
            .bind(id.to_string())
            .fetch_optional(tx.conn())
            .await?;
    }
    Ok(())
}

/// [`NetworkAccess`] of a network (one indexed lookup), `None` when it does not exist.
pub async fn network_access(c: &mut AnyConnection, id: &str) -> Result<Option<NetworkAccess>> {
    let row = sqlx::query("SELECT project_id, shared, router_external FROM networks WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut *c)
        .await?;
    row.map(|r| {
        Ok(NetworkAccess {
            project_id: text(&r, "project_id")?,
            shared: boolean(&r, "shared")?,
            router_external: boolean(&r, "router_external")?,
        })
    })
    .transpose()
}

pub async fn list_networks(
    c: &mut AnyConnection,
    filters: &[Filter],
    page: &Page,
    visibility: &Visibility,
) -> Result<Vec<Network>> {
    let listed = crate::visibility::Listed { select: SELECT, table: "networks", columns: COLUMNS };
    let rows =
        crate::visibility::list_rows(c, listed, filters, page, visibility, crate::tags::tag_filter("networks")).await?;
    let mut nets = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
    attach_related(c, &mut nets, filters.is_empty() && page.limit.is_none()).await?;
    Ok(nets)
}

/// Insert a network and give it its segments, in the caller's transaction.
pub async fn insert_network(tx: &mut Tx, net: &mut Network, plans: &[SegmentPlan]) -> Result<()> {
    crate::enforce_quota(tx, neutrino_domain::quotas::QuotaResource::Network, &net.project_id).await?;
    sqlx::query(
        "INSERT INTO networks (id, project_id, name, description, admin_state_up, status, shared, router_external, \
         port_security_enabled, mtu, network_type, physical_network, segmentation_id, created_at, updated_at, revision_number, \
         availability_zone_hints, dns_domain) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, '', NULL, NULL, $11, $12, $13, $14, $15)",
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
    .bind(net.created_at.clone())
    .bind(net.updated_at.clone())
    .bind(net.revision_number as i64)
    .bind(serde_json::to_string(&net.availability_zone_hints)?)
    .bind(net.dns_domain.clone().unwrap_or_default())
    .execute(tx.conn())
    .await?;
    let owner = crate::SegmentOwner { network_id: &net.id, project_id: &net.project_id };
    let segments = crate::add_segments(tx, &owner, plans, None).await?;
    let provider: Vec<ProviderSegment> = segments
        .iter()
        .map(|s| ProviderSegment {
            network_type: s.network_type.clone(),
            physical_network: s.physical_network.clone(),
            segmentation_id: s.segmentation_id,
        })
        .collect();
    if provider.len() == 1 {
        net.provider = provider.into_iter().next();
        net.segments = None;
    } else {
        net.provider = None;
        net.segments = Some(provider);
    }
    tx.revised("networks", &net.id);
    tx.record_change(Resource::Network, &net.id, Operation::Create);
    Ok(())
}

/// Set a network's MTU (the smallest its segments allow), in the caller's transaction.
pub async fn set_network_mtu(tx: &mut Tx, id: &str, mtu: u32) -> Result<()> {
    sqlx::query("UPDATE networks SET mtu = $1 WHERE id = $2")
        .bind(mtu as i64)
        .bind(id.to_string())
        .execute(tx.conn())
        .await?;
    tx.touch(ObjectKind::Network, id);
    Ok(())
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
    crate::error::check_revision(if_revision, net.revision_number)?;
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
    tx.revised("networks", id);
    tx.record_change(Resource::Network, id, Operation::Update);
    Ok(net)
}

/// Delete a network that has no ports but network-owned ones (which go with it, as do its
/// subnets and segments). Fails with `NetworkInUse` listing the ports otherwise.
pub async fn delete_network(tx: &mut Tx, id: &str) -> Result<()> {
    tx.lock_parent("networks", id).await?;
    get_network(tx.conn(), id).await?;
    let rows = sqlx::query("SELECT id, device_owner FROM ports WHERE network_id = $1 ORDER BY id")
        .bind(id.to_string())
        .fetch_all(tx.conn())
        .await?;
    let mut in_use = Vec::new();
    for r in &rows {
        // Router interfaces and gateways keep a network; other `network:*` ports go with it
        // (a floating IP's with its floating IP).
        let owner = text(r, "device_owner")?;
        let router_port = neutrino_domain::routers::is_router_owned(&owner)
            && owner != neutrino_domain::routers::DEVICE_OWNER_FLOATINGIP;
        if !owner.starts_with("network:") || router_port {
            in_use.push(text(r, "id")?);
        }
    }
    // The network-owned ports and the segments go with the network.
    for r in &rows {
        tx.touch(ObjectKind::Port, &text(r, "id")?);
    }
    for s in crate::segments::network_segments(tx.conn(), id).await? {
        tx.touch(ObjectKind::Segment, &s.id);
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
    for fip in crate::floating_ips::floatingips_where(tx.conn(), "floating_network_id", id).await? {
        crate::floating_ips::delete_floatingip_row(tx, &fip).await?;
    }
    for stmt in [
        "DELETE FROM tags WHERE resource_type = 'ports' AND resource_id IN (SELECT id FROM ports WHERE network_id = $1)",
        "DELETE FROM tags WHERE resource_type = 'subnets' AND resource_id IN (SELECT id FROM subnets WHERE network_id = $1)",
        "DELETE FROM tags WHERE resource_type = 'networks' AND resource_id = $1",
        "DELETE FROM ip_allocations WHERE network_id = $1",
        "DELETE FROM ports WHERE network_id = $1",
        "DELETE FROM subnets WHERE network_id = $1",
        "DELETE FROM segment_allocations WHERE network_id = $1",
        "DELETE FROM network_segments WHERE network_id = $1",
        "DELETE FROM rbac_policies WHERE object_type = 'network' AND object_id = $1",
        "DELETE FROM networks WHERE id = $1",
    ] {
        sqlx::query(stmt).bind(id.to_string()).execute(tx.conn()).await?;
    }
    tx.record_change(Resource::Network, id, Operation::Delete);
    Ok(())
}
