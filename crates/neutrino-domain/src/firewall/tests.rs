use super::ir::{Family, ObservedRuleset, SetValue};
use super::*;
use neutrino_api::agent::{
    Direction, EtherType, GroupMember, HostSecurityGroup, HostSecurityRule, HostState, LocalPort,
};
use std::collections::BTreeMap;

const GROUP: &str = "g-default";

fn state(ports: usize, members: usize) -> HostState {
    let mut s = HostState::default();
    for i in 0..ports {
        let port = LocalPort {
            network_id: "net-aaaaaaaaaaaa".into(),
            mac_address: format!("fa:16:3e:00:00:{i:02x}"),
            ip_addresses: vec![format!("198.51.100.{}", i + 10)],
            security_groups: vec![GROUP.into()],
            ..LocalPort::default()
        };
        s.local_ports.insert(format!("port-{i:06}-xxxx"), port);
    }
    let rule = |id: &str, direction, remote: Option<&str>| HostSecurityRule {
        id: id.into(),
        direction,
        ethertype: EtherType::IPv4,
        protocol: None,
        port_range_min: None,
        port_range_max: None,
        remote_ip_prefix: None,
        remote_group_id: remote.map(String::from),
        remote_address_group_id: None,
    };
    let rules = vec![rule("r1", Direction::Egress, None), rule("r2", Direction::Ingress, Some(GROUP))];
    s.security_groups.insert(GROUP.into(), HostSecurityGroup { stateful: true, rules });
    for i in 0..members {
        let member = GroupMember { group_id: GROUP.into(), addresses: vec![format!("203.0.113.{}", i % 250)] };
        s.group_members.insert(GroupMember::key(GROUP, &format!("m{i:04}")), member);
    }
    s
}

fn converge(s: &HostState, kernel: &mut ObservedRuleset) -> Vec<Op> {
    let slots = numbers(kernel, SLOTS);
    let zones = numbers(kernel, ZONES);
    let intent = compile_firewall(s, &slots, &zones);
    let ops = plan(&intent.ruleset, kernel);
    apply_to(kernel, &ops);
    assert!(plan(&intent.ruleset, kernel).is_empty(), "one plan converges");
    ops
}

fn numbers(kernel: &ObservedRuleset, map: &str) -> BTreeMap<String, u32> {
    let elements = kernel.sets.get(&(Family::Bridge, map.to_string())).cloned().unwrap_or_default();
    elements
        .into_iter()
        .filter_map(|(k, v)| match v {
            Some(SetValue::Mark(n)) => Some((k, n)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_plan_converges_and_then_nothing_changes() {
    let s = state(3, 3);
    let mut kernel = ObservedRuleset::default();
    let ops = converge(&s, &mut kernel);
    assert!(ops.len() > 20);
    assert!(converge(&s, &mut kernel).is_empty(), "a second pass changes nothing");
    let rg = &kernel.sets[&(Family::Inet, format!("rg4-{GROUP}"))];
    assert_eq!(rg.len(), 3);
    assert!(kernel.chains.contains_key(&(Family::Inet, "in-1".into())));
    assert!(kernel.chains.contains_key(&(Family::Bridge, "from-3".into())));
}

#[test]
fn a_new_member_of_a_big_group_is_one_element() {
    let mut s = state(50, 249);
    let mut kernel = ObservedRuleset::default();
    converge(&s, &mut kernel);
    let member = GroupMember { group_id: GROUP.into(), addresses: vec!["192.0.2.77".into()] };
    s.group_members.insert(GroupMember::key(GROUP, "new"), member);
    let ops = converge(&s, &mut kernel);
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert!(matches!(&ops[0], Op::AddElements { elements, .. } if elements.len() == 1));
}

#[test]
fn ports_keep_their_slots_and_a_new_port_takes_a_free_one() {
    let mut s = state(3, 0);
    let mut kernel = ObservedRuleset::default();
    converge(&s, &mut kernel);
    let before = numbers(&kernel, SLOTS);
    // The first port goes; a new one comes and takes its slot; the others keep theirs.
    let first = s.local_ports.keys().next().unwrap().clone();
    let port = s.local_ports.remove(&first).unwrap();
    s.local_ports.insert("port-zzzzzz-new".into(), port);
    converge(&s, &mut kernel);
    let after = numbers(&kernel, SLOTS);
    for (tap, slot) in &after {
        if let Some(old) = before.get(tap) {
            assert_eq!(old, slot, "{tap} kept its slot");
        }
    }
    assert_eq!(after.get("tapport-zzzzzz"), Some(&1), "the freed slot is reused: {after:?}");
}

#[test]
fn port_security_off_means_no_filter_chains() {
    let mut s = state(1, 0);
    for p in s.local_ports.values_mut() {
        p.port_security_enabled = false;
    }
    let intent = compile_firewall(&s, &BTreeMap::new(), &BTreeMap::new());
    assert!(!intent.ruleset.chains.contains_key(&(Family::Inet, "in-1".into())));
    let from = &intent.ruleset.chains[&(Family::Bridge, "from-1".into())];
    assert_eq!(from.rules.len(), 1, "accept, unmarked");
}

#[test]
fn link_local_is_eui64() {
    assert_eq!(link_local("fa:16:3e:12:34:56").unwrap().to_string(), "fe80::f816:3eff:fe12:3456");
}

#[test]
fn a_zone_given_up_is_not_given_to_the_next_network() {
    let mut s = state(2, 0);
    let ids: Vec<String> = s.local_ports.keys().cloned().collect();
    s.local_ports.get_mut(&ids[1]).unwrap().network_id = "net-bbbbbbbbbbbb".into();
    let mut kernel = ObservedRuleset::default();
    converge(&s, &mut kernel);
    let zones = numbers(&kernel, ZONES);
    let b_zone = zones["brqnet-bbbbbbb"];
    // The second network goes (its zone with it), then a third comes.
    s.local_ports.remove(&ids[1]);
    converge(&s, &mut kernel);
    let mut port = s.local_ports[&ids[0]].clone();
    port.network_id = "net-cccccccccccc".into();
    s.local_ports.insert("port-third-xxxx".into(), port);
    converge(&s, &mut kernel);
    let zones = numbers(&kernel, ZONES);
    assert!(zones["brqnet-ccccccc"] > b_zone, "{zones:?}");
}
