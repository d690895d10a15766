//! Which gateway hosts are alive, as this host sees them: the routing reconciler names the
//! underlay addresses of the gateway hosts of its routers' centralized SNAT, and a probe task
//! sends each an ICMP echo every `interval`. A host that has not answered for `misses`
//! intervals is dead; one that answers again is alive. Every change wakes the reconcile loop,
//! so the hosts move their routers' default route (and the standby takes the gateway address)
//! without asking any server, as OVN's BFD between chassis.
//!
//! A target is alive until proven dead: a restarted agent must not fail over from a gateway
//! host it has merely not heard from yet.

use neutrino_dataplane::probe::EchoSocket;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// The liveness of the gateway hosts this host routes through, shared by the probe task and
/// the routing reconciler.
pub struct GatewayLiveness {
    inner: Mutex<Inner>,
    /// Woken on every change of who is alive.
    pub changed: Arc<Notify>,
    interval: Duration,
    misses: u32,
}

#[derive(Default)]
struct Inner {
    targets: BTreeMap<Ipv4Addr, Target>,
    /// Counts changes of who is alive.
    generation: u64,
}

struct Target {
    /// Since when it is a target or last answered.
    heard: Instant,
    alive: bool,
}

impl GatewayLiveness {
    pub fn new(interval: Duration, misses: u32, changed: Arc<Notify>) -> Arc<GatewayLiveness> {
        Arc::new(GatewayLiveness { inner: Mutex::default(), changed, interval, misses: misses.max(1) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Probe exactly these addresses (new ones start alive).
    pub fn set_targets(&self, targets: &BTreeSet<Ipv4Addr>) {
        let mut inner = self.lock();
        inner.targets.retain(|ip, _| targets.contains(ip));
        let now = Instant::now();
        for ip in targets {
            inner.targets.entry(*ip).or_insert(Target { heard: now, alive: true });
        }
    }

    /// Whether `ip` answers (one not probed counts as alive).
    pub fn is_alive(&self, ip: Ipv4Addr) -> bool {
        self.lock().targets.get(&ip).is_none_or(|t| t.alive)
    }

    /// Changes with every change of who is alive.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    fn targets(&self) -> Vec<Ipv4Addr> {
        self.lock().targets.keys().copied().collect()
    }

    /// `ip` answered.
    fn heard(&self, ip: Ipv4Addr) {
        let mut inner = self.lock();
        let Some(t) = inner.targets.get_mut(&ip) else { return };
        t.heard = Instant::now();
        if !t.alive {
            t.alive = true;
            inner.generation += 1;
            drop(inner);
            tracing::info!(gateway = %ip, "gateway host answers again");
            self.changed.notify_one();
        }
    }

    /// Declare dead the targets silent for `misses` intervals.
    fn judge(&self) {
        let limit = self.interval * self.misses;
        let mut inner = self.lock();
        let mut died = Vec::new();
        for (ip, t) in inner.targets.iter_mut() {
            if t.alive && t.heard.elapsed() > limit {
                t.alive = false;
                died.push(*ip);
            }
        }
        if died.is_empty() {
            return;
        }
        inner.generation += 1;
        drop(inner);
        for ip in died {
            tracing::warn!(gateway = %ip, "gateway host does not answer; failing over");
        }
        self.changed.notify_one();
    }

    /// Mark `ip` dead or alive at once (tests).
    #[cfg(test)]
    pub fn set(&self, ip: Ipv4Addr, alive: bool) {
        let mut inner = self.lock();
        inner.targets.insert(ip, Target { heard: Instant::now(), alive });
        inner.generation += 1;
    }
}

/// Probe the targets until the task is aborted. Without a raw socket (no `CAP_NET_RAW`)
/// nothing is probed and every gateway host counts as alive.
pub async fn run_probes(liveness: Arc<GatewayLiveness>) {
    let id = (std::process::id() & 0xffff) as u16;
    let socket = match EchoSocket::open(id) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot probe gateway hosts; SNAT will not fail over");
            return;
        }
    };
    let receiver = {
        let (socket, liveness) = (socket.clone(), liveness.clone());
        tokio::spawn(async move {
            loop {
                match socket.recv().await {
                    Ok((from, _)) => liveness.heard(from),
                    Err(e) => {
                        tracing::warn!(error = %e, "gateway probe reply lost");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        })
    };
    let _receiver = AbortOnDrop(receiver);
    let mut tick = tokio::time::interval(liveness.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq: u16 = 0;
    loop {
        tick.tick().await;
        seq = seq.wrapping_add(1);
        for ip in liveness.targets() {
            // An unreachable underlay (the link is down) is a silent host, not an error.
            let _ = socket.send(ip, seq);
        }
        liveness.judge();
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_start_alive_die_when_silent_and_come_back_when_heard() {
        let liveness = GatewayLiveness::new(Duration::from_millis(10), 2, Arc::new(Notify::new()));
        let ip = Ipv4Addr::new(192, 0, 2, 13);
        liveness.set_targets(&BTreeSet::from([ip]));
        liveness.judge();
        assert!(liveness.is_alive(ip), "alive until proven dead");
        std::thread::sleep(Duration::from_millis(30));
        let before = liveness.generation();
        liveness.judge();
        assert!(!liveness.is_alive(ip));
        assert_ne!(liveness.generation(), before);
        liveness.heard(ip);
        assert!(liveness.is_alive(ip));
        liveness.set_targets(&BTreeSet::new());
        assert!(liveness.is_alive(ip), "an address not probed counts as alive");
    }
}
