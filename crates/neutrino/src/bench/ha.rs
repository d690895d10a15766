//! `neutrino bench --ha`: several server processes on one database (root; a PostgreSQL
//! cluster of the benchmark's own, so that it can be restarted). Three figures:
//! - the mixed workload of the torture test (two projects and a reader, no faults) with 1, 2
//!   and 3 servers on PostgreSQL, beside one server on SQLite;
//! - how long a killed server's agents wait until another server serves them;
//! - how long after a PostgreSQL restart every server takes writes again, and every agent
//!   hears of a change made after it.

use super::{ms, percentile};
use neutrino_lab::ha::{postgres_binaries, PgCluster, ServerProcess};
use neutrino_lab::roaming::RoamingAgents;
use neutrino_lab::workload::{self, Tally, WorkloadConfig};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

pub struct HaArgs {
    /// Seconds of each throughput run.
    pub seconds: u64,
    pub clients_per_project: usize,
    /// Agents that follow the servers in the failover and recovery phases.
    pub agents: usize,
    /// Kills, and PostgreSQL restarts, timed.
    pub rounds: usize,
}

/// The goals printed beside the figures.
const FAILOVER_GOAL: Duration = Duration::from_secs(1);
const RECOVERY_GOAL: Duration = Duration::from_secs(5);

pub async fn run(args: HaArgs) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || postgres_binaries().is_none() {
        return Err("--ha needs root and PostgreSQL's server binaries (/usr/lib/postgresql/*/bin)".into());
    }
    let binary = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("neutrino-bench-ha-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let result = async {
        let mut pg = PgCluster::create("neutrino-bench-ha").map_err(|e| e.to_string())?;
        throughput(&binary, &dir, &pg, &args).await?;
        failover_and_recovery(&binary, &dir, &mut pg, &args).await
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn start_servers(
    binary: &Path,
    dir: &Path,
    tag: &str,
    connection: &str,
    n: usize,
) -> Result<Vec<ServerProcess>, String> {
    (0..n)
        .map(|i| {
            ServerProcess::start(binary, dir, &format!("{tag}-server{i}"), connection, "").map_err(|e| e.to_string())
        })
        .collect()
}

fn hosts(tag: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("bench-{tag}-host-{i}")).collect()
}

async fn throughput(binary: &Path, dir: &Path, pg: &PgCluster, args: &HaArgs) -> Result<(), String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "mixed workload: 2 projects x {} writers + a reader, {} s per row, no faults; servers, PostgreSQL and \
         the clients share this machine's {cores} cores (goal: no 5xx; more servers add throughput only \
         with more cores)",
        args.clients_per_project, args.seconds
    );
    println!(
        "{:<11} {:>7} {:>9} {:>10} {:>10} {:>10} {:>5} {:>10}",
        "database", "servers", "requests", "ok/s", "p50", "p99", "5xx", "unexpected"
    );
    let mut cases: Vec<(&str, usize, String)> =
        vec![("SQLite", 1, format!("sqlite:///{}", dir.join("bench-ha.sqlite").display()))];
    for n in 1..=3 {
        let db = format!("bench_mixed_{n}");
        pg.create_database(&db).map_err(|e| e.to_string())?;
        cases.push(("PostgreSQL", n, pg.url(&db)));
    }
    for (database, n, connection) in cases {
        let servers = start_servers(binary, dir, &format!("mixed{n}{}", &database[..1]), &connection, n)?;
        let bases: Vec<String> = servers.iter().map(ServerProcess::base).collect();
        let hosts = hosts("mixed", 4);
        let agents = RoamingAgents::start(&bases, &hosts);
        let (_, tally) = workload::run(WorkloadConfig {
            servers: bases,
            clients_per_project: args.clients_per_project,
            duration: Duration::from_secs(args.seconds),
            hosts,
            timeout: Duration::from_secs(30),
            seed: 11,
        })
        .await;
        drop(agents);
        print_row(database, n, tally);
    }
    Ok(())
}

fn print_row(database: &str, servers: usize, mut t: Tally) {
    t.latencies.sort();
    let server_errors: u64 = t.by_status.iter().filter(|(s, _)| **s >= 500 && **s != 503).map(|(_, n)| n).sum();
    println!(
        "{:<11} {:>7} {:>9} {:>10.1} {:>10} {:>10} {:>5} {:>10}",
        database,
        servers,
        t.requests,
        t.ok_per_second(),
        ms(percentile(&t.latencies, 0.5)),
        ms(percentile(&t.latencies, 0.99)),
        server_errors,
        t.unexpected.len()
    );
}

