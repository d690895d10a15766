//! Policy checks with an explicit [`OpContext`], on targets the caller builds from rows it has
//! loaded (inside its transaction, for the operations of the application layer).

use super::OpContext;
use crate::error::HttpError;
use neutrino_api::ApiError;
use neutrino_store::{self as store};
use serde_json::{Map, Value};

/// `403 PolicyNotAuthorized` naming the rules that refused, as oslo.policy words it.
pub fn forbidden(rules: &[String]) -> HttpError {
    let text = if rules.len() == 1 {
        format!("rule:{} is disallowed by policy", rules[0])
    } else {
        format!(
            "({}) is disallowed by policy",
            rules.iter().map(|r| format!("rule:{r}")).collect::<Vec<_>>().join(" and ")
        )
    };
    HttpError(ApiError::new(403, "PolicyNotAuthorized", text))
}

impl OpContext {
    /// Check `action` and the attribute rules for `attributes` on `target`: only for the
    /// attributes Neutron enforces policy on (`enforced_attributes`), and their sub-attributes.
    pub fn enforce(&self, action: &str, attributes: &[String], target: &Value) -> Result<(), HttpError> {
        if !self.policy.allows(action, &self.creds, target) {
            return Err(forbidden(&[action.to_string()]));
        }
        let resource = action.split_once('_').map(|(_, r)| r).unwrap_or_default();
        let enforced = neutrino_domain::policy::enforced_attributes(resource);
        for attr in attributes {
            let prefixed = ["binding:", "provider:", "router:"].iter().any(|p| attr.starts_with(p));
            let base = if prefixed { attr.as_str() } else { attr.split(':').next().unwrap_or_default() };
            if !enforced.contains(&base) {
                continue;
            }
            let rule = format!("{action}:{attr}");
            if self.policy.has(&rule) && !self.policy.allows(&rule, &self.creds, target) {
                return Err(forbidden(&[action.to_string(), rule]));
            }
        }
        Ok(())
    }

    /// What lists show the caller: everything to admins, else what its project may see.
    pub fn visibility(&self) -> store::Visibility {
        if self.is_admin {
            store::Visibility::Everything
        } else {
            store::Visibility::Project(self.project_id().unwrap_or_default().to_string())
        }
    }

    /// Whether the caller may see `target` (`get_<resource>`).
    pub fn may_see(&self, resource: &str, target: &Value) -> bool {
        self.is_admin || self.policy.allows(&format!("get_{resource}"), &self.creds, target)
    }

    /// The policy target of one item of a create: the body's attributes, in the project the
    /// item is for. As neutron-lib's body checks, before any policy: only services name
    /// another project than the caller's (a 400), and `project_id` and `tenant_id` agree.
    pub fn create_target(&self, item: &Map<String, Value>) -> Result<Map<String, Value>, HttpError> {
        let own = self.project_id().unwrap_or_default();
        let named: Vec<&str> =
            ["project_id", "tenant_id"].iter().filter_map(|k| item.get(*k).and_then(Value::as_str)).collect();
        if named.len() == 2 && named[0] != named[1] {
            return Err(HttpError(ApiError::bad_request("'project_id' and 'tenant_id' do not match")));
        }
        if named.iter().any(|p| *p != own) && !self.creds.has_role("service") && !self.is_admin {
            return Err(HttpError(ApiError::bad_request(
                "Specifying 'project_id' other than the authenticated project in request is not allowed for the current user.",
            )));
        }
        let mut target = item.clone();
        let project = named.first().map(|p| p.to_string()).unwrap_or_else(|| own.to_string());
        target.insert("project_id".into(), Value::String(project.clone()));
        target.insert("tenant_id".into(), Value::String(project));
        normalize_rbac_target(&mut target);
        Ok(target)
    }

    /// Check an update of `target` (the item as it is): the action on the item as it is, its
    /// attribute rules on the item as it would become, as Neutron does.
    pub fn enforce_update(
        &self,
        resource: &str,
        target: &Value,
        changes: &Map<String, Value>,
    ) -> Result<(), HttpError> {
        let action = format!("update_{resource}");
        self.enforce(&action, &[], target)?;
        let mut normalized = changes.clone();
        normalize_rbac_target(&mut normalized);
        let mut merged = target.as_object().cloned().unwrap_or_default();
        for (k, v) in normalized {
            if !matches!(k.as_str(), "project_id" | "tenant_id") {
                merged.insert(k, v);
            }
        }
        self.enforce(&action, &attributes_of(changes), &Value::Object(merged))
    }
}

