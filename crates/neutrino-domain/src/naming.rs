//! Kernel device names, Neutron Linux-bridge compatible (15-character limit).

/// `brq` + the first 11 characters of the network id.
pub fn bridge_name(network_id: &str) -> String {
    format!("brq{}", prefix11(network_id))
}

/// `tap` + the first 11 characters of the port id.
pub fn tap_name(port_id: &str) -> String {
    format!("tap{}", prefix11(port_id))
}

/// `vxlan-<vni>`.
pub fn vxlan_name(vni: u32) -> String {
    format!("vxlan-{vni}")
}

fn prefix11(id: &str) -> &str {
    &id[..id.len().min(11)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_in_ifnamsiz() {
        let id = "0817d5d7-a353-4219-8f3f-2da496259738";
        assert_eq!(bridge_name(id), "brq0817d5d7-a3");
        assert_eq!(tap_name(id), "tap0817d5d7-a3");
        assert!(vxlan_name(16_777_215).len() <= 15);
    }
}
