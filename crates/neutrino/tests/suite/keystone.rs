//! The real Keystone the `auth_strategy = keystone` tests run against (`scripts/keystone-harness`,
//! installed by `scripts/test`): users get project-scoped tokens, and the service user validates
//! them as keystonemiddleware does. The tests are `#[ignore]`d; run with `--include-ignored`
//! they need it installed.

use neutrino_lab::{keystone_installed, Keystone};

fn keystone_available() -> bool {
    if let Err(why) = keystone_installed() {
        panic!("this test needs Keystone (scripts/keystone-harness install): {why}");
    }
    true
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Names of the roles in a `GET /v3/auth/tokens` reply.
fn role_names(body: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = body["token"]["roles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Keystone (scripts/keystone-harness); scripts/test runs it"]
async fn keystone_issues_and_validates_project_tokens() {
    if !keystone_available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("neutrino-keystone-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Neutrino's address goes into Keystone's catalog, as a cloud's network endpoint.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let ks = Keystone::start_with(&dir, free_port(), Some(&format!("{base}/"))).expect("Keystone starts");
    let alpha = ks.project_id("alpha").unwrap().to_string();

    let mut tokens = std::collections::BTreeMap::new();
    for user in ["alice", "bob", "rita", "neutron", "admin"] {
        tokens.insert(user, ks.token(user).await.unwrap_or_else(|e| panic!("token for {user}: {e}")));
    }
    let service = &tokens["neutron"];

    // alice: member on alpha, and reader, which Keystone implies.
    let (status, body) = ks.validate(service, &tokens["alice"]).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token"]["project"]["id"], alpha.as_str(), "{body}");
    assert_eq!(body["token"]["user"]["name"], "alice");
    let roles = role_names(&body);
    assert!(roles.contains(&"member".into()) && roles.contains(&"reader".into()), "{roles:?}");
    assert!(!roles.contains(&"admin".into()), "{roles:?}");

    // rita: reader on alpha only; bob: member on beta.
    let (status, body) = ks.validate(service, &tokens["rita"]).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token"]["project"]["id"], alpha.as_str());
    assert_eq!(role_names(&body), vec!["reader".to_string()]);
    let (status, body) = ks.validate(service, &tokens["bob"]).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token"]["project"]["id"], ks.project_id("beta").unwrap());

    // The service user and the cloud admin are admins of their projects.
    for (user, project) in [("neutron", "service"), ("admin", "admin")] {
        let (status, body) = ks.validate(service, &tokens[user]).await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token"]["project"]["id"], ks.project_id(project).unwrap());
        assert!(role_names(&body).contains(&"admin".into()), "{user}: {body}");
    }

    // A token Keystone never issued is not found.
    let (status, body) = ks.validate(service, "gAAAAABnot-a-real-token").await.unwrap();
    assert_eq!(status, 404, "{body}");

    neutrino_with_keystone(&ks, listener, &base, &tokens).await;
    drop(ks);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A Neutrino server with `auth_strategy = keystone`, the `neutron` service user validating the
/// callers' tokens: 401s, projects isolated, roles obeyed, and the openstack CLI logging in.
async fn neutrino_with_keystone(
    ks: &Keystone,
    listener: tokio::net::TcpListener,
    base: &str,
    tokens: &std::collections::BTreeMap<&str, String>,
) {
    use neutrino_server::auth::{AuthStrategy, KeystoneConfig};
    use serde_json::json;
    let tmp = crate::common::TempDir(std::env::temp_dir().join(crate::common::unique("neutrino-ks-db")));
    std::fs::create_dir_all(&tmp.0).unwrap();
    let connection = format!("sqlite:///{}/db.sqlite", tmp.0.display());
    let config = neutrino_server::ServerConfig {
        connection: connection.clone(),
        auth: AuthStrategy::Keystone(KeystoneConfig::new(ks.service_auth())),
        ..crate::common::default_config()
    };
    let store = neutrino_store::Store::connect(&connection, 8).await.unwrap();
    let app = neutrino_server::App::new(store, config).await.unwrap();
    let server = tokio::spawn(neutrino_server::serve(app, listener));

    // No token, or a bad one: keystonemiddleware's 401.
    let resp = reqwest::Client::new().get(format!("{base}/v2.0/networks")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert_eq!(challenge, format!("Keystone uri=\"{}\"", ks.auth_url()));
    let anonymous = neutrino_lab::ApiClient::new(base);
    assert_eq!(anonymous.with_token("gAAAAABbogus").get("/v2.0/networks").await.unwrap_err().status(), Some(401));
    assert!(anonymous.get("/").await.is_ok(), "version discovery needs no token");

    let api = |user: &str| anonymous.with_token(&tokens[user]);
    let (alice, bob, rita, admin) = (api("alice"), api("bob"), api("rita"), api("admin"));
    let net = alice.create_network("alpha-net").await.unwrap();
    assert_eq!(net["project_id"], ks.project_id("alpha").unwrap());
    let net_id = net["id"].as_str().unwrap().to_string();
    let listed = |v: serde_json::Value| -> Vec<String> {
        v["networks"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap().to_string()).collect()
    };
    assert!(!listed(bob.get("/v2.0/networks").await.unwrap()).contains(&"alpha-net".to_string()));
    assert_eq!(bob.get(&format!("/v2.0/networks/{net_id}")).await.unwrap_err().status(), Some(404));
    assert!(listed(rita.get("/v2.0/networks").await.unwrap()).contains(&"alpha-net".to_string()));
    let renamed = rita.put(&format!("/v2.0/networks/{net_id}"), json!({"network": {"name": "r"}})).await;
    assert_eq!(renamed.unwrap_err().status(), Some(403));
    assert!(listed(admin.get("/v2.0/networks").await.unwrap()).contains(&"alpha-net".to_string()));
    let shared = admin.post("/v2.0/networks", json!({"network": {"name": "public", "shared": true}})).await.unwrap();
    assert_eq!(shared["network"]["project_id"], ks.project_id("admin").unwrap());
    assert!(listed(bob.get("/v2.0/networks").await.unwrap()).contains(&"public".to_string()));
    let sharing = alice.post("/v2.0/networks", json!({"network": {"name": "x", "shared": true}})).await;
    assert_eq!(sharing.unwrap_err().status(), Some(403));
    // Agents need an admin or service token.
    let reg = json!({"host": "h1", "agent_type": "Linux bridge agent", "tunnel_ip": "192.0.2.11"});
    assert_eq!(alice.post("/v2.0/neutrino/agents", reg.clone()).await.unwrap_err().status(), Some(403));
    api("neutron").post("/v2.0/neutrino/agents", reg).await.unwrap();

    openstack_cli_with_keystone_tokens(ks).await;
    server.abort();
}

/// The openstack CLI, logged in through Keystone, finds Neutrino in the catalog.
async fn openstack_cli_with_keystone_tokens(ks: &Keystone) {
    let cli = std::env::var("NEUTRINO_OPENSTACK_CLI")
        .expect("this test needs the openstack CLI: set NEUTRINO_OPENSTACK_CLI (scripts/test does)");
    let run = |user: &str, args: &[&str]| {
        let mut cmd = std::process::Command::new(&cli);
        cmd.args(ks.openstack_args(user).unwrap()).args(args).env("no_proxy", "127.0.0.1");
        let out = cmd.output().expect("openstack runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let names = |user: &str| -> Vec<String> {
        let (ok, out, err) = run(user, &["network", "list", "-f", "json"]);
        assert!(ok, "{user}: network list failed: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v.as_array().unwrap().iter().map(|n| n["Name"].as_str().unwrap().to_string()).collect()
    };
    let (ok, out, err) =
        tokio::task::block_in_place(|| run("alice", &["network", "create", "cli-alpha", "-f", "json"]));
    assert!(ok, "alice creates a network: {out} {err}");
    let (ok, _, err) = tokio::task::block_in_place(|| run("bob", &["network", "create", "cli-beta", "-f", "json"]));
    assert!(ok, "bob creates a network: {err}");
    let (alice_sees, bob_sees, admin_sees) =
        tokio::task::block_in_place(|| (names("alice"), names("bob"), names("admin")));
    assert!(alice_sees.contains(&"cli-alpha".into()) && !alice_sees.contains(&"cli-beta".into()), "{alice_sees:?}");
    assert!(bob_sees.contains(&"cli-beta".into()) && !bob_sees.contains(&"cli-alpha".into()), "{bob_sees:?}");
    assert!(admin_sees.contains(&"cli-alpha".into()) && admin_sees.contains(&"cli-beta".into()), "{admin_sees:?}");
    assert!(bob_sees.contains(&"public".into()), "the shared network: {bob_sees:?}");
    let (ok, _, err) = tokio::task::block_in_place(|| run("rita", &["network", "delete", "cli-alpha"]));
    assert!(!ok && (err.contains("403") || err.contains("disallowed")), "a reader cannot delete: {err}");
    let (ok, _, err) = tokio::task::block_in_place(|| {
        run("bob", &["port", "create", "--network", "public", "bob-port", "-f", "json"])
    });
    assert!(ok, "bob plugs into the shared network: {err}");
    // Quotas and targeted sharing name projects, which the CLI looks up in Keystone.
    let (ok, _, err) =
        tokio::task::block_in_place(|| run("admin", &["quota", "set", "--networks", "33", "--ports", "77", "alpha"]));
    assert!(ok, "admin sets alpha's quota: {err}");
    let (ok, out, err) =
        tokio::task::block_in_place(|| run("admin", &["quota", "show", "--network", "alpha", "-f", "json"]));
    assert!(ok, "admin shows alpha's quota: {err}");
    let quota: serde_json::Value = serde_json::from_str(&out).unwrap();
    let limit = |resource: &str| {
        quota
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["Resource"] == resource))
            .and_then(|r| r["Limit"].as_i64())
    };
    assert_eq!((limit("networks"), limit("ports")), (Some(33), Some(77)), "{quota}");
    let (ok, out, err) = tokio::task::block_in_place(|| {
        let args = [
            "network",
            "rbac",
            "create",
            "--type",
            "network",
            "--action",
            "access_as_shared",
            "--target-project",
            "beta",
            "cli-alpha",
            "-f",
            "json",
        ];
        run("admin", &args)
    });
    assert!(ok, "admin shares alice's network with beta: {err}");
    let policy: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(policy["target_project_id"].as_str(), ks.project_id("beta"), "{policy}");
    let bob_sees = tokio::task::block_in_place(|| names("bob"));
    assert!(bob_sees.contains(&"cli-alpha".into()), "shared with beta: {bob_sees:?}");
}

/// Keystone served over HTTPS (gunicorn with a certificate of a throwaway CA): Neutrino
/// validates tokens through it with `[keystone_authtoken] cafile`, refuses to trust it with the
/// system's CAs only, trusts it with `insecure`, and the openstack CLI logs in with `--os-cacert`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Keystone (scripts/keystone-harness) and the openstack CLI; scripts/test runs it"]
async fn keystone_over_https() {
    use neutrino_server::auth::{AuthStrategy, KeystoneConfig};
    if !keystone_available() {
        return;
    }
    let dir = crate::common::TempDir(std::env::temp_dir().join(crate::common::unique("neutrino-keystone-tls")));
    let ca = neutrino_lab::pki::TestCa::new(&dir.0, "keystone").unwrap();
    let issued = ca.issue("keystone", 1).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let ks = Keystone::start_tls(&dir.0.join("ks"), free_port(), Some(&format!("{base}/")), Some((&issued, &ca.cert)))
        .expect("Keystone starts with TLS");
    assert!(ks.auth_url().starts_with("https://"), "{}", ks.auth_url());
    let token = ks.token("alice").await.unwrap();

    // Neutrino servers that check Keystone's certificate three ways.
    let serve = |tls: neutrino_tls::ClientTls, listener: tokio::net::TcpListener| {
        let config = KeystoneConfig { tls, ..KeystoneConfig::new(ks.service_auth()) };
        let db = dir.0.join(crate::common::unique("db"));
        async move {
            std::fs::create_dir_all(&db).unwrap();
            let connection = format!("sqlite:///{}/db.sqlite", db.display());
            let server = neutrino_server::ServerConfig {
                connection: connection.clone(),
                auth: AuthStrategy::Keystone(config),
                ..crate::common::default_config()
            };
            let store = neutrino_store::Store::connect(&connection, 4).await.unwrap();
            let app = neutrino_server::App::new(store, server).await.unwrap();
            (app, listener)
        }
    };
    let spawn = |(app, listener)| tokio::spawn(neutrino_server::serve(app, listener));
    let with_ca = neutrino_tls::ClientTls { ca_file: Some(ca.cert.clone()), ..Default::default() };
    let trusting = spawn(serve(with_ca, listener).await);
    let alice = neutrino_lab::ApiClient::new(&base).with_token(&token);
    alice.create_network("over-https").await.expect("the token is validated over HTTPS");

    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_base = format!("http://{}", other.local_addr().unwrap());
    let system_roots = spawn(serve(neutrino_tls::ClientTls::default(), other).await);
    let refused = neutrino_lab::ApiClient::new(&other_base).with_token(&token).get("/v2.0/networks").await;
    assert!(refused.is_err(), "Keystone's certificate is not trusted without its CA: {refused:?}");
    // What that server logs ("cannot validate tokens with Keystone error=…") says why.
    let validator = neutrino_server::auth::KeystoneValidator::new(KeystoneConfig::new(ks.service_auth()));
    let error = validator.validate(&token).await.unwrap_err().to_string();
    assert!(error.contains("invalid peer certificate: UnknownIssuer"), "{error}");
    let third = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let third_base = format!("http://{}", third.local_addr().unwrap());
    let insecure = spawn(serve(neutrino_tls::ClientTls { insecure: true, ..Default::default() }, third).await);
    neutrino_lab::ApiClient::new(&third_base).with_token(&token).get("/v2.0/networks").await.expect("insecure = true");

    // The openstack CLI through Keystone over HTTPS, to the first server (in the catalog).
    let cli = std::env::var("NEUTRINO_OPENSTACK_CLI")
        .expect("this test needs the openstack CLI: set NEUTRINO_OPENSTACK_CLI (scripts/test does)");
    let run = |cacert: bool| {
        let mut cmd = std::process::Command::new(&cli);
        cmd.args(ks.openstack_args("alice").unwrap()).env("no_proxy", "127.0.0.1");
        if cacert {
            cmd.arg("--os-cacert").arg(&ca.cert);
        }
        cmd.args(["network", "list", "-f", "json"]);
        let out = cmd.output().expect("openstack runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, out, err) = tokio::task::block_in_place(|| run(true));
    assert!(ok && out.contains("over-https"), "the CLI logs in over HTTPS: {out} {err}");
    let (ok, _, err) = tokio::task::block_in_place(|| run(false));
    assert!(!ok && err.to_lowercase().contains("certificate"), "without the CA the CLI refuses Keystone: {err}");
    for s in [trusting, system_roots, insecure] {
        s.abort();
    }
    drop(ks);
}
