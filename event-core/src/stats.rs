//! Per-handler outcome counters, readable from a running dispatcher.

use std::sync::atomic::{AtomicU64, Ordering};

/// What happened to one handler's invocations so far (see
/// [`RunningDispatcher::stats`](crate::RunningDispatcher::stats)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandlerStats {
    /// Handler name.
    pub handler: String,
    /// Event name.
    pub event: String,
    /// Consumer group (empty for broadcast subscribers).
    pub group: String,
    /// Successful invocations.
    pub handled: u64,
    /// Failed attempts of any kind (errors, panics, timeouts, undecodable payloads).
    pub failed: u64,
    /// Failed attempts scheduled for a retry.
    pub retried: u64,
    /// Entries dead-lettered for this handler.
    pub dead_lettered: u64,
    /// Attempts that panicked.
    pub panicked: u64,
    /// Attempts that ran past the timeout.
    pub timed_out: u64,
}

#[derive(Debug, Default)]
pub(crate) struct HandlerCounters {
    pub(crate) handled: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) panicked: AtomicU64,
    pub(crate) timed_out: AtomicU64,
}

impl HandlerCounters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, handler: &str, event: &str, group: &str) -> HandlerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HandlerStats {
            handler: handler.to_owned(),
            event: event.to_owned(),
            group: group.to_owned(),
            handled: get(&self.handled),
            failed: get(&self.failed),
            retried: get(&self.retried),
            dead_lettered: get(&self.dead_lettered),
            panicked: get(&self.panicked),
            timed_out: get(&self.timed_out),
        }
    }
}
