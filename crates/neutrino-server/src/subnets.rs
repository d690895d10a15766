//! `/v2.0/subnets`: requests parsed, handed to [`crate::app::subnets`], results rendered.

use crate::app::subnets::{self as ops, CreateSubnet, UpdateSubnet};
use crate::auth::Caller;
use crate::error::HttpResult;
use crate::meta::collection;
use crate::request::{if_match_revision, parse_body, parse_create, parse_query, Attrs};
use crate::response::{self, no_content, one};
use crate::App;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use neutrino_api::ApiError;
use neutrino_domain::resources;
use neutrino_domain::subnet::{GatewayRequest, SubnetRequest};
use serde_json::Value;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v2.0/subnets", collection("subnet", list, create))
        .route("/v2.0/subnets/{id}", get(show).put(update).delete(delete))
}

fn gateway_request(attrs: &Attrs) -> Result<GatewayRequest, ApiError> {
    Ok(match attrs.raw("gateway_ip") {
        None => GatewayRequest::Default,
        Some(Value::Null) => GatewayRequest::Disabled,
        Some(Value::String(s)) => GatewayRequest::Address(s.clone()),
        Some(v) => return Err(ApiError::invalid_attribute("gateway_ip", format!("'{v}' is not a valid IP address"))),
    })
}

/// A list of two-key objects (`allocation_pools`, `host_routes`) as pairs of strings.
/// `null` for a list attribute is an empty list (`convert_none_to_empty_list`).
fn pairs_of(attrs: &Attrs, key: &str, first: &str, second: &str) -> Result<Option<Vec<(String, String)>>, ApiError> {
    if matches!(attrs.raw(key), Some(Value::Null)) {
        return Ok(Some(Vec::new()));
    }
    Ok(attrs.object_list(key, &[first, second])?.map(|list| {
        list.iter()
            .map(|p| {
                let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                (s(first), s(second))
            })
            .collect()
    }))
}

/// `dns_nameservers` (`null`: none).
fn nameservers_of(attrs: &Attrs) -> Result<Option<Vec<String>>, ApiError> {
    if matches!(attrs.raw("dns_nameservers"), Some(Value::Null)) {
        return Ok(Some(Vec::new()));
    }
    attrs.string_list("dns_nameservers")
}

/// `allocation_pools` (`null`: on a create the default pools, on an update none).
fn pools_of(attrs: &Attrs) -> Result<Option<Vec<(String, String)>>, ApiError> {
    pairs_of(attrs, "allocation_pools", "start", "end")
}

/// `host_routes`, each given once (neutron-lib's `type:hostroutes`).
fn routes_of(attrs: &Attrs) -> Result<Option<Vec<(String, String)>>, ApiError> {
    let routes = pairs_of(attrs, "host_routes", "destination", "nexthop")?;
    if let Some(routes) = &routes {
        let repeated = routes.iter().enumerate().find(|(i, r)| routes[..*i].contains(r)).map(|(_, r)| r);
        if let Some((d, n)) = repeated {
            return Err(ApiError::invalid_attribute(
                "host_routes",
                format!("Duplicate hostroute '{{'destination': '{d}', 'nexthop': '{n}'}}'"),
            ));
        }
    }
    Ok(routes)
}

fn refuse_unsupported(attrs: &Attrs) -> Result<(), ApiError> {
    if matches!(attrs.raw("segment_id"), Some(v) if !v.is_null()) {
        return Err(ApiError::bad_request("'segment_id' is not supported yet by this server"));
    }
    attrs.only_defaults(&[("dns_publish_fixed_ip", serde_json::json!(false))])
}

/// What a subnet's `service_types` may start with, exactly as neutron-lib checks it: the
/// `network:` and `neutron:` prefixes, plus (neutron-lib extends its list with the *string*
/// `compute:`) any of the characters of `compute:`. So `compute:nova` and also `test:x` are
/// accepted, `baremetal:x` is not; Tempest relies on `test:`.
const SERVICE_TYPE_PREFIXES: [&str; 10] = ["network:", "neutron:", "c", "o", "m", "p", "u", "t", "e", ":"];

