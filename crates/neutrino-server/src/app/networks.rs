//! Network operations: create (one or bulk), show, list, update, delete.

use super::authorize::network_target;
use super::OpContext;
use crate::error::{HttpError, HttpResult};
use crate::App;
use neutrino_api::resources::Network;
use neutrino_api::ApiError;
use neutrino_domain::binding::SegmentView;
use neutrino_domain::segments::{mtu_for_segment, plan_segments, ProviderRequest};
use neutrino_store::{self as store, Filter, Page, Tx};
use serde_json::{Map, Value};

/// One network to create, as parsed from its body.
pub struct CreateNetwork {
    /// The body's attributes as given: the policy judges them.
    pub given: Map<String, Value>,
    /// `project_id`/`tenant_id` when the body names one.
    pub project_id: Option<String>,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub shared: bool,
    pub port_security_enabled: bool,
    pub router_external: bool,
    pub is_default: bool,
    pub mtu: Option<u32>,
    /// `provider:*` (one segment) or `segments`; none for a tenant network.
    pub segments: Vec<ProviderRequest>,
    /// Sorted, without repeats.
    pub availability_zone_hints: Vec<String>,
    /// Validated (with DNS integration; without it only the empty default is accepted).
    pub dns_domain: Option<String>,
    pub tags: Vec<String>,
}

impl super::CreateItem for CreateNetwork {
    fn given(&self) -> &Map<String, Value> {
        &self.given
    }
}

/// Changes to a network, as parsed from its body.
pub struct UpdateNetwork {
    /// The body's attributes as given: the policy judges them.
    pub given: Map<String, Value>,
    pub patch: store::NetworkPatch,
    pub is_default: Option<bool>,
    /// `provider:*` and `segments` as given: accepted only when they repeat the network's.
    pub provider: Vec<(String, Value)>,
    /// `If-Match: revision_number=N`.
    pub if_revision: Option<u64>,
}

/// Create every network of a (bulk) request, all or nothing.
pub async fn create(app: &App, ctx: &OpContext, items: Vec<CreateNetwork>) -> HttpResult<Vec<Network>> {
    super::in_one_transaction(app, ctx, items, create_one).await
}

async fn create_one(app: &App, ctx: &OpContext, tx: &mut Tx, req: CreateNetwork) -> HttpResult<Network> {
    if !ctx.is_admin {
        let target = ctx.create_target(&req.given)?;
        ctx.enforce("create_network", &super::authorize::attributes_of(&req.given), &Value::Object(target))?;
    }
    let project_id = super::project_for(app, ctx, &req.project_id);
    let plans = plan_segments(&app.config.type_drivers, &req.segments)?;
    let now = store::now_timestamp();
    let mut net = Network {
        id: uuid::Uuid::new_v4().to_string(),
        name: req.name,
        tenant_id: project_id.clone(),
        project_id,
        admin_state_up: req.admin_state_up,
        mtu: req.mtu.unwrap_or(app.config.type_drivers.global_physnet_mtu),
        status: "ACTIVE".into(),
        subnets: Vec::new(),
        shared: req.shared,
        port_security_enabled: req.port_security_enabled,
        qos_policy_id: None,
        router_external: req.router_external,
        provider: None,
        segments: None,
        is_default: Some(false),
        availability_zone_hints: known_zones(tx, req.availability_zone_hints).await?,
        availability_zones: Vec::new(),
        ipv4_address_scope: None,
        ipv6_address_scope: None,
        description: req.description,
        l2_adjacency: true,
        dns_domain: Some(req.dns_domain.unwrap_or_default()),
        tags: req.tags,
        created_at: now.clone(),
        updated_at: now,
        revision_number: 1,
    };
    // Neutron makes sure the project has its `default` security group whenever one of its
    // networks or ports is created or updated.
    store::ensure_default_group(tx, &net.project_id).await?;
    store::insert_network(tx, &mut net, &plans).await?;
    let segments: Vec<SegmentView> =
        store::network_segments(tx.conn(), &net.id).await?.into_iter().map(SegmentView::from).collect();
    app.ml2.network_precommit(&segments)?;
    let max = max_mtu(app, tx, &net.id).await?;
    net.mtu = neutrino_domain::mtu::network_mtu(req.mtu, max)?;
    store::set_network_mtu(tx, &net.id, net.mtu).await?;
    if net.shared {
        store::set_network_shared(tx, &net.id, &net.project_id, true).await?;
    }
    if net.router_external {
        store::set_network_external(tx, &net.id, &net.project_id, true).await?;
        if req.is_default {
            store::set_network_default(tx, &net.id, true).await?;
            net.is_default = Some(true);
        }
    }
    app.store.finish_network(&mut net);
    store::insert_initial_tags(tx, "networks", &net.id, &net.tags).await?;
    Ok(net)
}

/// One network, as the caller sees it (a 404 when it may not see it).
pub async fn show(app: &App, ctx: &OpContext, id: &str) -> HttpResult<Network> {
    let mut c = app.store.reader().await?;
    let mut net = store::get_network(&mut c, id).await?;
    if !ctx.is_admin {
        // Judged as the network is to the caller (shared with it, external to it).
        match network_target(ctx, &mut c, id).await? {
            Some(target) if ctx.may_see("network", &target) => {}
            _ => return Err(HttpError(ApiError::not_found("network", id))),
        }
    }
    app.store.finish_network(&mut net);
    shared_with_caller(ctx, &mut c, std::slice::from_mut(&mut net)).await?;
    Ok(net)
}

