use super::*;
use neutrino_api::agent::{HostState, AGENT_TYPE_LINUXBRIDGE, AGENT_TYPE_OVS};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::Arc;

fn port(network: &str, host: &str, segment: Option<&str>, mac: u8, ips: &[&str]) -> Image {
    Image::Port(Arc::new(PortImage {
        network_id: network.into(),
        host: host.into(),
        segment_id: segment.map(String::from),
        mac_address: format!("fa:16:3e:00:00:{mac:02x}"),
        admin_state_up: true,
        status: "DOWN".into(),
        ip_addresses: ips.iter().map(|s| s.to_string()).collect(),
        port_security_enabled: true,
        security_groups: Vec::new(),
        allowed_address_pairs: Vec::new(),
        router: None,
        extra_dhcp_opts: Vec::new(),
        dns_name: format!("vm{mac}"),
        device_id: format!("i{mac}"),
        project_id: "p".into(),
    }))
}

fn group(remotes: &[&str]) -> Image {
    use neutrino_api::agent::{Direction, EtherType, HostSecurityRule};
    let mut rules = vec![HostSecurityRule {
        id: "r-egress".into(),
        direction: Direction::Egress,
        ethertype: EtherType::IPv4,
        protocol: None,
        port_range_min: None,
        port_range_max: None,
        remote_ip_prefix: None,
        remote_group_id: None,
        remote_address_group_id: None,
    }];
    for (i, remote) in remotes.iter().enumerate() {
        rules.push(HostSecurityRule {
            id: format!("r{i}"),
            direction: Direction::Ingress,
            remote_group_id: Some(remote.to_string()),
            ..rules[0].clone()
        });
    }
    Image::SecurityGroup(Arc::new(SecurityGroupImage { stateful: true, rules }))
}

fn in_groups(image: Image, groups: &[&str]) -> Image {
    let Image::Port(p) = image else { unreachable!() };
    let mut p = (*p).clone();
    p.security_groups = groups.iter().map(|g| g.to_string()).collect();
    Image::Port(Arc::new(p))
}

/// A host sees its ports' groups, and the members of the groups their rules name, wherever
/// those members are; a member joining is one entry for the hosts that need it.
#[test]
fn hosts_see_their_groups_and_the_members_of_remote_groups() {
    let mut t = Topology::new(true);
    t.load(&[
        ObjectChange::new("n1", network(1450)),
        ObjectChange::new("s1", segment("n1", 7)),
        ObjectChange::new("web", group(&["web", "lb"])),
        ObjectChange::new("lb", group(&[])),
        ObjectChange::new("db", group(&["web"])),
        ObjectChange::new("p1", in_groups(port("n1", "h1", Some("s1"), 1, &["198.51.100.5"]), &["web"])),
        ObjectChange::new("p2", in_groups(port("n1", "h2", Some("s1"), 2, &["198.51.100.6"]), &["lb"])),
        ObjectChange::new("p3", in_groups(port("n1", "h3", Some("s1"), 3, &["198.51.100.7"]), &["db"])),
    ]);
    let h1 = t.view("h1");
    assert_eq!(h1.security_groups.keys().collect::<Vec<_>>(), ["web"]);
    assert_eq!(h1.group_members.keys().collect::<Vec<_>>(), ["lb/p2", "web/p1"]);
    assert_eq!(h1.group_members["lb/p2"].addresses, ["198.51.100.6"]);
    assert_eq!(h1.local_ports["p1"].security_groups, ["web"]);
    let h2 = t.view("h2");
    assert!(h2.group_members.is_empty(), "lb names no remote group");
    assert_eq!(t.view("h3").group_members.keys().collect::<Vec<_>>(), ["web/p1"]);

    // A new member of `web` (unbound yet): one entry for h1 and h3, nothing for h2.
    let p4 = in_groups(port("n1", "", None, 4, &["198.51.100.8"]), &["web"]);
    let deltas = t.apply(&[ObjectChange::new("p4", p4)], &all);
    assert_eq!(deltas.keys().collect::<Vec<_>>(), ["h1", "h3"]);
    assert_eq!(deltas["h1"].keys(), [("group_members", "web/p4")]);
    assert_eq!(deltas["h3"].keys(), [("group_members", "web/p4")]);

    // `db` stops naming `web`: h3 loses web's members.
    let deltas = t.apply(&[ObjectChange::new("db", group(&[]))], &all);
    assert_eq!(deltas.keys().collect::<Vec<_>>(), ["h3"]);
    let mut removed = deltas["h3"].removed.group_members.iter().collect::<Vec<_>>();
    removed.sort();
    assert_eq!(removed, ["web/p1", "web/p4"]);

    // p2 leaves `lb` for `web`: h1's lb member goes, p2 is a web member for h1, and h2 gets web.
    let p2 = in_groups(port("n1", "h2", Some("s1"), 2, &["198.51.100.6"]), &["web"]);
    let deltas = t.apply(&[ObjectChange::new("p2", p2)], &all);
    assert_eq!(deltas["h1"].removed.group_members.iter().collect::<Vec<_>>(), ["lb/p2"]);
    assert!(deltas["h1"].upserted.group_members.contains_key("web/p2"));
    assert_eq!(deltas["h2"].removed.security_groups.iter().collect::<Vec<_>>(), ["lb"]);
    assert!(deltas["h2"].upserted.security_groups.contains_key("web"));
    let members: Vec<&String> = deltas["h2"].upserted.group_members.keys().collect();
    assert_eq!(members, ["web/p1", "web/p2", "web/p4"]);
}

