//! Network segments and their allocations.
//!
//! Every segment that holds an id (VLAN tag, tunnel id, or a flat physical network) has a row
//! in `segment_allocations`, whose primary key makes double allocation impossible on either
//! database. Tenant ids come from the `network_segment_ranges` a project may use.

use crate::filters::{col, Column, ColumnType as T, Filter};
use crate::rows::{int, opt_int, opt_text, text, Page};
use crate::visibility::Visibility;
use crate::{now_timestamp, Result, StoreError, Tx};
use neutrino_api::resources::Segment;
use neutrino_domain::changes::{Operation, Resource};
use neutrino_domain::segments::{no_tenant_network, segment_in_use, SegmentPlan, FLAT, LOCAL};
use neutrino_domain::DomainError;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

const COLUMNS: &[Column] = &[
    col("id", "id", T::Text),
    col("network_id", "network_id", T::Text),
    col("name", "name", T::NullableText),
    col("description", "description", T::NullableText),
    col("network_type", "network_type", T::Text),
    col("physical_network", "physical_network", T::NullableText),
    col("segmentation_id", "segmentation_id", T::NullableInt),
    col("revision_number", "revision_number", T::Int),
    col("created_at", "created_at", T::Text),
    col("updated_at", "updated_at", T::Text),
];

const SELECT: &str = "SELECT id, network_id, segment_index, network_type, physical_network, segmentation_id, name, \
    description, created_at, updated_at, revision_number FROM network_segments";

fn decode(row: &AnyRow) -> Result<Segment> {
    Ok(Segment {
        id: text(row, "id")?,
        network_id: text(row, "network_id")?,
        name: opt_text(row, "name")?,
        description: opt_text(row, "description")?,
        physical_network: opt_text(row, "physical_network")?,
        network_type: text(row, "network_type")?,
        segmentation_id: opt_int(row, "segmentation_id")?.map(|v| v as u32),
        created_at: text(row, "created_at")?,
        updated_at: text(row, "updated_at")?,
        revision_number: int(row, "revision_number")? as u64,
    })
}

/// A network's segments, in order.
pub async fn network_segments(c: &mut AnyConnection, network_id: &str) -> Result<Vec<Segment>> {
    let rows = sqlx::query(&format!("{SELECT} WHERE network_id = $1 ORDER BY segment_index"))
        .bind(network_id.to_string())
        .fetch_all(&mut *c)
        .await?;
    rows.iter().map(decode).collect()
}

pub async fn get_segment(c: &mut AnyConnection, id: &str) -> Result<Segment> {
    let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| StoreError::not_found("segment", id))?;
    decode(&row)
}

pub async fn list_segments(
    c: &mut AnyConnection,
    filters: &[Filter],
    page: &Page,
    visibility: &Visibility,
) -> Result<Vec<Segment>> {
    let listed = crate::visibility::Listed { select: SELECT, table: "network_segments", columns: COLUMNS };
    let rows = crate::visibility::list_rows(c, listed, filters, page, visibility, |_, _| Ok(false)).await?;
    rows.iter().map(decode).collect()
}

/// Who asks for a segment: the network it is for and the project whose ranges apply.
pub struct SegmentOwner<'a> {
    pub network_id: &'a str,
    pub project_id: &'a str,
}

/// Give a network segments according to `plans`, numbered from after its existing ones.
/// The network row keeps its first segment's provider attributes.
pub async fn add_segments(
    tx: &mut Tx,
    owner: &SegmentOwner<'_>,
    plans: &[SegmentPlan],
    names: Option<(Option<String>, Option<String>)>,
) -> Result<Vec<Segment>> {
    let next: i64 =
        sqlx::query("SELECT COALESCE(MAX(segment_index) + 1, 0) AS n FROM network_segments WHERE network_id = $1")
            .bind(owner.network_id.to_string())
            .fetch_one(tx.conn())
            .await?
            .try_get("n")?;
    let now = now_timestamp();
    let mut out = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        let id = uuid::Uuid::new_v4().to_string();
        let (network_type, physical_network, segmentation_id) = realize(tx, owner, &id, plan).await?;
        let (name, description) = names.clone().unwrap_or_default();
        let seg = Segment {
            id,
            network_id: owner.network_id.to_string(),
            name,
            description,
            physical_network,
            network_type,
            segmentation_id,
            created_at: now.clone(),
            updated_at: now.clone(),
            revision_number: 0,
        };
        sqlx::query(
            "INSERT INTO network_segments (id, network_id, segment_index, network_type, physical_network, \
             segmentation_id, name, description, created_at, updated_at, revision_number) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0)",
        )
        .bind(seg.id.clone())
        .bind(seg.network_id.clone())
        .bind(next + i as i64)
        .bind(seg.network_type.clone())
        .bind(seg.physical_network.clone())
        .bind(seg.segmentation_id.map(|v| v as i64))
        .bind(seg.name.clone())
        .bind(seg.description.clone())
        .bind(now.clone())
        .bind(now.clone())
        .execute(tx.conn())
        .await?;
        tx.record_change(Resource::Segment, &seg.id, Operation::Create);
        out.push(seg);
    }
    mirror_first_segment(tx, owner.network_id).await?;
    Ok(out)
}

