//! `/v2.0/address-scopes` and `/v2.0/subnetpools`: requests parsed, handed to
//! [`crate::app::subnet_pools`], results rendered.

use crate::app::subnet_pools::{self as ops, CreatePool, CreateScope, PoolBounds, UpdatePool, UpdateScope};
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
use neutrino_domain::validators::{is_uuid_like, not_a_uuid};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v2.0/address-scopes", collection("address_scope", list_scopes, create_scopes))
        .route("/v2.0/address-scopes/{id}", get(show_scope).put(update_scope).delete(delete_scope))
        .route("/v2.0/subnetpools", collection("subnetpool", list_pools, create_pools))
        .route("/v2.0/subnetpools/{id}", get(show_pool).put(update_pool).delete(delete_pool))
}

fn ip_version_of(attrs: &Attrs) -> Result<u8, ApiError> {
    attrs.required("ip_version")?;
    match attrs.uint("ip_version")? {
        Some(4) => Ok(4),
        Some(6) => Ok(6),
        other => {
            Err(ApiError::invalid_attribute("ip_version", format!("'{}' is not in [4, 6]", other.unwrap_or_default())))
        }
    }
}

/// `default_quota` as neutron-lib converts it (an integer, or a string of one; `null` clears
/// it) and validates it (`type:non_negative`).
fn default_quota(attrs: &Attrs) -> Result<Option<Option<u64>>, ApiError> {
    let Some(value) = attrs.raw("default_quota") else { return Ok(None) };
    let number = match value {
        serde_json::Value::Null => return Ok(Some(None)),
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse::<i64>().ok(),
        serde_json::Value::Bool(b) => Some(*b as i64),
        _ => None,
    };
    match number {
        Some(n) if n >= 0 => Ok(Some(Some(n as u64))),
        Some(n) => Err(ApiError::invalid_attribute("default_quota", format!("'{n}' should be non-negative"))),
        None => Err(ApiError::invalid_attribute("default_quota", format!("'{value}' is not an integer"))),
    }
}

/// `address_scope_id` (`type:uuid_or_none`).
fn address_scope_of(attrs: &Attrs) -> Result<Option<Option<String>>, ApiError> {
    let scope = attrs.nullable_string("address_scope_id")?;
    if let Some(Some(id)) = &scope {
        if !is_uuid_like(id) {
            return Err(ApiError::invalid_attribute("address_scope_id", not_a_uuid(id)));
        }
    }
    Ok(scope)
}

/// A prefix length given as a number or a numeric string.
fn prefixlen(attrs: &Attrs, key: &str) -> Result<Option<u8>, ApiError> {
    attrs
        .uint(key)?
        .map(|v| u8::try_from(v).map_err(|_| ApiError::invalid_attribute(key, format!("'{v}' is too large"))))
        .transpose()
}

fn bounds_of(attrs: &Attrs) -> Result<PoolBounds, ApiError> {
    Ok(PoolBounds {
        prefixes: attrs.string_list("prefixes")?,
        min_prefixlen: prefixlen(attrs, "min_prefixlen")?,
        max_prefixlen: prefixlen(attrs, "max_prefixlen")?,
        default_prefixlen: prefixlen(attrs, "default_prefixlen")?,
    })
}

async fn create_scopes(State(app): State<App>, Caller(ctx): Caller, body: Bytes) -> HttpResult<Response> {
    let request = parse_create(&body, &resources::ADDRESS_SCOPE)?;
    let items = request
        .items
        .iter()
        .map(|attrs| {
            Ok(CreateScope {
                given: attrs.given().clone(),
                project_id: attrs.named_project()?,
                name: attrs.required("name").and_then(|_| attrs.name("name", 255))?.unwrap_or_default(),
                shared: attrs.boolean("shared")?.unwrap_or(false),
                ip_version: ip_version_of(attrs)?,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    let created = ops::create_scopes(&app, &ctx, items).await?;
    Ok(response::created("address_scope", "address_scopes", &created, request.bulk))
}

async fn list_scopes(
    State(app): State<App>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    let scopes = ops::list_scopes(&app, &ctx, &q.filters, &q.page).await?;
    Ok(response::list_page(&resources::ADDRESS_SCOPE, &headers, raw.as_deref(), &q, &scopes, |x| x.id.as_str()))
}

async fn show_scope(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let scope = ops::show_scope(&app, &ctx, &id).await?;
    Ok(one(StatusCode::OK, "address_scope", &scope, &q.fields))
}

async fn update_scope(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> HttpResult<Response> {
    let attrs = parse_body(&body, &resources::ADDRESS_SCOPE)?;
    let request =
        UpdateScope { given: attrs.given().clone(), name: attrs.name("name", 255)?, shared: attrs.boolean("shared")? };
    let scope = ops::update_scope(&app, &ctx, &id, request).await?;
    Ok(one(StatusCode::OK, "address_scope", &scope, &[]))
}

async fn delete_scope(State(app): State<App>, Caller(ctx): Caller, Path(id): Path<String>) -> HttpResult<Response> {
    ops::delete_scope(&app, &ctx, &id).await?;
    Ok(no_content())
}

async fn create_pools(State(app): State<App>, Caller(ctx): Caller, body: Bytes) -> HttpResult<Response> {
    let request = parse_create(&body, &resources::SUBNETPOOL)?;
    let items = request
        .items
        .iter()
        .map(|attrs| {
            attrs.required("prefixes")?;
            Ok(CreatePool {
                given: attrs.given().clone(),
                project_id: attrs.named_project()?,
                name: attrs.required("name").and_then(|_| attrs.name("name", 255))?.unwrap_or_default(),
                description: attrs.string("description", 255)?.unwrap_or_default(),
                bounds: bounds_of(attrs)?,
                address_scope_id: address_scope_of(attrs)?.flatten(),
                is_default: attrs.boolean("is_default")?.unwrap_or(false),
                shared: attrs.boolean("shared")?.unwrap_or(false),
                default_quota: default_quota(attrs)?.flatten(),
                tags: crate::tags::tags_on_create(attrs)?,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    let created = ops::create_pools(&app, &ctx, items).await?;
    Ok(response::created("subnetpool", "subnetpools", &created, request.bulk))
}

async fn list_pools(
    State(app): State<App>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    let pools = ops::list_pools(&app, &ctx, &q.filters, &q.page).await?;
    Ok(response::list_page(&resources::SUBNETPOOL, &headers, raw.as_deref(), &q, &pools, |x| x.id.as_str()))
}

async fn show_pool(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let pool = ops::show_pool(&app, &ctx, &id).await?;
    Ok(one(StatusCode::OK, "subnetpool", &pool, &q.fields))
}

async fn update_pool(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult<Response> {
    let attrs = parse_body(&body, &resources::SUBNETPOOL)?;
    let request = UpdatePool {
        given: attrs.given().clone(),
        name: attrs.name("name", 255)?,
        description: attrs.string("description", 255)?,
        bounds: bounds_of(&attrs)?,
        address_scope_id: address_scope_of(&attrs)?,
        is_default: attrs.boolean("is_default")?,
        default_quota: default_quota(&attrs)?,
        if_revision: if_match_revision(&headers)?,
    };
    let pool = ops::update_pool(&app, &ctx, &id, request).await?;
    Ok(one(StatusCode::OK, "subnetpool", &pool, &[]))
}

async fn delete_pool(State(app): State<App>, Caller(ctx): Caller, Path(id): Path<String>) -> HttpResult<Response> {
    ops::delete_pool(&app, &ctx, &id).await?;
    Ok(no_content())
}
