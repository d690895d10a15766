//! The fan-out hub: one task per server that folds the change log into the host views and
//! sends each connected host exactly the entries of its view that a revision changed.
//!
//! The task owns a [`History`] (the model plus the recent revisions). It reads the log in
//! revision order as soon as the store says the head moved (a commit here, or a NOTIFY from
//! another server's sequencer), and every second anyway. For each revision it asks the model
//! which entries of which *connected* hosts' views changed; the cost is proportional to those
//! entries, not to the number of hosts. Each host's update is serialized once and handed to
//! its streams' queues. A stream whose queue is full is closed: its agent reconnects with
//! `since=R` and gets what it missed.

use bytes::Bytes;
use neutrino_api::agent::{HostDelta, StreamMessage};
use neutrino_domain::topology::{History, Topology};
use neutrino_store::Store;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::{HostLabels, Metrics};

/// How many rows of the log one read asks for (whole revisions: the last one may add more).
const READ_BATCH: u64 = 2000;
/// How long a resume from a revision this server has not read yet may wait for it before
/// the agent gets a snapshot instead.
const PENDING_DEADLINE: Duration = Duration::from_secs(5);
/// Messages a stream may have queued before it is closed as too slow.
const STREAM_QUEUE: usize = 4096;
/// How long a quiet stream waits before it gets a heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// How often the log is read even when nothing said it moved.
const POLL: Duration = Duration::from_secs(1);
/// How often this server compacts the log.
const COMPACT_EVERY: Duration = Duration::from_secs(60);

/// Tuning of the hub.
#[derive(Debug, Clone, Copy)]
pub struct HubConfig {
    /// Whether views carry remote ports (`l2population`).
    pub l2population: bool,
    /// Revisions kept for resuming agents (in memory and in the log).
    pub keep_revisions: u64,
}

/// One message queued for a stream, with the revision it brings the stream to.
pub struct Outgoing {
    pub revision: u64,
    pub line: Bytes,
}

/// What a new stream gets: its first message, then its queue.
pub struct Subscription {
    pub first: Outgoing,
    pub updates: mpsc::Receiver<Outgoing>,
    /// The revision the stream has been sent up to (the stream updates it as it writes).
    pub delivered: Arc<AtomicU64>,
    /// Whether the first message is a snapshot (rather than a resumed update).
    pub snapshot: bool,
}

struct Request {
    host: String,
    since: Option<u64>,
    reply: oneshot::Sender<Subscription>,
    /// When it first had to wait for this server to read further.
    waiting_since: Option<Instant>,
}

struct Stream {
    queue: mpsc::Sender<Outgoing>,
    delivered: Arc<AtomicU64>,
}

/// What the metrics see of one stream: how far it was sent, and its queue (a stream with an
/// empty queue is current at the revision the views are at).
#[derive(Clone)]
struct StreamGauge {
    delivered: Arc<AtomicU64>,
    queue: mpsc::WeakSender<Outgoing>,
}

type SharedStreams = Arc<Mutex<HashMap<String, Vec<StreamGauge>>>>;

/// The handle the HTTP side holds: cheap to clone.
#[derive(Clone)]
pub struct Hub {
    requests: mpsc::Sender<Request>,
    /// Who is connected (for metrics), shared with the task.
    streams: SharedStreams,
    head: Arc<AtomicU64>,
    applied: Arc<AtomicU64>,
    metrics: Metrics,
}

#[derive(Debug, thiserror::Error)]
#[error("the agent stream is not available on this server")]
pub struct HubUnavailable;

impl Hub {
    /// Load the log and start the task (on the current Tokio runtime).
    pub async fn start(store: Store, config: HubConfig, metrics: Metrics) -> Result<Hub, neutrino_store::StoreError> {
        let history = load(&store, config).await?;
        tracing::info!(
            revision = history.revision(),
            objects = history.model().len(),
            resumable_from = history.start(),
            "host views loaded from the change log"
        );
        let (requests, rx) = mpsc::channel(1024);
        let streams = Arc::new(Mutex::new(HashMap::new()));
        let head = Arc::new(AtomicU64::new(history.revision()));
        let applied = Arc::new(AtomicU64::new(history.revision()));
        let task = Task {
            store,
            config,
            history,
            streams: HashMap::new(),
            shared: streams.clone(),
            head: head.clone(),
            applied: applied.clone(),
            metrics: metrics.clone(),
            pending: Vec::new(),
        };
        tokio::spawn(task.run(rx));
        Ok(Hub { requests, streams, head, applied, metrics })
    }

    /// Subscribe to `host`'s view: a snapshot, or with `since` what changed after it.
    pub async fn subscribe(&self, host: &str, since: Option<u64>) -> Result<Subscription, HubUnavailable> {
        let (reply, answer) = oneshot::channel();
        let request = Request { host: host.to_string(), since, reply, waiting_since: None };
        self.requests.send(request).await.map_err(|_| HubUnavailable)?;
        answer.await.map_err(|_| HubUnavailable)
    }

