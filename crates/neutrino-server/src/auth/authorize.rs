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
use crate::app::authorize::{add_network_keys, attributes_of, normalize_rbac_target};
use crate::app::AUTHORIZED_HERE;
use crate::error::HttpError;
use crate::request::body_error;
use crate::App;
use axum::extract::Request;
use axum::http::Method;
use neutrino_api::ApiError;
use neutrino_domain::resources::{self, ResourceDef};
use neutrino_store::{self as store, StoreError};
use serde_json::{Map, Value};

pub use crate::app::authorize::forbidden;

/// Check `action` (and attribute rules) for the request's caller.
fn enforce(_app: &App, action: &str, attributes: &[String], target: &Value) -> Result<(), HttpError> {
    current().enforce(action, attributes, target)
}

/// Authorize a request: it goes on to its handler, or the caller gets an error (or, for an
/// admin-only list, an empty one).
pub async fn request(app: App, req: Request) -> Result<Request, axum::response::Response> {
    use axum::response::IntoResponse;
    match check(app, req).await {
        Ok(Checked::Pass(req)) => Ok(*req),
        Ok(Checked::EmptyList(key)) => Err(axum::Json(serde_json::json!({ key: [] })).into_response()),
        Err(e) => Err(e.into_response()),
    }
}

enum Checked {
    Pass(Box<Request>),
    EmptyList(String),
}

impl From<Request> for Checked {
    fn from(req: Request) -> Self {
        Checked::Pass(Box::new(req))
    }
}

async fn check(app: App, req: Request) -> Result<Checked, HttpError> {
    // Every rule starts with `rule:admin_only`: admins are not narrowed, and are spared the
    // lookups the checks need.
    if current().is_admin {
        return Ok(req.into());
    }
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix("/v2.0/") else { return Ok(req.into()) };
    // The router decodes `%xx` in path parameters: decide on the same decoded segments.
    let decoded: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect::<Option<_>>()
        .ok_or_else(|| HttpError(ApiError::no_route()))?;
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let method = req.method().clone();
    match segments.as_slice() {
        // Collections only admins may read: nothing to list (and nothing computed for it).
        [collection] if method == Method::GET => {
            let Some(resource) = resources::by_path(collection).map(|d| d.member) else { return Ok(req.into()) };
            if ADMIN_ONLY_LISTS.contains(&resource)
                && !app.policy.allows(&format!("get_{resource}"), &current().creds, &Value::Null)
            {
                return Ok(Checked::EmptyList(collection.replace('-', "_")));
            }
            check_hidden_filters(&app, resource, req.uri().query())?;
            Ok(req.into())
        }
        ["neutrino", ..] => {
            enforce(&app, "neutrino_agent", &[], &Value::Null)?;
            Ok(req.into())
        }
        ["quotas", project, ..] if !matches!(*project, "tenant" | "project") => {
            let action = match method {
                Method::PUT => "update_quota",
                Method::DELETE => "delete_quota",
                _ => "get_quota",
            };
            let target = serde_json::json!({"project_id": project, "tenant_id": project});
            enforce(&app, action, &[], &target)?;
            Ok(req.into())
        }
        [collection] if method == Method::POST => {
            let Some(def) = resources::by_path(collection) else { return Ok(req.into()) };
            if AUTHORIZED_HERE.contains(&def.member) {
                return Ok(req.into());
            }
            let (parts, bytes) = buffer(req).await.map_err(|_| HttpError(ApiError::malformed_body()))?;
            authorize_create(&app, def, &bytes).await?;
            Ok(rebuild(parts, bytes).into())
        }
        [collection, id, tail @ ..] => {
            let Some(def) = resources::by_path(collection) else { return Ok(req.into()) };
            let resource = def.member;
            if matches!(resource, "quota" | "availability_zone")
                || (tail.is_empty() && AUTHORIZED_HERE.contains(&resource))
            {
                return Ok(req.into());
            }
            // As Neutron's API layer: the body is judged before the item is looked up (an
            // attribute an update may not change is a 400, whoever's the item).
            let req = if method == Method::PUT && tail.is_empty() {
                let (parts, bytes) = buffer(req).await.map_err(|_| HttpError(ApiError::malformed_body()))?;
                if let Some(changes) =
                    serde_json::from_slice::<Value>(&bytes).ok().as_ref().and_then(|b| b.get(resource)?.as_object())
                {
                    def.check_update(changes.keys().map(String::as_str)).map_err(|e| HttpError(body_error(e)))?;
                }
                rebuild(parts, bytes)
            } else {
                req
            };
            let Some(target) = target_of(&app, resource, id).await? else {
                // Unknown ids: the handler answers with its own 404.
                return Ok(req.into());
            };
            let ctx = current();
            if !app.policy.allows(&format!("get_{resource}"), &ctx.creds, &target) {
                return Err(HttpError(ApiError::not_found(resource, id)));
            }
            let action = match (&method, tail.is_empty()) {
                (&Method::GET, _) => return Ok(req.into()),
                // Address groups' member actions have rules of their own.
                (_, false) if resource == "address_group" && matches!(tail, ["add_addresses" | "remove_addresses"]) => {
                    tail[0].to_string()
                }
                // Tags are part of the resource: changing them is an update.
                (_, false) => format!("update_{resource}"),
                (&Method::PUT, true) => format!("update_{resource}"),
                (&Method::DELETE, true) => format!("delete_{resource}"),
                _ => return Ok(req.into()),
            };
            if method == Method::PUT && tail.is_empty() {
                let (parts, bytes) = buffer(req).await.map_err(|_| HttpError(ApiError::malformed_body()))?;
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let Some(changes) = body.get(resource).and_then(Value::as_object) else {
                    return Ok(rebuild(parts, bytes).into());
                };
                // The action is checked on the object as it is; its attribute rules on the object
                // as it would become, as Neutron does.
                enforce(&app, &action, &[], &target)?;
                let mut normalized = changes.clone();
                normalize_rbac_target(&mut normalized);
                let mut merged = target.as_object().cloned().unwrap_or_default();
                for (k, v) in normalized {
                    if !matches!(k.as_str(), "project_id" | "tenant_id") {
                        merged.insert(k, v);
                    }
                }
                enforce(&app, &action, &attributes_of(changes), &Value::Object(merged))?;
                check_references(&app, changes).await?;
                return Ok(rebuild(parts, bytes).into());
            }
            enforce(&app, &action, &[], &target)?;
            Ok(req.into())
        }
        _ => Ok(req.into()),
    }
}

