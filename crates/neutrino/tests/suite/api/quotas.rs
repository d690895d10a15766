//! API tests: quotas (limits, defaults, usage) and their enforcement, also under concurrency.

use super::*;

/// Neutron's default limits, as `GET /v2.0/quotas/{project}` shows them.
fn neutron_defaults() -> Value {
    json!({"network": 100, "subnet": 100, "port": 500, "subnetpool": -1, "security_group": 10,
           "security_group_rule": 100, "rbac_policy": 10, "router": 10, "floatingip": 50, "router_route": 30})
}

async fn set_quota(s: &TestServer, project: &str, quota: Value) -> Result<Value, neutrino_lab::ApiError> {
    s.api.put(&format!("/v2.0/quotas/{project}"), json!({ "quota": quota })).await
}

async fn network_in(s: &TestServer, project: &str) -> Result<Value, neutrino_lab::ApiError> {
    s.api.post("/v2.0/networks", json!({"network": {"name": "q", "project_id": project}})).await
}

fn assert_over_quota(r: Result<Value, neutrino_lab::ApiError>, resource: &str) {
    let (status, kind, message) = error_of(r);
    assert_eq!((status, kind.as_str()), (409, "OverQuota"), "{message}");
    assert_eq!(message, format!("Quota exceeded for resources: ['{resource}']."));
}

