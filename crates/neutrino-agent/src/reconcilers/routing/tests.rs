//! The routing reconciler against the data plane model.

use super::*;
use neutrino_api::agent::{HostNetwork, HostRouter, RouterInterface};
use neutrino_dataplane::memory::MemoryDataPlane;
use neutrino_dataplane::Links;

fn state(addresses: &[&str]) -> HostState {
    let mut s = HostState::default();
    s.networks.insert(
        "net-a".into(),
        HostNetwork {
            network_type: "vxlan".into(),
            physical_network: None,
            segmentation_id: Some(7),
            mtu: 1450,
            ..Default::default()
        },
    );
    let mut r = HostRouter::default();
    r.interfaces.insert(
        "port-aaaaaaaaaaaa".into(),
        RouterInterface {
            network_id: "net-a".into(),
            mac_address: "fa:16:3e:00:00:01".into(),
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
        },
    );
    s.routers.insert("r1".into(), r);
    s
}

#[tokio::test]
async fn routers_converge_and_a_second_pass_changes_nothing() {
    let dp = MemoryDataPlane::new();
    dp.links().ensure_bridge(&bridge_name("net-a"), None).await.unwrap();
    let mut r = RoutingReconciler::new("h1", None, None);
    let s = state(&["192.0.2.1/24"]);
    let first = Reconciler::<MemoryDataPlane>::reconcile(&mut r, &dp, &s, &Scope::Full).await.unwrap();
    assert!(first.changes > 0);
    let observed = dp.routers().observe("r1").await.unwrap().unwrap();
    assert_eq!(observed.ports.len(), 1);
    assert_eq!(observed.ports[0].addresses, vec!["192.0.2.1/24".parse::<ipnet::IpNet>().unwrap()]);
    let before = dp.reads().routers;
    let again = Reconciler::<MemoryDataPlane>::reconcile(&mut r, &dp, &s, &Scope::Changes(vec![])).await.unwrap();
    assert_eq!(again.changes, 0);
    assert_eq!(dp.reads().routers - before, 1, "an unchanged router is not read again (only the namespace list)");
    // A changed router is.
    let moved = state(&["192.0.2.1/24", "192.0.2.9/24"]);
    let changed = Reconciler::<MemoryDataPlane>::reconcile(&mut r, &dp, &moved, &Scope::Changes(vec![])).await.unwrap();
    assert!(changed.changes > 0);
    let addresses = &dp.routers().observe("r1").await.unwrap().unwrap().ports[0].addresses;
    assert_eq!(addresses.len(), 2);
    // The router goes: its namespace goes.
    let gone = HostState::default();
    Reconciler::<MemoryDataPlane>::reconcile(&mut r, &dp, &gone, &Scope::Changes(vec![])).await.unwrap();
    assert!(dp.routers().list().await.unwrap().is_empty());
}

