//! Centralized SNAT (Neutron's `dvr_snat`): the gateway hosts that SNAT a router's VMs without
//! a floating IP. A router with a gateway that SNATs gets, on each of its best ranked gateway
//! hosts (L3 agents with `agent_mode = dvr_snat`, at most `max_l3_agents_per_router`), one
//! `network:router_centralized_snat` port bound there, on the IPv4 subnet of its interfaces
//! with the lowest id. The hosts that run the router route to the first of them whose host is
//! alive (they probe it), and that host holds the gateway's address: failover is a decision
//! of the data plane, no server is asked.
//!
//! [`schedule`] makes a router's ports what its gateway, its interfaces and the gateway hosts
//! ask; every operation that changes one of them calls it under the router's lock, in its
//! own transaction.

use super::ports::{create_owned, owned_port, FixedIpRequest};
use super::OpContext;
use crate::error::HttpResult;
use crate::App;
use neutrino_domain::routers::{snat_hosts, DEVICE_OWNER_ROUTER_SNAT};
use neutrino_store::{self as store, Tx};

/// The agent mode of gateway hosts.
pub const AGENT_MODE_DVR_SNAT: &str = "dvr_snat";

/// Make the router's centralized SNAT ports what it needs now. Gateway hosts whose agent is
/// not alive get no new routers (they keep those they have: failing over is the data plane's).
/// A port that cannot be made (its subnet is full) is logged and left out, as the ports are
/// the router's own business and no request should fail for them.
pub(crate) async fn schedule(app: &App, ctx: &OpContext, tx: &mut Tx, router_id: &str) -> HttpResult<()> {
    store::lock_gateway_hosts(tx, false).await?;
    let mut existing = Vec::new();
    for port_id in store::ports_of_device(tx.conn(), router_id, DEVICE_OWNER_ROUTER_SNAT).await? {
        existing.push(store::get_port(tx.conn(), &port_id).await?);
    }
    let current_subnet = existing.iter().find_map(|p| {
        let v4 = p.fixed_ips.iter().find(|f| f.ip_address.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_ipv4()));
        v4.map(|f| f.subnet_id.clone())
    });
    let wanted = wanted_subnets(tx, router_id, current_subnet.as_deref()).await?;
    let hosts = match &wanted {
        Some(_) => {
            let agents = store::l3_agents_in_mode(tx.conn(), AGENT_MODE_DVR_SNAT).await?;
            let candidates = agents.iter().filter(|a| {
                crate::ports_alive(&a.heartbeat_at, app.config.agent_down_time)
                    || existing.iter().any(|p| p.host_id == a.host)
            });
            snat_hosts(router_id, candidates.map(|a| a.host.as_str()), app.config.max_l3_agents_per_router)
        }
        None => Vec::new(),
    };
    let mut kept = Vec::new();
    for port in &existing {
        let on_subnets = |(_, subnets): &(String, Vec<String>)| {
            let mut have: Vec<&String> = port.fixed_ips.iter().map(|f| &f.subnet_id).collect();
            have.sort();
            have == subnets.iter().collect::<Vec<_>>()
        };
        if hosts.contains(&port.host_id) && wanted.as_ref().is_some_and(on_subnets) && !kept.contains(&port.host_id) {
            kept.push(port.host_id.clone());
        } else {
            store::delete_port(tx, &port.id).await?;
        }
    }
    let Some((network_id, subnets)) = wanted else { return Ok(()) };
    for host in hosts.iter().filter(|h| !kept.contains(h)) {
        let ips = subnets.iter().map(|s| FixedIpRequest { subnet_id: Some(s.clone()), ip_address: None }).collect();
        let mut req = owned_port(&network_id, "", DEVICE_OWNER_ROUTER_SNAT, router_id, Some(ips));
        req.host_id = host.clone();
        // A router's leg, not a VM: no security groups (as Neutron's router ports).
        req.port_security_enabled = Some(false);
        match create_owned(app, ctx, tx, req).await {
            Ok(_) => {}
            Err(e) if e.0.kind == "IpAddressGenerationFailure" => {
                tracing::warn!(router = %router_id, %host, error = ?e.0, "no centralized SNAT port on this gateway host");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Schedule every router that has a gateway or centralized SNAT ports (a gateway host came,
/// went or changed its mode), each in a transaction of its own under its lock; a router that
/// cannot be scheduled (its subnet is full, say) is logged and left as it was.
pub(crate) async fn schedule_all(app: &App, ctx: &OpContext) -> HttpResult<()> {
    let routers = {
        let mut c = app.store.reader().await?;
        store::routers_with_gateway_or_snat_ports(&mut c).await?
    };
    for router_id in routers {
        let result: HttpResult<()> = async {
            let mut tx = app.store.begin().await?;
            store::lock_router(&mut tx, &router_id).await?;
            schedule(app, ctx, &mut tx, &router_id).await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(router = %router_id, error = ?e.0, "cannot schedule the router's centralized SNAT");
        }
    }
    Ok(())
}

/// The server's own authority, for scheduling that no caller asked for (an agent starting).
pub(crate) fn service_context(app: &App) -> OpContext {
    OpContext {
        creds: neutrino_domain::policy::Credentials { user_id: None, project_id: None, roles: vec!["admin".into()] },
        is_admin: true,
        policy: app.policy.clone(),
    }
}

/// The network and subnets of the router's SNAT ports (sorted): `current` (where they are)
/// while it is one of the router's interfaces' IPv4 subnets, else the one with the lowest id;
/// and, for IPv6 through the gateway host, the IPv6 interface subnet of that network with the
/// lowest id. None unless the router has a gateway that SNATs.
async fn wanted_subnets(
    tx: &mut Tx,
    router_id: &str,
    current: Option<&str>,
) -> HttpResult<Option<(String, Vec<String>)>> {
    let (gateway, enable_snat) = store::router_gateway(tx.conn(), router_id).await?;
    if gateway.is_none() || !enable_snat {
        return Ok(None);
    }
    // (network, subnet, IPv4) of every interface address.
    let mut attached: Vec<(String, String, bool)> = Vec::new();
    for port_id in store::router_interface_ports(tx.conn(), router_id).await? {
        let port = store::get_port(tx.conn(), &port_id).await?;
        for ip in &port.fixed_ips {
            let Ok(address) = ip.ip_address.parse::<std::net::IpAddr>() else { continue };
            attached.push((port.network_id.clone(), ip.subnet_id.clone(), address.is_ipv4()));
        }
    }
    let v4 = attached.iter().filter(|(_, _, v4)| *v4);
    let chosen = match v4.clone().find(|(_, s, _)| Some(s.as_str()) == current) {
        Some(c) => Some(c),
        None => v4.min_by(|a, b| a.1.cmp(&b.1)),
    };
    let Some((network, subnet, _)) = chosen else { return Ok(None) };
    let mut subnets = vec![subnet.clone()];
    let v6 = attached.iter().filter(|(n, _, v4)| !*v4 && n == network).map(|(_, s, _)| s).min();
    subnets.extend(v6.cloned());
    subnets.sort();
    Ok(Some((network.clone(), subnets)))
}
