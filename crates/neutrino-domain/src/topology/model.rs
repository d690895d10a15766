//! The model every server folds the change log into, with the indexes that make a change cost
//! work in proportion to the hosts whose view it changes.
//!
//! A host's view (see `neutrino_api::agent::HostState`) is a function of the model:
//! - `local_ports`: the ports whose `binding:host_id` is the host;
//! - `networks`: the networks of its bound local ports, each as the segment they are bound to
//!   (the lowest segment id when they are bound to several) with the network's MTU;
//! - `remote_ports` (with L2 population): the ports bound on other hosts to the segments its
//!   local ports are bound to, with the VTEP of their host's L2 agent;
//! - `security_groups`: the groups its local ports are in, with their rules;
//! - `group_members`: the ports (on any host) of every group that those groups' rules name as
//!   remote group, one entry per (group, port), so a port joining a group of 1000 changes
//!   one entry of each host that needs it.
//!
//! [`Topology::view`] computes it from scratch; [`Topology::apply`] applies one revision and
//! returns, per host, exactly the entries whose value changed.

use super::images::{
    AddressGroupImage, AgentImage, FloatingIpImage, Image, NetworkImage, ObjectChange, ObjectKind, PortImage,
    RouterImage, SecurityGroupImage, SegmentImage,
};
use neutrino_api::agent::{
    GroupMember, HostAddressGroup, HostDelta, HostNetwork, HostSecurityGroup, HostState, LocalPort, RemotePort,
    AGENT_TYPE_LINUXBRIDGE, AGENT_TYPE_OVS,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

mod groups;
pub(crate) mod routing;

/// The agent types whose tunnel IP is a host's VTEP, in order of preference.
const L2_AGENT_TYPES: [&str; 2] = [AGENT_TYPE_LINUXBRIDGE, AGENT_TYPE_OVS];

#[derive(Debug, Clone, Default)]
pub struct Topology {
    l2population: bool,
    networks: HashMap<String, Arc<NetworkImage>>,
    segments: HashMap<String, Arc<SegmentImage>>,
    ports: HashMap<String, Arc<PortImage>>,
    agents: HashMap<String, Arc<AgentImage>>,
    /// host → every port with that `binding:host_id`.
    ports_on_host: HashMap<String, BTreeSet<String>>,
    /// segment → the ports bound to it (on any host).
    bound_on_segment: HashMap<String, BTreeSet<String>>,
    /// host → segment → how many of the host's ports are bound to it.
    host_segments: HashMap<String, BTreeMap<String, u32>>,
    /// segment → the hosts with a port bound to it.
    segment_hosts: HashMap<String, BTreeSet<String>>,
    /// host → network → segment → how many of the host's ports are bound to it.
    host_networks: HashMap<String, BTreeMap<String, BTreeMap<String, u32>>>,
    /// network → the hosts with a port bound on it.
    network_hosts: HashMap<String, BTreeSet<String>>,
    /// host → `(preference, agent id)` of its L2 agents.
    l2_agents: HashMap<String, BTreeSet<(usize, String)>>,
    groups: HashMap<String, Arc<SecurityGroupImage>>,
    /// security group → every port in it (on any host, or none).
    group_ports: HashMap<String, BTreeSet<String>>,
    /// host → security group → how many of the host's ports are in it.
    host_groups: HashMap<String, BTreeMap<String, u32>>,
    /// security group → the hosts with a port in it.
    group_hosts: HashMap<String, BTreeSet<String>>,
    /// security group → the groups whose rules name it as remote group.
    referenced_by: HashMap<String, BTreeSet<String>>,
    address_groups: HashMap<String, Arc<AddressGroupImage>>,
    /// address group → the security groups whose rules name it.
    address_group_users: HashMap<String, BTreeSet<String>>,
    /// network → its segments.
    network_segments: HashMap<String, BTreeSet<String>>,
    /// router → its interface ports.
    router_ports: HashMap<String, BTreeSet<String>>,
    /// network → router → how many of the router's interfaces are on it.
    network_routers: HashMap<String, BTreeMap<String, u32>>,
    /// host → the routers it runs.
    host_routers: HashMap<String, BTreeSet<String>>,
    /// router → the hosts that run it.
    router_hosts: HashMap<String, BTreeSet<String>>,
    /// host → network → segment: its routed presence (see `routing`).
    routed: HashMap<String, BTreeMap<String, String>>,
    /// router → its centralized SNAT ports.
    router_snat_ports: HashMap<String, BTreeSet<String>>,
    /// router → its gateway port (one; the lowest id should there be more).
    router_gateways: HashMap<String, BTreeSet<String>>,
    floating_ips: HashMap<String, Arc<FloatingIpImage>>,
    routers: HashMap<String, Arc<RouterImage>>,
    /// port → the floating IPs of its fixed IPs.
    port_floating_ips: HashMap<String, BTreeSet<String>>,
}

/// One entry of a host's view.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    Network(String),
    Local(String),
    Remote(String),
    Group(String),
    /// `(group, port)`.
    Member(String, String),
    AddressGroup(String),
}

