//! What the change log records of each object hosts care about: its kind, its id and its
//! *image* (the attributes host views are computed from), or no image once it is gone.

use neutrino_api::agent::{AddressPair, DhcpServer, ExtraDhcpOpt, HostSecurityRule, HostSubnet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The kinds of object the change log records. Each has an image type below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Network,
    Segment,
    Port,
    Agent,
    SecurityGroup,
    AddressGroup,
    FloatingIp,
    Router,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 8] = [
        ObjectKind::Network,
        ObjectKind::Segment,
        ObjectKind::Port,
        ObjectKind::Agent,
        ObjectKind::SecurityGroup,
        ObjectKind::AddressGroup,
        ObjectKind::FloatingIp,
        ObjectKind::Router,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Network => "network",
            ObjectKind::Segment => "segment",
            ObjectKind::Port => "port",
            ObjectKind::Agent => "agent",
            ObjectKind::SecurityGroup => "security_group",
            ObjectKind::AddressGroup => "address_group",
            ObjectKind::FloatingIp => "floatingip",
            ObjectKind::Router => "router",
        }
    }

    pub fn parse(s: &str) -> Option<ObjectKind> {
        ObjectKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A network: its MTU, its subnets and its DHCP port (a subnet or the DHCP port changing
/// records the network's image again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NetworkImage {
    pub mtu: u32,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subnets: BTreeMap<String, HostSubnet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<DhcpServer>,
}

/// A network segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentImage {
    pub network_id: String,
    pub network_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segmentation_id: Option<u32>,
}

/// A port: where it is bound and what peers need to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortImage {
    pub network_id: String,
    /// `binding:host_id` (empty when unbound).
    #[serde(default)]
    pub host: String,
    /// The segment the port is bound to (none when unbound or the binding failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_id: Option<String>,
    pub mac_address: String,
    pub admin_state_up: bool,
    pub status: String,
    /// The fixed IPs, in the port's order.
    #[serde(default)]
    pub ip_addresses: Vec<String>,
    #[serde(default = "enabled")]
    pub port_security_enabled: bool,
    /// Security group ids, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_address_pairs: Vec<AddressPair>,
    /// For a router's interface or gateway port: which router, and its subnets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<RouterPortImage>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_dhcp_opts: Vec<ExtraDhcpOpt>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dns_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub device_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub project_id: String,
}

/// What the image of a router's port adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterPortImage {
    pub router_id: String,
    /// The gateway port (else an interface).
    #[serde(default)]
    pub gateway: bool,
    /// The CIDR of each fixed IP's subnet, in the order of `ip_addresses`.
    #[serde(default)]
    pub cidrs: Vec<String>,
    /// The gateway IP of each fixed IP's subnet (empty without one), in the same order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// For a gateway: whether the router SNATs (`enable_snat`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub snat: bool,
    /// A centralized SNAT port (`network:router_centralized_snat`, bound to a gateway host),
    /// not an interface.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub centralized_snat: bool,
}

fn enabled() -> bool {
    true
}

impl PortImage {
    /// `(host, segment)` when the port is bound to a segment on a host.
    pub fn bound(&self) -> Option<(&str, &str)> {
        match (&self.segment_id, self.host.as_str()) {
            (Some(segment), host) if !host.is_empty() => Some((host, segment.as_str())),
            _ => None,
        }
    }
}

/// A security group: whether it is stateful, and its rules (a rule created or deleted records
/// its group's image again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroupImage {
    pub stateful: bool,
    /// Ordered by id.
    #[serde(default)]
    pub rules: Vec<HostSecurityRule>,
}

impl SecurityGroupImage {
    /// The groups its rules name as remote group.
    pub fn remote_groups(&self) -> std::collections::BTreeSet<&str> {
        self.rules.iter().filter_map(|r| r.remote_group_id.as_deref()).collect()
    }

    /// The address groups its rules name.
    pub fn address_groups(&self) -> std::collections::BTreeSet<&str> {
        self.rules.iter().filter_map(|r| r.remote_address_group_id.as_deref()).collect()
    }
}

/// An address group: its CIDRs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressGroupImage {
    #[serde(default)]
    pub addresses: Vec<String>,
}

/// A floating IP: the fixed IP it maps to (on the host of its port) through which router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloatingIpImage {
    pub floating_ip_address: String,
    pub floating_network_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_ip_address: Option<String>,
    /// Its port forwardings, by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_forwardings: Vec<ForwardingImage>,
}

/// One port forwarding of a floating IP: external ports of the floating IP to an internal
/// port's address (inclusive ranges; a single port is a range of one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardingImage {
    pub id: String,
    pub protocol: String,
    pub internal_port_id: String,
    pub internal_ip_address: String,
    pub internal: (u32, u32),
    pub external: (u32, u32),
}

/// A router: whether it is up, and its extra routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterImage {
    pub admin_state_up: bool,
    /// `(destination, nexthop)`, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<(String, String)>,
}

/// An agent: the host it serves and its VTEP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentImage {
    pub host: String,
    pub agent_type: String,
    pub tunnel_ip: String,
}

/// The image of one object. Images are shared (`Arc`): the model, the window of recent
/// revisions and the log reader hold the same one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    Network(Arc<NetworkImage>),
    Segment(Arc<SegmentImage>),
    Port(Arc<PortImage>),
    Agent(Arc<AgentImage>),
    SecurityGroup(Arc<SecurityGroupImage>),
    AddressGroup(Arc<AddressGroupImage>),
    FloatingIp(Arc<FloatingIpImage>),
    Router(Arc<RouterImage>),
}

