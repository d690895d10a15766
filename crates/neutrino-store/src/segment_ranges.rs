//! `network_segment_ranges`: the tenant ranges segment ids are allocated from. The ranges of
//! the configuration are kept as `default` rows (replaced at start-up when the configuration
//! changed); admins add shared or per-project ranges at run time.

use crate::filters::{col, Column, ColumnType as T, Filter};
use crate::rows::{boolean, int, opt_text, text, Page};
use crate::visibility::Visibility;
use crate::{now_timestamp, Result, StoreError, Tx};
use neutrino_api::resources::NetworkSegmentRange;
use neutrino_domain::changes::{Operation, Resource};
use neutrino_domain::segments::SegmentRange;
use neutrino_domain::DomainError;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use std::collections::BTreeMap;

const COLUMNS: &[Column] = &[
    col("id", "id", T::Text),
    col("name", "name", T::NullableText),
    col("default", "is_default", T::Bool),
    col("shared", "shared", T::Bool),
    col("project_id", "project_id", T::NullableText),
    col("tenant_id", "project_id", T::NullableText),
    col("network_type", "network_type", T::Text),
    col("physical_network", "physical_network", T::Text),
    col("minimum", "minimum", T::Int),
    col("maximum", "maximum", T::Int),
    col("revision_number", "revision_number", T::Int),
    col("created_at", "created_at", T::Text),
    col("updated_at", "updated_at", T::Text),
];

const SELECT: &str = "SELECT id, name, is_default, shared, project_id, network_type, physical_network, minimum, \
    maximum, description, created_at, updated_at, revision_number FROM network_segment_ranges";

fn decode(row: &AnyRow) -> Result<NetworkSegmentRange> {
    let project_id = opt_text(row, "project_id")?;
    Ok(NetworkSegmentRange {
        id: text(row, "id")?,
        name: opt_text(row, "name")?,
        default: boolean(row, "is_default")?,
        shared: boolean(row, "shared")?,
        tenant_id: project_id.clone(),
        project_id,
        network_type: text(row, "network_type")?,
        physical_network: text(row, "physical_network")?,
        minimum: int(row, "minimum")? as u32,
        maximum: int(row, "maximum")? as u32,
        revision_number: int(row, "revision_number")? as u64,
        created_at: text(row, "created_at")?,
        updated_at: text(row, "updated_at")?,
        available: Vec::new(),
        used: BTreeMap::new(),
        description: opt_text(row, "description")?,
        tags: Vec::new(),
    })
}

/// Fill `used` (id → project of the network holding it) and `available` (the free ids).
async fn attach_usage(c: &mut AnyConnection, r: &mut NetworkSegmentRange) -> Result<()> {
    let rows = sqlx::query(
        "SELECT a.segmentation_id, n.project_id FROM segment_allocations a JOIN networks n ON n.id = a.network_id \
         WHERE a.network_type = $1 AND a.physical_network = $2 AND a.segmentation_id >= $3 AND a.segmentation_id <= $4",
    )
    .bind(r.network_type.clone())
    .bind(r.physical_network.clone())
    .bind(r.minimum as i64)
    .bind(r.maximum as i64)
    .fetch_all(&mut *c)
    .await?;
    for row in &rows {
        r.used.insert(int(row, "segmentation_id")?.to_string(), text(row, "project_id")?);
    }
    let used: std::collections::BTreeSet<u32> = r.used.keys().filter_map(|k| k.parse().ok()).collect();
    r.available = (r.minimum..=r.maximum).filter(|v| !used.contains(v)).collect();
    Ok(())
}

pub async fn get_range(c: &mut AnyConnection, id: &str) -> Result<NetworkSegmentRange> {
    let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| StoreError::not_found("network_segment_range", id))?;
    let mut r = decode(&row)?;
    attach_usage(c, &mut r).await?;
    Ok(r)
}

pub async fn list_ranges(
    c: &mut AnyConnection,
    filters: &[Filter],
    page: &Page,
    visibility: &Visibility,
) -> Result<Vec<NetworkSegmentRange>> {
    let listed = crate::visibility::Listed { select: SELECT, table: "network_segment_ranges", columns: COLUMNS };
    let rows = crate::visibility::list_rows(c, listed, filters, page, visibility, |_, _| Ok(false)).await?;
    let mut out = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
    for r in &mut out {
        attach_usage(c, r).await?;
    }
    Ok(out)
}

