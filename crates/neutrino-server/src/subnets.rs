//! `/v2.0/subnets`

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
use axum::routing::get;
use axum::Router;
use neutrino_api::resources::{AllocationPool, HostRoute, Subnet};
use neutrino_api::ApiError;
use neutrino_domain::ipam::IpRange;
use neutrino_domain::resources;
use neutrino_domain::subnet::{parse_cidr, validate_subnet, GatewayRequest, SubnetRequest, ValidSubnet};
use neutrino_domain::subnet_pools::{allocate_prefix, check_pool_quota, check_specific};
use neutrino_store::{self as store, Tx};
use serde_json::Value;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v2.0/subnets", collection("subnet", list, create))
        .route("/v2.0/subnets/{id}", get(show).put(update).delete(delete))
}

fn gateway_request(attrs: &Attrs) -> Result<GatewayRequest, ApiError> {
    Ok(match attrs.raw("gateway_ip") {
        None => GatewayRequest::Default,
        Some(Value::Null) => GatewayRequest::Disabled,
        Some(Value::String(s)) => GatewayRequest::Address(s.clone()),
        Some(v) => return Err(ApiError::invalid_attribute("gateway_ip", format!("'{v}' is not a valid IP address"))),
    })
}

/// A list of two-key objects (`allocation_pools`, `host_routes`) as pairs of strings.
fn pairs_of(attrs: &Attrs, key: &str, first: &str, second: &str) -> Result<Option<Vec<(String, String)>>, ApiError> {
    Ok(attrs.object_list(key, &[first, second])?.map(|list| {
        list.iter()
            .map(|p| {
                let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                (s(first), s(second))
            })
            .collect()
    }))
}

fn pools_of(attrs: &Attrs) -> Result<Option<Vec<(String, String)>>, ApiError> {
    pairs_of(attrs, "allocation_pools", "start", "end")
}

fn routes_of(attrs: &Attrs) -> Result<Option<Vec<(String, String)>>, ApiError> {
    pairs_of(attrs, "host_routes", "destination", "nexthop")
}

fn refuse_unsupported(attrs: &Attrs) -> Result<(), ApiError> {
    if matches!(attrs.raw("segment_id"), Some(v) if !v.is_null()) {
        return Err(ApiError::bad_request("'segment_id' is not supported yet by this server"));
    }
    attrs.only_defaults(&[("dns_publish_fixed_ip", serde_json::json!(false))])
}

/// What a subnet's `service_types` may start with, exactly as neutron-lib checks it: the
/// `network:` and `neutron:` prefixes, plus (neutron-lib extends its list with the *string*
/// `compute:`) any of the characters of `compute:`. So `compute:nova` and also `test:x` are
/// accepted, `baremetal:x` is not; Tempest relies on `test:`.
const SERVICE_TYPE_PREFIXES: [&str; 10] = ["network:", "neutron:", "c", "o", "m", "p", "u", "t", "e", ":"];

fn service_types_of(attrs: &Attrs) -> Result<Option<Vec<String>>, ApiError> {
    let Some(mut types) = attrs.string_list("service_types")? else { return Ok(None) };
    if let Some(bad) = types.iter().find(|t| !SERVICE_TYPE_PREFIXES.iter().any(|p| t.starts_with(p))) {
        return Err(ApiError::bad_request_kind(
            "InvalidSubnetServiceType",
            format!("Subnet service type {bad} does not correspond to a valid device owner."),
        ));
    }
    types.sort();
    types.dedup();
    Ok(Some(types))
}

