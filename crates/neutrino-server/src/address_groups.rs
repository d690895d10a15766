//! `/v2.0/address-groups`: named sets of CIDRs for security group rules'
//! `remote_address_group_id`, with `add_addresses` and `remove_addresses`.

use crate::app::authorize::{authorize_item, ItemAction};
use crate::app::OpContext;
use crate::auth::Caller;
use crate::create::create_all;
use crate::error::HttpResult;
use crate::meta::collection;
use crate::request::{if_match_revision, parse_body, parse_query, project_of, Attrs};
use crate::response::{many, no_content, one, PageInfo};
use crate::App;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, put};
use axum::Router;
use neutrino_api::resources::AddressGroup;
use neutrino_api::ApiError;
use neutrino_domain::resources;
use neutrino_store::{self as store, Tx};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v2.0/address-groups", collection("address_group", list, create))
        .route("/v2.0/address-groups/{id}", get(show).put(update).delete(delete))
        .route("/v2.0/address-groups/{id}/add_addresses", put(add_addresses))
        .route("/v2.0/address-groups/{id}/remove_addresses", put(remove_addresses))
}

/// `addresses` as neutron-lib's `type:subnet_list` takes them on a create (CIDRs only; the
/// actions, as Neutron's, also take a bare address as its host prefix), normalized as Neutron
/// stores them (`network/prefixlen`), duplicates merged.
fn addresses_of(value: Option<&serde_json::Value>, bare_addresses: bool) -> Result<Vec<String>, ApiError> {
    use serde_json::Value;
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(ApiError::invalid_attribute("addresses", format!("'{other}' is not a list")));
        }
    };
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let text = item.as_str().unwrap_or_default();
        if let (false, Ok(addr)) = (bare_addresses, text.parse::<std::net::IpAddr>()) {
            let cidr = ipnet::IpNet::from(addr);
            return Err(ApiError::invalid_attribute(
                "addresses",
                format!("'{text}' isn't a recognized IP subnet cidr, '{cidr}' is recommended"),
            ));
        }
        let net = text
            .parse::<ipnet::IpNet>()
            .ok()
            .or_else(|| text.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
            .ok_or_else(|| ApiError::invalid_attribute("addresses", format!("'{text}' is not a valid IP subnet")))?;
        let normalized = net.trunc().to_string();
        if !out.contains(&normalized) {
            out.push(normalized);
        }
    }
    Ok(out)
}

async fn create(State(app): State<App>, Caller(ctx): Caller, headers: HeaderMap, body: Bytes) -> HttpResult<Response> {
    create_all(&app, &ctx, &headers, &body, &resources::ADDRESS_GROUP, create_one).await
}

async fn create_one(app: &App, tx: &mut Tx, headers: &HeaderMap, attrs: &Attrs) -> HttpResult<AddressGroup> {
    let project_id = project_of(attrs, headers, &app.config.noauth_project)?;
    let now = store::now_timestamp();
    let group = AddressGroup {
        id: uuid::Uuid::new_v4().to_string(),
        name: attrs.string("name", 255)?.unwrap_or_default(),
        description: attrs.string("description", 1024)?.unwrap_or_default(),
        tenant_id: project_id.clone(),
        project_id,
        addresses: addresses_of(attrs.raw("addresses"), false)?,
        created_at: now.clone(),
        updated_at: now,
        revision_number: 1,
    };
    store::insert_address_group(tx, &group).await?;
    Ok(store::get_address_group(tx.conn(), &group.id).await?)
}

async fn list(State(app): State<App>, headers: HeaderMap, RawQuery(raw): RawQuery) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    let mut c = app.store.reader().await?;
    let groups = store::list_address_groups(&mut c, &q.filters, &q.page, &q.visibility).await?;
    let info = PageInfo { headers: &headers, collection: "address-groups", raw_query: raw.as_deref(), page: &q.page };
    let links = info.links(groups.len(), groups.first().map(|g| g.id.as_str()), groups.last().map(|g| g.id.as_str()));
    Ok(many("address_groups", &groups, &q.fields, links))
}

async fn show(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let mut c = app.store.reader().await?;
    authorize_item(&ctx, &mut c, "address_group", &id, ItemAction::Read).await?;
    let g = store::get_address_group(&mut c, &id).await?;
    Ok(one(StatusCode::OK, "address_group", &g, &q.fields))
}

async fn update(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult<Response> {
    let attrs = parse_body(&body, &resources::ADDRESS_GROUP)?;
    let mut tx = app.store.begin().await?;
    authorize_item(&ctx, tx.conn(), "address_group", &id, ItemAction::Update(attrs.given())).await?;
    let mut g = store::get_address_group(tx.conn(), &id).await?;
    let expected = g.revision_number;
    if if_match_revision(&headers)?.is_some_and(|r| r != expected) {
        return Err(store::StoreError::RevisionMismatch.into());
    }
    if let Some(name) = attrs.string("name", 255)? {
        g.name = name;
    }
    if let Some(d) = attrs.string("description", 1024)? {
        g.description = d;
    }
    g.updated_at = store::now_timestamp();
    store::update_address_group(&mut tx, &g, expected).await?;
    tx.commit().await?;
    g.revision_number = expected + 1;
    Ok(one(StatusCode::OK, "address_group", &g, &[]))
}

/// The body of `add_addresses` and `remove_addresses`: `{"addresses": [...]}`.
fn action_addresses(body: &[u8]) -> Result<Vec<String>, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| ApiError::malformed_body())?;
    let Some(addresses) = value.get("addresses") else {
        return Err(ApiError::bad_request("Unrecognized action"));
    };
    addresses_of(Some(addresses), true)
}

async fn change(app: &App, ctx: &OpContext, id: &str, body: &[u8], add: bool) -> HttpResult<Response> {
    let addresses = action_addresses(body)?;
    let mut tx = app.store.begin().await?;
    let action = if add { "add_addresses" } else { "remove_addresses" };
    authorize_item(ctx, tx.conn(), "address_group", id, ItemAction::Named(action)).await?;
    let g = store::change_addresses(&mut tx, id, &addresses, add).await?;
    tx.commit().await?;
    Ok(one(StatusCode::OK, "address_group", &g, &[]))
}

async fn add_addresses(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> HttpResult<Response> {
    change(&app, &ctx, &id, &body, true).await
}

async fn remove_addresses(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> HttpResult<Response> {
    change(&app, &ctx, &id, &body, false).await
}

async fn delete(State(app): State<App>, Caller(ctx): Caller, Path(id): Path<String>) -> HttpResult<Response> {
    let mut tx = app.store.begin().await?;
    authorize_item(&ctx, tx.conn(), "address_group", &id, ItemAction::Delete).await?;
    store::delete_address_group(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(no_content())
}
