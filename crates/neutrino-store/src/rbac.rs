//! RBAC policies (`access_as_shared` on networks). A network's `shared` attribute is its
//! wildcard policy; the `shared` column mirrors it for fast visibility checks.

use crate::filters::{build_where, col, list_sql, Column, ColumnType as T, Filter};
use crate::rows::{text, Page};
use crate::{Result, StoreError, Tx};
use neutrino_domain::changes::{Operation, Resource};
use neutrino_domain::DomainError;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use std::collections::BTreeSet;

/// One policy, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RbacPolicy {
    pub id: String,
    pub project_id: String,
    pub tenant_id: String,
    pub object_type: String,
    pub object_id: String,
    pub action: String,
    pub target_tenant: String,
    pub target_project: String,
}

const COLUMNS: &[Column] = &[
    col("id", "id", T::Text),
    col("project_id", "project_id", T::Text),
    col("tenant_id", "project_id", T::Text),
    col("object_type", "object_type", T::Text),
    col("object_id", "object_id", T::Text),
    col("action", "action", T::Text),
    col("target_tenant", "target_project", T::Text),
    col("target_project", "target_project", T::Text),
];

const SELECT: &str = "SELECT id, project_id, object_type, object_id, action, target_project FROM rbac_policies";

fn decode(row: &AnyRow) -> Result<RbacPolicy> {
    let project_id = text(row, "project_id")?;
    let target = text(row, "target_project")?;
    Ok(RbacPolicy {
        id: text(row, "id")?,
        tenant_id: project_id.clone(),
        project_id,
        object_type: text(row, "object_type")?,
        object_id: text(row, "object_id")?,
        action: text(row, "action")?,
        target_tenant: target.clone(),
        target_project: target,
    })
}

pub async fn get_rbac_policy(c: &mut AnyConnection, id: &str) -> Result<RbacPolicy> {
    let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| StoreError::not_found("rbac_policy", id))?;
    decode(&row)
}

pub async fn list_rbac_policies(c: &mut AnyConnection, filters: &[Filter], page: &Page) -> Result<Vec<RbacPolicy>> {
    let w = build_where(COLUMNS, filters, crate::visibility::narrowed("rbac_policies", |_, _| Ok(false)))?;
    let (sql, w) = list_sql(SELECT, "rbac_policies", COLUMNS, w, page)?;
    let mut rows = w.bind(sqlx::query(&sql)).fetch_all(&mut *c).await?;
    if page.page_reverse {
        rows.reverse();
    }
    rows.iter().map(decode).collect()
}

fn duplicate() -> StoreError {
    StoreError::Domain(DomainError::conflict("DuplicateRbacPolicy", "An RBAC policy already exists with those values."))
}