/// The CIDR of a new subnet: the one given, or one allocated from its subnet pool (the one
/// named, or the default pool of the IP version with `use_default_subnetpool`).
async fn subnet_cidr(
    tx: &mut Tx,
    attrs: &Attrs,
    ip_version: u8,
    project_id: &str,
) -> HttpResult<(String, Option<String>)> {
    let given = attrs.string("cidr", 64)?;
    let pool_id = match attrs.nullable_string("subnetpool_id")?.flatten() {
        Some(id) => Some(id),
        None if attrs.boolean("use_default_subnetpool")? == Some(true) => {
            let pool = store::default_pool(tx.conn(), ip_version).await?.ok_or_else(|| {
                ApiError::bad_request_kind(
                    "BadRequest",
                    format!("Bad subnets request: No default subnetpool found for IPv{ip_version}."),
                )
            })?;
            Some(pool.id)
        }
        None => None,
    };
    let Some(pool_id) = pool_id else {
        let cidr = given.ok_or_else(|| {
            ApiError::bad_request_kind(
                "BadRequest",
                "Bad subnets request: a subnetpool must be specified in the absence of a cidr.",
            )
        })?;
        return Ok((cidr, None));
    };
    let store::PoolAllocations { pool, used, by_project } =
        store::lock_pool_for_allocation(tx, &pool_id, project_id).await?;
    if pool.ip_version != ip_version {
        return Err(ApiError::bad_request_kind(
            "BadRequest",
            format!(
                "Bad subnets request: Cannot allocate IPv{ip_version} subnet from IPv{} subnet pool.",
                pool.ip_version
            ),
        )
        .into());
    }
    let spec = store::pool_spec(&pool);
    let quota = |len: u8| check_pool_quota(ip_version, pool.default_quota, &by_project, len);
    let cidr = match given {
        Some(text) => {
            let cidr = parse_cidr(&text, ip_version)?;
            quota(cidr.prefix_len())?;
            check_specific(&spec, &used, cidr)?;
            cidr
        }
        None => {
            let len =
                attrs.uint("prefixlen")?.map(|v| u8::try_from(v).unwrap_or(u8::MAX)).unwrap_or(spec.default_prefixlen);
            quota(len)?;
            allocate_prefix(&spec, &used, len)?
        }
    };
    Ok((cidr.to_string(), Some(pool_id)))
}

fn pools_json(pools: &[IpRange]) -> Vec<AllocationPool> {
    pools.iter().map(|p| AllocationPool { start: p.first.to_string(), end: p.last.to_string() }).collect()
}

fn apply_valid(subnet: &mut Subnet, v: &ValidSubnet) {
    subnet.gateway_ip = v.gateway.map(|g| g.to_string());
    subnet.allocation_pools = pools_json(&v.pools);
    subnet.dns_nameservers = v.dns_nameservers.iter().map(|d| d.to_string()).collect();
    subnet.host_routes =
        v.host_routes.iter().map(|(d, n)| HostRoute { destination: d.to_string(), nexthop: n.to_string() }).collect();
}

async fn create(State(app): State<App>, headers: HeaderMap, body: Bytes) -> HttpResult<Response> {
    create_all(&app, &headers, &body, &resources::SUBNET, create_one).await
}

async fn create_one(app: &App, tx: &mut Tx, headers: &HeaderMap, attrs: &Attrs) -> HttpResult<Subnet> {
    refuse_unsupported(attrs)?;
    let network_id = attrs.required("network_id").and_then(|_| attrs.string("network_id", 36))?.unwrap_or_default();
    attrs.required("ip_version")?;
    let ip_version = attrs.uint("ip_version")?.unwrap_or_default();
    let version = u8::try_from(ip_version).unwrap_or(0);
    let project_id = project_of(attrs, headers, &app.config.noauth_project)?;
    crate::auth::authorize::may_use_network(app, tx, &network_id, &project_id, store::NetworkUse::Revise).await?;
    let network = store::get_network(tx.conn(), &network_id).await?;
    let (cidr, subnetpool_id) = subnet_cidr(tx, attrs, version, &project_id).await?;
    let request = SubnetRequest {
        ip_version: version,
        cidr,
        gateway: gateway_request(attrs)?,
        allocation_pools: pools_of(attrs)?,
        dns_nameservers: attrs.string_list("dns_nameservers")?.unwrap_or_default(),
        host_routes: routes_of(attrs)?.unwrap_or_default(),
        ipv6_ra_mode: attrs.nullable_string("ipv6_ra_mode")?.flatten(),
        ipv6_address_mode: attrs.nullable_string("ipv6_address_mode")?.flatten(),
        enable_dhcp: attrs.boolean("enable_dhcp")?.unwrap_or(true),
    };
    let existing: Vec<ipnet::IpNet> =
        store::network_subnets(tx.conn(), &network_id).await?.iter().filter_map(|s| s.cidr.parse().ok()).collect();
    let valid = validate_subnet(&request, &network_id, &existing)?;
    neutrino_domain::mtu::check_subnets_fit(&network_id, network.mtu, &[version])?;
    let now = store::now_timestamp();
    let mut subnet = Subnet {
        id: uuid::Uuid::new_v4().to_string(),
        name: attrs.string("name", 255)?.unwrap_or_default(),
        tenant_id: project_id.clone(),
        project_id,
        network_id,
        ip_version: request.ip_version,
        subnetpool_id,
        enable_dhcp: request.enable_dhcp,
        ipv6_ra_mode: valid.ipv6_ra_mode.clone(),
        ipv6_address_mode: valid.ipv6_address_mode.clone(),
        gateway_ip: None,
        cidr: valid.cidr.to_string(),
        allocation_pools: Vec::new(),
        host_routes: Vec::new(),
        dns_nameservers: Vec::new(),
        description: attrs.string("description", 255)?.unwrap_or_default(),
        router_external: network.router_external,
        service_types: service_types_of(attrs)?.unwrap_or_default(),
        segment_id: None,
        tags: Vec::new(),
        created_at: now.clone(),
        updated_at: now,
        revision_number: 0,
    };
    apply_valid(&mut subnet, &valid);
    subnet.tags = crate::tags::tags_on_create(attrs)?;
    store::insert_subnet(tx, &subnet).await?;
    store::insert_initial_tags(tx, "subnets", &subnet.id, &subnet.tags).await?;
    Ok(subnet)
}

