//! Parsing requests the way Neutron does: the body's resource key, unknown and read-only
//! attributes, attribute types; query strings with repeated filters and `fields`.

use axum::http::HeaderMap;
use neutrino_api::ApiError;
use neutrino_domain::resources::{BodyError, ResourceDef};
use neutrino_store::{Filter, Page, Visibility};
use serde_json::{Map, Value};

/// The attributes of one resource in a request body.
pub struct Attrs {
    map: Map<String, Value>,
}

/// Parse an update body, `{"<member>": {...}}`, judged by the resource's attribute map.
pub fn parse_body(bytes: &[u8], def: &ResourceDef) -> Result<Attrs, ApiError> {
    let mut outer = body_object(bytes, def)?;
    if outer.contains_key(def.collection) {
        return Err(ApiError::bad_request("Bulk operation not supported"));
    }
    let inner = outer.remove(def.member).ok_or_else(|| missing(def.member))?;
    let Value::Object(map) = inner else { return Err(invalid_object(def.member)) };
    def.check_update(map.keys().map(String::as_str)).map_err(body_error)?;
    Ok(Attrs { map })
}

fn missing(member: &str) -> ApiError {
    ApiError::bad_request(format!("Unable to find '{member}' in request body"))
}

fn invalid_object(member: &str) -> ApiError {
    ApiError::bad_request(format!("Object '{member}' contains invalid data"))
}

/// A request body's top-level object. An empty body names nothing (Neutron: the resource is
/// not found in it); anything else that is not a JSON object is invalid data.
fn body_object(bytes: &[u8], def: &ResourceDef) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(missing(def.member));
    }
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(outer)) if outer.iter().any(|(k, v)| has_nul(k) || value_has_nul(v)) => Err(nul_refused()),
        Ok(Value::Object(outer)) => Ok(outer),
        _ => Err(ApiError::malformed_body()),
    }
}

/// Whether a string holds the NUL character. PostgreSQL cannot store it in text (and no
/// attribute or filter has a use for it), so requests with one are refused before any query,
/// on every database alike, rather than failing in the database.
pub fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

fn value_has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => has_nul(s),
        Value::Array(items) => items.iter().any(value_has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| has_nul(k) || value_has_nul(v)),
        _ => false,
    }
}

fn nul_refused() -> ApiError {
    ApiError::invalid_input("the NUL character (\\u0000) is not allowed in strings")
}

/// A body naming attributes it may not (Neutron's 400s).
pub fn body_error(e: BodyError) -> ApiError {
    ApiError::bad_request(e.to_string())
}

/// One item of a create body.
fn create_item(value: Value, def: &ResourceDef) -> Result<Attrs, ApiError> {
    let Value::Object(map) = value else { return Err(invalid_object(def.member)) };
    def.check_create(map.keys().map(String::as_str)).map_err(body_error)?;
    Ok(Attrs { map })
}

/// A create request: one resource (`{"network": {...}}`) or, for bulk create, a list
/// (`{"networks": [{...}, ...]}`), which is created all or nothing.
pub struct CreateBody {
    pub items: Vec<Attrs>,
    pub bulk: bool,
}

pub fn parse_create(bytes: &[u8], def: &ResourceDef) -> Result<CreateBody, ApiError> {
    let (resource, collection) = (def.member, def.collection);
    let mut outer = body_object(bytes, def)?;
    // As Neutron: the collection first, and each of its items may be wrapped in the
    // resource's name (`{"security_groups": [{"security_group": {...}}]}`).
    match outer.remove(collection) {
        Some(Value::Array(list)) if !list.is_empty() => {
            let unwrap = |v: Value| match v {
                Value::Object(mut item) if item.contains_key(resource) => item.remove(resource).unwrap_or_default(),
                other => other,
            };
            return Ok(CreateBody {
                items: list.into_iter().map(|v| create_item(unwrap(v), def)).collect::<Result<_, _>>()?,
                bulk: true,
            });
        }
        Some(_) => return Err(ApiError::bad_request("Resources required")),
        None => {}
    }
    match outer.remove(resource) {
        Some(one) => Ok(CreateBody { items: vec![create_item(one, def)?], bulk: false }),
        None => Err(ApiError::bad_request(format!("Unable to find '{resource}' in request body"))),
    }
}

impl Attrs {
    /// The attributes of a dict attribute (a router's `external_gateway_info`).
    pub fn of_map(map: Map<String, Value>) -> Attrs {
        Attrs { map }
    }

    /// The attributes as given (what the policy judges).
    pub fn given(&self) -> &Map<String, Value> {
        &self.map
    }

    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub fn raw(&self, key: &str) -> Option<&Value> {
        self.map.get(key)
    }

