//! `/v2.0/networks`

use crate::create::{create_all, Names};
use crate::error::{HttpError, HttpResult};
use crate::meta::collection;
use crate::request::{if_match_revision, parse_body, parse_query, project_of, Attrs};
use crate::response::{many, no_content, one, PageInfo};
use crate::App;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use neutrino_api::resources::Network;
use neutrino_api::ApiError;
use neutrino_domain::segments::{mtu_for, plan_segment, ProviderRequest, SegmentPlan};
use neutrino_store::{self as store, Tx};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v2.0/networks", collection("network", list, create))
        .route("/v2.0/networks/{id}", get(show).put(update).delete(delete))
}

const CREATE_ATTRS: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "shared",
    "mtu",
    "port_security_enabled",
    "project_id",
    "tenant_id",
    "provider:network_type",
    "provider:physical_network",
    "provider:segmentation_id",
    "router:external",
    "availability_zone_hints",
    "qos_policy_id",
    "is_default",
    "dns_domain",
    "tags",
];

const UPDATE_ATTRS: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "shared",
    "mtu",
    "port_security_enabled",
    "router:external",
    "qos_policy_id",
    "dns_domain",
];

/// Network attributes accepted only with their defaults until their features exist.
fn unsupported_network_attrs() -> [(&'static str, serde_json::Value); 2] {
    use serde_json::json;
    [("qos_policy_id", json!(null)), ("is_default", json!(false))]
}

/// `dns_domain`: with DNS integration, validated; without it, only the empty default.
fn dns_domain_of(app: &App, attrs: &Attrs) -> Result<Option<String>, ApiError> {
    let Some(domain) = attrs.string("dns_domain", 255)? else { return Ok(None) };
    if app.config.dns_domain.is_none() {
        attrs.only_defaults(&[("dns_domain", serde_json::json!(""))])?;
        return Ok(None);
    }
    Ok(Some(neutrino_domain::dns::validate_dns_domain(&domain).map_err(|e| crate::error::HttpError::from(e).0)?))
}

async fn create(State(app): State<App>, headers: HeaderMap, body: Bytes) -> HttpResult<Response> {
    let names = Names { resource: "network", collection: "networks", allowed: &[CREATE_ATTRS] };
    create_all(&app, &headers, &body, names, create_one).await
}

/// `availability_zone_hints`: each must be the zone of a registered agent.
async fn zone_hints(tx: &mut Tx, attrs: &Attrs) -> HttpResult<Vec<String>> {
    let Some(mut hints) = attrs.string_list("availability_zone_hints")? else { return Ok(Vec::new()) };
    hints.sort();
    hints.dedup();
    let known: Vec<String> = store::list_agents(tx.conn()).await?.into_iter().map(|a| a.availability_zone).collect();
    if let Some(bad) = hints.iter().find(|h| !known.contains(h)) {
        return Err(HttpError(ApiError::new(
            404,
            "AvailabilityZoneNotFound",
            format!("AvailabilityZone {bad} could not be found."),
        )));
    }
    Ok(hints)
}

async fn create_one(app: &App, tx: &mut Tx, headers: &HeaderMap, attrs: &Attrs) -> HttpResult<Network> {
    let project_id = project_of(attrs, headers, &app.config.noauth_project)?;
    attrs.only_defaults(&unsupported_network_attrs())?;
    let provider = ProviderRequest {
        network_type: attrs.string("provider:network_type", 255)?,
        physical_network: attrs.nullable_string("provider:physical_network")?.flatten(),
        segmentation_id: attrs.uint("provider:segmentation_id")?.map(|v| v.min(u32::MAX as u64) as u32),
    };
    let plan = plan_segment(&app.config.type_drivers, &provider)?;
    let network_type = match &plan {
        SegmentPlan::Allocate { network_type, .. }
        | SegmentPlan::Reserve { network_type, .. }
        | SegmentPlan::Nothing { network_type } => network_type.clone(),
    };
    let max_mtu = mtu_for(&network_type, &app.config.type_drivers);
    let mtu = match attrs.uint("mtu")? {
        Some(m) if m < 68 || m > max_mtu as u64 => {
            return Err(ApiError::invalid_input(format!("Requested MTU is too big, maximum is {max_mtu}")).into())
        }
        Some(m) => m as u32,
        None => max_mtu,
    };
    let now = store::now_timestamp();
    let mut net = Network {
        id: uuid::Uuid::new_v4().to_string(),
        name: attrs.string("name", 255)?.unwrap_or_default(),
        tenant_id: project_id.clone(),
        project_id,
        admin_state_up: attrs.boolean("admin_state_up")?.unwrap_or(true),
        mtu,
        status: "ACTIVE".into(),
        subnets: Vec::new(),
        shared: attrs.boolean("shared")?.unwrap_or(false),
        port_security_enabled: attrs.boolean("port_security_enabled")?.unwrap_or(true),
        qos_policy_id: None,
        router_external: attrs.boolean("router:external")?.unwrap_or(false),
        network_type,
        physical_network: None,
        segmentation_id: None,
        is_default: Some(false),
        availability_zone_hints: zone_hints(tx, attrs).await?,
        availability_zones: Vec::new(),
        ipv4_address_scope: None,
        ipv6_address_scope: None,
        description: attrs.string("description", 255)?.unwrap_or_default(),
        l2_adjacency: true,
        dns_domain: Some(dns_domain_of(app, attrs)?.unwrap_or_default()),
        tags: Vec::new(),
        created_at: now.clone(),
        updated_at: now,
        revision_number: 1,
    };
    net.tags = crate::tags::tags_on_create(attrs)?;
    store::insert_network(tx, &mut net, &plan).await?;
    app.store.finish_network(&mut net);
    store::insert_initial_tags(tx, "networks", &net.id, &net.tags).await?;
    Ok(net)
}

async fn show(State(app): State<App>, Path(id): Path<String>, RawQuery(q): RawQuery) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let mut c = app.store.reader().await?;
    let mut net = store::get_network(&mut c, &id).await?;
    app.store.finish_network(&mut net);
    Ok(one(StatusCode::OK, "network", &net, &q.fields))
}