fn agent(host: &str, tunnel_ip: &str) -> Image {
    Image::Agent(Arc::new(AgentImage {
        host: host.into(),
        agent_type: AGENT_TYPE_LINUXBRIDGE.into(),
        tunnel_ip: tunnel_ip.into(),
    }))
}

/// A network whose subnet and DHCP port vary with its MTU (so the random test changes them).
fn network(mtu: u32) -> Image {
    let subnet = neutrino_api::agent::HostSubnet {
        cidr: "192.0.2.0/24".into(),
        gateway_ip: Some("192.0.2.1".into()),
        enable_dhcp: mtu.is_multiple_of(2),
        dns_nameservers: vec![format!("198.51.100.{}", mtu % 7)],
        ..Default::default()
    };
    let dhcp = (!mtu.is_multiple_of(3)).then(|| neutrino_api::agent::DhcpServer {
        port_id: "dhcp".into(),
        mac_address: "fa:16:3e:00:00:fe".into(),
        ip_addresses: vec![format!("192.0.2.{}", 2 + mtu % 5)],
    });
    Image::Network(Arc::new(NetworkImage { mtu, subnets: [("s1".to_string(), subnet)].into(), dhcp }))
}

fn segment(network: &str, vni: u32) -> Image {
    Image::Segment(Arc::new(SegmentImage {
        network_id: network.into(),
        network_type: "vxlan".into(),
        physical_network: None,
        segmentation_id: Some(vni),
    }))
}

fn all(_: &str) -> bool {
    true
}

fn interface(network: &str, router: &str, mac: u8, ip: &str, cidr: &str) -> Image {
    let Image::Port(p) = port(network, "", None, mac, &[ip]) else { unreachable!() };
    let mut p = (*p).clone();
    p.router = Some(RouterPortImage {
        router_id: router.into(),
        gateway: false,
        cidrs: vec![cidr.into()],
        gateways: Vec::new(),
        snat: false,
        centralized_snat: false,
    });
    Image::Port(Arc::new(p))
}

