//! The schema, as ordered migrations. Written once for both backends; the only dialect
//! difference (the change log's serial key) is substituted per backend.

use crate::Backend;

/// Each entry is applied once, in order, inside one transaction, and recorded in
/// `schema_migrations`.
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_core", CORE),
    ("0002_tags", TAGS),
    ("0003_security_groups", SECURITY_GROUPS),
    ("0004_port_options", PORT_OPTIONS),
    ("0005_filter_indexes", FILTER_INDEXES),
    ("0006_subnet_pools", SUBNET_POOLS),
    ("0007_subnet_service_types", SERVICE_TYPES),
    ("0008_availability_zones", AVAILABILITY_ZONES),
    ("0009_dns", DNS),
    ("0010_agent_description", AGENT_DESCRIPTION),
    ("0011_segments", SEGMENTS),
    ("0012_rbac", RBAC),
    ("0013_quotas", QUOTAS),
    ("0014_change_log", CHANGE_LOG),
    ("0015_subnetpool_quota", SUBNETPOOL_QUOTA),
    ("0016_external_networks", EXTERNAL_NETWORKS),
    ("0017_one_default_external_network", ONE_DEFAULT_EXTERNAL_NETWORK),
    ("0018_address_groups", ADDRESS_GROUPS),
    ("0019_default_security_group_rules", DEFAULT_SECURITY_GROUP_RULES),
    ("0020_routers", ROUTERS),
    ("0021_host_gateway_ports", HOST_GATEWAY_PORTS),
];

/// One external address per host and external network for distributed SNAT (DVR's
/// `floatingip_agent_gateway` ports, whose `device_id` is the host): concurrent requests of one
/// host meet this key.
const HOST_GATEWAY_PORTS: &str = "CREATE UNIQUE INDEX ports_host_gateway ON ports (network_id, device_id) \
    WHERE device_owner = 'network:floatingip_agent_gateway'";

/// Routers (their interfaces and gateway are ports whose `device_id` is the router), their
/// extra routes, floating IPs and port forwardings. A fixed IP has at most one floating IP, and
/// a router one port per interface subnet (taken under the router's row lock).
const ROUTERS: &str = r#"
CREATE TABLE routers (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    admin_state_up BOOLEAN NOT NULL,
    status TEXT NOT NULL,
    gw_port_id TEXT REFERENCES ports (id),
    enable_snat BOOLEAN NOT NULL,
    distributed BOOLEAN NOT NULL,
    ha BOOLEAN NOT NULL,
    availability_zone_hints TEXT NOT NULL,
    flavor_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision_number BIGINT NOT NULL
);
CREATE INDEX routers_project ON routers (project_id);

CREATE TABLE router_routes (
    router_id TEXT NOT NULL REFERENCES routers (id),
    destination TEXT NOT NULL,
    nexthop TEXT NOT NULL,
    PRIMARY KEY (router_id, destination, nexthop)
);

CREATE TABLE floatingips (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    floating_network_id TEXT NOT NULL REFERENCES networks (id),
    floating_port_id TEXT NOT NULL REFERENCES ports (id),
    floating_ip_address TEXT NOT NULL,
    fixed_port_id TEXT REFERENCES ports (id),
    fixed_ip_address TEXT,
    router_id TEXT REFERENCES routers (id),
    status TEXT NOT NULL,
    description TEXT NOT NULL,
    dns_name TEXT NOT NULL DEFAULT '',
    dns_domain TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision_number BIGINT NOT NULL,
    UNIQUE (floating_network_id, fixed_port_id, fixed_ip_address)
);
CREATE INDEX floatingips_fixed_port ON floatingips (fixed_port_id);
CREATE INDEX floatingips_floating_port ON floatingips (floating_port_id);
CREATE INDEX routers_gw_port ON routers (gw_port_id);
CREATE INDEX floatingips_router ON floatingips (router_id);
CREATE INDEX floatingips_project ON floatingips (project_id);

