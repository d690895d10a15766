//! Floating IP operations (create, show, list, update, delete) and their port forwardings.
//! A floating IP holds a `network:floatingip` port on its external network; associating it
//! with a fixed IP finds the router that joins that fixed IP's subnet to the external network.

use super::authorize::{authorize_item, ItemAction};
use super::ports::{create_owned, owned_port, FixedIpRequest};
use super::{create_each, project_for, CreateItem, OpContext};
use crate::error::{HttpError, HttpResult};
use crate::App;
use neutrino_api::resources::{FloatingIp, Port, PortForwarding};
use neutrino_api::ApiError;
use neutrino_domain::routers::DEVICE_OWNER_FLOATINGIP;
use neutrino_store::{self as store, Filter, Page, Tx};
use serde_json::{Map, Value};
use std::net::IpAddr;

pub struct CreateFloatingIp {
    pub given: Map<String, Value>,
    pub project_id: Option<String>,
    pub floating_network_id: String,
    pub floating_ip_address: Option<String>,
    pub subnet_id: Option<String>,
    pub port_id: Option<String>,
    pub fixed_ip_address: Option<String>,
    pub description: String,
    pub dns_name: Option<String>,
    pub dns_domain: Option<String>,
    pub tags: Vec<String>,
}

impl CreateItem for CreateFloatingIp {
    fn given(&self) -> &Map<String, Value> {
        &self.given
    }
}

/// Changes to a floating IP: `port_id: Some(None)` dissociates.
pub struct UpdateFloatingIp {
    pub given: Map<String, Value>,
    pub port_id: Option<Option<String>>,
    pub fixed_ip_address: Option<Option<String>>,
    pub description: Option<String>,
    pub if_revision: Option<u64>,
}

pub async fn create(app: &App, ctx: &OpContext, items: Vec<CreateFloatingIp>) -> HttpResult<Vec<FloatingIp>> {
    create_each(app, ctx, "floatingip", items, create_one).await
}

fn bad_fip(msg: String) -> HttpError {
    HttpError(ApiError::bad_request(format!("Bad floatingip request: {msg}.")))
}

async fn create_one(app: &App, ctx: &OpContext, tx: &mut Tx, req: CreateFloatingIp) -> HttpResult<FloatingIp> {
    let project_id = project_for(app, ctx, &req.project_id);
    let network = match store::get_network(tx.conn(), &req.floating_network_id).await {
        Ok(n) => n,
        Err(store::StoreError::NotFound { .. }) => {
            return Err(HttpError(ApiError::not_found("network", &req.floating_network_id)))
        }
        Err(e) => return Err(e.into()),
    };
    authorize_item(ctx, tx.conn(), "network", &network.id, ItemAction::Read).await?;
    if !network.router_external {
        return Err(bad_fip(format!("Network {} is not a valid external network", network.id)));
    }
    if !ctx.is_admin && !store::network_external_to(tx.conn(), &network.id, &project_id).await? {
        return Err(HttpError(ApiError::not_found("network", &network.id)));
    }
    if req.floating_ip_address.as_deref().is_some_and(|a| a.parse::<std::net::Ipv4Addr>().is_err()) {
        return Err(bad_fip(format!(
            "Floating IP address {} is not an IPv4 address",
            req.floating_ip_address.clone().unwrap_or_default()
        )));
    }
    let subnets = store::network_subnets(tx.conn(), &network.id).await?;
    let v4: Vec<&str> = subnets.iter().filter(|s| s.ip_version == 4).map(|s| s.id.as_str()).collect();
    let fixed = match (&req.subnet_id, &req.floating_ip_address) {
        (Some(s), address) => {
            let Some(subnet) = subnets.iter().find(|x| &x.id == s) else {
                return Err(bad_fip(format!("Subnet {s} does not belong to network {}", network.id)));
            };
            if subnet.ip_version != 4 {
                return Err(bad_fip(format!("Subnet {s} is not an IPv4 subnet")));
            }
            vec![FixedIpRequest { subnet_id: Some(s.clone()), ip_address: address.clone() }]
        }
        (None, Some(address)) => vec![FixedIpRequest { subnet_id: None, ip_address: Some(address.clone()) }],
        (None, None) => match v4.first() {
            Some(s) => vec![FixedIpRequest { subnet_id: Some(s.to_string()), ip_address: None }],
            None => return Err(bad_fip(format!("Network {} does not contain any IPv4 subnet", network.id))),
        },
    };
    let id = uuid::Uuid::new_v4().to_string();
    let port =
        create_owned(app, ctx, tx, owned_port(&network.id, "", DEVICE_OWNER_FLOATINGIP, &id, Some(fixed))).await?;
    let Some(address) = port.fixed_ips.first().map(|f| f.ip_address.clone()) else {
        return Err(bad_fip(format!("Network {} does not contain any IPv4 subnet", network.id)));
    };
    let now = store::now_timestamp();
    let mut fip = FloatingIp {
        id: id.clone(),
        tenant_id: project_id.clone(),
        project_id,
        floating_ip_address: address,
        floating_network_id: network.id.clone(),
        router_id: None,
        port_id: None,
        fixed_ip_address: None,
        status: "DOWN".into(),
        description: req.description,
        port_details: None,
        port_forwardings: Vec::new(),
        qos_policy_id: None,
        dns_name: req.dns_name,
        dns_domain: req.dns_domain,
        tags: req.tags,
        created_at: now.clone(),
        updated_at: now,
        revision_number: 0,
    };
    if let Some(port_id) = &req.port_id {
        associate(ctx, tx, &mut fip, port_id, req.fixed_ip_address.as_deref()).await?;
    }
    store::insert_floatingip(tx, &fip, &port.id).await.map_err(|e| already_associated(e, &fip))?;
    store::insert_initial_tags(tx, "floatingips", &id, &fip.tags).await?;
    Ok(finish(app, store::get_floatingip(tx.conn(), &id).await?))
}

