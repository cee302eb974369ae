//! The queue boundary: [`MessageQueue`], the one trait a backend implements.
//!
//! Streams are named by their key (for example `events:{kernel}:anycast`). For each anycast
//! stream `S` and consumer group `G` a backend also keeps, under the same hash tag:
//! the delayed retry set [`retry_set_key`] (`S:retry:G`), the stream of retries that came due
//! [`due_stream_key`] (`S:retry:G:due`, read by `G` only), and the dead-letter stream
//! [`dead_letter_key`] (`S:dlq:G`).

use std::sync::Arc;
use std::time::Duration;

use crate::envelope::Envelope;
pub use crate::handler::BoxFuture;
use crate::Result;

/// Key of the delayed retry set of `stream` for `group`.
pub fn retry_set_key(stream: &str, group: &str) -> String {
    format!("{stream}:retry:{group}")
}

/// Key of the stream where due retries (and replays) of `stream` for `group` land.
pub fn due_stream_key(stream: &str, group: &str) -> String {
    format!("{stream}:retry:{group}:due")
}

/// Key of the dead-letter stream of `stream` for `group`.
pub fn dead_letter_key(stream: &str, group: &str) -> String {
    format!("{stream}:dlq:{group}")
}

/// A stream entry id (`<ms>-<seq>`), ordered like Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EntryId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

impl EntryId {
    /// The smallest id, `0-0`.
    pub const ZERO: EntryId = EntryId { ms: 0, seq: 0 };

    /// Parses `"<ms>-<seq>"` (or `"<ms>"`).
    pub fn parse(s: &str) -> Option<EntryId> {
        let (ms, seq) = match s.split_once('-') {
            Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
            None => (s.parse().ok()?, 0),
        };
        Some(EntryId { ms, seq })
    }
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// The body of an entry read back from a stream.
#[derive(Debug, Clone)]
pub enum EntryBody {
    /// A well-formed envelope (the in-memory queue keeps them decoded).
    Envelope(Arc<Envelope>),
    /// Raw fields, decoded by the dispatcher with [`Envelope::from_fields`].
    Fields(Vec<(Vec<u8>, Vec<u8>)>),
}

/// One entry delivered to a reader.
#[derive(Debug, Clone)]
pub struct StreamEntry {
    /// Stream key it was read from.
    pub stream: Arc<str>,
    /// Entry id.
    pub id: EntryId,
    /// Fields.
    pub body: EntryBody,
    /// How many times the group delivered this entry (1 on first delivery; reclaims add one).
    pub deliveries: u32,
}

/// One event to append.
#[derive(Debug, Clone)]
pub struct Append {
    /// Stream key.
    pub stream: Arc<str>,
    /// The entry (shared: the in-memory queue stores it as is, without a copy).
    pub envelope: Arc<Envelope>,
}

/// A read request for a consumer group.
#[derive(Debug, Clone, Copy)]
pub struct ReadGroup<'a> {
    /// Group name.
    pub group: &'a str,
    /// Consumer name within the group.
    pub consumer: &'a str,
    /// Streams to read (each must have the group: [`MessageQueue::ensure_group`]).
    pub streams: &'a [Arc<str>],
    /// Most entries to return in all.
    pub count: usize,
    /// How long to wait for new entries when none is ready (`None`: return at once).
    pub block: Option<Duration>,
    /// `Some(after)`: re-read this consumer's own pending entries with ids above `after`
    /// (recovery after a restart) instead of new ones; never blocks.
    pub pending_after: Option<EntryId>,
}

/// Where a new consumer group starts reading a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupStart {
    /// After the last entry (`$`): only what is appended from now on.
    End,
    /// From the first entry (`0`).
    Beginning,
}

/// A dead letter to record.
#[derive(Debug, Clone)]
pub struct NewDeadLetter<'a> {
    /// Handler that gave up (empty when no handler ran, e.g. an undecodable entry).
    pub handler: &'a str,
    /// Error text.
    pub error: &'a str,
    /// Attempts made.
    pub attempts: u32,
}

