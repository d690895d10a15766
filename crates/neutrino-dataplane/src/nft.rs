//! The firewall in the kernel, through nftables' JSON API: a plan is one `nft -j -f -` run
//! (one transaction, all or nothing), and the firewall is observed with `nft -j list ruleset`.
//! Both act in the network namespace the data plane was opened in, whatever thread runs them.

use crate::{DataPlaneError, Firewall, Result};
use neutrino_domain::firewall::ir::{Action, Addr, Family, Match, ObservedRuleset, Rule, SetKind, SetValue, TABLE};
use neutrino_domain::firewall::Op;
use serde_json::{json, Value};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// nftables of one network namespace.
#[derive(Clone)]
pub struct KernelFirewall {
    /// The namespace (opened when the data plane was), entered by every `nft` run.
    netns: Arc<File>,
}

impl KernelFirewall {
    /// nftables of the calling thread's network namespace.
    pub fn of_current_netns() -> Result<KernelFirewall> {
        Ok(KernelFirewall { netns: Arc::new(File::open("/proc/thread-self/ns/net")?) })
    }

    async fn nft(&self, args: &[&str], input: Option<String>) -> Result<String> {
        run_nft(&self.netns, args, input).await
    }
}

/// Runs `nft` with `args` (and `input` on its standard input) in the network namespace
/// `netns`, and returns what it printed. A failure carries the first lines of its errors.
pub(crate) async fn run_nft(netns: &File, args: &[&str], input: Option<String>) -> Result<String> {
    let mut cmd = crate::netns::command_in(netns, "nft");
    cmd.args(args)
        .stdin(if input.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| DataPlaneError::Nftables(format!("cannot run nft: {e}")))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).await?;
    }
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(DataPlaneError::Nftables(err.lines().take(6).collect::<Vec<_>>().join(" | ")));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The switches that send bridged IPv4 and IPv6 through the `inet` hooks.
const BRIDGE_NETFILTER: [&str; 2] =
    ["/proc/sys/net/bridge/bridge-nf-call-iptables", "/proc/sys/net/bridge/bridge-nf-call-ip6tables"];

impl Firewall for KernelFirewall {
    /// Turned on in the data plane's namespace (a thread enters it: `/proc/sys/net` is the
    /// namespace of whoever opens it).
    async fn prepare(&self) -> Result<()> {
        let netns = self.netns.clone();
        let done = tokio::task::spawn_blocking(move || -> Result<()> {
            std::thread::spawn(move || -> Result<()> {
                // SAFETY: setns on a valid namespace fd changes only this short-lived thread.
                if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(std::io::Error::last_os_error().into());
                }
                for path in BRIDGE_NETFILTER {
                    let now = std::fs::read_to_string(path).map_err(|e| {
                        DataPlaneError::Unsupported(format!(
                            "{path}: {e} (br_netfilter is not loaded: security groups cannot see bridged traffic)"
                        ))
                    })?;
                    if now.trim() != "1" {
                        std::fs::write(path, "1")?;
                    }
                }
                Ok(())
            })
            .join()
            .map_err(|_| DataPlaneError::Nftables("the br_netfilter thread panicked".into()))?
        });
        done.await.map_err(|e| DataPlaneError::Nftables(e.to_string()))?
    }

    /// Chains (names only: their content is in the manifest set), sets and maps. (Listing
    /// tables would read every rule; a table is there when something of it is, and adding a
    /// table that exists changes nothing.)
    async fn observe(&self) -> Result<ObservedRuleset> {
        let mut items = Vec::new();
        for what in ["chains", "sets", "maps"] {
            let text = self.nft(&["-j", "list", what], None).await?;
            let value: Value = serde_json::from_str(&text).map_err(|e| DataPlaneError::Nftables(e.to_string()))?;
            if let Some(list) = value.get("nftables").and_then(Value::as_array) {
                items.extend(list.iter().cloned());
            }
        }
        Ok(parse_ruleset(&json!({ "nftables": items })))
    }

    async fn apply(&self, ops: &[Op]) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let commands: Vec<Value> = ops.iter().map(render_op).collect();
        let batch = json!({ "nftables": commands }).to_string();
        self.nft(&["-j", "-f", "-"], Some(batch)).await.map(|_| ())
    }
}

