//! [`RunningDispatcher`]: the read loops, handler invocation, acks, retries and dead letters.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::dispatcher::{EventDispatcher, HandlerSpec, Settings};
use crate::envelope::{now_ms, Envelope};
use crate::event::Delivery;
use crate::handler::{HandlerCall, InvokeError};
use crate::queue::{
    due_stream_key, DeadLetter, EntryBody, EntryId, GroupStart, MessageQueue, NewDeadLetter, ReadGroup, SettleCheck,
    StreamEntry,
};
use crate::state::StateMap;
use crate::stats::{HandlerCounters, HandlerStats};
use crate::Result;

/// How often a reader does stream housekeeping ([`MessageQueue::maintain`]).
const MAINTAIN_EVERY: Duration = Duration::from_secs(1);

/// Largest number of entries the group slots of one group allow in flight.
const MAX_GROUP_SLOTS: usize = 4096;

/// A started dispatcher: reading, handling, acking. Owned, `Send + Sync + 'static`.
///
/// Dropping it stops reading without waiting; [`shutdown`](Self::shutdown) also waits for the
/// handlers in flight and flushes their acks.
pub struct RunningDispatcher {
    rt: Option<Arc<Runtime>>,
    readers: Vec<JoinHandle<()>>,
    ackers: Vec<JoinHandle<()>>,
    closing_ackers: watch::Sender<bool>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for RunningDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningDispatcher").field("readers", &self.readers.len()).finish_non_exhaustive()
    }
}

struct Runtime {
    queue: Arc<dyn MessageQueue>,
    settings: Settings,
    state: StateMap,
    groups: Vec<Arc<GroupRt>>,
    broadcast: Option<Arc<BroadcastRt>>,
    handlers: Vec<Arc<HandlerRt>>,
}

struct HandlerRt {
    spec: HandlerSpec,
    slots: Semaphore,
    metrics: HandlerMetrics,
}

/// A handler's metric handles, registered once at start (label strings are not rebuilt per
/// event). Install the metrics recorder before `start()`.
struct HandlerMetrics {
    duration: metrics::Histogram,
    success: metrics::Counter,
    error: metrics::Counter,
    panic: metrics::Counter,
    timeout: metrics::Counter,
    retry: metrics::Counter,
    dead_letter: metrics::Counter,
}

impl HandlerMetrics {
    fn new(spec: &HandlerSpec) -> Self {
        let (event, handler) = (spec.event.name, spec.name.to_string());
        let outcome = |o: &'static str| metrics::counter!("events_handled_total", "event" => event, "handler" => handler.clone(), "outcome" => o);
        HandlerMetrics {
            duration: metrics::histogram!("event_handler_duration_seconds", "event" => event, "handler" => handler.clone()),
            success: outcome("success"),
            error: outcome("error"),
            panic: outcome("panic"),
            timeout: outcome("timeout"),
            retry: outcome("retry"),
            dead_letter: outcome("dead_letter"),
        }
    }

    fn failed(&self, kind: FailKind) -> &metrics::Counter {
        match kind {
            FailKind::Panic => &self.panic,
            FailKind::Timeout => &self.timeout,
            FailKind::Error | FailKind::Decode | FailKind::Exhausted => &self.error,
        }
    }
}

type Handlers = HashMap<&'static str, Vec<Arc<HandlerRt>>>;

struct GroupRt {
    name: Arc<str>,
    mains: Vec<Arc<str>>,
    reads: Vec<Arc<str>>,
    main_of: HashMap<Arc<str>, Arc<str>>,
    handlers: Handlers,
    slots: Arc<Semaphore>,
    capacity: usize,
    held: Mutex<HashSet<(Arc<str>, EntryId)>>,
    acks: mpsc::UnboundedSender<(Arc<str>, EntryId)>,
}

struct BroadcastRt {
    handlers: Handlers,
    slots: Arc<Semaphore>,
    capacity: usize,
    progress: Mutex<BroadcastProgress>,
    /// Durable subscribers: how far the recovery re-read of own pending entries got, per stream.
    pending_after: Mutex<Vec<EntryId>>,
}

struct BroadcastProgress {
    cursors: Vec<(Arc<str>, EntryId)>,
    in_flight: usize,
}

