//! Router interfaces: `add_router_interface` and `remove_router_interface`, by subnet (a port
//! the router owns, with the subnet's gateway; another IPv6 subnet of a network joins the
//! router's IPv6 port there, as Neutron does) or by port.

use super::authorize::{authorize_item, ItemAction};
use super::ports::{create_owned_active, owned_port, set_owned_addresses, FixedIpRequest};
use super::routers::{bad_router, connected, parsed_routes, InterfaceRequest};
use super::OpContext;
use crate::error::{HttpError, HttpResult};
use crate::App;
use ipnet::IpNet;
use neutrino_api::resources::{Router, RouterInterfaceInfo};
use neutrino_api::ApiError;
use neutrino_domain::routers as rules;
use neutrino_store::{self as store, Tx};

/// The subnet as the caller sees it (else not found).
async fn visible_subnet(
    ctx: &OpContext,
    c: &mut store::Connection,
    id: &str,
) -> HttpResult<neutrino_api::resources::Subnet> {
    authorize_item(ctx, c, "subnet", id, ItemAction::Read).await?;
    Ok(store::get_subnet(c, id).await?)
}

/// `add_router_interface`.
pub async fn add_interface(
    app: &App,
    ctx: &OpContext,
    id: &str,
    req: InterfaceRequest,
) -> HttpResult<RouterInterfaceInfo> {
    let mut tx = app.store.begin().await?;
    authorize_item(ctx, tx.conn(), "router", id, ItemAction::Named("add_router_interface")).await?;
    store::lock_router(&mut tx, id).await?;
    let router = store::get_router(tx.conn(), id).await?;
    let existing = connected(tx.conn(), id).await?;
    let existing: Vec<(String, IpNet)> = existing.into_iter().map(|(s, n)| (s, n.trunc())).collect();
    let owner = if router.ha {
        neutrino_domain::routers::DEVICE_OWNER_HA_INTF
    } else {
        rules::interface_owner(router.distributed)
    };
    // The subnets the reply names (all of the port's, but only the new one when it joined an
    // existing port).
    let mut named: Option<Vec<String>> = None;
    let port = match req {
        InterfaceRequest::Subnet(subnet_id) => {
            let subnet = visible_subnet(ctx, tx.conn(), &subnet_id).await?;
            // As Neutron: the router's project owns the subnet, or its network is shared with
            // it (seeing a subnet, as everyone sees external ones, is not enough).
            if !ctx.is_admin && subnet.project_id != router.project_id {
                let network = store::get_network(tx.conn(), &subnet.network_id).await?;
                let shared = network.shared
                    || !store::networks_shared_with(tx.conn(), &router.project_id, std::slice::from_ref(&network.id))
                        .await?
                        .is_empty();
                if !shared {
                    return Err(HttpError(ApiError::not_found("subnet", &subnet_id)));
                }
            }
            let Some(gateway) = subnet.gateway_ip.clone() else {
                return Err(bad_router("Subnet for router interface must have a gateway IP".into()));
            };
            let cidr: IpNet = subnet.cidr.parse().map_err(|_| ApiError::internal("stored CIDR"))?;
            rules::check_no_overlap(id, &subnet.id, cidr, &existing)?;
            let fixed = FixedIpRequest { subnet_id: Some(subnet.id.clone()), ip_address: Some(gateway) };
            match ipv6_interface_on(&mut tx, id, &subnet).await? {
                // As Neutron: another IPv6 subnet of a network joins the router's IPv6 port
                // there (one leg advertises all its prefixes).
                Some(port) => {
                    let mut requested = addresses_but(&port, None);
                    requested.push(fixed);
                    named = Some(vec![subnet.id.clone()]);
                    set_owned_addresses(app, &mut tx, &port.id, requested).await?
                }
                None => {
                    // The interface is up at once, as OVN's router ports: every host with a
                    // port on the network runs the router (there is no agent to wait for).
                    let req = owned_port(&subnet.network_id, &subnet.project_id, owner, id, Some(vec![fixed]));
                    create_owned_active(app, ctx, &mut tx, req).await?
                }
            }
        }
        InterfaceRequest::Port(port_id) | InterfaceRequest::PortOnSubnet { port_id, .. } => {
            authorize_item(ctx, tx.conn(), "port", &port_id, ItemAction::Read).await?;
            let mut port = store::get_port(tx.conn(), &port_id).await?;
            if !port.device_id.is_empty() || !port.device_owner.is_empty() {
                return Err(HttpError(ApiError::conflict(
                    "PortInUse",
                    format!(
                        "Unable to complete operation on port {port_id} for network {}. Port already has an attached \
                         device {}.",
                        port.network_id, port.device_id
                    ),
                )));
            }
            if port.fixed_ips.is_empty() {
                return Err(bad_router("Router port must have at least one fixed IP".into()));
            }
            let mut v4 = 0;
            for ip in &port.fixed_ips {
                let subnet = store::get_subnet(tx.conn(), &ip.subnet_id).await?;
                if subnet.ip_version == 4 {
                    v4 += 1;
                }
                let cidr: IpNet = subnet.cidr.parse().map_err(|_| ApiError::internal("stored CIDR"))?;
                rules::check_no_overlap(id, &subnet.id, cidr, &existing)?;
            }
            if v4 > 1 {
                return Err(bad_router("Cannot have multiple IPv4 subnets on router port".into()));
            }
            let expected = port.revision_number;
            port.device_id = id.to_string();
            port.device_owner = owner.to_string();
            port.status = "ACTIVE".into();
            port.revision_number = expected + 1;
            port.updated_at = store::now_timestamp();
            store::update_port_row(&mut tx, &port, expected).await?;
            store::store_port_body(&mut tx, &port).await?;
            port
        }
    };
    store::bump_router(&mut tx, id).await?;
    super::snat_gateways::schedule(app, ctx, &mut tx, id).await?;
    tx.commit().await?;
    Ok(interface_info(&router, &port, named))
}