/// A host with a port on one of a router's networks runs the router, with all its
/// interfaces, and gets the router's other networks and their remote ports; a host without
/// one does not. Adding and removing the interface are updates of exactly that.
#[test]
fn hosts_run_the_routers_of_their_networks_and_reach_the_routed_networks() {
    let mut t = Topology::new(true);
    t.load(&[
        ObjectChange::new("a1", agent("h1", "192.0.2.11")),
        ObjectChange::new("a2", agent("h2", "192.0.2.12")),
        ObjectChange::new("a3", agent("h3", "192.0.2.13")),
        ObjectChange::new("nA", network(1450)),
        ObjectChange::new("nB", network(1450)),
        ObjectChange::new("sA", segment("nA", 100)),
        ObjectChange::new("sB", segment("nB", 101)),
        ObjectChange::new("vm1", port("nA", "h1", Some("sA"), 1, &["192.0.2.10"])),
        ObjectChange::new("vm2", port("nB", "h2", Some("sB"), 2, &["198.51.100.10"])),
        ObjectChange::new("vm3", port("nB", "h3", Some("sB"), 3, &["198.51.100.11"])),
        ObjectChange::new("qrA", interface("nA", "r", 0xa, "192.0.2.1", "192.0.2.0/24")),
    ]);
    let h1 = t.view("h1");
    assert_eq!(h1.routers["r"].interfaces["qrA"].addresses, vec!["192.0.2.1/24".to_string()]);
    assert!(!h1.networks.contains_key("nB"), "the router has no interface on nB yet");
    assert!(t.view("h2").routers.is_empty());
    let deltas =
        t.apply(&[ObjectChange::new("qrB", interface("nB", "r", 0xb, "198.51.100.1", "198.51.100.0/24"))], &all);
    for host in ["h1", "h2", "h3"] {
        let view = t.view(host);
        assert_eq!(view.routers["r"].interfaces.len(), 2, "{host} runs r");
        assert!(view.networks.contains_key("nA") && view.networks.contains_key("nB"), "{host}");
        assert!(deltas[host].upserted.routers.contains_key("r"), "{host} is told");
    }
    let h1 = t.view("h1");
    assert_eq!(h1.networks["nB"].segmentation_id, Some(101));
    assert!(h1.remote_ports.contains_key("vm2") && h1.remote_ports.contains_key("vm3"));
    assert!(!h1.remote_ports.contains_key("qrA"), "router ports are not remote ports");
    assert!(t.view("h2").remote_ports.contains_key("vm1"), "h2 reaches nA's ports through r");
    // A port moving on a routed network reaches the hosts that route to it.
    let deltas = t.apply(&[ObjectChange::new("vm3", port("nB", "h2", Some("sB"), 3, &["198.51.100.11"]))], &all);
    assert!(deltas["h1"].upserted.remote_ports.contains_key("vm3"));
    // The interface goes: the routed networks go with it.
    let deltas = t.apply(&[ObjectChange::deleted(ObjectKind::Port, "qrB")], &all);
    assert!(!t.view("h1").networks.contains_key("nB"));
    assert!(deltas["h1"].removed.networks.contains("nB"));
    assert!(t.view("h2").routers.is_empty() && !t.view("h2").networks.contains_key("nA"));
}

/// Two hosts on one network; what each sees, whole and as updates.
#[test]
fn a_port_reaches_its_host_and_the_hosts_on_its_segment() {
    let mut t = Topology::new(true);
    t.load(&[
        ObjectChange::new("a1", agent("h1", "192.0.2.11")),
        ObjectChange::new("a2", agent("h2", "192.0.2.12")),
        ObjectChange::new("a3", agent("h3", "192.0.2.13")),
        ObjectChange::new("n1", network(1450)),
        ObjectChange::new("s1", segment("n1", 7)),
        ObjectChange::new("p1", port("n1", "h1", Some("s1"), 1, &["198.51.100.5"])),
    ]);
    let h1 = t.view("h1");
    assert_eq!(h1.local_ports.len(), 1);
    assert_eq!(h1.networks["n1"].segmentation_id, Some(7));
    assert!(t.view("h3").is_empty(), "h3 has no port");

    let deltas = t.apply(&[ObjectChange::new("p2", port("n1", "h2", Some("s1"), 2, &["198.51.100.6"]))], &all);
    assert_eq!(deltas.keys().collect::<Vec<_>>(), ["h1", "h2"], "h3 is not told");
    let to_h1 = &deltas["h1"];
    assert_eq!(to_h1.keys(), [("remote_ports", "p2")]);
    assert_eq!(to_h1.upserted.remote_ports["p2"].tunnel_ip, "192.0.2.12");
    let to_h2 = &deltas["h2"];
    assert_eq!(to_h2.upserted.local_ports.len(), 1);
    assert_eq!(to_h2.upserted.remote_ports.keys().collect::<Vec<_>>(), ["p1"], "h2 gains the segment's ports");
    assert!(to_h2.upserted.networks.contains_key("n1"));

    // A status change is the port's own host's business only.
    let mut active = match port("n1", "h2", Some("s1"), 2, &["198.51.100.6"]) {
        Image::Port(p) => (*p).clone(),
        _ => unreachable!(),
    };
    active.status = "ACTIVE".into();
    let deltas = t.apply(&[ObjectChange::new("p2", Image::Port(Arc::new(active)))], &all);
    assert_eq!(deltas.keys().collect::<Vec<_>>(), ["h2"]);

    // A moved VTEP reaches the hosts that see the agent's ports.
    let deltas = t.apply(&[ObjectChange::new("a2", agent("h2", "192.0.2.22"))], &all);
    assert_eq!(deltas.keys().collect::<Vec<_>>(), ["h1"]);
    assert_eq!(deltas["h1"].upserted.remote_ports["p2"].tunnel_ip, "192.0.2.22");

    // h2's last port goes: it forgets the network and its remote ports.
    let deltas = t.apply(&[ObjectChange::deleted(ObjectKind::Port, "p2")], &all);
    assert_eq!(Vec::from_iter(&deltas["h1"].removed.remote_ports), ["p2"]);
    let to_h2 = &deltas["h2"];
    assert_eq!(Vec::from_iter(&to_h2.removed.local_ports), ["p2"]);
    assert_eq!(Vec::from_iter(&to_h2.removed.remote_ports), ["p1"]);
    assert_eq!(Vec::from_iter(&to_h2.removed.networks), ["n1"]);
}

