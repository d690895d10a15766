//! `neutrino demo`: a small cloud in namespaces, who can ping whom, then teardown.

use neutrino_lab::{check_tools, ApiClient, BootedVm, Lab, LabConfig, PHYSICAL_NETWORK};
use serde_json::{json, Value};

pub async fn run(prefix: &str) -> Result<(), String> {
    check_tools().map_err(|e| e.to_string())?;
    let binary = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("neutrino-demo-{}", std::process::id()));
    println!("building the lab: underlay 192.0.2.0/24, hosts h1 and h2, server at 192.0.2.1:9696");
    let mut lab = Lab::start(LabConfig {
        prefix: prefix.to_string(),
        binary,
        hosts: vec!["h1".into(), "h2".into()],
        database: None,
        server_port: 9696,
        dir: dir.clone(),
        tls: false,
    })
    .map_err(|e| e.to_string())?;
    let api = lab.api();
    let result = scenario(&mut lab, &api).await;
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
    println!("lab torn down");
    result
}

async fn scenario(lab: &mut Lab, api: &ApiClient) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let net = api.create_network("demo-net").await.map_err(|e| err(&e))?;
    let subnet =
        api.create_subnet(net["id"].as_str().unwrap_or_default(), "198.51.100.0/25").await.map_err(|e| err(&e))?;
    println!(
        "network demo-net: VXLAN VNI {}, MTU {}, subnet 198.51.100.0/25",
        net["provider:segmentation_id"], net["mtu"]
    );
    let mut vms = Vec::new();
    for (name, host) in [("vm1", "h1"), ("vm2", "h1"), ("vm3", "h2")] {
        let vm = lab.boot_dhcp_vm(api, &net, name, host).await.map_err(|e| err(&e))?;
        // As a cloud image boots: its address by DHCP (answered on its own host).
        let lease = lab.dhcp(name, neutrino_lab::DhcpClient::Udhcpc).map_err(|e| err(&e))?;
        println!(
            "  {name} on {host}: {} by DHCP from {} (router {}, MTU {}; port {} ACTIVE)",
            lease.get("ip"),
            lease.get("serverid"),
            lease.get("router"),
            lease.get("mtu"),
            vm.port_id
        );
        vms.push(vm);
    }
    // Metadata from vm1, answered on h1 and proxied to a stand-in for Nova's metadata API.
    let project = api.get(&format!("/v2.0/ports/{}", vms[0].port_id)).await.map_err(|e| err(&e))?;
    let project = project["port"]["project_id"].as_str().unwrap_or_default().to_string();
    let (mut nova, _) = lab.start_nova_metadata(&[("vm1", project.as_str())]).map_err(|e| err(&e))?;
    let url = "http://169.254.169.254/openstack/latest/meta_data.json";
    let meta = lab.exec("vm1", &["curl", "-s", "-m", "5", url]);
    let _ = nova.kill();
    let _ = nova.wait();
    println!("  vm1: GET {url} → {}", meta.map_err(|e| err(&e))?.trim());
    println!("\nping matrix (from row to column):");
    print!("{:>6}", "");
    for to in &vms {
        print!("{:>6}", to.name);
    }
    println!();
    let mut failures = 0;
    for from in &vms {
        print!("{:>6}", from.name);
        for to in &vms {
            if from.name == to.name {
                print!("{:>6}", "-");
                continue;
            }
            let ok = lab.ping(&from.name, &to.ip, 2);
            failures += usize::from(!ok);
            print!("{:>6}", if ok { "ok" } else { "FAIL" });
        }
        println!();
    }
    if failures > 0 {
        return Err(format!("{failures} ping(s) failed"));
    }
    routed(lab, api, &subnet, &vms[0]).await
}

/// A second network joined by a router, an external network with "the internet" on it, and a
/// floating IP: routed on the VM's own host, NAT where the VM is.
async fn routed(lab: &mut Lab, api: &ApiClient, subnet_a: &Value, vm1: &BootedVm) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let net_b = api.create_network("demo-net-b").await.map_err(|e| err(&e))?;
    let subnet_b =
        api.create_subnet(net_b["id"].as_str().unwrap_or_default(), "198.51.100.128/25").await.map_err(|e| err(&e))?;
    let ext = api
        .post(
            "/v2.0/networks",
            json!({"network": {"name": "demo-ext", "router:external": true, "provider:network_type": "flat",
                               "provider:physical_network": PHYSICAL_NETWORK}}),
        )
        .await
        .map_err(|e| err(&e))?["network"]
        .take();
    let ext_id = ext["id"].as_str().unwrap_or_default().to_string();
    api.create_subnet(&ext_id, "203.0.113.0/24").await.map_err(|e| err(&e))?;
    lab.add_external_host("vm90", "203.0.113.1/24").map_err(|e| err(&e))?;
    let router = api
        .post(
            "/v2.0/routers",
            json!({"router": {"name": "demo-router", "external_gateway_info": {"network_id": ext_id}}}),
        )
        .await
        .map_err(|e| err(&e))?;
    let router_id = router["router"]["id"].as_str().unwrap_or_default().to_string();
    for subnet in [subnet_a, &subnet_b] {
        api.put(&format!("/v2.0/routers/{router_id}/add_router_interface"), json!({"subnet_id": subnet["id"]}))
            .await
            .map_err(|e| err(&e))?;
    }
    println!(
        "
router demo-router: demo-net (198.51.100.1) and demo-net-b (198.51.100.129), gateway on demo-ext"
    );
    let vm4 = lab.boot_vm(api, &net_b, "vm4", "h2").await.map_err(|e| err(&e))?;
    lab.exec("vm4", &["ip", "route", "add", "default", "via", "198.51.100.129"]).map_err(|e| err(&e))?;
    lab.exec("vm1", &["ip", "route", "replace", "default", "via", "198.51.100.1"]).map_err(|e| err(&e))?;
    // The default security group lets in only its own members: open ICMP for the demo.
    let port = api.get(&format!("/v2.0/ports/{}", vm1.port_id)).await.map_err(|e| err(&e))?;
    let group = port["port"]["security_groups"][0].clone();
    let rule = json!({"security_group_rule": {"security_group_id": group, "direction": "ingress",
                                               "ethertype": "IPv4", "protocol": "icmp"}});
    api.post("/v2.0/security-group-rules", rule).await.map_err(|e| err(&e))?;
    println!("  vm4 on h2: {} (demo-net-b)", vm4.ip);
    let routed = lab.ping("vm1", &vm4.ip, 3);
    println!("  vm1 (h1) → vm4 (h2), routed on h1: {}", if routed { "ok" } else { "FAIL" });
    let fip = api
        .post("/v2.0/floatingips", json!({"floatingip": {"floating_network_id": ext_id, "port_id": vm1.port_id}}))
        .await
        .map_err(|e| err(&e))?;
    let address = fip["floatingip"]["floating_ip_address"].as_str().unwrap_or_default().to_string();
    let mut reachable = false;
    for _ in 0..20 {
        if lab.ping("vm90", &address, 1) {
            reachable = true;
            break;
        }
    }
    println!(
        "  floating IP {address} → vm1, NAT on h1; the internet (203.0.113.1) pings it: {}",
        if reachable { "ok" } else { "FAIL" }
    );
    if !(routed && reachable) {
        return Err("routing or the floating IP failed".into());
    }
    Ok(())
}
