//! The application layer: one function per API operation. Each takes the explicit
//! [`OpContext`] of the caller and a typed request the HTTP layer parsed once, runs in one
//! transaction, and authorizes on the rows it loads in that transaction (so what is checked is
//! what is acted on). The HTTP modules only parse, call one of these, and render.
//!
//! Quotas and IP availability keep their few checks in their HTTP modules (quota paths are
//! judged by the request middleware from the project in the path; availabilities are
//! admin-only).

pub mod address_groups;
pub mod agents;
pub mod authorize;
pub mod default_rules;
pub mod dhcp_ports;
pub mod floating_ips;
pub mod networks;
pub mod ports;
pub mod rbac;
pub mod router_interfaces;
pub mod routers;
pub mod security_groups;
pub mod segments;
pub mod snat_gateways;
pub mod subnet_pools;
pub mod subnets;
pub mod tags;

/// Who an operation acts for: the request's credentials, whether they are an admin, and the
/// policy. Handlers get it from the request ([`crate::auth::Caller`]); without one a request
/// is refused.
pub type OpContext = crate::auth::Context;

use crate::error::HttpResult;
use crate::App;
use neutrino_store::Tx;
use serde_json::{Map, Value};

/// One item of a create request: what its body gave, for the policy.
pub trait CreateItem {
    fn given(&self) -> &Map<String, Value>;
}

/// Create every item of a (bulk) request in one transaction, all or nothing: each is
/// authorized (`create_<resource>`, inside the transaction) and then made by `create_one`.
pub async fn create_each<R: CreateItem, T>(
    app: &App,
    ctx: &OpContext,
    resource: &str,
    items: Vec<R>,
    create_one: impl AsyncFn(&App, &OpContext, &mut Tx, R) -> HttpResult<T>,
) -> HttpResult<Vec<T>> {
    let mut tx = app.store.begin().await?;
    let mut created = Vec::with_capacity(items.len());
    for item in items {
        authorize::authorize_create(ctx, tx.conn(), resource, item.given()).await?;
        created.push(create_one(app, ctx, &mut tx, item).await?);
    }
    tx.commit().await?;
    Ok(created)
}

/// Run `create_one` for every item in one transaction, all or nothing (for operations that
/// authorize their items themselves, on what the item names).
pub async fn in_one_transaction<R, T>(
    app: &App,
    ctx: &OpContext,
    items: Vec<R>,
    create_one: impl AsyncFn(&App, &OpContext, &mut Tx, R) -> HttpResult<T>,
) -> HttpResult<Vec<T>> {
    let mut tx = app.store.begin().await?;
    let mut created = Vec::with_capacity(items.len());
    for item in items {
        created.push(create_one(app, ctx, &mut tx, item).await?);
    }
    tx.commit().await?;
    Ok(created)
}

/// The project a new item is for: the one its body names, else the caller's.
pub fn project_for(app: &App, ctx: &OpContext, named: &Option<String>) -> String {
    named.clone().unwrap_or_else(|| ctx.project_id().unwrap_or(&app.config.noauth_project).to_string())
}
