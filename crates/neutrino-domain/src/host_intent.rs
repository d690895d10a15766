//! The host-intent compiler: from the host's view of the cloud (what the server streams) to the
//! L2 objects the kernel must hold on that host. Pure, so the agent's reconciler only diffs.

use crate::naming::{bridge_name, tap_name, vxlan_name};
use neutrino_api::agent::HostState;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// One network's objects on this host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkIntent {
    pub network_id: String,
    pub bridge: String,
    pub mtu: u32,
    /// `(device name, VNI)` for VXLAN networks.
    pub vxlan: Option<(String, u32)>,
    /// tap name → port id, for local ports that are administratively up.
    pub taps: BTreeMap<String, String>,
    /// Remote MAC → VTEP (static FDB entries on the VXLAN device).
    pub fdb: BTreeSet<(String, IpAddr)>,
    /// Remote IP → MAC (permanent neighbours on the VXLAN device: the ARP responder).
    pub neighbours: BTreeSet<(IpAddr, String)>,
}

/// Everything L2 this host must program, keyed by bridge name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct L2Intent {
    pub networks: BTreeMap<String, NetworkIntent>,
}

impl L2Intent {
    /// The network a tap belongs to, if any.
    pub fn bridge_of_tap(&self, tap: &str) -> Option<&NetworkIntent> {
        self.networks.values().find(|n| n.taps.contains_key(tap))
    }
}

/// Compile the host's L2 intent. Networks without a local port get nothing (they are torn
/// down); remote ports behind our own VTEP are skipped.
pub fn compile_l2(state: &HostState, local_vtep: IpAddr) -> L2Intent {
    let mut networks: BTreeMap<String, NetworkIntent> = BTreeMap::new();
    let mut by_network: BTreeMap<&str, String> = BTreeMap::new();
    for (net_id, net) in &state.networks {
        if !state.local_ports.values().any(|p| &p.network_id == net_id) {
            continue;
        }
        let vxlan = match (net.network_type.as_str(), net.segmentation_id) {
            ("vxlan", Some(vni)) => Some((vxlan_name(vni), vni)),
            _ => None,
        };
        let bridge = bridge_name(net_id);
        by_network.insert(net_id, bridge.clone());
        networks.insert(
            bridge.clone(),
            NetworkIntent { network_id: net_id.clone(), bridge, mtu: net.mtu, vxlan, ..Default::default() },
        );
    }
    for (port_id, port) in &state.local_ports {
        if !port.admin_state_up {
            continue;
        }
        if let Some(n) = by_network.get(port.network_id.as_str()).and_then(|b| networks.get_mut(b)) {
            n.taps.insert(tap_name(port_id), port_id.clone());
        }
    }
    for port in state.remote_ports.values() {
        let Ok(vtep) = port.tunnel_ip.parse::<IpAddr>() else {
            continue;
        };
        if vtep == local_vtep {
            continue;
        }
        let Some(n) = by_network.get(port.network_id.as_str()).and_then(|b| networks.get_mut(b)) else {
            continue;
        };
        if n.vxlan.is_none() {
            continue;
        }
        n.fdb.insert((port.mac_address.clone(), vtep));
        for ip in &port.ip_addresses {
            if let Ok(ip) = ip.parse::<IpAddr>() {
                n.neighbours.insert((ip, port.mac_address.clone()));
            }
        }
    }
    L2Intent { networks }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neutrino_api::agent::{HostNetwork, LocalPort, RemotePort};

    fn state() -> HostState {
        let mut s = HostState::default();
        s.networks.insert(
            "net-aaaaaaaaaaaa".into(),
            HostNetwork { network_type: "vxlan".into(), physical_network: None, segmentation_id: Some(7), mtu: 1450 },
        );
        s.networks.insert(
            "net-bbbbbbbbbbbb".into(),
            HostNetwork { network_type: "vxlan".into(), physical_network: None, segmentation_id: Some(8), mtu: 1450 },
        );
        s.local_ports.insert(
            "port-1111111111".into(),
            LocalPort {
                network_id: "net-aaaaaaaaaaaa".into(),
                mac_address: "fa:16:3e:00:00:01".into(),
                admin_state_up: true,
                status: "DOWN".into(),
            },
        );
        s.remote_ports.insert(
            "port-2222222222".into(),
            RemotePort {
                network_id: "net-aaaaaaaaaaaa".into(),
                mac_address: "fa:16:3e:00:00:02".into(),
                ip_addresses: vec!["192.0.2.20".into()],
                tunnel_ip: "198.51.100.12".into(),
            },
        );
        s
    }

    #[test]
    fn local_port_brings_bridge_vxlan_and_l2pop_entries() {
        let intent = compile_l2(&state(), "198.51.100.11".parse().unwrap());
        assert_eq!(intent.networks.len(), 1, "network without local port is not wired");
        let n = &intent.networks["brqnet-aaaaaaa"];
        assert_eq!(n.vxlan, Some(("vxlan-7".into(), 7)));
        assert!(n.taps.contains_key("tapport-111111"));
        assert!(n.fdb.contains(&("fa:16:3e:00:00:02".into(), "198.51.100.12".parse().unwrap())));
        assert!(n.neighbours.contains(&("192.0.2.20".parse().unwrap(), "fa:16:3e:00:00:02".into())));
    }

    #[test]
    fn remote_ports_behind_our_own_vtep_are_skipped() {
        let intent = compile_l2(&state(), "198.51.100.12".parse().unwrap());
        assert!(intent.networks["brqnet-aaaaaaa"].fdb.is_empty());
    }

    #[test]
    fn admin_down_ports_are_not_plugged() {
        let mut s = state();
        s.local_ports.get_mut("port-1111111111").unwrap().admin_state_up = false;
        let intent = compile_l2(&s, "198.51.100.11".parse().unwrap());
        assert!(intent.networks["brqnet-aaaaaaa"].taps.is_empty());
    }
}