#[test]
fn only_wanted_hosts_get_deltas_and_no_l2population_means_no_remote_ports() {
    let mut t = Topology::new(false);
    t.load(&[
        ObjectChange::new("a1", agent("h1", "192.0.2.11")),
        ObjectChange::new("n1", network(1450)),
        ObjectChange::new("s1", segment("n1", 7)),
        ObjectChange::new("p1", port("n1", "h1", Some("s1"), 1, &[])),
    ]);
    let deltas = t.apply(&[ObjectChange::new("p2", port("n1", "h2", Some("s1"), 2, &[]))], &|h| h == "h1");
    assert!(deltas.is_empty(), "h1 gets no remote port without l2population, h2 is not wanted");
    assert!(t.view("h1").remote_ports.is_empty());
}

#[test]
fn an_agent_of_another_type_is_not_a_vtep_and_linux_bridge_wins() {
    let mut t = Topology::new(true);
    let other = Image::Agent(Arc::new(AgentImage {
        host: "h2".into(),
        agent_type: "DHCP agent".into(),
        tunnel_ip: "192.0.2.99".into(),
    }));
    let ovs = Image::Agent(Arc::new(AgentImage {
        host: "h2".into(),
        agent_type: AGENT_TYPE_OVS.into(),
        tunnel_ip: "192.0.2.32".into(),
    }));
    t.load(&[ObjectChange::new("x", other)]);
    assert_eq!(t.vtep("h2"), None);
    t.load(&[ObjectChange::new("o", ovs), ObjectChange::new("l", agent("h2", "192.0.2.12"))]);
    assert_eq!(t.vtep("h2"), Some("192.0.2.12"));
    t.load(&[ObjectChange::deleted(ObjectKind::Agent, "l")]);
    assert_eq!(t.vtep("h2"), Some("192.0.2.32"));
}

/// Random operations over a few hosts, networks and ports: every host's view kept with the
/// deltas equals its view computed from scratch after every revision, and the history
/// rebuilds every earlier view in its window.
#[test]
fn incremental_views_equal_views_from_scratch() {
    for seed in 0..16 {
        random_run(seed, seed % 3 != 0);
    }
}

