//! `neutrino bench --fanout`: a `neutrino server` process and simulated hosts that follow its
//! real HTTP streams (as agents, without a kernel). For each host count it creates
//! `ports_per_host` ports per host, bound round-robin, 10 hosts per network, with 16 clients,
//! and prints the create rate and p99, the server's CPU time per port, how long after each
//! create's reply its host and all its peers had the port, when every host had everything,
//! the stream bytes and the server's memory.

use super::{ms, percentile};
use neutrino_api::agent::StreamMessage;
use neutrino_lab::follower::HostStream;
use neutrino_lab::ApiClient;
use serde_json::json;
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Goals of the issue, printed beside the figures.
const GOALS: &str = "goals at 1000 hosts: rate >= 50% of 10 hosts, CPU/port <= 2x of 10 hosts, \
                     all peers p99 <= 50 ms, every host converged <= 1 s after the last create";

pub struct FanoutArgs {
    pub hosts: Vec<usize>,
    pub ports_per_host: usize,
    pub hosts_per_network: usize,
    pub clients: usize,
    pub database: Option<String>,
}

/// One row of the results table.
struct Row {
    hosts: usize,
    ports: usize,
    connect: Duration,
    rate: f64,
    p99: Duration,
    cpu_per_port: Duration,
    local_p50: Duration,
    local_p99: Duration,
    peers_p50: Duration,
    peers_p99: Duration,
    converged: Duration,
    stream_bytes: u64,
    rss_kib: u64,
}

pub async fn run(args: FanoutArgs) -> Result<(), String> {
    raise_open_files();
    println!("{GOALS}");
    let mut rows = Vec::new();
    for &hosts in &args.hosts {
        let row = scale(&args, hosts).await?;
        print_row(&row);
        rows.push(row);
    }
    println!();
    println!("| hosts | ports | streams open | ports created/s | create p99 | server CPU/port | own host p50 / p99 | all peers p50 / p99 | all converged after last create | stream bytes | server RSS |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.0} | {} | {} | {} / {} | {} / {} | {} | {:.1} MB | {:.0} MB |",
            r.hosts,
            r.ports,
            ms(r.connect),
            r.rate,
            ms(r.p99),
            ms(r.cpu_per_port),
            ms(r.local_p50),
            ms(r.local_p99),
            ms(r.peers_p50),
            ms(r.peers_p99),
            ms(r.converged),
            r.stream_bytes as f64 / 1e6,
            r.rss_kib as f64 / 1024.0
        );
    }
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        if rows.len() > 1 {
            println!(
                "{} hosts against {}: create rate {:.0}%, CPU per port {:.2}x",
                last.hosts,
                first.hosts,
                100.0 * last.rate / first.rate,
                last.cpu_per_port.as_secs_f64() / first.cpu_per_port.as_secs_f64().max(1e-9)
            );
        }
    }
    Ok(())
}

fn print_row(r: &Row) {
    println!(
        "{} hosts, {} ports: {:.0} ports/s (p99 {}), server CPU {} per port, own host p99 {}, all peers p99 {}, \
         converged {} after the last create, {:.1} MB streamed, server RSS {:.0} MB",
        r.hosts,
        r.ports,
        r.rate,
        ms(r.p99),
        ms(r.cpu_per_port),
        ms(r.local_p99),
        ms(r.peers_p99),
        ms(r.converged),
        r.stream_bytes as f64 / 1e6,
        r.rss_kib as f64 / 1024.0
    );
}

/// A create's reply: the port, its host's index, when the reply came and how long it took.
type Reply = (String, usize, Instant, Duration);

/// What one simulated host has seen: when each port first appeared in its view.
#[derive(Default)]
struct Seen {
    at: HashMap<String, Instant>,
}

