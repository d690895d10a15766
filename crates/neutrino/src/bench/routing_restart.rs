//! `neutrino bench --routing-restart` (root): one host with `--restart-fips` floating IPs on
//! `--restart-routers` routers (a tenant network each, their gateways on one external network;
//! the ports have taps, so firewall and L2 are part of it too). The host's agent is killed and
//! started again: how long until it has converged (goal: ≤ 1 s), and whether every floating IP
//! is still in place.

use neutrino_lab::Lab;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn run(fips: usize, routers: usize, database: Option<String>) -> Result<(), String> {
    super::in_two_host_lab("routing-restart", database, async |lab: &mut Lab| measure(lab, fips, routers.max(1)).await)
        .await
}

async fn measure(lab: &mut Lab, fips: usize, routers: usize) -> Result<(), String> {
    let api = lab.api();
    let e = |e: neutrino_lab::ApiError| e.to_string();
    // The external network (no traffic is sent in this benchmark; its addresses only sit on
    // the routers' legs inside the lab's namespaces).
    let ext_id = super::routing::external_network(&api, "10.64.0.0/21").await?;
    let mut networks = Vec::new();
    let mut router_ids = Vec::new();
    for n in 0..routers {
        let net = api.create_network(&format!("bench-{n}")).await.map_err(e)?;
        let net_id = net["id"].as_str().unwrap_or_default().to_string();
        let subnet = api.create_subnet(&net_id, &format!("10.201.{n}.0/24")).await.map_err(e)?;
        let router = api
            .post(
                "/v2.0/routers",
                json!({"router": {"name": format!("bench-{n}"), "external_gateway_info": {"network_id": ext_id}}}),
            )
            .await
            .map_err(e)?;
        let router_id = router["router"]["id"].as_str().unwrap_or_default().to_string();
        api.put(&format!("/v2.0/routers/{router_id}/add_router_interface"), json!({"subnet_id": subnet["id"]}))
            .await
            .map_err(e)?;
        networks.push(net_id);
        router_ids.push(router_id);
    }
    let host_id = lab.host_id("h1");
    let started = Instant::now();
    let ports = super::agent_restart::create_bound_ports(&api, &networks, &host_id, fips).await?;
    let batch: String = ports.iter().map(|id| format!("tuntap add mode tap name tap{}\n", &id[..11])).collect();
    let batch_file = lab.dir().join("taps.batch");
    std::fs::write(&batch_file, batch).map_err(|e| e.to_string())?;
    let host_ns = lab.host_ns("h1");
    neutrino_lab::run("ip", &["-n", &host_ns, "-batch", &batch_file.to_string_lossy()]).map_err(|e| e.to_string())?;
    super::agent_restart::wait_all_active(&api, &host_id, Duration::from_secs(180)).await?;
    // A floating IP per port, 16 clients.
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ports = Arc::new(ports);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (api, next, ports, ext_id) = (api.clone(), next.clone(), ports.clone(), ext_id.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if k >= ports.len() {
                    return Ok::<(), String>(());
                }
                let body = json!({"floatingip": {"floating_network_id": ext_id, "port_id": ports[k]}});
                api.post("/v2.0/floatingips", body).await.map_err(|e| e.to_string())?;
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let held = |lab: &Lab| -> usize {
        router_ids
            .iter()
            .map(|r| {
                let ns = format!("h1-qrouter-{r}");
                let out = lab.exec(&ns, &["ip", "-o", "-4", "addr", "show"]).unwrap_or_default();
                out.lines().filter(|l| l.contains(" qg-")).count()
            })
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while held(lab) < fips {
        if Instant::now() > deadline {
            return Err(format!("h1 holds {} of the {fips} floating IPs", held(lab)));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = held(lab);
    println!(
        "{fips} floating IPs on {routers} routers of h1 in place {} after the first port create ({before} external \
         addresses, SNAT ones included)",
        super::ms(started.elapsed())
    );
    let log = lab.dir().join("agent-h1.log");
    let offset = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let killed = Instant::now();
    lab.kill_agent("h1");
    lab.start_agent("h1").map_err(|e| e.to_string())?;
    let (converged_ms, wall) =
        super::agent_restart::wait_converged(&log, offset, killed, Duration::from_secs(60)).await?;
    let after = held(lab);
    println!(
        "agent restart with {fips} floating IPs on {routers} routers (and {fips} ports): converged {converged_ms} ms \
         after the agent started ({} after the kill; goal ≤ 1 s{}), external addresses {before} → {after}",
        super::ms(wall),
        if converged_ms <= 1000 { ", met" } else { ", NOT met" }
    );
    Ok(())
}
