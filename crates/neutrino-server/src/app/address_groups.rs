//! Address group operations, with `add_addresses` and `remove_addresses`.

use super::authorize::{authorize_item, ItemAction};
use super::{create_each, project_for, CreateItem, OpContext};
use crate::error::HttpResult;
use crate::App;
use neutrino_api::resources::AddressGroup;
use neutrino_store::{self as store, Filter, Page, Tx};
use serde_json::{Map, Value};

/// One address group to create, as parsed from its body.
pub struct CreateAddressGroup {
    pub given: Map<String, Value>,
    pub project_id: Option<String>,
    pub name: String,
    pub description: String,
    /// Normalized CIDRs, without repeats.
    pub addresses: Vec<String>,
}

impl CreateItem for CreateAddressGroup {
    fn given(&self) -> &Map<String, Value> {
        &self.given
    }
}

/// Changes to an address group (`None`: unchanged).
pub struct UpdateAddressGroup {
    pub given: Map<String, Value>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub if_revision: Option<u64>,
}

pub async fn create(app: &App, ctx: &OpContext, items: Vec<CreateAddressGroup>) -> HttpResult<Vec<AddressGroup>> {
    create_each(app, ctx, "address_group", items, create_one).await
}

async fn create_one(app: &App, ctx: &OpContext, tx: &mut Tx, req: CreateAddressGroup) -> HttpResult<AddressGroup> {
    let project_id = project_for(app, ctx, &req.project_id);
    let now = store::now_timestamp();
    let group = AddressGroup {
        id: uuid::Uuid::new_v4().to_string(),
        name: req.name,
        description: req.description,
        tenant_id: project_id.clone(),
        project_id,
        addresses: req.addresses,
        created_at: now.clone(),
        updated_at: now,
        revision_number: 1,
    };
    store::insert_address_group(tx, &group).await?;
    Ok(store::get_address_group(tx.conn(), &group.id).await?)
}

pub async fn list(app: &App, ctx: &OpContext, filters: &[Filter], page: &Page) -> HttpResult<Vec<AddressGroup>> {
    let mut c = app.store.reader().await?;
    Ok(store::list_address_groups(&mut c, filters, page, &ctx.visibility()).await?)
}

pub async fn show(app: &App, ctx: &OpContext, id: &str) -> HttpResult<AddressGroup> {
    let mut c = app.store.reader().await?;
    authorize_item(ctx, &mut c, "address_group", id, ItemAction::Read).await?;
    Ok(store::get_address_group(&mut c, id).await?)
}

pub async fn update(app: &App, ctx: &OpContext, id: &str, req: UpdateAddressGroup) -> HttpResult<AddressGroup> {
    let mut tx = app.store.begin().await?;
    authorize_item(ctx, tx.conn(), "address_group", id, ItemAction::Update(&req.given)).await?;
    let mut g = store::get_address_group(tx.conn(), id).await?;
    let expected = g.revision_number;
    store::check_revision(req.if_revision, expected)?;
    if let Some(name) = req.name {
        g.name = name;
    }
    if let Some(d) = req.description {
        g.description = d;
    }
    g.updated_at = store::now_timestamp();
    store::update_address_group(&mut tx, &g, expected).await?;
    tx.commit().await?;
    g.revision_number = expected + 1;
    Ok(g)
}

/// `add_addresses` (`add`) or `remove_addresses`.
pub async fn change_addresses(
    app: &App,
    ctx: &OpContext,
    id: &str,
    addresses: &[String],
    add: bool,
) -> HttpResult<AddressGroup> {
    let mut tx = app.store.begin().await?;
    let action = if add { "add_addresses" } else { "remove_addresses" };
    authorize_item(ctx, tx.conn(), "address_group", id, ItemAction::Named(action)).await?;
    let g = store::change_addresses(&mut tx, id, addresses, add).await?;
    tx.commit().await?;
    Ok(g)
}

pub async fn delete(app: &App, ctx: &OpContext, id: &str) -> HttpResult<()> {
    let mut tx = app.store.begin().await?;
    authorize_item(ctx, tx.conn(), "address_group", id, ItemAction::Delete).await?;
    store::delete_address_group(&mut tx, id).await?;
    tx.commit().await?;
    Ok(())
}
