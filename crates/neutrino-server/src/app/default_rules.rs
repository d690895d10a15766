//! Default security group rule operations: the rules new groups start with (admins write
//! them; everyone may read them).

use super::authorize::{authorize_item, ItemAction};
use super::{create_each, CreateItem, OpContext};
use crate::error::HttpResult;
use crate::App;
use neutrino_api::resources::DefaultSecurityGroupRule;
use neutrino_domain::security_groups::ValidRule;
use neutrino_store::{self as store, Filter, Page, Tx};
use serde_json::{Map, Value};

/// One default rule to create, as parsed (and validated) from its body.
pub struct CreateDefaultRule {
    pub given: Map<String, Value>,
    pub rule: ValidRule,
    pub description: String,
    pub used_in_default_sg: bool,
    pub used_in_non_default_sg: bool,
}

impl CreateItem for CreateDefaultRule {
    fn given(&self) -> &Map<String, Value> {
        &self.given
    }
}

pub async fn create(
    app: &App,
    ctx: &OpContext,
    items: Vec<CreateDefaultRule>,
) -> HttpResult<Vec<DefaultSecurityGroupRule>> {
    create_each(app, ctx, "default_security_group_rule", items, create_one).await
}

async fn create_one(
    _app: &App,
    _ctx: &OpContext,
    tx: &mut Tx,
    req: CreateDefaultRule,
) -> HttpResult<DefaultSecurityGroupRule> {
    let id = uuid::Uuid::new_v4().to_string();
    let (in_default, in_others) = (req.used_in_default_sg, req.used_in_non_default_sg);
    Ok(store::insert_default_rule(tx, &id, &req.rule, &req.description, in_default, in_others).await?)
}

pub async fn list(app: &App, filters: &[Filter], page: &Page) -> HttpResult<Vec<DefaultSecurityGroupRule>> {
    let mut c = app.store.reader().await?;
    Ok(store::list_default_rules(&mut c, filters, page).await?)
}

pub async fn show(app: &App, ctx: &OpContext, id: &str) -> HttpResult<DefaultSecurityGroupRule> {
    let mut c = app.store.reader().await?;
    authorize_item(ctx, &mut c, "default_security_group_rule", id, ItemAction::Read).await?;
    Ok(store::get_default_rule(&mut c, id).await?)
}

pub async fn delete(app: &App, ctx: &OpContext, id: &str) -> HttpResult<()> {
    let mut tx = app.store.begin().await?;
    authorize_item(ctx, tx.conn(), "default_security_group_rule", id, ItemAction::Delete).await?;
    store::delete_default_rule(&mut tx, id).await?;
    tx.commit().await?;
    Ok(())
}
