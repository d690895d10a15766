//! What this host can wire, found out once at agent start and reported in the registration.

use neutrino_dataplane::{DataPlane, DataPlaneError, Links, VlanSpec};
use neutrino_domain::host_intent::HostCapabilities;
use std::collections::BTreeMap;

/// Name of the VLAN sub-interface the start-up probe creates and deletes again.
pub const VLAN_PROBE_DEVICE: &str = "neutrino-vprobe";
/// VLAN id of the probe (the highest valid one, the least likely to be in use).
const VLAN_PROBE_ID: u16 = 4094;

/// The host's capabilities: its interface mappings, and `vlan` among the unsupported network
/// types when the kernel cannot create VLAN sub-interfaces. Logs what it finds wrong.
pub async fn discover<D: DataPlane>(dp: &D, interface_mappings: &BTreeMap<String, String>) -> HostCapabilities {
    let mut host = HostCapabilities { interface_mappings: interface_mappings.clone(), ..Default::default() };
    if let Some(reason) = probe_vlan_support(dp, interface_mappings).await {
        tracing::error!(%reason, "vlan networks cannot be wired on this host; reporting vlan as unsupported");
        host.unsupported_network_types.insert("vlan".into(), reason);
    }
    host
}

/// Tries to create a VLAN sub-interface on the first mapped interface that exists, and deletes
/// it again. Returns why VLAN networks cannot be wired, or `None` when they can, and also when
/// it cannot tell (no mapped interface present: nothing could be wired anyway; another error:
/// the reconciler reports per network what goes wrong).
pub async fn probe_vlan_support<D: DataPlane>(dp: &D, interface_mappings: &BTreeMap<String, String>) -> Option<String> {
    let observed = match dp.observe().await {
        Ok(observed) => observed,
        Err(e) => {
            tracing::warn!(error = %e, "cannot probe vlan support");
            return None;
        }
    };
    for (physnet, interface) in interface_mappings {
        if observed.link(interface).is_none() {
            tracing::error!(%physnet, %interface, "mapped physical interface does not exist; its networks stay DOWN");
        }
    }
    let parent = interface_mappings.values().find(|i| observed.link(i).is_some())?;
    let spec = VlanSpec { name: VLAN_PROBE_DEVICE.into(), parent: parent.clone(), id: VLAN_PROBE_ID, mtu: None };
    let created = dp.links().ensure_vlan(&spec).await;
    if let Err(e) = dp.links().delete(VLAN_PROBE_DEVICE).await {
        tracing::warn!(error = %e, device = VLAN_PROBE_DEVICE, "cannot delete the vlan probe");
    }
    match created {
        Ok(()) => None,
        Err(DataPlaneError::Unsupported(detail)) => Some(format!("kernel has no 802.1Q VLAN support ({detail})")),
        Err(e) => {
            tracing::warn!(error = %e, %parent, "cannot tell whether the kernel supports vlan");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neutrino_dataplane::memory::MemoryDataPlane;
    use neutrino_dataplane::LinkKind;

    fn mappings() -> BTreeMap<String, String> {
        BTreeMap::from([("physnet1".to_string(), "phys0".to_string())])
    }

    #[tokio::test]
    async fn a_kernel_with_8021q_supports_vlan_and_the_probe_leaves_nothing() {
        let dp = MemoryDataPlane::new();
        dp.add_external_link("phys0", LinkKind::Veth);
        let host = discover(&dp, &mappings()).await;
        assert!(host.unsupported_network_types.is_empty());
        assert_eq!(host.interface_mappings, mappings());
        assert!(dp.snapshot().link(VLAN_PROBE_DEVICE).is_none());
        assert!(dp.snapshot().link("phys0").is_some());
    }

    #[tokio::test]
    async fn a_kernel_without_8021q_reports_vlan_unsupported_with_the_reason() {
        let dp = MemoryDataPlane::new();
        dp.add_external_link("phys0", LinkKind::Veth);
        dp.refuse_vlans("Operation not supported (os error 95)");
        let host = discover(&dp, &mappings()).await;
        let reason = &host.unsupported_network_types["vlan"];
        assert!(reason.starts_with("kernel has no 802.1Q VLAN support"), "{reason}");
        assert!(reason.contains("Operation not supported"), "{reason}");
    }

    #[tokio::test]
    async fn without_a_mapped_interface_there_is_nothing_to_probe() {
        let dp = MemoryDataPlane::new();
        dp.refuse_vlans("Operation not supported");
        assert_eq!(probe_vlan_support(&dp, &mappings()).await, None);
        assert_eq!(probe_vlan_support(&dp, &BTreeMap::new()).await, None);
        assert_eq!(dp.mutations(), 0);
    }
}
