//! The agent stream over the change log: resuming from a revision, pruning, every change once
//! and in order across two servers, and views kept incrementally that equal views computed
//! from the tables after many random operations.

use super::*;
use neutrino_api::agent::{HostDelta, HostState, StreamMessage};
use neutrino_domain::topology::Topology;
use neutrino_lab::follower::{HostStream, HostView};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A simulated host following its stream in a task, keeping its view and every message.
struct Listener {
    host: String,
    view: Arc<Mutex<HostView>>,
    messages: Arc<Mutex<Vec<StreamMessage>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// Open `host`'s stream on `base` (resuming from `view` when it has a revision) and wait
    /// for the first message.
    async fn start(base: &str, host: &str, view: HostView) -> Listener {
        let http = reqwest::Client::new();
        let mut stream = HostStream::open(&http, base, host, view.revision).await.unwrap();
        let first = stream.next(Duration::from_secs(10)).await.unwrap().expect("a first message");
        let view = Arc::new(Mutex::new(view));
        view.lock().unwrap().apply(&first).unwrap();
        let messages = Arc::new(Mutex::new(vec![first]));
        let (v, m, h) = (view.clone(), messages.clone(), host.to_string());
        let task = tokio::spawn(async move {
            while let Ok(Some(message)) = stream.next(Duration::from_secs(3600)).await {
                if let Err(e) = v.lock().unwrap().apply(&message) {
                    panic!("{h}: {e}");
                }
                m.lock().unwrap().push(message);
            }
        });
        Listener { host: host.to_string(), view, messages, task }
    }

    fn view(&self) -> HostView {
        self.view.lock().unwrap().clone()
    }

    fn first(&self) -> StreamMessage {
        self.messages.lock().unwrap()[0].clone()
    }

    /// Disconnect; the view it had.
    fn stop(self) -> HostView {
        self.task.abort();
        self.view()
    }
}

