//! The L2 reconciler: desired state in, kernel diff out. Level-triggered and idempotent: it
//! reads what the kernel has, changes only what differs, and can be interrupted or restarted
//! at any point without disturbing what is already right.
//!
//! A full pass reads the whole kernel state (links, FDB, neighbours). After that, a pass
//! looks only at the networks a change concerns (the state's difference from the last pass,
//! and the link events): their bridge, VXLAN device and uplink by name, the taps of the ports
//! that changed, and the entries of their VXLAN device. One port change on a host with 1000
//! ports therefore reads a handful of links, not all of them.

use neutrino_api::agent::HostState;
use neutrino_dataplane::{
    DataPlane, Fdb, FdbEntry, Link, LinkKind, Links, MacAddr, NeighEntry, Neighbours, Observed, VlanSpec, VxlanSpec,
};
use neutrino_domain::host_intent::{compile_l2, HostCapabilities, NetworkIntent, Uplink};
use neutrino_domain::naming::is_vlan_subinterface_of;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

/// UDP port of VXLAN (IANA).
pub const VXLAN_PORT: u16 = 4789;

/// The outcome of one pass: the status each local port should have.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub port_status: BTreeMap<String, String>,
    /// Number of kernel changes made (0 when already converged).
    pub changes: usize,
    /// Networks with local ports that this host cannot wire (network id → why): no mapping
    /// for their physical network, a type the agent or the kernel does not support.
    pub unwired: BTreeMap<String, String>,
    /// Networks whose uplink to the physical network failed in this pass (network id → the
    /// error). Their ports stay DOWN; every other network still converged.
    pub failed: BTreeMap<String, String>,
}

fn is_managed_bridge(l: &Link) -> bool {
    l.name.starts_with("brq") && l.kind == LinkKind::Bridge
}

fn is_managed_vxlan(l: &Link) -> bool {
    l.name.starts_with("vxlan-") && matches!(l.kind, LinkKind::Vxlan { .. })
}

/// A VLAN sub-interface the agent made: named like Neutron's of a mapped interface, and a
/// port of one of our bridges (as Neutron, never touch a sub-interface someone else uses).
fn is_managed_vlan(l: &Link, host: &HostCapabilities) -> bool {
    let LinkKind::Vlan { parent: Some(parent), .. } = &l.kind else {
        return false;
    };
    host.interface_mappings.values().any(|i| i == parent)
        && is_vlan_subinterface_of(&l.name, parent)
        && l.master.as_deref().is_some_and(|m| m.starts_with("brq"))
}

/// Bring the kernel to the state `state` implies for this host.
///
/// Failures of one network's uplink do not fail the pass (see [`Outcome::failed`]); any other
/// data plane error does, and the caller retries.
pub async fn reconcile<D: DataPlane>(
    dp: &D,
    state: &HostState,
    local_ip: Ipv4Addr,
    host: &HostCapabilities,
) -> neutrino_dataplane::Result<Outcome> {
    let intent = compile_l2(state, IpAddr::V4(local_ip), host);
    let observed = dp.observe().await?;
    let mut out = Outcome { unwired: intent.unwired.clone(), ..Outcome::default() };

    for net in intent.networks.values() {
        reconcile_network(dp, net, &observed, local_ip, &mut out, None).await?;
    }

    // Tear down what no local port needs any more. VLAN sub-interfaces go first, while their
    // bridge still tells they are ours; deleting a bridge releases a physical interface.
    let wanted_uplinks: BTreeSet<&str> =
        intent.networks.values().filter_map(|n| n.uplink.as_ref().map(Uplink::device)).collect();
    for link in &observed.links {
        if is_managed_vlan(link, host) && !wanted_uplinks.contains(link.name.as_str()) {
            tracing::info!(link = %link.name, "removing vlan sub-interface no local port needs");
            dp.links().delete(&link.name).await?;
            out.changes += 1;
        }
    }
    let wanted_vxlans: BTreeSet<&str> =
        intent.networks.values().filter_map(|n| n.vxlan.as_ref().map(|v| v.0.as_str())).collect();
    for link in &observed.links {
        let stale_bridge = is_managed_bridge(link) && !intent.networks.contains_key(&link.name);
        let stale_vxlan = is_managed_vxlan(link) && !wanted_vxlans.contains(link.name.as_str());
        if stale_bridge || stale_vxlan {
            tracing::info!(link = %link.name, "removing link no local port needs");
            dp.links().delete(&link.name).await?;
            out.changes += 1;
        }
    }

    // Ports not wired above (no tap yet, admin down, network not wirable) are DOWN.
    for port_id in state.local_ports.keys() {
        out.port_status.entry(port_id.clone()).or_insert_with(|| "DOWN".to_string());
    }
    Ok(out)
}

