//! The per-host agent.
//!
//! Three loops share one state: the stream follower keeps the host's view up to date (a
//! snapshot on every connection, then updates), the link watcher notices taps appearing, and
//! the reconciler programs the kernel after any of those (and periodically, to repair drift),
//! then reports port status. Stopping the agent leaves the kernel as it is, so a restart does
//! not disturb traffic.

pub mod capabilities;
pub mod client;
pub mod reconcile;

use client::ServerClient;
use neutrino_api::agent::{
    AgentConfigurations, AgentRegistration, HostState, PortStatusReport, StreamMessage, AGENT_TYPE_LINUXBRIDGE,
};
use neutrino_dataplane::{DataPlane, LinkEvent};
use neutrino_domain::host_intent::HostCapabilities;
use neutrino_domain::naming::is_vlan_subinterface_of;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};

/// Agent options (`[DEFAULT] host`, `[agent] server_url`, `[vxlan] local_ip`, ...).
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub host: String,
    pub server_url: String,
    pub local_ip: Ipv4Addr,
    /// `[agent] report_interval`: seconds between heartbeats.
    pub report_interval: u64,
    /// Seconds between full reconciles when nothing happens (drift repair).
    pub resync_interval: u64,
    /// `[AGENT] availability_zone`.
    pub availability_zone: String,
    /// `[linux_bridge] physical_interface_mappings`: physical network → interface.
    pub physical_interface_mappings: BTreeMap<String, String>,
    /// `[keystone_authtoken]`: with Keystone, the agent's credentials (a user with the
    /// `admin` or `service` role).
    pub keystone: Option<neutrino_api::keystone::PasswordAuth>,
}

/// Run the agent until `shutdown` resolves.
pub async fn run<D: DataPlane>(config: AgentConfig, dataplane: D, shutdown: impl std::future::Future<Output = ()>) {
    let mut client = ServerClient::new(&config.server_url);
    if let Some(auth) = &config.keystone {
        client = client.with_keystone(auth.clone());
    }
    let host = capabilities::discover(&dataplane, &config.physical_interface_mappings).await;
    let registration = AgentRegistration {
        host: config.host.clone(),
        agent_type: AGENT_TYPE_LINUXBRIDGE.into(),
        tunnel_ip: config.local_ip.to_string(),
        availability_zone: config.availability_zone.clone(),
        configurations: AgentConfigurations {
            interface_mappings: config.physical_interface_mappings.clone(),
            tunnel_types: vec!["vxlan".into()],
            l2_population: true,
            unsupported_network_types: host.unsupported_network_types.clone(),
            ..Default::default()
        },
    };
    let dataplane = Arc::new(dataplane);
    let wake = Arc::new(Notify::new());
    let (state_tx, state_rx) = watch::channel::<Option<HostState>>(None);

    register_until_accepted(&client, &registration).await;
    let tasks = [
        tokio::spawn(heartbeat(client.clone(), registration.clone(), config.report_interval)),
        tokio::spawn(follow_stream(client.clone(), config.host.clone(), state_tx)),
        tokio::spawn(watch_links(dataplane.clone(), wake.clone(), host.clone())),
        tokio::spawn(reconcile_loop(dataplane, client, config, host, state_rx, wake)),
    ];
    shutdown.await;
    for t in tasks {
        t.abort();
    }
    tracing::info!("agent stopped; kernel state left in place");
}

