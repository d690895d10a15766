//! The DHCP reconciler against the data plane model (no sockets there: `service` is none).

use super::*;
use neutrino_api::agent::{DhcpServer, HostSubnet};
use neutrino_dataplane::memory::MemoryDataPlane;
use neutrino_dataplane::Links;

fn state(dhcp_ip: Option<&str>, ports: &[(&str, &str, &str)]) -> HostState {
    let mut s = HostState::default();
    let subnet = HostSubnet {
        cidr: "192.0.2.0/24".into(),
        gateway_ip: Some("192.0.2.1".into()),
        enable_dhcp: true,
        ..Default::default()
    };
    s.networks.insert(
        "net-a".into(),
        HostNetwork {
            network_type: "vxlan".into(),
            segmentation_id: Some(7),
            mtu: 1450,
            subnets: [("s1".to_string(), subnet)].into(),
            dhcp: dhcp_ip.map(|ip| DhcpServer {
                port_id: "dhcpport-aaaa".into(),
                mac_address: "fa:16:3e:00:00:02".into(),
                ip_addresses: vec![ip.into()],
            }),
            ..Default::default()
        },
    );
    for (id, mac, ip) in ports {
        let port = LocalPort {
            network_id: "net-a".into(),
            mac_address: mac.to_string(),
            ip_addresses: vec![ip.to_string()],
            ..LocalPort::default()
        };
        s.local_ports.insert(id.to_string(), port);
    }
    s
}

async fn pass(r: &mut DhcpReconciler, dp: &MemoryDataPlane, s: &HostState, scope: Scope) -> PassOutcome {
    Reconciler::<MemoryDataPlane>::reconcile(r, dp, s, &scope).await.unwrap()
}

#[tokio::test]
async fn a_network_gets_its_dhcp_leg_and_neighbours_and_a_quiet_pass_changes_nothing() {
    let dp = MemoryDataPlane::new();
    dp.links().ensure_bridge(&bridge_name("net-a"), None).await.unwrap();
    let mut r = DhcpReconciler::new(DhcpSettings::default(), None);
    let s = state(Some("192.0.2.2"), &[("p1", "fa:16:3e:00:00:05", "192.0.2.5")]);
    let first = pass(&mut r, &dp, &s, Scope::Full).await;
    assert!(first.changes > 0);
    assert_eq!(first.ready.get("p1"), Some(&true));
    let ns = dp.dhcp().observe("net-a").await.unwrap().unwrap();
    assert_eq!(ns.ports.len(), 1);
    let leg = &ns.ports[0];
    assert_eq!((leg.name.as_str(), leg.mtu), ("ns-dhcpport-aa", 1450));
    assert_eq!(leg.mac.to_string(), "fa:16:3e:00:00:02");
    let addresses: Vec<String> = leg.addresses.iter().map(|a| a.to_string()).collect();
    assert_eq!(addresses, ["169.254.169.254/32", "192.0.2.2/24"]);
    let neighbours = dp.dhcp_neighbours("net-a", "ns-dhcpport-aa");
    assert_eq!(neighbours.len(), 1);
    assert_eq!(neighbours[&"192.0.2.5".parse::<IpAddr>().unwrap()].to_string(), "fa:16:3e:00:00:05");
    let mutations = dp.mutations();
    let again = pass(&mut r, &dp, &s, Scope::Changes(vec![])).await;
    assert_eq!((again.changes, dp.mutations()), (0, mutations));
    assert_eq!(again.ready.get("p1"), Some(&true));
    // A second port: its neighbour entry.
    let two =
        state(Some("192.0.2.2"), &[("p1", "fa:16:3e:00:00:05", "192.0.2.5"), ("p2", "fa:16:3e:00:00:06", "192.0.2.6")]);
    pass(&mut r, &dp, &two, Scope::Changes(vec![])).await;
    assert_eq!(dp.dhcp_neighbours("net-a", "ns-dhcpport-aa").len(), 2);
    // Full passes converge to the same.
    let mutations = dp.mutations();
    pass(&mut r, &dp, &two, Scope::Full).await;
    assert_eq!(dp.mutations(), mutations);
    // The DHCP port goes (no DHCP subnet left): so does the namespace; a port without DHCP is
    // not this feature's.
    let gone =
        pass(&mut r, &dp, &state(None, &[("p1", "fa:16:3e:00:00:05", "192.0.2.5")]), Scope::Changes(vec![])).await;
    assert!(gone.ready.is_empty());
    assert!(dp.dhcp().list().await.unwrap().is_empty());
    // Routers' namespaces are another handle's.
    assert!(dp.routers().list().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_network_whose_bridge_is_missing_waits_and_its_ports_are_not_ready() {
    let dp = MemoryDataPlane::new();
    let mut r = DhcpReconciler::new(DhcpSettings::default(), None);
    let s = state(Some("192.0.2.2"), &[("p1", "fa:16:3e:00:00:05", "192.0.2.5")]);
    let outcome = pass(&mut r, &dp, &s, Scope::Full).await;
    assert_eq!(outcome.ready.get("p1"), Some(&false));
    assert!(outcome.problems.keys().any(|k| k == "dhcp net-a"), "{:?}", outcome.problems);
    dp.links().ensure_bridge(&bridge_name("net-a"), None).await.unwrap();
    let outcome = pass(&mut r, &dp, &s, Scope::Changes(vec![])).await;
    assert_eq!(outcome.ready.get("p1"), Some(&true));
}
