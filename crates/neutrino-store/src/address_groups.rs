//! Address groups: named sets of CIDRs that security group rules name as
//! `remote_address_group_id`. Their addresses are an image of the change log, so hosts whose
//! rules name a group get its addresses (as an nftables set).

use crate::filters::{col, Column, ColumnType as T, Filter};
use crate::rows::{int, text, Page};
use crate::visibility::Visibility;
use crate::{Result, StoreError, Tx};
use neutrino_api::resources::AddressGroup;
use neutrino_domain::topology::ObjectKind;
use neutrino_domain::DomainError;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use std::collections::BTreeMap;

const COLUMNS: &[Column] = &[
    col("id", "id", T::Text),
    col("name", "name", T::Text),
    col("description", "description", T::Text),
    col("project_id", "project_id", T::Text),
    col("tenant_id", "project_id", T::Text),
    col("revision_number", "revision_number", T::Int),
];

const SELECT: &str =
    "SELECT id, project_id, name, description, created_at, updated_at, revision_number FROM address_groups";

fn decode(row: &AnyRow) -> Result<AddressGroup> {
    let project_id = text(row, "project_id")?;
    Ok(AddressGroup {
        id: text(row, "id")?,
        name: text(row, "name")?,
        description: text(row, "description")?,
        tenant_id: project_id.clone(),
        project_id,
        addresses: Vec::new(),
        created_at: text(row, "created_at")?,
        updated_at: text(row, "updated_at")?,
        revision_number: int(row, "revision_number")? as u64,
    })
}

/// The addresses of `groups`, each group's sorted.
async fn attach_addresses(c: &mut AnyConnection, groups: &mut [AddressGroup]) -> Result<()> {
    if groups.is_empty() {
        return Ok(());
    }
    let mut by_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for chunk in groups.chunks(500) {
        let list = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT address_group_id, address FROM address_group_addresses WHERE address_group_id IN ({list}) \
             ORDER BY address_group_id, address"
        );
        let mut q = sqlx::query(&sql);
        for g in chunk {
            q = q.bind(g.id.clone());
        }
        for r in q.fetch_all(&mut *c).await? {
            by_group.entry(text(&r, "address_group_id")?).or_default().push(text(&r, "address")?);
        }
    }
    for g in groups {
        g.addresses = by_group.remove(&g.id).unwrap_or_default();
    }
    Ok(())
}

pub async fn insert_address_group(tx: &mut Tx, g: &AddressGroup) -> Result<()> {
    sqlx::query(
        "INSERT INTO address_groups (id, project_id, name, description, created_at, updated_at, revision_number) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(g.id.clone())
    .bind(g.project_id.clone())
    .bind(g.name.clone())
    .bind(g.description.clone())
    .bind(g.created_at.clone())
    .bind(g.updated_at.clone())
    .bind(g.revision_number as i64)
    .execute(tx.conn())
    .await?;
    for a in &g.addresses {
        insert_address(tx, &g.id, a).await?;
    }
    tx.touch(ObjectKind::AddressGroup, &g.id);
    Ok(())
}

async fn insert_address(tx: &mut Tx, group: &str, address: &str) -> Result<()> {
    sqlx::query("INSERT INTO address_group_addresses (address_group_id, address) VALUES ($1, $2)")
        .bind(group.to_string())
        .bind(address.to_string())
        .execute(tx.conn())
        .await?;
    Ok(())
}

pub async fn get_address_group(c: &mut AnyConnection, id: &str) -> Result<AddressGroup> {
    let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| StoreError::not_found("address_group", id))?;
    let mut groups = [decode(&row)?];
    attach_addresses(c, &mut groups).await?;
    let [g] = groups;
    Ok(g)
}

pub async fn list_address_groups(
    c: &mut AnyConnection,
    filters: &[Filter],
    page: &Page,
    visibility: &Visibility,
) -> Result<Vec<AddressGroup>> {
    let listed = crate::visibility::Listed { select: SELECT, table: "address_groups", columns: COLUMNS };
    let rows = crate::visibility::list_rows(c, listed, filters, page, visibility, |_, _| Ok(false)).await?;
    let mut groups = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
    attach_addresses(c, &mut groups).await?;
    Ok(groups)
}

/// Store a new name and description (the revision must still be `expected`).
pub async fn update_address_group(tx: &mut Tx, g: &AddressGroup, expected: u64) -> Result<()> {
    let done = sqlx::query(
        "UPDATE address_groups SET name = $1, description = $2, updated_at = $3, revision_number = $4 \
         WHERE id = $5 AND revision_number = $6",
    )
    .bind(g.name.clone())
    .bind(g.description.clone())
    .bind(g.updated_at.clone())
    .bind(expected as i64 + 1)
    .bind(g.id.clone())
    .bind(expected as i64)
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::RevisionMismatch);
    }
    Ok(())
}

/// Add (`add` true) or remove normalized CIDRs, as Neutron: adding one that is there is
/// `AddressesAlreadyExist`, removing one that is not is `AddressesNotFound`. The group's row
/// is locked first, so concurrent changes of one group take turns.
pub async fn change_addresses(tx: &mut Tx, id: &str, addresses: &[String], add: bool) -> Result<AddressGroup> {
    sqlx::query("UPDATE address_groups SET revision_number = revision_number + 1, updated_at = $1 WHERE id = $2")
        .bind(crate::now_timestamp())
        .bind(id.to_string())
        .execute(tx.conn())
        .await?;
    let current = get_address_group(tx.conn(), id).await?;
    let (present, absent): (Vec<&String>, Vec<&String>) =
        addresses.iter().partition(|a| current.addresses.contains(*a));
    let quoted =
        |list: &[&String]| format!("[{}]", list.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(", "));
    if add && !present.is_empty() {
        return Err(DomainError::bad_request(
            "AddressesAlreadyExist",
            format!("Addresses {} already exist in the address group {id}.", quoted(&present)),
        )
        .into());
    }
    if !add && !absent.is_empty() {
        return Err(DomainError::not_found(
            "AddressesNotFound",
            format!("Addresses {} not found in the address group {id}.", quoted(&absent)),
        )
        .into());
    }
    for a in addresses {
        if add {
            insert_address(tx, id, a).await?;
        } else {
            sqlx::query("DELETE FROM address_group_addresses WHERE address_group_id = $1 AND address = $2")
                .bind(id.to_string())
                .bind(a.clone())
                .execute(tx.conn())
                .await?;
        }
    }
    tx.touch(ObjectKind::AddressGroup, id);
    get_address_group(tx.conn(), id).await
}

pub async fn delete_address_group(tx: &mut Tx, id: &str) -> Result<()> {
    // Rules and templates naming it hold it `FOR KEY SHARE` until they commit: lock it first.
    tx.lock_parent("address_groups", id).await?;
    get_address_group(tx.conn(), id).await?;
    let named =
        tx.any_row("SELECT id FROM security_group_rules WHERE remote_address_group_id = $1 LIMIT 1", id).await?
            || tx
                .any_row("SELECT id FROM default_security_group_rules WHERE remote_address_group_id = $1 LIMIT 1", id)
                .await?;
    if named {
        return Err(DomainError::conflict(
            "AddressGroupInUse",
            format!("Address group {id} is in use on one or more security group rules."),
        )
        .into());
    }
    for stmt in
        ["DELETE FROM address_group_addresses WHERE address_group_id = $1", "DELETE FROM address_groups WHERE id = $1"]
    {
        sqlx::query(stmt).bind(id.to_string()).execute(tx.conn()).await?;
    }
    tx.touch(ObjectKind::AddressGroup, id);
    Ok(())
}