#[tokio::test]
async fn centralized_snat_goes_to_the_first_alive_gateway_host_and_fails_over() {
    use neutrino_api::agent::{LocalPort, RemotePort, RouterGateway};
    let dp = MemoryDataPlane::new();
    for net in ["net-a", "ext"] {
        dp.links().ensure_bridge(&bridge_name(net), None).await.unwrap();
    }
    let mut s = state(&["192.0.2.1/24"]);
    let flat = HostNetwork {
        network_type: "flat".into(),
        physical_network: None,
        segmentation_id: None,
        mtu: 1500,
        ..Default::default()
    };
    s.networks.insert("ext".into(), flat);
    let router = s.routers.get_mut("r1").unwrap();
    router.gateway = Some(RouterGateway {
        port_id: "gwport-aaaaaaa".into(),
        network_id: "ext".into(),
        addresses: vec!["203.0.113.10/24".into()],
        next_hops: vec!["203.0.113.1".into()],
        enable_snat: true,
    });
    // The first gateway host is another; the second is this one.
    router.snat_gateways = vec!["sg-remote-aaaa".into(), "sg-local-bbbbb".into()];
    s.remote_ports.insert(
        "sg-remote-aaaa".into(),
        RemotePort {
            network_id: "net-a".into(),
            mac_address: "fa:16:3e:00:00:0a".into(),
            ip_addresses: vec!["192.0.2.5".into()],
            tunnel_ip: "198.51.100.12".into(),
            ..Default::default()
        },
    );
    s.local_ports.insert(
        "sg-local-bbbbb".into(),
        LocalPort {
            network_id: "net-a".into(),
            mac_address: "fa:16:3e:00:00:0b".into(),
            ip_addresses: vec!["192.0.2.6".into()],
            port_security_enabled: false,
            ..LocalPort::default()
        },
    );
    let liveness = GatewayLiveness::new(std::time::Duration::from_secs(1), 3, Arc::new(tokio::sync::Notify::new()));
    let mut r = RoutingReconciler::new("h2", None, Some(liveness.clone()));
    liveness.set("198.51.100.12".parse().unwrap(), true);
    Reconciler::<MemoryDataPlane>::reconcile(&mut r, &dp, &s, &Scope::Full).await.unwrap();
    let observed = dp.routers().observe("r1").await.unwrap().unwrap();
    let default = |via: &str| RouterRoute { destination: default_v4(), via: via.parse().unwrap() };
    assert_eq!(observed.routes, vec![default("192.0.2.5")], "through the first gateway host");
    let names: Vec<&str> = observed.ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["qr-port-aaaaaa", "sg-sg-local-bb"], "its own SNAT leg, no external leg");
    assert!(!Reconciler::<MemoryDataPlane>::pending(&r));
    // The first one dies: this host takes the gateway's address and announces it.
    liveness.set("198.51.100.12".parse().unwrap(), false);
    assert!(Reconciler::<MemoryDataPlane>::pending(&r));
    Reconciler::<MemoryDataPlane>::reconcile(&mut r, &dp, &s, &Scope::Changes(vec![])).await.unwrap();
    let observed = dp.routers().observe("r1").await.unwrap().unwrap();
    assert_eq!(observed.routes, vec![default("203.0.113.1")]);
    let external = observed.port("qg-gwport-aaaa").expect("the external leg");
    assert_eq!(external.addresses, vec!["203.0.113.10/24".parse::<ipnet::IpNet>().unwrap()]);
    assert!(dp.announcements("r1").contains(&("qg-gwport-aaaa".into(), "203.0.113.10".parse().unwrap())));
    // It comes back: the traffic goes to it again, and this host lets the address go.
    liveness.set("198.51.100.12".parse().unwrap(), true);
    Reconciler::<MemoryDataPlane>::reconcile(&mut r, &dp, &s, &Scope::Changes(vec![])).await.unwrap();
    let observed = dp.routers().observe("r1").await.unwrap().unwrap();
    assert_eq!(observed.routes, vec![default("192.0.2.5")]);
    assert!(observed.port("qg-gwport-aaaa").is_none());
    // A restarted agent has judged no gateway host yet: it leaves the router as it is.
    let fresh = GatewayLiveness::new(std::time::Duration::from_secs(1), 3, Arc::new(tokio::sync::Notify::new()));
    let mut restarted = RoutingReconciler::new("h2", None, Some(fresh.clone()));
    let before = dp.mutations();
    let pass = Reconciler::<MemoryDataPlane>::reconcile(&mut restarted, &dp, &s, &Scope::Full).await.unwrap();
    assert_eq!(dp.mutations(), before, "nothing touched");
    assert!(pass.problems.contains_key("router r1 snat"), "{pass:?}");
    // Judged (the first gateway host is dead, say): now it acts.
    fresh.set("198.51.100.12".parse().unwrap(), false);
    Reconciler::<MemoryDataPlane>::reconcile(&mut restarted, &dp, &s, &Scope::Changes(vec![])).await.unwrap();
    assert_eq!(dp.routers().observe("r1").await.unwrap().unwrap().routes, vec![default("203.0.113.1")]);
}

#[test]
fn host_macs_differ_per_host_and_keep_the_dvr_prefix() {
    let a = host_mac("h1", "p");
    assert_eq!(&a.0[..3], &[0xfa, 0x16, 0x3f]);
    assert_ne!(a, host_mac("h2", "p"));
    assert_eq!(a, host_mac("h1", "p"));
}
