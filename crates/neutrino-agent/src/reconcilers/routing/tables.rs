//! The nftables of a router namespace: the source-MAC rewrite of its legs (`netdev`) and the
//! NAT of its floating IPs, forwardings and SNAT (`ip`), each replaced whole in one
//! transaction.

use neutrino_api::agent::HostRouter;
use neutrino_dataplane::MacAddr;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// The table of the source-MAC rewrite in each router namespace.
const REWRITE_TABLE: &str = "neutrino_routing";
/// The table of floating IP NAT in each router namespace.
const NAT_TABLE: &str = "neutrino_nat";

/// The NAT of a router namespace (table `ip neutrino_nat`, replaced whole in one
/// transaction): each floating IP of this host DNATs to its fixed IP and its fixed IP SNATs to
/// it out of the external leg; with distributed SNAT (`snat`: this host's own address) the
/// router's subnets SNAT to that address after them; nothing else leaves by that leg.
pub(super) fn nat_table(
    external: Option<&str>,
    router: &HostRouter,
    snat: Option<std::net::IpAddr>,
    marking: bool,
) -> Value {
    let table = json!({"family": "ip", "name": NAT_TABLE});
    let mut batch = vec![json!({"add": {"table": table}}), json!({"delete": {"table": table}})];
    let Some(leg) = external else {
        return json!({ "nftables": batch });
    };
    batch.push(json!({"add": {"table": table}}));
    for (name, kind, hook, prio) in [
        ("prerouting", "nat", "prerouting", -100),
        ("postrouting", "nat", "postrouting", 100),
        ("forward", "filter", "forward", 0),
    ] {
        batch.push(json!({"add": {"chain": {"family": "ip", "table": NAT_TABLE, "name": name,
            "type": kind, "hook": hook, "prio": prio, "policy": "accept"}}}));
    }
    let rule = |chain: &str, expr: Vec<Value>| json!({"add": {"rule": {"family": "ip", "table": NAT_TABLE, "chain": chain, "expr": expr}}});
    let addr = |field: &str, value: &str| json!({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": field}}, "right": value}});
    let oif = json!({"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": leg}});
    if marking {
        // What the floating IPs send (and the replies of forwarded connections) is routed by
        // the marked table, out of the external leg; the rest goes to a gateway host.
        batch.push(json!({"add": {"chain": {"family": "ip", "table": NAT_TABLE, "name": "mark",
            "type": "filter", "hook": "prerouting", "prio": -150, "policy": "accept"}}}));
        let not_external = json!({"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": leg}});
        let set = json!({"mangle": {"key": {"meta": {"key": "mark"}}, "value": neutrino_dataplane::ROUTE_MARK}});
        for f in router.floating_ips.values() {
            batch.push(rule("mark", vec![not_external.clone(), addr("saddr", &f.fixed_ip_address), set.clone()]));
        }
        let forwarded = json!({"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}});
        batch.push(rule("mark", vec![not_external, forwarded, set]));
    }
    for f in router.floating_ips.values() {
        batch.push(rule(
            "prerouting",
            vec![addr("daddr", &f.floating_ip_address), json!({"dnat": {"addr": f.fixed_ip_address}})],
        ));
        batch.push(rule(
            "postrouting",
            vec![oif.clone(), addr("saddr", &f.fixed_ip_address), json!({"snat": {"addr": f.floating_ip_address}})],
        ));
        batch.push(rule("forward", vec![oif.clone(), addr("saddr", &f.fixed_ip_address), json!({"accept": null})]));
    }
    // Port forwardings: the floating IP's external ports to an internal address's; a range
    // goes port by port (as Neutron maps ranges of one size, or onto one internal port).
    for pf in router.port_forwardings.values() {
        let ported = ["tcp", "udp", "sctp", "dccp"].contains(&pf.protocol.as_str());
        if !ported || pf.external.1 - pf.external.0 > 1000 {
            continue;
        }
        for (i, external) in (pf.external.0..=pf.external.1).enumerate() {
            let internal = if pf.internal.0 == pf.internal.1 { pf.internal.0 } else { pf.internal.0 + i as u32 };
            let dport = json!({"match": {"op": "==", "left": {"payload": {"protocol": pf.protocol, "field": "dport"}},
                "right": external}});
            batch.push(rule(
                "prerouting",
                vec![
                    addr("daddr", &pf.floating_ip_address),
                    dport,
                    json!({"dnat": {"addr": pf.internal_ip_address, "port": internal}}),
                ],
            ));
        }
    }
    // Replies of forwarded connections leave by the external leg too.
    batch.push(rule(
        "forward",
        vec![
            oif.clone(),
            json!({"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}}),
            json!({"accept": null}),
        ],
    ));
    if let Some(own) = snat {
        let subnets: BTreeSet<ipnet::IpNet> = router
            .interfaces
            .values()
            .flat_map(|i| i.addresses.iter())
            .filter_map(|a| a.parse::<ipnet::IpNet>().ok())
            .filter(|a| a.addr().is_ipv4())
            .map(|a| a.trunc())
            .collect();
        for subnet in subnets {
            let from = json!({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                "right": {"prefix": {"addr": subnet.addr().to_string(), "len": subnet.prefix_len()}}}});
            batch
                .push(rule("postrouting", vec![oif.clone(), from.clone(), json!({"snat": {"addr": own.to_string()}})]));
            batch.push(rule("forward", vec![oif.clone(), from, json!({"accept": null})]));
        }
    }
    batch.push(rule("forward", vec![oif, json!({"drop": null})]));
    json!({ "nftables": batch })
}

/// The source MAC this host's copy of a router interface sends with: `fa:16:3f` and three
/// bytes of a hash of the host and the port (DVR's `dvr_base_mac` prefix).
pub fn host_mac(host: &str, port_id: &str) -> MacAddr {
    // FNV-1a: stable across builds and platforms.
    let mut h: u32 = 0x811c_9dc5;
    for b in host.bytes().chain([0]).chain(port_id.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let [a, b, c, _] = h.to_be_bytes();
    MacAddr([0xfa, 0x16, 0x3f, a, b, c])
}

/// The rewrite table of one router namespace, replaced whole in one transaction: per leg, an
/// egress chain that gives every frame but ARP the host's source MAC.
pub(super) fn rewrite_table(legs: &[(String, MacAddr)]) -> Value {
    let table = json!({"family": "netdev", "name": REWRITE_TABLE});
    let mut batch = vec![json!({"add": {"table": table}}), json!({"delete": {"table": table}})];
    batch.push(json!({"add": {"table": table}}));
    for (device, mac) in legs {
        batch.push(json!({"add": {"chain": {
            "family": "netdev", "table": REWRITE_TABLE, "name": device,
            "type": "filter", "hook": "egress", "dev": device, "prio": 0, "policy": "accept"
        }}}));
        batch.push(json!({"add": {"rule": {
            "family": "netdev", "table": REWRITE_TABLE, "chain": device,
            "expr": [
                {"match": {"op": "!=", "left": {"payload": {"protocol": "ether", "field": "type"}}, "right": "arp"}},
                {"mangle": {"key": {"payload": {"protocol": "ether", "field": "saddr"}}, "value": mac.to_string()}}
            ]
        }}}));
    }
    json!({ "nftables": batch })
}
