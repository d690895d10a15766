//! The per-host agent.
//!
//! Three loops share one state: the stream follower keeps the host's view up to date (a
//! snapshot on every connection, then updates), the link watcher notices taps appearing, and
//! the reconciler programs the kernel after any of those (and periodically, to repair drift),
//! then reports port status. Stopping the agent leaves the kernel as it is, so a restart does
//! not disturb traffic.

pub mod client;
pub mod reconcile;

use client::ServerClient;
use neutrino_api::agent::{AgentConfigurations, AgentRegistration, HostState, PortStatusReport, StreamMessage, AGENT_TYPE_LINUXBRIDGE};
use neutrino_dataplane::{DataPlane, LinkEvent};
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
}

/// Run the agent until `shutdown` resolves.
pub async fn run<D: DataPlane>(config: AgentConfig, dataplane: D, shutdown: impl std::future::Future<Output = ()>) {
    let client = ServerClient::new(&config.server_url);
    let registration = AgentRegistration {
        host: config.host.clone(),
        agent_type: AGENT_TYPE_LINUXBRIDGE.into(),
        tunnel_ip: config.local_ip.to_string(),
        availability_zone: config.availability_zone.clone(),
        configurations: AgentConfigurations {
            interface_mappings: config.physical_interface_mappings.clone(),
            tunnel_types: vec!["vxlan".into()],
            l2_population: true,
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
        tokio::spawn(watch_links(dataplane.clone(), wake.clone())),
        tokio::spawn(reconcile_loop(dataplane, client, config, state_rx, wake)),
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

/// Wake the reconciler when a tap appears or one of our devices disappears.
async fn watch_links<D: DataPlane>(dp: Arc<D>, wake: Arc<Notify>) {
    loop {
        match dp.link_events().await {
            Ok(mut events) => {
                // Events may have been missed while (re)subscribing: reconcile once.
                wake.notify_one();
                while let Some(e) = events.recv().await {
                    let relevant = match &e {
                        LinkEvent::Added(name) => name.starts_with("tap"),
                        LinkEvent::Removed(name) => {
                            name.starts_with("tap") || name.starts_with("brq") || name.starts_with("vxlan-")
                        }
                    };
                    if relevant {
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
    mut state: watch::Receiver<Option<HostState>>,
    wake: Arc<Notify>,
) {
    // What we last told the server, so a status is reported once, not on every pass.
    let mut reported: BTreeMap<String, String> = BTreeMap::new();
    let resync = Duration::from_secs(config.resync_interval.max(1));
    loop {
        let mut next_pass = resync;
        let current = state.borrow_and_update().clone();
        if let Some(current) = current {
            match reconcile::reconcile(dp.as_ref(), &current, config.local_ip).await {
                Ok(outcome) => {
                    if outcome.changes > 0 {
                        tracing::info!(changes = outcome.changes, "kernel reconciled");
                    }
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
