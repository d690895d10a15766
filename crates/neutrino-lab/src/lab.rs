//! The namespace lab.
//!
//! ```text
//!   <p>ul: bridge br-ul 192.0.2.1 (the server runs here)
//!             ├─ <p>h1: eth0 192.0.2.11 (agent) ── tap… ── <p>vm…: eth0
//!             └─ <p>h2: eth0 192.0.2.12 (agent) ── tap… ── <p>vm…: eth0
//!          bridge br-phys, no address: the provider network physnet1
//!             ├─ <p>h1: phys0 (physical_interface_mappings = physnet1:phys0)
//!             └─ <p>h2: phys0
//! ```

mod boot;
mod stand_ins;

pub use boot::BootedVm;

use crate::capture::Capture;
use crate::cmd::{in_ns, ip, run, LabError};
use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const SERVER_IP: &str = "192.0.2.1";
/// Where the agents find Nova's metadata API (the stand-in, [`Lab::start_nova_metadata`]).
pub const NOVA_METADATA_PORT: u16 = 8775;
/// `metadata_proxy_shared_secret` of the lab's agents.
pub const METADATA_SECRET: &str = "lab-metadata-secret";
/// The physical network the hosts' `phys0` is wired to (`br-phys` in the underlay namespace).
pub const PHYSICAL_NETWORK: &str = "physnet1";
/// The hosts' interface on [`PHYSICAL_NETWORK`].
pub const PHYSICAL_INTERFACE: &str = "phys0";
/// The bridge in the underlay namespace that plays the provider network.
const PROVIDER_BRIDGE: &str = "br-phys";

#[derive(Debug, Clone)]
pub struct LabConfig {
    /// Prefix of every namespace and root link the lab creates (keep it short: ≤ 4 chars).
    pub prefix: String,
    /// The `neutrino` binary.
    pub binary: PathBuf,
    /// Host names, e.g. `["h1", "h2"]`; host i gets underlay address 192.0.2.(10+i).
    pub hosts: Vec<String>,
    /// `[database] connection` for the server; `None` for SQLite in the lab's directory.
    pub database: Option<String>,
    pub server_port: u16,
    /// Where configs, logs and captures go.
    pub dir: PathBuf,
    /// Serve the API over mutual TLS (`[ssl]` with a certificate of a CA made for the lab, and
    /// `ca_file`: clients must present one of its certificates), the agents and the lab's API
    /// client trusting that CA and presenting certificates of it; Nova's stand-in too is HTTPS.
    pub tls: bool,
}

/// A VM to attach: its port's id (the tap name comes from it), MAC and address.
#[derive(Debug, Clone)]
pub struct VmSpec {
    pub name: String,
    pub host: String,
    pub port_id: String,
    pub mac: String,
    pub ip: String,
    pub prefix_len: u8,
    pub mtu: u32,
}

pub struct Lab {
    cfg: LabConfig,
    runtime: Option<crate::netns::NsRuntime>,
    server: Option<Child>,
    agents: BTreeMap<String, Child>,
    vms: BTreeMap<String, VmSpec>,
    /// The routing role of each host's agent (absent: a compute host with distributed SNAT).
    roles: BTreeMap<String, AgentRole>,
}

/// How a host's agent routes (its `[agent]` options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentRole {
    /// A compute host that SNATs its own VMs (`distributed_snat = true`), the lab's default.
    DistributedSnat,
    /// A compute host whose VMs without a floating IP leave through a gateway host (`dvr`).
    Compute,
    /// A gateway host (`agent_mode = dvr_snat`).
    Gateway,
}

impl AgentRole {
    fn options(self) -> &'static str {
        match self {
            AgentRole::DistributedSnat => "distributed_snat = true\n",
            AgentRole::Compute => "agent_mode = dvr\n",
            AgentRole::Gateway => "agent_mode = dvr_snat\n",
        }
    }
}

