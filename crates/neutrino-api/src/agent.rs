//! The agent protocol: registration, the host-state stream and status reports.
//!
//! The stream is newline-delimited JSON. The first message is a [`StreamMessage::Snapshot`] of
//! everything the host needs at a revision of the change log (or, when the agent reconnects
//! with `since=R` and the server still holds the log after R, an [`StreamMessage::Update`]
//! with exactly what changed after R). Then one [`StreamMessage::Update`] per revision that
//! changes the host's view, in revision order; [`StreamMessage::Heartbeat`]s keep an idle
//! connection observably alive and tell the agent how far the log has been read for it.
//!
//! **Versions.** The host state is a set of keyed collections (declared by `host_state!`). A newer
//! server may add collections and fields; an older agent ignores what it does not know, and
//! a newer agent reads a missing collection or field as empty. The agent sends the protocol
//! version it speaks (`protocol=N`); the server answers in that version or refuses with 400
//! when it cannot.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub const AGENT_TYPE_LINUXBRIDGE: &str = "Linux bridge agent";
pub const AGENT_TYPE_OVS: &str = "Open vSwitch agent";
/// The routing role of a host (its row in `/v2.0/agents`, with `agent_mode`).
pub const AGENT_TYPE_L3: &str = "L3 agent";

/// The stream protocol version this build speaks. Version 1 had no `since` and no
/// per-revision updates; version 2 adds both, and keeps version 1's message shapes; version 3
/// adds `routers` (an older server's views have none, which an agent of this build must not
/// take for "no routers here").
pub const PROTOCOL_VERSION: u32 = 3;
/// The oldest version a server of this build still serves.
pub const MIN_PROTOCOL_VERSION: u32 = 1;

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
    /// L3: Neutron's `agent_mode` (`dvr`: routing and floating IPs for the host's own VMs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_mode: Option<String>,
}

pub fn default_availability_zone() -> String {
    "nova".into()
}

/// One network the host has a local port on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct HostNetwork {
    pub network_type: String,
    /// For `flat` and `vlan` segments: the physical network, which the agent maps to an interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_network: Option<String>,
    pub segmentation_id: Option<u32>,
    pub mtu: u32,
    /// The network's subnets by id, as DHCP and router advertisements serve them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subnets: BTreeMap<String, HostSubnet>,
    /// The network's DHCP port (`network:dhcp`): the address and MAC that answer DHCP,
    /// metadata and DNS on every host, never seen beyond it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<DhcpServer>,
}

/// One subnet of a host's network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct HostSubnet {
    pub cidr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_ip: Option<String>,
    #[serde(default)]
    pub enable_dhcp: bool,
    /// `dns_nameservers` (`0.0.0.0` or `::` alone: announce none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_nameservers: Vec<String>,
    /// `host_routes`: `(destination, nexthop)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_routes: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_ra_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address_mode: Option<String>,
}

/// A network's DHCP port.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct DhcpServer {
    pub port_id: String,
    pub mac_address: String,
    #[serde(default)]
    pub ip_addresses: Vec<String>,
}

/// One of a port's `extra_dhcp_opts`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExtraDhcpOpt {
    pub opt_name: String,
    pub opt_value: String,
    pub ip_version: u8,
}

/// A port bound to this host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LocalPort {
    pub network_id: String,
    pub mac_address: String,
    pub admin_state_up: bool,
    pub status: String,
    /// The fixed IPs, in the port's order.
    #[serde(default)]
    pub ip_addresses: Vec<String>,
    /// `port_security_enabled`: without it the port is neither filtered nor checked for
    /// spoofing. A server that does not send it means filtering (the safe side).
    #[serde(default = "enabled")]
    pub port_security_enabled: bool,
    /// The port's security groups (ids, sorted).
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// `allowed_address_pairs`: more source addresses (an IP or a CIDR) the port may use,
    /// each with the MAC it may use them with.
    #[serde(default)]
    pub allowed_address_pairs: Vec<AddressPair>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_dhcp_opts: Vec<ExtraDhcpOpt>,
    /// `dns_name` (empty: the host name is made from the address, as Neutron's).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dns_name: String,
    /// `device_id` (the instance, for metadata) and the owning project.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub device_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub project_id: String,
}

fn enabled() -> bool {
    true
}

impl Default for LocalPort {
    fn default() -> LocalPort {
        LocalPort {
            network_id: String::new(),
            mac_address: String::new(),
            admin_state_up: true,
            status: "DOWN".into(),
            ip_addresses: Vec::new(),
            port_security_enabled: true,
            security_groups: Vec::new(),
            allowed_address_pairs: Vec::new(),
            extra_dhcp_opts: Vec::new(),
            dns_name: String::new(),
            device_id: String::new(),
            project_id: String::new(),
        }
    }
}

