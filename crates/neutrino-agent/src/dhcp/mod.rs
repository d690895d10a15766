//! The host's own DHCP servers: one socket per network with local ports, in the network's
//! DHCP namespace (made by `reconcilers::dhcp`), answering from the leases the reconciler
//! publishes (the local ports' addresses, see `neutrino_domain::dhcp`). Nothing is kept
//! beyond the host view, so a restarted agent answers exactly as before.

pub mod v4;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};

/// The leases and servers of every network this host answers DHCP for.
#[derive(Default)]
pub struct DhcpService {
    leases: Arc<RwLock<HashMap<String, Arc<v4::Leases>>>>,
    servers: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
}

impl DhcpService {
    pub fn new() -> Arc<DhcpService> {
        Arc::new(DhcpService::default())
    }

    /// What the network's server answers from now on.
    pub fn publish(&self, network_id: &str, leases: v4::Leases) {
        let mut all = self.leases.write().unwrap_or_else(|p| p.into_inner());
        all.insert(network_id.to_string(), Arc::new(leases));
    }

    /// Whether the network's server is running.
    pub fn serving(&self, network_id: &str) -> bool {
        let servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        servers.get(network_id).is_some_and(|t| !t.is_finished())
    }

    /// Start answering on `socket` (a server socket made in the network's namespace),
    /// replacing a server the network had.
    pub fn serve(&self, network_id: &str, socket: std::net::UdpSocket) -> std::io::Result<()> {
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        let task = tokio::spawn(serve_v4(network_id.to_string(), socket, self.leases.clone()));
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = servers.insert(network_id.to_string(), task) {
            old.abort();
        }
        Ok(())
    }

    /// Stop answering for the network.
    pub fn stop(&self, network_id: &str) {
        if let Some(task) = self.servers.lock().unwrap_or_else(|p| p.into_inner()).remove(network_id) {
            task.abort();
        }
        self.leases.write().unwrap_or_else(|p| p.into_inner()).remove(network_id);
    }

    /// The networks with a server.
    pub fn networks(&self) -> Vec<String> {
        self.servers.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }
}

impl Drop for DhcpService {
    fn drop(&mut self) {
        for (_, task) in self.servers.lock().unwrap_or_else(|p| p.into_inner()).drain() {
            task.abort();
        }
    }
}

async fn serve_v4(
    network_id: String,
    socket: tokio::net::UdpSocket,
    leases: Arc<RwLock<HashMap<String, Arc<v4::Leases>>>>,
) {
    let mut buf = vec![0u8; 1500];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                tracing::warn!(network = %network_id, error = %e, "DHCP server socket failed");
                return;
            }
        };
        let table = leases.read().unwrap_or_else(|p| p.into_inner()).get(&network_id).cloned();
        let Some(answer) = table.and_then(|t| v4::answer(&buf[..len], &t)) else { continue };
        let to = match answer.to {
            v4::Destination::Broadcast => Ipv4Addr::BROADCAST,
            v4::Destination::Unicast(ip) => ip,
        };
        tracing::debug!(network = %network_id, %from, %to, kind = ?answer.kind, "DHCP answer");
        if let Err(e) = socket.send_to(&answer.bytes, SocketAddr::from((to, 68))).await {
            tracing::warn!(network = %network_id, %to, error = %e, "cannot send a DHCP answer");
        }
    }
}
