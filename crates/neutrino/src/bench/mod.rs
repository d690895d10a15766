//! `neutrino bench`: API throughput and latency, list time, and port activation time; the
//! fan-out of host state to many hosts (`--fanout`); an agent restart with many local ports
//! (`--agent-restart`); one host's security group firewall (`--firewall`); distributed routing
//! and floating IPs (`--routing`); centralized SNAT's failover (`--snat-failover`); DHCP and
//! metadata on one host (`--dhcp`); several servers on one database, under faults (`--ha`);
//! agents' streams over TLS (`--tls-streams`; `--keystone` also times Keystone over HTTPS). It
//! prints figures; it passes or fails nothing.

mod agent_restart;
mod dhcp;
mod fanout;
mod firewall;
mod ha;
mod routing;
mod routing_restart;
mod sg_latency;
mod snat_failover;
mod tls;

use neutrino_lab::{check_tools, ApiClient, Lab, LabConfig};
use serde_json::json;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// A running server to measure (API figures only).
    #[arg(long, conflicts_with = "lab")]
    url: Option<String>,
    /// Build a lab (root): server process + one host agent, and also measure activation.
    #[arg(long)]
    lab: bool,
    /// `[database] connection` of the lab's server (default: SQLite file).
    #[arg(long)]
    database: Option<String>,
    /// Ports per create phase.
    #[arg(long, default_value_t = 1000)]
    ports: usize,
    /// Concurrent clients of the second phase.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Ports on the server when the list is timed.
    #[arg(long, default_value_t = 5000)]
    list_ports: usize,
    /// Ports on the server when filtered, paged and tagged lists are timed (0: skip).
    #[arg(long, default_value_t = 10000)]
    query_ports: usize,
    /// Tenant networks created (then deleted) by `clients` concurrent clients (0: skip).
    #[arg(long, default_value_t = 2000)]
    networks: usize,
    /// Compare port creates with Keystone tokens (real Keystone, cached tokens) to noauth,
    /// on two in-process servers (needs `scripts/keystone-harness install`).
    #[arg(long)]
    keystone: bool,
    /// Ports of the activation phase (lab only).
    #[arg(long, default_value_t = 100)]
    activations: usize,
    /// Simulated hosts follow a server process's streams: port creates, fan-out latency,
    /// server CPU and memory, for each host count of `--hosts`.
    #[arg(long)]
    fanout: bool,
    /// Host counts of the fan-out benchmark.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    hosts: Vec<usize>,
    /// Ports per simulated host.
    #[arg(long, default_value_t = 10)]
    ports_per_host: usize,
    /// Simulated hosts per network.
    #[arg(long, default_value_t = 10)]
    hosts_per_network: usize,
    /// Restart a real agent with `--restart-ports` local ports during a ping (root; lab).
    #[arg(long)]
    agent_restart: bool,
    #[arg(long, default_value_t = 1000)]
    restart_ports: usize,
    /// One host's security group firewall in nftables (root; a private network namespace).
    #[arg(long)]
    firewall: bool,
    #[arg(long, default_value_t = 1000)]
    firewall_ports: usize,
    #[arg(long, default_value_t = 1000)]
    firewall_members: usize,
    /// Time from a security group rule's create reply to the traffic it allows (root; lab).
    #[arg(long)]
    sg_latency: bool,
    /// Distributed routing (root; lab): a floating IP's associate → reachable latency, and
    /// routed beside bridged TCP throughput.
    #[arg(long)]
    routing: bool,
    /// Associations timed by `--routing`.
    #[arg(long, default_value_t = 50)]
    fip_rounds: usize,
    /// One host with many floating IPs on many routers: its agent restarted (root; lab).
    #[arg(long)]
    routing_restart: bool,
    #[arg(long, default_value_t = 500)]
    restart_fips: usize,
    #[arg(long, default_value_t = 20)]
    restart_routers: usize,
    /// Centralized SNAT: the outage when the active gateway host is cut off (root; lab).
    #[arg(long)]
    snat_failover: bool,
    /// Cuts timed by `--snat-failover`.
    #[arg(long, default_value_t = 5)]
    failover_rounds: usize,
    /// DHCP and metadata answered on one host with many local ports (root; lab).
    #[arg(long)]
    dhcp: bool,
    #[arg(long, default_value_t = 1000)]
    dhcp_ports: usize,
    #[arg(long, default_value_t = 100)]
    dhcp_networks: usize,
    /// Several servers on one PostgreSQL of its own (root): mixed throughput with 1-3 servers
    /// (and SQLite), agent failover when a server dies, recovery after a database restart.
    #[arg(long)]
    ha: bool,
    /// Seconds of each `--ha` throughput run.
    #[arg(long, default_value_t = 20)]
    ha_seconds: u64,
    /// Writers per project in `--ha` (two projects, and a reader).
    #[arg(long, default_value_t = 6)]
    ha_clients: usize,
    /// Agents following the servers in `--ha`.
    #[arg(long, default_value_t = 30)]
    ha_agents: usize,
    /// Agents opening their streams at once over TLS, beside plain HTTP (one in-process server).
    #[arg(long)]
    tls_streams: bool,
    #[arg(long, default_value_t = 1000)]
    tls_agents: usize,
}

