//! API tests: subnets.

use super::*;

on_both_backends!(subnets_get_neutron_defaults_for_v4_and_v6, default_config(), |s: TestServer| async move {
    let net = s.api.create_network("n").await.unwrap();
    let net_id = net["id"].as_str().unwrap();
    let v4 = s.api.create_subnet(net_id, "10.30.0.0/24").await.unwrap();
    assert_eq!(v4["gateway_ip"], "10.30.0.1");
    assert_eq!(v4["allocation_pools"], json!([{"start": "10.30.0.2", "end": "10.30.0.254"}]));
    assert_eq!(v4["enable_dhcp"], true);
    assert_eq!(v4["revision_number"], 0);
    let v6 = s
        .api
        .post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": net_id, "ip_version": 6, "cidr": "fd00:30::/64",
            "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}}),
        )
        .await
        .unwrap()["subnet"]
        .clone();
    assert_eq!(v6["gateway_ip"], "fd00:30::");
    assert_eq!(v6["allocation_pools"], json!([{"start": "fd00:30::1", "end": "fd00:30::ffff:ffff:ffff:ffff"}]));
    let shown = s.api.get(&format!("/v2.0/networks/{net_id}")).await.unwrap();
    assert_eq!(shown["network"]["subnets"].as_array().unwrap().len(), 2);

    // A port gets one IPv4 address from the pool and its EUI-64 address on the SLAAC subnet.
    let port = post_port(&s, json!({"network_id": net_id})).await.unwrap()["port"].clone();
    let ips = port["fixed_ips"].as_array().unwrap();
    assert_eq!(ips.len(), 2);
    let mac: Vec<u8> =
        port["mac_address"].as_str().unwrap().split(':').map(|b| u8::from_str_radix(b, 16).unwrap()).collect();
    let eui = format!(
        "fd00:30::{:x}:{:x}:{:x}:{:x}",
        u16::from_be_bytes([mac[0] ^ 2, mac[1]]),
        u16::from_be_bytes([mac[2], 0xff]),
        u16::from_be_bytes([0xfe, mac[3]]),
        u16::from_be_bytes([mac[4], mac[5]])
    );
    assert_eq!(ips[1]["ip_address"], eui);

    let updated = s
        .api
        .put(
            &format!("/v2.0/subnets/{}", v4["id"].as_str().unwrap()),
            json!({"subnet": {"name": "renamed", "enable_dhcp": false, "dns_nameservers": ["192.0.2.53"]}}),
        )
        .await
        .unwrap();
    assert_eq!(updated["subnet"]["name"], "renamed");
    assert_eq!(updated["subnet"]["dns_nameservers"], json!(["192.0.2.53"]));
    assert_eq!(updated["subnet"]["revision_number"], 1);
    let (status, kind, _) = error_of(s.api.delete(&format!("/v2.0/subnets/{}", v4["id"].as_str().unwrap())).await);
    assert_eq!((status, kind.as_str()), (409, "SubnetInUse"));
});