/// Wire one network. `taps`: the taps to look at (`None`: all of the network's); the others
/// keep the status they had.
async fn reconcile_network<D: DataPlane>(
    dp: &D,
    net: &NetworkIntent,
    observed: &Observed,
    local_ip: Ipv4Addr,
    out: &mut Outcome,
    taps: Option<&BTreeSet<String>>,
) -> neutrino_dataplane::Result<()> {
    let bridge_ok = observed.link(&net.bridge).is_some_and(|l| l.kind == LinkKind::Bridge && l.up && l.mtu == net.mtu);
    if !bridge_ok {
        dp.links().ensure_bridge(&net.bridge, Some(net.mtu)).await?;
        out.changes += 1;
    }

    if let Some((name, vni)) = &net.vxlan {
        let want_kind = LinkKind::Vxlan { vni: *vni, local: Some(local_ip) };
        match observed.link(name) {
            Some(l) if l.kind == want_kind && l.up && l.master.as_deref() == Some(net.bridge.as_str()) => {}
            Some(l) if l.kind == want_kind => {
                dp.links().attach(name, &net.bridge).await?;
                out.changes += 1;
            }
            _ => {
                let spec = VxlanSpec { name: name.clone(), vni: *vni, local: local_ip, port: VXLAN_PORT };
                dp.links().ensure_vxlan(&spec).await?;
                dp.links().attach(name, &net.bridge).await?;
                out.changes += 2;
            }
        }
        reconcile_l2pop(dp, net, name, observed, out).await?;
    }

    if let Some(uplink) = &net.uplink {
        if let Err(error) = reconcile_uplink(dp, net, uplink, observed, out).await {
            // Leave the taps alone: the ports stay DOWN, which is the truth.
            out.failed.insert(net.network_id.clone(), error);
            return Ok(());
        }
    }

    for (tap, port_id) in &net.taps {
        if taps.is_some_and(|t| !t.contains(tap)) {
            continue;
        }
        let status = match observed.link(tap) {
            Some(l) if l.master.as_deref() == Some(net.bridge.as_str()) && l.up => "ACTIVE",
            Some(_) => {
                dp.links().attach(tap, &net.bridge).await?;
                out.changes += 1;
                "ACTIVE"
            }
            None => "DOWN",
        };
        out.port_status.insert(port_id.clone(), status.to_string());
    }
    Ok(())
}

/// Make the uplink a port of the network's bridge, creating it first for VLAN. The physical
/// interface itself is never created nor deleted. The error says what is wrong, for the log.
async fn reconcile_uplink<D: DataPlane>(
    dp: &D,
    net: &NetworkIntent,
    uplink: &Uplink,
    observed: &Observed,
    out: &mut Outcome,
) -> Result<(), String> {
    // Isolated: the DHCP legs (isolated too) never reach the physical network.
    let attached = |l: &Link| l.up && l.isolated && l.master.as_deref() == Some(net.bridge.as_str());
    let missing = |interface: &str| format!("physical interface {interface} does not exist");
    match uplink {
        Uplink::Physical { interface } => match observed.link(interface) {
            None => return Err(missing(interface)),
            Some(l) if attached(l) => return Ok(()),
            Some(_) => {}
        },
        Uplink::Vlan { name, parent, vlan_id } => {
            let kind = LinkKind::Vlan { id: *vlan_id, parent: Some(parent.clone()) };
            match observed.link(name) {
                Some(l) if l.kind == kind && attached(l) => return Ok(()),
                Some(l) if l.kind == kind => {}
                _ if observed.link(parent).is_none() => return Err(missing(parent)),
                _ => {
                    let spec = VlanSpec { name: name.clone(), parent: parent.clone(), id: *vlan_id, mtu: None };
                    dp.links().ensure_vlan(&spec).await.map_err(|e| {
                        format!("cannot create vlan sub-interface {name} (VLAN {vlan_id} on {parent}): {e}")
                    })?;
                    out.changes += 1;
                }
            }
        }
    }
    let device = uplink.device();
    dp.links()
        .attach_isolated(device, &net.bridge)
        .await
        .map_err(|e| format!("cannot attach {device} to {}: {e}", net.bridge))?;
    out.changes += 1;
    Ok(())
}

/// Static FDB entries (remote MAC → VTEP) and permanent neighbours (remote IP → MAC) on the
/// VXLAN device: L2 population and the ARP responder.
async fn reconcile_l2pop<D: DataPlane>(
    dp: &D,
    net: &NetworkIntent,
    device: &str,
    observed: &Observed,
    out: &mut Outcome,
) -> neutrino_dataplane::Result<()> {
    let want_fdb: BTreeSet<FdbEntry> = net
        .fdb
        .iter()
        .filter_map(|(mac, dst)| Some(FdbEntry { device: device.to_string(), mac: mac.parse().ok()?, dst: *dst }))
        .collect();
    let have_fdb: BTreeSet<FdbEntry> = observed.fdb.iter().filter(|e| e.device == device).cloned().collect();
    for e in want_fdb.difference(&have_fdb) {
        dp.fdb().add(e).await?;
        out.changes += 1;
    }
    for e in have_fdb.difference(&want_fdb) {
        dp.fdb().del(e).await?;
        out.changes += 1;
    }

    let want_neigh: BTreeSet<NeighEntry> = net
        .neighbours
        .iter()
        .filter_map(|(ip, mac)| {
            let mac: MacAddr = mac.parse().ok()?;
            Some(NeighEntry { device: device.to_string(), ip: *ip, mac })
        })
        .collect();
    let have_neigh: BTreeSet<NeighEntry> = observed.neighbours.iter().filter(|e| e.device == device).cloned().collect();
    for e in want_neigh.difference(&have_neigh) {
        dp.neighbours().add(e).await?;
        out.changes += 1;
    }
    for e in have_neigh.difference(&want_neigh) {
        // An entry for the same IP with a new MAC was just replaced; don't delete it again.
        if want_neigh.iter().any(|w| w.ip == e.ip) {
            continue;
        }
        dp.neighbours().del(e).await?;
        out.changes += 1;
    }
    Ok(())
}

mod changes;
#[cfg(test)]
mod tests;

pub use changes::L2Reconciler;
