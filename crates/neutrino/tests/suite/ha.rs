//! HA under faults: three real server processes on one PostgreSQL (a cluster of the test's
//! own, so that it can be restarted), a mixed workload from two projects and a reader, agents
//! roaming between the servers, and meanwhile servers killed with SIGKILL, one stopped with
//! SIGTERM, and the database restarted. Afterwards the database and the API are checked.
//!
//! `NEUTRINO_TORTURE_SECONDS` makes the workload longer (the CI run is 40 s).

use crate::common::{unique, TempDir};
use neutrino_lab::ha::{postgres_binaries, PgCluster, ServerProcess};
use neutrino_lab::roaming::RoamingAgents;
use neutrino_lab::workload::{self, Ledger, WorkloadConfig, PROJECTS, QUOTA_NETWORKS, QUOTA_PORTS};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sqlx::{Connection, Row};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const SERVERS: usize = 3;

fn torture_seconds() -> u64 {
    std::env::var("NEUTRINO_TORTURE_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(40)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs root and PostgreSQL's server binaries (a cluster of its own); scripts/test runs it"]
async fn servers_survive_kills_and_a_database_restart() {
    assert!(postgres_binaries().is_some(), "PostgreSQL's server binaries (/usr/lib/postgresql/*/bin) are needed");
    let _alone = crate::common::HEAVY.lock().await;
    let dir = TempDir(std::env::temp_dir().join(unique("neutrino-torture")));
    let mut pg = PgCluster::create("neutrino-torture").expect("a PostgreSQL cluster of the test's own");
    pg.create_database("neutrino").expect("create the database");
    let connection = pg.url("neutrino");
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_neutrino"));
    let mut servers: Vec<ServerProcess> = (0..SERVERS)
        .map(|i| ServerProcess::start(binary, &dir.0, &format!("server{i}"), &connection, "").expect("start a server"))
        .collect();
    let bases: Vec<String> = servers.iter().map(ServerProcess::base).collect();
    let hosts: Vec<String> = (1..=4).map(|i| format!("torture-host-{i}")).collect();
    let agents = RoamingAgents::start(&bases, &hosts);

    let seconds = torture_seconds();
    let seed = std::env::var("NEUTRINO_TORTURE_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(7);
    let config = WorkloadConfig {
        servers: bases.clone(),
        clients_per_project: 6,
        duration: Duration::from_secs(seconds),
        hosts: hosts.clone(),
        timeout: Duration::from_secs(30),
        seed,
    };
    let load = tokio::spawn(workload::run(config));

    // The faults, while the workload runs.
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut kills = 0;
    let mut terminated = None;
    let mut pg_restarted = None;
    let mut next_kill = Duration::from_secs(2);
    while started.elapsed() < Duration::from_secs(seconds.saturating_sub(3)) {
        let now = started.elapsed();
        if pg_restarted.is_none() && now >= Duration::from_secs(seconds / 2) {
            tokio::task::block_in_place(|| {
                pg.stop();
                // Longer than a request waits for a connection: some get their 503.
                std::thread::sleep(Duration::from_secs(10));
                pg.start().expect("PostgreSQL starts again");
            });
            pg_restarted = Some(now);
        } else if now >= next_kill {
            let i = rng.gen_range(0..SERVERS);
            if terminated.is_none() && kills == 3 {
                // Once: SIGTERM, which must end the streams and exit within the grace period.
                let took = tokio::task::block_in_place(|| servers[i].terminate(Duration::from_secs(15)));
                terminated = Some(took);
            } else {
                tokio::task::block_in_place(|| servers[i].kill());
                kills += 1;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            servers[i].spawn().expect("restart the server");
            next_kill = now + Duration::from_millis(rng.gen_range(2000..4000));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (ledger, tally) = load.await.expect("the workload");
    for s in &servers {
        if !s.wait_listening(Duration::from_secs(60)) {
            panic!(
                "a server is not back:\n{}\nthe database's sessions:\n{}",
                s.log_tail(30),
                sessions(&connection).await
            );
        }
    }
    println!(
        "torture: {seconds} s, {SERVERS} servers, {kills} SIGKILLs, one SIGTERM (exited in {terminated:?}), \
         PostgreSQL restarted at {pg_restarted:?}"
    );
    println!("torture: {}", workload::status_line(&tally));
    println!("torture: {}", workload::ledger_line(&ledger));
    assert!(pg_restarted.is_some() && kills >= 3, "the faults ran");
    let took = terminated.expect("one server was stopped with SIGTERM");
    assert!(took < Duration::from_secs(12), "SIGTERM: the server exits within graceful_shutdown_timeout ({took:?})");

    let mut problems = Vec::new();
    problems.extend(tally.unexpected.iter().map(|u| format!("reply: {u}")));
    if tally.busy_without_retry_after > 0 {
        problems.push(format!("{} replies of 503 without Retry-After", tally.busy_without_retry_after));
    }
    problems.extend(tally.over_quota.iter().map(|q| format!("quota: {q}")));
    problems.extend(ledger.isolation_breaches.iter().map(|b| format!("isolation: {b}")));
    for s in &servers {
        problems.extend(s.log_problems().into_iter().map(|l| format!("log of port {}: {l}", s.port)));
    }

    // Every agent ends with the view a fresh snapshot gives.
    let unconverged = agents.converged(Duration::from_secs(60)).await;
    problems.extend(unconverged.into_iter().map(|u| format!("agent: {u}")));
    let records = agents.snapshot();
    for r in &records {
        problems.extend(r.errors.iter().map(|e| format!("agent stream: {e}")));
    }
    let failovers: Vec<Duration> = records.iter().flat_map(|r| r.failovers.iter().copied()).collect();
    println!(
        "torture: agents reconnected {} times; longest wait for the next server {:?}",
        records.iter().map(|r| r.reconnects).sum::<u32>(),
        failovers.iter().max()
    );

    problems.extend(database_checks(&connection).await);
    problems.extend(ledger_checks(&bases[0], &ledger).await);
    drop(agents);
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

/// What the tables must never hold, however the writes were interrupted.
async fn database_checks(connection: &str) -> Vec<String> {
    let mut c = sqlx::PgConnection::connect(connection).await.expect("connect for the checks");
    let checks: &[(&str, &str)] = &[
        ("duplicate IP", "SELECT network_id || ' ' || ip_address FROM ip_allocations GROUP BY network_id, ip_address HAVING count(*) > 1"),
        ("duplicate MAC", "SELECT network_id || ' ' || mac_address FROM ports GROUP BY network_id, mac_address HAVING count(*) > 1"),
        (
            "duplicate segment id",
            "SELECT network_type || ' ' || segmentation_id FROM network_segments WHERE segmentation_id IS NOT NULL \
             GROUP BY network_type, physical_network, segmentation_id HAVING count(*) > 1",
        ),
        (
            "allocation without its segment",
            "SELECT a.network_id || ' ' || a.segmentation_id FROM segment_allocations a WHERE NOT EXISTS \
             (SELECT 1 FROM network_segments s WHERE s.network_id = a.network_id AND s.network_type = a.network_type \
              AND s.segmentation_id = a.segmentation_id)",
        ),
        (
            "network without a segment",
            "SELECT n.id FROM networks n WHERE NOT EXISTS (SELECT 1 FROM network_segments s WHERE s.network_id = n.id)",
        ),
        (
            "segment without its network",
            "SELECT s.id FROM network_segments s WHERE NOT EXISTS (SELECT 1 FROM networks n WHERE n.id = s.network_id)",
        ),
        (
            "IP allocation without its port, or on another network",
            "SELECT a.port_id || ' ' || a.ip_address FROM ip_allocations a LEFT JOIN ports p ON p.id = a.port_id \
             LEFT JOIN subnets s ON s.id = a.subnet_id \
             WHERE p.id IS NULL OR s.id IS NULL OR p.network_id <> a.network_id OR s.network_id <> a.network_id",
        ),
        (
            "rule without its group",
            "SELECT r.id FROM security_group_rules r WHERE NOT EXISTS \
             (SELECT 1 FROM security_groups g WHERE g.id = r.security_group_id)",
        ),
        (
            "tag of nothing",
            "SELECT t.resource_id FROM tags t WHERE t.resource_type = 'networks' AND NOT EXISTS \
             (SELECT 1 FROM networks n WHERE n.id = t.resource_id)",
        ),
        (
            "port on another project's private network",
            "SELECT p.id FROM ports p JOIN networks n ON n.id = p.network_id \
             WHERE p.project_id <> n.project_id AND NOT n.shared AND p.device_owner NOT LIKE 'network:%'",
        ),
        (
            "port with another project's security group",
            "SELECT p.id FROM port_security_groups x JOIN ports p ON p.id = x.port_id \
             JOIN security_groups g ON g.id = x.security_group_id WHERE g.project_id <> p.project_id",
        ),
        (
            "subnet from another project's private pool",
            "SELECT s.id FROM subnets s JOIN subnetpools sp ON sp.id = s.subnetpool_id \
             WHERE sp.project_id <> s.project_id AND NOT sp.shared",
        ),
    ];
    let mut problems = Vec::new();
    for (what, sql) in checks {
        match sqlx::query(sql).fetch_all(&mut c).await {
            Ok(rows) => {
                for r in rows.iter().take(5) {
                    problems.push(format!("database: {what}: {}", r.try_get::<String, _>(0).unwrap_or_default()));
                }
            }
            Err(e) => problems.push(format!("database: the check '{what}' failed: {e}")),
        }
    }
    let b = PROJECTS[1];
    for (table, extra, limit) in
        [("networks", "", QUOTA_NETWORKS), ("ports", " AND device_owner = 'compute:nova'", QUOTA_PORTS)]
    {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE project_id = $1{extra}"))
            .bind(b)
            .fetch_one(&mut c)
            .await
            .unwrap_or(0);
        if n as u64 > limit {
            problems.push(format!("database: {b} has {n} {table}, over its quota of {limit}"));
        }
    }
    problems
}

/// Every acknowledged write is there, every acknowledged delete is not, and no update that
/// was acknowledged was lost.
async fn ledger_checks(base: &str, ledger: &Ledger) -> Vec<String> {
    let admin = neutrino_lab::ApiClient::new(base).acting_as("admin", "admin,member,reader");
    let mut problems = Vec::new();
    let list = |path: &'static str| {
        let admin = admin.clone();
        async move {
            let body = admin.get(&format!("/v2.0/{path}")).await.expect("list as admin");
            body[path.replace('-', "_")]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|item| (item["id"].as_str().unwrap_or_default().to_string(), item))
                .collect::<BTreeMap<String, Value>>()
        }
    };
    let networks = list("networks").await;
    let ports = list("ports").await;
    let groups = list("security-groups").await;
    let rules = list("security-group-rules").await;

    let network_gone = |id: &String| ledger.networks_deleted.contains(id) || ledger.networks_maybe_deleted.contains(id);
    for (id, (project, name)) in &ledger.networks {
        match (networks.get(id), network_gone(id)) {
            (None, false) => problems.push(format!("acknowledged network {name} ({id}) is missing")),
            (Some(n), false) if n["project_id"] != project.as_str() => {
                problems.push(format!("network {id} changed project: {}", n["project_id"]))
            }
            _ => {}
        }
    }
    for id in &ledger.networks_deleted {
        if networks.contains_key(id) {
            problems.push(format!("network {id} is back after its delete was acknowledged"));
        }
    }
    for (id, (network, mac, ip)) in &ledger.ports {
        let gone =
            ledger.ports_deleted.contains(id) || ledger.ports_maybe_deleted.contains(id) || network_gone(network);
        match (ports.get(id), gone) {
            (None, false) => problems.push(format!("acknowledged port {id} is missing")),
            (Some(p), false) => {
                let now_ip = p["fixed_ips"][0]["ip_address"].as_str().unwrap_or_default();
                if p["mac_address"] != mac.as_str() || now_ip != ip {
                    problems.push(format!("port {id}: acknowledged {mac} {ip}, now {} {now_ip}", p["mac_address"]));
                }
            }
            _ => {}
        }
    }
    for id in &ledger.ports_deleted {
        if ports.contains_key(id) {
            problems.push(format!("port {id} is back after its delete was acknowledged"));
        }
    }
    for id in ledger.security_groups.keys() {
        if !groups.contains_key(id) {
            problems.push(format!("acknowledged security group {id} is missing"));
        }
    }
    for (id, group) in &ledger.rules {
        if !rules.contains_key(id) {
            problems.push(format!("acknowledged rule {id} of {group} is missing"));
        }
    }
    for (id, tags) in &ledger.tags {
        let Some(n) = networks.get(id) else { continue };
        let now: BTreeSet<&str> = n["tags"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        for t in tags {
            if !now.contains(t.as_str()) {
                problems.push(format!("network {id}: acknowledged tag {t} is missing"));
            }
        }
    }
    for (id, (acked, unknown)) in &ledger.descriptions {
        let Some(n) = networks.get(id) else { continue };
        let now = n["description"].as_str().unwrap_or_default();
        let fine =
            acked.as_deref() == Some(now) || unknown.iter().any(|u| u == now) || (acked.is_none() && now.is_empty());
        if !fine {
            problems.push(format!("network {id}: description {now:?}, last acknowledged {acked:?} (lost update)"));
        }
    }
    for (project, (id, acked, unknown)) in &ledger.counters {
        let now: u64 =
            networks.get(id).and_then(|n| n["description"].as_str()).and_then(|d| d.parse().ok()).unwrap_or(u64::MAX);
        if now < *acked || now > acked + unknown {
            problems.push(format!(
                "{project}'s counter is {now}: {acked} increments acknowledged, {unknown} of unknown outcome (lost update)"
            ));
        }
    }
    problems
}

/// What each session of the database is doing (for a failure message).
async fn sessions(connection: &str) -> String {
    let Ok(mut c) = sqlx::PgConnection::connect(connection).await else { return "(no connection)".into() };
    let rows = sqlx::query(
        "SELECT pid::text || ' ' || coalesce(state, '') || ' ' || coalesce(wait_event_type, '') || ':' || \
         coalesce(wait_event, '') || ' ' || left(coalesce(query, ''), 160) FROM pg_stat_activity WHERE datname = 'neutrino'",
    )
    .fetch_all(&mut c)
    .await
    .unwrap_or_default();
    rows.iter().map(|r| r.try_get::<String, _>(0).unwrap_or_default()).collect::<Vec<_>>().join("\n")
}