/// Wait until every listener's view equals its host's view computed from the tables.
async fn views_match_the_tables(store: &neutrino_store::Store, listeners: &[Listener]) {
    for _ in 0..200 {
        let mut all = true;
        for l in listeners {
            let (_, tables) = store.host_state(&l.host, true).await.unwrap();
            all &= l.view().state == tables;
        }
        if all {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for l in listeners {
        let (head, tables) = store.host_state(&l.host, true).await.unwrap();
        let view = l.view();
        assert_eq!(view.state, tables, "{}: kept view (at {:?}) vs the tables (head {head})", l.host, view.revision);
    }
}

async fn register(s: &TestServer, host: &str, tunnel_ip: &str, starting: bool) {
    let path = format!("/v2.0/neutrino/agents?starting={starting}");
    s.api.post(&path, lb_agent(host, tunnel_ip)).await.unwrap();
}

fn id_of(v: &Value) -> String {
    v["port"]["id"].as_str().or(v["id"].as_str()).unwrap_or_default().to_string()
}

on_both_backends!(an_agent_that_reconnects_gets_exactly_what_it_missed, default_config(), |s: TestServer| async move {
    for (host, ip) in [("h1", "192.0.2.11"), ("h2", "192.0.2.12"), ("h3", "192.0.2.13")] {
        register(&s, host, ip, true).await;
    }
    let (ours, _) = network_with_subnet(&s, "198.51.100.0/24").await;
    let (theirs, _) = network_with_subnet(&s, "203.0.113.0/24").await;
    post_port(&s, json!({"network_id": ours, "binding:host_id": "h1"})).await.unwrap();
    let l = Listener::start(&s.base, "h1", HostView::default()).await;
    assert!(matches!(l.first(), StreamMessage::Snapshot { .. }));
    let left = l.stop();

    // While h1 is away: a peer on its network, a port of its own, and a port it has no
    // business with.
    let peer = id_of(&post_port(&s, json!({"network_id": ours, "binding:host_id": "h2"})).await.unwrap());
    let own = id_of(&post_port(&s, json!({"network_id": ours, "binding:host_id": "h1"})).await.unwrap());
    post_port(&s, json!({"network_id": theirs, "binding:host_id": "h3"})).await.unwrap();

    let back = Listener::start(&s.base, "h1", left.clone()).await;
    let StreamMessage::Update { revision, delta } = back.first() else {
        panic!("a resumed stream starts with an update, not {:?}", back.first());
    };
    assert!(revision > left.revision.unwrap());
    assert_eq!(delta.upserted.remote_ports.keys().collect::<Vec<_>>(), [&peer]);
    assert_eq!(delta.upserted.local_ports.keys().collect::<Vec<_>>(), [&own]);
    assert!(delta.removed.is_empty() && delta.upserted.networks.is_empty(), "nothing else: {delta:?}");
    views_match_the_tables(&s.store, &[back]).await;

    // Reconnecting when nothing changed gets a heartbeat at the current revision.
    let quiet = Listener::start(&s.base, "h3", HostView::default()).await;
    let again = Listener::start(&s.base, "h3", quiet.stop()).await;
    assert!(matches!(again.first(), StreamMessage::Heartbeat { .. }), "{:?}", again.first());

    // A revision the server has never seen (another database) gets a snapshot.
    let stranger = HostView { revision: Some(1 << 40), state: HostState::default() };
    let fresh = Listener::start(&s.base, "h2", stranger).await;
    assert!(matches!(fresh.first(), StreamMessage::Snapshot { .. }), "{:?}", fresh.first());
});

fn short_history() -> ServerConfig {
    ServerConfig { change_log_keep_revisions: 5, ..default_config() }
}

on_both_backends!(
    a_pruned_revision_gets_a_snapshot_and_the_log_stays_small,
    short_history(),
    |s: TestServer| async move {
        register(&s, "h1", "192.0.2.11", true).await;
        register(&s, "h2", "192.0.2.12", true).await;
        let (net, _) = network_with_subnet(&s, "198.51.100.0/24").await;
        post_port(&s, json!({"network_id": net, "binding:host_id": "h1"})).await.unwrap();
        let left = Listener::start(&s.base, "h1", HostView::default()).await.stop();
        let mut ports = Vec::new();
        for _ in 0..12 {
            ports.push(id_of(&post_port(&s, json!({"network_id": net, "binding:host_id": "h2"})).await.unwrap()));
        }
        for p in &ports[..6] {
            s.api.delete(&format!("/v2.0/ports/{p}")).await.unwrap();
        }
        // Everything committed is numbered (on PostgreSQL the sequencer may not have run yet).
        s.store.sequence().await.unwrap();
        let removed = s.store.compact_log(5).await.unwrap();
        assert!(removed > 0, "superseded images and deleted ports are dropped");

        let back = Listener::start(&s.base, "h1", left).await;
        assert!(matches!(back.first(), StreamMessage::Snapshot { .. }), "too old to resume: {:?}", back.first());
        views_match_the_tables(&s.store, &[back]).await;

        // What is left folds into the current state: before the horizon only each object's
        // latest image, and nothing of deleted objects.
        let horizon = s.store.log_horizon().await.unwrap();
        assert!(horizon > 0);
        let log = s.store.log_since(0, u64::MAX / 4).await.unwrap();
        let mut seen = std::collections::HashSet::new();
        for r in log.iter().filter(|r| r.revision <= horizon) {
            for c in &r.changes {
                assert!(c.image.is_some(), "no deleted object before the horizon: {c:?}");
                assert!(seen.insert((c.kind, c.id.clone())), "one image per object before the horizon: {c:?}");
            }
        }
        let mut model = Topology::new(true);
        for r in &log {
            model.load(&r.changes);
        }
        for host in ["h1", "h2"] {
            assert_eq!(
                model.view(host),
                s.store.host_state(host, true).await.unwrap().1,
                "{host} from the compacted log"
            );
        }
    }
);

on_both_backends!(
    a_server_started_on_a_compacted_log_serves_the_current_state,
    short_history(),
    |s: TestServer| async move {
        register(&s, "h1", "192.0.2.11", true).await;
        register(&s, "h2", "192.0.2.12", true).await;
        let (net, _) = network_with_subnet(&s, "198.51.100.0/24").await;
        post_port(&s, json!({"network_id": net, "binding:host_id": "h1"})).await.unwrap();
        let mut ports = Vec::new();
        for _ in 0..16 {
            ports.push(id_of(&post_port(&s, json!({"network_id": net, "binding:host_id": "h2"})).await.unwrap()));
        }
        for p in &ports[..12] {
            s.api.delete(&format!("/v2.0/ports/{p}")).await.unwrap();
        }
        s.store.sequence().await.unwrap();
        assert!(s.store.compact_log(5).await.unwrap() > 0);
        // A new server loads the compacted log (long runs of revisions with nothing left in
        // them) and serves what the tables say; so does an agent resuming from before the
        // horizon.
        let fresh = crate::common::second_server_with(&s, short_history()).await;
        let h1 = Listener::start(&fresh.base, "h1", HostView::default()).await;
        let h2 = Listener::start(&fresh.base, "h2", HostView { revision: Some(1), state: HostState::default() }).await;
        assert!(matches!(h2.first(), StreamMessage::Snapshot { .. }), "{:?}", h2.first());
        views_match_the_tables(&s.store, &[h1, h2]).await;
    }
);

on_both_backends!(metrics_show_streams_requests_and_the_log, default_config(), |s: TestServer| async move {
    register(&s, "h1", "192.0.2.11", true).await;
    let (net, _) = network_with_subnet(&s, "198.51.100.0/24").await;
    post_port(&s, json!({"network_id": net, "binding:host_id": "h1"})).await.unwrap();
    let _l = Listener::start(&s.base, "h1", HostView::default()).await;
    let expected = [
        "neutrino_streams_connected 1",
        "neutrino_stream_hosts 1",
        "neutrino_stream_lag_revisions{host=\"h1\"}",
        "neutrino_api_requests_total{route=\"/v2.0/ports\",method=\"POST\",status=\"201\"} 1",
        "neutrino_api_request_duration_seconds_bucket{",
        "neutrino_stream_bytes_total",
        "neutrino_change_log_applied_revision",
    ];
    // (The stream's gauges follow its registration: polled, for a loaded machine.)
    let mut text = String::new();
    for _ in 0..50 {
        text = String::from_utf8(s.api.get_raw("/metrics").await.unwrap()).unwrap();
        if expected.iter().all(|e| text.contains(e)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for e in expected {
        assert!(text.contains(e), "{e} in:\n{text}");
    }
});

/// The writers and agents of a random run.
struct Run {
    servers: Vec<TestServer>,
    hosts: Vec<String>,
    networks: Vec<(String, String, String)>,
}

impl Run {
    async fn new(servers: Vec<TestServer>) -> Run {
        let hosts: Vec<String> = (1..=5).map(|i| format!("h{i}")).collect();
        for (i, h) in hosts.iter().enumerate() {
            register(&servers[i % servers.len()], h, &format!("192.0.2.{}", 11 + i), true).await;
        }
        let mut networks = Vec::new();
        for cidr in ["198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/25"] {
            let (net, subnet) = network_with_subnet(&servers[0], cidr).await;
            networks.push((net, subnet, cidr.trim_end_matches("0/24").trim_end_matches("0/25").to_string()));
        }
        Run { servers, hosts, networks }
    }

    /// One random operation through a random server; refusals (a taken address, a port
    /// deleted meanwhile) are part of the game.
    async fn operate(&self, rng: &mut StdRng, ports: &Mutex<Vec<String>>) {
        let s = &self.servers[rng.gen_range(0..self.servers.len())];
        let host = |rng: &mut StdRng| self.hosts[rng.gen_range(0..self.hosts.len())].clone();
        let pick = |rng: &mut StdRng| {
            let ports = ports.lock().unwrap();
            (!ports.is_empty()).then(|| ports[rng.gen_range(0..ports.len())].clone())
        };
        match rng.gen_range(0..100) {
            0..=29 => {
                let (net, _, _) = &self.networks[rng.gen_range(0..self.networks.len())];
                let bound = if rng.gen_bool(0.9) { host(rng) } else { String::new() };
                let body = json!({"network_id": net, "binding:host_id": bound, "admin_state_up": rng.gen_bool(0.9)});
                if let Ok(p) = post_port(s, body).await {
                    ports.lock().unwrap().push(id_of(&p));
                }
            }
            30..=44 => {
                if let Some(p) = pick(rng) {
                    let to = if rng.gen_bool(0.85) { host(rng) } else { String::new() };
                    let _ = s.api.put(&format!("/v2.0/ports/{p}"), json!({"port": {"binding:host_id": to}})).await;
                }
            }
            45..=52 => {
                if let Some(p) = pick(rng) {
                    let up = rng.gen_bool(0.5);
                    let _ = s.api.put(&format!("/v2.0/ports/{p}"), json!({"port": {"admin_state_up": up}})).await;
                }
            }
            53..=60 => {
                if let Some(p) = pick(rng) {
                    if let Ok(port) = s.api.port(&p).await {
                        let subnet = port["fixed_ips"][0]["subnet_id"].as_str().unwrap_or_default().to_string();
                        let prefix = self.networks.iter().find(|(_, sub, _)| *sub == subnet).map(|n| n.2.clone());
                        if let Some(prefix) = prefix {
                            let ip = format!("{prefix}{}", rng.gen_range(2..100));
                            let body = json!({"port": {"fixed_ips": [{"subnet_id": subnet, "ip_address": ip}]}});
                            let _ = s.api.put(&format!("/v2.0/ports/{p}"), body).await;
                        }
                    }
                }
            }
            61..=72 => {
                if let Some(p) = pick(rng) {
                    if s.api.delete(&format!("/v2.0/ports/{p}")).await.is_ok() {
                        ports.lock().unwrap().retain(|x| *x != p);
                    }
                }
            }
            73..=82 => {
                if let Some(p) = pick(rng) {
                    if let Ok(port) = s.api.port(&p).await {
                        let bound = port["binding:host_id"].as_str().unwrap_or_default().to_string();
                        let status = if rng.gen_bool(0.6) { "ACTIVE" } else { "DOWN" };
                        let report = json!({"host": bound, "ports": {p.clone(): status}});
                        let _ = s.api.put("/v2.0/neutrino/ports/status", report).await;
                    }
                }
            }
            83..=90 => {
                // An agent restarts, perhaps with another VTEP.
                let h = host(rng);
                let ip = format!("192.0.2.{}", rng.gen_range(30..40));
                register(s, &h, &ip, true).await;
            }
            91..=93 => {
                let (net, _, _) = &self.networks[rng.gen_range(0..self.networks.len())];
                let mtu = rng.gen_range(1400..1451);
                let _ = s.api.put(&format!("/v2.0/networks/{net}"), json!({"network": {"mtu": mtu}})).await;
            }
            94 => {
                // DHCP on or off: the network's DHCP port comes or goes (its image with it).
                let (_, subnet, _) = &self.networks[rng.gen_range(0..self.networks.len())];
                let body = json!({"subnet": {"enable_dhcp": rng.gen_bool(0.6), "dns_nameservers": ["198.51.100.53"]}});
                let _ = s.api.put(&format!("/v2.0/subnets/{subnet}"), body).await;
            }
            95 => {
                if let Some(p) = pick(rng) {
                    let opts =
                        json!([{"opt_name": "tftp-server", "opt_value": format!("203.0.113.{}", rng.gen_range(1..9))}]);
                    let _ = s.api.put(&format!("/v2.0/ports/{p}"), json!({"port": {"extra_dhcp_opts": opts}})).await;
                }
            }
            _ => {
                // An agent is deleted by an admin, and registers again later.
                if let Ok(agents) = s.api.get("/v2.0/agents").await {
                    let all = agents["agents"].as_array().cloned().unwrap_or_default();
                    if !all.is_empty() {
                        let id = all[rng.gen_range(0..all.len())]["id"].as_str().unwrap_or_default().to_string();
                        let _ = s.api.delete(&format!("/v2.0/agents/{id}")).await;
                    }
                }
            }
        }
    }

    /// `rounds` rounds of `clients` concurrent clients doing `per_client` operations each;
    /// between rounds some listeners disconnect and resume (on any server).
    async fn play(self: Arc<Self>, seed: u64, rounds: usize, clients: usize, per_client: usize) {
        let mut rng = StdRng::seed_from_u64(seed);
        let ports = Arc::new(Mutex::new(Vec::new()));
        let mut listeners = Vec::new();
        for (i, h) in self.hosts.iter().enumerate().take(4) {
            listeners.push(Listener::start(&self.servers[i % self.servers.len()].base, h, HostView::default()).await);
        }
        for round in 0..rounds {
            let mut tasks = Vec::new();
            for c in 0..clients {
                let (run, ports) = (self.clone(), ports.clone());
                let mut rng = StdRng::seed_from_u64(seed * 1000 + (round * clients + c) as u64);
                tasks.push(tokio::spawn(async move {
                    for _ in 0..per_client {
                        run.operate(&mut rng, &ports).await;
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            // Agents restart: they resume from the revision they had, on some server.
            for i in 0..listeners.len() {
                if rng.gen_bool(0.5) {
                    let l = listeners.remove(i);
                    let host = l.host.clone();
                    let view = l.stop();
                    let s = &self.servers[rng.gen_range(0..self.servers.len())];
                    let back = Listener::start(&s.base, &host, view).await;
                    assert!(!matches!(back.first(), StreamMessage::Snapshot { .. }), "{host} resumed");
                    listeners.insert(i, back);
                }
            }
            views_match_the_tables(&self.servers[0].store, &listeners).await;
        }
    }
}

on_both_backends!(
    incremental_views_match_the_tables_after_random_operations,
    default_config(),
    |s: TestServer| async move {
        let run = Arc::new(Run::new(vec![s]).await);
        run.play(7, 3, 6, 25).await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (NEUTRINO_TEST_PG); scripts/test runs it"]
async fn incremental_views_match_the_tables_with_two_servers() {
    let a = crate::common::start(crate::common::Backend::Postgres, default_config()).await.unwrap();
    let b = crate::common::second_server(&a).await;
    let run = Arc::new(Run::new(vec![a, b]).await);
    run.play(11, 3, 8, 20).await;
}

/// Two servers commit concurrently on one PostgreSQL database and an agent follows each:
/// every agent gets every revision that changes its view exactly once, in revision order,
/// carrying exactly the entries that revision changed (checked against views computed from
/// scratch at every revision of the log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (NEUTRINO_TEST_PG); scripts/test runs it"]
async fn every_agent_sees_every_change_once_and_in_order_across_two_servers() {
    let a = crate::common::start(crate::common::Backend::Postgres, default_config()).await.unwrap();
    let b = crate::common::second_server(&a).await;
    let run = Arc::new(Run::new(vec![a, b]).await);
    let mut listeners = Vec::new();
    for (i, h) in run.hosts.iter().enumerate().take(4) {
        listeners.push(Listener::start(&run.servers[i % 2].base, h, HostView::default()).await);
    }
    let ports = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for c in 0..8u64 {
        let (run, ports) = (run.clone(), ports.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(500 + c);
            for _ in 0..25 {
                run.operate(&mut rng, &ports).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let store = &run.servers[0].store;
    views_match_the_tables(store, &listeners).await;

    let log = store.log_since(0, u64::MAX / 4).await.unwrap();
    for l in &listeners {
        let messages = l.messages.lock().unwrap().clone();
        let StreamMessage::Snapshot { revision: start, state, .. } = &messages[0] else { panic!("a snapshot first") };
        // The view at every revision, computed from scratch.
        let mut model = Topology::new(true);
        let mut expected: Vec<(u64, HostDelta)> = Vec::new();
        let mut before = HostState::default();
        for r in &log {
            model.load(&r.changes);
            let now = model.view(&l.host);
            if r.revision == *start {
                assert_eq!(&now, state, "{}: the snapshot is the view at its revision", l.host);
            }
            if r.revision > *start {
                if let Some(delta) = before.diff(&now) {
                    expected.push((r.revision, delta));
                }
            }
            before = now;
        }
        let got: Vec<(u64, HostDelta)> = messages
            .iter()
            .filter_map(|m| match m {
                StreamMessage::Update { revision, delta } => Some((*revision, delta.clone())),
                _ => None,
            })
            .collect();
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "{}: revisions in order, each once", l.host);
        assert_eq!(got.len(), expected.len(), "{}: one update per revision that changed the view", l.host);
        assert_eq!(got, expected, "{}: each update carries exactly what its revision changed", l.host);
        eprintln!("{}: snapshot at {start}, then {} updates, as computed from the log", l.host, got.len());
    }
}

on_both_backends!(
    routers_reach_the_hosts_of_their_networks_as_the_tables_say,
    default_config(),
    |s: TestServer| async move {
        for (host, ip) in [("h1", "192.0.2.11"), ("h2", "192.0.2.12"), ("h3", "192.0.2.13")] {
            register(&s, host, ip, true).await;
        }
        let (a, subnet_a) = network_with_subnet(&s, "198.51.100.0/25").await;
        let (b, subnet_b) = network_with_subnet(&s, "198.51.100.128/25").await;
        let (other, _) = network_with_subnet(&s, "192.0.2.0/24").await;
        let ext =
            s.api.post("/v2.0/networks", json!({"network": {"name": "ext", "router:external": true}})).await.unwrap()
                ["network"]["id"]
                .as_str()
                .unwrap()
                .to_string();
        s.api.create_subnet(&ext, "203.0.113.0/24").await.unwrap();
        let vm1 = id_of(&post_port(&s, json!({"network_id": a, "binding:host_id": "h1"})).await.unwrap());
        post_port(&s, json!({"network_id": b, "binding:host_id": "h2"})).await.unwrap();
        post_port(&s, json!({"network_id": other, "binding:host_id": "h3"})).await.unwrap();
        let listeners = [
            Listener::start(&s.base, "h1", HostView::default()).await,
            Listener::start(&s.base, "h2", HostView::default()).await,
            Listener::start(&s.base, "h3", HostView::default()).await,
        ];
        let router = s
            .api
            .post("/v2.0/routers", json!({"router": {"name": "r", "external_gateway_info": {"network_id": ext}}}))
            .await
            .unwrap()["router"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        for subnet in [&subnet_a, &subnet_b] {
            s.api
                .put(&format!("/v2.0/routers/{router}/add_router_interface"), json!({"subnet_id": subnet}))
                .await
                .unwrap();
        }
        let fip = s
            .api
            .post("/v2.0/floatingips", json!({"floatingip": {"floating_network_id": ext, "port_id": vm1}}))
            .await
            .unwrap()["floatingip"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        s.api
            .put(
                &format!("/v2.0/routers/{router}"),
                json!({"router": {"routes": [{"destination": "192.0.2.0/24", "nexthop": "198.51.100.10"}]}}),
            )
            .await
            .unwrap();
        // h2 becomes a gateway host too: its centralized SNAT port is listed on every host of
        // the router.
        let l3 = json!({"host": "h2", "agent_type": "L3 agent", "tunnel_ip": "192.0.2.12",
                        "configurations": {"agent_mode": "dvr_snat"}});
        s.api.post("/v2.0/neutrino/agents?starting=true", l3).await.unwrap();
        views_match_the_tables(&s.store, &listeners).await;
        let h1 = s.store.host_state("h1", true).await.unwrap().1;
        assert_eq!(h1.routers[&router].snat_gateways.len(), 1, "h2's SNAT port: {h1:?}");
        assert_eq!(h1.routers[&router].interfaces.len(), 2, "h1 runs the router with both interfaces");
        assert!(h1.routers[&router].floating_ips.contains_key(&fip), "and its VM's floating IP");
        assert!(h1.networks.contains_key(&b) && h1.networks.contains_key(&ext), "routed presence: {h1:?}");
        assert!(
            s.store.host_state("h3", true).await.unwrap().1.routers.is_empty(),
            "h3 has no port on the router's networks"
        );
        // The port moves, an interface goes, the router goes down: still what the tables say.
        s.api.put(&format!("/v2.0/ports/{vm1}"), json!({"port": {"binding:host_id": "h2"}})).await.unwrap();
        s.api
            .put(&format!("/v2.0/routers/{router}"), json!({"router": {"routes": [], "admin_state_up": false}}))
            .await
            .unwrap();
        s.api.put(&format!("/v2.0/floatingips/{fip}"), json!({"floatingip": {"port_id": null}})).await.unwrap();
        s.api
            .put(&format!("/v2.0/routers/{router}/remove_router_interface"), json!({"subnet_id": subnet_b}))
            .await
            .unwrap();
        views_match_the_tables(&s.store, &listeners).await;
    }
);
