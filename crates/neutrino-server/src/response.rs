//! Response shaping: resource envelopes, `fields` selection and the request id header.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

/// Serialize a resource and keep only `fields` (all when empty).
pub fn select<T: Serialize>(item: &T, fields: &[String]) -> Value {
    let value = serde_json::to_value(item).unwrap_or(Value::Null);
    if fields.is_empty() {
        return value;
    }
    match value {
        Value::Object(map) => {
            Value::Object(map.into_iter().filter(|(k, _)| fields.iter().any(|f| f == k)).collect::<Map<_, _>>())
        }
        other => other,
    }
}

/// Serialize one resource into `out`: directly, or only its `fields`.
fn write_item<T: Serialize>(out: &mut Vec<u8>, item: &T, fields: &[String]) -> serde_json::Result<()> {
    if fields.is_empty() {
        serde_json::to_writer(out, item)
    } else {
        serde_json::to_writer(out, &select(item, fields))
    }
}

/// `{"<key>": item}` with the given status.
/// Without `fields` the resource is serialized directly (no JSON tree, which also keeps
/// integers wider than 64 bits, such as IPv6 address counts, exact).
pub fn one<T: Serialize>(status: StatusCode, key: &str, item: &T, fields: &[String]) -> Response {
    one_viewed(status, key, item, fields, true)
}

/// [`one`], for the caller's view: hidden attributes removed, and (when `must_see`) a 404 for
/// an item the caller may not see.
fn one_viewed<T: Serialize>(status: StatusCode, key: &str, item: &T, fields: &[String], must_see: bool) -> Response {
    if let Some(resource) = crate::policy::resource_of_key(key).filter(|_| crate::policy::filtering()) {
        let mut value = serde_json::to_value(item).unwrap_or(Value::Null);
        if !crate::policy::view(resource, &mut value) && must_see {
            let id = value.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
            return crate::error::HttpError(neutrino_api::ApiError::not_found(resource, &id)).into_response();
        }
        return one_unfiltered(status, key, &value, fields);
    }
    one_unfiltered(status, key, item, fields)
}

fn one_unfiltered<T: Serialize>(status: StatusCode, key: &str, item: &T, fields: &[String]) -> Response {
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    if write_item(&mut out, item, fields).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    out.push(b'}');
    (status, [(axum::http::header::CONTENT_TYPE, "application/json")], out).into_response()
}