/// As the API shows it: `dns_name` and `dns_domain` only with DNS integration.
fn finish(app: &App, mut fip: FloatingIp) -> FloatingIp {
    if app.config.dns_domain.is_none() {
        fip.dns_name = None;
        fip.dns_domain = None;
    }
    fip
}

/// A fixed IP that has a floating IP already (the unique key) is Neutron's 409.
fn already_associated(e: store::StoreError, fip: &FloatingIp) -> HttpError {
    if !e.is_unique_violation() {
        return e.into();
    }
    HttpError(ApiError::conflict(
        "FloatingIPPortAlreadyAssociated",
        format!(
            "Cannot associate floating IP {} ({}) with port {} using fixed IP {}, as that fixed IP already has a \
             floating IP on external network {}.",
            fip.floating_ip_address,
            fip.id,
            fip.port_id.clone().unwrap_or_default(),
            fip.fixed_ip_address.clone().unwrap_or_default(),
            fip.floating_network_id
        ),
    ))
}

/// Point `fip` at `port_id`'s fixed IP (`fixed_ip`, or its only IPv4 address) through the
/// router that joins that address's subnet to the floating IP's network.
async fn associate(
    ctx: &OpContext,
    tx: &mut Tx,
    fip: &mut FloatingIp,
    port_id: &str,
    fixed_ip: Option<&str>,
) -> HttpResult<()> {
    let not_found = || HttpError(ApiError::not_found("port", port_id));
    let port: Port = match store::get_port(tx.conn(), port_id).await {
        Ok(p) => p,
        Err(store::StoreError::NotFound { .. }) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    authorize_item(ctx, tx.conn(), "port", port_id, ItemAction::Read).await?;
    if !ctx.is_admin && port.project_id != fip.project_id {
        return Err(bad_fip(format!(
            "Port {port_id} is associated with a different tenant than Floating IP {} and therefore cannot be bound",
            fip.id
        )));
    }
    if port.device_owner.starts_with("network:") {
        return Err(bad_fip(format!(
            "Port {port_id} has device owner {} and cannot be associated with a floating IP",
            port.device_owner
        )));
    }
    let v4: Vec<&neutrino_api::resources::FixedIp> =
        port.fixed_ips.iter().filter(|f| f.ip_address.parse::<IpAddr>().is_ok_and(|a| a.is_ipv4())).collect();
    let chosen = match fixed_ip {
        Some(ip) => match port.fixed_ips.iter().find(|f| f.ip_address == ip) {
            Some(f) if f.ip_address.parse::<IpAddr>().is_ok_and(|a| a.is_ipv4()) => f,
            Some(_) => {
                return Err(bad_fip(format!(
                    "Cannot process floating IP association with {ip}, since that is not an IPv4 address"
                )))
            }
            None => return Err(bad_fip(format!("Port {port_id} does not have fixed ip {ip}"))),
        },
        None => match v4.as_slice() {
            [one] => *one,
            [] => {
                return Err(bad_fip(format!(
                    "Cannot add floating IP to port {port_id} that has no fixed IPv4 addresses"
                )))
            }
            _ => {
                return Err(bad_fip(format!(
                    "Port {port_id} has multiple fixed IPv4 addresses. Must provide a specific IPv4 address when \
                     assigning a floating IP"
                )))
            }
        },
    };
    let router = router_for(tx, &chosen.subnet_id, &fip.floating_network_id, port_id).await?;
    // The router's interfaces and gateway change under its lock: hold it, so the interface and
    // gateway this association relies on stay until it commits.
    store::lock_router(tx, &router).await?;
    if router_for(tx, &chosen.subnet_id, &fip.floating_network_id, port_id).await? != router {
        return Err(HttpError(ApiError::conflict(
            "RouterChanged",
            format!("Router {router} changed while floating IP {} was being associated; retry.", fip.id),
        )));
    }
    fip.port_id = Some(port_id.to_string());
    fip.fixed_ip_address = Some(chosen.ip_address.clone());
    fip.router_id = Some(router);
    fip.status = "ACTIVE".into();
    Ok(())
}

/// The router joining `subnet_id` to the external network `floating_network_id` (its gateway
/// is there), else Neutron's `ExternalGatewayForFloatingIPNotFound`.
async fn router_for(tx: &mut Tx, subnet_id: &str, floating_network_id: &str, port_id: &str) -> HttpResult<String> {
    for candidate in store::routers_on_subnet(tx.conn(), subnet_id).await? {
        let (gw_port, _) = store::router_gateway(tx.conn(), &candidate).await?;
        if let Some(gw) = gw_port {
            if store::get_port(tx.conn(), &gw).await?.network_id == floating_network_id {
                return Ok(candidate);
            }
        }
    }
    Err(HttpError(ApiError::not_found_kind(
        "ExternalGatewayForFloatingIPNotFound",
        format!(
            "External network {floating_network_id} is not reachable from subnet {subnet_id}.  Therefore, cannot \
             associate Port {port_id} with a Floating IP."
        ),
    )))
}

pub async fn list(app: &App, ctx: &OpContext, filters: &[Filter], page: &Page) -> HttpResult<Vec<FloatingIp>> {
    let mut c = app.store.reader().await?;
    let fips = store::list_floatingips(&mut c, filters, page, &ctx.visibility()).await?;
    Ok(fips.into_iter().map(|f| finish(app, f)).collect())
}

pub async fn show(app: &App, ctx: &OpContext, id: &str) -> HttpResult<FloatingIp> {
    let mut c = app.store.reader().await?;
    authorize_item(ctx, &mut c, "floatingip", id, ItemAction::Read).await?;
    Ok(finish(app, store::get_floatingip(&mut c, id).await?))
}

pub async fn update(app: &App, ctx: &OpContext, id: &str, req: UpdateFloatingIp) -> HttpResult<FloatingIp> {
    let mut tx = app.store.begin().await?;
    authorize_item(ctx, tx.conn(), "floatingip", id, ItemAction::Update(&req.given)).await?;
    store::lock_floatingip(&mut tx, id).await?;
    let mut fip = store::get_floatingip(tx.conn(), id).await?;
    let expected = fip.revision_number;
    store::check_revision(req.if_revision, expected)?;
    if let Some(d) = req.description {
        fip.description = d;
    }
    let new_port = match (&req.port_id, &req.fixed_ip_address) {
        (Some(p), _) => p.clone(),
        (None, Some(_)) => fip.port_id.clone(),
        (None, None) => None,
    };
    if req.port_id.is_some() || req.fixed_ip_address.is_some() {
        if !fip.port_forwardings.is_empty() && new_port.is_some() {
            return Err(HttpError(ApiError::conflict(
                "FipInUseByPortForwarding",
                format!("Floating IP {id} is in use by Port Forwarding resources."),
            )));
        }
        match new_port {
            Some(port_id) => {
                let fixed = req.fixed_ip_address.clone().flatten();
                associate(ctx, &mut tx, &mut fip, &port_id, fixed.as_deref()).await?;
            }
            None => {
                fip.port_id = None;
                fip.fixed_ip_address = None;
                fip.router_id = None;
                fip.status = "DOWN".into();
            }
        }
    }
    store::update_floatingip(&mut tx, &fip, expected).await.map_err(|e| already_associated(e, &fip))?;
    let fip = store::get_floatingip(tx.conn(), id).await?;
    tx.commit().await?;
    Ok(finish(app, fip))
}

pub async fn delete(app: &App, ctx: &OpContext, id: &str) -> HttpResult<()> {
    let mut tx = app.store.begin().await?;
    authorize_item(ctx, tx.conn(), "floatingip", id, ItemAction::Delete).await?;
    store::lock_floatingip(&mut tx, id).await?;
    let row = store::get_floatingip_row(tx.conn(), id).await?;
    if !row.fip.port_forwardings.is_empty() {
        return Err(HttpError(ApiError::conflict(
            "FipInUseByPortForwarding",
            format!("Floating IP {id} is in use by Port Forwarding resources."),
        )));
    }
    store::delete_floatingip_row(&mut tx, id).await?;
    store::delete_port(&mut tx, &row.floating_port_id).await?;
    tx.commit().await?;
    Ok(())
}

/// A port forwarding as a request gives it (`None`: unchanged, on updates).
#[derive(Default)]
pub struct ForwardingRequest {
    pub given: Map<String, Value>,
    pub protocol: Option<String>,
    pub internal_port_id: Option<String>,
    pub internal_ip_address: Option<String>,
    pub internal: Option<(u32, u32)>,
    pub external: Option<(u32, u32)>,
    pub description: Option<String>,
}

pub async fn list_forwardings(app: &App, ctx: &OpContext, fip_id: &str) -> HttpResult<Vec<PortForwarding>> {
    let mut c = app.store.reader().await?;
    authorize_item(ctx, &mut c, "floatingip", fip_id, ItemAction::Read).await?;
    Ok(store::list_forwardings(&mut c, fip_id).await?)
}

pub async fn show_forwarding(app: &App, ctx: &OpContext, fip_id: &str, id: &str) -> HttpResult<PortForwarding> {
    let mut c = app.store.reader().await?;
    authorize_item(ctx, &mut c, "floatingip", fip_id, ItemAction::Read).await?;
    Ok(store::get_forwarding(&mut c, fip_id, id).await?)
}

/// Create (`id: None`) or update a port forwarding of a floating IP.
pub async fn put_forwarding(
    app: &App,
    ctx: &OpContext,
    fip_id: &str,
    id: Option<&str>,
    req: ForwardingRequest,
) -> HttpResult<PortForwarding> {
    let mut tx = app.store.begin().await?;
    let action = if id.is_some() { "update_floatingip_port_forwarding" } else { "create_floatingip_port_forwarding" };
    authorize_item(ctx, tx.conn(), "floatingip", fip_id, ItemAction::Named(action)).await?;
    store::lock_floatingip(&mut tx, fip_id).await?;
    let fip = store::get_floatingip(tx.conn(), fip_id).await?;
    let existing = store::forwarding_rows(tx.conn(), fip_id).await?;
    let current = match id {
        Some(id) => Some(
            existing
                .iter()
                .find(|f| f.id == id)
                .ok_or_else(|| HttpError(ApiError::not_found("port_forwarding", id)))?,
        ),
        None => None,
    };
    if fip.port_id.is_some() {
        return Err(HttpError(ApiError::conflict(
            "FipInUseByPortForwarding",
            format!("Floating IP {fip_id} is associated with a port: it cannot have port forwardings."),
        )));
    }
    let missing = |name: &str| {
        HttpError(ApiError::bad_request(format!("Failed to parse request. Required attribute '{name}' not specified")))
    };
    let row = store::ForwardingRow {
        id: id.map(str::to_string).unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        floatingip_id: fip_id.to_string(),
        protocol: req.protocol.or_else(|| current.map(|c| c.protocol.clone())).ok_or_else(|| missing("protocol"))?,
        internal_port_id: req
            .internal_port_id
            .or_else(|| current.map(|c| c.internal_port_id.clone()))
            .ok_or_else(|| missing("internal_port_id"))?,
        internal_ip_address: req
            .internal_ip_address
            .or_else(|| current.map(|c| c.internal_ip_address.clone()))
            .ok_or_else(|| missing("internal_ip_address"))?,
        internal: req.internal.or_else(|| current.map(|c| c.internal)).ok_or_else(|| missing("internal_port"))?,
        external: req.external.or_else(|| current.map(|c| c.external)).ok_or_else(|| missing("external_port"))?,
        description: req.description.or_else(|| current.map(|c| c.description.clone())).unwrap_or_default(),
    };
    let (internal_len, external_len) = (row.internal.1 - row.internal.0, row.external.1 - row.external.0);
    if internal_len != external_len && internal_len != 0 {
        return Err(HttpError(ApiError::bad_request(
            "The internal and external port ranges must be the same size, or the internal range a single port.",
        )));
    }
    let port = match store::get_port(tx.conn(), &row.internal_port_id).await {
        Ok(p) => p,
        Err(store::StoreError::NotFound { .. }) => {
            return Err(HttpError(ApiError::not_found("port", &row.internal_port_id)))
        }
        Err(e) => return Err(e.into()),
    };
    // The internal port must be one the caller sees, of the floating IP's project, and a VM's.
    authorize_item(ctx, tx.conn(), "port", &port.id, ItemAction::Read).await?;
    if (!ctx.is_admin && port.project_id != fip.project_id) || port.device_owner.starts_with("network:") {
        return Err(HttpError(ApiError::not_found("port", &port.id)));
    }
    if let Some(other) = store::floatingips_where(tx.conn(), "fixed_port_id", &port.id).await?.first() {
        return Err(HttpError(ApiError::conflict(
            "PortHasBindingFloatingIP",
            format!(
                "Cannot create port forwarding to floating IP {} ({fip_id}) with port {} using fixed IP {}, as that \
                 port already has a binding floating IP {other}.",
                fip.floating_ip_address, port.id, row.internal_ip_address
            ),
        )));
    }
    if !port.fixed_ips.iter().any(|f| f.ip_address == row.internal_ip_address) {
        return Err(HttpError(ApiError::bad_request(format!(
            "Bad port_forwarding request: The Internal IP Address {} does not belong to port {}.",
            row.internal_ip_address, port.id
        ))));
    }
    for other in existing.iter().filter(|o| o.id != row.id && o.protocol == row.protocol) {
        let overlaps = other.external.0 <= row.external.1 && row.external.0 <= other.external.1;
        if overlaps {
            return Err(HttpError(ApiError::bad_request(format!(
                "Bad port_forwarding request: A duplicate port forwarding entry with same attributes already exists, \
                 conflicting values are {{'floatingip_id': '{fip_id}', 'external_port': {}}}.",
                row.external.0
            ))));
        }
        let same_inside = other.internal_ip_address == row.internal_ip_address
            && other.internal.0 <= row.internal.1
            && row.internal.0 <= other.internal.1;
        if same_inside {
            return Err(HttpError(ApiError::bad_request(format!(
                "Bad port_forwarding request: A duplicate port forwarding entry with same attributes already exists, \
                 conflicting values are {{'internal_ip_address': '{}', 'internal_port': {}}}.",
                row.internal_ip_address, row.internal.0
            ))));
        }
    }
    // The floating IP reaches the internal port through the router joining its subnet to the
    // floating IP's network (Neutron sets the floating IP's router so).
    if fip.router_id.is_none() {
        let Some(fixed) = port.fixed_ips.iter().find(|f| f.ip_address == row.internal_ip_address) else {
            return Err(HttpError(ApiError::not_found("port", &port.id)));
        };
        let router = router_for(&mut tx, &fixed.subnet_id, &fip.floating_network_id, &port.id).await?;
        let mut routed = fip.clone();
        routed.router_id = Some(router);
        store::update_floatingip(&mut tx, &routed, fip.revision_number).await?;
    }
    store::upsert_forwarding(&mut tx, &row, id.is_some()).await?;
    let out = store::get_forwarding(tx.conn(), fip_id, &row.id).await?;
    tx.commit().await?;
    let _ = req.given;
    Ok(out)
}

pub async fn delete_forwarding(app: &App, ctx: &OpContext, fip_id: &str, id: &str) -> HttpResult<()> {
    let mut tx = app.store.begin().await?;
    authorize_item(ctx, tx.conn(), "floatingip", fip_id, ItemAction::Named("delete_floatingip_port_forwarding"))
        .await?;
    store::lock_floatingip(&mut tx, fip_id).await?;
    store::delete_forwarding(&mut tx, fip_id, id).await?;
    // The last forwarding of an unassociated floating IP takes its router with it.
    let fip = store::get_floatingip(tx.conn(), fip_id).await?;
    if fip.port_id.is_none() && fip.port_forwardings.is_empty() && fip.router_id.is_some() {
        let mut unrouted = fip.clone();
        unrouted.router_id = None;
        store::update_floatingip(&mut tx, &unrouted, fip.revision_number).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The floating IP pools (`floatingip-pools`): the IPv4 subnets of the external networks the
/// caller sees.
pub async fn pools(app: &App, ctx: &OpContext) -> HttpResult<Vec<Value>> {
    let mut c = app.store.reader().await?;
    let external = [Filter { attribute: "router:external".into(), values: vec!["True".into()] }];
    let networks = store::list_networks(&mut c, &external, &Page::default(), &ctx.visibility()).await?;
    let mut out = Vec::new();
    for n in networks {
        for s in store::network_subnets(&mut c, &n.id).await?.into_iter().filter(|s| s.ip_version == 4) {
            out.push(serde_json::json!({
                "subnet_id": s.id, "subnet_name": s.name, "network_id": n.id, "cidr": s.cidr,
                "project_id": s.project_id, "tenant_id": s.project_id,
            }));
        }
    }
    Ok(out)
}
