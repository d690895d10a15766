//! `neutrino bench --tls-streams`: agents opening their streams to one server over TLS, beside
//! plain HTTP. Each simulated agent has a client of its own (its own connection and handshake,
//! no session resumption across agents), and trusts a CA made for the run (`neutrino_lab::pki`,
//! the `openssl` command).

use super::{ms, percentile};
use neutrino_lab::follower::HostStream;
use neutrino_lab::pki::TestCa;
use neutrino_tls::{ClientTls, ServerTls};
use std::time::{Duration, Instant};

/// The goal printed beside the figure.
const GOAL: Duration = Duration::from_secs(10);

pub async fn run(agents: usize) -> Result<(), String> {
    super::fanout::raise_open_files();
    let dir = std::env::temp_dir().join(format!("neutrino-bench-tls-{}", std::process::id()));
    let result = async {
        let ca = TestCa::new(&dir, "bench").map_err(|e| e.to_string())?;
        let issued = ca.issue("server", 1).map_err(|e| e.to_string())?;
        let ssl = ServerTls { cert_file: issued.cert, key_file: issued.key, ca_file: None };
        let trust = ClientTls { ca_file: Some(ca.cert.clone()), ..Default::default() };
        println!(
            "{agents} agents open their host's stream at once, each on a connection of its own (goal: all within {})",
            ms(GOAL)
        );
        // Alternating, twice each, so that neither gets the machine's quiet moment alone.
        for (round, tls) in [false, true, false, true].into_iter().enumerate() {
            let (base, task) = server(&dir, round, if tls { Some(&ssl) } else { None }).await?;
            let opened = open_all(&base, agents, &trust).await;
            task.abort();
            let (mut times, failed) = opened?;
            times.sort();
            println!(
                "  {:<10} all {} streams had their snapshot after {} (per agent p50 {}, p99 {}); {failed} failed",
                if tls { "TLS" } else { "plain HTTP" },
                times.len(),
                ms(times.last().copied().unwrap_or_default()),
                ms(percentile(&times, 0.5)),
                ms(percentile(&times, 0.99)),
            );
        }
        Ok(())
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn server(
    dir: &std::path::Path,
    round: usize,
    ssl: Option<&ServerTls>,
) -> Result<(String, tokio::task::JoinHandle<std::io::Result<()>>), String> {
    let config = neutrino_server::ServerConfig { ssl: ssl.cloned(), ..Default::default() };
    super::in_process_server(dir, &format!("server-{round}"), config).await
}

/// Open `agents` streams at once; each one's time to its snapshot, and how many failed.
async fn open_all(base: &str, agents: usize, trust: &ClientTls) -> Result<(Vec<Duration>, usize), String> {
    let clients: Vec<reqwest::Client> =
        (0..agents).map(|_| trust.client(None)).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, http) in clients.into_iter().enumerate() {
        let base = base.to_string();
        tasks.push(tokio::spawn(async move {
            let host = format!("bench-tls-host-{i}");
            let mut stream = HostStream::open(&http, &base, &host, None).await.ok()?;
            let first = stream.next(Duration::from_secs(60)).await.ok().flatten()?;
            let took = started.elapsed();
            // Held open until every agent is in.
            Some((took, first, stream))
        }));
    }
    let mut times = Vec::new();
    let mut failed = 0;
    let mut open = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Some((took, _, stream))) => {
                times.push(took);
                open.push(stream);
            }
            _ => failed += 1,
        }
    }
    drop(open);
    Ok((times, failed))
}