/// The port's addresses as a request that keeps them, but those on the subnet `except`.
fn addresses_but(port: &neutrino_api::resources::Port, except: Option<&str>) -> Vec<FixedIpRequest> {
    port.fixed_ips
        .iter()
        .filter(|f| except != Some(f.subnet_id.as_str()))
        .map(|f| FixedIpRequest { subnet_id: Some(f.subnet_id.clone()), ip_address: Some(f.ip_address.clone()) })
        .collect()
}

/// The router's interface port on the subnet's network that has an IPv6 address (Neutron's
/// `_find_ipv6_router_port_by_network`), for an IPv6 subnet (none for an IPv4 one).
async fn ipv6_interface_on(
    tx: &mut Tx,
    router_id: &str,
    subnet: &neutrino_api::resources::Subnet,
) -> HttpResult<Option<neutrino_api::resources::Port>> {
    if subnet.ip_version != 6 {
        return Ok(None);
    }
    for port_id in store::router_interface_ports(tx.conn(), router_id).await? {
        let port = store::get_port(tx.conn(), &port_id).await?;
        let has_ipv6 = port.fixed_ips.iter().any(|f| f.ip_address.parse::<std::net::Ipv6Addr>().is_ok());
        if port.network_id == subnet.network_id && has_ipv6 {
            return Ok(Some(port));
        }
    }
    Ok(None)
}

/// The reply of an interface change: the port's subnets, or `named` ones.
fn interface_info(
    router: &Router,
    port: &neutrino_api::resources::Port,
    named: Option<Vec<String>>,
) -> RouterInterfaceInfo {
    let subnet_ids: Vec<String> = named.unwrap_or_else(|| port.fixed_ips.iter().map(|f| f.subnet_id.clone()).collect());
    RouterInterfaceInfo {
        id: router.id.clone(),
        tenant_id: router.project_id.clone(),
        project_id: router.project_id.clone(),
        port_id: port.id.clone(),
        network_id: port.network_id.clone(),
        subnet_id: subnet_ids.first().cloned().unwrap_or_default(),
        subnet_ids,
    }
}

