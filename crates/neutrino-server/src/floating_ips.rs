//! `/v2.0/floatingips` and their port forwardings
//! (`/v2.0/floatingips/{id}/port_forwardings`), and `/v2.0/floatingip_pools`.

use crate::app::floating_ips::{self as ops, CreateFloatingIp, ForwardingRequest, UpdateFloatingIp};
use crate::auth::Caller;
use crate::error::HttpResult;
use crate::meta::collection;
use crate::request::{if_match_revision, parse_body, parse_create, parse_query, python_str, Attrs};
use crate::response::{self, no_content, one};
use crate::App;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use neutrino_api::ApiError;
use neutrino_domain::resources;
use neutrino_domain::routers::parse_port_range;
use serde_json::{json, Value};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v2.0/floatingips", collection("floatingip", list, create))
        .route("/v2.0/floatingips/{id}", get(show).put(update).delete(delete))
        .route("/v2.0/floatingips/{id}/port_forwardings", get(list_forwardings).post(create_forwarding))
        .route(
            "/v2.0/floatingips/{id}/port_forwardings/{pf}",
            get(show_forwarding).put(update_forwarding).delete(delete_forwarding),
        )
        .route("/v2.0/floatingip-pools", get(pools))
        .route("/v2.0/floatingip_pools", get(pools))
}

/// An IP address attribute (`type:ip_address_or_none`).
fn address(attrs: &Attrs, key: &str) -> Result<Option<Option<String>>, ApiError> {
    match attrs.raw(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) if s.parse::<std::net::IpAddr>().is_ok() => Ok(Some(Some(s.clone()))),
        Some(v) => Err(ApiError::invalid_attribute(key, format!("'{}' is not a valid IP address", python_str(v)))),
    }
}

async fn create(State(app): State<App>, Caller(ctx): Caller, body: Bytes) -> HttpResult<Response> {
    let request = parse_create(&body, &resources::FLOATINGIP)?;
    let items = request
        .items
        .iter()
        .map(|attrs| {
            let Some(network) = attrs.uuid("floating_network_id")? else {
                return Err(ApiError::bad_request(
                    "Failed to parse request. Required attribute 'floating_network_id' not specified",
                ));
            };
            Ok(CreateFloatingIp {
                given: attrs.given().clone(),
                project_id: attrs.named_project()?,
                floating_network_id: network,
                floating_ip_address: address(attrs, "floating_ip_address")?.flatten(),
                subnet_id: attrs.nullable_uuid("subnet_id")?.flatten(),
                port_id: attrs.nullable_uuid("port_id")?.flatten(),
                fixed_ip_address: address(attrs, "fixed_ip_address")?.flatten(),
                description: attrs.string("description", 255)?.unwrap_or_default(),
                dns_name: attrs.string("dns_name", 255)?,
                dns_domain: attrs.string("dns_domain", 255)?,
                tags: attrs.string_list("tags")?.unwrap_or_default(),
            })
        })
        .collect::<Result<_, ApiError>>()?;
    let created = ops::create(&app, &ctx, items).await?;
    Ok(response::created("floatingip", "floatingips", &created, request.bulk))
}

async fn list(
    State(app): State<App>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    let fips = ops::list(&app, &ctx, &q.filters, &q.page).await?;
    Ok(response::list_page(&resources::FLOATINGIP, &headers, raw.as_deref(), &q, &fips, |x| x.id.as_str()))
}

async fn show(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let fip = ops::show(&app, &ctx, &id).await?;
    Ok(one(StatusCode::OK, "floatingip", &fip, &q.fields))
}

