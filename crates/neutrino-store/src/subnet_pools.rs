//! Address scopes and subnet pools.

use crate::filters::{col, Column, ColumnType as T, Filter};
use crate::rows::{boolean, int, json, opt_int, opt_text, text, Page};
use crate::visibility::Visibility;
use crate::{Result, StoreError, Tx};
use ipnet::IpNet;
use neutrino_api::resources::{AddressScope, SubnetPool};
use neutrino_domain::changes::{Operation, Resource};
use neutrino_domain::subnet_pools::{any_overlap, PoolSpec};
use neutrino_domain::DomainError;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;

const SCOPE_COLUMNS: &[Column] = &[
    col("id", "id", T::Text),
    col("name", "name", T::Text),
    col("project_id", "project_id", T::Text),
    col("tenant_id", "project_id", T::Text),
    col("ip_version", "ip_version", T::Int),
    col("shared", "shared", T::Bool),
];

const POOL_COLUMNS: &[Column] = &[
    col("id", "id", T::Text),
    col("name", "name", T::Text),
    col("description", "description", T::Text),
    col("project_id", "project_id", T::Text),
    col("tenant_id", "project_id", T::Text),
    col("ip_version", "ip_version", T::Int),
    col("address_scope_id", "address_scope_id", T::NullableText),
    col("is_default", "is_default", T::Bool),
    col("shared", "shared", T::Bool),
    col("default_prefixlen", "default_prefixlen", T::Int),
    col("min_prefixlen", "min_prefixlen", T::Int),
    col("max_prefixlen", "max_prefixlen", T::Int),
    col("default_quota", "default_quota", T::NullableInt),
    col("revision_number", "revision_number", T::Int),
];

const SCOPE_SELECT: &str = "SELECT id, project_id, name, ip_version, shared FROM address_scopes";
const POOL_SELECT: &str =
    "SELECT id, project_id, name, description, ip_version, prefixes, min_prefixlen, max_prefixlen, \
    default_prefixlen, address_scope_id, is_default, shared, default_quota, created_at, updated_at, revision_number \
    FROM subnetpools";

fn decode_scope(row: &AnyRow) -> Result<AddressScope> {
    let project_id = text(row, "project_id")?;
    Ok(AddressScope {
        id: text(row, "id")?,
        name: text(row, "name")?,
        tenant_id: project_id.clone(),
        project_id,
        shared: boolean(row, "shared")?,
        ip_version: int(row, "ip_version")? as u8,
    })
}

fn decode_pool(row: &AnyRow) -> Result<SubnetPool> {
    let project_id = text(row, "project_id")?;
    Ok(SubnetPool {
        id: text(row, "id")?,
        name: text(row, "name")?,
        tenant_id: project_id.clone(),
        project_id,
        prefixes: json(row, "prefixes")?,
        default_prefixlen: int(row, "default_prefixlen")?.to_string(),
        min_prefixlen: int(row, "min_prefixlen")?.to_string(),
        max_prefixlen: int(row, "max_prefixlen")?.to_string(),
        ip_version: int(row, "ip_version")? as u8,
        address_scope_id: opt_text(row, "address_scope_id")?,
        is_default: boolean(row, "is_default")?,
        shared: boolean(row, "shared")?,
        default_quota: opt_int(row, "default_quota")?.map(|q| q as u64),
        description: text(row, "description")?,
        tags: Vec::new(),
        created_at: text(row, "created_at")?,
        updated_at: text(row, "updated_at")?,
        revision_number: int(row, "revision_number")? as u64,
    })
}

/// The validated spec of a stored pool.
pub fn pool_spec(pool: &SubnetPool) -> PoolSpec {
    PoolSpec {
        ip_version: pool.ip_version,
        prefixes: pool.prefixes.iter().filter_map(|p| p.parse().ok()).collect(),
        min_prefixlen: pool.min_prefixlen.parse().unwrap_or(0),
        max_prefixlen: pool.max_prefixlen.parse().unwrap_or(0),
        default_prefixlen: pool.default_prefixlen.parse().unwrap_or(0),
    }
}

pub async fn insert_scope(tx: &mut Tx, s: &AddressScope) -> Result<()> {
    sqlx::query("INSERT INTO address_scopes (id, project_id, name, ip_version, shared) VALUES ($1, $2, $3, $4, $5)")
        .bind(s.id.clone())
        .bind(s.project_id.clone())
        .bind(s.name.clone())
        .bind(s.ip_version as i64)
        .bind(s.shared)
        .execute(tx.conn())
        .await?;
    tx.record_change(Resource::AddressScope, &s.id, Operation::Create);
    Ok(())
}