fn random_run(seed: u64, l2population: bool) {
    let mut rng = StdRng::seed_from_u64(seed);
    let hosts = ["h1", "h2", "h3", "h4", "h5"];
    let mut history = History::new(Topology::new(l2population), 0, 40);
    let mut views: BTreeMap<&str, HostState> = hosts.iter().map(|h| (*h, HostState::default())).collect();
    let mut recorded: Vec<(u64, BTreeMap<&str, HostState>)> = Vec::new();
    // Only some hosts listen at any time; the others catch up with a rebuilt view.
    let mut listening: Vec<bool> = hosts.iter().map(|_| true).collect();
    // The revision each host that stopped listening has its view at.
    let mut stopped_at: Vec<u64> = hosts.iter().map(|_| 0).collect();
    for revision in 1..=300u64 {
        let changes: Vec<ObjectChange> = (0..rng.gen_range(1..=3)).map(|_| random_change(&mut rng, &hosts)).collect();
        let wanted = |h: &str| hosts.iter().position(|x| *x == h).is_some_and(|i| listening[i]);
        let deltas = history.apply(revision, &changes, &wanted);
        for (host, delta) in deltas {
            assert!(wanted(&host), "seed {seed}: a delta for {host}, who is not listening");
            views.get_mut(host.as_str()).unwrap().apply(delta);
        }
        for (i, host) in hosts.iter().enumerate() {
            if listening[i] {
                assert_eq!(views[host], history.model().view(host), "seed {seed}, revision {revision}, {host}");
            }
        }
        // Hosts drop off and come back: a returning host resumes from the view it had.
        if rng.gen_bool(0.1) {
            let i = rng.gen_range(0..hosts.len());
            if listening[i] {
                listening[i] = false;
                stopped_at[i] = revision;
            } else if revision - stopped_at[i] <= 40 {
                let host = hosts[i];
                let delta = history.delta_since(host, stopped_at[i]).expect("in window");
                views.get_mut(host).unwrap().apply(delta);
                assert_eq!(views[host], history.model().view(host), "seed {seed}: {host} resumed");
                listening[i] = true;
            } else {
                // Too long ago for the window: a snapshot.
                assert!(history.delta_since(hosts[i], stopped_at[i]).is_none());
                views.insert(hosts[i], history.model().view(hosts[i]));
                listening[i] = true;
            }
        }
        let whole: BTreeMap<&str, HostState> = hosts.iter().map(|h| (*h, history.model().view(h))).collect();
        recorded.push((revision, whole));
        // Every view in the window can be rebuilt.
        if revision % 25 == 0 {
            for (r, then) in recorded.iter().rev().take(35) {
                for host in hosts {
                    assert_eq!(history.view_at(host, *r).as_ref(), Some(&then[host]), "seed {seed}: {host} at {r}");
                }
            }
            if revision > 41 {
                assert!(history.view_at("h1", revision - 41).is_none(), "the window is 40 revisions");
            }
        }
    }
}

