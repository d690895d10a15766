//! The routers' part of the contract: namespaces, ports, addresses and routes behave the same
//! in the model and in the kernel.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::{
    DataPlane, DataPlaneError, LinkKind, Links, MacAddr, ObservedRouterPort, RouterPortSpec, RouterRoute, Routers,
};

const ROUTER: &str = "r-contract";
const MISSING: &str = "r-missing";
const BRIDGE: &str = "brqrcontract";
const INSIDE: &str = "qr-contracta";
const OUTSIDE: &str = "rq-contracta";

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn port(addresses: &[&str]) -> RouterPortSpec {
    RouterPortSpec {
        name: INSIDE.into(),
        outside: OUTSIDE.into(),
        bridge: BRIDGE.into(),
        mac: MacAddr([0xfa, 0x16, 0x3e, 0, 1, 1]),
        mtu: 1450,
        addresses: addresses.iter().map(|a| net(a)).collect(),
        isolated: false,
    }
}

fn route(destination: &str, via: &str) -> RouterRoute {
    RouterRoute { destination: net(destination), via: ip(via) }
}

/// Every router scenario, in order (they build on each other). `writes` counts the changes
/// made so far where the implementation can tell (the model), so that the scenarios can
/// assert that converged calls change nothing.
pub async fn run<D: DataPlane>(dp: &D, writes: impl Fn() -> Option<usize>) {
    dp.links().ensure_bridge(BRIDGE, Some(1450)).await.unwrap();
    ensuring_a_router_twice_makes_one_namespace(dp, &writes).await;
    writes_into_a_missing_router_fail_and_reads_and_deletes_do_not(dp).await;
    a_port_is_observed_as_given(dp, &writes).await;
    changed_addresses_converge(dp).await;
    gateway_routes_converge(dp, &writes).await;
    marked_routes_converge_beside_the_main_table(dp, &writes).await;
    deleting_a_port_takes_the_pair_and_its_routes(dp).await;
    deleting_the_router_takes_its_ports(dp).await;
    dp.links().delete(BRIDGE).await.unwrap();
}

async fn ensuring_a_router_twice_makes_one_namespace<D: DataPlane>(dp: &D, writes: &impl Fn() -> Option<usize>) {
    assert!(!dp.routers().list().await.unwrap().contains(&ROUTER.to_string()));
    assert_eq!(dp.routers().observe(ROUTER).await.unwrap(), None);
    dp.routers().ensure(ROUTER).await.unwrap();
    let before = writes();
    dp.routers().ensure(ROUTER).await.unwrap();
    assert_eq!(writes(), before, "an existing router is not written to");
    let listed = dp.routers().list().await.unwrap();
    assert_eq!(listed.iter().filter(|id| *id == ROUTER).count(), 1, "{listed:?}");
    let observed = dp.routers().observe(ROUTER).await.unwrap().expect("observed");
    assert_eq!((observed.ports.len(), observed.routes.len()), (0, 0), "a new router has only lo: {observed:?}");
}

async fn writes_into_a_missing_router_fail_and_reads_and_deletes_do_not<D: DataPlane>(dp: &D) {
    let routers = dp.routers();
    let missing = routers.ensure_port(MISSING, &port(&[])).await;
    assert!(
        matches!(&missing, Err(DataPlaneError::NoSuchRouter(n)) if n.ends_with("qrouter-r-missing")),
        "{missing:?}"
    );
    let missing = routers.set_routes(MISSING, &[]).await;
    assert!(matches!(missing, Err(DataPlaneError::NoSuchRouter(_))), "{missing:?}");
    assert_eq!(routers.observe(MISSING).await.unwrap(), None);
    assert_eq!(routers.nft_list(MISSING, "ip", "neutrino_nat").await.unwrap(), None);
    routers.delete_port(MISSING, INSIDE).await.unwrap();
    routers.flush_conntrack(MISSING, ip("192.0.2.1")).await.unwrap();
    routers.delete(MISSING).await.unwrap();
}