pub async fn get_scope(c: &mut AnyConnection, id: &str) -> Result<AddressScope> {
    let row = sqlx::query(&format!("{SCOPE_SELECT} WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| StoreError::not_found("address_scope", id))?;
    decode_scope(&row)
}

pub async fn list_scopes(
    c: &mut AnyConnection,
    filters: &[Filter],
    page: &Page,
    visibility: &Visibility,
) -> Result<Vec<AddressScope>> {
    let listed = crate::visibility::Listed { select: SCOPE_SELECT, table: "address_scopes", columns: SCOPE_COLUMNS };
    let rows = crate::visibility::list_rows(c, listed, filters, page, visibility, |_, _| Ok(false)).await?;
    rows.iter().map(decode_scope).collect()
}

pub async fn update_scope(tx: &mut Tx, s: &AddressScope) -> Result<()> {
    sqlx::query("UPDATE address_scopes SET name = $1, shared = $2 WHERE id = $3")
        .bind(s.name.clone())
        .bind(s.shared)
        .bind(s.id.clone())
        .execute(tx.conn())
        .await?;
    tx.record_change(Resource::AddressScope, &s.id, Operation::Update);
    Ok(())
}

pub async fn delete_scope(tx: &mut Tx, id: &str) -> Result<()> {
    get_scope(tx.conn(), id).await?;
    if tx.any_row("SELECT id FROM subnetpools WHERE address_scope_id = $1 LIMIT 1", id).await? {
        return Err(DomainError::conflict(
            "AddressScopeInUse",
            format!("Unable to complete operation on address scope {id}. There are one or more subnet pools in use on the address scope"),
        )
        .into());
    }
    sqlx::query("DELETE FROM address_scopes WHERE id = $1").bind(id.to_string()).execute(tx.conn()).await?;
    tx.record_change(Resource::AddressScope, id, Operation::Delete);
    Ok(())
}

pub async fn get_pool(c: &mut AnyConnection, id: &str) -> Result<SubnetPool> {
    let row = sqlx::query(&format!("{POOL_SELECT} WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| StoreError::not_found("subnetpool", id))?;
    let mut pool = decode_pool(&row)?;
    pool.tags = crate::tags::tags_of(c, "subnetpools", id).await?;
    Ok(pool)
}

pub async fn list_pools(
    c: &mut AnyConnection,
    filters: &[Filter],
    page: &Page,
    visibility: &Visibility,
) -> Result<Vec<SubnetPool>> {
    let listed = crate::visibility::Listed { select: POOL_SELECT, table: "subnetpools", columns: POOL_COLUMNS };
    let rows =
        crate::visibility::list_rows(c, listed, filters, page, visibility, crate::tags::tag_filter("subnetpools"))
            .await?;
    let mut tags = crate::tags::tags_by_id(c, "subnetpools").await?;
    rows.iter()
        .map(|r| {
            let mut p = decode_pool(r)?;
            p.tags = tags.remove(&p.id).unwrap_or_default();
            Ok(p)
        })
        .collect()
}

/// The default pool of an IP version, if one is set.
pub async fn default_pool(c: &mut AnyConnection, ip_version: u8) -> Result<Option<SubnetPool>> {
    let row = sqlx::query(&format!("{POOL_SELECT} WHERE ip_version = $1 AND is_default"))
        .bind(ip_version as i64)
        .fetch_optional(&mut *c)
        .await?;
    row.as_ref().map(decode_pool).transpose()
}

/// Pools of one address scope must not share address space.
async fn check_scope(tx: &mut Tx, pool: &SubnetPool) -> Result<()> {
    let Some(scope_id) = &pool.address_scope_id else { return Ok(()) };
    let scope = get_scope(tx.conn(), scope_id).await?;
    if scope.ip_version != pool.ip_version {
        return Err(DomainError::bad_request(
            "IllegalSubnetPoolIpVersionAssociationToAddressScope",
            format!("Illegal subnetpool association: subnetpool {} cannot associate with address scope {scope_id} because subnetpool ip_version is not {}.", pool.id, scope.ip_version),
        )
        .into());
    }
    let mine: Vec<IpNet> = pool.prefixes.iter().filter_map(|p| p.parse().ok()).collect();
    let rows = sqlx::query("SELECT prefixes FROM subnetpools WHERE address_scope_id = $1 AND id <> $2")
        .bind(scope_id.clone())
        .bind(pool.id.clone())
        .fetch_all(tx.conn())
        .await?;
    for r in &rows {
        let theirs: Vec<String> = json(r, "prefixes")?;
        let theirs: Vec<IpNet> = theirs.iter().filter_map(|p| p.parse().ok()).collect();
        if any_overlap(&mine, &theirs) {
            return Err(DomainError::conflict(
                "AddressScopePrefixConflict",
                "Failed to associate address scope: subnetpools within an address scope must have unique prefixes.",
            )
            .into());
        }
    }
    Ok(())
}

fn default_conflict(e: StoreError) -> StoreError {
    if e.is_unique_violation() {
        return DomainError::invalid(
            "A default subnetpool for this IP family has already been set. Only one default may exist per IP family",
        )
        .into();
    }
    e
}

pub async fn insert_pool(tx: &mut Tx, p: &SubnetPool) -> Result<()> {
    check_scope(tx, p).await?;
    crate::enforce_quota(tx, neutrino_domain::quotas::QuotaResource::Subnetpool, &p.project_id).await?;
    sqlx::query(
        "INSERT INTO subnetpools (id, project_id, name, description, ip_version, prefixes, min_prefixlen, max_prefixlen, \
         default_prefixlen, address_scope_id, is_default, shared, created_at, updated_at, revision_number, \
         default_quota) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(p.id.clone())
    .bind(p.project_id.clone())
    .bind(p.name.clone())
    .bind(p.description.clone())
    .bind(p.ip_version as i64)
    .bind(serde_json::to_string(&p.prefixes)?)
    .bind(p.min_prefixlen.parse::<i64>().unwrap_or(0))
    .bind(p.max_prefixlen.parse::<i64>().unwrap_or(0))
    .bind(p.default_prefixlen.parse::<i64>().unwrap_or(0))
    .bind(p.address_scope_id.clone())
    .bind(p.is_default)
    .bind(p.shared)
    .bind(p.created_at.clone())
    .bind(p.updated_at.clone())
    .bind(p.revision_number as i64)
    .bind(p.default_quota.map(|q| q.min(i64::MAX as u64) as i64))
    .execute(tx.conn())
    .await
    .map_err(|e| default_conflict(e.into()))?;
    tx.record_change(Resource::SubnetPool, &p.id, Operation::Create);
    Ok(())
}

/// Store an updated pool (revision compare-and-swap).
pub async fn update_pool(tx: &mut Tx, p: &SubnetPool, expected_revision: u64) -> Result<()> {
    check_scope(tx, p).await?;
    let done = sqlx::query(
        "UPDATE subnetpools SET name = $1, description = $2, prefixes = $3, min_prefixlen = $4, max_prefixlen = $5, \
         default_prefixlen = $6, address_scope_id = $7, is_default = $8, updated_at = $9, default_quota = $12, \
         revision_number = revision_number + 1 WHERE id = $10 AND revision_number = $11",
    )
    .bind(p.name.clone())
    .bind(p.description.clone())
    .bind(serde_json::to_string(&p.prefixes)?)
    .bind(p.min_prefixlen.parse::<i64>().unwrap_or(0))
    .bind(p.max_prefixlen.parse::<i64>().unwrap_or(0))
    .bind(p.default_prefixlen.parse::<i64>().unwrap_or(0))
    .bind(p.address_scope_id.clone())
    .bind(p.is_default)
    .bind(p.updated_at.clone())
    .bind(p.id.clone())
    .bind(expected_revision as i64)
    .bind(p.default_quota.map(|q| q.min(i64::MAX as u64) as i64))
    .execute(tx.conn())
    .await
    .map_err(|e| default_conflict(e.into()))?;
    tx.updated(done.rows_affected(), Resource::SubnetPool, &p.id)
}

pub async fn delete_pool(tx: &mut Tx, id: &str) -> Result<()> {
    get_pool(tx.conn(), id).await?;
    if tx.any_row("SELECT id FROM subnets WHERE subnetpool_id = $1 LIMIT 1", id).await? {
        return Err(DomainError::bad_request(
            "SubnetPoolDeleteError",
            "Unable to delete subnet pool: Subnet pool has existing allocations.",
        )
        .into());
    }
    crate::tags::clear_tags(tx, "subnetpools", id).await?;
    sqlx::query("DELETE FROM subnetpools WHERE id = $1").bind(id.to_string()).execute(tx.conn()).await?;
    tx.record_change(Resource::SubnetPool, id, Operation::Delete);
    Ok(())
}

/// What a pool has handed out, locked for the next allocation.
pub struct PoolAllocations {
    pub pool: SubnetPool,
    /// Every subnet taken from it.
    pub used: Vec<IpNet>,
    /// Those of them the allocating project holds (for the pool's `default_quota`).
    pub by_project: Vec<IpNet>,
}

/// Lock the pool for allocation (PostgreSQL row lock; SQLite already has one writer) and
/// return it with the subnets already taken from it. Two subnets allocated at once from one
/// pool are thereby handed out one after the other, never the same prefix twice, and a
/// project's quota of the pool is counted once.
pub async fn lock_pool_for_allocation(tx: &mut Tx, id: &str, project_id: &str) -> Result<PoolAllocations> {
    sqlx::query("UPDATE subnetpools SET revision_number = revision_number WHERE id = $1")
        .bind(id.to_string())
        .execute(tx.conn())
        .await?;
    let pool = get_pool(tx.conn(), id).await?;
    let rows = sqlx::query("SELECT cidr, project_id FROM subnets WHERE subnetpool_id = $1")
        .bind(id.to_string())
        .fetch_all(tx.conn())
        .await?;
    let (mut used, mut by_project) = (Vec::new(), Vec::new());
    for r in &rows {
        let Ok(cidr) = text(r, "cidr")?.parse::<IpNet>() else { continue };
        if text(r, "project_id")? == project_id {
            by_project.push(cidr);
        }
        used.push(cidr);
    }
    Ok(PoolAllocations { pool, used, by_project })
}