    /// Attributes Neutrino does not implement yet are accepted only with their default value
    /// (what clients send when they do not care); anything else is refused, never ignored.
    pub fn only_defaults(&self, defaults: &[(&str, Value)]) -> Result<(), ApiError> {
        for (key, default) in defaults {
            match self.map.get(*key) {
                Some(v) if v != default && !(v.is_null() && default.is_null()) => {
                    return Err(ApiError::bad_request(format!("'{key}' = {v} is not supported yet by this server")))
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn required(&self, key: &str) -> Result<&Value, ApiError> {
        self.map.get(key).ok_or_else(|| {
            ApiError::bad_request(format!("Failed to parse request. Required attribute '{key}' not specified"))
        })
    }

    /// A string attribute, at most `max` characters.
    pub fn string(&self, key: &str, max: usize) -> Result<Option<String>, ApiError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
            Some(Value::String(s)) => {
                Err(ApiError::invalid_attribute(key, format!("'{s}' exceeds maximum length of {max}")))
            }
            Some(v) => Err(ApiError::invalid_attribute(key, format!("'{}' is not a valid string", python_str(v)))),
        }
    }

    /// A name (neutron-lib's `type:name_string`): a string of printable characters that
    /// neither starts nor ends with a space.
    pub fn name(&self, key: &str, max: usize) -> Result<Option<String>, ApiError> {
        let name = self.string(key, max)?;
        if let Some(n) = &name {
            let printable = |c: &char| !c.is_control();
            let edge_ok = |c: Option<char>| c.is_none_or(|c| !c.is_whitespace());
            if !n.chars().all(|c| printable(&c)) || !edge_ok(n.chars().next()) || !edge_ok(n.chars().last()) {
                return Err(ApiError::invalid_attribute(key, format!("'{n}' is not a valid string")));
            }
        }
        Ok(name)
    }

    /// The project a create body names (`project_id` or `tenant_id`, which must agree).
    pub fn named_project(&self) -> Result<Option<String>, ApiError> {
        let p = self.string("project_id", 255)?;
        let t = self.string("tenant_id", 255)?;
        if let (Some(p), Some(t)) = (&p, &t) {
            if p != t {
                return Err(ApiError::bad_request("'project_id' and 'tenant_id' do not match"));
            }
        }
        Ok(p.or(t))
    }

    /// An id (`type:uuid`): a 400 for anything that is not one, before any lookup.
    pub fn uuid(&self, key: &str) -> Result<Option<String>, ApiError> {
        let id = self.string(key, 255)?;
        if let Some(id) = &id {
            if !neutrino_domain::validators::is_uuid_like(id) {
                return Err(ApiError::invalid_attribute(key, neutrino_domain::validators::not_a_uuid(id)));
            }
        }
        Ok(id)
    }

    /// An id that may be `null` (`type:uuid_or_none`).
    pub fn nullable_uuid(&self, key: &str) -> Result<Option<Option<String>>, ApiError> {
        match self.map.get(key) {
            Some(Value::Null) => Ok(Some(None)),
            _ => Ok(self.uuid(key)?.map(Some)),
        }
    }

    /// A list of ids (`type:uuid_list`).
    pub fn uuid_list(&self, key: &str) -> Result<Option<Vec<String>>, ApiError> {
        let ids = self.string_list(key)?;
        if let Some(bad) = ids.iter().flatten().find(|id| !neutrino_domain::validators::is_uuid_like(id)) {
            return Err(ApiError::invalid_attribute(key, neutrino_domain::validators::not_a_uuid(bad)));
        }
        Ok(ids)
    }

    /// A string attribute that may be `null`.
    pub fn nullable_string(&self, key: &str) -> Result<Option<Option<String>>, ApiError> {
        match self.map.get(key) {
            Some(Value::Null) => Ok(Some(None)),
            _ => Ok(self.string(key, 255)?.map(Some)),
        }
    }

    /// A boolean, converted as neutron-lib's `convert_to_boolean` (oslo's strict
    /// `bool_from_string`: `true`/`false`, `1`/`0`, `"yes"`/`"no"`, `"on"`/`"off"`, ...).
    pub fn boolean(&self, key: &str) -> Result<Option<bool>, ApiError> {
        let Some(v) = self.map.get(key) else { return Ok(None) };
        if let Value::Bool(b) = v {
            return Ok(Some(*b));
        }
        let text = python_str(v).trim().to_ascii_lowercase();
        match text.as_str() {
            "1" | "t" | "true" | "on" | "y" | "yes" => Ok(Some(true)),
            "0" | "f" | "false" | "off" | "n" | "no" => Ok(Some(false)),
            _ => Err(ApiError::invalid_input(format!("'{}' cannot be converted to boolean", python_str(v)))),
        }
    }

    /// A non-negative integer, converted as neutron-lib's `convert_to_int` (a number or a
    /// numeric string; `null` is not one) and validated as `type:non_negative`.
    pub fn uint(&self, key: &str) -> Result<Option<u64>, ApiError> {
        let Some(v) = self.map.get(key) else { return Ok(None) };
        let number = match v {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.trunc() as i64)),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        };
        match number {
            Some(n) if n >= 0 => Ok(Some(n as u64)),
            Some(n) => Err(ApiError::invalid_attribute(key, format!("'{n}' should be non-negative"))),
            None => Err(ApiError::invalid_input(format!("'{}' is not an integer", python_str(v)))),
        }
    }

