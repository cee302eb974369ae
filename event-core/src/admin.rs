//! [`DeadLetterAdmin`]: operator tooling over the dead letters of every consumer group.
//!
//! A [`RunningDispatcher`](crate::RunningDispatcher) sees the dead letters of its own groups. An
//! operator (or a CLI such as `event-examples dlq`) needs all of them, without running any
//! handler: [`DeadLetterAdmin`] finds the anycast streams of every event linked into the binary
//! (plus any stream added with [`DeadLetterAdmin::stream`]), asks the queue which consumer groups
//! read each one, and lists, replays or purges their dead letters.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::event::{registered_events, Delivery};
use crate::queue::{DeadLetter, EntryId, MessageQueue};
use crate::{Error, Result};

/// Largest number of dead letters read from one group in one listing: "all of them" (Redis caps
/// dead-letter streams far below; the number must also fit Redis' signed 64-bit `COUNT`).
const ALL: usize = i32::MAX as usize;

/// Dead letters purged per queue call by the bulk purges (and so between progress reports).
const PURGE_CHUNK: usize = 100;

/// Which dead letters a listing or a bulk operation of [`DeadLetterAdmin`] covers.
///
/// The default covers every dead letter of every group on every stream the admin knows.
///
/// ```
/// use event_core::DeadLetterFilter;
///
/// let oldest_ten_of_storage = DeadLetterFilter::all().group("storage").limit(10);
/// assert_eq!(oldest_ten_of_storage.group.as_deref(), Some("storage"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetterFilter {
    /// Only the dead letters of this consumer group.
    pub group: Option<String>,
    /// Only the dead letters of this event stream (e.g. `events:{vfolder}:anycast`).
    pub stream: Option<String>,
    /// At most this many dead letters, the oldest first.
    pub limit: Option<usize>,
}

impl DeadLetterFilter {
    /// Every dead letter.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only the dead letters of consumer group `group`.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Only the dead letters of event stream `stream` (before any key prefix of the queue).
    pub fn stream(mut self, stream: impl Into<String>) -> Self {
        self.stream = Some(stream.into());
        self
    }

    /// At most `n` dead letters, the oldest first.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Whether `letter` passes the group and stream conditions (the limit aside).
    pub fn matches(&self, letter: &DeadLetter) -> bool {
        self.group.as_deref().is_none_or(|g| g == letter.group)
            && self.stream.as_deref().is_none_or(|s| s == letter.stream)
    }
}

/// Lists, replays and purges the dead letters of every consumer group, over any
/// [`MessageQueue`].
///
/// The streams it looks at are the anycast streams of every event registered in the binary
/// ([`registered_events`]) and the streams added with [`stream`](Self::stream); the groups are
/// the ones the queue reports for each stream ([`MessageQueue::groups`]), or the group of the
/// [`DeadLetterFilter`] when it names one (so the dead letters of a group whose readers are all
/// gone are still found).
///
/// Bulk operations skip dead letters that vanished in the meantime (replayed or purged by
/// someone else), count what they did, and have `_with_progress` variants that report
/// `(done, total)` after each step, for a progress bar.
///
/// ```
/// use event_core::prelude::*;
/// use event_core::{DeadLetterAdmin, DeadLetterFilter};
///
/// #[anycast_event(domain = "admin_doc")]
/// #[derive(Debug, Clone)]
/// pub struct ResizeRequestedEvent { pub size: u64 }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), event_core::Error> {
/// let queue = InMemoryQueue::new();
/// let dispatcher = EventDispatcher::builder(queue.clone()).group("storage").max_attempts(1).build()?;
/// dispatcher.consume::<ResizeRequestedEvent, _, _>(|_ev, _meta| async { Err("volume offline".into()) });
/// let running = dispatcher.start().await?;
/// EventProducer::new(queue.clone(), "api").produce(&ResizeRequestedEvent { size: 1 << 30 }).await?;
/// running.drain().await;
///
/// let admin = DeadLetterAdmin::new(queue);
/// let dead = admin.list(&DeadLetterFilter::all().group("storage")).await?;
/// assert_eq!(dead.len(), 1);
/// assert_eq!(dead[0].error, "volume offline");
/// assert_eq!(admin.purge_all(&DeadLetterFilter::all()).await?, 1);
/// # running.shutdown(std::time::Duration::from_secs(1)).await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DeadLetterAdmin {
    queue: Arc<dyn MessageQueue>,
    extra_streams: Vec<String>,
    registered: bool,
}

