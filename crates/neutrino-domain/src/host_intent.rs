//! The host-intent compiler: from the host's view of the cloud (what the server streams) to the
//! L2 objects the kernel must hold on that host. Pure, so the agent's reconciler only diffs.

use crate::naming::{bridge_name, tap_name, vlan_subinterface_name, vxlan_name};
use neutrino_api::agent::{HostNetwork, HostState};
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
    /// The bridge's port to the physical network, for flat and VLAN networks.
    pub uplink: Option<Uplink>,
    /// tap name → port id, for local ports that are administratively up.
    pub taps: BTreeMap<String, String>,
    /// Remote MAC → VTEP (static FDB entries on the VXLAN device).
    pub fdb: BTreeSet<(String, IpAddr)>,
    /// Remote IP → MAC (permanent neighbours on the VXLAN device: the ARP responder).
    pub neighbours: BTreeSet<(IpAddr, String)>,
}

/// How a network's bridge reaches the physical network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uplink {
    /// `flat`: the interface mapped to the physical network is itself a port of the bridge.
    Physical { interface: String },
    /// `vlan`: an 802.1Q sub-interface of the mapped interface is a port of the bridge.
    Vlan { name: String, parent: String, vlan_id: u16 },
}

impl Uplink {
    /// The device that is enslaved to the bridge.
    pub fn device(&self) -> &str {
        match self {
            Uplink::Physical { interface } => interface,
            Uplink::Vlan { name, .. } => name,
        }
    }
}

/// What this host can wire besides VXLAN.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostCapabilities {
    /// Physical network → interface (`[linux_bridge] physical_interface_mappings`).
    pub interface_mappings: BTreeMap<String, String>,
    /// Network type → why this host cannot wire it (e.g. `vlan` on a kernel without 802.1Q).
    pub unsupported_network_types: BTreeMap<String, String>,
}

/// Everything L2 this host must program, keyed by bridge name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct L2Intent {
    pub networks: BTreeMap<String, NetworkIntent>,
    /// Networks with a local port that this host cannot wire: network id → why. They get no
    /// bridge, and their ports stay DOWN.
    pub unwired: BTreeMap<String, String>,
}

impl L2Intent {
    /// The network a tap belongs to, if any.
    pub fn bridge_of_tap(&self, tap: &str) -> Option<&NetworkIntent> {
        self.networks.values().find(|n| n.taps.contains_key(tap))
    }
}

/// How a segment reaches other hosts: `(vxlan, uplink)`, or why this host cannot wire it.
type Wiring = (Option<(String, u32)>, Option<Uplink>);

/// The devices a network's segment needs besides its bridge, as Neutron's Linux-bridge agent
/// wires them: `local` is the bridge alone, `vxlan` adds a VXLAN device, `flat` the mapped
/// interface and `vlan` a sub-interface of it. `gre` and `geneve` need Open vSwitch.
fn segment_wiring(net: &HostNetwork, host: &HostCapabilities) -> Result<Wiring, String> {
    let network_type = net.network_type.as_str();
    if let Some(reason) = host.unsupported_network_types.get(network_type) {
        return Err(format!("{network_type} networks cannot be wired on this host: {reason}"));
    }
    let mapped_interface = || {
        let physnet = net.physical_network.as_deref().filter(|p| !p.is_empty());
        let physnet = physnet.ok_or_else(|| format!("{network_type} network without a physical network"))?;
        host.interface_mappings.get(physnet).cloned().ok_or_else(|| {
            format!("physical network {physnet} has no interface ([linux_bridge] physical_interface_mappings)")
        })
    };
    match network_type {
        "local" => Ok((None, None)),
        "vxlan" => Ok((net.segmentation_id.map(|vni| (vxlan_name(vni), vni)), None)),
        "flat" => Ok((None, Some(Uplink::Physical { interface: mapped_interface()? }))),
        "vlan" => {
            let vlan_id =
                net.segmentation_id.and_then(|id| u16::try_from(id).ok()).filter(|id| (1..=4094).contains(id));
            let vlan_id =
                vlan_id.ok_or_else(|| format!("vlan network with invalid VLAN id {:?}", net.segmentation_id))?;
            let parent = mapped_interface()?;
            Ok((None, Some(Uplink::Vlan { name: vlan_subinterface_name(&parent, vlan_id), parent, vlan_id })))
        }
        "gre" | "geneve" => {
            Err(format!("the Linux bridge agent cannot wire {network_type} networks (its only tunnel type is vxlan)"))
        }
        other => Err(format!("unknown network type {other:?}")),
    }
}