/// The value of a [`Key`] in a host's view (`None`: not in the view).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Network(Option<HostNetwork>),
    Local(Option<LocalPort>),
    Remote(Option<RemotePort>),
    Group(Option<HostSecurityGroup>),
    Member(Option<GroupMember>),
    AddressGroup(Option<HostAddressGroup>),
}

impl Topology {
    /// An empty model. `l2population`: whether views carry remote ports.
    pub fn new(l2population: bool) -> Topology {
        Topology { l2population, ..Topology::default() }
    }

    pub fn l2population(&self) -> bool {
        self.l2population
    }

    /// The image an object has now.
    pub fn image(&self, kind: ObjectKind, id: &str) -> Option<Image> {
        match kind {
            ObjectKind::Network => self.networks.get(id).cloned().map(Image::Network),
            ObjectKind::Segment => self.segments.get(id).cloned().map(Image::Segment),
            ObjectKind::Port => self.ports.get(id).cloned().map(Image::Port),
            ObjectKind::Agent => self.agents.get(id).cloned().map(Image::Agent),
            ObjectKind::SecurityGroup => self.groups.get(id).cloned().map(Image::SecurityGroup),
            ObjectKind::AddressGroup => self.address_groups.get(id).cloned().map(Image::AddressGroup),
            ObjectKind::FloatingIp => self.floating_ips.get(id).cloned().map(Image::FloatingIp),
            ObjectKind::Router => self.routers.get(id).cloned().map(Image::Router),
        }
    }

