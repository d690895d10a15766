//! Router operations: create, show, list, update (with the gateway and extra routes), delete,
//! and `add_extraroutes` / `remove_extraroutes` (the interfaces are in `router_interfaces`). Every change of a router's ports or routes takes the router's row lock
//! first, so two of them on one router take turns.

use super::authorize::{authorize_item, ItemAction};
use super::ports::{create_owned, owned_port, FixedIpRequest};
use super::{create_each, project_for, CreateItem, OpContext};
use crate::error::{HttpError, HttpResult};
use crate::App;
use ipnet::IpNet;
use neutrino_api::resources::{Router, RouterRoute};
use neutrino_api::ApiError;
use neutrino_domain::routers::{self as rules, Route, DEVICE_OWNER_ROUTER_GW};
use neutrino_store::{self as store, Filter, Page, Tx};
use serde_json::{Map, Value};

pub use super::router_interfaces::{add_interface, remove_interface};

/// `external_gateway_info` as a request gives it.
#[derive(Debug, Clone)]
pub struct GatewayRequest {
    pub network_id: String,
    pub enable_snat: Option<bool>,
    pub external_fixed_ips: Option<Vec<FixedIpRequest>>,
}

pub struct CreateRouter {
    pub given: Map<String, Value>,
    pub project_id: Option<String>,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub gateway: Option<GatewayRequest>,
    pub distributed: Option<bool>,
    pub ha: Option<bool>,
    pub availability_zone_hints: Vec<String>,
    pub flavor_id: Option<String>,
    pub tags: Vec<String>,
}

impl CreateItem for CreateRouter {
    fn given(&self) -> &Map<String, Value> {
        &self.given
    }
}

/// Changes to a router (`None`: unchanged; `gateway: Some(None)` clears it).
pub struct UpdateRouter {
    pub given: Map<String, Value>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub admin_state_up: Option<bool>,
    pub gateway: Option<Option<GatewayRequest>>,
    pub routes: Option<Vec<Route>>,
    pub distributed: Option<bool>,
    pub ha: Option<bool>,
    pub if_revision: Option<u64>,
}

/// What `add_router_interface` / `remove_router_interface` name.
pub enum InterfaceRequest {
    Subnet(String),
    Port(String),
    /// Removing by port, checking it is on that subnet.
    PortOnSubnet {
        port_id: String,
        subnet_id: String,
    },
}

pub async fn create(app: &App, ctx: &OpContext, items: Vec<CreateRouter>) -> HttpResult<Vec<Router>> {
    create_each(app, ctx, "router", items, create_one).await
}

async fn create_one(app: &App, ctx: &OpContext, tx: &mut Tx, req: CreateRouter) -> HttpResult<Router> {
    let project_id = project_for(app, ctx, &req.project_id);
    let now = store::now_timestamp();
    let router = Router {
        id: uuid::Uuid::new_v4().to_string(),
        name: req.name,
        description: req.description,
        tenant_id: project_id.clone(),
        project_id,
        admin_state_up: req.admin_state_up,
        status: "ACTIVE".into(),
        external_gateway_info: None,
        routes: Vec::new(),
        distributed: req.distributed.unwrap_or(false),
        ha: req.ha.unwrap_or(false),
        availability_zone_hints: req.availability_zone_hints,
        availability_zones: Vec::new(),
        flavor_id: req.flavor_id,
        tags: req.tags,
        created_at: now.clone(),
        updated_at: now,
        revision_number: 1,
    };
    store::insert_router(tx, &router).await?;
    store::insert_initial_tags(tx, "routers", &router.id, &router.tags).await?;
    if let Some(gw) = req.gateway {
        set_gateway(app, ctx, tx, &router, Some(gw)).await?;
    }
    Ok(store::get_router(tx.conn(), &router.id).await?)
}

pub async fn list(app: &App, ctx: &OpContext, filters: &[Filter], page: &Page) -> HttpResult<Vec<Router>> {
    let mut c = app.store.reader().await?;
    Ok(store::list_routers(&mut c, filters, page, &ctx.visibility()).await?)
}

pub async fn show(app: &App, ctx: &OpContext, id: &str) -> HttpResult<Router> {
    let mut c = app.store.reader().await?;
    authorize_item(ctx, &mut c, "router", id, ItemAction::Read).await?;
    Ok(store::get_router(&mut c, id).await?)
}