/// Compile the host's L2 intent. Networks without a local port or an interface of a router the
/// host runs get nothing (they are torn down), nor do networks the host cannot wire (listed in [`L2Intent::unwired`] with the
/// reason); remote ports behind our own VTEP are skipped.
pub fn compile_l2(state: &HostState, local_vtep: IpAddr, host: &HostCapabilities) -> L2Intent {
    let mut networks: BTreeMap<String, NetworkIntent> = BTreeMap::new();
    let mut unwired: BTreeMap<String, String> = BTreeMap::new();
    let mut by_network: BTreeMap<&str, String> = BTreeMap::new();
    for (net_id, net) in &state.networks {
        let routed = state.routers.values().any(|r| {
            r.interfaces.values().any(|i| &i.network_id == net_id)
                || r.gateway.as_ref().is_some_and(|g| &g.network_id == net_id)
        });
        if !routed && !state.local_ports.values().any(|p| &p.network_id == net_id) {
            continue;
        }
        let (vxlan, uplink) = match segment_wiring(net, host) {
            Ok(wiring) => wiring,
            Err(reason) => {
                unwired.insert(net_id.clone(), reason);
                continue;
            }
        };
        let bridge = bridge_name(net_id);
        by_network.insert(net_id, bridge.clone());
        networks.insert(
            bridge.clone(),
            NetworkIntent { network_id: net_id.clone(), bridge, mtu: net.mtu, vxlan, uplink, ..Default::default() },
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
    L2Intent { networks, unwired }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neutrino_api::agent::{LocalPort, RemotePort};

    const VTEP: &str = "198.51.100.11";

    fn state() -> HostState {
        let mut s = HostState::default();
        s.networks.insert(
            "net-aaaaaaaaaaaa".into(),
            HostNetwork {
                network_type: "vxlan".into(),
                physical_network: None,
                segmentation_id: Some(7),
                mtu: 1450,
                ..Default::default()
            },
        );
        s.networks.insert(
            "net-bbbbbbbbbbbb".into(),
            HostNetwork {
                network_type: "vxlan".into(),
                physical_network: None,
                segmentation_id: Some(8),
                mtu: 1450,
                ..Default::default()
            },
        );
        s.local_ports.insert(
            "port-1111111111".into(),
            LocalPort {
                network_id: "net-aaaaaaaaaaaa".into(),
                mac_address: "fa:16:3e:00:00:01".into(),
                admin_state_up: true,
                status: "DOWN".into(),
                ..LocalPort::default()
            },
        );
        s.remote_ports.insert(
            "port-2222222222".into(),
            RemotePort {
                network_id: "net-aaaaaaaaaaaa".into(),
                mac_address: "fa:16:3e:00:00:02".into(),
                ip_addresses: vec!["192.0.2.20".into()],
                tunnel_ip: "198.51.100.12".into(),
                ..Default::default()
            },
        );
        s
    }

    #[test]
    fn the_networks_of_routers_the_host_runs_are_wired_without_local_ports() {
        use neutrino_api::agent::{HostRouter, RouterGateway, RouterInterface};
        let mut s = state();
        s.local_ports.clear();
        let mut router = HostRouter::default();
        router.interfaces.insert(
            "qr".into(),
            RouterInterface {
                network_id: "net-aaaaaaaaaaaa".into(),
                mac_address: "fa:16:3e:00:00:09".into(),
                addresses: vec![],
            },
        );
        s.routers.insert("r".into(), router.clone());
        let intent = compile_l2(&s, VTEP.parse().unwrap(), &HostCapabilities::default());
        assert!(intent.networks.contains_key("brqnet-aaaaaaa"), "an interface's network is wired");
        router.interfaces.clear();
        router.gateway = Some(RouterGateway {
            port_id: "qg".into(),
            network_id: "net-aaaaaaaaaaaa".into(),
            addresses: vec![],
            next_hops: vec![],
            enable_snat: true,
        });
        s.routers.insert("r".into(), router);
        let intent = compile_l2(&s, VTEP.parse().unwrap(), &HostCapabilities::default());
        assert!(intent.networks.contains_key("brqnet-aaaaaaa"), "the gateway's network is wired");
        s.routers.clear();
        assert!(compile_l2(&s, VTEP.parse().unwrap(), &HostCapabilities::default()).networks.is_empty());
    }

    #[test]
    fn local_port_brings_bridge_vxlan_and_l2pop_entries() {
        let intent = compile_l2(&state(), VTEP.parse().unwrap(), &HostCapabilities::default());
        assert_eq!(intent.networks.len(), 1, "network without local port is not wired");
        let n = &intent.networks["brqnet-aaaaaaa"];
        assert_eq!(n.vxlan, Some(("vxlan-7".into(), 7)));
        assert!(n.taps.contains_key("tapport-111111"));
        assert!(n.fdb.contains(&("fa:16:3e:00:00:02".into(), "198.51.100.12".parse().unwrap())));
        assert!(n.neighbours.contains(&("192.0.2.20".parse().unwrap(), "fa:16:3e:00:00:02".into())));
    }

    #[test]
    fn remote_ports_behind_our_own_vtep_are_skipped() {
        let intent = compile_l2(&state(), "198.51.100.12".parse().unwrap(), &HostCapabilities::default());
        assert!(intent.networks["brqnet-aaaaaaa"].fdb.is_empty());
    }

    #[test]
    fn admin_down_ports_are_not_plugged() {
        let mut s = state();
        s.local_ports.get_mut("port-1111111111").unwrap().admin_state_up = false;
        let intent = compile_l2(&s, VTEP.parse().unwrap(), &HostCapabilities::default());
        assert!(intent.networks["brqnet-aaaaaaa"].taps.is_empty());
    }

    const PROVIDER: &str = "net-cccccccccccc";

    /// The base state plus a provider network of `network_type` with a local port on it.
    fn with_provider(network_type: &str, physnet: Option<&str>, segmentation_id: Option<u32>) -> HostState {
        let mut s = state();
        let physical_network = physnet.map(String::from);
        let net = HostNetwork {
            network_type: network_type.into(),
            physical_network,
            segmentation_id,
            mtu: 1500,
            ..Default::default()
        };
        s.networks.insert(PROVIDER.into(), net);
        let port = LocalPort { network_id: PROVIDER.into(), ..s.local_ports["port-1111111111"].clone() };
        s.local_ports.insert("port-3333333333".into(), port);
        s
    }

    fn mapped(physnet: &str, interface: &str) -> HostCapabilities {
        HostCapabilities {
            interface_mappings: BTreeMap::from([(physnet.to_string(), interface.to_string())]),
            ..Default::default()
        }
    }

    fn compile(s: &HostState, host: &HostCapabilities) -> L2Intent {
        compile_l2(s, VTEP.parse().unwrap(), host)
    }

    #[test]
    fn flat_network_gets_the_mapped_interface_as_uplink() {
        let intent = compile(&with_provider("flat", Some("physnet1"), None), &mapped("physnet1", "phys0"));
        let n = &intent.networks["brqnet-ccccccc"];
        assert_eq!(n.uplink, Some(Uplink::Physical { interface: "phys0".into() }));
        assert_eq!((n.vxlan.clone(), n.mtu), (None, 1500));
        assert!(n.taps.contains_key("tapport-333333"));
        assert!(intent.unwired.is_empty());
        assert_eq!(intent.networks["brqnet-aaaaaaa"].uplink, None, "vxlan networks have no uplink");
    }

    #[test]
    fn vlan_network_gets_a_sub_interface_of_the_mapped_interface() {
        let intent = compile(&with_provider("vlan", Some("physnet1"), Some(100)), &mapped("physnet1", "phys0"));
        let uplink = intent.networks["brqnet-ccccccc"].uplink.clone().unwrap();
        assert_eq!(uplink, Uplink::Vlan { name: "phys0.100".into(), parent: "phys0".into(), vlan_id: 100 });
        assert_eq!(uplink.device(), "phys0.100");

        let long = compile(&with_provider("vlan", Some("physnet1"), Some(4094)), &mapped("physnet1", "enp0s31f6np0"));
        let uplink = long.networks["brqnet-ccccccc"].uplink.clone().unwrap();
        assert_eq!(uplink.device(), "enp050cb40.4094", "hashed like Neutron to fit IFNAMSIZ");
    }

    #[test]
    fn networks_the_host_cannot_wire_are_skipped_with_a_reason() {
        let unmapped = compile(&with_provider("flat", Some("physnet2"), None), &mapped("physnet1", "phys0"));
        assert!(!unmapped.networks.contains_key("brqnet-ccccccc"));
        assert!(unmapped.unwired[PROVIDER].contains("physical network physnet2 has no interface"));
        assert!(unmapped.networks.contains_key("brqnet-aaaaaaa"), "other networks are still wired");

        let no_physnet = compile(&with_provider("flat", None, None), &mapped("physnet1", "phys0"));
        assert!(no_physnet.unwired[PROVIDER].contains("without a physical network"));

        let bad_vid = compile(&with_provider("vlan", Some("physnet1"), Some(4095)), &mapped("physnet1", "phys0"));
        assert!(bad_vid.unwired[PROVIDER].contains("invalid VLAN id"));

        let mut no_8021q = mapped("physnet1", "phys0");
        no_8021q.unsupported_network_types.insert("vlan".into(), "kernel has no 802.1Q VLAN support".into());
        let refused = compile(&with_provider("vlan", Some("physnet1"), Some(100)), &no_8021q);
        assert!(refused.unwired[PROVIDER].contains("kernel has no 802.1Q VLAN support"));
        let flat = compile(&with_provider("flat", Some("physnet1"), None), &no_8021q);
        assert!(flat.unwired.is_empty(), "flat does not need 802.1Q");

        for tunnel in ["gre", "geneve"] {
            let intent = compile(&with_provider(tunnel, None, Some(5)), &mapped("physnet1", "phys0"));
            assert!(intent.unwired[PROVIDER].contains("cannot wire"), "{tunnel}: {:?}", intent.unwired);
            assert!(!intent.networks.contains_key("brqnet-ccccccc"));
        }
    }

    #[test]
    fn local_network_is_a_bridge_alone() {
        let intent = compile(&with_provider("local", None, None), &HostCapabilities::default());
        let n = &intent.networks["brqnet-ccccccc"];
        assert_eq!((n.vxlan.clone(), n.uplink.clone()), (None, None));
        assert!(n.taps.contains_key("tapport-333333"));
    }
}