fn random_change(rng: &mut StdRng, hosts: &[&str]) -> ObjectChange {
    let networks = ["n1", "n2", "n3"];
    match rng.gen_range(0..100) {
        0..=4 => {
            let n = networks[rng.gen_range(0..networks.len())];
            if rng.gen_bool(0.9) {
                ObjectChange::new(n, network(rng.gen_range(1400..1451)))
            } else {
                ObjectChange::deleted(ObjectKind::Network, n)
            }
        }
        5..=9 => {
            let i = rng.gen_range(0..6);
            let s = format!("s{i}");
            if rng.gen_bool(0.9) {
                ObjectChange::new(&s, segment(networks[i % 3], 100 + i as u32))
            } else {
                ObjectChange::deleted(ObjectKind::Segment, &s)
            }
        }
        10..=14 => {
            let h = hosts[rng.gen_range(0..hosts.len())];
            let id = format!("a-{h}");
            if rng.gen_bool(0.85) {
                ObjectChange::new(&id, agent(h, &format!("192.0.2.{}", rng.gen_range(10..14))))
            } else {
                ObjectChange::deleted(ObjectKind::Agent, &id)
            }
        }
        15..=22 => {
            let g = ["g1", "g2", "g3"][rng.gen_range(0..3)];
            if rng.gen_bool(0.1) {
                return ObjectChange::deleted(ObjectKind::SecurityGroup, g);
            }
            let remotes: Vec<&str> = ["g1", "g2", "g3"].into_iter().filter(|_| rng.gen_bool(0.4)).collect();
            let Image::SecurityGroup(image) = group(&remotes) else { unreachable!() };
            let mut image = (*image).clone();
            for ag in ["a1", "a2"] {
                if rng.gen_bool(0.3) {
                    let mut rule = image.rules[0].clone();
                    rule.id = format!("r-{ag}");
                    rule.remote_address_group_id = Some(ag.into());
                    image.rules.push(rule);
                }
            }
            ObjectChange::new(g, Image::SecurityGroup(Arc::new(image)))
        }
        32..=34 => {
            let id = ["r1", "r2"][rng.gen_range(0..2)];
            if rng.gen_bool(0.15) {
                return ObjectChange::deleted(ObjectKind::Router, id);
            }
            let routes = (0..rng.gen_range(0..3))
                .map(|i| (format!("192.0.2.{}/32", i * 8), "198.51.100.9".to_string()))
                .collect();
            let image = RouterImage { admin_state_up: rng.gen_bool(0.8), routes };
            ObjectChange::new(id, Image::Router(Arc::new(image)))
        }
        27..=31 => {
            let id = format!("f{}", rng.gen_range(0..4));
            if rng.gen_bool(0.15) {
                return ObjectChange::deleted(ObjectKind::FloatingIp, &id);
            }
            let associated = rng.gen_bool(0.8);
            let image = FloatingIpImage {
                floating_ip_address: format!("203.0.113.{}", rng.gen_range(1..9)),
                floating_network_id: "n3".into(),
                router_id: (associated || rng.gen_bool(0.7)).then(|| ["r1", "r2"][rng.gen_range(0..2)].to_string()),
                port_id: associated.then(|| format!("p{}", rng.gen_range(0..25))),
                fixed_ip_address: associated.then(|| "198.51.100.1".to_string()),
                port_forwardings: if associated {
                    Vec::new()
                } else {
                    (0..rng.gen_range(0..3))
                        .map(|i| ForwardingImage {
                            id: format!("pf{i}"),
                            protocol: "tcp".into(),
                            internal_port_id: format!("p{}", rng.gen_range(0..25)),
                            internal_ip_address: "198.51.100.2".into(),
                            internal: (22, 22),
                            external: (2200 + i, 2200 + i),
                        })
                        .collect()
                },
            };
            ObjectChange::new(&id, Image::FloatingIp(Arc::new(image)))
        }
        23..=26 => {
            let a = ["a1", "a2"][rng.gen_range(0..2)];
            if rng.gen_bool(0.15) {
                return ObjectChange::deleted(ObjectKind::AddressGroup, a);
            }
            let addresses =
                (0..rng.gen_range(0..3)).map(|i| format!("192.0.2.{}/32", i * 7 + rng.gen_range(0..5))).collect();
            ObjectChange::new(a, Image::AddressGroup(Arc::new(AddressGroupImage { addresses })))
        }
        _ => {
            let id = format!("p{}", rng.gen_range(0..25));
            if rng.gen_bool(0.15) {
                return ObjectChange::deleted(ObjectKind::Port, &id);
            }
            let i = rng.gen_range(0..6);
            let net = networks[i % 3];
            let host = if rng.gen_bool(0.15) { "" } else { hosts[rng.gen_range(0..hosts.len())] };
            let seg = (!host.is_empty() && rng.gen_bool(0.9)).then(|| format!("s{i}"));
            let mac = rng.gen_range(0..4);
            let ip = format!("198.51.100.{}", rng.gen_range(1..5));
            let mut image = match port(net, host, seg.as_deref(), mac, &[&ip]) {
                Image::Port(p) => (*p).clone(),
                _ => unreachable!(),
            };
            image.admin_state_up = rng.gen_bool(0.8);
            image.security_groups =
                ["g1", "g2", "g3"].into_iter().filter(|_| rng.gen_bool(0.4)).map(String::from).collect();
            if rng.gen_bool(0.2) {
                let pair = neutrino_api::agent::AddressPair {
                    ip_address: "203.0.113.0/28".into(),
                    mac_address: image.mac_address.clone(),
                };
                image.allowed_address_pairs.push(pair);
            }
            image.status = if rng.gen_bool(0.5) { "ACTIVE" } else { "DOWN" }.into();
            if rng.gen_bool(0.2) {
                // A router's interface: unbound, on every host that runs the router.
                image.host = String::new();
                image.segment_id = None;
                image.security_groups.clear();
                let gateway = rng.gen_bool(0.3);
                image.router = Some(RouterPortImage {
                    router_id: ["r1", "r2"][rng.gen_range(0..2)].into(),
                    gateway,
                    cidrs: vec!["198.51.100.0/24".into()],
                    gateways: if gateway { vec!["198.51.100.254".into()] } else { Vec::new() },
                    snat: gateway && rng.gen_bool(0.5),
                    centralized_snat: false,
                });
            } else if rng.gen_bool(0.1) {
                // A router's centralized SNAT port: bound to its gateway host.
                image.router = Some(RouterPortImage {
                    router_id: ["r1", "r2"][rng.gen_range(0..2)].into(),
                    gateway: false,
                    cidrs: vec!["198.51.100.0/24".into()],
                    gateways: Vec::new(),
                    snat: false,
                    centralized_snat: true,
                });
            }
            ObjectChange::new(&id, Image::Port(Arc::new(image)))
        }
    }
}