CREATE TABLE port_forwardings (
    id TEXT PRIMARY KEY,
    floatingip_id TEXT NOT NULL REFERENCES floatingips (id),
    protocol TEXT NOT NULL,
    internal_port_id TEXT NOT NULL REFERENCES ports (id),
    internal_ip_address TEXT NOT NULL,
    internal_port_start BIGINT NOT NULL,
    internal_port_end BIGINT NOT NULL,
    external_port_start BIGINT NOT NULL,
    external_port_end BIGINT NOT NULL,
    description TEXT NOT NULL,
    UNIQUE (floatingip_id, protocol, external_port_start)
);
CREATE INDEX port_forwardings_port ON port_forwardings (internal_port_id);
"#;

/// The rules new security groups start with (`/v2.0/default-security-group-rules`), seeded
/// with Neutron's legacy four: egress anywhere for every group, ingress from its own members
/// (`PARENT`) for `default` groups.
const DEFAULT_SECURITY_GROUP_RULES: &str = r#"
CREATE TABLE default_security_group_rules (
    id TEXT PRIMARY KEY,
    direction TEXT NOT NULL,
    ethertype TEXT NOT NULL,
    protocol TEXT,
    port_range_min BIGINT,
    port_range_max BIGINT,
    remote_ip_prefix TEXT,
    normalized_cidr TEXT,
    remote_group_id TEXT,
    remote_address_group_id TEXT,
    description TEXT NOT NULL,
    used_in_default_sg BOOLEAN NOT NULL,
    used_in_non_default_sg BOOLEAN NOT NULL,
    fingerprint TEXT NOT NULL
);
CREATE INDEX default_security_group_rules_fingerprint ON default_security_group_rules (fingerprint);
INSERT INTO default_security_group_rules (id, direction, ethertype, description, remote_group_id,
    used_in_default_sg, used_in_non_default_sg, fingerprint) VALUES
    ('5a0b2f3e-0d1c-4e6b-9a41-000000000001', 'egress', 'IPv4', 'Legacy default SG rule for egress traffic', NULL,
     true, true, 'egress|IPv4|||||'),
    ('5a0b2f3e-0d1c-4e6b-9a41-000000000002', 'egress', 'IPv6', 'Legacy default SG rule for egress traffic', NULL,
     true, true, 'egress|IPv6|||||'),
    ('5a0b2f3e-0d1c-4e6b-9a41-000000000003', 'ingress', 'IPv4', 'Legacy default SG rule for ingress traffic',
     'PARENT', true, false, 'ingress|IPv4|||||PARENT'),
    ('5a0b2f3e-0d1c-4e6b-9a41-000000000004', 'ingress', 'IPv6', 'Legacy default SG rule for ingress traffic',
     'PARENT', true, false, 'ingress|IPv6|||||PARENT')
"#;

