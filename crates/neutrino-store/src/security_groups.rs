//! Security groups, their rules, each project's `default` group, and port bindings.

use crate::filters::{col, Column, ColumnType as T, Filter};
use crate::rows::{boolean, int, opt_int, opt_text, text, Page};
use crate::visibility::Visibility;
use crate::{now_timestamp, Result, StoreError, Tx};
use neutrino_api::resources::{SecurityGroup, SecurityGroupRule};
use neutrino_domain::changes::{Operation, Resource};
use neutrino_domain::security_groups::ValidRule;
use neutrino_domain::topology::ObjectKind;
use neutrino_domain::DomainError;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use std::collections::{HashMap, HashSet};

const GROUP_COLUMNS: &[Column] = &[
    col("id", "id", T::Text),
    col("name", "name", T::Text),
    col("description", "description", T::Text),
    col("project_id", "project_id", T::Text),
    col("tenant_id", "project_id", T::Text),
    col("stateful", "stateful", T::Bool),
    col("revision_number", "revision_number", T::Int),
    col("created_at", "created_at", T::Text),
    col("updated_at", "updated_at", T::Text),
];

const RULE_COLUMNS: &[Column] = &[
    col("id", "id", T::Text),
    col("security_group_id", "security_group_id", T::Text),
    col("project_id", "project_id", T::Text),
    col("tenant_id", "project_id", T::Text),
    col("direction", "direction", T::Text),
    col("ethertype", "ethertype", T::Text),
    col("protocol", "protocol", T::NullableText),
    col("port_range_min", "port_range_min", T::NullableInt),
    col("port_range_max", "port_range_max", T::NullableInt),
    col("remote_ip_prefix", "remote_ip_prefix", T::NullableText),
    col("normalized_cidr", "normalized_cidr", T::NullableText),
    col("remote_group_id", "remote_group_id", T::NullableText),
    col("remote_address_group_id", "remote_address_group_id", T::NullableText),
    col("description", "description", T::Text),
    col("revision_number", "revision_number", T::Int),
    col("created_at", "created_at", T::Text),
    col("updated_at", "updated_at", T::Text),
];

const GROUP_SELECT: &str =
    "SELECT id, project_id, name, description, stateful, created_at, updated_at, revision_number FROM security_groups";
const RULE_SELECT: &str = "SELECT id, project_id, security_group_id, direction, ethertype, protocol, port_range_min, \
    port_range_max, remote_ip_prefix, normalized_cidr, remote_group_id, remote_address_group_id, description, \
    created_at, updated_at, \
    revision_number FROM security_group_rules";

fn decode_group(row: &AnyRow) -> Result<SecurityGroup> {
    let project_id = text(row, "project_id")?;
    Ok(SecurityGroup {
        id: text(row, "id")?,
        name: text(row, "name")?,
        stateful: boolean(row, "stateful")?,
        tenant_id: project_id.clone(),
        project_id,
        description: text(row, "description")?,
        shared: false,
        security_group_rules: Vec::new(),
        tags: Vec::new(),
        created_at: text(row, "created_at")?,
        updated_at: text(row, "updated_at")?,
        revision_number: int(row, "revision_number")? as u64,
    })
}

fn decode_rule(row: &AnyRow, defaults: &HashSet<String>) -> Result<SecurityGroupRule> {
    let project_id = text(row, "project_id")?;
    let group = text(row, "security_group_id")?;
    Ok(SecurityGroupRule {
        id: text(row, "id")?,
        tenant_id: project_id.clone(),
        project_id,
        belongs_to_default_sg: defaults.contains(&group),
        security_group_id: group,
        ethertype: text(row, "ethertype")?,
        direction: text(row, "direction")?,
        protocol: opt_text(row, "protocol")?,
        port_range_min: opt_int(row, "port_range_min")?,
        port_range_max: opt_int(row, "port_range_max")?,
        remote_ip_prefix: opt_text(row, "remote_ip_prefix")?,
        remote_address_group_id: opt_text(row, "remote_address_group_id")?,
        normalized_cidr: opt_text(row, "normalized_cidr")?,
        remote_group_id: opt_text(row, "remote_group_id")?,
        description: text(row, "description")?,
        created_at: text(row, "created_at")?,
        updated_at: text(row, "updated_at")?,
        revision_number: int(row, "revision_number")? as u64,
    })
}

async fn default_group_ids(c: &mut AnyConnection) -> Result<HashSet<String>> {
    let rows = sqlx::query("SELECT security_group_id FROM default_security_groups").fetch_all(&mut *c).await?;
    rows.iter().map(|r| text(r, "security_group_id")).collect()
}

