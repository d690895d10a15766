//! A real Keystone for tests: `scripts/keystone-harness` (PyPI `keystone` on SQLite under
//! gunicorn, 127.0.0.1 only) started in a directory, with projects `alpha`, `beta`, `service`
//! and users `alice` (member on alpha), `bob` (member on beta), `rita` (reader on alpha),
//! `neutron` (admin on service, the service user) and `admin` (admin on admin).
//!
//! The harness is found through `NEUTRINO_KEYSTONE_HARNESS` (set by `scripts/test`), else in
//! this repository's `scripts/`. Dropping a [`Keystone`] stops the process group the harness
//! started for it (and only that); the harness also stops it once this process is gone.

use crate::LabError;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Password, project and role of one of the harness's users.
#[derive(Clone, Debug)]
pub struct KeystoneUser {
    pub name: String,
    pub id: String,
    pub password: String,
    /// Name of the project the user has its role on (and scopes its tokens to).
    pub project: String,
    pub role: String,
}

pub struct Keystone {
    dir: PathBuf,
    auth_url: String,
    /// Leader of the process group (the harness's supervisor, gunicorn and its workers).
    pid: i32,
    projects: BTreeMap<String, String>,
    users: BTreeMap<String, KeystoneUser>,
    network_endpoint: Option<String>,
    http: reqwest::Client,
}

/// Path of `scripts/keystone-harness`.
pub fn keystone_harness() -> PathBuf {
    match std::env::var_os("NEUTRINO_KEYSTONE_HARNESS") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/keystone-harness"),
    }
}

/// Whether Keystone can be started here: the harness exists and its venv is installed
/// (`scripts/keystone-harness install`, done by `scripts/test`). `Err` says why not.
pub fn keystone_installed() -> Result<(), String> {
    let harness = keystone_harness();
    if !harness.exists() {
        return Err(format!("{} not found (NEUTRINO_KEYSTONE_HARNESS)", harness.display()));
    }
    match Command::new(&harness).arg("status").status() {
        Ok(s) if s.success() => Ok(()),
        Ok(_) => Err(format!("Keystone is not installed: run `{} install`", harness.display())),
        Err(e) => Err(format!("{}: {e}", harness.display())),
    }
}

fn field<'a>(v: &'a Value, key: &str) -> Result<&'a str, LabError> {
    v[key].as_str().ok_or_else(|| LabError::Other(format!("keystone.json: no string `{key}`")))
}

impl Keystone {
    /// Start Keystone on 127.0.0.1:`port` with its files in `dir` (created if needed).
    pub fn start(dir: &Path, port: u16) -> Result<Keystone, LabError> {
        Keystone::start_with(dir, port, None)
    }

    /// Like [`Keystone::start`]; with `network_endpoint`, the catalog also has service `neutron`
    /// of type `network` at that URL (public, internal and admin), as a real cloud would.
    pub fn start_with(dir: &Path, port: u16, network_endpoint: Option<&str>) -> Result<Keystone, LabError> {
        Keystone::start_tls(dir, port, network_endpoint, None)
    }

