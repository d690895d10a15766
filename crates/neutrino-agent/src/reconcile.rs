//! The L2 reconciler: desired state in, kernel diff out. Level-triggered and idempotent: it
//! reads what the kernel has, changes only what differs, and can be interrupted or restarted
//! at any point without disturbing what is already right.

use neutrino_api::agent::HostState;
use neutrino_dataplane::{DataPlane, FdbEntry, Link, LinkKind, MacAddr, NeighEntry, Observed, VlanSpec, VxlanSpec};
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
        reconcile_network(dp, net, &observed, local_ip, &mut out).await?;
    }

    // Tear down what no local port needs any more. VLAN sub-interfaces go first, while their
    // bridge still tells they are ours; deleting a bridge releases a physical interface.
    let wanted_uplinks: BTreeSet<&str> =
        intent.networks.values().filter_map(|n| n.uplink.as_ref().map(Uplink::device)).collect();
    for link in &observed.links {
        if is_managed_vlan(link, host) && !wanted_uplinks.contains(link.name.as_str()) {
            tracing::info!(link = %link.name, "removing vlan sub-interface no local port needs");
            dp.delete_link(&link.name).await?;
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
            dp.delete_link(&link.name).await?;
            out.changes += 1;
        }
    }

    // Ports not wired above (no tap yet, admin down, network not wirable) are DOWN.
    for port_id in state.local_ports.keys() {
        out.port_status.entry(port_id.clone()).or_insert_with(|| "DOWN".to_string());
    }
    Ok(out)
}

