//! RBAC policies on networks: `access_as_shared` (a network's `shared` attribute is its
//! wildcard policy; the `shared` column mirrors it for fast visibility checks) and
//! `access_as_external` (the network is external while any exists: `router_external`
//! mirrors that; a network made external gets a wildcard one).

use crate::filters::{col, Column, ColumnType as T, Filter};
use crate::rows::{text, Page};
use crate::visibility::Visibility;
use crate::{Result, StoreError, Tx};
use neutrino_domain::changes::{Operation, Resource};
use neutrino_domain::DomainError;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use std::collections::BTreeSet;

/// The actions a network policy may have.
pub const NETWORK_ACTIONS: [&str; 2] = ["access_as_external", "access_as_shared"];
pub const ACCESS_AS_SHARED: &str = "access_as_shared";
pub const ACCESS_AS_EXTERNAL: &str = "access_as_external";

/// One policy, as the API shows it (Neutron shows the target as `target_tenant` only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RbacPolicy {
    pub id: String,
    pub project_id: String,
    pub tenant_id: String,
    pub object_type: String,
    pub object_id: String,
    pub action: String,
    pub target_tenant: String,
}

const COLUMNS: &[Column] = &[
    col("id", "id", T::Text),
    col("project_id", "project_id", T::Text),
    col("tenant_id", "project_id", T::Text),
    col("object_type", "object_type", T::Text),
    col("object_id", "object_id", T::Text),
    col("action", "action", T::Text),
    col("target_tenant", "target_project", T::Text),
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
        target_tenant: target,
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

pub async fn list_rbac_policies(
    c: &mut AnyConnection,
    filters: &[Filter],
    page: &Page,
    visibility: &Visibility,
) -> Result<Vec<RbacPolicy>> {
    let listed = crate::visibility::Listed { select: SELECT, table: "rbac_policies", columns: COLUMNS };
    let rows = crate::visibility::list_rows(c, listed, filters, page, visibility, |_, _| Ok(false)).await?;
    rows.iter().map(decode).collect()
}

fn duplicate() -> StoreError {
    StoreError::Domain(DomainError::conflict("DuplicateRbacPolicy", "An RBAC policy already exists with those values."))
}

pub async fn insert_rbac_policy(tx: &mut Tx, p: &RbacPolicy) -> Result<()> {
    crate::enforce_quota(tx, neutrino_domain::quotas::QuotaResource::RbacPolicy, &p.project_id).await?;
    insert_policy_row(tx, p).await
}

/// Insert a policy without a quota check (the wildcards Neutron makes itself for `shared`
/// and `router:external` count against no quota).
async fn insert_policy_row(tx: &mut Tx, p: &RbacPolicy) -> Result<()> {
    let done = sqlx::query(
        "INSERT INTO rbac_policies (id, project_id, object_type, object_id, action, target_project) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(p.id.clone())
    .bind(p.project_id.clone())
    .bind(p.object_type.clone())
    .bind(p.object_id.clone())
    .bind(p.action.clone())
    .bind(p.target_tenant.clone())
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 0 {
        return Err(duplicate());
    }
    tx.record_change(Resource::RbacPolicy, &p.id, Operation::Create);
    object_changed(tx, p).await
}

/// Change a policy's target, after checking nobody loses access they depend on.
pub async fn retarget_rbac_policy(tx: &mut Tx, p: &RbacPolicy, new_target: &str) -> Result<RbacPolicy> {
    ensure_not_in_use(tx, p, Some(new_target)).await?;
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
    tx.record_change(Resource::RbacPolicy, &p.id, Operation::Update);
    object_changed(tx, p).await?;
    get_rbac_policy(tx.conn(), &p.id).await
}

pub async fn delete_rbac_policy(tx: &mut Tx, p: &RbacPolicy) -> Result<()> {
    ensure_not_in_use(tx, p, None).await?;
    sqlx::query("DELETE FROM rbac_policies WHERE id = $1").bind(p.id.clone()).execute(tx.conn()).await?;
    tx.record_change(Resource::RbacPolicy, &p.id, Operation::Delete);
    object_changed(tx, p).await
}

/// What a policy's object keeps of its policies: a network's `shared` and `router_external`
/// columns and revision (a security group keeps nothing).
async fn object_changed(tx: &mut Tx, p: &RbacPolicy) -> Result<()> {
    if p.object_type != "network" {
        return Ok(());
    }
    sync_network_columns(tx, &p.object_id).await?;
    tx.record_change(Resource::Network, &p.object_id, Operation::Update);
    tx.revise("networks", &p.object_id).await
}

/// The projects using a shared security group on their ports (not its owner).
async fn security_group_users(tx: &mut Tx, group_id: &str) -> Result<Vec<String>> {
    // Port updates and creates that add the group hold it `FOR SHARE` (see
    // `ports::set_port_groups`): take it first, so the ports read are all there will be.
    tx.lock_parent("security_groups", group_id).await?;
    let rows = sqlx::query(
        "SELECT DISTINCT p.project_id FROM port_security_groups psg JOIN ports p ON p.id = psg.port_id \
         JOIN security_groups g ON g.id = psg.security_group_id WHERE psg.security_group_id = $1 \
         AND p.project_id <> g.project_id",
    )
    .bind(group_id.to_string())
    .fetch_all(tx.conn())
    .await?;
    rows.iter().map(|r| text(r, "project_id")).collect()
}

fn policy_in_use(object_id: &str, details: &str) -> StoreError {
    StoreError::Domain(DomainError::conflict(
        "RbacPolicyInUse",
        format!("RBAC policy on object {object_id} cannot be removed because other objects depend on it.\nDetails: {details}"),
    ))
}

/// Refuse to remove or retarget `p` while something depends on it, as Neutron does: for
/// `access_as_shared`, a project that would lose access to the network (not its owner, not
/// covered by another policy) and has ports on it; for `access_as_external`, the default
/// external network's wildcard. (Routers, which also depend on external access, do not exist
/// yet.)
async fn ensure_not_in_use(tx: &mut Tx, p: &RbacPolicy, new_target: Option<&str>) -> Result<()> {
    if p.object_type == "security_group" {
        let users = security_group_users(tx, &p.object_id).await?;
        let others = sqlx::query(
            "SELECT target_project FROM rbac_policies WHERE object_type = 'security_group' AND object_id = $1 \
             AND action = 'access_as_shared' AND id <> $2",
        )
        .bind(p.object_id.clone())
        .bind(p.id.clone())
        .fetch_all(tx.conn())
        .await?;
        let mut remaining: BTreeSet<String> =
            others.iter().map(|r| text(r, "target_project")).collect::<Result<_>>()?;
        remaining.extend(new_target.map(String::from));
        let losing = !remaining.contains("*")
            && users.iter().any(|u| !remaining.contains(u) && (p.target_tenant == "*" || p.target_tenant == *u));
        if losing {
            return Err(policy_in_use(
                &p.object_id,
                &format!("Security group {} is in use by ports of the projects it is shared with.", p.object_id),
            ));
        }
        return Ok(());
    }
    // Creates of subnets and ports hold the network `FOR SHARE` while they check and use it:
    // take it first, so the ports read below are all there will be.
    tx.lock_parent("networks", &p.object_id).await?;
    if p.action == ACCESS_AS_EXTERNAL {
        let default = tx.any_row("SELECT id FROM networks WHERE id = $1 AND is_default", &p.object_id).await?;
        if p.target_tenant == "*" && default && new_target != Some("*") {
            return Err(policy_in_use(&p.object_id, "Default external networks must be shared to everyone."));
        }
        if new_target.is_none() {
            // The last one gone, the network would turn internal: not under routers' gateways.
            let others = sqlx::query(
                "SELECT id FROM rbac_policies WHERE object_type = 'network' AND object_id = $1 \
                 AND action = 'access_as_external' AND id <> $2 LIMIT 1",
            )
            .bind(p.object_id.clone())
            .bind(p.id.clone())
            .fetch_optional(tx.conn())
            .await?;
            if others.is_none() {
                refuse_while_gateways(tx, &p.object_id).await?;
            }
        }
        return Ok(());
    }
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
        .any(|project| !remaining.contains(&project) && (p.target_tenant == "*" || p.target_tenant == project));
    if losing {
        return Err(policy_in_use(
            &p.object_id,
            &format!(
                "Callback neutron.plugins.ml2.plugin.Ml2Plugin.validate_network_rbac_policy_change failed with \
                 \"Unable to reconfigure sharing settings for network {}. Multiple projects are using it.\"",
                p.object_id
            ),
        ));
    }
    Ok(())
}

/// The `shared` column is true exactly while a wildcard `access_as_shared` policy exists, and
/// `router_external` while any `access_as_external` one does (a network no longer external
/// is no longer the default one).
async fn sync_network_columns(tx: &mut Tx, network_id: &str) -> Result<()> {
    sqlx::query(
        "UPDATE networks SET shared = EXISTS (SELECT 1 FROM rbac_policies WHERE object_type = 'network' \
         AND object_id = $1 AND action = 'access_as_shared' AND target_project = '*'), \
         router_external = EXISTS (SELECT 1 FROM rbac_policies WHERE object_type = 'network' \
         AND object_id = $1 AND action = 'access_as_external') WHERE id = $1",
    )
    .bind(network_id.to_string())
    .execute(tx.conn())
    .await?;
    sqlx::query("UPDATE networks SET is_default = false WHERE id = $1 AND NOT router_external")
        .bind(network_id.to_string())
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// The wildcard policy of `action` on a network, if it has one.
async fn wildcard_policy(tx: &mut Tx, network_id: &str, action: &str) -> Result<Option<RbacPolicy>> {
    let row = sqlx::query(&format!(
        "{SELECT} WHERE object_type = 'network' AND object_id = $1 AND action = $2 AND target_project = '*'"
    ))
    .bind(network_id.to_string())
    .bind(action.to_string())
    .fetch_optional(tx.conn())
    .await?;
    row.as_ref().map(decode).transpose()
}

/// A wildcard policy of `action` on a network, owned by the network's project.
async fn add_wildcard(tx: &mut Tx, network_id: &str, owner: &str, action: &str) -> Result<()> {
    let p = RbacPolicy {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: owner.to_string(),
        tenant_id: owner.to_string(),
        object_type: "network".into(),
        object_id: network_id.to_string(),
        action: action.into(),
        target_tenant: "*".into(),
    };
    insert_policy_row(tx, &p).await
}

/// `shared` on a network: add or remove its wildcard policy (owned by the network's project).
pub async fn set_network_shared(tx: &mut Tx, network_id: &str, owner: &str, shared: bool) -> Result<()> {
    match (wildcard_policy(tx, network_id, ACCESS_AS_SHARED).await?, shared) {
        (None, true) => add_wildcard(tx, network_id, owner, ACCESS_AS_SHARED).await,
        (Some(p), false) => delete_rbac_policy(tx, &p).await,
        _ => Ok(()),
    }
}

/// `router:external` on a network, as Neutron sets it: making it external adds a wildcard
/// `access_as_external` policy; making it internal removes every such policy, unless a
/// router's gateway is on it.
pub async fn set_network_external(tx: &mut Tx, network_id: &str, owner: &str, external: bool) -> Result<()> {
    let any_external =
        "SELECT id FROM rbac_policies WHERE object_type = 'network' AND object_id = $1 AND action = 'access_as_external'";
    if external {
        // Already external (to some projects): as Neutron, nothing changes.
        if !tx.any_row(any_external, network_id).await? {
            add_wildcard(tx, network_id, owner, ACCESS_AS_EXTERNAL).await?;
        }
        return Ok(());
    }
    refuse_while_gateways(tx, network_id).await?;
    sqlx::query("DELETE FROM rbac_policies WHERE object_type = 'network' AND object_id = $1 AND action = $2")
        .bind(network_id.to_string())
        .bind(ACCESS_AS_EXTERNAL)
        .execute(tx.conn())
        .await?;
    sync_network_columns(tx, network_id).await?;
    tx.record_change(Resource::Network, network_id, Operation::Update);
    Ok(())
}

/// A network with routers' gateways on it stays external.
async fn refuse_while_gateways(tx: &mut Tx, network_id: &str) -> Result<()> {
    let gateways = "SELECT id FROM ports WHERE network_id = $1 AND device_owner = 'network:router_gateway' LIMIT 1";
    if tx.any_row(gateways, network_id).await? {
        return Err(StoreError::Domain(DomainError::conflict(
            "ExternalNetworkInUse",
            format!("External network {network_id} cannot be updated to be non-external, because it has existing gateway ports."),
        )));
    }
    Ok(())
}

/// `is_default` on an external network: at most one is the default (Neutron's
/// `DefaultExternalNetworkExists`; a unique index settles concurrent requests).
pub async fn set_network_default(tx: &mut Tx, network_id: &str, is_default: bool) -> Result<()> {
    if is_default {
        let other = sqlx::query("SELECT id FROM networks WHERE is_default AND id <> $1")
            .bind(network_id.to_string())
            .fetch_optional(tx.conn())
            .await?;
        if let Some(other) = other {
            return Err(StoreError::Domain(DomainError::conflict(
                "DefaultExternalNetworkExists",
                format!(
                    "Unable to set network {network_id} as default; network {} is the default one.",
                    text(&other, "id")?
                ),
            )));
        }
    }
    let done = sqlx::query("UPDATE networks SET is_default = $1 WHERE id = $2 AND router_external")
        .bind(is_default)
        .bind(network_id.to_string())
        .execute(tx.conn())
        .await
        .map_err(StoreError::from);
    match done {
        Err(e) if e.is_unique_violation() => Err(StoreError::Domain(DomainError::conflict(
            "DefaultExternalNetworkExists",
            format!("Unable to set network {network_id} as default; another network is the default one."),
        ))),
        other => other.map(|_| ()),
    }
}

/// Of `network_ids`, those shared with `project` by a policy naming it (not the wildcard).
pub async fn networks_shared_with(
    c: &mut AnyConnection,
    project: &str,
    network_ids: &[String],
) -> Result<BTreeSet<String>> {
    networks_with_policy(c, ACCESS_AS_SHARED, &[project], network_ids).await
}

/// Of `network_ids`, those external to `project`: an `access_as_external` policy names it or
/// is a wildcard.
pub async fn networks_external_to(
    c: &mut AnyConnection,
    project: &str,
    network_ids: &[String],
) -> Result<BTreeSet<String>> {
    networks_with_policy(c, ACCESS_AS_EXTERNAL, &[project, "*"], network_ids).await
}

async fn networks_with_policy(
    c: &mut AnyConnection,
    action: &str,
    targets: &[&str],
    network_ids: &[String],
) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for chunk in network_ids.chunks(500) {
        let first = targets.len() + 2;
        let targets_sql = (2..first).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let placeholders = (first..chunk.len() + first).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT object_id FROM rbac_policies WHERE object_type = 'network' AND action = $1 \
             AND target_project IN ({targets_sql}) AND object_id IN ({placeholders})"
        );
        let mut q = sqlx::query(&sql).bind(action.to_string());
        for t in targets {
            q = q.bind(t.to_string());
        }
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