async fn update(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult<Response> {
    let attrs = parse_body(&body, &resources::FLOATINGIP)?;
    // An empty update clears the association (a floating IP had no other attributes once).
    let blank = attrs.given().is_empty();
    let request = UpdateFloatingIp {
        given: attrs.given().clone(),
        port_id: if blank { Some(None) } else { attrs.nullable_uuid("port_id")? },
        fixed_ip_address: address(&attrs, "fixed_ip_address")?,
        description: attrs.string("description", 255)?,
        if_revision: if_match_revision(&headers)?,
    };
    let fip = ops::update(&app, &ctx, &id, request).await?;
    Ok(one(StatusCode::OK, "floatingip", &fip, &[]))
}

async fn delete(State(app): State<App>, Caller(ctx): Caller, Path(id): Path<String>) -> HttpResult<Response> {
    ops::delete(&app, &ctx, &id).await?;
    Ok(no_content())
}

/// `/v2.0/floatingip_pools`: the IPv4 subnets of the external networks the caller may use.
async fn pools(State(app): State<App>, Caller(ctx): Caller) -> HttpResult<Response> {
    let pools = crate::app::floating_ips::pools(&app, &ctx).await?;
    Ok(Json(json!({ "floatingip_pools": pools })).into_response())
}

/// A port forwarding body, `{"port_forwarding": {...}}` (`creating`: the required ones).
fn forwarding_request(body: &[u8], creating: bool) -> Result<ForwardingRequest, ApiError> {
    let attrs = if creating {
        let mut request = parse_create(body, &resources::PORT_FORWARDING)?;
        if request.bulk || request.items.len() != 1 {
            return Err(ApiError::bad_request("Bulk operation not supported"));
        }
        request.items.remove(0)
    } else {
        parse_body(body, &resources::PORT_FORWARDING)?
    };
    let protocol = match attrs.string("protocol", 40)? {
        Some(p) if ["tcp", "udp", "sctp", "dccp", "icmp"].contains(&p.to_lowercase().as_str()) => {
            Some(p.to_lowercase())
        }
        Some(p) => {
            return Err(ApiError::invalid_attribute(
                "protocol",
                format!("'{p}' is not in ['dccp', 'icmp', 'sctp', 'tcp', 'udp']"),
            ))
        }
        None => None,
    };
    let port = |key: &str| -> Result<Option<(u32, u32)>, ApiError> {
        match attrs.raw(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => {
                let p = n.as_u64().unwrap_or(0) as u32;
                parse_port_range(&p.to_string())
                    .map(Some)
                    .ok_or_else(|| ApiError::invalid_attribute(key, format!("Invalid port '{p}'")))
            }
            Some(Value::String(s)) => parse_port_range(s)
                .map(Some)
                .ok_or_else(|| ApiError::invalid_attribute(key, format!("Invalid port '{s}'"))),
            Some(v) => Err(ApiError::invalid_attribute(key, format!("Invalid port '{}'", python_str(v)))),
        }
    };
    let internal = port("internal_port")?.or(port("internal_port_range")?);
    let external = port("external_port")?.or(port("external_port_range")?);
    let internal_ip_address = match attrs.raw("internal_ip_address") {
        None => None,
        Some(Value::String(s)) if s.parse::<std::net::Ipv4Addr>().is_ok() => Some(s.clone()),
        Some(v) => {
            return Err(ApiError::invalid_attribute(
                "internal_ip_address",
                format!("'{}' is not a valid IP address", python_str(v)),
            ))
        }
    };
    Ok(ForwardingRequest {
        given: attrs.given().clone(),
        protocol,
        internal_port_id: attrs.uuid("internal_port_id")?,
        internal_ip_address,
        internal,
        external,
        description: attrs.string("description", 255)?,
    })
}

async fn list_forwardings(State(app): State<App>, Caller(ctx): Caller, Path(id): Path<String>) -> HttpResult<Response> {
    let list = ops::list_forwardings(&app, &ctx, &id).await?;
    Ok(Json(json!({ "port_forwardings": list })).into_response())
}

async fn create_forwarding(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> HttpResult<Response> {
    let pf = ops::put_forwarding(&app, &ctx, &id, None, forwarding_request(&body, true)?).await?;
    Ok(one(StatusCode::CREATED, "port_forwarding", &pf, &[]))
}

async fn show_forwarding(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path((id, pf)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let pf = ops::show_forwarding(&app, &ctx, &id, &pf).await?;
    Ok(one(StatusCode::OK, "port_forwarding", &pf, &q.fields))
}

async fn update_forwarding(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path((id, pf)): Path<(String, String)>,
    body: Bytes,
) -> HttpResult<Response> {
    let pf = ops::put_forwarding(&app, &ctx, &id, Some(&pf), forwarding_request(&body, false)?).await?;
    Ok(one(StatusCode::OK, "port_forwarding", &pf, &[]))
}

async fn delete_forwarding(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path((id, pf)): Path<(String, String)>,
) -> HttpResult<Response> {
    ops::delete_forwarding(&app, &ctx, &id, &pf).await?;
    Ok(no_content())
}
