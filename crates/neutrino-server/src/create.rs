//! Create requests, single or bulk: every resource is created in one transaction, so a bulk
//! request is all or nothing.

use crate::error::HttpResult;
use crate::request::{parse_create, Attrs};
use crate::response;
use crate::App;
use axum::http::HeaderMap;
use axum::response::Response;
use neutrino_store::Tx;
use serde::Serialize;

/// Names of a resource in request and response bodies.
pub struct Names {
    pub resource: &'static str,
    pub collection: &'static str,
    /// Attribute lists a create accepts.
    pub allowed: &'static [&'static [&'static str]],
}

/// Parse a create body, run `create_one` for each item inside one transaction, reply 201.
pub async fn create_all<T, F>(
    app: &App,
    headers: &HeaderMap,
    body: &[u8],
    names: Names,
    create_one: F,
) -> HttpResult<Response>
where
    T: Serialize,
    F: AsyncFn(&App, &mut Tx, &HeaderMap, &Attrs) -> HttpResult<T>,
{
    let request = parse_create(body, names.resource, names.collection, names.allowed)?;
    let mut tx = app.store.begin().await?;
    let mut created = Vec::with_capacity(request.items.len());
    for attrs in &request.items {
        created.push(create_one(app, &mut tx, headers, attrs).await?);
    }
    tx.commit().await?;
    Ok(response::created(names.resource, names.collection, &created, request.bulk))
}