/// `remove_router_interface`.
pub async fn remove_interface(
    app: &App,
    ctx: &OpContext,
    id: &str,
    req: InterfaceRequest,
) -> HttpResult<RouterInterfaceInfo> {
    let mut tx = app.store.begin().await?;
    authorize_item(ctx, tx.conn(), "router", id, ItemAction::Named("remove_router_interface")).await?;
    store::lock_router(&mut tx, id).await?;
    let router = store::get_router(tx.conn(), id).await?;
    let interfaces = store::router_interface_ports(tx.conn(), id).await?;
    let port = match &req {
        InterfaceRequest::Port(port_id) | InterfaceRequest::PortOnSubnet { port_id, .. } => {
            if !interfaces.contains(port_id) {
                return Err(HttpError(ApiError::not_found_kind(
                    "RouterInterfaceNotFound",
                    format!("Router {id} does not have an interface with id {port_id}"),
                )));
            }
            let port = store::get_port(tx.conn(), port_id).await?;
            if let InterfaceRequest::PortOnSubnet { subnet_id, .. } = &req {
                if !port.fixed_ips.iter().any(|f| &f.subnet_id == subnet_id) {
                    return Err(HttpError(ApiError::new(
                        400,
                        "SubnetMismatchForPort",
                        format!("Subnet {subnet_id} could not be found on port {port_id}"),
                    )));
                }
            }
            port
        }
        InterfaceRequest::Subnet(subnet_id) => {
            visible_subnet(ctx, tx.conn(), subnet_id).await?;
            let mut found = None;
            for port_id in &interfaces {
                let port = store::get_port(tx.conn(), port_id).await?;
                if port.fixed_ips.iter().any(|f| &f.subnet_id == subnet_id) {
                    found = Some(port);
                    break;
                }
            }
            found.ok_or_else(|| {
                HttpError(ApiError::not_found_kind(
                    "RouterInterfaceNotFoundForSubnet",
                    format!("Router {id} has no interface on subnet {subnet_id}"),
                ))
            })?
        }
    };
    // By subnet, from a port with other subnets: that subnet's address alone goes (as Neutron).
    let only = match &req {
        InterfaceRequest::Subnet(subnet_id) if port.fixed_ips.iter().any(|f| &f.subnet_id != subnet_id) => {
            Some(subnet_id.clone())
        }
        _ => None,
    };
    let connected: Vec<IpNet> = connected(tx.conn(), id).await?.into_iter().map(|(_, n)| n).collect();
    for ip in port.fixed_ips.iter().filter(|f| only.as_ref().is_none_or(|s| &f.subnet_id == s)) {
        let in_use = |kind: &str, what: &str| {
            HttpError(ApiError::conflict(
                kind,
                format!(
                    "Router interface for subnet {} on router {id} cannot be deleted, as it is required by one or more \
                     {what}.",
                    ip.subnet_id
                ),
            ))
        };
        let Ok(addr) = ip.ip_address.parse::<std::net::IpAddr>() else { continue };
        let Some(net) = connected.iter().find(|n| n.addr() == addr).map(IpNet::trunc) else { continue };
        if parsed_routes(&router).iter().any(|r| net.contains(&r.nexthop)) {
            return Err(in_use("RouterInterfaceInUseByRoute", "routes"));
        }
        if store::floating_ips_through(tx.conn(), id, &ip.subnet_id).await? {
            return Err(in_use("RouterInterfaceInUseByFloatingIP", "floating IPs"));
        }
    }
    match &only {
        Some(subnet_id) => {
            let kept = addresses_but(&port, Some(subnet_id));
            set_owned_addresses(app, &mut tx, &port.id, kept).await?;
        }
        None => store::delete_port(&mut tx, &port.id).await?,
    }
    store::bump_router(&mut tx, id).await?;
    super::snat_gateways::schedule(app, ctx, &mut tx, id).await?;
    tx.commit().await?;
    Ok(interface_info(&router, &port, only.map(|s| vec![s])))
}
