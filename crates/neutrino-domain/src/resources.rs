//! One definition per API resource: its member and collection names, the path segments its
//! collection is served at, and its attribute map (what a create may set, what an update may
//! change, and what is shown but never written), as neutron-lib's `RESOURCE_ATTRIBUTE_MAP`s
//! declare them. Request parsing and authorization both read it, so a body is judged the
//! same way, and before anything else, whoever sends it.

use std::fmt;

/// An API resource.
#[derive(Debug)]
pub struct ResourceDef {
    /// The member name (`security_group`), also the body key of one item.
    pub member: &'static str,
    /// The collection name (`security_groups`), also the body key of a list.
    pub collection: &'static str,
    /// The collection's path segments under `/v2.0/` (the first is Neutron's own).
    pub paths: &'static [&'static str],
    /// Attributes a create may set (`allow_post`).
    pub create: &'static [&'static str],
    /// Attributes an update may change (`allow_put`).
    pub update: &'static [&'static str],
    /// Attributes shown but set by the server only.
    pub read_only: &'static [&'static str],
    /// Who sees which of its items, and how that is decided.
    pub reads: Reads,
    /// Whether it carries tags (`/tags` and the tag filters; `standard-attr-tag`).
    pub taggable: bool,
}

/// How reads of a resource are narrowed to what the caller may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// Each item by `get_<resource>` on the item itself; attributes the policy hides removed.
    Policy,
    /// Visibility needs more than the row (its network's owner, sharing): lists are narrowed
    /// in the database and items checked by their operations; attributes still redacted.
    NarrowedInSql,
    /// Lists only admins may read (by default): others get an empty list, computed for nobody.
    AdminOnlyList,
    /// Only the store's visibility narrows it (a project's own items; or everyone's, for
    /// templates everyone reads); the policy does not look at items.
    StoreOnly,
}

/// A body naming an attribute it may not: Neutron's messages (all `400 HTTPBadRequest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    Unrecognized(Vec<String>),
    NotAllowedInPost(String),
    ReadOnly(String),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Unrecognized(names) => write!(f, "Unrecognized attribute(s) '{}'", names.join(", ")),
            BodyError::NotAllowedInPost(name) => write!(f, "Attribute '{name}' not allowed in POST"),
            BodyError::ReadOnly(name) => write!(f, "Cannot update read-only attribute {name}"),
        }
    }
}

impl ResourceDef {
    /// Whether the attribute map has `attribute` at all.
    pub fn knows(&self, attribute: &str) -> bool {
        [self.create, self.update, self.read_only].iter().any(|list| list.contains(&attribute))
    }

    /// Check a create body's keys: unknown ones first, then those a create may not set.
    pub fn check_create<'a>(&self, keys: impl IntoIterator<Item = &'a str> + Clone) -> Result<(), BodyError> {
        self.check_known(keys.clone())?;
        match keys.into_iter().find(|k| !self.create.contains(k)) {
            Some(k) => Err(BodyError::NotAllowedInPost(k.to_string())),
            None => Ok(()),
        }
    }

    /// Check an update body's keys: unknown ones first, then those an update may not change.
    pub fn check_update<'a>(&self, keys: impl IntoIterator<Item = &'a str> + Clone) -> Result<(), BodyError> {
        self.check_known(keys.clone())?;
        match keys.into_iter().find(|k| !self.update.contains(k)) {
            // Neutron copies `project_id` into `tenant_id` first, and names that one.
            Some("project_id") => Err(BodyError::ReadOnly("tenant_id".into())),
            Some(k) => Err(BodyError::ReadOnly(k.to_string())),
            None => Ok(()),
        }
    }

    fn check_known<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> Result<(), BodyError> {
        let unknown: Vec<String> = keys.into_iter().filter(|k| !self.knows(k)).map(String::from).collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(BodyError::Unrecognized(unknown))
        }
    }
}

/// The standard attributes every resource with them shows.
macro_rules! standard {
    ($($extra:literal),* $(,)?) => {
        &["id", "created_at", "updated_at", "revision_number", $($extra),*]
    };
}

