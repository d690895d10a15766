//! The L2 reconciler's memory of its last pass, and the pass over what changed since.

use super::{is_managed_bridge, is_managed_vlan, is_managed_vxlan, reconcile, reconcile_network, Outcome};
use crate::reconcilers::{PassOutcome, Reconciler, Scope};
use futures::future::BoxFuture;
use neutrino_api::agent::{HostState, LocalPort};
use neutrino_dataplane::{DataPlane, Fdb, LinkEvent, Links, Neighbours, Observed};
use neutrino_domain::host_intent::{compile_l2, HostCapabilities, L2Intent, NetworkIntent, Uplink};
use neutrino_domain::naming::{bridge_name, is_vlan_subinterface_of, tap_name};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

/// The L2 feature's reconciler: remembers what its last pass saw, so that the next one can
/// look only at what changed.
pub struct L2Reconciler {
    local_ip: Ipv4Addr,
    host: HostCapabilities,
    last: Option<Applied>,
}

/// The state and intent of the last pass, and its outcome.
struct Applied {
    state: HostState,
    intent: L2Intent,
    outcome: Outcome,
}

impl L2Reconciler {
    pub fn new(local_ip: Ipv4Addr, host: HostCapabilities) -> L2Reconciler {
        L2Reconciler { local_ip, host, last: None }
    }

    /// One pass: full the first time and when asked, else only over what changed.
    pub async fn pass<D: DataPlane>(
        &mut self,
        dp: &D,
        state: &HostState,
        scope: &Scope,
    ) -> neutrino_dataplane::Result<Outcome> {
        let outcome = match (scope, self.last.take()) {
            (Scope::Changes(events), Some(last)) => {
                let result = reconcile_changes(dp, state, &last, events, self.local_ip, &self.host).await;
                if result.is_err() {
                    // The next pass is a full one.
                    self.last = None;
                }
                result?
            }
            _ => reconcile(dp, state, self.local_ip, &self.host).await?,
        };
        let intent = compile_l2(state, IpAddr::V4(self.local_ip), &self.host);
        self.last = Some(Applied { state: state.clone(), intent, outcome: outcome.clone() });
        Ok(outcome)
    }

    /// Whether a link event may concern L2: a tap or a mapped physical interface appeared or
    /// changed, or one of our devices (bridge, VXLAN device, VLAN sub-interface of a mapped
    /// interface) or a mapped interface disappeared.
    pub fn is_relevant(&self, event: &LinkEvent) -> bool {
        let mut mapped = self.host.interface_mappings.values();
        match event {
            LinkEvent::Added(name) => name.starts_with("tap") || mapped.any(|i| i == name),
            LinkEvent::Removed(name) => {
                name.starts_with("tap")
                    || name.starts_with("brq")
                    || name.starts_with("vxlan-")
                    || mapped.any(|i| i == name || is_vlan_subinterface_of(name, i))
            }
        }
    }
}

impl<D: DataPlane> Reconciler<D> for L2Reconciler {
    fn name(&self) -> &'static str {
        "l2"
    }

    fn wants_link_event(&self, event: &LinkEvent) -> bool {
        self.is_relevant(event)
    }

    fn reconcile<'a>(
        &'a mut self,
        dp: &'a D,
        state: &'a HostState,
        scope: &'a Scope,
    ) -> BoxFuture<'a, neutrino_dataplane::Result<PassOutcome>> {
        Box::pin(async move {
            let out = self.pass(dp, state, scope).await?;
            let mut problems: BTreeMap<String, String> =
                out.unwired.iter().map(|(n, why)| (format!("network {n}"), format!("not wired here: {why}"))).collect();
            problems.extend(out.failed.iter().map(|(n, e)| (format!("network {n}"), format!("uplink failed: {e}"))));
            Ok(PassOutcome {
                ready: out.port_status.iter().map(|(id, s)| (id.clone(), s == "ACTIVE")).collect(),
                changes: out.changes,
                problems,
            })
        })
    }
}

/// What a change since the last pass concerns.
#[derive(Debug, Default)]
struct Concerned {
    /// The networks (by id) to look at.
    networks: BTreeSet<String>,
    /// The taps to look at in them.
    taps: BTreeSet<String>,
    /// Networks one of whose own devices (bridge, VXLAN device, uplink) an event named:
    /// all their taps are looked at (a re-created bridge has none plugged).
    devices: BTreeSet<String>,
}

