//! API tests: security groups.

use super::*;

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
    let member = s.api.acting_as(default["project_id"].as_str().unwrap(), "member,reader");
    let (status, kind, _) = error_of(member.delete(&format!("/v2.0/security-groups/{default_id}")).await);
    assert_eq!((status, kind.as_str()), (409, "SecurityGroupCannotRemoveDefault"));
    // An admin may delete it (Tempest cleans projects up so); the project gets a new one.
    s.api.delete(&format!("/v2.0/security-groups/{default_id}")).await.unwrap();
    let groups = s.api.get("/v2.0/security-groups?name=default").await.unwrap();
    let recreated = groups["security_groups"][0]["id"].as_str().unwrap().to_string();
    assert_ne!(recreated, default_id);
    let default_id = recreated;

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
            "SecurityGroupMultipleRemoteEntites",
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
        (json!({"security_group_id": web_id, "direction": "sideways"}), 400, "HTTPBadRequest"),
        (
            json!({"security_group_id": "00000000-0000-0000-0000-000000000000", "direction": "ingress"}),
            404,
            "SecurityGroupNotFound",
        ),
        // Remote ids have no validator in Neutron: one that is not an id is not found either.
        (
            json!({"security_group_id": web_id, "direction": "ingress", "remote_group_id": "bad_group_id"}),
            404,
            "SecurityGroupNotFound",
        ),
        (json!({"security_group_id": "bad_group_id", "direction": "ingress"}), 404, "SecurityGroupNotFound"),
    ] {
        let (got_status, got_kind, message) = error_of(rule(body.clone()).await);
        assert_eq!((got_status, got_kind.as_str()), (status, kind), "{body}: {message}");
    }

    // A bulk create is of one group and one project, without repeats (Neutron's native bulk).
    let bulk = |rules: Vec<Value>| s.api.post("/v2.0/security-group-rules", json!({"security_group_rules": rules}));
    let r80 = json!({"security_group_rule": {"security_group_id": web_id, "direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80}});
    let r80_by_number = json!({"security_group_rule": {"security_group_id": web_id, "direction": "ingress", "protocol": "6", "port_range_min": 80, "port_range_max": 80}});
    let (status, kind, _) = error_of(bulk(vec![r80.clone(), r80_by_number]).await);
    assert_eq!((status, kind.as_str()), (409, "DuplicateSecurityGroupRuleInPost"));
    let other_group = s.api.post("/v2.0/security-groups", json!({"security_group": {"name": "other"}})).await.unwrap();
    let other_id = other_group["security_group"]["id"].as_str().unwrap().to_string();
    let elsewhere = json!({"security_group_rule": {"security_group_id": other_id, "direction": "ingress"}});
    let (status, kind, _) = error_of(bulk(vec![r80, elsewhere]).await);
    assert_eq!((status, kind.as_str()), (400, "SecurityGroupNotSingleGroupRules"));

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

on_both_backends!(address_groups_behave_like_neutron, default_config(), |s: TestServer| async move {
    let created = s
        .api
        .post(
            "/v2.0/address-groups",
            json!({"address_group": {"name": "office", "addresses": ["192.0.2.7/32", "198.51.100.0/24", "198.51.100.9/24"]}}),
        )
        .await
        .unwrap()["address_group"]
        .clone();
    let id = created["id"].as_str().unwrap().to_string();
    let bare = json!({"address_group": {"name": "bare", "addresses": ["192.0.2.8"]}});
    let (status, _, message) = error_of(s.api.post("/v2.0/address-groups", bare).await);
    assert_eq!(status, 400, "a create takes CIDRs only: {message}");
    assert_eq!(message, "Invalid input for addresses. Reason: '192.0.2.8' is not a valid IP subnet.");
    let twice = json!({"address_group": {"name": "twice", "addresses": ["192.0.2.1/32", "192.0.2.1/32"]}});
    let (_, kind, message) = error_of(s.api.post("/v2.0/address-groups", twice).await);
    assert_eq!(
        (kind.as_str(), message.as_str()),
        ("HTTPBadRequest", "Invalid input for addresses. Reason: Duplicate items in the list: '192.0.2.1/32'.")
    );
    assert_eq!(created["addresses"], json!(["192.0.2.7/32", "198.51.100.0/24"]), "normalized, duplicates merged");
    assert_eq!(created["description"], "");
    let path = format!("/v2.0/address-groups/{id}");
    let added = s.api.put(&format!("{path}/add_addresses"), json!({"addresses": ["2001:db8::/64"]})).await.unwrap();
    assert_eq!(added["address_group"]["addresses"].as_array().unwrap().len(), 3);
    let (status, kind, message) =
        error_of(s.api.put(&format!("{path}/add_addresses"), json!({"addresses": ["192.0.2.7"]})).await);
    assert_eq!((status, kind.as_str()), (400, "AddressesAlreadyExist"), "{message}");
    assert!(message.contains("'192.0.2.7/32'"), "{message}");
    let (status, kind, _) =
        error_of(s.api.put(&format!("{path}/remove_addresses"), json!({"addresses": ["203.0.113.0/24"]})).await);
    assert_eq!((status, kind.as_str()), (404, "AddressesNotFound"));
    // The actions take a bare address as its host prefix.
    let removed = s.api.put(&format!("{path}/remove_addresses"), json!({"addresses": ["192.0.2.7"]})).await.unwrap();
    assert_eq!(removed["address_group"]["addresses"], json!(["198.51.100.0/24", "2001:db8::/64"]));
    let renamed = s.api.put(&path, json!({"address_group": {"name": "office-2"}})).await.unwrap();
    assert_eq!(renamed["address_group"]["name"], "office-2");
    let (status, _, _) = error_of(s.api.put(&path, json!({"address_group": {"addresses": []}})).await);
    assert_eq!(status, 400, "addresses change only through the actions");
    let listed = s.api.get("/v2.0/address-groups?name=office-2").await.unwrap();
    assert_eq!(listed["address_groups"].as_array().unwrap().len(), 1);

    // A rule names it; then it cannot go. Only one remote of the three kinds per rule.
    let group = s.api.post("/v2.0/security-groups", json!({"security_group": {"name": "ag"}})).await.unwrap();
    let group_id = group["security_group"]["id"].as_str().unwrap().to_string();
    let rule = json!({"security_group_rule": {"security_group_id": group_id, "direction": "ingress",
        "remote_address_group_id": id}});
    let rule = s.api.post("/v2.0/security-group-rules", rule).await.unwrap();
    assert_eq!(rule["security_group_rule"]["remote_address_group_id"], json!(id));
    let both = json!({"security_group_rule": {"security_group_id": group_id, "direction": "ingress",
        "remote_address_group_id": id, "remote_ip_prefix": "192.0.2.0/24"}});
    let (status, kind, _) = error_of(s.api.post("/v2.0/security-group-rules", both).await);
    assert_eq!((status, kind.as_str()), (400, "SecurityGroupMultipleRemoteEntites"));
    let missing = json!({"security_group_rule": {"security_group_id": group_id, "direction": "egress",
        "remote_address_group_id": "9b9a8a3e-0000-4000-8000-000000000000"}});
    let (status, kind, _) = error_of(s.api.post("/v2.0/security-group-rules", missing).await);
    assert_eq!((status, kind.as_str()), (404, "AddressGroupNotFound"));
    let (status, kind, _) = error_of(s.api.delete(&path).await);
    assert_eq!((status, kind.as_str()), (409, "AddressGroupInUse"));
    let rule_id = rule["security_group_rule"]["id"].as_str().unwrap();
    s.api.delete(&format!("/v2.0/security-group-rules/{rule_id}")).await.unwrap();
    s.api.delete(&path).await.unwrap();
    let (status, kind, _) = error_of(s.api.get(&path).await);
    assert_eq!((status, kind.as_str()), (404, "AddressGroupNotFound"));
    let extensions = s.api.get("/v2.0/extensions").await.unwrap();
    let aliases: Vec<&str> =
        extensions["extensions"].as_array().unwrap().iter().filter_map(|e| e["alias"].as_str()).collect();
    for alias in ["address-group", "security-groups-remote-address-group", "security-groups-normalized-cidr"] {
        assert!(aliases.contains(&alias), "{alias} is listed");
    }
});

on_both_backends!(
    default_security_group_rules_are_the_templates_of_new_groups,
    default_config(),
    |s: TestServer| async move {
        let listed = s.api.get("/v2.0/default-security-group-rules").await.unwrap();
        let legacy = listed["default_security_group_rules"].as_array().unwrap().clone();
        assert_eq!(legacy.len(), 4, "Neutron's legacy templates: {legacy:?}");
        assert_eq!(
            legacy.iter().filter(|r| r["remote_group_id"] == "PARENT" && r["used_in_non_default_sg"] == false).count(),
            2
        );
        let template = |body: Value| {
            let api = s.api.clone();
            async move {
                api.post("/v2.0/default-security-group-rules", json!({ "default_security_group_rule": body })).await
            }
        };
        let http = json!({"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 8080,
        "port_range_max": 8080, "used_in_default_sg": false, "used_in_non_default_sg": true});
        let created = template(http.clone()).await.unwrap()["default_security_group_rule"].clone();
        assert_eq!(created["remote_address_group_id"], Value::Null);
        // The same rule for the groups it already applies to is a conflict; for the others it is not.
        let (status, kind, _) = error_of(template(json!({"used_in_default_sg": true, "used_in_non_default_sg": true, "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 8080, "port_range_max": 8080})).await);
        assert_eq!((status, kind.as_str()), (409, "DefaultSecurityGroupRuleExists"));
        let mut for_default = http.clone();
        for_default["used_in_default_sg"] = json!(true);
        for_default["used_in_non_default_sg"] = json!(false);
        template(for_default).await.unwrap();
        // A new group starts with the templates of non-default groups, the new project's default
        // group with those of default groups (PARENT being itself).
        let group = s.api.post("/v2.0/security-groups", json!({"security_group": {"name": "web"}})).await.unwrap();
        let rules = group["security_group"]["security_group_rules"].as_array().unwrap().clone();
        assert_eq!(rules.len(), 3, "{rules:?}");
        assert!(rules.iter().any(|r| r["port_range_min"] == 8080));
        let other = s.api.acting_as("c0ffee00c0ffee00c0ffee00c0ffee00", "member,reader");
        let groups = other.get("/v2.0/security-groups?name=default").await.unwrap();
        let default = groups["security_groups"][0].clone();
        let default_rules = default["security_group_rules"].as_array().unwrap();
        assert_eq!(default_rules.len(), 5, "{default_rules:?}");
        assert_eq!(default_rules.iter().filter(|r| r["remote_group_id"] == default["id"]).count(), 2);
        // Only admins write templates; anyone reads them.
        let (status, kind, _) = error_of(
            other.post("/v2.0/default-security-group-rules", json!({"default_security_group_rule": http})).await,
        );
        assert_eq!((status, kind.as_str()), (403, "PolicyNotAuthorized"));
        let id = created["id"].as_str().unwrap();
        let path = format!("/v2.0/default-security-group-rules/{id}");
        other.get(&path).await.unwrap();
        let (status, _, _) = error_of(other.delete(&path).await);
        assert_eq!(status, 403);
        s.api.delete(&path).await.unwrap();
        let (status, kind, _) = error_of(s.api.get(&path).await);
        assert_eq!((status, kind.as_str()), (404, "DefaultSecurityGroupRuleNotFound"));
    }
);

on_both_backends!(security_groups_are_shared_through_rbac, default_config(), |s: TestServer| async move {
    let (a, b, c) =
        ("aaaa0000aaaa0000aaaa0000aaaa0000", "bbbb0000bbbb0000bbbb0000bbbb0000", "cccc0000cccc0000cccc0000cccc0000");
    let (owner, user, stranger) =
        (s.api.acting_as(a, "member,reader"), s.api.acting_as(b, "member,reader"), s.api.acting_as(c, "member,reader"));
    let group = owner.post("/v2.0/security-groups", json!({"security_group": {"name": "shared-web"}})).await.unwrap();
    let group_id = group["security_group"]["id"].as_str().unwrap().to_string();
    let group_path = format!("/v2.0/security-groups/{group_id}");
    let (status, _, _) = error_of(user.get(&group_path).await);
    assert_eq!(status, 404, "not shared yet");
    let policy = json!({"rbac_policy": {"object_type": "security_group", "object_id": group_id,
        "action": "access_as_shared", "target_tenant": b}});
    let policy = owner.post("/v2.0/rbac-policies", policy).await.unwrap();
    let policy_id = policy["rbac_policy"]["id"].as_str().unwrap().to_string();
    let seen = user.get(&group_path).await.unwrap();
    assert_eq!(seen["security_group"]["shared"], true, "shared with b");
    let listed = user.get("/v2.0/security-groups").await.unwrap();
    assert!(listed["security_groups"].as_array().unwrap().iter().any(|g| g["id"] == json!(group_id)));
    assert!(stranger.get(&group_path).await.is_err(), "not shared with c");
    let share_again = json!({"rbac_policy": {"object_type": "security_group", "object_id": group_id,
        "action": "access_as_shared", "target_tenant": c}});
    let (status, _, _) = error_of(stranger.post("/v2.0/rbac-policies", share_again).await);
    assert_eq!(status, 404, "c cannot share a group it does not see");
    let (status, _, _) = error_of(
        owner
            .post(
                "/v2.0/rbac-policies",
                json!({"rbac_policy": {"object_type": "security_group",
        "object_id": group_id, "action": "access_as_external", "target_tenant": c}}),
            )
            .await,
    );
    assert_eq!(status, 400, "security groups are shared, not external");

    // b uses it on a port of its own; then the policy cannot go.
    let net = user.post("/v2.0/networks", json!({"network": {"name": "b-net"}})).await.unwrap();
    let net_id = net["network"]["id"].as_str().unwrap().to_string();
    let port =
        user.post("/v2.0/ports", json!({"port": {"network_id": net_id, "security_groups": [group_id]}})).await.unwrap();
    let port_id = port["port"]["id"].as_str().unwrap().to_string();
    let policy_path = format!("/v2.0/rbac-policies/{policy_id}");
    let (status, kind, _) = error_of(owner.delete(&policy_path).await);
    assert_eq!((status, kind.as_str()), (409, "RbacPolicyInUse"));
    user.delete(&format!("/v2.0/ports/{port_id}")).await.unwrap();
    owner.delete(&policy_path).await.unwrap();
    let (status, _, _) = error_of(user.get(&group_path).await);
    assert_eq!(status, 404, "no longer shared");
    let (status, _, _) = error_of(
        user.post("/v2.0/ports", json!({"port": {"network_id": net_id, "security_groups": [group_id]}})).await,
    );
    assert_eq!(status, 404, "a group not shared cannot be used");

    // Another project's address group cannot be named in a rule.
    let ag = owner
        .post("/v2.0/address-groups", json!({"address_group": {"name": "a-only", "addresses": ["192.0.2.0/28"]}}))
        .await
        .unwrap();
    let ag_id = ag["address_group"]["id"].as_str().unwrap().to_string();
    let b_group = user.post("/v2.0/security-groups", json!({"security_group": {"name": "b"}})).await.unwrap();
    let b_group = b_group["security_group"]["id"].as_str().unwrap().to_string();
    let rule = json!({"security_group_rule": {"security_group_id": b_group, "direction": "ingress", "remote_address_group_id": ag_id}});
    let (status, _, _) = error_of(user.post("/v2.0/security-group-rules", rule).await);
    assert_eq!(status, 404, "b does not see a's address group");
    // A group's policies go with it.
    let policy = json!({"rbac_policy": {"object_type": "security_group", "object_id": group_id,
        "action": "access_as_shared", "target_tenant": "*"}});
    // (Sharing with everyone is for admins.)
    s.api.post("/v2.0/rbac-policies", policy).await.unwrap();
    let mine = owner.get(&group_path).await.unwrap();
    assert_eq!(mine["security_group"]["shared"], true, "shared with everyone is shared for its owner too");
    owner.delete(&group_path).await.unwrap();
    let left = s.api.get(&format!("/v2.0/rbac-policies?object_id={group_id}")).await.unwrap();
    assert!(left["rbac_policies"].as_array().unwrap().is_empty(), "{left}");
});
