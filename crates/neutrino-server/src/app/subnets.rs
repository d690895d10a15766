//! Subnet operations.

use super::authorize::{add_network_keys, attributes_of, may_use_network, network_target};
use super::OpContext;
use crate::error::{HttpError, HttpResult};
use crate::App;
use neutrino_api::resources::{AllocationPool, HostRoute, Subnet};
use neutrino_api::ApiError;
use neutrino_domain::ipam::IpRange;
use neutrino_domain::subnet::{parse_cidr, validate_subnet, CurrentSubnet, GatewayRequest, SubnetRequest, ValidSubnet};
use neutrino_domain::subnet_pools::{allocate_prefix, check_pool_quota, check_specific};
use neutrino_store::{self as store, Filter, Page, Tx};
use serde_json::{Map, Value};

/// One subnet to create, as parsed from its body.
pub struct CreateSubnet {
    /// The body's attributes as given: the policy judges them.
    pub given: Map<String, Value>,
    /// `project_id`/`tenant_id` when the body names one.
    pub project_id: Option<String>,
    pub network_id: String,
    pub name: String,
    pub description: String,
    /// The CIDR given, the pool to allocate it from, and the prefix length wanted there.
    pub cidr: Option<String>,
    pub subnetpool_id: Option<String>,
    pub use_default_subnetpool: bool,
    pub prefixlen: Option<u8>,
    /// The rest of what `validate_subnet` judges (its `cidr` is filled in once known).
    pub request: SubnetRequest,
    /// Sorted, without repeats.
    pub service_types: Vec<String>,
    pub tags: Vec<String>,
}

impl super::CreateItem for CreateSubnet {
    fn given(&self) -> &Map<String, Value> {
        &self.given
    }
}

/// Changes to a subnet, as parsed from its body (`None`: unchanged).
pub struct UpdateSubnet {
    pub given: Map<String, Value>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub gateway: Option<GatewayRequest>,
    pub allocation_pools: Option<Vec<(String, String)>>,
    pub dns_nameservers: Option<Vec<String>>,
    pub host_routes: Option<Vec<(String, String)>>,
    pub enable_dhcp: Option<bool>,
    pub service_types: Option<Vec<String>>,
    /// `If-Match: revision_number=N`.
    pub if_revision: Option<u64>,
}

/// Create every subnet of a (bulk) request, all or nothing.
pub async fn create(app: &App, ctx: &OpContext, items: Vec<CreateSubnet>) -> HttpResult<Vec<Subnet>> {
    super::in_one_transaction(app, ctx, items, create_one).await
}

async fn create_one(app: &App, ctx: &OpContext, tx: &mut Tx, req: CreateSubnet) -> HttpResult<Subnet> {
    let network_id = req.network_id.clone();
    let project_id = super::project_for(app, ctx, &req.project_id);
    if !ctx.is_admin {
        authorize_create(ctx, tx, &req).await?;
    }
    may_use_network(ctx, tx, &network_id, &project_id, store::NetworkUse::Revise).await?;
    let network = store::get_network(tx.conn(), &network_id).await?;
    let (cidr, subnetpool_id) = subnet_cidr(tx, &req, &project_id).await?;
    let request = SubnetRequest { cidr, ..req.request };
    let existing: Vec<ipnet::IpNet> =
        store::network_subnets(tx.conn(), &network_id).await?.iter().filter_map(|s| s.cidr.parse().ok()).collect();
    let valid = validate_subnet(&request, &network_id, &existing)?;
    neutrino_domain::mtu::check_subnets_fit(&network_id, network.mtu, &[request.ip_version])?;
    let now = store::now_timestamp();
    let mut subnet = Subnet {
        id: uuid::Uuid::new_v4().to_string(),
        name: req.name,
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
        description: req.description,
        router_external: network.router_external,
        service_types: req.service_types,
        segment_id: None,
        tags: req.tags,
        created_at: now.clone(),
        updated_at: now,
        revision_number: 0,
    };
    apply_valid(&mut subnet, &valid);
    store::insert_subnet(tx, &subnet).await?;
    store::insert_initial_tags(tx, "subnets", &subnet.id, &subnet.tags).await?;
    if subnet.enable_dhcp {
        super::dhcp_ports::reconcile(app, ctx, tx, &subnet.network_id).await?;
    }
    Ok(subnet)
}