/// The project's `default` group, created (with Neutron's default rules) on first use. Two
/// requests racing to create it settle on the primary key of `default_security_groups`.
pub async fn ensure_default_group(tx: &mut Tx, project_id: &str) -> Result<String> {
    let existing = sqlx::query("SELECT security_group_id FROM default_security_groups WHERE project_id = $1")
        .bind(project_id.to_string())
        .fetch_optional(tx.conn())
        .await?;
    if let Some(r) = existing {
        return text(&r, "security_group_id");
    }
    let id = uuid_like();
    let claimed = sqlx::query(
        "INSERT INTO default_security_groups (project_id, security_group_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(project_id.to_string())
    .bind(id.clone())
    .execute(tx.conn())
    .await?;
    if claimed.rows_affected() == 0 {
        // Another request created it meanwhile; its row is committed and visible now.
        let r = sqlx::query("SELECT security_group_id FROM default_security_groups WHERE project_id = $1")
            .bind(project_id.to_string())
            .fetch_one(tx.conn())
            .await?;
        return text(&r, "security_group_id");
    }
    let now = now_timestamp();
    let group = SecurityGroup {
        id: id.clone(),
        name: "default".into(),
        stateful: true,
        tenant_id: project_id.to_string(),
        project_id: project_id.to_string(),
        description: "Default security group".into(),
        shared: false,
        security_group_rules: Vec::new(),
        tags: Vec::new(),
        created_at: now.clone(),
        updated_at: now,
        revision_number: 1,
    };
    // Made for the project, not asked for: never refused by quota (it still counts as used).
    let rules = crate::default_rules::template_rules(tx, &id, true).await?;
    insert_group_rows(tx, &group, &rules).await?;
    Ok(id)
}

fn uuid_like() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Insert a group a user asked for, with its first rules. The group counts against the
/// `security_group` quota; its automatic rules are part of the group, as in Neutron, and are
/// not refused by the `security_group_rule` quota (they still count as used).
pub async fn insert_group(tx: &mut Tx, group: &SecurityGroup, rules: &[ValidRule]) -> Result<()> {
    use neutrino_domain::quotas::QuotaResource;
    crate::enforce_quota(tx, QuotaResource::SecurityGroup, &group.project_id).await?;
    // Its first rules count too (Neutron checks them before creating the group).
    crate::quotas::enforce_quota_for(tx, QuotaResource::SecurityGroupRule, &group.project_id, rules.len() as i64)
        .await?;
    insert_group_rows(tx, group, rules).await
}

/// Insert a group with its first rules, without a quota check.
async fn insert_group_rows(tx: &mut Tx, group: &SecurityGroup, rules: &[ValidRule]) -> Result<()> {
    sqlx::query(
        "INSERT INTO security_groups (id, project_id, name, description, stateful, created_at, updated_at, revision_number) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(group.id.clone())
    .bind(group.project_id.clone())
    .bind(group.name.clone())
    .bind(group.description.clone())
    .bind(group.stateful)
    .bind(group.created_at.clone())
    .bind(group.updated_at.clone())
    .bind(group.revision_number as i64)
    .execute(tx.conn())
    .await?;
    for rule in rules {
        // A new group has no rules yet, so none of these can be a duplicate.
        let _ = insert_rule_row(tx, &uuid_like(), &group.id, &group.project_id, rule, None).await?;
    }
    tx.record_change(Resource::SecurityGroup, &group.id, Operation::Create);
    Ok(())
}

/// Insert one rule; `Err(existing id)` when the group already has the same rule.
async fn insert_rule_row(
    tx: &mut Tx,
    id: &str,
    group_id: &str,
    project_id: &str,
    rule: &ValidRule,
    description: Option<&str>,
) -> Result<std::result::Result<(), String>> {
    let now = now_timestamp();
    let fingerprint = rule.fingerprint();
    let done = sqlx::query(
        "INSERT INTO security_group_rules (id, project_id, security_group_id, direction, ethertype, protocol, \
         port_range_min, port_range_max, remote_ip_prefix, normalized_cidr, remote_group_id, description, fingerprint, \
         created_at, updated_at, revision_number, remote_address_group_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, 0, $15) ON CONFLICT DO NOTHING",
    )
    .bind(id.to_string())
    .bind(project_id.to_string())
    .bind(group_id.to_string())
    .bind(rule.direction.clone())
    .bind(rule.ethertype.clone())
    .bind(rule.protocol.clone())
    .bind(rule.port_range_min)
    .bind(rule.port_range_max)
    .bind(rule.remote_ip_prefix.clone())
    .bind(rule.normalized_cidr.clone())
    .bind(rule.remote_group_id.clone())
    .bind(description.unwrap_or_default().to_string())
    .bind(fingerprint.clone())
    .bind(now)
    .bind(rule.remote_address_group_id.clone())
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 1 {
        return Ok(Ok(()));
    }
    let existing = sqlx::query("SELECT id FROM security_group_rules WHERE security_group_id = $1 AND fingerprint = $2")
        .bind(group_id.to_string())
        .bind(fingerprint)
        .fetch_one(tx.conn())
        .await?;
    Ok(Err(text(&existing, "id")?))
}

/// Attach rules and tags to groups with two queries.
async fn attach(c: &mut AnyConnection, groups: &mut [SecurityGroup]) -> Result<()> {
    if groups.is_empty() {
        return Ok(());
    }
    let defaults = default_group_ids(c).await?;
    let wanted: HashSet<&str> = groups.iter().map(|g| g.id.as_str()).collect();
    // Only the listed groups' rules, unless so many groups are listed that one scan is cheaper.
    let rows = if groups.len() > 500 {
        sqlx::query(&format!("{RULE_SELECT} ORDER BY security_group_id, created_at, id")).fetch_all(&mut *c).await?
    } else {
        let placeholders = (1..=groups.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "{RULE_SELECT} WHERE security_group_id IN ({placeholders}) ORDER BY security_group_id, created_at, id"
        );
        let mut q = sqlx::query(&sql);
        for g in groups.iter() {
            q = q.bind(g.id.clone());
        }
        q.fetch_all(&mut *c).await?
    };
    let mut by_group: HashMap<String, Vec<SecurityGroupRule>> = HashMap::new();
    for r in &rows {
        let group = text(r, "security_group_id")?;
        if wanted.contains(group.as_str()) {
            by_group.entry(group).or_default().push(decode_rule(r, &defaults)?);
        }
    }
    let mut tags = crate::tags::tags_by_id(c, "security_groups").await?;
    for g in groups {
        g.security_group_rules = by_group.remove(&g.id).unwrap_or_default();
        g.tags = tags.remove(&g.id).unwrap_or_default();
    }
    Ok(())
}

pub async fn get_group(c: &mut AnyConnection, id: &str) -> Result<SecurityGroup> {
    let row = sqlx::query(&format!("{GROUP_SELECT} WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| StoreError::not_found("security_group", id))?;
    let mut groups = vec![decode_group(&row)?];
    attach(c, &mut groups).await?;
    Ok(groups.remove(0))
}

pub async fn list_groups(
    c: &mut AnyConnection,
    filters: &[Filter],
    page: &Page,
    visibility: &Visibility,
) -> Result<Vec<SecurityGroup>> {
    let listed = crate::visibility::Listed { select: GROUP_SELECT, table: "security_groups", columns: GROUP_COLUMNS };
    let rows =
        crate::visibility::list_rows(c, listed, filters, page, visibility, crate::tags::tag_filter("security_groups"))
            .await?;
    let mut groups = rows.iter().map(decode_group).collect::<Result<Vec<_>>>()?;
    attach(c, &mut groups).await?;
    Ok(groups)
}

/// Store changed name/description/stateful, with revision compare-and-swap.
pub async fn update_group(tx: &mut Tx, g: &SecurityGroup, expected_revision: u64) -> Result<()> {
    let done = sqlx::query(
        "UPDATE security_groups SET name = $1, description = $2, stateful = $3, updated_at = $4, \
         revision_number = revision_number + 1 WHERE id = $5 AND revision_number = $6",
    )
    .bind(g.name.clone())
    .bind(g.description.clone())
    .bind(g.stateful)
    .bind(g.updated_at.clone())
    .bind(g.id.clone())
    .bind(expected_revision as i64)
    .execute(tx.conn())
    .await?;
    tx.updated(done.rows_affected(), Resource::SecurityGroup, &g.id)
}

/// Delete a group no port uses and that is not its project's default. Rules of other groups
/// that name it as their remote group go with it.
/// Whether a port uses the group.
pub async fn group_in_use(tx: &mut Tx, id: &str) -> Result<bool> {
    tx.any_row("SELECT port_id FROM port_security_groups WHERE security_group_id = $1 LIMIT 1", id).await
}

/// Delete a group no port uses. A project's `default` group may be deleted by admins only
/// (`may_remove_default`); the project gets a new one when it next needs it, as in Neutron.
pub async fn delete_group(tx: &mut Tx, id: &str, may_remove_default: bool) -> Result<()> {
    get_group(tx.conn(), id).await?;
    if tx.any_row("SELECT port_id FROM port_security_groups WHERE security_group_id = $1 LIMIT 1", id).await? {
        return Err(DomainError::conflict("SecurityGroupInUse", format!("Security Group {id} in use.")).into());
    }
    let is_default = sqlx::query("SELECT project_id FROM default_security_groups WHERE security_group_id = $1")
        .bind(id.to_string())
        .fetch_optional(tx.conn())
        .await?;
    if is_default.is_some() && !may_remove_default {
        return Err(DomainError::conflict(
            "SecurityGroupCannotRemoveDefault",
            "Insufficient rights for removing default security group.",
        )
        .into());
    }
    // Rules of other groups that name it go with it (as in Neutron): those groups change.
    let naming = sqlx::query(
        "SELECT DISTINCT security_group_id FROM security_group_rules WHERE remote_group_id = $1 \
         AND security_group_id <> $1 ORDER BY security_group_id",
    )
    .bind(id.to_string())
    .fetch_all(tx.conn())
    .await?;
    for row in &naming {
        let group = crate::rows::text(row, "security_group_id")?;
        bump_group(tx, &group).await?;
    }
    for stmt in [
        "DELETE FROM default_security_groups WHERE security_group_id = $1",
        "DELETE FROM rbac_policies WHERE object_type = 'security_group' AND object_id = $1",
        "DELETE FROM security_group_rules WHERE remote_group_id = $1",
        "DELETE FROM security_group_rules WHERE security_group_id = $1",
        "DELETE FROM tags WHERE resource_type = 'security_groups' AND resource_id = $1",
        "DELETE FROM security_groups WHERE id = $1",
    ] {
        sqlx::query(stmt).bind(id.to_string()).execute(tx.conn()).await?;
    }
    tx.record_change(Resource::SecurityGroup, id, Operation::Delete);
    Ok(())
}

/// A rule of the group was added or removed: a new revision, and a new image for hosts.
async fn bump_group(tx: &mut Tx, group_id: &str) -> Result<()> {
    sqlx::query("UPDATE security_groups SET revision_number = revision_number + 1, updated_at = $1 WHERE id = $2")
        .bind(now_timestamp())
        .bind(group_id.to_string())
        .execute(tx.conn())
        .await?;
    tx.touch(ObjectKind::SecurityGroup, group_id);
    Ok(())
}

/// Add a rule to its group. A rule equal to an existing one is refused with
/// `SecurityGroupRuleExists` naming the existing rule; different rules added at the same time
/// never conflict. An address group it names must be the rule's project's (`any_project`:
/// an admin's rule may name anyone's).
pub async fn insert_rule(
    tx: &mut Tx,
    id: &str,
    group_id: &str,
    project_id: &str,
    rule: &ValidRule,
    description: &str,
    any_project: bool,
) -> Result<SecurityGroupRule> {
    for group in std::iter::once(group_id).chain(rule.remote_group_id.as_deref()) {
        if !tx.any_row("SELECT id FROM security_groups WHERE id = $1", group).await? {
            return Err(StoreError::not_found("security_group", group));
        }
    }
    if let Some(ag) = rule.remote_address_group_id.as_deref() {
        // Held against a concurrent delete of the group until this rule commits.
        let lock = if tx.backend() == crate::Backend::Postgres { " FOR KEY SHARE" } else { "" };
        let found = sqlx::query(&format!("SELECT project_id FROM address_groups WHERE id = $1{lock}"))
            .bind(ag.to_string())
            .fetch_optional(tx.conn())
            .await?;
        // As Neutron's `check_address_group`: the rule's project must own the group.
        let owned = match &found {
            Some(r) => any_project || text(r, "project_id")? == project_id,
            None => false,
        };
        if !owned {
            return Err(DomainError::not_found(
                "AddressGroupNotFound",
                format!("Address group {ag} could not be found."),
            )
            .into());
        }
    }
    crate::enforce_quota(tx, neutrino_domain::quotas::QuotaResource::SecurityGroupRule, project_id).await?;
    if let Err(existing) = insert_rule_row(tx, id, group_id, project_id, rule, Some(description)).await? {
        return Err(DomainError::conflict(
            "SecurityGroupRuleExists",
            format!("Security group rule already exists. Rule id is {existing}."),
        )
        .into());
    }
    bump_group(tx, group_id).await?;
    tx.record_change(Resource::SecurityGroupRule, id, Operation::Create);
    get_rule(tx.conn(), id).await
}

pub async fn get_rule(c: &mut AnyConnection, id: &str) -> Result<SecurityGroupRule> {
    let row = sqlx::query(&format!("{RULE_SELECT} WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| StoreError::not_found("security_group_rule", id))?;
    decode_rule(&row, &default_group_ids(c).await?)
}

pub async fn list_rules(
    c: &mut AnyConnection,
    filters: &[Filter],
    page: &Page,
    visibility: &Visibility,
) -> Result<Vec<SecurityGroupRule>> {
    let listed =
        crate::visibility::Listed { select: RULE_SELECT, table: "security_group_rules", columns: RULE_COLUMNS };
    let rows = crate::visibility::list_rows(c, listed, filters, page, visibility, |_, _| Ok(false)).await?;
    let defaults = default_group_ids(c).await?;
    rows.iter().map(|r| decode_rule(r, &defaults)).collect()
}

pub async fn delete_rule(tx: &mut Tx, id: &str) -> Result<()> {
    let rule = get_rule(tx.conn(), id).await?;
    sqlx::query("DELETE FROM security_group_rules WHERE id = $1").bind(id.to_string()).execute(tx.conn()).await?;
    bump_group(tx, &rule.security_group_id).await?;
    tx.record_change(Resource::SecurityGroupRule, id, Operation::Delete);
    Ok(())
}

/// Make `groups` the port's groups (each must exist: 404 otherwise).
/// (`any_project`: an admin's port may use any group, as in Neutron.)
pub async fn set_port_groups(tx: &mut Tx, port_id: &str, groups: &[String], any_project: bool) -> Result<()> {
    let mut stateful = Vec::new();
    // Held against an RBAC policy removed meanwhile (which locks the group to count its
    // users); with it held, the group must still be the port's project's or shared with it.
    let lock = if tx.backend() == crate::Backend::Postgres { " FOR SHARE" } else { "" };
    let port_project = sqlx::query("SELECT project_id FROM ports WHERE id = $1")
        .bind(port_id.to_string())
        .fetch_optional(tx.conn())
        .await?
        .map(|r| text(&r, "project_id"))
        .transpose()?;
    for g in groups {
        let found = sqlx::query(&format!("SELECT stateful, project_id FROM security_groups WHERE id = $1{lock}"))
            .bind(g.clone())
            .fetch_optional(tx.conn())
            .await?;
        let Some(row) = found else { return Err(StoreError::not_found("security_group", g)) };
        let owner = text(&row, "project_id")?;
        if let Some(project) = port_project.as_deref().filter(|p| !any_project && *p != owner) {
            if !group_shared_with(tx.conn(), g, project).await? {
                return Err(StoreError::not_found("security_group", g));
            }
        }
        stateful.push(boolean(&row, "stateful")?);
    }
    if stateful.contains(&true) && stateful.contains(&false) {
        return Err(DomainError::conflict(
            "SecurityGroupConflict",
            "Error Cannot apply both stateful and stateless security groups on the same port at the same time while attempting the operation.",
        )
        .into());
    }
    sqlx::query("DELETE FROM port_security_groups WHERE port_id = $1")
        .bind(port_id.to_string())
        .execute(tx.conn())
        .await?;
    for g in groups {
        sqlx::query(
            "INSERT INTO port_security_groups (port_id, security_group_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(port_id.to_string())
        .bind(g.clone())
        .execute(tx.conn())
        .await?;
    }
    Ok(())
}

/// Whether `project` may use the group through an `access_as_shared` policy (to it or to all).
pub async fn group_shared_with(c: &mut AnyConnection, group_id: &str, project: &str) -> Result<bool> {
    let row = sqlx::query(
        "SELECT id FROM rbac_policies WHERE object_type = 'security_group' AND object_id = $1 \
         AND action = 'access_as_shared' AND (target_project = $2 OR target_project = '*') LIMIT 1",
    )
    .bind(group_id.to_string())
    .bind(project.to_string())
    .fetch_optional(&mut *c)
    .await?;
    Ok(row.is_some())
}

/// The groups shared with `project` through `access_as_shared` policies (to it or to all).
pub async fn groups_shared_with(c: &mut AnyConnection, project: &str) -> Result<HashSet<String>> {
    let rows = sqlx::query(
        "SELECT object_id FROM rbac_policies WHERE object_type = 'security_group' \
         AND action = 'access_as_shared' AND (target_project = $1 OR target_project = '*')",
    )
    .bind(project.to_string())
    .fetch_all(&mut *c)
    .await?;
    rows.iter().map(|r| text(r, "object_id")).collect()
}
