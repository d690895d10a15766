//! Policy checks before a handler runs, from the path alone, as Neutron's API layer does them:
//!
//! - a create is checked against `create_<resource>` and `create_<resource>:<attribute>` for
//!   each attribute given (`403 PolicyNotAuthorized`); a subnet or port on a network the caller
//!   cannot see is a 404 for that network;
//! - an item the caller may not see (`get_<resource>`) is a 404, whatever the method;
//! - an update or delete is then checked against `update_`/`delete_<resource>` (and attribute
//!   rules for updates): 403.
//!
//! Lists are narrowed in the database and by the policy when written (see `crate::policy`).
//! Admin contexts (`context_is_admin`) pass: every default rule admits them.

use super::{buffer, current, rebuild};
use crate::error::HttpError;
use crate::App;
use axum::extract::Request;
use axum::http::Method;
use neutrino_api::ApiError;
use neutrino_store::{self as store, StoreError};
use serde_json::{Map, Value};

/// The resource a collection path holds.
pub fn resource_of_collection(collection: &str) -> Option<&'static str> {
    Some(match collection {
        "networks" => "network",
        "subnets" => "subnet",
        "ports" => "port",
        "security-groups" | "security_groups" => "security_group",
        "security-group-rules" | "security_group_rules" => "security_group_rule",
        "subnetpools" => "subnetpool",
        "address-scopes" | "address_scopes" => "address_scope",
        "rbac-policies" | "rbac_policies" => "rbac_policy",
        "segments" => "segment",
        "network_segment_ranges" => "network_segment_range",
        "agents" => "agent",
        "network-ip-availabilities" | "network_ip_availabilities" => "network_ip_availability",
        "availability_zones" => "availability_zone",
        "quotas" => "quota",
        _ => return None,
    })
}

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

/// Check `action` and the attribute rules for `attributes` on `target`.
fn enforce(app: &App, action: &str, attributes: &[String], target: &Value) -> Result<(), HttpError> {
    let ctx = current();
    if !app.policy.allows(action, &ctx.creds, target) {
        return Err(forbidden(&[action.to_string()]));
    }
    for attr in attributes {
        let rule = format!("{action}:{attr}");
        if app.policy.has(&rule) && !app.policy.allows(&rule, &ctx.creds, target) {
            return Err(forbidden(&[action.to_string(), rule]));
        }
    }
    Ok(())
}

