//! `/v2.0/rbac-policies`: requests parsed, handed to [`crate::app::rbac`], results rendered.

use crate::app::rbac::{self as ops, CreateRbacPolicy, ObjectType};
use crate::auth::Caller;
use crate::error::HttpResult;
use crate::meta::collection;
use crate::request::{parse_body, parse_create, parse_query, Attrs};
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
use neutrino_domain::validators::{is_uuid_like, not_a_uuid};
use neutrino_store as store;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v2.0/rbac-policies", collection("rbac_policy", list, create))
        .route("/v2.0/rbac-policies/{id}", get(show).put(update).delete(delete))
}

/// `target_tenant`, validated as Neutron 29 does (`type:valid_target_project`).
fn target_of(attrs: &Attrs) -> Result<Option<String>, ApiError> {
    let Some(target) = attrs.string("target_tenant", 255)? else { return Ok(None) };
    if target != "*" && !is_uuid_like(&target) {
        return Err(ApiError::invalid_input(format!(
            "'{target}' is not a valid target project ID; expected a UUID or '*'"
        )));
    }
    Ok(Some(target))
}

/// One create item, validated in Neutron's order.
fn create_request(attrs: &Attrs) -> Result<CreateRbacPolicy, ApiError> {
    for required in ["object_type", "object_id", "action"] {
        attrs.required(required)?;
    }
    // As Neutron's `convert_valid_object_type` (only the types Neutrino shares are valid).
    let given_type = attrs.string("object_type", 255)?.unwrap_or_default();
    let object_type = match given_type.trim().to_ascii_lowercase().as_str() {
        "network" => ObjectType::Network,
        "security_group" => ObjectType::SecurityGroup,
        _ => return Err(ApiError::invalid_input(format!("'{given_type}' is not a valid RBAC object type"))),
    };
    let action = attrs.string("action", 255)?.unwrap_or_default();
    let actions: &[&str] =
        if object_type == ObjectType::Network { &store::NETWORK_ACTIONS } else { &["access_as_shared"] };
    if !actions.contains(&action.as_str()) {
        // The valid actions as the Python tuple Neutron prints (in its order).
        let tuple = match object_type {
            ObjectType::Network => "('access_as_shared', 'access_as_external')",
            ObjectType::SecurityGroup => "('access_as_shared',)",
        };
        return Err(ApiError::bad_request_kind(
            "InvalidActionForType",
            format!("Invalid action '{action}' for object type '{}'. Valid actions: {tuple}", object_type.name()),
        ));
    }
    let target_tenant = target_of(attrs)?.ok_or_else(|| {
        ApiError::bad_request("Failed to parse request. Required attribute 'target_tenant' not specified")
    })?;
    let object_id = attrs.string("object_id", 255)?.unwrap_or_default();
    if !is_uuid_like(&object_id) {
        return Err(ApiError::invalid_attribute("object_id", not_a_uuid(&object_id)));
    }
    Ok(CreateRbacPolicy {
        given: attrs.given().clone(),
        project_id: attrs.named_project()?,
        object_type,
        object_id,
        action,
        target_tenant,
    })
}

async fn create(State(app): State<App>, Caller(ctx): Caller, body: Bytes) -> HttpResult<Response> {
    let request = parse_create(&body, &resources::RBAC_POLICY)?;
    let items = request.items.iter().map(create_request).collect::<Result<_, _>>()?;
    let created = ops::create(&app, &ctx, items).await?;
    Ok(response::created("rbac_policy", "rbac_policies", &created, request.bulk))
}

async fn list(
    State(app): State<App>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> HttpResult<Response> {
    let mut q = parse_query(raw.as_deref())?;
    // Neutron's RBAC collection neither pages (everything comes back, without links) nor sorts.
    if !q.page.sort.is_empty() {
        let keys: Vec<String> = q.page.sort.iter().map(|(k, _)| format!("'{k}'")).collect();
        return Err(ApiError::bad_request(format!("[{}] is invalid attribute for sort_keys", keys.join(", "))).into());
    }
    q.page = Default::default();
    let policies = ops::list(&app, &ctx, &q.filters, &q.page).await?;
    Ok(response::list_page(&resources::RBAC_POLICY, &headers, raw.as_deref(), &q, &policies, |x| x.id.as_str()))
}

async fn show(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let policy = ops::show(&app, &ctx, &id).await?;
    Ok(one(StatusCode::OK, "rbac_policy", &policy, &q.fields))
}

async fn update(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> HttpResult<Response> {
    let attrs = parse_body(&body, &resources::RBAC_POLICY)?;
    let policy = ops::update(&app, &ctx, &id, attrs.given(), target_of(&attrs)?).await?;
    Ok(one(StatusCode::OK, "rbac_policy", &policy, &[]))
}

async fn delete(State(app): State<App>, Caller(ctx): Caller, Path(id): Path<String>) -> HttpResult<Response> {
    ops::delete(&app, &ctx, &id).await?;
    Ok(no_content())
}
