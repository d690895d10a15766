//! ML2 type drivers, as policy: which segments a new network gets, how provider attributes are
//! validated per type, the configured ranges, and the MTU each type leaves.
//!
//! The store performs allocations in one statement against a unique index; this module decides
//! *what* to allocate or reserve.

use crate::DomainError;
use std::collections::BTreeMap;

pub const LOCAL: &str = "local";
pub const FLAT: &str = "flat";
pub const VLAN: &str = "vlan";
pub const GRE: &str = "gre";
pub const VXLAN: &str = "vxlan";
pub const GENEVE: &str = "geneve";

/// Every type driver Neutrino has.
pub const SUPPORTED_TYPES: [&str; 6] = [LOCAL, FLAT, VLAN, GRE, VXLAN, GENEVE];

pub const MAX_VNI: u32 = (1 << 24) - 1;
pub const MAX_GRE_ID: u32 = u32::MAX;
pub const MIN_VLAN_TAG: u32 = 1;
pub const MAX_VLAN_TAG: u32 = 4094;

/// Encapsulation overhead above the outer IP header (Neutron's `*_ENCAP_OVERHEAD`).
pub const VXLAN_ENCAP_OVERHEAD: u32 = 30;
pub const GRE_ENCAP_OVERHEAD: u32 = 22;
/// `[ml2_type_geneve] max_header_size` default.
pub const GENEVE_DEFAULT_MAX_HEADER: u32 = 30;

/// Kept for callers that only know VXLAN over IPv4.
pub const VXLAN_OVERHEAD: u32 = VXLAN_ENCAP_OVERHEAD + 20;

/// A range of segmentation ids, inclusive; for VLAN it belongs to one physical network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRange {
    pub network_type: String,
    /// `None` for tunnel types.
    pub physical_network: Option<String>,
    pub minimum: u32,
    pub maximum: u32,
}

/// The `[ml2]`, `[ml2_type_*]` options the type drivers need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeDriverConfig {
    pub type_drivers: Vec<String>,
    /// Ordered: a tenant network takes the first type that still has a free segment.
    pub tenant_network_types: Vec<String>,
    /// `[ml2_type_vxlan] vni_ranges`.
    pub vni_ranges: Vec<(u32, u32)>,
    /// `[ml2_type_geneve] vni_ranges`.
    pub geneve_vni_ranges: Vec<(u32, u32)>,
    /// `[ml2_type_gre] tunnel_id_ranges`.
    pub tunnel_id_ranges: Vec<(u32, u32)>,
    /// `[ml2_type_vlan] network_vlan_ranges`: physical networks, each with its tenant ranges
    /// (a physical network listed without a range takes provider networks only).
    pub network_vlan_ranges: BTreeMap<String, Vec<(u32, u32)>>,
    /// `[ml2_type_flat] flat_networks`; `*` allows any physical network.
    pub flat_networks: Vec<String>,
    /// `[ml2_type_geneve] max_header_size`.
    pub geneve_max_header_size: u32,
    /// `[DEFAULT] global_physnet_mtu`.
    pub global_physnet_mtu: u32,
    /// `[ml2] path_mtu` (0: not set).
    pub path_mtu: u32,
    /// `[ml2] physical_network_mtus`.
    pub physical_network_mtus: BTreeMap<String, u32>,
    /// `[ml2] overlay_ip_version` (4 or 6): the outer IP header tunnels pay for.
    pub overlay_ip_version: u8,
}

impl Default for TypeDriverConfig {
    fn default() -> Self {
        TypeDriverConfig {
            type_drivers: vec![LOCAL.into(), FLAT.into(), VLAN.into(), GRE.into(), VXLAN.into(), GENEVE.into()],
            tenant_network_types: vec![VXLAN.into()],
            vni_ranges: vec![(1, 1000)],
            geneve_vni_ranges: Vec::new(),
            tunnel_id_ranges: Vec::new(),
            network_vlan_ranges: BTreeMap::new(),
            flat_networks: vec!["*".into()],
            geneve_max_header_size: GENEVE_DEFAULT_MAX_HEADER,
            global_physnet_mtu: 1500,
            path_mtu: 0,
            physical_network_mtus: BTreeMap::new(),
            overlay_ip_version: 4,
        }
    }
}

