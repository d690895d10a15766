//! Response shapes of the Neutron v2.0 core resources, attribute for attribute as Neutron 29
//! returns them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub tenant_id: String,
    pub project_id: String,
    pub admin_state_up: bool,
    pub mtu: u32,
    pub status: String,
    pub subnets: Vec<String>,
    pub shared: bool,
    pub port_security_enabled: bool,
    pub qos_policy_id: Option<String>,
    #[serde(rename = "router:external")]
    pub router_external: bool,
    /// The `provider:*` attributes of a single-segment network; absent on multi-segment ones.
    #[serde(flatten, default)]
    pub provider: Option<ProviderSegment>,
    /// Every segment of a multi-segment network (the multi-provider extension).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub segments: Option<Vec<ProviderSegment>>,
    /// Neutron shows `is_default` on external networks and in create replies only.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub is_default: Option<bool>,
    pub availability_zone_hints: Vec<String>,
    pub availability_zones: Vec<String>,
    pub ipv4_address_scope: Option<String>,
    pub ipv6_address_scope: Option<String>,
    pub description: String,
    pub l2_adjacency: bool,
    /// DNS integration only, like `Port::dns_name`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dns_domain: Option<String>,
    pub tags: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: u64,
}

/// One segment as the provider and multi-provider extensions show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProviderSegment {
    #[serde(rename = "provider:network_type")]
    pub network_type: String,
    #[serde(rename = "provider:physical_network")]
    pub physical_network: Option<String>,
    #[serde(rename = "provider:segmentation_id")]
    pub segmentation_id: Option<u32>,
}

/// `/v2.0/segments`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Segment {
    pub id: String,
    pub network_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub physical_network: Option<String>,
    pub network_type: String,
    pub segmentation_id: Option<u32>,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: u64,
}