/// One allowed address pair of a port.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct AddressPair {
    /// An address or a CIDR.
    pub ip_address: String,
    pub mac_address: String,
}

/// Which way a security group rule lets traffic go, seen from the port.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

/// A security group rule's `ethertype`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EtherType {
    IPv4,
    IPv6,
}

/// A security group some local port is in: its rules, as the agent enforces them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostSecurityGroup {
    /// `stateful`: false means no connection tracking for its ports (replies need rules).
    pub stateful: bool,
    /// The rules, by id.
    pub rules: Vec<HostSecurityRule>,
}

/// One rule of a [`HostSecurityGroup`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostSecurityRule {
    pub id: String,
    pub direction: Direction,
    pub ethertype: EtherType,
    /// IANA protocol number (`None`: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<u8>,
    /// Ports for TCP, UDP, SCTP, DCCP and UDP-Lite; ICMP type for ICMP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_range_min: Option<u32>,
    /// Last port; ICMP code for ICMP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_range_max: Option<u32>,
    /// The normalized CIDR of `remote_ip_prefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_ip_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_address_group_id: Option<String>,
}

/// An address group that rules of this host's groups name as `remote_address_group_id`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostAddressGroup {
    /// Normalized CIDRs.
    pub addresses: Vec<String>,
}

/// A port in a security group that rules of this host's groups name as `remote_group_id`
/// (on any host): the addresses it may send from. Keyed `<group id>/<port id>`, so a port
/// joining a group of 1000 members is one entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroupMember {
    pub group_id: String,
    /// Fixed IPs and allowed address pairs' addresses (an address or a CIDR).
    pub addresses: Vec<String>,
}

impl GroupMember {
    /// The key of a member in [`HostState::group_members`].
    pub fn key(group_id: &str, port_id: &str) -> String {
        format!("{group_id}/{port_id}")
    }
}

/// A port bound to another host on a network this host has ports on (L2 population).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct RemotePort {
    pub network_id: String,
    pub mac_address: String,
    pub ip_addresses: Vec<String>,
    /// The VTEP of the host the port is bound to.
    pub tunnel_ip: String,
    /// `dns_name` (empty: named from its address), for the host's DNS responder.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dns_name: String,
}

/// A router this host runs (it has a local port on a network the router has an interface on):
/// every interface, so it routes between them on this host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostRouter {
    /// The interfaces, by port id.
    #[serde(default)]
    pub interfaces: BTreeMap<String, RouterInterface>,
    /// The router's gateway on its external network, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<RouterGateway>,
    /// The floating IPs of this host's ports through this router, by id: DNAT and SNAT happen
    /// here, where the VM is.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub floating_ips: BTreeMap<String, HostFloatingIp>,
    /// Port forwardings to this host's ports, by id (all of a floating IP's are applied on
    /// the host of its first forwarding's port, which then holds that floating IP).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub port_forwardings: BTreeMap<String, HostPortForwarding>,
    /// Extra routes: `(destination, nexthop)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<(String, String)>,
    /// `admin_state_up`: a router that is down routes nothing (a server that does not send it
    /// means up).
    #[serde(default = "up")]
    pub admin_state_up: bool,
    /// The router's centralized SNAT ports (`network:router_centralized_snat`, one per gateway
    /// host, bound there), in the order the gateway hosts rank for this router: the first whose
    /// host is alive SNATs the router's VMs without a floating IP, with the gateway's address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snat_gateways: Vec<String>,
}

fn up() -> bool {
    true
}

impl Default for HostRouter {
    fn default() -> HostRouter {
        HostRouter {
            interfaces: BTreeMap::new(),
            gateway: None,
            floating_ips: BTreeMap::new(),
            port_forwardings: BTreeMap::new(),
            routes: Vec::new(),
            admin_state_up: true,
            snat_gateways: Vec::new(),
        }
    }
}

/// A router's gateway port.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RouterGateway {
    pub port_id: String,
    pub network_id: String,
    /// Its addresses with their subnet's prefix length.
    pub addresses: Vec<String>,
    /// The gateway IPs of the external subnets, the routers' next hops.
    #[serde(default)]
    pub next_hops: Vec<String>,
    /// `enable_snat`: VMs without a floating IP reach the external network, seen as an
    /// address of the router's.
    #[serde(default)]
    pub enable_snat: bool,
}

/// A port forwarding applied on this host: `protocol` to the floating IP's external ports goes
/// to the internal address's ports (inclusive ranges, of one size or the internal one a port).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostPortForwarding {
    pub floating_ip_address: String,
    pub protocol: String,
    pub internal_ip_address: String,
    pub internal: (u32, u32),
    pub external: (u32, u32),
}

