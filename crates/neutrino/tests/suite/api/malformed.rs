//! Bad input of every shape the HTTP layer can meet: malformed JSON, bodies over
//! `[oslo_middleware] max_request_body_size`, deep nesting, invalid UTF-8 in bodies, paths and
//! queries, huge query strings. Each gets a 4xx with a `NeutronError` body, and nothing is
//! made of it.

use super::*;

/// Send raw bytes; the status and the body parsed as JSON (panics when it is not JSON).
async fn send(s: &TestServer, method: reqwest::Method, path: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .request(method, format!("{}{path}", s.base))
        .header("X-Project-Id", "admin")
        .header("X-Roles", "admin,member,reader")
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("a reply");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {status} {text:?} is not JSON: {e}"));
    (status, body)
}

fn kind(body: &Value) -> &str {
    body["NeutronError"]["type"].as_str().unwrap_or_else(|| panic!("no NeutronError in {body}"))
}

on_both_backends!(bad_input_is_refused_cleanly, default_config(), |s: TestServer| async move {
    use reqwest::Method;
    let post = |body: Vec<u8>| send(&s, Method::POST, "/v2.0/networks", body);

    let (status, body) = post(br#"{"network": {"name": "#.to_vec()).await;
    assert_eq!((status, kind(&body)), (400, "HTTPBadRequest"), "malformed JSON");

    let mut invalid_utf8 = br#"{"network": {"name": ""#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe]);
    invalid_utf8.extend_from_slice(br#""}}"#);
    let (status, body) = post(invalid_utf8).await;
    assert_eq!((status, kind(&body)), (400, "HTTPBadRequest"), "invalid UTF-8 in a body");

    // Nested deeper than any parser should recurse, yet under the size limit.
    let depth = 40_000;
    let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
    let (status, body) = post(deep).await;
    assert_eq!((status, kind(&body)), (400, "HTTPBadRequest"), "deep nesting");
    let deep_objects = format!("{}1{}", r#"{"network":"#.repeat(5_000), "}".repeat(5_000)).into_bytes();
    let (status, body) = post(deep_objects).await;
    assert_eq!((status, kind(&body)), (400, "HTTPBadRequest"), "deep nesting of objects");

    // Neutron's limit: 114,688 bytes.
    let big = format!(r#"{{"network": {{"name": "{}"}}}}"#, "x".repeat(120_000)).into_bytes();
    let (status, body) = post(big).await;
    assert_eq!(
        (status, kind(&body), body["NeutronError"]["message"].as_str()),
        (413, "HTTPRequestEntityTooLarge", Some("Request is too large."))
    );

    // Invalid UTF-8 in a path and in a query.
    let (status, body) = send(&s, Method::GET, "/v2.0/networks/%ff%fe", Vec::new()).await;
    assert_eq!((status, kind(&body)), (400, "HTTPBadRequest"), "invalid UTF-8 in a path");
    let (status, body) = send(&s, Method::GET, "/v2.0/networks?name=%ff%fe", Vec::new()).await;
    assert!(
        status == 200 || (status == 400 && kind(&body) == "HTTPBadRequest"),
        "invalid UTF-8 in a query: {status} {body}"
    );

    // Thousands of filters, just under the length of a URI the server reads (64 KiB).
    let filters: Vec<String> = (0..5_000).map(|i| format!("name=n{i}")).collect();
    let (status, body) = send(&s, Method::GET, &format!("/v2.0/networks?{}", filters.join("&")), Vec::new()).await;
    assert_eq!((status, body["networks"].as_array().map(Vec::len)), (200, Some(0)), "5000 filters");
    // Longer: HTTP's parser refuses it before any handler (414, without a body of ours).
    // (Over a socket of its own: HTTP clients refuse to send such a URI.)
    let status_line = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let address = s.base.trim_start_matches("http://");
        let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!("GET /v2.0/networks?name={} HTTP/1.1\r\nHost: {address}\r\n\r\n", "x".repeat(70_000));
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut reply = vec![0u8; 256];
        let n = socket.read(&mut reply).await.unwrap();
        String::from_utf8_lossy(&reply[..n]).lines().next().unwrap_or_default().to_string()
    };
    assert!(status_line.starts_with("HTTP/1.1 414"), "a 70 kB query: {status_line}");

    // A method a path does not have.
    let (status, body) = send(&s, Method::PATCH, "/v2.0/networks", Vec::new()).await;
    assert_eq!((status, kind(&body)), (405, "HTTPMethodNotAllowed"));

    // Nothing was made of any of it, and the server still serves.
    let listed = s.api.get("/v2.0/networks").await.unwrap();
    assert_eq!(listed["networks"].as_array().unwrap().len(), 0);
    s.api.create_network("after").await.unwrap();
});
