//! [`InMemoryQueue`]: the embedded default backend, with the same semantics as Redis Streams.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::envelope::{now_ms, Envelope};
use crate::queue::{
    dead_letter_key, due_stream_key, retry_set_key, Append, BoxFuture, DeadLetter, EntryBody, EntryId, GroupStart,
    MessageQueue, NewDeadLetter, ReadGroup, SettleCheck, StreamEntry,
};
use crate::{Error, Result};

/// Default hard cap on the entries of one stream: past it the oldest entries are dropped
/// (and counted in `events_trimmed_total`), acked or not.
pub const DEFAULT_MAX_STREAM_LEN: usize = 1_000_000;

/// An in-process queue with consumer groups, pending entries, broadcast cursors, delayed
/// retries and dead letters: what Redis Streams does, without a server.
///
/// Each `InMemoryQueue::new()` is an independent queue; its clones share it, so several
/// dispatchers (service instances) and producers can talk through one queue in one process.
///
/// Anycast streams are trimmed below what every group has acked by the dispatcher's
/// housekeeping ([`MessageQueue::maintain`], about once a second); every stream is also capped
/// at [`DEFAULT_MAX_STREAM_LEN`] entries (see [`InMemoryQueue::with_max_stream_len`]).
/// Broadcast streams are bounded by the cap only, since their ephemeral readers are not groups.
#[derive(Clone, Default)]
pub struct InMemoryQueue {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for InMemoryQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryQueue").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    appended: Notify,
}

#[derive(Default)]
struct State {
    streams: HashMap<Arc<str>, Stream>,
    retries: HashMap<String, BTreeMap<(u64, u64), Envelope>>,
    dead_letters: HashMap<String, BTreeMap<EntryId, StoredDeadLetter>>,
    retry_seq: u64,
    max_len: Option<usize>,
}

struct StoredDeadLetter {
    letter: DeadLetter,
    body: EntryBody,
}

/// A stream's entries in id order. Ids only grow, so a deque with binary search does what a
/// tree would, with one dense slot per entry and O(1) appends and trims.
#[derive(Default)]
struct Entries(std::collections::VecDeque<(EntryId, EntryBody)>);

impl Entries {
    fn insert(&mut self, id: EntryId, body: EntryBody) {
        debug_assert!(self.0.back().is_none_or(|(last, _)| *last < id));
        self.0.push_back((id, body));
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn pop_front(&mut self) {
        self.0.pop_front();
    }

    fn first_id(&self) -> Option<EntryId> {
        self.0.front().map(|(id, _)| *id)
    }

    fn get(&self, id: &EntryId) -> Option<&EntryBody> {
        let i = self.0.partition_point(|(e, _)| e < id);
        self.0.get(i).filter(|(e, _)| e == id).map(|(_, b)| b)
    }

    /// Entries with ids from `start` on.
    fn from(&self, start: EntryId) -> impl Iterator<Item = (&EntryId, &EntryBody)> {
        let i = self.0.partition_point(|(e, _)| *e < start);
        self.0.range(i..).map(|(id, b)| (id, b))
    }
}

#[derive(Default)]
struct Stream {
    entries: Entries,
    /// Set once a dispatcher maintains the stream (anycast and due streams only): from then on
    /// acks trim it incrementally, instead of a large trim under the lock once a second.
    trim_on_ack: bool,
    last: EntryId,
    groups: HashMap<String, Group>,
}

#[derive(Default)]
struct Group {
    last_delivered: EntryId,
    pending: BTreeMap<EntryId, Pending>,
}

struct Pending {
    consumer: Arc<str>,
    delivered_at: Instant,
    deliveries: u32,
}

impl State {
    fn stream(&mut self, key: &str) -> &mut Stream {
        if !self.streams.contains_key(key) {
            self.streams.insert(Arc::from(key), Stream::default());
        }
        self.streams.get_mut(key).expect("inserted above")
    }