/// How one invocation ended.
enum Outcome {
    Success,
    Failed { kind: FailKind, error: String },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FailKind {
    Error,
    Panic,
    Timeout,
    /// The payload does not decode into the handler's event: no retry can help.
    Decode,
    /// Delivered more times than the handler's attempts without an outcome.
    Exhausted,
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Retries a queue operation a few times with backoff; `false` if it kept failing (the entry
/// then stays pending and comes back through reclaim: at-least-once, never lost).
async fn persist<F, Fut>(what: &str, mut op: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut delay = Duration::from_millis(20);
    for attempt in 1..=8 {
        match op().await {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(error = %e, attempt, "{what} failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
    false
}

impl Runtime {
    fn decode(&self, entry: &StreamEntry) -> std::result::Result<Arc<Envelope>, crate::envelope::DecodeError> {
        match &entry.body {
            EntryBody::Envelope(env) if env.data.len() > self.settings.max_payload => {
                Err(crate::envelope::DecodeError {
                    reason: format!(
                        "payload of {} bytes is over the limit of {} bytes",
                        env.data.len(),
                        self.settings.max_payload
                    ),
                    name: Some(env.name.clone()),
                })
            }
            EntryBody::Envelope(env) => Ok(env.clone()),
            EntryBody::Fields(fields) => Envelope::from_fields(fields, self.settings.max_payload).map(Arc::new),
        }
    }

    /// Runs one handler on one envelope, counting and tracing the outcome.
    async fn invoke(&self, h: &HandlerRt, env: &Envelope, attempt: u32, group: &str) -> Outcome {
        let Ok(_permit) = h.slots.acquire().await else {
            return Outcome::Failed { kind: FailKind::Error, error: "handler closed".into() };
        };
        let span = tracing::info_span!(
            "event.handle",
            event = %env.name,
            event_id = %env.id,
            attempt,
            handler = %h.spec.name,
            group,
            correlation_id = env.cid.as_deref().unwrap_or(""),
        );
        crate::trace_context::set_parent(&span, env.traceparent.as_deref());
        let started = Instant::now();
        let call = HandlerCall::new(env, attempt, &self.state);
        let outcome = match std::panic::catch_unwind(AssertUnwindSafe(|| (h.spec.invoke)(&call))) {
            Err(p) => {
                Outcome::Failed { kind: FailKind::Panic, error: format!("handler panicked: {}", panic_message(&*p)) }
            }
            Ok(Err(InvokeError::Decode(reason))) => Outcome::Failed { kind: FailKind::Decode, error: reason },
            Ok(Err(InvokeError::Extract(e))) => Outcome::Failed { kind: FailKind::Error, error: e.to_string() },
            Ok(Ok(fut)) => {
                let run = AssertUnwindSafe(fut).catch_unwind();
                let result = match h.spec.timeout {
                    None => Some(run.instrument(span.clone()).await),
                    Some(limit) => tokio::time::timeout(limit, run.instrument(span.clone())).await.ok(),
                };
                match result {
                    None => Outcome::Failed {
                        kind: FailKind::Timeout,
                        error: format!("handler timed out after {:?}", h.spec.timeout.unwrap_or_default()),
                    },
                    Some(Err(p)) => Outcome::Failed {
                        kind: FailKind::Panic,
                        error: format!("handler panicked: {}", panic_message(&*p)),
                    },
                    Some(Ok(Err(e))) => Outcome::Failed { kind: FailKind::Error, error: e.to_string() },
                    Some(Ok(Ok(()))) => Outcome::Success,
                }
            }
        };
        h.metrics.duration.record(started.elapsed().as_secs_f64());
        let c = &h.spec.counters;
        match &outcome {
            Outcome::Success => {
                HandlerCounters::bump(&c.handled);
                h.metrics.success.increment(1);
            }
            Outcome::Failed { kind, error } => {
                HandlerCounters::bump(&c.failed);
                match kind {
                    FailKind::Panic => HandlerCounters::bump(&c.panicked),
                    FailKind::Timeout => HandlerCounters::bump(&c.timed_out),
                    _ => {}
                }
                let _enter = span.enter();
                tracing::warn!(error = %error, "handler failed");
                h.metrics.failed(*kind).increment(1);
            }
        }
        outcome
    }

    async fn process_anycast(&self, g: &GroupRt, entry: &StreamEntry) {
        let Some(main) = g.main_of.get(&entry.stream).cloned() else { return };
        let env = match self.decode(entry) {
            Ok(env) => env,
            Err(e) => {
                metrics::counter!("event_decode_errors_total", "stream" => main.to_string()).increment(1);
                tracing::warn!(stream = %main, id = %entry.id, reason = %e, "undecodable entry; dead-lettering it");
                let error = format!("undecodable entry: {e}");
                let letter = NewDeadLetter { handler: "", error: &error, attempts: entry.deliveries };
                persist("dead-lettering", || self.queue.dead_letter(&g.name, &main, entry, letter.clone())).await;
                return;
            }
        };
        let handlers: Vec<&Arc<HandlerRt>> = match g.handlers.get(env.name.as_str()) {
            Some(hs) => hs
                .iter()
                .filter(|h| env.handlers.as_ref().is_none_or(|only| only.iter().any(|n| **n == *h.spec.name)))
                .collect(),
            None => Vec::new(),
        };
        if handlers.is_empty() {
            metrics::counter!("events_skipped_total", "stream" => main.to_string(), "group" => g.name.to_string())
                .increment(1);
            let _ = g.acks.send((entry.stream.clone(), entry.id));
            return;
        }
        let attempt = env.attempt.saturating_add(entry.deliveries.saturating_sub(1));
        let runs = handlers.iter().map(|h| {
            let env = &env;
            async move {
                let outcome = if attempt > h.spec.retry.max_attempts {
                    HandlerCounters::bump(&h.spec.counters.failed);
                    Outcome::Failed {
                        kind: FailKind::Exhausted,
                        error: format!(
                            "{} attempts without an outcome (a consumer probably crashed while handling it)",
                            attempt - 1
                        ),
                    }
                } else {
                    self.invoke(h, env, attempt, &g.name).await
                };
                (*h, outcome)
            }
        });
        let outcomes = run_all(runs).await;
        let mut retry_names = Vec::new();
        let mut retry_delay: Option<Duration> = None;
        let mut any_failed = false;
        for (h, outcome) in outcomes {
            let Outcome::Failed { kind, error } = outcome else { continue };
            any_failed = true;
            let final_attempt =
                matches!(kind, FailKind::Decode | FailKind::Exhausted) || attempt >= h.spec.retry.max_attempts;
            if final_attempt {
                // An exhausted entry was not run this time: the attempts made are the earlier ones.
                let attempts = if kind == FailKind::Exhausted { attempt - 1 } else { attempt };
                let letter = NewDeadLetter { handler: &h.spec.name, error: &error, attempts };
                persist("dead-lettering", || self.queue.dead_letter(&g.name, &main, entry, letter.clone())).await;
                HandlerCounters::bump(&h.spec.counters.dead_lettered);
                h.metrics.dead_letter.increment(1);
                metrics::counter!("events_dead_lettered_total", "stream" => main.to_string(), "group" => g.name.to_string())
                    .increment(1);
            } else {
                retry_names.push(h.spec.name.to_string());
                let d = h.spec.retry.delay(attempt);
                retry_delay = Some(retry_delay.map_or(d, |cur| cur.min(d)));
                HandlerCounters::bump(&h.spec.counters.retried);
                h.metrics.retry.increment(1);
            }
        }
        if !any_failed {
            let _ = g.acks.send((entry.stream.clone(), entry.id));
        } else if !retry_names.is_empty() {
            let mut retry = (*env).clone();
            retry.attempt = attempt + 1;
            retry.handlers = Some(retry_names);
            let due = now_ms() + retry_delay.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            persist("scheduling a retry", || self.queue.retry_later(&g.name, &main, entry, &retry, due)).await;
        }
    }

    async fn process_broadcast(&self, b: &BroadcastRt, entry: &StreamEntry) {
        let env = match self.decode(entry) {
            Ok(env) => env,
            Err(e) => {
                metrics::counter!("event_decode_errors_total", "stream" => entry.stream.to_string()).increment(1);
                tracing::warn!(stream = %entry.stream, id = %entry.id, reason = %e, "undecodable broadcast entry skipped");
                return;
            }
        };
        let Some(handlers) = b.handlers.get(env.name.as_str()) else { return };
        run_all(handlers.iter().map(|h| self.invoke(h, &env, env.attempt, ""))).await;
    }
}

/// Acks in batches: whatever accumulated while the previous ack was on its way goes in the
/// next one. Ends when every sender is gone, or on `closing` after acking what is queued.
async fn run_acker(
    queue: Arc<dyn MessageQueue>,
    group: Arc<str>,
    mut rx: mpsc::UnboundedReceiver<(Arc<str>, EntryId)>,
    mut closing: watch::Receiver<bool>,
) {
    let mut batch = Vec::with_capacity(1024);
    loop {
        let last = tokio::select! {
            n = rx.recv_many(&mut batch, 1024) => n == 0,
            _ = closing.wait_for(|c| *c) => {
                while let Ok(item) = rx.try_recv() {
                    batch.push(item);
                }
                true
            }
        };
        if !batch.is_empty() && !persist("acking", || queue.ack(&group, &batch)).await {
            tracing::error!(group = %group, entries = batch.len(), "could not ack; the entries will be redelivered");
        }
        batch.clear();
        if last {
            return;
        }
    }
}

/// Waits for one free slot, then takes every other free one (up to `max`) in one go.
async fn read_with_permits(slots: &Arc<Semaphore>, max: usize) -> Option<Vec<tokio::sync::OwnedSemaphorePermit>> {
    let mut all = slots.clone().acquire_owned().await.ok()?;
    let more = slots.available_permits().min(max.saturating_sub(1));
    if more > 0 {
        if let Ok(extra) = slots.clone().try_acquire_many_owned(u32::try_from(more).unwrap_or(u32::MAX)) {
            all.merge(extra);
        }
    }
    let n = all.num_permits();
    let mut permits = Vec::with_capacity(n);
    while let Some(one) = if all.num_permits() > 1 { all.split(1) } else { None } {
        permits.push(one);
    }
    permits.push(all);
    Some(permits)
}

type Permit = tokio::sync::OwnedSemaphorePermit;

/// Hands a batch of entries to one task that runs them concurrently (one task per batch, not
/// per entry); each entry's slot is freed as soon as it settles.
fn spawn_anycast(rt: &Arc<Runtime>, g: &Arc<GroupRt>, batch: Vec<(StreamEntry, Permit)>) {
    {
        let mut held = lock(&g.held);
        for (e, _) in &batch {
            held.insert((e.stream.clone(), e.id));
        }
    }
    let (rt, g) = (rt.clone(), g.clone());
    spawn_batch(batch, move |entry| {
        let (rt, g) = (rt.clone(), g.clone());
        async move {
            rt.process_anycast(&g, &entry).await;
            lock(&g.held).remove(&(entry.stream.clone(), entry.id));
        }
    });
}

/// Runs a batch of entries in one task (not one task per entry), all concurrently; each
/// entry's slot is freed as soon as its own run ends.
fn spawn_batch<F, Fut>(batch: Vec<(StreamEntry, Permit)>, run: F)
where
    F: Fn(StreamEntry) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    if batch.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut running: FuturesUnordered<_> = batch
            .into_iter()
            .map(|(entry, permit)| {
                let done = run(entry);
                async move {
                    done.await;
                    drop(permit);
                }
            })
            .collect();
        while running.next().await.is_some() {}
    });
}

/// Awaits the runs of one entry's handlers: the only one inline (the common case), several
/// concurrently.
async fn run_all<F: std::future::Future>(runs: impl ExactSizeIterator<Item = F>) -> Vec<F::Output> {
    if runs.len() == 1 {
        let mut out = Vec::with_capacity(1);
        for run in runs {
            out.push(run.await);
        }
        out
    } else {
        futures_util::future::join_all(runs).await
    }
}

/// Pairs each entry with a slot: the permits taken before reading, then (if the backend
/// returned more, e.g. one batch per stream) slots as they free up.
async fn with_permits(
    slots: &Arc<Semaphore>,
    entries: Vec<StreamEntry>,
    permits: &mut Vec<Permit>,
) -> Option<Vec<(StreamEntry, Permit)>> {
    let mut batch = Vec::with_capacity(entries.len());
    for entry in entries {
        let permit = match permits.pop() {
            Some(p) => p,
            None => slots.clone().acquire_owned().await.ok()?,
        };
        batch.push((entry, permit));
    }
    Some(batch)
}

async fn run_group(rt: Arc<Runtime>, g: Arc<GroupRt>, stop: watch::Receiver<bool>) {
    let s = &rt.settings;
    let queue = &rt.queue;
    let consumer = &*s.consumer;
    let mut error_delay = Duration::from_millis(50);

    // Recovery: first re-read our own pending entries (left by an earlier run of this consumer).
    for stream in &g.reads {
        let mut after = EntryId::ZERO;
        'stream: loop {
            if *stop.borrow() {
                return;
            }
            let Some(mut permits) = read_with_permits(&g.slots, s.max_batch).await else { return };
            let req = ReadGroup {
                group: &g.name,
                consumer,
                streams: std::slice::from_ref(stream),
                count: permits.len(),
                block: None,
                pending_after: Some(after),
            };
            match queue.read_group(req).await {
                Ok(entries) if entries.is_empty() => break 'stream,
                Ok(entries) => {
                    after = entries.iter().map(|e| e.id).fold(after, EntryId::max);
                    let Some(batch) = with_permits(&g.slots, entries, &mut permits).await else { return };
                    spawn_anycast(&rt, &g, batch);
                }
                Err(e) => {
                    tracing::warn!(error = %e, group = %g.name, "reading own pending entries failed; retrying");
                    tokio::time::sleep(error_delay).await;
                    error_delay = (error_delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    let claim_every = (s.claim_idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(10));
    let mut next_claim = Instant::now() + claim_every;
    let mut next_promote = Instant::now();
    let mut next_maintain = Instant::now();
    while !*stop.borrow() {
        let now = Instant::now();
        if now >= next_maintain {
            for stream in &g.reads {
                if let Err(e) = queue.maintain(stream).await {
                    tracing::warn!(error = %e, stream = %stream, "stream maintenance failed");
                }
            }
            next_maintain = Instant::now() + MAINTAIN_EVERY;
        }
        if now >= next_promote {
            let mut next = now + s.poll_interval;
            for main in &g.mains {
                match queue.promote_due(&g.name, main, now_ms(), 1024).await {
                    Ok((_, Some(due_ms))) => {
                        let wait = Duration::from_millis(due_ms.saturating_sub(now_ms()));
                        next = next.min(Instant::now() + wait);
                    }
                    Ok((_, None)) => {}
                    Err(e) => tracing::warn!(error = %e, stream = %main, "promoting due retries failed"),
                }
            }
            next_promote = next;
        }
        let Some(mut permits) = read_with_permits(&g.slots, s.max_batch).await else { return };
        if now >= next_claim {
            for stream in &g.reads {
                if permits.is_empty() {
                    break;
                }
                match queue.claim_idle(&g.name, consumer, stream, s.claim_idle, permits.len()).await {
                    Ok(entries) => {
                        if !entries.is_empty() {
                            metrics::counter!("events_reclaimed_total", "stream" => stream.to_string(), "group" => g.name.to_string())
                                .increment(entries.len() as u64);
                        }
                        let Some(batch) = with_permits(&g.slots, entries, &mut permits).await else { return };
                        spawn_anycast(&rt, &g, batch);
                    }
                    Err(e) => tracing::warn!(error = %e, stream = %stream, "reclaiming idle entries failed"),
                }
            }
            next_claim = Instant::now() + claim_every;
            if permits.is_empty() {
                continue;
            }
        }
        let block =
            next_promote.saturating_duration_since(Instant::now()).clamp(Duration::from_millis(1), s.poll_interval);
        let req = ReadGroup {
            group: &g.name,
            consumer,
            streams: &g.reads,
            count: permits.len(),
            block: Some(block),
            pending_after: None,
        };
        match queue.read_group(req).await {
            Ok(entries) => {
                error_delay = Duration::from_millis(50);
                let Some(batch) = with_permits(&g.slots, entries, &mut permits).await else { return };
                spawn_anycast(&rt, &g, batch);
            }
            Err(e) => {
                tracing::warn!(error = %e, group = %g.name, "reading the group failed; retrying");
                drop(permits);
                tokio::time::sleep(error_delay).await;
                error_delay = (error_delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Keeps the entries this consumer is working on fresh, so other consumers do not reclaim them.
///
/// A task of its own: the reader waits for a free slot when every slot is busy, and that is
/// exactly when the entries in flight need their keep-alive. After the stop signal it goes on
/// until the handlers in flight are done (the shutdown grace period), then ends.
async fn run_keep_alive(rt: Arc<Runtime>, g: Arc<GroupRt>, mut stop: watch::Receiver<bool>) {
    let every = (rt.settings.claim_idle / 3).clamp(Duration::from_millis(5), Duration::from_secs(20));
    let mut next = Instant::now() + every;
    loop {
        let stopping = *stop.borrow();
        if stopping && lock(&g.held).is_empty() {
            return;
        }
        let wake = if stopping { next.min(Instant::now() + Duration::from_millis(20)) } else { next };
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {}
            changed = stop.changed(), if !stopping => {
                if changed.is_err() {
                    return;
                }
            }
        }
        if Instant::now() >= next {
            let held: Vec<_> = lock(&g.held).iter().cloned().collect();
            if !held.is_empty() {
                if let Err(e) = rt.queue.keep_alive(&g.name, &rt.settings.consumer, &held).await {
                    tracing::warn!(error = %e, group = %g.name, "keep-alive failed");
                }
            }
            next = Instant::now() + every;
        }
    }
}

/// Reads the broadcast streams: with a cursor per stream (ephemeral), or through the
/// subscriber's own consumer group (durable, `subscriber_name`).
async fn read_broadcast(
    rt: &Runtime,
    b: &BroadcastRt,
    count: usize,
    recovering: &mut Option<usize>,
) -> Result<Vec<StreamEntry>> {
    let s = &rt.settings;
    let cursors = lock(&b.progress).cursors.clone();
    let Some(group) = &s.subscriber else {
        return rt.queue.read_streams(&cursors, count, Some(s.poll_interval)).await;
    };
    // Durable: first our own pending entries (left by a crash), stream by stream.
    while let Some(i) = *recovering {
        let Some((stream, _)) = cursors.get(i) else {
            *recovering = None;
            break;
        };
        let after = lock(&b.pending_after).get(i).copied().unwrap_or(EntryId::ZERO);
        let req = ReadGroup {
            group,
            consumer: group,
            streams: std::slice::from_ref(stream),
            count,
            block: None,
            pending_after: Some(after),
        };
        let entries = rt.queue.read_group(req).await?;
        if let Some(last) = entries.iter().map(|e| e.id).max() {
            if let Some(p) = lock(&b.pending_after).get_mut(i) {
                *p = last;
            }
            return Ok(entries);
        }
        *recovering = Some(i + 1);
    }
    let streams: Vec<Arc<str>> = cursors.into_iter().map(|(k, _)| k).collect();
    let req = ReadGroup {
        group,
        consumer: group,
        streams: &streams,
        count,
        block: Some(s.poll_interval),
        pending_after: None,
    };
    rt.queue.read_group(req).await
}

async fn run_broadcast(rt: Arc<Runtime>, b: Arc<BroadcastRt>, stop: watch::Receiver<bool>) {
    let s = &rt.settings;
    let mut error_delay = Duration::from_millis(50);
    let mut recovering = s.subscriber.as_ref().map(|_| 0usize);
    // No `maintain` here: a broadcast stream also has ephemeral readers (cursors) that no group
    // accounts for, so trimming it to what the durable subscribers' groups acked would drop
    // entries they have yet to read. Broadcast streams are bounded by the hard cap only.
    while !*stop.borrow() {
        let Some(permits) = read_with_permits(&b.slots, s.max_batch).await else { return };
        match read_broadcast(&rt, &b, permits.len(), &mut recovering).await {
            Ok(entries) => {
                error_delay = Duration::from_millis(50);
                {
                    let mut p = lock(&b.progress);
                    p.in_flight += entries.len();
                    for e in &entries {
                        if let Some(c) = p.cursors.iter_mut().find(|(k, _)| *k == e.stream) {
                            c.1 = c.1.max(e.id);
                        }
                    }
                }
                let mut permits = permits;
                let Some(batch) = with_permits(&b.slots, entries, &mut permits).await else { return };
                let (rt, b) = (rt.clone(), b.clone());
                spawn_batch(batch, move |entry| {
                    let (rt, b) = (rt.clone(), b.clone());
                    async move {
                        rt.process_broadcast(&b, &entry).await;
                        if let Some(group) = &rt.settings.subscriber {
                            let acks = [(entry.stream.clone(), entry.id)];
                            persist("acking", || rt.queue.ack(group, &acks)).await;
                        }
                        lock(&b.progress).in_flight -= 1;
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading broadcast streams failed; retrying");
                drop(permits);
                tokio::time::sleep(error_delay).await;
                error_delay = (error_delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn group_slots(handlers: &Handlers) -> usize {
    let sum: usize = handlers.values().flatten().map(|h| h.spec.concurrency as usize).sum();
    sum.clamp(1, MAX_GROUP_SLOTS)
}

impl RunningDispatcher {
    pub(crate) async fn start(d: EventDispatcher, specs: Vec<HandlerSpec>) -> Result<RunningDispatcher> {
        let queue = d.queue.clone();
        let handlers: Vec<Arc<HandlerRt>> = specs
            .into_iter()
            .map(|spec| {
                Arc::new(HandlerRt {
                    slots: Semaphore::new(spec.concurrency as usize),
                    metrics: HandlerMetrics::new(&spec),
                    spec,
                })
            })
            .collect();

        // Anycast: one reader per consumer group.
        let mut by_group: HashMap<Arc<str>, Handlers> = HashMap::new();
        let mut broadcast: Handlers = HashMap::new();
        for h in &handlers {
            match h.spec.event.delivery {
                Delivery::Anycast => by_group
                    .entry(h.spec.group.clone())
                    .or_default()
                    .entry(h.spec.event.name)
                    .or_default()
                    .push(h.clone()),
                Delivery::Broadcast => broadcast.entry(h.spec.event.name).or_default().push(h.clone()),
            }
        }
        let mut groups = Vec::new();
        let mut ackers = Vec::new();
        let (closing_ackers, closing_rx) = watch::channel(false);
        let mut group_names: Vec<_> = by_group.keys().cloned().collect();
        group_names.sort();
        for name in group_names {
            let Some(hs) = by_group.remove(&name) else { continue };
            let mut mains: Vec<Arc<str>> = hs.values().flatten().map(|h| Arc::from(h.spec.event.stream)).collect();
            mains.sort();
            mains.dedup();
            let mut reads = mains.clone();
            let mut main_of: HashMap<Arc<str>, Arc<str>> = mains.iter().map(|m| (m.clone(), m.clone())).collect();
            for m in &mains {
                queue.ensure_group(m, &name, GroupStart::End).await?;
                let due: Arc<str> = Arc::from(due_stream_key(m, &name));
                queue.ensure_group(&due, &name, GroupStart::Beginning).await?;
                main_of.insert(due.clone(), m.clone());
                reads.push(due);
            }
            let capacity = group_slots(&hs);
            let (tx, rx) = mpsc::unbounded_channel();
            ackers.push(tokio::spawn(run_acker(queue.clone(), name.clone(), rx, closing_rx.clone())));
            groups.push(Arc::new(GroupRt {
                name,
                mains,
                reads,
                main_of,
                slots: Arc::new(Semaphore::new(capacity)),
                capacity,
                handlers: hs,
                held: Mutex::new(HashSet::new()),
                acks: tx,
            }));
        }

        // Broadcast: one reader with a cursor per stream, fixed now.
        let broadcast = if broadcast.is_empty() {
            None
        } else {
            let mut streams: Vec<Arc<str>> =
                broadcast.values().flatten().map(|h| Arc::from(h.spec.event.stream)).collect();
            streams.sort();
            streams.dedup();
            let mut cursors = Vec::with_capacity(streams.len());
            for s in streams {
                if let Some(group) = &d.settings.subscriber {
                    queue.ensure_group(&s, group, GroupStart::End).await?;
                }
                let last = queue.last_id(&s).await?;
                cursors.push((s, last));
            }
            let pending_after = Mutex::new(vec![EntryId::ZERO; cursors.len()]);
            let capacity = group_slots(&broadcast);
            Some(Arc::new(BroadcastRt {
                slots: Arc::new(Semaphore::new(capacity)),
                capacity,
                handlers: broadcast,
                progress: Mutex::new(BroadcastProgress { cursors, in_flight: 0 }),
                pending_after,
            }))
        };

        let rt = Arc::new(Runtime {
            queue,
            settings: d.settings.clone(),
            state: d.state.clone(),
            groups,
            broadcast,
            handlers,
        });
        let (stop, stop_rx) = watch::channel(false);
        let mut readers = Vec::new();
        for g in &rt.groups {
            readers.push(tokio::spawn(run_group(rt.clone(), g.clone(), stop_rx.clone())));
            readers.push(tokio::spawn(run_keep_alive(rt.clone(), g.clone(), stop_rx.clone())));
        }
        if let Some(b) = &rt.broadcast {
            readers.push(tokio::spawn(run_broadcast(rt.clone(), b.clone(), stop_rx.clone())));
        }
        tracing::info!(
            group = %rt.settings.group,
            consumer = %rt.settings.consumer,
            handlers = rt.handlers.len(),
            groups = rt.groups.len(),
            "event dispatcher started"
        );
        Ok(RunningDispatcher { rt: Some(rt), readers, ackers, closing_ackers, stop })
    }

    fn rt(&self) -> &Arc<Runtime> {
        self.rt.as_ref().expect("runtime present until shutdown")
    }

    /// Waits until everything appended so far to the streams this dispatcher reads reached a
    /// final outcome (success or dead letter), scheduled retries included.
    pub async fn drain(&self) {
        let rt = self.rt();
        let mut checks: Vec<(Arc<str>, Vec<SettleCheck>)> = Vec::new();
        for g in &rt.groups {
            let mut c = Vec::new();
            for m in &g.mains {
                c.push(SettleCheck { stream: m.clone(), upto: last_id_retrying(&*rt.queue, m).await });
            }
            checks.push((g.name.clone(), c));
        }
        let mut targets = Vec::new();
        if let Some(b) = &rt.broadcast {
            let streams: Vec<Arc<str>> = lock(&b.progress).cursors.iter().map(|(s, _)| s.clone()).collect();
            for s in streams {
                let last = last_id_retrying(&*rt.queue, &s).await;
                targets.push((s, last));
            }
        }
        let mut wait = Duration::from_millis(1);
        loop {
            let mut done = true;
            for (group, c) in &checks {
                if !matches!(rt.queue.settled(group, c).await, Ok(true)) {
                    done = false;
                    break;
                }
            }
            if done {
                if let Some(b) = &rt.broadcast {
                    done = match &rt.settings.subscriber {
                        // Durable: the subscriber's group must have read and acked up to there.
                        Some(group) => {
                            let c: Vec<SettleCheck> = targets
                                .iter()
                                .map(|(s, upto)| SettleCheck { stream: s.clone(), upto: *upto })
                                .collect();
                            let idle = lock(&b.progress).in_flight == 0;
                            idle && matches!(rt.queue.settled(group, &c).await, Ok(true))
                        }
                        None => {
                            let p = lock(&b.progress);
                            p.in_flight == 0
                                && targets.iter().all(|(s, upto)| p.cursors.iter().any(|(k, c)| k == s && c >= upto))
                        }
                    };
                }
            }
            if done {
                return;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(20));
        }
    }

    /// Dead letters of this dispatcher's groups, oldest first, at most `limit`.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let rt = self.rt();
        let mut all = Vec::new();
        for g in &rt.groups {
            all.extend(rt.queue.dead_letters(&g.name, &g.mains, limit).await?);
        }
        all.sort_by_key(|d| EntryId::parse(&d.id).unwrap_or_default());
        all.truncate(limit);
        Ok(all)
    }

    /// Puts a dead letter back for its group, with a fresh attempt budget, and removes it from
    /// the dead-letter stream. Only the handler that gave up runs again.
    pub async fn replay(&self, letter: &DeadLetter) -> Result<()> {
        self.rt().queue.replay(letter).await
    }

    /// Removes dead letters for good; returns how many were removed.
    pub async fn purge_dead_letters(&self, letters: &[DeadLetter]) -> Result<usize> {
        self.rt().queue.purge_dead_letters(letters).await
    }

    /// Outcome counters of every handler, sorted by group, event, handler.
    pub fn stats(&self) -> Vec<HandlerStats> {
        let mut out: Vec<HandlerStats> = self
            .rt()
            .handlers
            .iter()
            .map(|h| {
                let group = if h.spec.event.delivery == Delivery::Anycast { &*h.spec.group } else { "" };
                h.spec.counters.snapshot(&h.spec.name, h.spec.event.name, group)
            })
            .collect();
        out.sort_by(|a, b| (&a.group, &a.event, &a.handler).cmp(&(&b.group, &b.event, &b.handler)));
        out
    }

    /// Consumer name of this instance.
    pub fn consumer(&self) -> &str {
        &self.rt().settings.consumer
    }

    /// Stops reading, waits up to `grace` for the handlers in flight, and flushes their acks.
    /// Entries still in flight after `grace` stay pending and are reclaimed by another consumer
    /// (or re-read by this one when it restarts with the same consumer name).
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        for r in self.readers.drain(..) {
            let abort = r.abort_handle();
            if tokio::time::timeout_at(deadline, r).await.is_err() {
                abort.abort();
            }
        }
        if let Some(rt) = self.rt.take() {
            let waits = rt
                .groups
                .iter()
                .map(|g| (g.slots.clone(), g.capacity))
                .chain(rt.broadcast.iter().map(|b| (b.slots.clone(), b.capacity)));
            for (slots, capacity) in waits {
                let n = u32::try_from(capacity).unwrap_or(u32::MAX);
                if tokio::time::timeout_at(deadline, slots.acquire_many(n)).await.is_err() {
                    tracing::warn!("shutdown grace period over with handlers still running");
                }
            }
            drop(rt);
        }
        // Ack what finished. One more round trip at most: bounded even after the grace period.
        let _ = self.closing_ackers.send(true);
        let flush_deadline = deadline.max(tokio::time::Instant::now() + Duration::from_millis(250));
        for a in self.ackers.drain(..) {
            let abort = a.abort_handle();
            if tokio::time::timeout_at(flush_deadline, a).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for RunningDispatcher {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn last_id_retrying(queue: &dyn MessageQueue, stream: &str) -> EntryId {
    let mut wait = Duration::from_millis(10);
    loop {
        match queue.last_id(stream).await {
            Ok(id) => return id,
            Err(e) => {
                tracing::warn!(error = %e, stream, "reading the stream's last id failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
            }
        }
    }
}

#[cfg(test)]
mod send_checks {
    fn assert_send<T: Send>(_: T) {}

    #[allow(dead_code)]
    fn handle_futures_are_send(r: &super::RunningDispatcher) {
        assert_send(r.drain());
        assert_send(r.dead_letters(1));
    }

    #[test]
    fn running_dispatcher_is_send_sync_static() {
        fn check<T: Send + Sync + 'static>() {}
        check::<super::RunningDispatcher>();
    }
}
