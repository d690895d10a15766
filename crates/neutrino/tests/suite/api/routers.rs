//! API tests: routers, floating IPs and port forwardings as Neutron serves them, and what one
//! project may not do to another's (on both databases).

use super::*;

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// An external network with a subnet (admin), a tenant network with a subnet and a router
/// with its gateway and interface (`project`), and a VM port on the tenant network.
struct Topology {
    ext: String,
    subnet: String,
    router: String,
    port: String,
}

async fn topology(admin: &neutrino_lab::ApiClient, user: &neutrino_lab::ApiClient) -> Topology {
    let ext = admin.post("/v2.0/networks", json!({"network": {"name": "ext", "router:external": true}})).await.unwrap()
        ["network"]
        .clone();
    admin.create_subnet(&id(&ext), "203.0.113.0/24").await.unwrap();
    let net = user.create_network("tenant").await.unwrap();
    let subnet = user.create_subnet(&id(&net), "198.51.100.0/24").await.unwrap();
    let router = user
        .post("/v2.0/routers", json!({"router": {"name": "r", "external_gateway_info": {"network_id": id(&ext)}}}))
        .await
        .unwrap()["router"]
        .clone();
    let info = user
        .put(&format!("/v2.0/routers/{}/add_router_interface", id(&router)), json!({"subnet_id": id(&subnet)}))
        .await
        .unwrap();
    assert_eq!(info["subnet_id"], subnet["id"]);
    let port = user.post("/v2.0/ports", json!({"port": {"network_id": id(&net)}})).await.unwrap()["port"].clone();
    Topology { ext: id(&ext), subnet: id(&subnet), router: id(&router), port: id(&port) }
}

on_both_backends!(routers_and_floating_ips_answer_as_neutron_does, default_config(), |s: TestServer| async move {
    let admin = s.api.acting_as("admin-project", "admin,member,reader");
    let alice = s.api.acting_as("a1fa00000000000000000000000000a1", "member,reader");
    let t = topology(&admin, &alice).await;
    let router = alice.get(&format!("/v2.0/routers/{}", t.router)).await.unwrap()["router"].clone();
    assert_eq!(router["external_gateway_info"]["enable_snat"], true);
    assert_eq!(router["external_gateway_info"]["external_fixed_ips"].as_array().map(Vec::len), Some(1));
    assert!(router.get("distributed").is_none(), "distributed is for admins: {router}");
    let interfaces =
        alice.get(&format!("/v2.0/ports?device_id={}&device_owner=network:router_interface", t.router)).await.unwrap();
    let interface = interfaces["ports"][0].clone();
    assert_eq!(interface["status"], "ACTIVE", "interfaces are up at once");
    assert_eq!(interface["fixed_ips"][0]["ip_address"], "198.51.100.1");

    // A floating IP on the VM port, through the router.
    let fip = alice
        .post("/v2.0/floatingips", json!({"floatingip": {"floating_network_id": t.ext, "port_id": t.port}}))
        .await
        .unwrap()["floatingip"]
        .clone();
    assert_eq!(fip["router_id"], t.router.as_str());
    assert_eq!(fip["port_details"]["network_id"], interface["network_id"]);
    let fip_id = id(&fip);
    // A second one for the same fixed IP on the same external network: 409.
    let (status, kind, _) = error_of(
        alice.post("/v2.0/floatingips", json!({"floatingip": {"floating_network_id": t.ext, "port_id": t.port}})).await,
    );
    assert_eq!((status, kind.as_str()), (409, "FloatingIPPortAlreadyAssociated"));
    // The interface and the gateway are needed by it.
    let (status, kind, _) = error_of(
        alice.put(&format!("/v2.0/routers/{}/remove_router_interface", t.router), json!({"subnet_id": t.subnet})).await,
    );
    assert_eq!((status, kind.as_str()), (409, "RouterInterfaceInUseByFloatingIP"));
    let (status, kind, _) = error_of(
        alice.put(&format!("/v2.0/routers/{}", t.router), json!({"router": {"external_gateway_info": {}}})).await,
    );
    assert_eq!((status, kind.as_str()), (409, "RouterExternalGatewayInUseByFloatingIp"));
    // Router-owned ports are the router's.
    let (status, kind, _) = error_of(alice.delete(&format!("/v2.0/ports/{}", id(&interface))).await);
    assert_eq!((status, kind.as_str()), (409, "L3PortInUse"));
    // A router with interfaces stays.
    let (status, kind, _) = error_of(alice.delete(&format!("/v2.0/routers/{}", t.router)).await);
    assert_eq!((status, kind.as_str()), (409, "RouterInUse"));
    // Extra routes: the nexthop must be on a connected subnet; the atomic actions merge.
    let route = |hop: &str| json!({"router": {"routes": [{"destination": "192.0.2.0/24", "nexthop": hop}]}});
    let (status, kind, _) = error_of(alice.put(&format!("/v2.0/routers/{}", t.router), route("192.0.2.1")).await);
    assert_eq!((status, kind.as_str()), (400, "InvalidRoutes"));
    alice.put(&format!("/v2.0/routers/{}/add_extraroutes", t.router), route("198.51.100.10")).await.unwrap();
    let added =
        alice.put(&format!("/v2.0/routers/{}/add_extraroutes", t.router), route("198.51.100.10")).await.unwrap();
    assert_eq!(added["router"]["routes"].as_array().map(Vec::len), Some(1), "a set union");
    // The subnet's gateway is the interface's address.
    let (status, kind, _) =
        error_of(alice.put(&format!("/v2.0/subnets/{}", t.subnet), json!({"subnet": {"gateway_ip": null}})).await);
    assert_eq!((status, kind.as_str()), (409, "GatewayIpInUse"));
    // The fixed IP of a floating IP stays on its port.
    // (An address other than the one it has: a random allocation may have given it .77.)
    let port = alice.get(&format!("/v2.0/ports/{}", t.port)).await.unwrap();
    let other =
        if port["port"]["fixed_ips"][0]["ip_address"] == "198.51.100.77" { "198.51.100.78" } else { "198.51.100.77" };
    let moved = json!({"port": {"fixed_ips": [{"subnet_id": t.subnet, "ip_address": other}]}});
    let (status, _, message) = error_of(alice.put(&format!("/v2.0/ports/{}", t.port), moved).await);
    assert_eq!(status, 400, "{message}");
    // A blank update dissociates; deleting the VM's port does too.
    let blank = alice.put(&format!("/v2.0/floatingips/{fip_id}"), json!({"floatingip": {}})).await.unwrap();
    assert_eq!(blank["floatingip"]["port_id"], Value::Null);
    // IPv4 only.
    let (status, _, _) = error_of(
        admin
            .post(
                "/v2.0/floatingips",
                json!({"floatingip": {"floating_network_id": t.ext, "floating_ip_address": "2001:db8::1"}}),
            )
            .await,
    );
    assert_eq!(status, 400);
    alice.put(&format!("/v2.0/routers/{}/remove_extraroutes", t.router), route("198.51.100.10")).await.unwrap();
    alice.delete(&format!("/v2.0/floatingips/{fip_id}")).await.unwrap();
    alice
        .put(&format!("/v2.0/routers/{}/remove_router_interface", t.router), json!({"subnet_id": t.subnet}))
        .await
        .unwrap();
    alice.delete(&format!("/v2.0/routers/{}", t.router)).await.unwrap();
});

