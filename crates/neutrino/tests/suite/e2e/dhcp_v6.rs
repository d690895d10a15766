//! IPv6 answered on every VM's own host: router advertisements from the router's leg on the
//! VM's host (SLAAC by the VM's kernel, the flags, MTU and RDNSS seen by a solicitation of the
//! test's own), DHCPv6 stateful and stateless with ISC `dhclient -6`, DNS and metadata over
//! IPv6, and none of it on the underlay.

use super::{wait_for, Running};
use neutrino_lab::{ApiClient, BootedVm, DhcpClient, Lab};
use serde_json::{json, Value};

/// Sends a router solicitation from `eth0` and prints the first advertisement as JSON: its
/// source, flags, MTU, prefixes (with their autonomous flag) and RDNSS servers.
const SOLICIT: &str = r#"
import json, socket, struct
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
index = socket.if_nametoindex("eth0")
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
blocked = bytearray(b"\xff" * 32)
blocked[134 // 8] &= ~(1 << (134 % 8)) & 0xff
s.setsockopt(socket.IPPROTO_ICMPV6, 1, bytes(blocked))
s.settimeout(5)
s.sendto(bytes([133, 0, 0, 0, 0, 0, 0, 0]), ("ff02::2", 0, 0, index))
data, source = s.recvfrom(2000)
out = {"source": source[0].split("%")[0], "managed": bool(data[5] & 0x80), "other": bool(data[5] & 0x40),
       "lifetime": struct.unpack("!H", data[6:8])[0], "prefixes": {}, "rdnss": [], "mtu": None}
i = 16
while i + 2 <= len(data) and data[i + 1]:
    kind, length = data[i], data[i + 1] * 8
    body = data[i:i + length]
    if kind == 5:
        out["mtu"] = struct.unpack("!I", body[4:8])[0]
    elif kind == 3:
        prefix = socket.inet_ntop(socket.AF_INET6, body[16:32]) + "/" + str(body[2])
        out["prefixes"][prefix] = bool(body[3] & 0x40)
    elif kind == 25:
        out["rdnss"] += [socket.inet_ntop(socket.AF_INET6, body[j:j + 16]) for j in range(8, length, 16)]
    i += length
print(json.dumps(out))
"#;

/// An IPv6-only network with one subnet in `mode` (RA and address mode), on the router.
async fn network(api: &ApiClient, router: &str, name: &str, cidr: &str, mode: &str, dns: &[&str]) -> (Value, Value) {
    let net = api.create_network(name).await.unwrap();
    let body = json!({"subnet": {"network_id": net["id"], "ip_version": 6, "cidr": cidr,
                                 "ipv6_ra_mode": mode, "ipv6_address_mode": mode, "dns_nameservers": dns}});
    let subnet = api.post("/v2.0/subnets", body).await.unwrap()["subnet"].clone();
    api.put(&format!("/v2.0/routers/{router}/add_router_interface"), json!({"subnet_id": subnet["id"]})).await.unwrap();
    (net, subnet)
}

/// A VM's `eth0` with IPv6 on (no duplicate address detection, so its link-local address is
/// usable at once), taking router advertisements, and an MTU above the network's (the
/// advertisement lowers it).
fn ipv6_on(lab: &Lab, vm: &str) {
    for args in [
        vec!["ip", "link", "set", "eth0", "mtu", "1500"],
        vec!["sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0", "net.ipv6.conf.eth0.accept_ra=1"],
        vec!["sysctl", "-qw", "net.ipv6.conf.eth0.autoconf=1", "net.ipv6.conf.eth0.disable_ipv6=0"],
    ] {
        lab.exec(vm, &args).unwrap_or_else(|e| panic!("{vm}: {args:?}: {e}"));
    }
}

fn solicit(lab: &Lab, vm: &str) -> Value {
    let out = lab.exec(vm, &["python3", "-c", SOLICIT]).unwrap_or_else(|e| panic!("{vm} gets no advertisement: {e}"));
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{vm}: {e}: {out}"))
}

fn fixed_ip(port: &Value, subnet: &Value) -> String {
    let fixed = port["fixed_ips"].as_array().unwrap();
    fixed.iter().find(|f| f["subnet_id"] == subnet["id"]).unwrap()["ip_address"].as_str().unwrap().to_string()
}

fn dhcp_address(api_ports: &Value, subnet: &Value) -> String {
    fixed_ip(&api_ports["ports"][0], subnet)
}

pub async fn check(lab: &mut Lab, api: &ApiClient) {
    let router = api.post("/v2.0/routers", json!({"router": {"name": "e2e-v6"}})).await.unwrap()["router"].clone();
    let router_id = router["id"].as_str().unwrap();
    let (slaac_net, slaac) =
        network(api, router_id, "e2e-slaac", "2001:db8:60::/64", "slaac", &["2001:db8:60::53"]).await;
    let (stateful_net, stateful) =
        network(api, router_id, "e2e-dhcpv6", "2001:db8:61::/64", "dhcpv6-stateful", &[]).await;
    let (stateless_net, stateless) =
        network(api, router_id, "e2e-dhcpv6-info", "2001:db8:62::/64", "dhcpv6-stateless", &["2001:db8:62::53"]).await;
    let vm43 = lab.boot_dhcp_vm(api, &slaac_net, "vm43", "h1").await.expect("vm43 boots");
    let vm44 = lab.boot_dhcp_vm(api, &stateful_net, "vm44", "h2").await.expect("vm44 boots");
    let vm45 = lab.boot_dhcp_vm(api, &stateless_net, "vm45", "h1").await.expect("vm45 boots");
    let capture = lab.capture_underlay("ipv6-services").unwrap();
    for vm in ["vm43", "vm44", "vm45"] {
        ipv6_on(lab, vm);
    }
    let show = |vm: &str| lab.exec(vm, &["sh", "-c", "ip -6 addr; ip -6 route"]).unwrap_or_default();

    // SLAAC: the kernel in vm43 takes the prefix and router from its own host's leg; its
    // address is the port's (EUI-64), its MTU the network's.
    let slaac_ip = vm43.ip.clone();
    let configured = wait_for(|| {
        lab.exec("vm43", &["ip", "-6", "addr", "show", "dev", "eth0", "scope", "global"])
            .unwrap_or_default()
            .contains(&slaac_ip)
            && lab.exec("vm43", &["ip", "-6", "route", "show", "default"]).unwrap_or_default().contains("via fe80::")
    })
    .await;
    assert!(
        configured,
        "vm43 configures {slaac_ip} and a default route by SLAAC:\n{}\n{}",
        show("vm43"),
        lab.log_tail("agent-h1", 20)
    );
    let mtu = lab.exec("vm43", &["cat", "/proc/sys/net/ipv6/conf/eth0/mtu"]).unwrap();
    assert_eq!(mtu.trim(), slaac_net["mtu"].as_u64().unwrap().to_string(), "the advertised MTU");
    let ra = solicit(lab, "vm43");
    assert_eq!((ra["managed"].as_bool(), ra["other"].as_bool()), (Some(false), Some(false)), "{ra}");
    assert_eq!(ra["prefixes"], json!({"2001:db8:60::/64": true}), "{ra}");
    assert_eq!(ra["rdnss"], json!(["2001:db8:60::53"]), "{ra}");
    assert_eq!(ra["lifetime"], 300, "{ra}");
    assert!(ra["source"].as_str().unwrap().starts_with("fe80::"), "{ra}");
    let gateway = slaac["gateway_ip"].as_str().unwrap();
    assert!(wait_for(|| lab.ping("vm43", gateway, 1)).await, "vm43 reaches its router at {gateway}");
    metadata_v6(lab, &vm43, slaac_net["project_id"].as_str().unwrap(), "agent-h1");

    // DHCPv6 stateful: the M flag, a prefix not for SLAAC, and dhclient -6 gets the port's
    // fixed IP with the host's own DNS responder (the DHCP port).
    let ra = solicit(lab, "vm44");
    assert_eq!((ra["managed"].as_bool(), ra["other"].as_bool()), (Some(true), Some(false)), "{ra}");
    assert_eq!(ra["prefixes"], json!({"2001:db8:61::/64": false}), "{ra}");
    let net_id = stateful_net["id"].as_str().unwrap();
    let dhcp_ports = api.get(&format!("/v2.0/ports?network_id={net_id}&device_owner=network:dhcp")).await.unwrap();
    let dhcp6 = dhcp_address(&dhcp_ports, &stateful);
    let url = "tftp://[2001:db8:61::69]/boot.efi";
    let boot = json!([{"opt_name": "bootfile-url", "opt_value": url, "ip_version": 6}]);
    api.put(&format!("/v2.0/ports/{}", vm44.port_id), json!({"port": {"extra_dhcp_opts": boot}})).await.unwrap();
    // Asked again until the agent has the option (the port's view changed).
    let mut lease = lab.dhcp("vm44", DhcpClient::Dhclient6).expect("dhclient -6 gets a lease on h2");
    for _ in 0..5 {
        if lease.get("new_dhcp6_bootfile_url") == url {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        lease = lab.dhcp("vm44", DhcpClient::Dhclient6).expect("dhclient -6 gets a lease on h2");
    }
    assert_eq!(lease.get("new_ip6_address"), vm44.ip, "{:?}", lease.vars);
    assert_eq!(lease.get("new_dhcp6_name_servers"), dhcp6, "{:?}", lease.vars);
    assert_eq!(lease.get("new_dhcp6_domain_search"), "openstacklocal.", "{:?}", lease.vars);
    assert_eq!(lease.get("new_dhcp6_bootfile_url"), url, "extra_dhcp_opts for IPv6");
    let ping = wait_for(|| lab.ping("vm44", stateful["gateway_ip"].as_str().unwrap(), 1)).await;
    assert!(ping, "vm44 reaches its router with its DHCPv6 address:\n{}", show("vm44"));
    // The DNS responder over IPv6 names vm44's address; metadata on fe80::a9fe:a9fe.
    let reverse = lab.exec("vm44", &["busybox", "nslookup", &vm44.ip, &dhcp6]).unwrap_or_else(|e| e.to_string());
    let name = format!("host-{}.openstacklocal", vm44.ip.replace(':', "-"));
    assert!(reverse.contains(&name), "{}: {reverse}", vm44.ip);
    metadata_v6(lab, &vm44, stateful_net["project_id"].as_str().unwrap(), "agent-h2");

    // DHCPv6 stateless: SLAAC for the address (the O flag), options by Information-Request.
    let ra = solicit(lab, "vm45");
    assert_eq!((ra["managed"].as_bool(), ra["other"].as_bool()), (Some(false), Some(true)), "{ra}");
    assert_eq!(ra["prefixes"], json!({"2001:db8:62::/64": true}), "{ra}");
    assert_eq!(ra["rdnss"], json!([]), "only SLAAC subnets' servers are in advertisements: {ra}");
    let stateless_ip = vm45.ip.clone();
    let configured = wait_for(|| {
        lab.exec("vm45", &["ip", "-6", "addr", "show", "dev", "eth0", "scope", "global"])
            .unwrap_or_default()
            .contains(&stateless_ip)
    })
    .await;
    assert!(configured, "vm45 configures {stateless_ip} by SLAAC:\n{}", show("vm45"));
    let info = lab.dhcp("vm45", DhcpClient::Dhclient6Stateless).expect("dhclient -6 -S gets options on h1");
    assert_eq!(info.get("new_dhcp6_name_servers"), "2001:db8:62::53", "{:?}", info.vars);
    assert_eq!(info.get("new_ip6_address"), "", "no address when stateless: {:?}", info.vars);

    let counts = capture.stop().unwrap();
    assert_eq!(counts.inner_dhcp, 0, "no DHCPv6 crosses the underlay: {counts:?}");
    assert_eq!(counts.inner_multicast, 0, "no advertisement or solicitation crosses the underlay: {counts:?}");

    // Leave the lab as it was.
    for (vm, booted) in [("vm43", &vm43), ("vm44", &vm44), ("vm45", &vm45)] {
        lab.remove_vm(vm).unwrap();
        api.delete(&format!("/v2.0/ports/{}", booted.port_id)).await.unwrap();
    }
    for (net, subnet) in [(&slaac_net, &slaac), (&stateful_net, &stateful), (&stateless_net, &stateless)] {
        api.put(&format!("/v2.0/routers/{router_id}/remove_router_interface"), json!({"subnet_id": subnet["id"]}))
            .await
            .unwrap();
        api.delete(&format!("/v2.0/networks/{}", net["id"].as_str().unwrap())).await.unwrap();
    }
    api.delete(&format!("/v2.0/routers/{router_id}")).await.unwrap();
}

/// Metadata at `fe80::a9fe:a9fe` on the VM's link: the Nova stand-in sees the instance of the
/// VM's link-local address.
fn metadata_v6(lab: &Lab, vm: &BootedVm, project: &str, agent_log: &str) {
    let (nova, _log) = lab.start_nova_metadata(&[(vm.name.as_str(), project)]).expect("the Nova stand-in starts");
    let _nova = Running(vec![nova]);
    let url = "http://[fe80::a9fe:a9fe%eth0]/openstack/latest/meta_data.json";
    let out = lab.exec(&vm.name, &["curl", "-s", "-g", "-m", "4", "-w", "\n%{http_code}", url]).unwrap_or_default();
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", "0"));
    assert_eq!(code.trim(), "200", "{}: {body}\n{}", vm.name, lab.log_tail(agent_log, 20));
    let meta: Value = serde_json::from_str(body).unwrap();
    assert_eq!(meta["uuid"], vm.name.as_str(), "{meta}");
    assert!(meta["forwarded_for"].as_str().unwrap().starts_with("fe80::"), "{meta}");
}
