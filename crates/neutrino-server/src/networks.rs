//! `/v2.0/networks`

use crate::create::create_all;
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
use neutrino_domain::binding::SegmentView;
use neutrino_domain::resources;
use neutrino_domain::segments::{mtu_for_segment, plan_segments, ProviderRequest};
use neutrino_store::{self as store, Tx};
use serde_json::{Map, Value};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v2.0/networks", collection("network", list, create))
        .route("/v2.0/networks/{id}", get(show).put(update).delete(delete))
}

/// Network attributes accepted only with their defaults until their features exist.
fn unsupported_network_attrs() -> [(&'static str, serde_json::Value); 1] {
    [("qos_policy_id", serde_json::Value::Null)]
}

/// Provider attributes in an update: as ML2 does, accepted when they repeat what the network has
/// (clients send whole objects back), refused when they would change it (Neutrino does not
/// move networks between segments).
async fn refuse_provider_changes(tx: &mut Tx, id: &str, attrs: &Attrs) -> HttpResult<()> {
    let given: Vec<&str> = PROVIDER_ATTRS.iter().chain(["segments"].iter()).copied().filter(|a| attrs.has(a)).collect();
    if given.is_empty() {
        return Ok(());
    }
    let current = serde_json::to_value(store::get_network(tx.conn(), id).await?).unwrap_or_default();
    for attr in given {
        let wanted = attrs.raw(attr).cloned().unwrap_or_default();
        let same = match (&wanted, current.get(attr)) {
            (serde_json::Value::Null, None) => true,
            (w, Some(c)) => w == c || w.as_str().is_some_and(|s| c.as_u64().is_some_and(|n| s == n.to_string())),
            _ => false,
        };
        if !same {
            return Err(ApiError::invalid_input(format!(
                "Plugin does not support updating the following provider network attributes: {attr}"
            ))
            .into());
        }
    }
    Ok(())
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
    create_all(&app, &headers, &body, &resources::NETWORK, create_one).await
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

/// The segments a create asks for: `provider:*` (one) or `segments` (multi-provider), or
/// none for a tenant network.
fn requested_segments(attrs: &Attrs) -> Result<Vec<ProviderRequest>, ApiError> {
    let provider_given = PROVIDER_ATTRS.iter().any(|a| attrs.raw(a).is_some_and(|v| !v.is_null()));
    match attrs.raw("segments") {
        None | Some(Value::Null) => {
            if !provider_given {
                return Ok(Vec::new());
            }
            let mut single = Map::new();
            for a in PROVIDER_ATTRS {
                if let Some(v) = attrs.raw(a) {
                    single.insert(a.to_string(), v.clone());
                }
            }
            Ok(vec![provider_request(&single)?])
        }
        Some(_) if provider_given => Err(ApiError::invalid_input("Segments and provider values cannot both be set.")),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|item| match item {
                Value::Object(m) => provider_request(m),
                other => Err(ApiError::invalid_attribute("segments", format!("'{other}' is not a dictionary"))),
            })
            .collect(),
        Some(other) => Err(ApiError::invalid_attribute("segments", format!("'{other}' is not a non-empty list"))),
    }
}

const PROVIDER_ATTRS: [&str; 3] = ["provider:network_type", "provider:physical_network", "provider:segmentation_id"];

fn provider_request(m: &Map<String, Value>) -> Result<ProviderRequest, ApiError> {
    if let Some(bad) = m.keys().find(|k| !PROVIDER_ATTRS.contains(&k.as_str())) {
        return Err(ApiError::invalid_input(format!("Unrecognized attribute(s) '{bad}'")));
    }
    let text = |key: &str| -> Result<Option<String>, ApiError> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) if s.chars().count() <= 64 => Ok(Some(s.clone())),
            Some(v) => Err(ApiError::invalid_attribute(key, format!("'{v}' is not a valid string"))),
        }
    };
    let segmentation_id = match m.get("provider:segmentation_id") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
        Some(Value::String(s)) if s.parse::<u64>().is_ok() => s.parse().ok(),
        Some(v) => {
            return Err(ApiError::invalid_attribute("provider:segmentation_id", format!("'{v}' is not an integer")))
        }
    };
    Ok(ProviderRequest {
        network_type: text("provider:network_type")?,
        physical_network: text("provider:physical_network")?,
        segmentation_id: segmentation_id.map(|v| v.min(u32::MAX as u64) as u32),
    })
}

/// The largest MTU a network's segments allow.
async fn max_mtu(app: &App, tx: &mut Tx, network_id: &str) -> HttpResult<u32> {
    let segments = store::network_segments(tx.conn(), network_id).await?;
    let cfg = &app.config.type_drivers;
    Ok(segments
        .iter()
        .map(|s| mtu_for_segment(&s.network_type, s.physical_network.as_deref(), cfg))
        .min()
        .unwrap_or(cfg.global_physnet_mtu))
}

