//! API tests: ML2 type drivers, segments, segment ranges, mechanism drivers and binding.

use super::*;
use neutrino_domain::segments::parse_vlan_ranges;

fn ml2_config(tenant_types: &[&str], mechanism_drivers: &[&str]) -> ServerConfig {
    ServerConfig {
        type_drivers: TypeDriverConfig {
            tenant_network_types: tenant_types.iter().map(|s| s.to_string()).collect(),
            network_vlan_ranges: parse_vlan_ranges("physnet1:100:101,physnet2").unwrap(),
            vni_ranges: vec![(1, 2)],
            tunnel_id_ranges: vec![(1, 5)],
            geneve_vni_ranges: vec![(1, 5)],
            ..TypeDriverConfig::default()
        },
        mechanism_drivers: mechanism_drivers.iter().map(|s| s.to_string()).collect(),
        ..default_config()
    }
}

fn all_drivers() -> ServerConfig {
    ml2_config(&["vlan", "vxlan"], &["openvswitch", "linuxbridge", "l2population"])
}

async fn provider_net(
    s: &TestServer,
    t: &str,
    physnet: Option<&str>,
    id: Option<u64>,
) -> Result<Value, neutrino_lab::ApiError> {
    let mut n = json!({"name": format!("{t}-net"), "provider:network_type": t});
    if let Some(p) = physnet {
        n["provider:physical_network"] = json!(p);
    }
    if let Some(i) = id {
        n["provider:segmentation_id"] = json!(i);
    }
    s.api.post("/v2.0/networks", json!({ "network": n })).await.map(|v| v["network"].clone())
}

fn provider_of(n: &Value) -> (String, Value, Value, u64) {
    (
        n["provider:network_type"].as_str().unwrap_or_default().to_string(),
        n["provider:physical_network"].clone(),
        n["provider:segmentation_id"].clone(),
        n["mtu"].as_u64().unwrap(),
    )
}

on_both_backends!(provider_networks_of_every_type, all_drivers(), |s: TestServer| async move {
    let vlan = provider_net(&s, "vlan", Some("physnet1"), Some(150)).await.unwrap();
    assert_eq!(provider_of(&vlan), ("vlan".into(), json!("physnet1"), json!(150), 1500));
    let (status, kind, msg) = error_of(provider_net(&s, "vlan", Some("physnet1"), Some(150)).await);
    assert_eq!((status, kind.as_str()), (409, "VlanIdInUse"), "{msg}");
    let flat = provider_net(&s, "flat", Some("physnet1"), None).await.unwrap();
    assert_eq!(provider_of(&flat), ("flat".into(), json!("physnet1"), Value::Null, 1500));
    assert_eq!(error_of(provider_net(&s, "flat", Some("physnet1"), None).await).1, "FlatNetworkInUse");
    let gre = provider_net(&s, "gre", None, Some(4000)).await.unwrap();
    assert_eq!(provider_of(&gre), ("gre".into(), Value::Null, json!(4000), 1458));
    let geneve = provider_net(&s, "geneve", None, None).await.unwrap();
    assert_eq!(provider_of(&geneve), ("geneve".into(), Value::Null, json!(1), 1450), "partial segment allocated");
    let local = provider_net(&s, "local", None, None).await.unwrap();
    assert_eq!(provider_of(&local), ("local".into(), Value::Null, Value::Null, 1500));
    // A VLAN without an id on a physical network takes one from that network's range.
    let partial = provider_net(&s, "vlan", Some("physnet1"), None).await.unwrap();
    assert_eq!(partial["provider:segmentation_id"], 100);
    assert_eq!(error_of(provider_net(&s, "vlan", Some("physnet2"), None).await).1, "NoNetworkAvailable");

    for (t, physnet, id) in [
        ("vlan", None, Some(10)),
        ("vlan", Some("physnet9"), Some(10)),
        ("vlan", Some("physnet1"), Some(4095)),
        ("vxlan", Some("physnet1"), None),
        ("vxlan", None, Some(1 << 24)),
        ("flat", None, None),
        ("local", None, Some(3)),
        ("stt", None, None),
    ] {
        let (status, kind, msg) = error_of(provider_net(&s, t, physnet, id).await);
        assert_eq!((status, kind.as_str()), (400, "InvalidInput"), "{t} {physnet:?} {id:?}: {msg}");
    }
    // Releasing on delete: the same VLAN can be taken again.
    s.api.delete(&format!("/v2.0/networks/{}", vlan["id"].as_str().unwrap())).await.unwrap();
    provider_net(&s, "vlan", Some("physnet1"), Some(150)).await.unwrap();
    // Filters read the provider attributes.
    let gres = s.api.get("/v2.0/networks?provider:network_type=gre").await.unwrap();
    assert_eq!(gres["networks"].as_array().unwrap().len(), 1);
    // Provider attributes are not updatable.
    let (status, _, _) = error_of(
        s.api
            .put(
                &format!("/v2.0/networks/{}", gre["id"].as_str().unwrap()),
                json!({"network": {"provider:segmentation_id": 5}}),
            )
            .await,
    );
    assert_eq!(status, 400);
});

