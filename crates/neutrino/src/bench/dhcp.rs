//! `neutrino bench --dhcp` (root): DHCP and metadata answered on one host of the namespace lab,
//! with `--dhcp-ports` local ports on `--dhcp-networks` networks (goals from the issue:
//! DISCOVER→ACK p99 ≤ 5 ms and more than dnsmasq's ~1000 requests/s; a lease ≤ 100 ms p99
//! after the port's create reply). A client in a VM's namespace does whole exchanges
//! (DISCOVER→OFFER, REQUEST→ACK, with the broadcast flag) for the network's ports; then the
//! time from a port's create reply to its first ACK; then metadata requests through the proxy
//! to the Nova stand-in; and the agent's resident memory.

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, OptionCode};
use dhcproto::{Decodable, Encodable};
use neutrino_lab::{Lab, NsRuntime};
use serde_json::json;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

pub async fn run(ports: usize, networks: usize, database: Option<String>) -> Result<(), String> {
    super::in_two_host_lab("dhcp", database, async |lab: &mut Lab| {
        measure(lab, ports.max(networks), networks.max(1)).await
    })
    .await
}

fn mac_bytes(mac: &str) -> [u8; 6] {
    mac.parse::<neutrino_dataplane::MacAddr>().map(|m| m.0).unwrap_or_default()
}

/// A DHCP client on port 68 of a VM: replies are matched to requests by `xid`.
struct Client {
    socket: Arc<UdpSocket>,
    waiting: Arc<Mutex<HashMap<u32, oneshot::Sender<Message>>>>,
}

impl Client {
    async fn open() -> std::io::Result<Client> {
        let socket = Arc::new(UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 68))).await?);
        socket.set_broadcast(true)?;
        socket.bind_device(Some(b"eth0"))?;
        let waiting: Arc<Mutex<HashMap<u32, oneshot::Sender<Message>>>> = Arc::default();
        let (s, w) = (socket.clone(), waiting.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 1500];
            while let Ok((len, _)) = s.recv_from(&mut buf).await {
                if let Ok(msg) = Message::from_bytes(&buf[..len]) {
                    if let Some(tx) = w.lock().unwrap().remove(&msg.xid()) {
                        let _ = tx.send(msg);
                    }
                }
            }
        });
        Ok(Client { socket, waiting })
    }

    async fn ask(&self, msg: &Message, timeout: Duration) -> Option<Message> {
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap().insert(msg.xid(), tx);
        let bytes = msg.to_vec().ok()?;
        self.socket.send_to(&bytes, SocketAddr::from((Ipv4Addr::BROADCAST, 67))).await.ok()?;
        let got = tokio::time::timeout(timeout, rx).await.ok().and_then(Result::ok);
        self.waiting.lock().unwrap().remove(&msg.xid());
        got
    }

    /// DISCOVER→OFFER, REQUEST→ACK for `mac`: the address acked.
    async fn exchange(&self, mac: [u8; 6], timeout: Duration) -> Option<Ipv4Addr> {
        let z = Ipv4Addr::UNSPECIFIED;
        let mut discover = Message::new(z, z, z, z, &mac);
        discover.set_flags(Flags::default().set_broadcast());
        discover.opts_mut().insert(DhcpOption::MessageType(MessageType::Discover));
        let offer = self.ask(&discover, timeout).await?;
        let server = match offer.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(ip)) => *ip,
            _ => return None,
        };
        let mut request = Message::new(z, z, z, z, &mac);
        request.set_flags(Flags::default().set_broadcast());
        request.opts_mut().insert(DhcpOption::MessageType(MessageType::Request));
        request.opts_mut().insert(DhcpOption::RequestedIpAddress(offer.yiaddr()));
        request.opts_mut().insert(DhcpOption::ServerIdentifier(server));
        let ack = self.ask(&request, timeout).await?;
        ack.opts().has_msg_type(MessageType::Ack).then(|| ack.yiaddr())
    }
}