/// `a` then `b`, at compile time (`N` must be their total length).
const fn concat<const A: usize, const B: usize, const N: usize>(
    a: [&'static str; A],
    b: [&'static str; B],
) -> [&'static str; N] {
    assert!(N == A + B, "concat: N must be A + B");
    let mut out = [""; N];
    let mut i = 0;
    while i < A {
        out[i] = a[i];
        i += 1;
    }
    while i < N {
        out[i] = b[i - A];
        i += 1;
    }
    out
}

/// What a network create and update both accept.
const NETWORK_WRITABLE: [&str; 14] = [
    "name",
    "description",
    "admin_state_up",
    "shared",
    "mtu",
    "port_security_enabled",
    "router:external",
    "qos_policy_id",
    "is_default",
    "dns_domain",
    // Accepted unchanged in updates (clients send objects back whole); changes are refused.
    "provider:network_type",
    "provider:physical_network",
    "provider:segmentation_id",
    "segments",
];

const NETWORK_CREATE: [&str; 18] =
    concat(NETWORK_WRITABLE, ["project_id", "tenant_id", "availability_zone_hints", "tags"]);

pub const NETWORK: ResourceDef = ResourceDef {
    member: "network",
    collection: "networks",
    paths: &["networks"],
    create: &NETWORK_CREATE,
    update: &NETWORK_WRITABLE,
    read_only: standard![
        "status",
        "subnets",
        "availability_zones",
        "l2_adjacency",
        "ipv4_address_scope",
        "ipv6_address_scope"
    ],
    reads: Reads::Policy,
    taggable: true,
};

/// What a subnet create and update both accept.
const SUBNET_WRITABLE: [&str; 10] = [
    "name",
    "description",
    "gateway_ip",
    "allocation_pools",
    "dns_nameservers",
    "host_routes",
    "enable_dhcp",
    "service_types",
    "segment_id",
    "dns_publish_fixed_ip",
];

const SUBNET_CREATE: [&str; 21] = concat(
    SUBNET_WRITABLE,
    [
        "network_id",
        "ip_version",
        "cidr",
        "ipv6_ra_mode",
        "ipv6_address_mode",
        "project_id",
        "tenant_id",
        "subnetpool_id",
        "use_default_subnetpool",
        "tags",
        "prefixlen",
    ],
);

pub const SUBNET: ResourceDef = ResourceDef {
    member: "subnet",
    collection: "subnets",
    paths: &["subnets"],
    create: &SUBNET_CREATE,
    update: &SUBNET_WRITABLE,
    // (`shared` is in Neutron's map, never writable.)
    read_only: standard!["router:external", "shared"],
    reads: Reads::NarrowedInSql,
    taggable: true,
};

/// What a port create and update both accept.
const PORT_WRITABLE: [&str; 16] = [
    "name",
    "description",
    "admin_state_up",
    "mac_address",
    "fixed_ips",
    "device_id",
    "device_owner",
    "binding:host_id",
    "binding:profile",
    "binding:vnic_type",
    "security_groups",
    "port_security_enabled",
    "allowed_address_pairs",
    "extra_dhcp_opts",
    "qos_policy_id",
    "dns_name",
];

const PORT_CREATE: [&str; 20] = concat(PORT_WRITABLE, ["network_id", "project_id", "tenant_id", "tags"]);

pub const PORT: ResourceDef = ResourceDef {
    member: "port",
    collection: "ports",
    paths: &["ports"],
    create: &PORT_CREATE,
    update: &PORT_WRITABLE,
    read_only: standard![
        "status",
        "binding:vif_type",
        "binding:vif_details",
        "dns_assignment",
        "resource_request",
        "ip_allocation"
    ],
    reads: Reads::NarrowedInSql,
    taggable: true,
};

pub const SECURITY_GROUP: ResourceDef = ResourceDef {
    member: "security_group",
    collection: "security_groups",
    paths: &["security-groups", "security_groups"],
    create: &["name", "description", "stateful", "project_id", "tenant_id", "tags"],
    update: &["name", "description", "stateful"],
    read_only: standard!["security_group_rules", "shared"],
    reads: Reads::Policy,
    taggable: true,
};

/// What a security group rule and a default rule (a rule's template) are made of.
const RULE_ATTRIBUTES: [&str; 11] = [
    "direction",
    "ethertype",
    "protocol",
    "port_range_min",
    "port_range_max",
    "remote_ip_prefix",
    "remote_group_id",
    "remote_address_group_id",
    "description",
    "project_id",
    "tenant_id",
];

const DEFAULT_RULE_CREATE: [&str; 13] = concat(RULE_ATTRIBUTES, ["used_in_default_sg", "used_in_non_default_sg"]);

pub const DEFAULT_SECURITY_GROUP_RULE: ResourceDef = ResourceDef {
    member: "default_security_group_rule",
    collection: "default_security_group_rules",
    paths: &["default-security-group-rules", "default_security_group_rules"],
    create: &DEFAULT_RULE_CREATE,
    update: &[],
    read_only: &["id"],
    reads: Reads::StoreOnly,
    taggable: false,
};

pub const ADDRESS_GROUP: ResourceDef = ResourceDef {
    member: "address_group",
    collection: "address_groups",
    paths: &["address-groups", "address_groups"],
    create: &["name", "description", "addresses", "project_id", "tenant_id"],
    update: &["name", "description"],
    read_only: standard!["shared"],
    reads: Reads::StoreOnly,
    taggable: false,
};

const RULE_CREATE: [&str; 12] = concat(["security_group_id"], RULE_ATTRIBUTES);

pub const SECURITY_GROUP_RULE: ResourceDef = ResourceDef {
    member: "security_group_rule",
    collection: "security_group_rules",
    paths: &["security-group-rules", "security_group_rules"],
    create: &RULE_CREATE,
    update: &[],
    read_only: standard!["belongs_to_default_sg", "normalized_cidr"],
    reads: Reads::NarrowedInSql,
    taggable: false,
};

/// What a subnetpool create and update both accept.
const SUBNETPOOL_WRITABLE: [&str; 9] = [
    "name",
    "description",
    "prefixes",
    "default_prefixlen",
    "min_prefixlen",
    "max_prefixlen",
    "address_scope_id",
    "is_default",
    "default_quota",
];

const SUBNETPOOL_CREATE: [&str; 13] = concat(SUBNETPOOL_WRITABLE, ["shared", "project_id", "tenant_id", "tags"]);

pub const SUBNETPOOL: ResourceDef = ResourceDef {
    member: "subnetpool",
    collection: "subnetpools",
    paths: &["subnetpools"],
    create: &SUBNETPOOL_CREATE,
    update: &SUBNETPOOL_WRITABLE,
    read_only: standard!["ip_version"],
    reads: Reads::Policy,
    taggable: true,
};

pub const ADDRESS_SCOPE: ResourceDef = ResourceDef {
    member: "address_scope",
    collection: "address_scopes",
    paths: &["address-scopes", "address_scopes"],
    create: &["name", "ip_version", "shared", "project_id", "tenant_id"],
    update: &["name", "shared"],
    read_only: &["id"],
    reads: Reads::Policy,
    taggable: false,
};

pub const RBAC_POLICY: ResourceDef = ResourceDef {
    member: "rbac_policy",
    collection: "rbac_policies",
    paths: &["rbac-policies", "rbac_policies"],
    create: &["object_type", "object_id", "action", "target_tenant", "project_id", "tenant_id"],
    update: &["target_tenant"],
    read_only: &["id"],
    reads: Reads::Policy,
    taggable: false,
};

pub const SEGMENT: ResourceDef = ResourceDef {
    member: "segment",
    collection: "segments",
    paths: &["segments"],
    create: &[
        "network_id",
        "network_type",
        "physical_network",
        "segmentation_id",
        "name",
        "description",
        "project_id",
        "tenant_id",
    ],
    update: &["name", "description"],
    read_only: standard![],
    reads: Reads::AdminOnlyList,
    taggable: false,
};

pub const NETWORK_SEGMENT_RANGE: ResourceDef = ResourceDef {
    member: "network_segment_range",
    collection: "network_segment_ranges",
    paths: &["network_segment_ranges", "network-segment-ranges"],
    create: &[
        "name",
        "description",
        "shared",
        "project_id",
        "tenant_id",
        "network_type",
        "physical_network",
        "minimum",
        "maximum",
        "tags",
    ],
    update: &["name", "description", "minimum", "maximum"],
    read_only: standard!["default", "available", "used"],
    reads: Reads::AdminOnlyList,
    taggable: false,
};

pub const AGENT: ResourceDef = ResourceDef {
    member: "agent",
    collection: "agents",
    paths: &["agents"],
    create: &[],
    update: &["admin_state_up", "description"],
    read_only: &[
        "id",
        "agent_type",
        "binary",
        "topic",
        "host",
        "created_at",
        "started_at",
        "heartbeat_timestamp",
        "alive",
        "configurations",
        "availability_zone",
        "resources_synced",
    ],
    reads: Reads::AdminOnlyList,
    taggable: false,
};

/// Collections that are read only (no attribute map of their own to write).
pub const NETWORK_IP_AVAILABILITY: ResourceDef = ResourceDef {
    member: "network_ip_availability",
    collection: "network_ip_availabilities",
    paths: &["network-ip-availabilities", "network_ip_availabilities"],
    create: &[],
    update: &[],
    read_only: &[],
    reads: Reads::AdminOnlyList,
    taggable: false,
};

pub const AVAILABILITY_ZONE: ResourceDef = ResourceDef {
    member: "availability_zone",
    collection: "availability_zones",
    paths: &["availability_zones"],
    create: &[],
    update: &[],
    read_only: &["name", "resource", "state"],
    reads: Reads::Policy,
    taggable: false,
};

pub const QUOTA: ResourceDef = ResourceDef {
    member: "quota",
    collection: "quotas",
    paths: &["quotas"],
    create: &[],
    update: &[
        "network",
        "subnet",
        "port",
        "subnetpool",
        "security_group",
        "security_group_rule",
        "rbac_policy",
        "router",
        "floatingip",
        "router_route",
        "force",
        "check_limit",
    ],
    read_only: &[],
    reads: Reads::StoreOnly,
    taggable: false,
};

pub const ROUTER: ResourceDef = ResourceDef {
    member: "router",
    collection: "routers",
    paths: &["routers"],
    create: &[
        "name",
        "description",
        "admin_state_up",
        "external_gateway_info",
        "distributed",
        "ha",
        "availability_zone_hints",
        "flavor_id",
        "project_id",
        "tenant_id",
        "tags",
    ],
    update: &["name", "description", "admin_state_up", "external_gateway_info", "routes", "distributed", "ha"],
    read_only: standard!["status", "availability_zones"],
    reads: Reads::Policy,
    taggable: true,
};

pub const FLOATINGIP: ResourceDef = ResourceDef {
    member: "floatingip",
    collection: "floatingips",
    paths: &["floatingips"],
    create: &[
        "floating_network_id",
        "floating_ip_address",
        "subnet_id",
        "port_id",
        "fixed_ip_address",
        "description",
        "dns_name",
        "dns_domain",
        "project_id",
        "tenant_id",
        "tags",
    ],
    update: &["port_id", "fixed_ip_address", "description"],
    read_only: standard!["router_id", "status", "port_details", "port_forwardings"],
    reads: Reads::Policy,
    taggable: true,
};

pub const PORT_FORWARDING: ResourceDef = ResourceDef {
    member: "port_forwarding",
    collection: "port_forwardings",
    paths: &["port_forwardings"],
    create: &[
        "external_port",
        "internal_port",
        "internal_ip_address",
        "protocol",
        "internal_port_id",
        "description",
        "external_port_range",
        "internal_port_range",
        "project_id",
        "tenant_id",
    ],
    update: &[
        "external_port",
        "internal_port",
        "internal_ip_address",
        "protocol",
        "internal_port_id",
        "description",
        "external_port_range",
        "internal_port_range",
    ],
    read_only: &["id"],
    reads: Reads::StoreOnly,
    taggable: false,
};

/// Every resource.
pub const ALL: [&ResourceDef; 19] = [
    &ROUTER,
    &FLOATINGIP,
    &PORT_FORWARDING,
    &NETWORK,
    &SUBNET,
    &PORT,
    &SECURITY_GROUP,
    &SECURITY_GROUP_RULE,
    &ADDRESS_GROUP,
    &DEFAULT_SECURITY_GROUP_RULE,
    &SUBNETPOOL,
    &ADDRESS_SCOPE,
    &RBAC_POLICY,
    &SEGMENT,
    &NETWORK_SEGMENT_RANGE,
    &AGENT,
    &NETWORK_IP_AVAILABILITY,
    &AVAILABILITY_ZONE,
    &QUOTA,
];

/// The resource whose collection is served at `/v2.0/<segment>`.
pub fn by_path(segment: &str) -> Option<&'static ResourceDef> {
    ALL.into_iter().find(|d| d.paths.contains(&segment))
}

/// The collections that carry tags (also the store's names for them).
pub fn taggable_collections() -> impl Iterator<Item = &'static str> {
    ALL.into_iter().filter(|d| d.taggable).map(|d| d.collection)
}

