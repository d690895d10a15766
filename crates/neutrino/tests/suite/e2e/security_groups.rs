//! Security groups enforced on the hosts, with real packets: the default group, a group of
//! its own, TCP by port, a live TCP session cut and resumed with its rule, a remote group
//! across hosts, spoofing, and a negative control (without the firewall's table the blocked
//! traffic passes, so every check here can fail).

use super::{wait_for, Running};
use neutrino_lab::{ApiClient, BootedVm, Lab};
use serde_json::{json, Value};
use std::time::Duration;

async fn rule(api: &ApiClient, group: &str, body: Value) -> String {
    let mut rule = body;
    rule["security_group_id"] = json!(group);
    let created = api.post("/v2.0/security-group-rules", json!({ "security_group_rule": rule })).await.unwrap();
    created["security_group_rule"]["id"].as_str().unwrap().to_string()
}

/// Whether a TCP connection from `from` to `ip:port` is accepted within a second.
fn connects(lab: &Lab, from: &str, ip: &str, port: u16) -> bool {
    lab.exec(from, &["nc.openbsd", "-z", "-w", "1", ip, &port.to_string()]).is_ok()
}

fn size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Whether the file keeps growing over `window` (a TCP session delivering).
async fn grows(path: &std::path::Path, window: Duration) -> bool {
    let before = size(path);
    tokio::time::sleep(window).await;
    size(path) > before
}

