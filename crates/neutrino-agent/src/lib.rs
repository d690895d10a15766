//! The per-host agent.
//!
//! Tasks share the host's view: the stream follower keeps it equal to the server's (a
//! snapshot, then one update per revision; after a reconnect only what it missed), the link
//! watcher passes kernel link events on, and the reconcile loop runs every feature's
//! reconciler after any of those (and periodically a full pass, to repair drift), then
//! reports port status. The follower is supervised: if it ever stops, it is started again.
//! Stopping the agent leaves the kernel as it is, so a restart does not disturb traffic.

mod alone;
pub mod capabilities;
pub mod client;
pub mod gateway_liveness;
pub mod metrics;
pub mod reconcilers;
pub mod services;

use client::ServerClient;
use metrics::{AgentMetrics, FeatureLabels, PassLabels};
use neutrino_api::agent::{
    AgentConfigurations, AgentRegistration, HostState, PortStatusReport, StreamMessage, AGENT_TYPE_LINUXBRIDGE,
    PROTOCOL_VERSION,
};
use neutrino_dataplane::{DataPlane, LinkEvent, Links};
use reconcilers::l2::L2Reconciler;
use reconcilers::{port_status, PassOutcome, Reconciler, Scope};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Agent options (`[DEFAULT] host`, `[agent] server_url`, `[vxlan] local_ip`, ...).
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub host: String,
    /// `[agent] server_url`: one server's base URL, or several separated by commas.
    pub server_url: String,
    /// `[agent] ssl_ca_file`, `ssl_cert_file`, `ssl_key_file`: how `https://` servers are
    /// checked, and the agent's certificate for servers that require one (mutual TLS).
    pub server_tls: neutrino_tls::ClientTls,
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
    /// How Keystone's HTTPS is checked (`[keystone_authtoken] cafile`, ...).
    pub keystone_tls: neutrino_tls::ClientTls,
    /// `[agent] metrics_listen`: where to serve `GET /metrics` (not served when `None`).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `[securitygroup] firewall_driver` is `nftables` (the default), not `noop`: security
    /// groups and port security are enforced.
    pub firewall: bool,
    /// `[agent] namespace_prefix`: put before the names of the namespaces the agent makes
    /// (`qrouter-<id>`), so several agents on one machine (a lab) keep theirs apart.
    pub namespace_prefix: String,
    /// `[agent] distributed_snat`: VMs of this host without a floating IP reach external
    /// networks through this host's own address there (no gateway host in the path).
    pub distributed_snat: bool,
    /// `agent_mode = dvr_snat`: a gateway host, which SNATs routers' VMs without a floating
    /// IP (centralized SNAT) for the routers the server schedules here.
    pub gateway_host: bool,
    /// `[agent] gateway_probe_interval_ms`: how often the gateway hosts of centralized SNAT
    /// are probed.
    pub gateway_probe_interval: Duration,
    /// `[agent] gateway_probe_misses`: after how many unanswered probes one is dead.
    pub gateway_probe_misses: u32,
    /// DHCP answered on this host (`[DEFAULT] dhcp_lease_duration`, `dns_domain`); `None` with
    /// `[agent] enable_dhcp = false`.
    pub dhcp: Option<neutrino_domain::dhcp::DhcpSettings>,
    /// The metadata proxy to Nova (`[DEFAULT] nova_metadata_*`), with DHCP; `None` with
    /// `[agent] enable_metadata_proxy = false`.
    pub metadata: Option<services::metadata::MetadataSettings>,
    /// `[DEFAULT] dnsmasq_dns_servers`: where the hosts' DNS responders send names that are
    /// not the ports' (none: refused).
    pub dns_servers: Vec<std::net::SocketAddr>,
    /// Router advertisements' intervals (`[DEFAULT] min_rtr_adv_interval`,
    /// `max_rtr_adv_interval`).
    pub router_adverts: neutrino_domain::router_advert::RaSettings,
}

/// The host's view as the follower last published it.
pub type View = Option<Arc<HostState>>;

/// What the link watcher passes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinkSignal {
    Event(LinkEvent),
    /// Events may have been missed (subscribing anew): every reconciler does a full pass.
    Resync,
}