/// A two-host lab for a benchmark (root), in a work directory named after it; run `measure`
/// on it, then tear both down.
async fn in_two_host_lab<F>(name: &str, database: Option<String>, measure: F) -> Result<(), String>
where
    F: AsyncFnOnce(&mut Lab) -> Result<(), String>,
{
    check_tools().map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("neutrino-bench-{name}-{}", std::process::id()));
    let mut lab = Lab::start(LabConfig {
        prefix: "nb".into(),
        binary: std::env::current_exe().map_err(|e| e.to_string())?,
        hosts: vec!["h1".into(), "h2".into()],
        database,
        server_port: 9696,
        dir: dir.clone(),
        tls: false,
    })
    .map_err(|e| e.to_string())?;
    let result = measure(&mut lab).await;
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

pub async fn run(args: BenchArgs) -> Result<(), String> {
    if args.keystone {
        return keystone_phase(&args).await;
    }
    if args.fanout {
        let fan = fanout::FanoutArgs {
            hosts: args.hosts.clone(),
            ports_per_host: args.ports_per_host,
            hosts_per_network: args.hosts_per_network.max(1),
            clients: args.clients,
            database: args.database.clone(),
        };
        return fanout::run(fan).await;
    }
    if args.tls_streams {
        return tls::run(args.tls_agents).await;
    }
    if args.ha {
        let ha = ha::HaArgs {
            seconds: args.ha_seconds,
            clients_per_project: args.ha_clients,
            agents: args.ha_agents,
            rounds: args.failover_rounds,
        };
        return ha::run(ha).await;
    }
    if args.sg_latency {
        return sg_latency::run(args.database.clone()).await;
    }
    if args.snat_failover {
        return snat_failover::run(args.failover_rounds, args.database.clone()).await;
    }
    if args.dhcp {
        return dhcp::run(args.dhcp_ports, args.dhcp_networks, args.database.clone()).await;
    }
    if args.routing_restart {
        return routing_restart::run(args.restart_fips, args.restart_routers, args.database.clone()).await;
    }
    if args.routing {
        return routing::run(args.fip_rounds, args.database.clone()).await;
    }
    if args.firewall {
        return firewall::run(args.firewall_ports, args.firewall_members);
    }
    if args.agent_restart {
        return agent_restart::run(args.restart_ports, args.database.clone()).await;
    }
    if let Some(url) = &args.url {
        return api_phases(&ApiClient::new(url), &args).await.map(|_| ());
    }
    if !args.lab {
        return Err("give --url URL, or --lab to build a lab (root)".into());
    }
    check_tools().map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("neutrino-bench-{}", std::process::id()));
    let mut lab = Lab::start(LabConfig {
        prefix: "nb".into(),
        binary: std::env::current_exe().map_err(|e| e.to_string())?,
        hosts: vec!["h1".into()],
        database: args.database.clone(),
        server_port: 9696,
        dir: dir.clone(),
        tls: false,
    })
    .map_err(|e| e.to_string())?;
    let api = lab.api();
    let result = async {
        println!("database: {}", args.database.as_deref().unwrap_or("sqlite (file)"));
        api_phases(&api, &args).await?;
        activation_phase(&mut lab, &api, args.activations).await
    }
    .await;
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Create ports with one client, then with many; fill up; time the list.
async fn api_phases(api: &ApiClient, args: &BenchArgs) -> Result<(), String> {
    let e = |e: neutrino_lab::ApiError| e.to_string();
    let net = api.create_network(&format!("bench-{}", std::process::id())).await.map_err(e)?;
    let net_id = net["id"].as_str().unwrap_or_default().to_string();
    // A /16 for addresses only: nothing is configured on any interface in this phase.
    api.create_subnet(&net_id, "10.96.0.0/16").await.map_err(e)?;

    let serial = create_ports(api, &net_id, args.ports, 1).await?;
    report("create ports, 1 client", &serial);
    let parallel = create_ports(api, &net_id, args.ports, args.clients).await?;
    report(&format!("create ports, {} clients", args.clients), &parallel);

    let existing = api.get("/v2.0/ports?fields=id").await.map_err(e)?["ports"].as_array().map_or(0, Vec::len);
    if existing < args.list_ports {
        create_ports(api, &net_id, args.list_ports - existing, args.clients).await?;
    }
    let mut times = Vec::new();
    let mut count = 0;
    for _ in 0..7 {
        let t = Instant::now();
        let raw = api.get_raw("/v2.0/ports").await.map_err(e)?;
        times.push(t.elapsed());
        let body: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| e.to_string())?;
        count = body["ports"].as_array().map_or(0, Vec::len);
    }
    times.sort();
    println!(
        "GET /v2.0/ports ({count} ports, time to the last byte, 7 runs): median {}, best {}, worst {}",
        ms(percentile(&times, 0.5)),
        ms(times[0]),
        ms(times[times.len() - 1])
    );
    if args.query_ports > 0 {
        query_phase(api, &net_id, args).await?;
    }
    if args.networks > 0 {
        network_phase(api, args.networks, args.clients).await?;
    }
    Ok(())
}