/// An entry in a dead-letter stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Id of the dead letter: its entry id in the dead-letter stream (what `replay` and
    /// `purge` take). Not the event's id: that is [`event_id`](Self::event_id).
    pub id: String,
    /// Event name (empty if the entry had none).
    pub event_name: String,
    /// Handler that failed (empty if no handler ran).
    pub handler: String,
    /// Error text of the last attempt.
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
    /// Stream the entry came from.
    pub stream: String,
    /// Consumer group it failed in.
    pub group: String,
    /// Entry id in the original stream.
    pub original_id: String,
    /// Event id from the envelope (empty if unreadable).
    pub event_id: String,
    /// When it was dead-lettered (unix ms).
    pub failed_at_ms: u64,
}

/// Progress question asked by `drain`: has `group` settled everything in `stream` up to `upto`?
#[derive(Debug, Clone)]
pub struct SettleCheck {
    /// Anycast stream key.
    pub stream: Arc<str>,
    /// Entries up to this id must be delivered and acked.
    pub upto: EntryId,
}

/// A queue backend. Implemented by [`InMemoryQueue`](crate::InMemoryQueue) and by
/// `event_redis::RedisQueue`; both pass the conformance suite in [`crate::testing`].
///
/// All operations are batch-first and object safe; the dispatcher holds an
/// `Arc<dyn MessageQueue>`.
pub trait MessageQueue: Send + Sync + std::fmt::Debug + 'static {
    /// Appends entries (to any streams) in one round trip, returning their ids in order.
    fn append<'a>(&'a self, batch: &'a [Append]) -> BoxFuture<'a, Result<Vec<EntryId>>>;

    /// Appends raw fields, bypassing the envelope (tests and tooling: garbage must be survivable).
    fn append_raw<'a>(&'a self, stream: &'a str, fields: &'a [(&'a str, &'a [u8])]) -> BoxFuture<'a, Result<EntryId>>;

    /// Creates `group` on `stream` (and the stream) if missing, starting at `start`.
    fn ensure_group<'a>(&'a self, stream: &'a str, group: &'a str, start: GroupStart) -> BoxFuture<'a, Result<()>>;

    /// Reads entries for a consumer of a group.
    fn read_group<'a>(&'a self, req: ReadGroup<'a>) -> BoxFuture<'a, Result<Vec<StreamEntry>>>;

    /// Acknowledges entries of `group`.
    fn ack<'a>(&'a self, group: &'a str, entries: &'a [(Arc<str>, EntryId)]) -> BoxFuture<'a, Result<()>>;

    /// Claims for `consumer` up to `count` entries of `stream` pending in `group` with another
    /// consumer for at least `min_idle`; their delivery count goes up by one.
    fn claim_idle<'a>(
        &'a self,
        group: &'a str,
        consumer: &'a str,
        stream: &'a Arc<str>,
        min_idle: Duration,
        count: usize,
    ) -> BoxFuture<'a, Result<Vec<StreamEntry>>>;

    /// Resets the idle time of entries this consumer still works on, so they are not reclaimed.
    fn keep_alive<'a>(
        &'a self,
        group: &'a str,
        consumer: &'a str,
        entries: &'a [(Arc<str>, EntryId)],
    ) -> BoxFuture<'a, Result<()>>;

    /// Atomically acks `entry` (read from `main` or from its due stream) and schedules `retry`
    /// in the retry set of `main` for `group`, due at `due_ms` (unix ms).
    fn retry_later<'a>(
        &'a self,
        group: &'a str,
        main: &'a str,
        entry: &'a StreamEntry,
        retry: &'a Envelope,
        due_ms: u64,
    ) -> BoxFuture<'a, Result<()>>;

    /// Moves retries of `stream` for `group` due at `now_ms` to the group's due stream; returns
    /// how many moved and the due time of the next one still waiting.
    fn promote_due<'a>(
        &'a self,
        group: &'a str,
        stream: &'a Arc<str>,
        now_ms: u64,
        limit: usize,
    ) -> BoxFuture<'a, Result<(usize, Option<u64>)>>;

    /// Atomically acks `entry` (read from `main` or from its due stream) for `group` and appends
    /// it, with `letter`, to the dead-letter stream of `main` for `group`.
    fn dead_letter<'a>(
        &'a self,
        group: &'a str,
        main: &'a str,
        entry: &'a StreamEntry,
        letter: NewDeadLetter<'a>,
    ) -> BoxFuture<'a, Result<()>>;

    /// Dead letters of `group` in `streams`, oldest first, at most `limit`.
    fn dead_letters<'a>(
        &'a self,
        group: &'a str,
        streams: &'a [Arc<str>],
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<DeadLetter>>>;

    /// Atomically removes the dead letter and appends its entry to the group's due stream with
    /// attempt 1 and only its handler to run.
    fn replay<'a>(&'a self, letter: &'a DeadLetter) -> BoxFuture<'a, Result<()>>;

    /// Removes dead letters; returns how many were removed.
    fn purge_dead_letters<'a>(&'a self, letters: &'a [DeadLetter]) -> BoxFuture<'a, Result<usize>>;

    /// Id of the last entry of `stream` (`0-0` if empty or missing).
    fn last_id<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<EntryId>>;

    /// Reads entries after each stream's cursor, without groups (broadcast).
    fn read_streams<'a>(
        &'a self,
        cursors: &'a [(Arc<str>, EntryId)],
        count: usize,
        block: Option<Duration>,
    ) -> BoxFuture<'a, Result<Vec<StreamEntry>>>;

    /// Names of the consumer groups reading `stream` (for tooling: listing dead letters of
    /// every group). Due streams' groups are included only when asked for by their own key.
    fn groups<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<Vec<String>>>;

    /// Periodic housekeeping of a stream this process reads: trimming what every group acked,
    /// the hard cap, lag metrics. Called by the dispatcher about once a second per stream, for
    /// anycast streams (and their due streams) only: a broadcast stream also has ephemeral
    /// readers that no group accounts for, so acks must not trim it.
    fn maintain<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<()>> {
        let _ = stream;
        Box::pin(std::future::ready(Ok(())))
    }

    /// Whether `group` has, for every check, delivered and acked every entry up to `upto`, with
    /// nothing in its retry set nor unsettled in its due stream. Answered atomically.
    fn settled<'a>(&'a self, group: &'a str, checks: &'a [SettleCheck]) -> BoxFuture<'a, Result<bool>>;
}