    /// Appends at time `now` (unix ms; read once per batch by the caller).
    fn append(&mut self, key: &str, body: EntryBody, now: u64) -> EntryId {
        let cap = self.max_len.unwrap_or(DEFAULT_MAX_STREAM_LEN);
        let stream = self.stream(key);
        let id = if now > stream.last.ms {
            EntryId { ms: now, seq: 0 }
        } else {
            EntryId { ms: stream.last.ms, seq: stream.last.seq + 1 }
        };
        stream.last = id;
        stream.entries.insert(id, body);
        let mut dropped = 0u64;
        while stream.entries.len() > cap {
            stream.entries.pop_front();
            dropped += 1;
        }
        if dropped > 0 {
            metrics::counter!("events_trimmed_total", "stream" => key.to_owned()).increment(dropped);
        }
        id
    }
}

impl Stream {
    /// Drops entries every group has acked (only streams read by groups).
    fn trim_acked(&mut self) {
        if self.groups.is_empty() {
            return;
        }
        let floor = self
            .groups
            .values()
            .map(|g| {
                let after = EntryId { ms: g.last_delivered.ms, seq: g.last_delivered.seq.saturating_add(1) };
                g.pending.keys().next().copied().map_or(after, |p| p.min(after))
            })
            .min()
            .unwrap_or(EntryId::ZERO);
        while let Some(first) = self.entries.first_id() {
            if first >= floor {
                break;
            }
            self.entries.pop_front();
        }
    }
}

impl InMemoryQueue {
    /// A new, empty, independent queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new queue whose streams hold at most `max_len` entries each (the safety valve).
    pub fn with_max_stream_len(max_len: usize) -> Self {
        let q = Self::default();
        q.lock().max_len = Some(max_len.max(1));
        q
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Number of entries currently stored in `stream` (after trimming).
    pub fn stream_len(&self, stream: &str) -> usize {
        self.lock().streams.get(stream).map_or(0, |s| s.entries.len())
    }

    /// Waits until something is appended or `block` passes; returns `false` on timeout.
    async fn wait_for_append(&self, deadline: Instant, ready: impl Fn(&Self) -> bool) -> bool {
        loop {
            let notified = self.shared.appended.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if ready(self) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            if tokio::time::timeout(deadline - now, notified).await.is_err() {
                return ready(self);
            }
        }
    }

    fn read_group_now(&self, req: &ReadGroup<'_>) -> Vec<StreamEntry> {
        let consumer: Arc<str> = Arc::from(req.consumer);
        let mut state = self.lock();
        let mut out = Vec::new();
        let now = Instant::now();
        for key in req.streams {
            if out.len() >= req.count {
                break;
            }
            let Some(stream) = state.streams.get_mut(&**key) else { continue };
            let Stream { entries, groups, .. } = stream;
            let Some(group) = groups.get_mut(req.group) else { continue };
            if let Some(after) = req.pending_after {
                let from = EntryId { ms: after.ms, seq: after.seq.saturating_add(1) };
                for (id, p) in group.pending.range_mut(from..) {
                    if out.len() >= req.count {
                        break;
                    }
                    if *p.consumer != *req.consumer {
                        continue;
                    }
                    let Some(body) = entries.get(id) else { continue };
                    p.deliveries += 1;
                    p.delivered_at = now;
                    out.push(StreamEntry {
                        stream: key.clone(),
                        id: *id,
                        body: body.clone(),
                        deliveries: p.deliveries,
                    });
                }
            } else {
                let start = EntryId { ms: group.last_delivered.ms, seq: group.last_delivered.seq.saturating_add(1) };
                for (id, body) in entries.from(start) {
                    if out.len() >= req.count {
                        break;
                    }
                    group.last_delivered = *id;
                    group.pending.insert(*id, Pending { consumer: consumer.clone(), delivered_at: now, deliveries: 1 });
                    out.push(StreamEntry { stream: key.clone(), id: *id, body: body.clone(), deliveries: 1 });
                }
            }
        }
        out
    }

    fn has_new_for_group(&self, group: &str, streams: &[Arc<str>]) -> bool {
        let state = self.lock();
        streams.iter().any(|k| {
            state.streams.get(&**k).is_some_and(|s| s.groups.get(group).is_some_and(|g| s.last > g.last_delivered))
        })
    }

    fn read_streams_now(&self, cursors: &[(Arc<str>, EntryId)], count: usize) -> Vec<StreamEntry> {
        let state = self.lock();
        let mut out = Vec::new();
        for (key, cursor) in cursors {
            let Some(stream) = state.streams.get(&**key) else { continue };
            let start = EntryId { ms: cursor.ms, seq: cursor.seq.saturating_add(1) };
            for (id, body) in stream.entries.from(start) {
                if out.len() >= count {
                    return out;
                }
                out.push(StreamEntry { stream: key.clone(), id: *id, body: body.clone(), deliveries: 1 });
            }
        }
        out
    }

    fn ack_locked(state: &mut State, group: &str, stream: &str, id: EntryId) {
        if let Some(s) = state.streams.get_mut(stream) {
            if let Some(g) = s.groups.get_mut(group) {
                g.pending.remove(&id);
            }
            if s.trim_on_ack {
                s.trim_acked();
            }
        }
    }
}

fn ok<'a, T: Send + 'a>(v: Result<T>) -> BoxFuture<'a, Result<T>> {
    Box::pin(std::future::ready(v))
}

impl MessageQueue for InMemoryQueue {
    fn append<'a>(&'a self, batch: &'a [Append]) -> BoxFuture<'a, Result<Vec<EntryId>>> {
        let ids = {
            let mut state = self.lock();
            let now = now_ms();
            batch.iter().map(|a| state.append(&a.stream, EntryBody::Envelope(a.envelope.clone()), now)).collect()
        };
        self.shared.appended.notify_waiters();
        ok(Ok(ids))
    }

