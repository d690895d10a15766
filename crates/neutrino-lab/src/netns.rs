//! Reaching into a namespace from the test process without touching the root namespace:
//! a thread that joins the namespace (setns) and runs a small tokio runtime there. Sockets
//! created by that thread live in the namespace, so the lab's API client talks to the server
//! over the lab's own network.

use crate::cmd::LabError;
use std::fs::File;
use std::os::fd::AsRawFd;

/// Move the calling thread into network namespace `ns` (`/run/netns/<ns>`).
pub fn join_netns(ns: &str) -> Result<(), LabError> {
    let f = File::open(format!("/run/netns/{ns}"))?;
    // SAFETY: setns on a valid fd only changes this thread's network namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(LabError::Other(format!("setns({ns}): {}", std::io::Error::last_os_error())));
    }
    Ok(())
}

/// A current-thread runtime living on its own thread inside a namespace.
pub struct NsRuntime {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NsRuntime {
    pub fn start(ns: &str) -> Result<NsRuntime, LabError> {
        let ns = ns.to_string();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let setup = join_netns(&ns)
                .and_then(|_| tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(LabError::Io));
            match setup {
                Ok(rt) => {
                    let _ = ready_tx.send(Ok(rt.handle().clone()));
                    let _ = rt.block_on(stop_rx);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        });
        let handle = ready_rx.recv().map_err(|_| LabError::Other("namespace runtime died".into()))??;
        Ok(NsRuntime { handle, stop: Some(stop_tx), thread: Some(thread) })
    }

    pub fn handle(&self) -> tokio::runtime::Handle {
        self.handle.clone()
    }
}

impl Drop for NsRuntime {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
