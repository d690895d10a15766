//! What a committed write did, as typed values: which resource, which id, which operation.
//! The store hands these to the ML2 drivers' postcommit hooks, and decides from the resource
//! which object images the change log records (see [`crate::topology`]).

use crate::topology::ObjectKind;

/// The resources a write can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    Network,
    Subnet,
    Port,
    Segment,
    SegmentRange,
    SecurityGroup,
    SecurityGroupRule,
    AddressScope,
    SubnetPool,
    RbacPolicy,
    Agent,
    Router,
    FloatingIp,
    PortForwarding,
}

impl Resource {
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Network => "network",
            Resource::Subnet => "subnet",
            Resource::Port => "port",
            Resource::Segment => "segment",
            Resource::SegmentRange => "network_segment_range",
            Resource::SecurityGroup => "security_group",
            Resource::SecurityGroupRule => "security_group_rule",
            Resource::AddressScope => "address_scope",
            Resource::SubnetPool => "subnetpool",
            Resource::RbacPolicy => "rbac_policy",
            Resource::Agent => "agent",
            Resource::Router => "router",
            Resource::FloatingIp => "floatingip",
            Resource::PortForwarding => "port_forwarding",
        }
    }

    /// The resource stored in the table `table` (as the tags API names collections).
    pub fn of_table(table: &str) -> Option<Resource> {
        Some(match table {
            "networks" => Resource::Network,
            "subnets" => Resource::Subnet,
            "ports" => Resource::Port,
            "security_groups" => Resource::SecurityGroup,
            "subnetpools" => Resource::SubnetPool,
            "address_scopes" => Resource::AddressScope,
            "routers" => Resource::Router,
            "floatingips" => Resource::FloatingIp,
            _ => return None,
        })
    }

    /// The kind of object the change log keeps an image of for this resource, if any.
    pub fn object_kind(self) -> Option<ObjectKind> {
        match self {
            Resource::Network => Some(ObjectKind::Network),
            Resource::Port => Some(ObjectKind::Port),
            Resource::Segment => Some(ObjectKind::Segment),
            Resource::Agent => Some(ObjectKind::Agent),
            Resource::SecurityGroup => Some(ObjectKind::SecurityGroup),
            Resource::FloatingIp => Some(ObjectKind::FloatingIp),
            Resource::Router => Some(ObjectKind::Router),
            _ => None,
        }
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Create,
    Update,
    Delete,
    /// An agent reported a port's status.
    Status,
    /// The resource's tags changed (no image the agents see changes).
    Tags,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Status => "status",
            Operation::Tags => "tags",
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A committed change, as drivers' `postcommit` hooks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    pub resource: Resource,
    pub id: String,
    pub operation: Operation,
}
