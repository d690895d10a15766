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

/// `{"<key>": item}` with the given status.
pub fn one<T: Serialize>(status: StatusCode, key: &str, item: &T, fields: &[String]) -> Response {
    let mut body = Map::new();
    body.insert(key.to_string(), select(item, fields));
    (status, axum::Json(Value::Object(body))).into_response()
}

/// `{"<collection>": [...]}` plus `<collection>_links` when paging.
pub fn many<T: Serialize>(
    collection: &str,
    items: &[T],
    fields: &[String],
    next_marker: Option<(&str, u32)>,
) -> Response {
    let list: Vec<Value> = items.iter().map(|i| select(i, fields)).collect();
    let mut body = Map::new();
    body.insert(collection.to_string(), Value::Array(list));
    if let Some((marker, limit)) = next_marker {
        body.insert(
            format!("{collection}_links"),
            serde_json::json!([{
                "rel": "next",
                "href": format!("/v2.0/{collection}?limit={limit}&marker={marker}"),
            }]),
        );
    }
    axum::Json(Value::Object(body)).into_response()
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Every response carries `x-openstack-request-id`, as Neutron's do.
pub async fn add_request_id(mut response: Response) -> Response {
    let id = format!("req-{}", uuid::Uuid::new_v4());
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-openstack-request-id", v);
    }
    response
}
