//! `/v2.0/{networks|subnets|ports}/{id}/tags[/{tag}]`

use crate::app::tags as ops;
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

fn validate(tag: &str) -> Result<(), ApiError> {
    if tag.is_empty() || tag.chars().count() > MAX_TAG_LENGTH || crate::request::has_nul(tag) {
        return Err(ApiError::invalid_attribute(
            "tags",
            format!("'{tag}' is not a valid tag: 1 to {MAX_TAG_LENGTH} characters, none of them NUL"),
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
    let tags = ops::list(&app, &ctx, &collection, &id).await?;
    Ok(axum::Json(json!({ "tags": tags })).into_response())
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
    ops::replace(&app, &ctx, &collection, &id, &tags).await?;
    Ok(axum::Json(json!({ "tags": tags })).into_response())
}

async fn clear(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path((mut collection, id)): Path<(String, String)>,
) -> HttpResult<Response> {
    taggable(&mut collection)?;
    ops::replace(&app, &ctx, &collection, &id, &[]).await?;
    Ok(no_content())
}

async fn check(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path((mut collection, id, tag)): Path<(String, String, String)>,
) -> HttpResult<Response> {
    taggable(&mut collection)?;
    ops::check(&app, &ctx, &collection, &id, &tag).await?;
    Ok(no_content())
}

async fn add(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path((mut collection, id, tag)): Path<(String, String, String)>,
) -> HttpResult<Response> {
    taggable(&mut collection)?;
    validate(&tag)?;
    ops::add(&app, &ctx, &collection, &id, &tag).await?;
    Ok(StatusCode::CREATED.into_response())
}

async fn remove(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path((mut collection, id, tag)): Path<(String, String, String)>,
) -> HttpResult<Response> {
    taggable(&mut collection)?;
    ops::remove(&app, &ctx, &collection, &id, &tag).await?;
    Ok(no_content())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_tag_with_a_nul_character_is_a_bad_request() {
        assert_eq!(super::validate("a\0b").err().map(|e| e.status), Some(400));
        assert!(super::validate("blue").is_ok());
    }
}