impl TypeDriverConfig {
    /// Refuse configurations Neutron would refuse at start-up.
    pub fn validate(&self) -> Result<(), String> {
        for t in &self.type_drivers {
            if !SUPPORTED_TYPES.contains(&t.as_str()) {
                return Err(format!("[ml2] type_drivers: unknown or unsupported type driver '{t}'"));
            }
        }
        for t in &self.tenant_network_types {
            if !self.type_drivers.contains(t) {
                return Err(format!("[ml2] tenant_network_types: '{t}' is not in type_drivers"));
            }
        }
        if ![4, 6].contains(&self.overlay_ip_version) {
            return Err("[ml2] overlay_ip_version: must be 4 or 6".into());
        }
        if self.geneve_max_header_size < GENEVE_DEFAULT_MAX_HEADER {
            return Err(format!("[ml2_type_geneve] max_header_size: must be at least {GENEVE_DEFAULT_MAX_HEADER}"));
        }
        Ok(())
    }

    /// The tenant ranges the configuration defines, per loaded type: the `default` network
    /// segment ranges.
    pub fn default_ranges(&self) -> Vec<SegmentRange> {
        let mut out = Vec::new();
        let loaded = |t: &str| self.type_drivers.iter().any(|d| d == t);
        let tunnel = |t: &str, ranges: &[(u32, u32)], out: &mut Vec<SegmentRange>| {
            if loaded(t) {
                out.extend(ranges.iter().map(|(a, b)| SegmentRange {
                    network_type: t.into(),
                    physical_network: None,
                    minimum: *a,
                    maximum: *b,
                }));
            }
        };
        tunnel(VXLAN, &self.vni_ranges, &mut out);
        tunnel(GENEVE, &self.geneve_vni_ranges, &mut out);
        tunnel(GRE, &self.tunnel_id_ranges, &mut out);
        if loaded(VLAN) {
            for (physnet, ranges) in &self.network_vlan_ranges {
                out.extend(ranges.iter().map(|(a, b)| SegmentRange {
                    network_type: VLAN.into(),
                    physical_network: Some(physnet.clone()),
                    minimum: *a,
                    maximum: *b,
                }));
            }
        }
        out
    }

    fn loaded(&self, network_type: &str) -> bool {
        self.type_drivers.iter().any(|t| t == network_type)
    }
}

/// The largest segmentation id of a type (`None` for types without one).
pub fn max_segmentation_id(network_type: &str) -> Option<u32> {
    match network_type {
        VXLAN | GENEVE => Some(MAX_VNI),
        GRE => Some(MAX_GRE_ID),
        VLAN => Some(MAX_VLAN_TAG),
        _ => None,
    }
}

/// Parse tunnel ranges such as `vni_ranges = 1:1000,2000:2999`, bounded by `max`.
pub fn parse_tunnel_ranges(text: &str, max: u32) -> Result<Vec<(u32, u32)>, String> {
    text.split(',').map(str::trim).filter(|p| !p.is_empty()).map(|part| parse_range(part, 1, max)).collect()
}

/// Parse `vni_ranges = 1:1000,2000:2999`.
pub fn parse_vni_ranges(text: &str) -> Result<Vec<(u32, u32)>, String> {
    parse_tunnel_ranges(text, MAX_VNI)
}

fn parse_range(part: &str, min: u32, max: u32) -> Result<(u32, u32), String> {
    let bad = || format!("invalid range '{part}': must be <start>:<end> with {min} <= start <= end <= {max}");
    let (a, b) = part.split_once(':').ok_or_else(bad)?;
    let a: u32 = a.trim().parse().map_err(|_| bad())?;
    let b: u32 = b.trim().parse().map_err(|_| bad())?;
    if a < min || a > b || b > max {
        return Err(bad());
    }
    Ok((a, b))
}

/// Parse `network_vlan_ranges = physnet1:1000:2999,physnet1:3000:3100,physnet2`.
pub fn parse_vlan_ranges(text: &str) -> Result<BTreeMap<String, Vec<(u32, u32)>>, String> {
    let mut out: BTreeMap<String, Vec<(u32, u32)>> = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once(':') {
            None => {
                out.entry(part.to_string()).or_default();
            }
            Some((physnet, range)) if !physnet.trim().is_empty() => {
                let r = parse_range(range, MIN_VLAN_TAG, MAX_VLAN_TAG).map_err(|e| format!("{physnet}: {e}"))?;
                out.entry(physnet.trim().to_string()).or_default().push(r);
            }
            Some(_) => return Err(format!("invalid VLAN range '{part}': physical network missing")),
        }
    }
    Ok(out)
}

/// One requested segment: the `provider:*` attributes, or one entry of `segments`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderRequest {
    pub network_type: Option<String>,
    pub physical_network: Option<String>,
    pub segmentation_id: Option<u32>,
}

