//! `neutrino bench --agent-restart` (root): one real agent with many local ports in the
//! namespace lab. Two VMs ping each other across hosts while the busy host's agent is killed
//! (SIGKILL) and started again; it prints how long the agent took to converge and how many
//! packets were lost meanwhile.

use neutrino_lab::{ApiClient, Lab};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

const GOALS: &str = "goals: converged <= 1 s after the restart, no packet lost";

pub async fn run(ports: usize, database: Option<String>) -> Result<(), String> {
    super::in_two_host_lab("restart", database, async |lab: &mut Lab| measure(lab, ports).await).await
}

async fn measure(lab: &mut Lab, ports: usize) -> Result<(), String> {
    let api = lab.api();
    let e = |e: neutrino_lab::ApiError| e.to_string();
    println!("{GOALS}");
    let net = api.create_network("restart-vms").await.map_err(e)?;
    api.create_subnet(net["id"].as_str().unwrap_or_default(), "198.51.100.0/24").await.map_err(e)?;
    let vm1 = lab.boot_vm(&api, &net, "vm1", "h1").await.map_err(|e| e.to_string())?;
    let vm2 = lab.boot_vm(&api, &net, "vm2", "h2").await.map_err(|e| e.to_string())?;

    // The other ports of h1, on 10 networks, each with a tap (persistent tun/tap devices,
    // made in one `ip -batch`).
    let host_id = lab.host_id("h1");
    let extra = ports.saturating_sub(1);
    let mut networks = Vec::new();
    for n in 0..10 {
        let net = api.create_network(&format!("restart-{n}")).await.map_err(e)?;
        let id = net["id"].as_str().unwrap_or_default().to_string();
        api.create_subnet(&id, &format!("10.200.{n}.0/24")).await.map_err(e)?;
        networks.push(id);
    }
    let started = Instant::now();
    let ids = create_bound_ports(&api, &networks, &host_id, extra).await?;
    let batch: String = ids.iter().map(|id| format!("tuntap add mode tap name tap{}\n", &id[..11])).collect();
    let batch_file = lab.dir().join("taps.batch");
    std::fs::write(&batch_file, batch).map_err(|e| e.to_string())?;
    let host_ns = lab.host_ns("h1");
    neutrino_lab::run("ip", &["-n", &host_ns, "-batch", &batch_file.to_string_lossy()]).map_err(|e| e.to_string())?;
    wait_all_active(&api, &host_id, Duration::from_secs(120)).await?;
    println!("{} ports bound to h1 and ACTIVE after {}", ports, super::ms(started.elapsed()));

    // A continuous ping across hosts, and the agent of h1 killed and started again.
    let log = lab.dir().join("agent-h1.log");
    let ping = lab.start_ping("vm1", &vm2.ip, 400, 10).map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let log_before = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let killed = Instant::now();
    lab.kill_agent("h1");
    lab.start_agent("h1").map_err(|e| e.to_string())?;
    let (converged_ms, wall) = wait_converged(&log, log_before, killed, Duration::from_secs(60)).await?;
    let (sent, received) = ping.finish().map_err(|e| e.to_string())?;
    let changes = restart_changes(&log, log_before);
    let memory = lab.agent_pid("h1").map(memory_of).unwrap_or_default();
    println!(
        "agent restart with {ports} local ports: converged {converged_ms} ms after the agent started \
         ({} after the kill), {changes} kernel changes; ping {} → {} across hosts: {sent} sent, {received} received, {} lost",
        super::ms(wall),
        vm1.name,
        vm2.name,
        sent.saturating_sub(received)
    );
    println!("agent memory after the restart (firewall and L2 of {ports} ports): {memory}");
    Ok(())
}

/// Create `count` ports bound to `host`, spread over `networks`, with 16 clients.
pub(super) async fn create_bound_ports(
    api: &ApiClient,
    networks: &[String],
    host: &str,
    count: usize,
) -> Result<Vec<String>, String> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (api, next, networks, host) = (api.clone(), next.clone(), networks.to_vec(), host.to_string());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if k >= count {
                    return Ok::<Vec<String>, String>(ids);
                }
                let body = json!({"port": {"network_id": networks[k % networks.len()], "binding:host_id": host}});
                let port = api.post("/v2.0/ports", body).await.map_err(|e| e.to_string())?;
                ids.push(port["port"]["id"].as_str().unwrap_or_default().to_string());
            }
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.map_err(|e| e.to_string())??);
    }
    Ok(ids)
}

pub(super) async fn wait_all_active(api: &ApiClient, host: &str, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let down = api
            .get(&format!("/v2.0/ports?binding:host_id={host}&status=DOWN&fields=id"))
            .await
            .map_err(|e| e.to_string())?;
        let left = down["ports"].as_array().map_or(0, Vec::len);
        if left == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{left} ports of {host} are still DOWN"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Wait for the restarted agent's "host converged" line: (what it says, since the kill).
pub(super) async fn wait_converged(
    log: &std::path::Path,
    offset: u64,
    killed: Instant,
    timeout: Duration,
) -> Result<(u64, Duration), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read(log).map_err(|e| e.to_string())?;
        let new = String::from_utf8_lossy(&text[(offset as usize).min(text.len())..]).to_string();
        if let Some(line) = new.lines().find(|l| l.contains("host converged")) {
            let wall = killed.elapsed();
            let ms = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("elapsed_ms="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            return Ok((ms, wall));
        }
        if Instant::now() > deadline {
            return Err(format!("the restarted agent did not converge:\n{new}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `VmRSS` and `VmHWM` (the peak) of a process.
fn memory_of(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_default();
        line.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) / 1024
    };
    format!("RSS {} MiB (peak {} MiB)", field("VmRSS:"), field("VmHWM:"))
}

/// Kernel changes the restarted agent reported (0 when it found everything in place).
fn restart_changes(log: &std::path::Path, offset: u64) -> u64 {
    let text = std::fs::read(log).unwrap_or_default();
    let new = String::from_utf8_lossy(&text[(offset as usize).min(text.len())..]).to_string();
    new.lines()
        .filter(|l| l.contains("kernel reconciled"))
        .filter_map(|l| {
            l.split_whitespace().find_map(|w| w.strip_prefix("changes=")).and_then(|v| v.parse::<u64>().ok())
        })
        .sum()
}