pub async fn update(app: &App, ctx: &OpContext, id: &str, req: UpdateRouter) -> HttpResult<Router> {
    let mut tx = app.store.begin().await?;
    authorize_item(ctx, tx.conn(), "router", id, ItemAction::Update(&req.given)).await?;
    store::lock_router(&mut tx, id).await?;
    let mut router = store::get_router(tx.conn(), id).await?;
    let expected = router.revision_number;
    store::check_revision(req.if_revision, expected)?;
    if let Some(v) = req.name {
        router.name = v;
    }
    if let Some(v) = req.description {
        router.description = v;
    }
    if let Some(v) = req.admin_state_up {
        router.admin_state_up = v;
    }
    // As Neutron (with `router-admin-state-down-before-update`): `distributed` changes only
    // while the router is down before and after, `ha` while it is down after.
    let was_up = store::get_router(tx.conn(), id).await?.admin_state_up;
    let distributed_changes = req.distributed.is_some_and(|d| d != router.distributed);
    let ha_changes = req.ha.is_some_and(|h| h != router.ha);
    if distributed_changes && (was_up || router.admin_state_up) {
        return Err(bad_router(
            "Cannot change the 'distributed' attribute of active routers. Please set router admin_state_up to False \
             prior to upgrade"
                .into(),
        ));
    }
    if ha_changes && router.admin_state_up {
        return Err(bad_router(
            "Cannot change HA attribute of active routers. Please set router admin_state_up to False prior to upgrade"
                .into(),
        ));
    }
    if let Some(v) = req.distributed {
        router.distributed = v;
    }
    if let Some(v) = req.ha {
        router.ha = v;
    }
    store::update_router(&mut tx, &router, expected).await?;
    if distributed_changes || ha_changes {
        // The interfaces' owner follows the router's kind, as Neutron migrates them.
        let owner = if router.ha {
            neutrino_domain::routers::DEVICE_OWNER_HA_INTF
        } else {
            rules::interface_owner(router.distributed)
        };
        for port_id in store::router_interface_ports(tx.conn(), id).await? {
            let mut port = store::get_port(tx.conn(), &port_id).await?;
            let expected = port.revision_number;
            port.device_owner = owner.to_string();
            port.revision_number = expected + 1;
            port.updated_at = store::now_timestamp();
            store::update_port_row(&mut tx, &port, expected).await?;
            store::store_port_body(&mut tx, &port).await?;
        }
    }
    if let Some(gateway) = req.gateway {
        set_gateway(app, ctx, &mut tx, &router, gateway).await?;
    }
    if let Some(routes) = req.routes {
        set_routes(&mut tx, &router, routes).await?;
    }
    let router = store::get_router(tx.conn(), id).await?;
    tx.commit().await?;
    Ok(router)
}

pub async fn delete(app: &App, ctx: &OpContext, id: &str) -> HttpResult<()> {
    let mut tx = app.store.begin().await?;
    authorize_item(ctx, tx.conn(), "router", id, ItemAction::Delete).await?;
    store::lock_router(&mut tx, id).await?;
    let interfaces = store::router_interface_ports(tx.conn(), id).await?;
    if !interfaces.is_empty() {
        return Err(HttpError(ApiError::conflict(
            "RouterInUse",
            format!("Router {id} has ports still attached: {}", interfaces.join(", ")),
        )));
    }
    let router = store::get_router(tx.conn(), id).await?;
    set_gateway(app, ctx, &mut tx, &router, None).await?;
    store::delete_router(&mut tx, id).await?;
    tx.commit().await?;
    Ok(())
}

/// Set, change or clear (`None`) the router's gateway, and then its centralized SNAT.
async fn set_gateway(
    app: &App,
    ctx: &OpContext,
    tx: &mut Tx,
    router: &Router,
    gateway: Option<GatewayRequest>,
) -> HttpResult<()> {
    set_gateway_port(app, ctx, tx, router, gateway).await?;
    super::snat_gateways::schedule(app, ctx, tx, &router.id).await
}

