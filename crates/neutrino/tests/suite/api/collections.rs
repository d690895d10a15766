//! API tests: collections.

use super::*;

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
    // (The networks' DHCP ports aside.)
    assert_eq!(s.api.get("/v2.0/ports?device_owner=").await.unwrap()["ports"], json!([]));
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