async fn measure(lab: &mut Lab, ports: usize, networks: usize) -> Result<(), String> {
    let (e, le) = (|e: neutrino_lab::ApiError| e.to_string(), |e: neutrino_lab::LabError| e.to_string());
    let api = lab.api();
    let host = lab.host_id("h1");
    let started = Instant::now();
    let mut nets = Vec::new();
    for i in 0..networks {
        let net = api.create_network(&format!("bench-dhcp-{i}")).await.map_err(e)?;
        let body = json!({"subnet": {"network_id": net["id"], "ip_version": 4, "cidr": "198.51.100.0/22"}});
        api.post("/v2.0/subnets", body).await.map_err(e)?;
        nets.push(net);
    }
    let per_network = ports / networks;
    let mut macs: Vec<[u8; 6]> = Vec::new();
    for (i, net) in nets.iter().enumerate() {
        let id = net["id"].as_str().unwrap_or_default();
        for j in 0..per_network {
            let port = api.create_port(id, &format!("p{i}-{j}"), &host).await.map_err(e)?;
            if i == 0 {
                macs.push(mac_bytes(port["mac_address"].as_str().unwrap_or_default()));
            }
        }
    }
    println!(
        "{} ports on {networks} networks bound to one host in {:.1} s",
        per_network * networks,
        started.elapsed().as_secs_f64()
    );
    let prefix = format!("{}-qdhcp-", lab.netns("h1"));
    let all_served = || {
        let out = neutrino_lab::run("ip", &["netns", "list"]).map(|o| String::from_utf8_lossy(&o.stdout).to_string());
        out.unwrap_or_default().lines().filter(|l| l.starts_with(&prefix)).count() >= networks
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !all_served() {
        if Instant::now() > deadline {
            return Err("the agent did not make every DHCP namespace in 120 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("every network's DHCP namespace ready {:.1} s after the first create", started.elapsed().as_secs_f64());
    let vm = lab.boot_vm(&api, &nets[0], "vm1", "h1").await.map_err(le)?;
    macs.push(mac_bytes(&vm.mac));
    let runtime = NsRuntime::start(&lab.netns("vm1")).map_err(le)?;
    let handle = runtime.handle();
    let macs = Arc::new(macs);
    let m = macs.clone();
    // One client in the VM (port 68), for every phase.
    let client = handle
        .spawn(async { Client::open().await.map(Arc::new) })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let c = client.clone();
    let (latencies, rate) = handle
        .spawn(async move {
            let client = c;
            let mut latencies = Vec::new();
            let mut unanswered = 0;
            for i in 0..1000 {
                let t = Instant::now();
                match client.exchange(m[i % m.len()], Duration::from_secs(1)).await {
                    Some(_) => latencies.push(t.elapsed()),
                    None => unanswered += 1,
                }
            }
            if unanswered > 0 {
                println!("{unanswered} of 1000 exchanges got no answer within 1 s");
            }
            // Throughput: 32 exchanges in flight for 3 s.
            let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let until = Instant::now() + Duration::from_secs(3);
            let mut workers = Vec::new();
            for w in 0..32 {
                let (client, done, m) = (client.clone(), done.clone(), m.clone());
                workers.push(tokio::spawn(async move {
                    let mut i = w;
                    while Instant::now() < until {
                        if client.exchange(m[i % m.len()], Duration::from_secs(1)).await.is_some() {
                            done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        i += 32;
                    }
                }));
            }
            for w in workers {
                let _ = w.await;
            }
            let exchanges = done.load(std::sync::atomic::Ordering::Relaxed);
            Ok::<_, String>((latencies, exchanges as f64 * 2.0 / 3.0))
        })
        .await
        .map_err(|e| e.to_string())??;
    let mut latencies = latencies;
    latencies.sort();
    println!(
        "DHCPv4 DISCOVER→ACK (whole exchange), {} local ports: p50 {}  p99 {}  (goal p99 ≤ 5 ms)",
        per_network * networks,
        super::ms(super::percentile(&latencies, 0.5)),
        super::ms(super::percentile(&latencies, 0.99))
    );
    println!("DHCPv4 requests answered: {rate:.0}/s with 32 exchanges in flight (goal > ~1000/s, dnsmasq's)");

    // A new port's create reply → its first ACK.
    let mut to_lease = Vec::new();
    let net0 = nets[0]["id"].as_str().unwrap_or_default().to_string();
    for i in 0..20 {
        let port = api.create_port(&net0, &format!("new-{i}"), &host).await.map_err(e)?;
        let created = Instant::now();
        let mac = mac_bytes(port["mac_address"].as_str().unwrap_or_default());
        let client = client.clone();
        let acked = handle
            .spawn(async move {
                let until = Instant::now() + Duration::from_secs(10);
                while Instant::now() < until {
                    // Asked every 5 ms: the figure is within 5 ms of when the lease was there.
                    if client.exchange(mac, Duration::from_millis(5)).await.is_some() {
                        return Some(Instant::now());
                    }
                }
                None
            })
            .await
            .map_err(|e| e.to_string())?
            .ok_or("a new port got no lease in 10 s")?;
        to_lease.push(acked - created);
    }
    to_lease.sort();
    println!(
        "port create reply → first ACK on its host: p50 {}  p99 {}  (goal p99 ≤ 100 ms)",
        super::ms(super::percentile(&to_lease, 0.5)),
        super::ms(super::percentile(&to_lease, 0.99))
    );

    // Metadata through the proxy to the Nova stand-in.
    let project = vm_project(&api, &vm.port_id).await?;
    let (mut nova, _log) = lab.start_nova_metadata(&[("vm1", project.as_str())]).map_err(le)?;
    let dhcp_ip = dhcp_address(&api, &net0).await?;
    lab.exec("vm1", &["ip", "route", "replace", "169.254.169.254/32", "via", &dhcp_ip]).map_err(le)?;
    let metadata = handle
        .spawn(async move {
            let client = reqwest::Client::new();
            let mut out = Vec::new();
            for _ in 0..200 {
                let t = Instant::now();
                let reply = client.get("http://169.254.169.254/openstack/latest/meta_data.json").send().await;
                match reply {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        out.push(t.elapsed());
                    }
                    other => return Err(format!("metadata request failed: {other:?}")),
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| e.to_string())?;
    let _ = nova.kill();
    let _ = nova.wait();
    let mut metadata = metadata?;
    metadata.sort();
    println!(
        "metadata GET through the proxy (to a Python stand-in for Nova): p50 {}  p99 {}",
        super::ms(super::percentile(&metadata, 0.5)),
        super::ms(super::percentile(&metadata, 0.99))
    );
    if let Some(pid) = lab.agent_pid("h1") {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or("VmRSS: ?").trim().to_string();
        println!("agent memory with {} ports on {networks} networks: {rss}", per_network * networks + 21);
    }
    drop(runtime);
    Ok(())
}

async fn vm_project(api: &neutrino_lab::ApiClient, port_id: &str) -> Result<String, String> {
    let port = api.port(port_id).await.map_err(|e| e.to_string())?;
    Ok(port["project_id"].as_str().unwrap_or_default().to_string())
}

async fn dhcp_address(api: &neutrino_lab::ApiClient, network_id: &str) -> Result<String, String> {
    let ports = api
        .get(&format!("/v2.0/ports?network_id={network_id}&device_owner=network:dhcp"))
        .await
        .map_err(|e| e.to_string())?;
    ports["ports"][0]["fixed_ips"][0]["ip_address"].as_str().map(String::from).ok_or("no DHCP port".into())
}
