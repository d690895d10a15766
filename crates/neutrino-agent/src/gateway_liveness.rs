//! Which gateway hosts are alive, as this host sees them: the routing reconciler names the
//! underlay addresses of the gateway hosts of its routers' centralized SNAT, and a probe task
//! sends each an ICMP echo every `interval`. A host that has not answered for `misses`
//! intervals is dead; one that answers again is alive. Every change wakes the reconcile loop,
//! so the hosts move their routers' default route (and the standby takes the gateway address)
//! without asking any server, as OVN's BFD between chassis.
//!
//! A new target is *unknown* until it answers or stays silent for `misses` intervals: a
//! restarted agent leaves its routers' SNAT as the kernel has it until then, rather than fail
//! over from (or back to) a gateway host it has merely not heard from yet. A dead host that
//! answers again counts as alive only once it has answered for a hold-down of
//! [`HOLD_DOWN_INTERVALS`] intervals, so a host that reboots gets time to rebuild its routers
//! before it takes them back.

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

/// How many intervals a dead host must answer before it is alive again.
pub const HOLD_DOWN_INTERVALS: u32 = 10;

struct Target {
    /// Since when it is a target or last answered.
    heard: Instant,
    /// `None`: not judged yet.
    alive: Option<bool>,
    /// A dead host answering again: since when.
    answering_since: Option<Instant>,
}

impl GatewayLiveness {
    pub fn new(interval: Duration, misses: u32, changed: Arc<Notify>) -> Arc<GatewayLiveness> {
        Arc::new(GatewayLiveness { inner: Mutex::default(), changed, interval, misses: misses.max(1) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Probe exactly these addresses (new ones start unknown).
    pub fn set_targets(&self, targets: &BTreeSet<Ipv4Addr>) {
        let mut inner = self.lock();
        inner.targets.retain(|ip, _| targets.contains(ip));
        let now = Instant::now();
        for ip in targets {
            inner.targets.entry(*ip).or_insert(Target { heard: now, alive: None, answering_since: None });
        }
    }

    /// Whether `ip` answers (`None`: not known yet, or not probed).
    pub fn is_alive(&self, ip: Ipv4Addr) -> Option<bool> {
        self.lock().targets.get(&ip).and_then(|t| t.alive)
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
        let hold_down = self.interval * HOLD_DOWN_INTERVALS;
        let mut inner = self.lock();
        let Some(t) = inner.targets.get_mut(&ip) else { return };
        let now = Instant::now();
        t.heard = now;
        let back = match t.alive {
            Some(true) => return,
            None => false,
            Some(false) => {
                if now.duration_since(*t.answering_since.get_or_insert(now)) < hold_down {
                    return;
                }
                true
            }
        };
        t.alive = Some(true);
        t.answering_since = None;
        inner.generation += 1;
        drop(inner);
        if back {
            tracing::info!(gateway = %ip, "gateway host answers again");
        }
        self.changed.notify_one();
    }

    /// Declare dead the targets silent for `misses` intervals.
    fn judge(&self) {
        let limit = self.interval * self.misses;
        let mut inner = self.lock();
        let mut died = Vec::new();
        for (ip, t) in inner.targets.iter_mut() {
            if t.heard.elapsed() > limit {
                t.answering_since = None;
                if t.alive != Some(false) {
                    t.alive = Some(false);
                    died.push(*ip);
                }
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
        inner.targets.insert(ip, Target { heard: Instant::now(), alive: Some(alive), answering_since: None });
        inner.generation += 1;
    }
}

/// Probe the targets until the task is aborted. Without a raw socket (no `CAP_NET_RAW`)
/// nothing is probed, and every gateway host is unknown (SNAT is left as it is).
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
    fn targets_start_unknown_die_when_silent_and_come_back_after_a_hold_down() {
        let liveness = GatewayLiveness::new(Duration::from_millis(5), 2, Arc::new(Notify::new()));
        let ip = Ipv4Addr::new(192, 0, 2, 13);
        liveness.set_targets(&BTreeSet::from([ip]));
        liveness.judge();
        assert_eq!(liveness.is_alive(ip), None, "unknown until heard or silent long enough");
        liveness.heard(ip);
        assert_eq!(liveness.is_alive(ip), Some(true), "the first answer decides");
        std::thread::sleep(Duration::from_millis(20));
        let before = liveness.generation();
        liveness.judge();
        assert_eq!(liveness.is_alive(ip), Some(false));
        assert_ne!(liveness.generation(), before);
        liveness.heard(ip);
        assert_eq!(liveness.is_alive(ip), Some(false), "answering again, within the hold-down");
        std::thread::sleep(Duration::from_millis(5 * u64::from(HOLD_DOWN_INTERVALS) + 5));
        liveness.heard(ip);
        assert_eq!(liveness.is_alive(ip), Some(true), "alive after answering for the hold-down");
        liveness.set_targets(&BTreeSet::new());
        assert_eq!(liveness.is_alive(ip), None, "an address not probed is not known");
    }
}
