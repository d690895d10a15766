//! Routers: rows of `routers`, their extra routes (`router_routes`), and the ports that are
//! their interfaces and gateway (ports whose `device_id` is the router). Changes to a router's
//! interfaces and gateway take the router's row lock first ([`lock_router`]), so they take
//! turns per router.

use crate::filters::{col, Column, ColumnType as T, Filter};
use crate::rows::placeholders;
use crate::rows::{boolean, int, json, opt_text, text, Page};
use crate::visibility::Visibility;
use crate::{Result, StoreError, Tx};
use neutrino_api::resources::{ExternalFixedIp, ExternalGatewayInfo, Router, RouterRoute};
use neutrino_domain::changes::{Operation, Resource};
use neutrino_domain::routers::{DEVICE_OWNER_ROUTER_GW, ROUTER_INTERFACE_OWNERS};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use std::collections::BTreeMap;

const COLUMNS: &[Column] = &[
    col("id", "id", T::Text),
    col("name", "name", T::Text),
    col("description", "description", T::Text),
    col("project_id", "project_id", T::Text),
    col("tenant_id", "project_id", T::Text),
    col("admin_state_up", "admin_state_up", T::Bool),
    col("status", "status", T::Text),
    col("distributed", "distributed", T::Bool),
    col("ha", "ha", T::Bool),
    col("flavor_id", "flavor_id", T::NullableText),
    col("revision_number", "revision_number", T::Int),
    col("created_at", "created_at", T::Text),
    col("updated_at", "updated_at", T::Text),
];

const SELECT: &str = "SELECT id, project_id, name, description, admin_state_up, status, gw_port_id, enable_snat, \
    distributed, ha, availability_zone_hints, flavor_id, created_at, updated_at, revision_number FROM routers";

/// A router row and what only the store knows of it.
struct Row {
    router: Router,
    gw_port_id: Option<String>,
    enable_snat: bool,
}

fn decode(row: &AnyRow) -> Result<Row> {
    let project_id = text(row, "project_id")?;
    Ok(Row {
        router: Router {
            id: text(row, "id")?,
            name: text(row, "name")?,
            description: text(row, "description")?,
            tenant_id: project_id.clone(),
            project_id,
            admin_state_up: boolean(row, "admin_state_up")?,
            status: text(row, "status")?,
            external_gateway_info: None,
            routes: Vec::new(),
            distributed: boolean(row, "distributed")?,
            ha: boolean(row, "ha")?,
            availability_zone_hints: json(row, "availability_zone_hints")?,
            availability_zones: Vec::new(),
            flavor_id: opt_text(row, "flavor_id")?,
            tags: Vec::new(),
            created_at: text(row, "created_at")?,
            updated_at: text(row, "updated_at")?,
            revision_number: int(row, "revision_number")? as u64,
        },
        gw_port_id: opt_text(row, "gw_port_id")?,
        enable_snat: boolean(row, "enable_snat")?,
    })
}

