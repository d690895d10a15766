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
            400,
            "HTTPBadRequest",
        ),
        (
            "POST",
            "/v2.0/subnets",
            json!({"subnet": {"network_id": "00000000-0000-0000-0000-00000000dead", "ip_version": 4, "cidr": "203.0.113.0/24"}}),
            404,
            "NetworkNotFound",
        ),
        (
            "POST",
            "/v2.0/ports",
            json!({"port": {"network_id": net_id, "mac_address": "not-a-mac"}}),
            400,
            "HTTPBadRequest",
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
    assert_eq!(s.api.get("/v2.0/ports?device_owner=").await.unwrap()["ports"].as_array().unwrap().len(), 0);
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

// The attribute layer as neutron-lib's: converters (booleans as oslo reads them, integers)
// raise InvalidInput, validators' refusals are HTTPBadRequest, values are printed as Python
// prints them; bodies without the resource, and DELETEs with a body, are refused.
on_both_backends!(attributes_are_converted_and_refused_as_neutron_does, default_config(), |s: TestServer| async move {
    let created = |v: Result<Value, neutrino_lab::ApiError>| v.unwrap()["network"].clone();
    let yes = created(s.api.post("/v2.0/networks", json!({"network": {"admin_state_up": "yes"}})).await);
    assert_eq!(yes["admin_state_up"], true);
    let zero = created(s.api.post("/v2.0/networks", json!({"network": {"admin_state_up": 0, "shared": "off"}})).await);
    assert_eq!((zero["admin_state_up"].clone(), zero["shared"].clone()), (json!(false), json!(false)));
    let cases = [
        (
            json!({"admin_state_up": "maybe"}),
            "InvalidInput",
            "Invalid input for operation: 'maybe' cannot be converted to boolean.",
        ),
        (
            json!({"admin_state_up": null}),
            "InvalidInput",
            "Invalid input for operation: 'None' cannot be converted to boolean.",
        ),
        (json!({"mtu": null}), "InvalidInput", "Invalid input for operation: 'None' is not an integer."),
        (json!({"mtu": "big"}), "InvalidInput", "Invalid input for operation: 'big' is not an integer."),
        (json!({"mtu": -1}), "HTTPBadRequest", "Invalid input for mtu. Reason: '-1' should be non-negative."),
        (
            json!({"name": " padded"}),
            "HTTPBadRequest",
            "Invalid input for name. Reason: ' padded' is not a valid string.",
        ),
        (json!({"name": 5}), "HTTPBadRequest", "Invalid input for name. Reason: '5' is not a valid string."),
        (
            json!({"description": true}),
            "HTTPBadRequest",
            "Invalid input for description. Reason: 'True' is not a valid string.",
        ),
    ];
    for (body, kind, message) in cases {
        let (status, got_kind, got_message) = error_of(s.api.post("/v2.0/networks", json!({ "network": body })).await);
        assert_eq!((status, got_kind.as_str(), got_message.as_str()), (400, kind, message), "{body}");
    }
    let raw = |method: reqwest::Method, path: &str, body: &'static str| {
        reqwest::Client::new().request(method, format!("{}{path}", s.base)).body(body).send()
    };
    for (body, message) in [
        ("", "Unable to find 'network' in request body"),
        ("{\"network\": \"x\"}", "Object 'network' contains invalid data"),
    ] {
        let resp = raw(reqwest::Method::POST, "/v2.0/networks", body).await.unwrap();
        assert_eq!(resp.status(), 400, "{body:?}");
        assert_eq!(resp.json::<Value>().await.unwrap()["NeutronError"]["message"], message, "{body:?}");
    }
    let id = yes["id"].as_str().unwrap().to_string();
    let resp = raw(reqwest::Method::DELETE, &format!("/v2.0/networks/{id}"), "{\"a\": 1}").await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["NeutronError"]["message"],
        "Request body is not supported in DELETE."
    );
    s.api.get(&format!("/v2.0/networks/{id}")).await.expect("the network is still there");

    // A page after an item that does not exist is its 404 (subnets: ignored, as Neutron).
    let gone = "00000000-0000-0000-0000-00000000dead";
    let (status, kind, _) = error_of(s.api.get(&format!("/v2.0/networks?limit=1&marker={gone}")).await);
    assert_eq!((status, kind.as_str()), (404, "NetworkNotFound"));
    let (status, kind, _) = error_of(s.api.get(&format!("/v2.0/ports?limit=1&marker={gone}")).await);
    assert_eq!((status, kind.as_str()), (404, "PortNotFound"));
    s.api.get(&format!("/v2.0/subnets?limit=1&marker={gone}")).await.expect("subnets ignore it");
    let (status, kind, message) = error_of(s.api.get(&format!("/v2.0/rbac-policies/{gone}")).await);
    assert_eq!(
        (status, kind.as_str(), message),
        (404, "RbacPolicyNotFound", format!("RBAC policy of type unknown with ID {gone} not found"))
    );
    // Bodies: project_id is reported as tenant_id (Neutron copies it first); attributes in
    // Neutron's map but never writable are "not allowed in POST".
    let (_, _, message) =
        error_of(s.api.put(&format!("/v2.0/networks/{id}"), json!({"network": {"project_id": "x"}})).await);
    assert_eq!(message, "Cannot update read-only attribute tenant_id");
    let shared_subnet = json!({"subnet": {"network_id": id, "ip_version": 4, "cidr": "192.0.2.0/28", "shared": true}});
    assert_eq!(error_of(s.api.post("/v2.0/subnets", shared_subnet).await).2, "Attribute 'shared' not allowed in POST");
    // RBAC: object types as Neutron normalises them, actions per type.
    let rbac = |object_type: &str, object_id: &str, action: &str| json!({"rbac_policy": {"object_type": object_type, "object_id": object_id, "action": action, "target_tenant": "*"}});
    s.api.post("/v2.0/rbac-policies", rbac(" Network", &id, "access_as_shared")).await.expect("type normalised");
    let (status, kind, message) =
        error_of(s.api.post("/v2.0/rbac-policies", rbac("bogus", &id, "access_as_shared")).await);
    assert_eq!(
        (status, kind.as_str(), message.as_str()),
        (400, "InvalidInput", "Invalid input for operation: 'bogus' is not a valid RBAC object type.")
    );
    let group = s.api.post("/v2.0/security-groups", json!({"security_group": {"name": "g"}})).await.unwrap();
    let group = group["security_group"]["id"].as_str().unwrap().to_string();
    let (status, kind, message) =
        error_of(s.api.post("/v2.0/rbac-policies", rbac("security_group", &group, "access_as_external")).await);
    assert_eq!(
        (status, kind.as_str(), message.as_str()),
        (400, "InvalidActionForType", "Invalid action 'access_as_external' for object type 'security_group'. Valid actions: ('access_as_shared',)")
    );
    // Filters convert their values as the attributes do.
    let (status, kind, message) = error_of(s.api.get("/v2.0/networks?admin_state_up=foo").await);
    assert_eq!(
        (status, kind.as_str(), message.as_str()),
        (400, "InvalidInput", "Invalid input for operation: 'foo' cannot be converted to boolean.")
    );
    let (_, kind, message) = error_of(s.api.get("/v2.0/networks?mtu=abc").await);
    assert_eq!(
        (kind.as_str(), message.as_str()),
        ("InvalidInput", "Invalid input for operation: 'abc' is not an integer.")
    );
    let up = s.api.get("/v2.0/networks?admin_state_up=yes").await.unwrap();
    assert!(!up["networks"].as_array().unwrap().is_empty());
    // RBAC policies neither page nor sort, as Neutron's collection; empty segments are a
    // tenant network.
    let all = s.api.get("/v2.0/rbac-policies?limit=1").await.unwrap();
    assert!(all.get("rbac_policies_links").is_none(), "no paging");
    let (_, _, message) = error_of(s.api.get("/v2.0/rbac-policies?sort_key=action&sort_dir=asc").await);
    assert_eq!(message, "['action'] is invalid attribute for sort_keys");
    s.api.post("/v2.0/networks", json!({"network": {"segments": []}})).await.expect("segments: [] is a tenant network");
    // Sorting: keys and directions refused in Neutron's words.
    let (_, _, message) = error_of(s.api.get("/v2.0/networks?sort_key=bogus&sort_dir=asc").await);
    assert_eq!(message, "['bogus'] is invalid attribute for sort_keys");
    let (_, _, message) = error_of(s.api.get("/v2.0/networks?sort_key=name&sort_dir=up").await);
    assert_eq!(message, "['up'] is invalid value for sort_dirs, valid value is 'asc' and 'desc'");
    // Subnet pools: prefix bounds as Neutron checks them.
    let pool =
        json!({"subnetpool": {"name": "p", "prefixes": ["203.0.113.0/24"], "min_prefixlen": 28, "max_prefixlen": 26}});
    let (status, kind, message) = error_of(s.api.post("/v2.0/subnetpools", pool).await);
    assert_eq!(
        (status, kind.as_str(), message.as_str()),
        (400, "IllegalSubnetPoolPrefixBounds", "Illegal prefix bounds: min_prefixlen=28, max_prefixlen=26.")
    );
    let empty = json!({"subnetpool": {"name": "p", "prefixes": []}});
    assert_eq!(error_of(s.api.post("/v2.0/subnetpools", empty).await).1, "EmptySubnetPoolPrefixList");

    // Subnets: CIDRs made canonical, gateways outside the subnet accepted, null lists empty.
    let subnet = |extra: Value| {
        let mut body = json!({"network_id": id, "ip_version": 4});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        s.api.post("/v2.0/subnets", json!({ "subnet": body }))
    };
    let canonical = subnet(json!({"cidr": "198.51.100.5/24", "gateway_ip": "203.0.113.1", "dns_nameservers": null}))
        .await
        .unwrap()["subnet"]
        .clone();
    assert_eq!(canonical["cidr"], "198.51.100.0/24");
    assert_eq!(canonical["gateway_ip"], "203.0.113.1");
    assert_eq!(canonical["dns_nameservers"], json!([]));
    assert_eq!(canonical["allocation_pools"], json!([{"start": "198.51.100.1", "end": "198.51.100.254"}]));
    let (status, kind, message) = error_of(subnet(json!({"cidr": "192.0.2.0/24", "gateway_ip": "192.0.2.0"})).await);
    assert_eq!(
        (status, kind.as_str(), message.as_str()),
        (400, "InvalidInput", "Invalid input for operation: Gateway is not valid on subnet.")
    );

    // Ports: Nova's unbinding null host, null groups, trusted ports, every VNIC type.
    let port = |body: Value| s.api.post("/v2.0/ports", json!({ "port": body }));
    let p = port(json!({"network_id": id, "binding:host_id": null, "security_groups": null})).await.unwrap()["port"]
        .clone();
    assert_eq!((p["binding:host_id"].clone(), p["security_groups"].clone()), (json!(""), json!([])));
    let dhcp = port(json!({"network_id": id, "device_owner": "network:dhcp"})).await.unwrap()["port"].clone();
    assert_eq!(dhcp["port_security_enabled"], false, "ports the network owns are trusted");
    let vdpa = port(json!({"network_id": id, "binding:vnic_type": "vdpa"})).await.unwrap()["port"].clone();
    assert_eq!(vdpa["binding:vnic_type"], "vdpa");
    // Ids are ids before anything is looked up; an address is asked for once.
    for (body, message) in [
        (json!({"network_id": "abc"}), "Invalid input for network_id. Reason: 'abc' is not a valid UUID."),
        (
            json!({"network_id": id, "fixed_ips": [{"subnet_id": "abc"}]}),
            "Invalid input for fixed_ips. Reason: 'abc' is not a valid UUID.",
        ),
        (
            json!({"network_id": id, "security_groups": ["x"]}),
            "Invalid input for security_groups. Reason: 'x' is not a valid UUID.",
        ),
        (
            json!({"network_id": id, "fixed_ips": [{"ip_address": "198.51.100.9"}, {"ip_address": "198.51.100.9"}]}),
            "Invalid input for fixed_ips. Reason: Duplicate IP address '198.51.100.9'.",
        ),
    ] {
        let (status, kind, got) = error_of(port(body.clone()).await);
        assert_eq!((status, kind.as_str(), got.as_str()), (400, "HTTPBadRequest", message), "{body}");
    }
    let (status, kind, message) = error_of(port(json!({"network_id": id, "binding:vnic_type": "bogus"})).await);
    assert_eq!(
        (status, kind.as_str(), message.as_str()),
        (400, "HTTPBadRequest", "Invalid input for binding:vnic_type. Reason: bogus is not in valid_values.")
    );
});