/// Three servers, agents spread over them; servers killed in turn, then PostgreSQL restarted.
async fn failover_and_recovery(binary: &Path, dir: &Path, pg: &mut PgCluster, args: &HaArgs) -> Result<(), String> {
    pg.create_database("bench_faults").map_err(|e| e.to_string())?;
    let mut servers = start_servers(binary, dir, "faults", &pg.url("bench_faults"), 3)?;
    let bases: Vec<String> = servers.iter().map(ServerProcess::base).collect();
    let hosts = hosts("faults", args.agents);
    let agents = RoamingAgents::start(&bases, &hosts);
    wait_until(Duration::from_secs(60), || agents.snapshot().iter().all(|r| r.view.revision.is_some()))
        .await
        .map_err(|_| "the agents did not get their first snapshots".to_string())?;

    println!();
    println!(
        "agent failover: {} agents over 3 servers; a server killed (SIGKILL) or stopped (SIGTERM) in turn \
         (goal: every agent served again within {})",
        args.agents,
        ms(FAILOVER_GOAL)
    );
    let mut all = Vec::new();
    for round in 0..args.rounds + 1 {
        let i = round % servers.len();
        let graceful = round == args.rounds;
        let before: Vec<usize> = agents.snapshot().iter().map(|r| r.failovers.len()).collect();
        if graceful {
            tokio::task::block_in_place(|| servers[i].terminate(Duration::from_secs(15)));
        } else {
            tokio::task::block_in_place(|| servers[i].kill());
        }
        // Wait for every agent that lost its stream to be served again (or 10 s).
        let _ = wait_until(Duration::from_secs(10), || {
            let now = agents.snapshot();
            let moved = now.iter().zip(&before).filter(|(r, b)| r.failovers.len() > **b).count();
            moved > 0 && now.iter().all(|r| r.lost_at.is_none())
        })
        .await;
        // Stragglers that noticed late.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = wait_until(Duration::from_secs(10), || agents.snapshot().iter().all(|r| r.lost_at.is_none())).await;
        let mut waits: Vec<Duration> =
            agents.snapshot().iter().zip(&before).flat_map(|(r, b)| r.failovers[*b..].to_vec()).collect();
        waits.sort();
        println!(
            "  {} server {i}: {} agents moved; wait p50 {}, max {}",
            if graceful { "SIGTERM" } else { "SIGKILL" },
            waits.len(),
            ms(percentile(&waits, 0.5)),
            ms(waits.last().copied().unwrap_or_default()),
        );
        all.extend(waits);
        servers[i].spawn().map_err(|e| e.to_string())?;
        if !servers[i].wait_listening(Duration::from_secs(60)) {
            return Err(format!("server {i} did not start again:\n{}", servers[i].log_tail(20)));
        }
    }
    all.sort();
    println!(
        "  all rounds: {} moves, p50 {}, p99 {}, max {} (goal < {})",
        all.len(),
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99)),
        ms(all.last().copied().unwrap_or_default()),
        ms(FAILOVER_GOAL)
    );

    println!();
    println!(
        "recovery after a PostgreSQL restart (down 3 s), from the moment it accepts sessions again \
         (goal: within {})",
        ms(RECOVERY_GOAL)
    );
    let http = reqwest::Client::new();
    let network = create_network(&http, &bases[0]).await?;
    let calm = new_ports_heard(&http, &bases, &network, &hosts, &agents).await?;
    println!(
        "  without a restart: every agent heard of its new port at most {} after its create's reply",
        calm.map_or("(not within 60 s)".into(), ms)
    );
    for round in 0..args.rounds {
        tokio::task::block_in_place(|| {
            pg.stop();
            std::thread::sleep(Duration::from_secs(3));
            pg.start()
        })
        .map_err(|e| e.to_string())?;
        let back = Instant::now();
        let writable = futures::future::join_all(bases.iter().map(|b| first_write(&http, b, &network, round))).await;
        let slowest = writable.iter().max().copied().unwrap_or_default();
        let heard = match new_ports_heard(&http, &bases, &network, &hosts, &agents).await? {
            Some(d) => format!("{} after its create's reply ({} after the restart)", ms(d), ms(back.elapsed())),
            None => "not within 60 s".into(),
        };
        println!(
            "  round {}: every server writable after {} (each: {}); every agent heard of its new port at most {heard}",
            round + 1,
            ms(slowest),
            writable.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(", "),
        );
    }
    drop(agents);
    for s in &servers {
        let problems = s.log_problems();
        if !problems.is_empty() {
            return Err(format!("server on port {}: {}", s.port, problems.join("\n")));
        }
    }
    Ok(())
}

