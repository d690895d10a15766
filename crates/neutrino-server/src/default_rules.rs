//! `/v2.0/default-security-group-rules`: requests parsed, handed to
//! [`crate::app::default_rules`], results rendered.

use crate::app::default_rules::{self as ops, CreateDefaultRule};
use crate::auth::Caller;
use crate::error::{HttpError, HttpResult};
use crate::meta::collection;
use crate::request::{parse_create, parse_query};
use crate::response::{self, no_content, one};
use crate::security_groups::valid_rule;
use crate::App;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use neutrino_domain::resources;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v2.0/default-security-group-rules", collection("default_security_group_rule", list, create))
        .route("/v2.0/default-security-group-rules/{id}", get(show).delete(delete))
}

async fn create(State(app): State<App>, Caller(ctx): Caller, body: Bytes) -> HttpResult<Response> {
    let request = parse_create(&body, &resources::DEFAULT_SECURITY_GROUP_RULE)?;
    let items = request
        .items
        .iter()
        .map(|attrs| {
            attrs.required("used_in_default_sg")?;
            attrs.required("used_in_non_default_sg")?;
            Ok(CreateDefaultRule {
                given: attrs.given().clone(),
                rule: valid_rule(attrs)?,
                description: attrs.string("description", 1024)?.unwrap_or_default(),
                used_in_default_sg: attrs.boolean("used_in_default_sg")?.unwrap_or(false),
                used_in_non_default_sg: attrs.boolean("used_in_non_default_sg")?.unwrap_or(true),
            })
        })
        .collect::<Result<_, HttpError>>()?;
    let created = ops::create(&app, &ctx, items).await?;
    Ok(response::created("default_security_group_rule", "default_security_group_rules", &created, request.bulk))
}

async fn list(State(app): State<App>, headers: HeaderMap, RawQuery(raw): RawQuery) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    let rules = ops::list(&app, &q.filters, &q.page).await?;
    Ok(response::list_page(&resources::DEFAULT_SECURITY_GROUP_RULE, &headers, raw.as_deref(), &q, &rules, |r| {
        r.id.as_str()
    }))
}

async fn show(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let rule = ops::show(&app, &ctx, &id).await?;
    Ok(one(StatusCode::OK, "default_security_group_rule", &rule, &q.fields))
}

async fn delete(State(app): State<App>, Caller(ctx): Caller, Path(id): Path<String>) -> HttpResult<Response> {
    ops::delete(&app, &ctx, &id).await?;
    Ok(no_content())
}