/// The attributes of a request body that have rules: top-level keys, and for `fixed_ips` the
/// keys of its entries (`fixed_ips:ip_address`, `fixed_ips:subnet_id`).
fn attributes_of(item: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in item {
        out.push(k.clone());
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

pub async fn request(app: App, req: Request) -> Result<Request, HttpError> {
    // Every rule starts with `rule:admin_only`: admins are not narrowed, and are spared the
    // lookups the checks need.
    if current().is_admin {
        return Ok(req);
    }
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix("/v2.0/") else { return Ok(req) };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method().clone();
    match segments.as_slice() {
        ["neutrino", ..] => {
            enforce(&app, "neutrino_agent", &[], &Value::Null)?;
            Ok(req)
        }
        ["quotas", project, ..] if !matches!(*project, "tenant" | "project") => {
            let action = match method {
                Method::PUT => "update_quota",
                Method::DELETE => "delete_quota",
                _ => "get_quota",
            };
            let target = serde_json::json!({"project_id": project, "tenant_id": project});
            enforce(&app, action, &[], &target)?;
            Ok(req)
        }
        [collection] if method == Method::POST => {
            let Some(resource) = resource_of_collection(collection) else { return Ok(req) };
            let (parts, bytes) = buffer(req).await.map_err(|_| HttpError(ApiError::malformed_body()))?;
            authorize_create(&app, resource, collection, &bytes).await?;
            Ok(rebuild(parts, bytes))
        }
        [collection, id, tail @ ..] => {
            let Some(resource) = resource_of_collection(collection) else { return Ok(req) };
            if matches!(resource, "quota" | "availability_zone") {
                return Ok(req);
            }
            let Some(target) = target_of(&app, resource, id).await? else {
                // Unknown ids: the handler answers with its own 404.
                return Ok(req);
            };
            let ctx = current();
            if !app.policy.allows(&format!("get_{resource}"), &ctx.creds, &target) {
                return Err(HttpError(ApiError::not_found(resource, id)));
            }
            let action = match (&method, tail.is_empty()) {
                (&Method::GET, _) => return Ok(req),
                // Tags are part of the resource: changing them is an update.
                (_, false) => format!("update_{resource}"),
                (&Method::PUT, true) => format!("update_{resource}"),
                (&Method::DELETE, true) => format!("delete_{resource}"),
                _ => return Ok(req),
            };
            if method == Method::PUT && tail.is_empty() {
                let (parts, bytes) = buffer(req).await.map_err(|_| HttpError(ApiError::malformed_body()))?;
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let attrs = body.get(resource).and_then(Value::as_object).map(attributes_of).unwrap_or_default();
                enforce(&app, &action, &attrs, &target)?;
                return Ok(rebuild(parts, bytes));
            }
            enforce(&app, &action, &[], &target)?;
            Ok(req)
        }
        _ => Ok(req),
    }
}

/// `create_<resource>` for each item of a (bulk) create body.
async fn authorize_create(app: &App, resource: &str, collection: &str, bytes: &[u8]) -> Result<(), HttpError> {
    let Ok(body) = serde_json::from_slice::<Value>(bytes) else {
        // The handler answers malformed bodies.
        return Ok(());
    };
    let plural = collection.replace('-', "_");
    let items: Vec<&Map<String, Value>> = match (body.get(resource), body.get(&plural)) {
        (Some(Value::Object(one)), _) => vec![one],
        (_, Some(Value::Array(many))) => many.iter().filter_map(Value::as_object).collect(),
        _ => return Ok(()),
    };
    let ctx = current();
    for item in items {
        let mut target = item.clone();
        let project = item
            .get("project_id")
            .or_else(|| item.get("tenant_id"))
            .and_then(Value::as_str)
            .map(String::from)
            .or_else(|| ctx.project_id().map(String::from))
            .unwrap_or_default();
        target.insert("project_id".into(), Value::String(project.clone()));
        target.insert("tenant_id".into(), Value::String(project));
        if let Some(target_tenant) = item.get("target_tenant").or_else(|| item.get("target_project")) {
            target.insert("target_tenant".into(), target_tenant.clone());
            target.insert("target_project".into(), target_tenant.clone());
        }
        if matches!(resource, "subnet" | "port") {
            if let Some(network_id) = item.get("network_id").and_then(Value::as_str) {
                match network_target(app, network_id).await? {
                    Some(net) => {
                        if !app.policy.allows("get_network", &ctx.creds, &net) {
                            return Err(HttpError(ApiError::not_found("network", network_id)));
                        }
                        add_network_keys(&mut target, &net);
                    }
                    // The handler answers unknown networks.
                    None => return Ok(()),
                }
            }
        }
        enforce(app, &format!("create_{resource}"), &attributes_of(item), &Value::Object(target))?;
    }
    Ok(())
}

fn add_network_keys(target: &mut Map<String, Value>, net: &Value) {
    for (ours, theirs) in
        [("network:project_id", "project_id"), ("network:tenant_id", "project_id"), ("shared", "shared")]
    {
        target.insert(ours.into(), net.get(theirs).cloned().unwrap_or(Value::Null));
    }
}

fn missing(e: StoreError) -> Result<Option<Value>, HttpError> {
    match e {
        StoreError::NotFound { .. } => Ok(None),
        other => Err(other.into()),
    }
}

/// What the policy needs of a network, as the caller sees it: `shared` also when shared with the
/// caller's project alone.
async fn network_target(app: &App, id: &str) -> Result<Option<Value>, HttpError> {
    let mut c = app.store.reader().await?;
    let Some(access) = store::network_access(&mut c, id).await? else { return Ok(None) };
    let mut shared = access.shared;
    if let Some(project) = current().project_id() {
        if !shared && access.project_id != project {
            shared = !store::networks_shared_with(&mut c, project, &[id.to_string()]).await?.is_empty();
        }
    }
    Ok(Some(serde_json::json!({
        "id": id,
        "project_id": access.project_id,
        "tenant_id": access.project_id,
        "shared": shared,
        "router:external": access.router_external,
    })))
}

/// What the policy sees of an existing item, `None` when it does not exist.
async fn target_of(app: &App, resource: &str, id: &str) -> Result<Option<Value>, HttpError> {
    macro_rules! fetch {
        ($get:expr) => {{
            let mut c = app.store.reader().await?;
            match $get(&mut c, id).await {
                Ok(item) => serde_json::to_value(&item).unwrap_or(Value::Null),
                Err(e) => return missing(e),
            }
        }};
    }
    let mut v = match resource {
        "network" => return network_target(app, id).await,
        "subnet" => fetch!(store::get_subnet),
        "port" => fetch!(store::get_port),
        "security_group" => fetch!(store::get_group),
        "security_group_rule" => fetch!(store::get_rule),
        "subnetpool" => fetch!(store::get_pool),
        "address_scope" => fetch!(store::get_scope),
        "rbac_policy" => fetch!(store::get_rbac_policy),
        "segment" => fetch!(store::get_segment),
        "network_segment_range" => fetch!(store::get_range),
        "agent" => {
            let mut c = app.store.reader().await?;
            match store::get_agent(&mut c, id).await {
                Ok(a) => serde_json::json!({"id": a.id, "host": a.host}),
                Err(e) => return missing(e),
            }
        }
        _ => return Ok(None),
    };
    if matches!(resource, "subnet" | "port") {
        if let Some(network_id) = v.get("network_id").and_then(Value::as_str).map(String::from) {
            if let Some(net) = network_target(app, &network_id).await? {
                if let Value::Object(m) = &mut v {
                    add_network_keys(m, &net);
                }
            }
        }
    }
    Ok(Some(v))
}
