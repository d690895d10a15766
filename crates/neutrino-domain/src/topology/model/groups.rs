//! The security group part of host views: a host's groups, the members of the remote groups
//! their rules name, the address groups they name, and which entries a port change touches.

use super::{Key, Topology};
use crate::topology::images::PortImage;
use neutrino_api::agent::{GroupMember, HostAddressGroup, HostSecurityGroup};
use std::collections::BTreeSet;

impl Topology {
    /// The security group entries a port change can touch: the groups of its host(s), the
    /// members of remote groups a host gains or loses with them, and the port itself as a
    /// member, on the hosts whose rules name its groups.
    pub(super) fn dirty_port_groups(
        &self,
        id: &str,
        old: Option<&PortImage>,
        new: Option<&PortImage>,
        add: &mut impl FnMut(&str, Key),
    ) {
        let groups: BTreeSet<&str> =
            old.iter().chain(new.iter()).flat_map(|p| p.security_groups.iter().map(String::as_str)).collect();
        let placement = |p: &PortImage| (p.host.clone(), p.security_groups.clone());
        let moved = old.map(placement) != new.map(placement);
        for p in old.iter().chain(new.iter()).filter(|p| !p.host.is_empty()) {
            let counts = self.host_groups.get(&p.host);
            for group in &groups {
                add(&p.host, Key::Group(group.to_string()));
                // The host may gain or lose the group, and with it the remote groups it names.
                let count = counts.and_then(|c| c.get(*group)).copied().unwrap_or(0);
                if !moved || count > 1 {
                    continue;
                }
                for ag in self.groups.get(*group).into_iter().flat_map(|g| g.address_groups()) {
                    add(&p.host, Key::AddressGroup(ag.to_string()));
                }
                for remote in self.groups.get(*group).into_iter().flat_map(|g| g.remote_groups()) {
                    for port in self.group_ports.get(remote).into_iter().flatten() {
                        add(&p.host, Key::Member(remote.to_string(), port.clone()));
                    }
                    // The port itself, when it joins the remote group with this change.
                    add(&p.host, Key::Member(remote.to_string(), id.to_string()));
                }
            }
        }
        let membership =
            |p: &PortImage| (p.ip_addresses.clone(), p.allowed_address_pairs.clone(), p.security_groups.clone());
        if old.map(membership) == new.map(membership) {
            return;
        }
        for group in &groups {
            for naming in self.referenced_by.get(*group).into_iter().flatten() {
                for host in self.group_hosts.get(naming).into_iter().flatten() {
                    add(host, Key::Member(group.to_string(), id.to_string()));
                }
            }
        }
    }

    /// An address group, for a host whose groups' rules name it.
    pub(super) fn address_group_entry(&self, host: &str, id: &str) -> Option<HostAddressGroup> {
        let host_groups = self.host_groups.get(host)?;
        let named = self.address_group_users.get(id)?.iter().any(|g| host_groups.contains_key(g));
        if !named {
            return None;
        }
        let ag = self.address_groups.get(id)?;
        Some(HostAddressGroup { addresses: ag.addresses.clone() })
    }

    pub(super) fn group_entry(&self, host: &str, id: &str) -> Option<HostSecurityGroup> {
        if !self.host_groups.get(host).is_some_and(|g| g.contains_key(id)) {
            return None;
        }
        let g = self.groups.get(id)?;
        Some(HostSecurityGroup { stateful: g.stateful, rules: g.rules.clone() })
    }

    /// `port` as a member of `group`, for a host whose groups' rules name `group`.
    pub(super) fn member_entry(&self, host: &str, group: &str, port: &str) -> Option<GroupMember> {
        if !self.group_ports.get(group).is_some_and(|p| p.contains(port)) {
            return None;
        }
        let host_groups = self.host_groups.get(host)?;
        let named = self.referenced_by.get(group)?.iter().any(|g| host_groups.contains_key(g));
        if !named {
            return None;
        }
        let p = self.ports.get(port)?;
        let (fixed, pairs) = as_member(p);
        let addresses = fixed.iter().cloned().chain(pairs.iter().map(|a| a.ip_address.clone())).collect();
        Some(GroupMember { group_id: group.to_string(), addresses })
    }
}

/// What a port is as a member of its groups: its fixed IPs and address pairs.
fn as_member(p: &PortImage) -> (&[String], &[neutrino_api::agent::AddressPair]) {
    (&p.ip_addresses, &p.allowed_address_pairs)
}