/// The resource of a member name.
pub fn by_member(member: &str) -> Option<&'static ResourceDef> {
    ALL.into_iter().find(|d| d.member == member)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_attributes_come_before_read_only_ones() {
        let e = SUBNETPOOL.check_update(["shared", "bogus"]).unwrap_err();
        assert_eq!(e.to_string(), "Unrecognized attribute(s) 'bogus'");
        let e = SUBNETPOOL.check_update(["name", "shared"]).unwrap_err();
        assert_eq!(e.to_string(), "Cannot update read-only attribute shared");
        let e = PORT.check_update(["status"]).unwrap_err();
        assert_eq!(e.to_string(), "Cannot update read-only attribute status");
        let e = NETWORK.check_create(["name", "status"]).unwrap_err();
        assert_eq!(e.to_string(), "Attribute 'status' not allowed in POST");
        assert!(PORT.check_create(["network_id", "name", "tags"]).is_ok());
        assert!(PORT.check_update(["network_id"]).is_err(), "a port's network is set once");
    }

    #[test]
    fn every_path_and_member_names_one_resource() {
        for def in ALL {
            assert_eq!(by_member(def.member).map(|d| d.collection), Some(def.collection));
            for path in def.paths {
                assert_eq!(by_path(path).map(|d| d.member), Some(def.member));
            }
            for attr in def.update {
                assert!(!def.read_only.contains(attr), "{}: {attr} is both writable and read-only", def.member);
            }
        }
        assert_eq!(PORT_CREATE.len(), PORT_WRITABLE.len() + 4);
    }
}
