//! `/v2.0/routers`, with `add_router_interface`, `remove_router_interface`, `add_extraroutes`
//! and `remove_extraroutes`: bodies parsed into [`CreateRouter`], [`UpdateRouter`] and
//! [`InterfaceRequest`], handed to [`crate::app::routers`], and the results rendered.

use crate::app::routers::{self as ops, CreateRouter, GatewayRequest, InterfaceRequest, UpdateRouter};
use crate::auth::Caller;
use crate::error::HttpResult;
use crate::meta::collection;
use crate::ports::fixed_ips_of;
use crate::request::{if_match_revision, parse_body, parse_create, parse_query, python_str, Attrs};
use crate::response::{self, no_content, one};
use crate::App;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use neutrino_api::ApiError;
use neutrino_domain::resources;
use neutrino_domain::routers::Route;
use serde_json::Value;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v2.0/routers", collection("router", list, create))
        .route("/v2.0/routers/{id}", get(show).put(update).delete(delete))
        .route("/v2.0/routers/{id}/add_router_interface", put(add_interface))
        .route("/v2.0/routers/{id}/remove_router_interface", put(remove_interface))
        .route("/v2.0/routers/{id}/add_extraroutes", put(add_routes))
        .route("/v2.0/routers/{id}/remove_extraroutes", put(remove_routes))
}

/// `external_gateway_info` as neutron-lib's `type:dict_or_nodata`: `None` when absent, `Some(None)`
/// when null or `{}` (no gateway).
fn gateway_of(attrs: &Attrs) -> Result<Option<Option<GatewayRequest>>, ApiError> {
    let key = "external_gateway_info";
    let map = match attrs.raw(key) {
        None => return Ok(None),
        Some(Value::Null) => return Ok(Some(None)),
        Some(Value::Object(m)) if m.is_empty() => return Ok(Some(None)),
        Some(Value::Object(m)) => m.clone(),
        Some(v) => return Err(ApiError::invalid_attribute(key, format!("'{}' is not a dictionary", python_str(v)))),
    };
    if let Some(bad) = map.keys().find(|k| !["network_id", "enable_snat", "external_fixed_ips"].contains(&k.as_str())) {
        return Err(ApiError::invalid_attribute(
            key,
            format!(
                "Validation of dictionary's keys failed. Expected keys: {{'network_id'}} Provided keys: {{'{bad}'}}"
            ),
        ));
    }
    let gw = Attrs::of_map(map);
    let network_id = match gw.uuid("network_id") {
        Ok(Some(id)) => id,
        Ok(None) => {
            return Err(ApiError::invalid_attribute(
                key,
                "Validation of dictionary's keys failed. Expected keys: {'network_id'} Provided keys: set()",
            ))
        }
        Err(_) => {
            let given = gw.raw("network_id").map(python_str).unwrap_or_default();
            return Err(ApiError::invalid_attribute(key, format!("'{given}' is not a valid UUID")));
        }
    };
    Ok(Some(Some(GatewayRequest {
        network_id,
        enable_snat: gw.boolean("enable_snat")?,
        external_fixed_ips: fixed_ips_of(&gw, "external_fixed_ips")?,
    })))
}

/// `routes` as neutron-lib's `type:hostroutes` (`null` is none).
fn routes_of(value: Option<&Value>, key: &str) -> Result<Option<Vec<Route>>, ApiError> {
    let items = match value {
        None => return Ok(None),
        Some(Value::Null) => return Ok(Some(Vec::new())),
        Some(Value::Array(items)) => items,
        Some(v) => return Err(ApiError::invalid_attribute(key, format!("'{}' is not a list", python_str(v)))),
    };
    let mut out: Vec<Route> = Vec::new();
    for item in items {
        let invalid =
            || ApiError::invalid_attribute(key, format!("Invalid data format for hostroute: '{}'", python_str(item)));
        let Value::Object(m) = item else { return Err(invalid()) };
        if m.len() != 2 || !m.contains_key("destination") || !m.contains_key("nexthop") {
            return Err(invalid());
        }
        let destination = m["destination"].as_str().unwrap_or_default();
        let nexthop = m["nexthop"].as_str().unwrap_or_default();
        let net: ipnet::IpNet = destination
            .parse()
            .map_err(|_| ApiError::invalid_attribute(key, format!("'{destination}' is not a valid IP subnet")))?;
        let hop: std::net::IpAddr = nexthop
            .parse()
            .map_err(|_| ApiError::invalid_attribute(key, format!("'{nexthop}' is not a valid IP address")))?;
        let route = Route { destination: net.trunc(), nexthop: hop };
        if out.contains(&route) {
            return Err(ApiError::invalid_attribute(key, format!("Duplicate hostroute '{}'", python_str(item))));
        }
        out.push(route);
    }
    Ok(Some(out))
}