impl Image {
    pub fn kind(&self) -> ObjectKind {
        match self {
            Image::Network(_) => ObjectKind::Network,
            Image::Segment(_) => ObjectKind::Segment,
            Image::Port(_) => ObjectKind::Port,
            Image::Agent(_) => ObjectKind::Agent,
            Image::SecurityGroup(_) => ObjectKind::SecurityGroup,
            Image::AddressGroup(_) => ObjectKind::AddressGroup,
            Image::FloatingIp(_) => ObjectKind::FloatingIp,
            Image::Router(_) => ObjectKind::Router,
        }
    }

    /// The stored form (JSON of the image alone; the kind is stored beside it).
    pub fn to_json(&self) -> String {
        let json = match self {
            Image::Network(i) => serde_json::to_string(&**i),
            Image::Segment(i) => serde_json::to_string(&**i),
            Image::Port(i) => serde_json::to_string(&**i),
            Image::Agent(i) => serde_json::to_string(&**i),
            Image::SecurityGroup(i) => serde_json::to_string(&**i),
            Image::AddressGroup(i) => serde_json::to_string(&**i),
            Image::FloatingIp(i) => serde_json::to_string(&**i),
            Image::Router(i) => serde_json::to_string(&**i),
        };
        json.unwrap_or_default()
    }

    pub fn from_json(kind: ObjectKind, json: &str) -> Result<Image, serde_json::Error> {
        Ok(match kind {
            ObjectKind::Network => Image::Network(Arc::new(serde_json::from_str(json)?)),
            ObjectKind::Segment => Image::Segment(Arc::new(serde_json::from_str(json)?)),
            ObjectKind::Port => Image::Port(Arc::new(serde_json::from_str(json)?)),
            ObjectKind::Agent => Image::Agent(Arc::new(serde_json::from_str(json)?)),
            ObjectKind::SecurityGroup => Image::SecurityGroup(Arc::new(serde_json::from_str(json)?)),
            ObjectKind::AddressGroup => Image::AddressGroup(Arc::new(serde_json::from_str(json)?)),
            ObjectKind::FloatingIp => Image::FloatingIp(Arc::new(serde_json::from_str(json)?)),
            ObjectKind::Router => Image::Router(Arc::new(serde_json::from_str(json)?)),
        })
    }

    /// The scopes this image places its object in (which host views it can touch).
    pub fn scopes(&self, id: &str) -> Vec<Scope> {
        match self {
            Image::Network(_) => vec![Scope::Network(id.to_string())],
            Image::Segment(s) => vec![Scope::Network(s.network_id.clone()), Scope::Segment(id.to_string())],
            Image::Port(p) => {
                let mut scopes = vec![Scope::Network(p.network_id.clone())];
                if let Some(segment) = &p.segment_id {
                    scopes.push(Scope::Segment(segment.clone()));
                }
                if !p.host.is_empty() {
                    scopes.push(Scope::Host(p.host.clone()));
                }
                scopes
            }
            Image::Agent(a) => vec![Scope::Host(a.host.clone())],
            Image::SecurityGroup(_) => vec![Scope::SecurityGroup(id.to_string())],
            Image::AddressGroup(_) => vec![Scope::AddressGroup(id.to_string())],
            Image::FloatingIp(f) => f.router_id.iter().map(|r| Scope::Router(r.clone())).collect(),
            Image::Router(_) => vec![Scope::Router(id.to_string())],
        }
    }
}

/// What part of the cloud a change touches. Recorded with each change, so the log says
/// which host views a change can concern without reading its image.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Network(String),
    Segment(String),
    Host(String),
    SecurityGroup(String),
    AddressGroup(String),
    Router(String),
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Network(id) => write!(f, "network:{id}"),
            Scope::Segment(id) => write!(f, "segment:{id}"),
            Scope::Host(host) => write!(f, "host:{host}"),
            Scope::SecurityGroup(id) => write!(f, "security_group:{id}"),
            Scope::AddressGroup(id) => write!(f, "address_group:{id}"),
            Scope::Router(id) => write!(f, "router:{id}"),
        }
    }
}

/// One object's change: its new image, or `None` when it was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectChange {
    pub kind: ObjectKind,
    pub id: String,
    pub image: Option<Image>,
}

impl ObjectChange {
    pub fn new(id: &str, image: Image) -> ObjectChange {
        ObjectChange { kind: image.kind(), id: id.to_string(), image: Some(image) }
    }

    pub fn deleted(kind: ObjectKind, id: &str) -> ObjectChange {
        ObjectChange { kind, id: id.to_string(), image: None }
    }
}

/// One committed transaction's changes, at its revision of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub revision: u64,
    pub changes: Vec<ObjectChange>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_round_trip_through_their_stored_form() {
        let port = Image::Port(Arc::new(PortImage {
            network_id: "n1".into(),
            host: "h1".into(),
            segment_id: Some("s1".into()),
            mac_address: "fa:16:3e:00:00:01".into(),
            admin_state_up: true,
            status: "DOWN".into(),
            ip_addresses: vec!["192.0.2.5".into()],
            port_security_enabled: true,
            security_groups: vec!["g1".into()],
            allowed_address_pairs: Vec::new(),
            router: None,
            extra_dhcp_opts: Vec::new(),
            dns_name: "vm1".into(),
            device_id: "i1".into(),
            project_id: "p".into(),
        }));
        assert_eq!(Image::from_json(ObjectKind::Port, &port.to_json()).unwrap(), port);
        let scopes: Vec<String> = port.scopes("p1").iter().map(ToString::to_string).collect();
        assert_eq!(scopes, ["network:n1", "segment:s1", "host:h1"]);
        for kind in ObjectKind::ALL {
            assert_eq!(ObjectKind::parse(kind.as_str()), Some(kind));
        }
    }
}