    /// Bring the per-stream gauges up to date (before a scrape). A stream's lag is how many
    /// revisions of the log it is not known to be current at: the head, less what it was
    /// sent or (once its queue is empty) the revision the views are at.
    pub fn refresh_metrics(&self) {
        let head = self.head.load(Ordering::Relaxed);
        let applied = self.applied.load(Ordering::Relaxed);
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        self.metrics.stream_lag.clear();
        let mut connected = 0;
        let mut hosts = 0;
        for (host, gauges) in streams.iter() {
            let mut behind = None;
            for g in gauges {
                let Some(queue) = g.queue.upgrade() else { continue };
                let current = if queue.capacity() == queue.max_capacity() {
                    applied
                } else {
                    g.delivered.load(Ordering::Relaxed)
                };
                connected += 1;
                behind = behind.max(Some(head.saturating_sub(current)));
            }
            if let Some(behind) = behind {
                hosts += 1;
                self.metrics.stream_lag.get_or_create(&HostLabels { host: host.clone() }).set(behind as i64);
            }
        }
        self.metrics.streams.set(connected);
        self.metrics.stream_hosts.set(hosts);
        self.metrics.log_head.set(head as i64);
    }
}

/// The model at the log's head: every retained revision folded in order. Views can be
/// rebuilt back to the compaction horizon (everything after it is kept whole).
///
/// A compaction committed while the log is read could remove an object's deletion after its
/// older image was read, so the horizon is read again afterwards and the load repeated if it
/// moved.
async fn load(store: &Store, config: HubConfig) -> Result<History, neutrino_store::StoreError> {
    loop {
        let horizon = store.log_horizon().await?;
        let mut history = History::new(Topology::new(config.l2population), 0, config.keep_revisions as usize);
        loop {
            let revisions = store.log_since(history.revision(), READ_BATCH * 10).await?;
            if revisions.is_empty() {
                break;
            }
            for r in &revisions {
                history.load(r.revision, &r.changes);
            }
        }
        if store.log_horizon().await? != horizon {
            tracing::info!("the change log was compacted while it was read; reading it again");
            continue;
        }
        history.forget_before(horizon);
        return Ok(history);
    }
}

struct Task {
    store: Store,
    config: HubConfig,
    history: History,
    streams: HashMap<String, Vec<Stream>>,
    shared: SharedStreams,
    head: Arc<AtomicU64>,
    applied: Arc<AtomicU64>,
    metrics: Metrics,
    /// Agents that asked to resume from a revision this server has not read yet.
    pending: Vec<Request>,
}