fn family_of(v: &Value) -> Option<Family> {
    match v.get("family")?.as_str()? {
        "bridge" => Some(Family::Bridge),
        "inet" => Some(Family::Inet),
        _ => None,
    }
}

/// Our two tables' chains (with the digest of their last rule) and sets.
fn parse_ruleset(v: &Value) -> ObservedRuleset {
    let mut out = ObservedRuleset::default();
    let items = v.get("nftables").and_then(Value::as_array).cloned().unwrap_or_default();
    for item in &items {
        let Some((kind, body)) = item.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        let ours = |field: &str| body.get(field).and_then(Value::as_str) == Some(TABLE);
        let Some(family) = family_of(body) else { continue };
        let name = body.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        if kind != "table" && ours("table") {
            out.tables.insert(family);
        }
        match kind.as_str() {
            "table" if ours("name") => {
                out.tables.insert(family);
            }
            "chain" if ours("table") => {
                out.chains.insert((family, name), None);
            }
            "rule" if ours("table") => {
                let chain = body.get("chain").and_then(Value::as_str).unwrap_or_default().to_string();
                let comment = body.get("comment").and_then(Value::as_str).map(String::from);
                out.chains.insert((family, chain), comment);
            }
            "set" | "map" if ours("table") => {
                let mut elements = std::collections::BTreeMap::new();
                for e in body.get("elem").and_then(Value::as_array).into_iter().flatten() {
                    let (key, value) = match e.as_array() {
                        Some(pair) if pair.len() == 2 => (&pair[0], parse_value(&pair[1])),
                        _ => (e, None),
                    };
                    if let Some(k) = parse_key(key) {
                        elements.insert(k, value);
                    }
                }
                out.sets.insert((family, name), elements);
            }
            _ => {}
        }
    }
    out
}

fn parse_key(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(o) => {
            if let Some(parts) = o.get("concat").and_then(Value::as_array) {
                let parts: Option<Vec<String>> = parts.iter().map(parse_key).collect();
                Some(parts?.join(" . "))
            } else if let Some(p) = o.get("prefix") {
                Some(format!("{}/{}", p.get("addr")?.as_str()?, p.get("len")?))
            } else {
                // An element with options ({"elem": {"val": ...}}).
                parse_key(o.get("elem")?.get("val")?)
            }
        }
        _ => None,
    }
}

fn parse_value(v: &Value) -> Option<SetValue> {
    if let Some(n) = v.as_u64() {
        return Some(SetValue::Mark(n as u32));
    }
    let target = v.get("jump")?.get("target")?.as_str()?;
    Some(SetValue::Jump(target.to_string()))
}

fn object(family: Family, name: &str) -> Value {
    json!({ "family": family.as_str(), "table": TABLE, "name": name })
}