/// Address groups (sets of CIDRs) and security group rules that name one.
const ADDRESS_GROUPS: &str = r#"
CREATE TABLE address_groups (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision_number BIGINT NOT NULL
);
CREATE INDEX address_groups_project ON address_groups (project_id);
CREATE TABLE address_group_addresses (
    address_group_id TEXT NOT NULL REFERENCES address_groups (id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    PRIMARY KEY (address_group_id, address)
);
ALTER TABLE security_group_rules ADD COLUMN remote_address_group_id TEXT REFERENCES address_groups (id);
CREATE INDEX security_group_rules_address_group ON security_group_rules (remote_address_group_id)
"#;

/// At most one default external network, whatever runs at once.
const ONE_DEFAULT_EXTERNAL_NETWORK: &str =
    "CREATE UNIQUE INDEX networks_one_default ON networks (is_default) WHERE is_default";

/// External networks as Neutron keeps them: `router_external` mirrors whether any
/// `access_as_external` policy exists (a network made external gets a wildcard one, owned by
/// its project), and `is_default` marks the default external network. The policy of an
/// existing external network takes its id with the first character changed.
const EXTERNAL_NETWORKS: &str = r#"
ALTER TABLE networks ADD COLUMN is_default BOOLEAN NOT NULL DEFAULT false;
INSERT INTO rbac_policies (id, project_id, object_type, object_id, action, target_project)
    SELECT CASE WHEN substr(id, 1, 1) = 'e' THEN 'f' ELSE 'e' END || substr(id, 2), project_id, 'network', id,
        'access_as_external', '*' FROM networks WHERE router_external
"#;

/// A pool's `default_quota`: how much of it one project may allocate (NULL: no limit).
const SUBNETPOOL_QUOTA: &str = "ALTER TABLE subnetpools ADD COLUMN default_quota BIGINT";

/// The change log (see `change_log.rs`): one row per object image, numbered by revision
/// (`NULL` until a PostgreSQL sequencer numbers it). The earlier log of bare ids goes; the
/// current state is recorded afresh at start-up.
const CHANGE_LOG: &str = r#"
DROP TABLE changes;
CREATE TABLE change_log (
    id {SERIAL},
    revision BIGINT,
    txn TEXT NOT NULL,
    kind TEXT NOT NULL,
    object_id TEXT NOT NULL,
    scopes TEXT NOT NULL,
    image TEXT
);
CREATE INDEX change_log_revision ON change_log (revision);
CREATE INDEX change_log_pending ON change_log (id) WHERE revision IS NULL;
CREATE INDEX change_log_object ON change_log (kind, object_id, revision)
"#;

/// RBAC policies; a network's `shared` column mirrors its wildcard `access_as_shared` policy.
const RBAC: &str = r#"
CREATE TABLE rbac_policies (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id TEXT NOT NULL,
    action TEXT NOT NULL,
    target_project TEXT NOT NULL,
    UNIQUE (object_type, object_id, action, target_project)
);
CREATE INDEX rbac_policies_target ON rbac_policies (target_project, object_type, action);
CREATE INDEX rbac_policies_project ON rbac_policies (project_id);
INSERT INTO rbac_policies (id, project_id, object_type, object_id, action, target_project)
    SELECT id, project_id, 'network', id, 'access_as_shared', '*' FROM networks WHERE shared
"#;

/// Per-project quota overrides (the defaults live in the configuration). Usage is counted from
/// the resource tables by project, so every counted table gets a `project_id` index.
const QUOTAS: &str = r#"
CREATE TABLE quotas (
    project_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    hard_limit BIGINT NOT NULL,
    PRIMARY KEY (project_id, resource)
);
CREATE INDEX security_group_rules_project ON security_group_rules (project_id);
CREATE INDEX subnetpools_project ON subnetpools (project_id)
"#;

/// Networks get any number of segments (the network row keeps its first one's provider
/// attributes, for filters); ports remember the segment they are bound to; agents keep their
/// configurations; tenant ranges live in `network_segment_ranges` (the configured ones as
/// `default` rows). Segments of existing networks take the network's id.
const SEGMENTS: &str = r#"
CREATE TABLE network_segments (
    id TEXT PRIMARY KEY,
    network_id TEXT NOT NULL REFERENCES networks (id),
    segment_index BIGINT NOT NULL,
    network_type TEXT NOT NULL,
    physical_network TEXT,
    segmentation_id BIGINT,
    name TEXT,
    description TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision_number BIGINT NOT NULL
);
CREATE INDEX network_segments_network ON network_segments (network_id, segment_index);
INSERT INTO network_segments (id, network_id, segment_index, network_type, physical_network, segmentation_id,
    created_at, updated_at, revision_number)
    SELECT id, id, 0, network_type, physical_network, segmentation_id, created_at, created_at, 0 FROM networks;
ALTER TABLE segment_allocations ADD COLUMN segment_id TEXT;
UPDATE segment_allocations SET segment_id = network_id;
ALTER TABLE ports ADD COLUMN segment_id TEXT;
UPDATE ports SET segment_id = network_id WHERE host_id <> '' AND vif_type NOT IN ('unbound', 'binding_failed');
CREATE INDEX ports_segment ON ports (segment_id) WHERE segment_id IS NOT NULL;
ALTER TABLE agents ADD COLUMN configurations TEXT NOT NULL DEFAULT '{}';
CREATE TABLE network_segment_ranges (
    id TEXT PRIMARY KEY,
    name TEXT,
    is_default BOOLEAN NOT NULL,
    shared BOOLEAN NOT NULL,
    project_id TEXT,
    network_type TEXT NOT NULL,
    physical_network TEXT NOT NULL,
    minimum BIGINT NOT NULL,
    maximum BIGINT NOT NULL,
    description TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision_number BIGINT NOT NULL
);
CREATE UNIQUE INDEX network_segment_ranges_default
    ON network_segment_ranges (network_type, physical_network, minimum, maximum) WHERE is_default;
CREATE INDEX network_segment_ranges_type ON network_segment_ranges (network_type, physical_network)
"#;

const AGENT_DESCRIPTION: &str = r#"
ALTER TABLE agents ADD COLUMN description TEXT
"#;

const DNS: &str = r#"
ALTER TABLE ports ADD COLUMN dns_name TEXT NOT NULL DEFAULT '';
ALTER TABLE networks ADD COLUMN dns_domain TEXT NOT NULL DEFAULT '';
CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)
"#;

