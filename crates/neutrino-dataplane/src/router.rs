//! Routers in the kernel: one named network namespace per router
//! ([`crate::router_namespace`]), joined to the host's bridges by veth pairs.
//!
//! A netlink socket stays in the namespace it was created in, so each router gets an rtnetlink
//! connection of its own, opened by a thread that entered the namespace and kept until the
//! router is deleted (or its namespace is replaced behind our back). As everywhere in the data
//! plane, every operation reads first and writes only what differs: reconciling a converged
//! router sends nothing, so its traffic is never disturbed.

mod neighbours;
mod ports;
mod routes;
mod signals;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::IpNet;
use serde_json::Value;

use crate::kernel::Netlink;
use crate::netns::{self, NETNS_DIR};
use crate::{DataPlaneError, MacAddr, NamespaceKind, ObservedRouter, Result, RouterPortSpec, RouterRoute, Routers};

/// Inside every router: a router forwards (IPv4 and IPv6). Traffic arrives asymmetrically
/// when every host routes, so no reverse path filter; every host has the gateway addresses,
/// so no redirects and no duplicate address detection (`default`: devices created later take
/// it); removing a primary IPv4 address must keep the others of its subnet; and ARP stays on
/// each leg's own addresses.
const ROUTER_SYSCTLS: &[(&str, &str)] = &[
    ("ipv4/ip_forward", "1"),
    ("ipv6/conf/all/forwarding", "1"),
    ("ipv4/conf/all/rp_filter", "0"),
    ("ipv4/conf/default/rp_filter", "0"),
    ("ipv4/conf/all/send_redirects", "0"),
    ("ipv4/conf/default/send_redirects", "0"),
    ("ipv4/conf/all/promote_secondaries", "1"),
    ("ipv4/conf/default/promote_secondaries", "1"),
    ("ipv6/conf/default/accept_dad", "0"),
    // Each leg answers ARP for its own addresses only, and asks with them: a gateway host's
    // SNAT leg must not answer for the interfaces' gateway addresses beside it.
    ("ipv4/conf/all/arp_ignore", "1"),
    ("ipv4/conf/all/arp_announce", "2"),
    // An IPv6 address added (a gateway address taken over) is announced by an unsolicited
    // neighbour advertisement, as an IPv4 one by the agent's gratuitous ARP.
    ("ipv6/conf/all/ndisc_notify", "1"),
    ("ipv6/conf/default/ndisc_notify", "1"),
];

/// Inside every DHCP namespace: one leg, holding the DHCP port's addresses (the same on every
/// host, so no duplicate address detection), which forwards nothing, learns nothing from
/// router advertisements, and answers ARP for its own addresses only.
const DHCP_SYSCTLS: &[(&str, &str)] = &[
    ("ipv4/ip_forward", "0"),
    ("ipv6/conf/all/forwarding", "0"),
    ("ipv6/conf/default/accept_dad", "0"),
    ("ipv6/conf/default/accept_ra", "0"),
    ("ipv6/conf/default/autoconf", "0"),
    ("ipv4/conf/all/arp_ignore", "1"),
    ("ipv4/conf/all/arp_announce", "2"),
];

fn sysctls(kind: NamespaceKind) -> &'static [(&'static str, &'static str)] {
    match kind {
        NamespaceKind::Router => ROUTER_SYSCTLS,
        NamespaceKind::Dhcp => DHCP_SYSCTLS,
    }
}

/// The routers' namespaces of one host, as [`Routers`].
pub struct KernelRouters {
    /// The host's connection: the outside ends of the ports and the bridges are there.
    host: Arc<Netlink>,
    /// The host's namespace, for the sysctls of the outside ends.
    host_netns: Arc<File>,
    /// What our namespaces' names start with: the prefix and the kind's tag (`qrouter-`).
    start: String,
    kind: NamespaceKind,
    /// The open connections, by router id.
    open: Mutex<HashMap<String, Arc<RouterNs>>>,
}

/// One router's namespace, open.
pub(crate) struct RouterNs {
    /// The namespace's name (for messages).
    name: String,
    netns: Arc<File>,
    /// Of the namespace when it was opened: a different one at the path means it was replaced.
    identity: (u64, u64),
    netlink: Netlink,
    connection: tokio::task::JoinHandle<()>,
}

