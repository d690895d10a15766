//! What a project may see of each table, as SQL: lists of non-admin callers are narrowed in the
//! database (the policy engine then checks each row it returns).

use crate::filters::{build_where, list_sql, Column, Filter, SqlValue, Where};
use crate::{Page, Result};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;

/// Networks shared with the project by a policy naming it, or external to it (a policy naming
/// it or the wildcard): Neutron's network query hook admits both actions.
const NETWORK_SHARED_WITH: &str = "SELECT object_id FROM rbac_policies WHERE object_type = 'network' AND \
    ((action = 'access_as_shared' AND target_project = {}) OR \
    (action = 'access_as_external' AND target_project IN ({}, '*')))";

/// The condition for each table, `{}` standing for the project.
/// Security groups shared with the project (`access_as_shared`, to it or to everyone).
const GROUP_SHARED_WITH: &str = "SELECT object_id FROM rbac_policies WHERE object_type = 'security_group' \
    AND action = 'access_as_shared' AND (target_project = {} OR target_project = '*')";

pub(crate) fn clause(table: &str) -> Option<String> {
    Some(match table {
        "networks" => format!("(project_id = {{}} OR shared OR id IN ({NETWORK_SHARED_WITH}))"),
        "subnets" => format!(
            "(project_id = {{}} OR network_id IN (SELECT id FROM networks WHERE project_id = {{}} OR shared) \
             OR network_id IN ({NETWORK_SHARED_WITH}))"
        ),
        "ports" => "(project_id = {} OR network_id IN (SELECT id FROM networks WHERE project_id = {}))".into(),
        "security_groups" => format!("(project_id = {{}} OR id IN ({GROUP_SHARED_WITH}))"),
        "rbac_policies" | "address_groups" | "routers" | "floatingips" => "project_id = {}".into(),
        // Rules of groups shared with the project show inside their group, not here (as
        // Neutron, whose `sg_owner` rule hides them).
        "security_group_rules" => {
            "(project_id = {} OR security_group_id IN (SELECT id FROM security_groups WHERE project_id = {}))".into()
        }
        "subnetpools" | "address_scopes" => "(project_id = {} OR shared)".into(),
        _ => return None,
    })
}

/// Whose rows a list holds: everything (admins, the server itself), or what one project may
/// see. A typed argument of every list, never a query parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    Everything,
    Project(String),
}

/// What a list reads: its `SELECT ... FROM`, its table and its filterable columns.
pub(crate) struct Listed<'a> {
    pub select: &'a str,
    pub table: &'a str,
    pub columns: &'a [Column],
}

/// The rows of one page of a list: filtered, narrowed to `visibility`, sorted and paged
/// (in the order asked, also when paging backwards).
pub(crate) async fn list_rows(
    c: &mut AnyConnection,
    listed: Listed<'_>,
    filters: &[Filter],
    page: &Page,
    visibility: &Visibility,
    special: impl FnMut(&Filter, &mut Where) -> Result<bool>,
) -> Result<Vec<AnyRow>> {
    marker_must_exist(c, listed.table, page, visibility).await?;
    let w = build_where_for(listed.table, listed.columns, filters, visibility, special)?;
    let (sql, w) = list_sql(listed.select, listed.table, listed.columns, w, page)?;
    let mut rows = w.bind(sqlx::query(&sql)).fetch_all(&mut *c).await?;
    if page.page_reverse {
        rows.reverse();
    }
    Ok(rows)
}

/// A page that starts after an item that does not exist is that item's 404, as Neutron's
/// `get_marker_obj` answers (subnets excepted: Neutron ignores their unknown markers).
/// The marker is looked up as the caller sees the collection (another project's item is as
/// good as none).
pub(crate) async fn marker_must_exist(
    c: &mut AnyConnection,
    table: &str,
    page: &Page,
    visibility: &Visibility,
) -> Result<()> {
    let Some(marker) = &page.marker else { return Ok(()) };
    let Some(def) = neutrino_domain::resources::ALL.into_iter().find(|d| d.collection == table) else { return Ok(()) };
    if table == "subnets" {
        return Ok(());
    }
    let mut w = Where::default();
    w.add_raw("id = {}", SqlValue::Text(marker.clone()));
    if let (Visibility::Project(project), Some(c)) = (visibility, clause(table)) {
        w.add_raw(&c, SqlValue::Text(project.clone()));
    }
    let sql = format!("SELECT id FROM {table}{}", w.sql());
    match w.bind(sqlx::query(&sql)).fetch_optional(&mut *c).await? {
        Some(_) => Ok(()),
        None => Err(crate::StoreError::not_found(def.member, marker)),
    }
}

/// [`build_where`] for a list of `table` narrowed to `visibility`.
pub(crate) fn build_where_for(
    table: &str,
    columns: &[Column],
    filters: &[Filter],
    visibility: &Visibility,
    special: impl FnMut(&Filter, &mut Where) -> Result<bool>,
) -> Result<Where> {
    let mut w = build_where(columns, filters, special)?;
    if let (Visibility::Project(project), Some(c)) = (visibility, clause(table)) {
        w.add_raw(&c, SqlValue::Text(project.clone()));
    }
    Ok(w)
}
