//! The API and the agents' streams over real TLS, with a throwaway CA made at run time
//! (`neutrino_lab::pki`): what a client that trusts the CA gets, and what is refused: an
//! unknown CA, an expired certificate, plaintext on the TLS port, and (with `[ssl] ca_file`) a
//! client without a certificate or with one of another CA.

use crate::common::{default_config, unique, TempDir};
use neutrino_lab::pki::{Issued, TestCa};
use neutrino_tls::{ClientTls, ServerTls, TlsListener};
use std::time::Duration;

struct TlsServer {
    base: String,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: TempDir,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A server on SQLite serving `[ssl]` with `server`'s certificate (and client certificates of
/// `clients_of` required).
async fn serve(server: &Issued, clients_of: Option<&TestCa>) -> TlsServer {
    let dir = TempDir(std::env::temp_dir().join(unique("neutrino-tls")));
    std::fs::create_dir_all(&dir.0).unwrap();
    let ssl = ServerTls {
        cert_file: server.cert.clone(),
        key_file: server.key.clone(),
        ca_file: clients_of.map(|ca| ca.cert.clone()),
    };
    let mut config = default_config();
    config.connection = format!("sqlite:///{}/db.sqlite", dir.0.display());
    config.ssl = Some(ssl.clone());
    let store = neutrino_store::Store::connect(&config.connection, 4).await.unwrap();
    let app = neutrino_server::App::new(store, config).await.unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let listener = TlsListener::new(tcp, ssl.acceptor().unwrap()).unwrap();
    let task = tokio::spawn(neutrino_server::serve_until(app, listener, std::future::pending()));
    TlsServer { base: format!("https://127.0.0.1:{port}"), task, _dir: dir }
}

/// Host h1's Linux bridge agent.
fn registration() -> neutrino_api::agent::AgentRegistration {
    serde_json::from_value(serde_json::json!({
        "host": "h1", "agent_type": "Linux bridge agent", "tunnel_ip": "192.0.2.11",
        "configurations": {"tunnel_types": ["vxlan"], "l2_population": true}}))
    .unwrap()
}

/// Client TLS options trusting `ca` (the system's CAs without), presenting `identity`.
fn tls(ca: Option<&TestCa>, identity: Option<&Issued>) -> ClientTls {
    ClientTls {
        ca_file: ca.map(|c| c.cert.clone()),
        cert_file: identity.map(|i| i.cert.clone()),
        key_file: identity.map(|i| i.key.clone()),
        insecure: false,
    }
}

fn client(ca: Option<&TestCa>, identity: Option<&Issued>) -> reqwest::Client {
    tls(ca, identity).client(Some(Duration::from_secs(10))).unwrap()
}

async fn get(client: &reqwest::Client, url: &str) -> Result<serde_json::Value, String> {
    let resp = client
        .get(url)
        .header("X-Project-Id", "admin")
        .header("X-Roles", "admin")
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("{status}: {body}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_over_tls_serves_only_who_trusts_it() {
    let dir = TempDir(std::env::temp_dir().join(unique("neutrino-pki")));
    let ca = TestCa::new(&dir.0, "good").unwrap();
    let other = TestCa::new(&dir.0, "other").unwrap();
    let server = serve(&ca.issue("server", 1).unwrap(), None).await;

    let trusting = client(Some(&ca), None);
    for i in 0..3 {
        let body = serde_json::json!({"network": {"name": format!("n{i}")}});
        let made = trusting
            .post(format!("{}/v2.0/networks", server.base))
            .header("X-Project-Id", "admin")
            .header("X-Roles", "admin")
            .json(&body)
            .send()
            .await
            .expect("a client that trusts the CA is served");
        assert_eq!(made.status(), 201);
    }
    // Links carry the scheme the client used.
    let page = get(&trusting, &format!("{}/v2.0/networks?limit=1", server.base)).await.unwrap();
    let next = page["networks_links"][0]["href"].as_str().unwrap();
    assert!(next.starts_with(&format!("{}/v2.0/networks?", server.base)), "{next}");
    let versions = get(&trusting, &format!("{}/", server.base)).await.unwrap();
    assert_eq!(versions["versions"][0]["links"][0]["href"], format!("{}/v2.0/", server.base));

    // The system's CAs, or another CA: the server's certificate is not trusted.
    let refused = get(&client(None, None), &format!("{}/v2.0/networks", server.base)).await.unwrap_err();
    assert!(refused.contains("UnknownIssuer"), "{refused}");
    let refused = get(&client(Some(&other), None), &format!("{}/v2.0/networks", server.base)).await.unwrap_err();
    assert!(refused.contains("UnknownIssuer"), "{refused}");
    // Plaintext on the TLS port gets no answer of the API.
    let plain = server.base.replace("https://", "http://");
    let refused = get(&reqwest::Client::new(), &format!("{plain}/v2.0/networks")).await.unwrap_err();
    assert!(refused.contains("Parse(Version)"), "the reply is no HTTP: {refused}");

    // An expired certificate is refused too.
    let expired = serve(&ca.issue("expired", -1).unwrap(), None).await;
    let refused = get(&trusting, &format!("{}/v2.0/networks", expired.base)).await.unwrap_err();
    assert!(refused.contains("ExpiredContext"), "expired, not merely invalid dates: {refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ssl_ca_file_only_clients_with_certificates_are_served() {
    let dir = TempDir(std::env::temp_dir().join(unique("neutrino-pki")));
    let ca = TestCa::new(&dir.0, "good").unwrap();
    let other = TestCa::new(&dir.0, "other").unwrap();
    let server = serve(&ca.issue("server", 1).unwrap(), Some(&ca)).await;
    let url = format!("{}/v2.0/networks", server.base);

    let agent = ca.issue("agent", 1).unwrap();
    get(&client(Some(&ca), Some(&agent)), &url).await.expect("a client certificate of the CA is accepted");
    let refused = get(&client(Some(&ca), None), &url).await.unwrap_err();
    assert!(refused.contains("CertificateRequired"), "no client certificate: {refused}");
    let stranger = other.issue("stranger", 1).unwrap();
    let refused = get(&client(Some(&ca), Some(&stranger)), &url).await.unwrap_err();
    assert!(refused.starts_with("reqwest::Error"), "a certificate of another CA: {refused}");
    let old = ca.issue("old-agent", -1).unwrap();
    let refused = get(&client(Some(&ca), Some(&old)), &url).await.unwrap_err();
    assert!(refused.starts_with("reqwest::Error"), "an expired client certificate: {refused}");

    // An agent with its certificate follows its host's stream over mutual TLS.
    let tls = tls(Some(&ca), Some(&agent));
    let agent_client = neutrino_agent::client::ServerClient::new(&server.base).with_tls(&tls).unwrap();
    let registration = registration();
    agent_client.register(&registration, true).await.expect("the agent registers over mutual TLS");
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let following = {
        let c = agent_client.clone();
        tokio::spawn(async move { c.follow("h1", None, &tx).await })
    };
    let first = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("a stream message");
    assert!(matches!(first, Some(neutrino_api::agent::StreamMessage::Snapshot { .. })), "{first:?}");
    following.abort();

    // Without its certificate the same agent gets nothing.
    let no_cert = ClientTls { cert_file: None, key_file: None, ..tls };
    let bare = neutrino_agent::client::ServerClient::new(&server.base).with_tls(&no_cert).unwrap();
    assert!(bare.register(&registration, true).await.is_err());
}

/// Behind a TLS proxy the server stays on plain HTTP; with `[oslo_middleware]
/// enable_proxy_headers_parsing`, `X-Forwarded-Proto` gives links the client's scheme (and
/// without it the header is not believed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_tls_proxy_links_use_the_clients_scheme() {
    let plain = crate::common::start(crate::common::Backend::Sqlite, default_config()).await.unwrap();
    let versions: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/", plain.base))
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(versions["versions"][0]["links"][0]["href"], format!("{}/v2.0/", plain.base), "not believed");
    let config = neutrino_server::ServerConfig { proxy_headers_parsing: true, ..default_config() };
    let s = crate::common::start(crate::common::Backend::Sqlite, config).await.unwrap();
    let host = s.base.trim_start_matches("http://").to_string();
    let http = reqwest::Client::new();
    let get = |path: &str, proto: Option<&str>| {
        let mut req = http.get(format!("{}{path}", s.base)).header("X-Project-Id", "admin").header("X-Roles", "admin");
        if let Some(p) = proto {
            req = req.header("X-Forwarded-Proto", p);
        }
        async move { req.send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    let versions = get("/", Some("https")).await;
    assert_eq!(versions["versions"][0]["links"][0]["href"], format!("https://{host}/v2.0/"));
    let versions = get("/", None).await;
    assert_eq!(versions["versions"][0]["links"][0]["href"], format!("http://{host}/v2.0/"));
    for name in ["a", "b"] {
        s.api.create_network(name).await.unwrap();
    }
    let page = get("/v2.0/networks?limit=1", Some("https")).await;
    let next = page["networks_links"][0]["href"].as_str().unwrap();
    assert!(next.starts_with(&format!("https://{host}/v2.0/networks?")), "{next}");
}

/// The lines of `log` that report a refused handshake.
fn refusals(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("TLS handshake failed"))
        .map(String::from)
        .collect()
}

/// A real `neutrino server` process with `[ssl]` and client certificates required: every
/// refused connection leaves one log line with the peer and the reason, nothing refused gets a
/// reply of the API, and the client's own error (what an agent logs) says why too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_logged_with_the_peer_and_the_reason() {
    let dir = TempDir(std::env::temp_dir().join(unique("neutrino-tls-log")));
    let ca = TestCa::new(&dir.0, "good").unwrap();
    let other = TestCa::new(&dir.0, "other").unwrap();
    let server_cert = ca.issue("server", 1).unwrap();
    let ssl = format!(
        "[ssl]\ncert_file = {}\nkey_file = {}\nca_file = {}\n",
        server_cert.cert.display(),
        server_cert.key.display(),
        ca.cert.display()
    );
    let connection = format!("sqlite:///{}/db.sqlite", dir.0.display());
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_neutrino"));
    let server = neutrino_lab::ha::ServerProcess::start(binary, &dir.0, "server", &connection, &ssl).unwrap();
    let base = format!("https://127.0.0.1:{}", server.port);
    let url = format!("{base}/v2.0/networks");
    let agent = ca.issue("agent", 1).unwrap();
    get(&client(Some(&ca), Some(&agent)), &url).await.expect("served");

    // (what the client does, what the server must log)
    let stranger = other.issue("stranger", 1).unwrap();
    let old = ca.issue("old-agent", -1).unwrap();
    let cases: [(&str, reqwest::Client, &str); 4] = [
        ("a client trusting another CA", client(Some(&other), Some(&agent)), "received fatal alert: UnknownCA"),
        ("a client without a certificate", client(Some(&ca), None), "peer sent no certificates"),
        ("a certificate of another CA", client(Some(&ca), Some(&stranger)), "invalid peer certificate: UnknownIssuer"),
        (
            "an expired client certificate",
            client(Some(&ca), Some(&old)),
            "invalid peer certificate: certificate expired",
        ),
    ];
    for (what, client, _) in &cases {
        assert!(get(client, &url).await.is_err(), "{what} is served");
    }
    let plain = get(&reqwest::Client::new(), &url.replace("https://", "http://")).await.unwrap_err();
    assert!(plain.contains("Parse(Version)"), "plaintext got no HTTP reply: {plain}");
    // A client hanging up within its ClientHello (a record header, no more) is a refusal too.
    let mut half = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut half, &[0x16, 0x03, 0x01, 0x00, 0x80]).await.unwrap();
    drop(half);
    // TCP health checks, closing (FIN) or resetting (RST) before a byte, are not.
    drop(tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap());
    let reset = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    reset.set_zero_linger().unwrap();
    drop(reset);
    let others = [
        ("plaintext", "received corrupt message of type InvalidContentType"),
        ("a ClientHello cut short", "tls handshake eof"),
    ];

    // The lines are written as the handshakes end; give the last a moment (and the probes time
    // to be logged, should they be).
    let expected = cases.len() + others.len();
    for _ in 0..50 {
        if refusals(server.log_path()).len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = refusals(server.log_path());
    assert_eq!(lines.len(), expected, "one line per refusal, none per probe:\n{}", lines.join("\n"));
    for line in &lines {
        assert!(line.contains("peer=127.0.0.1:") && line.contains("WARN"), "{line}");
    }
    let reasons = cases.iter().map(|(what, _, reason)| (*what, *reason));
    for (what, reason) in reasons.chain(others) {
        assert!(lines.iter().any(|l| l.contains(reason)), "{what}: no line says '{reason}':\n{}", lines.join("\n"));
    }

    // The agent's side: what it logs ("registration failed; retrying error=…") says why.
    let wrong_ca = tls(Some(&other), Some(&agent));
    let agent_client = neutrino_agent::client::ServerClient::new(&base).with_tls(&wrong_ca).unwrap();
    let registration = registration();
    let error = agent_client.register(&registration, true).await.unwrap_err().to_string();
    assert!(error.contains("invalid peer certificate: UnknownIssuer"), "{error}");
}