on_both_backends!(quota_api_shows_changes_and_resets_limits, default_config(), |s: TestServer| async move {
    assert_eq!(s.api.get("/v2.0/quotas").await.unwrap(), json!({"quotas": []}));
    assert_eq!(s.api.get("/v2.0/quotas/p1").await.unwrap(), json!({ "quota": neutron_defaults() }));
    assert_eq!(s.api.get("/v2.0/quotas/p1/default").await.unwrap(), json!({ "quota": neutron_defaults() }));
    assert_eq!(s.api.get("/v2.0/quotas/tenant").await.unwrap(), json!({"tenant": {"tenant_id": "fake_project_id"}}));
    assert_eq!(s.api.get("/v2.0/quotas/project").await.unwrap(), json!({"project": {"project_id": "fake_project_id"}}));
    let aliases: Vec<Value> = s.api.get("/v2.0/extensions").await.unwrap()["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["alias"].clone())
        .collect();
    for alias in ["quotas", "quota_details", "quota-check-limit", "quota-check-limit-default"] {
        assert!(aliases.contains(&json!(alias)), "{alias}");
    }
    let ext = s.api.get("/v2.0/extensions/quotas").await.unwrap();
    assert_eq!(ext["extension"]["description"], "Expose functions for quotas management per project");

    // PUT returns the effective limits; numeric strings are converted, as in Neutron.
    let mut want = neutron_defaults();
    want["network"] = json!(5);
    want["port"] = json!(7);
    assert_eq!(set_quota(&s, "p1", json!({"network": 5, "port": "7"})).await.unwrap(), json!({ "quota": want }));
    assert_eq!(s.api.get("/v2.0/quotas/p1").await.unwrap()["quota"], want);
    assert_eq!(s.api.get("/v2.0/quotas/p1/default").await.unwrap()["quota"], neutron_defaults());
    let mut listed = want.clone();
    listed["project_id"] = json!("p1");
    listed["tenant_id"] = json!("p1");
    assert_eq!(s.api.get("/v2.0/quotas").await.unwrap(), json!({ "quotas": [listed] }));

    // Bad limits and unknown resources are 400s that change nothing.
    for (quota, kind, message) in [
        (
            json!({"network": -2}),
            "HTTPBadRequest",
            "Invalid input for network. Reason: '-2' is too small - must be at least '-1'.",
        ),
        (
            json!({"subnet": 2147483648u64}),
            "HTTPBadRequest",
            "Invalid input for subnet. Reason: '2147483648' is too large - must be no larger than '2147483647'.",
        ),
        (json!({"port": "ten"}), "InvalidInput", "Invalid input for operation: 'ten' is not an integer."),
        (json!({"network": 1.5}), "InvalidInput", "Invalid input for operation: '1.5' is not an integer."),
        (json!({"loadbalancer": 1}), "HTTPBadRequest", "Unrecognized attribute(s) 'loadbalancer'"),
        (
            json!({"network": 3, "force": "maybe"}),
            "InvalidInput",
            "Invalid input for operation: 'maybe' cannot be converted to boolean.",
        ),
    ] {
        let (status, got_kind, got_message) = error_of(set_quota(&s, "p1", quota.clone()).await);
        assert_eq!((status, got_kind.as_str(), got_message.as_str()), (400, kind, message), "{quota}");
    }
    let (status, _, _) = error_of(s.api.put("/v2.0/quotas/p1", json!({"network": 1})).await);
    assert_eq!(status, 400, "the body needs its 'quota' key");
    assert_eq!(s.api.get("/v2.0/quotas/p1").await.unwrap()["quota"], want, "nothing changed");
    let (status, kind, _) = error_of(s.api.post("/v2.0/quotas", json!({"quota": {"network": 1}})).await);
    assert_eq!((status, kind.as_str()), (501, "HTTPNotImplemented"));

    // Details: limit, used (counted) and reserved.
    for _ in 0..2 {
        network_in(&s, "p1").await.unwrap();
    }
    let details = s.api.get("/v2.0/quotas/p1/details").await.unwrap();
    assert_eq!(details["quota"]["network"], json!({"limit": 5, "used": 2, "reserved": 0}));
    assert_eq!(details["quota"]["port"], json!({"limit": 7, "used": 0, "reserved": 0}));
    assert_eq!(details["quota"]["rbac_policy"], json!({"limit": 10, "used": 0, "reserved": 0}));
    assert_eq!(details["quota"].as_object().unwrap().len(), 10);

    // A limit below the usage is refused unless forced (quota-check-limit-default).
    let (status, kind, message) = error_of(set_quota(&s, "p1", json!({"network": 1})).await);
    assert_eq!((status, kind.as_str()), (400, "HTTPBadRequest"));
    assert_eq!(message, "Quota limit 1 for network must be greater than or equal to already used 2");
    let forced = set_quota(&s, "p1", json!({"network": 1, "force": true})).await.unwrap();
    assert_eq!(forced["quota"]["network"], 1);
    assert_over_quota(network_in(&s, "p1").await, "network");

    // DELETE: back to the defaults; a second one finds nothing to delete.
    s.api.delete("/v2.0/quotas/p1").await.unwrap();
    assert_eq!(s.api.get("/v2.0/quotas/p1").await.unwrap()["quota"], neutron_defaults());
    assert_eq!(s.api.get("/v2.0/quotas").await.unwrap(), json!({"quotas": []}));
    let (status, kind, message) = error_of(s.api.delete("/v2.0/quotas/p1").await);
    assert_eq!((status, kind.as_str()), (404, "TenantQuotaNotFound"));
    assert_eq!(message, "Quota for tenant p1 could not be found.");
    network_in(&s, "p1").await.expect("the default limit applies again");
});

on_both_backends!(every_counted_resource_is_refused_past_its_limit, default_config(), |s: TestServer| async move {
    let limits = json!({"network": 1, "subnet": 1, "port": 1, "subnetpool": 1, "security_group": 2});
    set_quota(&s, "q", limits).await.unwrap();

    let net_id = network_in(&s, "q").await.unwrap()["network"]["id"].as_str().unwrap().to_string();
    assert_over_quota(network_in(&s, "q").await, "network");
    network_in(&s, "someone-else").await.expect("limits are per project");

    let subnet =
        // Without DHCP: the network's DHCP port would count as the project's first port.
        |cidr: &str| json!({"subnet": {"network_id": net_id, "ip_version": 4, "cidr": cidr, "project_id": "q", "enable_dhcp": false}});
    s.api.post("/v2.0/subnets", subnet("10.1.0.0/24")).await.unwrap();
    assert_over_quota(s.api.post("/v2.0/subnets", subnet("10.2.0.0/24")).await, "subnet");

    // The first port also makes the project's `default` group and its rules: never refused.
    let port = || json!({"port": {"network_id": net_id, "project_id": "q"}});
    let port_id = s.api.post("/v2.0/ports", port()).await.unwrap()["port"]["id"].as_str().unwrap().to_string();
    assert_over_quota(s.api.post("/v2.0/ports", port()).await, "port");
    // Deleting frees quota at once.
    s.api.delete(&format!("/v2.0/ports/{port_id}")).await.unwrap();
    s.api.post("/v2.0/ports", port()).await.expect("a deleted port's quota is free again");

    let pool =
        |name: &str, prefix: &str| json!({"subnetpool": {"name": name, "prefixes": [prefix], "project_id": "q"}});
    s.api.post("/v2.0/subnetpools", pool("a", "198.18.0.0/16")).await.unwrap();
    assert_over_quota(s.api.post("/v2.0/subnetpools", pool("b", "198.19.0.0/16")).await, "subnetpool");

    // The `default` group counts as used: one more group fits under a limit of 2.
    let group = |name: &str| json!({"security_group": {"name": name, "project_id": "q"}});
    let web = s.api.post("/v2.0/security-groups", group("web")).await.unwrap();
    assert_over_quota(s.api.post("/v2.0/security-groups", group("db")).await, "security_group");

    // Rules: the default group's four and web's two egress rules are used already.
    let details = s.api.get("/v2.0/quotas/q/details").await.unwrap();
    assert_eq!(details["quota"]["security_group"]["used"], 2);
    assert_eq!(details["quota"]["security_group_rule"]["used"], 6);
    set_quota(&s, "q", json!({"security_group_rule": 7})).await.unwrap();
    let rule = |port: u16| {
        json!({"security_group_rule": {"security_group_id": web["security_group"]["id"], "direction": "ingress",
               "protocol": "tcp", "port_range_min": port, "port_range_max": port, "project_id": "q"}})
    };
    s.api.post("/v2.0/security-group-rules", rule(80)).await.unwrap();
    assert_over_quota(s.api.post("/v2.0/security-group-rules", rule(443)).await, "security_group_rule");

    // A bulk create counts every item, and is all or nothing.
    set_quota(&s, "q", json!({"network": 3})).await.unwrap();
    let bulk = |n: usize| json!({"networks": (0..n).map(|i| json!({"name": format!("bulk{i}"), "project_id": "q"})).collect::<Vec<_>>()});
    assert_over_quota(s.api.post("/v2.0/networks", bulk(3)).await, "network");
    let listed = s.api.get("/v2.0/networks?project_id=q&fields=id").await.unwrap();
    assert_eq!(listed["networks"].as_array().unwrap().len(), 1, "nothing of the refused bulk was created");
    s.api.post("/v2.0/networks", bulk(2)).await.unwrap();

    // A project whose group limit is 0 still gets its `default` group, and nothing more.
    set_quota(&s, "z", json!({"security_group": 0, "security_group_rule": 0})).await.unwrap();
    let z_net = network_in(&s, "z").await.unwrap()["network"]["id"].clone();
    s.api.post("/v2.0/ports", json!({"port": {"network_id": z_net, "project_id": "z"}})).await.unwrap();
    let groups = s.api.get("/v2.0/security-groups?project_id=z").await.unwrap();
    assert_eq!(groups["security_groups"][0]["name"], "default");
    let z_group = json!({"security_group": {"name": "extra", "project_id": "z"}});
    assert_over_quota(s.api.post("/v2.0/security-groups", z_group).await, "security_group");
});

/// `clients` concurrent clients each try `tries` creates; returns how many succeeded, and
/// checks every failure is a 409 OverQuota.
async fn race(clients: Vec<neutrino_lab::ApiClient>, tries: usize, path: &'static str, body: Value) -> usize {
    let mut tasks = Vec::new();
    for api in clients {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut made = 0;
            for _ in 0..tries {
                match api.post(path, body.clone()).await {
                    Ok(_) => made += 1,
                    Err(e) => assert_eq!(error_of(Err(e)).1, "OverQuota"),
                }
            }
            made
        }));
    }
    let mut made = 0;
    for t in tasks {
        made += t.await.unwrap();
    }
    made
}