/// What the store must do to give a network one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentPlan {
    /// A tenant segment: the first of these types with a free id in the ranges the project
    /// may use (local needs no id).
    Tenant { types: Vec<String> },
    /// The lowest free id of `network_type` (on `physical_network`, when given) in the ranges
    /// the project may use: a partially specified provider segment.
    Allocate { network_type: String, physical_network: Option<String> },
    /// Reserve exactly this segment (admin provider network).
    Reserve { network_type: String, physical_network: Option<String>, segmentation_id: Option<u32> },
    /// No segment to hold (local networks).
    Nothing { network_type: String },
}

impl SegmentPlan {
    /// The network type, when the plan already fixes it.
    pub fn network_type(&self) -> Option<&str> {
        match self {
            SegmentPlan::Tenant { .. } => None,
            SegmentPlan::Allocate { network_type, .. }
            | SegmentPlan::Reserve { network_type, .. }
            | SegmentPlan::Nothing { network_type } => Some(network_type),
        }
    }
}

/// Plan the segments of a new network: the tenant default when nothing is requested, or one
/// plan per requested segment (duplicates refused, as Neutron does).
pub fn plan_segments(cfg: &TypeDriverConfig, requested: &[ProviderRequest]) -> Result<Vec<SegmentPlan>, DomainError> {
    if requested.is_empty() {
        return Ok(vec![tenant_plan(cfg)?]);
    }
    for (i, a) in requested.iter().enumerate() {
        if requested[..i].contains(a) {
            return Err(DomainError::bad_request(
                "SegmentsContainDuplicateEntry",
                "Duplicate segment entry in request.",
            ));
        }
    }
    requested.iter().map(|r| plan_segment(cfg, r)).collect()
}

/// Validate one provider segment and decide how to get it.
pub fn plan_segment(cfg: &TypeDriverConfig, req: &ProviderRequest) -> Result<SegmentPlan, DomainError> {
    let Some(network_type) = &req.network_type else {
        if req.physical_network.is_some() || req.segmentation_id.is_some() {
            return Err(DomainError::invalid("network_type required"));
        }
        return tenant_plan(cfg);
    };
    if !cfg.loaded(network_type) {
        return Err(DomainError::invalid(format!("network_type value '{network_type}' not supported")));
    }
    match network_type.as_str() {
        LOCAL => {
            if req.physical_network.is_some() || req.segmentation_id.is_some() {
                return Err(DomainError::invalid(
                    "provider:physical_network and provider:segmentation_id are prohibited for local provider network",
                ));
            }
            Ok(SegmentPlan::Nothing { network_type: LOCAL.into() })
        }
        FLAT => plan_flat(cfg, req),
        VLAN => plan_vlan(cfg, req),
        GRE | VXLAN | GENEVE => plan_tunnel(network_type, req),
        other => Err(DomainError::invalid(format!("network_type value '{other}' not supported"))),
    }
}

fn plan_flat(cfg: &TypeDriverConfig, req: &ProviderRequest) -> Result<SegmentPlan, DomainError> {
    let Some(physnet) = &req.physical_network else {
        return Err(DomainError::invalid("physical_network required for flat provider network"));
    };
    if req.segmentation_id.is_some() {
        return Err(DomainError::invalid("segmentation_id specified for flat provider network"));
    }
    if !cfg.flat_networks.iter().any(|n| n == "*" || n == physnet) {
        return Err(DomainError::invalid(format!("physical_network '{physnet}' unknown for flat provider network")));
    }
    Ok(SegmentPlan::Reserve {
        network_type: FLAT.into(),
        physical_network: Some(physnet.clone()),
        segmentation_id: None,
    })
}

fn plan_vlan(cfg: &TypeDriverConfig, req: &ProviderRequest) -> Result<SegmentPlan, DomainError> {
    let Some(physnet) = &req.physical_network else {
        if req.segmentation_id.is_some() {
            return Err(DomainError::invalid("segmentation_id requires physical_network for VLAN provider network"));
        }
        return Ok(SegmentPlan::Allocate { network_type: VLAN.into(), physical_network: None });
    };
    if !cfg.network_vlan_ranges.contains_key(physnet) {
        return Err(DomainError::invalid(format!("physical_network '{physnet}' unknown for VLAN provider network")));
    }
    match req.segmentation_id {
        None => Ok(SegmentPlan::Allocate { network_type: VLAN.into(), physical_network: Some(physnet.clone()) }),
        Some(id) if !(MIN_VLAN_TAG..=MAX_VLAN_TAG).contains(&id) => {
            Err(DomainError::invalid(format!("segmentation_id out of range ({MIN_VLAN_TAG} through {MAX_VLAN_TAG})")))
        }
        Some(id) => Ok(SegmentPlan::Reserve {
            network_type: VLAN.into(),
            physical_network: Some(physnet.clone()),
            segmentation_id: Some(id),
        }),
    }
}

