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
    for (i, item) in in_project_order(app, ctx, items) {
        authorize::authorize_create(ctx, tx.conn(), resource, item.given()).await?;
        created.push((i, create_one(app, ctx, &mut tx, item).await?));
    }
    tx.commit().await?;
    Ok(in_request_order(created))
}

/// Run `create_one` for every item in one transaction, all or nothing (for operations that
/// authorize their items themselves, on what the item names).
pub async fn in_one_transaction<R: CreateItem, T>(
    app: &App,
    ctx: &OpContext,
    items: Vec<R>,
    create_one: impl AsyncFn(&App, &OpContext, &mut Tx, R) -> HttpResult<T>,
) -> HttpResult<Vec<T>> {
    let mut tx = app.store.begin().await?;
    let mut created = Vec::with_capacity(items.len());
    for (i, item) in in_project_order(app, ctx, items) {
        created.push((i, create_one(app, ctx, &mut tx, item).await?));
    }
    tx.commit().await?;
    Ok(in_request_order(created))
}

/// The order a bulk create makes its items in: grouped by the project each is for (the
/// request's order within a project), with each item's place in the request. Every
/// transaction then takes its per-project locks (quota counts, a project's default security
/// group) in one global order, so two bulk creates that mix projects never deadlock each other.
pub fn in_project_order<R: CreateItem>(app: &App, ctx: &OpContext, items: Vec<R>) -> Vec<(usize, R)> {
    let mut indexed: Vec<(usize, R)> = items.into_iter().enumerate().collect();
    if indexed.len() > 1 {
        let caller = ctx.project_id().unwrap_or(&app.config.noauth_project).to_string();
        let project = |item: &R| -> String {
            let given = item.given();
            let named = given.get("project_id").or_else(|| given.get("tenant_id")).and_then(Value::as_str);
            named.map_or_else(|| caller.clone(), str::to_string)
        };
        indexed.sort_by_cached_key(|(_, item)| project(item));
    }
    indexed
}

/// What [`in_project_order`] made, back in the request's order (replies keep it).
pub fn in_request_order<T>(mut made: Vec<(usize, T)>) -> Vec<T> {
    made.sort_by_key(|(i, _)| *i);
    made.into_iter().map(|(_, t)| t).collect()
}

/// The project a new item is for: the one its body names, else the caller's.
pub fn project_for(app: &App, ctx: &OpContext, named: &Option<String>) -> String {
    named.clone().unwrap_or_else(|| ctx.project_id().unwrap_or(&app.config.noauth_project).to_string())
}
