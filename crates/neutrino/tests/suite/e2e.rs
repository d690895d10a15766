//! End to end in the namespace lab: two hosts with real agents, VMs on a VXLAN tenant network
//! and on a flat provider network, real packets.
//! Needs root, `ip`, `ping` and `tcpdump`, so it is `#[ignore]`d; `scripts/test` runs it.
//! `NEUTRINO_E2E_PREFIX` (default `nte`, at most 4 characters) names the lab's namespaces, so
//! that two people can run the lab on one machine.

use neutrino_lab::{check_tools, BootedVm, DhcpClient, Lab, LabConfig, PHYSICAL_INTERFACE, PHYSICAL_NETWORK};
use std::time::Duration;

mod dhcp;
mod dhcp_v6;
mod routing;
mod security_groups;

fn lab_available() -> bool {
    let root = std::process::Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false);
    assert!(root, "the lab needs root");
    if let Err(why) = check_tools() {
        panic!("the lab needs ip, ping and tcpdump: {why:?}");
    }
    true
}

/// Kills what it holds when dropped (also when an assertion fails).
struct Running(Vec<std::process::Child>);

impl Drop for Running {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Prefix of the lab's namespaces.
fn lab_prefix() -> String {
    std::env::var("NEUTRINO_E2E_PREFIX").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "nte".into())
}

/// The names of the ports of bridge `bridge` in a lab namespace (`phys0@if7` → `phys0`).
fn bridge_ports(lab: &Lab, ns: &str, bridge: &str) -> Vec<String> {
    let out = lab.exec(ns, &["ip", "-o", "link", "show", "master", bridge]).unwrap_or_default();
    out.lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|name| name.trim().split('@').next().unwrap_or_default().to_string())
        .collect()
}