fn render_op(op: &Op) -> Value {
    match op {
        Op::AddTable(f) => json!({ "add": { "table": { "family": f.as_str(), "name": TABLE } } }),
        Op::AddSet { family, name, kind } => {
            let mut o = object(*family, name);
            let (what, key, data, interval) = match kind {
                SetKind::Ipv4Addresses => ("set", "ipv4_addr", None, false),
                SetKind::Ipv4Prefixes => ("set", "ipv4_addr", None, true),
                SetKind::Ipv6Addresses => ("set", "ipv6_addr", None, false),
                SetKind::Ipv6Prefixes => ("set", "ipv6_addr", None, true),
                SetKind::IfnameToMark => ("map", "ifname", Some("mark"), false),
                SetKind::IfnameToVerdict => ("map", "ifname", Some("verdict"), false),
                SetKind::MarkToVerdict => ("map", "mark", Some("verdict"), false),
                SetKind::Tokens => ("set", "ifname", None, false),
                SetKind::Marks => ("set", "mark", None, false),
                SetKind::IfnameIpv4 => ("set", "ifname . ipv4_addr", None, false),
                SetKind::IfnameIpv6 => ("set", "ifname . ipv6_addr", None, false),
            };
            o["type"] = match key.split_once(" . ") {
                Some((a, b)) => json!([a, b]),
                None => json!(key),
            };
            if let Some(d) = data {
                o["map"] = json!(d);
            }
            if interval {
                o["flags"] = json!(["interval"]);
            }
            json!({ "add": { what: o } })
        }
        Op::AddChain { family, name, hook } => {
            let mut o = object(*family, name);
            if let Some((hook, priority)) = hook {
                o["type"] = json!("filter");
                o["hook"] = json!(hook.as_str());
                o["prio"] = json!(priority);
                o["policy"] = json!("accept");
            }
            json!({ "add": { "chain": o } })
        }
        Op::FlushChain { family, name } => json!({ "flush": { "chain": object(*family, name) } }),
        Op::AddRule { family, chain, rule, comment } => {
            let mut o = json!({ "family": family.as_str(), "table": TABLE, "chain": chain, "expr": render_rule(*family, rule) });
            if let Some(c) = comment {
                o["comment"] = json!(c);
            }
            json!({ "add": { "rule": o } })
        }
        Op::FlushSet { family, name } => json!({ "flush": { "set": object(*family, name) } }),
        Op::DeleteElements { family, set, keys } => {
            let mut o = object(*family, set);
            o["elem"] = Value::Array(keys.iter().map(|k| render_key(k)).collect());
            json!({ "delete": { "element": o } })
        }
        Op::AddElements { family, set, elements } => {
            let mut o = object(*family, set);
            let elem = elements
                .iter()
                .map(|(k, v)| match v {
                    None => render_key(k),
                    Some(SetValue::Mark(n)) => json!([render_key(k), n]),
                    Some(SetValue::Jump(target)) => json!([render_key(k), { "jump": { "target": target } }]),
                })
                .collect();
            o["elem"] = Value::Array(elem);
            json!({ "add": { "element": o } })
        }
        Op::DeleteChain { family, name } => json!({ "delete": { "chain": object(*family, name) } }),
        Op::DeleteSet { family, name } => json!({ "delete": { "set": object(*family, name) } }),
    }
}

/// An element key as nftables reads it: marks as numbers, prefixes as prefixes.
fn render_key(k: &str) -> Value {
    if let Some((a, b)) = k.split_once(" . ") {
        return json!({ "concat": [render_key(a), render_key(b)] });
    }
    if let Ok(n) = k.parse::<u64>() {
        return json!(n);
    }
    if let Some((addr, len)) = k.split_once('/') {
        if let Ok(len) = len.parse::<u8>() {
            return json!({ "prefix": { "addr": addr, "len": len } });
        }
    }
    json!(k)
}

fn matches(left: Value, right: Value) -> Value {
    json!({ "match": { "op": "==", "left": left, "right": right } })
}

fn payload(protocol: &str, field: &str) -> Value {
    json!({ "payload": { "protocol": protocol, "field": field } })
}

fn meta(key: &str) -> Value {
    json!({ "meta": { "key": key } })
}

fn net<N: std::fmt::Display>(addr: N, len: u8, full: u8) -> Value {
    if len == full {
        json!(addr.to_string())
    } else {
        json!({ "prefix": { "addr": addr.to_string(), "len": len } })
    }
}

fn field(a: Addr) -> &'static str {
    match a {
        Addr::Source => "saddr",
        Addr::Destination => "daddr",
    }
}