/// Remove the namespaces a lab with this prefix creates (`<p>ul`, `<p>h<N>`, `<p>vm<N>`),
/// e.g. leftovers of a run that was killed. Touches nothing else.
pub fn cleanup_prefix(prefix: &str) {
    if let Ok(out) = ip(&["netns", "list"]) {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            if is_lab_namespace(prefix, name) {
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
}

fn numbered_in(name: &str, p: &str) -> bool {
    name.strip_prefix(p).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn is_lab_namespace(prefix: &str, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(prefix) else {
        return false;
    };
    let numbered =
        |p: &str| rest.strip_prefix(p).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    // A host agent's router and DHCP namespaces: `<p>h<N>-qrouter-<id>`, `<p>h<N>-qdhcp-<id>`.
    let of_host = |tag: &str| rest.split_once(tag).is_some_and(|(host, _)| numbered_in(host, "h"));
    rest == "ul" || numbered("h") || numbered("vm") || of_host("-qrouter-") || of_host("-qdhcp-")
}

impl Lab {
    fn ns(&self, name: &str) -> String {
        format!("{}{}", self.cfg.prefix, name)
    }

    pub fn host_ns(&self, host: &str) -> String {
        self.ns(host)
    }

    pub fn underlay_ns(&self) -> String {
        self.ns("ul")
    }

    /// The host name agents register with (prefixed, so labs never share names).
    pub fn host_id(&self, host: &str) -> String {
        self.ns(host)
    }

    pub fn server_url(&self) -> String {
        let scheme = if self.cfg.tls { "https" } else { "http" };
        format!("{scheme}://{SERVER_IP}:{}", self.cfg.server_port)
    }

    fn host_ip(&self, host: &str) -> Result<String, LabError> {
        let i = self
            .cfg
            .hosts
            .iter()
            .position(|h| h == host)
            .ok_or_else(|| LabError::Other(format!("unknown host {host}")))?;
        Ok(format!("192.0.2.{}", 11 + i))
    }

    /// Build the underlay, the hosts, start the server and one agent per host.
    pub fn start(cfg: LabConfig) -> Result<Lab, LabError> {
        cleanup_prefix(&cfg.prefix);
        std::fs::create_dir_all(&cfg.dir)?;
        let mut lab = Lab {
            cfg,
            runtime: None,
            server: None,
            agents: BTreeMap::new(),
            vms: BTreeMap::new(),
            roles: BTreeMap::new(),
        };
        lab.build_underlay()?;
        for host in lab.cfg.hosts.clone() {
            lab.build_host(&host)?;
        }
        lab.runtime = Some(crate::netns::NsRuntime::start(&lab.underlay_ns())?);
        // A new lab starts from an empty SQLite database and a new CA (restarts keep them; a
        // directory left by an earlier run may hold certificates that have expired since).
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", lab.cfg.dir.join("server.sqlite").display()));
        }
        let _ = std::fs::remove_dir_all(lab.cfg.dir.join("pki"));
        lab.start_server()?;
        for host in lab.cfg.hosts.clone() {
            lab.start_agent(&host)?;
        }
        Ok(lab)
    }

    fn build_underlay(&self) -> Result<(), LabError> {
        let ul = self.underlay_ns();
        ip(&["netns", "add", &ul])?;
        quiet_ipv6(&ul)?;
        ip(&["-n", &ul, "link", "set", "dev", "lo", "up"])?;
        ip(&["-n", &ul, "link", "add", "br-ul", "type", "bridge", "forward_delay", "0", "stp_state", "0"])?;
        ip(&["-n", &ul, "addr", "add", &format!("{SERVER_IP}/24"), "dev", "br-ul"])?;
        ip(&["-n", &ul, "link", "set", "dev", "br-ul", "up"])?;
        ip(&["-n", &ul, "link", "add", PROVIDER_BRIDGE, "type", "bridge", "forward_delay", "0", "stp_state", "0"])?;
        ip(&["-n", &ul, "link", "set", "dev", PROVIDER_BRIDGE, "up"])?;
        Ok(())
    }

    fn build_host(&self, host: &str) -> Result<(), LabError> {
        let ns = self.host_ns(host);
        let ul = self.underlay_ns();
        ip(&["netns", "add", &ns])?;
        ip(&["-n", &ns, "link", "set", "dev", "lo", "up"])?;
        ip(&["-n", &ul, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
        ip(&["-n", &ul, "link", "set", "dev", host, "master", "br-ul", "up"])?;
        in_ns(&ns, &["sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1"])?;
        ip(&["-n", &ns, "addr", "add", &format!("{}/24", self.host_ip(host)?), "dev", "eth0"])?;
        ip(&["-n", &ns, "link", "set", "dev", "eth0", "up"])?;
        // The host's "physical" interface on the provider network, cabled to br-phys.
        let cable = format!("{host}-phys");
        ip(&["-n", &ul, "link", "add", &cable, "type", "veth", "peer", "name", PHYSICAL_INTERFACE, "netns", &ns])?;
        ip(&["-n", &ul, "link", "set", "dev", &cable, "master", PROVIDER_BRIDGE, "up"])?;
        in_ns(&ns, &["sysctl", "-qw", &format!("net.ipv6.conf.{PHYSICAL_INTERFACE}.disable_ipv6=1")])?;
        ip(&["-n", &ns, "link", "set", "dev", PHYSICAL_INTERFACE, "up"])?;
        Ok(())
    }

    fn log_file(&self, name: &str) -> Result<(File, File), LabError> {
        let f = std::fs::OpenOptions::new().create(true).append(true).open(self.cfg.dir.join(format!("{name}.log")))?;
        Ok((f.try_clone()?, f))
    }

    fn start_server(&mut self) -> Result<(), LabError> {
        let database = self
            .cfg
            .database
            .clone()
            .unwrap_or_else(|| format!("sqlite:///{}", self.cfg.dir.join("server.sqlite").display()));
        let conf = format!(
            "[DEFAULT]\nbind_host = {SERVER_IP}\nbind_port = {}\n[database]\nconnection = {database}\n[ml2]\ntype_drivers = local,flat,vlan,gre,vxlan,geneve\ntenant_network_types = vxlan\nmechanism_drivers = linuxbridge,l2population\n[ml2_type_vxlan]\nvni_ranges = 1001:5000\n[ml2_type_flat]\nflat_networks = physnet1\n[ml2_type_vlan]\nnetwork_vlan_ranges = physnet1:100:199\n[quotas]\nquota_network = -1\nquota_subnet = -1\nquota_port = -1\nquota_security_group = -1\nquota_security_group_rule = -1\nquota_router = -1\nquota_floatingip = -1\n",
            self.cfg.server_port
        );
        let conf = match self.pki()? {
            Some(pki) => {
                let (cert, key, ca) = (pki.server.cert.display(), pki.server.key.display(), pki.ca.display());
                // Mutual TLS: only holders of a certificate of the lab's CA are served.
                format!("{conf}[ssl]\ncert_file = {cert}\nkey_file = {key}\nca_file = {ca}\n")
            }
            None => conf,
        };
        let path = self.cfg.dir.join("server.ini");
        std::fs::write(&path, conf)?;
        let (out, err) = self.log_file("server")?;
        // The server process stays in the root namespace (where its database is), and serves
        // on a socket opened inside the underlay, handed over by socket activation.
        let listener = self.listen_in_underlay()?;
        let fd = listener.as_raw_fd();
        let mut cmd = Command::new(&self.cfg.binary);
        cmd.args(["server", "--config-file"])
            .arg(&path)
            .env("LISTEN_FDS", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // SAFETY: between fork and exec only dup2 runs, which is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        drop(listener);
        self.server = Some(child);
        self.wait_http(&format!("{}/", self.server_url()))
    }

    /// A listening socket on the server address, created by a thread inside the underlay.
    fn listen_in_underlay(&self) -> Result<std::net::TcpListener, LabError> {
        let ns = self.underlay_ns();
        let addr = format!("{SERVER_IP}:{}", self.cfg.server_port);
        std::thread::spawn(move || {
            crate::netns::join_netns(&ns)?;
            std::net::TcpListener::bind(&addr).map_err(LabError::Io)
        })
        .join()
        .map_err(|_| LabError::Other("listener thread panicked".into()))?
    }

    /// Wait until the server accepts connections (probed from inside the underlay).
    fn wait_http(&self, url: &str) -> Result<(), LabError> {
        let addr: std::net::SocketAddr = url
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .parse()
            .map_err(|_| LabError::Other(format!("bad server url {url}")))?;
        if self.wait_listening(addr) {
            return Ok(());
        }
        Err(LabError::Other(format!("server at {url} did not come up:\n{}", self.log_tail("server", 20))))
    }

    /// Whether something in the underlay accepts TCP connections at `addr` within 15 s.
    fn wait_listening(&self, addr: std::net::SocketAddr) -> bool {
        let ns = self.underlay_ns();
        std::thread::spawn(move || {
            crate::netns::join_netns(&ns).is_ok()
                && (0..300).any(|_| {
                    let ok = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok();
                    if !ok {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    ok
                })
        })
        .join()
        .unwrap_or(false)
    }

    /// An API client that reaches the server over the lab's underlay (in a lab with TLS,
    /// trusting the lab's CA and presenting the operator's certificate).
    pub fn api(&self) -> crate::ApiClient {
        let operator = self.pki().ok().flatten().map(|pki| pki.operator);
        self.api_presenting(operator.as_ref())
    }

    /// Like [`Lab::api`], presenting `identity` (or no certificate at all) to a lab with TLS.
    pub fn api_presenting(&self, identity: Option<&crate::pki::Issued>) -> crate::ApiClient {
        let api = match &self.runtime {
            Some(rt) => crate::ApiClient::with_runtime(&self.server_url(), rt.handle()),
            None => crate::ApiClient::new(&self.server_url()),
        };
        match self.pki() {
            // The CA was made when the server started (a lab without one has no server yet).
            Ok(Some(pki)) => {
                let tls = neutrino_tls::ClientTls {
                    ca_file: Some(pki.ca),
                    cert_file: identity.map(|i| i.cert.clone()),
                    key_file: identity.map(|i| i.key.clone()),
                    insecure: false,
                };
                api.with_tls(&tls).unwrap_or_else(|e| panic!("the lab's TLS files: {e}"))
            }
            _ => api,
        }
    }

    /// Start (or restart) the agent of `host` inside its namespace.
    pub fn start_agent(&mut self, host: &str) -> Result<(), LabError> {
        let role = self.roles.get(host).copied().unwrap_or(AgentRole::DistributedSnat);
        // With TLS: the agents' CA and certificate, to the servers (mutual TLS) and to Nova's
        // metadata API (over HTTPS too), under each link's option names.
        let pki = self.pki()?;
        let tls_options = |keys: [&str; 3]| match &pki {
            Some(pki) => {
                let files = [&pki.ca, &pki.agent.cert, &pki.agent.key];
                keys.iter().zip(files).map(|(key, file)| format!("{key} = {}\n", file.display())).collect()
            }
            None => String::new(),
        };
        let nova_tls = match &pki {
            Some(_) => {
                let files = tls_options(["auth_ca_cert", "nova_client_cert", "nova_client_priv_key"]);
                format!("nova_metadata_protocol = https\n{files}")
            }
            None => String::new(),
        };
        let server_tls = tls_options(["ssl_ca_file", "ssl_cert_file", "ssl_key_file"]);
        let conf = format!(
            "[DEFAULT]\nhost = {}\nnova_metadata_host = {SERVER_IP}\nnova_metadata_port = {NOVA_METADATA_PORT}\nmetadata_proxy_shared_secret = {METADATA_SECRET}\ndnsmasq_dns_servers = {SERVER_IP}\n{}[agent]\nserver_url = {}\n{}report_interval = 5\nresync_interval = 10\nnamespace_prefix = {}-\n{}[vxlan]\nlocal_ip = {}\n[linux_bridge]\nphysical_interface_mappings = {PHYSICAL_NETWORK}:{PHYSICAL_INTERFACE}\n",
            self.host_id(host),
            nova_tls,
            self.server_url(),
            server_tls,
            self.host_ns(host),
            role.options(),
            self.host_ip(host)?
        );
        let path = self.cfg.dir.join(format!("agent-{host}.ini"));
        std::fs::write(&path, conf)?;
        let (out, err) = self.log_file(&format!("agent-{host}"))?;
        let path_str = path.to_string_lossy().to_string();
        // nsenter, not `ip netns exec`: the agent must share the machine's mount namespace, so
        // the router namespaces it mounts under /run/netns are the machine's.
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.host_ns(host)))
            .arg("--")
            .arg(&self.cfg.binary)
            .args(["agent", "--config-file", &path_str])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()?;
        self.agents.insert(host.to_string(), child);
        Ok(())
    }

    /// Give `host`'s agent another routing role, restarting it.
    pub fn set_role(&mut self, host: &str, role: AgentRole) -> Result<(), LabError> {
        self.roles.insert(host.to_string(), role);
        self.kill_agent(host);
        self.start_agent(host)
    }

    /// One more host (`h<N>`, after the others), with its agent in `role`.
    pub fn add_host(&mut self, host: &str, role: AgentRole) -> Result<(), LabError> {
        self.cfg.hosts.push(host.to_string());
        self.build_host(host)?;
        self.roles.insert(host.to_string(), role);
        self.start_agent(host)
    }

    /// Cut `host` off the underlay and the provider network (`false`), as a host that dies
    /// (its kernel stops answering others), or cable it again (`true`).
    pub fn cable(&self, host: &str, up: bool) -> Result<(), LabError> {
        let state = if up { "up" } else { "down" };
        for cable in [host.to_string(), format!("{host}-phys")] {
            ip(&["-n", &self.underlay_ns(), "link", "set", "dev", &cable, state])?;
        }
        Ok(())
    }

    /// Kill the server (SIGKILL) and start it again on the same database: agents must
    /// reconnect to its stream by themselves.
    pub fn restart_server(&mut self) -> Result<(), LabError> {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        self.start_server()
    }

    /// The process id of `host`'s agent (`ip netns exec` execs the agent in its place).
    pub fn agent_pid(&self, host: &str) -> Option<u32> {
        self.agents.get(host).map(Child::id)
    }

    /// Kill the agent of `host` abruptly (SIGKILL): the kernel state must survive it. Returns
    /// once the agent and what it had started (an `nft` mid-transaction, say) have ended, so
    /// that nothing of it changes the host afterwards.
    pub fn kill_agent(&mut self, host: &str) {
        if let Some(mut c) = self.agents.remove(host) {
            let children = children_of(c.id());
            let _ = c.kill();
            let _ = c.wait();
            for _ in 0..100 {
                if !children.iter().any(|pid| running(*pid)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Create a VM namespace whose veth peer is the port's tap in the host namespace.
    pub fn add_vm(&mut self, vm: VmSpec) -> Result<(), LabError> {
        let ns = self.ns(&vm.name);
        let host_ns = self.host_ns(&vm.host);
        let tap = format!("tap{}", &vm.port_id[..11]);
        let mtu = vm.mtu.to_string();
        ip(&["netns", "add", &ns])?;
        quiet_ipv6(&ns)?;
        ip(&["-n", &ns, "link", "set", "dev", "lo", "up"])?;
        ip(&["-n", &host_ns, "link", "add", &tap, "mtu", &mtu, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
        ip(&["-n", &ns, "link", "set", "dev", "eth0", "address", &vm.mac, "mtu", &mtu])?;
        if vm.ip.is_empty() {
            // Its address comes by DHCP.
        } else if vm.ip.contains(':') {
            // An IPv6 VM: IPv6 on (the lab keeps it off elsewhere), its address without DAD.
            in_ns(&ns, &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.eth0.disable_ipv6=0"])?;
            ip(&["-n", &ns, "addr", "add", &format!("{}/{}", vm.ip, vm.prefix_len), "dev", "eth0", "nodad"])?;
        } else {
            ip(&["-n", &ns, "addr", "add", &format!("{}/{}", vm.ip, vm.prefix_len), "dev", "eth0"])?;
        }
        ip(&["-n", &ns, "link", "set", "dev", "eth0", "up"])?;
        self.vms.insert(vm.name.clone(), vm);
        Ok(())
    }

    /// A machine outside the cloud on the provider network (`br-phys`): namespace `<p><name>`
    /// (name it `vm<N>`, so a lab cleanup finds it) with `eth0` at `address` (`a.b.c.d/len`).
    /// It stands for "the internet" behind an external network.
    pub fn add_external_host(&mut self, name: &str, address: &str) -> Result<(), LabError> {
        let ns = self.ns(name);
        let ul = self.underlay_ns();
        let cable = format!("{name}-ext");
        ip(&["netns", "add", &ns])?;
        quiet_ipv6(&ns)?;
        ip(&["-n", &ns, "link", "set", "dev", "lo", "up"])?;
        ip(&["-n", &ul, "link", "add", &cable, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
        ip(&["-n", &ul, "link", "set", "dev", &cable, "master", PROVIDER_BRIDGE, "up"])?;
        ip(&["-n", &ns, "addr", "add", address, "dev", "eth0"])?;
        ip(&["-n", &ns, "link", "set", "dev", "eth0", "up"])?;
        Ok(())
    }

    /// Move a VM to another host, as a live migration would: its tap goes from the old host
    /// and comes up on `host`, with the same MAC and address (routes in the VM are the
    /// caller's to add again). The port's binding is the caller's to change.
    pub fn move_vm(&mut self, name: &str, host: &str) -> Result<(), LabError> {
        let mut vm = self.vms.remove(name).ok_or_else(|| LabError::Other(format!("no VM {name}")))?;
        let tap = format!("tap{}", &vm.port_id[..11]);
        ip(&["-n", &self.host_ns(&vm.host), "link", "del", &tap])?;
        let ns = self.ns(name);
        let mtu = vm.mtu.to_string();
        ip(&[
            "-n",
            &self.host_ns(host),
            "link",
            "add",
            &tap,
            "mtu",
            &mtu,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &ns,
        ])?;
        ip(&["-n", &ns, "link", "set", "dev", "eth0", "address", &vm.mac, "mtu", &mtu])?;
        ip(&["-n", &ns, "addr", "add", &format!("{}/{}", vm.ip, vm.prefix_len), "dev", "eth0"])?;
        ip(&["-n", &ns, "link", "set", "dev", "eth0", "up"])?;
        vm.host = host.to_string();
        self.vms.insert(name.to_string(), vm);
        Ok(())
    }

    pub fn remove_vm(&mut self, name: &str) -> Result<(), LabError> {
        if self.vms.remove(name).is_some() {
            ip(&["netns", "del", &self.ns(name)])?;
        }
        Ok(())
    }

    /// `ping -c count` from a VM; true when every echo came back.
    pub fn ping(&self, from_vm: &str, ip_addr: &str, count: u32) -> bool {
        let c = count.to_string();
        in_ns(&self.ns(from_vm), &["ping", "-n", "-q", "-c", &c, "-i", "0.2", "-W", "1", ip_addr]).is_ok()
    }

    /// Start a fast continuous ping (`count` echoes every `interval_ms`).
    pub fn start_ping(&self, from_vm: &str, ip_addr: &str, count: u32, interval_ms: u32) -> Result<PingRun, LabError> {
        let interval = format!("{:.3}", interval_ms as f64 / 1000.0);
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns(from_vm),
                "ping",
                "-n",
                "-q",
                "-c",
                &count.to_string(),
                "-i",
                &interval,
                "-W",
                "1",
                ip_addr,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        Ok(PingRun { child: Some(child) })
    }

    /// Start capturing VXLAN packets on the underlay bridge.
    pub fn capture_underlay(&self, name: &str) -> Result<Capture, LabError> {
        Capture::start(&self.underlay_ns(), "br-ul", &self.cfg.dir.join(format!("{name}.pcap")))
    }

    /// Start capturing on the provider network's bridge (`br-phys`) what matches the tcpdump
    /// `filter`; count it with [`Capture::stop_counting_frames`].
    pub fn capture_provider(&self, name: &str, filter: &[&str]) -> Result<Capture, LabError> {
        let file = self.cfg.dir.join(format!("{name}.pcap"));
        Capture::start_filtered(&self.underlay_ns(), PROVIDER_BRIDGE, &file, filter)
    }

    /// The full name of one of the lab's namespaces (by short name: `h1`, `vm1`, `ul`).
    pub fn netns(&self, short: &str) -> String {
        self.ns(short)
    }

    /// Start a command in one of the lab's namespaces (by short name) and leave it running;
    /// the caller kills it (by its handle) when done.
    pub fn spawn(&self, ns: &str, args: &[&str]) -> Result<std::process::Child, LabError> {
        Ok(Command::new("ip")
            .args(["netns", "exec", &self.ns(ns)])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?)
    }

    /// Run a command in one of the lab's namespaces (by short name: `h1`, `vm1`, `ul`).
    pub fn exec(&self, ns: &str, args: &[&str]) -> Result<String, LabError> {
        Ok(String::from_utf8_lossy(&in_ns(&self.ns(ns), args)?.stdout).to_string())
    }

    /// The last lines of a log of the lab (`server`, `agent-h1`, ...), for failure reports.
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.cfg.dir.join(format!("{name}.log"))).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn dir(&self) -> &Path {
        &self.cfg.dir
    }

    pub fn hosts(&self) -> &[String] {
        &self.cfg.hosts
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, mut c) in std::mem::take(&mut self.agents) {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        self.runtime.take();
        cleanup_prefix(&self.cfg.prefix);
    }
}

/// Keep a namespace from sending IPv6 noise (DAD, RS, MLD) of its own.
fn quiet_ipv6(ns: &str) -> Result<(), LabError> {
    in_ns(ns, &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"])
        .map(|_| ())
}

/// A running `ping`.
pub struct PingRun {
    child: Option<Child>,
}

impl PingRun {
    /// Wait for it to finish: (transmitted, received).
    pub fn finish(mut self) -> Result<(u32, u32), LabError> {
        let child = self.child.take().ok_or_else(|| LabError::Other("ping already finished".into()))?;
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        parse_ping_summary(&text).ok_or_else(|| LabError::Other(format!("cannot parse ping output: {text}")))
    }
}

impl Drop for PingRun {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// "N packets transmitted, M received" → (N, M).
fn parse_ping_summary(text: &str) -> Option<(u32, u32)> {
    let line = text.lines().find(|l| l.contains("packets transmitted"))?;
    let mut nums = line.split(',').filter_map(|part| part.split_whitespace().next()?.parse::<u32>().ok());
    Some((nums.next()?, nums.next()?))
}

/// Check that the tools the lab drives are installed.
pub fn check_tools() -> Result<(), LabError> {
    for tool in ["ip", "ping", "tcpdump"] {
        run("sh", &["-c", &format!("command -v {tool}")])
            .map_err(|_| LabError::Other(format!("{tool} is not installed")))?;
    }
    Ok(())
}

/// The processes whose parent is `pid` (from /proc).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| stat_fields(*child).is_some_and(|(_, parent)| parent == pid))
        .collect()
}

/// Whether `pid` exists and is not a zombie.
fn running(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|(state, _)| state != 'Z')
}

/// The state and parent of `pid`, from /proc/PID/stat (after the command's closing parenthesis).
fn stat_fields(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    Some((state, rest.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn cleanup_matches_only_lab_names() {
        assert!(super::is_lab_namespace("nte", "nteul"));
        assert!(super::is_lab_namespace("nte", "nteh12"));
        assert!(super::is_lab_namespace("nte", "ntevm3"));
        assert!(super::is_lab_namespace("nte", "nteh2-qdhcp-6d1f"));
        assert!(!super::is_lab_namespace("nte", "ntex-qdhcp-6d1f"));
        assert!(!super::is_lab_namespace("nte", "ntest"));
        assert!(!super::is_lab_namespace("nte", "ntevm"));
        assert!(!super::is_lab_namespace("nte", "other"));
    }

    #[test]
    fn ping_summary_is_parsed() {
        let t =
            "--- 192.0.2.5 ping statistics ---\n200 packets transmitted, 198 received, 1% packet loss, time 4000ms\n";
        assert_eq!(super::parse_ping_summary(t), Some((200, 198)));
    }
}
