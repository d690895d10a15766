//! `/v2.0/quotas`: Neutron's `quotas`, `quota_details` and `quota-check-limit-default`
//! extensions. Limits are enforced by the store inserts themselves (see
//! `neutrino_store::enforce_quota`); this module only shows and changes them.

use crate::error::{HttpError, HttpResult};
use crate::request::parse_body;
use crate::response::no_content;
use crate::App;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use neutrino_api::ApiError;
use neutrino_domain::quotas::{parse_limit, QuotaResource};
use neutrino_domain::resources;
use neutrino_store as store;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v2.0/quotas", get(list).post(create_not_supported))
        .route("/v2.0/quotas/tenant", get(caller_tenant))
        .route("/v2.0/quotas/project", get(caller_project))
        .route("/v2.0/quotas/{project_id}", get(show).put(update).delete(reset))
        .route("/v2.0/quotas/{project_id}/default", get(defaults))
        .route("/v2.0/quotas/{project_id}/details", get(details))
}

/// What a request does with quotas, for [`authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// The list of every project with overrides.
    ListAll,
    /// One project's limits, defaults or usage.
    Read,
    /// Setting or resetting one project's limits.
    Change,
}

/// The one place that decides who may do what with quotas (in Neutron: admins list and change
/// them, a project reads its own). Noauth mode allows everything.
fn authorize(_headers: &HeaderMap, access: Access, project_id: Option<&str>) -> HttpResult<()> {
    let ctx = crate::auth::current();
    let target = json!({"project_id": project_id, "tenant_id": project_id});
    let action = match access {
        // Listing every project's quotas is for admins.
        Access::ListAll => "update_quota",
        Access::Read => "get_quota",
        Access::Change => "update_quota",
    };
    if ctx.policy.allows(action, &ctx.creds, &target) {
        Ok(())
    } else {
        Err(crate::auth::authorize::forbidden(&[action.to_string()]))
    }
}

/// The project the caller acts in.
fn caller(app: &App, _headers: &HeaderMap) -> String {
    crate::auth::current().project_id().unwrap_or(&app.config.noauth_project).to_string()
}

/// `{"network": 100, ...}`
fn limits_body(limits: &BTreeMap<QuotaResource, i64>) -> Map<String, Value> {
    limits.iter().map(|(r, limit)| (r.name().to_string(), json!(limit))).collect()
}

async fn list(State(app): State<App>, headers: HeaderMap) -> HttpResult<Response> {
    authorize(&headers, Access::ListAll, None)?;
    let mut c = app.store.reader().await?;
    let projects = store::projects_with_limits(&mut c, app.store.quota_defaults()).await?;
    let quotas: Vec<Value> = projects
        .iter()
        .map(|(project_id, limits)| {
            let mut body = limits_body(limits);
            body.insert("project_id".into(), json!(project_id));
            body.insert("tenant_id".into(), json!(project_id));
            Value::Object(body)
        })
        .collect();
    Ok(Json(json!({ "quotas": quotas })).into_response())
}

async fn create_not_supported() -> HttpError {
    HttpError(ApiError::new(501, "HTTPNotImplemented", "POST requests are not supported on this resource."))
}

/// `GET /v2.0/quotas/tenant` (deprecated in Neutron) and `/v2.0/quotas/project`.
async fn caller_tenant(State(app): State<App>, headers: HeaderMap) -> Response {
    Json(json!({"tenant": {"tenant_id": caller(&app, &headers)}})).into_response()
}

async fn caller_project(State(app): State<App>, headers: HeaderMap) -> Response {
    Json(json!({"project": {"project_id": caller(&app, &headers)}})).into_response()
}

async fn show(State(app): State<App>, headers: HeaderMap, Path(project_id): Path<String>) -> HttpResult<Response> {
    authorize(&headers, Access::Read, Some(&project_id))?;
    let mut c = app.store.reader().await?;
    let limits = store::project_limits(&mut c, app.store.quota_defaults(), &project_id).await?;
    Ok(Json(json!({ "quota": limits_body(&limits) })).into_response())
}

async fn defaults(State(app): State<App>, headers: HeaderMap, Path(project_id): Path<String>) -> HttpResult<Response> {
    authorize(&headers, Access::Read, Some(&project_id))?;
    let limits = app.store.quota_defaults().effective(&BTreeMap::new());
    Ok(Json(json!({ "quota": limits_body(&limits) })).into_response())
}

async fn details(State(app): State<App>, headers: HeaderMap, Path(project_id): Path<String>) -> HttpResult<Response> {
    authorize(&headers, Access::Read, Some(&project_id))?;
    let mut c = app.store.reader().await?;
    let limits = store::project_limits(&mut c, app.store.quota_defaults(), &project_id).await?;
    let mut body = Map::new();
    for (resource, limit) in &limits {
        let used = store::quota_usage(&mut c, &project_id, *resource).await?;
        body.insert(resource.name().into(), json!({"limit": limit, "used": used, "reserved": 0}));
    }
    Ok(Json(json!({ "quota": body })).into_response())
}

/// `PUT {"quota": {"network": 5}}`: a limit below the current usage is refused unless
/// `"force": true` (`quota-check-limit-default`); `check_limit` is accepted for older clients.
async fn update(
    State(app): State<App>,
    headers: HeaderMap,
    Path(project_id): Path<String>,
    body: Bytes,
) -> HttpResult<Response> {
    authorize(&headers, Access::Change, Some(&project_id))?;
    let attrs = parse_body(&body, &resources::QUOTA)?;
    let force = attrs.boolean("force")?.unwrap_or(false);
    attrs.boolean("check_limit")?;
    let mut limits = Vec::new();
    for resource in QuotaResource::ALL {
        if let Some(value) = attrs.raw(resource.name()) {
            limits.push((resource, parse_limit(resource, value)?));
        }
    }
    let mut tx = app.store.begin().await?;
    store::set_project_limits(&mut tx, &project_id, &limits, force).await?;
    let limits = store::project_limits(tx.conn(), app.store.quota_defaults(), &project_id).await?;
    tx.commit().await?;
    Ok(Json(json!({ "quota": limits_body(&limits) })).into_response())
}

/// Back to the defaults; 404 `TenantQuotaNotFound` when the project had no override.
async fn reset(State(app): State<App>, headers: HeaderMap, Path(project_id): Path<String>) -> HttpResult<Response> {
    authorize(&headers, Access::Change, Some(&project_id))?;
    let mut tx = app.store.begin().await?;
    if !store::delete_project_limits(&mut tx, &project_id).await? {
        return Err(HttpError(ApiError::new(
            404,
            "TenantQuotaNotFound",
            format!("Quota for tenant {project_id} could not be found."),
        )));
    }
    tx.commit().await?;
    Ok(no_content())
}
