//! ML2 mechanism drivers, as policy: which driver binds a port on a host, to which segment, and
//! what `binding:vif_type` / `binding:vif_details` Nova's os-vif then gets.
//!
//! Drivers are trait objects walked in `[ml2] mechanism_drivers` order. Each may veto a write
//! inside its transaction (`*_precommit`) and is told about committed changes afterwards
//! (`postcommit`, run by the server on the driver's own ordered queue).

use crate::segments::{FLAT, GENEVE, GRE, LOCAL, VLAN, VXLAN};
use crate::DomainError;
use neutrino_api::agent::{AgentConfigurations, AGENT_TYPE_LINUXBRIDGE, AGENT_TYPE_OVS};
use serde_json::{json, Map, Value};

pub const VIF_TYPE_UNBOUND: &str = "unbound";
pub const VIF_TYPE_BINDING_FAILED: &str = "binding_failed";
pub const VIF_TYPE_BRIDGE: &str = "bridge";
pub const VIF_TYPE_OVS: &str = "ovs";

/// One segment of the port's network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentView {
    pub id: String,
    pub network_type: String,
    pub physical_network: Option<String>,
    pub segmentation_id: Option<u32>,
}

impl From<neutrino_api::resources::Segment> for SegmentView {
    fn from(s: neutrino_api::resources::Segment) -> Self {
        SegmentView {
            id: s.id,
            network_type: s.network_type,
            physical_network: s.physical_network,
            segmentation_id: s.segmentation_id,
        }
    }
}

/// One agent registered on the port's host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentView {
    pub agent_type: String,
    /// Heartbeat within `agent_down_time`.
    pub alive: bool,
    pub admin_state_up: bool,
    pub configurations: AgentConfigurations,
}

/// Everything a driver needs to bind one port.
#[derive(Debug, Clone)]
pub struct BindingRequest<'a> {
    pub port_id: &'a str,
    pub host_id: &'a str,
    pub network_id: &'a str,
    pub vnic_type: &'a str,
    pub segments: &'a [SegmentView],
    pub agents: &'a [AgentView],
}

/// A successful binding.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundPort {
    pub driver: &'static str,
    pub segment_id: String,
    pub vif_type: &'static str,
    pub vif_details: Map<String, Value>,
}

/// The outcome of binding a port.
#[derive(Debug, Clone, PartialEq)]
pub enum BindingOutcome {
    /// No host: nothing to bind.
    Unbound,
    Bound(BoundPort),
    /// No driver could bind; the reasons say why (one per driver and agent tried).
    Failed {
        reasons: Vec<String>,
    },
}

impl BindingOutcome {
    pub fn vif_type(&self) -> &'static str {
        match self {
            BindingOutcome::Unbound => VIF_TYPE_UNBOUND,
            BindingOutcome::Bound(b) => b.vif_type,
            BindingOutcome::Failed { .. } => VIF_TYPE_BINDING_FAILED,
        }
    }
}

pub use crate::changes::ChangeEvent;

/// An ML2 mechanism driver.
pub trait MechanismDriver: Send + Sync {
    fn name(&self) -> &'static str;

    /// Try to bind the port to one of its segments through an agent on its host. `Ok(None)`
    /// means this driver does not bind ports at all; `Err(reasons)` that it could not.
    fn bind_port(&self, _req: &BindingRequest) -> Result<Option<BoundPort>, Vec<String>> {
        Ok(None)
    }

    /// Inside the network's write transaction: refuse the network's segments, if need be.
    fn network_precommit(&self, _segments: &[SegmentView]) -> Result<(), DomainError> {
        Ok(())
    }

    /// After commit, in commit order for this driver, on the driver's own queue.
    fn postcommit(&self, _event: &ChangeEvent) {}

    /// Whether [`MechanismDriver::postcommit`] does anything (drivers without it get no queue).
    fn wants_postcommit(&self) -> bool {
        false
    }

    /// Whether hosts are told about remote ports (L2 population).
    fn populates_l2(&self) -> bool {
        false
    }
}

/// Walk the drivers in order; the first that binds wins.
pub fn bind_port(drivers: &[std::sync::Arc<dyn MechanismDriver>], req: &BindingRequest) -> BindingOutcome {
    if req.host_id.is_empty() {
        return BindingOutcome::Unbound;
    }
    let mut reasons = Vec::new();
    for d in drivers {
        match d.bind_port(req) {
            Ok(Some(bound)) => return BindingOutcome::Bound(bound),
            Ok(None) => {}
            Err(r) => reasons.extend(r.into_iter().map(|r| format!("{}: {r}", d.name()))),
        }
    }
    if reasons.is_empty() {
        reasons.push("no loaded mechanism driver binds ports".into());
    }
    BindingOutcome::Failed { reasons }
}

