//! ML2 type drivers, as policy: which segment a new network gets, and its MTU.
//!
//! The store performs the allocation in one statement against a unique index; this module
//! decides *what* to allocate or reserve and validates provider attributes.

use crate::DomainError;

pub const VXLAN_OVERHEAD: u32 = 50;
pub const MAX_VNI: u32 = (1 << 24) - 1;

/// The `[ml2]`, `[ml2_type_*]` options the type drivers need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeDriverConfig {
    pub type_drivers: Vec<String>,
    pub tenant_network_types: Vec<String>,
    pub vni_ranges: Vec<(u32, u32)>,
    /// `*` allows any physical network.
    pub flat_networks: Vec<String>,
    pub global_physnet_mtu: u32,
}

impl Default for TypeDriverConfig {
    fn default() -> Self {
        TypeDriverConfig {
            type_drivers: vec!["local".into(), "flat".into(), "vxlan".into()],
            tenant_network_types: vec!["vxlan".into()],
            vni_ranges: vec![(1, 1000)],
            flat_networks: vec!["*".into()],
            global_physnet_mtu: 1500,
        }
    }
}

pub const SUPPORTED_TYPES: [&str; 3] = ["local", "flat", "vxlan"];

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
        Ok(())
    }
}

/// Parse `vni_ranges = 1:1000,2000:2999`.
pub fn parse_vni_ranges(text: &str) -> Result<Vec<(u32, u32)>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once(':').ok_or_else(|| format!("invalid VNI range '{part}'"))?;
        let a: u32 = a.trim().parse().map_err(|_| format!("invalid VNI range '{part}'"))?;
        let b: u32 = b.trim().parse().map_err(|_| format!("invalid VNI range '{part}'"))?;
        if a == 0 || a > b || b > MAX_VNI {
            return Err(format!("invalid VNI range '{part}': must be 1 <= start <= end <= {MAX_VNI}"));
        }
        out.push((a, b));
    }
    Ok(out)
}

/// The `provider:*` attributes of a create request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderRequest {
    pub network_type: Option<String>,
    pub physical_network: Option<String>,
    pub segmentation_id: Option<u32>,
}

/// What the store must do to give the network its segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentPlan {
    /// Take the lowest free id of `network_type` in `ranges`.
    Allocate { network_type: String, ranges: Vec<(u32, u32)> },
    /// Reserve exactly this segment (admin provider network).
    Reserve { network_type: String, physical_network: Option<String>, segmentation_id: Option<u32> },
    /// No segment to hold (local networks).
    Nothing { network_type: String },
}

pub fn plan_segment(cfg: &TypeDriverConfig, req: &ProviderRequest) -> Result<SegmentPlan, DomainError> {
    let Some(network_type) = &req.network_type else {
        if req.physical_network.is_some() || req.segmentation_id.is_some() {
            return Err(DomainError::invalid("provider:network_type required"));
        }
        return tenant_plan(cfg);
    };
    if !cfg.type_drivers.contains(network_type) {
        return Err(DomainError::invalid(format!("network_type value '{network_type}' not supported")));
    }
    match network_type.as_str() {
        "local" => {
            if req.physical_network.is_some() || req.segmentation_id.is_some() {
                return Err(DomainError::invalid(
                    "provider:physical_network and provider:segmentation_id are prohibited for local provider network",
                ));
            }
            Ok(SegmentPlan::Nothing { network_type: "local".into() })
        }
        "flat" => {
            let Some(physnet) = &req.physical_network else {
                return Err(DomainError::invalid("physical_network required for flat provider network"));
            };
            if req.segmentation_id.is_some() {
                return Err(DomainError::invalid("segmentation_id specified for flat provider network"));
            }
            if !cfg.flat_networks.iter().any(|n| n == "*" || n == physnet) {
                return Err(DomainError::invalid(format!(
                    "physical_network '{physnet}' unknown for flat provider network"
                )));
            }
            Ok(SegmentPlan::Reserve {
                network_type: "flat".into(),
                physical_network: Some(physnet.clone()),
                segmentation_id: None,
            })
        }
        "vxlan" => {
            if req.physical_network.is_some() {
                return Err(DomainError::invalid("provider:physical_network specified for vxlan network"));
            }
            match req.segmentation_id {
                None => Ok(SegmentPlan::Allocate { network_type: "vxlan".into(), ranges: cfg.vni_ranges.clone() }),
                Some(id) if id == 0 || id > MAX_VNI => {
                    Err(DomainError::invalid(format!("segmentation_id {id} out of range (1 through {MAX_VNI})")))
                }
                Some(id) => Ok(SegmentPlan::Reserve {
                    network_type: "vxlan".into(),
                    physical_network: None,
                    segmentation_id: Some(id),
                }),
            }
        }
        other => Err(DomainError::invalid(format!("network_type value '{other}' not supported"))),
    }
}