on_both_backends!(tenant_networks_fall_back_through_the_ordered_types, all_drivers(), |s: TestServer| async move {
    let mut got = Vec::new();
    for i in 0..4 {
        let n = s.api.create_network(&format!("t{i}")).await.unwrap();
        got.push((n["provider:network_type"].as_str().unwrap().to_string(), n["provider:segmentation_id"].as_u64()));
    }
    assert_eq!(
        got,
        vec![
            ("vlan".into(), Some(100)),
            ("vlan".into(), Some(101)),
            ("vxlan".into(), Some(1)),
            ("vxlan".into(), Some(2))
        ]
    );
    let (status, kind, _) = error_of(s.api.create_network("full").await);
    assert_eq!((status, kind.as_str()), (503, "NoNetworkAvailable"));
    let nets = s.api.get("/v2.0/networks?provider:segmentation_id=101").await.unwrap();
    let id = nets["networks"][0]["id"].as_str().unwrap().to_string();
    s.api.delete(&format!("/v2.0/networks/{id}")).await.unwrap();
    let again = s.api.create_network("again").await.unwrap();
    assert_eq!(
        (again["provider:network_type"].as_str(), again["provider:segmentation_id"].as_u64()),
        (Some("vlan"), Some(101))
    );
});

on_both_backends!(multi_segment_networks_and_the_segments_api, all_drivers(), |s: TestServer| async move {
    let body = json!({"network": {"name": "multi", "segments": [
        {"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 200},
        {"provider:network_type": "vxlan"}]}});
    let net = s.api.post("/v2.0/networks", body).await.unwrap()["network"].clone();
    assert!(net.get("provider:network_type").is_none(), "multi-segment networks show no provider attributes");
    assert_eq!(
        net["segments"],
        json!([{"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 200},
               {"provider:network_type": "vxlan", "provider:physical_network": null, "provider:segmentation_id": 1}])
    );
    assert_eq!(net["mtu"], 1450, "the smallest MTU of its segments");
    let net_id = net["id"].as_str().unwrap().to_string();
    let shown = s.api.get(&format!("/v2.0/networks/{net_id}")).await.unwrap()["network"].clone();
    assert_eq!(shown["segments"], net["segments"]);

    let segs = s.api.get(&format!("/v2.0/segments?network_id={net_id}")).await.unwrap()["segments"].clone();
    assert_eq!(segs.as_array().unwrap().len(), 2);
    let keys: Vec<&String> = segs[0].as_object().unwrap().keys().collect();
    for k in [
        "id",
        "network_id",
        "name",
        "description",
        "physical_network",
        "network_type",
        "segmentation_id",
        "revision_number",
    ] {
        assert!(keys.iter().any(|x| x.as_str() == k), "segment shows {k}");
    }
    // Add a GRE segment (id allocated), name it, delete it.
    let gre = s
        .api
        .post("/v2.0/segments", json!({"segment": {"network_id": net_id, "network_type": "gre", "name": "g"}}))
        .await
        .unwrap()["segment"]
        .clone();
    assert_eq!((gre["segmentation_id"].as_u64(), gre["name"].as_str()), (Some(1), Some("g")));
    let gre_id = gre["id"].as_str().unwrap().to_string();
    let renamed =
        s.api.put(&format!("/v2.0/segments/{gre_id}"), json!({"segment": {"description": "d"}})).await.unwrap();
    assert_eq!(
        (renamed["segment"]["description"].as_str(), renamed["segment"]["revision_number"].as_u64()),
        (Some("d"), Some(1))
    );
    assert_eq!(
        s.api.get(&format!("/v2.0/networks/{net_id}")).await.unwrap()["network"]["segments"].as_array().unwrap().len(),
        3
    );
    s.api.delete(&format!("/v2.0/segments/{gre_id}")).await.unwrap();
    assert_eq!(error_of(s.api.get(&format!("/v2.0/segments/{gre_id}")).await).1, "SegmentNotFound");
    // The GRE id is free again.
    assert_eq!(provider_net(&s, "gre", None, None).await.unwrap()["provider:segmentation_id"], 1);

    // Bad multi-provider requests.
    for bad in [
        json!({"segments": [{"provider:network_type": "vxlan"}], "provider:network_type": "vxlan"}),
        json!({"segments": [{"provider:network_type": "vxlan", "provider:segmentation_id": 9},
                            {"provider:network_type": "vxlan", "provider:segmentation_id": 9}]}),
        json!({"segments": [{"provider:network_type": "vxlan", "bogus": 1}]}),
        json!({"segments": "vxlan"}),
    ] {
        let (status, _, msg) = error_of(s.api.post("/v2.0/networks", json!({ "network": bad })).await);
        assert_eq!(status, 400, "{msg}");
    }
    assert_eq!(error_of(s.api.post("/v2.0/segments", json!({"segment": {"network_id": net_id, "network_type": "vlan", "physical_network": "physnet1", "segmentation_id": 200}})).await).1, "VlanIdInUse");
    // A network's last segment, or one a port is bound to, cannot go.
    let single = s.api.create_network("single").await.unwrap();
    let single_seg = s.api.get(&format!("/v2.0/segments?network_id={}", single["id"].as_str().unwrap())).await.unwrap();
    let (status, kind, _) =
        error_of(s.api.delete(&format!("/v2.0/segments/{}", single_seg["segments"][0]["id"].as_str().unwrap())).await);
    assert_eq!((status, kind.as_str()), (409, "SegmentInUse"));
    // Unknown network; a network id that is not one at all.
    let unknown = json!({"segment": {"network_id": "00000000-0000-0000-0000-00000000dead", "network_type": "vxlan"}});
    assert_eq!(error_of(s.api.post("/v2.0/segments", unknown).await).1, "NetworkNotFound");
    let (status, kind, message) = error_of(
        s.api.post("/v2.0/segments", json!({"segment": {"network_id": "nope", "network_type": "vxlan"}})).await,
    );
    assert_eq!(
        (status, kind.as_str(), message.as_str()),
        (400, "HTTPBadRequest", "Invalid input for network_id. Reason: 'nope' is not a valid UUID.")
    );
});

on_both_backends!(segment_ranges_are_managed_at_run_time, all_drivers(), |s: TestServer| async move {
    let ranges = s.api.get("/v2.0/network_segment_ranges").await.unwrap()["network_segment_ranges"].clone();
    let defaults: Vec<(String, String, u64, u64)> = ranges
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!((r["default"].as_bool(), r["shared"].as_bool()), (Some(true), Some(true)));
            (
                r["network_type"].as_str().unwrap().into(),
                r["physical_network"].as_str().unwrap().into(),
                r["minimum"].as_u64().unwrap(),
                r["maximum"].as_u64().unwrap(),
            )
        })
        .collect();
    for want in [("vlan", "physnet1", 100, 101), ("vxlan", "", 1, 2), ("gre", "", 1, 5), ("geneve", "", 1, 5)] {
        assert!(defaults.contains(&(want.0.into(), want.1.into(), want.2, want.3)), "{want:?} in {defaults:?}");
    }
    // A range of project P only: P's tenant networks take from it first.
    let range = s
        .api
        .post(
            "/v2.0/network_segment_ranges",
            json!({"network_segment_range": {"name": "p-range", "shared": false, "project_id": "p",
                   "network_type": "vxlan", "minimum": 500, "maximum": 500}}),
        )
        .await
        .unwrap()["network_segment_range"]
        .clone();
    assert_eq!((range["default"].as_bool(), range["project_id"].as_str()), (Some(false), Some("p")));
    assert_eq!(range["available"], json!([500]));
    let range_id = range["id"].as_str().unwrap().to_string();
    let cfg = ml2_config(&["vxlan"], &["linuxbridge"]);
    assert_eq!(cfg.type_drivers.tenant_network_types, ["vxlan"]);
    let p_net = s
        .api
        .post("/v2.0/networks", json!({"network": {"name": "pn", "project_id": "p", "provider:network_type": "vxlan"}}))
        .await
        .unwrap()["network"]
        .clone();
    assert_eq!(p_net["provider:segmentation_id"], 500, "the project's own range first");
    let shown = s.api.get(&format!("/v2.0/network_segment_ranges/{range_id}")).await.unwrap();
    assert_eq!(
        (shown["network_segment_range"]["used"].clone(), shown["network_segment_range"]["available"].clone()),
        (json!({"500": "p"}), json!([]))
    );
    let other = s
        .api
        .post("/v2.0/networks", json!({"network": {"name": "q", "project_id": "q", "provider:network_type": "vxlan"}}))
        .await
        .unwrap()["network"]
        .clone();
    assert_eq!(other["provider:segmentation_id"], 1, "other projects do not see P's range");

    let (status, kind, _) = error_of(s.api.delete(&format!("/v2.0/network_segment_ranges/{range_id}")).await);
    assert_eq!((status, kind.as_str()), (409, "NetworkSegmentRangeReferencedByProject"));
    let default_id = ranges[0]["id"].as_str().unwrap();
    let (status, kind, _) = error_of(s.api.delete(&format!("/v2.0/network_segment_ranges/{default_id}")).await);
    assert_eq!((status, kind.as_str()), (400, "NetworkSegmentRangeDefaultReadOnly"));
    let (status, _, _) = error_of(
        s.api
            .put(
                &format!("/v2.0/network_segment_ranges/{default_id}"),
                json!({"network_segment_range": {"maximum": 9}}),
            )
            .await,
    );
    assert_eq!(status, 400);
    // Bounds that would leave out an id in use are refused (Neutron 29's rule).
    let (status, kind, _) = error_of(
        s.api
            .put(
                &format!("/v2.0/network_segment_ranges/{range_id}"),
                json!({"network_segment_range": {"minimum": 501, "maximum": 502}}),
            )
            .await,
    );
    assert_eq!((status, kind.as_str()), (409, "NetworkSegmentRangeReferencedByProject"));
    let widened = s
        .api
        .put(&format!("/v2.0/network_segment_ranges/{range_id}"), json!({"network_segment_range": {"maximum": 501}}))
        .await
        .unwrap();
    assert_eq!(widened["network_segment_range"]["available"], json!([501]));
    for bad in [
        json!({"network_type": "vlan", "minimum": 1, "maximum": 2}),
        json!({"network_type": "vxlan", "physical_network": "physnet1", "minimum": 1, "maximum": 2}),
        json!({"network_type": "vlan", "physical_network": "physnet1", "minimum": 10, "maximum": 4095}),
        json!({"network_type": "vxlan", "minimum": 5, "maximum": 4}),
        json!({"network_type": "flat", "minimum": 1, "maximum": 2}),
        json!({"network_type": "vxlan", "shared": false, "minimum": 1, "maximum": 2}),
    ] {
        let (status, _, msg) =
            error_of(s.api.post("/v2.0/network_segment_ranges", json!({"network_segment_range": bad})).await);
        assert_eq!(status, 400, "{msg}");
    }
    s.api.delete(&format!("/v2.0/networks/{}", p_net["id"].as_str().unwrap())).await.unwrap();
    s.api.delete(&format!("/v2.0/network_segment_ranges/{range_id}")).await.unwrap();
    assert_eq!(
        error_of(s.api.get(&format!("/v2.0/network_segment_ranges/{range_id}")).await).1,
        "NetworkSegmentRangeNotFound"
    );
});