impl Drop for RouterNs {
    /// Closes the socket now, so it does not keep a deleted namespace alive.
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl KernelRouters {
    /// The routers of the host whose rtnetlink connection is `host` (and whose namespace is
    /// the calling thread's), with namespaces named `{prefix}qrouter-<id>` (or the tag of
    /// another kind).
    pub(crate) fn new(host: Arc<Netlink>, prefix: &str, kind: NamespaceKind) -> Result<Self> {
        if prefix.contains(['/', '\0']) {
            return Err(invalid(format!("namespace prefix {prefix:?}")));
        }
        Ok(KernelRouters {
            host,
            host_netns: Arc::new(File::open("/proc/thread-self/ns/net")?),
            start: format!("{prefix}{}", kind.tag()),
            kind,
            open: Mutex::new(HashMap::new()),
        })
    }

    fn path(&self, router_id: &str) -> Result<PathBuf> {
        if router_id.is_empty() || router_id.contains(['/', '\0']) {
            return Err(invalid(format!("router id {router_id:?}")));
        }
        Ok(PathBuf::from(NETNS_DIR).join(format!("{}{router_id}", self.start)))
    }

    fn cache(&self) -> MutexGuard<'_, HashMap<String, Arc<RouterNs>>> {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The router's namespace, opened (once) and connected, or `None` when it has none.
    async fn get(&self, router_id: &str) -> Result<Option<Arc<RouterNs>>> {
        let path = self.path(router_id)?;
        let Some(identity) = netns::identity(&path) else {
            self.cache().remove(router_id);
            return Ok(None);
        };
        if let Some(open) = self.cache().get(router_id).filter(|r| r.identity == identity) {
            return Ok(Some(open.clone()));
        }
        let netns = match File::open(&path) {
            Ok(file) => Arc::new(file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let identity = netns::identity_of(&netns)?;
        let (handle, connection) = netns::netlink_in(netns.clone()).await?;
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let open = Arc::new(RouterNs { name, netns, identity, netlink: Netlink::new(handle), connection });
        self.cache().insert(router_id.to_string(), open.clone());
        Ok(Some(open))
    }

    /// Like [`Self::get`], but a missing namespace is [`DataPlaneError::NoSuchRouter`].
    async fn require(&self, router_id: &str) -> Result<Arc<RouterNs>> {
        let path = self.path(router_id)?;
        self.get(router_id).await?.ok_or_else(|| {
            DataPlaneError::NoSuchRouter(path.file_name().unwrap_or_default().to_string_lossy().into_owned())
        })
    }
}

/// The routes asked for, one per destination (the last wins), with the destinations taken as
/// networks. A route's destination and gateway must have the same family.
pub(crate) fn desired_routes(routes: &[RouterRoute]) -> Result<BTreeMap<IpNet, IpAddr>> {
    let mut want = BTreeMap::new();
    for r in routes {
        if r.destination.addr().is_ipv4() != r.via.is_ipv4() {
            return Err(invalid(format!("route {} via {}: the address families differ", r.destination, r.via)));
        }
        want.insert(r.destination.trunc(), r.via);
    }
    Ok(want)
}

/// Both ends' names must be valid link names: 1 to 15 characters (IFNAMSIZ less the NUL),
/// not `.` or `..`, without `/`, `:` or whitespace (the kernel's `dev_valid_name`).
pub(crate) fn check_port_names(spec: &RouterPortSpec) -> Result<()> {
    for name in [&spec.name, &spec.outside] {
        let bad = name.is_empty()
            || name.len() > 15
            || name == "."
            || name == ".."
            || name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace());
        if bad {
            return Err(invalid(format!("link name {name:?} (1 to 15 characters, no '/', ':' or spaces)")));
        }
    }
    Ok(())
}

fn invalid(what: String) -> DataPlaneError {
    io::Error::new(io::ErrorKind::InvalidInput, format!("invalid {what}")).into()
}

impl Routers for KernelRouters {
    async fn list(&self) -> Result<Vec<String>> {
        let entries = match std::fs::read_dir(NETNS_DIR) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let name = entry?.file_name();
            let id = name.to_str().and_then(|n| n.strip_prefix(self.start.as_str()));
            if let Some(id) = id.filter(|id| !id.is_empty()) {
                ids.push(id.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    async fn ensure(&self, router_id: &str) -> Result<()> {
        let path = self.path(router_id)?;
        if netns::identity(&path).is_none() {
            netns::create(&path).await?;
            tracing::info!(namespace = %path.display(), "created namespace");
        }
        let router = self.require(router_id).await?;
        if !router.netlink.require_link("lo").await?.up {
            router.netlink.set_up("lo").await?;
        }
        let wanted = sysctls(self.kind);
        let written = netns::on_thread(Some(router.netns.clone()), move || netns::converge_sysctls(wanted)).await?;
        if written > 0 {
            tracing::info!(namespace = %router.name, written, "set namespace sysctls");
        }
        Ok(())
    }

    async fn delete(&self, router_id: &str) -> Result<()> {
        let path = self.path(router_id)?;
        if let Some(router) = self.get(router_id).await? {
            // Deleting the inside ends takes the veth pairs out of the host's bridges now,
            // rather than whenever the kernel gets round to destroying the namespace (so a
            // router created again at once finds its outside names free).
            ports::delete_all(&router).await?;
        }
        self.cache().remove(router_id);
        netns::remove(&path)?;
        tracing::info!(namespace = %path.display(), "deleted namespace");
        Ok(())
    }

    async fn observe(&self, router_id: &str) -> Result<Option<ObservedRouter>> {
        let Some(router) = self.get(router_id).await? else {
            return Ok(None);
        };
        let ports = ports::observe(&router).await?;
        let routes = routes::observe(&router).await?.into_iter().map(|r| r.route).collect();
        let marked_routes = routes::observe_marked(&router).await?;
        Ok(Some(ObservedRouter { ports, routes, marked_routes }))
    }

    async fn ensure_port(&self, router_id: &str, spec: &RouterPortSpec) -> Result<()> {
        check_port_names(spec)?;
        let router = self.require(router_id).await?;
        ports::ensure(&self.host, &self.host_netns, &router, spec).await
    }

    async fn delete_port(&self, router_id: &str, name: &str) -> Result<()> {
        match self.get(router_id).await? {
            Some(router) => router.netlink.delete_link(name).await,
            None => Ok(()),
        }
    }

    async fn set_routes(&self, router_id: &str, routes: &[RouterRoute]) -> Result<()> {
        let router = self.require(router_id).await?;
        routes::converge(&router, routes).await
    }

    async fn set_marked_routes(&self, router_id: &str, device: &str, routes: &[RouterRoute]) -> Result<()> {
        let router = self.require(router_id).await?;
        routes::converge_marked(&router, device, routes).await
    }

    async fn nft(&self, router_id: &str, batch: &Value) -> Result<()> {
        let router = self.require(router_id).await?;
        crate::nft::run_nft(&router.netns, &["-j", "-f", "-"], Some(batch.to_string())).await.map(|_| ())
    }

    async fn nft_list(&self, router_id: &str, family: &str, table: &str) -> Result<Option<Value>> {
        let Some(router) = self.get(router_id).await? else {
            return Ok(None);
        };
        match crate::nft::run_nft(&router.netns, &["-j", "list", "table", family, table], None).await {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| DataPlaneError::Nftables(e.to_string())),
            Err(DataPlaneError::Nftables(e)) if e.contains("No such file or directory") => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn announce(&self, router_id: &str, device: &str, ip: Ipv4Addr) -> Result<()> {
        let router = self.require(router_id).await?;
        signals::announce(&router, device, ip).await
    }

    async fn flush_conntrack(&self, router_id: &str, ip: IpAddr) -> Result<()> {
        match self.get(router_id).await? {
            Some(router) => signals::flush_conntrack(&router, ip).await,
            None => Ok(()),
        }
    }

    async fn set_neighbours(&self, router_id: &str, device: &str, entries: &[(IpAddr, MacAddr)]) -> Result<()> {
        let router = self.require(router_id).await?;
        neighbours::converge(&router.netlink, device, entries).await
    }

    async fn in_namespace<T: Send + 'static>(
        &self,
        router_id: &str,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> Result<T> {
        let router = self.require(router_id).await?;
        netns::on_thread(Some(router.netns.clone()), move || f().map_err(DataPlaneError::from)).await
    }
}
