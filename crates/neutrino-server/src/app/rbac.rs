//! RBAC policy operations: `access_as_shared` and `access_as_external` on networks,
//! `access_as_shared` on security groups, for one project or `*`.

use super::authorize::{authorize_item, ItemAction};
use super::{create_each, project_for, CreateItem, OpContext};
use crate::error::{HttpError, HttpResult};
use crate::App;
use neutrino_api::ApiError;
use neutrino_store::{self as store, Filter, Page, RbacPolicy, Tx};
use serde_json::{Map, Value};

/// The kinds of objects policies are about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectType {
    Network,
    SecurityGroup,
}

impl ObjectType {
    pub fn name(self) -> &'static str {
        match self {
            ObjectType::Network => "network",
            ObjectType::SecurityGroup => "security_group",
        }
    }
}

/// One policy to create, as parsed (and validated) from its body.
pub struct CreateRbacPolicy {
    pub given: Map<String, Value>,
    pub project_id: Option<String>,
    pub object_type: ObjectType,
    pub object_id: String,
    pub action: String,
    /// A project id or `*`.
    pub target_tenant: String,
}

impl CreateItem for CreateRbacPolicy {
    fn given(&self) -> &Map<String, Value> {
        &self.given
    }
}

pub async fn create(app: &App, ctx: &OpContext, items: Vec<CreateRbacPolicy>) -> HttpResult<Vec<RbacPolicy>> {
    create_each(app, ctx, "rbac_policy", items, create_one).await
}

async fn create_one(app: &App, ctx: &OpContext, tx: &mut Tx, req: CreateRbacPolicy) -> HttpResult<RbacPolicy> {
    match req.object_type {
        ObjectType::SecurityGroup => check_group_owner(ctx, tx, &req.object_id).await?,
        ObjectType::Network => check_network_owner(ctx, tx, &req.object_id).await?,
    }
    let project_id = project_for(app, ctx, &req.project_id);
    let policy = RbacPolicy {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: project_id.clone(),
        project_id,
        object_type: req.object_type.name().to_string(),
        object_id: req.object_id,
        action: req.action,
        target_tenant: req.target_tenant,
    };
    store::insert_rbac_policy(tx, &policy).await?;
    Ok(policy)
}

/// Only the owner manipulates a network's policies: a network the caller sees is a 400 (as
/// Neutron), one it does not see does not exist.
async fn check_network_owner(ctx: &OpContext, tx: &mut Tx, network_id: &str) -> HttpResult<()> {
    let network = store::get_network(tx.conn(), network_id).await?;
    let Some(project) = ctx.project_id().filter(|p| !ctx.is_admin && *p != network.project_id) else { return Ok(()) };
    let ids = [network_id.to_string()];
    let visible = network.shared
        || !store::networks_shared_with(tx.conn(), project, &ids).await?.is_empty()
        || !store::networks_external_to(tx.conn(), project, &ids).await?.is_empty();
    if !visible {
        return Err(HttpError(ApiError::not_found("network", network_id)));
    }
    Err(ApiError::invalid_input("Only admins can manipulate policies on networks they do not own").into())
}

/// Only a group's owner (or an admin) shares it: a group the caller sees is a 400, one it
/// does not see does not exist.
async fn check_group_owner(ctx: &OpContext, tx: &mut Tx, group_id: &str) -> HttpResult<()> {
    let group = store::get_group(tx.conn(), group_id).await?;
    let Some(project) = ctx.project_id().filter(|p| !ctx.is_admin && *p != group.project_id) else { return Ok(()) };
    if !store::group_shared_with(tx.conn(), group_id, project).await? {
        return Err(HttpError(ApiError::not_found("security_group", group_id)));
    }
    Err(ApiError::invalid_input("Only admins can manipulate policies on objects they do not own").into())
}

pub async fn list(app: &App, ctx: &OpContext, filters: &[Filter], page: &Page) -> HttpResult<Vec<RbacPolicy>> {
    let mut c = app.store.reader().await?;
    Ok(store::list_rbac_policies(&mut c, filters, page, &ctx.visibility()).await?)
}

pub async fn show(app: &App, ctx: &OpContext, id: &str) -> HttpResult<RbacPolicy> {
    let mut c = app.store.reader().await?;
    authorize_item(ctx, &mut c, "rbac_policy", id, ItemAction::Read).await?;
    Ok(store::get_rbac_policy(&mut c, id).await?)
}

/// Point the policy at another project (`target`), if it names another.
pub async fn update(
    app: &App,
    ctx: &OpContext,
    id: &str,
    given: &Map<String, Value>,
    target: Option<String>,
) -> HttpResult<RbacPolicy> {
    let mut tx = app.store.begin().await?;
    authorize_item(ctx, tx.conn(), "rbac_policy", id, ItemAction::Update(given)).await?;
    let mut policy = store::get_rbac_policy(tx.conn(), id).await?;
    if let Some(target) = target.filter(|t| *t != policy.target_tenant) {
        policy = store::retarget_rbac_policy(&mut tx, &policy, &target).await?;
    }
    tx.commit().await?;
    Ok(policy)
}

pub async fn delete(app: &App, ctx: &OpContext, id: &str) -> HttpResult<()> {
    let mut tx = app.store.begin().await?;
    authorize_item(ctx, tx.conn(), "rbac_policy", id, ItemAction::Delete).await?;
    let policy = store::get_rbac_policy(tx.conn(), id).await?;
    store::delete_rbac_policy(&mut tx, &policy).await?;
    tx.commit().await?;
    Ok(())
}