pub async fn check(lab: &mut Lab, api: &ApiClient, net: &Value, vms: &[BootedVm]) {
    let (vm1, vm2) = (&vms[0], &vms[1]);
    let tables = lab.exec("h1", &["nft", "list", "tables"]).unwrap();
    assert!(tables.contains("inet neutrino") && tables.contains("bridge neutrino"), "firewall on h1: {tables}");

    // A group of its own: new groups allow egress only.
    let group = api.post("/v2.0/security-groups", json!({"security_group": {"name": "isolated"}})).await.unwrap();
    let group = group["security_group"]["id"].as_str().unwrap().to_string();
    let vmx = lab.boot_vm(api, net, "vm7", "h2").await.expect("vm7 boots");
    api.put(&format!("/v2.0/ports/{}", vmx.port_id), json!({"port": {"security_groups": [group]}})).await.unwrap();
    let cut_off = wait_for(|| !lab.ping("vm1", &vmx.ip, 1)).await;
    assert!(cut_off, "nothing may reach a port of a group without ingress rules");
    assert!(!lab.ping("vm7", &vm1.ip, 1), "the default group admits only its members");

    // ICMP by type: a rule for type 0 (echo reply) lets no echo request in; one for type 8,
    // code 0 does.
    rule(
        api,
        &group,
        json!({"direction": "ingress", "protocol": "icmp", "port_range_min": 0, "remote_ip_prefix": "0.0.0.0/0"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!lab.ping("vm1", &vmx.ip, 2), "ICMP of another type does not let pings in");
    rule(api, &group, json!({"direction": "ingress", "protocol": "icmp", "port_range_min": 8, "port_range_max": 0, "remote_ip_prefix": "0.0.0.0/0"})).await;
    assert!(wait_for(|| lab.ping("vm1", &vmx.ip, 1)).await, "an ICMP type 8 rule lets pings in");

    // TCP by port: 8005 allowed, 9000 not.
    let tcp = json!({"direction": "ingress", "protocol": "tcp", "port_range_min": 8000, "port_range_max": 8010});
    let tcp_rule = rule(api, &group, tcp.clone()).await;
    let mut running = Running(Vec::new());
    let received = lab.dir().join("sg-session.bytes");
    let receiver = format!("nc.openbsd -l 8005 > {}", received.display());
    running.0.push(lab.spawn("vm7", &["sh", "-c", &receiver]).unwrap());
    running.0.push(lab.spawn("vm7", &["sh", "-c", "nc.openbsd -lk 9000 > /dev/null"]).unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!connects(lab, "vm1", &vmx.ip, 9000), "tcp/9000 has no rule");
    let sender = format!("while true; do echo 0123456789; sleep 0.05; done | nc.openbsd {} 8005", vmx.ip);
    running.0.push(lab.spawn("vm1", &["sh", "-c", &sender]).unwrap());
    assert!(wait_for(|| size(&received) > 0).await, "a TCP session to 8005 delivers");
    assert!(grows(&received, Duration::from_millis(500)).await);

    // UDP by port range, and ICMP by type: a rule for UDP 5000-5010 lets a datagram to 5005
    // in, not one to 6000; echo requests (type 8) pass only while a rule names type 8.
    let got = lab.dir().join("sg-udp.received");
    let udp_listener = |port: u16| format!("nc.openbsd -u -l {port} >> {}", got.display());
    running.0.push(lab.spawn("vm7", &["sh", "-c", &udp_listener(5005)]).unwrap());
    running.0.push(lab.spawn("vm7", &["sh", "-c", &udp_listener(6000)]).unwrap());
    rule(
        api,
        &group,
        json!({"direction": "ingress", "protocol": "udp", "port_range_min": 5000, "port_range_max": 5010}),
    )
    .await;
    let send = |port: u16| {
        let send = format!("echo datagram-{port} | nc.openbsd -u -w 1 {} {port}", vmx.ip);
        lab.exec("vm1", &["sh", "-c", &send]).unwrap();
    };
    // (Sent until the rule is in force; a datagram to the other port goes with each round.)
    let arrived = wait_for(|| {
        send(5005);
        send(6000);
        std::fs::read_to_string(&got).unwrap_or_default().contains("datagram-5005")
    })
    .await;
    let text = std::fs::read_to_string(&got).unwrap_or_default();
    assert!(arrived, "UDP to a port of the range passes: {text:?}");
    assert!(!text.contains("datagram-6000"), "UDP to another port does not: {text:?}");

    // The live session stops when its rule goes, and goes on when the rule is back.
    api.delete(&format!("/v2.0/security-group-rules/{tcp_rule}")).await.unwrap();
    let mut stopped = false;
    for _ in 0..8 {
        if !grows(&received, Duration::from_millis(1500)).await {
            stopped = true;
            break;
        }
    }
    assert!(stopped, "the established session is stopped");
    rule(api, &group, tcp).await;
    let mut resumed = false;
    for _ in 0..10 {
        if grows(&received, Duration::from_secs(1)).await {
            resumed = true;
            break;
        }
    }
    assert!(resumed, "the same session resumes when the rule is back");

    // Both agents restart while the session runs: it goes on, and nothing is rewritten.
    let ruleset_before = lab.exec("h2", &["nft", "list", "table", "inet", "neutrino"]).unwrap();
    for host in ["h1", "h2"] {
        lab.kill_agent(host);
        assert!(grows(&received, Duration::from_millis(400)).await, "the session goes on without the agent");
        lab.start_agent(host).unwrap();
    }
    for _ in 0..4 {
        assert!(grows(&received, Duration::from_millis(500)).await, "the session goes on while agents start");
    }
    let ruleset_after = lab.exec("h2", &["nft", "list", "table", "inet", "neutrino"]).unwrap();
    assert_eq!(ruleset_before, ruleset_after, "a restarted agent leaves the firewall as it was");

    // A remote group across hosts: tcp/9000 from members of the group itself. vm2 (on h1)
    // joins and is let in; it leaves and is cut off.
    rule(api, &group, json!({"direction": "ingress", "protocol": "tcp", "port_range_min": 9000, "port_range_max": 9000, "remote_group_id": group})).await;
    let default_group = api.get(&format!("/v2.0/ports/{}", vm2.port_id)).await.unwrap()["port"]["security_groups"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!connects(lab, "vm2", &vmx.ip, 9000));
    let port_path = format!("/v2.0/ports/{}", vm2.port_id);
    api.put(&port_path, json!({"port": {"security_groups": [default_group, group]}})).await.unwrap();
    assert!(wait_for(|| connects(lab, "vm2", &vmx.ip, 9000)).await, "a new member of the remote group is let in");
    assert!(!connects(lab, "vm1", &vmx.ip, 9000), "a non-member is not");
    api.put(&port_path, json!({"port": {"security_groups": [default_group]}})).await.unwrap();
    assert!(wait_for(|| !connects(lab, "vm2", &vmx.ip, 9000)).await, "a member that left is cut off");

    // Spoofing: another source address from vm2 is dropped at its port.
    lab.exec("vm2", &["ip", "addr", "add", "198.51.100.250/24", "dev", "eth0"]).unwrap();
    assert!(lab.ping("vm2", &vm1.ip, 1), "vm2's own address works");
    let spoofed =
        lab.exec("vm2", &["ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "1", "-I", "198.51.100.250", &vm1.ip]);
    assert!(spoofed.is_err(), "a spoofed source address is dropped");
    lab.exec("vm2", &["ip", "addr", "del", "198.51.100.250/24", "dev", "eth0"]).unwrap();

    // A stateless group: vm7's traffic leaves no conntrack entry on h2 (its group lets
    // ICMP in and everything out, so pings work both ways). Back in a stateful group, the
    // same pings are tracked.
    let stateless = json!({"security_group": {"name": "stateless", "stateful": false}});
    let stateless = api.post("/v2.0/security-groups", stateless).await.unwrap();
    let stateless = stateless["security_group"]["id"].as_str().unwrap().to_string();
    rule(api, &stateless, json!({"direction": "ingress", "protocol": "icmp"})).await;
    let vmx_path = format!("/v2.0/ports/{}", vmx.port_id);
    api.put(&vmx_path, json!({"port": {"security_groups": [stateless]}})).await.unwrap();
    let tracked = |lab: &Lab| {
        let _ = lab.exec("h2", &["conntrack", "-D", "-d", &vmx.ip]);
        assert!(lab.ping("vm1", &vmx.ip, 2), "vm1 pings vm7");
        let entries = lab.exec("h2", &["conntrack", "-L", "-d", &vmx.ip]).unwrap_or_default();
        entries.lines().filter(|l| l.contains(&vmx.ip)).count()
    };
    // (The group before let ICMP in too: wait for the change to be in force.)
    let untracked = wait_for(|| tracked(lab) == 0).await;
    assert!(
        untracked,
        "no conntrack entry for a port of a stateless group\n{}\n{}",
        lab.exec("h2", &["conntrack", "-L"]).unwrap_or_default(),
        lab.exec("h2", &["nft", "list", "table", "inet", "neutrino"]).unwrap_or_default()
    );
    api.put(&vmx_path, json!({"port": {"security_groups": [group]}})).await.unwrap();
    assert!(wait_for(|| tracked(lab) > 0).await, "the same pings are tracked in a stateful group");

    // An address group: tcp/9000 from its CIDRs. vm2's address is added (vm2 is let in, vm1
    // is not), then removed (vm2 is cut off).
    let ag = json!({"address_group": {"name": "partners", "addresses": ["203.0.113.0/28"]}});
    let ag = api.post("/v2.0/address-groups", ag).await.unwrap()["address_group"]["id"].as_str().unwrap().to_string();
    rule(api, &group, json!({"direction": "ingress", "protocol": "tcp", "port_range_min": 9000, "port_range_max": 9000, "remote_address_group_id": ag})).await;
    assert!(!connects(lab, "vm2", &vmx.ip, 9000));
    let ag_path = format!("/v2.0/address-groups/{ag}");
    api.put(&format!("{ag_path}/add_addresses"), json!({"addresses": [vm2.ip]})).await.unwrap();
    assert!(wait_for(|| connects(lab, "vm2", &vmx.ip, 9000)).await, "an address added to the group is let in");
    assert!(!connects(lab, "vm1", &vmx.ip, 9000), "another is not");
    api.put(&format!("{ag_path}/remove_addresses"), json!({"addresses": [vm2.ip]})).await.unwrap();
    assert!(wait_for(|| !connects(lab, "vm2", &vmx.ip, 9000)).await, "an address removed is cut off");

    spoofing(lab, api, &vms[..3]).await;
    ipv6(lab, api, &group).await;

    // Port security off (no groups): everything passes, tcp/9000 too.
    let off = json!({"port": {"port_security_enabled": false, "security_groups": []}});
    api.put(&format!("/v2.0/ports/{}", vmx.port_id), off).await.unwrap();
    assert!(wait_for(|| connects(lab, "vm1", &vmx.ip, 9000)).await, "no filtering without port security");
    let on = json!({"port": {"port_security_enabled": true, "security_groups": [group]}});
    api.put(&format!("/v2.0/ports/{}", vmx.port_id), on).await.unwrap();
    assert!(wait_for(|| !connects(lab, "vm1", &vmx.ip, 9000)).await, "filtered again with port security on");

    // Negative control: without the firewall's tables on h2, tcp/9000 from vm1 passes (the
    // agent is stopped meanwhile, so nothing puts them back); the agent, started again, restores
    // them.
    lab.kill_agent("h2");
    lab.exec("h2", &["nft", "delete", "table", "inet", "neutrino"]).unwrap();
    lab.exec("h2", &["nft", "delete", "table", "bridge", "neutrino"]).unwrap();
    assert!(
        wait_for(|| connects(lab, "vm1", &vmx.ip, 9000)).await,
        "without the tables the blocked traffic passes\n{}",
        lab.exec("h2", &["nft", "list", "ruleset"]).unwrap_or_default()
    );
    lab.start_agent("h2").unwrap();
    let restored = (0..30).any(|_| {
        std::thread::sleep(Duration::from_millis(500));
        !connects(lab, "vm1", &vmx.ip, 9000)
    });
    assert!(restored, "the agent restores the firewall\n{}", lab.log_tail("agent-h2", 20));
    drop(running);
    api.delete(&format!("/v2.0/ports/{}", vmx.port_id)).await.unwrap();
    lab.remove_vm("vm7").unwrap();
}

/// Sends a gratuitous ARP from `eth0` claiming `ip` (AF_PACKET, as a VM could).
const FORGE_ARP: &str = r#"
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
mac = bytes.fromhex(open("/sys/class/net/eth0/address").read().strip().replace(":", ""))
ip = socket.inet_aton(sys.argv[1])
frame = b"\xff" * 6 + mac + b"\x08\x06" + b"\x00\x01\x08\x00\x06\x04\x00\x01" + mac + ip + b"\x00" * 6 + ip
for _ in range(3):
    s.send(frame)
"#;

/// Sends one ICMPv6 message of the given type to all nodes on `eth0`.
const SEND_ICMP6: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
body = bytes([int(sys.argv[1]), 0, 0, 0]) + bytes(20)
for _ in range(3):
    s.sendto(body, ("ff02::1%eth0", 0))
"#;

/// Prints the ICMPv6 types received within 3 seconds.
const RECEIVE_ICMP6: &str = r#"
import socket, time
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.settimeout(0.2)
end = time.time() + 3
seen = set()
while time.time() < end:
    try:
        seen.add(s.recv(2048)[0])
    except socket.timeout:
        pass
print(" ".join(str(t) for t in sorted(seen)))
"#;

/// What vm2 (default group, on h1) may not do: send from another address or MAC, claim
/// another VM's address in ARP, answer DHCP or advertise a router. An allowed address pair
/// (an address and a CIDR) lets its addresses through, and makes them members of the group.
async fn spoofing(lab: &mut Lab, api: &ApiClient, vms: &[BootedVm]) {
    let (vm1, vm2, vm3) = (&vms[0], &vms[1], &vms[2]);
    let ping_from = |lab: &Lab, source: &str| {
        lab.exec("vm2", &["ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "1", "-I", source, &vm1.ip]).is_ok()
    };
    // A source address of its own, but not one of the port's.
    lab.exec("vm2", &["ip", "addr", "add", "198.51.100.200/24", "dev", "eth0"]).unwrap();
    lab.exec("vm2", &["ip", "addr", "add", "198.51.100.210/24", "dev", "eth0"]).unwrap();
    assert!(lab.ping("vm2", &vm1.ip, 1), "vm2's own address works");
    assert!(!ping_from(lab, "198.51.100.200"), "a spoofed source address is dropped");
    // Allowed address pairs: one address and one CIDR.
    let port_path = format!("/v2.0/ports/{}", vm2.port_id);
    let pairs = json!({"port": {"allowed_address_pairs": [{"ip_address": "198.51.100.200"}, {"ip_address": "198.51.100.208/29"}]}});
    api.put(&port_path, pairs).await.unwrap();
    assert!(wait_for(|| ping_from(lab, "198.51.100.200")).await, "an allowed address pair's address gets through");
    let cidr_passes = wait_for(|| ping_from(lab, "198.51.100.210")).await;
    assert!(
        cidr_passes,
        "so does an address of an allowed CIDR\n{}",
        lab.exec("h1", &["nft", "list", "ruleset"]).unwrap_or_default()
    );
    api.put(&port_path, json!({"port": {"allowed_address_pairs": []}})).await.unwrap();
    assert!(wait_for(|| !ping_from(lab, "198.51.100.200")).await, "without the pair it is dropped again");
    for a in ["198.51.100.200/24", "198.51.100.210/24"] {
        lab.exec("vm2", &["ip", "addr", "del", a, "dev", "eth0"]).unwrap();
    }

    // Another MAC.
    lab.exec("vm2", &["ip", "link", "set", "dev", "eth0", "address", "fa:16:3e:99:99:99"]).unwrap();
    assert!(!lab.ping("vm2", &vm1.ip, 1), "a spoofed source MAC is dropped");
    lab.exec("vm2", &["ip", "link", "set", "dev", "eth0", "address", &vm2.mac]).unwrap();
    assert!(wait_for(|| lab.ping("vm2", &vm1.ip, 1)).await);

    // A forged ARP: vm2 claims vm3's address; vm1 keeps vm3's MAC.
    assert!(lab.ping("vm1", &vm3.ip, 1));
    lab.exec("vm2", &["python3", "-c", FORGE_ARP, &vm3.ip]).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let neigh = lab.exec("vm1", &["ip", "neigh", "show", &vm3.ip]).unwrap();
    assert!(neigh.contains(&vm3.mac) && !neigh.contains(&vm2.mac), "a forged ARP is dropped: {neigh}");

    // A rogue DHCP server: UDP from port 67 to port 68 is dropped; from port 5067 it passes.
    let got = lab.dir().join("dhcp.received");
    let listen = format!("nc.openbsd -u -l 68 > {}", got.display());
    let mut running = Running(vec![lab.spawn("vm1", &["sh", "-c", &listen]).unwrap()]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let send = |sport: &str| format!("echo offer-{sport} | nc.openbsd -u -w 1 -p {sport} {} 68", vm1.ip);
    lab.exec("vm2", &["sh", "-c", &send("67")]).unwrap();
    lab.exec("vm2", &["sh", "-c", &send("5067")]).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(running.0.pop().map(|mut c| c.kill()));
    let text = std::fs::read_to_string(&got).unwrap_or_default();
    assert!(text.contains("offer-5067"), "the listener works: {text:?}");
    assert!(!text.contains("offer-67"), "a DHCP reply from a VM is dropped: {text:?}");

    // A rogue router advertisement (IPv6 on for a moment): neighbour solicitations from vm2
    // reach vm1, router advertisements do not.
    for vm in ["vm1", "vm2"] {
        lab.exec(vm, &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.eth0.disable_ipv6=0"])
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    running.0.push({
        let out = lab.dir().join("icmp6.received");
        let script = format!("python3 -c '{}' > {}", RECEIVE_ICMP6.replace('\'', "\""), out.display());
        lab.spawn("vm1", &["sh", "-c", &script]).unwrap()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    lab.exec("vm2", &["python3", "-c", SEND_ICMP6, "135"]).unwrap();
    lab.exec("vm2", &["python3", "-c", SEND_ICMP6, "134"]).unwrap();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let seen = std::fs::read_to_string(lab.dir().join("icmp6.received")).unwrap_or_default();
    for vm in ["vm1", "vm2"] {
        lab.exec(vm, &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.eth0.disable_ipv6=1"])
            .unwrap();
    }
    let types: Vec<&str> = seen.split_whitespace().collect();
    assert!(types.contains(&"135"), "neighbour solicitations pass: {seen:?}");
    assert!(!types.contains(&"134"), "a router advertisement from a VM is dropped: {seen:?}");
    drop(running);
}

/// IPv6 through the same rules: two VMs of an IPv6 network on two hosts ping each other in
/// the default group; in `group` (no IPv6 ingress rule) pings are dropped, until rules for
/// ICMP (read as ICMPv6 in an IPv6 rule) and tcp/9000 over IPv6 let them in.
async fn ipv6(lab: &mut Lab, api: &ApiClient, group: &str) {
    let net = api.create_network("e2e-v6").await.unwrap();
    let net_id = net["network"]["id"].as_str().or(net["id"].as_str()).unwrap().to_string();
    let subnet = json!({"subnet": {"network_id": net_id, "ip_version": 6, "cidr": "2001:db8:6::/64"}});
    api.post("/v2.0/subnets", subnet).await.unwrap();
    let a = lab.boot_vm(api, &net, "vm8", "h1").await.expect("an IPv6 VM boots");
    let b = lab.boot_vm(api, &net, "vm9", "h2").await.expect("an IPv6 VM boots");
    assert!(a.ip.contains(':') && b.ip.contains(':'), "{} {}", a.ip, b.ip);
    assert!(wait_for(|| lab.ping("vm8", &b.ip, 1)).await, "the default group lets its IPv6 members in");
    assert!(lab.ping("vm9", &a.ip, 1));
    api.put(&format!("/v2.0/ports/{}", b.port_id), json!({"port": {"security_groups": [group]}})).await.unwrap();
    assert!(wait_for(|| !lab.ping("vm8", &b.ip, 1)).await, "no IPv6 ingress rule, no pings");
    rule(api, group, json!({"direction": "ingress", "ethertype": "IPv6", "protocol": "icmp"})).await;
    assert!(wait_for(|| lab.ping("vm8", &b.ip, 1)).await, "an IPv6 ICMP rule lets pings in");
    let mut running = Running(vec![lab.spawn("vm9", &["sh", "-c", "nc.openbsd -6 -lk 9000 > /dev/null"]).unwrap()]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let connects6 = |lab: &Lab| lab.exec("vm8", &["nc.openbsd", "-6", "-z", "-w", "1", &b.ip, "9000"]).is_ok();
    assert!(!connects6(lab), "tcp/9000 over IPv6 has no rule yet");
    let tcp6 = json!({"direction": "ingress", "ethertype": "IPv6", "protocol": "tcp", "port_range_min": 9000, "port_range_max": 9000});
    rule(api, group, tcp6).await;
    assert!(wait_for(|| connects6(lab)).await, "a tcp/9000 IPv6 rule lets connections in");
    drop(running.0.pop().map(|mut c| c.kill()));
    for vm in [&a, &b] {
        api.delete(&format!("/v2.0/ports/{}", vm.port_id)).await.unwrap();
        lab.remove_vm(&vm.name).unwrap();
    }
    api.delete(&format!("/v2.0/networks/{net_id}")).await.unwrap();
}
