//! The real Keystone the `auth_strategy = keystone` tests run against (`scripts/keystone-harness`,
//! installed by `scripts/test`): users get project-scoped tokens, and the service user validates
//! them as keystonemiddleware does. Skipped (with a message) when not installed, except in CI.

use neutrino_lab::{keystone_installed, Keystone};

fn keystone_available() -> bool {
    match keystone_installed() {
        Ok(()) => true,
        Err(why) => {
            assert!(std::env::var("CI").is_err(), "Keystone must run in CI: {why}");
            eprintln!("skipping the Keystone test: {why}");
            false
        }
    }
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
async fn keystone_issues_and_validates_project_tokens() {
    if !keystone_available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("neutrino-keystone-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ks = Keystone::start(&dir, free_port()).expect("Keystone starts");
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

    drop(ks);
    let _ = std::fs::remove_dir_all(&dir);
}