const AVAILABILITY_ZONES: &str = r#"
ALTER TABLE agents ADD COLUMN availability_zone TEXT NOT NULL DEFAULT 'nova';
ALTER TABLE networks ADD COLUMN availability_zone_hints TEXT NOT NULL DEFAULT '[]'
"#;

const SERVICE_TYPES: &str = r#"
ALTER TABLE subnets ADD COLUMN service_types TEXT NOT NULL DEFAULT '[]'
"#;

const SUBNET_POOLS: &str = r#"
CREATE TABLE address_scopes (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    ip_version BIGINT NOT NULL,
    shared BOOLEAN NOT NULL
);

CREATE TABLE subnetpools (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    ip_version BIGINT NOT NULL,
    prefixes TEXT NOT NULL,
    min_prefixlen BIGINT NOT NULL,
    max_prefixlen BIGINT NOT NULL,
    default_prefixlen BIGINT NOT NULL,
    address_scope_id TEXT REFERENCES address_scopes (id),
    is_default BOOLEAN NOT NULL,
    shared BOOLEAN NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision_number BIGINT NOT NULL
);
CREATE UNIQUE INDEX subnetpools_one_default ON subnetpools (ip_version) WHERE is_default;
CREATE INDEX subnetpools_scope ON subnetpools (address_scope_id);

ALTER TABLE subnets ADD COLUMN subnetpool_id TEXT REFERENCES subnetpools (id);
CREATE INDEX subnets_pool ON subnets (subnetpool_id)
"#;

/// Indexes for the filters clients use most, so that lists stay index lookups. Most ports of
/// a big cloud are bound somewhere, but many are not yet; the partial indexes on bound ports
/// keep agents' per-host queries exact whatever the statistics say about `host_id = ''`.
const FILTER_INDEXES: &str = r#"
CREATE INDEX ports_project ON ports (project_id);
CREATE INDEX ports_mac ON ports (mac_address);
CREATE INDEX ports_name ON ports (name);
CREATE INDEX ports_device_owner ON ports (device_owner);
CREATE INDEX ports_bound_host ON ports (host_id) WHERE host_id <> '';
CREATE INDEX ports_bound_network ON ports (network_id) WHERE host_id <> '';
CREATE INDEX subnets_project ON subnets (project_id);
CREATE INDEX ip_allocations_ip ON ip_allocations (ip_address)
"#;

const PORT_OPTIONS: &str = r#"
ALTER TABLE ports ADD COLUMN allowed_address_pairs TEXT NOT NULL DEFAULT '[]';
ALTER TABLE ports ADD COLUMN extra_dhcp_opts TEXT NOT NULL DEFAULT '[]'
"#;

const SECURITY_GROUPS: &str = r#"
CREATE TABLE security_groups (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    stateful BOOLEAN NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision_number BIGINT NOT NULL
);
CREATE INDEX security_groups_project ON security_groups (project_id);

CREATE TABLE default_security_groups (
    project_id TEXT PRIMARY KEY,
    security_group_id TEXT NOT NULL
);

CREATE TABLE security_group_rules (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    security_group_id TEXT NOT NULL REFERENCES security_groups (id) ON DELETE CASCADE,
    direction TEXT NOT NULL,
    ethertype TEXT NOT NULL,
    protocol TEXT,
    port_range_min BIGINT,
    port_range_max BIGINT,
    remote_ip_prefix TEXT,
    normalized_cidr TEXT,
    remote_group_id TEXT,
    description TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision_number BIGINT NOT NULL,
    UNIQUE (security_group_id, fingerprint)
);
CREATE INDEX security_group_rules_remote ON security_group_rules (remote_group_id);

CREATE TABLE port_security_groups (
    port_id TEXT NOT NULL REFERENCES ports (id) ON DELETE CASCADE,
    security_group_id TEXT NOT NULL REFERENCES security_groups (id),
    PRIMARY KEY (port_id, security_group_id)
);
CREATE INDEX port_security_groups_group ON port_security_groups (security_group_id);