fn router_request(attrs: &Attrs) -> Result<CreateRouter, ApiError> {
    Ok(CreateRouter {
        given: attrs.given().clone(),
        project_id: attrs.named_project()?,
        name: attrs.name("name", 255)?.unwrap_or_default(),
        description: attrs.string("description", 255)?.unwrap_or_default(),
        admin_state_up: attrs.boolean("admin_state_up")?.unwrap_or(true),
        gateway: gateway_of(attrs)?.flatten(),
        distributed: attrs.boolean("distributed")?,
        ha: attrs.boolean("ha")?,
        availability_zone_hints: attrs.string_list("availability_zone_hints")?.unwrap_or_default(),
        flavor_id: attrs.uuid("flavor_id")?,
        tags: attrs.string_list("tags")?.unwrap_or_default(),
    })
}

async fn create(State(app): State<App>, Caller(ctx): Caller, body: Bytes) -> HttpResult<Response> {
    let request = parse_create(&body, &resources::ROUTER)?;
    let items = request.items.iter().map(router_request).collect::<Result<_, ApiError>>()?;
    let created = ops::create(&app, &ctx, items).await?;
    Ok(response::created("router", "routers", &created, request.bulk))
}

async fn list(
    State(app): State<App>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    let routers = ops::list(&app, &ctx, &q.filters, &q.page).await?;
    Ok(response::list_page(&resources::ROUTER, &headers, raw.as_deref(), &q, &routers, |x| x.id.as_str()))
}

async fn show(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let router = ops::show(&app, &ctx, &id).await?;
    Ok(one(StatusCode::OK, "router", &router, &q.fields))
}

async fn update(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult<Response> {
    let attrs = parse_body(&body, &resources::ROUTER)?;
    let request = UpdateRouter {
        given: attrs.given().clone(),
        name: attrs.name("name", 255)?,
        description: attrs.string("description", 255)?,
        admin_state_up: attrs.boolean("admin_state_up")?,
        gateway: gateway_of(&attrs)?,
        routes: routes_of(attrs.raw("routes"), "routes")?,
        distributed: attrs.boolean("distributed")?,
        ha: attrs.boolean("ha")?,
        if_revision: if_match_revision(&headers)?,
    };
    let router = ops::update(&app, &ctx, &id, request).await?;
    Ok(one(StatusCode::OK, "router", &router, &[]))
}

async fn delete(State(app): State<App>, Caller(ctx): Caller, Path(id): Path<String>) -> HttpResult<Response> {
    ops::delete(&app, &ctx, &id).await?;
    Ok(no_content())
}

/// The body of the interface actions: exactly one of `subnet_id` and `port_id` (removal also
/// takes both, and checks the port is on the subnet).
fn interface_request(body: &[u8], removing: bool) -> Result<InterfaceRequest, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| ApiError::malformed_body())?;
    let Value::Object(m) = value else {
        return Err(ApiError::bad_request("Bad router request: Either subnet_id or port_id must be specified."));
    };
    let id_of = |key: &str| -> Result<Option<String>, ApiError> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if neutrino_domain::validators::is_uuid_like(s) => Ok(Some(s.clone())),
            Some(v) => Err(ApiError::bad_request(format!(
                "Invalid input for operation: {}.",
                neutrino_domain::validators::not_a_uuid(&python_str(v))
            ))),
        }
    };
    match (id_of("subnet_id")?, id_of("port_id")?) {
        (Some(s), None) => Ok(InterfaceRequest::Subnet(s)),
        (None, Some(p)) => Ok(InterfaceRequest::Port(p)),
        (Some(subnet_id), Some(port_id)) if removing => Ok(InterfaceRequest::PortOnSubnet { port_id, subnet_id }),
        (Some(_), Some(_)) => {
            Err(ApiError::bad_request("Bad router request: Cannot specify both subnet-id and port-id."))
        }
        (None, None) => {
            Err(ApiError::bad_request("Bad router request: Either subnet_id or port_id must be specified."))
        }
    }
}

async fn add_interface(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> HttpResult<Response> {
    let info = ops::add_interface(&app, &ctx, &id, interface_request(&body, false)?).await?;
    Ok(Json(info).into_response())
}

async fn remove_interface(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> HttpResult<Response> {
    let info = ops::remove_interface(&app, &ctx, &id, interface_request(&body, true)?).await?;
    Ok(Json(info).into_response())
}

/// The body of the extra route actions: `{"router": {"routes": [...]}}`.
fn action_routes(body: &[u8]) -> Result<Vec<Route>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| ApiError::malformed_body())?;
    let routes = value.get("router").and_then(|r| r.get("routes"));
    match routes_of(routes, "routes")? {
        Some(r) => Ok(r),
        None => Err(ApiError::bad_request("Failed to parse request. Required attribute 'routes' not specified")),
    }
}

async fn add_routes(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> HttpResult<Response> {
    let router = ops::change_routes(&app, &ctx, &id, action_routes(&body)?, true).await?;
    Ok(one(StatusCode::OK, "router", &router, &[]))
}

async fn remove_routes(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> HttpResult<Response> {
    let router = ops::change_routes(&app, &ctx, &id, action_routes(&body)?, false).await?;
    Ok(one(StatusCode::OK, "router", &router, &[]))
}