/// Fill routes, tags and gateways of a page of routers, a few queries for all of them.
async fn attach(c: &mut AnyConnection, rows: Vec<Row>) -> Result<Vec<Router>> {
    let mut routes: BTreeMap<String, Vec<RouterRoute>> = BTreeMap::new();
    let mut tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut gateways: BTreeMap<String, (String, Vec<ExternalFixedIp>)> = BTreeMap::new();
    for chunk in rows.chunks(500) {
        let ids = placeholders(chunk.len());
        let sql = format!(
            "SELECT router_id, destination, nexthop FROM router_routes WHERE router_id IN ({ids}) \
             ORDER BY router_id, destination, nexthop"
        );
        let mut q = sqlx::query(&sql);
        for r in chunk {
            q = q.bind(r.router.id.clone());
        }
        for r in q.fetch_all(&mut *c).await? {
            routes
                .entry(text(&r, "router_id")?)
                .or_default()
                .push(RouterRoute { destination: text(&r, "destination")?, nexthop: text(&r, "nexthop")? });
        }
        let sql = format!(
            "SELECT resource_id, tag FROM tags WHERE resource_type = 'routers' AND resource_id IN ({ids}) \
             ORDER BY resource_id, tag"
        );
        let mut q = sqlx::query(&sql);
        for r in chunk {
            q = q.bind(r.router.id.clone());
        }
        for r in q.fetch_all(&mut *c).await? {
            tags.entry(text(&r, "resource_id")?).or_default().push(text(&r, "tag")?);
        }
        let gw: Vec<&String> = chunk.iter().filter_map(|r| r.gw_port_id.as_ref()).collect();
        if gw.is_empty() {
            continue;
        }
        let sql = format!(
            "SELECT p.id, p.network_id, a.subnet_id, a.ip_address FROM ports p \
             LEFT JOIN ip_allocations a ON a.port_id = p.id WHERE p.id IN ({}) ORDER BY p.id, a.position",
            placeholders(gw.len())
        );
        let mut q = sqlx::query(&sql);
        for id in gw {
            q = q.bind(id.clone());
        }
        for r in q.fetch_all(&mut *c).await? {
            let entry = gateways.entry(text(&r, "id")?).or_insert_with(|| (String::new(), Vec::new()));
            entry.0 = text(&r, "network_id")?;
            if let (Some(subnet_id), Some(ip_address)) = (opt_text(&r, "subnet_id")?, opt_text(&r, "ip_address")?) {
                entry.1.push(ExternalFixedIp { subnet_id, ip_address });
            }
        }
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut r = row.router;
            r.routes = routes.remove(&r.id).unwrap_or_default();
            r.tags = tags.remove(&r.id).unwrap_or_default();
            r.external_gateway_info = row.gw_port_id.and_then(|p| gateways.remove(&p)).map(|(network_id, ips)| {
                ExternalGatewayInfo { network_id, enable_snat: row.enable_snat, external_fixed_ips: ips }
            });
            r
        })
        .collect())
}

pub async fn insert_router(tx: &mut Tx, r: &Router) -> Result<()> {
    crate::enforce_quota(tx, neutrino_domain::quotas::QuotaResource::Router, &r.project_id).await?;
    sqlx::query(
        "INSERT INTO routers (id, project_id, name, description, admin_state_up, status, gw_port_id, enable_snat, \
         distributed, ha, availability_zone_hints, flavor_id, created_at, updated_at, revision_number) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(r.id.clone())
    .bind(r.project_id.clone())
    .bind(r.name.clone())
    .bind(r.description.clone())
    .bind(r.admin_state_up)
    .bind(r.status.clone())
    .bind(true)
    .bind(r.distributed)
    .bind(r.ha)
    .bind(serde_json::to_string(&r.availability_zone_hints).unwrap_or_else(|_| "[]".into()))
    .bind(r.flavor_id.clone())
    .bind(r.created_at.clone())
    .bind(r.updated_at.clone())
    .bind(r.revision_number as i64)
    .execute(tx.conn())
    .await?;
    tx.record_change(Resource::Router, &r.id, Operation::Create);
    Ok(())
}

pub async fn get_router(c: &mut AnyConnection, id: &str) -> Result<Router> {
    let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| StoreError::not_found("router", id))?;
    let mut routers = attach(c, vec![decode(&row)?]).await?;
    routers.pop().ok_or_else(|| StoreError::not_found("router", id))
}

pub async fn list_routers(
    c: &mut AnyConnection,
    filters: &[Filter],
    page: &Page,
    visibility: &Visibility,
) -> Result<Vec<Router>> {
    let listed = crate::visibility::Listed { select: SELECT, table: "routers", columns: COLUMNS };
    let rows =
        crate::visibility::list_rows(c, listed, filters, page, visibility, crate::tags::tag_filter("routers")).await?;
    let rows = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
    attach(c, rows).await
}

/// Lock the router's row for a change of its interfaces, gateway or routes (PostgreSQL;
/// SQLite's writers take turns anyway), and say whether it exists.
pub async fn lock_router(tx: &mut Tx, id: &str) -> Result<()> {
    let lock = if tx.backend() == crate::Backend::Postgres { " FOR UPDATE" } else { "" };
    let found = sqlx::query(&format!("SELECT id FROM routers WHERE id = $1{lock}"))
        .bind(id.to_string())
        .fetch_optional(tx.conn())
        .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::not_found("router", id)),
    }
}