/// Whether a local port changed in a way L2 wiring sees (its status is what this agent
/// reported: the server echoing it back changes nothing here).
fn wiring_changed(before: Option<&LocalPort>, after: Option<&LocalPort>) -> bool {
    match (before, after) {
        (Some(b), Some(a)) => {
            b.network_id != a.network_id || b.mac_address != a.mac_address || b.admin_state_up != a.admin_state_up
        }
        (None, None) => false,
        _ => true,
    }
}

/// What a change since `last` concerns.
fn concerned(state: &HostState, last: &Applied, events: &[LinkEvent], intent: &L2Intent) -> Concerned {
    let mut c = Concerned::default();
    let Concerned { networks, taps, devices } = &mut c;
    if let Some(delta) = last.state.diff(state) {
        for (collection, id) in delta.keys() {
            if collection == "local_ports" && !wiring_changed(last.state.local_ports.get(id), state.local_ports.get(id))
            {
                continue;
            }
            let now = |s: &HostState| match collection {
                "local_ports" => s.local_ports.get(id).map(|p| p.network_id.clone()),
                "remote_ports" => s.remote_ports.get(id).map(|p| p.network_id.clone()),
                "networks" => s.networks.contains_key(id).then(|| id.to_string()),
                _ => None,
            };
            networks.extend(now(state));
            networks.extend(now(&last.state));
            if collection == "networks" {
                networks.insert(id.to_string());
            }
            if collection == "local_ports" {
                taps.insert(tap_name(id));
            }
        }
    }
    for event in events {
        let (LinkEvent::Added(name) | LinkEvent::Removed(name)) = event;
        for i in [intent, &last.intent] {
            for net in i.networks.values() {
                let uplink = net.uplink.as_ref();
                let names_it = net.bridge == *name
                    || net.vxlan.as_ref().is_some_and(|(v, _)| v == name)
                    || uplink.is_some_and(|u| u.device() == name)
                    || matches!(uplink, Some(Uplink::Vlan { parent, .. }) if parent == name);
                if names_it {
                    devices.insert(net.network_id.clone());
                }
                if names_it || net.taps.contains_key(name) {
                    networks.insert(net.network_id.clone());
                }
            }
        }
        if name.starts_with("tap") {
            taps.insert(name.clone());
        }
    }
    c
}

/// A pass over what changed since `last`: the concerned networks only.
async fn reconcile_changes<D: DataPlane>(
    dp: &D,
    state: &HostState,
    last: &Applied,
    events: &[LinkEvent],
    local_ip: Ipv4Addr,
    host: &HostCapabilities,
) -> neutrino_dataplane::Result<Outcome> {
    let intent = compile_l2(state, IpAddr::V4(local_ip), host);
    let Concerned { networks, mut taps, devices } = concerned(state, last, events, &intent);
    let mut out = Outcome { unwired: intent.unwired.clone(), ..Outcome::default() };
    // What is not looked at keeps its status; ports that left are forgotten.
    out.port_status = last
        .outcome
        .port_status
        .iter()
        .filter(|(id, _)| state.local_ports.contains_key(*id))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.failed = last
        .outcome
        .failed
        .iter()
        .filter(|(n, _)| !networks.contains(*n))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // Taps still waiting (no device yet, uplink failed) are looked at again.
    for (id, status) in &out.port_status {
        if status != "ACTIVE" {
            taps.insert(tap_name(id));
        }
    }
    // The statuses a look at the kernel decides again: the ports of the taps looked at, and
    // every port of a network that is new here, changed its devices, or is not wired here.
    let mut all_taps: BTreeSet<&str> = BTreeSet::new();
    for network_id in &networks {
        let bridge = bridge_name(network_id);
        let wired = intent.networks.get(&bridge);
        let old = last.intent.networks.get(&bridge);
        let changed = devices.contains(network_id)
            || match (wired, old) {
                (Some(net), Some(o)) => o.mtu != net.mtu || o.vxlan != net.vxlan || o.uplink != net.uplink,
                _ => true,
            };
        if changed {
            all_taps.insert(network_id);
        }
    }
    out.port_status.retain(|id, _| {
        let network = state.local_ports.get(id).map(|p| p.network_id.as_str()).unwrap_or_default();
        !taps.contains(&tap_name(id)) && !all_taps.contains(network)
    });
    for network_id in &networks {
        let bridge = bridge_name(network_id);
        let old = last.intent.networks.get(&bridge);
        match intent.networks.get(&bridge) {
            Some(net) => {
                let mut filter = if all_taps.contains(network_id.as_str()) { None } else { Some(&taps) };
                let mut observed = observe_network(dp, net, filter).await?;
                let bridge_ok = observed.links.iter().any(|l| l.name == net.bridge && l.up);
                if filter.is_some() && !bridge_ok {
                    // The bridge is gone or down (whatever the events said): every tap of
                    // the network is plugged and decided again.
                    filter = None;
                    observed = observe_network(dp, net, None).await?;
                    out.port_status
                        .retain(|id, _| state.local_ports.get(id).is_none_or(|p| p.network_id != *network_id));
                }
                reconcile_network(dp, net, &observed, local_ip, &mut out, filter).await?;
                if let Some(old) = old.filter(|o| o.uplink != net.uplink || o.vxlan != net.vxlan) {
                    tear_down(dp, old, &intent, host, &mut out, false).await?;
                }
            }
            None => {
                if let Some(old) = old {
                    tear_down(dp, old, &intent, host, &mut out, true).await?;
                }
            }
        }
    }
    for port_id in state.local_ports.keys() {
        out.port_status.entry(port_id.clone()).or_insert_with(|| "DOWN".to_string());
    }
    Ok(out)
}