on_both_backends!(a_project_cannot_reach_into_anothers_routers, default_config(), |s: TestServer| async move {
    let admin = s.api.acting_as("admin-project", "admin,member,reader");
    let alice = s.api.acting_as("a1fa00000000000000000000000000a1", "member,reader");
    let bob = s.api.acting_as("be7a00000000000000000000000000b2", "member,reader");
    let t = topology(&admin, &alice).await;
    let bobs_net = bob.create_network("bob").await.unwrap();
    let bobs_subnet = bob.create_subnet(&id(&bobs_net), "192.0.2.0/24").await.unwrap();
    // A port of Bob's claiming to be an interface (or the gateway) of Alice's router.
    for owner in ["network:router_interface", "network:router_gateway", "network:floatingip"] {
        let body = json!({"port": {"network_id": id(&bobs_net), "device_owner": owner, "device_id": t.router}});
        let (status, kind, _) = error_of(bob.post("/v2.0/ports", body).await);
        assert_eq!((status, kind.as_str()), (409, "DeviceIDNotOwnedByTenant"), "{owner}");
    }
    let bobs_port =
        bob.post("/v2.0/ports", json!({"port": {"network_id": id(&bobs_net)}})).await.unwrap()["port"].clone();
    let claim = json!({"port": {"device_owner": "network:router_interface", "device_id": t.router}});
    let (status, _, _) = error_of(bob.put(&format!("/v2.0/ports/{}", id(&bobs_port)), claim).await);
    assert_eq!(status, 409);
    // Alice's router cannot take Bob's subnet, nor the external network's (visible to all).
    let (status, _, _) = error_of(
        alice
            .put(&format!("/v2.0/routers/{}/add_router_interface", t.router), json!({"subnet_id": id(&bobs_subnet)}))
            .await,
    );
    assert_eq!(status, 404);
    let ext_subnet = admin.get(&format!("/v2.0/subnets?network_id={}", t.ext)).await.unwrap()["subnets"][0].clone();
    let (status, _, _) = error_of(
        alice
            .put(&format!("/v2.0/routers/{}/add_router_interface", t.router), json!({"subnet_id": id(&ext_subnet)}))
            .await,
    );
    assert_eq!(status, 404);
    // Bob sees nothing of Alice's router, and cannot point his floating IP at her port.
    let (status, _, _) = error_of(bob.get(&format!("/v2.0/routers/{}", t.router)).await);
    assert_eq!(status, 404);
    assert_eq!(bob.get("/v2.0/routers").await.unwrap()["routers"], json!([]));
    let bobs_fip = bob.post("/v2.0/floatingips", json!({"floatingip": {"floating_network_id": t.ext}})).await.unwrap()
        ["floatingip"]
        .clone();
    let (status, _, _) = error_of(
        bob.put(&format!("/v2.0/floatingips/{}", id(&bobs_fip)), json!({"floatingip": {"port_id": t.port}})).await,
    );
    assert_eq!(status, 404, "Alice's port is not Bob's to see");
    // Nor forward his floating IP's ports to it.
    let pf = json!({"port_forwarding": {"protocol": "tcp", "internal_port_id": t.port,
        "internal_ip_address": "198.51.100.2", "internal_port": 22, "external_port": 2222}});
    let (status, _, _) = error_of(bob.post(&format!("/v2.0/floatingips/{}/port_forwardings", id(&bobs_fip)), pf).await);
    assert_eq!(status, 404);
});

