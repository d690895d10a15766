//! `neutrino bench --sg-latency` (root): how long a security group rule takes to act. Two
//! VMs on two hosts of the namespace lab; the server VM is in a group without ingress rules
//! and listens on 100 TCP ports. For each port a rule allowing it is created, and the client
//! VM connects again and again (2 ms timeouts) until the handshake succeeds: the time from
//! the create's reply to that success, p50/p99 over the 100 rules.

use neutrino_lab::{join_netns, Lab};
use serde_json::json;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

const RULES: u16 = 100;
const FIRST_PORT: u16 = 20000;

pub async fn run(database: Option<String>) -> Result<(), String> {
    super::in_two_host_lab("sg", database, async |lab: &mut Lab| measure(lab).await).await
}

async fn measure(lab: &mut Lab) -> Result<(), String> {
    let api = lab.api();
    let e = |e: neutrino_lab::ApiError| e.to_string();
    let net = api.create_network("sg-latency").await.map_err(e)?;
    api.create_subnet(net["id"].as_str().unwrap_or_default(), "198.51.100.0/24").await.map_err(e)?;
    let client = lab.boot_vm(&api, &net, "vm1", "h1").await.map_err(|e| e.to_string())?;
    let server = lab.boot_vm(&api, &net, "vm2", "h2").await.map_err(|e| e.to_string())?;
    let group = api.post("/v2.0/security-groups", json!({"security_group": {"name": "latency"}})).await.map_err(e)?;
    let group = group["security_group"]["id"].as_str().unwrap_or_default().to_string();
    api.put(&format!("/v2.0/ports/{}", server.port_id), json!({"port": {"security_groups": [group]}}))
        .await
        .map_err(e)?;
    // Listeners in the server VM, kept open by a thread of that namespace.
    let server_ns = lab.netns("vm2");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    std::thread::spawn(move || {
        let listeners: Result<Vec<TcpListener>, String> =
            join_netns(&server_ns).map_err(|e| e.to_string()).and_then(|_| {
                (0..RULES).map(|i| TcpListener::bind(("0.0.0.0", FIRST_PORT + i)).map_err(|e| e.to_string())).collect()
            });
        let _ = ready_tx.send(listeners.as_ref().map(|_| ()).map_err(Clone::clone));
        let keep = listeners;
        std::thread::sleep(Duration::from_secs(600));
        drop(keep);
    });
    ready_rx.recv().map_err(|e| e.to_string())??;
    let server_ip: std::net::IpAddr = server.ip.parse().map_err(|_| "server ip".to_string())?;
    // Wait until the group without ingress rules is in force (a connect fails).
    let client_ns = lab.netns(&client.name);
    let probe = move |port: u16, deadline: Duration| -> Result<Option<Duration>, String> {
        let ns = client_ns.clone();
        std::thread::spawn(move || -> Result<Option<Duration>, String> {
            join_netns(&ns).map_err(|e| e.to_string())?;
            let addr = SocketAddr::new(server_ip, port);
            let began = Instant::now();
            while began.elapsed() < deadline {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(2)).is_ok() {
                    return Ok(Some(began.elapsed()));
                }
            }
            Ok(None)
        })
        .join()
        .map_err(|_| "probe thread panicked".to_string())?
    };
    let mut closed = false;
    for _ in 0..50 {
        if probe(FIRST_PORT, Duration::from_millis(50))?.is_none() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !closed {
        return Err("the server VM's group did not close its ports".into());
    }
    let mut took = Vec::new();
    for i in 0..RULES {
        let port = FIRST_PORT + i;
        let rule = json!({"security_group_rule": {"security_group_id": group, "direction": "ingress",
            "protocol": "tcp", "port_range_min": port, "port_range_max": port}});
        api.post("/v2.0/security-group-rules", rule).await.map_err(e)?;
        match probe(port, Duration::from_secs(5))? {
            Some(d) => took.push(d),
            None => return Err(format!("the rule for tcp/{port} did not act within 5 s")),
        }
    }
    took.sort();
    println!(
        "security group rule create → traffic allowed on the host (cross-host, {RULES} rules): p50 {}, p99 {}, max {} (goal: p99 <= 100 ms)",
        super::ms(super::percentile(&took, 0.5)),
        super::ms(super::percentile(&took, 0.99)),
        super::ms(*took.last().unwrap_or(&Duration::ZERO))
    );
    throughput(lab, &api, &group, &client, &server).await
}

/// iperf3 between the two VMs (VXLAN across hosts) with filtering on, then with port security
/// off on both ports.
async fn throughput(
    lab: &mut Lab,
    api: &neutrino_lab::ApiClient,
    group: &str,
    client: &neutrino_lab::BootedVm,
    server: &neutrino_lab::BootedVm,
) -> Result<(), String> {
    if neutrino_lab::run("which", &["iperf3"]).is_err() {
        println!("(iperf3 is not installed: no throughput figures)");
        return Ok(());
    }
    let e = |e: neutrino_lab::ApiError| e.to_string();
    let rule = json!({"security_group_rule": {"security_group_id": group, "direction": "ingress",
        "protocol": "tcp", "port_range_min": 5201, "port_range_max": 5201}});
    api.post("/v2.0/security-group-rules", rule).await.map_err(e)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let run = |label: &str| -> Result<f64, String> {
        let mut server_proc = lab.spawn("vm2", &["iperf3", "-s", "-1"]).map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_millis(300));
        let out = lab.exec("vm1", &["iperf3", "-c", &server.ip, "-t", "5", "-J"]).map_err(|e| e.to_string());
        let _ = server_proc.kill();
        let _ = server_proc.wait();
        let v: serde_json::Value = serde_json::from_str(&out?).map_err(|e| e.to_string())?;
        let bps = v["end"]["sum_received"]["bits_per_second"].as_f64().unwrap_or(0.0);
        println!("  iperf3 {} → {} ({label}): {:.2} Gbit/s", client.name, server.name, bps / 1e9);
        Ok(bps)
    };
    let filtered = run("filtering on")?;
    for port in [&client.port_id, &server.port_id] {
        let body = json!({"port": {"security_groups": [], "port_security_enabled": false}});
        api.put(&format!("/v2.0/ports/{port}"), body).await.map_err(e)?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let open = run("port security off")?;
    println!("  filtered / unfiltered: {:.2} (goal: >= 0.9)", filtered / open.max(1.0));
    Ok(())
}
