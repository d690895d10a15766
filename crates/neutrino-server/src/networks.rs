//! `/v2.0/networks`: requests parsed into [`CreateNetwork`] and [`UpdateNetwork`], handed to
//! [`crate::app::networks`], and the results rendered.

use crate::app::networks::{self as ops, CreateNetwork, UpdateNetwork};
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
use neutrino_domain::segments::ProviderRequest;
use neutrino_store as store;
use serde_json::{Map, Value};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v2.0/networks", collection("network", list, create))
        .route("/v2.0/networks/{id}", get(show).put(update).delete(delete))
}

/// Network attributes accepted only with their defaults until their features exist.
fn unsupported_network_attrs() -> [(&'static str, serde_json::Value); 1] {
    [("qos_policy_id", serde_json::Value::Null)]
}

/// `dns_domain`: with DNS integration, validated; without it, only the empty default.
fn dns_domain_of(app: &App, attrs: &Attrs) -> Result<Option<String>, ApiError> {
    let Some(domain) = attrs.string("dns_domain", 255)? else { return Ok(None) };
    if app.config.dns_domain.is_none() {
        attrs.only_defaults(&[("dns_domain", serde_json::json!(""))])?;
        return Ok(None);
    }
    Ok(Some(neutrino_domain::dns::validate_dns_domain(&domain).map_err(|e| crate::error::HttpError::from(e).0)?))
}

/// The segments a create asks for: `provider:*` (one) or `segments` (multi-provider), or
/// none for a tenant network.
fn requested_segments(attrs: &Attrs) -> Result<Vec<ProviderRequest>, ApiError> {
    let provider_given = PROVIDER_ATTRS.iter().any(|a| attrs.raw(a).is_some_and(|v| !v.is_null()));
    match attrs.raw("segments") {
        None | Some(Value::Null) => {
            if !provider_given {
                return Ok(Vec::new());
            }
            let mut single = Map::new();
            for a in PROVIDER_ATTRS {
                if let Some(v) = attrs.raw(a) {
                    single.insert(a.to_string(), v.clone());
                }
            }
            Ok(vec![provider_request(&single)?])
        }
        Some(_) if provider_given => Err(ApiError::bad_request_kind(
            "SegmentsSetInConjunctionWithProviders",
            "Segments and provider values cannot both be set.",
        )),
        // An empty list asks for nothing in particular: a tenant network, as ML2 makes it.
        Some(Value::Array(items)) if items.is_empty() => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::Object(m) => provider_request(m),
                other => Err(ApiError::invalid_attribute("segments", format!("'{other}' is not a dictionary"))),
            })
            .collect(),
        Some(other) => Err(ApiError::invalid_attribute("segments", format!("'{other}' is not a non-empty list"))),
    }
}

const PROVIDER_ATTRS: [&str; 3] = ["provider:network_type", "provider:physical_network", "provider:segmentation_id"];

fn provider_request(m: &Map<String, Value>) -> Result<ProviderRequest, ApiError> {
    if let Some(bad) = m.keys().find(|k| !PROVIDER_ATTRS.contains(&k.as_str())) {
        return Err(ApiError::invalid_input(format!("Unrecognized attribute(s) '{bad}'")));
    }
    let text = |key: &str| -> Result<Option<String>, ApiError> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) if s.chars().count() <= 64 => Ok(Some(s.clone())),
            Some(v) => Err(ApiError::invalid_attribute(key, format!("'{v}' is not a valid string"))),
        }
    };
    let segmentation_id = match m.get("provider:segmentation_id") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
        Some(Value::String(s)) if s.parse::<u64>().is_ok() => s.parse().ok(),
        Some(v) => {
            return Err(ApiError::invalid_attribute("provider:segmentation_id", format!("'{v}' is not an integer")))
        }
    };
    Ok(ProviderRequest {
        network_type: text("provider:network_type")?,
        physical_network: text("provider:physical_network")?,
        segmentation_id: segmentation_id.map(|v| v.min(u32::MAX as u64) as u32),
    })
}

async fn create(State(app): State<App>, Caller(ctx): Caller, body: Bytes) -> HttpResult<Response> {
    let request = parse_create(&body, &resources::NETWORK)?;
    let items = request.items.iter().map(|attrs| create_request(&app, attrs)).collect::<Result<_, _>>()?;
    let created = ops::create(&app, &ctx, items).await?;
    Ok(response::created("network", "networks", &created, request.bulk))
}

fn create_request(app: &App, attrs: &Attrs) -> Result<CreateNetwork, ApiError> {
    attrs.only_defaults(&unsupported_network_attrs())?;
    let mut availability_zone_hints = attrs.string_list("availability_zone_hints")?.unwrap_or_default();
    availability_zone_hints.sort();
    availability_zone_hints.dedup();
    Ok(CreateNetwork {
        given: attrs.given().clone(),
        project_id: attrs.named_project()?,
        name: attrs.name("name", 255)?.unwrap_or_default(),
        description: attrs.string("description", 255)?.unwrap_or_default(),
        admin_state_up: attrs.boolean("admin_state_up")?.unwrap_or(true),
        shared: attrs.boolean("shared")?.unwrap_or(false),
        port_security_enabled: attrs.boolean("port_security_enabled")?.unwrap_or(true),
        router_external: attrs.boolean("router:external")?.unwrap_or(false),
        is_default: attrs.boolean("is_default")?.unwrap_or(false),
        mtu: attrs.uint("mtu")?.map(|m| m.min(u32::MAX as u64) as u32),
        segments: requested_segments(attrs)?,
        availability_zone_hints,
        dns_domain: dns_domain_of(app, attrs)?,
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
    let net = ops::show(&app, &ctx, &id).await?;
    Ok(one(StatusCode::OK, "network", &net, &q.fields))
}

async fn list(
    State(app): State<App>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    let nets = ops::list(&app, &ctx, &q.filters, &q.page).await?;
    Ok(response::list_page(&resources::NETWORK, &headers, raw.as_deref(), &q, &nets, |x| x.id.as_str()))
}

async fn update(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult<Response> {
    let attrs = parse_body(&body, &resources::NETWORK)?;
    attrs.only_defaults(&unsupported_network_attrs())?;
    let provider = PROVIDER_ATTRS
        .iter()
        .chain(["segments"].iter())
        .filter_map(|a| attrs.raw(a).map(|v| (a.to_string(), v.clone())))
        .collect();
    let request = UpdateNetwork {
        given: attrs.given().clone(),
        patch: store::NetworkPatch {
            name: attrs.name("name", 255)?,
            description: attrs.string("description", 255)?,
            admin_state_up: attrs.boolean("admin_state_up")?,
            mtu: attrs.uint("mtu")?.map(|m| m.min(u32::MAX as u64) as u32),
            shared: attrs.boolean("shared")?,
            port_security_enabled: attrs.boolean("port_security_enabled")?,
            router_external: attrs.boolean("router:external")?,
            dns_domain: dns_domain_of(&app, &attrs)?,
        },
        is_default: attrs.boolean("is_default")?,
        provider,
        if_revision: if_match_revision(&headers)?,
    };
    let net = ops::update(&app, &ctx, &id, request).await?;
    Ok(one(StatusCode::OK, "network", &net, &[]))
}

async fn delete(State(app): State<App>, Caller(ctx): Caller, Path(id): Path<String>) -> HttpResult<Response> {
    ops::delete(&app, &ctx, &id).await?;
    Ok(no_content())
}