/// `create_<resource>` for each item of a (bulk) create body.
async fn authorize_create(app: &App, def: &ResourceDef, bytes: &[u8]) -> Result<(), HttpError> {
    let Ok(body) = serde_json::from_slice::<Value>(bytes) else {
        // The handler answers malformed bodies.
        return Ok(());
    };
    let (resource, plural) = (def.member, def.collection);
    let items: Vec<&Map<String, Value>> = match (body.get(plural), body.get(resource)) {
        // Bulk items may be wrapped in the resource's name, as the handler reads them.
        (Some(Value::Array(many)), _) => many.iter().filter_map(|v| v.get(resource).unwrap_or(v).as_object()).collect(),
        (_, Some(Value::Object(one))) => vec![one],
        _ => return Ok(()),
    };
    let ctx = current();
    for item in items {
        // As neutron-lib's body checks, before any policy: attributes the resource does not
        // have, or a create may not set, and only admins (and services) name another project.
        def.check_create(item.keys().map(String::as_str)).map_err(|e| HttpError(body_error(e)))?;
        let mut target = ctx.create_target(item)?;
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
        if resource == "security_group_rule" {
            check_parent_group(app, item).await?;
        }
        check_references(app, item).await?;
    }
    Ok(())
}

/// Filtering or sorting on an attribute the caller may not see would reveal it: refused as an
/// attribute the collection does not filter on. Neutron lets everyone filter networks on their
/// `provider:*` attributes (Tempest relies on it), so those filters stay allowed; sorting on
/// them, and filtering ports on where they are bound (`binding:*`), do not.
fn check_hidden_filters(app: &App, resource: &str, query: Option<&str>) -> Result<(), HttpError> {
    let Some(query) = query else { return Ok(()) };
    let ctx = current();
    let hidden: Vec<String> = app
        .policy
        .attribute_rules(&format!("get_{resource}"))
        .into_iter()
        .filter(|(_, rule)| !app.policy.allows(rule, &ctx.creds, &Value::Null))
        .map(|(attr, _)| attr)
        .collect();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let sorting = key == "sort_key";
        let attribute = if sorting { value.as_ref() } else { key.as_ref() };
        if !sorting && attribute.starts_with("provider:") {
            continue;
        }
        if hidden.iter().any(|h| h == attribute) {
            return Err(HttpError(ApiError::bad_request(format!(
                "['{attribute}'] is invalid attribute for filtering"
            ))));
        }
    }
    Ok(())
}

