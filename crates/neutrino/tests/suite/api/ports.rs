//! API tests: ports.

use super::*;

on_both_backends!(ports_get_addresses_macs_and_bindings, default_config(), |s: TestServer| async move {
    let (net_id, subnet_id) = network_with_subnet(&s, "198.51.100.0/29").await;
    // A /29 has five addresses in its pool (.2 - .6); the network's DHCP port holds .2.
    let specific = post_port(
        &s,
        json!({"network_id": net_id, "fixed_ips": [{"subnet_id": subnet_id, "ip_address": "198.51.100.4"}]}),
    )
    .await
    .unwrap()["port"]
        .clone();
    assert_eq!(specific["fixed_ips"], json!([{"subnet_id": subnet_id, "ip_address": "198.51.100.4"}]));
    assert!(specific["mac_address"].as_str().unwrap().starts_with("fa:16:3e:"));
    assert_eq!(specific["status"], "DOWN");
    assert_eq!(specific["binding:vif_type"], "unbound");
    let (status, kind, message) =
        error_of(post_port(&s, json!({"network_id": net_id, "fixed_ips": [{"ip_address": "198.51.100.4"}]})).await);
    assert_eq!((status, kind.as_str()), (409, "IpAddressAlreadyAllocated"));
    assert_eq!(message, format!("IP address 198.51.100.4 already allocated in subnet {subnet_id}"));

    let mut seen = HashSet::new();
    for _ in 0..3 {
        let p = post_port(&s, json!({"network_id": net_id})).await.unwrap()["port"].clone();
        let ip = p["fixed_ips"][0]["ip_address"].as_str().unwrap().to_string();
        assert!(["198.51.100.3", "198.51.100.5", "198.51.100.6"].contains(&ip.as_str()), "{ip}");
        assert!(seen.insert(ip));
    }
    let (status, kind, _) = error_of(post_port(&s, json!({"network_id": net_id})).await);
    assert_eq!((status, kind.as_str()), (409, "IpAddressGenerationFailure"));

    // Binding: no agent on the host fails; a registered Linux bridge agent binds.
    let net2 = s.api.create_network("n2").await.unwrap();
    let net2_id = net2["id"].as_str().unwrap();
    let failed =
        post_port(&s, json!({"network_id": net2_id, "binding:host_id": "nowhere"})).await.unwrap()["port"].clone();
    assert_eq!(failed["binding:vif_type"], "binding_failed");
    s.api.post("/v2.0/neutrino/agents", lb_agent("compute1", "192.0.2.11")).await.unwrap();
    let bound =
        post_port(&s, json!({"network_id": net2_id, "binding:host_id": "compute1"})).await.unwrap()["port"].clone();
    assert_eq!(bound["binding:vif_type"], "bridge");
    assert_eq!(bound["binding:vif_details"]["bridge_name"], format!("brq{}", &net2_id[..11]));
    let agents = s.api.get("/v2.0/agents").await.unwrap();
    assert_eq!(agents["agents"][0]["host"], "compute1");
    assert_eq!(agents["agents"][0]["alive"], true);

    // Update and If-Match.
    let id = bound["id"].as_str().unwrap();
    let up = s
        .api
        .put(&format!("/v2.0/ports/{id}"), json!({"port": {"name": "renamed", "admin_state_up": false}}))
        .await
        .unwrap();
    assert_eq!(up["port"]["revision_number"], 2);
    assert_eq!(up["port"]["admin_state_up"], false);
    let stale = reqwest::Client::new()
        .put(format!("{}/v2.0/ports/{id}", s.base))
        .header("If-Match", "revision_number=1")
        .json(&json!({"port": {"name": "late"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);
    let refused: serde_json::Value = stale.json().await.unwrap();
    assert_eq!(refused["NeutronError"]["type"], "RevisionNumberConstraintFailed");
    assert_eq!(refused["NeutronError"]["message"], "Constrained to 1, but current revision is 2");
    let ports = s.api.get(&format!("/v2.0/ports?network_id={net2_id}&binding:host_id=compute1")).await.unwrap();
    assert_eq!(ports["ports"].as_array().unwrap().len(), 1);

    // Lists (rendered bodies) always equal what show returns (rows).
    s.api.put("/v2.0/neutrino/ports/status", json!({"host": "compute1", "ports": {id: "ACTIVE"}})).await.unwrap();
    s.api
        .put(
            &format!("/v2.0/ports/{}", specific["id"].as_str().unwrap()),
            json!({"port": {"fixed_ips": [{"ip_address": "198.51.100.6"}]}}),
        )
        .await
        .expect_err("198.51.100.6 is taken by an automatic port");
    for p in s.api.get("/v2.0/ports").await.unwrap()["ports"].as_array().unwrap() {
        let shown = s.api.port(p["id"].as_str().unwrap()).await.unwrap();
        assert_eq!(p, &shown, "list and show agree");
    }

    // Deleting the network needs its ports gone first.
    let (status, kind, _) = error_of(s.api.delete(&format!("/v2.0/networks/{net2_id}")).await);
    assert_eq!((status, kind.as_str()), (409, "NetworkInUse"));
    for p in s.api.get(&format!("/v2.0/ports?network_id={net2_id}")).await.unwrap()["ports"].as_array().unwrap() {
        s.api.delete(&format!("/v2.0/ports/{}", p["id"].as_str().unwrap())).await.unwrap();
    }
    s.api.delete(&format!("/v2.0/networks/{net2_id}")).await.unwrap();
});

on_both_backends!(concurrent_port_creates_never_duplicate_or_fail, default_config(), |s: TestServer| async move {
    let (net_id, _) = network_with_subnet(&s, "203.0.113.0/24").await;
    // Sixteen clients race for one address: exactly one wins.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let api = s.api.clone();
        let net_id = net_id.clone();
        tasks.push(tokio::spawn(async move {
            api.post(
                "/v2.0/ports",
                json!({"port": {"network_id": net_id, "fixed_ips": [{"ip_address": "203.0.113.77"}]}}),
            )
            .await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(e) => assert_eq!(error_of(Err(e)).0, 409),
        }
    }
    assert_eq!(won, 1);

    // 200 automatic ports from 16 clients: all succeed, all distinct.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let api = s.api.clone();
        let net_id = net_id.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for _ in 0..13 {
                out.push(
                    api.post("/v2.0/ports", json!({"port": {"network_id": net_id}}))
                        .await
                        .expect("no error under load")["port"]
                        .clone(),
                );
            }
            out
        }));
    }
    let mut ips = HashSet::new();
    let mut macs = HashSet::new();
    for t in tasks {
        for p in t.await.unwrap() {
            assert!(ips.insert(p["fixed_ips"][0]["ip_address"].as_str().unwrap().to_string()));
            assert!(macs.insert(p["mac_address"].as_str().unwrap().to_string()));
        }
    }
    assert_eq!(ips.len(), 208);
    let listed = s.api.get(&format!("/v2.0/ports?network_id={net_id}&fields=id")).await.unwrap();
    // With the first and the DHCP port.
    assert_eq!(listed["ports"].as_array().unwrap().len(), 210);
    // Paging: follow the absolute `next` links, as openstacksdk does, until the last page.
    let mut seen_ids = HashSet::new();
    let mut url = format!("{}/v2.0/ports?network_id={net_id}&limit=100", s.base);
    let mut pages = 0;
    loop {
        let page: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        pages += 1;
        for p in page["ports"].as_array().unwrap() {
            assert!(seen_ids.insert(p["id"].as_str().unwrap().to_string()), "no port on two pages");
        }
        let next = page["ports_links"].as_array().and_then(|l| l.iter().find(|l| l["rel"] == "next"));
        match next.and_then(|l| l["href"].as_str()) {
            Some(next) => {
                assert!(next.starts_with("http://") && next.contains(&format!("network_id={net_id}")), "{next}");
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!((seen_ids.len(), pages), (210, 3));
});

on_both_backends!(ports_carry_address_pairs_and_dhcp_options, default_config(), |s: TestServer| async move {
    let (net_id, _) = network_with_subnet(&s, "198.51.100.0/24").await;
    let port = post_port(&s, json!({"network_id": net_id,
        "allowed_address_pairs": [{"ip_address": "203.0.113.0/28"}, {"ip_address": "198.51.100.200", "mac_address": "FA:16:3E:AA:BB:CC"}],
        "extra_dhcp_opts": [{"opt_name": "mtu", "opt_value": "1400"}, {"opt_name": "domain-search", "opt_value": "example.org", "ip_version": 6}]}))
    .await
    .unwrap()["port"]
        .clone();
    let id = port["id"].as_str().unwrap();
    assert_eq!(
        port["allowed_address_pairs"],
        json!([{"ip_address": "203.0.113.0/28", "mac_address": port["mac_address"]},
               {"ip_address": "198.51.100.200", "mac_address": "fa:16:3e:aa:bb:cc"}])
    );
    assert_eq!(port["extra_dhcp_opts"].as_array().unwrap().len(), 2);
    assert_eq!(s.api.port(id).await.unwrap(), port, "what was stored is what was returned");

    // DHCP options merge on update; a null value removes one.
    let updated = s
        .api
        .put(&format!("/v2.0/ports/{id}"), json!({"port": {"extra_dhcp_opts": [
            {"opt_name": "mtu", "opt_value": "1300"}, {"opt_name": "domain-search", "opt_value": null, "ip_version": 6}]}}))
        .await
        .unwrap()["port"]
        .clone();
    assert_eq!(updated["extra_dhcp_opts"], json!([{"opt_name": "mtu", "opt_value": "1300", "ip_version": 4}]));
    assert_eq!(updated["allowed_address_pairs"], port["allowed_address_pairs"], "pairs kept");

    let (status, kind, _) = error_of(
        s.api
            .put(&format!("/v2.0/ports/{id}"), json!({"port": {"port_security_enabled": false, "security_groups": []}}))
            .await,
    );
    assert_eq!((status, kind.as_str()), (409, "AddressPairAndPortSecurityRequired"));
    let (status, kind, _) = error_of(
        post_port(
            &s,
            json!({"network_id": net_id,
        "allowed_address_pairs": [{"ip_address": "203.0.113.9"}, {"ip_address": "203.0.113.9"}]}),
        )
        .await,
    );
    assert_eq!((status, kind.as_str()), (400, "DuplicateAddressPairInRequest"));
    let (status, kind, _) = error_of(
        post_port(&s, json!({"network_id": net_id, "allowed_address_pairs": [{"mac_address": "fa:16:3e:00:00:09"}]}))
            .await,
    );
    assert_eq!((status, kind.as_str()), (400, "AllowedAddressPairsMissingIP"));

    let cleared = s
        .api
        .put(
            &format!("/v2.0/ports/{id}"),
            json!({"port": {"allowed_address_pairs": [], "port_security_enabled": false, "security_groups": []}}),
        )
        .await
        .unwrap();
    assert_eq!(cleared["port"]["allowed_address_pairs"], json!([]));
    assert_eq!(s.api.get(&format!("/v2.0/ports?id={id}")).await.unwrap()["ports"][0], cleared["port"]);
});

on_both_backends!(dns_integration_names_ports_when_enabled, with_dns(), |s: TestServer| async move {
    let exts = s.api.get("/v2.0/extensions").await.unwrap();
    assert!(exts["extensions"].as_array().unwrap().iter().any(|e| e["alias"] == "dns-integration"));
    assert_eq!(s.api.get("/v2.0/extensions/dns-integration").await.unwrap()["extension"]["name"], "DNS Integration");
    let net =
        s.api.post("/v2.0/networks", json!({"network": {"name": "d", "dns_domain": "example.org"}})).await.unwrap()
            ["network"]
            .clone();
    assert_eq!(net["dns_domain"], "example.org.");
    let net_id = net["id"].as_str().unwrap();
    s.api.create_subnet(net_id, "198.51.100.0/24").await.unwrap();
    let named =
        post_port(&s, json!({"network_id": net_id, "dns_name": "VM1", "fixed_ips": [{"ip_address": "198.51.100.5"}]}))
            .await
            .unwrap()["port"]
            .clone();
    assert_eq!(named["dns_name"], "vm1");
    assert_eq!(
        named["dns_assignment"],
        json!([{"hostname": "vm1", "ip_address": "198.51.100.5", "fqdn": "vm1.openstacklocal."}])
    );
    let anonymous = post_port(&s, json!({"network_id": net_id, "fixed_ips": [{"ip_address": "198.51.100.6"}]}))
        .await
        .unwrap()["port"]
        .clone();
    assert_eq!(anonymous["dns_assignment"][0]["hostname"], "host-198-51-100-6");
    let id = named["id"].as_str().unwrap();
    let renamed =
        s.api.put(&format!("/v2.0/ports/{id}"), json!({"port": {"dns_name": "web"}})).await.unwrap()["port"].clone();
    assert_eq!(renamed["dns_assignment"][0]["fqdn"], "web.openstacklocal.");
    assert_eq!(s.api.get(&format!("/v2.0/ports?id={id}")).await.unwrap()["ports"][0], renamed, "list and show agree");
    let (status, _, _) = error_of(post_port(&s, json!({"network_id": net_id, "dns_name": "-bad-"})).await);
    assert_eq!(status, 400);
});

on_both_backends!(without_dns_integration_dns_attributes_are_absent, default_config(), |s: TestServer| async move {
    let net = s.api.create_network("n").await.unwrap();
    assert!(net.get("dns_domain").is_none());
    let port = post_port(&s, json!({"network_id": net["id"]})).await.unwrap()["port"].clone();
    assert!(port.get("dns_name").is_none() && port.get("dns_assignment").is_none());
    let (status, _, _) = error_of(post_port(&s, json!({"network_id": net["id"], "dns_name": "vm1"})).await);
    assert_eq!(status, 400, "refused, never ignored");
});

/// Turning DNS integration on renders the stored port bodies again, so lists show it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enabling_dns_integration_renders_stored_ports_again() {
    let dir = crate::common::TempDir(std::env::temp_dir().join(crate::common::unique("neutrino-dns")));
    std::fs::create_dir_all(&dir.0).unwrap();
    let connection = format!("sqlite:///{}/db.sqlite", dir.0.display());
    let serve = |dns: Option<String>| {
        let connection = connection.clone();
        async move {
            let store = neutrino_store::Store::connect(&connection, 4).await.unwrap();
            let config = ServerConfig { connection, dns_domain: dns, ..default_config() };
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let app = neutrino_server::App::new(store, config).await.unwrap();
            (tokio::spawn(neutrino_server::serve(app, listener)), neutrino_lab::ApiClient::new(&base))
        }
    };
    let (task, api) = serve(None).await;
    let net = api.create_network("n").await.unwrap();
    api.create_subnet(net["id"].as_str().unwrap(), "198.51.100.0/24").await.unwrap();
    api.post("/v2.0/ports", json!({"port": {"network_id": net["id"]}})).await.unwrap();
    assert!(api.get("/v2.0/ports").await.unwrap()["ports"][0].get("dns_assignment").is_none());
    task.abort();
    let (task, api) = serve(Some("openstacklocal.".into())).await;
    let listed = api.get("/v2.0/ports").await.unwrap();
    assert_eq!(listed["ports"][0]["dns_name"], "");
    assert!(listed["ports"][0]["dns_assignment"][0]["fqdn"].as_str().unwrap().ends_with(".openstacklocal."));
    task.abort();
}

// The rendered bodies lists stream follow every change a port's body shows, whoever makes
// it: tags, an agent's status report, a subnet delete that takes addresses away.
on_both_backends!(rendered_port_bodies_follow_every_change, default_config(), |s: TestServer| async move {
    let (net_id, _) = network_with_subnet(&s, "198.51.100.0/24").await;
    let v6 = json!({"subnet": {"network_id": net_id, "ip_version": 6, "cidr": "2001:db8:5::/64",
                    "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}});
    let v6_id = s.api.post("/v2.0/subnets", v6).await.unwrap()["subnet"]["id"].as_str().unwrap().to_string();
    s.api.post("/v2.0/neutrino/agents", lb_agent("bodies", "192.0.2.41")).await.unwrap();
    let port = post_port(&s, json!({"network_id": net_id, "binding:host_id": "bodies"})).await.unwrap();
    let id = port["port"]["id"].as_str().unwrap().to_string();
    assert_eq!(port["port"]["fixed_ips"].as_array().unwrap().len(), 2);
    let listed_equals_shown = |step: &'static str| {
        let api = s.api.clone();
        let id = id.clone();
        async move {
            let listed = api.get(&format!("/v2.0/ports?id={id}")).await.unwrap()["ports"][0].clone();
            assert_eq!(listed, api.port(&id).await.unwrap(), "after {step}");
            listed
        }
    };
    s.api.put(&format!("/v2.0/ports/{id}/tags/red"), json!({})).await.unwrap();
    assert_eq!(listed_equals_shown("a tag").await["tags"], json!(["red"]));
    s.api.put("/v2.0/neutrino/ports/status", json!({"host": "bodies", "ports": {&id: "ACTIVE"}})).await.unwrap();
    assert_eq!(listed_equals_shown("a status report").await["status"], "ACTIVE");
    s.api.delete(&format!("/v2.0/subnets/{v6_id}")).await.unwrap();
    assert_eq!(listed_equals_shown("a subnet delete").await["fixed_ips"].as_array().unwrap().len(), 1);
});

// Corners where Neutron answers with specific types and behaviours: MAC regeneration, fixed
// IPs on subnets that do not exist or are SLAAC, filters on groups and address substrings,
// duplicate host routes, segments beside provider attributes.
on_both_backends!(corner_cases_answer_as_neutron_does, default_config(), |s: TestServer| async move {
    let (net_id, _) = network_with_subnet(&s, "198.51.100.0/24").await;
    let port = post_port(&s, json!({"network_id": net_id, "mac_address": null})).await.unwrap()["port"].clone();
    let (id, mac) = (port["id"].as_str().unwrap().to_string(), port["mac_address"].as_str().unwrap().to_string());
    assert!(mac.starts_with("fa:16:3e:"), "a null MAC on create is a random one: {mac}");
    // `port-mac-address-regenerate`: a null MAC on update draws a new one.
    let updated = s.api.put(&format!("/v2.0/ports/{id}"), json!({"port": {"mac_address": null}})).await.unwrap();
    let new_mac = updated["port"]["mac_address"].as_str().unwrap();
    assert!(new_mac.starts_with("fa:16:3e:") && new_mac != mac, "{mac} -> {new_mac}");
    let extensions = s.api.get("/v2.0/extensions").await.unwrap().to_string();
    assert!(extensions.contains("port-mac-address-regenerate"));

    // A subnet that does not exist is not found; one of another network is invalid input.
    let missing = "11111111-2222-3333-4444-555555555555";
    let (status, kind, message) =
        error_of(post_port(&s, json!({"network_id": net_id, "fixed_ips": [{"subnet_id": missing}]})).await);
    assert_eq!(
        (status, kind.as_str(), message),
        (404, "SubnetNotFound", format!("Subnet {missing} could not be found."))
    );
    let (other_net, other_subnet) = network_with_subnet(&s, "203.0.113.0/24").await;
    let (status, kind, message) =
        error_of(post_port(&s, json!({"network_id": net_id, "fixed_ips": [{"subnet_id": other_subnet}]})).await);
    assert_eq!((status, kind.as_str()), (400, "InvalidInput"));
    assert!(message.contains("because fixed_ips included invalid subnet"), "{message}");
    let (status, kind, _) =
        error_of(post_port(&s, json!({"network_id": net_id, "fixed_ips": [{"ip_address": "203.0.113.9"}]})).await);
    assert_eq!((status, kind.as_str()), (400, "InvalidIpForNetwork"));
    let bare = s.api.create_network("bare").await.unwrap()["id"].as_str().unwrap().to_string();
    let (status, _, message) =
        error_of(post_port(&s, json!({"network_id": bare, "fixed_ips": [{"ip_address": "198.51.100.9"}]})).await);
    assert_eq!(
        (status, message.as_str()),
        (400, "Invalid input for operation: IP allocation requires subnets for network.")
    );

    // On a SLAAC subnet only the port's EUI-64 address may be asked for.
    let v6 = json!({"subnet": {"network_id": net_id, "ip_version": 6, "cidr": "2001:db8:7::/64",
                    "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}});
    let v6_id = s.api.post("/v2.0/subnets", v6).await.unwrap()["subnet"]["id"].as_str().unwrap().to_string();
    let explicit = json!({"network_id": net_id, "fixed_ips": [{"subnet_id": v6_id, "ip_address": "2001:db8:7::5"}]});
    let (status, kind, message) = error_of(post_port(&s, explicit).await);
    assert_eq!((status, kind.as_str()), (400, "AllocationOnAutoAddressSubnet"));
    assert_eq!(message, format!("IPv6 address 2001:db8:7::5 cannot be directly assigned to a port on subnet {v6_id} as the subnet is configured for automatic addresses"));
    let eui64 = json!({"network_id": net_id, "mac_address": "fa:16:3e:00:00:01",
                       "fixed_ips": [{"subnet_id": v6_id, "ip_address": "2001:db8:7::f816:3eff:fe00:1"}]});
    post_port(&s, eui64).await.expect("the EUI-64 address itself is accepted");

    // Filters: by security group, by a part of an address; repeated keys mean any of them.
    let group = s.api.post("/v2.0/security-groups", json!({"security_group": {"name": "web"}})).await.unwrap();
    let group = group["security_group"]["id"].as_str().unwrap().to_string();
    // (On the other network, where no other port's address could hold the substring.)
    let fixed =
        |ip: &str| json!({"network_id": other_net, "fixed_ips": [{"subnet_id": other_subnet, "ip_address": ip}]});
    let in_group = post_port(
        &s,
        json!({"network_id": other_net, "security_groups": [group],
                                        "fixed_ips": [{"subnet_id": other_subnet, "ip_address": "203.0.113.77"}]}),
    )
    .await
    .unwrap()["port"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let other = post_port(&s, fixed("203.0.113.78")).await.unwrap()["port"]["id"].as_str().unwrap().to_string();
    let ids = |body: serde_json::Value| -> Vec<String> {
        let mut v: Vec<String> =
            body["ports"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(ids(s.api.get(&format!("/v2.0/ports?security_groups={group}")).await.unwrap()), vec![in_group.clone()]);
    let substr = s.api.get("/v2.0/ports?fixed_ips=ip_address_substr%3D113.7").await.unwrap();
    let mut both = vec![in_group.clone(), other.clone()];
    both.sort();
    assert_eq!(ids(substr), both);
    let either = s.api.get("/v2.0/ports?fixed_ips=ip_address%3D203.0.113.77&fixed_ips=ip_address%3D203.0.113.78");
    assert_eq!(ids(either.await.unwrap()), both);
    let and = "/v2.0/ports?fixed_ips=ip_address_substr%3D113.7&fixed_ips=ip_address%3D203.0.113.78";
    assert_eq!(ids(s.api.get(and).await.unwrap()), vec![other]);

    // Filters: MACs whatever their case; fixed_ips entries need a key.
    let upper = s.api.get(&format!("/v2.0/ports?mac_address={}", new_mac.to_ascii_uppercase())).await.unwrap();
    assert_eq!(upper["ports"].as_array().unwrap().len(), 1, "a MAC filter ignores case");
    let (_, kind, message) = error_of(s.api.get("/v2.0/ports?fixed_ips=x").await);
    assert_eq!(
        (kind.as_str(), message.as_str()),
        ("InvalidInput", "Invalid input for operation: 'x' is not of the form <key>=[value].")
    );
    // Queries and headers: limits, If-Match, empty fields, bulk updates.
    let (_, kind, message) = error_of(s.api.get("/v2.0/ports?limit=x").await);
    assert_eq!(
        (kind.as_str(), message.as_str()),
        ("BadRequest", "Bad limit request: Limit must be an integer 0 or greater and not 'x'.")
    );
    let whole = s.api.get(&format!("/v2.0/ports/{id}?fields=")).await.unwrap();
    assert_eq!(whole["port"]["id"], id.as_str(), "an empty fields= is the whole port");
    let bad_etag = reqwest::Client::new()
        .put(format!("{}/v2.0/ports/{id}", s.base))
        .header("If-Match", "revision_number=abc")
        .json(&json!({"port": {"name": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_etag.status(), 400);
    let body: serde_json::Value = bad_etag.json().await.unwrap();
    assert_eq!(
        body["NeutronError"]["message"],
        "Bad if-match request: Revision number etag must be in the format of revision_number=<int>."
    );
    let bulk = s.api.put(&format!("/v2.0/ports/{id}"), json!({"ports": [{"name": "x"}]})).await;
    assert_eq!(error_of(bulk).2, "Bulk operation not supported");

    // Subnets: a host route given twice.
    let routes = json!({"subnet": {"network_id": other_net, "ip_version": 4, "cidr": "192.0.2.0/24", "host_routes": [
        {"destination": "198.51.100.0/24", "nexthop": "192.0.2.5"}, {"destination": "198.51.100.0/24", "nexthop": "192.0.2.5"}]}});
    let (status, kind, message) = error_of(s.api.post("/v2.0/subnets", routes).await);
    assert_eq!((status, kind.as_str()), (400, "HTTPBadRequest"), "a validator's refusal");
    assert_eq!(message, "Invalid input for host_routes. Reason: Duplicate hostroute '{'destination': '198.51.100.0/24', 'nexthop': '192.0.2.5'}'.");

    // Ports: the gateway address is only an address; a port the network owns keeps its MAC;
    // port security off with pairs and groups is refused in ML2's order; profiles are bounded.
    let on_gateway =
        json!({"network_id": other_net, "fixed_ips": [{"subnet_id": other_subnet, "ip_address": "203.0.113.1"}]});
    post_port(&s, on_gateway).await.expect("the gateway address of a subnet may be asked for");
    let dhcp = post_port(&s, json!({"network_id": other_net, "device_owner": "network:dhcp"})).await.unwrap();
    let dhcp_id = dhcp["port"]["id"].as_str().unwrap().to_string();
    let (status, kind, _) = error_of(
        s.api.put(&format!("/v2.0/ports/{dhcp_id}"), json!({"port": {"mac_address": "fa:16:3e:00:00:a2"}})).await,
    );
    assert_eq!((status, kind.as_str()), (409, "UnsupportedPortDeviceOwner"));
    let paired =
        post_port(&s, json!({"network_id": other_net, "allowed_address_pairs": [{"ip_address": "203.0.113.200"}]}))
            .await
            .unwrap();
    let paired_id = paired["port"]["id"].as_str().unwrap().to_string();
    let off = json!({"port": {"port_security_enabled": false}});
    let (status, kind, _) = error_of(s.api.put(&format!("/v2.0/ports/{paired_id}"), off).await);
    assert_eq!((status, kind.as_str()), (409, "AddressPairAndPortSecurityRequired"), "pairs are checked before groups");
    let bare_port = post_port(&s, json!({"network_id": other_net, "port_security_enabled": false})).await.unwrap();
    let bare_id = bare_port["port"]["id"].as_str().unwrap().to_string();
    let (status, kind, _) =
        error_of(s.api.put(&format!("/v2.0/ports/{bare_id}"), json!({"port": {"security_groups": [group]}})).await);
    assert_eq!((status, kind.as_str()), (400, "PortSecurityAndIPRequiredForSecurityGroups"));
    let big = json!({"port": {"binding:profile": {"blob": "x".repeat(5000)}}});
    let (status, _, message) = error_of(s.api.put(&format!("/v2.0/ports/{bare_id}"), big).await);
    assert_eq!((status, message.as_str()), (400, "Invalid input for operation: binding:profile value too large."));

    // allowed_address_pairs as neutron-lib's validator words its refusals.
    let pairs = |p: serde_json::Value| post_port(&s, json!({"network_id": other_net, "allowed_address_pairs": p}));
    for (p, kind, message) in [
        (json!("x"), "HTTPBadRequest", "Allowed address pairs must be a list."),
        (json!([{"mac_address": "zz"}]), "HTTPBadRequest", "'zz' is not a valid MAC address"),
        (
            json!([{"mac_address": "fa:16:3e:00:00:09"}]),
            "AllowedAddressPairsMissingIP",
            "AllowedAddressPair must contain ip_address",
        ),
        (
            json!([{"ip_address": "203.0.113.9"}, {"ip_address": "203.0.113.9"}]),
            "DuplicateAddressPairInRequest",
            "Request contains duplicate address pair: mac_address None ip_address 203.0.113.9.",
        ),
        (json!([{"ip_address": "203.0.113.9", "foo": 1}]), "HTTPBadRequest", "Unrecognized attribute(s) 'foo'"),
        (json!([{"ip_address": "203.0.113.300"}]), "HTTPBadRequest", "'203.0.113.300' is not a valid IP address"),
        (
            json!([{"ip_address": "224.0.0.1"}]),
            "HTTPBadRequest",
            "IP 224.0.0.1 is a multicast address, which is not supported.",
        ),
        (
            json!([{"ip_address": "203.0.113.9", "mac_address": "01:00:5e:00:00:01"}]),
            "HTTPBadRequest",
            "MAC address 01:00:5e:00:00:01 is a multicast address, which is not supported.",
        ),
    ] {
        let (status, got_kind, got) = error_of(pairs(p.clone()).await);
        assert_eq!((status, got_kind.as_str(), got.as_str()), (400, kind, message), "{p}");
    }

    // extra_dhcp_opts entries must match one of neutron-lib's key specs.
    let dhcp = |opts: serde_json::Value| post_port(&s, json!({"network_id": other_net, "extra_dhcp_opts": opts}));
    let (status, kind, message) = error_of(dhcp(json!([{"opt_name": "tftp-server"}])).await);
    assert_eq!(
        (status, kind.as_str(), message.as_str()),
        (
            400,
            "InvalidInput",
            "Invalid input for operation: No valid key specs matched for: {'opt_name': 'tftp-server'}."
        )
    );
    assert!(error_of(dhcp(json!([{"opt_name": "tftp-server", "opt_value": ""}])).await)
        .2
        .contains("No valid key specs"));
    assert!(error_of(dhcp(json!([{"opt_name": "mtu", "opt_value": "1400", "ip_version": 5}])).await)
        .2
        .contains("No valid key specs"));
    let router = dhcp(json!([{"opt_name": "router", "opt_value": ""}])).await.expect("router may be blank");
    assert_eq!(router["port"]["extra_dhcp_opts"][0]["opt_name"], "router");

    // Networks: segments beside provider attributes.
    let both = json!({"network": {"provider:network_type": "vxlan", "segments": [{"provider:network_type": "vxlan"}]}});
    let (status, kind, message) = error_of(s.api.post("/v2.0/networks", both).await);
    assert_eq!(
        (status, kind.as_str(), message.as_str()),
        (400, "SegmentsSetInConjunctionWithProviders", "Segments and provider values cannot both be set.")
    );
});