pub async fn insert_rbac_policy(tx: &mut Tx, p: &RbacPolicy) -> Result<()> {
    crate::enforce_quota(tx, neutrino_domain::quotas::QuotaResource::RbacPolicy, &p.project_id).await?;
    let done = sqlx::query(
        "INSERT INTO rbac_policies (id, project_id, object_type, object_id, action, target_project) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(p.id.clone())
    .bind(p.project_id.clone())
    .bind(p.object_type.clone())
    .bind(p.object_id.clone())
    .bind(p.action.clone())
    .bind(p.target_project.clone())
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 0 {
        return Err(duplicate());
    }
    sync_shared_column(tx, &p.object_id).await?;
    tx.record_change(Resource::RbacPolicy, &p.id, Operation::Create);
    tx.record_change(Resource::Network, &p.object_id, Operation::Update);
    if p.object_type == "network" {
        tx.revise("networks", &p.object_id).await?;
    }
    Ok(())
}

/// Change a policy's target, after checking nobody loses access they depend on.
pub async fn retarget_rbac_policy(tx: &mut Tx, p: &RbacPolicy, new_target: &str) -> Result<RbacPolicy> {
    ensure_not_in_use(tx, p).await?;
    let done = sqlx::query("UPDATE rbac_policies SET target_project = $1 WHERE id = $2")
        .bind(new_target.to_string())
        .bind(p.id.clone())
        .execute(tx.conn())
        .await
        .map_err(StoreError::from);
    match done {
        Err(e) if e.is_unique_violation() => return Err(duplicate()),
        other => other?,
    };
    sync_shared_column(tx, &p.object_id).await?;
    tx.record_change(Resource::RbacPolicy, &p.id, Operation::Update);
    tx.record_change(Resource::Network, &p.object_id, Operation::Update);
    if p.object_type == "network" {
        tx.revise("networks", &p.object_id).await?;
    }
    get_rbac_policy(tx.conn(), &p.id).await
}

pub async fn delete_rbac_policy(tx: &mut Tx, p: &RbacPolicy) -> Result<()> {
    ensure_not_in_use(tx, p).await?;
    sqlx::query("DELETE FROM rbac_policies WHERE id = $1").bind(p.id.clone()).execute(tx.conn()).await?;
    sync_shared_column(tx, &p.object_id).await?;
    tx.record_change(Resource::RbacPolicy, &p.id, Operation::Delete);
    tx.record_change(Resource::Network, &p.object_id, Operation::Update);
    if p.object_type == "network" {
        tx.revise("networks", &p.object_id).await?;
    }
    Ok(())
}

/// Refuse to remove `p` while a project that would lose access to the network (not its owner,
/// not covered by another policy) has ports on it, as Neutron does.
async fn ensure_not_in_use(tx: &mut Tx, p: &RbacPolicy) -> Result<()> {
    let others = sqlx::query(
        "SELECT target_project FROM rbac_policies WHERE object_type = 'network' AND object_id = $1 \
         AND action = 'access_as_shared' AND id <> $2",
    )
    .bind(p.object_id.clone())
    .bind(p.id.clone())
    .fetch_all(tx.conn())
    .await?;
    let remaining: BTreeSet<String> = others.iter().map(|r| text(r, "target_project")).collect::<Result<_>>()?;
    if remaining.contains("*") {
        return Ok(());
    }
    let users = sqlx::query(
        "SELECT DISTINCT p.project_id FROM ports p JOIN networks n ON n.id = p.network_id \
         WHERE p.network_id = $1 AND p.project_id <> n.project_id AND p.device_owner NOT LIKE 'network:%'",
    )
    .bind(p.object_id.clone())
    .fetch_all(tx.conn())
    .await?;
    let losing = users
        .iter()
        .map(|r| text(r, "project_id"))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .any(|project| !remaining.contains(&project) && (p.target_project == "*" || p.target_project == project));
    if losing {
        return Err(StoreError::Domain(DomainError::conflict(
            "RbacPolicyInUse",
            format!(
                "RBAC policy on object {} cannot be removed because other objects depend on it.\nDetails: Callback \
                 neutron.plugins.ml2.plugin.Ml2Plugin.validate_network_rbac_policy_change failed with \"Unable to \
                 reconfigure sharing settings for network {}. Multiple tenants are using it.\"",
                p.object_id, p.object_id
            ),
        )));
    }
    Ok(())
}

/// The `shared` column is true exactly while a wildcard `access_as_shared` policy exists.
async fn sync_shared_column(tx: &mut Tx, network_id: &str) -> Result<()> {
    sqlx::query(
        "UPDATE networks SET shared = EXISTS (SELECT 1 FROM rbac_policies WHERE object_type = 'network' \
         AND object_id = $1 AND action = 'access_as_shared' AND target_project = '*') WHERE id = $1",
    )
    .bind(network_id.to_string())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// `shared` on a network: add or remove its wildcard policy (owned by the network's project).
pub async fn set_network_shared(tx: &mut Tx, network_id: &str, owner: &str, shared: bool) -> Result<()> {
    let existing = sqlx::query(&format!(
        "{SELECT} WHERE object_type = 'network' AND object_id = $1 AND action = 'access_as_shared' AND target_project = '*'"
    ))
    .bind(network_id.to_string())
    .fetch_optional(tx.conn())
    .await?;
    match (existing, shared) {
        (None, true) => {
            let p = RbacPolicy {
                id: uuid::Uuid::new_v4().to_string(),
                project_id: owner.to_string(),
                tenant_id: owner.to_string(),
                object_type: "network".into(),
                object_id: network_id.to_string(),
                action: "access_as_shared".into(),
                target_tenant: "*".into(),
                target_project: "*".into(),
            };
            insert_rbac_policy(tx, &p).await
        }
        (Some(row), false) => delete_rbac_policy(tx, &decode(&row)?).await,
        _ => Ok(()),
    }
}

/// Of `network_ids`, those shared with `project` by a policy naming it (not the wildcard).
pub async fn networks_shared_with(
    c: &mut AnyConnection,
    project: &str,
    network_ids: &[String],
) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for chunk in network_ids.chunks(500) {
        let placeholders = (2..chunk.len() + 2).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT object_id FROM rbac_policies WHERE object_type = 'network' AND action = 'access_as_shared' \
             AND target_project = $1 AND object_id IN ({placeholders})"
        );
        let mut q = sqlx::query(&sql).bind(project.to_string());
        for id in chunk {
            q = q.bind(id.clone());
        }
        for r in q.fetch_all(&mut *c).await? {
            out.insert(text(&r, "object_id")?);
        }
    }
    Ok(out)
}

/// Delete the policies of a deleted object.
pub async fn delete_object_policies(tx: &mut Tx, object_type: &str, object_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM rbac_policies WHERE object_type = $1 AND object_id = $2")
        .bind(object_type.to_string())
        .bind(object_id.to_string())
        .execute(tx.conn())
        .await?;
    Ok(())
}