/// What an agent-based driver knows about its agent type.
trait AgentDriver {
    const NAME: &'static str;
    const AGENT_TYPE: &'static str;
    const SUPPORTED_TYPES: &'static [&'static str];
    const VNIC_TYPES: &'static [&'static str];
    fn vif(&self, req: &BindingRequest, agent: &AgentView) -> (&'static str, Value);
}

/// Whether `agent` can wire `segment`, or why not.
fn reachable(agent: &AgentView, segment: &SegmentView, supported: &[&str]) -> Result<(), String> {
    let t = segment.network_type.as_str();
    if !supported.contains(&t) {
        return Err(format!("{} cannot wire {t} segments", agent.agent_type));
    }
    if let Some(why) = agent.configurations.unsupported_network_types.get(t) {
        return Err(format!("host cannot wire {t} segments: {why}"));
    }
    let c = &agent.configurations;
    match t {
        LOCAL => Ok(()),
        FLAT | VLAN => {
            let physnet = segment.physical_network.as_deref().unwrap_or_default();
            if c.interface_mappings.contains_key(physnet) || c.bridge_mappings.contains_key(physnet) {
                Ok(())
            } else {
                Err(format!("physical network {physnet} is not mapped on the host"))
            }
        }
        _ if c.tunnel_types.iter().any(|x| x == t) => Ok(()),
        _ => Err(format!("agent does not terminate {t} tunnels (tunnel_types {:?})", c.tunnel_types)),
    }
}

fn bind_with_agents<D: AgentDriver>(d: &D, req: &BindingRequest) -> Result<Option<BoundPort>, Vec<String>> {
    if !D::VNIC_TYPES.contains(&req.vnic_type) {
        return Err(vec![format!("vnic_type {} is not supported", req.vnic_type)]);
    }
    let agents: Vec<&AgentView> = req.agents.iter().filter(|a| a.agent_type == D::AGENT_TYPE).collect();
    if agents.is_empty() {
        return Err(vec![format!("no {} on host {}", D::AGENT_TYPE, req.host_id)]);
    }
    let mut reasons = Vec::new();
    for agent in agents {
        if !agent.alive || !agent.admin_state_up {
            let state = if agent.alive { "administratively down" } else { "not alive" };
            reasons.push(format!("{} on host {} is {state}", D::AGENT_TYPE, req.host_id));
            continue;
        }
        for segment in req.segments {
            match reachable(agent, segment, D::SUPPORTED_TYPES) {
                Ok(()) => {
                    let (vif_type, details) = d.vif(req, agent);
                    return Ok(Some(BoundPort {
                        driver: D::NAME,
                        segment_id: segment.id.clone(),
                        vif_type,
                        vif_details: details.as_object().cloned().unwrap_or_default(),
                    }));
                }
                Err(r) => reasons.push(format!("segment {}: {r}", segment.id)),
            }
        }
    }
    if req.segments.is_empty() {
        reasons.push("the network has no segment".into());
    }
    Err(reasons)
}

/// The Linux-bridge driver: binds through a Linux bridge agent; os-vif plugs a tap into the
/// network's bridge.
pub struct LinuxBridgeDriver;

impl AgentDriver for LinuxBridgeDriver {
    const NAME: &'static str = "linuxbridge";
    const AGENT_TYPE: &'static str = AGENT_TYPE_LINUXBRIDGE;
    const SUPPORTED_TYPES: &'static [&'static str] = &[LOCAL, FLAT, VLAN, VXLAN];
    const VNIC_TYPES: &'static [&'static str] = &["normal"];
    fn vif(&self, req: &BindingRequest, _agent: &AgentView) -> (&'static str, Value) {
        let details = json!({
            "connectivity": "l2",
            "port_filter": true,
            "bridge_name": crate::naming::bridge_name(req.network_id),
        });
        (VIF_TYPE_BRIDGE, details)
    }
}

impl MechanismDriver for LinuxBridgeDriver {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn bind_port(&self, req: &BindingRequest) -> Result<Option<BoundPort>, Vec<String>> {
        bind_with_agents(self, req)
    }
}

/// The Open vSwitch driver: binds through an Open vSwitch agent; os-vif plugs the port into the
/// agent's integration bridge.
pub struct OpenVswitchDriver;