    /// A list of strings.
    pub fn string_list(&self, key: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s.clone()),
                    v => Err(ApiError::invalid_attribute(key, format!("'{}' is not a valid string", python_str(v)))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(v) => Err(ApiError::invalid_attribute(key, format!("'{}' is not a list", python_str(v)))),
        }
    }

    /// A list of objects, each with string values for the given keys.
    pub fn object_list(&self, key: &str, fields: &[&str]) -> Result<Option<Vec<Map<String, Value>>>, ApiError> {
        let Some(v) = self.map.get(key) else {
            return Ok(None);
        };
        let Value::Array(items) = v else {
            return Err(ApiError::invalid_attribute(key, format!("'{v}' is not a list")));
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Value::Object(m) = item else {
                return Err(ApiError::invalid_attribute(key, format!("'{item}' is not a dictionary")));
            };
            if let Some(bad) = m.keys().find(|k| !fields.contains(&k.as_str())) {
                return Err(ApiError::invalid_attribute(key, format!("Unexpected keys supplied: {bad}")));
            }
            if let Some((k, _)) = m.iter().find(|(_, v)| !v.is_string()) {
                return Err(ApiError::invalid_attribute(key, format!("'{k}' must be a string")));
            }
            out.push(m.clone());
        }
        Ok(Some(out))
    }

    /// A JSON object (`binding:profile`).
    pub fn object(&self, key: &str) -> Result<Option<Map<String, Value>>, ApiError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(Map::new())),
            Some(Value::Object(m)) => Ok(Some(m.clone())),
            Some(v) => Err(ApiError::invalid_attribute(key, format!("'{v}' is not a dictionary"))),
        }
    }
}

/// A JSON value as Neutron prints it in messages: as Python's `str()` of the value the body
/// decoded to (`None`, `True`, strings without quotes, `['a', 'b']`, `{'k': 1}`).
pub fn python_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => python_repr(other),
    }
}

fn python_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{s}'"),
        Value::Array(items) => format!("[{}]", items.iter().map(python_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => {
            let entries: Vec<String> = m.iter().map(|(k, v)| format!("'{k}': {}", python_repr(v))).collect();
            format!("{{{}}}", entries.join(", "))
        }
    }
}

/// A list or show query: filters, `fields`, paging.
#[derive(Debug)]
pub struct ListQuery {
    pub filters: Vec<Filter>,
    pub fields: Vec<String>,
    pub page: Page,
    /// Whose rows the list may hold: the caller's project's view unless it is an admin.
    pub visibility: Visibility,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery { filters: Vec::new(), fields: Vec::new(), page: Page::default(), visibility: Visibility::Everything }
    }
}

const NON_FILTERS: [&str; 1] = ["verbose"];