async fn reconcile_network<D: DataPlane>(
    dp: &D,
    net: &NetworkIntent,
    observed: &Observed,
    local_ip: Ipv4Addr,
    out: &mut Outcome,
) -> neutrino_dataplane::Result<()> {
    let bridge_ok = observed.link(&net.bridge).is_some_and(|l| l.kind == LinkKind::Bridge && l.up && l.mtu == net.mtu);
    if !bridge_ok {
        dp.ensure_bridge(&net.bridge, Some(net.mtu)).await?;
        out.changes += 1;
    }

    if let Some((name, vni)) = &net.vxlan {
        let want_kind = LinkKind::Vxlan { vni: *vni, local: Some(local_ip) };
        match observed.link(name) {
            Some(l) if l.kind == want_kind && l.up && l.master.as_deref() == Some(net.bridge.as_str()) => {}
            Some(l) if l.kind == want_kind => {
                dp.attach(name, &net.bridge).await?;
                out.changes += 1;
            }
            _ => {
                let spec = VxlanSpec { name: name.clone(), vni: *vni, local: local_ip, port: VXLAN_PORT };
                dp.ensure_vxlan(&spec).await?;
                dp.attach(name, &net.bridge).await?;
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
        let status = match observed.link(tap) {
            Some(l) if l.master.as_deref() == Some(net.bridge.as_str()) && l.up => "ACTIVE",
            Some(_) => {
                dp.attach(tap, &net.bridge).await?;
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
    let attached = |l: &Link| l.up && l.master.as_deref() == Some(net.bridge.as_str());
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
                    dp.ensure_vlan(&spec).await.map_err(|e| {
                        format!("cannot create vlan sub-interface {name} (VLAN {vlan_id} on {parent}): {e}")
                    })?;
                    out.changes += 1;
                }
            }
        }
    }
    let device = uplink.device();
    dp.attach(device, &net.bridge).await.map_err(|e| format!("cannot attach {device} to {}: {e}", net.bridge))?;
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
        dp.add_fdb(e).await?;
        out.changes += 1;
    }
    for e in have_fdb.difference(&want_fdb) {
        dp.del_fdb(e).await?;
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
        dp.add_neighbour(e).await?;
        out.changes += 1;
    }
    for e in have_neigh.difference(&want_neigh) {
        // An entry for the same IP with a new MAC was just replaced; don't delete it again.
        if want_neigh.iter().any(|w| w.ip == e.ip) {
            continue;
        }
        dp.del_neighbour(e).await?;
        out.changes += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use neutrino_api::agent::{HostNetwork, LocalPort, RemotePort};
    use neutrino_dataplane::memory::MemoryDataPlane;

    const NET: &str = "0817d5d7-a353-4219-8f3f-2da496259738";
    const PORT: &str = "3aab26d9-f821-4bff-961d-d211c5bf7acb";

    fn local_ip() -> Ipv4Addr {
        "192.0.2.11".parse().unwrap()
    }

    fn host() -> HostCapabilities {
        HostCapabilities {
            interface_mappings: BTreeMap::from([("physnet1".to_string(), "phys0".to_string())]),
            ..Default::default()
        }
    }

    fn state() -> HostState {
        let mut s = HostState::default();
        s.networks.insert(
            NET.into(),
            HostNetwork { network_type: "vxlan".into(), physical_network: None, segmentation_id: Some(42), mtu: 1450 },
        );
        s.local_ports.insert(
            PORT.into(),
            LocalPort {
                network_id: NET.into(),
                mac_address: "fa:16:3e:00:00:01".into(),
                admin_state_up: true,
                status: "DOWN".into(),
            },
        );
        s.remote_ports.insert(
            "remote-port".into(),
            RemotePort {
                network_id: NET.into(),
                mac_address: "fa:16:3e:00:00:02".into(),
                ip_addresses: vec!["203.0.113.12".into()],
                tunnel_ip: "192.0.2.12".into(),
            },
        );
        s
    }

    #[tokio::test]
    async fn wires_bridge_vxlan_and_l2pop_then_converges_without_changes() {
        let dp = MemoryDataPlane::new();
        let out = reconcile(&dp, &state(), local_ip(), &host()).await.unwrap();
        assert_eq!(out.port_status[PORT], "DOWN", "no tap yet");
        let seen = dp.snapshot();
        assert!(seen.link("brq0817d5d7-a3").is_some());
        let vx = seen.link("vxlan-42").unwrap();
        assert_eq!(vx.master.as_deref(), Some("brq0817d5d7-a3"));
        assert_eq!(seen.fdb.len(), 1);
        assert_eq!(seen.neighbours.len(), 1);

        let before = dp.mutations();
        let again = reconcile(&dp, &state(), local_ip(), &host()).await.unwrap();
        assert_eq!(again.changes, 0);
        assert_eq!(dp.mutations(), before, "a converged reconcile touches nothing");
    }

    #[tokio::test]
    async fn tap_appearing_is_plugged_and_reported_active() {
        let dp = MemoryDataPlane::new();
        reconcile(&dp, &state(), local_ip(), &host()).await.unwrap();
        dp.add_external_link("tap3aab26d9-f8", LinkKind::Veth);
        let out = reconcile(&dp, &state(), local_ip(), &host()).await.unwrap();
        assert_eq!(out.port_status[PORT], "ACTIVE");
        assert_eq!(dp.snapshot().link("tap3aab26d9-f8").unwrap().master.as_deref(), Some("brq0817d5d7-a3"));
    }

    #[tokio::test]
    async fn removing_the_remote_port_removes_its_entries_and_last_local_port_tears_down() {
        let dp = MemoryDataPlane::new();
        reconcile(&dp, &state(), local_ip(), &host()).await.unwrap();
        let mut s = state();
        s.remote_ports.clear();
        reconcile(&dp, &s, local_ip(), &host()).await.unwrap();
        let seen = dp.snapshot();
        assert!(seen.fdb.is_empty() && seen.neighbours.is_empty());

        s.local_ports.clear();
        reconcile(&dp, &s, local_ip(), &host()).await.unwrap();
        let seen = dp.snapshot();
        assert!(seen.link("brq0817d5d7-a3").is_none());
        assert!(seen.link("vxlan-42").is_none());
    }

    #[tokio::test]
    async fn a_moved_remote_port_gets_its_new_vtep() {
        let dp = MemoryDataPlane::new();
        reconcile(&dp, &state(), local_ip(), &host()).await.unwrap();
        let mut s = state();
        s.remote_ports.get_mut("remote-port").unwrap().tunnel_ip = "192.0.2.13".into();
        reconcile(&dp, &s, local_ip(), &host()).await.unwrap();
        let fdb = dp.snapshot().fdb;
        assert_eq!(fdb.len(), 1);
        assert_eq!(fdb[0].dst, "192.0.2.13".parse::<IpAddr>().unwrap());
    }

    const FLAT: &str = "5fd0b4a1-0000-4000-8000-000000000001";
    const VLAN: &str = "7b2e9c30-0000-4000-8000-000000000002";
    const FLAT_PORT: &str = "a1a1a1a1-0000-4000-8000-000000000003";
    const VLAN_PORT: &str = "b2b2b2b2-0000-4000-8000-000000000004";

    /// The VXLAN state plus a flat and a VLAN network on physnet1, each with a local port.
    fn provider_state() -> HostState {
        let mut s = state();
        for (net, port, network_type, segmentation_id) in
            [(FLAT, FLAT_PORT, "flat", None), (VLAN, VLAN_PORT, "vlan", Some(100))]
        {
            let physical_network = Some("physnet1".to_string());
            s.networks.insert(
                net.into(),
                HostNetwork { network_type: network_type.into(), physical_network, segmentation_id, mtu: 1500 },
            );
            let local = LocalPort { network_id: net.into(), ..s.local_ports[PORT].clone() };
            s.local_ports.insert(port.into(), local);
        }
        s
    }

    /// A host with its physical interface and every tap present.
    fn provider_host() -> MemoryDataPlane {
        let dp = MemoryDataPlane::new();
        dp.add_external_link("phys0", LinkKind::Veth);
        for tap in ["tap3aab26d9-f8", "tapa1a1a1a1-00", "tapb2b2b2b2-00"] {
            dp.add_external_link(tap, LinkKind::Veth);
        }
        dp
    }

    #[tokio::test]
    async fn flat_and_vlan_uplinks_are_bridge_ports_and_converge() {
        let dp = provider_host();
        let out = reconcile(&dp, &provider_state(), local_ip(), &host()).await.unwrap();
        assert!(out.failed.is_empty() && out.unwired.is_empty(), "{out:?}");
        assert!(out.port_status.values().all(|s| s == "ACTIVE"), "{out:?}");
        let seen = dp.snapshot();
        let phys = seen.link("phys0").unwrap();
        assert_eq!((phys.master.as_deref(), phys.up), (Some("brq5fd0b4a1-00"), true));
        let vlan = seen.link("phys0.100").unwrap();
        assert_eq!(vlan.kind, LinkKind::Vlan { id: 100, parent: Some("phys0".into()) });
        assert_eq!(vlan.master.as_deref(), Some("brq7b2e9c30-00"));
        assert_eq!(seen.link("vxlan-42").unwrap().master.as_deref(), Some("brq0817d5d7-a3"), "vxlan unchanged");
        assert!(seen.fdb.iter().all(|e| e.device == "vxlan-42"), "no l2pop entries for provider networks");

        let before = dp.mutations();
        let again = reconcile(&dp, &provider_state(), local_ip(), &host()).await.unwrap();
        assert_eq!((again.changes, dp.mutations()), (0, before), "a converged reconcile touches nothing");
    }

    #[tokio::test]
    async fn leaving_provider_networks_deletes_the_vlan_but_never_the_physical_interface() {
        let dp = provider_host();
        reconcile(&dp, &provider_state(), local_ip(), &host()).await.unwrap();
        let mut s = provider_state();
        s.local_ports.retain(|id, _| id == PORT);
        reconcile(&dp, &s, local_ip(), &host()).await.unwrap();
        let seen = dp.snapshot();
        assert!(seen.link("brq5fd0b4a1-00").is_none() && seen.link("brq7b2e9c30-00").is_none());
        assert!(seen.link("phys0.100").is_none(), "our vlan sub-interface is deleted");
        let phys = seen.link("phys0").expect("the physical interface stays");
        assert_eq!(phys.master, None, "released by the bridge's deletion");
        assert!(seen.link("vxlan-42").is_some());
    }

    #[tokio::test]
    async fn a_kernel_without_8021q_fails_only_the_vlan_network() {
        let dp = provider_host();
        dp.refuse_vlans("Operation not supported (os error 95)");
        let out = reconcile(&dp, &provider_state(), local_ip(), &host()).await.expect("the pass itself succeeds");
        assert!(out.failed[VLAN].contains("Operation not supported"), "{out:?}");
        assert!(out.failed[VLAN].contains("phys0.100"), "{out:?}");
        assert_eq!(out.port_status[VLAN_PORT], "DOWN");
        assert_eq!((out.port_status[FLAT_PORT].as_str(), out.port_status[PORT].as_str()), ("ACTIVE", "ACTIVE"));
        let seen = dp.snapshot();
        assert_eq!(seen.link("tapb2b2b2b2-00").unwrap().master, None, "the vlan network's tap is not plugged");
        assert_eq!(seen.link("phys0").unwrap().master.as_deref(), Some("brq5fd0b4a1-00"));
    }

    #[tokio::test]
    async fn unmapped_physical_networks_and_missing_interfaces_leave_ports_down() {
        let dp = MemoryDataPlane::new();
        dp.add_external_link("tapa1a1a1a1-00", LinkKind::Veth);
        let mut s = provider_state();
        s.networks.get_mut(VLAN).unwrap().physical_network = Some("physnet9".into());
        let out = reconcile(&dp, &s, local_ip(), &host()).await.unwrap();
        assert!(out.unwired[VLAN].contains("physnet9"), "{out:?}");
        assert!(dp.snapshot().link("brq7b2e9c30-00").is_none(), "an unmapped network gets no bridge");
        assert!(out.failed[FLAT].contains("physical interface phys0 does not exist"), "{out:?}");
        assert_eq!((out.port_status[FLAT_PORT].as_str(), out.port_status[VLAN_PORT].as_str()), ("DOWN", "DOWN"));

        // The interface shows up (hotplug): the next pass wires the flat network.
        dp.add_external_link("phys0", LinkKind::Veth);
        let out = reconcile(&dp, &s, local_ip(), &host()).await.unwrap();
        assert!(out.failed.is_empty(), "{out:?}");
        assert_eq!(out.port_status[FLAT_PORT], "ACTIVE");
    }

    #[tokio::test]
    async fn vlan_sub_interfaces_of_others_are_left_alone() {
        let dp = provider_host();
        dp.ensure_vlan(&VlanSpec { name: "phys0.200".into(), parent: "phys0".into(), id: 200, mtu: None })
            .await
            .unwrap();
        reconcile(&dp, &state(), local_ip(), &host()).await.unwrap();
        assert!(dp.snapshot().link("phys0.200").is_some(), "not a port of one of our bridges");
    }
}
