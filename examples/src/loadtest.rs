//! The load-test events: what `produce`, `worker` and `bench` send and count.
//!
//! They live outside the cluster catalog (domain `loadtest`) so that load tests never trigger
//! the catalog's handlers.

use event_core::prelude::*;

/// A unit of work for the load test: handled once per consumer group.
#[anycast_event(domain = "loadtest", name = "load_test")]
#[derive(Debug, Clone)]
pub struct LoadTestEvent {
    /// Sequence number, 0..count, unique per producer run.
    pub seq: u64,
    /// When it was produced: microseconds since the unix epoch (for produce->handler latency).
    pub sent_at_us: u64,
    /// Filler bytes of the requested payload size (one MessagePack `bin`, not an array of
    /// numbers: binary fields want `serde_bytes`).
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// A notification for the load test: handled by every subscriber.
#[broadcast_event(domain = "loadtest", name = "load_test")]
#[derive(Debug, Clone)]
pub struct LoadTestNotice {
    /// Sequence number.
    pub seq: u64,
    /// When it was produced, microseconds since the unix epoch.
    pub sent_at_us: u64,
    /// Filler bytes.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// Microseconds since the unix epoch.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