pub fn parse_query(raw: Option<&str>) -> Result<ListQuery, ApiError> {
    let mut q = ListQuery::default();
    let mut sort_keys = Vec::new();
    let mut sort_dirs = Vec::new();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if has_nul(&k) || has_nul(&v) {
            return Err(nul_refused());
        }
        match k.as_ref() {
            // (An empty name selects nothing: the whole resource, as Neutron.)
            "fields" if v.is_empty() => {}
            "fields" => q.fields.push(v.into_owned()),
            "sort_key" => sort_keys.push(v.into_owned()),
            "sort_dir" => sort_dirs.push(v.into_owned()),
            "page_reverse" => q.page.page_reverse = v.eq_ignore_ascii_case("true"),
            "limit" => {
                let bad = || {
                    ApiError::bad_request_kind(
                        "BadRequest",
                        format!("Bad limit request: Limit must be an integer 0 or greater and not '{v}'."),
                    )
                };
                let n: i64 = v.parse().map_err(|_| bad())?;
                if n < 0 {
                    return Err(bad());
                }
                q.page.limit = (n > 0).then_some(n as u32);
            }
            "marker" => q.page.marker = Some(v.into_owned()),
            k if NON_FILTERS.contains(&k) => {}
            k => match q.filters.iter_mut().find(|f| f.attribute == k) {
                Some(f) => f.values.push(v.into_owned()),
                None => q.filters.push(Filter { attribute: k.to_string(), values: vec![v.into_owned()] }),
            },
        }
    }
    if sort_keys.len() != sort_dirs.len() {
        return Err(ApiError::bad_request("The number of sort_keys and sort_dirs must be same"));
    }
    let invalid: Vec<String> =
        sort_dirs.iter().filter(|d| *d != "asc" && *d != "desc").map(|d| format!("'{d}'")).collect();
    if !invalid.is_empty() {
        return Err(ApiError::bad_request(format!(
            "[{}] is invalid value for sort_dirs, valid value is 'asc' and 'desc'",
            invalid.join(", ")
        )));
    }
    q.page.sort = sort_keys.into_iter().zip(sort_dirs.iter().map(|d| d == "asc")).collect();
    // Lists of callers who are not admins hold only what their project may see.
    q.visibility = crate::auth::current().visibility();
    Ok(q)
}

/// `If-Match: revision_number=N`
pub fn if_match_revision(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(v) = headers.get("if-match").and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    // As Neutron's `check_request_for_revision_constraint` words its refusals.
    let bad = |msg: &str| ApiError::bad_request_kind("BadRequest", format!("Bad if-match request: {msg}."));
    let mut revision = None;
    for part in v.split(',') {
        if let Some(n) = part.trim().trim_matches('"').strip_prefix("revision_number=") {
            if revision.is_some() {
                return Err(bad("Multiple revision_number etags are not supported"));
            }
            revision = Some(
                n.parse().map_err(|_| bad("Revision number etag must be in the format of revision_number=<int>"))?,
            );
        }
    }
    Ok(revision)
}

/// Neutron refuses a body on a DELETE (rather than ignoring it): 400 before anything is done.
pub async fn refuse_delete_bodies(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let has_body = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0);
    if req.method() == axum::http::Method::DELETE && has_body {
        let refused = ApiError::bad_request("Request body is not supported in DELETE.");
        return crate::error::HttpError(refused).into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use neutrino_domain::resources;

    #[test]
    fn unknown_attributes_are_named() {
        let e =
            parse_body(br#"{"network": {"name": "x", "no_such_attribute": 1}}"#, &resources::NETWORK).err().unwrap();
        assert_eq!(e.message, "Unrecognized attribute(s) 'no_such_attribute'");
    }

    #[test]
    fn nul_characters_in_bodies_and_queries_are_bad_requests() {
        let message = "Invalid input for operation: the NUL character (\\u0000) is not allowed in strings.";
        for body in [
            &br#"{"network": {"description": "a\u0000b"}}"#[..],
            br#"{"network": {"name": "n", "dns_domain": ["\u0000"]}}"#,
            br#"{"network": {"na\u0000me": 1}}"#,
        ] {
            let e = parse_body(body, &resources::NETWORK).err().unwrap();
            assert_eq!((e.status, e.message.as_str()), (400, message));
        }
        let e = parse_create(br#"{"networks": [{"name": "x"}, {"description": "\u0000"}]}"#, &resources::NETWORK);
        assert_eq!(e.err().map(|e| e.status), Some(400));
        for query in ["name=%00", "marker=a%00", "%00=x", "fields=id%00"] {
            let e = parse_query(Some(query)).err().unwrap();
            assert_eq!((e.status, e.message.as_str()), (400, message), "{query}");
        }
        assert!(parse_body(br#"{"network": {"description": "\u00e9"}}"#, &resources::NETWORK).is_ok());
    }

    #[test]
    fn malformed_json_is_bad_request() {
        let e = parse_body(br#"{"network": {"#, &resources::NETWORK).err().unwrap();
        assert_eq!((e.status, e.kind.as_str()), (400, "HTTPBadRequest"));
    }

    #[test]
    fn repeated_filters_and_fields_are_collected() {
        let q = parse_query(Some("name=a&name=b&fields=id&fields=name&limit=5")).unwrap();
        assert_eq!(q.filters, vec![Filter { attribute: "name".into(), values: vec!["a".into(), "b".into()] }]);
        // Outside a request the context fails closed: the list is narrowed to no project.
        assert_eq!(q.visibility, Visibility::Project(String::new()));
        assert_eq!(q.fields, vec!["id", "name"]);
        assert_eq!(q.page.limit, Some(5));
    }
}
