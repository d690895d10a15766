//! `neutrino bench --routing` (root): distributed routing in the namespace lab. Two tenant
//! networks joined by a router with a gateway on a flat external network, where an "internet"
//! host sits. Figures:
//! - a floating IP's associate reply → the internet host's first TCP handshake through it,
//!   p50/p99 over `--fip-rounds` associations (goal: p99 ≤ 200 ms);
//! - TCP throughput (iperf3, 5 s) of a routed pair on two hosts beside a bridged pair on the
//!   same two hosts (goal: routed ≥ 0.8 × bridged).

use neutrino_lab::{join_netns, Lab, PHYSICAL_NETWORK};
use serde_json::json;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

const PORT: u16 = 8080;

pub async fn run(rounds: usize, database: Option<String>) -> Result<(), String> {
    super::in_two_host_lab("routing", database, async |lab: &mut Lab| measure(lab, rounds).await).await
}

async fn measure(lab: &mut Lab, rounds: usize) -> Result<(), String> {
    let api = lab.api();
    let e = |e: neutrino_lab::ApiError| e.to_string();
    let group = open_group(&api).await?;
    let net_a = api.create_network("bench-a").await.map_err(e)?;
    let net_b = api.create_network("bench-b").await.map_err(e)?;
    let sub_a = api.create_subnet(net_a["id"].as_str().unwrap_or_default(), "198.51.100.0/25").await.map_err(e)?;
    let sub_b = api.create_subnet(net_b["id"].as_str().unwrap_or_default(), "198.51.100.128/25").await.map_err(e)?;
    let ext_id = external_network(&api, "203.0.113.0/24").await?;
    lab.add_external_host("vm90", "203.0.113.1/24").map_err(|e| e.to_string())?;
    let router = api
        .post("/v2.0/routers", json!({"router": {"name": "bench", "external_gateway_info": {"network_id": ext_id}}}))
        .await
        .map_err(e)?;
    let router_id = router["router"]["id"].as_str().unwrap_or_default().to_string();
    for subnet in [&sub_a, &sub_b] {
        api.put(&format!("/v2.0/routers/{router_id}/add_router_interface"), json!({"subnet_id": subnet["id"]}))
            .await
            .map_err(e)?;
    }
    let mut vms = Vec::new();
    for (name, net, host, gateway) in [
        ("vm1", &net_a, "h1", "198.51.100.1"),
        ("vm2", &net_b, "h2", "198.51.100.129"),
        ("vm3", &net_a, "h2", "198.51.100.1"),
    ] {
        let vm = lab.boot_vm(&api, net, name, host).await.map_err(|e| e.to_string())?;
        api.put(&format!("/v2.0/ports/{}", vm.port_id), json!({"port": {"security_groups": [group]}}))
            .await
            .map_err(e)?;
        lab.exec(name, &["ip", "route", "add", "default", "via", gateway]).map_err(|e| e.to_string())?;
        vms.push(vm);
    }
    fip_latency(lab, &ext_id, &vms[0].port_id, rounds).await?;
    throughput(lab, &vms[1].ip, &vms[2].ip)
}

/// A security group that lets all IPv4 in: its id.
pub(super) async fn open_group(api: &neutrino_lab::ApiClient) -> Result<String, String> {
    let e = |e: neutrino_lab::ApiError| e.to_string();
    let group = api.post("/v2.0/security-groups", json!({"security_group": {"name": "open"}})).await.map_err(e)?;
    let group = group["security_group"]["id"].as_str().unwrap_or_default().to_string();
    let rule =
        json!({"security_group_rule": {"security_group_id": group, "direction": "ingress", "ethertype": "IPv4"}});
    api.post("/v2.0/security-group-rules", rule).await.map_err(e)?;
    Ok(group)
}

/// A flat external network on the lab's provider network with one subnet: its id.
pub(super) async fn external_network(api: &neutrino_lab::ApiClient, cidr: &str) -> Result<String, String> {
    let e = |e: neutrino_lab::ApiError| e.to_string();
    let ext = api
        .post(
            "/v2.0/networks",
            json!({"network": {"name": "bench-ext", "router:external": true, "provider:network_type": "flat",
                               "provider:physical_network": PHYSICAL_NETWORK}}),
        )
        .await
        .map_err(e)?;
    let ext_id = ext["network"]["id"].as_str().unwrap_or_default().to_string();
    api.create_subnet(&ext_id, cidr).await.map_err(e)?;
    Ok(ext_id)
}

