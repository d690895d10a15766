//! Kernel device names, Neutron Linux-bridge compatible (15-character limit).

use sha1::{Digest, Sha1};

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

/// The longest interface name the kernel accepts (IFNAMSIZ less the terminating NUL).
pub const DEVICE_NAME_MAX_LEN: usize = 15;

/// Hex digits of SHA-1 that stand for the cut part of a name too long for the kernel
/// (Neutron's `INTERFACE_HASH_LEN`).
const INTERFACE_HASH_LEN: usize = 6;

/// `<interface>.<vlan id>`, Neutron's `get_subinterface_name`. A name longer than 15
/// characters keeps the start of the interface name, then the first six hex digits of the
/// SHA-1 of the whole interface name, then `.<vlan id>` (Neutron's `get_interface_name`).
pub fn vlan_subinterface_name(interface: &str, vlan_id: u16) -> String {
    let postfix = format!(".{vlan_id}");
    if interface.chars().count() + postfix.len() <= DEVICE_NAME_MAX_LEN {
        return format!("{interface}{postfix}");
    }
    // `.4094` is the longest postfix, so at least four characters of the name remain.
    let keep = DEVICE_NAME_MAX_LEN - INTERFACE_HASH_LEN - postfix.len();
    let start: String = interface.chars().take(keep).collect();
    let digest = Sha1::digest(interface.as_bytes());
    let hash: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{start}{}{postfix}", &hash[..INTERFACE_HASH_LEN])
}

/// Whether `name` is what [`vlan_subinterface_name`] calls some VLAN of `interface`.
pub fn is_vlan_subinterface_of(name: &str, interface: &str) -> bool {
    let vlan_id = name.rsplit_once('.').and_then(|(_, id)| id.parse::<u16>().ok());
    vlan_id.is_some_and(|id| vlan_subinterface_name(interface, id) == name)
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

    #[test]
    fn vlan_subinterfaces_are_named_like_neutron() {
        assert_eq!(vlan_subinterface_name("phys0", 100), "phys0.100");
        assert_eq!(vlan_subinterface_name("enp0s31f6", 4094), "enp0s31f6.4094");
        assert_eq!(vlan_subinterface_name("enp0s31f6np0", 10), "enp0s31f6np0.10");
        // Too long: values computed with Neutron's get_interface_name.
        assert_eq!(vlan_subinterface_name("enp0s31f6np0", 4094), "enp050cb40.4094");
        assert_eq!(vlan_subinterface_name("bond0-provider", 7), "bond0-p5f3164.7");
        for (iface, id) in [("enp0s31f6np0", 4094), ("a-very-long-interface", 1), ("x", 4094)] {
            assert!(vlan_subinterface_name(iface, id).len() <= DEVICE_NAME_MAX_LEN);
        }
    }

    #[test]
    fn vlan_subinterfaces_are_recognised_by_their_interface() {
        assert!(is_vlan_subinterface_of("phys0.100", "phys0"));
        assert!(is_vlan_subinterface_of("enp050cb40.4094", "enp0s31f6np0"));
        assert!(!is_vlan_subinterface_of("phys0.100", "phys1"));
        assert!(!is_vlan_subinterface_of("phys0", "phys0"));
        assert!(!is_vlan_subinterface_of("phys0.x", "phys0"));
        assert!(!is_vlan_subinterface_of("tapphys0.100", "phys0"));
    }
}
