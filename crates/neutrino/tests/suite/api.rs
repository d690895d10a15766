//! The REST API on both backends: shapes, defaults, validation, errors and races.

use crate::common::{default_config, error_of, TestServer};
use crate::on_both_backends;
use neutrino_domain::segments::TypeDriverConfig;
use neutrino_server::ServerConfig;
use serde_json::{json, Value};
use std::collections::HashSet;

async fn network_with_subnet(s: &TestServer, cidr: &str) -> (String, String) {
    let net = s.api.create_network("n").await.unwrap();
    let net_id = net["id"].as_str().unwrap().to_string();
    let subnet = s.api.create_subnet(&net_id, cidr).await.unwrap();
    (net_id, subnet["id"].as_str().unwrap().to_string())
}

async fn post_port(s: &TestServer, body: Value) -> Result<Value, neutrino_lab::ApiError> {
    s.api.post("/v2.0/ports", json!({ "port": body })).await
}

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
            "InvalidInput",
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

on_both_backends!(ports_get_addresses_macs_and_bindings, default_config(), |s: TestServer| async move {
    let (net_id, subnet_id) = network_with_subnet(&s, "198.51.100.0/29").await;
    // A /29 has five addresses in its pool (.2 - .6).
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
    for _ in 0..4 {
        let p = post_port(&s, json!({"network_id": net_id})).await.unwrap()["port"].clone();
        let ip = p["fixed_ips"][0]["ip_address"].as_str().unwrap().to_string();
        assert!(["198.51.100.2", "198.51.100.3", "198.51.100.5", "198.51.100.6"].contains(&ip.as_str()), "{ip}");
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
    s.api
        .post(
            "/v2.0/neutrino/agents",
            json!({"host": "compute1", "agent_type": "Linux bridge agent", "tunnel_ip": "192.0.2.11"}),
        )
        .await
        .unwrap();
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

fn small_vni_range() -> ServerConfig {
    ServerConfig {
        type_drivers: TypeDriverConfig { vni_ranges: vec![(100, 109)], ..TypeDriverConfig::default() },
        ..default_config()
    }
}

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
    assert_eq!(listed["ports"].as_array().unwrap().len(), 209);
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
    assert_eq!((seen_ids.len(), pages), (209, 3));
});

on_both_backends!(agent_stream_sends_snapshot_then_updates, default_config(), |s: TestServer| async move {
    s.api
        .post(
            "/v2.0/neutrino/agents",
            json!({"host": "h1", "agent_type": "Linux bridge agent", "tunnel_ip": "192.0.2.11"}),
        )
        .await
        .unwrap();
    s.api
        .post(
            "/v2.0/neutrino/agents",
            json!({"host": "h2", "agent_type": "Linux bridge agent", "tunnel_ip": "192.0.2.12"}),
        )
        .await
        .unwrap();
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

type ByteStream = std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// Newline-delimited JSON messages of the agent stream.
struct Lines {
    body: ByteStream,
    buf: Vec<u8>,
}

impl Lines {
    async fn next(&mut self) -> Value {
        use futures::StreamExt;
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return serde_json::from_slice(&line).unwrap();
            }
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), self.body.next())
                .await
                .expect("a stream message within 5 s")
                .unwrap()
                .unwrap();
            self.buf.extend_from_slice(&chunk);
        }
    }
}