    /// Like [`Keystone::start_with`]; with `tls` (a certificate for 127.0.0.1 and the CA that
    /// signed it), Keystone serves HTTPS only, and this handle trusts that CA.
    pub fn start_tls(
        dir: &Path,
        port: u16,
        network_endpoint: Option<&str>,
        tls: Option<(&crate::pki::Issued, &Path)>,
    ) -> Result<Keystone, LabError> {
        std::fs::create_dir_all(dir)?;
        let harness = keystone_harness();
        let mut cmd = Command::new(&harness);
        cmd.arg("start").arg("--dir").arg(dir).args(["--port", &port.to_string()]);
        cmd.args(["--owner-pid", &std::process::id().to_string()]);
        if let Some(url) = network_endpoint {
            cmd.args(["--network-endpoint", url]);
        }
        if let Some((issued, ca)) = tls {
            cmd.arg("--certfile").arg(&issued.cert).arg("--keyfile").arg(&issued.key).arg("--cafile").arg(ca);
        }
        let started = Instant::now();
        let out = cmd.output()?;
        if !out.status.success() {
            // It stops what it started when it fails; a pid file left behind is stopped anyway.
            let _ = Command::new(&harness).arg("stop").arg("--dir").arg(dir).status();
            return Err(LabError::Command {
                command: format!("{} start --dir {} --port {port}", harness.display(), dir.display()),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        let text = std::fs::read_to_string(dir.join("keystone.json"))?;
        let info: Value = serde_json::from_str(&text).map_err(|e| LabError::Other(format!("keystone.json: {e}")))?;
        let pid = info["pid"].as_i64().ok_or_else(|| LabError::Other("keystone.json: no pid".into()))? as i32;
        let projects = info["projects"]
            .as_object()
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
            .unwrap_or_default();
        let mut users = BTreeMap::new();
        for (name, u) in info["users"].as_object().into_iter().flatten() {
            users.insert(
                name.clone(),
                KeystoneUser {
                    name: name.clone(),
                    id: field(u, "id")?.to_string(),
                    password: field(u, "password")?.to_string(),
                    project: field(u, "project")?.to_string(),
                    role: field(u, "role")?.to_string(),
                },
            );
        }
        let trust = neutrino_tls::ClientTls { ca_file: tls.map(|(_, ca)| ca.to_path_buf()), ..Default::default() };
        let http = trust
            .apply(reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)))
            .and_then(|b| b.build().map_err(|e| neutrino_tls::TlsError::Config(e.to_string())))
            .map_err(|e| LabError::Other(format!("Keystone's CA: {e}")))?;
        let ks = Keystone {
            dir: dir.to_path_buf(),
            auth_url: field(&info, "auth_url")?.to_string(),
            pid,
            projects,
            users,
            network_endpoint: info["network_endpoint"].as_str().map(str::to_string),
            http,
        };
        eprintln!("keystone: {} (pid {pid}) up in {:.1}s", ks.auth_url, started.elapsed().as_secs_f64());
        Ok(ks)
    }

    /// `http://127.0.0.1:PORT/v3` (`https://` when started with TLS).
    pub fn auth_url(&self) -> &str {
        &self.auth_url
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Process group leader (its group holds gunicorn and its workers).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The catalog's network endpoint, when started with one.
    pub fn network_endpoint(&self) -> Option<&str> {
        self.network_endpoint.as_deref()
    }

    /// Id of project `name` (`alpha`, `beta`, `service`, `admin`).
    pub fn project_id(&self, name: &str) -> Option<&str> {
        self.projects.get(name).map(String::as_str)
    }

    /// Credentials of user `name` (`alice`, `bob`, `rita`, `neutron`, `admin`).
    pub fn user(&self, name: &str) -> Option<&KeystoneUser> {
        self.users.get(name)
    }

    pub fn users(&self) -> impl Iterator<Item = &KeystoneUser> {
        self.users.values()
    }

    /// `openstack` CLI options that log in as `user` (password, scoped to its project).
    /// Commands for other services find them in the catalog (see [`Keystone::start_with`]),
    /// or at `OS_<SERVICE>_ENDPOINT_OVERRIDE`, e.g. `OS_NETWORK_ENDPOINT_OVERRIDE`.
    pub fn openstack_args(&self, user: &str) -> Option<Vec<String>> {
        let u = self.user(user)?;
        Some(
            [
                ("--os-auth-type", "password"),
                ("--os-auth-url", self.auth_url.as_str()),
                ("--os-identity-api-version", "3"),
                ("--os-username", u.name.as_str()),
                ("--os-password", u.password.as_str()),
                ("--os-project-name", u.project.as_str()),
                ("--os-user-domain-name", "Default"),
                ("--os-project-domain-name", "Default"),
                ("--os-region-name", "RegionOne"),
            ]
            .iter()
            .flat_map(|(k, v)| [k.to_string(), v.to_string()])
            .collect(),
        )
    }

    /// The `neutron` service user's credentials, as `[keystone_authtoken]` names them.
    pub fn service_auth(&self) -> neutrino_api::keystone::PasswordAuth {
        let u = self.user("neutron").expect("the harness creates the neutron user");
        neutrino_api::keystone::PasswordAuth {
            auth_url: self.auth_url.clone(),
            username: u.name.clone(),
            password: u.password.clone(),
            project_name: u.project.clone(),
            user_domain_name: "Default".into(),
            project_domain_name: "Default".into(),
        }
    }

    /// A project-scoped token for `user` (password method): the `X-Subject-Token` header.
    pub async fn token(&self, user: &str) -> Result<String, LabError> {
        let u = self.user(user).ok_or_else(|| LabError::Other(format!("no Keystone user {user}")))?;
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": u.name, "domain": {"name": "Default"}, "password": u.password}}},
            "scope": {"project": {"name": u.project, "domain": {"name": "Default"}}},
        }});
        let resp = self
            .http
            .post(format!("{}/auth/tokens", self.auth_url))
            .json(&body)
            .send()
            .await
            .map_err(|e| LabError::Other(format!("POST {}/auth/tokens: {e}", self.auth_url)))?;
        let status = resp.status().as_u16();
        let token = resp.headers().get("x-subject-token").and_then(|v| v.to_str().ok()).map(str::to_string);
        match token {
            Some(t) if status == 201 => Ok(t),
            _ => Err(LabError::Other(format!("token for {user}: {status} {}", resp.text().await.unwrap_or_default()))),
        }
    }

    /// `GET /v3/auth/tokens` as keystonemiddleware does: `auth_token` (the service's) checks
    /// `subject`. Status and body (`{"token": {...}}` when valid, 404 when not).
    pub async fn validate(&self, auth_token: &str, subject: &str) -> Result<(u16, Value), LabError> {
        let resp = self
            .http
            .get(format!("{}/auth/tokens", self.auth_url))
            .header("X-Auth-Token", auth_token)
            .header("X-Subject-Token", subject)
            .send()
            .await
            .map_err(|e| LabError::Other(format!("GET {}/auth/tokens: {e}", self.auth_url)))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| LabError::Other(e.to_string()))?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    /// Stop the process group now (what `Drop` does).
    pub fn stop(&mut self) {
        if self.pid > 0 {
            stop_group(self.pid);
            let _ = std::fs::remove_file(self.dir.join("keystone.pid"));
            self.pid = 0;
        }
    }
}

impl Drop for Keystone {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a process of group `pgid` is still running (zombies do not count).
fn group_alive(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    entries.flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { return false };
        let Some((_, rest)) = stat.rsplit_once(')') else { return false };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields.len() > 2 && fields[2] == pgid.to_string() && !matches!(fields[0], "Z" | "X")
    })
}

/// SIGTERM, then SIGKILL, the process group `pid` leads, if it still leads it: the harness
/// made it with setsid, so the group holds exactly what it started.
fn stop_group(pid: i32) {
    // SAFETY: getpgid and killpg take plain integers and touch no memory of ours.
    if unsafe { libc::getpgid(pid) } != pid {
        return;
    }
    for (sig, wait) in [(libc::SIGTERM, Duration::from_secs(10)), (libc::SIGKILL, Duration::from_secs(5))] {
        // SAFETY: as above.
        if unsafe { libc::killpg(pid, sig) } != 0 {
            return;
        }
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if !group_alive(pid) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
