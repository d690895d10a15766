//! API tests: networks.

use super::*;

on_both_backends!(network_lifecycle_matches_neutron_defaults, default_config(), |s: TestServer| async move {
    let net = s.api.create_network("blue").await.unwrap();
    assert_eq!(net["mtu"], 1450);
    assert_eq!(net["provider:network_type"], "vxlan");
    assert_eq!(net["status"], "ACTIVE");
    assert_eq!(net["revision_number"], 1);
    assert_eq!(net["project_id"], "fake_project_id");
    let vni = net["provider:segmentation_id"].as_u64().unwrap();
    assert!((1..=1000).contains(&vni));
    let id = net["id"].as_str().unwrap();

    let shown = s.api.get(&format!("/v2.0/networks/{id}")).await.unwrap();
    let mut created = net.clone();
    // Like Neutron, `is_default` is in the create reply (and on external networks) only.
    assert_eq!(created.as_object_mut().unwrap().remove("is_default"), Some(json!(false)));
    assert_eq!(shown["network"], created);

    let listed = s.api.get("/v2.0/networks?name=blue&fields=id&fields=name").await.unwrap();
    assert_eq!(listed["networks"], json!([{"id": id, "name": "blue"}]));
    let none = s.api.get("/v2.0/networks?name=red").await.unwrap();
    assert_eq!(none["networks"], json!([]));

    let updated =
        s.api.put(&format!("/v2.0/networks/{id}"), json!({"network": {"name": "green", "mtu": 1400}})).await.unwrap();
    assert_eq!(updated["network"]["name"], "green");
    assert_eq!(updated["network"]["mtu"], 1400);
    assert_eq!(updated["network"]["revision_number"], 2);

    s.api.delete(&format!("/v2.0/networks/{id}")).await.unwrap();
    let (status, kind, message) = error_of(s.api.get(&format!("/v2.0/networks/{id}")).await);
    assert_eq!((status, kind.as_str()), (404, "NetworkNotFound"));
    assert_eq!(message, format!("Network {id} could not be found."));
});

on_both_backends!(bad_requests_get_neutron_errors_and_change_nothing, default_config(), |s: TestServer| async move {
    let (net_id, _) = network_with_subnet(&s, "192.0.2.0/24").await;
    let cases: Vec<(&str, &str, Value, u16, &str)> = vec![
        ("POST", "/v2.0/networks", json!({"network": {"name": "x", "no_such_attribute": 1}}), 400, "HTTPBadRequest"),
        ("POST", "/v2.0/networks", json!({"network": {"admin_state_up": "maybe"}}), 400, "InvalidInput"),
        ("POST", "/v2.0/networks", json!({"nets": {}}), 400, "HTTPBadRequest"),
        (
            "POST",
            "/v2.0/subnets",
            json!({"subnet": {"network_id": net_id, "ip_version": 4, "cidr": "10.999.0.0/24"}}),
            400,
            "InvalidInput",
        ),
        (
            "POST",
            "/v2.0/subnets",
            json!({"subnet": {"network_id": net_id, "ip_version": 6, "cidr": "10.31.0.0/24"}}),
            400,
            "InvalidInput",
        ),
        (
            "POST",
            "/v2.0/subnets",
            json!({"subnet": {"network_id": net_id, "ip_version": 4, "cidr": "192.0.2.128/25"}}),
            400,
            "InvalidInput",
        ),
        ("POST", "/v2.0/subnets", json!({"subnet": {"network_id": net_id, "ip_version": 4}}), 400, "BadRequest"),
        (
            "POST",
            "/v2.0/subnets",
            json!({"subnet": {"network_id": net_id, "ip_version": 4, "cidr": "198.51.100.0/24",
            "allocation_pools": [{"start": "198.51.100.10", "end": "198.51.101.5"}]}}),
            400,
            "OutOfBoundsAllocationPool",
        ),
        (
            "POST",
            "/v2.0/subnets",
            json!({"subnet": {"network_id": net_id, "ip_version": 4, "cidr": "198.51.100.0/24",
            "allocation_pools": [{"start": "198.51.100.1", "end": "198.51.100.9"}]}}),
            409,
            "GatewayConflictWithAllocationPools",
        ),
        (
            "POST",
            "/v2.0/subnets",
            json!({"subnet": {"network_id": "nope", "ip_version": 4, "cidr": "203.0.113.0/24"}}),
            404,
            "NetworkNotFound",
        ),
        (
            "POST",
            "/v2.0/ports",
            json!({"port": {"network_id": net_id, "mac_address": "not-a-mac"}}),
            400,
            "InvalidInput",
        ),
        (
            "POST",
            "/v2.0/ports",
            json!({"port": {"network_id": net_id, "fixed_ips": [{"ip_address": "203.0.113.5"}]}}),
            400,
            "InvalidIpForNetwork",
        ),
        ("POST", "/v2.0/ports", json!({"port": {"name": "no network"}}), 400, "HTTPBadRequest"),
        ("PUT", "/v2.0/networks", json!({"network": {"name": "x"}}), 404, "NetworkNotFound"),
        ("GET", "/v2.0/no-such-resource", Value::Null, 404, "HTTPNotFound"),
        ("GET", "/v2.0/networks?no_such_filter=1", Value::Null, 400, "HTTPBadRequest"),
        ("DELETE", "/v2.0/ports/00000000-0000-0000-0000-000000000000", Value::Null, 404, "PortNotFound"),
    ];
    for (method, path, body, status, kind) in cases {
        let r = match method {
            "POST" => s.api.post(path, body.clone()).await,
            "PUT" => s.api.put(path, body.clone()).await,
            "DELETE" => s.api.delete(path).await,
            _ => s.api.get(path).await,
        };
        let (got_status, got_kind, message) = error_of(r);
        assert_eq!((got_status, got_kind.as_str()), (status, kind), "{method} {path} {body}: {message}");
        assert!(!message.is_empty());
    }
    // Malformed JSON.
    let resp =
        reqwest::Client::new().post(format!("{}/v2.0/networks", s.base)).body("{\"network\": {").send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["NeutronError"]["message"], "Body contains invalid data");
    // Nothing was created by the failed requests.
    assert_eq!(s.api.get("/v2.0/networks").await.unwrap()["networks"].as_array().unwrap().len(), 1);
    assert_eq!(s.api.get("/v2.0/subnets").await.unwrap()["subnets"].as_array().unwrap().len(), 1);
    assert_eq!(s.api.get("/v2.0/ports").await.unwrap()["ports"].as_array().unwrap().len(), 0);
});