/// Implements every [`MessageQueue`] method by forwarding to `$inner`, an expression of `$q`
/// (bound to `self`): for wrappers such as `Arc<Q>` and [`crate::testing::Guarded`].
macro_rules! delegate_message_queue {
    (|$q:ident| $inner:expr) => {
        fn append<'a>(
            &'a self,
            batch: &'a [$crate::queue::Append],
        ) -> $crate::queue::BoxFuture<'a, $crate::Result<Vec<$crate::queue::EntryId>>> {
            let $q = self;
            $inner.append(batch)
        }
        fn append_raw<'a>(
            &'a self,
            stream: &'a str,
            fields: &'a [(&'a str, &'a [u8])],
        ) -> $crate::queue::BoxFuture<'a, $crate::Result<$crate::queue::EntryId>> {
            let $q = self;
            $inner.append_raw(stream, fields)
        }
        fn ensure_group<'a>(
            &'a self,
            stream: &'a str,
            group: &'a str,
            start: $crate::queue::GroupStart,
        ) -> $crate::queue::BoxFuture<'a, $crate::Result<()>> {
            let $q = self;
            $inner.ensure_group(stream, group, start)
        }
        fn read_group<'a>(
            &'a self,
            req: $crate::queue::ReadGroup<'a>,
        ) -> $crate::queue::BoxFuture<'a, $crate::Result<Vec<$crate::queue::StreamEntry>>> {
            let $q = self;
            $inner.read_group(req)
        }
        fn ack<'a>(
            &'a self,
            group: &'a str,
            entries: &'a [(::std::sync::Arc<str>, $crate::queue::EntryId)],
        ) -> $crate::queue::BoxFuture<'a, $crate::Result<()>> {
            let $q = self;
            $inner.ack(group, entries)
        }
        fn claim_idle<'a>(
            &'a self,
            group: &'a str,
            consumer: &'a str,
            stream: &'a ::std::sync::Arc<str>,
            min_idle: ::core::time::Duration,
            count: usize,
        ) -> $crate::queue::BoxFuture<'a, $crate::Result<Vec<$crate::queue::StreamEntry>>> {
            let $q = self;
            $inner.claim_idle(group, consumer, stream, min_idle, count)
        }
        fn keep_alive<'a>(
            &'a self,
            group: &'a str,
            consumer: &'a str,
            entries: &'a [(::std::sync::Arc<str>, $crate::queue::EntryId)],
        ) -> $crate::queue::BoxFuture<'a, $crate::Result<()>> {
            let $q = self;
            $inner.keep_alive(group, consumer, entries)
        }
        fn retry_later<'a>(
            &'a self,
            group: &'a str,
            main: &'a str,
            entry: &'a $crate::queue::StreamEntry,
            retry: &'a $crate::envelope::Envelope,
            due_ms: u64,
        ) -> $crate::queue::BoxFuture<'a, $crate::Result<()>> {
            let $q = self;
            $inner.retry_later(group, main, entry, retry, due_ms)
        }
        fn promote_due<'a>(
            &'a self,
            group: &'a str,
            stream: &'a ::std::sync::Arc<str>,
            now_ms: u64,
            limit: usize,
        ) -> $crate::queue::BoxFuture<'a, $crate::Result<(usize, Option<u64>)>> {
            let $q = self;
            $inner.promote_due(group, stream, now_ms, limit)
        }
        fn dead_letter<'a>(
            &'a self,
            group: &'a str,
            main: &'a str,
            entry: &'a $crate::queue::StreamEntry,
            letter: $crate::queue::NewDeadLetter<'a>,
        ) -> $crate::queue::BoxFuture<'a, $crate::Result<()>> {
            let $q = self;
            $inner.dead_letter(group, main, entry, letter)
        }
        fn dead_letters<'a>(
            &'a self,
            group: &'a str,
            streams: &'a [::std::sync::Arc<str>],
            limit: usize,
        ) -> $crate::queue::BoxFuture<'a, $crate::Result<Vec<$crate::queue::DeadLetter>>> {
            let $q = self;
            $inner.dead_letters(group, streams, limit)
        }
        fn replay<'a>(
            &'a self,
            letter: &'a $crate::queue::DeadLetter,
        ) -> $crate::queue::BoxFuture<'a, $crate::Result<()>> {
            let $q = self;
            $inner.replay(letter)
        }
        fn purge_dead_letters<'a>(
            &'a self,
            letters: &'a [$crate::queue::DeadLetter],
        ) -> $crate::queue::BoxFuture<'a, $crate::Result<usize>> {
            let $q = self;
            $inner.purge_dead_letters(letters)
        }
        fn last_id<'a>(
            &'a self,
            stream: &'a str,
        ) -> $crate::queue::BoxFuture<'a, $crate::Result<$crate::queue::EntryId>> {
            let $q = self;
            $inner.last_id(stream)
        }
        fn read_streams<'a>(
            &'a self,
            cursors: &'a [(::std::sync::Arc<str>, $crate::queue::EntryId)],
            count: usize,
            block: Option<::core::time::Duration>,
        ) -> $crate::queue::BoxFuture<'a, $crate::Result<Vec<$crate::queue::StreamEntry>>> {
            let $q = self;
            $inner.read_streams(cursors, count, block)
        }
        fn maintain<'a>(&'a self, stream: &'a str) -> $crate::queue::BoxFuture<'a, $crate::Result<()>> {
            let $q = self;
            $inner.maintain(stream)
        }
        fn groups<'a>(&'a self, stream: &'a str) -> $crate::queue::BoxFuture<'a, $crate::Result<Vec<String>>> {
            let $q = self;
            $inner.groups(stream)
        }
        fn settled<'a>(
            &'a self,
            group: &'a str,
            checks: &'a [$crate::queue::SettleCheck],
        ) -> $crate::queue::BoxFuture<'a, $crate::Result<bool>> {
            let $q = self;
            $inner.settled(group, checks)
        }
    };
}
pub(crate) use delegate_message_queue;

/// A shared queue is a queue: lets `Arc<dyn MessageQueue>` (chosen at run time, e.g. in-memory
/// or Redis by configuration) go wherever `impl MessageQueue` is expected.
impl<Q: MessageQueue + ?Sized> MessageQueue for Arc<Q> {
    delegate_message_queue!(|q| (**q));
}