    /// The number of objects held.
    pub fn len(&self) -> usize {
        self.networks.len()
            + self.segments.len()
            + self.ports.len()
            + self.agents.len()
            + self.groups.len()
            + self.address_groups.len()
            + self.floating_ips.len()
            + self.routers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The hosts that have ports or agents.
    pub fn hosts(&self) -> BTreeSet<String> {
        let mut hosts: BTreeSet<String> = self.ports_on_host.keys().cloned().collect();
        hosts.extend(self.agents.values().map(|a| a.host.clone()));
        hosts
    }

    /// Apply one revision's changes without computing deltas (loading the log).
    pub fn load(&mut self, changes: &[ObjectChange]) {
        for c in changes {
            self.mutate(c);
        }
    }

    /// Apply one revision's changes and return, for every host `wanted` says yes to, the
    /// entries of its view that changed. Work is proportional to the entries that can change.
    pub fn apply(&mut self, changes: &[ObjectChange], wanted: &dyn Fn(&str) -> bool) -> BTreeMap<String, HostDelta> {
        // The value of every entry a change can touch, before the revision.
        let mut before: BTreeMap<(String, Key), Value> = BTreeMap::new();
        // Hosts whose routers a change can change: their whole views are compared.
        let mut whole: BTreeMap<String, HostState> = BTreeMap::new();
        for change in changes {
            for host in self.routing_hosts(change) {
                if wanted(&host) && !whole.contains_key(&host) {
                    // Its view before the revision: as now, with what earlier changes of the
                    // revision touched as it was.
                    let mut view = self.view(&host);
                    for ((h, key), value) in &before {
                        if *h == host {
                            restore(&mut view, key, value);
                        }
                    }
                    whole.insert(host, view);
                }
            }
            let mut dirty = Vec::new();
            self.dirty_entries(change, wanted, &mut dirty);
            for (host, key) in dirty {
                if !before.contains_key(&(host.clone(), key.clone())) {
                    let value = self.value(&host, &key);
                    before.insert((host, key), value);
                }
            }
            self.mutate(change);
        }
        let mut deltas: BTreeMap<String, HostDelta> = BTreeMap::new();
        for ((host, key), old) in before {
            let new = self.value(&host, &key);
            if new != old && !whole.contains_key(&host) {
                put(deltas.entry(host).or_default(), &key, new);
            }
        }
        for (host, old) in whole {
            match old.diff(&self.view(&host)) {
                Some(delta) => {
                    deltas.insert(host, delta);
                }
                None => {
                    deltas.remove(&host);
                }
            }
        }
        deltas
    }

    /// A host's whole view.
    pub fn view(&self, host: &str) -> HostState {
        let mut state = HostState::default();
        for id in self.ports_on_host.get(host).into_iter().flatten() {
            if let Some(p) = self.local_port(host, id) {
                state.local_ports.insert(id.clone(), p);
            }
        }
        for network in self.host_networks.get(host).into_iter().flat_map(|n| n.keys()) {
            if let Some(n) = self.network_entry(host, network) {
                state.networks.insert(network.clone(), n);
            }
        }
        for group in self.host_groups.get(host).into_iter().flat_map(|g| g.keys()) {
            if let Some(g) = self.group_entry(host, group) {
                state.security_groups.insert(group.clone(), g);
            }
            for ag in self.groups.get(group).into_iter().flat_map(|g| g.address_groups()) {
                if let Some(entry) = self.address_group_entry(host, ag) {
                    state.address_groups.insert(ag.to_string(), entry);
                }
            }
            for remote in self.groups.get(group).into_iter().flat_map(|g| g.remote_groups()) {
                for port in self.group_ports.get(remote).into_iter().flatten() {
                    let key = GroupMember::key(remote, port);
                    if state.group_members.contains_key(&key) {
                        continue;
                    }
                    if let Some(m) = self.member_entry(host, remote, port) {
                        state.group_members.insert(key, m);
                    }
                }
            }
        }
        state.routers = self.router_entries(host);
        if self.l2population {
            for segment in self.host_segments.get(host).into_iter().flat_map(|s| s.keys()) {
                for id in self.bound_on_segment.get(segment).into_iter().flatten() {
                    if let Some(p) = self.remote_port(host, id) {
                        state.remote_ports.insert(id.clone(), p);
                    }
                }
            }
        }
        state
    }

    /// The entries `change` can touch in the views of wanted hosts, judged before it applies.
    fn dirty_entries(&self, change: &ObjectChange, wanted: &dyn Fn(&str) -> bool, out: &mut Vec<(String, Key)>) {
        let mut add = |host: &str, key: Key| {
            if wanted(host) {
                out.push((host.to_string(), key));
            }
        };
        let id = change.id.as_str();
        match (change.kind, &change.image) {
            (ObjectKind::Port, image) => {
                let old = self.ports.get(id).map(Arc::as_ref);
                let new = match image {
                    Some(Image::Port(p)) => Some(p.as_ref()),
                    _ => None,
                };
                if old == new {
                    // Written again unchanged (an agent reporting the status it had).
                    return;
                }
                let mut segments: BTreeSet<&str> = BTreeSet::new();
                for p in old.iter().chain(new.iter()) {
                    if !p.host.is_empty() {
                        add(&p.host, Key::Local(id.to_string()));
                        for q in old.iter().chain(new.iter()) {
                            add(&p.host, Key::Network(q.network_id.clone()));
                        }
                    }
                    if let Some((_, segment)) = p.bound() {
                        segments.insert(segment);
                    }
                }
                self.dirty_port_groups(id, old, new, &mut add);
                // What other hosts see of the port: a change of its status or admin state
                // alone concerns its own host only.
                if !self.l2population || old.map(seen_by_others) == new.map(seen_by_others) {
                    return;
                }
                // The port itself, as a remote port of the hosts on its segments.
                for segment in &segments {
                    for host in self.segment_hosts.get(*segment).into_iter().flatten() {
                        add(host, Key::Remote(id.to_string()));
                    }
                }
                // A host that gains or loses a segment gains or loses its remote ports.
                let old_binding = old.and_then(PortImage::bound);
                let new_binding = new.and_then(PortImage::bound);
                if old_binding != new_binding {
                    let count = |(host, segment): (&str, &str)| {
                        self.host_segments.get(host).and_then(|s| s.get(segment)).copied().unwrap_or(0)
                    };
                    let lost = old_binding.filter(|b| count(*b) == 1);
                    let gained = new_binding.filter(|b| count(*b) == 0);
                    for (host, segment) in lost.into_iter().chain(gained) {
                        for q in self.bound_on_segment.get(segment).into_iter().flatten() {
                            add(host, Key::Remote(q.clone()));
                        }
                    }
                }
            }
            (ObjectKind::Agent, image) => {
                if !self.l2population {
                    return;
                }
                let old = self.agents.get(id);
                let new = match image {
                    Some(Image::Agent(a)) => Some(a),
                    _ => None,
                };
                if old == new {
                    // An agent registering again (a restart) with what it had.
                    return;
                }
                let hosts: BTreeSet<&str> = old.iter().chain(new.iter()).map(|a| a.host.as_str()).collect();
                for agent_host in hosts {
                    // Every port on the agent's host, as a remote port of the hosts sharing its segment.
                    for port_id in self.ports_on_host.get(agent_host).into_iter().flatten() {
                        let Some((_, segment)) = self.ports.get(port_id).and_then(|p| p.bound()) else {
                            continue;
                        };
                        for host in self.segment_hosts.get(segment).into_iter().flatten() {
                            add(host, Key::Remote(port_id.clone()));
                        }
                    }
                }
            }
            (ObjectKind::SecurityGroup, image) => {
                let old = self.groups.get(id).map(Arc::as_ref);
                let new = match image {
                    Some(Image::SecurityGroup(g)) => Some(g.as_ref()),
                    _ => None,
                };
                if old == new {
                    return;
                }
                let hosts = self.group_hosts.get(id).into_iter().flatten();
                let old_remotes = old.map(SecurityGroupImage::remote_groups).unwrap_or_default();
                let new_remotes = new.map(SecurityGroupImage::remote_groups).unwrap_or_default();
                let changed: Vec<&str> = old_remotes.symmetric_difference(&new_remotes).copied().collect();
                let old_ags = old.map(SecurityGroupImage::address_groups).unwrap_or_default();
                let new_ags = new.map(SecurityGroupImage::address_groups).unwrap_or_default();
                let changed_ags: Vec<&str> = old_ags.symmetric_difference(&new_ags).copied().collect();
                for host in hosts {
                    add(host, Key::Group(id.to_string()));
                    for ag in &changed_ags {
                        add(host, Key::AddressGroup(ag.to_string()));
                    }
                    // Remote groups named or no longer named: their members come or go.
                    for remote in &changed {
                        for port in self.group_ports.get(*remote).into_iter().flatten() {
                            add(host, Key::Member(remote.to_string(), port.clone()));
                        }
                    }
                }
            }
            // Routers' floating IPs are part of whole-view diffs (`routing_hosts`).
            (ObjectKind::FloatingIp | ObjectKind::Router, _) => {}
            (ObjectKind::AddressGroup, _) => {
                for group in self.address_group_users.get(id).into_iter().flatten() {
                    for host in self.group_hosts.get(group).into_iter().flatten() {
                        add(host, Key::AddressGroup(id.to_string()));
                    }
                }
            }
            (ObjectKind::Network, _) => {
                for host in self.network_hosts.get(id).into_iter().flatten() {
                    add(host, Key::Network(id.to_string()));
                }
            }
            (ObjectKind::Segment, image) => {
                let mut networks: BTreeSet<&str> = BTreeSet::new();
                if let Some(s) = self.segments.get(id) {
                    networks.insert(&s.network_id);
                }
                if let Some(Image::Segment(s)) = image {
                    networks.insert(&s.network_id);
                }
                for host in self.segment_hosts.get(id).into_iter().flatten() {
                    for network in &networks {
                        add(host, Key::Network(network.to_string()));
                    }
                }
            }
        }
    }

    fn value(&self, host: &str, key: &Key) -> Value {
        match key {
            Key::Network(id) => Value::Network(self.network_entry(host, id)),
            Key::Local(id) => Value::Local(self.local_port(host, id)),
            Key::Remote(id) => Value::Remote(self.remote_port(host, id)),
            Key::Group(id) => Value::Group(self.group_entry(host, id)),
            Key::Member(group, port) => Value::Member(self.member_entry(host, group, port)),
            Key::AddressGroup(id) => Value::AddressGroup(self.address_group_entry(host, id)),
        }
    }

    fn local_port(&self, host: &str, id: &str) -> Option<LocalPort> {
        let p = self.ports.get(id).filter(|p| p.host == host)?;
        Some(LocalPort {
            network_id: p.network_id.clone(),
            mac_address: p.mac_address.clone(),
            admin_state_up: p.admin_state_up,
            status: p.status.clone(),
            ip_addresses: p.ip_addresses.clone(),
            port_security_enabled: p.port_security_enabled,
            security_groups: p.security_groups.clone(),
            allowed_address_pairs: p.allowed_address_pairs.clone(),
            extra_dhcp_opts: p.extra_dhcp_opts.clone(),
            dns_name: p.dns_name.clone(),
            device_id: p.device_id.clone(),
            project_id: p.project_id.clone(),
        })
    }

    fn network_entry(&self, host: &str, network_id: &str) -> Option<HostNetwork> {
        let network = self.networks.get(network_id)?;
        let segments = self.host_networks.get(host)?.get(network_id)?;
        let segment = segments.keys().find_map(|id| self.segments.get(id))?;
        Some(HostNetwork {
            network_type: segment.network_type.clone(),
            physical_network: segment.physical_network.clone(),
            segmentation_id: segment.segmentation_id,
            mtu: network.mtu,
            subnets: network.subnets.clone(),
            dhcp: network.dhcp.clone(),
        })
    }

    fn remote_port(&self, host: &str, id: &str) -> Option<RemotePort> {
        if !self.l2population {
            return None;
        }
        let p = self.ports.get(id)?;
        let (port_host, segment) = p.bound()?;
        if port_host == host || !self.host_segments.get(host).is_some_and(|s| s.contains_key(segment)) {
            return None;
        }
        Some(RemotePort {
            network_id: p.network_id.clone(),
            mac_address: p.mac_address.clone(),
            ip_addresses: p.ip_addresses.clone(),
            tunnel_ip: self.vtep(port_host)?.to_string(),
            dns_name: p.dns_name.clone(),
        })
    }

    /// The ids of the ports whose `binding:host_id` is `host`.
    pub fn ports_of<'a>(&'a self, host: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.ports_on_host.get(host).into_iter().flatten().map(String::as_str)
    }

