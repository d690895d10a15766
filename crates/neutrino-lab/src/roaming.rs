//! Simulated agents that follow their host's stream over several servers, as agents behind a
//! load balancer (or with several `server_url`s) do: when their server's stream ends or
//! breaks, they resume on the next server from the revision they applied.

use crate::follower::{HostStream, HostView};
use neutrino_api::agent::StreamMessage;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// A stream silent for this long (the hub sends a heartbeat every 10 s) is taken for dead.
const SILENCE: Duration = Duration::from_secs(25);

/// What one simulated agent knows and went through.
#[derive(Debug, Default, Clone)]
pub struct AgentRecord {
    pub view: HostView,
    /// Streams it had to open again.
    pub reconnects: u32,
    /// From losing a stream to the first message of the next one.
    pub failovers: Vec<Duration>,
    /// When it lost its stream, while it has not been served again.
    pub lost_at: Option<Instant>,
    /// Messages that did not apply (out of order, or before a snapshot).
    pub errors: Vec<String>,
}

pub struct RoamingAgents {
    pub hosts: Vec<String>,
    pub records: Vec<Arc<Mutex<AgentRecord>>>,
    servers: Vec<String>,
    tasks: Vec<JoinHandle<()>>,
}

impl RoamingAgents {
    /// One agent per host, the i-th starting on server i (mod their number).
    pub fn start(servers: &[String], hosts: &[String]) -> RoamingAgents {
        let mut records = Vec::new();
        let mut tasks = Vec::new();
        for (i, host) in hosts.iter().enumerate() {
            let record = Arc::new(Mutex::new(AgentRecord::default()));
            records.push(record.clone());
            tasks.push(tokio::spawn(follow(host.clone(), servers.to_vec(), i % servers.len(), record)));
        }
        RoamingAgents { hosts: hosts.to_vec(), records, servers: servers.to_vec(), tasks }
    }

    /// Wait (at most `within`) until every agent's view equals a snapshot of its host taken
    /// afresh from a server, at the same revision or before it. Returns the hosts that did not
    /// get there, with what differed.
    pub async fn converged(&self, within: Duration) -> Vec<String> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + within;
        let mut pending: Vec<usize> = (0..self.hosts.len()).collect();
        let mut last = Vec::new();
        while !pending.is_empty() && Instant::now() < deadline {
            last.clear();
            let mut still = Vec::new();
            for &i in &pending {
                match self.fresh_view(&http, &self.hosts[i]).await {
                    Some((revision, state)) => {
                        let record = self.records[i].lock().unwrap_or_else(|e| e.into_inner());
                        let at = record.view.revision.unwrap_or(0);
                        if at >= revision && record.view.state == state {
                            continue;
                        }
                        last.push(format!("{}: view at {at}, fresh snapshot at {revision}", self.hosts[i]));
                    }
                    None => last.push(format!("{}: no server gave a snapshot", self.hosts[i])),
                }
                still.push(i);
            }
            pending = still;
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        last
    }

    async fn fresh_view(&self, http: &reqwest::Client, host: &str) -> Option<(u64, neutrino_api::agent::HostState)> {
        for server in &self.servers {
            let Ok(mut s) = HostStream::open(http, server, host, None).await else { continue };
            if let Ok(Some(StreamMessage::Snapshot { revision, state, .. })) = s.next(Duration::from_secs(10)).await {
                return Some((revision, state));
            }
        }
        None
    }

    pub fn snapshot(&self) -> Vec<AgentRecord> {
        self.records.iter().map(|r| r.lock().unwrap_or_else(|e| e.into_inner()).clone()).collect()
    }
}

impl Drop for RoamingAgents {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn follow(host: String, servers: Vec<String>, mut at: usize, record: Arc<Mutex<AgentRecord>>) {
    let http = reqwest::Client::new();
    // Registered as a Linux bridge agent first (so that ports bind to its host), on whichever
    // server answers.
    let registration = serde_json::json!({"host": host, "agent_type": "Linux bridge agent",
        "tunnel_ip": format!("192.0.2.{}", 10 + at), "configurations": {"tunnel_types": ["vxlan"], "l2_population": true}});
    let mut tries = 0;
    loop {
        let url = format!("{}/v2.0/neutrino/agents?starting=true", servers[(at + tries) % servers.len()]);
        match http.post(url).json(&registration).send().await {
            Ok(r) if r.status().is_success() => break,
            _ => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    loop {
        let since = record.lock().unwrap_or_else(|e| e.into_inner()).view.revision;
        if let Ok(mut stream) = HostStream::open(&http, &servers[at], &host, since).await {
            while let Ok(Some(message)) = stream.next(SILENCE).await {
                let mut r = record.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(t) = r.lost_at.take() {
                    r.failovers.push(t.elapsed());
                }
                if let Err(e) = r.view.apply(&message) {
                    r.errors.push(format!("{host} on {}: {e}", servers[at]));
                }
            }
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut r = record.lock().unwrap_or_else(|e| e.into_inner());
        r.lost_at.get_or_insert_with(Instant::now);
        r.reconnects += 1;
        drop(r);
        at = (at + 1) % servers.len();
    }
}