fn service_types_of(attrs: &Attrs) -> Result<Option<Vec<String>>, ApiError> {
    let Some(mut types) = attrs.string_list("service_types")? else { return Ok(None) };
    if let Some(bad) = types.iter().find(|t| !SERVICE_TYPE_PREFIXES.iter().any(|p| t.starts_with(p))) {
        return Err(ApiError::bad_request_kind(
            "InvalidSubnetServiceType",
            format!("Subnet service type {bad} does not correspond to a valid device owner."),
        ));
    }
    types.sort();
    types.dedup();
    Ok(Some(types))
}

async fn create(State(app): State<App>, Caller(ctx): Caller, body: Bytes) -> HttpResult<Response> {
    let request = parse_create(&body, &resources::SUBNET)?;
    let items = request.items.iter().map(create_request).collect::<Result<_, _>>()?;
    let created = ops::create(&app, &ctx, items).await?;
    Ok(response::created("subnet", "subnets", &created, request.bulk))
}

fn create_request(attrs: &Attrs) -> Result<CreateSubnet, ApiError> {
    refuse_unsupported(attrs)?;
    let network_id = attrs.required("network_id").and_then(|_| attrs.uuid("network_id"))?.unwrap_or_default();
    attrs.required("ip_version")?;
    let ip_version = u8::try_from(attrs.uint("ip_version")?.unwrap_or_default()).unwrap_or(0);
    Ok(CreateSubnet {
        given: attrs.given().clone(),
        project_id: attrs.named_project()?,
        network_id,
        name: attrs.name("name", 255)?.unwrap_or_default(),
        description: attrs.string("description", 255)?.unwrap_or_default(),
        cidr: attrs.string("cidr", 64)?,
        subnetpool_id: attrs.nullable_uuid("subnetpool_id")?.flatten(),
        use_default_subnetpool: attrs.boolean("use_default_subnetpool")? == Some(true),
        prefixlen: attrs.uint("prefixlen")?.map(|v| u8::try_from(v).unwrap_or(u8::MAX)),
        request: SubnetRequest {
            ip_version,
            cidr: String::new(),
            gateway: gateway_request(attrs)?,
            allocation_pools: match attrs.raw("allocation_pools") {
                Some(Value::Null) => None,
                _ => pools_of(attrs)?,
            },
            dns_nameservers: nameservers_of(attrs)?.unwrap_or_default(),
            host_routes: routes_of(attrs)?.unwrap_or_default(),
            ipv6_ra_mode: attrs.nullable_string("ipv6_ra_mode")?.flatten(),
            ipv6_address_mode: attrs.nullable_string("ipv6_address_mode")?.flatten(),
            enable_dhcp: attrs.boolean("enable_dhcp")?.unwrap_or(true),
            current: None,
        },
        service_types: service_types_of(attrs)?.unwrap_or_default(),
        tags: crate::tags::tags_on_create(attrs)?,
    })
}

async fn show(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let subnet = ops::show(&app, &ctx, &id).await?;
    Ok(one(StatusCode::OK, "subnet", &subnet, &q.fields))
}

async fn list(
    State(app): State<App>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    let subnets = ops::list(&app, &ctx, &q.filters, &q.page).await?;
    Ok(response::list_page(&resources::SUBNET, &headers, raw.as_deref(), &q, &subnets, |x| x.id.as_str()))
}

async fn update(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult<Response> {
    let attrs = parse_body(&body, &resources::SUBNET)?;
    refuse_unsupported(&attrs)?;
    let request = UpdateSubnet {
        given: attrs.given().clone(),
        name: attrs.name("name", 255)?,
        description: attrs.string("description", 255)?,
        gateway: if attrs.has("gateway_ip") { Some(gateway_request(&attrs)?) } else { None },
        allocation_pools: pools_of(&attrs)?,
        dns_nameservers: nameservers_of(&attrs)?,
        host_routes: routes_of(&attrs)?,
        enable_dhcp: attrs.boolean("enable_dhcp")?,
        service_types: service_types_of(&attrs)?,
        if_revision: if_match_revision(&headers)?,
    };
    let subnet = ops::update(&app, &ctx, &id, request).await?;
    Ok(one(StatusCode::OK, "subnet", &subnet, &[]))
}

async fn delete(State(app): State<App>, Caller(ctx): Caller, Path(id): Path<String>) -> HttpResult<Response> {
    ops::delete(&app, &ctx, &id).await?;
    Ok(no_content())
}