/// Make a port bound to each host, all at once through the servers in turn; each agent, on
/// whichever server it follows, must hear of its own. Returns the longest wait from a create's
/// reply to its agent's view (None: not all within 60 s), and deletes the ports again.
async fn new_ports_heard(
    http: &reqwest::Client,
    bases: &[String],
    network: &str,
    hosts: &[String],
    agents: &RoamingAgents,
) -> Result<Option<Duration>, String> {
    let creates = hosts.iter().enumerate().map(|(h, host)| {
        let base = &bases[h % bases.len()];
        async move { create_bound_port(http, base, network, host).await.map(|port| (h, port, Instant::now())) }
    });
    let made: Vec<(usize, String, Instant)> =
        futures::future::join_all(creates).await.into_iter().collect::<Result<_, _>>()?;
    let mut heard: Vec<Option<Duration>> = vec![None; made.len()];
    let all = wait_until(Duration::from_secs(60), || {
        let now = agents.snapshot();
        for (k, (h, port, acked)) in made.iter().enumerate() {
            if heard[k].is_none() && now[*h].view.state.local_ports.contains_key(port) {
                heard[k] = Some(acked.elapsed());
            }
        }
        heard.iter().all(Option::is_some)
    })
    .await;
    for (_, port, _) in &made {
        let _ = admin(http, reqwest::Method::DELETE, &format!("{}/v2.0/ports/{port}", bases[0]), None).await;
    }
    Ok(all.ok().and_then(|()| heard.into_iter().flatten().max()))
}

async fn wait_until(within: Duration, mut done: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if done() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Err(())
}

async fn admin(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let mut req = http
        .request(method, url)
        .timeout(Duration::from_secs(10))
        .header("X-Project-Id", "admin")
        .header("X-Roles", "admin,member,reader");
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.json().await.unwrap_or(Value::Null)))
}

async fn create_network(http: &reqwest::Client, base: &str) -> Result<String, String> {
    let body = json!({"network": {"name": "bench-ha"}});
    let Some((201, net)) = admin(http, reqwest::Method::POST, &format!("{base}/v2.0/networks"), Some(body)).await
    else {
        return Err("network create failed".into());
    };
    let id = net["network"]["id"].as_str().unwrap_or_default().to_string();
    let subnet = json!({"subnet": {"network_id": id, "cidr": "198.51.100.0/24", "ip_version": 4}});
    match admin(http, reqwest::Method::POST, &format!("{base}/v2.0/subnets"), Some(subnet)).await {
        Some((201, _)) => Ok(id),
        other => Err(format!("subnet create: {other:?}")),
    }
}

/// How long until an update through `base` succeeds.
async fn first_write(http: &reqwest::Client, base: &str, network: &str, round: usize) -> Duration {
    let started = Instant::now();
    let url = format!("{base}/v2.0/networks/{network}");
    let body = json!({"network": {"description": format!("round {round}")}});
    while started.elapsed() < Duration::from_secs(60) {
        if let Some((200, _)) = admin(http, reqwest::Method::PUT, &url, Some(body.clone())).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

async fn create_bound_port(http: &reqwest::Client, base: &str, network: &str, host: &str) -> Result<String, String> {
    let body = json!({"port": {"network_id": network, "binding:host_id": host, "device_owner": "compute:nova",
        "device_id": format!("bench-ha-{host}")}});
    for _ in 0..100 {
        if let Some((201, port)) =
            admin(http, reqwest::Method::POST, &format!("{base}/v2.0/ports"), Some(body.clone())).await
        {
            return Ok(port["port"]["id"].as_str().unwrap_or_default().to_string());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("no port could be made on {host}"))
}
