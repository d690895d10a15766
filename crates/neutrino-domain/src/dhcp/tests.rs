use super::*;
use neutrino_api::agent::{DhcpServer, ExtraDhcpOpt};

fn network() -> HostNetwork {
    let main = HostSubnet {
        cidr: "192.0.2.0/24".into(),
        gateway_ip: Some("192.0.2.1".into()),
        enable_dhcp: true,
        host_routes: vec![("203.0.113.0/24".into(), "192.0.2.9".into())],
        ..Default::default()
    };
    let sibling = HostSubnet { cidr: "198.51.100.0/25".into(), enable_dhcp: false, ..Default::default() };
    HostNetwork {
        network_type: "vxlan".into(),
        mtu: 1450,
        subnets: [("s1".to_string(), main), ("s2".to_string(), sibling)].into(),
        dhcp: Some(DhcpServer {
            port_id: "d".into(),
            mac_address: "fa:16:3e:00:00:02".into(),
            ip_addresses: vec!["192.0.2.2".into(), "198.51.100.2".into()],
        }),
        ..Default::default()
    }
}

fn port(opts: &[(&str, &str)]) -> LocalPort {
    LocalPort {
        network_id: "n".into(),
        mac_address: "fa:16:3e:00:00:05".into(),
        ip_addresses: vec!["192.0.2.5".into()],
        extra_dhcp_opts: opts
            .iter()
            .map(|(n, v)| ExtraDhcpOpt { opt_name: n.to_string(), opt_value: v.to_string(), ip_version: 4 })
            .collect(),
        ..LocalPort::default()
    }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn a_lease_has_neutrons_options_and_the_default_route_last() {
    let lease = lease_v4(&network(), &port(&[]), &DhcpSettings::default()).unwrap();
    assert_eq!((lease.address, lease.prefix_len, lease.server), (ip("192.0.2.5"), 24, ip("192.0.2.2")));
    assert_eq!(lease.router, Some(ip("192.0.2.1")));
    assert_eq!(lease.dns_servers, [ip("192.0.2.2")], "no dns_nameservers: the host's own responder");
    assert_eq!((lease.mtu, lease.lease_seconds), (1450, Some(86400)));
    assert_eq!(lease.hostname, "host-192-0-2-5");
    assert_eq!(lease.domain, "openstacklocal");
    assert_eq!(
        lease.classless_routes,
        [
            (ip("203.0.113.0"), 24, ip("192.0.2.9")),
            (ip("198.51.100.0"), 25, ip("0.0.0.0")),
            (METADATA_V4, 32, ip("192.0.2.2")),
            (ip("0.0.0.0"), 0, ip("192.0.2.1")),
        ]
    );
}

#[test]
fn dns_servers_come_from_the_subnet_and_0_0_0_0_means_none() {
    let mut net = network();
    net.subnets.get_mut("s1").unwrap().dns_nameservers = vec!["198.51.100.53".into(), "198.51.100.54".into()];
    let lease = lease_v4(&net, &port(&[]), &DhcpSettings::default()).unwrap();
    assert_eq!(lease.dns_servers, [ip("198.51.100.53"), ip("198.51.100.54")]);
    net.subnets.get_mut("s1").unwrap().dns_nameservers = vec!["0.0.0.0".into()];
    assert!(lease_v4(&net, &port(&[]), &DhcpSettings::default()).unwrap().dns_servers.is_empty());
}

#[test]
fn no_lease_without_dhcp_or_a_dhcp_port() {
    let mut net = network();
    net.subnets.get_mut("s1").unwrap().enable_dhcp = false;
    assert!(lease_v4(&net, &port(&[]), &DhcpSettings::default()).is_none());
    let mut net = network();
    net.dhcp = None;
    assert!(lease_v4(&net, &port(&[]), &DhcpSettings::default()).is_none());
}

#[test]
fn the_gateway_is_the_router_else_a_default_host_route_and_without_either_no_default_route() {
    let mut net = network();
    let s1 = net.subnets.get_mut("s1").unwrap();
    s1.host_routes.push(("0.0.0.0/0".into(), "192.0.2.254".into()));
    let lease = lease_v4(&net, &port(&[]), &DhcpSettings::default()).unwrap();
    assert_eq!(lease.router, Some(ip("192.0.2.1")), "the gateway first, as Neutron");
    assert_eq!(lease.classless_routes.last(), Some(&(ip("0.0.0.0"), 0, ip("192.0.2.1"))));
    net.subnets.get_mut("s1").unwrap().gateway_ip = None;
    let lease = lease_v4(&net, &port(&[]), &DhcpSettings::default()).unwrap();
    assert_eq!(lease.router, Some(ip("192.0.2.254")), "no gateway: the default host route's next hop");
    let mut net = network();
    net.subnets.get_mut("s1").unwrap().gateway_ip = None;
    let lease = lease_v4(&net, &port(&[]), &DhcpSettings::default()).unwrap();
    assert_eq!(lease.router, None);
    assert!(lease.classless_routes.iter().all(|(_, len, _)| *len != 0));
}

#[test]
fn extra_options_replace_suppress_or_add() {
    let opts = [
        ("router", ""),
        ("option:dns-server", "198.51.100.7,198.51.100.8"),
        ("tftp-server", "203.0.113.69"),
        ("150", "203.0.113.70"),
        ("mtu", "1400"),
        ("domain-search", "a.example,example"),
    ];
    let lease = lease_v4(&network(), &port(&opts), &DhcpSettings::default()).unwrap();
    assert_eq!(lease.router, None);
    assert!(lease.classless_routes.iter().all(|(_, len, _)| *len != 0), "no default route without a router");
    assert_eq!(lease.dns_servers, [ip("198.51.100.7"), ip("198.51.100.8")]);
    assert_eq!(lease.mtu, 1400);
    assert_eq!(lease.extra[0], ExtraOption { code: 66, value: b"203.0.113.69".to_vec() });
    assert_eq!(lease.extra[1], ExtraOption { code: 150, value: vec![203, 0, 113, 70] });
    assert_eq!(lease.extra[2].value, b"\x01a\x07example\x00\x07example\x00".to_vec());
    let blank = lease_v4(&network(), &port(&[("classless-static-route", "")]), &DhcpSettings::default()).unwrap();
    assert!(blank.classless_routes.is_empty());
    assert_eq!(blank.router, Some(ip("192.0.2.1")));
    assert_eq!(option_code("tag:foo,option:ntp-server"), Some(42));
    assert_eq!(option_code("nonsense"), None);
}

#[test]
fn a_named_port_keeps_its_name() {
    let mut p = port(&[]);
    p.dns_name = "web-1".into();
    assert_eq!(lease_v4(&network(), &p, &DhcpSettings::default()).unwrap().hostname, "web-1");
    p.dns_name = "web-1.openstacklocal.".into();
    assert_eq!(lease_v4(&network(), &p, &DhcpSettings::default()).unwrap().hostname, "web-1");
}

#[test]
fn tagged_options_are_kept_for_the_requests_that_set_their_tags() {
    let p = port(&[
        ("tag:ipxe,bootfile-name", "http://203.0.113.69/boot.ipxe"),
        ("tag:!ipxe,option:bootfile-name", "undionly.kpxe"),
        ("tag:ipxe,server-ip-address", "203.0.113.69"),
    ]);
    let lease = lease_v4(&network(), &p, &DhcpSettings::default()).unwrap();
    assert!(lease.extra.is_empty(), "tagged options are not everyone's");
    assert_eq!(lease.tagged.len(), 2, "the next server is not an option: {:?}", lease.tagged);
    let ipxe: Vec<&[u8]> =
        lease.tagged.iter().filter(|t| t.applies(&[IPXE])).map(|t| t.option.value.as_slice()).collect();
    assert_eq!(ipxe, [b"http://203.0.113.69/boot.ipxe".as_slice()]);
    let plain: Vec<&[u8]> = lease.tagged.iter().filter(|t| t.applies(&[])).map(|t| t.option.value.as_slice()).collect();
    assert_eq!(plain, [b"undionly.kpxe".as_slice()]);
}
