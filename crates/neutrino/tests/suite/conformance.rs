//! Replies compared with the recorded Neutron 29 samples in ../shared/reference/neutron-api:
//! the same attribute names, JSON types and error bodies. Ids and timestamps differ.

use crate::common::{default_config, start, Backend};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn samples_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/neutron-api");
    dir.is_dir().then_some(dir)
}

fn sample(dir: &std::path::Path, case: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{case}.json"))).unwrap()).unwrap()
}

/// Attribute name → JSON type name, for comparing shapes.
fn shape(v: &Value) -> BTreeMap<String, &'static str> {
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    v.as_object().unwrap().iter().map(|(k, v)| (k.clone(), kind(v))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_have_the_shapes_neutron_records() {
    let Some(dir) = samples_dir() else {
        eprintln!("skipping: no shared/reference/neutron-api beside the repository");
        return;
    };
    let s = start(Backend::Sqlite, default_config()).await.unwrap();
    let net = s
        .api
        .post("/v2.0/networks", json!({"network": {"name": "sample-net", "description": "sample"}}))
        .await
        .unwrap();
    let want = sample(&dir, "network_create");
    assert_eq!(shape(&net["network"]), shape(&want["response"]["body"]["network"]));
    let net_id = net["network"]["id"].as_str().unwrap();

    let v4 = s
        .api
        .post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": net_id, "ip_version": 4, "name": "sample-s4",
            "cidr": "10.30.0.0/24", "dns_nameservers": ["192.0.2.53"]}}),
        )
        .await
        .unwrap();
    let want = sample(&dir, "subnet_create_v4");
    assert_eq!(shape(&v4["subnet"]), shape(&want["response"]["body"]["subnet"]));
    let recorded = &want["response"]["body"]["subnet"];
    for key in ["gateway_ip", "allocation_pools", "cidr", "dns_nameservers", "enable_dhcp", "revision_number"] {
        assert_eq!(v4["subnet"][key], recorded[key], "{key}");
    }

    let v6 = s
        .api
        .post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": net_id, "ip_version": 6, "name": "sample-s6",
            "cidr": "fd00:30::/64", "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}}),
        )
        .await
        .unwrap();
    let want = sample(&dir, "subnet_create_v6");
    let recorded = &want["response"]["body"]["subnet"];
    for key in ["gateway_ip", "allocation_pools", "ipv6_ra_mode", "ipv6_address_mode"] {
        assert_eq!(v6["subnet"][key], recorded[key], "{key}");
    }

    let port = s
        .api
        .post(
            "/v2.0/ports",
            json!({"port": {"network_id": net_id, "name": "sample-port",
            "fixed_ips": [{"subnet_id": v4["subnet"]["id"], "ip_address": "10.30.0.10"}]}}),
        )
        .await
        .unwrap();
    let want = sample(&dir, "port_create");
    assert_eq!(shape(&port["port"]), shape(&want["response"]["body"]["port"]));
    assert_eq!(port["port"]["security_groups"].as_array().unwrap().len(), 1, "the default group");

    let sg = s
        .api
        .post("/v2.0/security-groups", json!({"security_group": {"name": "sample-sg", "description": "sample"}}))
        .await
        .unwrap();
    let want = sample(&dir, "security_group_create");
    let mut got_shape = shape(&sg["security_group"]);
    let want_group = &want["response"]["body"]["security_group"];
    assert_eq!(got_shape.remove("security_group_rules"), Some("array"));
    let mut want_shape = shape(want_group);
    want_shape.remove("security_group_rules");
    assert_eq!(got_shape, want_shape);
    assert_eq!(sg["security_group"]["security_group_rules"].as_array().unwrap().len(), 2);
    assert_eq!(sg["security_group"]["revision_number"], want_group["revision_number"]);
    let rule = s
        .api
        .post(
            "/v2.0/security-group-rules",
            json!({"security_group_rule": {"security_group_id": sg["security_group"]["id"],
            "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
            "remote_ip_prefix": "0.0.0.0/0"}}),
        )
        .await
        .unwrap();
    let want = sample(&dir, "security_group_rule_create");
    assert_eq!(shape(&rule["security_group_rule"]), shape(&want["response"]["body"]["security_group_rule"]));

    // IP availability: the same counts Neutron makes (a /64 holds 2^64 addresses).
    let avail = s.api.get(&format!("/v2.0/network-ip-availabilities/{net_id}")).await.unwrap();
    let want = sample(&dir, "network_ip_availability_show");
    let got = &avail["network_ip_availability"];
    let recorded = &want["response"]["body"]["network_ip_availability"];
    assert_eq!(shape(got), shape(recorded));
    let v4_usage = got["subnet_ip_availability"].as_array().unwrap().iter().find(|s| s["ip_version"] == 4).unwrap();
    assert_eq!(v4_usage["ip_availability_details"]["total_ips_in_subnet"], 254);
    assert_eq!(v4_usage["ip_availability_details"]["total_ips_in_allocation_pool"], 253);
    // The port and the network's DHCP port.
    assert_eq!(v4_usage["used_ips"], 2);
    let text = s.api.get_raw(&format!("/v2.0/network-ip-availabilities/{net_id}")).await.unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("\"total_ips_in_subnet\":18446744073709551616"), "{text}");

    // Paged lists carry Neutron's next and previous links.
    let page = s.api.get(&format!("/v2.0/ports?network_id={net_id}&limit=1&sort_key=name&sort_dir=asc")).await.unwrap();
    let want = sample(&dir, "port_list_paginated");
    let rels =
        |v: &Value| -> Vec<Value> { v["ports_links"].as_array().unwrap().iter().map(|l| l["rel"].clone()).collect() };
    assert_eq!(rels(&page), rels(&want["response"]["body"]));

    // External networks.
    let ext = s
        .api
        .post(
            "/v2.0/networks",
            json!({"network": {"name": "sample-ext", "router:external": true,
            "provider:network_type": "flat", "provider:physical_network": "physnet0"}}),
        )
        .await
        .unwrap();
    let want = sample(&dir, "network_create_external");
    assert_eq!(shape(&ext["network"]), shape(&want["response"]["body"]["network"]));
    for key in
        ["router:external", "mtu", "provider:network_type", "provider:physical_network", "provider:segmentation_id"]
    {
        assert_eq!(ext["network"][key], want["response"]["body"]["network"][key], "{key}");
    }
    let ext_subnet = s
        .api
        .post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": ext["network"]["id"], "ip_version": 4,
            "cidr": "198.51.100.0/24", "enable_dhcp": false, "name": "sample-ext-sub"}}),
        )
        .await
        .unwrap();
    assert_eq!(ext_subnet["subnet"]["router:external"], true);
    let listed = s.api.get(&format!("/v2.0/subnets/{}", ext_subnet["subnet"]["id"].as_str().unwrap())).await.unwrap();
    assert_eq!(listed["subnet"]["router:external"], true);

    // Every extension we list is one Neutron has, with its name and description.
    let ours = s.api.get("/v2.0/extensions").await.unwrap();
    let theirs = sample(&dir, "extensions_list");
    let theirs = theirs["response"]["body"]["extensions"].as_array().unwrap();
    for ext in ours["extensions"].as_array().unwrap() {
        let same =
            theirs.iter().find(|t| t["alias"] == ext["alias"]).unwrap_or_else(|| panic!("unknown extension {ext}"));
        assert_eq!(ext["description"], same["description"], "{}", ext["alias"]);
        assert_eq!(shape(ext), shape(same));
    }
    for alias in ["security-group", "sorting", "standard-attr-tag", "subnet_allocation", "port-security"] {
        assert!(ours["extensions"].as_array().unwrap().iter().any(|e| e["alias"] == alias), "{alias} listed");
    }

    // Error bodies: replay the recorded failing requests with our ids.
    for case in [
        "error_409_ip_already_allocated",
        "error_400_unknown_attribute",
        "error_400_bad_cidr",
        "error_400_ip_version_mismatch",
        "error_400_subnet_overlap",
        "error_404_unknown_resource_path",
        "error_404_put_collection",
    ] {
        let rec = sample(&dir, case);
        let text = rec["request"]["body"]
            .to_string()
            .replace("0817d5d7-a353-4219-8f3f-2da496259738", net_id)
            .replace("9b83d999-dfde-4159-a5bd-15f818426514", v4["subnet"]["id"].as_str().unwrap());
        let path = rec["request"]["path"].as_str().unwrap();
        let body: Value = serde_json::from_str(&text).unwrap();
        let r = match rec["request"]["method"].as_str().unwrap() {
            "POST" => s.api.post(path, body).await,
            "PUT" => s.api.put(path, body).await,
            _ => s.api.get(path).await,
        };
        let neutrino_lab::ApiError::Status { status, body } = r.unwrap_err() else {
            panic!("{case}: not an HTTP error")
        };
        assert_eq!(status as u64, rec["response"]["status"].as_u64().unwrap(), "{case}");
        let want = &rec["response"]["body"]["NeutronError"];
        let want_message = want["message"]
            .as_str()
            .unwrap()
            .replace("0817d5d7-a353-4219-8f3f-2da496259738", net_id)
            .replace("9b83d999-dfde-4159-a5bd-15f818426514", v4["subnet"]["id"].as_str().unwrap());
        assert_eq!(body["NeutronError"]["type"], want["type"], "{case}");
        assert_eq!(body["NeutronError"]["message"], want_message, "{case}");
    }
}