async fn a_port_is_observed_as_given<D: DataPlane>(dp: &D, writes: &impl Fn() -> Option<usize>) {
    let spec = port(&["2001:db8:1::1/64", "192.0.2.1/24"]);
    dp.routers().ensure_port(ROUTER, &spec).await.unwrap();
    let observed = dp.routers().observe(ROUTER).await.unwrap().unwrap();
    let expected = ObservedRouterPort {
        name: INSIDE.into(),
        mac: spec.mac,
        mtu: 1450,
        up: true,
        addresses: vec![net("192.0.2.1/24"), net("2001:db8:1::1/64")],
    };
    assert_eq!(observed.ports, vec![expected]);
    let outside = dp.links().get(OUTSIDE).await.unwrap().expect("the outside end is in the host");
    assert_eq!(
        (outside.kind, outside.master.as_deref(), outside.up, outside.mtu),
        (LinkKind::Veth, Some(BRIDGE), true, 1450)
    );

    assert!(!outside.isolated);
    let before = writes();
    dp.routers().ensure_port(ROUTER, &spec).await.unwrap();
    assert_eq!(writes(), before, "a port as asked is not written to");
    // A service leg: its outside end an isolated bridge port, made so once.
    let isolated = RouterPortSpec { isolated: true, ..spec.clone() };
    dp.routers().ensure_port(ROUTER, &isolated).await.unwrap();
    assert!(dp.links().get(OUTSIDE).await.unwrap().unwrap().isolated, "the outside end is isolated");
    let before = writes();
    dp.routers().ensure_port(ROUTER, &isolated).await.unwrap();
    assert_eq!(writes(), before, "an isolated port as asked is not written to");
    dp.routers().ensure_port(ROUTER, &spec).await.unwrap();
    assert!(!dp.links().get(OUTSIDE).await.unwrap().unwrap().isolated, "and not isolated again when not asked");

    let long = RouterPortSpec { outside: "rq-0123456789abc".into(), ..spec.clone() };
    assert!(dp.routers().ensure_port(ROUTER, &long).await.is_err(), "link names have at most 15 characters");
    let elsewhere = RouterPortSpec { bridge: "brqnosuch".into(), ..spec };
    let missing = dp.routers().ensure_port(ROUTER, &elsewhere).await;
    assert!(matches!(&missing, Err(DataPlaneError::NoSuchLink(n)) if n == "brqnosuch"), "{missing:?}");
}

async fn addresses<D: DataPlane>(dp: &D) -> Vec<IpNet> {
    let observed = dp.routers().observe(ROUTER).await.unwrap().unwrap();
    observed.port(INSIDE).unwrap().addresses.clone()
}

async fn routes<D: DataPlane>(dp: &D) -> Vec<RouterRoute> {
    dp.routers().observe(ROUTER).await.unwrap().unwrap().routes
}

async fn changed_addresses_converge<D: DataPlane>(dp: &D) {
    dp.routers().ensure_port(ROUTER, &port(&["192.0.2.2/25", "192.0.2.3/25", "2001:db8:2::1/64"])).await.unwrap();
    assert_eq!(addresses(dp).await, vec![net("192.0.2.2/25"), net("192.0.2.3/25"), net("2001:db8:2::1/64")]);
    // The primary IPv4 address goes, the secondary stays (it is promoted).
    dp.routers().ensure_port(ROUTER, &port(&["192.0.2.3/25"])).await.unwrap();
    assert_eq!(addresses(dp).await, vec![net("192.0.2.3/25")]);
    dp.routers().ensure_port(ROUTER, &port(&["192.0.2.1/24", "2001:db8:1::1/64"])).await.unwrap();
    assert_eq!(addresses(dp).await, vec![net("192.0.2.1/24"), net("2001:db8:1::1/64")]);
}