/// Register `host` as a gateway host (its L2 agent and an L3 agent in `dvr_snat`), starting.
async fn gateway_host(s: &TestServer, host: &str, tunnel_ip: &str) {
    s.api.post("/v2.0/neutrino/agents?starting=true", lb_agent(host, tunnel_ip)).await.unwrap();
    let l3 = json!({"host": host, "agent_type": "L3 agent", "tunnel_ip": tunnel_ip,
                    "configurations": {"agent_mode": "dvr_snat"}});
    s.api.post("/v2.0/neutrino/agents?starting=true", l3).await.unwrap();
}

/// The hosts of the router's centralized SNAT ports, and the subnet each is on.
async fn snat_ports(admin: &neutrino_lab::ApiClient, router: &str) -> Vec<(String, String)> {
    let ports = admin
        .get(&format!("/v2.0/ports?device_owner=network:router_centralized_snat&device_id={router}"))
        .await
        .unwrap();
    let mut out: Vec<(String, String)> = ports["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["port_security_enabled"], false, "a router's leg: {p}");
            assert_eq!(p["project_id"], "", "as Neutron's: {p}");
            let host = p["binding:host_id"].as_str().unwrap().to_string();
            (host, p["fixed_ips"][0]["subnet_id"].as_str().unwrap().to_string())
        })
        .collect();
    out.sort();
    out
}

on_both_backends!(
    routers_get_centralized_snat_ports_on_their_gateway_hosts,
    default_config(),
    |s: TestServer| async move {
        let admin = s.api.acting_as("admin-project", "admin,member,reader");
        let alice = s.api.acting_as("a1fa00000000000000000000000000a1", "member,reader");
        // No gateway host yet: no SNAT ports.
        let t = topology(&admin, &alice).await;
        assert!(snat_ports(&admin, &t.router).await.is_empty());
        // Gateway hosts come: the router is scheduled on each (at most `max_l3_agents_per_router`,
        // 3), one port per host on the interface's subnet.
        for (host, ip) in [("gw1", "192.0.2.31"), ("gw2", "192.0.2.32"), ("gw3", "192.0.2.33"), ("gw4", "192.0.2.34")] {
            gateway_host(&s, host, ip).await;
        }
        let scheduled = snat_ports(&admin, &t.router).await;
        assert_eq!(scheduled.len(), 3, "{scheduled:?}");
        assert!(scheduled.iter().all(|(_, subnet)| *subnet == t.subnet));
        let agents = admin.get("/v2.0/agents?agent_type=L3%20agent&host=gw1").await.unwrap();
        assert_eq!(agents["agents"][0]["configurations"]["agent_mode"], "dvr_snat");
        // The tenant sees them (on its network, as Neutron shows a network's owner) but may
        // not delete one.
        let seen = alice.get("/v2.0/ports?device_owner=network:router_centralized_snat").await.unwrap();
        let first = seen["ports"][0]["id"].as_str().unwrap().to_string();
        let (status, kind, _) = error_of(alice.delete(&format!("/v2.0/ports/{first}")).await);
        assert_eq!((status, kind.as_str()), (409, "L3PortInUse"));
        // A gateway host that goes: its routers move to the one left over.
        let gone = &scheduled[0].0;
        let agents = admin.get(&format!("/v2.0/agents?host={gone}")).await.unwrap();
        for a in agents["agents"].as_array().unwrap() {
            admin.delete(&format!("/v2.0/agents/{}", a["id"].as_str().unwrap())).await.unwrap();
        }
        let moved = snat_ports(&admin, &t.router).await;
        assert_eq!(moved.len(), 3, "{moved:?}");
        assert!(!moved.iter().any(|(h, _)| h == gone), "{moved:?}");
        // SNAT off: no ports; on again: back.
        let gw = |snat: bool| json!({"router": {"external_gateway_info": {"network_id": t.ext, "enable_snat": snat}}});
        admin.put(&format!("/v2.0/routers/{}", t.router), gw(false)).await.unwrap();
        assert!(snat_ports(&admin, &t.router).await.is_empty());
        admin.put(&format!("/v2.0/routers/{}", t.router), gw(true)).await.unwrap();
        assert_eq!(snat_ports(&admin, &t.router).await.len(), 3);
        // The interface goes: so do they (the router has no subnet to SNAT); the gateway goes too.
        alice
            .put(&format!("/v2.0/routers/{}/remove_router_interface", t.router), json!({"subnet_id": t.subnet}))
            .await
            .unwrap();
        assert!(snat_ports(&admin, &t.router).await.is_empty());
        alice
            .put(&format!("/v2.0/routers/{}", t.router), json!({"router": {"external_gateway_info": {}}}))
            .await
            .unwrap();
        alice.delete(&format!("/v2.0/routers/{}", t.router)).await.unwrap();
    }
);

