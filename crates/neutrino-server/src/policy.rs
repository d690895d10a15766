//! What the caller may see of what a handler returns: rows the policy hides are dropped and
//! attributes it hides (`get_<resource>:<attribute>`, such as a port's `binding:*` or a
//! network's `provider:*`) are removed. Admin contexts see everything, unfiltered.

use crate::auth::current;
use serde_json::Value;

/// Resources whose visibility needs more than the row itself (the network's or the security
/// group's owner, sharing): lists of these are narrowed in the database and items checked
/// before the handler.
const NARROWED_IN_SQL: [&str; 3] = ["subnet", "port", "security_group_rule"];

/// Whether filtering applies to this request at all.
pub fn filtering() -> bool {
    !current().is_admin
}

/// Keep `value` visible and redacted; `false` when the caller may not see it.
pub fn view(resource: &str, value: &mut Value) -> bool {
    let ctx = current();
    if ctx.is_admin {
        return true;
    }
    let visible =
        NARROWED_IN_SQL.contains(&resource) || ctx.policy.allows(&format!("get_{resource}"), &ctx.creds, value);
    let hidden: Vec<String> = ctx
        .policy
        .attribute_rules(&format!("get_{resource}"))
        .into_iter()
        .filter(|(attr, rule)| value.get(attr).is_some() && !ctx.policy.allows(rule, &ctx.creds, value))
        .map(|(attr, _)| attr)
        .collect();
    if let Value::Object(m) = value {
        for attr in hidden {
            m.remove(&attr);
        }
    }
    visible
}

/// The resource of a response key (`networks` or `network` → `network`); `None` for keys the
/// policy does not cover (extensions, tags).
pub fn resource_of_key(key: &str) -> Option<&'static str> {
    Some(match key {
        "network" | "networks" => "network",
        "subnet" | "subnets" => "subnet",
        "port" | "ports" => "port",
        "security_group" | "security_groups" => "security_group",
        "security_group_rule" | "security_group_rules" => "security_group_rule",
        "subnetpool" | "subnetpools" => "subnetpool",
        "address_scope" | "address_scopes" => "address_scope",
        "rbac_policy" | "rbac_policies" => "rbac_policy",
        "segment" | "segments" => "segment",
        "network_segment_range" | "network_segment_ranges" => "network_segment_range",
        "agent" | "agents" => "agent",
        "network_ip_availability" | "network_ip_availabilities" => "network_ip_availability",
        "availability_zone" | "availability_zones" => "availability_zone",
        _ => return None,
    })
}