/// The networks the caller may see that match `filters`, one page of them.
pub async fn list(app: &App, ctx: &OpContext, filters: &[Filter], page: &Page) -> HttpResult<Vec<Network>> {
    let mut c = app.store.reader().await?;
    let visibility = ctx.visibility();
    let mut nets = store::list_networks(&mut c, filters, page, &visibility).await?;
    nets.iter_mut().for_each(|n| app.store.finish_network(n));
    shared_with_caller(ctx, &mut c, &mut nets).await?;
    Ok(nets)
}

/// Change a network: the caller must see it (else a 404) and may change what it asks to.
pub async fn update(app: &App, ctx: &OpContext, id: &str, req: UpdateNetwork) -> HttpResult<Network> {
    let mut tx = app.store.begin().await?;
    authorize(ctx, &mut tx, id, Action::Update(&req.given)).await?;
    let mut patch = req.patch;
    refuse_provider_changes(&mut tx, id, &req.provider).await?;
    if let Some(mtu) = patch.mtu {
        store::get_network(tx.conn(), id).await?;
        let mtu = neutrino_domain::mtu::network_mtu(Some(mtu), max_mtu(app, &mut tx, id).await?)?;
        let versions: Vec<u8> = store::network_subnets(tx.conn(), id).await?.iter().map(|s| s.ip_version).collect();
        neutrino_domain::mtu::check_subnets_fit(id, mtu, &versions)?;
        patch.mtu = Some(mtu);
    }
    let net = store::update_network(&mut tx, id, &patch, req.if_revision).await?;
    if let Some(shared) = patch.shared {
        store::set_network_shared(&mut tx, id, &net.project_id, shared).await?;
    }
    if let Some(external) = patch.router_external {
        store::set_network_external(&mut tx, id, &net.project_id, external).await?;
    }
    if let Some(is_default) = req.is_default {
        store::set_network_default(&mut tx, id, is_default).await?;
    }
    let mut net = if patch.router_external.is_some() || req.is_default.is_some() {
        store::get_network(tx.conn(), id).await?
    } else {
        net
    };
    tx.commit().await?;
    app.store.finish_network(&mut net);
    Ok(net)
}

/// Delete a network without ports (its subnets go with it).
pub async fn delete(app: &App, ctx: &OpContext, id: &str) -> HttpResult<()> {
    let mut tx = app.store.begin().await?;
    authorize(ctx, &mut tx, id, Action::Delete).await?;
    let in_use = |id: &str, detail: &str| {
        HttpError(ApiError::conflict("NetworkInUse", format!("Unable to complete operation on network {id}.{detail}")))
    };
    match store::delete_network(&mut tx, id).await {
        Ok(()) => {}
        // A port was created on the network while we deleted it: the foreign key refused.
        Err(e) if e.is_foreign_key_violation() => {
            return Err(in_use(id, " There are one or more ports still in use on the network."))
        }
        Err(e) => return Err(e.into()),
    }
    tx.commit().await.map_err(|e| if e.is_foreign_key_violation() { in_use(id, "") } else { e.into() })
}

enum Action<'a> {
    Update(&'a Map<String, Value>),
    Delete,
}

/// The caller's right to change network `id`, judged on the network as this transaction sees
/// it: one it may not see is not found (whatever the method), then the action's rules apply.
/// Admins pass (every default rule admits them).
async fn authorize(ctx: &OpContext, tx: &mut Tx, id: &str, action: Action<'_>) -> HttpResult<()> {
    if ctx.is_admin {
        return Ok(());
    }
    let target = match network_target(ctx, tx.conn(), id).await? {
        Some(t) if ctx.may_see("network", &t) => t,
        _ => return Err(HttpError(ApiError::not_found("network", id))),
    };
    match action {
        Action::Update(changes) => ctx.enforce_update("network", &target, changes),
        Action::Delete => ctx.enforce("delete_network", &[], &target),
    }
}

/// `shared` as the caller sees it: also true for networks shared with the caller's project
/// alone (an RBAC policy naming it).
async fn shared_with_caller(ctx: &OpContext, c: &mut store::Connection, nets: &mut [Network]) -> HttpResult<()> {
    let Some(project) = ctx.project_id() else { return Ok(()) };
    let candidates: Vec<String> =
        nets.iter().filter(|n| !n.shared && n.project_id != project).map(|n| n.id.clone()).collect();
    if candidates.is_empty() {
        return Ok(());
    }
    let shared = store::networks_shared_with(c, project, &candidates).await?;
    for n in nets.iter_mut().filter(|n| shared.contains(&n.id)) {
        n.shared = true;
    }
    Ok(())
}

/// `availability_zone_hints`: each must be the zone of a registered agent.
async fn known_zones(tx: &mut Tx, hints: Vec<String>) -> HttpResult<Vec<String>> {
    if hints.is_empty() {
        return Ok(hints);
    }
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

/// Provider attributes in an update: as ML2 does, accepted when they repeat what the network has
/// (clients send whole objects back), refused when they would change it (Neutrino does not
/// move networks between segments).
async fn refuse_provider_changes(tx: &mut Tx, id: &str, given: &[(String, Value)]) -> HttpResult<()> {
    if given.is_empty() {
        return Ok(());
    }
    let current = serde_json::to_value(store::get_network(tx.conn(), id).await?).unwrap_or_default();
    for (attr, wanted) in given {
        let same = match (wanted, current.get(attr)) {
            (Value::Null, None) => true,
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
