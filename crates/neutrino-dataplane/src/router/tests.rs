//! The kernel's routers, as root: each test runs in a private network namespace (the host),
//! and every named namespace it makes (routers, "VMs") starts with a prefix unique to the test
//! process, so nothing clashes with real namespaces, and is deleted even when the test fails.

use std::future::Future;
use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::kernel::tests::in_new_netns;
use crate::kernel::KernelDataPlane;
use crate::{DataPlane, LinkEvent, Links, MacAddr};

/// The prefix of every namespace the test `test` makes.
fn prefix(test: &str) -> String {
    format!("ntdp{}-{test}-", std::process::id())
}

/// Deletes, when dropped (also while a failed test unwinds), the named namespaces whose name
/// starts with its prefix, and only those.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(NETNS_DIR) else { return };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&self.0) {
                if let Err(e) = netns::remove(&entry.path()) {
                    eprintln!("cannot delete namespace {}: {e}", entry.path().display());
                }
            }
        }
    }
}

/// Runs `scenario` in a private network namespace with a data plane whose namespaces start
/// with the test's prefix, and cleans up after it.
fn with_routers<F, Fut>(test: &str, scenario: F)
where
    F: FnOnce(KernelDataPlane, String) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let prefix = prefix(test);
    let _cleanup = Cleanup(prefix.clone());
    in_new_netns(move || async move {
        let dp = KernelDataPlane::with_namespace_prefix(&prefix).await.unwrap();
        scenario(dp, prefix).await;
    });
}

/// Runs a command (in the calling thread's network namespace).
fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program} runs: {e}"))
}

/// Runs a command that must succeed.
fn must(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn port(name: &str, bridge: &str, last: u8, addresses: &[&str]) -> RouterPortSpec {
    RouterPortSpec {
        name: format!("qr-{name}"),
        outside: format!("rq-{name}"),
        bridge: bridge.into(),
        mac: MacAddr([0xfa, 0x16, 0x3e, 0, 2, last]),
        mtu: 1500,
        addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        isolated: false,
    }
}

#[test]
#[ignore = "needs root (CI runs it)"]
fn the_kernel_keeps_the_routers_contract() {
    with_routers("contract", |dp, _| async move {
        crate::contract::routers::run(&dp, || None).await;
    });
}

/// The sysctls of the router `router_id`, read from inside its namespace.
async fn router_sysctls(dp: &KernelDataPlane, router_id: &str) -> Vec<String> {
    let router = dp.routers().get(router_id).await.unwrap().unwrap();
    netns::on_thread(Some(router.netns.clone()), || {
        Ok(ROUTER_SYSCTLS
            .iter()
            .map(|(key, _)| std::fs::read_to_string(format!("/proc/sys/net/{key}")).unwrap().trim().to_string())
            .collect())
    })
    .await
    .unwrap()
}

/// Reads link events until the bridge `marker` appears, and returns the names seen before.
async fn events_until(events: &mut tokio::sync::mpsc::Receiver<LinkEvent>, marker: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.expect("an event").unwrap();
        match event {
            LinkEvent::Added(name) if name == marker => return seen,
            LinkEvent::Added(name) | LinkEvent::Removed(name) => seen.push(name),
        }
    }
}