async fn gateway_routes_converge<D: DataPlane>(dp: &D, writes: &impl Fn() -> Option<usize>) {
    let two = [route("203.0.113.5/24", "192.0.2.254"), route("2001:db8:ff::/48", "2001:db8:1::fe")];
    dp.routers().set_routes(ROUTER, &two).await.unwrap();
    let expected = vec![route("203.0.113.0/24", "192.0.2.254"), route("2001:db8:ff::/48", "2001:db8:1::fe")];
    assert_eq!(routes(dp).await, expected, "destinations are networks; connected routes are not listed");
    let before = writes();
    dp.routers().set_routes(ROUTER, &two).await.unwrap();
    assert_eq!(writes(), before, "converged routes are not written to");

    dp.routers().set_routes(ROUTER, &two[1..]).await.unwrap();
    assert_eq!(routes(dp).await, vec![route("2001:db8:ff::/48", "2001:db8:1::fe")]);

    let moved = [
        route("2001:db8:ff::/48", "2001:db8:1::fd"),
        route("0.0.0.0/0", "192.0.2.254"),
        route("::/0", "2001:db8:1::fe"),
    ];
    dp.routers().set_routes(ROUTER, &moved).await.unwrap();
    let mut expected = moved.to_vec();
    expected.sort();
    assert_eq!(routes(dp).await, expected, "a changed gateway replaces; default routes count");

    let unreachable = dp.routers().set_routes(ROUTER, &[route("198.51.100.0/24", "203.0.113.1")]).await;
    assert!(unreachable.is_err(), "a gateway must be on a connected subnet");
    let mixed = dp.routers().set_routes(ROUTER, &[route("198.51.100.0/24", "2001:db8:1::fe")]).await;
    assert!(mixed.is_err(), "a destination and its gateway have one family");
}

async fn marked_routes_converge_beside_the_main_table<D: DataPlane>(dp: &D, writes: &impl Fn() -> Option<usize>) {
    let main = observe(dp).await.routes;
    // On-link: the gateway need not be on a subnet of the leg's addresses.
    let marked = [route("0.0.0.0/0", "203.0.113.1")];
    dp.routers().set_marked_routes(ROUTER, INSIDE, &marked).await.unwrap();
    assert_eq!(observe(dp).await.marked_routes, marked.to_vec());
    assert_eq!(observe(dp).await.routes, main, "the main table is left alone");
    let before = writes();
    dp.routers().set_marked_routes(ROUTER, INSIDE, &marked).await.unwrap();
    assert_eq!(writes(), before, "converged marked routes are not written to");
    dp.routers().set_marked_routes(ROUTER, INSIDE, &[]).await.unwrap();
    assert!(observe(dp).await.marked_routes.is_empty());
    dp.routers().set_marked_routes(ROUTER, INSIDE, &marked).await.unwrap();
}

async fn observe<D: DataPlane>(dp: &D) -> crate::ObservedRouter {
    dp.routers().observe(ROUTER).await.unwrap().unwrap()
}

async fn deleting_a_port_takes_the_pair_and_its_routes<D: DataPlane>(dp: &D) {
    for _ in 0..2 {
        dp.routers().delete_port(ROUTER, INSIDE).await.unwrap();
    }
    let observed = dp.routers().observe(ROUTER).await.unwrap().unwrap();
    assert!(
        observed.ports.is_empty() && observed.routes.is_empty() && observed.marked_routes.is_empty(),
        "{observed:?}"
    );
    assert_eq!(dp.links().get(OUTSIDE).await.unwrap(), None, "the veth pair went");
}

async fn deleting_the_router_takes_its_ports<D: DataPlane>(dp: &D) {
    dp.routers().ensure_port(ROUTER, &port(&["192.0.2.1/24"])).await.unwrap();
    assert!(dp.links().get(OUTSIDE).await.unwrap().is_some());
    for _ in 0..2 {
        dp.routers().delete(ROUTER).await.unwrap();
    }
    assert!(!dp.routers().list().await.unwrap().contains(&ROUTER.to_string()));
    assert_eq!(dp.routers().observe(ROUTER).await.unwrap(), None);
    assert_eq!(dp.links().get(OUTSIDE).await.unwrap(), None, "the outside end left the host with the router");
}