fn plan_tunnel(network_type: &str, req: &ProviderRequest) -> Result<SegmentPlan, DomainError> {
    if req.physical_network.is_some() {
        return Err(DomainError::invalid(format!("provider:physical_network specified for {network_type} network")));
    }
    let max = max_segmentation_id(network_type).unwrap_or(MAX_VNI);
    match req.segmentation_id {
        None => Ok(SegmentPlan::Allocate { network_type: network_type.into(), physical_network: None }),
        Some(id) if id == 0 || id > max => {
            Err(DomainError::invalid(format!("segmentation_id {id} out of range (1 through {max})")))
        }
        Some(id) => Ok(SegmentPlan::Reserve {
            network_type: network_type.into(),
            physical_network: None,
            segmentation_id: Some(id),
        }),
    }
}

fn tenant_plan(cfg: &TypeDriverConfig) -> Result<SegmentPlan, DomainError> {
    if cfg.tenant_network_types.is_empty() {
        return Err(no_tenant_network());
    }
    Ok(SegmentPlan::Tenant { types: cfg.tenant_network_types.clone() })
}

/// The error for exhausted tenant ranges.
pub fn no_tenant_network() -> DomainError {
    DomainError::Unavailable {
        kind: "NoNetworkAvailable",
        message: "Unable to create the network. No tenant network is available for allocation.".into(),
    }
}

/// The error for a provider segment that is already taken.
pub fn segment_in_use(network_type: &str, physical_network: Option<&str>, id: Option<u32>) -> DomainError {
    let physnet = physical_network.unwrap_or_default();
    let id = id.unwrap_or_default();
    match network_type {
        FLAT => DomainError::conflict(
            "FlatNetworkInUse",
            format!("Unable to create the flat network. Physical network {physnet} is in use."),
        ),
        VLAN => DomainError::conflict(
            "VlanIdInUse",
            format!("Unable to create the network. The VLAN {id} on physical network {physnet} is in use."),
        ),
        _ => DomainError::conflict(
            "TunnelIdInUse",
            format!("Unable to create the network. The tunnel ID {id} is in use."),
        ),
    }
}

/// The MTU a segment leaves for the network: the physical MTU (the smallest of the global,
/// per-physical-network and path MTUs that apply) minus the overlay's headers.
pub fn mtu_for_segment(network_type: &str, physical_network: Option<&str>, cfg: &TypeDriverConfig) -> u32 {
    let ip_header = if cfg.overlay_ip_version == 6 { 40 } else { 20 };
    let physical = |physnet: Option<&str>| {
        let mut mtu = cfg.global_physnet_mtu;
        if let Some(m) = physnet.and_then(|p| cfg.physical_network_mtus.get(p)) {
            mtu = mtu.min(*m);
        }
        mtu
    };
    let tunnel = |overhead: u32| {
        let mut mtu = cfg.global_physnet_mtu;
        if cfg.path_mtu > 0 {
            mtu = mtu.min(cfg.path_mtu);
        }
        mtu.saturating_sub(overhead + ip_header)
    };
    match network_type {
        VXLAN => tunnel(VXLAN_ENCAP_OVERHEAD),
        GRE => tunnel(GRE_ENCAP_OVERHEAD),
        GENEVE => tunnel(cfg.geneve_max_header_size),
        FLAT | VLAN => physical(physical_network),
        _ => cfg.global_physnet_mtu,
    }
}