impl DeadLetterAdmin {
    /// An admin over `queue` (for example a `RedisQueue`, or a clone of an `InMemoryQueue`).
    pub fn new(queue: impl MessageQueue) -> Self {
        Self::from_arc(Arc::new(queue))
    }

    /// Like [`new`](Self::new) for a queue already behind an `Arc`.
    pub fn from_arc(queue: Arc<dyn MessageQueue>) -> Self {
        DeadLetterAdmin { queue, extra_streams: Vec::new(), registered: true }
    }

    /// Also looks at the anycast stream `stream` (its key before any prefix of the queue, e.g.
    /// `events:{billing}:anycast`), for events that are not registered in this binary.
    pub fn stream(mut self, stream: impl Into<String>) -> Self {
        self.extra_streams.push(stream.into());
        self
    }

    /// Whether to look at the anycast streams of the events registered in this binary (default
    /// `true`); with `false`, only the streams added with [`stream`](Self::stream).
    pub fn registered_streams(mut self, yes: bool) -> Self {
        self.registered = yes;
        self
    }

    /// The queue.
    pub fn queue(&self) -> &Arc<dyn MessageQueue> {
        &self.queue
    }

    /// The anycast streams looked at, sorted, without duplicates.
    pub fn streams(&self) -> Vec<String> {
        let registered = registered_events()
            .into_iter()
            .filter(|_| self.registered)
            .filter(|e| e.info.delivery == Delivery::Anycast)
            .map(|e| e.info.stream.to_owned());
        let all: BTreeSet<String> = registered.chain(self.extra_streams.iter().cloned()).collect();
        all.into_iter().collect()
    }

    /// The consumer groups of each stream the filter covers: group -> its streams.
    async fn targets(&self, filter: &DeadLetterFilter) -> Result<BTreeMap<String, Vec<Arc<str>>>> {
        let mut targets: BTreeMap<String, Vec<Arc<str>>> = BTreeMap::new();
        for stream in self.streams() {
            if filter.stream.as_deref().is_some_and(|s| s != stream) {
                continue;
            }
            let groups = match &filter.group {
                Some(g) => vec![g.clone()],
                None => self.queue.groups(&stream).await?,
            };
            let stream: Arc<str> = Arc::from(stream);
            for g in groups {
                targets.entry(g).or_default().push(stream.clone());
            }
        }
        Ok(targets)
    }

    /// The consumer groups reading the streams looked at, sorted, without duplicates.
    pub async fn groups(&self) -> Result<Vec<String>> {
        Ok(self.targets(&DeadLetterFilter::all()).await?.into_keys().collect())
    }