fn tenant_plan(cfg: &TypeDriverConfig) -> Result<SegmentPlan, DomainError> {
    match cfg.tenant_network_types.first().map(String::as_str) {
        Some("vxlan") => Ok(SegmentPlan::Allocate { network_type: "vxlan".into(), ranges: cfg.vni_ranges.clone() }),
        Some("local") => Ok(SegmentPlan::Nothing { network_type: "local".into() }),
        _ => Err(DomainError::Unavailable {
            kind: "NoNetworkAvailable",
            message: "Unable to create the network. No tenant network is available for allocation.".into(),
        }),
    }
}

/// The error for an exhausted tenant range.
pub fn no_tenant_network() -> DomainError {
    DomainError::Unavailable {
        kind: "NoNetworkAvailable",
        message: "Unable to create the network. No tenant network is available for allocation.".into(),
    }
}

/// The error for a provider segment that is already taken.
pub fn segment_in_use(network_type: &str, physical_network: Option<&str>, id: Option<u32>) -> DomainError {
    match network_type {
        "flat" => DomainError::conflict(
            "FlatNetworkInUse",
            format!(
                "Unable to create the flat network. Physical network {} is in use.",
                physical_network.unwrap_or_default()
            ),
        ),
        _ => DomainError::conflict(
            "TunnelIdInUse",
            format!("Unable to create the network. The tunnel ID {} is in use.", id.unwrap_or_default()),
        ),
    }
}

/// Network MTU per type: the physical MTU minus the overlay header.
pub fn mtu_for(network_type: &str, cfg: &TypeDriverConfig) -> u32 {
    match network_type {
        "vxlan" => cfg.global_physnet_mtu - VXLAN_OVERHEAD,
        _ => cfg.global_physnet_mtu,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_networks_allocate_from_vni_ranges() {
        let cfg = TypeDriverConfig::default();
        let plan = plan_segment(&cfg, &ProviderRequest::default()).unwrap();
        assert_eq!(plan, SegmentPlan::Allocate { network_type: "vxlan".into(), ranges: vec![(1, 1000)] });
        assert_eq!(mtu_for("vxlan", &cfg), 1450);
    }

    #[test]
    fn provider_vxlan_reserves_the_given_vni() {
        let cfg = TypeDriverConfig::default();
        let req =
            ProviderRequest { network_type: Some("vxlan".into()), segmentation_id: Some(5000), ..Default::default() };
        assert!(matches!(plan_segment(&cfg, &req).unwrap(), SegmentPlan::Reserve { segmentation_id: Some(5000), .. }));
    }

    #[test]
    fn unknown_types_and_bad_ranges_are_refused() {
        let cfg = TypeDriverConfig::default();
        let req = ProviderRequest { network_type: Some("vlan".into()), ..Default::default() };
        assert!(plan_segment(&cfg, &req).is_err());
        assert!(parse_vni_ranges("10:5").is_err());
        assert!(parse_vni_ranges("0:5").is_err());
        assert_eq!(parse_vni_ranges("1:10, 20:30").unwrap(), vec![(1, 10), (20, 30)]);
    }

    #[test]
    fn flat_needs_a_physical_network() {
        let cfg = TypeDriverConfig::default();
        let req = ProviderRequest { network_type: Some("flat".into()), ..Default::default() };
        assert!(plan_segment(&cfg, &req).is_err());
    }
}
