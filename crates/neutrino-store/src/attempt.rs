//! One attempt at a request's work, as the retry around it needs to know it: which transient
//! database failure it met, and whether any of its transactions committed, or began to.
//!
//! The server runs each API request inside [`run`]. A request whose attempt met a failure
//! that rolled everything back (PostgreSQL's serialization failure or deadlock, or a lost
//! connection before any commit was sent) and committed nothing can be run again as a whole
//! without repeating anything: that is the one place writes are retried.

use std::cell::Cell;
use std::future::Future;

/// A failure of the database that says nothing about the request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transient {
    /// PostgreSQL gave up on the transaction to let another through (40001, 40P01); it was
    /// rolled back.
    Conflict,
    /// The connection was lost, or the database refused it (shutting down, starting).
    Unavailable,
    /// No connection came within the pool's timeout: the request waited already.
    TimedOut,
}

/// What one attempt did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempt {
    /// The first transient failure it met.
    pub transient: Option<Transient>,
    /// Transactions that sent COMMIT (whatever came back).
    pub commits_sent: u32,
    /// Transactions whose COMMIT succeeded.
    pub commits_done: u32,
}

impl Attempt {
    /// Whether running the request again repeats nothing: it met a transient failure, no
    /// transaction of it committed, and none was left in doubt (a connection lost during
    /// COMMIT may have committed; a serialization failure or deadlock never did).
    pub fn may_retry(&self) -> bool {
        match self.transient {
            None => false,
            Some(_) if self.commits_done > 0 => false,
            Some(Transient::Conflict) => true,
            Some(Transient::Unavailable) => self.commits_sent == 0,
            Some(Transient::TimedOut) => false,
        }
    }
}

tokio::task_local! {
    static CURRENT: Cell<Attempt>;
}

/// Run `work` as one attempt; what it did comes back with its output.
pub async fn run<F: Future>(work: F) -> (F::Output, Attempt) {
    CURRENT
        .scope(Cell::new(Attempt::default()), async move {
            let out = work.await;
            (out, CURRENT.with(Cell::get))
        })
        .await
}

fn update(f: impl FnOnce(&mut Attempt)) {
    // Outside an attempt (background tasks, tests) nothing is recorded.
    let _ = CURRENT.try_with(|cell| {
        let mut a = cell.get();
        f(&mut a);
        cell.set(a);
    });
}

/// The current attempt met `failure` (recorded by whoever turns the error into a reply).
pub fn note_transient(failure: Transient) {
    update(|a| {
        a.transient.get_or_insert(failure);
    });
}

pub(crate) fn note_commit_sent() {
    update(|a| a.commits_sent += 1);
}

pub(crate) fn note_commit_done() {
    update(|a| a.commits_done += 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_attempts_that_changed_nothing_may_run_again() {
        let conflict = Attempt { transient: Some(Transient::Conflict), ..Attempt::default() };
        assert!(conflict.may_retry());
        // A serialization failure at COMMIT rolled back too.
        assert!(Attempt { commits_sent: 1, ..conflict }.may_retry());
        assert!(!Attempt { commits_sent: 2, commits_done: 1, ..conflict }.may_retry());
        let lost = Attempt { transient: Some(Transient::Unavailable), ..Attempt::default() };
        assert!(lost.may_retry());
        // The connection went during COMMIT: it may have committed.
        assert!(!Attempt { commits_sent: 1, ..lost }.may_retry());
        assert!(!Attempt::default().may_retry());
        // It waited for a connection for as long as a request may.
        assert!(!Attempt { transient: Some(Transient::TimedOut), ..Attempt::default() }.may_retry());
    }

    #[tokio::test]
    async fn commits_are_counted_per_attempt() {
        let ((), a) = run(async {
            note_commit_sent();
            note_commit_done();
            note_transient(Transient::Conflict);
            note_transient(Transient::Unavailable);
        })
        .await;
        assert_eq!(a, Attempt { transient: Some(Transient::Conflict), commits_sent: 1, commits_done: 1 });
        // Outside an attempt: ignored.
        note_commit_sent();
    }
}