/// `create_subnet` on the item with its network's keys; the network must be one the caller
/// sees (else `NetworkNotFound`), and the subnet pool named too.
async fn authorize_create(ctx: &OpContext, tx: &mut Tx, req: &CreateSubnet) -> HttpResult<()> {
    let mut target = ctx.create_target(&req.given)?;
    // A network that does not exist, or that the caller does not see, is not found (before
    // the policy, whose rules read the network's owner).
    match network_target(ctx, tx.conn(), &req.network_id).await? {
        Some(net) if ctx.may_see("network", &net) => add_network_keys(&mut target, &net),
        _ => return Err(HttpError(ApiError::not_found("network", &req.network_id))),
    }
    ctx.enforce("create_subnet", &attributes_of(&req.given), &Value::Object(target))?;
    if let Some(pool_id) = &req.subnetpool_id {
        if let Ok(pool) = store::get_pool(tx.conn(), pool_id).await {
            if !ctx.may_see("subnetpool", &serde_json::to_value(&pool).unwrap_or_default()) {
                return Err(HttpError(ApiError::not_found("subnetpool", pool_id)));
            }
        }
    }
    Ok(())
}

/// The CIDR of a new subnet: the one given, or one allocated from its subnet pool (the one
/// named, or the default pool of the IP version with `use_default_subnetpool`).
async fn subnet_cidr(tx: &mut Tx, req: &CreateSubnet, project_id: &str) -> HttpResult<(String, Option<String>)> {
    let ip_version = req.request.ip_version;
    let bad = |msg: &str| ApiError::bad_request_kind("BadRequest", format!("Bad subnets request: {msg}."));
    if req.cidr.is_some() && req.prefixlen.is_some() {
        return Err(bad("cidr and prefixlen must not be supplied together").into());
    }
    if req.subnetpool_id.is_some() && req.use_default_subnetpool {
        return Err(bad("subnetpool_id and use_default_subnetpool cannot both be specified").into());
    }
    let pool_id = match &req.subnetpool_id {
        Some(id) => Some(id.clone()),
        None if req.use_default_subnetpool => {
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
        let cidr = req.cidr.clone().ok_or_else(|| {
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
    let cidr = match &req.cidr {
        Some(text) => {
            let cidr = parse_cidr(text, ip_version)?;
            quota(cidr.prefix_len())?;
            check_specific(&spec, &used, cidr)?;
            cidr
        }
        None => {
            let len = req.prefixlen.unwrap_or(spec.default_prefixlen);
            quota(len)?;
            allocate_prefix(&spec, &used, len)?
        }
    };
    Ok((cidr.to_string(), Some(pool_id)))
}

fn apply_valid(subnet: &mut Subnet, v: &ValidSubnet) {
    subnet.gateway_ip = v.gateway.map(|g| g.to_string());
    subnet.allocation_pools = pools_json(&v.pools);
    subnet.dns_nameservers = v.dns_nameservers.iter().map(|d| d.to_string()).collect();
    subnet.host_routes =
        v.host_routes.iter().map(|(d, n)| HostRoute { destination: d.to_string(), nexthop: n.to_string() }).collect();
}

fn pools_json(pools: &[IpRange]) -> Vec<AllocationPool> {
    pools.iter().map(|p| AllocationPool { start: p.first.to_string(), end: p.last.to_string() }).collect()
}

/// The subnet as the policy sees it (with its network's keys, as the network is to the
/// caller); a 404 when the caller may not see it.
async fn visible(ctx: &OpContext, c: &mut store::Connection, subnet: &Subnet) -> HttpResult<Value> {
    let mut target = serde_json::to_value(subnet).unwrap_or_default();
    if ctx.is_admin {
        return Ok(target);
    }
    if let (Some(net), Value::Object(m)) = (network_target(ctx, c, &subnet.network_id).await?, &mut target) {
        add_network_keys(m, &net);
    }
    if !ctx.may_see("subnet", &target) {
        return Err(HttpError(ApiError::not_found("subnet", &subnet.id)));
    }
    Ok(target)
}

pub async fn show(app: &App, ctx: &OpContext, id: &str) -> HttpResult<Subnet> {
    let mut c = app.store.reader().await?;
    let subnet = store::get_subnet(&mut c, id).await?;
    visible(ctx, &mut c, &subnet).await?;
    Ok(subnet)
}

pub async fn list(app: &App, ctx: &OpContext, filters: &[Filter], page: &Page) -> HttpResult<Vec<Subnet>> {
    let mut c = app.store.reader().await?;
    Ok(store::list_subnets(&mut c, filters, page, &ctx.visibility()).await?)
}

pub async fn update(app: &App, ctx: &OpContext, id: &str, req: UpdateSubnet) -> HttpResult<Subnet> {
    let mut tx = app.store.begin().await?;
    let mut subnet = store::get_subnet(tx.conn(), id).await?;
    let target = visible(ctx, tx.conn(), &subnet).await?;
    if !ctx.is_admin {
        ctx.enforce_update("subnet", &target, &req.given)?;
    }
    store::check_revision(req.if_revision, subnet.revision_number)?;
    let others: Vec<ipnet::IpNet> = store::network_subnets(tx.conn(), &subnet.network_id)
        .await?
        .iter()
        .filter(|s| s.id != id)
        .filter_map(|s| s.cidr.parse().ok())
        .collect();
    // Re-validate the whole subnet as it would be after the update.
    let current_pools: Vec<(String, String)> =
        subnet.allocation_pools.iter().map(|p| (p.start.clone(), p.end.clone())).collect();
    let current_gateway = match &subnet.gateway_ip {
        Some(g) => GatewayRequest::Address(g.clone()),
        None => GatewayRequest::Disabled,
    };
    let request = SubnetRequest {
        ip_version: subnet.ip_version,
        cidr: subnet.cidr.clone(),
        gateway: req.gateway.unwrap_or(current_gateway),
        allocation_pools: Some(req.allocation_pools.unwrap_or(current_pools)),
        dns_nameservers: req.dns_nameservers.unwrap_or(subnet.dns_nameservers.clone()),
        host_routes: req
            .host_routes
            .unwrap_or_else(|| subnet.host_routes.iter().map(|r| (r.destination.clone(), r.nexthop.clone())).collect()),
        ipv6_ra_mode: subnet.ipv6_ra_mode.clone(),
        ipv6_address_mode: subnet.ipv6_address_mode.clone(),
        enable_dhcp: req.enable_dhcp.unwrap_or(subnet.enable_dhcp),
        current: Some(CurrentSubnet { id: subnet.id.clone(), enable_dhcp: subnet.enable_dhcp }),
    };
    let valid = validate_subnet(&request, &subnet.network_id, &others)?;
    // A router interface holding the gateway address keeps it (Neutron's `GatewayIpInUse`).
    let new_gateway = valid.gateway.map(|g| g.to_string());
    if let (Some(old), true) = (&subnet.gateway_ip, new_gateway != subnet.gateway_ip) {
        if let Some(port) = store::router_port_holding(tx.conn(), &subnet.id, old).await? {
            return Err(HttpError(ApiError::conflict(
                "GatewayIpInUse",
                format!("Current gateway ip {old} already used by port {port}. Unable to update."),
            )));
        }
    }
    apply_valid(&mut subnet, &valid);
    subnet.enable_dhcp = request.enable_dhcp;
    if let Some(v) = req.name {
        subnet.name = v;
    }
    if let Some(v) = req.description {
        subnet.description = v;
    }
    if let Some(types) = req.service_types {
        subnet.service_types = types;
    }
    subnet.updated_at = store::now_timestamp();
    store::update_subnet(&mut tx, &subnet).await?;
    if req.enable_dhcp.is_some() {
        super::dhcp_ports::reconcile(app, ctx, &mut tx, &subnet.network_id).await?;
    }
    tx.commit().await?;
    subnet.revision_number += 1;
    Ok(subnet)
}

pub async fn delete(app: &App, ctx: &OpContext, id: &str) -> HttpResult<()> {
    let mut tx = app.store.begin().await?;
    let subnet = store::get_subnet(tx.conn(), id).await?;
    if !ctx.is_admin {
        let target = visible(ctx, tx.conn(), &subnet).await?;
        ctx.enforce("delete_subnet", &[], &target)?;
    }
    store::delete_subnet(&mut tx, id).await?;
    if subnet.enable_dhcp {
        super::dhcp_ports::reconcile(app, ctx, &mut tx, &subnet.network_id).await?;
    }
    tx.commit().await?;
    Ok(())
}