on_both_backends!(
    subnet_pools_and_address_scopes_allocate_without_overlap,
    default_config(),
    |s: TestServer| async move {
        let scope = s
            .api
            .post("/v2.0/address-scopes", json!({"address_scope": {"name": "s4", "ip_version": 4}}))
            .await
            .unwrap()["address_scope"]
            .clone();
        let scope_id = scope["id"].as_str().unwrap().to_string();
        let pool = s
            .api
            .post(
                "/v2.0/subnetpools",
                json!({"subnetpool": {"name": "p4", "prefixes": ["198.18.0.0/16"],
            "default_prefixlen": 24, "address_scope_id": scope_id}}),
            )
            .await
            .unwrap()["subnetpool"]
            .clone();
        let pool_id = pool["id"].as_str().unwrap().to_string();
        assert_eq!(pool["ip_version"], 4);
        assert_eq!(pool["default_prefixlen"], "24");
        assert_eq!(pool["min_prefixlen"], "8");
        let (status, kind, _) = error_of(
        s.api
            .post("/v2.0/subnetpools", json!({"subnetpool": {"name": "clash", "prefixes": ["198.18.128.0/17"], "address_scope_id": scope_id}}))
            .await,
    );
        assert_eq!((status, kind.as_str()), (409, "AddressScopePrefixConflict"));

        let net = s.api.create_network("pooled").await.unwrap();
        let net_id = net["id"].as_str().unwrap().to_string();
        let subnet = |body: Value| {
            let api = s.api.clone();
            async move { api.post("/v2.0/subnets", json!({ "subnet": body })).await }
        };
        let a = subnet(json!({"network_id": net_id, "ip_version": 4, "subnetpool_id": pool_id})).await.unwrap();
        assert_eq!(a["subnet"]["cidr"], "198.18.0.0/24");
        assert_eq!(a["subnet"]["subnetpool_id"], pool_id.as_str());
        assert_eq!(a["subnet"]["gateway_ip"], "198.18.0.1");
        let net2 = s.api.create_network("pooled2").await.unwrap();
        let b = subnet(json!({"network_id": net2["id"], "ip_version": 4, "subnetpool_id": pool_id, "prefixlen": 26}))
            .await
            .unwrap();
        assert_eq!(b["subnet"]["cidr"], "198.18.1.0/26");
        let (status, kind, _) = error_of(
            subnet(
                json!({"network_id": net2["id"], "ip_version": 4, "subnetpool_id": pool_id, "cidr": "198.18.0.128/25"}),
            )
            .await,
        );
        assert_eq!((status, kind.as_str()), (409, "SubnetAllocationError"));
        let (status, _, _) = error_of(
            subnet(json!({"network_id": net2["id"], "ip_version": 4, "subnetpool_id": pool_id, "cidr": "10.0.0.0/24"}))
                .await,
        );
        assert_eq!(status, 400);
        let (status, _, _) = error_of(subnet(json!({"network_id": net2["id"], "ip_version": 4})).await);
        assert_eq!(status, 400, "no cidr and no pool");
        // A project's quota of a pool counts addresses (IPv4): 256 + 64 used of 384.
        let limited = s
            .api
            .put(&format!("/v2.0/subnetpools/{pool_id}"), json!({"subnetpool": {"default_quota": 384}}))
            .await
            .unwrap();
        assert_eq!(limited["subnetpool"]["default_quota"], 384);
        let net3 = s.api.create_network("pooled3").await.unwrap();
        let third = json!({"network_id": net3["id"], "ip_version": 4, "subnetpool_id": pool_id, "prefixlen": 25});
        let (status, kind, _) = error_of(subnet(third).await);
        assert_eq!((status, kind.as_str()), (409, "SubnetPoolQuotaExceeded"));
        subnet(json!({"network_id": net3["id"], "ip_version": 4, "subnetpool_id": pool_id, "prefixlen": 26}))
            .await
            .unwrap();
        let (status, _, _) = error_of(
            s.api.put(&format!("/v2.0/subnetpools/{pool_id}"), json!({"subnetpool": {"default_quota": -1}})).await,
        );
        assert_eq!(status, 400);
        s.api
            .put(&format!("/v2.0/subnetpools/{pool_id}"), json!({"subnetpool": {"default_quota": null}}))
            .await
            .unwrap();
        let shown = s.api.get(&format!("/v2.0/networks/{net_id}")).await.unwrap();
        assert_eq!(shown["network"]["ipv4_address_scope"], scope_id.as_str());
        assert_eq!(shown["network"]["ipv6_address_scope"], Value::Null);

        // Twelve networks take subnets from the pool at once: all different.
        let mut tasks = Vec::new();
        for i in 0..12 {
            let api = s.api.clone();
            let pool_id = pool_id.clone();
            tasks.push(tokio::spawn(async move {
                let n = api.create_network(&format!("race{i}")).await.unwrap();
                api.post(
                    "/v2.0/subnets",
                    json!({"subnet": {"network_id": n["id"], "ip_version": 4, "subnetpool_id": pool_id}}),
                )
                .await
                .unwrap()["subnet"]["cidr"]
                    .as_str()
                    .unwrap()
                    .to_string()
            }));
        }
        let mut cidrs = HashSet::new();
        for t in tasks {
            assert!(cidrs.insert(t.await.unwrap()), "no prefix handed out twice");
        }

        // Default pools: one per IP version; subnets can ask for it.
        s.api.put(&format!("/v2.0/subnetpools/{pool_id}"), json!({"subnetpool": {"is_default": true}})).await.unwrap();
        let (status, _, _) = error_of(
            s.api
                .post(
                    "/v2.0/subnetpools",
                    json!({"subnetpool": {"name": "d2", "prefixes": ["203.0.113.0/24"], "is_default": true}}),
                )
                .await,
        );
        assert_eq!(status, 400, "a second default IPv4 pool");
        let net3 = s.api.create_network("defaulted").await.unwrap();
        let c =
            subnet(json!({"network_id": net3["id"], "ip_version": 4, "use_default_subnetpool": true})).await.unwrap();
        assert_eq!(c["subnet"]["subnetpool_id"], pool_id.as_str());

        // Prefixes grow but never shrink; pools and scopes in use stay.
        let grown = s
            .api
            .put(
                &format!("/v2.0/subnetpools/{pool_id}"),
                json!({"subnetpool": {"prefixes": ["198.18.0.0/16", "198.19.0.0/16"]}}),
            )
            .await
            .unwrap();
        assert_eq!(grown["subnetpool"]["prefixes"], json!(["198.18.0.0/16", "198.19.0.0/16"]));
        let (status, kind, _) = error_of(
            s.api
                .put(&format!("/v2.0/subnetpools/{pool_id}"), json!({"subnetpool": {"prefixes": ["198.19.0.0/16"]}}))
                .await,
        );
        assert_eq!((status, kind.as_str()), (400, "IllegalSubnetPoolPrefixUpdate"));
        let (status, kind, message) = error_of(s.api.delete(&format!("/v2.0/subnetpools/{pool_id}")).await);
        assert_eq!(
            (status, kind.as_str(), message.as_str()),
            (400, "SubnetPoolDeleteError", "Unable to delete subnet pool: Subnet pool has existing allocations.")
        );
        let (status, kind, _) = error_of(s.api.delete(&format!("/v2.0/address-scopes/{scope_id}")).await);
        assert_eq!((status, kind.as_str()), (409, "AddressScopeInUse"));
        let (status, kind, _) = error_of(s.api.get("/v2.0/subnetpools/00000000-0000-0000-0000-000000000000").await);
        assert_eq!((status, kind.as_str()), (404, "SubnetPoolNotFound"));
    }
);