/// The attributes of a request body that have rules: top-level keys, and for `fixed_ips` the
/// keys of its entries (`fixed_ips:ip_address`, `fixed_ips:subnet_id`).
pub fn attributes_of(item: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in item {
        out.push(k.clone());
        // A dict attribute (a router's `external_gateway_info`): its keys have rules too.
        if let Value::Object(entry) = v {
            out.extend(entry.keys().map(|sub| format!("{k}:{sub}")));
        }
        if let Value::Array(entries) = v {
            for e in entries.iter().filter_map(Value::as_object) {
                for sub in e.keys() {
                    let name = format!("{k}:{sub}");
                    if !out.contains(&name) {
                        out.push(name);
                    }
                }
            }
        }
    }
    out
}

/// `target_project` is another name of `target_tenant`: rules see both.
pub fn normalize_rbac_target(target: &mut Map<String, Value>) {
    if let Some(t) = target.get("target_project").or_else(|| target.get("target_tenant")).cloned() {
        target.insert("target_tenant".into(), t.clone());
        target.insert("target_project".into(), t);
    }
}

/// The network's keys in the target of an item on it (`network:project_id`, and `shared` and
/// `router:external` as the network is to the caller: a subnet shows its network's).
pub fn add_network_keys(target: &mut Map<String, Value>, net: &Value) {
    for (ours, theirs) in [
        ("network:project_id", "project_id"),
        ("network:tenant_id", "project_id"),
        ("shared", "shared"),
        ("router:external", "router:external"),
    ] {
        target.insert(ours.into(), net.get(theirs).cloned().unwrap_or(Value::Null));
    }
}

/// What the policy needs of a network, as the caller sees it (on `c`, which may be the
/// operation's transaction): `shared` also when shared with the caller's project alone,
/// `router:external` only when external to it. `None` when it does not exist.
pub async fn network_target(ctx: &OpContext, c: &mut store::Connection, id: &str) -> Result<Option<Value>, HttpError> {
    let Some(access) = store::network_access(c, id).await? else { return Ok(None) };
    let (mut shared, mut external) = (access.shared, access.router_external);
    if let Some(project) = ctx.project_id() {
        let ids = [id.to_string()];
        if !shared && access.project_id != project {
            shared = !store::networks_shared_with(c, project, &ids).await?.is_empty();
        }
        // External to this project only when a policy makes it so (or it owns it).
        if external && access.project_id != project {
            external = !store::networks_external_to(c, project, &ids).await?.is_empty();
        }
    }
    Ok(Some(serde_json::json!({
        "id": id,
        "project_id": access.project_id,
        "tenant_id": access.project_id,
        "shared": shared,
        "router:external": external,
    })))
}

/// Inside the transaction that creates a subnet or port on a network, check again that the
/// caller may, as Neutron's `_validate_network_project_ownership`: the network is shared with
/// the caller or belongs to `project` (the new item's). A network the caller cannot see is a
/// `NetworkNotFound`, one it sees but may not use (an external one) Neutron's bare 404. The
/// network's row is locked against a change of who may use it (RBAC changes lock it first),
/// so the check and the use see the same sharing. Admins and services pass.
pub async fn may_use_network(
    ctx: &OpContext,
    tx: &mut store::Tx,
    id: &str,
    project: &str,
    lock: store::NetworkUse,
) -> Result<(), HttpError> {
    store::lock_network_for_use(tx, id, lock).await?;
    if ctx.is_admin || ctx.creds.has_role("service") {
        return Ok(());
    }
    let net = match network_target(ctx, tx.conn(), id).await? {
        Some(net) if ctx.may_see("network", &net) => net,
        _ => return Err(HttpError(ApiError::not_found("network", id))),
    };
    let shared = net.get("shared").and_then(Value::as_bool).unwrap_or(false);
    if !shared && net.get("project_id").and_then(Value::as_str) != Some(project) {
        return Err(HttpError(ApiError::new(404, "HTTPNotFound", "The resource could not be found.")));
    }
    Ok(())
}

