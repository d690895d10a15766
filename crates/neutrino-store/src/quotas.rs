//! Quota limits (overrides in `quotas`, defaults carried by the [`crate::Store`]) and their
//! enforcement inside each create's transaction.
//!
//! Enforcement counts the project's rows and refuses the insert that would go past the limit.
//! To make "count, then insert" atomic, creates of one resource for one project are
//! serialized while the limit is finite: on SQLite every write transaction already holds the
//! database's write lock, on PostgreSQL (READ COMMITTED, many servers) the transaction takes
//! `pg_advisory_xact_lock` on a key of (resource, project) before counting. The lock is held to
//! the commit, and a transaction's rows are visible before its locks are released, so the next
//! creator's count includes them. A bulk create counts its own earlier items the same way.

use crate::{Backend, Result, Tx};
use neutrino_domain::quotas::{check_more, check_new_limit, QuotaDefaults, QuotaResource};
use sqlx::{AnyConnection, Row};
use std::collections::BTreeMap;

/// The table whose rows count against a resource's quota (`None`: nothing to count yet).
fn counted_table(resource: QuotaResource) -> Option<&'static str> {
    match resource {
        QuotaResource::Network => Some("networks"),
        QuotaResource::Subnet => Some("subnets"),
        QuotaResource::Port => Some("ports"),
        QuotaResource::Subnetpool => Some("subnetpools"),
        QuotaResource::SecurityGroup => Some("security_groups"),
        QuotaResource::SecurityGroupRule => Some("security_group_rules"),
        QuotaResource::RbacPolicy => Some("rbac_policies"),
        QuotaResource::Router => Some("routers"),
        QuotaResource::Floatingip => Some("floatingips"),
        // Neutron counts it as 0: the limit applies to each router's routes.
        QuotaResource::RouterRoute => None,
    }
}

/// How many of `resource` the project owns.
pub async fn quota_usage(c: &mut AnyConnection, project_id: &str, resource: QuotaResource) -> Result<i64> {
    let Some(table) = counted_table(resource) else { return Ok(0) };
    let row = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table} WHERE project_id = $1"))
        .bind(project_id.to_string())
        .fetch_one(&mut *c)
        .await?;
    Ok(row.try_get::<i64, _>("n")?)
}

/// The project's overrides, by resource.
async fn overrides(c: &mut AnyConnection, project_id: &str) -> Result<BTreeMap<QuotaResource, i64>> {
    let rows = sqlx::query("SELECT resource, hard_limit FROM quotas WHERE project_id = $1")
        .bind(project_id.to_string())
        .fetch_all(&mut *c)
        .await?;
    let mut out = BTreeMap::new();
    for r in &rows {
        // A row of a resource this version does not know is kept but not shown.
        if let Some(resource) = QuotaResource::from_name(&r.try_get::<String, _>("resource")?) {
            out.insert(resource, r.try_get::<i64, _>("hard_limit")?);
        }
    }
    Ok(out)
}

/// The effective limits of a project: its overrides, else the defaults.
pub async fn project_limits(
    c: &mut AnyConnection,
    defaults: &QuotaDefaults,
    project_id: &str,
) -> Result<BTreeMap<QuotaResource, i64>> {
    Ok(defaults.effective(&overrides(c, project_id).await?))
}

/// The effective limits of every project with at least one override, by project id.
pub async fn projects_with_limits(
    c: &mut AnyConnection,
    defaults: &QuotaDefaults,
) -> Result<Vec<(String, BTreeMap<QuotaResource, i64>)>> {
    let rows = sqlx::query("SELECT project_id, resource, hard_limit FROM quotas ORDER BY project_id")
        .fetch_all(&mut *c)
        .await?;
    let mut by_project: BTreeMap<String, BTreeMap<QuotaResource, i64>> = BTreeMap::new();
    for r in &rows {
        let overrides = by_project.entry(r.try_get("project_id")?).or_default();
        if let Some(resource) = QuotaResource::from_name(&r.try_get::<String, _>("resource")?) {
            overrides.insert(resource, r.try_get::<i64, _>("hard_limit")?);
        }
    }
    Ok(by_project.into_iter().map(|(p, o)| (p, defaults.effective(&o))).collect())
}

/// Set some of a project's limits. Unless `force`, a limit below the current usage is refused
/// (checked under the same lock creates take, so no create slips in between).
pub async fn set_project_limits(
    tx: &mut Tx,
    project_id: &str,
    limits: &[(QuotaResource, i64)],
    force: bool,
) -> Result<()> {
    for (resource, limit) in limits {
        if !force {
            lock_quota(tx, *resource, project_id).await?;
            let used = quota_usage(tx.conn(), project_id, *resource).await?;
            check_new_limit(*resource, *limit, used)?;
        }
        sqlx::query(
            "INSERT INTO quotas (project_id, resource, hard_limit) VALUES ($1, $2, $3) \
             ON CONFLICT (project_id, resource) DO UPDATE SET hard_limit = excluded.hard_limit",
        )
        .bind(project_id.to_string())
        .bind(resource.name())
        .bind(*limit)
        .execute(tx.conn())
        .await?;
    }
    Ok(())
}