#[test]
#[ignore = "needs root (CI runs it)"]
fn a_router_namespace_is_prepared_and_a_converged_port_is_left_alone() {
    with_routers("prepared", |dp, prefix| async move {
        let routers = dp.routers();
        // Another agent's namespace (another prefix) is not ours; a file left without a
        // namespace is listed (so it can be deleted) and repaired by ensure.
        netns::create(&PathBuf::from(NETNS_DIR).join(format!("{prefix}other-qrouter-r9"))).await.unwrap();
        std::fs::write(PathBuf::from(NETNS_DIR).join(format!("{prefix}qrouter-stale")), b"").unwrap();
        assert_eq!(routers.list().await.unwrap(), vec!["stale".to_string()]);
        assert_eq!(routers.observe("stale").await.unwrap(), None);
        routers.ensure("stale").await.unwrap();
        assert!(routers.observe("stale").await.unwrap().is_some());
        routers.delete("stale").await.unwrap();

        routers.ensure("r1").await.unwrap();
        let want: Vec<String> = ROUTER_SYSCTLS.iter().map(|(_, v)| v.to_string()).collect();
        assert_eq!(router_sysctls(&dp, "r1").await, want);
        let name = format!("{prefix}qrouter-r1");
        assert!(must("ip", &["-n", &name, "link", "show", "lo"]).contains(",UP"), "lo is up");

        dp.links().ensure_bridge("brqprep", None).await.unwrap();
        let spec = port("prep", "brqprep", 1, &["192.0.2.1/24", "2001:db8:1::1/64"]);
        routers.ensure_port("r1", &spec).await.unwrap();
        let router = dp.routers().get("r1").await.unwrap().unwrap();
        let index = router.netlink.require_link(&spec.name).await.unwrap().index;
        assert_eq!(must("ip", &["-n", &name, "-6", "addr", "show", "dev", &spec.name]).matches("tentative").count(), 0);
        let key = format!("ipv6/conf/{}/disable_ipv6", spec.outside);
        assert_eq!(
            std::fs::read_to_string(format!("/proc/sys/net/{key}")).unwrap().trim(),
            "1",
            "no IPv6 on the bridge port"
        );

        // Ensuring it again sends nothing: no notification about either end before a marker.
        let mut events = dp.links().events().await.unwrap();
        routers.ensure_port("r1", &spec).await.unwrap();
        routers.ensure("r1").await.unwrap();
        dp.links().ensure_bridge("brqmark", None).await.unwrap();
        let seen = events_until(&mut events, "brqmark").await;
        assert!(!seen.contains(&spec.outside), "the converged port was written to: {seen:?}");

        // A new MAC is set on the live port, which is kept.
        let moved = RouterPortSpec { mac: MacAddr([0xfa, 0x16, 0x3e, 0, 2, 0x99]), ..spec.clone() };
        routers.ensure_port("r1", &moved).await.unwrap();
        assert_eq!(routers.observe("r1").await.unwrap().unwrap().port(&spec.name).unwrap().mac, moved.mac);
        assert_eq!(router.netlink.require_link(&spec.name).await.unwrap().index, index);

        // A namespace replaced behind our back is noticed (not the old one, kept open by us).
        drop(router);
        must("ip", &["netns", "del", &name]);
        must("ip", &["netns", "add", &name]);
        assert_eq!(routers.observe("r1").await.unwrap().unwrap().ports, vec![]);
        routers.ensure_port("r1", &spec).await.unwrap();
        assert_eq!(routers.observe("r1").await.unwrap().unwrap().ports.len(), 1);
        routers.delete("r1").await.unwrap();
        assert_eq!(dp.links().get(&spec.outside).await.unwrap(), None);
    });
}

/// A "VM": a namespace whose veth peer `tap` is a port of `bridge`, with addresses and default
/// routes through the router.
fn add_vm(namespace: &str, tap: &str, bridge: &str, v4: (&str, &str), v6: (&str, &str)) {
    must("ip", &["netns", "add", namespace]);
    must("ip", &["link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns", namespace]);
    must("ip", &["link", "set", tap, "master", bridge, "up"]);
    let inside = |args: &[&str]| must("ip", &[&["-n", namespace], args].concat());
    inside(&["link", "set", "lo", "up"]);
    inside(&["addr", "add", v4.0, "dev", "eth0"]);
    inside(&["addr", "add", v6.0, "dev", "eth0", "nodad"]);
    inside(&["link", "set", "eth0", "up"]);
    inside(&["route", "add", "default", "via", v4.1]);
    inside(&["-6", "route", "add", "default", "via", v6.1]);
}

/// Whether `namespace` gets an answer to a ping of `ip` (a few tries: the first packets may
/// wait for neighbour resolution).
fn pings(namespace: &str, ip: &str) -> bool {
    (0..5).any(|_| run("ip", &["netns", "exec", namespace, "ping", "-c1", "-W1", ip]).status.success())
}