/// Set, change or clear (`None`) the router's gateway port, as Neutron's `_update_router_gw_info`.
async fn set_gateway_port(
    app: &App,
    ctx: &OpContext,
    tx: &mut Tx,
    router: &Router,
    gateway: Option<GatewayRequest>,
) -> HttpResult<()> {
    let (current_port, current_snat) = store::router_gateway(tx.conn(), &router.id).await?;
    let current = match &current_port {
        Some(p) => Some(store::get_port(tx.conn(), p).await?),
        None => None,
    };
    let Some(gw) = gateway else {
        if let Some(port) = current {
            if !store::floatingips_where(tx.conn(), "router_id", &router.id).await?.is_empty() {
                return Err(gateway_in_use(&router.id, &port.network_id));
            }
            store::set_router_gateway(tx, &router.id, None, true).await?;
            store::delete_port(tx, &port.id).await?;
            store::delete_host_gateway_ports(tx, &router.id).await?;
            store::bump_router(tx, &router.id).await?;
        }
        return Ok(());
    };
    let network = match store::get_network(tx.conn(), &gw.network_id).await {
        Ok(n) => n,
        Err(store::StoreError::NotFound { .. }) => {
            return Err(HttpError(ApiError::not_found("network", &gw.network_id)))
        }
        Err(e) => return Err(e.into()),
    };
    authorize_item(ctx, tx.conn(), "network", &network.id, ItemAction::Read).await?;
    if !network.router_external {
        return Err(bad_router(format!("Network {} is not an external network", gw.network_id)));
    }
    if !ctx.is_admin && !store::network_external_to(tx.conn(), &network.id, &router.project_id).await? {
        return Err(HttpError(ApiError::not_found("network", &gw.network_id)));
    }
    // Neutron's `[DEFAULT] enable_snat_by_default`.
    let enable_snat = gw.enable_snat.unwrap_or(true);
    let same_network = current.as_ref().is_some_and(|p| p.network_id == gw.network_id);
    // The addresses it has already (each asked for by subnet, address or both) keep the port.
    let same_addresses = gw.external_fixed_ips.as_ref().is_none_or(|asked| {
        let have = current.as_ref().map(|p| p.fixed_ips.as_slice()).unwrap_or_default();
        asked.len() == have.len()
            && asked.iter().all(|a| {
                have.iter().any(|h| {
                    a.subnet_id.as_ref().is_none_or(|s| *s == h.subnet_id)
                        && a.ip_address.as_ref().is_none_or(|ip| *ip == h.ip_address)
                })
            })
    });
    if same_network && same_addresses {
        if enable_snat != current_snat {
            store::set_router_gateway(tx, &router.id, current_port.as_deref(), enable_snat).await?;
            store::bump_router(tx, &router.id).await?;
        }
        return Ok(());
    }
    if let Some(port) = current {
        if !same_network && !store::floatingips_where(tx.conn(), "router_id", &router.id).await?.is_empty() {
            return Err(gateway_in_use(&router.id, &port.network_id));
        }
        store::set_router_gateway(tx, &router.id, None, enable_snat).await?;
        store::delete_port(tx, &port.id).await?;
        store::delete_host_gateway_ports(tx, &router.id).await?;
    }
    let subnets = store::network_subnets(tx.conn(), &gw.network_id).await?;
    if let Some(ips) = &gw.external_fixed_ips {
        for ip in ips {
            if let Some(s) = &ip.subnet_id {
                if !subnets.iter().any(|x| &x.id == s) {
                    return Err(bad_router(format!("Subnet {s} is not part of network {}", gw.network_id)));
                }
            }
        }
    }
    let port = create_owned(
        app,
        ctx,
        tx,
        owned_port(&gw.network_id, "", DEVICE_OWNER_ROUTER_GW, &router.id, gw.external_fixed_ips.clone()),
    )
    .await?;
    // A gateway without addresses (an external network without subnets) is Neutron's too.
    store::set_router_gateway(tx, &router.id, Some(&port.id), enable_snat).await?;
    store::bump_router(tx, &router.id).await?;
    Ok(())
}