ALTER TABLE ports ADD COLUMN port_security_enabled BOOLEAN NOT NULL DEFAULT true
"#;

const TAGS: &str = r#"
CREATE TABLE tags (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (resource_type, resource_id, tag)
);
CREATE INDEX tags_by_tag ON tags (resource_type, tag);
"#;

const CORE: &str = r#"
CREATE TABLE networks (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    admin_state_up BOOLEAN NOT NULL,
    status TEXT NOT NULL,
    shared BOOLEAN NOT NULL,
    router_external BOOLEAN NOT NULL,
    port_security_enabled BOOLEAN NOT NULL,
    mtu BIGINT NOT NULL,
    network_type TEXT NOT NULL,
    physical_network TEXT,
    segmentation_id BIGINT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision_number BIGINT NOT NULL
);
CREATE INDEX networks_project ON networks (project_id);
CREATE INDEX networks_name ON networks (name);

CREATE TABLE segment_allocations (
    network_type TEXT NOT NULL,
    physical_network TEXT NOT NULL,
    segmentation_id BIGINT NOT NULL,
    network_id TEXT NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
    PRIMARY KEY (network_type, physical_network, segmentation_id)
);
CREATE INDEX segment_allocations_network ON segment_allocations (network_id);

CREATE TABLE subnets (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    network_id TEXT NOT NULL REFERENCES networks (id),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    ip_version BIGINT NOT NULL,
    cidr TEXT NOT NULL,
    gateway_ip TEXT,
    enable_dhcp BOOLEAN NOT NULL,
    ipv6_ra_mode TEXT,
    ipv6_address_mode TEXT,
    allocation_pools TEXT NOT NULL,
    dns_nameservers TEXT NOT NULL,
    host_routes TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision_number BIGINT NOT NULL
);
CREATE INDEX subnets_network ON subnets (network_id);

CREATE TABLE ports (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    network_id TEXT NOT NULL REFERENCES networks (id),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    mac_address TEXT NOT NULL,
    admin_state_up BOOLEAN NOT NULL,
    status TEXT NOT NULL,
    device_id TEXT NOT NULL,
    device_owner TEXT NOT NULL,
    host_id TEXT NOT NULL,
    vif_type TEXT NOT NULL,
    vif_details TEXT NOT NULL,
    vnic_type TEXT NOT NULL,
    profile TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision_number BIGINT NOT NULL,
    body TEXT NOT NULL DEFAULT '',
    UNIQUE (network_id, mac_address)
);
CREATE INDEX ports_host ON ports (host_id);
CREATE INDEX ports_device ON ports (device_id);

CREATE TABLE ip_allocations (
    network_id TEXT NOT NULL,
    ip_address TEXT NOT NULL,
    subnet_id TEXT NOT NULL REFERENCES subnets (id),
    port_id TEXT NOT NULL REFERENCES ports (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    PRIMARY KEY (network_id, ip_address)
);
CREATE INDEX ip_allocations_port ON ip_allocations (port_id, position);
CREATE INDEX ip_allocations_subnet ON ip_allocations (subnet_id);

CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    agent_type TEXT NOT NULL,
    tunnel_ip TEXT NOT NULL,
    admin_state_up BOOLEAN NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    UNIQUE (host, agent_type)
);

CREATE TABLE changes (
    revision {SERIAL},
    resource TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    operation TEXT NOT NULL
);
"#;

/// The schema text for one backend.
pub fn render(sql: &str, backend: Backend) -> String {
    let serial = match backend {
        Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
        Backend::Postgres => "BIGSERIAL PRIMARY KEY",
    };
    let sql = sql.replace("{SERIAL}", serial);
    match backend {
        // The Any driver cannot decode SQLite's BOOLEAN affinity; integers are SQLite's
        // booleans anyway.
        Backend::Sqlite => sql.replace("BOOLEAN", "INTEGER"),
        Backend::Postgres => sql,
    }
}

/// Split a migration into statements (no statement here contains a semicolon in a literal).
pub fn statements(sql: &str) -> impl Iterator<Item = &str> {
    sql.split(';').map(str::trim).filter(|s| !s.is_empty())
}
