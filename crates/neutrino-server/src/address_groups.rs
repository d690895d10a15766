//! `/v2.0/address-groups`: named sets of CIDRs for security group rules'
//! `remote_address_group_id`, with `add_addresses` and `remove_addresses`.

use crate::app::address_groups::{self as ops, CreateAddressGroup, UpdateAddressGroup};
use crate::auth::Caller;
use crate::error::HttpResult;
use crate::meta::collection;
use crate::request::{if_match_revision, parse_body, parse_create, parse_query, python_str};
use crate::response::{self, no_content, one};
use crate::App;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, put};
use axum::Router;
use neutrino_api::ApiError;
use neutrino_domain::resources;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v2.0/address-groups", collection("address_group", list, create))
        .route("/v2.0/address-groups/{id}", get(show).put(update).delete(delete))
        .route("/v2.0/address-groups/{id}/add_addresses", put(add_addresses))
        .route("/v2.0/address-groups/{id}/remove_addresses", put(remove_addresses))
}

/// `addresses` as neutron-lib's `type:subnet_list` takes them on a create (CIDRs only, each
/// once; the actions, as Neutron's, also take a bare address as its host prefix), normalized as
/// Neutron stores them (`network/prefixlen`), equal networks merged.
fn addresses_of(value: Option<&serde_json::Value>, bare_addresses: bool) -> Result<Vec<String>, ApiError> {
    use serde_json::Value;
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(ApiError::invalid_attribute("addresses", format!("'{}' is not a list", python_str(other))));
        }
    };
    if !bare_addresses {
        if let Some((_, repeated)) = items.iter().enumerate().find(|(i, item)| items[..*i].contains(item)) {
            let reason = format!("Duplicate items in the list: '{}'", python_str(repeated));
            return Err(ApiError::invalid_attribute("addresses", reason));
        }
    }
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let text = python_str(item);
        let not_a_subnet = || ApiError::invalid_attribute("addresses", format!("'{text}' is not a valid IP subnet"));
        let net = match text.parse::<ipnet::IpNet>() {
            Ok(net) => net,
            Err(_) if bare_addresses => {
                text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from).map_err(|_| not_a_subnet())?
            }
            Err(_) => return Err(not_a_subnet()),
        };
        let normalized = net.trunc().to_string();
        if !out.contains(&normalized) {
            out.push(normalized);
        }
    }
    Ok(out)
}

async fn create(State(app): State<App>, Caller(ctx): Caller, body: Bytes) -> HttpResult<Response> {
    let request = parse_create(&body, &resources::ADDRESS_GROUP)?;
    let items = request
        .items
        .iter()
        .map(|attrs| {
            Ok(CreateAddressGroup {
                given: attrs.given().clone(),
                project_id: attrs.named_project()?,
                name: attrs.name("name", 255)?.unwrap_or_default(),
                description: attrs.string("description", 1024)?.unwrap_or_default(),
                addresses: addresses_of(attrs.raw("addresses"), false)?,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    let created = ops::create(&app, &ctx, items).await?;
    Ok(response::created("address_group", "address_groups", &created, request.bulk))
}

async fn list(
    State(app): State<App>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    let groups = ops::list(&app, &ctx, &q.filters, &q.page).await?;
    Ok(response::list_page(&resources::ADDRESS_GROUP, &headers, raw.as_deref(), &q, &groups, |x| x.id.as_str()))
}

async fn show(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let group = ops::show(&app, &ctx, &id).await?;
    Ok(one(StatusCode::OK, "address_group", &group, &q.fields))
}

async fn update(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult<Response> {
    let attrs = parse_body(&body, &resources::ADDRESS_GROUP)?;
    let request = UpdateAddressGroup {
        given: attrs.given().clone(),
        name: attrs.name("name", 255)?,
        description: attrs.string("description", 1024)?,
        if_revision: if_match_revision(&headers)?,
    };
    let group = ops::update(&app, &ctx, &id, request).await?;
    Ok(one(StatusCode::OK, "address_group", &group, &[]))
}

/// The body of `add_addresses` and `remove_addresses`: `{"addresses": [...]}`.
fn action_addresses(body: &[u8]) -> Result<Vec<String>, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| ApiError::malformed_body())?;
    let Some(addresses) = value.get("addresses") else {
        return Err(ApiError::bad_request("Unrecognized action"));
    };
    addresses_of(Some(addresses), true)
}

async fn add_addresses(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> HttpResult<Response> {
    let group = ops::change_addresses(&app, &ctx, &id, &action_addresses(&body)?, true).await?;
    Ok(one(StatusCode::OK, "address_group", &group, &[]))
}

async fn remove_addresses(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> HttpResult<Response> {
    let group = ops::change_addresses(&app, &ctx, &id, &action_addresses(&body)?, false).await?;
    Ok(one(StatusCode::OK, "address_group", &group, &[]))
}

async fn delete(State(app): State<App>, Caller(ctx): Caller, Path(id): Path<String>) -> HttpResult<Response> {
    ops::delete(&app, &ctx, &id).await?;
    Ok(no_content())
}
