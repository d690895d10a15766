//! Mechanism drivers, as policy: how a port on a host is bound.

use serde_json::{json, Map, Value};

pub const VIF_TYPE_UNBOUND: &str = "unbound";
pub const VIF_TYPE_BINDING_FAILED: &str = "binding_failed";
pub const VIF_TYPE_BRIDGE: &str = "bridge";

/// The outcome of binding a port.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub vif_type: &'static str,
    pub vif_details: Map<String, Value>,
}

/// What the binder knows about the host the port is being bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAgent {
    pub alive: bool,
}

/// The Linux-bridge mechanism driver: binds when an alive Linux-bridge agent runs on the host
/// and the network type is one it can wire.
pub fn bind_linuxbridge(host_id: &str, network_id: &str, network_type: &str, agent: Option<&HostAgent>) -> Binding {
    if host_id.is_empty() {
        return Binding { vif_type: VIF_TYPE_UNBOUND, vif_details: Map::new() };
    }
    let bindable = matches!(network_type, "vxlan" | "local" | "flat");
    match agent {
        Some(a) if a.alive && bindable => {
            let details = json!({
                "connectivity": "l2",
                "port_filter": true,
                "bridge_name": crate::naming::bridge_name(network_id),
            });
            Binding { vif_type: VIF_TYPE_BRIDGE, vif_details: details.as_object().cloned().unwrap_or_default() }
        }
        _ => Binding { vif_type: VIF_TYPE_BINDING_FAILED, vif_details: Map::new() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_to_bridge_when_agent_alive() {
        let b = bind_linuxbridge("h1", "0817d5d7-a353", "vxlan", Some(&HostAgent { alive: true }));
        assert_eq!(b.vif_type, "bridge");
        assert_eq!(b.vif_details["bridge_name"], "brq0817d5d7-a3");
    }

    #[test]
    fn fails_without_agent_and_unbound_without_host() {
        assert_eq!(bind_linuxbridge("h1", "n", "vxlan", None).vif_type, "binding_failed");
        assert_eq!(bind_linuxbridge("", "n", "vxlan", None).vif_type, "unbound");
    }
}