async fn list(State(app): State<App>, headers: HeaderMap, RawQuery(raw): RawQuery) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    let mut c = app.store.reader().await?;
    let mut nets = store::list_networks(&mut c, &q.filters, &q.page).await?;
    nets.iter_mut().for_each(|n| app.store.finish_network(n));
    let info = PageInfo { headers: &headers, collection: "networks", raw_query: raw.as_deref(), page: &q.page };
    let links = info.links(nets.len(), nets.first().map(|n| n.id.as_str()), nets.last().map(|n| n.id.as_str()));
    Ok(many("networks", &nets, &q.fields, links))
}

async fn update(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult<Response> {
    let attrs = parse_body(&body, "network", UPDATE_ATTRS)?;
    attrs.only_defaults(&unsupported_network_attrs())?;
    let patch = store::NetworkPatch {
        name: attrs.string("name", 255)?,
        description: attrs.string("description", 255)?,
        admin_state_up: attrs.boolean("admin_state_up")?,
        mtu: attrs.uint("mtu")?.map(|m| m.min(u32::MAX as u64) as u32),
        shared: attrs.boolean("shared")?,
        port_security_enabled: attrs.boolean("port_security_enabled")?,
        router_external: attrs.boolean("router:external")?,
        dns_domain: dns_domain_of(&app, &attrs)?,
    };
    let mut tx = app.store.begin().await?;
    if let Some(mtu) = patch.mtu {
        let current = store::get_network(tx.conn(), &id).await?;
        let max = mtu_for(&current.network_type, &app.config.type_drivers);
        if !(68..=max).contains(&mtu) {
            return Err(ApiError::invalid_input(format!("Requested MTU is too big, maximum is {max}")).into());
        }
    }
    let mut net = store::update_network(&mut tx, &id, &patch, if_match_revision(&headers)?).await?;
    tx.commit().await?;
    app.store.finish_network(&mut net);
    Ok(one(StatusCode::OK, "network", &net, &[]))
}

async fn delete(State(app): State<App>, Path(id): Path<String>) -> HttpResult<Response> {
    let mut tx = app.store.begin().await?;
    match store::delete_network(&mut tx, &id).await {
        Ok(()) => {}
        // A port was created on the network while we deleted it: the foreign key refused.
        Err(e) if e.is_foreign_key_violation() => {
            return Err(HttpError(ApiError::conflict(
                "NetworkInUse",
                format!("Unable to complete operation on network {id}. There are one or more ports still in use on the network."),
            )))
        }
        Err(e) => return Err(e.into()),
    }
    tx.commit().await.map_err(|e| {
        if e.is_foreign_key_violation() {
            HttpError(ApiError::conflict("NetworkInUse", format!("Unable to complete operation on network {id}.")))
        } else {
            e.into()
        }
    })?;
    Ok(no_content())
}