impl AgentDriver for OpenVswitchDriver {
    const NAME: &'static str = "openvswitch";
    const AGENT_TYPE: &'static str = AGENT_TYPE_OVS;
    const SUPPORTED_TYPES: &'static [&'static str] = &[LOCAL, FLAT, VLAN, GRE, VXLAN, GENEVE];
    const VNIC_TYPES: &'static [&'static str] = &["normal"];
    fn vif(&self, _req: &BindingRequest, agent: &AgentView) -> (&'static str, Value) {
        let c = &agent.configurations;
        let details = json!({
            "connectivity": "l2",
            "port_filter": true,
            "ovs_hybrid_plug": false,
            "datapath_type": c.datapath_type.as_deref().unwrap_or("system"),
            "bridge_name": c.integration_bridge.as_deref().unwrap_or("br-int"),
        });
        (VIF_TYPE_OVS, details)
    }
}

impl MechanismDriver for OpenVswitchDriver {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn bind_port(&self, req: &BindingRequest) -> Result<Option<BoundPort>, Vec<String>> {
        bind_with_agents(self, req)
    }
}

/// L2 population: binds nothing; with it loaded, every host's stream carries the remote ports
/// (MAC, IPs, VTEP) of its networks, so agents program static forwarding and ARP entries
/// instead of flooding.
pub struct L2PopulationDriver;

impl MechanismDriver for L2PopulationDriver {
    fn name(&self) -> &'static str {
        "l2population"
    }
    fn populates_l2(&self) -> bool {
        true
    }
}

/// Every mechanism driver Neutrino has.
pub const MECHANISM_DRIVERS: [&str; 3] = ["linuxbridge", "openvswitch", "l2population"];

