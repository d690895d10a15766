//! Port operations: create (one or bulk), show, list, update, delete.

mod addresses;
mod options;

pub(crate) use addresses::pools_of;
pub use addresses::FixedIpRequest;
pub use options::AddressPairsRequest;

use addresses::assign_fixed_ips;
use options::{apply_address_pairs, apply_dhcp_options, apply_security_groups, GroupsFrom};

use super::authorize::{add_network_keys, attributes_of, may_use_network, network_target};
use super::OpContext;
use crate::error::{HttpError, HttpResult};
use crate::App;
use neutrino_api::resources::Port;
use neutrino_api::ApiError;
use neutrino_domain::binding::{bind_port, AgentView, BindingOutcome, BindingRequest, SegmentView, VIF_TYPE_UNBOUND};
use neutrino_domain::mac::random_port_mac;
use neutrino_domain::port_options::DhcpOptionRequest;
use neutrino_domain::subnet::is_auto_address;
use neutrino_store::{self as store, Filter, Page, Tx};
use serde_json::{Map, Value};

/// One port to create, as parsed from its body.
pub struct CreatePort {
    /// The body's attributes as given: the policy judges them.
    pub given: Map<String, Value>,
    /// `project_id`/`tenant_id` when the body names one.
    pub project_id: Option<String>,
    pub network_id: String,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub device_id: String,
    pub device_owner: String,
    /// Normalized; `None`: a random one.
    pub mac_address: Option<String>,
    /// `None`: Neutron's automatic choice.
    pub fixed_ips: Option<Vec<FixedIpRequest>>,
    /// `None`: the network's.
    pub port_security_enabled: Option<bool>,
    /// `None`: the project's `default` group (for ports with port security).
    pub security_groups: Option<Vec<String>>,
    pub vnic_type: String,
    pub profile: Map<String, Value>,
    pub host_id: String,
    pub allowed_address_pairs: Option<AddressPairsRequest>,
    pub extra_dhcp_opts: Option<Vec<DhcpOptionRequest>>,
    /// Validated (with DNS integration; without it only the empty default).
    pub dns_name: Option<String>,
    pub tags: Vec<String>,
}

impl super::CreateItem for CreatePort {
    fn given(&self) -> &Map<String, Value> {
        &self.given
    }
}

/// A new MAC address for a port.
pub enum MacRequest {
    Given(String),
    /// `"mac_address": null` (`port-mac-address-regenerate`): a new random one.
    Regenerate,
}

/// Changes to a port, as parsed from its body (`None`: unchanged).
pub struct UpdatePort {
    pub given: Map<String, Value>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub admin_state_up: Option<bool>,
    pub device_id: Option<String>,
    pub device_owner: Option<String>,
    pub mac_address: Option<MacRequest>,
    pub fixed_ips: Option<Vec<FixedIpRequest>>,
    pub port_security_enabled: Option<bool>,
    pub security_groups: Option<Vec<String>>,
    pub vnic_type: Option<String>,
    pub profile: Option<Map<String, Value>>,
    pub host_id: Option<String>,
    pub allowed_address_pairs: Option<AddressPairsRequest>,
    pub extra_dhcp_opts: Option<Vec<DhcpOptionRequest>>,
    pub dns_name: Option<String>,
    /// `If-Match: revision_number=N`.
    pub if_revision: Option<u64>,
}

impl UpdatePort {
    /// Whether the binding is asked to change (host, VNIC type or profile given).
    fn rebinds(&self) -> bool {
        self.host_id.is_some() || self.vnic_type.is_some() || self.profile.is_some()
    }
}

fn mac_in_use(network_id: &str, mac: &str) -> HttpError {
    HttpError(ApiError::conflict(
        "MacAddressInUse",
        format!("Unable to complete operation for network {network_id}. The mac address {mac} is in use."),
    ))
}

/// Create every port of a (bulk) request, all or nothing.
pub async fn create(app: &App, ctx: &OpContext, items: Vec<CreatePort>) -> HttpResult<Vec<Port>> {
    super::in_one_transaction(app, ctx, items, create_one).await
}

