//! `/v2.0/address-scopes` and `/v2.0/subnetpools`.

use crate::app::authorize::{authorize_item, ItemAction};
use crate::auth::Caller;
use crate::create::create_all;
use crate::error::HttpResult;
use crate::meta::collection;
use crate::request::{if_match_revision, parse_body, parse_query, project_of, Attrs};
use crate::response::{many, no_content, one, PageInfo};
use crate::App;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use neutrino_api::resources::{AddressScope, SubnetPool};
use neutrino_api::ApiError;
use neutrino_domain::resources;
use neutrino_domain::subnet_pools::validate_pool;
use neutrino_domain::validators::{is_uuid_like, not_a_uuid};
use neutrino_store::{self as store, Tx};

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

async fn create_scopes(
    State(app): State<App>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult<Response> {
    create_all(&app, &ctx, &headers, &body, &resources::ADDRESS_SCOPE, create_scope).await
}

async fn create_scope(app: &App, tx: &mut Tx, headers: &HeaderMap, attrs: &Attrs) -> HttpResult<AddressScope> {
    let project_id = project_of(attrs, headers, &app.config.noauth_project)?;
    let scope = AddressScope {
        id: uuid::Uuid::new_v4().to_string(),
        name: attrs.required("name").and_then(|_| attrs.string("name", 255))?.unwrap_or_default(),
        tenant_id: project_id.clone(),
        project_id,
        shared: attrs.boolean("shared")?.unwrap_or(false),
        ip_version: ip_version_of(attrs)?,
    };
    store::insert_scope(tx, &scope).await?;
    Ok(scope)
}

async fn list_scopes(State(app): State<App>, headers: HeaderMap, RawQuery(raw): RawQuery) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    let mut c = app.store.reader().await?;
    let scopes = store::list_scopes(&mut c, &q.filters, &q.page, &q.visibility).await?;
    let info = PageInfo { headers: &headers, collection: "address-scopes", raw_query: raw.as_deref(), page: &q.page };
    let links = info.links(scopes.len(), scopes.first().map(|s| s.id.as_str()), scopes.last().map(|s| s.id.as_str()));
    Ok(many("address_scopes", &scopes, &q.fields, links))
}

async fn show_scope(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let mut c = app.store.reader().await?;
    authorize_item(&ctx, &mut c, "address_scope", &id, ItemAction::Read).await?;
    Ok(one(StatusCode::OK, "address_scope", &store::get_scope(&mut c, &id).await?, &q.fields))
}

