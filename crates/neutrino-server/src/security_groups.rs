//! `/v2.0/security-groups` and `/v2.0/security-group-rules`: requests parsed, handed to
//! [`crate::app::security_groups`], results rendered.

use crate::app::security_groups::{self as ops, CreateGroup, CreateRule, UpdateGroup};
use crate::auth::Caller;
use crate::error::{HttpError, HttpResult};
use crate::meta::collection;
use crate::request::{if_match_revision, parse_body, parse_create, parse_query, Attrs};
use crate::response::{self, no_content, one};
use crate::App;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use neutrino_api::ApiError;
use neutrino_domain::resources;
use neutrino_domain::security_groups::{validate_rule, RuleRequest};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v2.0/security-groups", collection("security_group", list_groups, create_groups))
        .route("/v2.0/security-groups/{id}", get(show_group).put(update_group).delete(delete_group))
        .route("/v2.0/security-group-rules", collection("security_group_rule", list_rules, create_rules))
        .route("/v2.0/security-group-rules/{id}", get(show_rule).delete(delete_rule))
}

async fn create_groups(State(app): State<App>, Caller(ctx): Caller, body: Bytes) -> HttpResult<Response> {
    let request = parse_create(&body, &resources::SECURITY_GROUP)?;
    let items = request
        .items
        .iter()
        .map(|attrs| {
            Ok(CreateGroup {
                given: attrs.given().clone(),
                project_id: attrs.named_project()?,
                name: attrs.string("name", 255)?.unwrap_or_default(),
                description: attrs.string("description", 255)?.unwrap_or_default(),
                stateful: attrs.boolean("stateful")?.unwrap_or(true),
                tags: crate::tags::tags_on_create(attrs)?,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    let created = ops::create_groups(&app, &ctx, items).await?;
    Ok(response::created("security_group", "security_groups", &created, request.bulk))
}

async fn list_groups(
    State(app): State<App>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    let groups = ops::list_groups(&app, &ctx, &q.filters, &q.page).await?;
    Ok(response::list_page(&resources::SECURITY_GROUP, &headers, raw.as_deref(), &q, &groups, |g| g.id.as_str()))
}

async fn show_group(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let group = ops::show_group(&app, &ctx, &id).await?;
    Ok(one(StatusCode::OK, "security_group", &group, &q.fields))
}

async fn update_group(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult<Response> {
    let attrs = parse_body(&body, &resources::SECURITY_GROUP)?;
    let request = UpdateGroup {
        given: attrs.given().clone(),
        name: attrs.string("name", 255)?,
        description: attrs.string("description", 255)?,
        stateful: attrs.boolean("stateful")?,
        if_revision: if_match_revision(&headers)?,
    };
    let group = ops::update_group(&app, &ctx, &id, request).await?;
    Ok(one(StatusCode::OK, "security_group", &group, &[]))
}

async fn delete_group(State(app): State<App>, Caller(ctx): Caller, Path(id): Path<String>) -> HttpResult<Response> {
    ops::delete_group(&app, &ctx, &id).await?;
    Ok(no_content())
}

async fn create_rules(State(app): State<App>, Caller(ctx): Caller, body: Bytes) -> HttpResult<Response> {
    let request = parse_create(&body, &resources::SECURITY_GROUP_RULE)?;
    let items = request
        .items
        .iter()
        .map(|attrs| {
            attrs.required("security_group_id")?;
            Ok(CreateRule {
                given: attrs.given().clone(),
                security_group_id: attrs.string("security_group_id", 36)?.unwrap_or_default(),
                project_id: attrs.named_project()?,
                rule: valid_rule(attrs)?,
                description: attrs.string("description", 255)?.unwrap_or_default(),
            })
        })
        .collect::<Result<_, HttpError>>()?;
    let created = ops::create_rules(&app, &ctx, items).await?;
    Ok(response::created("security_group_rule", "security_group_rules", &created, request.bulk))
}

async fn list_rules(
    State(app): State<App>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    let rules = ops::list_rules(&app, &ctx, &q.filters, &q.page).await?;
    Ok(response::list_page(&resources::SECURITY_GROUP_RULE, &headers, raw.as_deref(), &q, &rules, |r| r.id.as_str()))
}

async fn show_rule(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let rule = ops::show_rule(&app, &ctx, &id).await?;
    Ok(one(StatusCode::OK, "security_group_rule", &rule, &q.fields))
}

async fn delete_rule(State(app): State<App>, Caller(ctx): Caller, Path(id): Path<String>) -> HttpResult<Response> {
    ops::delete_rule(&app, &ctx, &id).await?;
    Ok(no_content())
}

/// A protocol given as a name or as a number.
pub(crate) fn protocol_of(attrs: &Attrs) -> Result<Option<String>, ApiError> {
    match attrs.raw("protocol") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(ApiError::invalid_attribute("protocol", format!("'{v}' is not a valid protocol"))),
    }
}

/// A rule's `port_range_min`/`max`, as Neutron converts it: a port number 0 to 65535 (or its
/// text), else `SecurityGroupInvalidPortValue`.
pub(crate) fn port_value(raw: Option<&serde_json::Value>) -> Result<Option<i64>, ApiError> {
    use serde_json::Value;
    let text = match raw {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    match text.trim().parse::<i64>() {
        Ok(p) if (0..=65535).contains(&p) => Ok(Some(p)),
        _ => Err(ApiError::bad_request_kind("SecurityGroupInvalidPortValue", format!("Invalid value for port {text}"))),
    }
}

/// A rule (or a default rule) as its body gives it, validated as Neutron does (remote ids
/// have no validator: an unknown one, id or not, is not found).
pub(crate) fn valid_rule(attrs: &Attrs) -> Result<neutrino_domain::security_groups::ValidRule, HttpError> {
    let port = |key: &str| port_value(attrs.raw(key));
    let remote = |key: &str| attrs.nullable_string(key);
    Ok(validate_rule(&RuleRequest {
        direction: attrs.string("direction", 16)?,
        ethertype: attrs.string("ethertype", 16)?,
        protocol: protocol_of(attrs)?,
        port_range_min: port("port_range_min")?,
        port_range_max: port("port_range_max")?,
        remote_ip_prefix: attrs.nullable_string("remote_ip_prefix")?.flatten(),
        remote_group_id: remote("remote_group_id")?.flatten(),
        remote_address_group_id: remote("remote_address_group_id")?.flatten(),
    })?)
}