/// Store the router's own attributes, moving its revision from `expected` (else
/// [`StoreError::RevisionMismatch`]).
pub async fn update_router(tx: &mut Tx, r: &Router, expected: u64) -> Result<()> {
    let done = sqlx::query(
        "UPDATE routers SET name = $1, description = $2, admin_state_up = $3, distributed = $4, ha = $5, \
         updated_at = $6, revision_number = $7 WHERE id = $8 AND revision_number = $9",
    )
    .bind(r.name.clone())
    .bind(r.description.clone())
    .bind(r.admin_state_up)
    .bind(r.distributed)
    .bind(r.ha)
    .bind(crate::now_timestamp())
    .bind(expected as i64 + 1)
    .bind(r.id.clone())
    .bind(expected as i64)
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::RevisionMismatch);
    }
    tx.record_change(Resource::Router, &r.id, Operation::Update);
    Ok(())
}

/// One more revision of the router (its interfaces, gateway or routes changed).
pub async fn bump_router(tx: &mut Tx, id: &str) -> Result<()> {
    sqlx::query("UPDATE routers SET revision_number = revision_number + 1, updated_at = $1 WHERE id = $2")
        .bind(crate::now_timestamp())
        .bind(id.to_string())
        .execute(tx.conn())
        .await?;
    tx.record_change(Resource::Router, id, Operation::Update);
    Ok(())
}

/// The router's gateway port and whether it SNATs.
pub async fn router_gateway(c: &mut AnyConnection, id: &str) -> Result<(Option<String>, bool)> {
    let row = sqlx::query("SELECT gw_port_id, enable_snat FROM routers WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| StoreError::not_found("router", id))?;
    Ok((opt_text(&row, "gw_port_id")?, boolean(&row, "enable_snat")?))
}

pub async fn set_router_gateway(tx: &mut Tx, id: &str, gw_port_id: Option<&str>, enable_snat: bool) -> Result<()> {
    // The gateway port's image says whether the router SNATs.
    if let Some(port) = gw_port_id {
        tx.touch(neutrino_domain::topology::ObjectKind::Port, port);
    }
    sqlx::query("UPDATE routers SET gw_port_id = $1, enable_snat = $2 WHERE id = $3")
        .bind(gw_port_id.map(str::to_string))
        .bind(enable_snat)
        .bind(id.to_string())
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Replace the router's extra routes.
pub async fn set_router_routes(tx: &mut Tx, id: &str, routes: &[RouterRoute]) -> Result<()> {
    sqlx::query("DELETE FROM router_routes WHERE router_id = $1").bind(id.to_string()).execute(tx.conn()).await?;
    for r in routes {
        sqlx::query("INSERT INTO router_routes (router_id, destination, nexthop) VALUES ($1, $2, $3)")
            .bind(id.to_string())
            .bind(r.destination.clone())
            .bind(r.nexthop.clone())
            .execute(tx.conn())
            .await?;
    }
    Ok(())
}

/// The ids of the router's interface ports (not its gateway), oldest first.
pub async fn router_interface_ports(c: &mut AnyConnection, router_id: &str) -> Result<Vec<String>> {
    let owners = crate::rows::quoted_list(&ROUTER_INTERFACE_OWNERS);
    let rows = sqlx::query(&format!(
        "SELECT id FROM ports WHERE device_id = $1 AND device_owner IN ({owners}) ORDER BY created_at, id"
    ))
    .bind(router_id.to_string())
    .fetch_all(&mut *c)
    .await?;
    rows.iter().map(|r| text(r, "id")).collect()
}

/// The ports of `device_id` owned by `device_owner`, by id.
pub async fn ports_of_device(c: &mut AnyConnection, device_id: &str, device_owner: &str) -> Result<Vec<String>> {
    let rows = sqlx::query("SELECT id FROM ports WHERE device_id = $1 AND device_owner = $2 ORDER BY id")
        .bind(device_id.to_string())
        .bind(device_owner.to_string())
        .fetch_all(&mut *c)
        .await?;
    rows.iter().map(|r| text(r, "id")).collect()
}

/// Whether `host` holds any router's centralized SNAT port.
pub async fn host_has_snat_ports(c: &mut AnyConnection, host: &str) -> Result<bool> {
    let row = sqlx::query("SELECT id FROM ports WHERE device_owner = $1 AND host_id = $2 LIMIT 1")
        .bind(neutrino_domain::routers::DEVICE_OWNER_ROUTER_SNAT.to_string())
        .bind(host.to_string())
        .fetch_optional(&mut *c)
        .await?;
    Ok(row.is_some())
}

/// The routers that have a gateway, or centralized SNAT ports, by id.
pub async fn routers_with_gateway_or_snat_ports(c: &mut AnyConnection) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT id FROM routers WHERE gw_port_id IS NOT NULL UNION          SELECT device_id AS id FROM ports WHERE device_owner = $1 ORDER BY id",
    )
    .bind(neutrino_domain::routers::DEVICE_OWNER_ROUTER_SNAT.to_string())
    .fetch_all(&mut *c)
    .await?;
    rows.iter().map(|r| text(r, "id")).collect()
}