/// What an operation does to an existing item, for [`authorize_item`].
pub enum ItemAction<'a> {
    /// Read it: only `get_<resource>`.
    Read,
    /// Change these attributes (`update_<resource>` and its attribute rules).
    Update(&'a Map<String, Value>),
    /// Delete it.
    Delete,
    /// An action with rules of its own (`add_addresses`), or an update without attributes
    /// (its tags: `update_<resource>`).
    Named(&'a str),
}

/// Authorize an operation on item `id` of `resource`, on the item as `c` (the operation's
/// transaction, for writes) sees it: one the caller may not see is not found whatever the
/// operation, then the operation's rules apply. Unknown items pass (the operation answers its
/// own 404). Admins pass (every default rule admits them).
pub async fn authorize_item(
    ctx: &OpContext,
    c: &mut store::Connection,
    resource: &str,
    id: &str,
    action: ItemAction<'_>,
) -> Result<(), HttpError> {
    if ctx.is_admin {
        return Ok(());
    }
    let Some(target) = item_target(ctx, c, resource, id).await? else { return Ok(()) };
    if !ctx.may_see(resource, &target) {
        return Err(HttpError(ApiError::not_found(resource, id)));
    }
    match action {
        ItemAction::Read => Ok(()),
        ItemAction::Update(changes) => ctx.enforce_update(resource, &target, changes),
        ItemAction::Delete => ctx.enforce(&format!("delete_{resource}"), &[], &target),
        ItemAction::Named(action) => ctx.enforce(action, &[], &target),
    }
}

/// Authorize creating one item of `resource` from the attributes `given`, inside the create's
/// transaction: `create_<resource>` and its attribute rules, and the objects the body names
/// must be ones the caller sees.
pub async fn authorize_create(
    ctx: &OpContext,
    c: &mut store::Connection,
    resource: &str,
    given: &Map<String, Value>,
) -> Result<(), HttpError> {
    if ctx.is_admin {
        return Ok(());
    }
    let target = ctx.create_target(given)?;
    ctx.enforce(&format!("create_{resource}"), &attributes_of(given), &Value::Object(target))?;
    for (key, referenced) in [("subnetpool_id", "subnetpool"), ("address_scope_id", "address_scope")] {
        if let Some(id) = given.get(key).and_then(Value::as_str) {
            authorize_item(ctx, c, referenced, id, ItemAction::Read).await?;
        }
    }
    Ok(())
}

/// What the policy sees of an existing item (on `c`), `None` when it does not exist.
pub async fn item_target(
    ctx: &OpContext,
    c: &mut store::Connection,
    resource: &str,
    id: &str,
) -> Result<Option<Value>, HttpError> {
    fn json<T: serde::Serialize>(found: store::Result<T>) -> Result<Option<Value>, HttpError> {
        match found {
            Ok(item) => Ok(Some(serde_json::to_value(&item).unwrap_or(Value::Null))),
            Err(store::StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    match resource {
        "network" => network_target(ctx, c, id).await,
        "subnetpool" => json(store::get_pool(c, id).await),
        "address_scope" => json(store::get_scope(c, id).await),
        "address_group" => json(store::get_address_group(c, id).await),
        "default_security_group_rule" => json(store::get_default_rule(c, id).await),
        "rbac_policy" => json(store::get_rbac_policy(c, id).await),
        "router" => json(store::get_router(c, id).await),
        "floatingip" => json(store::get_floatingip(c, id).await),
        "segment" => json(store::get_segment(c, id).await),
        "network_segment_range" => json(store::get_range(c, id).await),
        "agent" => match store::get_agent(c, id).await {
            Ok(a) => Ok(Some(serde_json::json!({"id": a.id, "host": a.host}))),
            Err(store::StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        },
        "subnet" => match store::get_subnet(c, id).await {
            Ok(s) => with_network_keys(ctx, c, serde_json::to_value(&s).unwrap_or_default(), &s.network_id).await,
            Err(store::StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        },
        "port" => match store::get_port(c, id).await {
            Ok(p) => with_network_keys(ctx, c, serde_json::to_value(&p).unwrap_or_default(), &p.network_id).await,
            Err(store::StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        },
        "security_group" => match store::get_group(c, id).await {
            Ok(mut g) => {
                if let Some(project) = ctx.project_id() {
                    g.shared = store::group_shared_with(c, id, project).await?;
                }
                Ok(Some(serde_json::to_value(&g).unwrap_or_default()))
            }
            Err(store::StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        },
        // A resource this does not know is a bug of the caller, never a pass.
        other => Err(HttpError(ApiError::internal(format!("no policy target for {other}")))),
    }
}

async fn with_network_keys(
    ctx: &OpContext,
    c: &mut store::Connection,
    mut target: Value,
    network_id: &str,
) -> Result<Option<Value>, HttpError> {
    if let (Some(net), Value::Object(m)) = (network_target(ctx, c, network_id).await?, &mut target) {
        add_network_keys(m, &net);
    }
    Ok(Some(target))
}