async fn count(s: &TestServer, collection: &str, project: &str) -> usize {
    let listed = s.api.get(&format!("/v2.0/{collection}?project_id={project}&fields=id")).await.unwrap();
    listed[collection].as_array().unwrap().len()
}

on_both_backends!(concurrent_creates_never_pass_the_limit, default_config(), |s: TestServer| async move {
    set_quota(&s, "c", json!({"network": 10, "port": 10})).await.unwrap();
    let clients = || (0..16).map(|_| s.api.clone()).collect::<Vec<_>>();
    let made = race(clients(), 2, "/v2.0/networks", json!({"network": {"name": "race", "project_id": "c"}})).await;
    assert_eq!(made, 10);
    assert_eq!(count(&s, "networks", "c").await, 10, "never more than the limit");

    let net_id = s.api.create_network("ports").await.unwrap()["id"].clone();
    s.api.create_subnet(net_id.as_str().unwrap(), "10.9.0.0/24").await.unwrap();
    let made = race(clients(), 2, "/v2.0/ports", json!({"port": {"network_id": net_id, "project_id": "c"}})).await;
    assert_eq!(made, 10);
    assert_eq!(count(&s, "ports", "c").await, 10, "never more than the limit");
});

/// Several servers on one PostgreSQL database share each project's limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (NEUTRINO_TEST_PG); scripts/test runs it"]
async fn two_servers_never_pass_one_limit() {
    let Some(a) = crate::common::start(crate::common::Backend::Postgres, default_config()).await else {
        return;
    };
    let b = crate::common::second_server(&a).await;
    set_quota(&a, "ha", json!({"network": 10})).await.unwrap();
    let clients = (0..16).map(|c| if c % 2 == 0 { a.api.clone() } else { b.api.clone() }).collect();
    let made = race(clients, 2, "/v2.0/networks", json!({"network": {"name": "ha", "project_id": "ha"}})).await;
    assert_eq!(made, 10);
    assert_eq!(count(&a, "networks", "ha").await, 10);
    assert_eq!(b.api.get("/v2.0/quotas/ha/details").await.unwrap()["quota"]["network"]["used"], 10);
}