async fn scale(args: &FanoutArgs, hosts: usize) -> Result<Row, String> {
    let server = ServerProcess::start(args.database.as_deref())?;
    let api = ApiClient::new(&server.base);
    let e = |e: neutrino_lab::ApiError| e.to_string();
    let names: Vec<String> = (0..hosts).map(|i| format!("sim{i:04}")).collect();

    // Hosts register as Linux bridge agents.
    let registered = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for chunk in names.chunks(names.len().div_ceil(args.clients).max(1)) {
        let (api, chunk, registered) = (api.clone(), chunk.to_vec(), registered.clone());
        tasks.push(tokio::spawn(async move {
            for (i, name) in chunk.iter().enumerate() {
                let reg = json!({"host": name, "agent_type": "Linux bridge agent",
                                 "tunnel_ip": format!("192.0.2.{}", 10 + i % 200),
                                 "configurations": {"tunnel_types": ["vxlan"], "l2_population": true}});
                api.post("/v2.0/neutrino/agents?starting=true", reg).await.map_err(|e| e.to_string())?;
                registered.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }

    // One network per `hosts_per_network` hosts.
    let networks = hosts.div_ceil(args.hosts_per_network);
    let mut network_ids = Vec::new();
    for n in 0..networks {
        let net = api.create_network(&format!("fanout-{n}")).await.map_err(e)?;
        let id = net["id"].as_str().unwrap_or_default().to_string();
        api.create_subnet(&id, &format!("10.{}.{}.0/24", 100 + n / 256, n % 256)).await.map_err(e)?;
        network_ids.push(id);
    }

    // Every host follows its stream.
    let started = Instant::now();
    let seen: Vec<Arc<Mutex<Seen>>> = (0..hosts).map(|_| Arc::new(Mutex::new(Seen::default()))).collect();
    let bytes = Arc::new(AtomicU64::new(0));
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().map_err(|e| e.to_string())?;
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<Result<(), String>>(hosts.max(1));
    let mut followers = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (http, base, name, seen, bytes, ready) =
            (http.clone(), server.base.clone(), name.clone(), seen[i].clone(), bytes.clone(), ready_tx.clone());
        followers.push(tokio::spawn(async move {
            let mut stream = match HostStream::open(&http, &base, &name, None).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready.send(Err(e.to_string())).await;
                    return;
                }
            };
            let mut first = true;
            let mut counted = 0;
            while let Ok(Some(message)) = stream.next(Duration::from_secs(3600)).await {
                let now = Instant::now();
                let ids: Vec<&String> = match &message {
                    StreamMessage::Snapshot { state, .. } => {
                        state.local_ports.keys().chain(state.remote_ports.keys()).collect()
                    }
                    StreamMessage::Update { delta, .. } => {
                        delta.upserted.local_ports.keys().chain(delta.upserted.remote_ports.keys()).collect()
                    }
                    StreamMessage::Heartbeat { .. } => Vec::new(),
                };
                {
                    let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
                    for id in ids {
                        s.at.entry(id.clone()).or_insert(now);
                    }
                }
                bytes.fetch_add(stream.bytes - counted, Ordering::Relaxed);
                counted = stream.bytes;
                if first {
                    first = false;
                    let _ = ready.send(Ok(())).await;
                }
            }
        }));
    }
    for _ in 0..hosts {
        ready_rx.recv().await.ok_or("a stream task ended")??;
    }
    let connect = started.elapsed();

    // Ports: host i gets ports i, i + hosts, ...; the host's network is i / hosts_per_network.
    let total = hosts * args.ports_per_host;
    let cpu_before = server.cpu_time()?;
    let replies: Arc<Mutex<Vec<Reply>>> = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let next = Arc::new(AtomicU64::new(0));
    let create_started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (api, next, replies, names, network_ids) =
            (api.clone(), next.clone(), replies.clone(), names.clone(), network_ids.clone());
        let per_network = args.hosts_per_network;
        tasks.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed) as usize;
                if k >= total {
                    return Ok::<(), String>(());
                }
                let host = k % names.len();
                let body =
                    json!({"port": {"network_id": network_ids[host / per_network], "binding:host_id": names[host]}});
                let t = Instant::now();
                let port = api.post("/v2.0/ports", body).await.map_err(|e| e.to_string())?;
                let replied = Instant::now();
                let id = port["port"]["id"].as_str().unwrap_or_default().to_string();
                replies.lock().unwrap_or_else(|p| p.into_inner()).push((id, host, replied, replied - t));
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let create_elapsed = create_started.elapsed();
    let replies = replies.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let last_reply = replies.iter().map(|r| r.2).max().unwrap_or_else(Instant::now);

    // Wait until every host has its own ports and its network peers' ports.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = (0..hosts).all(|h| {
            let peers = peers_of(h, hosts, args.hosts_per_network);
            seen[h].lock().unwrap_or_else(|p| p.into_inner()).at.len() >= peers * args.ports_per_host
        });
        if done {
            break;
        }
        if Instant::now() > deadline {
            return Err("hosts did not converge within 120 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu = server.cpu_time()? - cpu_before;
    let mut converged = Duration::ZERO;
    let (mut local, mut peers) = (Vec::with_capacity(total), Vec::with_capacity(total));
    let seen_now: Vec<HashMap<String, Instant>> =
        seen.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).at.clone()).collect();
    // When each host had its first own port: before that it has no business with its
    // network's ports (it gets them all at once when its first port arrives).
    let mut first_own: Vec<Option<Instant>> = vec![None; hosts];
    for (id, host, _, _) in &replies {
        let at = seen_now[*host].get(id).copied();
        first_own[*host] = match (first_own[*host], at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    for (id, host, replied, _) in &replies {
        let own = seen_now[*host].get(id).copied().ok_or("a port never reached its host")?;
        local.push(own.saturating_duration_since(*replied));
        let group = host / args.hosts_per_network;
        let mut last = own;
        for peer in (group * args.hosts_per_network)..((group + 1) * args.hosts_per_network).min(hosts) {
            let Some(at) = seen_now[peer].get(id) else {
                return Err(format!("port {id} never reached peer {peer}"));
            };
            if first_own[peer].is_some_and(|first| first < *replied) {
                last = last.max(*at);
            }
        }
        peers.push(last.saturating_duration_since(*replied));
        converged = converged.max(last.saturating_duration_since(last_reply));
    }
    let mut latencies: Vec<Duration> = replies.iter().map(|r| r.3).collect();
    latencies.sort();
    local.sort();
    peers.sort();
    let rss_kib = server.rss_kib()?;
    for f in followers {
        f.abort();
    }
    drop(server);
    Ok(Row {
        hosts,
        ports: total,
        connect,
        rate: total as f64 / create_elapsed.as_secs_f64(),
        p99: percentile(&latencies, 0.99),
        cpu_per_port: cpu / total.max(1) as u32,
        local_p50: percentile(&local, 0.5),
        local_p99: percentile(&local, 0.99),
        peers_p50: percentile(&peers, 0.5),
        peers_p99: percentile(&peers, 0.99),
        converged,
        stream_bytes: bytes.load(Ordering::Relaxed),
        rss_kib,
    })
}

/// How many hosts share host `h`'s network (itself included).
fn peers_of(h: usize, hosts: usize, per_network: usize) -> usize {
    let group = h / per_network;
    ((group + 1) * per_network).min(hosts) - group * per_network
}

/// `neutrino server` as a child process on a fresh database.
struct ServerProcess {
    child: Child,
    base: String,
    dir: std::path::PathBuf,
}

impl ServerProcess {
    fn start(database: Option<&str>) -> Result<ServerProcess, String> {
        let dir = std::env::temp_dir().join(format!("neutrino-fanout-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
        let connection = match database {
            Some(url) => {
                reset_postgres(url)?;
                url.to_string()
            }
            None => format!("sqlite:///{}/fanout.sqlite", dir.display()),
        };
        let conf = format!(
            "[DEFAULT]\nbind_host = 127.0.0.1\nbind_port = {port}\n[database]\nconnection = {connection}\nmax_pool_size = 16\n\
             [ml2]\ntype_drivers = vxlan\ntenant_network_types = vxlan\nmechanism_drivers = linuxbridge,l2population\n\
             [ml2_type_vxlan]\nvni_ranges = 1:10000\n[quotas]\nquota_network = -1\nquota_subnet = -1\nquota_port = -1\n\
             quota_security_group = -1\nquota_security_group_rule = -1\n"
        );
        let path = dir.join("server.ini");
        std::fs::write(&path, conf).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?;
        let child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
            .args(["server", "--config-file"])
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start the server: {e}"))?;
        let base = format!("http://127.0.0.1:{port}");
        let server = ServerProcess { child, base, dir };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("the server did not start; see {}", server.dir.join("server.log").display()))
    }

    fn stat_field(&self, file: &str) -> Result<String, String> {
        std::fs::read_to_string(format!("/proc/{}/{file}", self.child.id())).map_err(|e| e.to_string())
    }

    /// User plus system CPU time of the server so far.
    fn cpu_time(&self) -> Result<Duration, String> {
        let stat = self.stat_field("stat")?;
        // Fields after the command (which is in parentheses): utime is the 14th, stime the 15th.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
            + fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Ok(Duration::from_micros(ticks * 1_000_000 / hz))
    }

    /// Resident memory of the server, KiB.
    fn rss_kib(&self) -> Result<u64, String> {
        let status = self.stat_field("status")?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or_default();
        Ok(line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("NEUTRINO_BENCH_KEEP").is_some() {
            eprintln!("server files kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
}

/// Empty the benchmark's PostgreSQL database (it must be one made for the benchmark).
fn reset_postgres(url: &str) -> Result<(), String> {
    let out = Command::new("psql")
        .args([url, "-q", "-c", "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"])
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    if !out.status.success() {
        return Err(format!("cannot reset {url}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

/// A thousand streams need more than the default 1024 descriptors (in this process and in
/// the server, which inherits the limit).
pub(super) fn raise_open_files() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max.min(65536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
