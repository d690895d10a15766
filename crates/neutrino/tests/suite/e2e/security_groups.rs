//! Security groups enforced on the hosts, with real packets: the default group, a group of
//! its own, TCP by port, a live TCP session cut and resumed with its rule, a remote group
//! across hosts, spoofing, and a negative control (without the firewall's table the blocked
//! traffic passes, so every check here can fail).

use super::wait_for;
use neutrino_lab::{ApiClient, BootedVm, Lab};
use serde_json::{json, Value};
use std::process::Child;
use std::time::Duration;

/// Kills what it holds when dropped (also when an assertion fails).
struct Running(Vec<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

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

    // ICMP allowed from anywhere.
    rule(api, &group, json!({"direction": "ingress", "protocol": "icmp", "remote_ip_prefix": "0.0.0.0/0"})).await;
    assert!(wait_for(|| lab.ping("vm1", &vmx.ip, 1)).await, "an ICMP rule lets pings in");

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

    // The live session stops when its rule goes, and goes on when the rule is back.
    api.delete(&format!("/v2.0/security-group-rules/{tcp_rule}")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!grows(&received, Duration::from_millis(1500)).await, "the established session is stopped");
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

    // Negative control: without the firewall's inet table on h2, tcp/9000 from vm1 passes;
    // the agent's next full pass puts the table back.
    lab.exec("h2", &["nft", "delete", "table", "inet", "neutrino"]).unwrap();
    assert!(connects(lab, "vm1", &vmx.ip, 9000), "without the table the blocked traffic passes");
    let restored = (0..30).any(|_| {
        std::thread::sleep(Duration::from_millis(500));
        !connects(lab, "vm1", &vmx.ip, 9000)
    });
    assert!(restored, "the agent restores the firewall\n{}", lab.log_tail("agent-h2", 20));
    drop(running);
    api.delete(&format!("/v2.0/ports/{}", vmx.port_id)).await.unwrap();
    lab.remove_vm("vm7").unwrap();
}