    /// The ids of the ports bound to `segment`.
    pub fn bound_ports_on<'a>(&'a self, segment: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.bound_on_segment.get(segment).into_iter().flatten().map(String::as_str)
    }

    /// The ids of the ports in security group `group`.
    pub fn ports_in_group<'a>(&'a self, group: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.group_ports.get(group).into_iter().flatten().map(String::as_str)
    }

    /// The ids of the L2 agents on `host`.
    pub fn agents_of<'a>(&'a self, host: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.l2_agents.get(host).into_iter().flatten().map(|(_, id)| id.as_str())
    }

    /// The tunnel IP of the host's L2 agent (a Linux bridge agent before an OVS agent).
    pub fn vtep(&self, host: &str) -> Option<&str> {
        let (_, id) = self.l2_agents.get(host)?.first()?;
        self.agents.get(id).map(|a| a.tunnel_ip.as_str())
    }

    /// Replace an object's image (or remove it) and keep the indexes right.
    fn mutate(&mut self, change: &ObjectChange) {
        let routing_hosts = self.routing_hosts(change);
        self.mutate_object(change);
        for host in routing_hosts {
            self.refresh_routing(&host);
        }
    }

    fn mutate_object(&mut self, change: &ObjectChange) {
        let id = change.id.as_str();
        match (change.kind, &change.image) {
            (ObjectKind::Network, Some(Image::Network(n))) => {
                self.networks.insert(id.to_string(), n.clone());
            }
            (ObjectKind::Network, _) => {
                self.networks.remove(id);
            }
            (ObjectKind::Segment, image) => {
                if let Some(old) = self.segments.remove(id) {
                    remove_from(&mut self.network_segments, &old.network_id, id);
                }
                if let Some(Image::Segment(s)) = image {
                    self.network_segments.entry(s.network_id.clone()).or_default().insert(id.to_string());
                    self.segments.insert(id.to_string(), s.clone());
                }
            }
            (ObjectKind::Port, image) => {
                if let Some(old) = self.ports.remove(id) {
                    self.unindex_port(id, &old);
                }
                if let Some(Image::Port(p)) = image {
                    self.index_port(id, p);
                    self.ports.insert(id.to_string(), p.clone());
                }
            }
            (ObjectKind::Router, Some(Image::Router(r))) => {
                self.routers.insert(id.to_string(), r.clone());
            }
            (ObjectKind::Router, _) => {
                self.routers.remove(id);
            }
            (ObjectKind::FloatingIp, image) => {
                if let Some(old) = self.floating_ips.remove(id) {
                    for port in routing::ports_of_floating_ip(&old) {
                        remove_from(&mut self.port_floating_ips, port, id);
                    }
                }
                if let Some(Image::FloatingIp(f)) = image {
                    for port in routing::ports_of_floating_ip(f) {
                        self.port_floating_ips.entry(port.to_string()).or_default().insert(id.to_string());
                    }
                    self.floating_ips.insert(id.to_string(), f.clone());
                }
            }
            (ObjectKind::AddressGroup, Some(Image::AddressGroup(a))) => {
                self.address_groups.insert(id.to_string(), a.clone());
            }
            (ObjectKind::AddressGroup, _) => {
                self.address_groups.remove(id);
            }
            (ObjectKind::SecurityGroup, image) => {
                if let Some(old) = self.groups.remove(id) {
                    for remote in old.remote_groups() {
                        remove_from(&mut self.referenced_by, remote, id);
                    }
                    for ag in old.address_groups() {
                        remove_from(&mut self.address_group_users, ag, id);
                    }
                }
                if let Some(Image::SecurityGroup(g)) = image {
                    for remote in g.remote_groups() {
                        self.referenced_by.entry(remote.to_string()).or_default().insert(id.to_string());
                    }
                    for ag in g.address_groups() {
                        self.address_group_users.entry(ag.to_string()).or_default().insert(id.to_string());
                    }
                    self.groups.insert(id.to_string(), g.clone());
                }
            }
            (ObjectKind::Agent, image) => {
                if let Some(old) = self.agents.remove(id) {
                    if let Some(set) = self.l2_agents.get_mut(&old.host) {
                        set.retain(|(_, a)| a != id);
                        if set.is_empty() {
                            self.l2_agents.remove(&old.host);
                        }
                    }
                }
                if let Some(Image::Agent(a)) = image {
                    if let Some(preference) = L2_AGENT_TYPES.iter().position(|t| *t == a.agent_type) {
                        self.l2_agents.entry(a.host.clone()).or_default().insert((preference, id.to_string()));
                    }
                    self.agents.insert(id.to_string(), a.clone());
                }
            }
        }
    }

    fn index_port(&mut self, id: &str, p: &PortImage) {
        self.index_router_port(id, p, true);
        for group in &p.security_groups {
            self.group_ports.entry(group.clone()).or_default().insert(id.to_string());
            if !p.host.is_empty() {
                *self.host_groups.entry(p.host.clone()).or_default().entry(group.clone()).or_default() += 1;
                self.group_hosts.entry(group.clone()).or_default().insert(p.host.clone());
            }
        }
        if p.host.is_empty() {
            return;
        }
        self.ports_on_host.entry(p.host.clone()).or_default().insert(id.to_string());
        let Some((host, segment)) = p.bound() else {
            return;
        };
        self.bound_on_segment.entry(segment.to_string()).or_default().insert(id.to_string());
        let (host, segment) = (host.to_string(), segment.to_string());
        self.add_presence(&host, &p.network_id, &segment);
    }

    fn unindex_port(&mut self, id: &str, p: &PortImage) {
        self.index_router_port(id, p, false);
        for group in &p.security_groups {
            remove_from(&mut self.group_ports, group, id);
            if !p.host.is_empty() && decrement(self.host_groups.get_mut(&p.host), group) {
                remove_from(&mut self.group_hosts, group, &p.host);
            }
        }
        if self.host_groups.get(&p.host).is_some_and(BTreeMap::is_empty) {
            self.host_groups.remove(&p.host);
        }
        if p.host.is_empty() {
            return;
        }
        remove_from(&mut self.ports_on_host, &p.host, id);
        let Some((host, segment)) = p.bound() else {
            return;
        };
        remove_from(&mut self.bound_on_segment, segment, id);
        let (host, segment) = (host.to_string(), segment.to_string());
        self.remove_presence(&host, &p.network_id, &segment);
    }
}

