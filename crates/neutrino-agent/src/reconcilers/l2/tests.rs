use super::*;
use crate::reconcilers::Scope;
use neutrino_api::agent::{HostNetwork, LocalPort, RemotePort};
use neutrino_dataplane::memory::MemoryDataPlane;
use neutrino_dataplane::LinkEvent;
use neutrino_domain::naming::tap_name;

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
        HostNetwork {
            network_type: "vxlan".into(),
            physical_network: None,
            segmentation_id: Some(42),
            mtu: 1450,
            ..Default::default()
        },
    );
    s.local_ports.insert(
        PORT.into(),
        LocalPort {
            network_id: NET.into(),
            mac_address: "fa:16:3e:00:00:01".into(),
            admin_state_up: true,
            status: "DOWN".into(),
            ..LocalPort::default()
        },
    );
    s.remote_ports.insert(
        "remote-port".into(),
        RemotePort {
            network_id: NET.into(),
            mac_address: "fa:16:3e:00:00:02".into(),
            ip_addresses: vec!["203.0.113.12".into()],
            tunnel_ip: "192.0.2.12".into(),
            ..Default::default()
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
            HostNetwork {
                network_type: network_type.into(),
                physical_network,
                segmentation_id,
                mtu: 1500,
                ..Default::default()
            },
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
    dp.links()
        .ensure_vlan(&VlanSpec { name: "phys0.200".into(), parent: "phys0".into(), id: 200, mtu: None })
        .await
        .unwrap();
    reconcile(&dp, &state(), local_ip(), &host()).await.unwrap();
    assert!(dp.snapshot().link("phys0.200").is_some(), "not a port of one of our bridges");
}

/// `count` networks with `per_network` local ports (taps present) and as many remote ports.
fn big_host(count: usize, per_network: usize) -> (HostState, MemoryDataPlane) {
    let dp = MemoryDataPlane::new();
    let mut s = HostState::default();
    for n in 0..count {
        let net = format!("{n:08x}-0000-4000-8000-000000000000");
        let network = HostNetwork {
            network_type: "vxlan".into(),
            physical_network: None,
            segmentation_id: Some(100 + n as u32),
            mtu: 1450,
            ..Default::default()
        };
        s.networks.insert(net.clone(), network);
        for p in 0..per_network {
            let id = format!("{n:04x}{p:04x}-0000-4000-8000-000000000000");
            let mac = format!("fa:16:3e:{:02x}:{:02x}:{:02x}", n, p / 256, p % 256);
            let port = LocalPort {
                network_id: net.clone(),
                mac_address: mac,
                admin_state_up: true,
                status: "ACTIVE".into(),
                ..LocalPort::default()
            };
            s.local_ports.insert(id.clone(), port);
            dp.add_external_link(&tap_name(&id), LinkKind::Veth);
            let remote = RemotePort {
                network_id: net.clone(),
                mac_address: format!("fa:16:3f:{:02x}:{:02x}:{:02x}", n, p / 256, p % 256),
                ip_addresses: vec![format!("10.{n}.{}.{}", p / 256, p % 256)],
                tunnel_ip: "192.0.2.12".into(),
                ..Default::default()
            };
            s.remote_ports.insert(format!("r{id}"), remote);
        }
    }
    (s, dp)
}

#[tokio::test]
async fn a_pass_over_one_change_reads_only_what_it_concerns() {
    let (mut s, dp) = big_host(10, 100);
    let mut l2 = L2Reconciler::new(local_ip(), host());
    let full = l2.pass(&dp, &s, &Scope::Full).await.unwrap();
    assert_eq!(full.port_status.values().filter(|v| *v == "ACTIVE").count(), 1000);
    let (reads, mutations) = (dp.reads(), dp.mutations());

    // A port appears on another host on network 3.
    let net = "00000003-0000-4000-8000-000000000000";
    let remote = RemotePort {
        network_id: net.into(),
        mac_address: "fa:16:3e:99:99:99".into(),
        ip_addresses: vec!["10.3.9.9".into()],
        tunnel_ip: "192.0.2.13".into(),
        ..Default::default()
    };
    s.remote_ports.insert("new-remote".into(), remote);
    let out = l2.pass(&dp, &s, &Scope::Changes(Vec::new())).await.unwrap();
    let after = dp.reads();
    assert_eq!(after.observes, reads.observes, "no whole read");
    assert!(after.links - reads.links <= 2, "the bridge and the VXLAN device: {after:?} vs {reads:?}");
    assert_eq!(after.entry_lists - reads.entry_lists, 2, "the VXLAN device's FDB and neighbours");
    assert_eq!(dp.mutations() - mutations, 2, "one FDB entry and one neighbour");
    assert_eq!(out.port_status.values().filter(|v| *v == "ACTIVE").count(), 1000, "every port keeps its status");

    // A tap appears for a new local port: its network is looked at, and that tap only.
    let id = "00030100-0000-4000-8000-000000000000";
    let port = LocalPort {
        network_id: net.into(),
        mac_address: "fa:16:3e:98:98:98".into(),
        admin_state_up: true,
        status: "DOWN".into(),
        ..LocalPort::default()
    };
    s.local_ports.insert(id.into(), port);
    dp.add_external_link(&tap_name(id), LinkKind::Veth);
    let reads = dp.reads();
    let out = l2.pass(&dp, &s, &Scope::Changes(vec![LinkEvent::Added(tap_name(id))])).await.unwrap();
    assert_eq!(out.port_status[id], "ACTIVE");
    assert!(dp.reads().links - reads.links <= 3, "bridge, VXLAN device, the new tap: {:?}", dp.reads());
}

#[tokio::test]
async fn a_bridge_deleted_under_the_agent_is_made_again_with_its_taps() {
    let dp = MemoryDataPlane::new();
    dp.add_external_link(&tap_name(PORT), LinkKind::Veth);
    let mut l2 = L2Reconciler::new(local_ip(), host());
    assert_eq!(l2.pass(&dp, &state(), &Scope::Full).await.unwrap().port_status[PORT], "ACTIVE");
    let bridge = "brq0817d5d7-a3";
    dp.remove_external_link(bridge);
    let out = l2.pass(&dp, &state(), &Scope::Changes(vec![LinkEvent::Removed(bridge.into())])).await.unwrap();
    assert_eq!(out.port_status[PORT], "ACTIVE");
    let seen = dp.snapshot();
    assert_eq!(seen.link(&tap_name(PORT)).unwrap().master.as_deref(), Some(bridge), "the tap is plugged again");
    assert_eq!(seen.link("vxlan-42").unwrap().master.as_deref(), Some(bridge));
    // Even without the event (a pass for something else), a missing bridge is noticed.
    dp.remove_external_link(bridge);
    let mut s = state();
    s.remote_ports.clear();
    l2.pass(&dp, &s, &Scope::Changes(Vec::new())).await.unwrap();
    assert_eq!(dp.snapshot().link(&tap_name(PORT)).unwrap().master.as_deref(), Some(bridge));
    assert_eq!(reconcile(&dp, &s, local_ip(), &host()).await.unwrap().changes, 0, "nothing left for a full pass");
}

#[tokio::test]
async fn the_server_echoing_a_status_reads_nothing() {
    let dp = MemoryDataPlane::new();
    dp.add_external_link(&tap_name(PORT), LinkKind::Veth);
    let mut l2 = L2Reconciler::new(local_ip(), host());
    l2.pass(&dp, &state(), &Scope::Full).await.unwrap();
    let mut s = state();
    s.local_ports.get_mut(PORT).unwrap().status = "ACTIVE".into();
    let reads = dp.reads();
    let out = l2.pass(&dp, &s, &Scope::Changes(Vec::new())).await.unwrap();
    assert_eq!(out.port_status[PORT], "ACTIVE");
    assert_eq!(dp.reads().links, reads.links, "{:?}", dp.reads());
    assert_eq!(dp.reads().entry_lists, reads.entry_lists);
}

/// A link without its index: name, kind, master, up, MTU.
type PlainLink = (String, String, Option<String>, bool, u32);

/// A plain copy of what the kernel holds, without link indexes (which depend on the order
/// links were made in).
fn kernel_view(dp: &MemoryDataPlane) -> (Vec<PlainLink>, Vec<FdbEntry>, Vec<NeighEntry>) {
    let seen = dp.snapshot();
    let mut links: Vec<_> =
        seen.links.iter().map(|l| (l.name.clone(), format!("{:?}", l.kind), l.master.clone(), l.up, l.mtu)).collect();
    links.sort();
    let (mut fdb, mut neighbours) = (seen.fdb, seen.neighbours);
    fdb.sort();
    neighbours.sort();
    (links, fdb, neighbours)
}

/// Random changes of the host's view and its taps: passes over what changed leave the kernel
/// and the port statuses exactly as full passes do.
#[tokio::test]
async fn passes_over_changes_reach_what_full_passes_reach() {
    use rand::{Rng, SeedableRng};
    for seed in 0..12 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let (changes_dp, full_dp) = (provider_host(), provider_host());
        let mut by_changes = L2Reconciler::new(local_ip(), host());
        let mut s = HostState::default();
        let nets: Vec<String> = (0..4).map(|i| format!("{i:08x}-1111-4000-8000-000000000000")).collect();
        for step in 0..150 {
            let mut events = Vec::new();
            match rng.gen_range(0..10) {
                0 => {
                    let i = rng.gen_range(0..nets.len());
                    let flat = i == 3;
                    // Each network's own VNIs (two networks never share one).
                    let vni = if rng.gen_bool(0.5) { 10 + i as u32 } else { 20 + i as u32 };
                    let network = HostNetwork {
                        network_type: if flat { "flat" } else { "vxlan" }.into(),
                        physical_network: flat.then(|| "physnet1".to_string()),
                        segmentation_id: (!flat).then_some(vni),
                        mtu: rng.gen_range(1400..1451),
                        ..Default::default()
                    };
                    s.networks.insert(nets[i].clone(), network);
                }
                1..=4 => {
                    let id = format!("{:08x}-2222-4000-8000-000000000000", rng.gen_range(0..12));
                    if rng.gen_bool(0.2) {
                        s.local_ports.remove(&id);
                    } else {
                        let port = LocalPort {
                            network_id: nets[rng.gen_range(0..nets.len())].clone(),
                            mac_address: format!("fa:16:3e:00:01:{:02x}", rng.gen_range(0..12)),
                            admin_state_up: rng.gen_bool(0.85),
                            status: "DOWN".into(),
                            ..LocalPort::default()
                        };
                        s.local_ports.insert(id, port);
                    }
                }
                5..=7 => {
                    // A port's MAC and address are its own (unique on any network).
                    let k = rng.gen_range(0..12);
                    let id = format!("remote-{k}");
                    if rng.gen_bool(0.2) {
                        s.remote_ports.remove(&id);
                    } else {
                        let remote = RemotePort {
                            network_id: nets[rng.gen_range(0..nets.len())].clone(),
                            mac_address: format!("fa:16:3e:00:02:{k:02x}"),
                            ip_addresses: vec![format!("10.0.0.{}", k + 1)],
                            tunnel_ip: format!("192.0.2.{}", rng.gen_range(12..15)),
                            ..Default::default()
                        };
                        s.remote_ports.insert(id, remote);
                    }
                }
                8 if rng.gen_bool(0.3) => {
                    // Someone deletes one of our bridges or VXLAN devices.
                    let names: Vec<String> = full_dp
                        .snapshot()
                        .links
                        .iter()
                        .filter(|l| l.name.starts_with("brq") || l.name.starts_with("vxlan-"))
                        .map(|l| l.name.clone())
                        .collect();
                    if !names.is_empty() {
                        let name = names[rng.gen_range(0..names.len())].clone();
                        for dp in [&changes_dp, &full_dp] {
                            dp.remove_external_link(&name);
                        }
                        events.push(LinkEvent::Removed(name));
                    }
                }
                _ => {
                    let tap = tap_name(&format!("{:08x}-2222-4000-8000-000000000000", rng.gen_range(0..12)));
                    let exists = full_dp.snapshot().link(&tap).is_some();
                    for dp in [&changes_dp, &full_dp] {
                        if exists {
                            dp.remove_external_link(&tap);
                        } else {
                            dp.add_external_link(&tap, LinkKind::Veth);
                        }
                    }
                    events.push(if exists { LinkEvent::Removed(tap) } else { LinkEvent::Added(tap) });
                }
            }
            let scope = if step == 0 { Scope::Full } else { Scope::Changes(events) };
            let a = by_changes.pass(&changes_dp, &s, &scope).await.unwrap();
            let b = reconcile(&full_dp, &s, local_ip(), &host()).await.unwrap();
            assert_eq!(a.port_status, b.port_status, "seed {seed}, step {step}");
            assert_eq!(kernel_view(&changes_dp), kernel_view(&full_dp), "seed {seed}, step {step}");
        }
    }
}
