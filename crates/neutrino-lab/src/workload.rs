//! A mixed API workload over several servers, as many clients behind a load balancer send it:
//! networks, subnets, ports with automatic and fixed addresses, security groups and rules,
//! tags, updates with and without `If-Match`, deletes, and requests naming another project's
//! objects. Every reply is judged (only documented statuses; a 503 must say `Retry-After`),
//! and every acknowledged write is kept in a [`Ledger`] that the caller checks afterwards.
//!
//! Clients pick a server at random for each request, so a killed server only costs the
//! requests it had in flight (their outcome is unknown, and noted as such).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The subnet every workload network gets: 29 addresses, so that ports run out and address
/// conflicts are common.
pub const WORKLOAD_CIDR: &str = "198.51.100.0/27";

#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// Base URLs of the servers.
    pub servers: Vec<String>,
    /// Clients per project (two projects), plus one reader.
    pub clients_per_project: usize,
    pub duration: Duration,
    /// Hosts ports are bound to (the agents' hosts).
    pub hosts: Vec<String>,
    /// The client's own timeout: a reply slower than this is a hang.
    pub timeout: Duration,
    pub seed: u64,
}

/// The two projects of the workload, and the admin project that sets quotas.
pub const PROJECTS: [&str; 2] = ["torture-project-a", "torture-project-b"];

/// What was acknowledged.
#[derive(Debug, Default)]
pub struct Ledger {
    /// id -> (project, name)
    pub networks: BTreeMap<String, (String, String)>,
    /// Networks whose delete was acknowledged.
    pub networks_deleted: BTreeSet<String>,
    /// id -> (network, mac, ip)
    pub ports: BTreeMap<String, (String, String, String)>,
    pub ports_deleted: BTreeSet<String>,
    /// Deletes whose outcome is unknown.
    pub ports_maybe_deleted: BTreeSet<String>,
    pub networks_maybe_deleted: BTreeSet<String>,
    /// id -> project
    pub security_groups: BTreeMap<String, String>,
    /// rule id -> group id
    pub rules: BTreeMap<String, String>,
    /// network -> tags whose addition was acknowledged.
    pub tags: BTreeMap<String, BTreeSet<String>>,
    /// network -> (last acknowledged `If-Match` description, descriptions sent after it whose
    /// outcome is unknown).
    pub descriptions: BTreeMap<String, (Option<String>, Vec<String>)>,
    /// project -> (counter network, acknowledged increments, increments of unknown outcome).
    pub counters: BTreeMap<String, (String, u64, u64)>,
    /// Names of creates whose outcome is unknown (the server died, or the database went).
    pub unknown_creates: Vec<String>,
    /// Requests naming another project's private object that were not refused.
    pub isolation_breaches: Vec<String>,
}

/// How the replies went.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub requests: u64,
    pub by_status: BTreeMap<u16, u64>,
    /// Requests in flight when their server was killed (their outcome is unknown).
    pub lost: u64,
    /// Connections refused by a server that was down (sent again to another).
    pub refused: u64,
    /// Replies slower than the client's timeout.
    pub timeouts: u64,
    /// Replies with statuses the API does not document for the request, with what was sent.
    pub unexpected: Vec<String>,
    /// One error type seen per status, with how often (`409 IpAddressAlreadyAllocated`).
    pub errors: BTreeMap<String, u64>,
    /// 503s without `Retry-After`.
    pub busy_without_retry_after: u64,
    /// Quota counts seen above the limit.
    pub over_quota: Vec<String>,
    /// How long each answered request took.
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
}

impl Tally {
    fn merge(&mut self, o: Tally) {
        self.requests += o.requests;
        for (k, v) in o.by_status {
            *self.by_status.entry(k).or_default() += v;
        }
        self.lost += o.lost;
        self.refused += o.refused;
        self.timeouts += o.timeouts;
        self.unexpected.extend(o.unexpected);
        self.busy_without_retry_after += o.busy_without_retry_after;
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.over_quota.extend(o.over_quota);
        self.latencies.extend(o.latencies);
    }

