//! The host's own servers for its VMs, one of each per network with local ports, in the
//! network's DHCP namespace (made by `reconcilers::dhcp`): DHCPv4 on the DHCP port's address
//! and the metadata proxy on 169.254.169.254. They answer from the table the reconciler
//! publishes per network (the local ports' leases and instances), and keep nothing else, so a
//! restarted agent answers exactly as before.

pub mod dhcp_v4;
pub mod dns;
pub mod metadata;

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
    /// By each local port's fixed IP.
    pub instances: HashMap<IpAddr, Instance>,
    /// The names of the network's ports (local and remote).
    pub names: dns::Names,
}

/// The servers of one network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Server {
    DhcpV4,
    Metadata,
    Dns,
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

    /// The servers every served network has.
    pub fn servers(&self) -> Vec<Server> {
        let mut out = vec![Server::DhcpV4];
        if self.metadata.is_some() {
            out.push(Server::Metadata);
        }
        if self.dns.is_some() {
            out.push(Server::Dns);
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

    /// Start the metadata proxy of the network on `listener` (made in its namespace).
    pub fn serve_metadata(&self, network_id: &str, listener: std::net::TcpListener) -> std::io::Result<()> {
        let Some(proxy) = &self.metadata else { return Ok(()) };
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let task = tokio::spawn(metadata::serve(network_id.to_string(), listener, self.tables.clone(), proxy.clone()));
        self.started(network_id, Server::Metadata, task);
        Ok(())
    }

    /// Start the DNS responder of the network on `socket` (made in its namespace).
    pub fn serve_dns(&self, network_id: &str, socket: std::net::UdpSocket) -> std::io::Result<()> {
        let Some((domain, upstream)) = &self.dns else { return Ok(()) };
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        let task = tokio::spawn(dns::serve(
            network_id.to_string(),
            socket,
            self.tables.clone(),
            domain.clone(),
            upstream.clone(),
        ));
        self.started(network_id, Server::Dns, task);
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
