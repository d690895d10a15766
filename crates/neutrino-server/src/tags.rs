//! `/v2.0/{networks|subnets|ports}/{id}/tags[/{tag}]`

use crate::app::authorize::{authorize_item, ItemAction};
use crate::app::OpContext;
use crate::auth::Caller;
use crate::error::{HttpError, HttpResult};
use crate::request::Attrs;
use crate::response::no_content;
use crate::App;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use neutrino_api::ApiError;
use neutrino_store::{self as store, MAX_TAG_LENGTH};
use serde_json::{json, Value};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v2.0/{collection}/{id}/tags", get(list).put(replace).delete(clear))
        .route("/v2.0/{collection}/{id}/tags/{tag}", get(check).put(add).delete(remove))
}

/// The URL collection (`security-groups`) as the store names it (`security_groups`).
fn taggable(collection: &mut String) -> HttpResult<()> {
    *collection = collection.replace('-', "_");
    if store::is_taggable(collection) {
        Ok(())
    } else {
        Err(HttpError(ApiError::no_route()))
    }
}

/// The resource of a taggable collection (`security_groups` → `security_group`).
fn member_of(collection: &str) -> &str {
    collection.strip_suffix('s').unwrap_or(collection)
}

/// Tags are part of their resource: changing them is an update of it (`update_<resource>`),
/// authorized in the change's transaction.
async fn authorize_change(ctx: &OpContext, tx: &mut store::Tx, collection: &str, id: &str) -> HttpResult<()> {
    let action = format!("update_{}", member_of(collection));
    authorize_item(ctx, tx.conn(), member_of(collection), id, ItemAction::Named(&action)).await
}

fn validate(tag: &str) -> Result<(), ApiError> {
    if tag.is_empty() || tag.chars().count() > MAX_TAG_LENGTH {
        return Err(ApiError::invalid_attribute(
            "tags",
            format!("'{tag}' is not a valid tag: 1 to {MAX_TAG_LENGTH} characters"),
        ));
    }
    Ok(())
}

/// The `tags` attribute of a create body (tags given at creation).
pub fn tags_on_create(attrs: &Attrs) -> Result<Vec<String>, ApiError> {
    let mut tags = attrs.string_list("tags")?.unwrap_or_default();
    tags.iter().try_for_each(|t| validate(t))?;
    tags.sort();
    tags.dedup();
    Ok(tags)
}

async fn list(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path((mut collection, id)): Path<(String, String)>,
) -> HttpResult<Response> {
    taggable(&mut collection)?;
    let tags = read_tags(&app, &ctx, &collection, &id).await?;
    Ok(axum::Json(json!({ "tags": tags })).into_response())
}

/// The tags of an existing resource (404 when it does not exist).
async fn read_tags(app: &App, ctx: &OpContext, collection: &str, id: &str) -> HttpResult<Vec<String>> {
    let mut c = app.store.reader().await?;
    authorize_item(ctx, &mut c, member_of(collection), id, ItemAction::Read).await?;
    match collection {
        "networks" => drop(store::get_network(&mut c, id).await?),
        "subnets" => drop(store::get_subnet(&mut c, id).await?),
        "security_groups" => drop(store::get_group(&mut c, id).await?),
        "subnetpools" => drop(store::get_pool(&mut c, id).await?),
        _ => drop(store::get_port(&mut c, id).await?),
    }
    Ok(store::tags_of(&mut c, collection, id).await?)
}

async fn replace(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path((mut collection, id)): Path<(String, String)>,
    body: Bytes,
) -> HttpResult<Response> {
    taggable(&mut collection)?;
    let value: Value = serde_json::from_slice(&body).map_err(|_| ApiError::malformed_body())?;
    let Some(Value::Array(items)) = value.get("tags") else {
        return Err(ApiError::bad_request("Invalid tags body: expected {\"tags\": [...]}").into());
    };
    let mut tags = Vec::with_capacity(items.len());
    for item in items {
        let t =
            item.as_str().ok_or_else(|| ApiError::invalid_attribute("tags", format!("'{item}' is not a string")))?;
        validate(t)?;
        tags.push(t.to_string());
    }
    tags.sort();
    tags.dedup();
    let mut tx = app.store.begin().await?;
    authorize_change(&ctx, &mut tx, &collection, &id).await?;
    store::set_tags(&mut tx, &collection, &id, &tags).await?;
    tx.commit().await?;
    Ok(axum::Json(json!({ "tags": tags })).into_response())
}

async fn clear(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path((mut collection, id)): Path<(String, String)>,
) -> HttpResult<Response> {
    taggable(&mut collection)?;
    let mut tx = app.store.begin().await?;
    authorize_change(&ctx, &mut tx, &collection, &id).await?;
    store::set_tags(&mut tx, &collection, &id, &[]).await?;
    tx.commit().await?;
    Ok(no_content())
}

async fn check(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path((mut collection, id, tag)): Path<(String, String, String)>,
) -> HttpResult<Response> {
    taggable(&mut collection)?;
    let tags = read_tags(&app, &ctx, &collection, &id).await?;
    if tags.contains(&tag) {
        Ok(no_content())
    } else {
        Err(tag_not_found(&tag))
    }
}

async fn add(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path((mut collection, id, tag)): Path<(String, String, String)>,
) -> HttpResult<Response> {
    taggable(&mut collection)?;
    validate(&tag)?;
    let mut tx = app.store.begin().await?;
    authorize_change(&ctx, &mut tx, &collection, &id).await?;
    store::add_tag(&mut tx, &collection, &id, &tag).await?;
    tx.commit().await?;
    Ok(StatusCode::CREATED.into_response())
}

async fn remove(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path((mut collection, id, tag)): Path<(String, String, String)>,
) -> HttpResult<Response> {
    taggable(&mut collection)?;
    let mut tx = app.store.begin().await?;
    authorize_change(&ctx, &mut tx, &collection, &id).await?;
    if !store::remove_tag(&mut tx, &collection, &id, &tag).await? {
        return Err(tag_not_found(&tag));
    }
    tx.commit().await?;
    Ok(no_content())
}

fn tag_not_found(tag: &str) -> HttpError {
    HttpError(ApiError::new(404, "TagNotFound", format!("Tag {tag} could not be found.")))
}