/// Run the agent until `shutdown` resolves.
/// Fails only on options it cannot use at start (TLS files): everything later is retried.
pub async fn run<D: DataPlane>(
    config: AgentConfig,
    dataplane: D,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let started = Instant::now();
    let metrics = AgentMetrics::new();
    let mut client = match ServerClient::new(&config.server_url).with_tls(&config.server_tls) {
        Ok(client) => client,
        Err(e) => return Err(format!("[agent] TLS options: {e}")),
    };
    if let Some(auth) = &config.keystone {
        client = match client.with_keystone(auth.clone(), &config.keystone_tls) {
            Ok(client) => client,
            Err(e) => return Err(format!("[keystone_authtoken] TLS options: {e}")),
        };
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
    let (view_tx, view_rx) = watch::channel::<View>(None);

    register_until_accepted(&client, &registration).await;
    // The host's routing role, as Neutron's L3 agent rows show it: routers and floating IPs
    // of its own VMs (`dvr`).
    let routing = AgentRegistration {
        agent_type: neutrino_api::agent::AGENT_TYPE_L3.into(),
        configurations: AgentConfigurations { agent_mode: Some(agent_mode(&config).into()), ..Default::default() },
        ..registration.clone()
    };
    register_until_accepted(&client, &routing).await;
    let mut reconcilers: Vec<Box<dyn Reconciler<D>>> = Vec::new();
    if config.firewall {
        reconcilers.push(Box::new(reconcilers::firewall::FirewallReconciler::new()));
    }
    reconcilers.push(Box::new(L2Reconciler::new(config.local_ip, host)));
    let snat = config.distributed_snat.then(|| client.clone());
    let nudge = Arc::new(tokio::sync::Notify::new());
    let liveness = gateway_liveness::GatewayLiveness::new(
        config.gateway_probe_interval,
        config.gateway_probe_misses,
        nudge.clone(),
    );
    reconcilers.push(Box::new(reconcilers::routing::RoutingReconciler::new(
        &config.host,
        snat,
        Some(liveness.clone()),
    )));
    let mut tasks = Vec::new();
    if let Some(settings) = &config.dhcp {
        // DHCP, metadata and DNS, in a loop of their own (see `alone`).
        let dns = services::DnsSettings { domain: settings.domain.clone(), upstream: config.dns_servers.clone() };
        let services = services::HostServices::new(config.metadata.clone(), Some(dns));
        let dhcp = Box::new(reconcilers::dhcp::DhcpReconciler::new(settings.clone(), Some(services)));
        let resync = Duration::from_secs(config.resync_interval.max(1));
        tasks.push(tokio::spawn(alone::run(dataplane.clone(), dhcp, view_rx.clone(), resync, metrics.clone())));
    }
    // Router advertisements, in a loop of their own too (they gate no port either).
    let adverts = Box::new(reconcilers::router_adverts::RouterAdvertReconciler::new(config.router_adverts));
    let resync = Duration::from_secs(config.resync_interval.max(1));
    tasks.push(tokio::spawn(alone::run(dataplane.clone(), adverts, view_rx.clone(), resync, metrics.clone())));
    tasks.extend([
        tokio::spawn(gateway_liveness::run_probes(liveness)),
        tokio::spawn(heartbeat(client.clone(), registration.clone(), config.report_interval)),
        tokio::spawn(heartbeat(client.clone(), routing, config.report_interval)),
        tokio::spawn(supervise_stream(client.clone(), config.host.clone(), view_tx, metrics.clone())),
        tokio::spawn(
            ReconcileLoop {
                dp: dataplane,
                client,
                config: config.clone(),
                reconcilers,
                metrics: metrics.clone(),
                started,
                nudge,
            }
            .run(view_rx),
        ),
    ]);
    if let Some(listen) = config.metrics_listen {
        tasks.push(tokio::spawn(metrics::serve(metrics, listen)));
    }
    shutdown.await;
    for t in tasks {
        t.abort();
    }
    tracing::info!("agent stopped; kernel state left in place");
    Ok(())
}

/// The L3 agent's `agent_mode`: `dvr_snat` on gateway hosts, `dvr` on the others (which
/// Neutrino shows as `dvr_distributed_snat` when they SNAT their own VMs).
fn agent_mode(config: &AgentConfig) -> &'static str {
    if config.gateway_host {
        "dvr_snat"
    } else if config.distributed_snat {
        "dvr_distributed_snat"
    } else {
        "dvr"
    }
}

/// Capacity of the link event queue to the reconcile loop; a watcher that finds it full
/// asks for a full pass instead.
pub(crate) const EVENT_QUEUE: usize = 4096;

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