/// Make the `default` ranges equal to the configured ones. Idempotent, so servers sharing a
/// database may all run it at start-up.
pub async fn sync_default_ranges(tx: &mut Tx, configured: &[SegmentRange]) -> Result<()> {
    let key = |t: &str, p: &str, a: i64, b: i64| (t.to_string(), p.to_string(), a, b);
    let wanted: std::collections::BTreeSet<_> = configured
        .iter()
        .map(|r| key(&r.network_type, r.physical_network.as_deref().unwrap_or(""), r.minimum as i64, r.maximum as i64))
        .collect();
    let rows = sqlx::query(
        "SELECT id, network_type, physical_network, minimum, maximum FROM network_segment_ranges WHERE is_default",
    )
    .fetch_all(tx.conn())
    .await?;
    let mut have = std::collections::BTreeSet::new();
    for r in &rows {
        let k = key(&text(r, "network_type")?, &text(r, "physical_network")?, int(r, "minimum")?, int(r, "maximum")?);
        if wanted.contains(&k) {
            have.insert(k);
        } else {
            sqlx::query("DELETE FROM network_segment_ranges WHERE id = $1")
                .bind(text(r, "id")?)
                .execute(tx.conn())
                .await?;
            tracing::info!(network_type = %k.0, physical_network = %k.1, minimum = k.2, maximum = k.3,
                "default segment range left the configuration; its allocations stay until released");
        }
    }
    let now = now_timestamp();
    for (t, p, a, b) in wanted.difference(&have) {
        sqlx::query(
            "INSERT INTO network_segment_ranges (id, name, is_default, shared, project_id, network_type, \
             physical_network, minimum, maximum, description, created_at, updated_at, revision_number) \
             VALUES ($1, NULL, true, true, NULL, $2, $3, $4, $5, NULL, $6, $6, 0) ON CONFLICT DO NOTHING",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(t.clone())
        .bind(p.clone())
        .bind(*a)
        .bind(*b)
        .bind(now.clone())
        .execute(tx.conn())
        .await?;
    }
    Ok(())
}

pub async fn insert_range(tx: &mut Tx, r: &NetworkSegmentRange) -> Result<()> {
    sqlx::query(
        "INSERT INTO network_segment_ranges (id, name, is_default, shared, project_id, network_type, \
         physical_network, minimum, maximum, description, created_at, updated_at, revision_number) \
         VALUES ($1, $2, false, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(r.id.clone())
    .bind(r.name.clone())
    .bind(r.shared)
    .bind(r.project_id.clone())
    .bind(r.network_type.clone())
    .bind(r.physical_network.clone())
    .bind(r.minimum as i64)
    .bind(r.maximum as i64)
    .bind(r.description.clone())
    .bind(r.created_at.clone())
    .bind(r.updated_at.clone())
    .bind(r.revision_number as i64)
    .execute(tx.conn())
    .await?;
    tx.record_change(Resource::SegmentRange, &r.id, Operation::Create);
    Ok(())
}

/// Default ranges belong to the configuration.
pub fn default_read_only(id: &str) -> StoreError {
    StoreError::Domain(DomainError::bad_request(
        "NetworkSegmentRangeDefaultReadOnly",
        format!("Network Segment Range {id} is a default segment range which could not be updated or deleted."),
    ))
}

/// A range whose ids project networks use.
pub fn range_in_use(id: &str) -> StoreError {
    StoreError::Domain(DomainError::conflict(
        "NetworkSegmentRangeReferencedByProject",
        format!("Network Segment Range {id} is referenced by one or more project networks."),
    ))
}

/// Write back an updated range (name, description, bounds), compare-and-swap on revision.
pub async fn update_range(tx: &mut Tx, r: &NetworkSegmentRange) -> Result<()> {
    if r.default {
        return Err(default_read_only(&r.id));
    }
    let done = sqlx::query(
        "UPDATE network_segment_ranges SET name = $1, description = $2, minimum = $3, maximum = $4, updated_at = $5, \
         revision_number = revision_number + 1 WHERE id = $6 AND revision_number = $7",
    )
    .bind(r.name.clone())
    .bind(r.description.clone())
    .bind(r.minimum as i64)
    .bind(r.maximum as i64)
    .bind(r.updated_at.clone())
    .bind(r.id.clone())
    .bind(r.revision_number as i64)
    .execute(tx.conn())
    .await?;
    tx.updated(done.rows_affected(), Resource::SegmentRange, &r.id)
}

/// Delete a non-default range none of whose ids is in use.
pub async fn delete_range(tx: &mut Tx, id: &str) -> Result<()> {
    let r = get_range(tx.conn(), id).await?;
    if r.default {
        return Err(default_read_only(id));
    }
    if !r.used.is_empty() {
        return Err(range_in_use(id));
    }
    sqlx::query("DELETE FROM network_segment_ranges WHERE id = $1").bind(id.to_string()).execute(tx.conn()).await?;
    tx.record_change(Resource::SegmentRange, id, Operation::Delete);
    Ok(())
}