on_both_backends!(
    vnis_are_unique_under_concurrency_and_exhaust_cleanly,
    small_vni_range(),
    |s: TestServer| async move {
        let mut tasks = Vec::new();
        for i in 0..16 {
            let api = s.api.clone();
            tasks.push(tokio::spawn(async move { api.create_network(&format!("n{i}")).await }));
        }
        let mut vnis = Vec::new();
        let mut exhausted = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(net) => vnis.push(net["provider:segmentation_id"].as_u64().unwrap()),
                Err(e) => {
                    let (status, kind, _) = error_of(Err(e));
                    assert_eq!((status, kind.as_str()), (503, "NoNetworkAvailable"));
                    exhausted += 1;
                }
            }
        }
        assert_eq!(vnis.len(), 10, "exactly the range is handed out");
        assert_eq!(exhausted, 6);
        let unique: HashSet<_> = vnis.iter().collect();
        assert_eq!(unique.len(), 10, "no VNI twice: {vnis:?}");
        assert!(vnis.iter().all(|v| (100..=109).contains(v)));

        // A deleted network's VNI is released and handed out again.
        let nets = s.api.get("/v2.0/networks?provider:segmentation_id=104").await.unwrap();
        let id = nets["networks"][0]["id"].as_str().unwrap().to_string();
        s.api.delete(&format!("/v2.0/networks/{id}")).await.unwrap();
        let again = s.api.create_network("again").await.unwrap();
        assert_eq!(again["provider:segmentation_id"], 104);

        // Provider VXLAN networks reserve an exact VNI, once.
        let body =
            json!({"network": {"name": "p", "provider:network_type": "vxlan", "provider:segmentation_id": 5000}});
        s.api.post("/v2.0/networks", body.clone()).await.unwrap();
        let (status, kind, _) = error_of(s.api.post("/v2.0/networks", body).await);
        assert_eq!((status, kind.as_str()), (409, "TunnelIdInUse"));
    }
);

on_both_backends!(deleting_a_network_takes_its_network_owned_ports, default_config(), |s: TestServer| async move {
    let (net_id, _) = network_with_subnet(&s, "198.51.100.0/24").await;
    let dhcp =
        post_port(&s, json!({"network_id": net_id, "device_owner": "network:dhcp"})).await.unwrap()["port"].clone();
    assert_eq!(dhcp["security_groups"], json!([]), "network-owned ports get no security group");
    let vm =
        post_port(&s, json!({"network_id": net_id, "device_owner": "compute:nova"})).await.unwrap()["port"].clone();
    let (status, kind, message) = error_of(s.api.delete(&format!("/v2.0/networks/{net_id}")).await);
    assert_eq!((status, kind.as_str()), (409, "NetworkInUse"));
    assert!(message.contains(vm["id"].as_str().unwrap()) && !message.contains(dhcp["id"].as_str().unwrap()));
    s.api.delete(&format!("/v2.0/ports/{}", vm["id"].as_str().unwrap())).await.unwrap();
    s.api.delete(&format!("/v2.0/networks/{net_id}")).await.unwrap();
    let (status, _, _) = error_of(s.api.get(&format!("/v2.0/ports/{}", dhcp["id"].as_str().unwrap())).await);
    assert_eq!(status, 404, "the DHCP port went with its network");
    assert_eq!(s.api.get("/v2.0/subnets").await.unwrap()["subnets"], json!([]));
});