    fn append_raw<'a>(&'a self, stream: &'a str, fields: &'a [(&'a str, &'a [u8])]) -> BoxFuture<'a, Result<EntryId>> {
        let body = EntryBody::Fields(fields.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.to_vec())).collect());
        let id = self.lock().append(stream, body, now_ms());
        self.shared.appended.notify_waiters();
        ok(Ok(id))
    }

    fn ensure_group<'a>(&'a self, stream: &'a str, group: &'a str, start: GroupStart) -> BoxFuture<'a, Result<()>> {
        let mut state = self.lock();
        let s = state.stream(stream);
        let last = s.last;
        s.groups.entry(group.to_owned()).or_insert_with(|| Group {
            last_delivered: if start == GroupStart::End { last } else { EntryId::ZERO },
            pending: BTreeMap::new(),
        });
        ok(Ok(()))
    }

    fn read_group<'a>(&'a self, req: ReadGroup<'a>) -> BoxFuture<'a, Result<Vec<StreamEntry>>> {
        Box::pin(async move {
            let first = self.read_group_now(&req);
            if !first.is_empty() || req.pending_after.is_some() {
                return Ok(first);
            }
            let Some(block) = req.block else { return Ok(first) };
            let deadline = Instant::now() + block;
            loop {
                if !self.wait_for_append(deadline, |q| q.has_new_for_group(req.group, req.streams)).await {
                    return Ok(Vec::new());
                }
                let got = self.read_group_now(&req);
                if !got.is_empty() || Instant::now() >= deadline {
                    return Ok(got);
                }
            }
        })
    }

    fn ack<'a>(&'a self, group: &'a str, entries: &'a [(Arc<str>, EntryId)]) -> BoxFuture<'a, Result<()>> {
        let mut state = self.lock();
        for (stream, id) in entries {
            Self::ack_locked(&mut state, group, stream, *id);
        }
        ok(Ok(()))
    }

    fn claim_idle<'a>(
        &'a self,
        group: &'a str,
        consumer: &'a str,
        stream: &'a Arc<str>,
        min_idle: Duration,
        count: usize,
    ) -> BoxFuture<'a, Result<Vec<StreamEntry>>> {
        let mut state = self.lock();
        let now = Instant::now();
        let mut out = Vec::new();
        if let Some(s) = state.streams.get_mut(&**stream) {
            let Stream { entries, groups, .. } = s;
            if let Some(g) = groups.get_mut(group) {
                let mut gone = Vec::new();
                for (id, p) in g.pending.iter_mut() {
                    if out.len() >= count {
                        break;
                    }
                    if now.duration_since(p.delivered_at) < min_idle {
                        continue;
                    }
                    match entries.get(id) {
                        Some(body) => {
                            p.consumer = Arc::from(consumer);
                            p.delivered_at = now;
                            p.deliveries += 1;
                            out.push(StreamEntry {
                                stream: stream.clone(),
                                id: *id,
                                body: body.clone(),
                                deliveries: p.deliveries,
                            });
                        }
                        // Trimmed by the cap while pending: nothing left to deliver.
                        None => gone.push(*id),
                    }
                }
                for id in gone {
                    g.pending.remove(&id);
                }
            }
        }
        ok(Ok(out))
    }

    fn keep_alive<'a>(
        &'a self,
        group: &'a str,
        consumer: &'a str,
        entries: &'a [(Arc<str>, EntryId)],
    ) -> BoxFuture<'a, Result<()>> {
        let mut state = self.lock();
        let now = Instant::now();
        for (stream, id) in entries {
            if let Some(p) = state
                .streams
                .get_mut(&**stream)
                .and_then(|s| s.groups.get_mut(group))
                .and_then(|g| g.pending.get_mut(id))
            {
                if *p.consumer == *consumer {
                    p.delivered_at = now;
                }
            }
        }
        ok(Ok(()))
    }

    fn retry_later<'a>(
        &'a self,
        group: &'a str,
        main: &'a str,
        entry: &'a StreamEntry,
        retry: &'a Envelope,
        due_ms: u64,
    ) -> BoxFuture<'a, Result<()>> {
        let mut state = self.lock();
        Self::ack_locked(&mut state, group, &entry.stream, entry.id);
        let stream = main;
        state.retry_seq += 1;
        let seq = state.retry_seq;
        state.retries.entry(retry_set_key(stream, group)).or_default().insert((due_ms, seq), retry.clone());
        ok(Ok(()))
    }

    fn promote_due<'a>(
        &'a self,
        group: &'a str,
        stream: &'a Arc<str>,
        now_ms: u64,
        limit: usize,
    ) -> BoxFuture<'a, Result<(usize, Option<u64>)>> {
        let mut state = self.lock();
        let key = retry_set_key(stream, group);
        let mut due = Vec::new();
        let mut next = None;
        if let Some(set) = state.retries.get_mut(&key) {
            while let Some((&(at, seq), _)) = set.first_key_value() {
                if at > now_ms || due.len() >= limit {
                    next = Some(at);
                    break;
                }
                if let Some(env) = set.remove(&(at, seq)) {
                    due.push(env);
                }
            }
            if set.is_empty() {
                state.retries.remove(&key);
            }
        }
        let moved = due.len();
        if moved > 0 {
            let due_key = due_stream_key(stream, group);
            for env in due {
                state.append(&due_key, EntryBody::Envelope(Arc::new(env)), now_ms);
            }
            drop(state);
            self.shared.appended.notify_waiters();
        }
        ok(Ok((moved, next)))
    }

    fn dead_letter<'a>(
        &'a self,
        group: &'a str,
        main: &'a str,
        entry: &'a StreamEntry,
        letter: NewDeadLetter<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        let mut state = self.lock();
        Self::ack_locked(&mut state, group, &entry.stream, entry.id);
        let stream = main;
        let key = dead_letter_key(stream, group);
        let (event_name, event_id) = match &entry.body {
            EntryBody::Envelope(e) => (e.name.clone(), e.id.clone()),
            EntryBody::Fields(f) => {
                let get = |k: &[u8]| {
                    f.iter()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default()
                };
                (get(b"name"), get(b"id"))
            }
        };
        // The dead-letter stream is an ordinary stream for ids, but its entries live apart.
        let id = {
            let s = state.stream(&key);
            let now = now_ms();
            let id = if now > s.last.ms {
                EntryId { ms: now, seq: 0 }
            } else {
                EntryId { ms: s.last.ms, seq: s.last.seq + 1 }
            };
            s.last = id;
            id
        };
        let stored = StoredDeadLetter {
            letter: DeadLetter {
                id: id.to_string(),
                event_name,
                handler: letter.handler.to_owned(),
                error: letter.error.to_owned(),
                attempts: letter.attempts,
                stream: stream.to_string(),
                group: group.to_owned(),
                original_id: entry.id.to_string(),
                event_id,
                failed_at_ms: now_ms(),
            },
            body: entry.body.clone(),
        };
        state.dead_letters.entry(key).or_default().insert(id, stored);
        ok(Ok(()))
    }

    fn dead_letters<'a>(
        &'a self,
        group: &'a str,
        streams: &'a [Arc<str>],
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<DeadLetter>>> {
        let state = self.lock();
        let mut all: Vec<(EntryId, DeadLetter)> = streams
            .iter()
            .filter_map(|s| state.dead_letters.get(&dead_letter_key(s, group)))
            .flat_map(|m| m.iter().map(|(id, d)| (*id, d.letter.clone())))
            .collect();
        all.sort_by_key(|(id, _)| *id);
        all.truncate(limit);
        ok(Ok(all.into_iter().map(|(_, d)| d).collect()))
    }

    fn replay<'a>(&'a self, letter: &'a DeadLetter) -> BoxFuture<'a, Result<()>> {
        let mut state = self.lock();
        let key = dead_letter_key(&letter.stream, &letter.group);
        let id = EntryId::parse(&letter.id).ok_or_else(|| Error::DeadLetterNotFound(letter.id.clone()));
        let stored = id.and_then(|id| {
            state
                .dead_letters
                .get_mut(&key)
                .and_then(|m| m.remove(&id))
                .ok_or_else(|| Error::DeadLetterNotFound(letter.id.clone()))
        });
        let stored = match stored {
            Ok(s) => s,
            Err(e) => return ok(Err(e)),
        };
        let handlers = (!stored.letter.handler.is_empty()).then(|| vec![stored.letter.handler.clone()]);
        let body = match stored.body {
            EntryBody::Envelope(env) => {
                let mut env = (*env).clone();
                env.attempt = 1;
                env.handlers = handlers;
                EntryBody::Envelope(Arc::new(env))
            }
            EntryBody::Fields(mut fields) => {
                fields.retain(|(k, _)| k != b"attempt" && k != b"h");
                fields.push((b"attempt".to_vec(), b"1".to_vec()));
                if let Some(h) = handlers {
                    fields.push((b"h".to_vec(), h.join(",").into_bytes()));
                }
                EntryBody::Fields(fields)
            }
        };
        state.append(&due_stream_key(&letter.stream, &letter.group), body, now_ms());
        drop(state);
        self.shared.appended.notify_waiters();
        ok(Ok(()))
    }

    fn purge_dead_letters<'a>(&'a self, letters: &'a [DeadLetter]) -> BoxFuture<'a, Result<usize>> {
        let mut state = self.lock();
        let mut removed = 0;
        for l in letters {
            let key = dead_letter_key(&l.stream, &l.group);
            if let (Some(m), Some(id)) = (state.dead_letters.get_mut(&key), EntryId::parse(&l.id)) {
                removed += usize::from(m.remove(&id).is_some());
            }
        }
        ok(Ok(removed))
    }

    fn last_id<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<EntryId>> {
        ok(Ok(self.lock().streams.get(stream).map_or(EntryId::ZERO, |s| s.last)))
    }

    fn read_streams<'a>(
        &'a self,
        cursors: &'a [(Arc<str>, EntryId)],
        count: usize,
        block: Option<Duration>,
    ) -> BoxFuture<'a, Result<Vec<StreamEntry>>> {
        Box::pin(async move {
            let first = self.read_streams_now(cursors, count);
            let Some(block) = block.filter(|_| first.is_empty()) else { return Ok(first) };
            let deadline = Instant::now() + block;
            let has_new = |q: &Self| {
                let state = q.lock();
                cursors.iter().any(|(k, c)| state.streams.get(&**k).is_some_and(|s| s.last > *c))
            };
            if self.wait_for_append(deadline, has_new).await {
                Ok(self.read_streams_now(cursors, count))
            } else {
                Ok(Vec::new())
            }
        })
    }

    fn groups<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<Vec<String>>> {
        let mut groups: Vec<String> =
            self.lock().streams.get(stream).map(|s| s.groups.keys().cloned().collect()).unwrap_or_default();
        groups.sort();
        ok(Ok(groups))
    }

    fn maintain<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<()>> {
        if let Some(s) = self.lock().streams.get_mut(stream) {
            s.trim_on_ack = true;
            s.trim_acked();
        }
        ok(Ok(()))
    }

    fn settled<'a>(&'a self, group: &'a str, checks: &'a [SettleCheck]) -> BoxFuture<'a, Result<bool>> {
        let state = self.lock();
        let group_done = |key: &str, upto: Option<EntryId>| -> bool {
            let Some(s) = state.streams.get(key) else { return true };
            let Some(g) = s.groups.get(group) else { return true };
            let upto = upto.unwrap_or(s.last);
            g.last_delivered >= upto && g.pending.range(..=upto).next().is_none()
        };
        let done = checks.iter().all(|c| {
            group_done(&c.stream, Some(c.upto))
                && !state.retries.contains_key(&retry_set_key(&c.stream, group))
                && group_done(&due_stream_key(&c.stream, group), None)
        });
        ok(Ok(done))
    }
}