on_both_backends!(service_types_steer_automatic_addresses, default_config(), |s: TestServer| async move {
    let net = s.api.create_network("svc").await.unwrap();
    let net_id = net["id"].as_str().unwrap();
    let routers = s
        .api
        .post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": net_id, "ip_version": 4, "cidr": "198.51.100.0/28",
            "service_types": ["network:router_gateway"]}}),
        )
        .await
        .unwrap()["subnet"]
        .clone();
    assert_eq!(routers["service_types"], json!(["network:router_gateway"]));
    let vms = s.api.create_subnet(net_id, "203.0.113.0/24").await.unwrap();
    let vm_port = post_port(&s, json!({"network_id": net_id, "device_owner": "compute:nova"})).await.unwrap();
    assert_eq!(vm_port["port"]["fixed_ips"][0]["subnet_id"], vms["id"]);
    let gw_port = post_port(&s, json!({"network_id": net_id, "device_owner": "network:router_gateway"})).await.unwrap();
    assert_eq!(gw_port["port"]["fixed_ips"][0]["subnet_id"], routers["id"]);
    let (status, _, _) = error_of(
        s.api
            .put(
                &format!("/v2.0/subnets/{}", vms["id"].as_str().unwrap()),
                json!({"subnet": {"service_types": ["bogus"]}}),
            )
            .await,
    );
    assert_eq!(status, 400);
    let updated = s
        .api
        .put(
            &format!("/v2.0/subnets/{}", vms["id"].as_str().unwrap()),
            json!({"subnet": {"service_types": ["compute:nova"]}}),
        )
        .await
        .unwrap();
    assert_eq!(updated["subnet"]["service_types"], json!(["compute:nova"]));
});

