//! [`Timeline`]: a shared log of what happened, when and where, for the demo.
//!
//! Handlers get it through their [`Node`](crate::components::Node) state and call
//! [`Timeline::record`]; each entry keeps the time since the timeline was created, the
//! instance that wrote it and a line of text. With echo on, entries are printed as they come.

use std::io::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    /// Milliseconds since the timeline was created.
    pub elapsed_ms: u64,
    /// Instance that wrote it (`manager-1`), or empty for a section header.
    pub instance: String,
    /// What happened.
    pub text: String,
}

impl std::fmt::Display for TimelineEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.instance.is_empty() {
            write!(f, "\n== {} ==", self.text)
        } else {
            write!(f, "{:>6} ms  {:<16} {}", self.elapsed_ms, self.instance, self.text)
        }
    }
}

/// A cheaply clonable, thread-safe timeline; clones share the same entries.
#[derive(Debug, Clone)]
pub struct Timeline {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    start: Instant,
    echo: bool,
    entries: Mutex<Vec<TimelineEntry>>,
}

impl Timeline {
    /// An empty timeline starting now; with `echo`, every entry is printed to stdout as it is
    /// recorded.
    pub fn new(echo: bool) -> Self {
        Timeline { inner: Arc::new(Inner { start: Instant::now(), echo, entries: Mutex::new(Vec::new()) }) }
    }

    /// Records that `instance` did `text`.
    pub fn record(&self, instance: &str, text: impl Into<String>) {
        self.push(instance.to_owned(), text.into());
    }

    /// Records a section header (a phase of the demo).
    pub fn section(&self, title: impl Into<String>) {
        self.push(String::new(), title.into());
    }

    /// Milliseconds since the timeline was created.
    pub fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.inner.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A copy of every entry so far, in recording order.
    pub fn entries(&self) -> Vec<TimelineEntry> {
        self.lock().clone()
    }

    fn push(&self, instance: String, text: String) {
        // Take the time and print under the lock, so that lines of concurrent handlers never
        // interleave and their timestamps never go backwards.
        let mut entries = self.lock();
        let entry = TimelineEntry { elapsed_ms: self.elapsed_ms(), instance, text };
        if self.inner.echo {
            // A closed stdout (`| head`) must not take a handler down with it.
            let _ = writeln!(std::io::stdout().lock(), "{entry}");
        }
        entries.push(entry);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<TimelineEntry>> {
        self.inner.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_in_order_and_shares_between_clones() {
        let timeline = Timeline::new(false);
        let other = timeline.clone();
        timeline.section("phase");
        other.record("agent-1", "started kernel");
        let entries = timeline.entries();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].instance, "");
        assert_eq!(entries[1].instance, "agent-1");
        assert!(entries[1].to_string().contains("agent-1"));
        assert!(entries[1].to_string().contains("started kernel"));
    }
}