/// The routers with an interface on `subnet_id` (each once).
pub async fn routers_on_subnet(c: &mut AnyConnection, subnet_id: &str) -> Result<Vec<String>> {
    let owners = crate::rows::quoted_list(&ROUTER_INTERFACE_OWNERS);
    let rows = sqlx::query(&format!(
        "SELECT DISTINCT p.device_id FROM ports p JOIN ip_allocations a ON a.port_id = p.id \
         WHERE a.subnet_id = $1 AND p.device_owner IN ({owners}) ORDER BY p.device_id"
    ))
    .bind(subnet_id.to_string())
    .fetch_all(&mut *c)
    .await?;
    rows.iter().map(|r| text(r, "device_id")).collect()
}

/// The router port (interface or gateway) that holds `address` on `subnet_id`, if any.
pub async fn router_port_holding(c: &mut AnyConnection, subnet_id: &str, address: &str) -> Result<Option<String>> {
    let row = sqlx::query(
        "SELECT p.id, p.device_owner FROM ports p JOIN ip_allocations a ON a.port_id = p.id          WHERE a.subnet_id = $1 AND a.ip_address = $2",
    )
    .bind(subnet_id.to_string())
    .bind(address.to_string())
    .fetch_optional(&mut *c)
    .await?;
    match row {
        Some(r) if neutrino_domain::routers::is_router_owned(&text(&r, "device_owner")?) => Ok(Some(text(&r, "id")?)),
        _ => Ok(None),
    }
}

/// The `device_id` of the port holding a host's own external address for a router's SNAT.
pub fn snat_device_id(host: &str, router_id: &str) -> String {
    format!("{host}/{router_id}")
}

/// The port holding `host`'s own address for `router_id`'s SNAT on `network_id`, if any.
pub async fn host_gateway_port(
    c: &mut AnyConnection,
    network_id: &str,
    host: &str,
    router_id: &str,
) -> Result<Option<String>> {
    let row = sqlx::query("SELECT id FROM ports WHERE network_id = $1 AND device_id = $2 AND device_owner = $3")
        .bind(network_id.to_string())
        .bind(snat_device_id(host, router_id))
        .bind(neutrino_domain::routers::DEVICE_OWNER_AGENT_GW.to_string())
        .fetch_optional(&mut *c)
        .await?;
    row.map(|r| text(&r, "id")).transpose()
}

/// Delete the hosts' SNAT ports of a router (its gateway goes or changes network).
pub async fn delete_host_gateway_ports(tx: &mut Tx, router_id: &str) -> Result<()> {
    let rows = sqlx::query("SELECT id FROM ports WHERE device_owner = $1 AND device_id LIKE $2")
        .bind(neutrino_domain::routers::DEVICE_OWNER_AGENT_GW.to_string())
        .bind(format!("%/{router_id}"))
        .fetch_all(tx.conn())
        .await?;
    for r in rows {
        crate::ports::delete_port(tx, &text(&r, "id")?).await?;
    }
    Ok(())
}

/// Delete the router row, its routes and tags (its ports are gone already).
pub async fn delete_router(tx: &mut Tx, id: &str) -> Result<()> {
    for stmt in [
        "DELETE FROM router_routes WHERE router_id = $1",
        "DELETE FROM tags WHERE resource_type = 'routers' AND resource_id = $1",
        "DELETE FROM routers WHERE id = $1",
    ] {
        sqlx::query(stmt).bind(id.to_string()).execute(tx.conn()).await?;
    }
    tx.record_change(Resource::Router, id, Operation::Delete);
    Ok(())
}

/// Whether `port_id` is a router's gateway port.
pub async fn is_gateway_port(c: &mut AnyConnection, port_id: &str) -> Result<bool> {
    let row = sqlx::query("SELECT device_owner FROM ports WHERE id = $1")
        .bind(port_id.to_string())
        .fetch_optional(&mut *c)
        .await?;
    Ok(match row {
        Some(r) => text(&r, "device_owner")? == DEVICE_OWNER_ROUTER_GW,
        None => false,
    })
}