async fn update_scope(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> HttpResult<Response> {
    let attrs = parse_body(&body, &resources::ADDRESS_SCOPE)?;
    let mut tx = app.store.begin().await?;
    authorize_item(&ctx, tx.conn(), "address_scope", &id, ItemAction::Update(attrs.given())).await?;
    let mut scope = store::get_scope(tx.conn(), &id).await?;
    if let Some(n) = attrs.string("name", 255)? {
        scope.name = n;
    }
    if let Some(s) = attrs.boolean("shared")? {
        if scope.shared && !s {
            return Err(ApiError::bad_request_kind(
                "AddressScopeUpdateError",
                format!("Unable to update address scope {id} : Shared address scope can't be unshared."),
            )
            .into());
        }
        scope.shared = s;
    }
    store::update_scope(&mut tx, &scope).await?;
    tx.commit().await?;
    Ok(one(StatusCode::OK, "address_scope", &scope, &[]))
}

async fn delete_scope(State(app): State<App>, Caller(ctx): Caller, Path(id): Path<String>) -> HttpResult<Response> {
    let mut tx = app.store.begin().await?;
    authorize_item(&ctx, tx.conn(), "address_scope", &id, ItemAction::Delete).await?;
    store::delete_scope(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(no_content())
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

/// Apply prefixes and bounds from `attrs` over `current`, validated as a whole.
fn pool_bounds(attrs: &Attrs, pool: &mut SubnetPool) -> Result<(), ApiError> {
    let given = attrs.string_list("prefixes")?;
    if let Some(given) = &given {
        // Prefixes may grow, never shrink, while subnets may use them.
        if !pool.prefixes.is_empty() {
            let old = validate_pool(&pool.prefixes, None, None, None).map_err(to_api)?;
            let new = validate_pool(given, None, None, None).map_err(to_api)?;
            if old.prefixes.iter().any(|o| !new.prefixes.iter().any(|n| n.contains(o))) {
                return Err(ApiError::bad_request_kind(
                    "IllegalSubnetPoolPrefixUpdate",
                    format!("Illegal update to prefixes: Existing prefixes of subnet pool {} must be kept", pool.id),
                ));
            }
        }
    }
    let prefixes = given.unwrap_or_else(|| pool.prefixes.clone());
    let current = |s: &str| s.parse::<u8>().ok();
    let spec = validate_pool(
        &prefixes,
        prefixlen(attrs, "min_prefixlen")?.or(current(&pool.min_prefixlen)),
        prefixlen(attrs, "max_prefixlen")?.or(current(&pool.max_prefixlen)),
        prefixlen(attrs, "default_prefixlen")?.or(current(&pool.default_prefixlen)),
    )
    .map_err(to_api)?;
    pool.ip_version = spec.ip_version;
    pool.prefixes = spec.prefixes.iter().map(|p| p.to_string()).collect();
    pool.min_prefixlen = spec.min_prefixlen.to_string();
    pool.max_prefixlen = spec.max_prefixlen.to_string();
    pool.default_prefixlen = spec.default_prefixlen.to_string();
    Ok(())
}

fn to_api(e: neutrino_domain::DomainError) -> ApiError {
    crate::error::HttpError::from(e).0
}

async fn create_pools(
    State(app): State<App>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult<Response> {
    create_all(&app, &ctx, &headers, &body, &resources::SUBNETPOOL, create_pool).await
}

async fn create_pool(app: &App, tx: &mut Tx, headers: &HeaderMap, attrs: &Attrs) -> HttpResult<SubnetPool> {
    attrs.required("prefixes")?;
    let project_id = project_of(attrs, headers, &app.config.noauth_project)?;
    let now = store::now_timestamp();
    let mut pool = SubnetPool {
        id: uuid::Uuid::new_v4().to_string(),
        name: attrs.required("name").and_then(|_| attrs.string("name", 255))?.unwrap_or_default(),
        tenant_id: project_id.clone(),
        project_id,
        prefixes: Vec::new(),
        default_prefixlen: String::new(),
        min_prefixlen: String::new(),
        max_prefixlen: String::new(),
        ip_version: 0,
        address_scope_id: address_scope_of(attrs)?.flatten(),
        is_default: attrs.boolean("is_default")?.unwrap_or(false),
        shared: attrs.boolean("shared")?.unwrap_or(false),
        default_quota: default_quota(attrs)?.flatten(),
        description: attrs.string("description", 255)?.unwrap_or_default(),
        tags: crate::tags::tags_on_create(attrs)?,
        created_at: now.clone(),
        updated_at: now,
        revision_number: 0,
    };
    pool_bounds(attrs, &mut pool)?;
    store::insert_pool(tx, &pool).await?;
    store::insert_initial_tags(tx, "subnetpools", &pool.id, &pool.tags).await?;
    Ok(pool)
}

async fn list_pools(State(app): State<App>, headers: HeaderMap, RawQuery(raw): RawQuery) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    let mut c = app.store.reader().await?;
    let pools = store::list_pools(&mut c, &q.filters, &q.page, &q.visibility).await?;
    let info = PageInfo { headers: &headers, collection: "subnetpools", raw_query: raw.as_deref(), page: &q.page };
    let links = info.links(pools.len(), pools.first().map(|p| p.id.as_str()), pools.last().map(|p| p.id.as_str()));
    Ok(many("subnetpools", &pools, &q.fields, links))
}

async fn show_pool(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let mut c = app.store.reader().await?;
    authorize_item(&ctx, &mut c, "subnetpool", &id, ItemAction::Read).await?;
    Ok(one(StatusCode::OK, "subnetpool", &store::get_pool(&mut c, &id).await?, &q.fields))
}

async fn update_pool(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult<Response> {
    let attrs = parse_body(&body, &resources::SUBNETPOOL)?;
    let mut tx = app.store.begin().await?;
    authorize_item(&ctx, tx.conn(), "subnetpool", &id, ItemAction::Update(attrs.given())).await?;
    let mut pool = store::get_pool(tx.conn(), &id).await?;
    let expected = pool.revision_number;
    if if_match_revision(&headers)?.is_some_and(|r| r != expected) {
        return Err(store::StoreError::RevisionMismatch.into());
    }
    if let Some(n) = attrs.string("name", 255)? {
        pool.name = n;
    }
    if let Some(d) = attrs.string("description", 255)? {
        pool.description = d;
    }
    // A pool on an address scope the caller does not own (a shared one) cannot be changed.
    if let Some(scope_id) = pool.address_scope_id.clone() {
        let scope = store::get_scope(tx.conn(), &scope_id).await?;
        let ctx = crate::auth::current();
        if !ctx.is_admin && ctx.project_id().is_some_and(|p| p != scope.project_id) {
            return Err(ApiError::bad_request_kind(
                "IllegalSubnetPoolUpdate",
                format!(
                    "Illegal subnetpool update : subnetpool {id} cannot be updated when associated with shared address scope {scope_id}."
                ),
            )
            .into());
        }
    }
    if let Some(scope) = address_scope_of(&attrs)? {
        pool.address_scope_id = scope;
    }
    if let Some(d) = attrs.boolean("is_default")? {
        pool.is_default = d;
    }
    if let Some(q) = default_quota(&attrs)? {
        pool.default_quota = q;
    }
    pool_bounds(&attrs, &mut pool)?;
    pool.updated_at = store::now_timestamp();
    store::update_pool(&mut tx, &pool, expected).await?;
    tx.commit().await?;
    pool.revision_number = expected + 1;
    Ok(one(StatusCode::OK, "subnetpool", &pool, &[]))
}

async fn delete_pool(State(app): State<App>, Caller(ctx): Caller, Path(id): Path<String>) -> HttpResult<Response> {
    let mut tx = app.store.begin().await?;
    authorize_item(&ctx, tx.conn(), "subnetpool", &id, ItemAction::Delete).await?;
    store::delete_pool(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(no_content())
}
