//! The agent protocol: registration, the host-state stream and status reports.
//!
//! The stream is newline-delimited JSON. The first message is a [`StreamMessage::Snapshot`] of
//! everything the host needs at a revision; then [`StreamMessage::Update`]s carry ordered
//! differences; [`StreamMessage::Heartbeat`]s keep an idle connection observably alive.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const AGENT_TYPE_LINUXBRIDGE: &str = "Linux bridge agent";
pub const AGENT_TYPE_OVS: &str = "Open vSwitch agent";

/// `POST /v2.0/neutrino/agents` body, sent at start and then as a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgentRegistration {
    pub host: String,
    pub agent_type: String,
    /// VTEP address on the underlay (`[vxlan] local_ip`).
    pub tunnel_ip: String,
    /// `[AGENT] availability_zone`.
    #[serde(default = "default_availability_zone")]
    pub availability_zone: String,
    /// What the agent can wire, shown as the agent's `configurations` and used by the
    /// mechanism drivers to decide whether a port can be bound on this host.
    #[serde(default)]
    pub configurations: AgentConfigurations,
}

/// An agent's `configurations`, with Neutron's key names.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgentConfigurations {
    /// Linux bridge: physical network → interface (`[linux_bridge] physical_interface_mappings`).
    #[serde(default)]
    pub interface_mappings: BTreeMap<String, String>,
    /// Physical network → bridge (`[linux_bridge]` or `[ovs] bridge_mappings`).
    #[serde(default)]
    pub bridge_mappings: BTreeMap<String, String>,
    /// Overlay types the agent terminates (`vxlan`, `gre`, `geneve`).
    #[serde(default)]
    pub tunnel_types: Vec<String>,
    #[serde(default)]
    pub l2_population: bool,
    /// Open vSwitch: `system` or `netdev`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datapath_type: Option<String>,
    /// Open vSwitch: the integration bridge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_bridge: Option<String>,
    /// Network types this agent's host cannot wire, with the reason (for example VLAN on a
    /// kernel without 802.1Q). Ports on such segments are not bound here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unsupported_network_types: BTreeMap<String, String>,
}

pub fn default_availability_zone() -> String {
    "nova".into()
}

/// One network the host has a local port on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostNetwork {
    pub network_type: String,
    /// For `flat` and `vlan` segments: the physical network, which the agent maps to an interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_network: Option<String>,
    pub segmentation_id: Option<u32>,
    pub mtu: u32,
}

/// A port bound to this host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LocalPort {
    pub network_id: String,
    pub mac_address: String,
    pub admin_state_up: bool,
    pub status: String,
}

/// A port bound to another host on a network this host has ports on (L2 population).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RemotePort {
    pub network_id: String,
    pub mac_address: String,
    pub ip_addresses: Vec<String>,
    /// The VTEP of the host the port is bound to.
    pub tunnel_ip: String,
}

/// Everything one host needs, keyed by id so it can be diffed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostState {
    pub networks: BTreeMap<String, HostNetwork>,
    pub local_ports: BTreeMap<String, LocalPort>,
    pub remote_ports: BTreeMap<String, RemotePort>,
}

/// Ids that left the host's view.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Removed {
    pub networks: Vec<String>,
    pub local_ports: Vec<String>,
    pub remote_ports: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StreamMessage {
    Snapshot { revision: u64, state: HostState },
    Update { revision: u64, upserted: HostState, removed: Removed },
    Heartbeat { revision: u64 },
}

impl HostState {
    /// The update that turns `self` into `next`, or `None` if they are equal.
    pub fn diff(&self, next: &HostState) -> Option<(HostState, Removed)> {
        let mut up = HostState::default();
        let mut rm = Removed::default();
        diff_map(&self.networks, &next.networks, &mut up.networks, &mut rm.networks);
        diff_map(&self.local_ports, &next.local_ports, &mut up.local_ports, &mut rm.local_ports);
        diff_map(&self.remote_ports, &next.remote_ports, &mut up.remote_ports, &mut rm.remote_ports);
        let empty = up == HostState::default() && rm == Removed::default();
        (!empty).then_some((up, rm))
    }

    /// Apply an update produced by [`HostState::diff`].
    pub fn apply(&mut self, upserted: HostState, removed: &Removed) {
        for id in &removed.networks {
            self.networks.remove(id);
        }
        for id in &removed.local_ports {
            self.local_ports.remove(id);
        }
        for id in &removed.remote_ports {
            self.remote_ports.remove(id);
        }
        self.networks.extend(upserted.networks);
        self.local_ports.extend(upserted.local_ports);
        self.remote_ports.extend(upserted.remote_ports);
    }
}

fn diff_map<V: Clone + PartialEq>(
    old: &BTreeMap<String, V>,
    new: &BTreeMap<String, V>,
    upserted: &mut BTreeMap<String, V>,
    removed: &mut Vec<String>,
) {
    for (k, v) in new {
        if old.get(k) != Some(v) {
            upserted.insert(k.clone(), v.clone());
        }
    }
    removed.extend(old.keys().filter(|k| !new.contains_key(*k)).cloned());
}

/// `PUT /v2.0/neutrino/ports/status` body: the agent reports what it wired.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortStatusReport {
    pub host: String,
    /// port id → `ACTIVE` or `DOWN`.
    pub ports: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(net: &str) -> LocalPort {
        LocalPort {
            network_id: net.into(),
            mac_address: "fa:16:3e:00:00:01".into(),
            admin_state_up: true,
            status: "DOWN".into(),
        }
    }

    #[test]
    fn diff_then_apply_reaches_the_new_state() {
        let mut a = HostState::default();
        a.local_ports.insert("p1".into(), port("n1"));
        a.local_ports.insert("p2".into(), port("n1"));
        let mut b = a.clone();
        b.local_ports.remove("p1");
        b.local_ports.insert("p3".into(), port("n2"));
        let (up, rm) = a.diff(&b).unwrap();
        assert_eq!(rm.local_ports, vec!["p1".to_string()]);
        assert_eq!(up.local_ports.len(), 1);
        a.apply(up, &rm);
        assert_eq!(a, b);
        assert!(a.diff(&b).is_none());
    }
}
