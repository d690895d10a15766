//! Agent operations: the agents API (show, update, delete, list), the availability zones
//! they make, and the agents' own calls (registration and heartbeat, port status reports).

use super::authorize::{authorize_item, ItemAction};
use super::OpContext;
use crate::error::HttpResult;
use crate::App;
use neutrino_api::agent::{AgentRegistration, PortStatusReport};
use neutrino_store::{self as store, AgentRecord};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Changes to an agent (`None`: unchanged).
pub struct UpdateAgent {
    pub given: Map<String, Value>,
    pub admin_state_up: Option<bool>,
    pub description: Option<Option<String>>,
}

/// Every registered agent (lists of them are admin-only, answered empty before this runs).
pub async fn list(app: &App) -> HttpResult<Vec<AgentRecord>> {
    let mut c = app.store.reader().await?;
    Ok(store::list_agents(&mut c).await?)
}

pub async fn show(app: &App, ctx: &OpContext, id: &str) -> HttpResult<AgentRecord> {
    let mut c = app.store.reader().await?;
    authorize_item(ctx, &mut c, "agent", id, ItemAction::Read).await?;
    Ok(store::get_agent(&mut c, id).await?)
}

/// `admin_state_up` (an agent set down gets no new bindings) and `description`.
pub async fn update(app: &App, ctx: &OpContext, id: &str, req: UpdateAgent) -> HttpResult<AgentRecord> {
    let mut tx = app.store.begin().await?;
    authorize_item(ctx, tx.conn(), "agent", id, ItemAction::Update(&req.given)).await?;
    store::lock_gateway_hosts(&mut tx, true).await?;
    let mut a = store::get_agent(tx.conn(), id).await?;
    if let Some(up) = req.admin_state_up {
        a.admin_state_up = up;
    }
    if let Some(d) = req.description {
        a.description = d;
    }
    store::update_agent(&mut tx, &a).await?;
    tx.commit().await?;
    if is_gateway_host(&a) {
        super::snat_gateways::schedule_all(app, ctx).await?;
    }
    Ok(a)
}

/// A gateway host's L3 agent (`dvr_snat`): when it comes, goes or changes, routers' centralized
/// SNAT moves.
fn is_gateway_host(a: &AgentRecord) -> bool {
    a.agent_type == neutrino_api::agent::AGENT_TYPE_L3
        && a.configurations.agent_mode.as_deref() == Some(super::snat_gateways::AGENT_MODE_DVR_SNAT)
}

pub async fn delete(app: &App, ctx: &OpContext, id: &str) -> HttpResult<()> {
    let mut tx = app.store.begin().await?;
    authorize_item(ctx, tx.conn(), "agent", id, ItemAction::Delete).await?;
    store::lock_gateway_hosts(&mut tx, true).await?;
    let agent = store::get_agent(tx.conn(), id).await?;
    store::delete_agent(&mut tx, id).await?;
    tx.commit().await?;
    if is_gateway_host(&agent) {
        super::snat_gateways::schedule_all(app, ctx).await?;
    }
    Ok(())
}

/// The zones of the registered agents, each `true` while an agent in it is alive.
pub async fn zones(app: &App) -> HttpResult<BTreeMap<String, bool>> {
    let mut c = app.store.reader().await?;
    let mut zones = BTreeMap::new();
    for a in store::list_agents(&mut c).await? {
        let alive = crate::ports_alive(&a.heartbeat_at, app.config.agent_down_time);
        *zones.entry(a.availability_zone.clone()).or_default() |= alive;
    }
    Ok(zones)
}

/// An agent's registration or heartbeat (`starting`: it has just started).
pub async fn register(app: &App, reg: &AgentRegistration, starting: bool) -> HttpResult<AgentRecord> {
    let l3 = reg.agent_type == neutrino_api::agent::AGENT_TYPE_L3;
    let mut tx = app.store.begin().await?;
    let gateway_mode = reg.configurations.agent_mode.as_deref() == Some(super::snat_gateways::AGENT_MODE_DVR_SNAT);
    if l3 && (starting || gateway_mode) {
        store::lock_gateway_hosts(&mut tx, true).await?;
    }
    let previous = if l3 { store::agent_on_host(tx.conn(), &reg.host, &reg.agent_type).await? } else { None };
    let record = store::register_agent(&mut tx, reg, &uuid::Uuid::new_v4().to_string(), starting).await?;
    // A gateway host's L3 agent that starts, appears (again) or changes its mode, or one that
    // held centralized SNAT ports: routers move to or from it. Other hosts cost nothing here.
    let changed = previous.as_ref().is_none_or(|p| p.configurations.agent_mode != record.configurations.agent_mode);
    let was_gateway = previous.as_ref().is_some_and(is_gateway_host);
    let reschedule = l3
        && (starting || changed)
        && (is_gateway_host(&record) || was_gateway || store::host_has_snat_ports(tx.conn(), &record.host).await?);
    tx.commit().await?;
    if reschedule {
        super::snat_gateways::schedule_all(app, &super::snat_gateways::service_context(app)).await?;
    }
    Ok(record)
}

/// The statuses a host reports for its ports; how many changed.
pub async fn port_status(app: &App, report: &PortStatusReport) -> HttpResult<u64> {
    let mut tx = app.store.begin().await?;
    let changed = store::set_port_status(&mut tx, &report.host, &report.ports).await?;
    tx.commit().await?;
    Ok(changed)
}