/// `/v2.0/network_segment_ranges`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetworkSegmentRange {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    pub default: bool,
    pub shared: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub project_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tenant_id: Option<String>,
    pub network_type: String,
    /// `""` for tunnel types.
    pub physical_network: String,
    pub minimum: u32,
    pub maximum: u32,
    pub revision_number: u64,
    pub created_at: String,
    /// Kept, but not shown: Neutron's replies carry `created_at` only.
    #[serde(skip_serializing, default)]
    pub updated_at: String,
    /// Free segmentation ids in the range.
    pub available: Vec<u32>,
    /// Segmentation id (as text) → project of the network holding it.
    pub used: std::collections::BTreeMap<String, String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AllocationPool {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostRoute {
    pub destination: String,
    pub nexthop: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Subnet {
    pub id: String,
    pub name: String,
    pub tenant_id: String,
    pub project_id: String,
    pub network_id: String,
    pub ip_version: u8,
    pub subnetpool_id: Option<String>,
    pub enable_dhcp: bool,
    pub ipv6_ra_mode: Option<String>,
    pub ipv6_address_mode: Option<String>,
    pub gateway_ip: Option<String>,
    pub cidr: String,
    pub allocation_pools: Vec<AllocationPool>,
    pub host_routes: Vec<HostRoute>,
    pub dns_nameservers: Vec<String>,
    pub description: String,
    #[serde(rename = "router:external")]
    pub router_external: bool,
    pub service_types: Vec<String>,
    pub segment_id: Option<String>,
    pub tags: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FixedIp {
    pub subnet_id: String,
    pub ip_address: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Port {
    pub id: String,
    pub name: String,
    pub network_id: String,
    pub tenant_id: String,
    pub project_id: String,
    pub mac_address: String,
    pub admin_state_up: bool,
    pub status: String,
    pub device_id: String,
    pub device_owner: String,
    pub fixed_ips: Vec<FixedIp>,
    pub port_security_enabled: bool,
    pub qos_policy_id: Option<String>,
    pub qos_network_policy_id: Option<String>,
    pub security_groups: Vec<String>,
    #[serde(rename = "binding:vnic_type")]
    pub vnic_type: String,
    #[serde(rename = "binding:profile")]
    pub profile: Map<String, Value>,
    #[serde(rename = "binding:host_id")]
    pub host_id: String,
    #[serde(rename = "binding:vif_type")]
    pub vif_type: String,
    #[serde(rename = "binding:vif_details")]
    pub vif_details: Map<String, Value>,
    pub allowed_address_pairs: Vec<Value>,
    pub extra_dhcp_opts: Vec<Value>,
    pub description: String,
    pub ip_allocation: String,
    pub resource_request: Option<Value>,
    /// DNS integration (`[ml2] extension_drivers = dns`): absent when it is off, as in Neutron.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dns_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dns_assignment: Option<Vec<Value>>,
    pub tags: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SecurityGroupRule {
    pub id: String,
    pub project_id: String,
    pub tenant_id: String,
    pub security_group_id: String,
    pub ethertype: String,
    pub direction: String,
    pub protocol: Option<String>,
    pub port_range_min: Option<i64>,
    pub port_range_max: Option<i64>,
    pub remote_ip_prefix: Option<String>,
    pub remote_address_group_id: Option<String>,
    pub normalized_cidr: Option<String>,
    pub remote_group_id: Option<String>,
    pub belongs_to_default_sg: bool,
    pub description: String,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub stateful: bool,
    pub tenant_id: String,
    pub project_id: String,
    pub description: String,
    pub shared: bool,
    pub security_group_rules: Vec<SecurityGroupRule>,
    pub tags: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: u64,
}

/// Address usage counts; u128 because an IPv6 /64 alone holds 2^64 addresses.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct IpAvailabilityDetails {
    pub total_ips_in_subnet: u128,
    pub total_ips_in_allocation_pool: u128,
    pub used_ips_in_subnet: u128,
    pub used_ips_in_allocation_pool: u128,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SubnetIpAvailability {
    pub subnet_id: String,
    pub ip_version: u8,
    pub cidr: String,
    pub subnet_name: String,
    pub used_ips: u128,
    pub total_ips: u128,
    pub ip_availability_details: IpAvailabilityDetails,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NetworkIpAvailability {
    pub network_id: String,
    pub network_name: String,
    pub project_id: String,
    pub tenant_id: String,
    pub subnet_ip_availability: Vec<SubnetIpAvailability>,
    pub used_ips: u128,
    pub total_ips: u128,
    pub ip_availability_details: IpAvailabilityDetails,
}

/// A rule new security groups start with: `remote_group_id` `PARENT` is the new group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DefaultSecurityGroupRule {
    pub id: String,
    pub direction: String,
    pub ethertype: String,
    pub protocol: Option<String>,
    pub port_range_min: Option<i64>,
    pub port_range_max: Option<i64>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
    pub remote_address_group_id: Option<String>,
    pub description: String,
    pub used_in_default_sg: bool,
    pub used_in_non_default_sg: bool,
}

/// An address group: CIDRs that security group rules name as `remote_address_group_id`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AddressGroup {
    pub id: String,
    pub name: String,
    pub description: String,
    pub tenant_id: String,
    pub project_id: String,
    /// Normalized CIDRs, sorted.
    pub addresses: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AddressScope {
    pub id: String,
    pub name: String,
    pub tenant_id: String,
    pub project_id: String,
    pub shared: bool,
    pub ip_version: u8,
}

/// Prefix lengths are strings on the wire, as Neutron sends them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SubnetPool {
    pub id: String,
    pub name: String,
    pub tenant_id: String,
    pub project_id: String,
    pub prefixes: Vec<String>,
    pub default_prefixlen: String,
    pub min_prefixlen: String,
    pub max_prefixlen: String,
    pub ip_version: u8,
    pub address_scope_id: Option<String>,
    pub is_default: bool,
    pub shared: bool,
    pub default_quota: Option<u64>,
    pub description: String,
    pub tags: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: u64,
}

/// An entry of `GET /v2.0/extensions`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Extension {
    pub name: String,
    pub alias: String,
    pub description: String,
    pub updated: String,
    pub links: Vec<Value>,
}

/// A router (`router`, `ext-gw-mode`, `extraroute`, `dvr`, `l3-ha`, `router_availability_zone`,
/// `l3-flavors`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Router {
    pub id: String,
    pub name: String,
    pub description: String,
    pub tenant_id: String,
    pub project_id: String,
    pub admin_state_up: bool,
    pub status: String,
    pub external_gateway_info: Option<ExternalGatewayInfo>,
    pub routes: Vec<RouterRoute>,
    pub distributed: bool,
    pub ha: bool,
    pub availability_zone_hints: Vec<String>,
    pub availability_zones: Vec<String>,
    pub flavor_id: Option<String>,
    pub tags: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: u64,
}

/// A router's gateway on an external network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExternalGatewayInfo {
    pub network_id: String,
    pub enable_snat: bool,
    pub external_fixed_ips: Vec<ExternalFixedIp>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExternalFixedIp {
    pub subnet_id: String,
    pub ip_address: String,
}

/// An extra route of a router.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouterRoute {
    pub destination: String,
    pub nexthop: String,
}

/// The reply of `add_router_interface` and `remove_router_interface`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RouterInterfaceInfo {
    pub id: String,
    pub tenant_id: String,
    pub project_id: String,
    pub port_id: String,
    pub network_id: String,
    pub subnet_id: String,
    pub subnet_ids: Vec<String>,
}

