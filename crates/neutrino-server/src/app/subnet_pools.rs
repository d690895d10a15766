//! Address scope and subnet pool operations.

use super::authorize::{authorize_item, ItemAction};
use super::{create_each, project_for, CreateItem, OpContext};
use crate::error::HttpResult;
use crate::App;
use neutrino_api::resources::{AddressScope, SubnetPool};
use neutrino_api::ApiError;
use neutrino_domain::subnet_pools::validate_pool;
use neutrino_store::{self as store, Filter, Page, Tx};
use serde_json::{Map, Value};

/// One address scope to create, as parsed from its body.
pub struct CreateScope {
    pub given: Map<String, Value>,
    pub project_id: Option<String>,
    pub name: String,
    pub shared: bool,
    pub ip_version: u8,
}

impl CreateItem for CreateScope {
    fn given(&self) -> &Map<String, Value> {
        &self.given
    }
}

/// Changes to an address scope (`None`: unchanged).
pub struct UpdateScope {
    pub given: Map<String, Value>,
    pub name: Option<String>,
    pub shared: Option<bool>,
}

/// A pool's prefixes and prefix lengths as a request gives them (`None`: as they are).
#[derive(Default)]
pub struct PoolBounds {
    pub prefixes: Option<Vec<String>>,
    pub min_prefixlen: Option<u8>,
    pub max_prefixlen: Option<u8>,
    pub default_prefixlen: Option<u8>,
}

/// One subnet pool to create, as parsed from its body.
pub struct CreatePool {
    pub given: Map<String, Value>,
    pub project_id: Option<String>,
    pub name: String,
    pub description: String,
    pub bounds: PoolBounds,
    pub address_scope_id: Option<String>,
    pub is_default: bool,
    pub shared: bool,
    pub default_quota: Option<u64>,
    pub tags: Vec<String>,
}

impl CreateItem for CreatePool {
    fn given(&self) -> &Map<String, Value> {
        &self.given
    }
}

/// Changes to a subnet pool (`None`: unchanged; `Some(None)`: cleared).
pub struct UpdatePool {
    pub given: Map<String, Value>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub bounds: PoolBounds,
    pub address_scope_id: Option<Option<String>>,
    pub is_default: Option<bool>,
    pub default_quota: Option<Option<u64>>,
    pub if_revision: Option<u64>,
}

pub async fn create_scopes(app: &App, ctx: &OpContext, items: Vec<CreateScope>) -> HttpResult<Vec<AddressScope>> {
    create_each(app, ctx, "address_scope", items, create_scope).await
}

async fn create_scope(app: &App, ctx: &OpContext, tx: &mut Tx, req: CreateScope) -> HttpResult<AddressScope> {
    let project_id = project_for(app, ctx, &req.project_id);
    let scope = AddressScope {
        id: uuid::Uuid::new_v4().to_string(),
        name: req.name,
        tenant_id: project_id.clone(),
        project_id,
        shared: req.shared,
        ip_version: req.ip_version,
    };
    store::insert_scope(tx, &scope).await?;
    Ok(scope)
}

pub async fn list_scopes(app: &App, ctx: &OpContext, filters: &[Filter], page: &Page) -> HttpResult<Vec<AddressScope>> {
    let mut c = app.store.reader().await?;
    Ok(store::list_scopes(&mut c, filters, page, &ctx.visibility()).await?)
}

pub async fn show_scope(app: &App, ctx: &OpContext, id: &str) -> HttpResult<AddressScope> {
    let mut c = app.store.reader().await?;
    authorize_item(ctx, &mut c, "address_scope", id, ItemAction::Read).await?;
    Ok(store::get_scope(&mut c, id).await?)
}