/// Two stateless servers on one PostgreSQL database: a change made through one reaches the
/// agent stream served by the other (LISTEN/NOTIFY), and allocations stay unique across both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_share_state_and_streams() {
    let Some(a) = crate::common::start(crate::common::Backend::Postgres, default_config()).await else {
        return;
    };
    let b = crate::common::second_server(&a).await;
    for (s, host, ip) in [(&a, "h1", "192.0.2.11"), (&b, "h2", "192.0.2.12")] {
        s.api
            .post("/v2.0/neutrino/agents", json!({"host": host, "agent_type": "Linux bridge agent", "tunnel_ip": ip}))
            .await
            .unwrap();
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

on_both_backends!(lists_sort_and_page_in_the_database, default_config(), |s: TestServer| async move {
    let names = ["delta", "alpha", "echo", "charlie", "bravo", "golf", "foxtrot"];
    for (i, n) in names.iter().enumerate() {
        s.api.post("/v2.0/networks", json!({"network": {"name": n, "admin_state_up": i % 2 == 0}})).await.unwrap();
    }
    let names_of = |v: &Value| -> Vec<String> {
        v["networks"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap().to_string()).collect()
    };
    let desc = s.api.get("/v2.0/networks?sort_key=name&sort_dir=desc&fields=name").await.unwrap();
    assert_eq!(names_of(&desc), ["golf", "foxtrot", "echo", "delta", "charlie", "bravo", "alpha"]);
    let two_keys = s
        .api
        .get("/v2.0/networks?sort_key=admin_state_up&sort_dir=asc&sort_key=name&sort_dir=asc&fields=name")
        .await
        .unwrap();
    assert_eq!(names_of(&two_keys), ["alpha", "charlie", "golf", "bravo", "delta", "echo", "foxtrot"]);

    // Forward through pages of 3 by name, following `next`; then back with `previous`.
    let mut url = format!("{}/v2.0/networks?sort_key=name&sort_dir=asc&limit=3", s.base);
    let mut seen = Vec::new();
    let last_page = loop {
        let page: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        seen.extend(names_of(&page));
        let next = page["networks_links"].as_array().and_then(|l| l.iter().find(|l| l["rel"] == "next")).cloned();
        match next {
            Some(link) => url = link["href"].as_str().unwrap().to_string(),
            None => break page,
        }
    };
    assert_eq!(seen, ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf"]);
    let previous = last_page["networks_links"].as_array().unwrap().iter().find(|l| l["rel"] == "previous").unwrap();
    let page: Value = reqwest::get(previous["href"].as_str().unwrap()).await.unwrap().json().await.unwrap();
    assert_eq!(names_of(&page), ["delta", "echo", "foxtrot"]);

    for bad in [
        "sort_key=name",
        "sort_key=name&sort_dir=up",
        "sort_key=nope&sort_dir=asc",
        "sort_key=provider:segmentation_id&sort_dir=asc",
    ] {
        let (status, _, message) = error_of(s.api.get(&format!("/v2.0/networks?{bad}")).await);
        assert_eq!(status, 400, "{bad}: {message}");
    }
    let ports = s.api.get("/v2.0/ports?sort_key=mac_address&sort_dir=desc").await.unwrap();
    assert_eq!(ports["ports"], json!([]));
});

on_both_backends!(bulk_create_is_all_or_nothing, default_config(), |s: TestServer| async move {
    let nets = s
        .api
        .post("/v2.0/networks", json!({"networks": [{"name": "b1"}, {"name": "b2"}, {"name": "b3"}]}))
        .await
        .unwrap();
    let list = nets["networks"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    let vnis: HashSet<_> = list.iter().map(|n| n["provider:segmentation_id"].as_u64().unwrap()).collect();
    assert_eq!(vnis.len(), 3);
    let net_id = list[0]["id"].as_str().unwrap();
    s.api
        .post(
            "/v2.0/subnets",
            json!({"subnets": [
            {"network_id": net_id, "ip_version": 4, "cidr": "198.51.100.0/24"},
            {"network_id": list[1]["id"], "ip_version": 4, "cidr": "198.51.100.0/24"}]}),
        )
        .await
        .unwrap();

    // The second port asks for the address the first one takes: nothing is created.
    let (status, kind, _) = error_of(
        s.api
            .post(
                "/v2.0/ports",
                json!({"ports": [
                {"network_id": net_id, "fixed_ips": [{"ip_address": "198.51.100.9"}]},
                {"network_id": net_id, "fixed_ips": [{"ip_address": "198.51.100.9"}]}]}),
            )
            .await,
    );
    assert_eq!((status, kind.as_str()), (409, "IpAddressAlreadyAllocated"));
    assert_eq!(s.api.get("/v2.0/ports").await.unwrap()["ports"], json!([]));
    let (status, _, _) =
        error_of(s.api.post("/v2.0/networks", json!({"networks": [{"name": "ok"}, {"bogus": 1}]})).await);
    assert_eq!(status, 400);
    assert_eq!(s.api.get("/v2.0/networks").await.unwrap()["networks"].as_array().unwrap().len(), 3);

    let ports = s
        .api
        .post("/v2.0/ports", json!({"ports": [{"network_id": net_id}, {"network_id": net_id, "name": "two"}]}))
        .await
        .unwrap();
    assert_eq!(ports["ports"].as_array().unwrap().len(), 2);
    assert_eq!(ports["ports"][1]["name"], "two");
});

on_both_backends!(tags_are_set_listed_filtered_and_removed, default_config(), |s: TestServer| async move {
    let red = s.api.post("/v2.0/networks", json!({"network": {"name": "red", "tags": ["prod", "eu"]}})).await.unwrap();
    assert_eq!(red["network"]["tags"], json!(["eu", "prod"]));
    let red_id = red["network"]["id"].as_str().unwrap().to_string();
    let blue = s.api.create_network("blue").await.unwrap();
    let blue_id = blue["id"].as_str().unwrap().to_string();

    // PUT one, PUT all, GET, DELETE one, DELETE all; each change moves the revision.
    let client = reqwest::Client::new();
    let put = client.put(format!("{}/v2.0/networks/{blue_id}/tags/prod", s.base)).send().await.unwrap();
    assert_eq!(put.status(), 201);
    let shown = s.api.get(&format!("/v2.0/networks/{blue_id}")).await.unwrap();
    assert_eq!(shown["network"]["tags"], json!(["prod"]));
    assert_eq!(shown["network"]["revision_number"], 2);
    let all =
        s.api.put(&format!("/v2.0/networks/{blue_id}/tags"), json!({"tags": ["us", "prod", "us"]})).await.unwrap();
    assert_eq!(all, json!({"tags": ["prod", "us"]}));
    assert_eq!(s.api.get(&format!("/v2.0/networks/{blue_id}/tags")).await.unwrap(), json!({"tags": ["prod", "us"]}));
    let check = client.get(format!("{}/v2.0/networks/{blue_id}/tags/us", s.base)).send().await.unwrap();
    assert_eq!(check.status(), 204);

    let names = |v: Value| -> Vec<String> {
        let mut n: Vec<String> =
            v["networks"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap().to_string()).collect();
        n.sort();
        n
    };
    assert_eq!(names(s.api.get("/v2.0/networks?tags=prod").await.unwrap()), ["blue", "red"]);
    assert_eq!(names(s.api.get("/v2.0/networks?tags=prod,eu").await.unwrap()), ["red"]);
    assert_eq!(names(s.api.get("/v2.0/networks?tags-any=eu,us").await.unwrap()), ["blue", "red"]);
    assert_eq!(names(s.api.get("/v2.0/networks?not-tags=prod,eu").await.unwrap()), ["blue"]);
    assert_eq!(names(s.api.get("/v2.0/networks?not-tags-any=us").await.unwrap()), ["red"]);

    s.api.delete(&format!("/v2.0/networks/{blue_id}/tags/us")).await.unwrap();
    let (status, kind, _) = error_of(s.api.delete(&format!("/v2.0/networks/{blue_id}/tags/us")).await);
    assert_eq!((status, kind.as_str()), (404, "TagNotFound"));
    s.api.delete(&format!("/v2.0/networks/{red_id}/tags")).await.unwrap();
    assert_eq!(s.api.get(&format!("/v2.0/networks/{red_id}/tags")).await.unwrap(), json!({"tags": []}));
    let (status, kind, _) = error_of(s.api.get("/v2.0/networks/00000000-0000-0000-0000-000000000000/tags").await);
    assert_eq!((status, kind.as_str()), (404, "NetworkNotFound"));

    // Ports: tags on create, on the sub-resource, in lists (rendered bodies) and filters.
    let port = s.api.post("/v2.0/ports", json!({"port": {"network_id": red_id, "tags": ["web"]}})).await.unwrap();
    let port_id = port["port"]["id"].as_str().unwrap().to_string();
    assert_eq!(port["port"]["tags"], json!(["web"]));
    s.api.put(&format!("/v2.0/ports/{port_id}/tags"), json!({"tags": ["db"]})).await.unwrap();
    let listed = s.api.get("/v2.0/ports?tags=db").await.unwrap();
    assert_eq!(listed["ports"][0]["tags"], json!(["db"]));
    assert_eq!(listed["ports"][0], s.api.port(&port_id).await.unwrap());
    assert_eq!(s.api.get("/v2.0/ports?tags=web").await.unwrap()["ports"], json!([]));
    let (status, _, _) = error_of(s.api.get(&format!("/v2.0/routers/{port_id}/tags")).await);
    assert_eq!(status, 404);
});

on_both_backends!(security_groups_and_rules_behave_like_neutron, default_config(), |s: TestServer| async move {
    // The project's default group appears on first look, with Neutron's four rules.
    let groups = s.api.get("/v2.0/security-groups").await.unwrap();
    let default =
        groups["security_groups"].as_array().unwrap().iter().find(|g| g["name"] == "default").unwrap().clone();
    let default_id = default["id"].as_str().unwrap().to_string();
    let rules = default["security_group_rules"].as_array().unwrap();
    assert_eq!(rules.len(), 4);
    assert_eq!(rules.iter().filter(|r| r["remote_group_id"] == default["id"]).count(), 2);
    assert!(rules.iter().all(|r| r["belongs_to_default_sg"] == true));
    let again = s.api.get("/v2.0/security-groups?name=default").await.unwrap();
    assert_eq!(again["security_groups"].as_array().unwrap().len(), 1, "only one default group");
    let (status, kind, _) = error_of(s.api.delete(&format!("/v2.0/security-groups/{default_id}")).await);
    assert_eq!((status, kind.as_str()), (409, "SecurityGroupCannotRemoveDefault"));

    let web = s.api.post("/v2.0/security-groups", json!({"security_group": {"name": "web"}})).await.unwrap()
        ["security_group"]
        .clone();
    let web_id = web["id"].as_str().unwrap().to_string();
    assert_eq!(web["security_group_rules"].as_array().unwrap().len(), 2);
    assert_eq!(web["stateful"], true);

    let rule = |body: Value| {
        let api = s.api.clone();
        async move { api.post("/v2.0/security-group-rules", json!({ "security_group_rule": body })).await }
    };
    let ssh = rule(json!({"security_group_id": web_id, "direction": "ingress", "protocol": "tcp",
        "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "203.0.113.7/24"}))
    .await
    .unwrap()["security_group_rule"]
        .clone();
    assert_eq!(ssh["normalized_cidr"], "203.0.113.0/24");
    assert_eq!(ssh["ethertype"], "IPv4");
    let (status, kind, message) = error_of(
        rule(json!({"security_group_id": web_id, "direction": "ingress", "protocol": "6",
            "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "203.0.113.0/24"}))
        .await,
    );
    assert_eq!((status, kind.as_str()), (409, "SecurityGroupRuleExists"));
    assert_eq!(message, format!("Security group rule already exists. Rule id is {}.", ssh["id"].as_str().unwrap()));
    for (body, status, kind) in [
        (
            json!({"security_group_id": web_id, "direction": "ingress", "remote_ip_prefix": "0.0.0.0/0", "remote_group_id": web_id}),
            400,
            "SecurityGroupRemoteGroupAndRemoteIpPrefix",
        ),
        (
            json!({"security_group_id": web_id, "direction": "ingress", "protocol": "bogus"}),
            400,
            "SecurityGroupRuleInvalidProtocol",
        ),
        (
            json!({"security_group_id": web_id, "direction": "ingress", "protocol": "tcp", "port_range_min": 90, "port_range_max": 80}),
            400,
            "SecurityGroupInvalidPortRange",
        ),
        (json!({"security_group_id": web_id, "direction": "sideways"}), 400, "InvalidInput"),
        (
            json!({"security_group_id": "00000000-0000-0000-0000-000000000000", "direction": "ingress"}),
            404,
            "SecurityGroupNotFound",
        ),
    ] {
        let (got_status, got_kind, message) = error_of(rule(body.clone()).await);
        assert_eq!((got_status, got_kind.as_str()), (status, kind), "{body}: {message}");
    }

    // Sixteen different rules at once never fail; sixteen identical ones make exactly one.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let api = s.api.clone();
        let web_id = web_id.clone();
        tasks.push(tokio::spawn(async move {
            api.post(
                "/v2.0/security-group-rules",
                json!({"security_group_rule": {"security_group_id": web_id,
                "direction": "ingress", "protocol": "tcp", "port_range_min": 8000 + i, "port_range_max": 8000 + i}}),
            )
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap().expect("distinct concurrent rules all succeed");
    }
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let api = s.api.clone();
        let web_id = web_id.clone();
        tasks.push(tokio::spawn(async move {
            api.post(
                "/v2.0/security-group-rules",
                json!({"security_group_rule": {"security_group_id": web_id,
                "direction": "ingress", "protocol": "udp", "port_range_min": 53, "port_range_max": 53}}),
            )
            .await
        }));
    }
    let mut made = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => made += 1,
            Err(e) => assert_eq!(error_of(Err(e)).1, "SecurityGroupRuleExists"),
        }
    }
    assert_eq!(made, 1);
    let listed = s.api.get(&format!("/v2.0/security-group-rules?security_group_id={web_id}")).await.unwrap();
    assert_eq!(listed["security_group_rules"].as_array().unwrap().len(), 2 + 1 + 16 + 1);

    // Ports get the default group; explicit groups; port security rules.
    let net = s.api.create_network("sg-net").await.unwrap();
    let net_id = net["id"].as_str().unwrap();
    let p1 = post_port(&s, json!({"network_id": net_id})).await.unwrap()["port"].clone();
    assert_eq!(p1["security_groups"], json!([default_id]));
    let p2 = post_port(&s, json!({"network_id": net_id, "security_groups": [web_id]})).await.unwrap()["port"].clone();
    assert_eq!(p2["security_groups"], json!([web_id]));
    let (status, kind, _) = error_of(
        post_port(&s, json!({"network_id": net_id, "port_security_enabled": false, "security_groups": [web_id]})).await,
    );
    assert_eq!((status, kind.as_str()), (400, "PortSecurityAndIPRequiredForSecurityGroups"));
    let open =
        post_port(&s, json!({"network_id": net_id, "port_security_enabled": false})).await.unwrap()["port"].clone();
    assert_eq!(open["security_groups"], json!([]));
    assert_eq!(open["port_security_enabled"], false);
    let p2_id = p2["id"].as_str().unwrap();
    let (status, kind, _) =
        error_of(s.api.put(&format!("/v2.0/ports/{p2_id}"), json!({"port": {"port_security_enabled": false}})).await);
    assert_eq!((status, kind.as_str()), (409, "PortSecurityPortHasSecurityGroup"));
    let (status, kind, _) = error_of(s.api.delete(&format!("/v2.0/security-groups/{web_id}")).await);
    assert_eq!((status, kind.as_str()), (409, "SecurityGroupInUse"));
    let cleared = s
        .api
        .put(&format!("/v2.0/ports/{p2_id}"), json!({"port": {"port_security_enabled": false, "security_groups": []}}))
        .await
        .unwrap();
    assert_eq!(cleared["port"]["security_groups"], json!([]));
    assert_eq!(s.api.get(&format!("/v2.0/ports?id={p2_id}")).await.unwrap()["ports"][0], cleared["port"]);

    // Tags, rename, delete.
    s.api.put(&format!("/v2.0/security-groups/{web_id}/tags/public"), json!(null)).await.unwrap();
    let renamed = s
        .api
        .put(&format!("/v2.0/security-groups/{web_id}"), json!({"security_group": {"name": "www"}}))
        .await
        .unwrap();
    assert_eq!(renamed["security_group"]["name"], "www");
    assert_eq!(renamed["security_group"]["tags"], json!(["public"]));
    s.api.delete(&format!("/v2.0/security-group-rules/{}", ssh["id"].as_str().unwrap())).await.unwrap();
    s.api.delete(&format!("/v2.0/security-groups/{web_id}")).await.unwrap();
    let (status, kind, _) = error_of(s.api.get(&format!("/v2.0/security-groups/{web_id}")).await);
    assert_eq!((status, kind.as_str()), (404, "SecurityGroupNotFound"));
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
        assert_eq!((status, kind.as_str()), (400, "AddressScopePrefixConflict"));

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
        let (status, kind, _) = error_of(s.api.delete(&format!("/v2.0/subnetpools/{pool_id}")).await);
        assert_eq!((status, kind.as_str()), (409, "SubnetPoolInUse"));
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

on_both_backends!(availability_zones_come_from_agents, default_config(), |s: TestServer| async move {
    for (host, zone) in [("c1", "az1"), ("c2", "az2")] {
        s.api
            .post(
                "/v2.0/neutrino/agents",
                json!({"host": host, "agent_type": "Linux bridge agent",
                "tunnel_ip": "192.0.2.11", "availability_zone": zone}),
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

fn with_dns() -> ServerConfig {
    ServerConfig { dns_domain: Some("openstacklocal.".into()), ..default_config() }
}

on_both_backends!(dns_integration_names_ports_when_enabled, with_dns(), |s: TestServer| async move {
    let exts = s.api.get("/v2.0/extensions").await.unwrap();
    assert!(exts["extensions"].as_array().unwrap().iter().any(|e| e["alias"] == "dns-integration"));
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

on_both_backends!(agents_can_be_set_down_and_deleted, default_config(), |s: TestServer| async move {
    let reg = s
        .api
        .post(
            "/v2.0/neutrino/agents",
            json!({"host": "c1", "agent_type": "Linux bridge agent", "tunnel_ip": "192.0.2.11"}),
        )
        .await
        .unwrap();
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
