//! A feature that gates no port's status and waits for no other feature runs in a loop of its
//! own (DHCP, metadata and DNS): a new port's lease must not wait behind the firewall's and
//! L2's passes of earlier changes. Same rules as the main loop: a full pass first and every
//! `resync` interval, a pass over changes when the view or a link it cares about changes, a
//! full pass again after a failure, and a retry soon while it has problems (a bridge L2 has
//! not made yet).

use crate::metrics::{AgentMetrics, FeatureLabels, PassLabels};
use crate::reconcilers::{Reconciler, Scope};
use crate::{log_problems, watch_links, LinkSignal, OwnedTask, View};
use neutrino_dataplane::DataPlane;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

const RETRY: Duration = Duration::from_millis(200);

pub(crate) async fn run<D: DataPlane>(
    dp: Arc<D>,
    mut reconciler: Box<dyn Reconciler<D>>,
    mut view: watch::Receiver<View>,
    resync: Duration,
    metrics: AgentMetrics,
) {
    let (tx, mut links) = mpsc::channel(crate::EVENT_QUEUE);
    let _watcher = OwnedTask(tokio::spawn(watch_links(dp.clone(), tx)));
    let feature = reconciler.name().to_string();
    let mut full = true;
    let mut next_full = Instant::now() + resync;
    let mut retry = false;
    let mut logged = BTreeMap::new();
    let mut events = Vec::new();
    loop {
        let current = view.borrow_and_update().clone();
        if let Some(state) = current {
            if Instant::now() >= next_full {
                full = true;
                next_full = Instant::now() + resync;
            }
            let scope = if full { Scope::Full } else { Scope::Changes(std::mem::take(&mut events)) };
            let kind = if full { "full" } else { "changes" };
            let began = Instant::now();
            match reconciler.reconcile(dp.as_ref(), &state, &scope).await {
                Ok(outcome) => {
                    let labels = FeatureLabels { feature: feature.clone() };
                    metrics.passes.get_or_create(&PassLabels { feature: feature.clone(), scope: kind.into() }).inc();
                    metrics.pass_seconds.get_or_create(&labels).observe(began.elapsed().as_secs_f64());
                    metrics.changes.get_or_create(&labels).inc_by(outcome.changes as u64);
                    if outcome.changes > 0 {
                        tracing::info!(%feature, changes = outcome.changes, scope = kind, "kernel reconciled");
                    }
                    log_problems(&feature, &logged, &outcome.problems);
                    retry = !outcome.problems.is_empty();
                    logged = outcome.problems;
                    full = false;
                }
                Err(e) => {
                    tracing::warn!(%feature, error = %e, "reconcile failed; retrying with a full pass");
                    metrics.pass_failures.get_or_create(&FeatureLabels { feature: feature.clone() }).inc();
                    retry = true;
                    full = true;
                }
            }
        }
        let wait = if retry { RETRY } else { next_full.saturating_duration_since(Instant::now()) };
        let timer = tokio::time::sleep(wait);
        tokio::pin!(timer);
        // Wait for something that concerns the feature (other links' events are let by).
        loop {
            tokio::select! {
                changed = view.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
                signal = links.recv() => match signal {
                    Some(LinkSignal::Event(e)) if reconciler.wants_link_event(&e) => {
                        events.push(e);
                        break;
                    }
                    Some(LinkSignal::Event(_)) => {}
                    Some(LinkSignal::Resync) => {
                        full = true;
                        break;
                    }
                    // The watcher is gone (it restarts itself): the periodic full pass remains.
                    None => {
                        (&mut timer).await;
                        break;
                    }
                },
                () = &mut timer => break,
            }
        }
    }
}