/// Back to the defaults. `false` when the project had no override.
pub async fn delete_project_limits(tx: &mut Tx, project_id: &str) -> Result<bool> {
    let done =
        sqlx::query("DELETE FROM quotas WHERE project_id = $1").bind(project_id.to_string()).execute(tx.conn()).await?;
    Ok(done.rows_affected() > 0)
}

/// The project's effective limit of one resource (-1: unlimited).
pub async fn project_limit(tx: &mut Tx, resource: QuotaResource, project_id: &str) -> Result<i64> {
    let defaults = tx.quota_defaults.clone();
    Ok(project_limits(tx.conn(), &defaults, project_id).await?[&resource])
}

/// Refuse creating one more `resource` for `project_id` when the project is at its limit.
/// Called by every store insert of a counted resource, before its row is written.
pub async fn enforce_quota(tx: &mut Tx, resource: QuotaResource, project_id: &str) -> Result<()> {
    enforce_quota_for(tx, resource, project_id, 1).await
}

/// Refuse creating `more` of `resource` for `project_id` when they do not fit its limit.
pub async fn enforce_quota_for(tx: &mut Tx, resource: QuotaResource, project_id: &str, more: i64) -> Result<()> {
    let defaults = tx.quota_defaults.clone();
    if project_limits(tx.conn(), &defaults, project_id).await?[&resource] < 0 {
        return Ok(());
    }
    // Read the limit again under the lock, so a concurrent change of it is seen.
    lock_quota(tx, resource, project_id).await?;
    let limit = project_limits(tx.conn(), &defaults, project_id).await?[&resource];
    if limit < 0 {
        return Ok(());
    }
    let used = quota_usage(tx.conn(), project_id, resource).await?;
    Ok(check_more(resource, limit, used, more)?)
}

/// Serialize, until this transaction ends, everything that counts `resource` for `project_id`.
/// SQLite transactions already are serialized (the write lock is taken at `BEGIN IMMEDIATE`).
async fn lock_quota(tx: &mut Tx, resource: QuotaResource, project_id: &str) -> Result<()> {
    if tx.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(quota_lock_key(resource, project_id))
            .execute(tx.conn())
            .await?;
    }
    Ok(())
}

/// The advisory lock key of (resource, project): a 64-bit FNV-1a hash, stable across servers
/// and versions. The one-key lock space is separate from the two-key space segment allocation
/// uses; the schema migration's fixed key is avoided.
pub fn quota_lock_key(resource: QuotaResource, project_id: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"quota\0".iter().chain(resource.name().as_bytes()).chain(b"\0").chain(project_id.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    match hash as i64 {
        crate::MIGRATION_LOCK_KEY => hash.wrapping_add(1) as i64,
        key => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_stable_and_distinct_per_resource_and_project() {
        let a = quota_lock_key(QuotaResource::Network, "p1");
        assert_eq!(a, quota_lock_key(QuotaResource::Network, "p1"));
        assert_ne!(a, quota_lock_key(QuotaResource::Port, "p1"));
        assert_ne!(a, quota_lock_key(QuotaResource::Network, "p2"));
        // The separator keeps ("network", "x") and ("networkx", "") apart.
        assert_ne!(quota_lock_key(QuotaResource::Port, "1"), quota_lock_key(QuotaResource::Port, "10"));
    }

    #[tokio::test]
    async fn creates_past_the_limit_are_refused_and_overrides_replace_defaults() {
        let mut store = crate::Store::connect("sqlite://", 1).await.unwrap();
        let mut defaults = QuotaDefaults::default();
        defaults.own.insert(QuotaResource::Network, 1);
        store.set_quota_defaults(defaults);
        let mut tx = store.begin().await.unwrap();
        enforce_quota(&mut tx, QuotaResource::Network, "p").await.unwrap();
        sqlx::query(
            "INSERT INTO networks (id, project_id, name, description, admin_state_up, status, shared, \
             router_external, port_security_enabled, mtu, network_type, created_at, updated_at, revision_number) \
             VALUES ('n1', 'p', '', '', 1, 'ACTIVE', 0, 0, 1, 1450, 'vxlan', '', '', 1)",
        )
        .execute(tx.conn())
        .await
        .unwrap();
        let e = enforce_quota(&mut tx, QuotaResource::Network, "p").await.unwrap_err();
        assert!(e.to_string().contains("Quota exceeded for resources: ['network']."), "{e}");
        enforce_quota(&mut tx, QuotaResource::Network, "other").await.unwrap();
        assert!(set_project_limits(&mut tx, "p", &[(QuotaResource::Network, 0)], false).await.is_err());
        set_project_limits(&mut tx, "p", &[(QuotaResource::Network, 2)], false).await.unwrap();
        enforce_quota(&mut tx, QuotaResource::Network, "p").await.unwrap();
        let listed = projects_with_limits(tx.conn(), store.quota_defaults()).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].1[&QuotaResource::Network], 2);
        assert!(delete_project_limits(&mut tx, "p").await.unwrap());
        assert!(!delete_project_limits(&mut tx, "p").await.unwrap());
    }
}