fn ovs_agent(host: &str) -> Value {
    json!({"host": host, "agent_type": "Open vSwitch agent", "tunnel_ip": "192.0.2.31",
           "configurations": {"tunnel_types": ["vxlan", "gre", "geneve"], "bridge_mappings": {"physnet1": "br-ex"},
                              "datapath_type": "system", "integration_bridge": "br-int", "l2_population": true}})
}

fn lb_agent_without_vlan(host: &str) -> Value {
    let mut a = lb_agent(host, "192.0.2.21");
    a["configurations"]["unsupported_network_types"] = json!({"vlan": "kernel has no 802.1Q VLAN support"});
    a
}

async fn bind_on(s: &TestServer, net: &Value, host: &str) -> Value {
    post_port(s, json!({"network_id": net["id"], "binding:host_id": host})).await.unwrap()["port"].clone()
}

on_both_backends!(ports_bind_through_the_driver_of_the_hosts_agent, all_drivers(), |s: TestServer| async move {
    s.api.post("/v2.0/neutrino/agents", lb_agent_without_vlan("lb")).await.unwrap();
    s.api.post("/v2.0/neutrino/agents", ovs_agent("ovs")).await.unwrap();
    let agents = s.api.get("/v2.0/agents").await.unwrap();
    let lb = agents["agents"].as_array().unwrap().iter().find(|a| a["host"] == "lb").unwrap().clone();
    assert_eq!(lb["configurations"]["interface_mappings"], json!({"physnet1": "eth1"}));
    assert_eq!(lb["configurations"]["tunneling_ip"], "192.0.2.21");

    let vxlan = provider_net(&s, "vxlan", None, None).await.unwrap();
    let gre = provider_net(&s, "gre", None, None).await.unwrap();
    let flat1 = provider_net(&s, "flat", Some("physnet1"), None).await.unwrap();
    let flat2 = provider_net(&s, "flat", Some("physnet2"), None).await.unwrap();
    let vlan = provider_net(&s, "vlan", Some("physnet1"), Some(120)).await.unwrap();

    let p = bind_on(&s, &vxlan, "lb").await;
    assert_eq!(p["binding:vif_type"], "bridge");
    assert_eq!(
        p["binding:vif_details"],
        json!({"connectivity": "l2", "port_filter": true,
        "bridge_name": format!("brq{}", &vxlan["id"].as_str().unwrap()[..11])})
    );
    let p = bind_on(&s, &vxlan, "ovs").await;
    assert_eq!(p["binding:vif_type"], "ovs");
    assert_eq!(
        p["binding:vif_details"],
        json!({"connectivity": "l2", "port_filter": true, "ovs_hybrid_plug": false,
        "datapath_type": "system", "bridge_name": "br-int"})
    );
    for (net, host, want) in [
        (&gre, "lb", "binding_failed"),
        (&gre, "ovs", "ovs"),
        (&flat1, "lb", "bridge"),
        (&flat1, "ovs", "ovs"),
        (&flat2, "lb", "binding_failed"),
        (&flat2, "ovs", "binding_failed"),
        (&vlan, "lb", "binding_failed"),
        (&vlan, "ovs", "ovs"),
        (&vxlan, "nowhere", "binding_failed"),
    ] {
        let p = bind_on(&s, net, host).await;
        assert_eq!(p["binding:vif_type"], want, "{} on {host}", net["provider:network_type"]);
    }
    // A multi-segment network binds on each host to the segment it can reach.
    let multi = s
        .api
        .post(
            "/v2.0/networks",
            json!({"network": {"name": "m", "segments": [
            {"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 121},
            {"provider:network_type": "vxlan"}]}}),
        )
        .await
        .unwrap()["network"]
        .clone();
    let on_lb = bind_on(&s, &multi, "lb").await;
    assert_eq!(on_lb["binding:vif_type"], "bridge");
    let resp = reqwest::Client::new().get(format!("{}/v2.0/neutrino/hosts/lb/stream", s.base)).send().await.unwrap();
    let mut lines = Lines { body: Box::pin(resp.bytes_stream()), buf: Vec::new() };
    let snap = lines.next().await;
    assert_eq!(snap["state"]["networks"][multi["id"].as_str().unwrap()]["network_type"], "vxlan", "the bound segment");
    assert_eq!(snap["state"]["networks"][flat1["id"].as_str().unwrap()]["physical_network"], "physnet1");
    // The segment a port is bound to cannot be deleted.
    let segs = s
        .api
        .get(&format!("/v2.0/segments?network_id={}&network_type=vxlan", multi["id"].as_str().unwrap()))
        .await
        .unwrap();
    let (status, kind, _) =
        error_of(s.api.delete(&format!("/v2.0/segments/{}", segs["segments"][0]["id"].as_str().unwrap())).await);
    assert_eq!((status, kind.as_str()), (409, "SegmentInUse"));
    // An agent set down gets no new binding; rebinding on update follows the host.
    let ovs_id = agents["agents"].as_array().unwrap().iter().find(|a| a["host"] == "ovs").unwrap()["id"].clone();
    s.api
        .put(&format!("/v2.0/agents/{}", ovs_id.as_str().unwrap()), json!({"agent": {"admin_state_up": false}}))
        .await
        .unwrap();
    assert_eq!(bind_on(&s, &gre, "ovs").await["binding:vif_type"], "binding_failed");
    let moved = s
        .api
        .put(&format!("/v2.0/ports/{}", on_lb["id"].as_str().unwrap()), json!({"port": {"binding:host_id": "ovs"}}))
        .await
        .unwrap();
    assert_eq!(moved["port"]["binding:vif_type"], "binding_failed");
});

on_both_backends!(
    without_l2population_hosts_learn_no_remote_ports,
    ml2_config(&["vxlan"], &["linuxbridge"]),
    |s: TestServer| async move {
        s.api.post("/v2.0/neutrino/agents", lb_agent("h1", "192.0.2.11")).await.unwrap();
        s.api.post("/v2.0/neutrino/agents", lb_agent("h2", "192.0.2.12")).await.unwrap();
        let net = s.api.create_network("n").await.unwrap();
        assert_eq!(bind_on(&s, &net, "h1").await["binding:vif_type"], "bridge");
        assert_eq!(bind_on(&s, &net, "h2").await["binding:vif_type"], "bridge");
        let resp =
            reqwest::Client::new().get(format!("{}/v2.0/neutrino/hosts/h1/stream", s.base)).send().await.unwrap();
        let mut lines = Lines { body: Box::pin(resp.bytes_stream()), buf: Vec::new() };
        let snap = lines.next().await;
        assert_eq!(snap["state"]["local_ports"].as_object().unwrap().len(), 1);
        assert_eq!(snap["state"]["remote_ports"], json!({}));
    }
);

/// 16 clients create tenant networks until the ranges run out: every segment is handed out
/// once, then every client gets a clean 503.
async fn exhaust_tenant_ranges(s: &TestServer, expected: usize) -> Vec<(String, u64)> {
    let mut tasks = Vec::new();
    for c in 0..16 {
        let api = s.api.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                match api.create_network(&format!("c{c}-{}", mine.len())).await {
                    Ok(n) => mine.push((
                        n["provider:network_type"].as_str().unwrap().to_string(),
                        n["provider:segmentation_id"].as_u64().unwrap(),
                    )),
                    Err(e) => {
                        let (status, kind, msg) = error_of(Err(e));
                        assert_eq!((status, kind.as_str()), (503, "NoNetworkAvailable"), "{msg}");
                        return mine;
                    }
                }
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(unique.len(), all.len(), "no segment handed out twice");
    assert_eq!(all.len(), expected, "every segment of the ranges is used");
    all
}

fn wide_ranges() -> ServerConfig {
    ServerConfig {
        type_drivers: TypeDriverConfig {
            tenant_network_types: vec!["vlan".into(), "vxlan".into()],
            network_vlan_ranges: parse_vlan_ranges("physnet1:1:30").unwrap(),
            vni_ranges: vec![(1, 30)],
            ..TypeDriverConfig::default()
        },
        ..default_config()
    }
}

on_both_backends!(
    concurrent_tenant_networks_exhaust_the_ranges_without_duplicates,
    wide_ranges(),
    |s: TestServer| async move {
        let all = exhaust_tenant_ranges(&s, 60).await;
        assert_eq!(all.iter().filter(|(t, _)| t == "vlan").count(), 30);
        let listed = s.api.get("/v2.0/networks?fields=id").await.unwrap();
        assert_eq!(listed["networks"].as_array().unwrap().len(), 60, "nothing half-created");
    }
);

/// A server on `connection` with `vni_ranges`, as a restart with a new configuration would be.
async fn server_with_vni_ranges(
    connection: &str,
    ranges: Vec<(u32, u32)>,
) -> (neutrino_lab::ApiClient, tokio::task::JoinHandle<std::io::Result<()>>) {
    let config = ServerConfig {
        connection: connection.to_string(),
        type_drivers: TypeDriverConfig { vni_ranges: ranges, ..TypeDriverConfig::default() },
        ..default_config()
    };
    let store = neutrino_store::Store::connect(connection, 4).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = neutrino_server::App::new(store, config).await.unwrap();
    (neutrino_lab::ApiClient::new(&base), tokio::spawn(neutrino_server::serve(app, listener)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_change_between_restarts_and_old_allocations_stay_until_released() {
    let dir = crate::common::TempDir(std::env::temp_dir().join(crate::common::unique("neutrino-ranges")));
    std::fs::create_dir_all(&dir.0).unwrap();
    let connection = format!("sqlite:///{}/db.sqlite", dir.0.display());
    let (api, task) = server_with_vni_ranges(&connection, vec![(1, 3)]).await;
    let old = api.create_network("old").await.unwrap();
    assert_eq!(old["provider:segmentation_id"], 1);
    task.abort();

    let (api, task) = server_with_vni_ranges(&connection, vec![(10, 11)]).await;
    let shown = api.get(&format!("/v2.0/networks/{}", old["id"].as_str().unwrap())).await.unwrap();
    assert_eq!(shown["network"]["provider:segmentation_id"], 1, "outside the new range, still valid");
    let ranges = api.get("/v2.0/network_segment_ranges?network_type=vxlan").await.unwrap();
    let bounds: Vec<(u64, u64)> = ranges["network_segment_ranges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["minimum"].as_u64().unwrap(), r["maximum"].as_u64().unwrap()))
        .collect();
    assert_eq!(bounds, vec![(10, 11)], "the default ranges follow the configuration");
    for want in [10, 11] {
        assert_eq!(api.create_network("new").await.unwrap()["provider:segmentation_id"], want);
    }
    assert_eq!(error_of(api.create_network("full").await).0, 503);
    api.delete(&format!("/v2.0/networks/{}", old["id"].as_str().unwrap())).await.unwrap();
    assert_eq!(
        error_of(api.create_network("still full").await).0,
        503,
        "a released id outside the ranges is not reused"
    );
    // A provider network may still take an id outside the ranges.
    let provider = api
        .post("/v2.0/networks", json!({"network": {"provider:network_type": "vxlan", "provider:segmentation_id": 1}}))
        .await
        .unwrap();
    assert_eq!(provider["network"]["provider:segmentation_id"], 1);
    task.abort();
}

/// Two servers on one PostgreSQL database, 8 clients each, one tenant range: each id is handed
/// out once across both servers, then both answer 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (NEUTRINO_TEST_PG); scripts/test runs it"]
async fn two_servers_exhaust_one_range_without_duplicates() {
    let config = || ServerConfig {
        type_drivers: TypeDriverConfig { vni_ranges: vec![(1, 48)], ..TypeDriverConfig::default() },
        ..default_config()
    };
    let Some(a) = crate::common::start(crate::common::Backend::Postgres, config()).await else {
        return;
    };
    let b = crate::common::second_server_with(&a, config()).await;
    let mut tasks = Vec::new();
    for c in 0..16 {
        let api = if c % 2 == 0 { a.api.clone() } else { b.api.clone() };
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                match api.create_network(&format!("ha{c}")).await {
                    Ok(n) => mine.push(n["provider:segmentation_id"].as_u64().unwrap()),
                    Err(e) => {
                        assert_eq!(error_of(Err(e)).0, 503);
                        return mine;
                    }
                }
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    assert_eq!(all, (1..=48).collect::<Vec<u64>>(), "every VNI once, across both servers");
}
