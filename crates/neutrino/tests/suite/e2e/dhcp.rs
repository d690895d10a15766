//! DHCP answered on every VM's own host, with real clients: busybox `udhcpc` on one host and
//! ISC `dhclient` on the other get their port's address and Neutron's options (mask, router,
//! DNS, MTU, classless routes with the metadata route, an extra option), while the underlay
//! carries no DHCP at all; an address changed by the API is what the next request gets; a
//! subnet without DHCP gets no answer; a restarted agent answers as before. Metadata and DNS
//! from the same namespace.

use super::{wait_for, Running};
use neutrino_lab::{ApiClient, DhcpClient, Lab};
use serde_json::{json, Value};

pub async fn check(lab: &mut Lab, api: &ApiClient, net: &Value) {
    let net_id = net["id"].as_str().unwrap();
    let dhcp_ports = api.get(&format!("/v2.0/ports?network_id={net_id}&device_owner=network:dhcp")).await.unwrap();
    let dhcp_ip =
        dhcp_ports["ports"][0]["fixed_ips"][0]["ip_address"].as_str().expect("the network has a DHCP port").to_string();
    let subnet_id = dhcp_ports["ports"][0]["fixed_ips"][0]["subnet_id"].as_str().unwrap().to_string();
    api.put(
        &format!("/v2.0/subnets/{subnet_id}"),
        json!({"subnet": {"host_routes": [{"destination": "203.0.113.0/24", "nexthop": "198.51.100.1"}]}}),
    )
    .await
    .unwrap();
    let vm40 = lab.boot_dhcp_vm(api, net, "vm40", "h1").await.expect("vm40 boots");
    let vm41 = lab.boot_dhcp_vm(api, net, "vm41", "h2").await.expect("vm41 boots");
    let opts = json!({"port": {"extra_dhcp_opts": [
        {"opt_name": "tftp-server", "opt_value": "203.0.113.69"},
        {"opt_name": "tag:ipxe,bootfile-name", "opt_value": "http://203.0.113.69/boot.ipxe"},
        {"opt_name": "tag:!ipxe,bootfile-name", "opt_value": "undionly.kpxe"}]}});
    api.put(&format!("/v2.0/ports/{}", vm40.port_id), opts).await.unwrap();
    // The agents have the options (the port's view changed) before the clients ask.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let capture = lab.capture_underlay("dhcp").unwrap();
    let busybox = lab.dhcp("vm40", DhcpClient::Udhcpc).expect("udhcpc gets a lease on h1");
    assert_eq!(busybox.get("ip"), vm40.ip, "{:?}", busybox.vars);
    assert_eq!(busybox.get("mask"), "24");
    assert_eq!(busybox.get("router"), "198.51.100.1");
    assert_eq!(busybox.get("dns"), dhcp_ip, "without dns_nameservers, the host's own responder");
    assert_eq!(busybox.get("mtu"), net["mtu"].as_u64().unwrap().to_string());
    assert_eq!(busybox.get("serverid"), dhcp_ip);
    assert_eq!(busybox.get("domain"), "openstacklocal");
    assert_eq!(busybox.get("hostname"), format!("host-{}", vm40.ip.replace('.', "-")));
    assert_eq!(busybox.get("tftp"), "203.0.113.69", "extra_dhcp_opts reach the client");
    assert_eq!(busybox.get("bootfile"), "undionly.kpxe", "the option tagged for clients that are not iPXE");
    let ipxe = lab.dhcp("vm40", DhcpClient::UdhcpcIpxe).expect("udhcpc as iPXE gets a lease");
    assert_eq!(ipxe.get("bootfile"), "http://203.0.113.69/boot.ipxe", "tag:ipxe for a client sending option 175");
    assert_eq!(
        busybox.get("staticroutes"),
        format!("203.0.113.0/24 198.51.100.1 169.254.169.254/32 {dhcp_ip} 0.0.0.0/0 198.51.100.1"),
        "host routes, the metadata route, the default route last"
    );
    let isc = lab.dhcp("vm41", DhcpClient::Dhclient).expect("dhclient gets a lease on h2");
    assert_eq!(isc.get("new_ip_address"), vm41.ip, "{:?}", isc.vars);
    assert_eq!(isc.get("new_subnet_mask"), "255.255.255.0");
    assert_eq!(isc.get("new_routers"), "198.51.100.1");
    assert_eq!(isc.get("new_domain_name_servers"), dhcp_ip);
    assert_eq!(isc.get("new_interface_mtu"), net["mtu"].as_u64().unwrap().to_string());
    assert!(!isc.get("new_rfc3442_classless_static_routes").is_empty(), "{:?}", isc.vars);
    let counts = capture.stop().unwrap();
    assert_eq!(counts.inner_dhcp, 0, "no DHCP frame crosses the underlay: {counts:?}");
    // The addresses they applied work across hosts.
    let reaches = wait_for(|| lab.ping("vm40", &vm41.ip, 1)).await;
    let show = |vm: &str| lab.exec(vm, &["sh", "-c", "ip addr; ip route; ip neigh"]).unwrap_or_default();
    assert!(reaches, "vm40 reaches vm41 with its DHCP address:\n{}\n{}", show("vm40"), show("vm41"));

    // Restart-safe: h1's agent is killed and started again; vm40 asking again gets the same
    // address (no lease file anywhere: the port is the lease).
    lab.kill_agent("h1");
    lab.start_agent("h1").unwrap();
    let mut renewed = None;
    for _ in 0..5 {
        if let Ok(lease) = lab.dhcp("vm40", DhcpClient::Udhcpc) {
            renewed = Some(lease);
            break;
        }
    }
    let renewed = renewed.expect("vm40 gets a lease from the restarted agent");
    assert_eq!(renewed.get("ip"), vm40.ip, "the same address after an agent restart");

    metadata(lab, &dhcp_ip, &vm40.ip, &vm41.ip, net["project_id"].as_str().unwrap()).await;
    dns(lab, &dhcp_ip, &vm41.ip);

    // An address changed by the API: the client asking for its old one is refused (NAK) and
    // then gets the new one.
    // Outside the allocation pool (the lower half), so no random allocation can have taken it.
    let moved = "198.51.100.180";
    api.put(
        &format!("/v2.0/ports/{}", vm41.port_id),
        json!({"port": {"fixed_ips": [{"subnet_id": subnet_id, "ip_address": moved}]}}),
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let again = lab.dhcp("vm41", DhcpClient::Dhclient).expect("dhclient gets the new address");
    assert_eq!(again.get("new_ip_address"), moved, "{:?} {:?}", again.events, again.vars);
    assert!(wait_for(|| lab.ping("vm40", moved, 1)).await, "vm41 answers at its new address");

    // A network whose subnet has no DHCP: nothing answers.
    let quiet = api.create_network("no-dhcp").await.unwrap();
    let body =
        json!({"subnet": {"network_id": quiet["id"], "ip_version": 4, "cidr": "192.0.2.0/24", "enable_dhcp": false}});
    api.post("/v2.0/subnets", body).await.unwrap();
    let vm42 = lab.boot_dhcp_vm(api, &quiet, "vm42", "h1").await.expect("vm42 boots");
    assert!(lab.dhcp("vm42", DhcpClient::Udhcpc).is_err(), "enable_dhcp = false: no answer");

    // Leave the lab as it was.
    for vm in ["vm40", "vm41", "vm42"] {
        lab.remove_vm(vm).unwrap();
    }
    for port in [&vm40.port_id, &vm41.port_id, &vm42.port_id] {
        api.delete(&format!("/v2.0/ports/{port}")).await.unwrap();
    }
    api.delete(&format!("/v2.0/networks/{}", quiet["id"].as_str().unwrap())).await.unwrap();
    api.put(&format!("/v2.0/subnets/{subnet_id}"), json!({"subnet": {"host_routes": []}})).await.unwrap();
}

/// `curl` from a VM: the HTTP status and body (status 0: no answer).
fn fetch(lab: &Lab, vm: &str, url: &str) -> (u16, String) {
    match lab.exec(vm, &["curl", "-s", "-m", "4", "-w", "\n%{http_code}", url]) {
        Ok(out) => {
            let (body, code) = out.rsplit_once('\n').unwrap_or(("", "0"));
            (code.trim().parse().unwrap_or(0), body.to_string())
        }
        Err(_) => (0, String::new()),
    }
}

/// Metadata from a VM's own host: 169.254.169.254 (routed by the DHCP route to the DHCP port)
/// reaches the Nova stand-in with Neutron's headers, signed, over HTTPS with the agent's client
/// certificate (`nova_metadata_protocol = https`, `auth_ca_cert`, `nova_client_cert`,
/// `nova_client_priv_key`); Nova's refusals pass through; a VM claiming another's address gets
/// nothing; Nova down is a 503, and so is a Nova whose certificate the lab's CA did not sign
/// (the agent logs why).
async fn metadata(lab: &mut Lab, dhcp_ip: &str, vm40_ip: &str, vm41_ip: &str, project: &str) {
    let url = "http://169.254.169.254/openstack/latest/meta_data.json";
    let (nova, log) = lab.start_nova_metadata(&[("vm40", project)]).expect("the Nova stand-in starts");
    let nova = Running(vec![nova]);
    // vm40's DHCP client applied the metadata route; vm41's (dhclient) gets it by hand.
    lab.exec("vm41", &["ip", "route", "replace", "169.254.169.254/32", "via", dhcp_ip]).unwrap();
    let (status, body) = fetch(lab, "vm40", url);
    assert_eq!(status, 200, "{body}\nagent log:\n{}", lab.log_tail("agent-h1", 20));
    let meta: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((meta["uuid"].as_str(), meta["forwarded_for"].as_str()), (Some("vm40"), Some(vm40_ip)));
    let seen = std::fs::read_to_string(&log).unwrap();
    let first: Value = serde_json::from_str(seen.lines().next().unwrap()).unwrap();
    assert_eq!(first["X-Tenant-ID"], project);
    assert_eq!(first["X-Instance-ID-Signature"].as_str().unwrap().len(), 64, "hex HMAC-SHA256: {first}");
    assert_eq!((&first["tls"], &first["client"]), (&json!(true), &json!("agent")), "HTTPS, the agent's cert: {first}");
    // Nova does not know vm41's instance: its 404 passes through.
    assert_eq!(fetch(lab, "vm41", url).0, 404);
    // vm40 sending from vm41's address: anti-spoofing drops it, nothing is answered as vm41.
    lab.exec("vm40", &["ip", "addr", "add", &format!("{vm41_ip}/32"), "dev", "eth0"]).unwrap();
    lab.exec("vm40", &["ip", "route", "replace", "169.254.169.254/32", "via", dhcp_ip, "src", vm41_ip]).unwrap();
    assert_eq!(fetch(lab, "vm40", url).0, 0, "a spoofed source gets no answer");
    lab.exec("vm40", &["ip", "addr", "del", &format!("{vm41_ip}/32"), "dev", "eth0"]).unwrap();
    lab.exec("vm40", &["ip", "route", "replace", "169.254.169.254/32", "via", dhcp_ip]).unwrap();
    let requests = std::fs::read_to_string(&log).unwrap().lines().count();
    assert_eq!(requests, 2, "only vm40's and vm41's own requests reached Nova");
    // Nova down: 503.
    drop(nova);
    assert_eq!(fetch(lab, "vm40", url).0, 503);
    // An impostor on Nova's address, with a certificate of another CA: nothing is sent to it.
    let other = neutrino_lab::pki::TestCa::new(&lab.dir().join("pki"), "impostor").unwrap();
    let cert = other.issue_for("nova", 1, &[neutrino_lab::SERVER_IP]).unwrap();
    let (impostor, log) = lab.start_nova_metadata_as(&[("vm40", project)], Some(&cert)).unwrap();
    let _impostor = Running(vec![impostor]);
    assert_eq!(fetch(lab, "vm40", url).0, 503);
    assert_eq!(std::fs::read_to_string(&log).unwrap_or_default(), "", "no request reached the impostor");
    let said = lab.log_tail("agent-h1", 20);
    assert!(
        said.lines().any(|l| l.contains("Nova's metadata API is unreachable") && l.contains("UnknownIssuer")),
        "the agent says why:\n{said}"
    );
}

/// An A query over TCP (RFC 7766 framing) to `argv[2]`: prints the addresses answered.
const TCP_QUERY: &str = r#"
import socket, struct, sys
name, server = sys.argv[1], sys.argv[2]
labels = b"".join(bytes([len(l)]) + l.encode() for l in name.split("."))
q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", 1, 1)
s = socket.create_connection((server, 53), timeout=4)
s.sendall(struct.pack("!H", len(q)) + q)
def take(n):
    data = b""
    while len(data) < n:
        more = s.recv(n - len(data))
        if not more:
            raise SystemExit("closed")
        data += more
    return data
data = take(struct.unpack("!H", take(2))[0])
i = 12
while data[i]:
    i += data[i] + 1
i += 5
ips = []
for _ in range(struct.unpack("!H", data[6:8])[0]):
    if data[i] & 0xC0 == 0xC0:
        i += 2
    else:
        while data[i]:
            i += data[i] + 1
        i += 1
    kind, _, _, length = struct.unpack("!HHIH", data[i:i + 10])
    i += 10
    if kind == 1:
        ips.append(socket.inet_ntoa(data[i:i + length]))
    i += length
print(" ".join(ips))
"#;

/// The host's DNS responder, as DHCP hands it out: vm40 (h1) resolves vm41's (h2) name and
/// address, over UDP and TCP; another name goes to the upstream resolver the test runs.
fn dns(lab: &Lab, dhcp_ip: &str, vm41_ip: &str) {
    let (upstream, log) = lab.start_upstream_dns(&[("example.test", "203.0.113.53")]).expect("the resolver starts");
    let _upstream = Running(vec![upstream]);
    let name = format!("host-{}.openstacklocal", vm41_ip.replace('.', "-"));
    let lookup =
        |what: &str| lab.exec("vm40", &["busybox", "nslookup", what, dhcp_ip]).unwrap_or_else(|e| e.to_string());
    let forward = lookup(&name);
    assert!(forward.contains(&format!("Address: {vm41_ip}")), "{name}: {forward}");
    let short = lookup(&format!("host-{}", vm41_ip.replace('.', "-")));
    assert!(short.contains(vm41_ip), "a bare host name is in the DHCP domain: {short}");
    let reverse = lookup(vm41_ip);
    assert!(reverse.contains(&format!("name = {name}")), "{vm41_ip}: {reverse}");
    let other = lookup("example.test");
    assert!(other.contains("Address: 203.0.113.53"), "forwarded: {other}");
    // Over TCP too, the port's name and a forwarded one.
    let tcp =
        |what: &str| lab.exec("vm40", &["python3", "-c", TCP_QUERY, what, dhcp_ip]).unwrap_or_else(|e| e.to_string());
    assert_eq!(tcp(&name).trim(), vm41_ip, "{name} over TCP");
    assert_eq!(tcp("example.test").trim(), "203.0.113.53", "forwarded over TCP");
    let asked = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(asked.lines().any(|l| l == "example.test"), "the upstream resolver was asked: {asked}");
    assert!(!asked.contains("openstacklocal"), "the ports' names are answered on the host: {asked}");
}
