//! The recent past of a [`Topology`]: for each revision in a window, the images its changes
//! replaced. With it a server answers an agent that reconnects with `since=R` with exactly
//! what changed in its view after R, instead of a whole snapshot.

use super::images::{Image, ObjectChange, ObjectKind};
use super::model::Topology;
use neutrino_api::agent::{HostDelta, HostState};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// One applied revision: the image each changed object had before it.
#[derive(Debug, Clone)]
struct Undo {
    revision: u64,
    before: Vec<(ObjectKind, String, Option<Image>)>,
}

/// The model and the window of revisions it can go back over.
#[derive(Debug, Clone)]
pub struct History {
    model: Topology,
    revision: u64,
    /// The oldest revision the window can go back to: views at any R ≥ `start` can be rebuilt.
    start: u64,
    /// How many revisions to keep.
    keep: usize,
    undo: VecDeque<Undo>,
}

impl History {
    /// A model at `revision`, able to go back over at most `keep` revisions.
    pub fn new(model: Topology, revision: u64, keep: usize) -> History {
        History { model, revision, start: revision, keep, undo: VecDeque::new() }
    }

    pub fn model(&self) -> &Topology {
        &self.model
    }

    /// The revision the model is at.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The oldest revision a view can be rebuilt at.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Views cannot be rebuilt before `start` (a log compacted up to `start` was loaded: the
    /// revisions up to it are incomplete).
    pub fn forget_before(&mut self, start: u64) {
        self.start = self.start.max(start).min(self.revision);
    }

    /// Apply revision `revision` (which must follow the current one) and return the changed
    /// entries of the views of the hosts `wanted` says yes to.
    pub fn apply(
        &mut self,
        revision: u64,
        changes: &[ObjectChange],
        wanted: &dyn Fn(&str) -> bool,
    ) -> BTreeMap<String, HostDelta> {
        let before = changes.iter().map(|c| (c.kind, c.id.clone(), self.model.image(c.kind, &c.id))).collect();
        let deltas = self.model.apply(changes, wanted);
        self.push(revision, before);
        deltas
    }

    /// Apply a revision without computing any delta (catching up while no host listens).
    pub fn load(&mut self, revision: u64, changes: &[ObjectChange]) {
        let before = changes.iter().map(|c| (c.kind, c.id.clone(), self.model.image(c.kind, &c.id))).collect();
        self.model.load(changes);
        self.push(revision, before);
    }

    fn push(&mut self, revision: u64, before: Vec<(ObjectKind, String, Option<Image>)>) {
        debug_assert!(revision > self.revision, "revisions apply in order");
        self.revision = revision;
        self.undo.push_back(Undo { revision, before });
        while self.undo.len() > self.keep {
            if let Some(u) = self.undo.pop_front() {
                self.start = self.start.max(u.revision);
            }
        }
    }

