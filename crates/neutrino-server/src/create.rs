//! Create requests, single or bulk: every resource is created in one transaction, so a bulk
//! request is all or nothing. Each item is authorized inside that transaction first.

use crate::app::authorize::authorize_create;
use crate::app::OpContext;
use crate::error::HttpResult;
use crate::request::{parse_create, Attrs};
use crate::response;
use crate::App;
use axum::http::HeaderMap;
use axum::response::Response;
use neutrino_domain::resources::ResourceDef;
use neutrino_store::Tx;
use serde::Serialize;

/// Parse a create body, authorize and run `create_one` for each item inside one
/// transaction, reply 201.
pub async fn create_all<T, F>(
    app: &App,
    ctx: &OpContext,
    headers: &HeaderMap,
    body: &[u8],
    def: &ResourceDef,
    create_one: F,
) -> HttpResult<Response>
where
    T: Serialize,
    F: AsyncFn(&App, &mut Tx, &HeaderMap, &Attrs) -> HttpResult<T>,
{
    let request = parse_create(body, def)?;
    let mut tx = app.store.begin().await?;
    let mut created = Vec::with_capacity(request.items.len());
    for attrs in &request.items {
        authorize_create(ctx, tx.conn(), def.member, attrs.given()).await?;
        created.push(create_one(app, &mut tx, headers, attrs).await?);
    }
    tx.commit().await?;
    Ok(response::created(def.member, def.collection, &created, request.bulk))
}