fn render_match(family: Family, m: &Match) -> Vec<Value> {
    let one = |v: Value| vec![v];
    match m {
        Match::Iif(name) => one(matches(meta("iifname"), json!(name))),
        Match::Oif(name) => one(matches(meta("oifname"), json!(name))),
        Match::EtherSource(mac) => one(matches(payload("ether", "saddr"), json!(mac))),
        Match::ArpSenderMac(mac) => one(matches(payload("arp", "saddr ether"), json!(mac))),
        Match::ArpSenderIp(n) => one(matches(payload("arp", "saddr ip"), net(n.addr(), n.prefix_len(), 32))),
        Match::Ip4(a, n) => one(matches(payload("ip", field(*a)), net(n.addr(), n.prefix_len(), 32))),
        Match::Ip6(a, n) => one(matches(payload("ip6", field(*a)), net(n.addr(), n.prefix_len(), 128))),
        Match::Ip4In(a, set) => one(matches(payload("ip", field(*a)), json!(format!("@{set}")))),
        Match::Ip6In(a, set) => one(matches(payload("ip6", field(*a)), json!(format!("@{set}")))),
        Match::Ipv4 | Match::Ipv6 => {
            let v6 = matches!(m, Match::Ipv6);
            match family {
                Family::Bridge => one(matches(payload("ether", "type"), json!(if v6 { "ip6" } else { "ip" }))),
                Family::Inet => one(matches(meta("nfproto"), json!(if v6 { "ipv6" } else { "ipv4" }))),
            }
        }
        Match::L4Proto(p) => one(matches(meta("l4proto"), json!(p))),
        Match::DestinationPorts(a, b) => {
            let right = if a == b { json!(a) } else { json!({ "range": [a, b] }) };
            one(matches(payload("th", "dport"), right))
        }
        Match::UdpPorts { source, destination } => {
            vec![matches(payload("udp", "sport"), json!(source)), matches(payload("udp", "dport"), json!(destination))]
        }
        Match::IcmpType(t) => one(matches(payload("icmp", "type"), json!(t))),
        Match::IcmpCode(c) => one(matches(payload("icmp", "code"), json!(c))),
        Match::Icmp6Type(t) => one(matches(payload("icmpv6", "type"), json!(t))),
        Match::Icmp6Code(c) => one(matches(payload("icmpv6", "code"), json!(c))),
        Match::CtInvalid => {
            one(json!({ "match": { "op": "in", "left": { "ct": { "key": "state" } }, "right": "invalid" } }))
        }
        Match::CtRelated => {
            one(json!({ "match": { "op": "in", "left": { "ct": { "key": "state" } }, "right": "related" } }))
        }
        Match::CtEstablishedReply => vec![
            matches(json!({ "ct": { "key": "direction" } }), json!("reply")),
            json!({ "match": { "op": "in", "left": { "ct": { "key": "state" } }, "right": "established" } }),
        ],
        Match::MarkIn { mask, set } => one(matches(json!({ "&": [meta("mark"), mask] }), json!(format!("@{set}")))),
        Match::IifDestinationIn { v6, set } => {
            let daddr = payload(if *v6 { "ip6" } else { "ip" }, "daddr");
            one(matches(json!({ "concat": [meta("iifname"), daddr] }), json!(format!("@{set}"))))
        }
        Match::NotIpOrArp => one(json!({ "match": { "op": "!=", "left": payload("ether", "type"),
            "right": { "set": ["ip", "ip6", "arp"] } } })),
        Match::Mark { mask, value } => {
            let left = if *mask == u32::MAX { meta("mark") } else { json!({ "&": [meta("mark"), mask] }) };
            one(matches(left, json!(value)))
        }
    }
}

fn render_rule(family: Family, rule: &Rule) -> Vec<Value> {
    let mut expr: Vec<Value> = rule.matches.iter().flat_map(|m| render_match(family, m)).collect();
    match &rule.action {
        Action::Accept => expr.push(json!({ "accept": null })),
        Action::Drop => expr.push(json!({ "drop": null })),
        Action::Return => expr.push(json!({ "return": null })),
        Action::Jump(target) => expr.push(json!({ "jump": { "target": target } })),
        Action::Goto(target) => expr.push(json!({ "goto": { "target": target } })),
        Action::SetMark(v) => expr.push(json!({ "mangle": { "key": meta("mark"), "value": v } })),
        Action::SetToSlotAccept(bits) => {
            let value = json!({ "|": [{ "&": [meta("mark"), 0xffff] }, bits] });
            expr.push(json!({ "mangle": { "key": meta("mark"), "value": value } }));
            expr.push(json!({ "accept": null }));
        }
        // Accept at once: a zone set afterwards would track the packet again.
        Action::Notrack => {
            expr.push(json!({ "notrack": null }));
            expr.push(json!({ "accept": null }));
        }
        Action::SetCtZone(z) => expr.push(json!({ "mangle": { "key": { "ct": { "key": "zone" } }, "value": z } })),
        Action::IifVmap(set) => expr.push(json!({ "vmap": { "key": meta("iifname"), "data": format!("@{set}") } })),
        Action::OifVmap(set) => expr.push(json!({ "vmap": { "key": meta("oifname"), "data": format!("@{set}") } })),
        Action::MarkVmap { mask, set } => {
            expr.push(json!({ "vmap": { "key": { "&": [meta("mark"), mask] }, "data": format!("@{set}") } }))
        }
    }
    expr
}