    /// The dead letters the filter covers, the oldest first, at most `filter.limit`.
    pub async fn list(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>> {
        let limit = filter.limit.unwrap_or(ALL);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut all = Vec::new();
        for (group, streams) in self.targets(filter).await? {
            all.extend(self.queue.dead_letters(&group, &streams, limit).await?);
        }
        all.retain(|d| filter.matches(d));
        all.sort_by(|a, b| {
            let key = |d: &DeadLetter| (EntryId::parse(&d.id).unwrap_or_default(), d.failed_at_ms);
            key(a).cmp(&key(b)).then_with(|| (&a.stream, &a.group).cmp(&(&b.stream, &b.group)))
        });
        all.truncate(limit);
        Ok(all)
    }

    /// The dead letters with id `id` the filter covers (ids are unique per group and stream, so
    /// there can be several when the filter names neither).
    pub async fn find(&self, id: &str, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>> {
        let filter = DeadLetterFilter { limit: None, ..filter.clone() };
        let mut found = self.list(&filter).await?;
        found.retain(|d| d.id == id);
        Ok(found)
    }

    /// Puts a dead letter back for its group with a fresh attempt budget (only the handler that
    /// gave up runs again) and removes it from the dead-letter stream.
    ///
    /// Fails with [`Error::DeadLetterNotFound`] when it is no longer there.
    pub async fn replay(&self, letter: &DeadLetter) -> Result<()> {
        self.queue.replay(letter).await
    }

    /// Replays `letters`; returns how many were replayed (the ones no longer there are skipped).
    pub async fn replay_many(&self, letters: &[DeadLetter]) -> Result<usize> {
        self.replay_many_with_progress(letters, |_, _| {}).await
    }

    /// [`replay_many`](Self::replay_many), calling `progress(done, total)` at the start and after
    /// each dead letter.
    pub async fn replay_many_with_progress(
        &self,
        letters: &[DeadLetter],
        mut progress: impl FnMut(usize, usize),
    ) -> Result<usize> {
        let total = letters.len();
        progress(0, total);
        let mut replayed = 0;
        for (i, letter) in letters.iter().enumerate() {
            match self.queue.replay(letter).await {
                Ok(()) => replayed += 1,
                Err(Error::DeadLetterNotFound(_)) => {}
                Err(e) => return Err(e),
            }
            progress(i + 1, total);
        }
        Ok(replayed)
    }

    /// Replays every dead letter the filter covers (the oldest first); returns how many.
    ///
    /// The set is fixed when the call starts: an event that fails again while the call runs
    /// becomes a new dead letter, not replayed by this call.
    pub async fn replay_all(&self, filter: &DeadLetterFilter) -> Result<usize> {
        self.replay_all_with_progress(filter, |_, _| {}).await
    }

    /// [`replay_all`](Self::replay_all), calling `progress(done, total)` at the start and after
    /// each dead letter.
    pub async fn replay_all_with_progress(
        &self,
        filter: &DeadLetterFilter,
        progress: impl FnMut(usize, usize),
    ) -> Result<usize> {
        let letters = self.list(filter).await?;
        self.replay_many_with_progress(&letters, progress).await
    }

    /// Removes dead letters for good; returns how many were removed.
    pub async fn purge(&self, letters: &[DeadLetter]) -> Result<usize> {
        self.purge_with_progress(letters, |_, _| {}).await
    }

    /// [`purge`](Self::purge), calling `progress(done, total)` at the start and after each batch.
    pub async fn purge_with_progress(
        &self,
        letters: &[DeadLetter],
        mut progress: impl FnMut(usize, usize),
    ) -> Result<usize> {
        let total = letters.len();
        progress(0, total);
        let mut removed = 0;
        let mut done = 0;
        for chunk in letters.chunks(PURGE_CHUNK) {
            removed += self.queue.purge_dead_letters(chunk).await?;
            done += chunk.len();
            progress(done, total);
        }
        Ok(removed)
    }

    /// Removes every dead letter the filter covers; returns how many were removed.
    pub async fn purge_all(&self, filter: &DeadLetterFilter) -> Result<usize> {
        self.purge_all_with_progress(filter, |_, _| {}).await
    }

    /// [`purge_all`](Self::purge_all), calling `progress(done, total)` at the start and after
    /// each batch.
    pub async fn purge_all_with_progress(
        &self,
        filter: &DeadLetterFilter,
        progress: impl FnMut(usize, usize),
    ) -> Result<usize> {
        let letters = self.list(filter).await?;
        self.purge_with_progress(&letters, progress).await
    }
}
