//! `neutrino bench --snat-failover` (root): centralized SNAT's failover in the namespace lab.
//! Two compute hosts (`dvr`) and two gateway hosts (`dvr_snat`); a VM without a floating IP on
//! h1 pings the internet host every 20 ms while the active gateway host is cut off the
//! underlay and the provider network. The outage (lost echoes × 20 ms) is the time from the
//! cut to SNAT working through the standby, over `--failover-rounds` cuts (the host is cabled
//! again and takes SNAT back between them). Goal: ≤ 3 s (OVN's BFD default detection).

use neutrino_lab::{AgentRole, Lab};
use serde_json::json;
use std::time::{Duration, Instant};

const INTERVAL_MS: u32 = 20;

pub async fn run(rounds: usize, database: Option<String>) -> Result<(), String> {
    super::in_two_host_lab("snat-failover", database, async |lab: &mut Lab| measure(lab, rounds).await).await
}

async fn measure(lab: &mut Lab, rounds: usize) -> Result<(), String> {
    let le = |e: neutrino_lab::LabError| e.to_string();
    for host in ["h1", "h2"] {
        lab.set_role(host, AgentRole::Compute).map_err(le)?;
    }
    for host in ["h3", "h4"] {
        lab.add_host(host, AgentRole::Gateway).map_err(le)?;
    }
    let api = lab.api();
    let e = |e: neutrino_lab::ApiError| e.to_string();
    let group = super::routing::open_group(&api).await?;
    let net = api.create_network("bench-snat").await.map_err(e)?;
    let subnet = api.create_subnet(net["id"].as_str().unwrap_or_default(), "198.51.100.0/24").await.map_err(e)?;
    let ext_id = super::routing::external_network(&api, "203.0.113.0/24").await?;
    lab.add_external_host("vm90", "203.0.113.1/24").map_err(le)?;
    let router = api
        .post("/v2.0/routers", json!({"router": {"name": "bench", "external_gateway_info": {"network_id": ext_id}}}))
        .await
        .map_err(e)?;
    let router_id = router["router"]["id"].as_str().unwrap_or_default().to_string();
    let gateway_ip = router["router"]["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    api.put(&format!("/v2.0/routers/{router_id}/add_router_interface"), json!({"subnet_id": subnet["id"]}))
        .await
        .map_err(e)?;
    let vm = lab.boot_vm(&api, &net, "vm1", "h1").await.map_err(le)?;
    api.put(&format!("/v2.0/ports/{}", vm.port_id), json!({"port": {"security_groups": [group]}})).await.map_err(e)?;
    lab.exec("vm1", &["ip", "route", "add", "default", "via", "198.51.100.1"]).map_err(le)?;
    let holder = |lab: &Lab| -> Option<&'static str> {
        let holders: Vec<&'static str> = ["h3", "h4"]
            .into_iter()
            .filter(|h| {
                lab.exec(&format!("{h}-qrouter-{router_id}"), &["ip", "route", "show", "table", "local"])
                    .unwrap_or_default()
                    .contains(&format!("local {gateway_ip} "))
            })
            .collect();
        (holders.len() == 1).then(|| holders[0])
    };
    let settled = |lab: &Lab| holder(lab).filter(|_| lab.ping("vm1", "203.0.113.1", 1));
    let mut outages = Vec::new();
    for round in 0..rounds {
        let Some(active) = wait(Duration::from_secs(30), || settled(lab)).await else {
            return Err(format!("round {round}: SNAT did not settle on one gateway host within 30 s"));
        };
        let ping = lab.start_ping("vm1", "203.0.113.1", 8000 / INTERVAL_MS, INTERVAL_MS).map_err(le)?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        lab.cable(active, false).map_err(le)?;
        let (sent, received) = ping.finish().map_err(le)?;
        lab.cable(active, true).map_err(le)?;
        if received + 50 < sent / 2 {
            return Err(format!("round {round}: SNAT did not come back through the standby ({received}/{sent})"));
        }
        outages.push(Duration::from_millis(u64::from(sent - received) * u64::from(INTERVAL_MS)));
        // The host comes back and takes SNAT back; let the standby let go before the next cut.
        wait(Duration::from_secs(30), || settled(lab).filter(|h| *h == active)).await;
    }
    outages.sort();
    let worst = outages.last().copied().unwrap_or_default();
    println!(
        "SNAT failover, active gateway host cut off ({rounds} rounds, ping every {INTERVAL_MS} ms): p50 {}, \
         worst {} (goal: ≤ 3 s{})",
        super::ms(super::percentile(&outages, 0.5)),
        super::ms(worst),
        if worst <= Duration::from_secs(3) { ", met" } else { ", NOT met" }
    );
    Ok(())
}

/// Poll `check` every 100 ms until it gives something or `limit` passes.
async fn wait<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let began = Instant::now();
    while began.elapsed() < limit {
        if let Some(v) = check() {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}