/// The 201 reply to a create: `{"<resource>": {...}}`, or `{"<collection>": [...]}` for bulk.
pub fn created<T: Serialize>(resource: &str, collection: &str, items: &[T], bulk: bool) -> Response {
    if bulk {
        let mut response = many(collection, items, &[], Vec::new());
        *response.status_mut() = StatusCode::CREATED;
        return response;
    }
    match items.first() {
        // What one just created is shown (its hidden attributes removed) whatever `get_*` says.
        Some(item) => one_viewed(StatusCode::CREATED, resource, item, &[], false),
        None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `{"<collection>": [...]}` plus `<collection>_links` when paging. Without `fields` the
/// resources are serialized straight into the body (no intermediate JSON tree), which is what
/// keeps large lists fast.
pub fn many<T: Serialize>(
    collection: &str,
    items: &[T],
    fields: &[String],
    links: Vec<(&'static str, String)>,
) -> Response {
    if let Some(resource) = crate::policy::resource_of_key(collection).filter(|_| crate::policy::filtering()) {
        let visible: Vec<Value> = items
            .iter()
            .filter_map(|item| {
                let mut v = serde_json::to_value(item).ok()?;
                crate::policy::view(resource, &mut v).then_some(v)
            })
            .collect();
        return many_unfiltered(collection, &visible, fields, links);
    }
    many_unfiltered(collection, items, fields, links)
}

fn many_unfiltered<T: Serialize>(
    collection: &str,
    items: &[T],
    fields: &[String],
    links: Vec<(&'static str, String)>,
) -> Response {
    let mut out: Vec<u8> = Vec::with_capacity(64 + items.len() * 900);
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(collection.as_bytes());
    out.extend_from_slice(b"\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if write_item(&mut out, item, fields).is_err() {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    }
    out.push(b']');
    push_links(&mut out, collection, links);
    out.push(b'}');
    ([(axum::http::header::CONTENT_TYPE, "application/json")], out).into_response()
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Every response carries `x-openstack-request-id`, as Neutron's do.
/// The API's base URL as the client reached it: `Host`, and the scheme [`mark_scheme`] left in
/// `X-Forwarded-Proto`.
pub fn public_base(headers: &axum::http::HeaderMap) -> String {
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1:9696");
    let proto = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).unwrap_or("http");
    let scheme = match proto.split(',').next().map(str::trim) {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
}

/// The scheme the client used, in `X-Forwarded-Proto`: `https` on a server that serves TLS
/// itself; a proxy's header with `[oslo_middleware] enable_proxy_headers_parsing`; else none
/// (a client's own header is not believed).
pub async fn mark_scheme(
    axum::extract::State(app): axum::extract::State<crate::App>,
    mut req: axum::extract::Request,
) -> axum::extract::Request {
    if app.config.ssl.is_some() {
        req.headers_mut().insert("x-forwarded-proto", HeaderValue::from_static("https"));
    } else if !app.config.proxy_headers_parsing {
        req.headers_mut().remove("x-forwarded-proto");
    }
    req
}

/// Errors that did not come from a handler (axum's own refusals: an undecodable path, a
/// method a path does not have) get a `NeutronError` body too, as every client expects one.
pub async fn neutron_error_bodies(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 << 10).await.unwrap_or_default();
    let kind = match status.as_u16() {
        400 => "HTTPBadRequest",
        404 => "HTTPNotFound",
        405 => "HTTPMethodNotAllowed",
        406 => "HTTPNotAcceptable",
        411 => "HTTPLengthRequired",
        413 => "HTTPRequestEntityTooLarge",
        414 => "HTTPRequestURITooLong",
        415 => "HTTPUnsupportedMediaType",
        _ => "HTTPError",
    };
    let message = match String::from_utf8_lossy(&text).trim() {
        "" => status.canonical_reason().unwrap_or("Error").to_string(),
        text => text.to_string(),
    };
    let body = json_error_body(kind, &message);
    let mut headers = parts.headers;
    headers.remove(axum::http::header::CONTENT_LENGTH);
    headers.insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut out = (status, body).into_response();
    out.headers_mut().extend(headers);
    out
}

fn json_error_body(kind: &str, message: &str) -> String {
    serde_json::json!({"NeutronError": {"type": kind, "message": message, "detail": ""}}).to_string()
}

pub async fn add_request_id(mut response: Response) -> Response {
    let id = format!("req-{}", uuid::Uuid::new_v4());
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-openstack-request-id", v);
    }
    response
}

/// `{"<collection>": [...]}` from JSON objects the database already rendered.
pub fn many_raw(collection: &str, bodies: &[(String, String)], links: Vec<(&'static str, String)>) -> Response {
    if crate::policy::resource_of_key(collection).is_some() && crate::policy::filtering() {
        let items: Vec<Value> = bodies.iter().filter_map(|(_, b)| serde_json::from_str(b).ok()).collect();
        return many(collection, &items, &[], links);
    }
    let size: usize = bodies.iter().map(|(_, b)| b.len() + 1).sum();
    let mut out: Vec<u8> = Vec::with_capacity(64 + size);
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(collection.as_bytes());
    out.extend_from_slice(b"\":[");
    for (i, (_, body)) in bodies.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(body.as_bytes());
    }
    out.push(b']');
    push_links(&mut out, collection, links);
    out.push(b'}');
    ([(axum::http::header::CONTENT_TYPE, "application/json")], out).into_response()
}

fn push_links(out: &mut Vec<u8>, collection: &str, links: Vec<(&'static str, String)>) {
    if !links.is_empty() {
        let links: Vec<Value> =
            links.into_iter().map(|(rel, href)| serde_json::json!({"rel": rel, "href": href})).collect();
        out.extend_from_slice(format!(",\"{collection}_links\":{}", Value::Array(links)).as_bytes());
    }
}

/// The reply to a list: one page of `items` of the resource `def`, with its links.
pub fn list_page<T: Serialize>(
    def: &neutrino_domain::resources::ResourceDef,
    headers: &axum::http::HeaderMap,
    raw_query: Option<&str>,
    q: &crate::request::ListQuery,
    items: &[T],
    id: impl Fn(&T) -> &str,
) -> Response {
    let info = PageInfo { headers, collection: def.paths[0], raw_query, page: &q.page };
    let links = info.links(items.len(), items.first().map(&id), items.last().map(&id));
    many(def.collection, items, &q.fields, links)
}

/// Where a list page sits, to write its `<collection>_links`.
pub struct PageInfo<'a> {
    pub headers: &'a axum::http::HeaderMap,
    pub collection: &'static str,
    pub raw_query: Option<&'a str>,
    pub page: &'a neutrino_store::Page,
}

impl PageInfo<'_> {
    /// Neutron's links, by its rule: `next` (marker = last item) unless a forward page came
    /// back short, `previous` (marker = first item, `page_reverse=True`) unless a backward page
    /// came back short. An empty page's links have no marker (a `previous` from past the end
    /// is the last page).
    pub fn links(&self, len: usize, first: Option<&str>, last: Option<&str>) -> Vec<(&'static str, String)> {
        let Some(limit) = self.page.limit else { return Vec::new() };
        let short = len < limit as usize;
        let reverse = self.page.page_reverse;
        let more_forward = !short || reverse;
        let more_backward = !short || !reverse;
        let mut links = Vec::new();
        if more_forward {
            links.push(("next", self.href(last, false)));
        }
        if more_backward {
            links.push(("previous", self.href(first, true)));
        }
        links
    }

    fn href(&self, marker: Option<&str>, reverse: bool) -> String {
        let base = public_base(self.headers);
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in form_urlencoded::parse(self.raw_query.unwrap_or_default().as_bytes()) {
            if k != "marker" && k != "page_reverse" {
                query.append_pair(&k, &v);
            }
        }
        if let Some(marker) = marker {
            query.append_pair("marker", marker);
        }
        if reverse {
            query.append_pair("page_reverse", "True");
        }
        format!("{base}/v2.0/{}?{}", self.collection, query.finish())
    }
}