on_both_backends!(
    ipv6_subnets_of_a_network_share_the_routers_port_there,
    default_config(),
    |s: TestServer| async move {
        let alice = s.api.acting_as("a1fa00000000000000000000000000a1", "member,reader");
        let net = alice.create_network("v6").await.unwrap();
        let subnet = |cidr: &str, version: u8| {
            let body = json!({"subnet": {"network_id": id(&net), "ip_version": version, "cidr": cidr}});
            let alice = alice.clone();
            async move { alice.post("/v2.0/subnets", body).await.unwrap()["subnet"].clone() }
        };
        let (a, b, v4) =
            (subnet("2001:db8:1::/64", 6).await, subnet("2001:db8:2::/64", 6).await, subnet("192.0.2.0/24", 4).await);
        let router = alice.post("/v2.0/routers", json!({"router": {"name": "r6"}})).await.unwrap()["router"].clone();
        let add = |subnet: &Value| {
            let (alice, path, body) = (
                alice.clone(),
                format!("/v2.0/routers/{}/add_router_interface", id(&router)),
                json!({"subnet_id": id(subnet)}),
            );
            async move { alice.put(&path, body).await.unwrap() }
        };
        let first = add(&a).await;
        let second = add(&b).await;
        assert_eq!(second["port_id"], first["port_id"], "the second IPv6 subnet joins the port: {second}");
        assert_eq!(second["subnet_ids"], json!([id(&b)]), "the reply names the subnet added");
        let port =
            alice.get(&format!("/v2.0/ports/{}", first["port_id"].as_str().unwrap())).await.unwrap()["port"].clone();
        let addresses: Vec<&str> =
            port["fixed_ips"].as_array().unwrap().iter().map(|f| f["ip_address"].as_str().unwrap()).collect();
        assert_eq!(addresses, [a["gateway_ip"].as_str().unwrap(), b["gateway_ip"].as_str().unwrap()], "their gateways");
        let third = add(&v4).await;
        assert_ne!(third["port_id"], first["port_id"], "an IPv4 subnet has a port of its own");
        // Removing one subnet of the shared port takes its address alone; the last one, the port.
        let remove = |subnet: &Value| {
            let (alice, path, body) = (
                alice.clone(),
                format!("/v2.0/routers/{}/remove_router_interface", id(&router)),
                json!({"subnet_id": id(subnet)}),
            );
            async move { alice.put(&path, body).await.unwrap() }
        };
        let removed = remove(&a).await;
        assert_eq!(
            (removed["port_id"].clone(), removed["subnet_ids"].clone()),
            (first["port_id"].clone(), json!([id(&a)]))
        );
        let port =
            alice.get(&format!("/v2.0/ports/{}", first["port_id"].as_str().unwrap())).await.unwrap()["port"].clone();
        assert_eq!(port["fixed_ips"].as_array().map(Vec::len), Some(1), "{port}");
        assert_eq!(port["fixed_ips"][0]["subnet_id"], b["id"]);
        remove(&b).await;
        let gone = alice.get(&format!("/v2.0/ports/{}", first["port_id"].as_str().unwrap())).await;
        assert!(
            matches!(gone, Err(neutrino_lab::ApiError::Status { status: 404, .. })),
            "the port went with its last subnet"
        );
    }
);