/// Remove `item` from the set at `key`, and the set when it empties.
fn remove_from(map: &mut HashMap<String, BTreeSet<String>>, key: &str, item: &str) {
    if let Some(set) = map.get_mut(key) {
        set.remove(item);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

/// Count one less at `key`; `true` when the count reached zero (and was removed).
fn decrement(counts: Option<&mut BTreeMap<String, u32>>, key: &str) -> bool {
    let Some(counts) = counts else {
        return false;
    };
    match counts.get_mut(key) {
        Some(n) if *n > 1 => {
            *n -= 1;
            false
        }
        Some(_) => {
            counts.remove(key);
            true
        }
        None => false,
    }
}

/// Set one entry of a view to `value` (absent when `None`).
fn restore(state: &mut HostState, key: &Key, value: &Value) {
    fn set<V: Clone>(map: &mut BTreeMap<String, V>, id: String, v: &Option<V>) {
        match v {
            Some(v) => {
                map.insert(id, v.clone());
            }
            None => {
                map.remove(&id);
            }
        }
    }
    match (key, value) {
        (Key::Network(id), Value::Network(v)) => set(&mut state.networks, id.clone(), v),
        (Key::Local(id), Value::Local(v)) => set(&mut state.local_ports, id.clone(), v),
        (Key::Remote(id), Value::Remote(v)) => set(&mut state.remote_ports, id.clone(), v),
        (Key::Group(id), Value::Group(v)) => set(&mut state.security_groups, id.clone(), v),
        (Key::Member(group, port), Value::Member(v)) => set(&mut state.group_members, GroupMember::key(group, port), v),
        (Key::AddressGroup(id), Value::AddressGroup(v)) => set(&mut state.address_groups, id.clone(), v),
        _ => {}
    }
}

fn put(delta: &mut HostDelta, key: &Key, value: Value) {
    match (key, value) {
        (Key::Network(id), Value::Network(v)) => delta.set(id, v),
        (Key::Local(id), Value::Local(v)) => delta.set(id, v),
        (Key::Remote(id), Value::Remote(v)) => delta.set(id, v),
        (Key::Group(id), Value::Group(v)) => delta.set(id, v),
        (Key::Member(group, port), Value::Member(v)) => delta.set(&GroupMember::key(group, port), v),
        (Key::AddressGroup(id), Value::AddressGroup(v)) => delta.set(id, v),
        _ => {}
    }
}

/// What other hosts' views hold of a port (its remote entry, besides its host's VTEP).
/// What other hosts' views show of a port: its binding, network, MAC, addresses and name.
type SeenByOthers<'a> = (Option<(&'a str, &'a str)>, &'a str, &'a str, &'a [String], &'a str);

fn seen_by_others(p: &PortImage) -> SeenByOthers<'_> {
    (p.bound(), &p.network_id, &p.mac_address, &p.ip_addresses, &p.dns_name)
}