    /// Successful replies per second.
    pub fn ok_per_second(&self) -> f64 {
        let ok: u64 = self.by_status.iter().filter(|(s, _)| **s < 300).map(|(_, n)| n).sum();
        ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Quotas the workload sets for the second project (and checks are never exceeded).
pub const QUOTA_NETWORKS: u64 = 12;
pub const QUOTA_PORTS: u64 = 60;

enum Reply {
    Done { status: u16, body: Value },
    Lost,
}

struct Client {
    http: reqwest::Client,
    servers: Vec<String>,
    project: String,
    rng: StdRng,
    tally: Tally,
    timeout: Duration,
}

impl Client {
    async fn call(&mut self, method: reqwest::Method, path: &str, body: Option<Value>, if_match: Option<u64>) -> Reply {
        let admin = self.project == "admin";
        self.call_as(admin, method, path, body, if_match).await
    }

    /// A request in the client's project, or (as Nova binds ports) as an admin.
    async fn call_as(
        &mut self,
        admin: bool,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<u64>,
    ) -> Reply {
        let server = &self.servers[self.rng.gen_range(0..self.servers.len())];
        let (project, roles) =
            if admin { ("admin", "admin,member,reader") } else { (self.project.as_str(), "member,reader") };
        let mut req = self
            .http
            .request(method.clone(), format!("{server}{path}"))
            .timeout(self.timeout)
            .header("X-Project-Id", project)
            .header("X-Roles", roles);
        if let Some(r) = if_match {
            req = req.header("If-Match", format!("revision_number={r}"));
        }
        let body_again = body.clone();
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.tally.requests += 1;
        let sent = Instant::now();
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => {
                // Refused: the server is down and nothing was sent. As a load balancer does,
                // send it to another (after a moment, in case all are down).
                self.tally.refused += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
                return Box::pin(self.call_as(admin, method, path, body_again, if_match)).await;
            }
            Err(e) => {
                if e.is_timeout() {
                    self.tally.timeouts += 1;
                    self.tally.unexpected.push(format!("{method} {path}: no reply within {:?}", self.timeout));
                } else {
                    self.tally.lost += 1;
                }
                return Reply::Lost;
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp.headers().contains_key("retry-after");
        let body = match resp.bytes().await {
            Ok(b) => serde_json::from_slice(&b).unwrap_or(Value::Null),
            Err(e) => {
                if e.is_timeout() {
                    self.tally.timeouts += 1;
                }
                self.tally.lost += 1;
                return Reply::Lost;
            }
        };
        *self.tally.by_status.entry(status).or_default() += 1;
        self.tally.latencies.push(sent.elapsed());
        let documented = matches!(status, 200 | 201 | 204 | 400 | 404 | 409 | 412 | 503);
        if !documented {
            self.tally.unexpected.push(format!("{method} {path}: {status} {body}"));
        }
        if status >= 400 {
            let kind = body["NeutronError"]["type"].as_str().unwrap_or("?");
            *self.tally.errors.entry(format!("{status} {kind}")).or_default() += 1;
        }
        if status == 503 {
            if !retry_after {
                self.tally.busy_without_retry_after += 1;
            }
            // The server is busy or the database is away: the outcome is known (nothing was
            // done), and a client waits before it sends more.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Reply::Done { status, body }
    }
}

/// Objects one client owns.
#[derive(Default)]
struct Owned {
    /// network -> whether it has its subnet, and its live ports.
    networks: Vec<(String, bool, Vec<String>)>,
    groups: Vec<String>,
}

/// Run the workload until `duration` passes; returns the ledger and the tally.
pub async fn run(config: WorkloadConfig) -> (Ledger, Tally) {
    let http = reqwest::Client::builder().pool_max_idle_per_host(16).build().unwrap_or_default();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let admin = |seed| Client {
        http: http.clone(),
        servers: config.servers.clone(),
        project: "admin".into(),
        rng: StdRng::seed_from_u64(seed),
        tally: Tally::default(),
        timeout: config.timeout,
    };
    let mut setup = admin(config.seed);
    prepare(&mut setup, &ledger).await;
    let started = Instant::now();
    let deadline = started + config.duration;
    let mut tasks = Vec::new();
    for (p, project) in PROJECTS.iter().enumerate() {
        for i in 0..config.clients_per_project {
            let client = Client {
                project: project.to_string(),
                rng: StdRng::seed_from_u64(config.seed ^ ((p * 1000 + i) as u64 + 1)),
                ..admin(0)
            };
            let ledger = ledger.clone();
            let hosts = config.hosts.clone();
            let tag = format!("{}{i}", ["a", "b"][p]);
            tasks.push(tokio::spawn(async move { writer(client, tag, ledger, hosts, deadline).await }));
        }
    }
    let reader = Client { project: PROJECTS[1].to_string(), ..admin(config.seed ^ 0xfeed) };
    tasks.push(tokio::spawn(read_only(reader, deadline)));
    let mut tally = setup.tally;
    for t in tasks {
        if let Ok(t) = t.await {
            tally.merge(t);
        }
    }
    tally.elapsed = started.elapsed();
    let ledger = Arc::try_unwrap(ledger).map(|m| m.into_inner().unwrap_or_default()).unwrap_or_default();
    (ledger, tally)
}

/// Quotas for the second project, and each project's `If-Match` counter network. Retried
/// until done (faults may already be running).
async fn prepare(admin: &mut Client, ledger: &Mutex<Ledger>) {
    let quota = json!({"quota": {"network": QUOTA_NETWORKS, "port": QUOTA_PORTS}});
    loop {
        let path = format!("/v2.0/quotas/{}", PROJECTS[1]);
        if let Reply::Done { status: 200, .. } =
            admin.call(reqwest::Method::PUT, &path, Some(quota.clone()), None).await
        {
            break;
        }
    }
    for project in PROJECTS {
        let name = format!("counter-{project}");
        let body = json!({"network": {"name": name, "description": "0", "project_id": project}});
        let id = loop {
            match admin.call(reqwest::Method::POST, "/v2.0/networks", Some(body.clone()), None).await {
                Reply::Done { status: 201, body } => {
                    break body["network"]["id"].as_str().unwrap_or_default().to_string()
                }
                _ => {
                    // Made by an attempt whose reply was lost?
                    let path = format!("/v2.0/networks?name={name}");
                    if let Reply::Done { status: 200, body } = admin.call(reqwest::Method::GET, &path, None, None).await
                    {
                        if let Some(id) = body["networks"][0]["id"].as_str() {
                            break id.to_string();
                        }
                    }
                }
            }
        };
        ledger.lock().unwrap().counters.insert(project.to_string(), (id, 0, 0));
    }
}

fn id_of(body: &Value, member: &str) -> String {
    body[member]["id"].as_str().unwrap_or_default().to_string()
}

async fn writer(
    mut c: Client,
    tag: String,
    ledger: Arc<Mutex<Ledger>>,
    hosts: Vec<String>,
    deadline: Instant,
) -> Tally {
    use reqwest::Method;
    let mut own = Owned::default();
    let mut seq = 0u64;
    let other = if c.project == PROJECTS[0] { PROJECTS[1] } else { PROJECTS[0] };
    while Instant::now() < deadline {
        seq += 1;
        let name = format!("t-{tag}-{seq}");
        let roll = c.rng.gen_range(0..100);
        match roll {
            // A network and its subnet.
            0..=9 if own.networks.len() < 4 => {
                let body = json!({"network": {"name": name}});
                match c.call(Method::POST, "/v2.0/networks", Some(body), None).await {
                    Reply::Done { status: 201, body } => {
                        let id = id_of(&body, "network");
                        ledger.lock().unwrap().networks.insert(id.clone(), (c.project.clone(), name.clone()));
                        own.networks.push((id, false, Vec::new()));
                    }
                    Reply::Lost => ledger.lock().unwrap().unknown_creates.push(name),
                    _ => {}
                }
            }
            10..=14 => {
                if let Some(i) = pick(&mut c.rng, own.networks.len()) {
                    if !own.networks[i].1 {
                        let body = json!({"subnet": {"network_id": own.networks[i].0, "ip_version": 4,
                                                     "cidr": WORKLOAD_CIDR, "name": name}});
                        match c.call(Method::POST, "/v2.0/subnets", Some(body), None).await {
                            Reply::Done { status: 201, .. } => own.networks[i].1 = true,
                            Reply::Lost => ledger.lock().unwrap().unknown_creates.push(name),
                            _ => {}
                        }
                    }
                }
            }
            // Ports, automatic or fixed addresses, with or without a group.
            15..=44 => {
                let Some(i) = pick(&mut c.rng, own.networks.len()) else { continue };
                let network = own.networks[i].0.clone();
                let host = hosts[c.rng.gen_range(0..hosts.len())].clone();
                let mut port = json!({"network_id": network, "name": name, "device_owner": "compute:nova",
                                      "device_id": name});
                if c.rng.gen_bool(0.4) {
                    let ip = format!("198.51.100.{}", c.rng.gen_range(2..31));
                    port["fixed_ips"] = json!([{"ip_address": ip}]);
                }
                if let Some(g) = pick(&mut c.rng, own.groups.len()) {
                    port["security_groups"] = json!([own.groups[g]]);
                }
                match c.call(Method::POST, "/v2.0/ports", Some(json!({"port": port})), None).await {
                    Reply::Done { status: 201, body } => {
                        let p = &body["port"];
                        let id = id_of(&body, "port");
                        let mac = p["mac_address"].as_str().unwrap_or_default().to_string();
                        let ip = p["fixed_ips"][0]["ip_address"].as_str().unwrap_or_default().to_string();
                        ledger.lock().unwrap().ports.insert(id.clone(), (network, mac, ip));
                        own.networks[i].2.push(id.clone());
                        // Bound to a host as Nova does, with a token of its own.
                        let bind = json!({"port": {"binding:host_id": host}});
                        c.call_as(true, Method::PUT, &format!("/v2.0/ports/{id}"), Some(bind), None).await;
                    }
                    Reply::Lost => ledger.lock().unwrap().unknown_creates.push(name),
                    _ => {}
                }
            }
            45..=54 => {
                let Some(i) = pick(&mut c.rng, own.networks.len()) else { continue };
                let Some(j) = pick(&mut c.rng, own.networks[i].2.len()) else { continue };
                let id = own.networks[i].2[j].clone();
                match c.call(Method::DELETE, &format!("/v2.0/ports/{id}"), None, None).await {
                    Reply::Done { status: 204 | 404, .. } => {
                        ledger.lock().unwrap().ports_deleted.insert(id);
                        own.networks[i].2.swap_remove(j);
                    }
                    Reply::Lost => {
                        ledger.lock().unwrap().ports_maybe_deleted.insert(id);
                    }
                    _ => {}
                }
            }
            // Updates: with If-Match on the client's own network, and without.
            55..=62 => {
                let Some(i) = pick(&mut c.rng, own.networks.len()) else { continue };
                let id = own.networks[i].0.clone();
                let path = format!("/v2.0/networks/{id}");
                let Reply::Done { status: 200, body } = c.call(Method::GET, &path, None, None).await else { continue };
                let revision = body["network"]["revision_number"].as_u64().unwrap_or(0);
                let value = format!("{name}-if-match");
                let update = json!({"network": {"description": value}});
                let reply = c.call(Method::PUT, &path, Some(update), Some(revision)).await;
                let mut l = ledger.lock().unwrap();
                let entry = l.descriptions.entry(id).or_default();
                match reply {
                    Reply::Done { status: 200, .. } => *entry = (Some(value), Vec::new()),
                    Reply::Lost => entry.1.push(value),
                    _ => {}
                }
            }
            63..=66 => {
                let Some(i) = pick(&mut c.rng, own.networks.len()) else { continue };
                let path = format!("/v2.0/networks/{}", own.networks[i].0);
                c.call(Method::PUT, &path, Some(json!({"network": {"name": format!("{name}-renamed")}})), None).await;
            }
            // The project's counter: read, add one, write with If-Match.
            67..=74 => {
                let counter = ledger.lock().unwrap().counters.get(&c.project).map(|c| c.0.clone());
                let Some(counter) = counter else { continue };
                let path = format!("/v2.0/networks/{counter}");
                let Reply::Done { status: 200, body } = c.call(Method::GET, &path, None, None).await else { continue };
                let revision = body["network"]["revision_number"].as_u64().unwrap_or(0);
                let n: u64 = body["network"]["description"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0);
                let update = json!({"network": {"description": (n + 1).to_string()}});
                let reply = c.call(Method::PUT, &path, Some(update), Some(revision)).await;
                let mut l = ledger.lock().unwrap();
                if let Some(entry) = l.counters.get_mut(&c.project) {
                    match reply {
                        Reply::Done { status: 200, .. } => entry.1 += 1,
                        Reply::Lost => entry.2 += 1,
                        _ => {}
                    }
                }
            }
            75..=79 => {
                let Some(i) = pick(&mut c.rng, own.networks.len()) else { continue };
                let id = own.networks[i].0.clone();
                let t = format!("tag-{seq}");
                if let Reply::Done { status: 201, .. } =
                    c.call(Method::PUT, &format!("/v2.0/networks/{id}/tags/{t}"), None, None).await
                {
                    ledger.lock().unwrap().tags.entry(id).or_default().insert(t);
                }
            }
            // Security groups and rules.
            80..=84 if own.groups.len() < 3 => {
                let body = json!({"security_group": {"name": name}});
                match c.call(Method::POST, "/v2.0/security-groups", Some(body), None).await {
                    Reply::Done { status: 201, body } => {
                        let id = id_of(&body, "security_group");
                        ledger.lock().unwrap().security_groups.insert(id.clone(), c.project.clone());
                        own.groups.push(id);
                    }
                    Reply::Lost => ledger.lock().unwrap().unknown_creates.push(name),
                    _ => {}
                }
            }
            85..=89 => {
                let Some(g) = pick(&mut c.rng, own.groups.len()) else { continue };
                let port = c.rng.gen_range(1..40);
                let body = json!({"security_group_rule": {"security_group_id": own.groups[g], "direction": "ingress",
                    "ethertype": "IPv4", "protocol": "tcp", "port_range_min": port, "port_range_max": port}});
                if let Reply::Done { status: 201, body } =
                    c.call(Method::POST, "/v2.0/security-group-rules", Some(body), None).await
                {
                    ledger.lock().unwrap().rules.insert(id_of(&body, "security_group_rule"), own.groups[g].clone());
                }
            }
            // Deletes of whole networks (refused while they have ports).
            90..=93 => {
                let Some(i) = pick(&mut c.rng, own.networks.len()) else { continue };
                let id = own.networks[i].0.clone();
                match c.call(Method::DELETE, &format!("/v2.0/networks/{id}"), None, None).await {
                    Reply::Done { status: 204 | 404, .. } => {
                        let mut l = ledger.lock().unwrap();
                        l.networks_deleted.insert(id);
                        l.ports_deleted.extend(own.networks[i].2.iter().cloned());
                        own.networks.swap_remove(i);
                    }
                    Reply::Lost => {
                        let mut l = ledger.lock().unwrap();
                        l.networks_maybe_deleted.insert(id);
                        l.ports_maybe_deleted.extend(own.networks[i].2.iter().cloned());
                    }
                    _ => {}
                }
            }
            // Another project's private objects, named directly: must be refused.
            _ => {
                let foreign: Vec<String> = {
                    let l = ledger.lock().unwrap();
                    l.networks
                        .iter()
                        .filter(|(id, (p, _))| p == other && !l.networks_deleted.contains(*id))
                        .map(|(id, _)| id.clone())
                        .chain(l.counters.get(other).map(|c| c.0.clone()))
                        .collect()
                };
                let Some(k) = pick(&mut c.rng, foreign.len()) else { continue };
                let body = json!({"port": {"network_id": foreign[k], "name": name}});
                if let Reply::Done { status, .. } = c.call(Method::POST, "/v2.0/ports", Some(body), None).await {
                    if status < 300 {
                        ledger
                            .lock()
                            .unwrap()
                            .isolation_breaches
                            .push(format!("port on {}'s network {}", other, foreign[k]));
                    }
                }
                let groups: Vec<String> = {
                    let l = ledger.lock().unwrap();
                    l.security_groups.iter().filter(|(_, p)| *p == other).map(|(id, _)| id.clone()).collect()
                };
                if let (Some(g), Some(i)) = (pick(&mut c.rng, groups.len()), pick(&mut c.rng, own.networks.len())) {
                    let body = json!({"port": {"network_id": own.networks[i].0, "name": format!("{name}-g"),
                                               "security_groups": [groups[g]]}});
                    match c.call(Method::POST, "/v2.0/ports", Some(body), None).await {
                        Reply::Done { status, body } if status < 300 => {
                            ledger
                                .lock()
                                .unwrap()
                                .isolation_breaches
                                .push(format!("port {} with {other}'s group", id_of(&body, "port")));
                        }
                        Reply::Lost => ledger.lock().unwrap().unknown_creates.push(format!("{name}-g")),
                        _ => {}
                    }
                }
            }
        }
    }
    c.tally
}

fn pick(rng: &mut StdRng, len: usize) -> Option<usize> {
    (len > 0).then(|| rng.gen_range(0..len))
}

/// A reader in the second project: lists never show another project's objects, and its
/// counts never pass its quotas.
async fn read_only(mut c: Client, deadline: Instant) -> Tally {
    use reqwest::Method;
    while Instant::now() < deadline {
        for (collection, quota) in [("networks", QUOTA_NETWORKS), ("ports", QUOTA_PORTS)] {
            let path = format!("/v2.0/{collection}?fields=id&fields=project_id");
            if let Reply::Done { status: 200, body } = c.call(Method::GET, &path, None, None).await {
                let items = body[collection].as_array().cloned().unwrap_or_default();
                let foreign: Vec<&Value> = items.iter().filter(|i| i["project_id"] != c.project.as_str()).collect();
                if !foreign.is_empty() {
                    c.tally.unexpected.push(format!("{} sees {collection} of others: {foreign:?}", c.project));
                }
                // Ports include the network's DHCP ports, which the quota does not count.
                let counted = if collection == "ports" {
                    let path = "/v2.0/ports?fields=id&device_owner=compute:nova";
                    match c.call(Method::GET, path, None, None).await {
                        Reply::Done { status: 200, body } => body["ports"].as_array().map_or(0, Vec::len),
                        _ => 0,
                    }
                } else {
                    items.len()
                };
                if counted as u64 > quota {
                    c.tally.over_quota.push(format!("{} {collection}: {counted} > {quota}", c.project));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.tally
}

/// Requests per status, for a report line.
pub fn status_line(t: &Tally) -> String {
    let by: Vec<String> = t.by_status.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    format!(
        "{} requests ({}), {} lost with a killed server, {} refused by a stopped one (sent elsewhere), {} timeouts",
        t.requests,
        by.join(", "),
        t.lost,
        t.refused,
        t.timeouts
    ) + &format!("; errors: {:?}", t.errors)
}

/// The ledger's sizes, for a report line.
pub fn ledger_line(l: &Ledger) -> String {
    let counters: HashMap<&String, (u64, u64)> = l.counters.iter().map(|(p, c)| (p, (c.1, c.2))).collect();
    format!(
        "acknowledged: {} networks ({} deleted), {} ports ({} deleted), {} groups, {} rules, {} tagged networks, \
         counters {counters:?}; {} creates of unknown outcome",
        l.networks.len(),
        l.networks_deleted.len(),
        l.ports.len(),
        l.ports_deleted.len(),
        l.security_groups.len(),
        l.rules.len(),
        l.tags.len(),
        l.unknown_creates.len()
    )
}
