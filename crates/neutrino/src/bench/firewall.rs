//! `neutrino bench --firewall`: one host's firewall in the kernel (a private network
//! namespace, root): `--firewall-ports` ports, each in a group of 10 rules, one of which names
//! a remote group of `--firewall-members` members. Figures: the full apply, one member added
//! (elements touched), one rule added, and a restarted agent's pass over what is in place.

use neutrino_api::agent::{
    Direction, EtherType, GroupMember, HostSecurityGroup, HostSecurityRule, HostState, LocalPort,
};
use neutrino_dataplane::nft::KernelFirewall;
use neutrino_dataplane::Firewall;
use neutrino_domain::firewall::ir::{Family, ObservedRuleset, SetValue};
use neutrino_domain::firewall::{compile_firewall, plan, Op, SLOTS, ZONES};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const GROUP: &str = "bench-group";
const REMOTE: &str = "bench-remote";

fn state(ports: usize, members: usize) -> HostState {
    let mut s = HostState::default();
    for i in 0..ports {
        let port = LocalPort {
            network_id: format!("net-{:08}", i / 100),
            mac_address: format!("fa:16:3e:00:{:02x}:{:02x}", i / 256, i % 256),
            ip_addresses: vec![format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256)],
            security_groups: vec![GROUP.into()],
            ..LocalPort::default()
        };
        s.local_ports.insert(format!("{i:011x}-bench-port"), port);
    }
    let mut rules = Vec::new();
    for r in 0..10u32 {
        rules.push(HostSecurityRule {
            id: format!("rule-{r}"),
            direction: if r == 0 { Direction::Egress } else { Direction::Ingress },
            ethertype: EtherType::IPv4,
            protocol: (r > 0).then_some(6),
            port_range_min: (r > 0).then_some(8000 + r),
            port_range_max: (r > 0).then_some(8000 + r),
            remote_ip_prefix: (r > 1).then(|| format!("198.51.{r}.0/24")),
            remote_group_id: (r == 1).then(|| REMOTE.to_string()),
            remote_address_group_id: None,
        });
    }
    s.security_groups.insert(GROUP.into(), HostSecurityGroup { stateful: true, rules });
    for m in 0..members {
        let addresses = vec![format!("172.16.{}.{}", m / 256, m % 256)];
        s.group_members.insert(
            GroupMember::key(REMOTE, &format!("member-{m:06}")),
            GroupMember { group_id: REMOTE.into(), addresses },
        );
    }
    s
}

fn numbers(observed: &ObservedRuleset, map: &str) -> BTreeMap<String, u32> {
    let elements = observed.sets.get(&(Family::Bridge, map.to_string())).cloned().unwrap_or_default();
    elements
        .into_iter()
        .filter_map(|(k, v)| if let Some(SetValue::Mark(n)) = v { Some((k, n)) } else { None })
        .collect()
}

/// One agent pass: observe, compile, plan, apply. Returns the plan and how long each part took.
async fn pass(fw: &KernelFirewall, s: &HostState) -> Result<(Vec<Op>, Duration, Duration), String> {
    let began = Instant::now();
    let observed = fw.observe().await.map_err(|e| e.to_string())?;
    let observe = began.elapsed();
    let intent = compile_firewall(s, &numbers(&observed, SLOTS), &numbers(&observed, ZONES));
    let ops = plan(&intent.ruleset, &observed);
    fw.apply(&ops).await.map_err(|e| e.to_string())?;
    Ok((ops, observe, began.elapsed()))
}

fn elements(ops: &[Op]) -> usize {
    ops.iter()
        .map(|op| match op {
            Op::AddElements { elements, .. } => elements.len(),
            Op::DeleteElements { keys, .. } => keys.len(),
            _ => 0,
        })
        .sum()
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
}

pub fn run(ports: usize, members: usize) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("bench --firewall needs root (it works in a network namespace of its own)".into());
    }
    std::thread::spawn(move || -> Result<(), String> {
        // SAFETY: unshare(CLONE_NEWNET) only moves this thread into a new, empty namespace.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(format!("unshare: {}", std::io::Error::last_os_error()));
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let fw = KernelFirewall::of_current_netns().map_err(|e| e.to_string())?;
            let mut s = state(ports, members);
            let rss_before = rss_kib();
            let (ops, _, full) = pass(&fw, &s).await?;
            let rules: usize = ops.iter().filter(|o| matches!(o, Op::AddRule { .. })).count();
            println!("firewall: {ports} ports x 10 rules, remote group of {members} members");
            println!(
                "  full apply:          {:>9.1} ms  ({} operations, {rules} rules, one transaction)",
                full.as_secs_f64() * 1e3,
                ops.len()
            );
            let member = GroupMember { group_id: REMOTE.into(), addresses: vec!["172.31.0.1".into()] };
            s.group_members.insert(GroupMember::key(REMOTE, "member-new"), member);
            let (ops, observe, took) = pass(&fw, &s).await?;
            println!(
                "  one member added:    {:>9.1} ms  ({} operation, {} element touched; {:.1} ms without observing, \
                 as an agent's pass over changes)",
                took.as_secs_f64() * 1e3,
                ops.len(),
                elements(&ops),
                (took - observe).as_secs_f64() * 1e3
            );
            if let Some(g) = s.security_groups.get_mut(GROUP) {
                let mut r = g.rules[2].clone();
                r.id = "rule-new".into();
                r.port_range_min = Some(9999);
                r.port_range_max = Some(9999);
                g.rules.push(r);
            }
            let (ops, observe, took) = pass(&fw, &s).await?;
            let chains = ops.iter().filter(|o| matches!(o, Op::FlushChain { .. })).count();
            println!(
                "  one rule added:      {:>9.1} ms  ({chains} group chain rewritten; {:.1} ms without observing)",
                took.as_secs_f64() * 1e3,
                (took - observe).as_secs_f64() * 1e3
            );
            let (ops, _, took) = pass(&fw, &s).await?;
            println!(
                "  restart (full pass): {:>9.1} ms  ({} changes; goal: converged within 1 s)",
                took.as_secs_f64() * 1e3,
                ops.len()
            );
            println!(
                "  compiler memory:     {:>9} KiB RSS growth of this process",
                rss_kib().saturating_sub(rss_before)
            );
            println!("  Neutron's iptables driver: 12.8 s to start with 200 VMs x 422 rules, about 33 s to add a VM");
            Ok(())
        })
    })
    .join()
    .map_err(|_| "the bench thread panicked".to_string())?
}
