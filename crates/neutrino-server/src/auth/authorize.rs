//! Request-level policy checks, from the path alone, before a handler runs: collections only
//! admins may list are answered empty, filters and sort keys on attributes the caller may not
//! see are refused, and the agent-facing and quota paths have their own rules.
//!
//! Items (creates, reads, updates, deletes, tags and actions) are authorized by their
//! operations, inside their transactions, on the rows they load: see `crate::app::authorize`.
//! Lists are narrowed in the database and by the policy when written (see `crate::policy`).
//! Admin contexts (`context_is_admin`) pass: every default rule admits them.

use super::current;
use crate::error::HttpError;
use crate::App;
use axum::extract::Request;
use axum::http::Method;
use neutrino_api::ApiError;
use neutrino_domain::resources;
use serde_json::Value;

pub use crate::app::authorize::forbidden;

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
            let Some(def) = resources::by_path(collection) else { return Ok(req.into()) };
            let resource = def.member;
            if def.reads == resources::Reads::AdminOnlyList
                && !app.policy.allows(&format!("get_{resource}"), &current().creds, &Value::Null)
            {
                return Ok(Checked::EmptyList(collection.replace('-', "_")));
            }
            check_hidden_filters(&app, resource, req.uri().query())?;
            Ok(req.into())
        }
        ["neutrino", ..] => {
            current().enforce("neutrino_agent", &[], &Value::Null)?;
            Ok(req.into())
        }
        ["quotas", project, ..] if !matches!(*project, "tenant" | "project") => {
            let action = match method {
                Method::PUT => "update_quota",
                Method::DELETE => "delete_quota",
                _ => "get_quota",
            };
            let target = serde_json::json!({"project_id": project, "tenant_id": project});
            current().enforce(action, &[], &target)?;
            Ok(req.into())
        }
        _ => Ok(req.into()),
    }
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