/// The kernel index of a link in a lab namespace (to prove it was not recreated).
fn ifindex(lab: &Lab, ns: &str, dev: &str) -> Option<String> {
    let out = lab.exec(ns, &["ip", "-o", "link", "show", "dev", dev]).ok()?;
    out.split(':').next().map(|s| s.trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, ip, ping and tcpdump; scripts/test runs it"]
async fn vms_on_two_hosts_talk_over_vxlan_without_flooding() {
    if !lab_available() {
        return;
    }
    let _alone = crate::common::HEAVY.lock().await;
    let dir = std::env::temp_dir().join(format!("neutrino-e2e-{}", std::process::id()));
    let mut lab = Lab::start(LabConfig {
        prefix: lab_prefix(),
        binary: env!("CARGO_BIN_EXE_neutrino").into(),
        hosts: vec!["h1".into(), "h2".into()],
        database: None,
        server_port: 9696,
        dir: dir.clone(),
        tls: true,
    })
    .expect("lab starts");
    let api = lab.api();
    // Mutual TLS: the real agents follow their streams presenting the lab's certificates; a
    // client without one is not served.
    let bare = format!("{:?}", lab.api_presenting(None).get("/v2.0/networks").await);
    assert!(bare.contains("CertificateRequired"), "a client without a certificate: {bare}");

    let net = api.create_network("e2e").await.unwrap();
    let net_id = net["id"].as_str().unwrap().to_string();
    let vni = net["provider:segmentation_id"].as_u64().unwrap();
    // The VMs' addresses come from the lower half: the security group checks use addresses
    // of the upper one as spoofed sources and allowed address pairs (a random allocation
    // must never hand one of them to a VM).
    let pools = serde_json::json!({"subnet": {"network_id": net_id, "ip_version": 4, "cidr": "198.51.100.0/24",
                                  "allocation_pools": [{"start": "198.51.100.2", "end": "198.51.100.127"}]}});
    api.post("/v2.0/subnets", pools).await.unwrap();
    let mut vms: Vec<BootedVm> = Vec::new();
    for (name, host) in [("vm1", "h1"), ("vm2", "h1"), ("vm3", "h2")] {
        vms.push(lab.boot_vm(&api, &net, name, host).await.expect("VM boots and its port goes ACTIVE"));
    }

    // 1. Every pair pings, while the underlay is watched: nothing floods through the tunnels.
    let capture = lab.capture_underlay("pings").unwrap();
    for from in &vms {
        for to in &vms {
            if from.name != to.name {
                assert!(
                    lab.ping(&from.name, &to.ip, 3),
                    "{} → {} ({}) failed\nagent h1:\n{}\nagent h2:\n{}",
                    from.name,
                    to.name,
                    to.ip,
                    lab.log_tail("agent-h1", 20),
                    lab.log_tail("agent-h2", 20)
                );
            }
        }
    }
    let counts = capture.stop().unwrap();
    eprintln!("underlay during the pings: {counts:?}");
    assert!(counts.vxlan_packets >= 24, "the cross-host pings crossed the underlay: {counts:?}");
    assert_eq!(counts.inner_arp, 0, "no ARP inside VXLAN: {counts:?}");
    assert_eq!(counts.inner_broadcast, 0, "no broadcast inside VXLAN: {counts:?}");
    assert_eq!(counts.inner_multicast, 0, "no multicast inside VXLAN: {counts:?}");

    // 1b. Security groups, enforced on the hosts (its own module).
    security_groups::check(&mut lab, &api, &net, &vms).await;

    // 1c. DHCP answered on each VM's own host, by real clients (its own module).
    dhcp::check(&mut lab, &api, &net).await;

    // 1d. Router advertisements, DHCPv6, and DNS and metadata over IPv6 (its own module).
    dhcp_v6::check(&mut lab, &api).await;

    // 2. A flat provider network on physnet1 beside the VXLAN network: each host's phys0 becomes
    //    a port of the network's bridge, and its VMs talk across hosts over the provider
    //    network (br-phys), not through the tunnels.
    let flat = api.create_provider_network("e2e-flat", "flat", PHYSICAL_NETWORK, None).await.unwrap();
    let flat_id = flat["id"].as_str().unwrap().to_string();
    assert_eq!((flat["provider:network_type"].as_str(), flat["mtu"].as_u64()), (Some("flat"), Some(1500)));
    api.create_subnet(&flat_id, "203.0.113.0/24").await.unwrap();
    let mut flat_vms: Vec<BootedVm> = Vec::new();
    for (name, host) in [("vm5", "h1"), ("vm6", "h2")] {
        flat_vms.push(lab.boot_vm(&api, &flat, name, host).await.expect("a VM on the flat network boots"));
    }
    let flat_bridge = format!("brq{}", &flat_id[..11]);
    // What the agents found out about VLAN at start (on a kernel without 802.1Q they report
    // vlan as unsupported).
    let agent_log = std::fs::read_to_string(lab.dir().join("agent-h1.log")).unwrap_or_default();
    for line in agent_log.lines().filter(|l| l.contains("vlan")) {
        eprintln!("agent h1: {line}");
    }
    for host in ["h1", "h2"] {
        let ports = bridge_ports(&lab, host, &flat_bridge);
        assert!(ports.iter().any(|p| p == PHYSICAL_INTERFACE), "{host}: {flat_bridge} has {ports:?}");
        assert!(!ports.iter().any(|p| p.starts_with("vxlan-")), "{host}: no tunnel on a flat network: {ports:?}");
    }
    let tunnels = lab.capture_underlay("flat-pings-tunnels").unwrap();
    let provider = lab.capture_provider("flat-pings-provider", &["icmp"]).unwrap();
    for (from, to) in [(&flat_vms[0], &flat_vms[1]), (&flat_vms[1], &flat_vms[0])] {
        assert!(
            lab.ping(&from.name, &to.ip, 3),
            "flat {} → {} ({}) failed\nagent h1:\n{}\nagent h2:\n{}",
            from.name,
            to.name,
            to.ip,
            lab.log_tail("agent-h1", 20),
            lab.log_tail("agent-h2", 20)
        );
    }
    let provider_icmp = provider.stop_counting_frames().unwrap();
    let tunnel_counts = tunnels.stop().unwrap();
    eprintln!("flat pings: {provider_icmp} ICMP frames on br-phys; tunnels meanwhile: {tunnel_counts:?}");
    assert!(provider_icmp >= 12, "6 echoes and 6 replies crossed the provider network: {provider_icmp}");
    assert_eq!(tunnel_counts.vxlan_packets, 0, "flat traffic does not go through VXLAN: {tunnel_counts:?}");

    // Both networks carry traffic at the same time.
    let vxlan_ping = lab.start_ping("vm1", &vms[2].ip, 100, 20).unwrap();
    let flat_ping = lab.start_ping("vm5", &flat_vms[1].ip, 100, 20).unwrap();
    let (flat_sent, flat_received) = flat_ping.finish().unwrap();
    let (vxlan_sent, vxlan_received) = vxlan_ping.finish().unwrap();
    eprintln!("concurrent pings: flat {flat_received}/{flat_sent}, vxlan {vxlan_received}/{vxlan_sent}");
    assert_eq!((flat_sent, flat_received), (100, 100), "flat VMs talk while the VXLAN VMs do");
    assert_eq!((vxlan_sent, vxlan_received), (100, 100), "VXLAN VMs talk while the flat VMs do");

    // 2b. DHCP on the flat network: each host answers its own VM with the DHCP port's MAC and
    //     address, which every host's leg has; the legs are isolated bridge ports, as the
    //     uplinks are, so none sends a frame onto the provider network.
    let dhcp_ports = api.get(&format!("/v2.0/ports?network_id={flat_id}&device_owner=network:dhcp")).await.unwrap();
    let dhcp_mac =
        dhcp_ports["ports"][0]["mac_address"].as_str().expect("the flat network has a DHCP port").to_string();
    let legs = lab.capture_provider("flat-dhcp-legs", &["ether", "src", &dhcp_mac]).unwrap();
    for vm in &flat_vms {
        let lease = lab.dhcp(&vm.name, DhcpClient::Udhcpc).unwrap_or_else(|e| {
            panic!("{} gets a lease on the flat network: {e}\n{}", vm.name, lab.log_tail("agent-h1", 20))
        });
        assert_eq!(lease.get("ip"), vm.ip, "{:?}", lease.vars);
    }
    let leaked = legs.stop_counting_frames().unwrap();
    assert_eq!(leaked, 0, "no frame from a DHCP leg ({dhcp_mac}) on the provider network");
    assert!(lab.ping("vm5", &flat_vms[1].ip, 2), "the flat VMs talk with their DHCP addresses");

    // 3. Restarting both agents during a continuous cross-host ping loses nothing, and the
    //    devices are not recreated.
    let vxlan = format!("vxlan-{vni}");
    let before = (ifindex(&lab, "h1", &vxlan), ifindex(&lab, "h2", &vxlan));
    let ping = lab.start_ping("vm1", &vms[2].ip, 250, 20).unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    for host in ["h1", "h2"] {
        lab.kill_agent(host);
        tokio::time::sleep(Duration::from_millis(300)).await;
        lab.start_agent(host).unwrap();
    }
    let (sent, received) = ping.finish().unwrap();
    eprintln!("continuous ping across agent restarts: {sent} sent, {received} received");
    assert_eq!(sent, 250);
    assert_eq!(received, sent, "no packet lost while agents restarted");
    let after = (ifindex(&lab, "h1", &vxlan), ifindex(&lab, "h2", &vxlan));
    assert!(before.0.is_some() && before.1.is_some());
    assert_eq!(before, after, "VXLAN devices kept across restarts");
    assert!(lab.ping("vm3", &vms[0].ip, 2), "restarted agents still serve the network");
    assert!(lab.ping("vm6", &flat_vms[0].ip, 2), "restarted agents still serve the flat network");
    assert!(bridge_ports(&lab, "h1", &flat_bridge).iter().any(|p| p == PHYSICAL_INTERFACE));

    // 4. The server restarts: the agents reconnect to its stream (a fresh snapshot) by
    //    themselves, and a VM booted afterwards is wired and reachable across hosts.
    lab.restart_server().expect("server restarts on its database");
    let vm4 = lab.boot_vm(&api, &net, "vm4", "h2").await.expect("a VM boots after the server restart");
    assert!(lab.ping("vm1", &vm4.ip, 2), "vm1 reaches vm4 after the server restart");
    vms.push(vm4);

    // 5. Deleting vm3's port removes its entries everywhere: it becomes unreachable while the
    //    others still talk. Deleting vm4's port too leaves h2 without a port on the network,
    //    so h2 tears the network down.
    api.delete(&format!("/v2.0/ports/{}", vms[2].port_id)).await.unwrap();
    let forgotten = wait_for(|| {
        let fdb = lab.exec("h1", &["bridge", "fdb", "show", "dev", &vxlan]).unwrap_or_default();
        // Only the static entries with a VTEP are L2 population's (the bridge may still
        // remember the MAC it learned on the port until it ages out).
        !fdb.lines().any(|l| l.contains(&vms[2].mac) && l.contains(" dst "))
    })
    .await;
    assert!(forgotten, "h1 forgot vm3\n{}", lab.log_tail("agent-h1", 20));
    assert!(!lab.ping("vm1", &vms[2].ip, 2), "vm3 is unreachable after its port is deleted");
    assert!(lab.ping("vm1", &vms[1].ip, 2), "the others still talk");
    assert!(lab.ping("vm1", &vms[3].ip, 2), "the others still talk across hosts");

    api.delete(&format!("/v2.0/ports/{}", vms[3].port_id)).await.unwrap();
    let bridge = format!("brq{}", &net_id[..11]);
    let torn_down = wait_for(|| ifindex(&lab, "h2", &bridge).is_none() && ifindex(&lab, "h2", &vxlan).is_none()).await;
    assert!(torn_down, "h2 removed {bridge} and {vxlan}\n{}", lab.log_tail("agent-h2", 20));
    assert!(ifindex(&lab, "h1", &bridge).is_some(), "h1 still has local ports on the network");

    // 6. Deleting vm6's port leaves h2 without a port on the flat network: h2 deletes its
    //    bridge, which releases phys0; the physical interface itself stays.
    let phys_index = ifindex(&lab, "h2", PHYSICAL_INTERFACE);
    api.delete(&format!("/v2.0/ports/{}", flat_vms[1].port_id)).await.unwrap();
    let flat_torn_down = wait_for(|| ifindex(&lab, "h2", &flat_bridge).is_none()).await;
    assert!(flat_torn_down, "h2 removed {flat_bridge}\n{}", lab.log_tail("agent-h2", 20));
    assert!(phys_index.is_some());
    assert_eq!(ifindex(&lab, "h2", PHYSICAL_INTERFACE), phys_index, "phys0 is never deleted");
    let phys = lab.exec("h2", &["ip", "-o", "link", "show", "dev", PHYSICAL_INTERFACE]).unwrap();
    assert!(!phys.contains(" master "), "phys0 was released: {phys}");
    assert!(bridge_ports(&lab, "h1", &flat_bridge).iter().any(|p| p == PHYSICAL_INTERFACE), "h1 keeps its uplink");

    // 7. Distributed routing between two networks (its own module).
    routing::check(&mut lab, &api, &flat).await;

    drop(lab);
    let _ = std::fs::remove_dir_all(dir);
}

/// Poll `check` for up to 5 s.
async fn wait_for(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..50 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