/// The port of `host`'s own address for `router_id`'s SNAT on its external network (for
/// distributed SNAT), made on first use: one per host and router, also when two requests race.
pub async fn host_gateway_port(
    app: &App,
    ctx: &OpContext,
    host: &str,
    router_id: &str,
) -> HttpResult<neutrino_api::resources::Port> {
    let mut c = app.store.reader().await?;
    let Some(gateway) = store::router_gateway(&mut c, router_id).await?.0 else {
        return Err(HttpError(ApiError::not_found_kind(
            "ExternalGatewayNotFound",
            format!("Router {router_id} has no external gateway."),
        )));
    };
    let network_id = store::get_port(&mut c, &gateway).await?.network_id;
    if let Some(id) = store::host_gateway_port(&mut c, &network_id, host, router_id).await? {
        return Ok(store::get_port(&mut c, &id).await?);
    }
    drop(c);
    let mut tx = app.store.begin().await?;
    store::lock_router(&mut tx, router_id).await?;
    let owner = neutrino_domain::routers::DEVICE_OWNER_AGENT_GW;
    let device = store::snat_device_id(host, router_id);
    let made = create_owned(app, ctx, &mut tx, owned_port(&network_id, "", owner, &device, None)).await;
    match made {
        Ok(port) => {
            tx.commit().await?;
            Ok(port)
        }
        Err(e) => {
            drop(tx);
            // Another request of the host made it first.
            let mut c = app.store.reader().await?;
            match store::host_gateway_port(&mut c, &network_id, host, router_id).await? {
                Some(id) => Ok(store::get_port(&mut c, &id).await?),
                None => Err(e),
            }
        }
    }
}

fn gateway_in_use(router_id: &str, net_id: &str) -> HttpError {
    HttpError(ApiError::conflict(
        "RouterExternalGatewayInUseByFloatingIp",
        format!(
            "Gateway cannot be updated for router {router_id}, since a gateway to external network {net_id} is \
             required by one or more floating IPs."
        ),
    ))
}

pub(super) fn bad_router(msg: String) -> HttpError {
    HttpError(ApiError::bad_request(format!("Bad router request: {msg}.")))
}

/// Each address of the router (interfaces and gateway) with its subnet's prefix: what routes'
/// nexthops may be on, and what a new interface may not overlap.
pub(super) async fn connected(c: &mut store::Connection, router_id: &str) -> HttpResult<Vec<(String, IpNet)>> {
    let mut out = Vec::new();
    let mut ports = store::router_interface_ports(c, router_id).await?;
    ports.extend(store::router_gateway(c, router_id).await?.0);
    for port_id in ports {
        let port = store::get_port(c, &port_id).await?;
        for ip in &port.fixed_ips {
            let subnet = store::get_subnet(c, &ip.subnet_id).await?;
            let (Ok(addr), Ok(cidr)) = (ip.ip_address.parse(), subnet.cidr.parse::<IpNet>()) else { continue };
            if let Ok(net) = IpNet::new(addr, cidr.prefix_len()) {
                out.push((subnet.id.clone(), net));
            }
        }
    }
    Ok(out)
}

async fn set_routes(tx: &mut Tx, router: &Router, routes: Vec<Route>) -> HttpResult<()> {
    let connected: Vec<IpNet> = connected(tx.conn(), &router.id).await?.into_iter().map(|(_, n)| n).collect();
    rules::check_routes(&routes, &connected)?;
    let limit =
        store::project_limit(tx, neutrino_domain::quotas::QuotaResource::RouterRoute, &router.project_id).await?;
    if limit >= 0 && routes.len() as i64 > limit {
        return Err(HttpError(ApiError::conflict("OverQuota", "Quota exceeded for resources: ['router_route'].")));
    }
    let wire: Vec<RouterRoute> = routes
        .iter()
        .map(|r| RouterRoute { destination: r.destination_text(), nexthop: r.nexthop.to_string() })
        .collect();
    store::set_router_routes(tx, &router.id, &wire).await?;
    store::bump_router(tx, &router.id).await?;
    Ok(())
}

pub(super) fn parsed_routes(router: &Router) -> Vec<Route> {
    router
        .routes
        .iter()
        .filter_map(|r| Some(Route { destination: r.destination.parse().ok()?, nexthop: r.nexthop.parse().ok()? }))
        .collect()
}

/// `add_extraroutes` (`add`) or `remove_extraroutes`.
pub async fn change_routes(app: &App, ctx: &OpContext, id: &str, routes: Vec<Route>, add: bool) -> HttpResult<Router> {
    let mut tx = app.store.begin().await?;
    let action = if add { "add_extraroutes" } else { "remove_extraroutes" };
    authorize_item(ctx, tx.conn(), "router", id, ItemAction::Named(action)).await?;
    store::lock_router(&mut tx, id).await?;
    let router = store::get_router(tx.conn(), id).await?;
    let merged = rules::merge_routes(&parsed_routes(&router), &routes, add);
    set_routes(&mut tx, &router, merged).await?;
    let router = store::get_router(tx.conn(), id).await?;
    tx.commit().await?;
    Ok(router)
}
