//! The network's DHCP port (`network:dhcp`), as Neutron shows it: one per network with
//! DHCP-enabled subnets, holding an address on each (the first free pool address). Every
//! host's agent answers DHCP, metadata and DNS with that address and MAC, locally.
//!
//! [`reconcile`] makes the port what the network's subnets ask; the subnet operations call it
//! in their transaction.

use super::ports::{create_owned_active, owned_port, pools_of, set_owned_addresses, FixedIpRequest};
use super::OpContext;
use crate::error::HttpResult;
use crate::App;
use neutrino_api::resources::Subnet;
use neutrino_domain::dhcp::DEVICE_OWNER_DHCP;
use neutrino_domain::ipam::{first_free, to_u128};
use neutrino_domain::subnet::is_auto_address;
use neutrino_store::{self as store, Tx};
use std::net::IpAddr;

/// The DHCP port's `device_id` on a network.
pub fn dhcp_device_id(network_id: &str) -> String {
    format!("dhcp-{network_id}")
}

/// Create, change or delete the network's DHCP port to match its DHCP-enabled subnets. A
/// subnet without a free address is logged and left out: no request fails for the port
/// (it is judged before anything is written, so nothing is left half-done).
pub(crate) async fn reconcile(app: &App, ctx: &OpContext, tx: &mut Tx, network_id: &str) -> HttpResult<()> {
    // Two subnet changes of one network take turns here, so they make one DHCP port.
    store::lock_network_for_use(tx, network_id, store::NetworkUse::Revise).await?;
    let subnets = store::network_subnets(tx.conn(), network_id).await?;
    let wanted: Vec<&Subnet> = subnets.iter().filter(|s| s.enable_dhcp).collect();
    let device_id = dhcp_device_id(network_id);
    let existing = store::ports_of_device(tx.conn(), &device_id, DEVICE_OWNER_DHCP).await?;
    let mut current = None;
    for id in existing {
        let port = store::get_port(tx.conn(), &id).await?;
        if current.is_none() && !wanted.is_empty() {
            current = Some(port);
        } else {
            store::delete_port(tx, &port.id).await?;
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let mut requested: Vec<FixedIpRequest> = Vec::new();
    for subnet in &wanted {
        let kept = current.as_ref().and_then(|p| p.fixed_ips.iter().find(|f| f.subnet_id == subnet.id));
        let ip_address = match kept {
            Some(f) => Some(f.ip_address.clone()),
            None if is_auto_address(subnet.ipv6_address_mode.as_deref()) => None,
            None => match first_pool_address(tx, subnet).await? {
                Some(ip) => Some(ip),
                None => {
                    tracing::warn!(network = %network_id, subnet = %subnet.id, "the DHCP port gets no address: the pools are full");
                    continue;
                }
            },
        };
        requested.push(FixedIpRequest { subnet_id: Some(subnet.id.clone()), ip_address });
    }
    match &current {
        Some(port) => {
            let mut have: Vec<&str> = port.fixed_ips.iter().map(|f| f.subnet_id.as_str()).collect();
            let mut want: Vec<&str> = requested.iter().filter_map(|r| r.subnet_id.as_deref()).collect();
            have.sort();
            want.sort();
            if have != want {
                set_owned_addresses(app, tx, &port.id, requested).await?;
            }
        }
        None => {
            let network = store::get_network(tx.conn(), network_id).await?;
            let req = owned_port(network_id, &network.project_id, DEVICE_OWNER_DHCP, &device_id, Some(requested));
            create_owned_active(app, ctx, tx, req).await?;
        }
    }
    Ok(())
}

/// The lowest free address of the subnet's pools (None when they are full).
async fn first_pool_address(tx: &mut Tx, subnet: &Subnet) -> HttpResult<Option<String>> {
    let mut taken: Vec<IpAddr> = store::network_allocations(tx.conn(), &subnet.network_id)
        .await?
        .into_iter()
        .filter(|(s, _)| *s == subnet.id)
        .filter_map(|(_, ip)| ip.parse().ok())
        .collect();
    taken.sort_by_key(|ip| to_u128(*ip));
    Ok(first_free(&pools_of(subnet), &taken).map(|ip| ip.to_string()))
}

/// Make the DHCP port of every network that has DHCP-enabled subnets but none (a database
/// from before DHCP ports), each in a transaction of its own; one that fails is logged.
pub(crate) async fn reconcile_all(app: &App, ctx: &OpContext) -> HttpResult<()> {
    let networks = {
        let mut c = app.store.reader().await?;
        store::networks_without_dhcp_port(&mut c).await?
    };
    for network_id in networks {
        let result: HttpResult<()> = async {
            let mut tx = app.store.begin().await?;
            reconcile(app, ctx, &mut tx, &network_id).await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => tracing::info!(network = %network_id, "made the network's DHCP port"),
            Err(e) => tracing::warn!(network = %network_id, error = ?e.0, "cannot make the network's DHCP port"),
        }
    }
    Ok(())
}