/// Load drivers by name, in order.
pub fn load_drivers(names: &[String]) -> Result<Vec<std::sync::Arc<dyn MechanismDriver>>, String> {
    names
        .iter()
        .map(|n| -> Result<std::sync::Arc<dyn MechanismDriver>, String> {
            match n.as_str() {
                "linuxbridge" => Ok(std::sync::Arc::new(LinuxBridgeDriver)),
                "openvswitch" => Ok(std::sync::Arc::new(OpenVswitchDriver)),
                "l2population" => Ok(std::sync::Arc::new(L2PopulationDriver)),
                other => Err(format!("[ml2] mechanism_drivers: unknown or unsupported mechanism driver '{other}'")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn lb_agent() -> AgentView {
        let mut c = AgentConfigurations { tunnel_types: vec!["vxlan".into()], ..Default::default() };
        c.interface_mappings.insert("physnet1".into(), "eth1".into());
        c.unsupported_network_types.insert("vlan".into(), "kernel has no 802.1Q support".into());
        AgentView { agent_type: AGENT_TYPE_LINUXBRIDGE.into(), alive: true, admin_state_up: true, configurations: c }
    }

    fn ovs_agent() -> AgentView {
        let mut c = AgentConfigurations {
            tunnel_types: vec!["vxlan".into(), "gre".into(), "geneve".into()],
            datapath_type: Some("system".into()),
            integration_bridge: Some("br-int".into()),
            ..Default::default()
        };
        c.bridge_mappings.insert("physnet1".into(), "br-ex".into());
        AgentView { agent_type: AGENT_TYPE_OVS.into(), alive: true, admin_state_up: true, configurations: c }
    }

    fn seg(t: &str, physnet: Option<&str>) -> SegmentView {
        SegmentView {
            id: format!("seg-{t}"),
            network_type: t.into(),
            physical_network: physnet.map(String::from),
            segmentation_id: Some(7),
        }
    }

    fn bind(names: &[&str], segments: &[SegmentView], agents: &[AgentView]) -> BindingOutcome {
        let drivers = load_drivers(&names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let req = BindingRequest {
            port_id: "p",
            host_id: "h1",
            network_id: "0817d5d7-a353",
            vnic_type: "normal",
            segments,
            agents,
        };
        bind_port(&drivers, &req)
    }

    fn bound(o: &BindingOutcome) -> &BoundPort {
        match o {
            BindingOutcome::Bound(b) => b,
            other => panic!("not bound: {other:?}"),
        }
    }

    #[test]
    fn linuxbridge_binds_vxlan_flat_and_local_with_bridge_details() {
        for s in [seg(VXLAN, None), seg(FLAT, Some("physnet1")), seg(LOCAL, None)] {
            let o = bind(&["linuxbridge", "l2population"], std::slice::from_ref(&s), &[lb_agent()]);
            let b = bound(&o);
            assert_eq!((b.driver, b.vif_type), ("linuxbridge", "bridge"));
            assert_eq!(b.vif_details["bridge_name"], "brq0817d5d7-a3");
            assert_eq!(b.segment_id, s.id);
        }
    }

    #[test]
    fn linuxbridge_refuses_gre_geneve_unmapped_physnets_and_unsupported_vlan() {
        for s in [seg(GRE, None), seg(GENEVE, None), seg(FLAT, Some("physnet9")), seg(VLAN, Some("physnet1"))] {
            let o = bind(&["linuxbridge"], std::slice::from_ref(&s), &[lb_agent()]);
            let BindingOutcome::Failed { reasons } = o else { panic!("{s:?} bound") };
            assert!(reasons[0].starts_with("linuxbridge: segment"), "{reasons:?}");
        }
        let o = bind(&["linuxbridge"], &[seg(VLAN, Some("physnet1"))], &[lb_agent()]);
        assert!(format!("{o:?}").contains("802.1Q"));
    }

    #[test]
    fn openvswitch_binds_tunnels_and_mapped_physnets_with_ovs_details() {
        for s in [seg(GRE, None), seg(GENEVE, None), seg(VXLAN, None), seg(VLAN, Some("physnet1"))] {
            let o = bind(&["openvswitch"], std::slice::from_ref(&s), &[ovs_agent()]);
            let b = bound(&o);
            assert_eq!(b.vif_type, "ovs");
            assert_eq!(b.vif_details["bridge_name"], "br-int");
            assert_eq!(b.vif_details["datapath_type"], "system");
            assert_eq!(b.vif_details["port_filter"], true);
        }
        assert!(matches!(
            bind(&["openvswitch"], &[seg(FLAT, Some("physnet2"))], &[ovs_agent()]),
            BindingOutcome::Failed { .. }
        ));
    }

    #[test]
    fn drivers_are_walked_in_order_and_agent_type_decides() {
        // A host with only an OVS agent: linuxbridge fails, openvswitch binds.
        let o = bind(&["linuxbridge", "openvswitch", "l2population"], &[seg(VXLAN, None)], &[ovs_agent()]);
        assert_eq!(bound(&o).driver, "openvswitch");
        // Both agents: the first driver listed wins.
        let o = bind(&["openvswitch", "linuxbridge"], &[seg(VXLAN, None)], &[lb_agent(), ovs_agent()]);
        assert_eq!(bound(&o).driver, "openvswitch");
        let o = bind(&["linuxbridge", "openvswitch"], &[seg(VXLAN, None)], &[lb_agent(), ovs_agent()]);
        assert_eq!(bound(&o).driver, "linuxbridge");
        // GRE on a mixed host goes to OVS whatever the order.
        let o = bind(&["linuxbridge", "openvswitch"], &[seg(GRE, None)], &[lb_agent(), ovs_agent()]);
        assert_eq!(bound(&o).driver, "openvswitch");
        // l2population alone binds nothing.
        assert!(matches!(bind(&["l2population"], &[seg(VXLAN, None)], &[lb_agent()]), BindingOutcome::Failed { .. }));
    }

    #[test]
    fn multi_segment_networks_bind_the_first_reachable_segment() {
        let segs = [seg(VLAN, Some("physnet1")), seg(VXLAN, None)];
        let o = bind(&["linuxbridge"], &segs, &[lb_agent()]);
        assert_eq!(bound(&o).segment_id, "seg-vxlan");
    }

    #[test]
    fn dead_or_disabled_agents_and_missing_hosts() {
        let mut dead = lb_agent();
        dead.alive = false;
        let o = bind(&["linuxbridge"], &[seg(VXLAN, None)], &[dead]);
        assert!(format!("{o:?}").contains("not alive"));
        let mut down = lb_agent();
        down.admin_state_up = false;
        assert_eq!(bind(&["linuxbridge"], &[seg(VXLAN, None)], &[down]).vif_type(), "binding_failed");
        assert_eq!(bind(&["linuxbridge"], &[seg(VXLAN, None)], &[]).vif_type(), "binding_failed");
        let drivers = load_drivers(&["linuxbridge".into()]).unwrap();
        let req = BindingRequest {
            port_id: "p",
            host_id: "",
            network_id: "n",
            vnic_type: "normal",
            segments: &[],
            agents: &[],
        };
        assert_eq!(bind_port(&drivers, &req), BindingOutcome::Unbound);
        assert!(load_drivers(&["bogus".into()]).is_err());
        let _: Vec<Arc<dyn MechanismDriver>> = load_drivers(&["l2population".into()]).unwrap();
    }
}