pub async fn update_scope(app: &App, ctx: &OpContext, id: &str, req: UpdateScope) -> HttpResult<AddressScope> {
    let mut tx = app.store.begin().await?;
    authorize_item(ctx, tx.conn(), "address_scope", id, ItemAction::Update(&req.given)).await?;
    let mut scope = store::get_scope(tx.conn(), id).await?;
    if let Some(n) = req.name {
        scope.name = n;
    }
    if let Some(s) = req.shared {
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
    Ok(scope)
}

pub async fn delete_scope(app: &App, ctx: &OpContext, id: &str) -> HttpResult<()> {
    let mut tx = app.store.begin().await?;
    authorize_item(ctx, tx.conn(), "address_scope", id, ItemAction::Delete).await?;
    store::delete_scope(&mut tx, id).await?;
    tx.commit().await?;
    Ok(())
}

/// Apply `bounds` over the pool's, validated as a whole.
fn apply_bounds(bounds: PoolBounds, pool: &mut SubnetPool) -> HttpResult<()> {
    if let Some(given) = &bounds.prefixes {
        // Prefixes may grow, never shrink, while subnets may use them.
        if !pool.prefixes.is_empty() {
            let old = validate_pool(&pool.prefixes, None, None, None)?;
            let new = validate_pool(given, None, None, None)?;
            if old.prefixes.iter().any(|o| !new.prefixes.iter().any(|n| n.contains(o))) {
                return Err(ApiError::bad_request_kind(
                    "IllegalSubnetPoolPrefixUpdate",
                    format!("Illegal update to prefixes: Existing prefixes of subnet pool {} must be kept", pool.id),
                )
                .into());
            }
        }
    }
    let prefixes = bounds.prefixes.unwrap_or_else(|| pool.prefixes.clone());
    let current = |s: &str| s.parse::<u8>().ok();
    let spec = validate_pool(
        &prefixes,
        bounds.min_prefixlen.or(current(&pool.min_prefixlen)),
        bounds.max_prefixlen.or(current(&pool.max_prefixlen)),
        bounds.default_prefixlen.or(current(&pool.default_prefixlen)),
    )?;
    pool.ip_version = spec.ip_version;
    pool.prefixes = spec.prefixes.iter().map(|p| p.to_string()).collect();
    pool.min_prefixlen = spec.min_prefixlen.to_string();
    pool.max_prefixlen = spec.max_prefixlen.to_string();
    pool.default_prefixlen = spec.default_prefixlen.to_string();
    Ok(())
}

pub async fn create_pools(app: &App, ctx: &OpContext, items: Vec<CreatePool>) -> HttpResult<Vec<SubnetPool>> {
    create_each(app, ctx, "subnetpool", items, create_pool).await
}

async fn create_pool(app: &App, ctx: &OpContext, tx: &mut Tx, req: CreatePool) -> HttpResult<SubnetPool> {
    let project_id = project_for(app, ctx, &req.project_id);
    let now = store::now_timestamp();
    let mut pool = SubnetPool {
        id: uuid::Uuid::new_v4().to_string(),
        name: req.name,
        tenant_id: project_id.clone(),
        project_id,
        prefixes: Vec::new(),
        default_prefixlen: String::new(),
        min_prefixlen: String::new(),
        max_prefixlen: String::new(),
        ip_version: 0,
        address_scope_id: req.address_scope_id,
        is_default: req.is_default,
        shared: req.shared,
        default_quota: req.default_quota,
        description: req.description,
        tags: req.tags,
        created_at: now.clone(),
        updated_at: now,
        revision_number: 0,
    };
    apply_bounds(req.bounds, &mut pool)?;
    store::insert_pool(tx, &pool).await?;
    store::insert_initial_tags(tx, "subnetpools", &pool.id, &pool.tags).await?;
    Ok(pool)
}

pub async fn list_pools(app: &App, ctx: &OpContext, filters: &[Filter], page: &Page) -> HttpResult<Vec<SubnetPool>> {
    let mut c = app.store.reader().await?;
    Ok(store::list_pools(&mut c, filters, page, &ctx.visibility()).await?)
}

pub async fn show_pool(app: &App, ctx: &OpContext, id: &str) -> HttpResult<SubnetPool> {
    let mut c = app.store.reader().await?;
    authorize_item(ctx, &mut c, "subnetpool", id, ItemAction::Read).await?;
    Ok(store::get_pool(&mut c, id).await?)
}

pub async fn update_pool(app: &App, ctx: &OpContext, id: &str, req: UpdatePool) -> HttpResult<SubnetPool> {
    let mut tx = app.store.begin().await?;
    authorize_item(ctx, tx.conn(), "subnetpool", id, ItemAction::Update(&req.given)).await?;
    let mut pool = store::get_pool(tx.conn(), id).await?;
    let expected = pool.revision_number;
    store::check_revision(req.if_revision, expected)?;
    if let Some(n) = req.name {
        pool.name = n;
    }
    if let Some(d) = req.description {
        pool.description = d;
    }
    // A pool on an address scope the caller does not own (a shared one) cannot be changed.
    if let Some(scope_id) = pool.address_scope_id.clone() {
        let scope = store::get_scope(tx.conn(), &scope_id).await?;
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
    if let Some(scope) = req.address_scope_id {
        // The scope named must be one the caller sees (as on a create).
        if let Some(id) = &scope {
            authorize_item(ctx, tx.conn(), "address_scope", id, ItemAction::Read).await?;
        }
        pool.address_scope_id = scope;
    }
    if let Some(d) = req.is_default {
        pool.is_default = d;
    }
    if let Some(q) = req.default_quota {
        pool.default_quota = q;
    }
    apply_bounds(req.bounds, &mut pool)?;
    pool.updated_at = store::now_timestamp();
    store::update_pool(&mut tx, &pool, expected).await?;
    tx.commit().await?;
    pool.revision_number = expected + 1;
    Ok(pool)
}

pub async fn delete_pool(app: &App, ctx: &OpContext, id: &str) -> HttpResult<()> {
    let mut tx = app.store.begin().await?;
    authorize_item(ctx, tx.conn(), "subnetpool", id, ItemAction::Delete).await?;
    store::delete_pool(&mut tx, id).await?;
    tx.commit().await?;
    Ok(())
}
