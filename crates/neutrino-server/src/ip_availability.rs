//! `/v2.0/network-ip-availabilities`: how many addresses each network and subnet has and uses.

use crate::error::{HttpError, HttpResult};
use crate::request::parse_query;
use crate::response::{many, one};
use crate::App;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use neutrino_api::resources::{IpAvailabilityDetails, Network, NetworkIpAvailability, Subnet, SubnetIpAvailability};
use neutrino_api::ApiError;
use neutrino_domain::ipam::{pools_capacity, subnet_capacity, IpRange};
use neutrino_store::{self as store, Filter, Page, Visibility};
use std::net::IpAddr;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v2.0/network-ip-availabilities", get(list))
        .route("/v2.0/network-ip-availabilities/{id}", get(show))
}

fn subnet_usage(subnet: &Subnet, allocated: &[IpAddr]) -> Option<SubnetIpAvailability> {
    let cidr: ipnet::IpNet = subnet.cidr.parse().ok()?;
    let pools: Vec<IpRange> = subnet
        .allocation_pools
        .iter()
        .filter_map(|p| Some(IpRange::new(p.start.parse().ok()?, p.end.parse().ok()?)))
        .collect();
    let in_pool = allocated.iter().filter(|ip| pools.iter().any(|p| p.contains(**ip))).count() as u128;
    let details = IpAvailabilityDetails {
        total_ips_in_subnet: subnet_capacity(cidr),
        total_ips_in_allocation_pool: pools_capacity(&pools),
        used_ips_in_subnet: allocated.len() as u128,
        used_ips_in_allocation_pool: in_pool,
    };
    Some(SubnetIpAvailability {
        subnet_id: subnet.id.clone(),
        ip_version: subnet.ip_version,
        cidr: subnet.cidr.clone(),
        subnet_name: subnet.name.clone(),
        used_ips: details.used_ips_in_subnet,
        total_ips: details.total_ips_in_allocation_pool,
        ip_availability_details: details,
    })
}

/// Usage of one network from its subnets and their allocated addresses.
fn network_usage(net: &Network, subnets: Vec<SubnetIpAvailability>) -> NetworkIpAvailability {
    let mut d = IpAvailabilityDetails::default();
    for s in &subnets {
        let x = &s.ip_availability_details;
        d.total_ips_in_subnet = d.total_ips_in_subnet.saturating_add(x.total_ips_in_subnet);
        d.total_ips_in_allocation_pool = d.total_ips_in_allocation_pool.saturating_add(x.total_ips_in_allocation_pool);
        d.used_ips_in_subnet += x.used_ips_in_subnet;
        d.used_ips_in_allocation_pool += x.used_ips_in_allocation_pool;
    }
    NetworkIpAvailability {
        network_id: net.id.clone(),
        network_name: net.name.clone(),
        project_id: net.project_id.clone(),
        tenant_id: net.project_id.clone(),
        subnet_ip_availability: subnets,
        used_ips: d.used_ips_in_subnet,
        total_ips: d.total_ips_in_allocation_pool,
        ip_availability_details: d,
    }
}

async fn availability(
    app: &App,
    filters: Vec<Filter>,
    ip_version: Option<u8>,
    visibility: &Visibility,
) -> HttpResult<Vec<NetworkIpAvailability>> {
    let mut c = app.store.reader().await?;
    let networks = store::list_networks(&mut c, &filters, &Page::default(), visibility).await?;
    let mut out = Vec::with_capacity(networks.len());
    for net in &networks {
        let subnets = store::network_subnets(&mut c, &net.id).await?;
        let allocated = store::network_allocations(&mut c, &net.id).await?;
        let usage = subnets
            .iter()
            .filter(|s| ip_version.is_none_or(|v| v == s.ip_version))
            .filter_map(|s| {
                let ips: Vec<IpAddr> =
                    allocated.iter().filter(|(sid, _)| *sid == s.id).filter_map(|(_, ip)| ip.parse().ok()).collect();
                subnet_usage(s, &ips)
            })
            .collect();
        out.push(network_usage(net, usage));
    }
    Ok(out)
}

/// Filters of this collection, in terms of the networks collection.
fn network_filters(raw: Option<&str>) -> HttpResult<(Vec<Filter>, Option<u8>, Visibility)> {
    let q = parse_query(raw)?;
    let mut filters = Vec::new();
    let mut ip_version = None;
    for f in q.filters {
        match f.attribute.as_str() {
            "network_id" => filters.push(Filter { attribute: "id".into(), values: f.values }),
            "network_name" => filters.push(Filter { attribute: "name".into(), values: f.values }),
            "project_id" | "tenant_id" => filters.push(f),
            "ip_version" => {
                ip_version =
                    Some(f.values[0].parse().map_err(|_| ApiError::invalid_attribute("ip_version", "must be 4 or 6"))?)
            }
            other => {
                return Err(HttpError(ApiError::bad_request(format!("['{other}'] is invalid attribute for filtering"))))
            }
        }
    }
    Ok((filters, ip_version, q.visibility))
}

async fn list(State(app): State<App>, RawQuery(raw): RawQuery) -> HttpResult<Response> {
    let (filters, ip_version, visibility) = network_filters(raw.as_deref())?;
    let fields = parse_query(raw.as_deref())?.fields;
    let all = availability(&app, filters, ip_version, &visibility).await?;
    Ok(many("network_ip_availabilities", &all, &fields, Vec::new()))
}

async fn show(State(app): State<App>, Path(id): Path<String>) -> HttpResult<Response> {
    let filters = vec![Filter { attribute: "id".into(), values: vec![id.clone()] }];
    let visibility = parse_query(None)?.visibility;
    let found = availability(&app, filters, None, &visibility)
        .await?
        .pop()
        .ok_or_else(|| HttpError(ApiError::new(404, "NetworkNotFound", format!("Network {id} could not be found."))))?;
    Ok(one(StatusCode::OK, "network_ip_availability", &found, &[]))
}