async fn create_one(app: &App, tx: &mut Tx, headers: &HeaderMap, attrs: &Attrs) -> HttpResult<Network> {
    let project_id = project_of(attrs, headers, &app.config.noauth_project)?;
    attrs.only_defaults(&unsupported_network_attrs())?;
    let plans = plan_segments(&app.config.type_drivers, &requested_segments(attrs)?)?;
    let requested_mtu = attrs.uint("mtu")?.map(|m| m.min(u32::MAX as u64) as u32);
    let now = store::now_timestamp();
    let mut net = Network {
        id: uuid::Uuid::new_v4().to_string(),
        name: attrs.string("name", 255)?.unwrap_or_default(),
        tenant_id: project_id.clone(),
        project_id,
        admin_state_up: attrs.boolean("admin_state_up")?.unwrap_or(true),
        mtu: requested_mtu.unwrap_or(app.config.type_drivers.global_physnet_mtu),
        status: "ACTIVE".into(),
        subnets: Vec::new(),
        shared: attrs.boolean("shared")?.unwrap_or(false),
        port_security_enabled: attrs.boolean("port_security_enabled")?.unwrap_or(true),
        qos_policy_id: None,
        router_external: attrs.boolean("router:external")?.unwrap_or(false),
        provider: None,
        segments: None,
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
    // Neutron makes sure the project has its `default` security group whenever one of its
    // networks or ports is created or updated.
    store::ensure_default_group(tx, &net.project_id).await?;
    store::insert_network(tx, &mut net, &plans).await?;
    let segments: Vec<SegmentView> =
        store::network_segments(tx.conn(), &net.id).await?.into_iter().map(SegmentView::from).collect();
    app.ml2.network_precommit(&segments)?;
    let max = max_mtu(app, tx, &net.id).await?;
    net.mtu = neutrino_domain::mtu::network_mtu(requested_mtu, max)?;
    store::set_network_mtu(tx, &net.id, net.mtu).await?;
    if net.shared {
        store::set_network_shared(tx, &net.id, &net.project_id, true).await?;
    }
    if net.router_external {
        store::set_network_external(tx, &net.id, &net.project_id, true).await?;
        if let Some(true) = attrs.boolean("is_default")? {
            store::set_network_default(tx, &net.id, true).await?;
            net.is_default = Some(true);
        }
    }
    app.store.finish_network(&mut net);
    store::insert_initial_tags(tx, "networks", &net.id, &net.tags).await?;
    Ok(net)
}

async fn show(State(app): State<App>, Path(id): Path<String>, RawQuery(q): RawQuery) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let mut c = app.store.reader().await?;
    let mut net = store::get_network(&mut c, &id).await?;
    app.store.finish_network(&mut net);
    drop(c);
    shared_with_caller(&app, std::slice::from_mut(&mut net)).await?;
    Ok(one(StatusCode::OK, "network", &net, &q.fields))
}

/// `shared` as the caller sees it: also true for networks shared with the caller's project
/// alone (an RBAC policy naming it).
async fn shared_with_caller(app: &App, nets: &mut [Network]) -> HttpResult<()> {
    let ctx = crate::auth::current();
    let Some(project) = ctx.project_id() else { return Ok(()) };
    let candidates: Vec<String> =
        nets.iter().filter(|n| !n.shared && n.project_id != project).map(|n| n.id.clone()).collect();
    if candidates.is_empty() {
        return Ok(());
    }
    let mut c = app.store.reader().await?;
    let shared = store::networks_shared_with(&mut c, project, &candidates).await?;
    for n in nets.iter_mut().filter(|n| shared.contains(&n.id)) {
        n.shared = true;
    }
    Ok(())
}

async fn list(State(app): State<App>, headers: HeaderMap, RawQuery(raw): RawQuery) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    let mut c = app.store.reader().await?;
    let mut nets = store::list_networks(&mut c, &q.filters, &q.page, &q.visibility).await?;
    nets.iter_mut().for_each(|n| app.store.finish_network(n));
    drop(c);
    shared_with_caller(&app, &mut nets).await?;
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
    let attrs = parse_body(&body, &resources::NETWORK)?;
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
    let mut patch = patch;
    refuse_provider_changes(&mut tx, &id, &attrs).await?;
    if let Some(mtu) = patch.mtu {
        store::get_network(tx.conn(), &id).await?;
        let mtu = neutrino_domain::mtu::network_mtu(Some(mtu), max_mtu(&app, &mut tx, &id).await?)?;
        let versions: Vec<u8> = store::network_subnets(tx.conn(), &id).await?.iter().map(|s| s.ip_version).collect();
        neutrino_domain::mtu::check_subnets_fit(&id, mtu, &versions)?;
        patch.mtu = Some(mtu);
    }
    let net = store::update_network(&mut tx, &id, &patch, if_match_revision(&headers)?).await?;
    if let Some(shared) = patch.shared {
        store::set_network_shared(&mut tx, &id, &net.project_id, shared).await?;
    }
    if let Some(external) = patch.router_external {
        store::set_network_external(&mut tx, &id, &net.project_id, external).await?;
    }
    if let Some(is_default) = attrs.boolean("is_default")? {
        store::set_network_default(&mut tx, &id, is_default).await?;
    }
    let mut net = if patch.router_external.is_some() || attrs.has("is_default") {
        store::get_network(tx.conn(), &id).await?
    } else {
        net
    };
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
