//! The ML2 plugin's driver manager: mechanism drivers loaded from `[ml2] mechanism_drivers`,
//! walked in order for binding, asked inside transactions (precommit) and told about commits
//! (postcommit) on one ordered queue per driver, away from request handling.

use neutrino_domain::binding::{load_drivers, ChangeEvent, MechanismDriver, SegmentView};
use neutrino_domain::DomainError;
use neutrino_store::Change;
use std::sync::Arc;
use tokio::sync::mpsc;

pub struct Ml2 {
    drivers: Vec<Arc<dyn MechanismDriver>>,
    queues: Vec<mpsc::UnboundedSender<Arc<ChangeEvent>>>,
}

impl Ml2 {
    /// Load the drivers and start their postcommit queues (needs a Tokio runtime).
    pub fn load(names: &[String]) -> Result<Ml2, String> {
        Ok(Ml2::with_drivers(load_drivers(names)?))
    }

    pub fn with_drivers(drivers: Vec<Arc<dyn MechanismDriver>>) -> Ml2 {
        let queues = drivers.iter().filter(|d| d.wants_postcommit()).map(|d| start_queue(d.clone())).collect();
        Ml2 { drivers, queues }
    }

    pub fn drivers(&self) -> &[Arc<dyn MechanismDriver>] {
        &self.drivers
    }

    /// Whether hosts are told about remote ports (`l2population` loaded).
    pub fn populates_l2(&self) -> bool {
        self.drivers.iter().any(|d| d.populates_l2())
    }

    /// Every driver's precommit check of a network's segments; the first refusal wins.
    pub fn network_precommit(&self, segments: &[SegmentView]) -> Result<(), DomainError> {
        self.drivers.iter().try_for_each(|d| d.network_precommit(segments))
    }

    /// Hand one committed transaction's changes to every driver's queue (never blocks).
    pub fn postcommit(&self, changes: Vec<Change>) {
        for c in changes {
            let event = Arc::new(c);
            for q in &self.queues {
                let _ = q.send(event.clone());
            }
        }
    }

    /// Whether any driver has postcommit hooks (otherwise commits need not be followed).
    pub fn has_postcommit_hooks(&self) -> bool {
        !self.queues.is_empty()
    }

    /// Feed committed changes to the drivers for as long as the store commits.
    pub fn follow(self: Arc<Self>, mut committed: mpsc::UnboundedReceiver<Vec<Change>>) {
        tokio::spawn(async move {
            while let Some(changes) = committed.recv().await {
                self.postcommit(changes);
            }
        });
    }
}

/// One task per driver runs its hooks one after another, in the order they were queued, on
/// the blocking pool so that a slow hook delays only its own driver.
fn start_queue(driver: Arc<dyn MechanismDriver>) -> mpsc::UnboundedSender<Arc<ChangeEvent>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Arc<ChangeEvent>>();
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            let d = driver.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || d.postcommit(&event)).await {
                tracing::error!(driver = driver.name(), error = %e, "postcommit hook panicked");
            }
        }
    });
    tx
}

#[cfg(test)]
mod tests {
    use super::*;
    use neutrino_domain::changes::{Operation, Resource};
    use std::sync::Mutex;

    /// Records what it is told, slowly, to show hooks stay ordered and off the caller.
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl MechanismDriver for Recorder {
        fn name(&self) -> &'static str {
            "recorder"
        }
        fn postcommit(&self, event: &ChangeEvent) {
            std::thread::sleep(std::time::Duration::from_millis(2));
            self.0.lock().unwrap().push(format!("{} {} {}", event.resource, event.id, event.operation));
        }
        fn wants_postcommit(&self) -> bool {
            true
        }
        fn network_precommit(&self, segments: &[SegmentView]) -> Result<(), DomainError> {
            if segments.iter().any(|s| s.network_type == "gre") {
                return Err(DomainError::invalid("no gre here"));
            }
            Ok(())
        }
    }

    fn change(id: &str, operation: Operation) -> Change {
        Change { resource: Resource::Port, id: id.into(), operation }
    }

    #[tokio::test]
    async fn postcommit_hooks_run_in_commit_order_without_blocking_the_caller() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let ml2 = Ml2::with_drivers(vec![Arc::new(Recorder(seen.clone()))]);
        let started = std::time::Instant::now();
        for i in 0..20 {
            ml2.postcommit(vec![
                change(&format!("p{i}"), Operation::Create),
                change(&format!("p{i}"), Operation::Update),
            ]);
        }
        assert!(started.elapsed() < std::time::Duration::from_millis(20), "postcommit must not wait for hooks");
        for _ in 0..200 {
            if seen.lock().unwrap().len() == 40 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let seen = seen.lock().unwrap().clone();
        let expected: Vec<String> =
            (0..20).flat_map(|i| [format!("port p{i} create"), format!("port p{i} update")]).collect();
        assert_eq!(seen, expected);
    }

    #[tokio::test]
    async fn a_precommit_refusal_stops_the_write() {
        let ml2 = Ml2::with_drivers(vec![Arc::new(Recorder(Default::default()))]);
        let seg = |t: &str| SegmentView {
            id: "s".into(),
            network_type: t.into(),
            physical_network: None,
            segmentation_id: None,
        };
        assert!(ml2.network_precommit(&[seg("vxlan")]).is_ok());
        assert!(ml2.network_precommit(&[seg("vxlan"), seg("gre")]).is_err());
        assert!(!ml2.populates_l2());
        assert!(Ml2::load(&["linuxbridge".into(), "l2population".into()]).unwrap().populates_l2());
    }
}
