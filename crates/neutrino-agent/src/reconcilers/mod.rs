//! One reconciler per feature. Each takes the host's desired state, observes the kernel,
//! applies the difference and says, per local port, whether it is done with it. A port is
//! ACTIVE once every reconciler that applies to it is done with it.
//!
//! There are the firewall (security groups), L2, routing, DHCP and router advertisement reconcilers, each with its own
//! idea of which link events concern them. The firewall goes first, so a new port's
//! drop-by-default is in place before L2 plugs it into its bridge; DHCP and router
//! advertisements run in loops of their own (they gate no port's status).

pub mod dhcp;
pub mod firewall;
pub mod l2;
pub mod router_adverts;
pub mod routing;

use futures::future::BoxFuture;
use neutrino_api::agent::HostState;
use neutrino_dataplane::{DataPlane, LinkEvent};
use std::collections::BTreeMap;

/// A namespace leg's link name: `prefix` and the port id's first 11 characters (Neutron's).
pub(crate) fn leg_name(prefix: &str, port_id: &str) -> String {
    format!("{prefix}{}", &port_id[..port_id.len().min(11)])
}

/// What a pass is asked to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything: the first pass, a periodic resync, or after events were lost.
    Full,
    /// What changed since the reconciler's last pass: the state (each reconciler diffs it
    /// against the state of its last pass) and these link events.
    Changes(Vec<LinkEvent>),
}

/// The result of one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassOutcome {
    /// Every local port this feature applies to: whether it is done with it.
    pub ready: BTreeMap<String, bool>,
    /// Kernel changes made (0 when it was already right).
    pub changes: usize,
    /// Things this feature cannot do now (key → why), logged once when they appear.
    pub problems: BTreeMap<String, String>,
}

/// A feature's reconciler.
pub trait Reconciler<D: DataPlane>: Send {
    /// The feature's name (in logs and metrics).
    fn name(&self) -> &'static str;

    /// Whether the features after this one must wait while its passes fail (the firewall:
    /// L2 plugs no port the firewall has not closed).
    fn gates_later_features(&self) -> bool {
        false
    }

    /// Whether something of the feature's own changed since its last pass (a gateway host's
    /// liveness, say), so that it wants a pass although the state did not change.
    fn pending(&self) -> bool {
        false
    }

    /// Whether a link event can concern this feature (a relevant one triggers a pass that
    /// looks at what it names).
    fn wants_link_event(&self, event: &LinkEvent) -> bool;

    /// Bring the kernel to what `state` implies, looking at what `scope` says. An error
    /// fails the pass; the caller retries with a full pass.
    fn reconcile<'a>(
        &'a mut self,
        dp: &'a D,
        state: &'a HostState,
        scope: &'a Scope,
    ) -> BoxFuture<'a, neutrino_dataplane::Result<PassOutcome>>;
}

/// The status every local port should have: ACTIVE when every reconciler that applies to it
/// is done with it (and at least one applies), DOWN otherwise.
pub fn port_status(state: &HostState, outcomes: &[&PassOutcome]) -> BTreeMap<String, String> {
    state
        .local_ports
        .keys()
        .map(|id| {
            let mut applies = outcomes.iter().filter_map(|o| o.ready.get(id)).peekable();
            let active = applies.peek().is_some() && applies.all(|ready| *ready);
            (id.clone(), if active { "ACTIVE" } else { "DOWN" }.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use neutrino_api::agent::LocalPort;

    #[test]
    fn a_port_is_active_only_when_every_reconciler_that_applies_is_done() {
        let mut state = HostState::default();
        for id in ["p1", "p2", "p3", "p4"] {
            let port = LocalPort {
                network_id: "n".into(),
                mac_address: "fa:16:3e:00:00:01".into(),
                admin_state_up: true,
                status: "DOWN".into(),
                ..LocalPort::default()
            };
            state.local_ports.insert(id.into(), port);
        }
        let l2 = PassOutcome {
            ready: BTreeMap::from([("p1".into(), true), ("p2".into(), true), ("p3".into(), false)]),
            ..PassOutcome::default()
        };
        // A second feature that applies to p2 only, and is not done with it.
        let filter = PassOutcome { ready: BTreeMap::from([("p2".into(), false)]), ..PassOutcome::default() };
        let status = port_status(&state, &[&l2, &filter]);
        assert_eq!(status["p1"], "ACTIVE");
        assert_eq!(status["p2"], "DOWN", "the filter is not in place yet");
        assert_eq!(status["p3"], "DOWN");
        assert_eq!(status["p4"], "DOWN", "no reconciler applies");
    }
}