/// Tenant networks: each create allocates a segment from the ranges (a race on one unique
/// key), so this measures allocation under contention. Checks no segment is handed out twice,
/// times the list, then deletes them all (releasing the segments) with as many clients.
async fn network_phase(api: &ApiClient, total: usize, clients: usize) -> Result<(), String> {
    let clients = clients.max(1);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let n = total / clients + usize::from(c < total % clients);
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                let t = Instant::now();
                let net = api.create_network(&format!("bench-net-{c}-{i}")).await.map_err(|e| e.to_string())?;
                let segment =
                    (net["provider:network_type"].to_string(), net["provider:segmentation_id"].as_u64().unwrap_or(0));
                out.push((t.elapsed(), net["id"].as_str().unwrap_or_default().to_string(), segment));
            }
            Ok::<_, String>(out)
        }));
    }
    let mut created = Vec::with_capacity(total);
    for t in tasks {
        created.extend(t.await.map_err(|e| e.to_string())??);
    }
    let elapsed = start.elapsed();
    let segments: std::collections::HashSet<_> = created.iter().map(|c| c.2.clone()).collect();
    if segments.len() != created.len() {
        return Err(format!("{} networks but only {} distinct segments", created.len(), segments.len()));
    }
    let mut latencies: Vec<Duration> = created.iter().map(|c| c.0).collect();
    latencies.sort();
    println!(
        "create tenant networks, {clients} clients: {total} networks in {:.2} s = {:.0} networks/s; latency p50 {}, p99 {}; {} distinct segments",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        segments.len()
    );
    let t = Instant::now();
    let raw = api.get_raw("/v2.0/networks").await.map_err(|e| e.to_string())?;
    let listed = serde_json::from_slice::<serde_json::Value>(&raw).map_err(|e| e.to_string())?["networks"]
        .as_array()
        .map_or(0, Vec::len);
    println!("GET /v2.0/networks ({listed} networks): {}", ms(t.elapsed()));

    let start = Instant::now();
    let ids: Vec<String> = created.into_iter().map(|c| c.1).collect();
    let mut tasks = Vec::new();
    for chunk in ids.chunks(total.div_ceil(clients).max(1)) {
        let api = api.clone();
        let chunk = chunk.to_vec();
        tasks.push(tokio::spawn(async move {
            for id in chunk {
                api.delete(&format!("/v2.0/networks/{id}")).await.map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let elapsed = start.elapsed();
    println!(
        "delete tenant networks, {clients} clients: {total} in {:.2} s = {:.0} networks/s (segments released)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

/// Filtered, paged, sorted and tag-filtered lists over `query_ports` ports (every tenth
/// port tagged `blue`). The database does the work, so each stays fast.
async fn query_phase(api: &ApiClient, net_id: &str, args: &BenchArgs) -> Result<(), String> {
    let e = |e: neutrino_lab::ApiError| e.to_string();
    let existing = api.get("/v2.0/ports?fields=id").await.map_err(e)?["ports"].as_array().map_or(0, Vec::len);
    if existing < args.query_ports {
        let missing = args.query_ports - existing;
        let clients = args.clients.max(1);
        let mut tasks = Vec::new();
        for c in 0..clients {
            let api = api.clone();
            let net_id = net_id.to_string();
            let n = missing / clients + usize::from(c < missing % clients);
            tasks.push(tokio::spawn(async move {
                for i in 0..n {
                    let tags = if i % 10 == 0 { json!(["blue"]) } else { json!([]) };
                    api.post(
                        "/v2.0/ports",
                        json!({"port": {"network_id": net_id, "tags": tags,
                        "device_owner": if i % 2 == 0 { "compute:nova" } else { "compute:other" }}}),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                }
                Ok::<_, String>(())
            }));
        }
        for t in tasks {
            t.await.map_err(|e| e.to_string())??;
        }
    }
    // Timings are of a server in its steady state: its SQLite connections refresh planner
    // statistics when they are recycled (every 20 s); PostgreSQL's autovacuum analyzes too.
    tokio::time::sleep(Duration::from_secs(21)).await;
    let sample = api.get("/v2.0/ports?limit=1&sort_key=mac_address&sort_dir=asc").await.map_err(e)?;
    let mac = sample["ports"][0]["mac_address"].as_str().unwrap_or_default().to_string();
    let ip = sample["ports"][0]["fixed_ips"][0]["ip_address"].as_str().unwrap_or_default().to_string();
    let queries = [
        ("first page, limit=100".to_string(), format!("/v2.0/ports?network_id={net_id}&limit=100")),
        (
            "sorted by mac_address desc, limit=100".to_string(),
            "/v2.0/ports?sort_key=mac_address&sort_dir=desc&limit=100".to_string(),
        ),
        ("by mac_address".to_string(), format!("/v2.0/ports?mac_address={mac}")),
        ("by fixed IP".to_string(), format!("/v2.0/ports?fixed_ips=ip_address%3D{ip}")),
        ("tags=blue, limit=100".to_string(), "/v2.0/ports?tags=blue&limit=100".to_string()),
        ("tags=blue, all".to_string(), "/v2.0/ports?tags=blue".to_string()),
        (
            "device_owner=compute:nova, fields=id,name, limit=500".to_string(),
            "/v2.0/ports?device_owner=compute:nova&fields=id&fields=name&limit=500".to_string(),
        ),
    ];
    println!("lists over {} ports (median of 7, time to the last byte):", args.query_ports.max(existing));
    for (name, path) in &queries {
        let mut times = Vec::new();
        let mut count = 0;
        for _ in 0..7 {
            let t = Instant::now();
            let raw = api.get_raw(path).await.map_err(e)?;
            times.push(t.elapsed());
            let body: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| e.to_string())?;
            count = body["ports"].as_array().map_or(0, Vec::len);
        }
        times.sort();
        println!("  {name}: {count} ports, {}", ms(percentile(&times, 0.5)));
    }
    // Walk every page of 1000, following `next` links.
    let t = Instant::now();
    let mut url = "/v2.0/ports?limit=1000".to_string();
    let (mut pages, mut total) = (0, 0);
    loop {
        let body: serde_json::Value =
            serde_json::from_slice(&api.get_raw(&url).await.map_err(e)?).map_err(|e| e.to_string())?;
        pages += 1;
        total += body["ports"].as_array().map_or(0, Vec::len);
        let next = body["ports_links"].as_array().and_then(|l| l.iter().find(|l| l["rel"] == "next")).cloned();
        match next.and_then(|l| l["href"].as_str().map(String::from)) {
            Some(href) if total < 1_000_000 => url = href[href.find("/v2.0/").unwrap_or(0)..].to_string(),
            _ => break,
        }
    }
    println!("  paging through all with limit=1000: {total} ports in {pages} pages, {}", ms(t.elapsed()));
    Ok(())
}

struct PhaseResult {
    elapsed: Duration,
    latencies: Vec<Duration>,
}

fn report(name: &str, r: &PhaseResult) {
    let n = r.latencies.len();
    println!(
        "{name}: {n} ports in {:.2} s = {:.0} ports/s; latency p50 {}, p99 {}",
        r.elapsed.as_secs_f64(),
        n as f64 / r.elapsed.as_secs_f64(),
        ms(percentile(&r.latencies, 0.5)),
        ms(percentile(&r.latencies, 0.99)),
    );
}

async fn create_ports(api: &ApiClient, net_id: &str, total: usize, clients: usize) -> Result<PhaseResult, String> {
    let clients = clients.max(1);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let n = total / clients + usize::from(c < total % clients);
        let api = api.clone();
        let net_id = net_id.to_string();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                api.post("/v2.0/ports", json!({"port": {"network_id": net_id}})).await.map_err(|e| e.to_string())?;
                lat.push(t.elapsed());
            }
            Ok::<_, String>(lat)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for t in tasks {
        latencies.extend(t.await.map_err(|e| e.to_string())??);
    }
    let elapsed = start.elapsed();
    latencies.sort();
    Ok(PhaseResult { elapsed, latencies })
}

/// Port create (bound to the host) → tap plugged → ACTIVE, one port at a time.
async fn activation_phase(lab: &mut Lab, api: &ApiClient, count: usize) -> Result<(), String> {
    let e = |e: neutrino_lab::ApiError| e.to_string();
    let net = api.create_network("bench-activation").await.map_err(e)?;
    let net_id = net["id"].as_str().unwrap_or_default().to_string();
    api.create_subnet(&net_id, "10.97.0.0/16").await.map_err(e)?;
    let host_ns = lab.host_ns("h1");
    let host_id = lab.host_id("h1");
    let mut total = Vec::with_capacity(count);
    for i in 0..count {
        let t = Instant::now();
        let port = api.create_port(&net_id, &format!("act-{i}"), &host_id).await.map_err(e)?;
        let id = port["id"].as_str().unwrap_or_default().to_string();
        let tap = format!("tap{}", &id[..11]);
        let peer = format!("vif{i}");
        neutrino_lab::run("ip", &["-n", &host_ns, "link", "add", &tap, "type", "veth", "peer", "name", &peer])
            .map_err(|e| e.to_string())?;
        if !api.wait_port_status(&id, "ACTIVE", Duration::from_secs(10)).await.map_err(e)? {
            return Err(format!("port {id} did not become ACTIVE:\n{}", lab.log_tail("agent-h1", 20)));
        }
        total.push(t.elapsed());
    }
    total.sort();
    println!(
        "port create → tap plugged → ACTIVE ({count} ports, one at a time, includes `ip link add` of the tap): p50 {}, p99 {}",
        ms(percentile(&total, 0.5)),
        ms(percentile(&total, 0.99))
    );
    Ok(())
}

/// A server on a fresh SQLite file `dir/<name>.sqlite`, with `config` (its `connection` is
/// set here), served over TLS when `config.ssl` says so. Returns its base URL.
async fn in_process_server(
    dir: &std::path::Path,
    name: &str,
    config: neutrino_server::ServerConfig,
) -> Result<(String, tokio::task::JoinHandle<std::io::Result<()>>), String> {
    let connection = format!("sqlite:///{}/{name}.sqlite", dir.display());
    let config = neutrino_server::ServerConfig { connection: connection.clone(), ..config };
    let ssl = config.ssl.clone();
    let store = neutrino_store::Store::connect(&connection, 16).await.map_err(|e| e.to_string())?;
    let app = neutrino_server::App::new(store, config).await.map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let port = tcp.local_addr().map_err(|e| e.to_string())?.port();
    let never = std::future::pending();
    Ok(match ssl {
        Some(ssl) => {
            let acceptor = ssl.acceptor().map_err(|e| e.to_string())?;
            let listener = neutrino_tls::TlsListener::new(tcp, acceptor).map_err(|e| e.to_string())?;
            (format!("https://127.0.0.1:{port}"), tokio::spawn(neutrino_server::serve_until(app, listener, never)))
        }
        None => (format!("http://127.0.0.1:{port}"), tokio::spawn(neutrino_server::serve_until(app, tcp, never))),
    })
}

/// A server configuration for the Keystone benchmark: `auth`, no quota limits.
fn with_auth(auth: neutrino_server::auth::AuthStrategy) -> neutrino_server::ServerConfig {
    neutrino_server::ServerConfig {
        auth,
        quotas: neutrino_domain::quotas::QuotaDefaults::unlimited(),
        ..Default::default()
    }
}

/// Port creates with 16 clients: noauth against Keystone tokens (validated once, then served
/// from the cache), as an admin and as a project member (whose creates the policy also checks
/// against the network).
async fn keystone_phase(args: &BenchArgs) -> Result<(), String> {
    use neutrino_server::auth::{AuthStrategy, KeystoneConfig};
    neutrino_lab::keystone_installed()?;
    let dir = std::env::temp_dir().join(format!("neutrino-bench-keystone-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let ks = neutrino_lab::Keystone::start(&dir.join("keystone"), port).map_err(|e| e.to_string())?;
    let keystone = AuthStrategy::Keystone(KeystoneConfig::new(ks.service_auth()));
    // The same over HTTPS: a second Keystone with a certificate of a CA made for the run.
    let ca = neutrino_lab::pki::TestCa::new(&dir, "keystone").map_err(|e| e.to_string())?;
    let issued = ca.issue("keystone", 1).map_err(|e| e.to_string())?;
    let tls_port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let ks_tls =
        neutrino_lab::Keystone::start_tls(&dir.join("keystone-tls"), tls_port, None, Some((&issued, &ca.cert)))
            .map_err(|e| e.to_string())?;
    let trust = neutrino_tls::ClientTls { ca_file: Some(ca.cert.clone()), ..Default::default() };
    let keystone_tls =
        AuthStrategy::Keystone(KeystoneConfig { tls: trust, ..KeystoneConfig::new(ks_tls.service_auth()) });
    let (noauth_url, noauth_task) = in_process_server(&dir, "noauth", with_auth(AuthStrategy::NoAuth)).await?;
    let (keystone_url, keystone_task) = in_process_server(&dir, "keystone", with_auth(keystone)).await?;
    let (tls_url, tls_task) = in_process_server(&dir, "keystone-tls", with_auth(keystone_tls)).await?;
    let admin_token = ks.token("admin").await.map_err(|e| e.to_string())?;
    let alice_token = ks.token("alice").await.map_err(|e| e.to_string())?;
    let admin_tls_token = ks_tls.token("admin").await.map_err(|e| e.to_string())?;
    let alice_tls_token = ks_tls.token("alice").await.map_err(|e| e.to_string())?;
    let alpha = ks.project_id("alpha").ok_or("no project alpha")?.to_string();
    let cases = [
        ("noauth, admin", ApiClient::new(&noauth_url)),
        ("keystone token, admin", ApiClient::new(&keystone_url).with_token(&admin_token)),
        ("noauth, project member (X-Roles)", ApiClient::new(&noauth_url).acting_as(&alpha, "member,reader")),
        ("keystone token, project member", ApiClient::new(&keystone_url).with_token(&alice_token)),
        ("keystone over HTTPS token, admin", ApiClient::new(&tls_url).with_token(&admin_tls_token)),
        ("keystone over HTTPS token, project member", ApiClient::new(&tls_url).with_token(&alice_tls_token)),
    ];
    let mut networks = Vec::new();
    for (i, (_, api)) in cases.iter().enumerate() {
        let e = |e: neutrino_lab::ApiError| e.to_string();
        let net = api.create_network(&format!("bench-{i}")).await.map_err(e)?;
        let net_id = net["id"].as_str().unwrap_or_default().to_string();
        api.create_subnet(&net_id, "10.96.0.0/16").await.map_err(e)?;
        create_ports(api, &net_id, 200, args.clients).await?; // warm-up (and the token cached)
        networks.push(net_id);
    }
    // Rounds alternate between the cases, so that a busy moment of the machine does not
    // favour one; each case's median round is reported.
    const ROUNDS: usize = 3;
    let mut rounds: Vec<Vec<PhaseResult>> = (0..cases.len()).map(|_| Vec::new()).collect();
    for _ in 0..ROUNDS {
        for (i, (_, api)) in cases.iter().enumerate() {
            rounds[i].push(create_ports(api, &networks[i], args.ports, args.clients).await?);
        }
    }
    let mut rates = Vec::new();
    for (i, (name, _)) in cases.iter().enumerate() {
        let rate = |r: &PhaseResult| r.latencies.len() as f64 / r.elapsed.as_secs_f64();
        rounds[i].sort_by(|a, b| rate(a).total_cmp(&rate(b)));
        let median = &rounds[i][ROUNDS / 2];
        report(&format!("create ports, {} clients, {name} (median of {ROUNDS})", args.clients), median);
        rates.push(rate(median));
    }
    println!(
        "keystone/noauth throughput: admin {:.1}%, project member {:.1}%",
        100.0 * rates[1] / rates[0],
        100.0 * rates[3] / rates[2]
    );
    println!(
        "keystone over HTTPS / over HTTP throughput (goal: within 10%): admin {:.1}%, project member {:.1}%",
        100.0 * rates[4] / rates[1],
        100.0 * rates[5] / rates[3]
    );
    noauth_task.abort();
    keystone_task.abort();
    tls_task.abort();
    drop(ks_tls);
    drop(ks);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
