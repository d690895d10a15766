//! Distributed routing in the lab: two tenant networks joined by one router, VMs on both hosts.
//! A packet between the networks is routed on its sender's host and crosses the underlay once;
//! no bridge ever learns the router's gateway MAC from a tunnel.

use super::wait_for;
use neutrino_lab::{AgentRole, ApiClient, BootedVm, Lab};
use serde_json::json;

/// Boot a VM on `network` at `host` in `group`, with its default route through `gateway`.
async fn boot(
    lab: &mut Lab,
    api: &ApiClient,
    network: &serde_json::Value,
    name: &str,
    host: &str,
    group: &str,
    gateway: &str,
) -> BootedVm {
    let vm = lab.boot_vm(api, network, name, host).await.expect("a routed VM boots");
    api.put(&format!("/v2.0/ports/{}", vm.port_id), json!({"port": {"security_groups": [group]}})).await.unwrap();
    lab.exec(name, &["ip", "route", "add", "default", "via", gateway]).expect("default route");
    vm
}

/// The first packet the internet host (`vm90`) receives that matches the tcpdump `filter`,
/// while `send` runs: the tcpdump line, naming its source address.
async fn seen_at_the_internet(lab: &Lab, filter: &str, send: impl AsyncFnOnce()) -> String {
    let capture = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.netns("vm90"), "timeout", "5", "tcpdump", "-n", "-l", "-c", "1", "-i", "eth0"])
        .arg(filter)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    send().await;
    String::from_utf8_lossy(&capture.wait_with_output().unwrap().stdout).to_string()
}

/// What the internet host (`vm90`, 203.0.113.1) sees of an echo request `vm` sends it.
async fn seen_by_the_internet(lab: &Lab, vm: &str) -> String {
    seen_at_the_internet(lab, "icmp[icmptype] == icmp-echo", async || {
        assert!(lab.ping(vm, "203.0.113.1", 2), "{vm} reaches the internet");
    })
    .await
}