impl Task {
    async fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        let mut head = self.store.subscribe();
        head.mark_changed();
        let mut poll = tokio::time::interval(POLL);
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        let mut compact = tokio::time::interval(COMPACT_EVERY);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await;
        compact.tick().await;
        loop {
            tokio::select! {
                request = requests.recv() => {
                    let Some(request) = request else { return };
                    // Everyone waiting is answered from one read of everything committed so
                    // far (what an agent's caller may just have written): number what is
                    // pending, and read it.
                    let mut waiting = vec![request];
                    while let Ok(r) = requests.try_recv() {
                        waiting.push(r);
                    }
                    if let Ok(Some(head)) = self.store.sequence().await {
                        self.head.fetch_max(head, Ordering::Relaxed);
                    }
                    self.catch_up().await;
                    for request in waiting {
                        self.subscribe(request);
                    }
                }
                changed = head.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let known = *head.borrow_and_update();
                    self.head.fetch_max(known, Ordering::Relaxed);
                    self.catch_up().await;
                }
                _ = poll.tick() => {
                    self.reload_if_behind_horizon().await;
                    self.catch_up().await;
                }
                _ = heartbeat.tick() => self.heartbeat(),
                _ = compact.tick() => self.compact(),
            }
        }
    }

    /// Read and apply every revision after the one the views are at.
    async fn catch_up(&mut self) {
        loop {
            let after = self.history.revision();
            let revisions = match self.store.log_since(after, READ_BATCH).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the change log failed; retrying");
                    return;
                }
            };
            if revisions.is_empty() {
                break;
            }
            let rows: usize = revisions.iter().map(|r| r.changes.len()).sum();
            let started = Instant::now();
            for r in &revisions {
                if r.revision <= self.history.revision() {
                    continue;
                }
                if self.streams.is_empty() {
                    self.history.load(r.revision, &r.changes);
                    continue;
                }
                let streams = &self.streams;
                let deltas = self.history.apply(r.revision, &r.changes, &|host| streams.contains_key(host));
                for (host, delta) in deltas {
                    self.send(&host, r.revision, delta);
                }
            }
            self.metrics.fanout_seconds.observe(started.elapsed().as_secs_f64());
            self.note_revision();
            if (rows as u64) < READ_BATCH {
                // The read reached the end of what is numbered.
                break;
            }
        }
        self.metrics.log_head.set(self.head.load(Ordering::Relaxed) as i64);
        if !self.pending.is_empty() {
            for request in std::mem::take(&mut self.pending) {
                self.subscribe(request);
            }
        }
    }

    /// A hub that fell further behind than the log keeps (the log was compacted past the
    /// revision it is at) would miss deletions: it reads the log afresh, and its streams are
    /// closed so their agents resume (with a snapshot) from the new views.
    async fn reload_if_behind_horizon(&mut self) {
        let horizon = match self.store.log_horizon().await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "reading the change log's horizon failed");
                return;
            }
        };
        if horizon <= self.history.revision() {
            return;
        }
        tracing::warn!(
            revision = self.history.revision(),
            horizon,
            "the change log was compacted past this server's views; reading it again"
        );
        match load(&self.store, self.config).await {
            Ok(history) => {
                self.history = history;
                self.streams.clear();
                self.share_all();
                self.note_revision();
            }
            Err(e) => tracing::warn!(error = %e, "reading the change log failed; retrying"),
        }
    }

    fn note_revision(&self) {
        let revision = self.history.revision();
        self.head.fetch_max(revision, Ordering::Relaxed);
        self.applied.store(revision, Ordering::Relaxed);
        self.metrics.log_applied.set(revision as i64);
    }

    fn send(&mut self, host: &str, revision: u64, delta: HostDelta) {
        let line = encode(&StreamMessage::Update { revision, delta });
        self.deliver(host, revision, line);
    }

    /// Queue `line` on every stream of `host`; close the streams that cannot keep up.
    fn deliver(&mut self, host: &str, revision: u64, line: Bytes) {
        let Some(streams) = self.streams.get_mut(host) else {
            return;
        };
        let before = streams.len();
        streams.retain(|s| match s.queue.try_send(Outgoing { revision, line: line.clone() }) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(%host, "agent stream too slow; closing it (the agent resumes from its revision)");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        let gone = streams.len() != before;
        if streams.is_empty() {
            self.streams.remove(host);
        }
        if gone {
            self.share(host);
        }
    }

    fn heartbeat(&mut self) {
        let revision = self.history.revision();
        let line = encode(&StreamMessage::Heartbeat { revision });
        let hosts: Vec<String> = self.streams.keys().cloned().collect();
        for host in hosts {
            self.deliver(&host, revision, line.clone());
        }
    }

    fn compact(&self) {
        let store = self.store.clone();
        let keep = self.config.keep_revisions;
        tokio::spawn(async move {
            if let Err(e) = store.compact_log(keep).await {
                tracing::warn!(error = %e, "compacting the change log failed");
            }
        });
    }

    /// Answer a subscription at the revision the views are at: a snapshot, or what changed
    /// after `since` when the history reaches back that far.
    fn subscribe(&mut self, request: Request) {
        let revision = self.history.revision();
        let host = request.host.as_str();
        if let Some(since) = request.since {
            let waited = request.waiting_since.is_some_and(|t| t.elapsed() >= PENDING_DEADLINE);
            if since > revision && self.pending.len() < 10_000 && !waited {
                // The agent was served by a server further ahead; wait until this one reads
                // that far (the next catch-up retries). A revision the log does not reach
                // gets a snapshot, and so does one still unread after the deadline.
                let head = self.head.load(Ordering::Relaxed);
                if since <= head {
                    let mut request = request;
                    request.waiting_since.get_or_insert_with(Instant::now);
                    self.pending.push(request);
                    return;
                }
            }
        }
        let resumed = request.since.and_then(|since| self.history.delta_since(host, since));
        let snapshot = resumed.is_none();
        let first = match resumed {
            Some(delta) if delta.is_empty() => StreamMessage::Heartbeat { revision },
            Some(delta) => StreamMessage::Update { revision, delta },
            None => StreamMessage::Snapshot {
                revision,
                state: self.history.model().view(host),
                protocol: neutrino_api::agent::PROTOCOL_VERSION,
            },
        };
        let (queue, updates) = mpsc::channel(STREAM_QUEUE);
        let delivered = Arc::new(AtomicU64::new(request.since.unwrap_or(0)));
        let subscription = Subscription {
            first: Outgoing { revision, line: encode(&first) },
            updates,
            delivered: delivered.clone(),
            snapshot,
        };
        if request.reply.send(subscription).is_ok() {
            self.streams.entry(request.host.clone()).or_default().push(Stream { queue, delivered });
            self.share(&request.host);
        }
    }

    /// Publish who of `host` is connected, for the metrics.
    fn share(&self, host: &str) {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        match self.streams.get(host) {
            Some(streams) => {
                shared.insert(host.to_string(), gauges(streams));
            }
            None => {
                shared.remove(host);
            }
        }
    }

    /// Publish every connected stream, for the metrics.
    fn share_all(&self) {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        shared.clear();
        for (host, streams) in &self.streams {
            shared.insert(host.clone(), gauges(streams));
        }
    }
}

fn gauges(streams: &[Stream]) -> Vec<StreamGauge> {
    streams.iter().map(|s| StreamGauge { delivered: s.delivered.clone(), queue: s.queue.downgrade() }).collect()
}

fn encode(message: &StreamMessage) -> Bytes {
    let mut line = serde_json::to_vec(message).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}