/// Objects a body names must be visible to the caller: security groups (of a port, or a rule's
/// remote group), subnet pools (of a subnet) and address scopes (of a pool).
async fn check_references(app: &App, item: &Map<String, Value>) -> Result<(), HttpError> {
    let mut refs: Vec<(&str, String)> = Vec::new();
    if let Some(Value::Array(groups)) = item.get("security_groups") {
        refs.extend(groups.iter().filter_map(Value::as_str).map(|g| ("security_group", g.to_string())));
    }
    for (key, resource) in [
        ("remote_group_id", "security_group"),
        ("remote_address_group_id", "address_group"),
        ("subnetpool_id", "subnetpool"),
        ("address_scope_id", "address_scope"),
    ] {
        if let Some(id) = item.get(key).and_then(Value::as_str) {
            refs.push((resource, id.to_string()));
        }
    }
    let ctx = current();
    for (resource, id) in refs {
        if let Some(target) = target_of(app, resource, &id).await? {
            if !app.policy.allows(&format!("get_{resource}"), &ctx.creds, &target) {
                return Err(HttpError(ApiError::not_found(resource, &id)));
            }
        }
    }
    Ok(())
}

/// A rule goes into a group its project owns (Neutron's `sg_owner`): other groups are not found.
async fn check_parent_group(app: &App, item: &Map<String, Value>) -> Result<(), HttpError> {
    let Some(group_id) = item.get("security_group_id").and_then(Value::as_str) else { return Ok(()) };
    let Some(group) = target_of(app, "security_group", group_id).await? else { return Ok(()) };
    let ctx = current();
    let owner = group.get("project_id").and_then(Value::as_str);
    if owner != ctx.project_id() {
        return Err(HttpError(ApiError::not_found("security_group", group_id)));
    }
    Ok(())
}

/// Resources whose lists only admins see (by default): answered empty without being computed.
const ADMIN_ONLY_LISTS: [&str; 4] = ["agent", "segment", "network_segment_range", "network_ip_availability"];

/// `%xx` decoding of one path segment; `None` for malformed escapes or non-UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn missing(e: StoreError) -> Result<Option<Value>, HttpError> {
    match e {
        StoreError::NotFound { .. } => Ok(None),
        other => Err(other.into()),
    }
}

/// What the policy needs of a network, as the caller sees it: `shared` also when shared with the
/// caller's project alone, `router:external` only when external to it.
async fn network_target(app: &App, id: &str) -> Result<Option<Value>, HttpError> {
    let mut c = app.store.reader().await?;
    network_target_on(&mut c, id).await
}

async fn network_target_on(c: &mut store::Connection, id: &str) -> Result<Option<Value>, HttpError> {
    crate::app::authorize::network_target(&current(), c, id).await
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
        "address_group" => fetch!(store::get_address_group),
        "default_security_group_rule" => fetch!(store::get_default_rule),
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
    if resource == "security_group" {
        // `shared`: shared with the caller (Neutron's per-project view of the attribute).
        if let Some(project) = current().project_id() {
            let mut c = app.store.reader().await?;
            let shared = store::group_shared_with(&mut c, id, project).await?;
            if let Value::Object(m) = &mut v {
                m.insert("shared".into(), Value::Bool(shared));
            }
        }
    }
    if resource == "security_group_rule" {
        let group = v.get("security_group_id").and_then(Value::as_str).map(String::from);
        let owner = match group {
            Some(g) => {
                let mut c = app.store.reader().await?;
                store::get_group(&mut c, &g).await.ok().map(|g| g.project_id)
            }
            None => None,
        };
        if let Value::Object(m) = &mut v {
            m.insert("security_group:project_id".into(), owner.map(Value::String).unwrap_or(Value::Null));
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_decoded_like_the_router_does() {
        assert_eq!(percent_decode("n%65tworks").as_deref(), Some("networks"));
        assert_eq!(percent_decode("%36b1f").as_deref(), Some("6b1f"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