/// A floating IP (`fip-port-details`, `expose-port-forwarding-in-fip`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FloatingIp {
    pub id: String,
    pub tenant_id: String,
    pub project_id: String,
    pub floating_ip_address: String,
    pub floating_network_id: String,
    pub router_id: Option<String>,
    pub port_id: Option<String>,
    pub fixed_ip_address: Option<String>,
    pub status: String,
    pub description: String,
    pub port_details: Option<FloatingIpPortDetails>,
    pub port_forwardings: Vec<FipPortForwarding>,
    /// Shown (null) as by networks and ports; QoS policies are not built.
    pub qos_policy_id: Option<String>,
    /// DNS integration only.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dns_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dns_domain: Option<String>,
    pub tags: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: u64,
}

/// A port forwarding as its floating IP shows it (`expose-port-forwarding-in-fip`, with
/// `floating-ip-port-forwarding-detail`'s `id` and `internal_port_id`): single ports, or the
/// ranges of a range forwarding.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FipPortForwarding {
    pub id: String,
    pub protocol: String,
    pub internal_ip_address: String,
    pub internal_port_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_port: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_port: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_port_range: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_port_range: Option<String>,
}

impl From<&PortForwarding> for FipPortForwarding {
    fn from(pf: &PortForwarding) -> Self {
        let single = pf.internal_port.is_some();
        FipPortForwarding {
            id: pf.id.clone(),
            protocol: pf.protocol.clone(),
            internal_ip_address: pf.internal_ip_address.clone(),
            internal_port_id: pf.internal_port_id.clone(),
            internal_port: pf.internal_port,
            external_port: pf.external_port,
            internal_port_range: (!single).then(|| pf.internal_port_range.clone()),
            external_port_range: (!single).then(|| pf.external_port_range.clone()),
        }
    }
}

/// What a floating IP shows of its port (`fip-port-details`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FloatingIpPortDetails {
    pub name: String,
    pub network_id: String,
    pub mac_address: String,
    pub admin_state_up: bool,
    pub status: String,
    pub device_id: String,
    pub device_owner: String,
}

/// A port forwarding of a floating IP (`floating-ip-port-forwarding` and its `-description`,
/// `-port-ranges` extensions).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortForwarding {
    pub id: String,
    pub protocol: String,
    pub internal_ip_address: String,
    pub internal_port_id: String,
    /// Single ports; `None` when the forwarding is a range.
    pub internal_port: Option<u32>,
    pub external_port: Option<u32>,
    pub internal_port_range: String,
    pub external_port_range: String,
    pub description: String,
}
