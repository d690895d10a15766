//! The rules new security groups start with (Neutron's default security group rule
//! templates): each says whether `default` groups, other groups, or both get it; a
//! `remote_group_id` of `PARENT` is the new group itself.

use crate::filters::{col, Column, ColumnType as T, Filter};
use crate::rows::{boolean, opt_int, opt_text, text, Page};
use crate::visibility::Visibility;
use crate::{Result, StoreError, Tx};
use neutrino_api::resources::DefaultSecurityGroupRule;
use neutrino_domain::security_groups::ValidRule;
use neutrino_domain::DomainError;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;

/// The `remote_group_id` of a template that means the group being created.
pub const PARENT: &str = "PARENT";

const COLUMNS: &[Column] = &[
    col("id", "id", T::Text),
    col("direction", "direction", T::Text),
    col("ethertype", "ethertype", T::Text),
    col("protocol", "protocol", T::NullableText),
    col("port_range_min", "port_range_min", T::NullableInt),
    col("port_range_max", "port_range_max", T::NullableInt),
    col("remote_ip_prefix", "remote_ip_prefix", T::NullableText),
    col("remote_group_id", "remote_group_id", T::NullableText),
    col("remote_address_group_id", "remote_address_group_id", T::NullableText),
    col("description", "description", T::Text),
    col("used_in_default_sg", "used_in_default_sg", T::Bool),
    col("used_in_non_default_sg", "used_in_non_default_sg", T::Bool),
];

const SELECT: &str = "SELECT id, direction, ethertype, protocol, port_range_min, port_range_max, remote_ip_prefix, \
    normalized_cidr, remote_group_id, remote_address_group_id, description, used_in_default_sg, used_in_non_default_sg \
    FROM default_security_group_rules";

fn decode(row: &AnyRow) -> Result<DefaultSecurityGroupRule> {
    Ok(DefaultSecurityGroupRule {
        id: text(row, "id")?,
        direction: text(row, "direction")?,
        ethertype: text(row, "ethertype")?,
        protocol: opt_text(row, "protocol")?,
        port_range_min: opt_int(row, "port_range_min")?,
        port_range_max: opt_int(row, "port_range_max")?,
        remote_ip_prefix: opt_text(row, "remote_ip_prefix")?,
        remote_group_id: opt_text(row, "remote_group_id")?,
        remote_address_group_id: opt_text(row, "remote_address_group_id")?,
        description: text(row, "description")?,
        used_in_default_sg: boolean(row, "used_in_default_sg")?,
        used_in_non_default_sg: boolean(row, "used_in_non_default_sg")?,
    })
}

/// The rules a new group gets: `default` groups' or the others', with `PARENT` made the group.
pub async fn template_rules(tx: &mut Tx, group_id: &str, for_default: bool) -> Result<Vec<ValidRule>> {
    let column = if for_default { "used_in_default_sg" } else { "used_in_non_default_sg" };
    let rows = sqlx::query(&format!("{SELECT} WHERE {column} ORDER BY id")).fetch_all(tx.conn()).await?;
    rows.iter()
        .map(|r| {
            let remote = opt_text(r, "remote_group_id")?;
            Ok(ValidRule {
                direction: text(r, "direction")?,
                ethertype: text(r, "ethertype")?,
                protocol: opt_text(r, "protocol")?,
                port_range_min: opt_int(r, "port_range_min")?,
                port_range_max: opt_int(r, "port_range_max")?,
                remote_ip_prefix: opt_text(r, "remote_ip_prefix")?,
                normalized_cidr: opt_text(r, "normalized_cidr")?,
                remote_group_id: remote.map(|g| if g == PARENT { group_id.to_string() } else { g }),
                remote_address_group_id: opt_text(r, "remote_address_group_id")?,
            })
        })
        .collect()
}