    /// What `host`'s view was at revision `since`, or `None` when the window does not reach
    /// back that far (or `since` is in the future).
    pub fn view_at(&self, host: &str, since: u64) -> Option<HostState> {
        if since < self.start || since > self.revision {
            return None;
        }
        // The image every object changed after `since` had at `since`: the one its first
        // change after `since` replaced.
        let mut past: HashMap<(ObjectKind, &str), &Option<Image>> = HashMap::new();
        for u in self.undo.iter().filter(|u| u.revision > since) {
            for (kind, id, before) in &u.before {
                past.entry((*kind, id.as_str())).or_insert(before);
            }
        }
        if past.is_empty() {
            return Some(self.model.view(host));
        }
        let then = |kind: ObjectKind, id: &str| -> Option<Image> {
            match past.get(&(kind, id)) {
                Some(image) => (*image).clone(),
                None => self.model.image(kind, id),
            }
        };
        // A small model with what the host's view at `since` is made of.
        let mut small = Topology::new(self.model.l2population());
        let add = |kind: ObjectKind, id: &str, small: &mut Topology| {
            if let Some(image) = then(kind, id) {
                small.load(&[ObjectChange { kind, id: id.to_string(), image: Some(image) }]);
            }
        };
        let port_at = |id: &str| match then(ObjectKind::Port, id) {
            Some(Image::Port(p)) => Some(p),
            _ => None,
        };
        let changed_ports: Vec<&str> = past.keys().filter(|(k, _)| *k == ObjectKind::Port).map(|(_, id)| *id).collect();
        let mut local: Vec<String> = self.model.ports_of(host).map(String::from).collect();
        local.extend(changed_ports.iter().map(|id| id.to_string()));
        local.sort();
        local.dedup();
        let mut segments = Vec::new();
        let mut groups: BTreeSet<String> = BTreeSet::new();
        for id in &local {
            let Some(p) = port_at(id).filter(|p| p.host == host) else {
                continue;
            };
            groups.extend(p.security_groups.iter().cloned());
            add(ObjectKind::Port, id, &mut small);
            add(ObjectKind::Network, &p.network_id, &mut small);
            if let Some(segment) = &p.segment_id {
                add(ObjectKind::Segment, segment, &mut small);
                segments.push(segment.clone());
            }
        }
        // The routers of the local ports' networks, all their interfaces, and the segments of
        // their networks.
        let direct: BTreeSet<String> = local
            .iter()
            .filter_map(|id| port_at(id))
            .filter(|p| p.host == host)
            .map(|p| p.network_id.clone())
            .collect();
        let interface_at =
            |id: &str| port_at(id).filter(|p| p.router.as_ref().is_some_and(|r| !r.gateway && !r.centralized_snat));
        let mut routers: BTreeSet<String> = BTreeSet::new();
        for network in &direct {
            let mut candidates: Vec<&str> =
                self.model.routers_on(network).flat_map(|r| self.model.interfaces_of(r)).collect();
            candidates.extend(changed_ports.iter().copied());
            for id in candidates {
                if let Some(p) = interface_at(id).filter(|p| &p.network_id == network) {
                    routers.extend(p.router.as_ref().map(|r| r.router_id.clone()));
                }
            }
        }
        let mut routed: BTreeSet<String> = BTreeSet::new();
        for router in &routers {
            let mut candidates: Vec<&str> = self.model.interfaces_of(router).collect();
            candidates.extend(self.model.gateways_of(router));
            candidates.extend(self.model.snat_ports_of(router));
            candidates.extend(changed_ports.iter().copied());
            for id in candidates {
                let of_router = port_at(id).filter(|p| p.router.as_ref().is_some_and(|r| &r.router_id == router));
                if let Some(p) = of_router {
                    add(ObjectKind::Port, id, &mut small);
                    routed.insert(p.network_id.clone());
                }
            }
        }
        for router in &routers {
            add(ObjectKind::Router, router, &mut small);
        }
        // The floating IPs of the local ports.
        let changed_fips: Vec<&str> =
            past.keys().filter(|(k, _)| *k == ObjectKind::FloatingIp).map(|(_, id)| *id).collect();
        for port in &local {
            let mut candidates: Vec<&str> = self.model.floating_ips_of(port).collect();
            candidates.extend(changed_fips.iter().copied());
            for id in candidates {
                if let Some(Image::FloatingIp(f)) = then(ObjectKind::FloatingIp, id) {
                    if super::model::routing::ports_of_floating_ip(&f).contains(port.as_str()) {
                        add(ObjectKind::FloatingIp, id, &mut small);
                    }
                }
            }
        }
        let changed_segments: Vec<&str> =
            past.keys().filter(|(k, _)| *k == ObjectKind::Segment).map(|(_, id)| *id).collect();
        for network in &routed {
            add(ObjectKind::Network, network, &mut small);
            let mut candidates: Vec<&str> = self.model.segments_of(network).collect();
            candidates.extend(changed_segments.iter().copied());
            for id in candidates {
                if let Some(Image::Segment(s)) = then(ObjectKind::Segment, id) {
                    if &s.network_id == network {
                        add(ObjectKind::Segment, id, &mut small);
                        segments.push(id.to_string());
                    }
                }
            }
        }
        // The groups of the local ports, and the members of the remote groups they name.
        let mut remotes: BTreeSet<String> = BTreeSet::new();
        for group in &groups {
            if let Some(Image::SecurityGroup(g)) = then(ObjectKind::SecurityGroup, group) {
                remotes.extend(g.remote_groups().into_iter().map(String::from));
                for ag in g.address_groups() {
                    add(ObjectKind::AddressGroup, ag, &mut small);
                }
            }
            add(ObjectKind::SecurityGroup, group, &mut small);
        }
        for remote in &remotes {
            let mut candidates: Vec<&str> = self.model.ports_in_group(remote).collect();
            candidates.extend(changed_ports.iter().copied());
            for id in candidates {
                if port_at(id).is_some_and(|p| p.security_groups.contains(remote)) {
                    add(ObjectKind::Port, id, &mut small);
                }
            }
        }
        if self.model.l2population() {
            segments.sort();
            segments.dedup();
            let mut remote_hosts = Vec::new();
            for segment in &segments {
                let mut candidates: Vec<&str> = self.model.bound_ports_on(segment).collect();
                candidates.extend(changed_ports.iter().copied());
                for id in candidates {
                    let Some(p) = port_at(id) else { continue };
                    if p.bound().is_some_and(|(h, s)| h != host && s == segment) {
                        add(ObjectKind::Port, id, &mut small);
                        remote_hosts.push(p.host.clone());
                    }
                }
            }
            remote_hosts.sort();
            remote_hosts.dedup();
            let changed_agents: Vec<&str> =
                past.keys().filter(|(k, _)| *k == ObjectKind::Agent).map(|(_, id)| *id).collect();
            for remote in &remote_hosts {
                let mut candidates: Vec<String> = self.model.agents_of(remote).map(String::from).collect();
                candidates.extend(changed_agents.iter().map(|id| id.to_string()));
                for id in candidates {
                    if let Some(Image::Agent(a)) = then(ObjectKind::Agent, &id) {
                        if &a.host == remote {
                            add(ObjectKind::Agent, &id, &mut small);
                        }
                    }
                }
            }
        }
        Some(small.view(host))
    }

    /// The update that brings `host`'s view from revision `since` to now (`None` when the
    /// window does not reach back to `since`; an empty delta when nothing changed for it).
    pub fn delta_since(&self, host: &str, since: u64) -> Option<HostDelta> {
        let then = self.view_at(host, since)?;
        Some(then.diff(&self.model.view(host)).unwrap_or_default())
    }
}