on_both_backends!(networks_get_a_dhcp_port_on_their_dhcp_subnets, default_config(), |s: TestServer| async move {
    let net = s.api.create_network("dhcp").await.unwrap();
    let net_id = net["id"].as_str().unwrap();
    let dhcp_ports = || async {
        let listed = s.api.get(&format!("/v2.0/ports?network_id={net_id}&device_owner=network:dhcp")).await.unwrap();
        listed["ports"].as_array().unwrap().clone()
    };
    let v4 = s.api.create_subnet(net_id, "10.31.0.0/24").await.unwrap();
    let v4_id = v4["id"].as_str().unwrap();
    let ports = dhcp_ports().await;
    assert_eq!(ports.len(), 1, "{ports:?}");
    let port = &ports[0];
    assert_eq!(port["device_id"], format!("dhcp-{net_id}"));
    assert_eq!(port["status"], "ACTIVE");
    assert_eq!(port["project_id"], net["project_id"]);
    assert_eq!(port["fixed_ips"], json!([{"subnet_id": v4_id, "ip_address": "10.31.0.2"}]));
    // A second DHCP subnet adds an address to the same port; a subnet without DHCP does not.
    let second = s
        .api
        .post("/v2.0/subnets", json!({"subnet": {"network_id": net_id, "ip_version": 4, "cidr": "10.32.0.0/24"}}))
        .await
        .unwrap()["subnet"]
        .clone();
    s.api
        .post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": net_id, "ip_version": 4, "cidr": "10.33.0.0/24", "enable_dhcp": false}}),
        )
        .await
        .unwrap();
    let ports = dhcp_ports().await;
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0]["id"], port["id"]);
    let mut ips: Vec<&str> =
        ports[0]["fixed_ips"].as_array().unwrap().iter().map(|f| f["ip_address"].as_str().unwrap()).collect();
    ips.sort();
    assert_eq!(ips, ["10.31.0.2", "10.32.0.2"]);
    // DHCP off on the first: its address goes, the other stays.
    s.api.put(&format!("/v2.0/subnets/{v4_id}"), json!({"subnet": {"enable_dhcp": false}})).await.unwrap();
    let ports = dhcp_ports().await;
    assert_eq!(ports[0]["fixed_ips"], json!([{"subnet_id": second["id"], "ip_address": "10.32.0.2"}]));
    // The DHCP port never keeps a subnet from going; with the last DHCP subnet the port goes.
    s.api.delete(&format!("/v2.0/subnets/{}", second["id"].as_str().unwrap())).await.unwrap();
    assert!(dhcp_ports().await.is_empty());
    s.api.put(&format!("/v2.0/subnets/{v4_id}"), json!({"subnet": {"enable_dhcp": true}})).await.unwrap();
    let ports = dhcp_ports().await;
    assert_eq!(ports.len(), 1);
    // Deleted by hand, it is made again at once (every host answers DHCP with it).
    s.api.delete(&format!("/v2.0/ports/{}", ports[0]["id"].as_str().unwrap())).await.unwrap();
    let again = dhcp_ports().await;
    assert_eq!(again.len(), 1, "{again:?}");
    assert_ne!(again[0]["id"], ports[0]["id"]);
    assert_eq!(again[0]["fixed_ips"], json!([{"subnet_id": v4_id, "ip_address": "10.31.0.2"}]));
    // Nor a network.
    s.api.delete(&format!("/v2.0/networks/{net_id}")).await.unwrap();
});