async fn show(State(app): State<App>, Path(id): Path<String>, RawQuery(q): RawQuery) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let mut c = app.store.reader().await?;
    let s = store::get_subnet(&mut c, &id).await?;
    Ok(one(StatusCode::OK, "subnet", &s, &q.fields))
}

async fn list(State(app): State<App>, headers: HeaderMap, RawQuery(raw): RawQuery) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    let mut c = app.store.reader().await?;
    let subnets = store::list_subnets(&mut c, &q.filters, &q.page, &q.visibility).await?;
    let info = PageInfo { headers: &headers, collection: "subnets", raw_query: raw.as_deref(), page: &q.page };
    let links =
        info.links(subnets.len(), subnets.first().map(|s| s.id.as_str()), subnets.last().map(|s| s.id.as_str()));
    Ok(many("subnets", &subnets, &q.fields, links))
}

async fn update(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult<Response> {
    let attrs = parse_body(&body, &resources::SUBNET)?;
    refuse_unsupported(&attrs)?;
    let mut tx = app.store.begin().await?;
    let mut subnet = store::get_subnet(tx.conn(), &id).await?;
    if let Some(expected) = if_match_revision(&headers)? {
        if expected != subnet.revision_number {
            return Err(store::StoreError::RevisionMismatch.into());
        }
    }
    let others: Vec<ipnet::IpNet> = store::network_subnets(tx.conn(), &subnet.network_id)
        .await?
        .iter()
        .filter(|s| s.id != id)
        .filter_map(|s| s.cidr.parse().ok())
        .collect();
    // Re-validate the whole subnet as it would be after the update.
    let current_pools: Vec<(String, String)> =
        subnet.allocation_pools.iter().map(|p| (p.start.clone(), p.end.clone())).collect();
    let request = SubnetRequest {
        ip_version: subnet.ip_version,
        cidr: subnet.cidr.clone(),
        gateway: match attrs.has("gateway_ip") {
            true => gateway_request(&attrs)?,
            false => match &subnet.gateway_ip {
                Some(g) => GatewayRequest::Address(g.clone()),
                None => GatewayRequest::Disabled,
            },
        },
        allocation_pools: Some(pools_of(&attrs)?.unwrap_or(current_pools)),
        dns_nameservers: attrs.string_list("dns_nameservers")?.unwrap_or(subnet.dns_nameservers.clone()),
        host_routes: routes_of(&attrs)?
            .unwrap_or_else(|| subnet.host_routes.iter().map(|r| (r.destination.clone(), r.nexthop.clone())).collect()),
        ipv6_ra_mode: subnet.ipv6_ra_mode.clone(),
        ipv6_address_mode: subnet.ipv6_address_mode.clone(),
        enable_dhcp: attrs.boolean("enable_dhcp")?.unwrap_or(subnet.enable_dhcp),
    };
    let valid = validate_subnet(&request, &subnet.network_id, &others)?;
    apply_valid(&mut subnet, &valid);
    if let Some(v) = attrs.string("name", 255)? {
        subnet.name = v;
    }
    if let Some(v) = attrs.string("description", 255)? {
        subnet.description = v;
    }
    if let Some(v) = attrs.boolean("enable_dhcp")? {
        subnet.enable_dhcp = v;
    }
    if let Some(types) = service_types_of(&attrs)? {
        subnet.service_types = types;
    }
    subnet.updated_at = store::now_timestamp();
    store::update_subnet(&mut tx, &subnet).await?;
    tx.commit().await?;
    subnet.revision_number += 1;
    Ok(one(StatusCode::OK, "subnet", &subnet, &[]))
}

async fn delete(State(app): State<App>, Path(id): Path<String>) -> HttpResult<Response> {
    let mut tx = app.store.begin().await?;
    store::delete_subnet(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(no_content())
}