/// `external`: a flat network on the provider network, made the router's external network.
pub async fn check(lab: &mut Lab, api: &ApiClient, external: &serde_json::Value) {
    let group = api.post("/v2.0/security-groups", json!({"security_group": {"name": "e2e-routing"}})).await.unwrap();
    let group = group["security_group"]["id"].as_str().unwrap().to_string();
    for (ethertype, protocol, port) in
        [("IPv4", "icmp", None), ("IPv4", "tcp", Some(8080)), ("IPv4", "udp", Some(5353)), ("IPv6", "ipv6-icmp", None)]
    {
        let rule = json!({"security_group_rule": {"security_group_id": group, "direction": "ingress",
                                                   "ethertype": ethertype, "protocol": protocol,
                                                   "port_range_min": port, "port_range_max": port}});
        api.post("/v2.0/security-group-rules", rule).await.unwrap();
    }
    let net_a = api.create_network("e2e-routed-a").await.unwrap();
    let net_b = api.create_network("e2e-routed-b").await.unwrap();
    let sub_a = api.create_subnet(net_a["id"].as_str().unwrap(), "198.51.100.0/25").await.unwrap();
    let sub_b = api.create_subnet(net_b["id"].as_str().unwrap(), "198.51.100.128/25").await.unwrap();
    let router = api.post("/v2.0/routers", json!({"router": {"name": "e2e"}})).await.unwrap();
    let router_id = router["router"]["id"].as_str().unwrap().to_string();
    let mut gateway_macs = Vec::new();
    for subnet in [&sub_a, &sub_b] {
        let info = api
            .put(&format!("/v2.0/routers/{router_id}/add_router_interface"), json!({"subnet_id": subnet["id"]}))
            .await
            .unwrap();
        let port = api.get(&format!("/v2.0/ports/{}", info["port_id"].as_str().unwrap())).await.unwrap();
        gateway_macs.push(port["port"]["mac_address"].as_str().unwrap().to_string());
    }
    let a1 = boot(lab, api, &net_a, "vm21", "h1", &group, "198.51.100.1").await;
    let b2 = boot(lab, api, &net_b, "vm22", "h2", &group, "198.51.100.129").await;
    let b1 = boot(lab, api, &net_b, "vm23", "h1", &group, "198.51.100.129").await;

    // Both hosts run the router, with both gateways.
    // `<p>h1-qrouter-<id>`: the lab's names are its prefix and these.
    let router_ns = |host: &str| format!("{host}-qrouter-{router_id}");
    for host in ["h1", "h2"] {
        let ns = router_ns(host);
        let wired = wait_for(|| {
            let out = lab.exec(&ns, &["ip", "-o", "addr", "show"]).unwrap_or_default();
            out.contains("198.51.100.1/25") && out.contains("198.51.100.129/25")
        })
        .await;
        assert!(wired, "{host} runs the router with both gateways\n{}", lab.log_tail(&format!("agent-{host}"), 30));
    }

    // Routed on one host, and across hosts (the underlay carries each packet once).
    assert!(lab.ping("vm21", &b1.ip, 3), "vm21 → vm23 routed on h1\n{}", lab.log_tail("agent-h1", 30));
    let capture = lab.capture_underlay("routed-pings").unwrap();
    assert!(
        lab.ping("vm21", &b2.ip, 3),
        "vm21 (h1, A) → vm22 (h2, B) routed\n{}\n{}",
        lab.log_tail("agent-h1", 30),
        lab.log_tail("agent-h2", 30)
    );
    let counts = capture.stop().unwrap();
    eprintln!("underlay during the routed pings: {counts:?}");
    assert!(
        counts.vxlan_packets >= 6 && counts.vxlan_packets <= 7,
        "3 requests h1 → h2 and 3 replies h2 → h1, each routed on its sender's host: {counts:?}"
    );
    assert_eq!(counts.inner_arp, 0, "no ARP crosses the tunnels: {counts:?}");
    assert!(lab.ping("vm22", &a1.ip, 3), "vm22 → vm21 routed on h2");

    // No bridge learned a gateway MAC from a tunnel (each is only ever on the router's leg).
    for host in ["h1", "h2"] {
        let fdb = lab.exec(host, &["bridge", "fdb", "show"]).unwrap_or_default();
        for mac in &gateway_macs {
            for line in fdb.lines().filter(|l| l.starts_with(mac.as_str())) {
                assert!(line.contains(" dev rq-"), "{host}: the gateway MAC {mac} is only on a router leg: {line}");
            }
        }
    }

    // A floating IP: the router's gateway on the external network, the floating IP of vm21
    // answered on h1 (vm21's host), DNAT in and SNAT out.
    let ext_id = external["id"].as_str().unwrap().to_string();
    api.put(&format!("/v2.0/networks/{ext_id}"), json!({"network": {"router:external": true}})).await.unwrap();
    lab.add_external_host("vm90", "203.0.113.1/24").expect("the internet host");
    // An IPv6 subnet too (for IPv6 through the gateway later): the gateway takes an address on
    // each.
    let ext6 = json!({"subnet": {"network_id": ext_id, "ip_version": 6, "cidr": "2001:db8:e::/64"}});
    api.post("/v2.0/subnets", ext6).await.unwrap();
    let ext_subnets = api.get(&format!("/v2.0/subnets?network_id={ext_id}")).await.unwrap();
    let fixed: Vec<serde_json::Value> =
        ext_subnets["subnets"].as_array().unwrap().iter().map(|s| json!({"subnet_id": s["id"]})).collect();
    api.put(
        &format!("/v2.0/routers/{router_id}"),
        json!({"router": {"external_gateway_info": {"network_id": ext_id, "external_fixed_ips": fixed}}}),
    )
    .await
    .unwrap();
    let fip = api
        .post("/v2.0/floatingips", json!({"floatingip": {"floating_network_id": ext_id, "port_id": a1.port_id}}))
        .await
        .unwrap();
    let fip_id = fip["floatingip"]["id"].as_str().unwrap().to_string();
    let address = fip["floatingip"]["floating_ip_address"].as_str().unwrap().to_string();
    let reachable = wait_for(|| lab.ping("vm90", &address, 1)).await;
    assert!(
        reachable,
        "the internet reaches vm21 at {address}\n{}\n{}",
        lab.log_tail("agent-h1", 30),
        lab.exec(&router_ns("h1"), &["ip", "-o", "addr", "show"]).unwrap_or_default()
    );
    // TCP too, and vm21's own traffic leaves as the floating IP.
    let mut server = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.netns("vm21"), "nc", "-l", "-p", "8080"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let tcp = lab.exec("vm90", &["nc", "-z", "-w", "3", &address, "8080"]);
    let _ = server.kill();
    let _ = server.wait();
    assert!(tcp.is_ok(), "TCP from the internet to {address}:8080 reaches vm21: {tcp:?}");
    let seen = seen_by_the_internet(lab, "vm21").await;
    assert!(seen.contains(&format!("{address} > 203.0.113.1")), "the internet sees vm21 as {address}: {seen}");
    // Port forwardings, on the internal port's host: TCP and UDP to a second floating IP's
    // ports reach vm23 (h1) on its own ports.
    let fip2 = api.post("/v2.0/floatingips", json!({"floatingip": {"floating_network_id": ext_id}})).await.unwrap()
        ["floatingip"]
        .clone();
    let fip2_id = fip2["id"].as_str().unwrap().to_string();
    let address2 = fip2["floating_ip_address"].as_str().unwrap().to_string();
    for (protocol, external, internal) in [("tcp", 2222, 8080), ("udp", 6363, 5353)] {
        let pf = json!({"port_forwarding": {"protocol": protocol, "internal_port_id": b1.port_id,
            "internal_ip_address": b1.ip, "internal_port": internal, "external_port": external}});
        api.post(&format!("/v2.0/floatingips/{fip2_id}/port_forwardings"), pf).await.unwrap();
    }
    let listen = |args: &[&str]| {
        let mut cmd = std::process::Command::new("ip");
        cmd.args(["netns", "exec", &lab.netns("vm23")]).args(args);
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).spawn().unwrap()
    };
    let mut tcp_server = listen(&["nc", "-l", "-k", "-p", "8080"]);
    let forwarded = wait_for(|| lab.exec("vm90", &["nc", "-z", "-w", "1", &address2, "2222"]).is_ok()).await;
    let _ = tcp_server.kill();
    let _ = tcp_server.wait();
    assert!(forwarded, "TCP {address2}:2222 reaches vm23:8080\n{}", lab.log_tail("agent-h1", 20));
    let udp_server = listen(&["timeout", "4", "nc", "-u", "-l", "-p", "5353"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    for _ in 0..3 {
        let _ = lab.exec("vm90", &["sh", "-c", &format!("echo forwarded | nc -u -w 1 {address2} 6363")]);
    }
    let received = String::from_utf8_lossy(&udp_server.wait_with_output().unwrap().stdout).to_string();
    assert!(received.contains("forwarded"), "UDP {address2}:6363 reaches vm23:5353: {received:?}");
    for pf in api.get(&format!("/v2.0/floatingips/{fip2_id}/port_forwardings")).await.unwrap()["port_forwardings"]
        .as_array()
        .unwrap()
        .clone()
    {
        api.delete(&format!("/v2.0/floatingips/{fip2_id}/port_forwardings/{}", pf["id"].as_str().unwrap()))
            .await
            .unwrap();
    }
    api.delete(&format!("/v2.0/floatingips/{fip2_id}")).await.unwrap();

    // Distributed SNAT: VMs without a floating IP reach the internet from their own host, each
    // host seen as an address of its own there (no gateway host in the path).
    for (vm, host) in [("vm23", "h1"), ("vm22", "h2")] {
        let out = wait_for(|| lab.ping(vm, "203.0.113.1", 1)).await;
        assert!(
            out,
            "{vm} (no floating IP) reaches the internet through {host}\n{}",
            lab.log_tail(&format!("agent-{host}"), 20)
        );
        let own = api
            .get(&format!(
                "/v2.0/ports?device_owner=network:floatingip_agent_gateway&device_id={}/{router_id}",
                lab.host_id(host)
            ))
            .await
            .unwrap();
        let own_ip = own["ports"][0]["fixed_ips"][0]["ip_address"].as_str().unwrap_or_default().to_string();
        assert!(!own_ip.is_empty(), "{host}'s external address: {own}");
        let seen = seen_by_the_internet(lab, vm).await;
        assert!(
            seen.contains(&format!("{own_ip} > 203.0.113.1")),
            "the internet sees {vm} as {host}'s {own_ip}: {seen}"
        );
    }

    let tenant_networks = [net_a["id"].as_str().unwrap().to_string(), net_b["id"].as_str().unwrap().to_string()];
    centralized_snat(lab, api, &router_id, &tenant_networks, &group).await;

    // Restarting vm21's agent during a continuous ping through the floating IP loses nothing:
    // the router's namespace, legs and NAT stay as they are, and the new agent finds them right.
    let router_index = lab.exec(&router_ns("h1"), &["ip", "-o", "link", "show"]).unwrap_or_default();
    let ping = lab.start_ping("vm90", &address, 200, 20).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    lab.kill_agent("h1");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    lab.start_agent("h1").unwrap();
    let (sent, received) = ping.finish().unwrap();
    eprintln!("ping through a floating IP across an agent restart: {received}/{sent}");
    let show = |ns: &str, args: &[&str]| lab.exec(ns, args).unwrap_or_default();
    assert_eq!(
        (sent, received),
        (200, 200),
        "no packet lost through the floating IP while h1's agent restarted\nh1: {}\n{}\n{}\n{}\n{}\nvm90: {}",
        show(&router_ns("h1"), &["ip", "rule"]),
        show(&router_ns("h1"), &["ip", "route", "show", "table", "78"]),
        show(&router_ns("h1"), &["ip", "route"]),
        show(&router_ns("h1"), &["ip", "-br", "addr"]),
        show(&router_ns("h1"), &["nft", "list", "table", "ip", "neutrino_nat"]),
        show("vm90", &["ip", "neigh"]),
    );
    let after = lab.exec(&router_ns("h1"), &["ip", "-o", "link", "show"]).unwrap_or_default();
    assert_eq!(router_index, after, "the router's legs were not recreated");

    // vm21 moves to h2 (its port is bound there): its floating IP goes with it, answered and
    // NATed on h2 now, and announced there by a gratuitous ARP.
    lab.move_vm("vm21", "h2").expect("vm21 moves");
    lab.exec("vm21", &["ip", "route", "add", "default", "via", "198.51.100.1"]).expect("default route");
    api.put(&format!("/v2.0/ports/{}", a1.port_id), json!({"port": {"binding:host_id": lab.host_id("h2")}}))
        .await
        .unwrap();
    // A hypervisor announces a migrated VM (QEMU's self-announce): its MAC is learned anew.
    let began = std::time::Instant::now();
    let wired = wait_for(|| lab.ping("vm21", "198.51.100.1", 1)).await;
    assert!(wired, "vm21 is wired on h2\n{}", lab.log_tail("agent-h2", 30));
    let moved = wait_for(|| lab.ping("vm90", &address, 1)).await;
    eprintln!("the floating IP answered from h2 {:?} after the rebind", began.elapsed());
    assert!(moved, "{address} reaches vm21 on h2\n{}", lab.log_tail("agent-h2", 30));
    let on_h2 = lab.exec(&router_ns("h2"), &["ip", "-o", "addr", "show"]).unwrap_or_default();
    let on_h1 = lab.exec(&router_ns("h1"), &["ip", "-o", "addr", "show"]).unwrap_or_default();
    assert!(on_h2.contains(&format!("{address}/")), "h2 holds {address}: {on_h2}");
    assert!(!on_h1.contains(&format!("{address}/")), "h1 gave {address} up: {on_h1}");

    // Dissociated: unreachable at once (and the mapping is not kept by conntrack).
    api.put(&format!("/v2.0/floatingips/{fip_id}"), json!({"floatingip": {"port_id": null}})).await.unwrap();
    let gone = wait_for(|| !lab.ping("vm90", &address, 1)).await;
    assert!(gone, "{address} stops answering once dissociated");
    api.delete(&format!("/v2.0/floatingips/{fip_id}")).await.unwrap();
    api.put(&format!("/v2.0/routers/{router_id}"), json!({"router": {"external_gateway_info": null}})).await.unwrap();

    // Extra routes reach every host's copy of the router; a router that is down routes
    // nothing (its namespaces go) until it is up again.
    let route = json!({"router": {"routes": [{"destination": "192.0.2.0/24", "nexthop": b1.ip}]}});
    api.put(&format!("/v2.0/routers/{router_id}"), route).await.unwrap();
    for host in ["h1", "h2"] {
        let routed = wait_for(|| {
            lab.exec(&router_ns(host), &["ip", "route", "show", "192.0.2.0/24"]).unwrap_or_default().contains(&b1.ip)
        })
        .await;
        assert!(routed, "{host}'s router has the extra route via {}", b1.ip);
    }
    api.put(&format!("/v2.0/routers/{router_id}"), json!({"router": {"routes": []}})).await.unwrap();
    let unrouted = wait_for(|| {
        lab.exec(&router_ns("h2"), &["ip", "route", "show", "192.0.2.0/24"]).unwrap_or_default().trim().is_empty()
    })
    .await;
    assert!(unrouted, "the extra route went");
    api.put(&format!("/v2.0/routers/{router_id}"), json!({"router": {"admin_state_up": false}})).await.unwrap();
    let h1_ns = format!("/run/netns/{}-qrouter-{router_id}", lab.host_ns("h1"));
    assert!(wait_for(|| !std::path::Path::new(&h1_ns).exists()).await, "a router that is down is not run");
    assert!(!lab.ping("vm21", &b2.ip, 1), "and routes nothing");
    api.put(&format!("/v2.0/routers/{router_id}"), json!({"router": {"admin_state_up": true}})).await.unwrap();
    assert!(wait_for(|| lab.ping("vm21", &b2.ip, 1)).await, "up again, it routes again");

    // IPv6: two IPv6 subnets on the router, routed between hosts without NAT.
    let mut v6_vms = Vec::new();
    for (name, host, cidr) in [("vm24", "h1", "2001:db8:c::/64"), ("vm25", "h2", "2001:db8:d::/64")] {
        let net = api.create_network(&format!("e2e-routed-{name}")).await.unwrap();
        let subnet = api
            .post("/v2.0/subnets", json!({"subnet": {"network_id": net["id"], "ip_version": 6, "cidr": cidr}}))
            .await
            .unwrap()["subnet"]
            .clone();
        api.put(&format!("/v2.0/routers/{router_id}/add_router_interface"), json!({"subnet_id": subnet["id"]}))
            .await
            .unwrap();
        let gateway = subnet["gateway_ip"].as_str().unwrap().to_string();
        let vm = lab.boot_vm(api, &net, name, host).await.expect("an IPv6 VM boots");
        api.put(&format!("/v2.0/ports/{}", vm.port_id), json!({"port": {"security_groups": [group]}})).await.unwrap();
        lab.exec(name, &["ip", "-6", "route", "replace", "default", "via", &gateway]).expect("IPv6 default route");
        v6_vms.push((vm, subnet));
    }
    let v6_routed = wait_for(|| lab.ping("vm24", &v6_vms[1].0.ip, 1)).await;
    assert!(
        v6_routed,
        "vm24 (h1) → vm25 (h2) over IPv6, routed\n{}\n{}",
        lab.exec(&router_ns("h1"), &["ip", "-6", "addr", "show"]).unwrap_or_default(),
        lab.log_tail("agent-h1", 20)
    );
    assert!(lab.ping("vm25", &v6_vms[0].0.ip, 2), "and back, routed on h2");
    for (vm, subnet) in &v6_vms {
        api.delete(&format!("/v2.0/ports/{}", vm.port_id)).await.unwrap();
        api.put(&format!("/v2.0/routers/{router_id}/remove_router_interface"), json!({"subnet_id": subnet["id"]}))
            .await
            .unwrap();
    }

    // The interface goes: both hosts drop B from the router; the router goes: its
    // namespaces go.
    api.put(&format!("/v2.0/routers/{router_id}/remove_router_interface"), json!({"subnet_id": sub_b["id"]}))
        .await
        .unwrap();
    let unrouted = wait_for(|| {
        !lab.exec(&router_ns("h1"), &["ip", "-o", "addr", "show"]).unwrap_or_default().contains("198.51.100.129/25")
    })
    .await;
    assert!(unrouted, "h1's router lost its leg on B");
    assert!(!lab.ping("vm21", &b2.ip, 1), "B is no longer routed");
    for vm in [&a1, &b1, &b2] {
        api.delete(&format!("/v2.0/ports/{}", vm.port_id)).await.unwrap();
    }
    api.put(&format!("/v2.0/routers/{router_id}/remove_router_interface"), json!({"subnet_id": sub_a["id"]}))
        .await
        .unwrap();
    api.delete(&format!("/v2.0/routers/{router_id}")).await.unwrap();
    for host in ["h1", "h2"] {
        let path = format!("/run/netns/{}-qrouter-{router_id}", lab.host_ns(host));
        let gone = wait_for(|| !std::path::Path::new(&path).exists()).await;
        assert!(gone, "{host} removed {path}\n{}", lab.log_tail(&format!("agent-{host}"), 20));
    }
}

/// Wait up to `seconds` for `check`.
async fn wait_long(seconds: u64, mut check: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::time::Instant::now() < until {
        if check() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

/// Centralized SNAT (Neutron's default, `dvr_snat`): h1 and h2 become plain compute hosts and
/// two gateway hosts join. VMs without a floating IP leave through the active gateway host,
/// seen as the router's gateway address; cutting that host off moves SNAT to the other within
/// seconds (printed), and it comes back when the host does.
async fn centralized_snat(lab: &mut Lab, api: &ApiClient, router_id: &str, tenant_networks: &[String], group: &str) {
    for host in ["h1", "h2"] {
        lab.set_role(host, AgentRole::Compute).expect("a compute host");
    }
    for host in ["h3", "h4"] {
        lab.add_host(host, AgentRole::Gateway).expect("a gateway host");
    }
    let router = api.get(&format!("/v2.0/routers/{router_id}")).await.unwrap();
    let gateway_ip = router["router"]["external_gateway_info"]["external_fixed_ips"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|f| f["ip_address"].as_str().filter(|a| !a.contains(':')).map(String::from))
        .expect("an IPv4 gateway address");
    let router_ns = |host: &str| format!("{host}-qrouter-{router_id}");
    // The one gateway host that holds the gateway address (none while two do).
    let holder = |lab: &Lab| {
        let holders: Vec<&str> = ["h3", "h4"]
            .into_iter()
            .filter(|h| {
                lab.exec(&router_ns(h), &["ip", "route", "show", "table", "local"])
                    .unwrap_or_default()
                    .contains(&format!("local {gateway_ip} "))
            })
            .collect();
        (holders.len() == 1).then(|| holders[0])
    };
    // The server scheduled the router on both gateway hosts (each as its agent came): one
    // SNAT port on each.
    let wanted: std::collections::BTreeSet<String> = [lab.host_id("h3"), lab.host_id("h4")].into_iter().collect();
    let mut bound = std::collections::BTreeSet::new();
    for _ in 0..100 {
        let snat_ports = api
            .get(&format!("/v2.0/ports?device_owner=network:router_centralized_snat&device_id={router_id}"))
            .await
            .unwrap();
        bound = snat_ports["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["binding:host_id"].as_str().unwrap_or_default().to_string())
            .collect();
        if bound == wanted {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(bound, wanted, "one SNAT port on each gateway host");
    let active = {
        let mut found = None;
        wait_long(30, || {
            found = holder(lab);
            found.is_some()
        })
        .await;
        let snat_ports = api
            .get(&format!("/v2.0/ports?device_owner=network:router_centralized_snat&device_id={router_id}"))
            .await
            .unwrap();
        found.unwrap_or_else(|| {
            panic!(
                "a gateway host holds {gateway_ip}\nports: {snat_ports}\n{}\n{}",
                lab.log_tail("agent-h3", 30),
                lab.log_tail("agent-h4", 30)
            )
        })
    };
    let standby = if active == "h3" { "h4" } else { "h3" };
    let out = wait_long(30, || lab.ping("vm23", "203.0.113.1", 1)).await;
    let show = |ns: &str, args: &[&str]| lab.exec(ns, args).unwrap_or_default();
    let ports = api
        .get(&format!("/v2.0/ports?device_owner=network:router_centralized_snat&device_id={router_id}"))
        .await
        .unwrap();
    assert!(
        out,
        "vm23 (h1, no floating IP) reaches the internet through {active}\n{ports}\nh1 host: {}\nh1: {}{}\n{active}: {}{}{}{}\n{}\n{}",
        show("h1", &["ip", "neigh"]),
        show(&router_ns("h1"), &["ip", "route"]),
        show(&router_ns("h1"), &["ip", "neigh"]),
        show(&router_ns(active), &["ip", "-o", "addr"]),
        show(&router_ns(active), &["ip", "route"]),
        show(&router_ns(active), &["ip", "neigh"]),
        show(&router_ns(active), &["nft", "list", "table", "ip", "neutrino_nat"]),
        lab.log_tail("agent-h1", 20),
        lab.log_tail(&format!("agent-{active}"), 20)
    );
    // h1 SNATed with its own address until a moment ago (distributed SNAT): the first pings
    // may still leave that way while its agent turns to the gateway host.
    let mut seen = String::new();
    for _ in 0..10 {
        seen = seen_by_the_internet(lab, "vm23").await;
        if seen.contains(&format!("{gateway_ip} > 203.0.113.1")) {
            break;
        }
    }
    assert!(seen.contains(&format!("{gateway_ip} > 203.0.113.1")), "seen as the gateway address {gateway_ip}: {seen}");

    // The active gateway host is cut off: the others stop hearing it and the standby takes
    // the gateway address.
    lab.cable(active, false).unwrap();
    let began = std::time::Instant::now();
    let resumed = wait_long(20, || lab.ping("vm23", "203.0.113.1", 1)).await;
    let failover = began.elapsed();
    eprintln!("SNAT failed over from {active} to {standby}: traffic resumed {failover:?} after the cut");
    assert!(resumed, "SNAT resumes through {standby}\n{}", lab.log_tail(&format!("agent-{standby}"), 30));
    let on_standby = lab.exec(&router_ns(standby), &["ip", "route", "show", "table", "local"]);
    assert!(
        on_standby.as_ref().is_ok_and(|a| a.contains(&format!("local {gateway_ip} "))),
        "{standby} holds the gateway address: {on_standby:?}"
    );
    let seen = seen_by_the_internet(lab, "vm23").await;
    assert!(seen.contains(&format!("{gateway_ip} > 203.0.113.1")), "still the gateway address: {seen}");

    // It comes back: it is the first again, takes its address back (announcing it) and SNAT
    // goes through it.
    lab.cable(active, true).unwrap();
    let back = wait_long(20, || {
        let on_standby = lab.exec(&router_ns(standby), &["ip", "route", "show", "table", "local"]).unwrap_or_default();
        !on_standby.contains(&format!("local {gateway_ip} ")) && lab.ping("vm23", "203.0.113.1", 1)
    })
    .await;
    assert!(back, "SNAT is back on {active}\n{}", lab.log_tail(&format!("agent-{active}"), 30));
    // Every compute host has taken it back too (each judges by itself, within a probe or so).
    let ports = api
        .get(&format!("/v2.0/ports?device_owner=network:router_centralized_snat&device_id={router_id}"))
        .await
        .unwrap();
    let active_port = ports["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["binding:host_id"] == lab.host_id(active).as_str())
        .map(|p| p["fixed_ips"][0]["ip_address"].as_str().unwrap_or_default().to_string())
        .unwrap();
    for host in ["h1", "h2"] {
        let routed = wait_long(10, || {
            lab.exec(&router_ns(host), &["ip", "route", "show", "default"])
                .unwrap_or_default()
                .contains(&format!("via {active_port} "))
        })
        .await;
        assert!(routed, "{host} routes to {active}'s SNAT port {active_port} again");
    }
    assert!(lab.ping("vm22", "203.0.113.1", 2), "vm22 (h2) leaves through {active} too");
    ipv6_through_the_gateway_host(lab, api, router_id, tenant_networks, group, active).await;
}

/// IPv6 through an IPv6 external gateway, without NAT: the router's gateway has an IPv6
/// address (from the start), its networks get IPv6 subnets (the SNAT ports an IPv6 address), and a VM on an
/// IPv6-only network reaches the internet host's IPv6 address as itself; the internet host
/// routes the VM's prefix to the gateway's address, held by the active gateway host.
async fn ipv6_through_the_gateway_host(
    lab: &mut Lab,
    api: &ApiClient,
    router_id: &str,
    tenant_networks: &[String],
    group: &str,
    active: &str,
) {
    let subnet = |network: &str, cidr: &str| json!({"subnet": {"network_id": network, "ip_version": 6, "cidr": cidr}});
    let router = api.get(&format!("/v2.0/routers/{router_id}")).await.unwrap();
    let gateway6 = router["router"]["external_gateway_info"]["external_fixed_ips"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|f| f["ip_address"].as_str().filter(|a| a.contains(':')).map(String::from))
        .expect("an IPv6 gateway address");
    let mut interfaces = Vec::new();
    for (network, cidr) in [(&tenant_networks[0], "2001:db8:a::/64"), (&tenant_networks[1], "2001:db8:b::/64")] {
        let s6 = api.post("/v2.0/subnets", subnet(network, cidr)).await.unwrap()["subnet"].clone();
        api.put(&format!("/v2.0/routers/{router_id}/add_router_interface"), json!({"subnet_id": s6["id"]}))
            .await
            .unwrap();
        interfaces.push(s6["id"].as_str().unwrap().to_string());
    }
    let net = api.create_network("e2e-routed-v6-out").await.unwrap();
    let only6 = api.post("/v2.0/subnets", subnet(net["id"].as_str().unwrap(), "2001:db8:f::/64")).await.unwrap()
        ["subnet"]
        .clone();
    api.put(&format!("/v2.0/routers/{router_id}/add_router_interface"), json!({"subnet_id": only6["id"]}))
        .await
        .unwrap();
    interfaces.push(only6["id"].as_str().unwrap().to_string());
    let vm = lab.boot_vm(api, &net, "vm26", "h1").await.expect("an IPv6 VM boots");
    api.put(&format!("/v2.0/ports/{}", vm.port_id), json!({"port": {"security_groups": [group]}})).await.unwrap();
    let v6_gateway = only6["gateway_ip"].as_str().unwrap().to_string();
    lab.exec("vm26", &["ip", "-6", "route", "replace", "default", "via", &v6_gateway]).expect("IPv6 default route");
    // The internet host: an IPv6 address, and the VM's prefix through the router's gateway.
    let internet = lab.netns("vm90");
    for args in [
        vec!["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.eth0.disable_ipv6=0"],
        vec!["ip", "-6", "addr", "add", "2001:db8:e::1/64", "dev", "eth0", "nodad"],
    ] {
        let mut cmd = vec!["netns", "exec", internet.as_str()];
        cmd.extend(args);
        assert!(std::process::Command::new("ip").args(&cmd).status().unwrap().success(), "{cmd:?}");
    }
    let routed = wait_long(10, || {
        std::process::Command::new("ip")
            .args(["-n", &internet, "-6", "route", "replace", "2001:db8:f::/64", "via", &gateway6])
            .status()
            .is_ok_and(|s| s.success())
    })
    .await;
    assert!(routed, "the internet host routes the VM's prefix to {gateway6}");
    let router_ns = |host: &str| format!("{host}-qrouter-{router_id}");
    let out = wait_long(30, || lab.ping("vm26", "2001:db8:e::1", 1)).await;
    assert!(
        out,
        "vm26 (h1) reaches the internet over IPv6 through {active}\nh1: {}\n{active}: {}{}\n{}",
        lab.exec(&router_ns("h1"), &["ip", "-6", "route"]).unwrap_or_default(),
        lab.exec(&router_ns(active), &["ip", "-6", "route"]).unwrap_or_default(),
        lab.exec(&router_ns(active), &["ip", "-6", "route", "show", "table", "local"]).unwrap_or_default(),
        lab.log_tail(&format!("agent-{active}"), 20)
    );
    // As itself: no NAT for IPv6.
    let seen = seen_at_the_internet(lab, "icmp6 and ip6[40] == 128", async || {
        let ok = wait_long(5, || lab.ping("vm26", "2001:db8:e::1", 1)).await;
        let show = |ns: &str, args: &[&str]| lab.exec(ns, args).unwrap_or_default();
        assert!(
            ok,
            "vm26 reaches the internet over IPv6 again\nh1: {}{}\nactive {active}: {}{}{}\nh3 {}\nh4 {}\nvm90: {}{}",
            show(&router_ns("h1"), &["ip", "-6", "route"]),
            show(&router_ns("h1"), &["ip", "-6", "neigh"]),
            show(&router_ns(active), &["ip", "-6", "route"]),
            show(&router_ns(active), &["ip", "-6", "neigh"]),
            show(&router_ns(active), &["ip", "-br", "addr"]),
            show(&router_ns("h3"), &["ip", "-6", "route", "show", "table", "local"]),
            show(&router_ns("h4"), &["ip", "-6", "route", "show", "table", "local"]),
            show("vm90", &["ip", "-6", "neigh"]),
            show("vm90", &["ip", "-6", "route"]),
        );
    })
    .await;
    assert!(seen.contains(&format!("{} > 2001:db8:e::1", vm.ip)), "the internet sees {} itself: {seen}", vm.ip);
    // Cleaned up: the VM and the IPv6 interfaces.
    api.delete(&format!("/v2.0/ports/{}", vm.port_id)).await.unwrap();
    lab.remove_vm("vm26").unwrap();
    for subnet in &interfaces {
        api.put(&format!("/v2.0/routers/{router_id}/remove_router_interface"), json!({"subnet_id": subnet}))
            .await
            .unwrap();
    }
    let unrouted = wait_long(10, || {
        let legs = lab.exec(&router_ns("h1"), &["ip", "-6", "route", "show", "table", "local"]).unwrap_or_default();
        !["2001:db8:a::", "2001:db8:b::", "2001:db8:f::"].iter().any(|p| legs.contains(p))
    })
    .await;
    assert!(unrouted, "h1's router dropped its IPv6 interfaces");
}