/// Network MTU per type (single-segment networks without a physical network).
pub fn mtu_for(network_type: &str, cfg: &TypeDriverConfig) -> u32 {
    mtu_for_segment(network_type, None, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> TypeDriverConfig {
        TypeDriverConfig {
            network_vlan_ranges: parse_vlan_ranges("physnet1:100:199,physnet2").unwrap(),
            tunnel_id_ranges: vec![(1, 100)],
            geneve_vni_ranges: vec![(1, 100)],
            ..Default::default()
        }
    }

    fn req(t: &str, physnet: Option<&str>, id: Option<u32>) -> ProviderRequest {
        ProviderRequest {
            network_type: Some(t.into()),
            physical_network: physnet.map(String::from),
            segmentation_id: id,
        }
    }

    #[test]
    fn tenant_networks_take_the_ordered_tenant_types() {
        let mut c = cfg();
        c.tenant_network_types = vec![VLAN.into(), VXLAN.into()];
        assert_eq!(
            plan_segments(&c, &[]).unwrap(),
            vec![SegmentPlan::Tenant { types: vec!["vlan".into(), "vxlan".into()] }]
        );
        c.tenant_network_types.clear();
        assert!(matches!(plan_segments(&c, &[]), Err(DomainError::Unavailable { .. })));
    }

    #[test]
    fn mtu_depends_on_the_overlay() {
        let mut c = cfg();
        assert_eq!(mtu_for(VXLAN, &c), 1450);
        assert_eq!(mtu_for(GRE, &c), 1458);
        assert_eq!(mtu_for(GENEVE, &c), 1450);
        assert_eq!(mtu_for(VLAN, &c), 1500);
        c.geneve_max_header_size = 38;
        c.overlay_ip_version = 6;
        c.path_mtu = 9000;
        c.global_physnet_mtu = 9000;
        c.physical_network_mtus.insert("physnet1".into(), 1500);
        assert_eq!(mtu_for(GENEVE, &c), 9000 - 38 - 40);
        assert_eq!(mtu_for_segment(VLAN, Some("physnet1"), &c), 1500);
        assert_eq!(mtu_for_segment(FLAT, Some("other"), &c), 9000);
    }

    #[test]
    fn provider_segments_are_validated_per_type() {
        let c = cfg();
        assert!(matches!(plan_segment(&c, &req(VXLAN, None, Some(5000))), Ok(SegmentPlan::Reserve { .. })));
        assert!(plan_segment(&c, &req(VXLAN, Some("physnet1"), None)).is_err());
        assert!(plan_segment(&c, &req(VXLAN, None, Some(MAX_VNI + 1))).is_err());
        assert!(plan_segment(&c, &req(GRE, None, Some(MAX_VNI + 1))).is_ok());
        assert!(plan_segment(&c, &req(VLAN, Some("physnet1"), Some(4095))).is_err());
        assert!(plan_segment(&c, &req(VLAN, Some("physnet3"), Some(10))).is_err());
        assert!(plan_segment(&c, &req(VLAN, None, Some(10))).is_err());
        assert_eq!(
            plan_segment(&c, &req(VLAN, Some("physnet2"), None)).unwrap(),
            SegmentPlan::Allocate { network_type: VLAN.into(), physical_network: Some("physnet2".into()) }
        );
        assert!(plan_segment(&c, &req(FLAT, None, None)).is_err());
        assert!(plan_segment(&c, &req(FLAT, Some("physnet1"), Some(3))).is_err());
        assert!(plan_segment(&c, &req(LOCAL, None, Some(3))).is_err());
        let only_vxlan = TypeDriverConfig { type_drivers: vec![VXLAN.into()], ..cfg() };
        assert!(plan_segment(&only_vxlan, &req(VLAN, Some("physnet1"), None)).is_err());
    }

    #[test]
    fn duplicate_segments_are_refused() {
        let c = cfg();
        let r = req(VXLAN, None, Some(7));
        assert!(plan_segments(&c, &[r.clone(), r]).is_err());
        assert_eq!(
            plan_segments(&c, &[req(VXLAN, None, Some(7)), req(VLAN, Some("physnet1"), Some(7))]).unwrap().len(),
            2
        );
    }

    #[test]
    fn ranges_parse_and_bad_ranges_are_refused() {
        assert!(parse_vni_ranges("10:5").is_err());
        assert!(parse_vni_ranges("0:5").is_err());
        assert_eq!(parse_vni_ranges("1:10, 20:30").unwrap(), vec![(1, 10), (20, 30)]);
        assert!(parse_tunnel_ranges("1:4294967295", MAX_GRE_ID).is_ok());
        let v = parse_vlan_ranges("physnet1:10:20, physnet1:30:40,physnet2").unwrap();
        assert_eq!(v["physnet1"], vec![(10, 20), (30, 40)]);
        assert!(v["physnet2"].is_empty());
        assert!(parse_vlan_ranges("physnet1:0:20").is_err());
        assert!(parse_vlan_ranges("physnet1:10:5000").is_err());
        assert!(parse_vlan_ranges(":10:20").is_err());
    }

    #[test]
    fn default_ranges_follow_the_loaded_types() {
        let c = cfg();
        let ranges = c.default_ranges();
        assert!(ranges.iter().any(|r| r.network_type == VLAN && r.physical_network.as_deref() == Some("physnet1")));
        assert_eq!(ranges.iter().filter(|r| r.network_type == VXLAN).count(), 1);
        let c = TypeDriverConfig { type_drivers: vec![VXLAN.into()], ..cfg() };
        assert!(c.default_ranges().iter().all(|r| r.network_type == VXLAN));
    }
}
