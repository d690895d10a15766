//! API tests: agents.

use super::*;

on_both_backends!(agent_stream_sends_snapshot_then_updates, default_config(), |s: TestServer| async move {
    s.api.post("/v2.0/neutrino/agents", lb_agent("h1", "192.0.2.11")).await.unwrap();
    s.api.post("/v2.0/neutrino/agents", lb_agent("h2", "192.0.2.12")).await.unwrap();
    let (net_id, _) = network_with_subnet(&s, "198.51.100.0/24").await;
    let local = post_port(&s, json!({"network_id": net_id, "binding:host_id": "h1"})).await.unwrap()["port"].clone();

    let resp = reqwest::Client::new().get(format!("{}/v2.0/neutrino/hosts/h1/stream", s.base)).send().await.unwrap();
    let mut lines = Lines { body: Box::pin(resp.bytes_stream()), buf: Vec::new() };
    let snap = lines.next().await;
    assert_eq!(snap["kind"], "snapshot");
    assert!(snap["state"]["local_ports"].get(local["id"].as_str().unwrap()).is_some());
    assert_eq!(snap["state"]["networks"][&net_id]["network_type"], "vxlan");

    let remote = post_port(&s, json!({"network_id": net_id, "binding:host_id": "h2"})).await.unwrap()["port"].clone();
    let update = lines.next().await;
    assert_eq!(update["kind"], "update");
    let r = &update["upserted"]["remote_ports"][remote["id"].as_str().unwrap()];
    assert_eq!(r["tunnel_ip"], "192.0.2.12");
    assert_eq!(r["ip_addresses"][0], remote["fixed_ips"][0]["ip_address"]);

    s.api.delete(&format!("/v2.0/ports/{}", remote["id"].as_str().unwrap())).await.unwrap();
    let update = lines.next().await;
    assert_eq!(update["removed"]["remote_ports"], json!([remote["id"]]));

    // The agent reports the port ACTIVE; the API shows it.
    s.api
        .put("/v2.0/neutrino/ports/status", json!({"host": "h1", "ports": {local["id"].as_str().unwrap(): "ACTIVE"}}))
        .await
        .unwrap();
    assert_eq!(s.api.port(local["id"].as_str().unwrap()).await.unwrap()["status"], "ACTIVE");
});

/// Two stateless servers on one PostgreSQL database: a change made through one reaches the
/// agent stream served by the other (LISTEN/NOTIFY), and allocations stay unique across both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (NEUTRINO_TEST_PG); scripts/test runs it"]
async fn two_servers_on_one_postgres_share_state_and_streams() {
    let Some(a) = crate::common::start(crate::common::Backend::Postgres, default_config()).await else {
        return;
    };
    let b = crate::common::second_server(&a).await;
    for (s, host, ip) in [(&a, "h1", "192.0.2.11"), (&b, "h2", "192.0.2.12")] {
        s.api.post("/v2.0/neutrino/agents", lb_agent(host, ip)).await.unwrap();
    }
    let (net_id, _) = network_with_subnet(&a, "198.51.100.0/24").await;
    post_port(&a, json!({"network_id": net_id, "binding:host_id": "h1"})).await.unwrap();
    let resp = reqwest::Client::new().get(format!("{}/v2.0/neutrino/hosts/h1/stream", a.base)).send().await.unwrap();
    let mut lines = Lines { body: Box::pin(resp.bytes_stream()), buf: Vec::new() };
    assert_eq!(lines.next().await["kind"], "snapshot");
    let remote = post_port(&b, json!({"network_id": net_id, "binding:host_id": "h2"})).await.unwrap()["port"].clone();
    let update = lines.next().await;
    assert!(
        update["upserted"]["remote_ports"].get(remote["id"].as_str().unwrap()).is_some(),
        "server A streamed a port created through server B: {update}"
    );

    let mut tasks = Vec::new();
    for i in 0..20 {
        let api = if i % 2 == 0 { a.api.clone() } else { b.api.clone() };
        tasks.push(tokio::spawn(async move { api.create_network(&format!("ha{i}")).await.unwrap() }));
    }
    let mut vnis = HashSet::new();
    for t in tasks {
        assert!(vnis.insert(t.await.unwrap()["provider:segmentation_id"].as_u64().unwrap()));
    }
}

