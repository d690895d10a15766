//! The host's own servers for its VMs, one of each per network with local ports, in the
//! network's DHCP namespace (made by `reconcilers::dhcp`): DHCPv4 on the DHCP port's address,
//! DHCPv6 on its link, the DNS responder and the metadata proxy on 169.254.169.254. (Router
//! advertisements come from the router legs: `router_adverts`.) They answer from the table the reconciler
//! publishes per network (the local ports' leases and instances), and keep nothing else, so a
//! restarted agent answers exactly as before.

pub mod dhcp_v4;
pub mod dhcp_v6;
pub mod dns;
pub mod metadata;
pub mod router_adverts;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};

/// A local port as the metadata proxy knows it: the instance and project it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub device_id: String,
    pub project_id: String,
}

/// What one network's servers answer from.
#[derive(Debug, Clone, Default)]
pub struct NetworkTable {
    pub leases: dhcp_v4::Leases,
    pub leases_v6: dhcp_v6::Leases,
    /// The DHCP port's MAC (the DHCPv6 server's identity).
    pub server_mac: Option<[u8; 6]>,
    /// By each local port's fixed IP (and EUI-64 link-local address, which only the port
    /// itself may send from).
    pub instances: HashMap<IpAddr, Instance>,
    /// The names of the network's ports (local and remote).
    pub names: dns::Names,
}

/// The servers of one network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Server {
    DhcpV4,
    /// On networks where the DHCP port has an IPv6 address.
    DhcpV6,
    Metadata,
    /// The metadata proxy on `fe80::a9fe:a9fe`, beside `DhcpV6`.
    MetadataV6,
    Dns,
    /// The DNS responder over TCP (IPv4 and IPv6).
    DnsTcp,
    /// The DNS responder's IPv6 socket, beside `DhcpV6`.
    DnsV6,
}

/// The DNS responder's domain (the DHCP domain) and upstream resolvers
/// (`[DEFAULT] dnsmasq_dns_servers`; none: other names are refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    pub domain: String,
    pub upstream: Vec<std::net::SocketAddr>,
}

pub(crate) type Tables = Arc<RwLock<HashMap<String, Arc<NetworkTable>>>>;

/// The tables and running servers of every network this host serves.
pub struct HostServices {
    tables: Tables,
    servers: Mutex<HashMap<(String, Server), tokio::task::JoinHandle<()>>>,
    metadata: Option<Arc<metadata::Proxy>>,
    dns: Option<(String, Arc<Vec<std::net::SocketAddr>>)>,
}

impl HostServices {
    /// `metadata`: where to proxy metadata requests (none: no metadata server).
    /// `dns`: the DNS responder (none: no DNS server).
    pub fn new(metadata: Option<metadata::MetadataSettings>, dns: Option<DnsSettings>) -> Arc<HostServices> {
        Arc::new(HostServices {
            tables: Tables::default(),
            servers: Mutex::new(HashMap::new()),
            metadata: metadata.map(|m| Arc::new(metadata::Proxy::new(m))),
            dns: dns.map(|d| (d.domain, Arc::new(d.upstream))),
        })
    }

    /// The servers a served network has (`ipv6`: its DHCP port has an IPv6 address).
    pub fn servers(&self, ipv6: bool) -> Vec<Server> {
        let mut out = vec![Server::DhcpV4];
        if self.metadata.is_some() {
            out.push(Server::Metadata);
        }
        if self.dns.is_some() {
            out.extend([Server::Dns, Server::DnsTcp]);
        }
        if ipv6 {
            out.push(Server::DhcpV6);
            if self.metadata.is_some() {
                out.push(Server::MetadataV6);
            }
            if self.dns.is_some() {
                out.push(Server::DnsV6);
            }
        }
        out
    }

    /// What the network's servers answer from now on.
    pub fn publish(&self, network_id: &str, table: NetworkTable) {
        self.tables.write().unwrap_or_else(|p| p.into_inner()).insert(network_id.to_string(), Arc::new(table));
    }

    /// Whether the network's server is running.
    pub fn serving(&self, network_id: &str, server: Server) -> bool {
        let servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        servers.get(&(network_id.to_string(), server)).is_some_and(|t| !t.is_finished())
    }

