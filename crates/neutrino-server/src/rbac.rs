//! `/v2.0/rbac-policies`: `access_as_shared` and `access_as_external` on networks, for one
//! project or `*`.

use crate::app::authorize::{authorize_item, ItemAction};
use crate::auth::Caller;
use crate::create::create_all;
use crate::error::{HttpError, HttpResult};
use crate::meta::collection;
use crate::request::{parse_body, parse_query, project_of, Attrs};
use crate::response::{many, no_content, one, PageInfo};
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
use neutrino_store::{self as store, RbacPolicy, Tx};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v2.0/rbac-policies", collection("rbac_policy", list, create))
        .route("/v2.0/rbac-policies/{id}", get(show).put(update).delete(delete))
}

async fn create(State(app): State<App>, Caller(ctx): Caller, headers: HeaderMap, body: Bytes) -> HttpResult<Response> {
    create_all(&app, &ctx, &headers, &body, &resources::RBAC_POLICY, create_one).await
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

async fn create_one(app: &App, tx: &mut Tx, headers: &HeaderMap, attrs: &Attrs) -> HttpResult<RbacPolicy> {
    for required in ["object_type", "object_id", "action"] {
        attrs.required(required)?;
    }
    let object_type = attrs.string("object_type", 255)?.unwrap_or_default();
    if object_type != "network" && object_type != "security_group" {
        let message = format!("'{object_type}' is not in ['network', 'security_group']");
        return Err(ApiError::invalid_attribute("object_type", message).into());
    }
    let action = attrs.string("action", 255)?.unwrap_or_default();
    let actions: &[&str] = if object_type == "network" { &store::NETWORK_ACTIONS } else { &["access_as_shared"] };
    if !actions.contains(&action.as_str()) {
        let valid = actions.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(", ");
        return Err(ApiError::invalid_attribute("action", format!("'{action}' is not in [{valid}]")).into());
    }
    let target = target_of(attrs)?.ok_or_else(|| {
        ApiError::bad_request("Failed to parse request. Required attribute 'target_tenant' not specified")
    })?;
    let object_id = attrs.string("object_id", 255)?.unwrap_or_default();
    if !is_uuid_like(&object_id) {
        return Err(ApiError::invalid_attribute("object_id", not_a_uuid(&object_id)).into());
    }
    if object_type == "security_group" {
        check_group_owner(tx, &object_id).await?;
        return insert(app, tx, headers, attrs, object_type, object_id, action, target).await;
    }
    let network = store::get_network(tx.conn(), &object_id).await?;
    let ctx = crate::auth::current();
    if let Some(project) = ctx.project_id().filter(|p| !ctx.is_admin && *p != network.project_id) {
        // Only the owner manipulates a network's policies: a network the caller sees is a
        // 400 (as Neutron), one it does not see does not exist.
        let ids = [object_id.clone()];
        let visible = network.shared
            || !store::networks_shared_with(tx.conn(), project, &ids).await?.is_empty()
            || !store::networks_external_to(tx.conn(), project, &ids).await?.is_empty();
        if !visible {
            return Err(HttpError(ApiError::not_found("network", &object_id)));
        }
        return Err(ApiError::invalid_input("Only admins can manipulate policies on networks they do not own").into());
    }
    insert(app, tx, headers, attrs, object_type, object_id, action, target).await
}

/// Only a group's owner (or an admin) shares it: a group the caller sees is a 400, one it
/// does not see does not exist.
async fn check_group_owner(tx: &mut Tx, group_id: &str) -> HttpResult<()> {
    let group = store::get_group(tx.conn(), group_id).await?;
    let ctx = crate::auth::current();
    if let Some(project) = ctx.project_id().filter(|p| !ctx.is_admin && *p != group.project_id) {
        if !store::group_shared_with(tx.conn(), group_id, project).await? {
            return Err(HttpError(ApiError::not_found("security_group", group_id)));
        }
        return Err(ApiError::invalid_input("Only admins can manipulate policies on objects they do not own").into());
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn insert(
    app: &App,
    tx: &mut Tx,
    headers: &HeaderMap,
    attrs: &Attrs,
    object_type: String,
    object_id: String,
    action: String,
    target: String,
) -> HttpResult<RbacPolicy> {
    let project_id = project_of(attrs, headers, &app.config.noauth_project)?;
    let policy = RbacPolicy {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: project_id.clone(),
        project_id,
        object_type,
        object_id,
        action,
        target_tenant: target,
    };
    store::insert_rbac_policy(tx, &policy).await?;
    Ok(policy)
}

async fn list(State(app): State<App>, headers: HeaderMap, RawQuery(raw): RawQuery) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    let mut c = app.store.reader().await?;
    let policies = store::list_rbac_policies(&mut c, &q.filters, &q.page, &q.visibility).await?;
    let info = PageInfo { headers: &headers, collection: "rbac-policies", raw_query: raw.as_deref(), page: &q.page };
    let links =
        info.links(policies.len(), policies.first().map(|p| p.id.as_str()), policies.last().map(|p| p.id.as_str()));
    Ok(many("rbac_policies", &policies, &q.fields, links))
}

async fn show(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let mut c = app.store.reader().await?;
    authorize_item(&ctx, &mut c, "rbac_policy", &id, ItemAction::Read).await?;
    let policy = store::get_rbac_policy(&mut c, &id).await?;
    Ok(one(StatusCode::OK, "rbac_policy", &policy, &q.fields))
}

async fn update(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> HttpResult<Response> {
    let attrs = parse_body(&body, &resources::RBAC_POLICY)?;
    let mut tx = app.store.begin().await?;
    authorize_item(&ctx, tx.conn(), "rbac_policy", &id, ItemAction::Update(attrs.given())).await?;
    let mut policy = store::get_rbac_policy(tx.conn(), &id).await?;
    if let Some(target) = target_of(&attrs)? {
        if target != policy.target_tenant {
            policy = store::retarget_rbac_policy(&mut tx, &policy, &target).await?;
        }
    }
    tx.commit().await?;
    Ok(one(StatusCode::OK, "rbac_policy", &policy, &[]))
}

async fn delete(State(app): State<App>, Caller(ctx): Caller, Path(id): Path<String>) -> HttpResult<Response> {
    let mut tx = app.store.begin().await?;
    authorize_item(&ctx, tx.conn(), "rbac_policy", &id, ItemAction::Delete).await?;
    let policy = store::get_rbac_policy(tx.conn(), &id).await?;
    store::delete_rbac_policy(&mut tx, &policy).await?;
    tx.commit().await?;
    Ok(no_content())
}