/// A floating IP of a local port.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostFloatingIp {
    pub floating_ip_address: String,
    pub fixed_ip_address: String,
    pub port_id: String,
}

/// One interface of a [`HostRouter`]: the same MAC and gateway addresses on every host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RouterInterface {
    pub network_id: String,
    pub mac_address: String,
    /// Addresses with their subnet's prefix length (`192.0.2.1/24`).
    pub addresses: Vec<String>,
}

/// A value kept in one collection of [`HostState`], keyed by id.
pub trait HostValue: Clone + PartialEq + Sized {
    /// The collection's name on the wire.
    const COLLECTION: &'static str;
    fn collection(state: &HostState) -> &BTreeMap<String, Self>;
    fn collection_mut(state: &mut HostState) -> &mut BTreeMap<String, Self>;
    fn removed_mut(removed: &mut Removed) -> &mut BTreeSet<String>;
}

/// Declares the host state: one keyed collection per line. This generates [`HostState`],
/// [`Removed`] (the ids that left each collection), [`HostValue`] for every value type, and
/// the generic diff, apply and merge, so adding a collection is adding a line.
macro_rules! host_state {
    ($( $(#[$doc:meta])* $field:ident : $value:ty ),* $(,)?) => {
        /// Everything one host needs, as keyed collections that are diffed generically.
        #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
        pub struct HostState {
            $( $(#[$doc])* #[serde(default)] pub $field: BTreeMap<String, $value>, )*
        }

        /// The ids that left each collection of a [`HostState`].
        #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
        pub struct Removed {
            $( #[serde(default)] pub $field: BTreeSet<String>, )*
        }

        $(
            impl HostValue for $value {
                const COLLECTION: &'static str = stringify!($field);
                fn collection(state: &HostState) -> &BTreeMap<String, Self> {
                    &state.$field
                }
                fn collection_mut(state: &mut HostState) -> &mut BTreeMap<String, Self> {
                    &mut state.$field
                }
                fn removed_mut(removed: &mut Removed) -> &mut BTreeSet<String> {
                    &mut removed.$field
                }
            }
        )*

        impl HostState {
            /// The update that turns `self` into `next`, or `None` if they are equal.
            pub fn diff(&self, next: &HostState) -> Option<HostDelta> {
                let mut delta = HostDelta::default();
                $( diff_map(&self.$field, &next.$field, &mut delta.upserted.$field, &mut delta.removed.$field); )*
                (!delta.is_empty()).then_some(delta)
            }

            /// Apply an update (from [`HostState::diff`] or the stream).
            pub fn apply(&mut self, delta: HostDelta) {
                $(
                    for id in &delta.removed.$field {
                        self.$field.remove(id);
                    }
                    self.$field.extend(delta.upserted.$field);
                )*
            }

            /// The number of entries over all collections.
            pub fn len(&self) -> usize {
                0 $( + self.$field.len() )*
            }

            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// Every `(collection, id)` of the state.
            pub fn keys(&self) -> Vec<(&'static str, &str)> {
                let mut keys = Vec::with_capacity(self.len());
                $( keys.extend(self.$field.keys().map(|k| (stringify!($field), k.as_str()))); )*
                keys
            }
        }

        impl Removed {
            pub fn is_empty(&self) -> bool {
                true $( && self.$field.is_empty() )*
            }

            /// Every `(collection, id)` removed.
            pub fn keys(&self) -> Vec<(&'static str, &str)> {
                let mut keys = Vec::new();
                $( keys.extend(self.$field.iter().map(|k| (stringify!($field), k.as_str()))); )*
                keys
            }
        }
    };
}

host_state! {
    /// The networks the host has local ports on, as the segment they are bound to.
    networks: HostNetwork,
    /// The ports bound to the host.
    local_ports: LocalPort,
    /// With L2 population: the ports on other hosts bound to the segments of local ports.
    remote_ports: RemotePort,
    /// The security groups of local ports.
    security_groups: HostSecurityGroup,
    /// The members of every group that rules of those groups name as remote group.
    group_members: GroupMember,
    /// The address groups those rules name.
    address_groups: HostAddressGroup,
    /// The routers with an interface on a network of a local port (their other networks are
    /// in `networks`, and their ports in `remote_ports`, too).
    routers: HostRouter,
}

/// A change of a [`HostState`]: entries upserted and ids removed, per collection.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostDelta {
    #[serde(default)]
    pub upserted: HostState,
    #[serde(default)]
    pub removed: Removed,
}

impl HostDelta {
    pub fn is_empty(&self) -> bool {
        self.upserted.is_empty() && self.removed.is_empty()
    }

    /// Record the entry `id` of `V`'s collection: its new value, or `None` if it left.
    pub fn set<V: HostValue>(&mut self, id: &str, value: Option<V>) {
        let removed = V::removed_mut(&mut self.removed);
        match value {
            Some(v) => {
                removed.remove(id);
                V::collection_mut(&mut self.upserted).insert(id.to_string(), v);
            }
            None => {
                V::collection_mut(&mut self.upserted).remove(id);
                removed.insert(id.to_string());
            }
        }
    }

    /// Record an entry only if it differs from what it was.
    pub fn set_if_changed<V: HostValue>(&mut self, id: &str, before: Option<V>, after: Option<V>) {
        if before != after {
            self.set(id, after);
        }
    }

    /// Every `(collection, id)` the delta touches.
    pub fn keys(&self) -> Vec<(&'static str, &str)> {
        let mut keys = self.upserted.keys();
        keys.extend(self.removed.keys());
        keys
    }
}

fn diff_map<V: Clone + PartialEq>(
    old: &BTreeMap<String, V>,
    new: &BTreeMap<String, V>,
    upserted: &mut BTreeMap<String, V>,
    removed: &mut BTreeSet<String>,
) {
    for (k, v) in new {
        if old.get(k) != Some(v) {
            upserted.insert(k.clone(), v.clone());
        }
    }
    removed.extend(old.keys().filter(|k| !new.contains_key(*k)).cloned());
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StreamMessage {
    Snapshot {
        revision: u64,
        state: HostState,
        /// The protocol version the server answers in (absent from version 1 servers).
        #[serde(default = "protocol_v1")]
        protocol: u32,
    },
    Update {
        revision: u64,
        #[serde(flatten)]
        delta: HostDelta,
    },
    Heartbeat {
        revision: u64,
    },
}

fn protocol_v1() -> u32 {
    1
}

impl StreamMessage {
    pub fn revision(&self) -> u64 {
        match self {
            StreamMessage::Snapshot { revision, .. }
            | StreamMessage::Update { revision, .. }
            | StreamMessage::Heartbeat { revision } => *revision,
        }
    }
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
            ..LocalPort::default()
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
        let delta = a.diff(&b).unwrap();
        assert_eq!(Vec::from_iter(&delta.removed.local_ports), ["p1"]);
        assert_eq!(delta.upserted.local_ports.len(), 1);
        a.apply(delta);
        assert_eq!(a, b);
        assert!(a.diff(&b).is_none());
    }

    #[test]
    fn set_keeps_the_last_word_per_entry() {
        let mut d = HostDelta::default();
        d.set("p1", Some(port("n1")));
        d.set::<LocalPort>("p1", None);
        assert!(d.upserted.local_ports.is_empty());
        assert_eq!(Vec::from_iter(&d.removed.local_ports), ["p1"]);
        d.set("p1", Some(port("n2")));
        assert!(d.removed.local_ports.is_empty());
        assert_eq!(d.upserted.local_ports["p1"].network_id, "n2");
        d.set_if_changed("p2", Some(port("n1")), Some(port("n1")));
        assert_eq!(d.keys(), [("local_ports", "p1")]);
    }

    #[test]
    fn version_1_update_shape_is_kept() {
        let mut d = HostDelta::default();
        d.set::<LocalPort>("p1", None);
        let line = serde_json::to_value(StreamMessage::Update { revision: 7, delta: d }).unwrap();
        assert_eq!(line["kind"], "update");
        assert_eq!(line["revision"], 7);
        assert_eq!(line["removed"]["local_ports"], serde_json::json!(["p1"]));
        assert_eq!(line["upserted"]["networks"], serde_json::json!({}), "every collection is sent");
    }

    #[test]
    fn unknown_collections_and_fields_are_ignored_and_missing_ones_are_empty() {
        // A newer server's message: a collection and a field this build does not know.
        let newer = r#"{"kind":"snapshot","revision":3,"protocol":9,"state":{
            "local_ports":{"p1":{"network_id":"n1","mac_address":"fa:16:3e:00:00:01","admin_state_up":true,
                                 "status":"DOWN","security_groups":["sg1"]}},
            "floating_ips":{"f1":{"address":"203.0.113.5"}}}}"#;
        let StreamMessage::Snapshot { revision, state, protocol } = serde_json::from_str(newer).unwrap() else {
            panic!("a snapshot");
        };
        assert_eq!((revision, protocol, state.local_ports.len()), (3, 9, 1));
        assert!(state.networks.is_empty() && state.remote_ports.is_empty());
        // A version 1 server's snapshot has no protocol field.
        let v1 = r#"{"kind":"snapshot","revision":1,"state":{"networks":{},"local_ports":{},"remote_ports":{}}}"#;
        assert!(matches!(serde_json::from_str(v1).unwrap(), StreamMessage::Snapshot { protocol: 1, .. }));
    }
}