    /// Start the DHCP server of the network on `socket` (made in its namespace).
    pub fn serve_dhcp(&self, network_id: &str, socket: std::net::UdpSocket) -> std::io::Result<()> {
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        let task = tokio::spawn(dhcp_v4::serve(network_id.to_string(), socket, self.tables.clone()));
        self.started(network_id, Server::DhcpV4, task);
        Ok(())
    }

    /// Start the DHCPv6 server of the network on `socket` (made in its namespace).
    pub fn serve_dhcp_v6(&self, network_id: &str, socket: std::net::UdpSocket) -> std::io::Result<()> {
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        let task = tokio::spawn(dhcp_v6::serve(network_id.to_string(), socket, self.tables.clone()));
        self.started(network_id, Server::DhcpV6, task);
        Ok(())
    }

    /// Start the metadata proxy of the network on `listener` (made in its namespace), as
    /// `server` (`Metadata` or `MetadataV6`).
    pub fn serve_metadata(
        &self,
        network_id: &str,
        server: Server,
        listener: std::net::TcpListener,
    ) -> std::io::Result<()> {
        let Some(proxy) = &self.metadata else { return Ok(()) };
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let task = tokio::spawn(metadata::serve(network_id.to_string(), listener, self.tables.clone(), proxy.clone()));
        self.started(network_id, server, task);
        Ok(())
    }

    /// Start the DNS responder of the network on `socket` (made in its namespace), as
    /// `server` (`Dns` or `DnsV6`).
    pub fn serve_dns(&self, network_id: &str, server: Server, socket: std::net::UdpSocket) -> std::io::Result<()> {
        let Some((domain, upstream)) = &self.dns else { return Ok(()) };
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        let task = tokio::spawn(dns::serve(
            network_id.to_string(),
            socket,
            self.tables.clone(),
            domain.clone(),
            upstream.clone(),
        ));
        self.started(network_id, server, task);
        Ok(())
    }

    /// Start the DNS responder of the network over TCP on `listener` (made in its namespace).
    pub fn serve_dns_tcp(&self, network_id: &str, listener: std::net::TcpListener) -> std::io::Result<()> {
        let Some((domain, upstream)) = &self.dns else { return Ok(()) };
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let task = tokio::spawn(dns::serve_tcp(
            network_id.to_string(),
            listener,
            self.tables.clone(),
            domain.clone(),
            upstream.clone(),
        ));
        self.started(network_id, Server::DnsTcp, task);
        Ok(())
    }

    fn started(&self, network_id: &str, server: Server, task: tokio::task::JoinHandle<()>) {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = servers.insert((network_id.to_string(), server), task) {
            old.abort();
        }
    }

    /// Stop the network's servers and wait until their sockets are closed (its table stays).
    pub async fn stop_servers(&self, network_id: &str) {
        let tasks: Vec<tokio::task::JoinHandle<()>> = {
            let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
            let keys: Vec<(String, Server)> = servers.keys().filter(|(n, _)| n == network_id).cloned().collect();
            keys.iter().filter_map(|k| servers.remove(k)).collect()
        };
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
    }

    /// Stop the network's servers that are not among `servers`.
    pub fn retain_servers(&self, network_id: &str, servers: &[Server]) {
        let mut all = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|(n, server), task| {
            let keep = n != network_id || servers.contains(server);
            if !keep {
                task.abort();
            }
            keep
        });
    }

    /// Stop serving the network.
    pub fn stop(&self, network_id: &str) {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        servers.retain(|(n, _), task| {
            let keep = n != network_id;
            if !keep {
                task.abort();
            }
            keep
        });
        self.tables.write().unwrap_or_else(|p| p.into_inner()).remove(network_id);
    }

    /// The networks with a server.
    pub fn networks(&self) -> Vec<String> {
        let servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<String> = servers.keys().map(|(n, _)| n.clone()).collect();
        out.sort();
        out.dedup();
        out
    }
}

impl Drop for HostServices {
    fn drop(&mut self) {
        for (_, task) in self.servers.lock().unwrap_or_else(|p| p.into_inner()).drain() {
            task.abort();
        }
    }
}

/// The table of a network, as published last.
pub(crate) fn table_of(tables: &Tables, network_id: &str) -> Option<Arc<NetworkTable>> {
    tables.read().unwrap_or_else(|p| p.into_inner()).get(network_id).cloned()
}