async fn register_until_accepted(client: &ServerClient, reg: &AgentRegistration) {
    let mut delay = Duration::from_millis(200);
    loop {
        match client.register(reg, true).await {
            Ok(()) => {
                tracing::info!(host = %reg.host, tunnel_ip = %reg.tunnel_ip, "registered");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "registration failed; retrying"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

async fn heartbeat(client: ServerClient, reg: AgentRegistration, interval: u64) {
    let mut tick = tokio::time::interval(Duration::from_secs(interval.max(1)));
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = client.register(&reg, false).await {
            tracing::warn!(error = %e, "heartbeat failed");
        }
    }
}

/// Keep `state` equal to the server's view of this host, reconnecting forever.
async fn follow_stream(client: ServerClient, host: String, state: watch::Sender<Option<HostState>>) {
    loop {
        let (tx, mut rx) = mpsc::channel(64);
        let follower = {
            let client = client.clone();
            let host = host.clone();
            tokio::spawn(async move { client.follow(&host, &tx).await })
        };
        while let Some(msg) = rx.recv().await {
            match msg {
                StreamMessage::Snapshot { revision, state: snapshot } => {
                    tracing::debug!(revision, "snapshot");
                    state.send_replace(Some(snapshot));
                }
                StreamMessage::Update { revision, upserted, removed } => {
                    tracing::debug!(revision, "update");
                    state.send_modify(|s| {
                        if let Some(s) = s {
                            s.apply(upserted, &removed);
                        }
                    });
                }
                StreamMessage::Heartbeat { .. } => {}
            }
        }
        match follower.await {
            Ok(Ok(())) => tracing::info!("stream closed by server; reconnecting"),
            Ok(Err(e)) => tracing::warn!(error = %e, "stream failed; reconnecting"),
            Err(_) => return,
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Whether a link event may need the reconciler: a tap or a mapped physical interface
/// appeared or changed, or one of our devices (bridge, VXLAN device, VLAN sub-interface of a
/// mapped interface) or a mapped interface disappeared.
fn is_relevant(event: &LinkEvent, host: &HostCapabilities) -> bool {
    let mut mapped = host.interface_mappings.values();
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

/// Wake the reconciler when a link event is relevant (see [`is_relevant`]).
async fn watch_links<D: DataPlane>(dp: Arc<D>, wake: Arc<Notify>, host: HostCapabilities) {
    loop {
        match dp.link_events().await {
            Ok(mut events) => {
                // Events may have been missed while (re)subscribing: reconcile once.
                wake.notify_one();
                while let Some(e) = events.recv().await {
                    if is_relevant(&e, &host) {
                        wake.notify_one();
                    }
                }
                tracing::warn!("link event subscription ended; resubscribing");
            }
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to link events"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn reconcile_loop<D: DataPlane>(
    dp: Arc<D>,
    client: ServerClient,
    config: AgentConfig,
    host: HostCapabilities,
    mut state: watch::Receiver<Option<HostState>>,
    wake: Arc<Notify>,
) {
    // What we last told the server, so a status is reported once, not on every pass.
    let mut reported: BTreeMap<String, String> = BTreeMap::new();
    // Networks we last logged as not wired, so each problem is logged when it appears.
    let mut problems = NetworkProblems::default();
    let resync = Duration::from_secs(config.resync_interval.max(1));
    loop {
        let mut next_pass = resync;
        let current = state.borrow_and_update().clone();
        if let Some(current) = current {
            match reconcile::reconcile(dp.as_ref(), &current, config.local_ip, &host).await {
                Ok(outcome) => {
                    if outcome.changes > 0 {
                        tracing::info!(changes = outcome.changes, "kernel reconciled");
                    }
                    problems.log_changes(&outcome);
                    let delivered =
                        report_status(&client, &config.host, &current, &outcome.port_status, &mut reported).await;
                    if !delivered {
                        next_pass = Duration::from_secs(1);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reconcile failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
        }
        tokio::select! {
            _ = state.changed() => {}
            _ = wake.notified() => {}
            _ = tokio::time::sleep(next_pass) => {}
        }
    }
}

/// The networks a pass could not wire, remembered so that the log shows each problem once
/// (and again when it changes), not on every pass.
#[derive(Debug, Default)]
struct NetworkProblems {
    unwired: BTreeMap<String, String>,
    failed: BTreeMap<String, String>,
}

impl NetworkProblems {
    fn log_changes(&mut self, outcome: &reconcile::Outcome) {
        for (network, reason) in news(&self.unwired, &outcome.unwired) {
            tracing::warn!(%network, %reason, "network not wired on this host; its ports stay DOWN");
        }
        for (network, error) in news(&self.failed, &outcome.failed) {
            tracing::error!(%network, %error, "network uplink failed; its ports stay DOWN");
        }
        let before: Vec<&String> = self.unwired.keys().chain(self.failed.keys()).collect();
        for network in before {
            if !outcome.unwired.contains_key(network) && !outcome.failed.contains_key(network) {
                tracing::info!(%network, "network no longer has a wiring problem");
            }
        }
        self.unwired = outcome.unwired.clone();
        self.failed = outcome.failed.clone();
    }
}

/// The entries of `now` that `before` did not have (or had with another value).
fn news<'a>(
    before: &'a BTreeMap<String, String>,
    now: &'a BTreeMap<String, String>,
) -> impl Iterator<Item = (&'a String, &'a String)> {
    now.iter().filter(move |(k, v)| before.get(*k) != Some(*v))
}

/// Tell the server about ports whose status differs from what it shows. `false` when the
/// report could not be delivered (the caller retries soon).
async fn report_status(
    client: &ServerClient,
    host: &str,
    state: &HostState,
    observed: &BTreeMap<String, String>,
    reported: &mut BTreeMap<String, String>,
) -> bool {
    reported.retain(|id, _| state.local_ports.contains_key(id));
    let mut report = PortStatusReport { host: host.to_string(), ports: BTreeMap::new() };
    for (id, status) in observed {
        let server_view = state.local_ports.get(id).map(|p| p.status.as_str());
        if server_view != Some(status.as_str()) && reported.get(id) != Some(status) {
            report.ports.insert(id.clone(), status.clone());
        }
    }
    // Forget what the server now agrees with, so a later flap is reported again.
    reported.retain(|id, s| state.local_ports.get(id).map(|p| &p.status) != Some(s));
    if report.ports.is_empty() {
        return true;
    }
    match client.report(&report).await {
        Ok(()) => {
            reported.extend(report.ports);
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "status report failed; will retry");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostCapabilities {
        HostCapabilities {
            interface_mappings: BTreeMap::from([("physnet1".to_string(), "phys0".to_string())]),
            ..Default::default()
        }
    }

    #[test]
    fn our_devices_and_the_mapped_interfaces_are_relevant() {
        let added = |n: &str| is_relevant(&LinkEvent::Added(n.into()), &host());
        let removed = |n: &str| is_relevant(&LinkEvent::Removed(n.into()), &host());
        assert!(added("tap3aab26d9-f8") && added("phys0"));
        assert!(!added("brq0817d5d7-a3") && !added("phys0.100") && !added("eth0"));
        for ours in ["tap3aab26d9-f8", "brq0817d5d7-a3", "vxlan-42", "phys0", "phys0.100", "phys0.4094"] {
            assert!(removed(ours), "{ours}");
        }
        for theirs in ["eth0", "eth0.100", "phys1.100", "phys0.x"] {
            assert!(!removed(theirs), "{theirs}");
        }
    }

    #[test]
    fn a_problem_is_new_once() {
        let before = BTreeMap::from([("n1".to_string(), "no mapping".to_string())]);
        let mut now = before.clone();
        assert_eq!(news(&before, &now).count(), 0);
        now.insert("n2".into(), "no 802.1Q".into());
        now.insert("n1".into(), "interface missing".into());
        let fresh: Vec<_> = news(&before, &now).map(|(k, _)| k.as_str()).collect();
        assert_eq!(fresh, ["n1", "n2"]);
    }
}