#[cfg(test)]
mod tests {
    use super::*;
    use neutrino_api::agent::{
        AddressPair, Direction, EtherType, GroupMember, HostSecurityGroup, HostSecurityRule, HostState, LocalPort,
    };
    use neutrino_domain::firewall::{compile_firewall, plan};
    use std::collections::BTreeMap;

    fn state(members: &[&str]) -> HostState {
        let mut s = HostState::default();
        let port = LocalPort {
            network_id: "net-aaaaaaaaaaaa".into(),
            mac_address: "fa:16:3e:00:00:01".into(),
            ip_addresses: vec!["198.51.100.5".into(), "2001:db8::5".into()],
            security_groups: vec!["g".into()],
            allowed_address_pairs: vec![AddressPair {
                ip_address: "203.0.113.0/28".into(),
                mac_address: "fa:16:3e:00:00:01".into(),
            }],
            ..LocalPort::default()
        };
        s.local_ports.insert("port-1".into(), port.clone());
        s.local_ports.insert("port-2".into(), LocalPort { port_security_enabled: false, ..port.clone() });
        s.local_ports.insert("port-3".into(), LocalPort { security_groups: vec!["stateless".into()], ..port });
        s.security_groups.insert("stateless".into(), HostSecurityGroup { stateful: false, rules: Vec::new() });
        let rule = |id: &str, direction, ethertype, protocol, min, max, remote: Option<&str>| HostSecurityRule {
            id: id.into(),
            direction,
            ethertype,
            protocol,
            port_range_min: min,
            port_range_max: max,
            remote_ip_prefix: None,
            remote_group_id: remote.map(String::from),
            remote_address_group_id: None,
        };
        let rules = vec![
            rule("a", Direction::Egress, EtherType::IPv4, None, None, None, None),
            rule("b", Direction::Ingress, EtherType::IPv4, Some(6), Some(22), Some(80), Some("g")),
            rule("c", Direction::Ingress, EtherType::IPv6, Some(1), Some(128), Some(0), None),
            HostSecurityRule {
                remote_address_group_id: Some("ag".into()),
                ..rule("e", Direction::Ingress, EtherType::IPv6, Some(6), Some(443), None, None)
            },
            HostSecurityRule {
                remote_address_group_id: Some("ag".into()),
                ..rule("f", Direction::Ingress, EtherType::IPv4, Some(6), Some(443), None, None)
            },
            HostSecurityRule {
                remote_ip_prefix: Some("192.0.2.0/24".into()),
                ..rule("d", Direction::Egress, EtherType::IPv4, Some(17), Some(53), None, None)
            },
        ];
        s.security_groups.insert("g".into(), HostSecurityGroup { stateful: true, rules });
        let ag = neutrino_api::agent::HostAddressGroup {
            addresses: vec!["192.0.2.0/28".into(), "192.0.2.77/32".into(), "2001:db8:1::/64".into()],
        };
        s.address_groups.insert("ag".into(), ag);
        for (i, m) in members.iter().enumerate() {
            let member = GroupMember { group_id: "g".into(), addresses: vec![m.to_string()] };
            s.group_members.insert(GroupMember::key("g", &format!("m{i}")), member);
        }
        s
    }

    /// What a compiled plan renders is what nftables takes, and what it lists back is what
    /// the plan expects: applying twice changes nothing. Needs root and `nft`; `scripts/test`
    /// runs it.
    #[test]
    #[ignore = "needs root and nft"]
    fn the_kernel_takes_a_plan_and_lists_it_back() {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root");
        std::thread::spawn(|| {
            // SAFETY: unshare(CLONE_NEWNET) only changes the calling thread's namespace.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let fw = KernelFirewall::of_current_netns().unwrap();
                for members in [&["198.51.100.7", "198.51.100.0/30"][..], &["198.51.100.9", "2001:db8::9"][..], &[]] {
                    let s = state(members);
                    let observed = fw.observe().await.unwrap();
                    let intent = compile_firewall(&s, &BTreeMap::new(), &BTreeMap::new());
                    let ops = plan(&intent.ruleset, &observed);
                    assert!(!ops.is_empty());
                    fw.apply(&ops).await.unwrap();
                    let again = plan(&intent.ruleset, &fw.observe().await.unwrap());
                    assert!(again.is_empty(), "converged after one transaction: {again:?}");
                }
            });
        })
        .join()
        .unwrap();
    }
}