/// Associate a floating IP with vm1 `rounds` times; each time, from the reply to the first
/// handshake of the internet host with vm1 through it, then dissociate and wait until it is gone.
async fn fip_latency(lab: &mut Lab, ext_id: &str, port_id: &str, rounds: usize) -> Result<(), String> {
    let api = lab.api();
    let e = |e: neutrino_lab::ApiError| e.to_string();
    let fip = api.post("/v2.0/floatingips", json!({"floatingip": {"floating_network_id": ext_id}})).await.map_err(e)?;
    let fip_id = fip["floatingip"]["id"].as_str().unwrap_or_default().to_string();
    let address: std::net::IpAddr = fip["floatingip"]["floating_ip_address"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .map_err(|_| "floating IP address".to_string())?;
    // A listener in vm1, kept open by a thread of its namespace.
    let vm_ns = lab.netns("vm1");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    std::thread::spawn(move || {
        let listener = join_netns(&vm_ns)
            .map_err(|e| e.to_string())
            .and_then(|_| TcpListener::bind(("0.0.0.0", PORT)).map_err(|e| e.to_string()));
        let _ = ready_tx.send(listener.as_ref().map(|_| ()).map_err(Clone::clone));
        if let Ok(l) = listener {
            for stream in l.incoming() {
                drop(stream);
            }
        }
    });
    ready_rx.recv().map_err(|e| e.to_string())??;
    let internet = lab.netns("vm90");
    let probe = move |want_open: bool, deadline: Duration| -> Result<Option<Duration>, String> {
        let ns = internet.clone();
        std::thread::spawn(move || -> Result<Option<Duration>, String> {
            join_netns(&ns).map_err(|e| e.to_string())?;
            let addr = SocketAddr::new(address, PORT);
            let began = Instant::now();
            while began.elapsed() < deadline {
                let open = TcpStream::connect_timeout(&addr, Duration::from_millis(3)).is_ok();
                if open == want_open {
                    return Ok(Some(began.elapsed()));
                }
            }
            Ok(None)
        })
        .join()
        .map_err(|_| "probe thread panicked".to_string())?
    };
    let mut took = Vec::new();
    for _ in 0..rounds {
        api.put(&format!("/v2.0/floatingips/{fip_id}"), json!({"floatingip": {"port_id": port_id}}))
            .await
            .map_err(e)?;
        match probe(true, Duration::from_secs(10))? {
            Some(t) => took.push(t),
            None => return Err(format!("{address} did not answer within 10 s of its association")),
        }
        api.put(&format!("/v2.0/floatingips/{fip_id}"), json!({"floatingip": {"port_id": null}})).await.map_err(e)?;
        if probe(false, Duration::from_secs(10))?.is_none() {
            return Err(format!("{address} still answered 10 s after its dissociation"));
        }
    }
    took.sort();
    let p99 = super::percentile(&took, 0.99);
    println!(
        "floating IP associate reply → reachable from the internet host ({rounds} rounds): p50 {}, p99 {} \
         (goal: p99 ≤ 200 ms{})",
        super::ms(super::percentile(&took, 0.5)),
        super::ms(p99),
        if p99 <= Duration::from_millis(200) { ", met" } else { ", NOT met" }
    );
    Ok(())
}

/// iperf3 from vm1 (h1) to `routed` (vm2 on h2, the other network) and to `bridged` (vm3 on
/// h2, vm1's network).
fn throughput(lab: &Lab, routed: &str, bridged: &str) -> Result<(), String> {
    if std::process::Command::new("iperf3").arg("--version").output().is_err() {
        println!("throughput: skipped (iperf3 is not installed)");
        return Ok(());
    }
    let mut rates = Vec::new();
    for (server, ip) in [("vm2", routed), ("vm3", bridged)] {
        let mut child = std::process::Command::new("ip")
            .args(["netns", "exec", &lab.netns(server), "iperf3", "-s", "-1"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_millis(300));
        let out = lab.exec("vm1", &["iperf3", "-c", ip, "-t", "5", "-J"]).map_err(|e| e.to_string());
        let _ = child.kill();
        let _ = child.wait();
        let report: serde_json::Value = serde_json::from_str(&out?).map_err(|e| e.to_string())?;
        let bps = report["end"]["sum_received"]["bits_per_second"].as_f64().unwrap_or(0.0);
        rates.push(bps);
    }
    let ratio = if rates[1] > 0.0 { rates[0] / rates[1] } else { 0.0 };
    println!(
        "TCP across hosts (iperf3, 5 s): routed {:.0} Mbit/s, bridged {:.0} Mbit/s, routed/bridged {:.2} \
         (goal: ≥ 0.8{})",
        rates[0] / 1e6,
        rates[1] / 1e6,
        ratio,
        if ratio >= 0.8 { ", met" } else { ", NOT met" }
    );
    Ok(())
}
