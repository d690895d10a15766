//! What a project may see of each table, as SQL: lists of non-admin callers are narrowed in the
//! database (the policy engine then checks each row it returns).

use crate::filters::{Filter, SqlValue, Where};
use crate::Result;

/// The pseudo-filter carrying the caller's project (never a client's query parameter: those
/// are checked against each table's columns).
pub const VISIBLE_TO: &str = "__visible_to";

/// Networks shared with the project by a policy naming it, or external to it (a policy naming
/// it or the wildcard): Neutron's network query hook admits both actions.
const NETWORK_SHARED_WITH: &str = "SELECT object_id FROM rbac_policies WHERE object_type = 'network' AND \
    ((action = 'access_as_shared' AND target_project = {}) OR \
    (action = 'access_as_external' AND target_project IN ({}, '*')))";

/// The condition for each table, `{}` standing for the project.
pub(crate) fn clause(table: &str) -> Option<String> {
    Some(match table {
        "networks" => format!("(project_id = {{}} OR shared OR id IN ({NETWORK_SHARED_WITH}))"),
        "subnets" => format!(
            "(project_id = {{}} OR network_id IN (SELECT id FROM networks WHERE project_id = {{}} OR shared) \
             OR network_id IN ({NETWORK_SHARED_WITH}))"
        ),
        "ports" => "(project_id = {} OR network_id IN (SELECT id FROM networks WHERE project_id = {}))".into(),
        "security_groups" | "rbac_policies" => "project_id = {}".into(),
        "security_group_rules" => {
            "(project_id = {} OR security_group_id IN (SELECT id FROM security_groups WHERE project_id = {}))".into()
        }
        "subnetpools" | "address_scopes" => "(project_id = {} OR shared)".into(),
        _ => return None,
    })
}

/// Wrap a table's special-filter handler so that [`VISIBLE_TO`] narrows the list.
pub(crate) fn narrowed<F>(table: &'static str, mut inner: F) -> impl FnMut(&Filter, &mut Where) -> Result<bool>
where
    F: FnMut(&Filter, &mut Where) -> Result<bool>,
{
    move |f: &Filter, w: &mut Where| {
        if f.attribute != VISIBLE_TO {
            return inner(f, w);
        }
        if let (Some(c), Some(project)) = (clause(table), f.values.first()) {
            w.add_raw(&c, SqlValue::Text(project.clone()));
        }
        Ok(true)
    }
}
