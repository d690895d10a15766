//! Tag operations on a taggable resource (`/v2.0/<collection>/<id>/tags[/<tag>]`). Tags are
//! part of their resource: reading them needs `get_<resource>`, changing them
//! `update_<resource>`, both judged in the operation's transaction.

use super::authorize::{authorize_item, ItemAction};
use super::OpContext;
use crate::error::{HttpError, HttpResult};
use crate::App;
use neutrino_api::ApiError;
use neutrino_store::{self as store, Tx};

/// The resource of a taggable collection (`security_groups` → `security_group`).
fn member_of(collection: &str) -> &str {
    collection.strip_suffix('s').unwrap_or(collection)
}

async fn authorize_change(ctx: &OpContext, tx: &mut Tx, collection: &str, id: &str) -> HttpResult<()> {
    let action = format!("update_{}", member_of(collection));
    authorize_item(ctx, tx.conn(), member_of(collection), id, ItemAction::Named(&action)).await
}

fn tag_not_found(tag: &str) -> HttpError {
    HttpError(ApiError::new(404, "TagNotFound", format!("Tag {tag} could not be found.")))
}

/// The tags of an existing resource (404 when it does not exist, or the caller does not see it).
pub async fn list(app: &App, ctx: &OpContext, collection: &str, id: &str) -> HttpResult<Vec<String>> {
    let mut c = app.store.reader().await?;
    authorize_item(ctx, &mut c, member_of(collection), id, ItemAction::Read).await?;
    match collection {
        "networks" => drop(store::get_network(&mut c, id).await?),
        "subnets" => drop(store::get_subnet(&mut c, id).await?),
        "security_groups" => drop(store::get_group(&mut c, id).await?),
        "subnetpools" => drop(store::get_pool(&mut c, id).await?),
        "routers" => drop(store::get_router(&mut c, id).await?),
        "floatingips" => drop(store::get_floatingip(&mut c, id).await?),
        _ => drop(store::get_port(&mut c, id).await?),
    }
    Ok(store::tags_of(&mut c, collection, id).await?)
}

/// Whether the resource has `tag` (a `TagNotFound` when not).
pub async fn check(app: &App, ctx: &OpContext, collection: &str, id: &str, tag: &str) -> HttpResult<()> {
    if list(app, ctx, collection, id).await?.iter().any(|t| t == tag) {
        Ok(())
    } else {
        Err(tag_not_found(tag))
    }
}

/// Replace the resource's tags with `tags` (validated, sorted, without repeats).
pub async fn replace(app: &App, ctx: &OpContext, collection: &str, id: &str, tags: &[String]) -> HttpResult<()> {
    let mut tx = app.store.begin().await?;
    authorize_change(ctx, &mut tx, collection, id).await?;
    store::set_tags(&mut tx, collection, id, tags).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn add(app: &App, ctx: &OpContext, collection: &str, id: &str, tag: &str) -> HttpResult<()> {
    let mut tx = app.store.begin().await?;
    authorize_change(ctx, &mut tx, collection, id).await?;
    store::add_tag(&mut tx, collection, id, tag).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn remove(app: &App, ctx: &OpContext, collection: &str, id: &str, tag: &str) -> HttpResult<()> {
    let mut tx = app.store.begin().await?;
    authorize_change(ctx, &mut tx, collection, id).await?;
    if !store::remove_tag(&mut tx, collection, id, tag).await? {
        return Err(tag_not_found(tag));
    }
    tx.commit().await?;
    Ok(())
}
