//! What the caller may see of what a handler returns: rows the policy hides are dropped and
//! attributes it hides (`get_<resource>:<attribute>`, such as a port's `binding:*` or a
//! network's `provider:*`) are removed. Admin contexts see everything, unfiltered.

use crate::auth::current;
use neutrino_domain::resources::{self, Reads};
use serde_json::Value;

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
    let narrowed_in_sql = resources::by_member(resource).is_some_and(|d| d.reads == Reads::NarrowedInSql);
    let visible = narrowed_in_sql || ctx.policy.allows(&format!("get_{resource}"), &ctx.creds, value);
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
/// policy does not cover (extensions, tags, resources only the store narrows).
pub fn resource_of_key(key: &str) -> Option<&'static str> {
    resources::ALL
        .into_iter()
        .find(|d| (d.member == key || d.collection == key) && d.reads != Reads::StoreOnly)
        .map(|d| d.member)
}
