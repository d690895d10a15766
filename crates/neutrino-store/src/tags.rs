//! Tags of networks, subnets and ports: the `/tags` sub-resource and the `tags`, `tags-any`,
//! `not-tags` and `not-tags-any` filters.

use crate::filters::{Filter, SqlValue, Where};
use crate::rows::text;
use crate::{Result, StoreError, Tx};
use sqlx::AnyConnection;
use std::collections::HashMap;

/// Neutron's limit on one tag.
pub const MAX_TAG_LENGTH: usize = 255;

/// The resources that carry tags, by collection name (also their table name): those their
/// definitions mark taggable.
pub fn is_taggable(collection: &str) -> bool {
    neutrino_domain::resources::taggable_collections().any(|c| c == collection)
}

fn table_of(collection: &str) -> Result<&'static str> {
    neutrino_domain::resources::taggable_collections()
        .find(|t| *t == collection)
        .ok_or_else(|| StoreError::BadFilter(format!("{collection} cannot be tagged")))
}

/// Tags of one resource, sorted.
pub async fn tags_of(c: &mut AnyConnection, collection: &str, id: &str) -> Result<Vec<String>> {
    let rows = sqlx::query("SELECT tag FROM tags WHERE resource_type = $1 AND resource_id = $2 ORDER BY tag")
        .bind(collection.to_string())
        .bind(id.to_string())
        .fetch_all(&mut *c)
        .await?;
    rows.iter().map(|r| text(r, "tag")).collect()
}

/// Tags of many resources of one collection: id → sorted tags.
pub async fn tags_by_id(c: &mut AnyConnection, collection: &str) -> Result<HashMap<String, Vec<String>>> {
    let rows = sqlx::query("SELECT resource_id, tag FROM tags WHERE resource_type = $1 ORDER BY resource_id, tag")
        .bind(collection.to_string())
        .fetch_all(&mut *c)
        .await?;
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for r in rows {
        out.entry(text(&r, "resource_id")?).or_default().push(text(&r, "tag")?);
    }
    Ok(out)
}

/// Make sure the resource exists (404 otherwise).
async fn require(tx: &mut Tx, collection: &str, id: &str) -> Result<&'static str> {
    let table = table_of(collection)?;
    let found = sqlx::query(&format!("SELECT id FROM {table} WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(tx.conn())
        .await?;
    if found.is_none() {
        let resource = &collection[..collection.len() - 1];
        return Err(StoreError::not_found(
            match resource {
                "network" => "network",
                "subnet" => "subnet",
                "security_group" => "security_group",
                "subnetpool" => "subnetpool",
                "router" => "router",
                "floatingip" => "floatingip",
                _ => "port",
            },
            id,
        ));
    }
    Ok(table)
}

/// A change of tags is a change of the resource: revision and `updated_at` move, and a port's
/// rendered body is rendered again at commit.
async fn touch(tx: &mut Tx, table: &str, id: &str) -> Result<()> {
    sqlx::query(&format!("UPDATE {table} SET revision_number = revision_number + 1, updated_at = $1 WHERE id = $2"))
        .bind(crate::now_timestamp())
        .bind(id.to_string())
        .execute(tx.conn())
        .await?;
    if table == "ports" {
        tx.port_body_stale(id);
    }
    if let Some(resource) = neutrino_domain::changes::Resource::of_table(table) {
        tx.record_change(resource, id, neutrino_domain::changes::Operation::Tags);
    }
    Ok(())
}

/// Replace all tags of a resource.
pub async fn set_tags(tx: &mut Tx, collection: &str, id: &str, tags: &[String]) -> Result<()> {
    let table = require(tx, collection, id).await?;
    sqlx::query("DELETE FROM tags WHERE resource_type = $1 AND resource_id = $2")
        .bind(table.to_string())
        .bind(id.to_string())
        .execute(tx.conn())
        .await?;
    for tag in tags {
        insert(tx, table, id, tag).await?;
    }
    touch(tx, table, id).await
}

async fn insert(tx: &mut Tx, table: &str, id: &str, tag: &str) -> Result<bool> {
    let done =
        sqlx::query("INSERT INTO tags (resource_type, resource_id, tag) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(table.to_string())
            .bind(id.to_string())
            .bind(tag.to_string())
            .execute(tx.conn())
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Tags given when the resource is created (no revision bump: the resource is new).
pub async fn insert_initial_tags(tx: &mut Tx, collection: &str, id: &str, tags: &[String]) -> Result<()> {
    let table = table_of(collection)?;
    for tag in tags {
        insert(tx, table, id, tag).await?;
    }
    Ok(())
}

/// Add one tag (adding a present tag changes nothing).
pub async fn add_tag(tx: &mut Tx, collection: &str, id: &str, tag: &str) -> Result<()> {
    let table = require(tx, collection, id).await?;
    if insert(tx, table, id, tag).await? {
        touch(tx, table, id).await?;
    }
    Ok(())
}

/// Remove one tag; `false` when the resource did not have it.
pub async fn remove_tag(tx: &mut Tx, collection: &str, id: &str, tag: &str) -> Result<bool> {
    let table = require(tx, collection, id).await?;
    let done = sqlx::query("DELETE FROM tags WHERE resource_type = $1 AND resource_id = $2 AND tag = $3")
        .bind(table.to_string())
        .bind(id.to_string())
        .bind(tag.to_string())
        .execute(tx.conn())
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    touch(tx, table, id).await?;
    Ok(true)
}

/// Remove every tag of a resource (when the resource itself is deleted, too).
pub async fn clear_tags(tx: &mut Tx, collection: &str, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM tags WHERE resource_type = $1 AND resource_id = $2")
        .bind(table_of(collection)?.to_string())
        .bind(id.to_string())
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// The tag filters, as conditions on `id` (values are comma-separated tag lists).
pub(crate) fn tag_filter(collection: &'static str) -> impl Fn(&Filter, &mut Where) -> Result<bool> {
    move |f: &Filter, w: &mut Where| {
        let (negate, all) = match f.attribute.as_str() {
            "tags" => (false, true),
            "tags-any" => (false, false),
            "not-tags" => (true, true),
            "not-tags-any" => (true, false),
            _ => return Ok(false),
        };
        let tags: Vec<String> = f
            .values
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect();
        if tags.is_empty() {
            return Ok(true);
        }
        w.values.push(SqlValue::Text(collection.to_string()));
        let kind = w.values.len();
        let mut list = Vec::new();
        for t in &tags {
            w.values.push(SqlValue::Text(t.clone()));
            list.push(format!("${}", w.values.len()));
        }
        let having = if all {
            format!(" GROUP BY resource_id HAVING COUNT(DISTINCT tag) = {}", tags.len())
        } else {
            String::new()
        };
        let not = if negate { "NOT " } else { "" };
        w.clauses.push(format!(
            "id {not}IN (SELECT resource_id FROM tags WHERE resource_type = ${kind} AND tag IN ({}){having})",
            list.join(", ")
        ));
        Ok(true)
    }
}
