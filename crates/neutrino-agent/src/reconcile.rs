//! The L2 reconciler: desired state in, kernel diff out. Level-triggered and idempotent: it
//! reads what the kernel has, changes only what differs, and can be interrupted or restarted
//! at any point without disturbing what is already right.

use neutrino_api::agent::HostState;
use neutrino_dataplane::{DataPlane, FdbEntry, Link, LinkKind, MacAddr, NeighEntry, Observed, VxlanSpec};
use neutrino_domain::host_intent::{compile_l2, NetworkIntent};
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
}

fn is_managed_bridge(l: &Link) -> bool {
    l.name.starts_with("brq") && l.kind == LinkKind::Bridge
}

fn is_managed_vxlan(l: &Link) -> bool {
    l.name.starts_with("vxlan-") && matches!(l.kind, LinkKind::Vxlan { .. })
}

/// Bring the kernel to the state `state` implies for this host.
pub async fn reconcile<D: DataPlane>(
    dp: &D,
    state: &HostState,
    local_ip: Ipv4Addr,
) -> neutrino_dataplane::Result<Outcome> {
    let intent = compile_l2(state, IpAddr::V4(local_ip));
    let observed = dp.observe().await?;
    let mut out = Outcome::default();

    for net in intent.networks.values() {
        reconcile_network(dp, net, &observed, local_ip, &mut out).await?;
    }

    // Tear down what no local port needs any more.
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

    fn state() -> HostState {
        let mut s = HostState::default();
        s.networks
            .insert(NET.into(), HostNetwork { network_type: "vxlan".into(), physical_network: None, segmentation_id: Some(42), mtu: 1450 });
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
        let out = reconcile(&dp, &state(), local_ip()).await.unwrap();
        assert_eq!(out.port_status[PORT], "DOWN", "no tap yet");
        let seen = dp.snapshot();
        assert!(seen.link("brq0817d5d7-a3").is_some());
        let vx = seen.link("vxlan-42").unwrap();
        assert_eq!(vx.master.as_deref(), Some("brq0817d5d7-a3"));
        assert_eq!(seen.fdb.len(), 1);
        assert_eq!(seen.neighbours.len(), 1);

        let before = dp.mutations();
        let again = reconcile(&dp, &state(), local_ip()).await.unwrap();
        assert_eq!(again.changes, 0);
        assert_eq!(dp.mutations(), before, "a converged reconcile touches nothing");
    }

    #[tokio::test]
    async fn tap_appearing_is_plugged_and_reported_active() {
        let dp = MemoryDataPlane::new();
        reconcile(&dp, &state(), local_ip()).await.unwrap();
        dp.add_external_link("tap3aab26d9-f8", LinkKind::Veth);
        let out = reconcile(&dp, &state(), local_ip()).await.unwrap();
        assert_eq!(out.port_status[PORT], "ACTIVE");
        assert_eq!(dp.snapshot().link("tap3aab26d9-f8").unwrap().master.as_deref(), Some("brq0817d5d7-a3"));
    }

    #[tokio::test]
    async fn removing_the_remote_port_removes_its_entries_and_last_local_port_tears_down() {
        let dp = MemoryDataPlane::new();
        reconcile(&dp, &state(), local_ip()).await.unwrap();
        let mut s = state();
        s.remote_ports.clear();
        reconcile(&dp, &s, local_ip()).await.unwrap();
        let seen = dp.snapshot();
        assert!(seen.fdb.is_empty() && seen.neighbours.is_empty());

        s.local_ports.clear();
        reconcile(&dp, &s, local_ip()).await.unwrap();
        let seen = dp.snapshot();
        assert!(seen.link("brq0817d5d7-a3").is_none());
        assert!(seen.link("vxlan-42").is_none());
    }

    #[tokio::test]
    async fn a_moved_remote_port_gets_its_new_vtep() {
        let dp = MemoryDataPlane::new();
        reconcile(&dp, &state(), local_ip()).await.unwrap();
        let mut s = state();
        s.remote_ports.get_mut("remote-port").unwrap().tunnel_ip = "192.0.2.13".into();
        reconcile(&dp, &s, local_ip()).await.unwrap();
        let fdb = dp.snapshot().fdb;
        assert_eq!(fdb.len(), 1);
        assert_eq!(fdb[0].dst, "192.0.2.13".parse::<IpAddr>().unwrap());
    }
}