/// Recorded cases that need features of later work (`extension_show` shows an extension not
/// listed here; `quota_show` also lists the trunk quotas): skipped by name, so nothing is
/// skipped silently.
const NOT_YET: &[&str] = &["extension_show", "quota_show"];

/// The resource object of a body: `{"network": {...}}` or the first of `{"networks": [...]}`.
fn resource_of(body: &Value) -> Option<(String, Value)> {
    let (key, v) = body.as_object()?.iter().find(|(k, _)| !k.ends_with("_links"))?;
    match v {
        Value::Array(items) => Some((key.clone(), items.first()?.clone())),
        Value::Object(_) => Some((key.clone(), v.clone())),
        _ => None,
    }
}

/// Shapes equal, where `null` on either side matches any type (Neutron and Neutrino may
/// leave different optional values unset).
fn same_shape(ours: &Value, theirs: &Value) -> Result<(), String> {
    let (a, b) = (shape(ours), shape(theirs));
    let keys_a: Vec<&String> = a.keys().collect();
    let keys_b: Vec<&String> = b.keys().collect();
    if keys_a != keys_b {
        return Err(format!("attributes differ: ours {keys_a:?}, Neutron {keys_b:?}"));
    }
    for (k, t) in &a {
        let u = b[k];
        if *t != u && *t != "null" && u != "null" {
            return Err(format!("{k}: ours {t}, Neutron {u}"));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_recorded_session_gives_neutrons_statuses_errors_and_shapes() {
    let Some(dir) = samples_dir() else {
        eprintln!("skipping: no shared/reference/neutron-api beside the repository");
        return;
    };
    let index = sample(&dir, "INDEX");
    // The recorded Neutron had VLANs 100-200 on physnet1 and a flat physnet0.
    let mut config = default_config();
    config.type_drivers.network_vlan_ranges =
        neutrino_domain::segments::parse_vlan_ranges("physnet1:100:200,physnet0").unwrap();
    let s = start(Backend::Sqlite, config).await.unwrap();
    let client = reqwest::Client::new();
    // Recorded id → our id, learned from create responses.
    let mut ids: Vec<(String, String)> = Vec::new();
    let mut replayed = 0;
    for case in index["cases"].as_array().unwrap() {
        let name = case["case"].as_str().unwrap();
        if NOT_YET.contains(&name) {
            continue;
        }
        let rec = sample(&dir, name);
        let map = |text: &str| ids.iter().fold(text.to_string(), |t, (theirs, ours)| t.replace(theirs, ours));
        let path = map(rec["request"]["path"].as_str().unwrap());
        let url = format!("{}{path}", s.base);
        let method = rec["request"]["method"].as_str().unwrap();
        let mut req = match method {
            "POST" => client.post(&url),
            "PUT" => client.put(&url),
            "DELETE" => client.delete(&url),
            _ => client.get(&url),
        };
        match &rec["request"]["body"] {
            Value::Null => {}
            Value::String(raw) => req = req.header("Content-Type", "application/json").body(raw.clone()),
            body => req = req.header("Content-Type", "application/json").body(map(&body.to_string())),
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let want_status = rec["response"]["status"].as_u64().unwrap() as u16;
        assert_eq!(status, want_status, "{name}: {body}");
        let want = &rec["response"]["body"];
        if status >= 400 {
            assert_eq!(body["NeutronError"]["type"], want["NeutronError"]["type"], "{name}");
        } else if let (Some((key, ours)), Some((want_key, theirs))) = (resource_of(&body), resource_of(want)) {
            assert_eq!(key, want_key, "{name}");
            if ours.is_object() {
                same_shape(&ours, &theirs).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            if method == "POST" {
                if let (Some(t), Some(o)) = (theirs["id"].as_str(), ours["id"].as_str()) {
                    ids.push((t.to_string(), o.to_string()));
                }
            }
        }
        replayed += 1;
    }
    eprintln!("replayed {replayed} recorded cases, skipped {} for later features", NOT_YET.len());
    assert!(replayed >= 40);
}