async fn create_one(app: &App, ctx: &OpContext, tx: &mut Tx, req: CreatePort) -> HttpResult<Port> {
    if !ctx.is_admin {
        authorize_create(ctx, tx, &req).await?;
    }
    let project_id = super::project_for(app, ctx, &req.project_id);
    let network_id = req.network_id.clone();
    let now = store::now_timestamp();
    let mut port = Port {
        id: uuid::Uuid::new_v4().to_string(),
        name: req.name,
        network_id: network_id.clone(),
        tenant_id: project_id.clone(),
        project_id,
        mac_address: String::new(),
        admin_state_up: req.admin_state_up,
        status: "DOWN".into(),
        device_id: req.device_id,
        device_owner: req.device_owner,
        fixed_ips: Vec::new(),
        port_security_enabled: true,
        qos_policy_id: None,
        qos_network_policy_id: None,
        security_groups: Vec::new(),
        vnic_type: req.vnic_type,
        profile: req.profile,
        host_id: req.host_id,
        vif_type: String::new(),
        vif_details: Map::new(),
        allowed_address_pairs: Vec::new(),
        extra_dhcp_opts: Vec::new(),
        description: req.description,
        ip_allocation: "immediate".into(),
        resource_request: None,
        dns_name: Some(req.dns_name.unwrap_or_default()),
        dns_assignment: None,
        tags: req.tags,
        created_at: now.clone(),
        updated_at: now,
        revision_number: 1,
    };
    may_use_network(ctx, tx, &network_id, &port.project_id, store::NetworkUse::Share).await?;
    let network = store::get_network(tx.conn(), &network_id).await?;
    // As ML2's port security driver: ports the network itself owns (`network:*`, such as DHCP
    // or router ports) are trusted and never filtered; others take the request's or the
    // network's setting.
    port.port_security_enabled = !port.device_owner.starts_with("network:")
        && req.port_security_enabled.unwrap_or(network.port_security_enabled);
    let segment = bind(app, tx, &mut port).await?;
    apply_dhcp_options(req.extra_dhcp_opts.as_deref(), &mut port)?;
    insert_with_mac(tx, &mut port, req.mac_address).await?;
    if segment.is_some() {
        store::set_port_segment(tx, &port.id, segment.as_deref()).await?;
    }
    if let Some(pairs) = &req.allowed_address_pairs {
        // Pairs without a MAC take the port's, known only now.
        apply_address_pairs(Some(pairs), &mut port)?;
        store::update_port_row(tx, &port, port.revision_number).await?;
    }
    let groups = match req.security_groups {
        Some(given) => given,
        // Neutron gives every port its project's `default` group, except network-owned ports
        // and ports without port security.
        None if port.port_security_enabled && !port.device_owner.starts_with("network:") => {
            vec![store::ensure_default_group(tx, &port.project_id).await?]
        }
        None => Vec::new(),
    };
    apply_security_groups(ctx, tx, &mut port, groups, GroupsFrom::Request).await?;
    let subnets = store::network_subnets(tx.conn(), &network_id).await?;
    port.fixed_ips = assign_fixed_ips(ctx, tx, &port, &subnets, req.fixed_ips).await?;
    store::insert_initial_tags(tx, "ports", &port.id, &port.tags).await?;
    store::store_port_body(tx, &port).await?;
    app.store.finish_port(&mut port);
    Ok(port)
}

/// `create_port` on the item with its network's keys (the network must be one the caller
/// sees, else `NetworkNotFound`); the security groups named must be ones it sees too.
async fn authorize_create(ctx: &OpContext, tx: &mut Tx, req: &CreatePort) -> HttpResult<()> {
    let mut target = ctx.create_target(&req.given)?;
    // A network that does not exist, or that the caller does not see, is not found (before
    // the policy, whose rules read the network's owner).
    match network_target(ctx, tx.conn(), &req.network_id).await? {
        Some(net) if ctx.may_see("network", &net) => add_network_keys(&mut target, &net),
        _ => return Err(HttpError(ApiError::not_found("network", &req.network_id))),
    }
    ctx.enforce("create_port", &attributes_of(&req.given), &Value::Object(target))?;
    refuse_router_owner(&req.device_owner, &req.device_id)?;
    groups_visible(ctx, tx, req.security_groups.as_deref().unwrap_or_default()).await
}