#[test]
#[ignore = "needs root (CI runs it)"]
fn a_router_routes_between_its_networks() {
    with_routers("ping", |dp, prefix| async move {
        let routers = dp.routers();
        dp.links().ensure_bridge("brqpinga", None).await.unwrap();
        dp.links().ensure_bridge("brqpingb", None).await.unwrap();
        routers.ensure("r1").await.unwrap();
        let a = port("pinga", "brqpinga", 1, &["192.0.2.1/24", "2001:db8:a::1/64"]);
        routers.ensure_port("r1", &a).await.unwrap();
        routers
            .ensure_port("r1", &port("pingb", "brqpingb", 2, &["198.51.100.1/24", "2001:db8:b::1/64"]))
            .await
            .unwrap();
        let (vm_a, vm_b) = (format!("{prefix}vma"), format!("{prefix}vmb"));
        add_vm(&vm_a, "tapvma", "brqpinga", ("192.0.2.10/24", "192.0.2.1"), ("2001:db8:a::10/64", "2001:db8:a::1"));
        add_vm(
            &vm_b,
            "tapvmb",
            "brqpingb",
            ("198.51.100.10/24", "198.51.100.1"),
            ("2001:db8:b::10/64", "2001:db8:b::1"),
        );

        assert!(pings(&vm_a, "192.0.2.1"), "the gateway answers");
        assert!(pings(&vm_a, "198.51.100.10"), "IPv4 is routed");
        assert!(pings(&vm_b, "2001:db8:a::10"), "IPv6 is routed");

        // The gateway's MAC changes; the announcement updates the VM's neighbour entry.
        let moved = RouterPortSpec { mac: MacAddr([0xfa, 0x16, 0x3e, 0, 2, 0x42]), ..a.clone() };
        routers.ensure_port("r1", &moved).await.unwrap();
        routers.announce("r1", &a.name, Ipv4Addr::new(192, 0, 2, 1)).await.unwrap();
        let updated = (0..20).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            must("ip", &["-n", &vm_a, "neigh", "show", "192.0.2.1"]).contains("fa:16:3e:00:02:42")
        });
        assert!(updated, "{}", must("ip", &["-n", &vm_a, "neigh", "show"]));
        let missing = routers.announce("r1", "qr-nosuch", Ipv4Addr::new(192, 0, 2, 1)).await;
        assert!(matches!(missing, Err(DataPlaneError::NoSuchLink(_))), "{missing:?}");
        assert!(pings(&vm_a, "198.51.100.10"), "still routed with the new MAC");

        nat_table_and_conntrack(routers, &format!("{prefix}qrouter-r1"), &vm_a).await;
    });
}

/// A NAT table applied and listed; the traffic it tracks is flushed by address.
async fn nat_table_and_conntrack(routers: &KernelRouters, name: &str, vm: &str) {
    let batch = json!({"nftables": [
        {"add": {"table": {"family": "ip", "name": "neutrino_nat"}}},
        {"add": {"chain": {"family": "ip", "table": "neutrino_nat", "name": "postrouting",
                  "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}},
    ]});
    assert_eq!(routers.nft_list("r1", "ip", "neutrino_nat").await.unwrap(), None);
    routers.nft("r1", &batch).await.unwrap();
    routers.nft("r1", &batch).await.unwrap();
    let listed = routers.nft_list("r1", "ip", "neutrino_nat").await.unwrap().expect("the table is listed");
    let items = listed["nftables"].as_array().unwrap();
    assert!(items.iter().any(|i| i["table"]["name"] == "neutrino_nat"), "{listed}");
    assert!(items.iter().any(|i| i["chain"]["name"] == "postrouting"), "{listed}");
    let bad = routers
        .nft("r1", &json!({"nftables": [{"add": {"chain": {"family": "ip", "table": "nosuch", "name": "x"}}}]}))
        .await;
    assert!(matches!(bad, Err(DataPlaneError::Nftables(_))), "{bad:?}");
    assert!(must("nft", &["list", "tables"]).lines().all(|l| !l.contains("neutrino_nat")), "not in the host");

    // A NAT rule (for another source) makes the namespace track connections.
    let snat = json!({"nftables": [{"add": {"rule": {"family": "ip", "table": "neutrino_nat", "chain": "postrouting",
        "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "203.0.113.99"}},
                 {"snat": {"addr": "198.51.100.1"}}]}}}]});
    routers.nft("r1", &snat).await.unwrap();
    let tracked = |ip: &str| {
        let out = run("ip", &["netns", "exec", name, "conntrack", "-L", "-s", ip]);
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let installed = run("sh", &["-c", "command -v conntrack"]).status.success();
    if !installed {
        let flushed = routers.flush_conntrack("r1", "192.0.2.10".parse().unwrap()).await;
        eprintln!("conntrack is not installed");
        assert!(matches!(flushed, Err(DataPlaneError::Unsupported(_))), "{flushed:?}");
        return;
    }
    // By the original source, then (tracked again) by the reply's source.
    for ip in ["192.0.2.10", "198.51.100.10"] {
        assert!(pings(vm, "198.51.100.10"));
        assert!(tracked("192.0.2.10") > 0, "the ping is tracked");
        routers.flush_conntrack("r1", ip.parse().unwrap()).await.unwrap();
        assert_eq!(tracked("192.0.2.10"), 0, "flushed by {ip}");
    }
    routers.flush_conntrack("r1", "192.0.2.10".parse().unwrap()).await.unwrap();
    routers.flush_conntrack("r1", "2001:db8:a::10".parse().unwrap()).await.unwrap();
}