on_both_backends!(availability_zones_come_from_agents, default_config(), |s: TestServer| async move {
    for (host, zone) in [("c1", "az1"), ("c2", "az2")] {
        s.api
            .post(
                "/v2.0/neutrino/agents",
                json!({"host": host, "agent_type": "Linux bridge agent",
                "tunnel_ip": "192.0.2.11", "availability_zone": zone, "configurations": {"tunnel_types": ["vxlan"]}}),
            )
            .await
            .unwrap();
    }
    let zones = s.api.get("/v2.0/availability_zones").await.unwrap();
    assert_eq!(
        zones["availability_zones"],
        json!([{"name": "az1", "resource": "network", "state": "available"},
               {"name": "az2", "resource": "network", "state": "available"}])
    );
    let net = s
        .api
        .post("/v2.0/networks", json!({"network": {"name": "z", "availability_zone_hints": ["az1"]}}))
        .await
        .unwrap();
    assert_eq!(net["network"]["availability_zone_hints"], json!(["az1"]));
    assert_eq!(net["network"]["availability_zones"], json!([]));
    let (status, kind, _) =
        error_of(s.api.post("/v2.0/networks", json!({"network": {"availability_zone_hints": ["nowhere"]}})).await);
    assert_eq!((status, kind.as_str()), (404, "AvailabilityZoneNotFound"));
    let net_id = net["network"]["id"].as_str().unwrap();
    post_port(&s, json!({"network_id": net_id, "binding:host_id": "c2"})).await.unwrap();
    let shown = s.api.get(&format!("/v2.0/networks/{net_id}")).await.unwrap();
    assert_eq!(shown["network"]["availability_zones"], json!(["az2"]), "the zone of the host its port is on");
    assert_eq!(s.api.get("/v2.0/agents").await.unwrap()["agents"][0]["availability_zone"], "az1");
});

on_both_backends!(agents_can_be_set_down_and_deleted, default_config(), |s: TestServer| async move {
    let reg = s.api.post("/v2.0/neutrino/agents", lb_agent("c1", "192.0.2.11")).await.unwrap();
    let id = reg["agent"]["id"].as_str().unwrap().to_string();
    let net = s.api.create_network("a").await.unwrap();
    let bound = post_port(&s, json!({"network_id": net["id"], "binding:host_id": "c1"})).await.unwrap();
    assert_eq!(bound["port"]["binding:vif_type"], "bridge");

    let down = s
        .api
        .put(&format!("/v2.0/agents/{id}"), json!({"agent": {"admin_state_up": false, "description": "maintenance"}}))
        .await
        .unwrap();
    assert_eq!(down["agent"]["admin_state_up"], false);
    assert_eq!(down["agent"]["description"], "maintenance");
    let refused = post_port(&s, json!({"network_id": net["id"], "binding:host_id": "c1"})).await.unwrap();
    assert_eq!(refused["port"]["binding:vif_type"], "binding_failed", "no binding to an agent set down");
    let (status, _, _) = error_of(s.api.put(&format!("/v2.0/agents/{id}"), json!({"agent": {"host": "other"}})).await);
    assert_eq!(status, 400, "only admin_state_up and description change");

    s.api.delete(&format!("/v2.0/agents/{id}")).await.unwrap();
    let (status, kind, _) = error_of(s.api.get(&format!("/v2.0/agents/{id}")).await);
    assert_eq!((status, kind.as_str()), (404, "AgentNotFound"));
});

// An agent given several `server_url`s moves past one that cannot be reached: its next
// registration and its stream go to the next.
on_both_backends!(agent_client_moves_to_the_next_server, default_config(), |s: TestServer| async move {
    let dead = neutrino_lab::ha::free_port().unwrap();
    let client = neutrino_agent::client::ServerClient::new(&format!("http://127.0.0.1:{dead}/, {}", s.base));
    let registration: neutrino_api::agent::AgentRegistration =
        serde_json::from_value(lb_agent("h1", "192.0.2.11")).unwrap();
    assert!(client.register(&registration, true).await.is_err(), "the first server is down");
    client.register(&registration, true).await.expect("the next server takes the registration");
    let agents = s.api.get("/v2.0/agents?host=h1").await.unwrap();
    assert_eq!(agents["agents"].as_array().unwrap().len(), 1);

    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let follower = {
        let client = client.clone();
        tokio::spawn(async move { client.follow("h1", None, &tx).await })
    };
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv()).await.expect("a message");
    assert!(matches!(first, Some(neutrino_api::agent::StreamMessage::Snapshot { .. })), "{first:?}");
    follower.abort();
});