/// Whether the router or floating IP a router-owned port belongs to still exists (a port left
/// behind by one that is gone may be deleted, as Neutron allows).
async fn owner_exists(c: &mut store::Connection, port: &Port) -> HttpResult<bool> {
    let found = if port.device_owner == neutrino_domain::routers::DEVICE_OWNER_FLOATINGIP {
        store::get_floatingip(c, &port.device_id).await.map(drop)
    } else {
        store::get_router(c, &port.device_id).await.map(drop)
    };
    match found {
        Ok(()) => Ok(true),
        Err(store::StoreError::NotFound { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Only routers and floating IPs make their own ports (`add_router_interface`, gateways,
/// floating IPs): a port made or changed through the port API by anyone but an admin cannot
/// claim to be one, or a project could slip a leg of its own into another's router.
fn refuse_router_owner(device_owner: &str, device_id: &str) -> HttpResult<()> {
    if neutrino_domain::routers::is_router_owned(device_owner)
        || device_owner == neutrino_domain::routers::DEVICE_OWNER_AGENT_GW
    {
        return Err(HttpError(ApiError::conflict(
            "DeviceIDNotOwnedByTenant",
            format!(
                "The following device_id {device_id} is not owned by your tenant or matches another tenants router."
            ),
        )));
    }
    Ok(())
}

/// Security groups a request names must be ones the caller sees (else not found).
async fn groups_visible(ctx: &OpContext, tx: &mut Tx, groups: &[String]) -> HttpResult<()> {
    for group in groups {
        if store::get_group(tx.conn(), group).await.is_ok() {
            super::security_groups::visible_group(ctx, tx.conn(), group).await?;
        }
    }
    Ok(())
}

/// Insert the port with the given MAC, or a random one (drawing again on the rare clash).
async fn insert_with_mac(tx: &mut Tx, port: &mut Port, given: Option<String>) -> HttpResult<()> {
    let attempts = if given.is_some() { 1 } else { 16 };
    for _ in 0..attempts {
        port.mac_address = given.clone().unwrap_or_else(|| random_port_mac(&mut rand::thread_rng()));
        match store::insert_port(tx, port).await {
            Ok(true) => return Ok(()),
            Ok(false) => continue,
            Err(e) if e.is_foreign_key_violation() => {
                return Err(HttpError(ApiError::not_found("network", &port.network_id)))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(mac_in_use(&port.network_id, &port.mac_address))
}

/// Bind the port on its host: walk the mechanism drivers over the network's segments and the
/// host's agents. Returns the segment bound to (recorded once the port row exists).
async fn bind(app: &App, tx: &mut Tx, port: &mut Port) -> HttpResult<Option<String>> {
    if port.host_id.is_empty() {
        port.vif_type = VIF_TYPE_UNBOUND.to_string();
        port.vif_details = Map::new();
        return Ok(None);
    }
    let segments: Vec<SegmentView> =
        store::network_segments(tx.conn(), &port.network_id).await?.into_iter().map(SegmentView::from).collect();
    let agents: Vec<AgentView> = store::agents_on_host(tx.conn(), &port.host_id)
        .await?
        .into_iter()
        .map(|a| AgentView {
            alive: heartbeat_fresh(&a.heartbeat_at, app.config.agent_down_time),
            admin_state_up: a.admin_state_up,
            agent_type: a.agent_type,
            configurations: a.configurations,
        })
        .collect();
    let request = BindingRequest {
        port_id: &port.id,
        host_id: &port.host_id,
        network_id: &port.network_id,
        vnic_type: &port.vnic_type,
        segments: &segments,
        agents: &agents,
    };
    let outcome = bind_port(app.ml2.drivers(), &request);
    port.vif_type = outcome.vif_type().to_string();
    match outcome {
        BindingOutcome::Bound(b) => {
            tracing::debug!(port = %port.id, host = %port.host_id, driver = b.driver, segment = %b.segment_id, "port bound");
            port.vif_details = b.vif_details;
            Ok(Some(b.segment_id))
        }
        BindingOutcome::Failed { reasons } => {
            tracing::warn!(port = %port.id, host = %port.host_id, reasons = %reasons.join("; "), "binding failed");
            port.vif_details = Map::new();
            Ok(None)
        }
        BindingOutcome::Unbound => {
            port.vif_details = Map::new();
            Ok(None)
        }
    }
}

/// Whether a heartbeat stamped `at` (Neutron timestamp) is younger than `down_time` seconds.
pub(crate) fn heartbeat_fresh(at: &str, down_time: u64) -> bool {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    match time::PrimitiveDateTime::parse(at, &fmt) {
        Ok(t) => {
            let age = time::OffsetDateTime::now_utc() - t.assume_utc();
            age.whole_seconds() <= down_time as i64
        }
        Err(_) => false,
    }
}

/// The port as the policy sees it (with its network's keys, as the network is to the caller);
/// a 404 when the caller may not see it.
async fn visible(ctx: &OpContext, c: &mut store::Connection, port: &Port) -> HttpResult<Value> {
    let mut target = serde_json::to_value(port).unwrap_or_default();
    if ctx.is_admin {
        return Ok(target);
    }
    if let (Some(net), Value::Object(m)) = (network_target(ctx, c, &port.network_id).await?, &mut target) {
        add_network_keys(m, &net);
    }
    if !ctx.may_see("port", &target) {
        return Err(HttpError(ApiError::not_found("port", &port.id)));
    }
    Ok(target)
}

pub async fn show(app: &App, ctx: &OpContext, id: &str) -> HttpResult<Port> {
    let mut c = app.store.reader().await?;
    let mut port = store::get_port(&mut c, id).await?;
    visible(ctx, &mut c, &port).await?;
    app.store.finish_port(&mut port);
    Ok(port)
}

/// Ports as the database renders them (id and JSON body): the fast list, for replies with
/// every field.
pub async fn list_bodies(
    app: &App,
    ctx: &OpContext,
    filters: &[Filter],
    page: &Page,
) -> HttpResult<Vec<(String, String)>> {
    let mut c = app.store.reader().await?;
    Ok(store::list_ports_json(&mut c, filters, page, &ctx.visibility()).await?)
}

pub async fn list(app: &App, ctx: &OpContext, filters: &[Filter], page: &Page) -> HttpResult<Vec<Port>> {
    let mut c = app.store.reader().await?;
    let mut ports = store::list_ports(&mut c, filters, page, &ctx.visibility()).await?;
    ports.iter_mut().for_each(|p| app.store.finish_port(p));
    Ok(ports)
}

pub async fn update(app: &App, ctx: &OpContext, id: &str, req: UpdatePort) -> HttpResult<Port> {
    let mut tx = app.store.begin().await?;
    let mut port = store::get_port(tx.conn(), id).await?;
    let target = visible(ctx, tx.conn(), &port).await?;
    if !ctx.is_admin {
        ctx.enforce_update("port", &target, &req.given)?;
        groups_visible(ctx, &mut tx, req.security_groups.as_deref().unwrap_or_default()).await?;
        // A router's or floating IP's port is changed by its router or floating IP only (its
        // addresses may change within the subnets it is on, as Neutron lets owners do).
        let subnets: Vec<&str> = port.fixed_ips.iter().map(|f| f.subnet_id.as_str()).collect();
        let moves_subnets = req
            .fixed_ips
            .as_ref()
            .is_some_and(|ips| ips.iter().any(|ip| ip.subnet_id.as_deref().is_none_or(|s| !subnets.contains(&s))));
        let touches_owner = req.device_owner.is_some() || req.device_id.is_some() || moves_subnets;
        if touches_owner && neutrino_domain::routers::is_router_owned(&port.device_owner) {
            return Err(HttpError(ApiError::conflict(
                "L3PortInUse",
                format!(
                    "Port {id} has owner {} and therefore cannot be changed directly via the port API.",
                    port.device_owner
                ),
            )));
        }
        if let Some(owner) = &req.device_owner {
            refuse_router_owner(owner, req.device_id.as_deref().unwrap_or(&port.device_id))?;
        }
    }
    let expected = port.revision_number;
    store::check_revision(req.if_revision, expected)?;
    // A MAC change on a port the network owns is refused first, as Neutron's
    // `_check_mac_addr_update` (whose message names Python's `id` builtin, not the port).
    let owner = req.device_owner.clone().filter(|o| !o.is_empty()).unwrap_or_else(|| port.device_owner.clone());
    let changes_mac = match &req.mac_address {
        Some(MacRequest::Given(mac)) => *mac != port.mac_address,
        Some(MacRequest::Regenerate) => true,
        None => false,
    };
    if changes_mac && owner.starts_with("network:") {
        return Err(HttpError(ApiError::conflict(
            "UnsupportedPortDeviceOwner",
            format!(
                "Operation mac address update is not supported for device_owner {owner} on port <built-in function id>."
            ),
        )));
    }
    // As Neutron before any port update: the project's `default` group exists again.
    store::ensure_default_group(&mut tx, &port.project_id).await?;
    let rebind = req.rebinds();
    if let Some(v) = req.name {
        port.name = v;
    }
    if let Some(v) = req.description {
        port.description = v;
    }
    if let Some(v) = req.admin_state_up {
        port.admin_state_up = v;
    }
    if let Some(v) = req.device_id {
        port.device_id = v;
    }
    if let Some(v) = req.device_owner {
        port.device_owner = v;
    }
    if let Some(v) = req.vnic_type {
        port.vnic_type = v;
    }
    if let Some(v) = req.profile {
        port.profile = v;
    }
    if let Some(v) = req.port_security_enabled {
        port.port_security_enabled = v;
    }
    if let Some(name) = req.dns_name {
        port.dns_name = Some(name);
    }
    // As ML2 checks them when port security goes off: address pairs first, then groups.
    apply_address_pairs(req.allowed_address_pairs.as_ref(), &mut port)?;
    let (groups, from) = match req.security_groups {
        Some(given) => (given, GroupsFrom::Request),
        None => (port.security_groups.clone(), GroupsFrom::Kept),
    };
    apply_security_groups(ctx, &mut tx, &mut port, groups, from).await?;
    apply_dhcp_options(req.extra_dhcp_opts.as_deref(), &mut port)?;
    let new_mac = req.mac_address.map(|m| match m {
        MacRequest::Given(mac) => mac,
        MacRequest::Regenerate => random_port_mac(&mut rand::thread_rng()),
    });
    let mac_changed = new_mac.as_ref().is_some_and(|m| *m != port.mac_address);
    if mac_changed {
        if port.vif_type != "unbound" && port.vif_type != "binding_failed" {
            return Err(HttpError(ApiError::conflict(
                "PortBound",
                format!("Unable to complete operation on port {id}, port is already bound, port type: {}, old_mac {}, new_mac {}.",
                    port.vif_type, port.mac_address, new_mac.clone().unwrap_or_default()),
            )));
        }
        port.mac_address = new_mac.unwrap_or_default();
    }
    if let Some(host) = req.host_id {
        if host != port.host_id {
            port.host_id = host;
            port.status = "DOWN".into();
        }
    }
    if rebind {
        let segment = bind(app, &mut tx, &mut port).await?;
        store::set_port_segment(&mut tx, id, segment.as_deref()).await?;
    }
    port.updated_at = store::now_timestamp();
    port.revision_number = expected + 1;
    match store::update_port_row(&mut tx, &port, expected).await {
        Err(e) if e.is_unique_violation() => return Err(mac_in_use(&port.network_id, &port.mac_address)),
        other => other?,
    }
    if req.fixed_ips.is_some() || mac_changed {
        let subnets = store::network_subnets(tx.conn(), &port.network_id).await?;
        // A new MAC moves EUI-64 addresses; every other address is kept as it is.
        let requested = req.fixed_ips.unwrap_or_else(|| {
            port.fixed_ips
                .iter()
                .map(|f| {
                    let auto =
                        subnets.iter().any(|s| s.id == f.subnet_id && is_auto_address(s.ipv6_address_mode.as_deref()));
                    FixedIpRequest {
                        subnet_id: Some(f.subnet_id.clone()),
                        ip_address: (!auto).then(|| f.ip_address.clone()),
                    }
                })
                .collect()
        });
        store::release_port_ips(&mut tx, id).await?;
        port.fixed_ips = assign_fixed_ips(ctx, &mut tx, &port, &subnets, Some(requested)).await?;
        // As Neutron's `prevent_internal_ip_change_for_fip`: a fixed IP with a floating IP stays.
        for fip in store::floatingips_where(tx.conn(), "fixed_port_id", id).await? {
            let fixed = store::get_floatingip(tx.conn(), &fip).await?.fixed_ip_address;
            if fixed.is_some_and(|ip| !port.fixed_ips.iter().any(|f| f.ip_address == ip)) {
                return Err(HttpError(ApiError::bad_request(format!(
                    "Bad port request: Cannot update the fixed_ips of the port {id}, because its original fixed_ip \
                     has been associated to a floating ip."
                ))));
            }
        }
    }
    store::store_port_body(&mut tx, &port).await?;
    tx.commit().await?;
    app.store.finish_port(&mut port);
    Ok(port)
}

pub async fn delete(app: &App, ctx: &OpContext, id: &str) -> HttpResult<()> {
    let mut tx = app.store.begin().await?;
    let port = store::get_port(tx.conn(), id).await?;
    if !ctx.is_admin {
        let target = visible(ctx, tx.conn(), &port).await?;
        ctx.enforce("delete_port", &[], &target)?;
    }
    if neutrino_domain::routers::is_router_owned(&port.device_owner) && owner_exists(tx.conn(), &port).await? {
        return Err(HttpError(ApiError::conflict(
            "L3PortInUse",
            format!(
                "Port {id} has owner {} and therefore cannot be deleted directly via the port API.",
                port.device_owner
            ),
        )));
    }
    let dhcp_port = port.device_owner == neutrino_domain::dhcp::DEVICE_OWNER_DHCP
        && port.device_id == super::dhcp_ports::dhcp_device_id(&port.network_id);
    if dhcp_port {
        // The network first, as the subnet operations that change this port take it.
        store::lock_network_for_use(&mut tx, &port.network_id, store::NetworkUse::Revise).await?;
    }
    // As Neutron's L3 plugin: the port's floating IPs are dissociated, its forwardings go.
    store::dissociate_port_floatingips(&mut tx, id).await?;
    store::delete_port_forwardings_of(&mut tx, id).await?;
    store::delete_port(&mut tx, id).await?;
    if dhcp_port {
        // The network's DHCP port, deleted by hand: made again at once (as Neutron's DHCP
        // agent does), since every host answers its network's DHCP with it.
        super::dhcp_ports::reconcile(app, ctx, &mut tx, &port.network_id).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A port the server makes itself for a router or a floating IP (`device_owner` `network:*`):
/// on `network_id`, for `project_id`, with the given addresses (or the automatic choice).
pub(crate) fn owned_port(
    network_id: &str,
    project_id: &str,
    device_owner: &str,
    device_id: &str,
    fixed_ips: Option<Vec<FixedIpRequest>>,
) -> CreatePort {
    CreatePort {
        given: Map::new(),
        project_id: Some(project_id.to_string()),
        network_id: network_id.to_string(),
        name: String::new(),
        description: String::new(),
        admin_state_up: true,
        device_id: device_id.to_string(),
        device_owner: device_owner.to_string(),
        mac_address: None,
        fixed_ips,
        port_security_enabled: None,
        security_groups: None,
        vnic_type: "normal".into(),
        profile: Map::new(),
        host_id: String::new(),
        allowed_address_pairs: None,
        extra_dhcp_opts: None,
        dns_name: None,
        tags: Vec::new(),
    }
}

/// Create a port the server owns (see [`owned_port`]) inside the caller's transaction, with
/// the server's own authority: the operation that asks for it has authorized the caller.
pub(crate) async fn create_owned(app: &App, ctx: &OpContext, tx: &mut Tx, req: CreatePort) -> HttpResult<Port> {
    let service = OpContext {
        creds: neutrino_domain::policy::Credentials {
            user_id: None,
            project_id: ctx.project_id().map(str::to_string),
            roles: vec!["admin".into()],
        },
        is_admin: true,
        policy: ctx.policy.clone(),
    };
    create_one(app, &service, tx, req).await
}

/// Give a port the server owns exactly `requested` addresses, inside the caller's transaction
/// (an address named stays as it is; one asked by subnet only is allocated).
pub(crate) async fn set_owned_addresses(
    app: &App,
    tx: &mut Tx,
    port_id: &str,
    requested: Vec<FixedIpRequest>,
) -> HttpResult<Port> {
    let service = super::snat_gateways::service_context(app);
    let mut port = store::get_port(tx.conn(), port_id).await?;
    let subnets = store::network_subnets(tx.conn(), &port.network_id).await?;
    store::release_port_ips(tx, port_id).await?;
    port.fixed_ips = assign_fixed_ips(&service, tx, &port, &subnets, Some(requested)).await?;
    let expected = port.revision_number;
    port.revision_number = expected + 1;
    port.updated_at = store::now_timestamp();
    store::update_port_row(tx, &port, expected).await?;
    store::store_port_body(tx, &port).await?;
    app.store.finish_port(&mut port);
    Ok(port)
}

/// Create a port the server owns that is up at once: one no agent wires on its own (every
/// host serves it), such as a router interface or the DHCP port.
pub(crate) async fn create_owned_active(app: &App, ctx: &OpContext, tx: &mut Tx, req: CreatePort) -> HttpResult<Port> {
    let mut port = create_owned(app, ctx, tx, req).await?;
    let expected = port.revision_number;
    port.status = "ACTIVE".into();
    port.revision_number = expected + 1;
    store::update_port_row(tx, &port, expected).await?;
    store::store_port_body(tx, &port).await?;
    Ok(port)
}