/// Add a template. The same rule may be a template of `default` groups and, separately, of
/// the others; a second template of the same rule for groups it already applies to is
/// `DefaultSecurityGroupRuleExists`.
pub async fn insert_default_rule(
    tx: &mut Tx,
    id: &str,
    rule: &ValidRule,
    description: &str,
    used_in_default_sg: bool,
    used_in_non_default_sg: bool,
) -> Result<DefaultSecurityGroupRule> {
    if let Some(ag) = rule.remote_address_group_id.as_deref() {
        let lock = if tx.backend() == crate::Backend::Postgres { " FOR KEY SHARE" } else { "" };
        let found = sqlx::query(&format!("SELECT id FROM address_groups WHERE id = $1{lock}"))
            .bind(ag.to_string())
            .fetch_optional(tx.conn())
            .await?;
        if found.is_none() {
            return Err(DomainError::not_found(
                "AddressGroupNotFound",
                format!("Address group {ag} could not be found."),
            )
            .into());
        }
    }
    let fingerprint = rule.fingerprint();
    // Templates take turns on the table, so two equal ones cannot both pass the check.
    if tx.backend() == crate::Backend::Postgres {
        sqlx::query("LOCK TABLE default_security_group_rules IN SHARE ROW EXCLUSIVE MODE").execute(tx.conn()).await?;
    }
    let clash = sqlx::query(
        "SELECT id FROM default_security_group_rules WHERE fingerprint = $1 \
         AND ((used_in_default_sg AND $2) OR (used_in_non_default_sg AND $3)) LIMIT 1",
    )
    .bind(fingerprint.clone())
    .bind(used_in_default_sg)
    .bind(used_in_non_default_sg)
    .fetch_optional(tx.conn())
    .await?;
    if let Some(r) = clash {
        return Err(DomainError::conflict(
            "DefaultSecurityGroupRuleExists",
            format!("Default Security group rule already exists. Rule id is {}.", text(&r, "id")?),
        )
        .into());
    }
    sqlx::query(
        "INSERT INTO default_security_group_rules (id, direction, ethertype, protocol, port_range_min, port_range_max, \
         remote_ip_prefix, normalized_cidr, remote_group_id, remote_address_group_id, description, used_in_default_sg, \
         used_in_non_default_sg, fingerprint) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(id.to_string())
    .bind(rule.direction.clone())
    .bind(rule.ethertype.clone())
    .bind(rule.protocol.clone())
    .bind(rule.port_range_min)
    .bind(rule.port_range_max)
    .bind(rule.remote_ip_prefix.clone())
    .bind(rule.normalized_cidr.clone())
    .bind(rule.remote_group_id.clone())
    .bind(rule.remote_address_group_id.clone())
    .bind(description.to_string())
    .bind(used_in_default_sg)
    .bind(used_in_non_default_sg)
    .bind(fingerprint)
    .execute(tx.conn())
    .await?;
    get_default_rule(tx.conn(), id).await
}

pub async fn get_default_rule(c: &mut AnyConnection, id: &str) -> Result<DefaultSecurityGroupRule> {
    let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| StoreError::not_found("default_security_group_rule", id))?;
    decode(&row)
}

pub async fn list_default_rules(
    c: &mut AnyConnection,
    filters: &[Filter],
    page: &Page,
) -> Result<Vec<DefaultSecurityGroupRule>> {
    let listed = crate::visibility::Listed { select: SELECT, table: "default_security_group_rules", columns: COLUMNS };
    let rows =
        crate::visibility::list_rows(c, listed, filters, page, &Visibility::Everything, |_, _| Ok(false)).await?;
    rows.iter().map(decode).collect()
}

pub async fn delete_default_rule(tx: &mut Tx, id: &str) -> Result<()> {
    let done = sqlx::query("DELETE FROM default_security_group_rules WHERE id = $1")
        .bind(id.to_string())
        .execute(tx.conn())
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::not_found("default_security_group_rule", id));
    }
    Ok(())
}