/// Copy the first segment's provider attributes onto the network row (what `provider:*`
/// filters and single-segment replies read).
async fn mirror_first_segment(tx: &mut Tx, network_id: &str) -> Result<()> {
    let first = network_segments(tx.conn(), network_id).await?.into_iter().next();
    let (t, p, s) = match first {
        Some(s) => (s.network_type, s.physical_network, s.segmentation_id.map(|v| v as i64)),
        None => (String::new(), None, None),
    };
    sqlx::query("UPDATE networks SET network_type = $1, physical_network = $2, segmentation_id = $3 WHERE id = $4")
        .bind(t)
        .bind(p)
        .bind(s)
        .bind(network_id.to_string())
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Turn a plan into a concrete segment, holding its allocation.
async fn realize(
    tx: &mut Tx,
    owner: &SegmentOwner<'_>,
    segment_id: &str,
    plan: &SegmentPlan,
) -> Result<(String, Option<String>, Option<u32>)> {
    match plan {
        SegmentPlan::Nothing { network_type } => Ok((network_type.clone(), None, None)),
        SegmentPlan::Reserve { network_type, physical_network, segmentation_id } => {
            reserve(tx, owner, segment_id, network_type, physical_network.as_deref(), *segmentation_id).await?;
            Ok((network_type.clone(), physical_network.clone(), *segmentation_id))
        }
        SegmentPlan::Allocate { network_type, physical_network } => {
            match allocate(tx, owner, segment_id, network_type, physical_network.as_deref()).await? {
                Some((physnet, id)) => Ok((network_type.clone(), physnet, Some(id))),
                None => Err(no_tenant_network().into()),
            }
        }
        SegmentPlan::Tenant { types } => {
            for t in types {
                match t.as_str() {
                    LOCAL => return Ok((LOCAL.to_string(), None, None)),
                    // Flat networks are provider networks only.
                    FLAT => continue,
                    _ => {
                        if let Some((physnet, id)) = allocate(tx, owner, segment_id, t, None).await? {
                            return Ok((t.clone(), physnet, Some(id)));
                        }
                    }
                }
            }
            Err(no_tenant_network().into())
        }
    }
}

async fn reserve(
    tx: &mut Tx,
    owner: &SegmentOwner<'_>,
    segment_id: &str,
    network_type: &str,
    physnet: Option<&str>,
    seg: Option<u32>,
) -> Result<()> {
    let held = hold(tx, owner, segment_id, network_type, physnet.unwrap_or_default(), seg.unwrap_or(0) as i64).await?;
    if !held {
        return Err(segment_in_use(network_type, physnet, seg).into());
    }
    Ok(())
}

/// Hold one id for a segment; `false` when it is already held (the primary key says so).
async fn hold(
    tx: &mut Tx,
    owner: &SegmentOwner<'_>,
    segment_id: &str,
    network_type: &str,
    physnet: &str,
    id: i64,
) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO segment_allocations (network_type, physical_network, segmentation_id, network_id, segment_id) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(network_type.to_string())
    .bind(physnet.to_string())
    .bind(id)
    .bind(owner.network_id.to_string())
    .bind(segment_id.to_string())
    .execute(tx.conn())
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The lowest `limit` free ids that start a gap in `[$1, $2]` of type `$3` on physical network
/// `$4`: the range start or an allocated id + 1, when free.
fn gap_starts(limit: u32) -> String {
    format!(
        "SELECT g.c FROM ( \
            SELECT CAST($1 AS BIGINT) AS c \
            UNION ALL \
            SELECT a.segmentation_id + 1 AS c FROM segment_allocations a \
              WHERE a.network_type = $3 AND a.physical_network = $4 \
                AND a.segmentation_id >= $1 AND a.segmentation_id < $2 \
        ) g \
        WHERE NOT EXISTS (SELECT 1 FROM segment_allocations b \
            WHERE b.network_type = $3 AND b.physical_network = $4 AND b.segmentation_id = g.c) \
        ORDER BY g.c LIMIT {limit}"
    )
}

/// The ranges a project may take ids of `network_type` from: its own first, then shared.
async fn usable_ranges(
    tx: &mut Tx,
    project_id: &str,
    network_type: &str,
    physnet: Option<&str>,
) -> Result<Vec<(String, u32, u32)>> {
    let mut sql = "SELECT physical_network, minimum, maximum FROM network_segment_ranges \
        WHERE network_type = $1 AND (shared OR project_id = $2)"
        .to_string();
    if physnet.is_some() {
        sql.push_str(" AND physical_network = $3");
    }
    sql.push_str(" ORDER BY shared, physical_network, minimum, maximum");
    let mut q = sqlx::query(&sql).bind(network_type.to_string()).bind(project_id.to_string());
    if let Some(p) = physnet {
        q = q.bind(p.to_string());
    }
    let rows = q.fetch_all(tx.conn()).await?;
    rows.iter()
        .map(|r| Ok((text(r, "physical_network")?, int(r, "minimum")? as u32, int(r, "maximum")? as u32)))
        .collect()
}

/// Take the lowest free id in the usable ranges. `(physical network, id)`, or `None` when
/// every range is full.
async fn allocate(
    tx: &mut Tx,
    owner: &SegmentOwner<'_>,
    segment_id: &str,
    network_type: &str,
    physnet: Option<&str>,
) -> Result<Option<(Option<String>, u32)>> {
    for (physnet, start, end) in usable_ranges(tx, owner.project_id, network_type, physnet).await? {
        if let Some(id) = allocate_in_range(tx, owner, segment_id, network_type, &physnet, start, end).await? {
            return Ok(Some(((!physnet.is_empty()).then_some(physnet), id)));
        }
    }
    Ok(None)
}

/// The lowest free id in `[start, end]`, taken with one `INSERT ... SELECT`. The primary key
/// settles races: a loser's insert does nothing and it asks again (each statement sees the
/// winner's commit), so the loop ends when it wins or the range is full; every turn of it
/// means another transaction took an id.
async fn allocate_in_range(
    tx: &mut Tx,
    owner: &SegmentOwner<'_>,
    segment_id: &str,
    network_type: &str,
    physnet: &str,
    start: u32,
    end: u32,
) -> Result<Option<u32>> {
    let lowest_free = gap_starts(1);
    if tx.backend() == crate::Backend::Postgres {
        if let Some(id) = claim_unlocked_candidate(tx, owner, segment_id, network_type, physnet, start, end).await? {
            return Ok(Some(id));
        }
    }
    loop {
        let insert = format!(
            "INSERT INTO segment_allocations (network_type, physical_network, segmentation_id, network_id, segment_id) \
             SELECT $3, $4, c, $5, $6 FROM ({lowest_free}) free WHERE true \
             ON CONFLICT DO NOTHING RETURNING segmentation_id"
        );
        let row = sqlx::query(&insert)
            .bind(start as i64)
            .bind(end as i64)
            .bind(network_type.to_string())
            .bind(physnet.to_string())
            .bind(owner.network_id.to_string())
            .bind(segment_id.to_string())
            .fetch_optional(tx.conn())
            .await?;
        if let Some(r) = row {
            return Ok(Some(r.try_get::<i64, _>("segmentation_id")? as u32));
        }
        let still_free = sqlx::query(&lowest_free)
            .bind(start as i64)
            .bind(end as i64)
            .bind(network_type.to_string())
            .bind(physnet.to_string())
            .fetch_optional(tx.conn())
            .await?;
        if still_free.is_none() {
            return Ok(None);
        }
    }
}

/// PostgreSQL, many servers and clients: instead of all racing for the lowest free id (each
/// loser waiting for the winner's commit), walk the lowest free ids and claim the first that no
/// other transaction is claiming (a transaction-scoped advisory lock per id, released at
/// commit), so concurrent creates take different ids without waiting. `None` when every
/// candidate is being claimed by others: the caller then waits its turn.
async fn claim_unlocked_candidate(
    tx: &mut Tx,
    owner: &SegmentOwner<'_>,
    segment_id: &str,
    network_type: &str,
    physnet: &str,
    start: u32,
    end: u32,
) -> Result<Option<u32>> {
    // Free ids: the start of each gap, then the ids that follow it, lowest first.
    let candidates = format!(
        "WITH gaps AS ({}), cand AS ( \
            SELECT DISTINCT gaps.c + k AS c FROM gaps CROSS JOIN generate_series(0, 15) AS k \
            WHERE gaps.c + k <= $2 AND NOT EXISTS (SELECT 1 FROM segment_allocations b \
                WHERE b.network_type = $3 AND b.physical_network = $4 AND b.segmentation_id = gaps.c + k) \
            ORDER BY 1 LIMIT 64 \
        ) \
        SELECT c FROM (SELECT c FROM cand ORDER BY c) ordered \
        WHERE pg_try_advisory_xact_lock(CAST($5 AS INTEGER), CAST(c - 2147483648 AS INTEGER)) LIMIT 1",
        gap_starts(16)
    );
    let lock_space = lock_space(network_type, physnet);
    for _ in 0..4 {
        let candidate = sqlx::query(&candidates)
            .bind(start as i64)
            .bind(end as i64)
            .bind(network_type.to_string())
            .bind(physnet.to_string())
            .bind(lock_space)
            .fetch_optional(tx.conn())
            .await?;
        let Some(row) = candidate else { return Ok(None) };
        let c: i64 = row.try_get("c")?;
        // Holding the id's lock, nobody else inserts it; a row committed since our snapshot
        // makes this insert do nothing, and the next query sees it.
        if hold(tx, owner, segment_id, network_type, physnet, c).await? {
            return Ok(Some(c as u32));
        }
    }
    Ok(None)
}

/// The advisory-lock key space of one (type, physical network): a stable 31-bit hash.
fn lock_space(network_type: &str, physnet: &str) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in network_type.bytes().chain([0]).chain(physnet.bytes()) {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (h & 0x7fff_ffff) as i32
}

/// `name` / `description` of a segment (`Some(None)` clears).
pub async fn update_segment(
    tx: &mut Tx,
    id: &str,
    name: Option<Option<String>>,
    description: Option<Option<String>>,
) -> Result<Segment> {
    let mut seg = get_segment(tx.conn(), id).await?;
    if let Some(n) = name {
        seg.name = n;
    }
    if let Some(d) = description {
        seg.description = d;
    }
    seg.updated_at = now_timestamp();
    let done = sqlx::query(
        "UPDATE network_segments SET name = $1, description = $2, updated_at = $3, \
         revision_number = revision_number + 1 WHERE id = $4 AND revision_number = $5",
    )
    .bind(seg.name.clone())
    .bind(seg.description.clone())
    .bind(seg.updated_at.clone())
    .bind(id.to_string())
    .bind(seg.revision_number as i64)
    .execute(tx.conn())
    .await?;
    tx.updated(done.rows_affected(), Resource::Segment, id)?;
    seg.revision_number += 1;
    Ok(seg)
}

/// Delete a segment that no port is bound to and that is not its network's last one.
pub async fn delete_segment(tx: &mut Tx, id: &str) -> Result<()> {
    let seg = get_segment(tx.conn(), id).await?;
    // Deletes of one network's segments take turns (SQLite's writers always do), so two of
    // them cannot both see "not the last one".
    tx.lock_parent("networks", &seg.network_id).await?;
    let in_use = |reason: String| {
        StoreError::Domain(DomainError::conflict(
            "SegmentInUse",
            format!("Segment '{id}' cannot be deleted: {reason}."),
        ))
    };
    if tx.any_row("SELECT 1 FROM ports WHERE segment_id = $1", id).await? {
        return Err(in_use("there are one or more ports still bound to it".into()));
    }
    if network_segments(tx.conn(), &seg.network_id).await?.len() == 1 {
        return Err(in_use(format!("it is the only segment of network {}", seg.network_id)));
    }
    for stmt in ["DELETE FROM segment_allocations WHERE segment_id = $1", "DELETE FROM network_segments WHERE id = $1"]
    {
        sqlx::query(stmt).bind(id.to_string()).execute(tx.conn()).await?;
    }
    mirror_first_segment(tx, &seg.network_id).await?;
    tx.record_change(Resource::Segment, id, Operation::Delete);
    tx.record_change(Resource::Network, &seg.network_id, Operation::Update);
    Ok(())
}