/// What the kernel has of one network: its bridge, VXLAN device, uplink (and its parent),
/// the given taps (all of the network's when `None`), and the VXLAN device's entries.
async fn observe_network<D: DataPlane>(
    dp: &D,
    net: &NetworkIntent,
    taps: Option<&BTreeSet<String>>,
) -> neutrino_dataplane::Result<Observed> {
    let mut names: Vec<&str> = vec![net.bridge.as_str()];
    if let Some((vxlan, _)) = &net.vxlan {
        names.push(vxlan);
    }
    match &net.uplink {
        Some(Uplink::Physical { interface }) => names.push(interface),
        Some(Uplink::Vlan { name, parent, .. }) => names.extend([name.as_str(), parent.as_str()]),
        None => {}
    }
    names.extend(net.taps.keys().filter(|t| taps.is_none_or(|w| w.contains(*t))).map(String::as_str));
    let mut observed = Observed::default();
    for name in names {
        if let Some(link) = dp.links().get(name).await? {
            observed.links.push(link);
        }
    }
    if let Some((vxlan, _)) = &net.vxlan {
        observed.fdb = dp.fdb().list(vxlan).await?;
        observed.neighbours = dp.neighbours().list(vxlan).await?;
    }
    Ok(observed)
}

/// Delete a network's devices that the new intent does not want: its VLAN sub-interface and
/// VXLAN device (unless another network uses them) and, when `bridge`, its bridge. The
/// physical interface is never deleted.
async fn tear_down<D: DataPlane>(
    dp: &D,
    old: &NetworkIntent,
    intent: &L2Intent,
    host: &HostCapabilities,
    out: &mut Outcome,
    bridge: bool,
) -> neutrino_dataplane::Result<()> {
    let wanted_uplink = |d: &str| intent.networks.values().any(|n| n.uplink.as_ref().is_some_and(|u| u.device() == d));
    let wanted_vxlan = |d: &str| intent.networks.values().any(|n| n.vxlan.as_ref().is_some_and(|(v, _)| v == d));
    if let Some(Uplink::Vlan { name, .. }) = &old.uplink {
        if !wanted_uplink(name) {
            if let Some(link) = dp.links().get(name).await? {
                if is_managed_vlan(&link, host) {
                    tracing::info!(link = %name, "removing vlan sub-interface no local port needs");
                    dp.links().delete(name).await?;
                    out.changes += 1;
                }
            }
        }
    }
    if let Some((vxlan, _)) = &old.vxlan {
        if !wanted_vxlan(vxlan) && dp.links().get(vxlan).await?.is_some_and(|l| is_managed_vxlan(&l)) {
            tracing::info!(link = %vxlan, "removing link no local port needs");
            dp.links().delete(vxlan).await?;
            out.changes += 1;
        }
    }
    if bridge && dp.links().get(&old.bridge).await?.is_some_and(|l| is_managed_bridge(&l)) {
        tracing::info!(link = %old.bridge, "removing link no local port needs");
        dp.links().delete(&old.bridge).await?;
        out.changes += 1;
    }
    Ok(())
}