/// Keep the stream follower running: if it ever ends (it only should by panicking), start it
/// again, from the view it had.
async fn supervise_stream(client: ServerClient, host: String, view: watch::Sender<View>, metrics: AgentMetrics) {
    let view = Arc::new(view);
    let follower = Follower::default();
    let follower = Arc::new(tokio::sync::Mutex::new(follower));
    loop {
        let task =
            tokio::spawn(follow_stream(client.clone(), host.clone(), view.clone(), follower.clone(), metrics.clone()));
        match task.await {
            Ok(()) => tracing::error!("stream follower stopped; starting it again"),
            Err(e) if e.is_panic() => tracing::error!(error = %e, "stream follower panicked; starting it again"),
            Err(_) => return,
        }
        metrics.stream_connected.set(0);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The follower's own copy of the view and the revision it is at.
#[derive(Default)]
struct Follower {
    revision: Option<u64>,
    state: HostState,
}

impl Follower {
    /// Apply one message. `Err` when it does not fit (an update before any snapshot).
    fn apply(&mut self, message: StreamMessage) -> Result<bool, String> {
        match message {
            // A server older than this agent's protocol sends views without what newer
            // versions added (routers): following it would tear those down. Another server
            // (of this version) answers the next connection.
            StreamMessage::Snapshot { protocol, .. } if protocol < PROTOCOL_VERSION => {
                Err(format!("the server speaks stream protocol {protocol}, this agent {PROTOCOL_VERSION}"))
            }
            StreamMessage::Snapshot { revision, state, .. } => {
                tracing::debug!(revision, ports = state.local_ports.len(), "snapshot");
                self.state = state;
                self.revision = Some(revision);
                Ok(true)
            }
            StreamMessage::Update { revision, delta } => match self.revision {
                None => Err(format!("update {revision} before any snapshot")),
                Some(at) if revision <= at => Ok(false),
                Some(_) => {
                    self.state.apply(delta);
                    self.revision = Some(revision);
                    Ok(true)
                }
            },
            StreamMessage::Heartbeat { revision } => {
                if self.revision.is_some() {
                    self.revision = self.revision.max(Some(revision));
                }
                Ok(false)
            }
        }
    }
}

/// Keep the view equal to the server's, reconnecting forever (resuming from the revision
/// the view is at).
async fn follow_stream(
    client: ServerClient,
    host: String,
    view: Arc<watch::Sender<View>>,
    follower: Arc<tokio::sync::Mutex<Follower>>,
    metrics: AgentMetrics,
) {
    let mut delay = Duration::from_millis(200);
    loop {
        let since = follower.lock().await.revision;
        let (tx, mut rx) = mpsc::channel(1024);
        let connection = {
            let client = client.clone();
            let host = host.clone();
            tokio::spawn(async move { client.follow(&host, since, &tx).await })
        };
        metrics.stream_reconnects.inc();
        let mut start_over = false;
        while let Some(first) = rx.recv().await {
            metrics.stream_connected.set(1);
            delay = Duration::from_millis(200);
            let mut f = follower.lock().await;
            let mut changed = false;
            let mut message = Some(first);
            // Apply everything that has arrived, then publish once.
            while let Some(m) = message.take() {
                metrics.stream_messages.inc();
                match f.apply(m) {
                    Ok(c) => changed |= c,
                    Err(e) => {
                        tracing::warn!(error = %e, "unexpected stream message; starting over with a snapshot");
                        f.revision = None;
                        start_over = true;
                        break;
                    }
                }
                message = rx.try_recv().ok();
            }
            if let Some(r) = f.revision {
                metrics.stream_revision.set(r as i64);
            }
            if changed {
                metrics.local_ports.set(f.state.local_ports.len() as i64);
                view.send_replace(Some(Arc::new(f.state.clone())));
            }
            if start_over {
                // Drop this connection: the next one asks for a snapshot.
                connection.abort();
                break;
            }
        }
        metrics.stream_connected.set(0);
        if start_over {
            continue;
        }
        match connection.await {
            Ok(Ok(())) => tracing::info!("stream closed by server; reconnecting"),
            Ok(Err(e)) => tracing::warn!(error = %e, "stream failed; reconnecting"),
            Err(_) => return,
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Pass link events on to the reconcile loop, resubscribing when the kernel dropped some.
pub(crate) async fn watch_links<D: DataPlane>(dp: Arc<D>, out: mpsc::Sender<LinkSignal>) {
    loop {
        match dp.links().events().await {
            Ok(mut events) => {
                // Events may have been missed while (re)subscribing.
                if out.send(LinkSignal::Resync).await.is_err() {
                    return;
                }
                while let Some(e) = events.recv().await {
                    match out.try_send(LinkSignal::Event(e)) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            let _ = out.send(LinkSignal::Resync).await;
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
                tracing::warn!("link event subscription ended; resubscribing");
            }
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to link events"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A task aborted when its handle is dropped.
pub(crate) struct OwnedTask(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for OwnedTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long the reconcile loop waits after a failed pass or report, at first and at most.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

struct ReconcileLoop<D: DataPlane> {
    dp: Arc<D>,
    client: ServerClient,
    config: AgentConfig,
    reconcilers: Vec<Box<dyn Reconciler<D>>>,
    metrics: AgentMetrics,
    started: Instant,
    /// Woken when a reconciler has something of its own to do ([`Reconciler::pending`]).
    nudge: Arc<tokio::sync::Notify>,
}

/// What the loop remembers of each reconciler.
struct Feature {
    outcome: PassOutcome,
    /// The view its last successful pass reconciled (`None`: next pass is a full one).
    reconciled: Option<Arc<HostState>>,
    /// Problems already logged.
    logged: BTreeMap<String, String>,
}

impl<D: DataPlane> ReconcileLoop<D> {
    /// Start a link watcher (it lives as long as the returned task handle).
    fn watch_links(&self) -> (mpsc::Receiver<LinkSignal>, OwnedTask) {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        (rx, OwnedTask(tokio::spawn(watch_links(self.dp.clone(), tx))))
    }

    async fn run(mut self, mut view: watch::Receiver<View>) {
        let (mut links, mut _watcher) = self.watch_links();
        let resync = Duration::from_secs(self.config.resync_interval.max(1));
        let mut features: Vec<Feature> = self
            .reconcilers
            .iter()
            .map(|_| Feature { outcome: PassOutcome::default(), reconciled: None, logged: BTreeMap::new() })
            .collect();
        // What we last told the server, so a status is reported once, not on every pass.
        let mut reported: BTreeMap<String, String> = BTreeMap::new();
        let mut events: Vec<LinkEvent> = Vec::new();
        let mut next_full = Instant::now() + resync;
        let mut retry = false;
        let mut retry_delay = RETRY_FIRST / 2;
        let mut converged = false;
        loop {
            let current = view.borrow_and_update().clone();
            if let Some(state) = current {
                let full = Instant::now() >= next_full;
                if full {
                    next_full = Instant::now() + resync;
                }
                let mut failed = false;
                for (r, f) in self.reconcilers.iter_mut().zip(features.iter_mut()) {
                    let relevant: Vec<LinkEvent> = events.iter().filter(|e| r.wants_link_event(e)).cloned().collect();
                    let unchanged = f.reconciled.as_ref().is_some_and(|s| Arc::ptr_eq(s, &state));
                    if !full && unchanged && relevant.is_empty() && !retry && !r.pending() {
                        continue;
                    }
                    let scope = if full || f.reconciled.is_none() { Scope::Full } else { Scope::Changes(relevant) };
                    let feature = r.name().to_string();
                    let began = Instant::now();
                    match r.reconcile(self.dp.as_ref(), &state, &scope).await {
                        Ok(outcome) => {
                            let kind = if scope == Scope::Full { "full" } else { "changes" };
                            let labels = FeatureLabels { feature: feature.clone() };
                            self.metrics
                                .passes
                                .get_or_create(&PassLabels { feature: feature.clone(), scope: kind.into() })
                                .inc();
                            self.metrics.pass_seconds.get_or_create(&labels).observe(began.elapsed().as_secs_f64());
                            self.metrics.changes.get_or_create(&labels).inc_by(outcome.changes as u64);
                            if outcome.changes > 0 {
                                tracing::info!(%feature, changes = outcome.changes, scope = kind, "kernel reconciled");
                            }
                            log_problems(&feature, &f.logged, &outcome.problems);
                            f.logged = outcome.problems.clone();
                            f.outcome = outcome;
                            f.reconciled = Some(state.clone());
                        }
                        Err(e) => {
                            tracing::warn!(%feature, error = %e, "reconcile failed; retrying with a full pass");
                            // Ports this feature has not been done with yet stay DOWN.
                            for id in state.local_ports.keys() {
                                f.outcome.ready.entry(id.clone()).or_insert(false);
                            }
                            self.metrics.pass_failures.get_or_create(&FeatureLabels { feature }).inc();
                            f.reconciled = None;
                            failed = true;
                            if r.gates_later_features() {
                                // Fail closed: nothing is plugged until this feature is in place.
                                break;
                            }
                        }
                    }
                }
                events.clear();
                let outcomes: Vec<&PassOutcome> = features.iter().map(|f| &f.outcome).collect();
                let statuses = port_status(&state, &outcomes);
                let active = statuses.values().filter(|s| *s == "ACTIVE").count();
                self.metrics.active_ports.set(active as i64);
                let delivered = report_status(&self.client, &self.config.host, &state, &statuses, &mut reported).await;
                retry = failed || !delivered;
                retry_delay = if retry { (retry_delay * 2).min(RETRY_MAX) } else { RETRY_FIRST / 2 };
                if !converged && !failed && delivered {
                    converged = true;
                    let elapsed_ms = self.started.elapsed().as_millis() as u64;
                    tracing::info!(elapsed_ms, ports = state.local_ports.len(), active, "host converged");
                }
            }
            let wait = if retry { retry_delay } else { next_full.saturating_duration_since(Instant::now()) };
            tokio::select! {
                changed = view.changed() => {
                    if changed.is_err() {
                        // The follower's supervisor went away: nothing will change any more.
                        return;
                    }
                }
                signal = links.recv() => {
                    let Some(signal) = signal else {
                        // The watcher ended (it only does by failing): start another, and
                        // look at everything again.
                        tracing::warn!("link watcher ended; starting it again");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        (links, _watcher) = self.watch_links();
                        continue;
                    };
                    let mut signal = Some(signal);
                    while let Some(s) = signal.take() {
                        match s {
                            LinkSignal::Event(e) => events.push(e),
                            LinkSignal::Resync => {
                                for f in features.iter_mut() {
                                    f.reconciled = None;
                                }
                            }
                        }
                        signal = links.try_recv().ok();
                    }
                    let relevant = events.iter().any(|e| self.reconcilers.iter().any(|r| r.wants_link_event(e)));
                    let reset = features.iter().any(|f| f.reconciled.is_none());
                    if !relevant && !reset {
                        events.clear();
                        continue;
                    }
                }
                _ = self.nudge.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Log the problems that appeared or changed, and those that went away.
pub(crate) fn log_problems(feature: &str, before: &BTreeMap<String, String>, now: &BTreeMap<String, String>) {
    for (what, why) in news(before, now) {
        tracing::warn!(%feature, %what, %why, "cannot do this here; its ports stay DOWN");
    }
    for what in before.keys().filter(|k| !now.contains_key(*k)) {
        tracing::info!(%feature, %what, "no longer a problem");
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
    use neutrino_api::agent::{HostDelta, LocalPort};
    use neutrino_domain::host_intent::HostCapabilities;

    fn host() -> HostCapabilities {
        HostCapabilities {
            interface_mappings: BTreeMap::from([("physnet1".to_string(), "phys0".to_string())]),
            ..Default::default()
        }
    }

    #[test]
    fn our_devices_and_the_mapped_interfaces_are_relevant_to_l2() {
        let l2 = L2Reconciler::new(Ipv4Addr::LOCALHOST, host());
        let added = |n: &str| l2.is_relevant(&LinkEvent::Added(n.into()));
        let removed = |n: &str| l2.is_relevant(&LinkEvent::Removed(n.into()));
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

    fn port() -> LocalPort {
        LocalPort {
            network_id: "n1".into(),
            mac_address: "fa:16:3e:00:00:01".into(),
            admin_state_up: true,
            status: "DOWN".into(),
            ..LocalPort::default()
        }
    }

    #[test]
    fn the_follower_applies_updates_in_order_once_and_resumes_from_its_revision() {
        let mut f = Follower::default();
        let mut delta = HostDelta::default();
        delta.set("p1", Some(port()));
        let update = |revision: u64, delta: &HostDelta| StreamMessage::Update { revision, delta: delta.clone() };
        assert!(f.apply(update(3, &delta)).is_err(), "no update before a snapshot");
        let older = StreamMessage::Snapshot { revision: 5, state: HostState::default(), protocol: 2 };
        assert!(f.apply(older).is_err(), "a server of an older protocol is not followed");
        assert_eq!(
            f.apply(StreamMessage::Snapshot { revision: 5, state: HostState::default(), protocol: PROTOCOL_VERSION }),
            Ok(true)
        );
        assert_eq!(f.apply(update(5, &delta)), Ok(false), "a revision already applied is skipped");
        assert_eq!(f.apply(update(6, &delta)), Ok(true));
        assert_eq!(f.state.local_ports.len(), 1);
        assert_eq!(f.apply(StreamMessage::Heartbeat { revision: 9 }), Ok(false));
        assert_eq!(f.revision, Some(9), "a heartbeat says the view is current at its revision");
    }
}
