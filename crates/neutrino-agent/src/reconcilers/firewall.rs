//! The firewall reconciler: security groups, anti-spoofing and port security in nftables.
//!
//! Level-triggered: a full pass reads the firewall's tables from the kernel, compiles what the
//! host's view wants (`neutrino_domain::firewall`), and applies the difference in one
//! nftables transaction; a pass over changes starts from what its last pass left (nothing
//! else writes these tables). The slots and zones it gave ports and bridges are kept in the
//! kernel, so a restarted agent finds them and changes nothing. It never flushes a table:
//! a chain is rewritten only when its digest differs, atomically with everything else.

use super::{PassOutcome, Reconciler, Scope};
use futures::future::BoxFuture;
use neutrino_api::agent::HostState;
use neutrino_dataplane::{DataPlane, Firewall, LinkEvent};
use neutrino_domain::firewall::ir::{Family, ObservedRuleset, SetValue};
use neutrino_domain::firewall::{apply_to, compile_firewall, plan, SLOTS, ZONES};
use std::collections::BTreeMap;

#[derive(Default)]
pub struct FirewallReconciler {
    /// What the kernel holds after the last successful pass.
    last: Option<ObservedRuleset>,
}

impl FirewallReconciler {
    pub fn new() -> FirewallReconciler {
        FirewallReconciler::default()
    }

    async fn pass<D: DataPlane>(
        &mut self,
        dp: &D,
        state: &HostState,
        scope: &Scope,
    ) -> neutrino_dataplane::Result<PassOutcome> {
        let mut observed = match (scope, self.last.take()) {
            (Scope::Changes(_), Some(last)) => last,
            _ => {
                dp.firewall().prepare().await?;
                dp.firewall().observe().await?
            }
        };
        let intent = compile_firewall(state, &numbers(&observed, SLOTS), &numbers(&observed, ZONES));
        let ops = plan(&intent.ruleset, &observed);
        dp.firewall().apply(&ops).await?;
        apply_to(&mut observed, &ops);
        self.last = Some(observed);
        let ready = state
            .local_ports
            .keys()
            .map(|id| {
                (id.clone(), intent.ports.contains_key(id) && !intent.problems.contains_key(&format!("port {id}")))
            })
            .collect();
        Ok(PassOutcome { ready, changes: ops.len(), problems: intent.problems })
    }
}

/// The numbers a map of the bridge table holds (tap → slot, bridge → zone).
fn numbers(observed: &ObservedRuleset, map: &str) -> BTreeMap<String, u32> {
    let elements = observed.sets.get(&(Family::Bridge, map.to_string()));
    elements
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| match v {
            Some(SetValue::Mark(n)) => Some((k.clone(), *n)),
            _ => None,
        })
        .collect()
}

impl<D: DataPlane> Reconciler<D> for FirewallReconciler {
    fn name(&self) -> &'static str {
        "firewall"
    }

    fn gates_later_features(&self) -> bool {
        true
    }

    /// Rules name taps, whether or not they exist: links do not concern the firewall.
    fn wants_link_event(&self, _event: &LinkEvent) -> bool {
        false
    }

    fn reconcile<'a>(
        &'a mut self,
        dp: &'a D,
        state: &'a HostState,
        scope: &'a Scope,
    ) -> BoxFuture<'a, neutrino_dataplane::Result<PassOutcome>> {
        Box::pin(self.pass(dp, state, scope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neutrino_api::agent::LocalPort;
    use neutrino_dataplane::memory::MemoryDataPlane;

    #[tokio::test]
    async fn a_restarted_reconciler_finds_everything_in_place() {
        let mut state = HostState::default();
        let port = LocalPort {
            network_id: "net-1".into(),
            mac_address: "fa:16:3e:00:00:01".into(),
            ip_addresses: vec!["198.51.100.5".into()],
            ..LocalPort::default()
        };
        state.local_ports.insert("port-1".into(), port);
        let dp = MemoryDataPlane::new();
        let first = FirewallReconciler::new().pass(&dp, &state, &Scope::Full).await.unwrap();
        assert!(first.changes > 0);
        assert!(first.ready["port-1"]);
        let again = FirewallReconciler::new().pass(&dp, &state, &Scope::Full).await.unwrap();
        assert_eq!(again.changes, 0, "a new agent changes nothing");
    }
}
