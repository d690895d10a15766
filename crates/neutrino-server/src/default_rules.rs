//! `/v2.0/default-security-group-rules`: the rules new security groups start with (admins
//! write them; everyone may read them).

use crate::app::authorize::{authorize_item, ItemAction};
use crate::auth::Caller;
use crate::create::create_all;
use crate::error::HttpResult;
use crate::meta::collection;
use crate::request::{parse_query, Attrs};
use crate::response::{many, no_content, one, PageInfo};
use crate::security_groups::valid_rule;
use crate::App;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use neutrino_domain::resources;
use neutrino_store::{self as store, Tx};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v2.0/default-security-group-rules", collection("default_security_group_rule", list, create))
        .route("/v2.0/default-security-group-rules/{id}", get(show).delete(delete))
}

async fn create(State(app): State<App>, Caller(ctx): Caller, headers: HeaderMap, body: Bytes) -> HttpResult<Response> {
    create_all(&app, &ctx, &headers, &body, &resources::DEFAULT_SECURITY_GROUP_RULE, create_one).await
}

async fn create_one(
    _app: &App,
    tx: &mut Tx,
    _headers: &HeaderMap,
    attrs: &Attrs,
) -> HttpResult<neutrino_api::resources::DefaultSecurityGroupRule> {
    attrs.required("used_in_default_sg")?;
    attrs.required("used_in_non_default_sg")?;
    let rule = valid_rule(attrs)?;
    let description = attrs.string("description", 1024)?.unwrap_or_default();
    let in_default = attrs.boolean("used_in_default_sg")?.unwrap_or(false);
    let in_others = attrs.boolean("used_in_non_default_sg")?.unwrap_or(true);
    let id = uuid::Uuid::new_v4().to_string();
    Ok(store::insert_default_rule(tx, &id, &rule, &description, in_default, in_others).await?)
}

async fn list(State(app): State<App>, headers: HeaderMap, RawQuery(raw): RawQuery) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    let mut c = app.store.reader().await?;
    let rules = store::list_default_rules(&mut c, &q.filters, &q.page).await?;
    let info = PageInfo {
        headers: &headers,
        collection: "default-security-group-rules",
        raw_query: raw.as_deref(),
        page: &q.page,
    };
    let links = info.links(rules.len(), rules.first().map(|r| r.id.as_str()), rules.last().map(|r| r.id.as_str()));
    Ok(many("default_security_group_rules", &rules, &q.fields, links))
}

async fn show(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let mut c = app.store.reader().await?;
    authorize_item(&ctx, &mut c, "default_security_group_rule", &id, ItemAction::Read).await?;
    let r = store::get_default_rule(&mut c, &id).await?;
    Ok(one(StatusCode::OK, "default_security_group_rule", &r, &q.fields))
}

async fn delete(State(app): State<App>, Caller(ctx): Caller, Path(id): Path<String>) -> HttpResult<Response> {
    let mut tx = app.store.begin().await?;
    authorize_item(&ctx, tx.conn(), "default_security_group_rule", &id, ItemAction::Delete).await?;
    store::delete_default_rule(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(no_content())
}
