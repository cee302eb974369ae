//! The backend conformance suite: one set of delivery-semantics tests that every
//! [`MessageQueue`] implementation must pass.
//!
//! Each case is a `pub async fn <case>(queue: Arc<dyn MessageQueue>)` that drives real
//! dispatchers and producers over the queue it is given and panics, with a message saying what
//! went wrong, when the backend (or the runtime) breaks the contract. Every case wants a fresh,
//! empty queue (for Redis: a private server, database or key prefix per case), because cases
//! use fixed stream and group names.
//!
//! [`conformance_suite!`](crate::conformance_suite) turns the whole list into tests:
//!
//! ```no_run
//! // tests/conformance_memory.rs
//! # #![allow(unused_imports)] // the generated tests only exist under `cargo test`
//! use std::sync::Arc;
//! use event_core::{InMemoryQueue, MessageQueue};
//!
//! event_core::conformance_suite!(async { Arc::new(InMemoryQueue::new()) as Arc<dyn MessageQueue> });
//! # fn main() {}
//! ```
//!
//! The argument is an expression that evaluates to a future of an `Arc<dyn MessageQueue>`; it is
//! evaluated once per case. The generated tests are `#[tokio::test(flavor = "multi_thread",
//! worker_threads = 2)]` functions named after the cases, so the crate invoking the macro needs
//! `tokio` (features `macros` and `rt-multi-thread`) as a (dev-)dependency, and the invocation
//! is best placed in a test file or module of its own.
//!
//! The cases only assert correctness, never speed: every wait is bounded (20 s to settle) and a
//! timeout fails the case naming what did not settle. The events they use are implemented by
//! hand in the domain `conformance` and are not in the binary's event catalog.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::envelope::Envelope;
use crate::queue::{GroupStart, MessageQueue, ReadGroup, StreamEntry};
use crate::{
    AnycastEvent, Backoff, BroadcastEvent, DeadLetter, Delivery, Event, EventDispatcher, EventDispatcherBuilder,
    EventProducer, RunningDispatcher,
};

/// Expands to one `#[tokio::test]` per case of [`event_core::testing`](crate::testing), each
/// running the case on a fresh queue made by `$make`.
///
/// `$make` is an expression producing a future of an `Arc<dyn MessageQueue>`, evaluated once per
/// case:
///
/// ```no_run
/// # #![allow(unused_imports)] // the generated tests only exist under `cargo test`
/// use std::sync::Arc;
/// use event_core::{InMemoryQueue, MessageQueue};
///
/// event_core::conformance_suite!(async { Arc::new(InMemoryQueue::new()) as Arc<dyn MessageQueue> });
/// # fn main() {}
/// ```
///
/// The generated functions are named after the cases (`anycast_once_per_group`, ...) and use
/// `::tokio::test(flavor = "multi_thread", worker_threads = 2)`: the invoking crate needs `tokio`
/// with the `macros` and `rt-multi-thread` features.
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr $(,)?) => {
        $crate::conformance_suite!(@cases ($make);
            anycast_once_per_group,
            broadcast_reaches_every_subscriber,
            durable_subscriber_resumes,
            durable_and_ephemeral_subscribers_coexist,
            retry_then_success,
            retry_survives_restart,
            exhausted_retries_dead_letter_and_replay,
            only_failed_handler_is_retried,
            panic_is_a_failed_attempt,
            timeout_is_a_failed_attempt,
            broadcast_failures_are_isolated,
            undecodable_entries_are_dead_lettered,
            unhandled_names_are_skipped,
            concurrency_bounds_in_flight,
            idle_entries_are_reclaimed,
            delivery_count_bounds_attempts,
            own_pending_reread_on_restart,
            keep_alive_prevents_reclaim,
            shutdown_flushes_acks,
            start_fixes_positions,
            batch_delivered_in_order,
            group_reads_several_streams,
            dead_letters_per_group_and_purge,
        );
    };
    (@cases ($make:expr); $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let q: ::std::sync::Arc<dyn $crate::MessageQueue> = ($make).await;
                $crate::testing::$case(q).await;
            }
        )*
    };
}

/// Longest wait for anything to settle.
const SETTLE: Duration = Duration::from_secs(20);

/// Domain of every event of the suite.
const DOMAIN: &str = "conformance";

macro_rules! conformance_event {
    ($ty:ident, $name:literal, $delivery:ident, $marker:ident, $stream:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        struct $ty {
            n: u32,
        }

        impl Event for $ty {
            const NAME: &'static str = $name;
            const DOMAIN: &'static str = DOMAIN;
            const VERSION: u32 = 1;
            const DELIVERY: Delivery = Delivery::$delivery;
            const STREAM: &'static str = $stream;
        }

        impl $marker for $ty {}
    };
}

conformance_event!(Task, "conformance_task", Anycast, AnycastEvent, "events:{conformance}:anycast");
conformance_event!(Unhandled, "conformance_unhandled", Anycast, AnycastEvent, "events:{conformance}:anycast");
conformance_event!(Notice, "conformance_notice", Broadcast, BroadcastEvent, "events:{conformance}:broadcast");
conformance_event!(Audit, "conformance_audit", Anycast, AnycastEvent, "events:{conformance-audit}:anycast");

/// The anycast stream every anycast event of the suite lives in.
fn task_stream() -> String {
    Task::STREAM.to_owned()
}

/// A shared, append-only record of what handlers saw.
struct Log<T>(Arc<Mutex<Vec<T>>>);

impl<T> Clone for Log<T> {
    fn clone(&self) -> Self {
        Log(self.0.clone())
    }
}

impl<T: Clone> Log<T> {
    fn new() -> Self {
        Log(Arc::new(Mutex::new(Vec::new())))
    }

    fn push(&self, v: T) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(v);
    }

    fn get(&self) -> Vec<T> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

fn producer(queue: &Arc<dyn MessageQueue>) -> EventProducer {
    EventProducer::from_arc(queue.clone(), "conformance-src")
}

/// A builder with short polls and fixed 20 ms retry delays.
fn builder(queue: &Arc<dyn MessageQueue>, group: &str, consumer: &str) -> EventDispatcherBuilder {
    EventDispatcher::builder_arc(queue.clone())
        .group(group)
        .consumer(consumer)
        .poll_interval(Duration::from_millis(20))
        .backoff(Backoff::Fixed, Duration::from_millis(20), Duration::from_millis(20))
}

fn build(b: EventDispatcherBuilder, what: &str) -> EventDispatcher {
    b.build().unwrap_or_else(|e| panic!("conformance: building {what} failed: {e}"))
}

async fn start(d: EventDispatcher, what: &str) -> RunningDispatcher {
    match tokio::time::timeout(SETTLE, d.start()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => panic!("conformance: starting {what} failed: {e}"),
        Err(_) => panic!("conformance: starting {what} did not return within {SETTLE:?}"),
    }
}

async fn drained(running: &RunningDispatcher, what: &str) {
    if tokio::time::timeout(SETTLE, running.drain()).await.is_err() {
        panic!("conformance: `drain` did not return within {SETTLE:?}: {what} did not settle");
    }
}

async fn shutdown(running: RunningDispatcher) {
    if tokio::time::timeout(SETTLE, running.shutdown(Duration::from_secs(10))).await.is_err() {
        panic!("conformance: `shutdown` did not return within {SETTLE:?}");
    }
}

async fn dead_letters(running: &RunningDispatcher, what: &str) -> Vec<DeadLetter> {
    match tokio::time::timeout(SETTLE, running.dead_letters(1000)).await {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => panic!("conformance: listing dead letters of {what} failed: {e}"),
        Err(_) => panic!("conformance: listing dead letters of {what} did not return within {SETTLE:?}"),
    }
}

/// Polls `done` every 10 ms for at most [`SETTLE`].
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + SETTLE;
    while !done() {
        if tokio::time::Instant::now() >= deadline {
            panic!("conformance: timed out after {SETTLE:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn produce<E: Event>(p: &EventProducer, ev: &E) {
    if let Err(e) = p.produce(ev).await {
        panic!("conformance: producing `{}` failed: {e}", E::NAME);
    }
}

async fn produce_batch<E: Event>(p: &EventProducer, evs: &[E]) {
    if let Err(e) = p.produce_batch(evs).await {
        panic!("conformance: producing a batch of {} `{}` failed: {e}", evs.len(), E::NAME);
    }
}

fn tasks(range: std::ops::Range<u32>) -> Vec<Task> {
    range.map(|n| Task { n }).collect()
}

/// Name of the (only) handler of `event` in a running dispatcher, from its stats.
fn handler_name(running: &RunningDispatcher, event: &str) -> String {
    let names: Vec<String> = running.stats().into_iter().filter(|s| s.event == event).map(|s| s.handler).collect();
    assert_eq!(names.len(), 1, "conformance: expected one handler of `{event}`, found {names:?}");
    names.into_iter().next().unwrap_or_default()
}

/// Counts how often each value occurs.
fn counts<T: Ord + Clone>(values: &[T]) -> BTreeMap<T, usize> {
    let mut m = BTreeMap::new();
    for v in values {
        *m.entry(v.clone()).or_insert(0) += 1;
    }
    m
}

fn assert_each_once(what: &str, seen: &[u32], expected: std::ops::Range<u32>) {
    let c = counts(seen);
    let missing: Vec<u32> = expected.clone().filter(|n| !c.contains_key(n)).collect();
    let twice: Vec<(u32, usize)> = c.iter().filter(|(_, k)| **k > 1).map(|(n, k)| (*n, *k)).collect();
    let unexpected: Vec<u32> = c.keys().filter(|n| !expected.contains(n)).copied().collect();
    assert!(
        missing.is_empty() && twice.is_empty() && unexpected.is_empty(),
        "conformance: {what}: every event of {expected:?} must be handled exactly once; \
         missing {missing:?}, handled more than once (event, times) {twice:?}, unexpected {unexpected:?}"
    );
}

/// Reads `want` new entries of the task stream as `consumer` of `group` without acking them:
/// a consumer that then "dies".
async fn read_without_ack(queue: &Arc<dyn MessageQueue>, group: &str, consumer: &str, want: usize) -> Vec<StreamEntry> {
    let streams = [Arc::<str>::from(task_stream())];
    let mut got = Vec::new();
    for _ in 0..200 {
        if got.len() >= want {
            break;
        }
        let req = ReadGroup {
            group,
            consumer,
            streams: &streams,
            count: want - got.len(),
            block: Some(Duration::from_millis(100)),
            pending_after: None,
        };
        match tokio::time::timeout(SETTLE, queue.read_group(req)).await {
            Ok(Ok(entries)) => got.extend(entries),
            Ok(Err(e)) => panic!("conformance: read_group as `{consumer}` failed: {e}"),
            Err(_) => panic!("conformance: read_group as `{consumer}` did not return within {SETTLE:?}"),
        }
    }
    assert_eq!(
        got.len(),
        want,
        "conformance: reading as `{consumer}` of `{group}` returned {} of {want} entries",
        got.len()
    );
    got
}

async fn ensure_task_group(queue: &Arc<dyn MessageQueue>, group: &str) {
    if let Err(e) = queue.ensure_group(&task_stream(), group, GroupStart::End).await {
        panic!("conformance: ensure_group({group}) failed: {e}");
    }
}

// ------------------------------------------------------------------------------------------
// Cases
// ------------------------------------------------------------------------------------------

/// Anycast: two groups of two dispatchers each; every event is handled exactly once per group,
/// and both instances of each group get a share of the work.
pub async fn anycast_once_per_group(queue: Arc<dyn MessageQueue>) {
    const N: u32 = 60;
    let log: Log<(String, String, u32)> = Log::new();
    let mut running = Vec::new();
    for group in ["alpha", "beta"] {
        for i in 0..2 {
            let consumer = format!("{group}-{i}");
            let d = build(builder(&queue, group, &consumer).concurrency(2), &consumer);
            let (log, g, c) = (log.clone(), group.to_owned(), consumer.clone());
            d.consume::<Task, _, _>(move |ev, _meta| {
                let (log, group, consumer) = (log.clone(), g.clone(), c.clone());
                async move {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    log.push((group, consumer, ev.n));
                    Ok(())
                }
            });
            running.push(start(d, &format!("dispatcher {i} of group {group}")).await);
        }
    }
    produce_batch(&producer(&queue), &tasks(0..N)).await;
    for r in &running {
        drained(r, "the anycast events of both groups").await;
    }
    let log = log.get();
    for group in ["alpha", "beta"] {
        let seen: Vec<u32> = log.iter().filter(|(g, _, _)| g == group).map(|(_, _, n)| *n).collect();
        assert_each_once(&format!("group `{group}`"), &seen, 0..N);
        for i in 0..2 {
            let consumer = format!("{group}-{i}");
            let share = log.iter().filter(|(_, c, _)| *c == consumer).count();
            assert!(
                share > 0,
                "conformance: consumer `{consumer}` handled none of the {N} events of group `{group}`: \
                 a backlog must spread over the group's live instances"
            );
        }
    }
    for r in &running {
        let dead = dead_letters(r, "the anycast groups").await;
        assert!(dead.is_empty(), "conformance: unexpected dead letters {dead:?}");
    }
    for r in running {
        shutdown(r).await;
    }
}

/// Broadcast: each of three subscribers (three dispatchers) handles every event once.
pub async fn broadcast_reaches_every_subscriber(queue: Arc<dyn MessageQueue>) {
    const N: u32 = 20;
    let mut running = Vec::new();
    let mut logs = Vec::new();
    for i in 0..3 {
        let log: Log<u32> = Log::new();
        let d = build(builder(&queue, &format!("sub-{i}"), &format!("sub-{i}")), "a subscriber");
        let l = log.clone();
        d.subscribe::<Notice, _, _>(move |ev, _meta| {
            let l = l.clone();
            async move {
                l.push(ev.n);
                Ok(())
            }
        });
        running.push(start(d, &format!("subscriber {i}")).await);
        logs.push(log);
    }
    let p = producer(&queue);
    for n in 0..N {
        produce(&p, &Notice { n }).await;
    }
    for r in &running {
        drained(r, "the broadcast events").await;
    }
    for (i, log) in logs.iter().enumerate() {
        assert_each_once(&format!("subscriber {i}"), &log.get(), 0..N);
    }
    for r in running {
        shutdown(r).await;
    }
}

/// A durable subscriber (`subscriber_name`) resumes where it stopped: after a restart it gets
/// what was produced while it was down, and nothing it already handled.
pub async fn durable_subscriber_resumes(queue: Arc<dyn MessageQueue>) {
    let first: Log<u32> = Log::new();
    let second: Log<u32> = Log::new();
    let durable = |log: &Log<u32>| {
        let d = build(builder(&queue, "durable", "durable-1").subscriber_name("resumer"), "a durable subscriber");
        let l = log.clone();
        d.subscribe::<Notice, _, _>(move |ev, _meta| {
            let l = l.clone();
            async move {
                l.push(ev.n);
                Ok(())
            }
        });
        d
    };
    let p = producer(&queue);
    let running = start(durable(&first), "the durable subscriber").await;
    produce_batch(&p, &(0..5).map(|n| Notice { n }).collect::<Vec<_>>()).await;
    drained(&running, "events of a durable subscriber").await;
    shutdown(running).await;
    produce_batch(&p, &(5..10).map(|n| Notice { n }).collect::<Vec<_>>()).await;
    let running = start(durable(&second), "the restarted durable subscriber").await;
    produce_batch(&p, &(10..12).map(|n| Notice { n }).collect::<Vec<_>>()).await;
    drained(&running, "events produced while a durable subscriber was down").await;
    assert_each_once("the durable subscriber before its restart", &first.get(), 0..5);
    assert_each_once("the durable subscriber after its restart", &second.get(), 5..12);
    shutdown(running).await;
}

/// Durable and ephemeral subscribers of one stream each get every event: acks of the durable
/// one never trim entries an ephemeral subscriber has yet to read.
pub async fn durable_and_ephemeral_subscribers_coexist(queue: Arc<dyn MessageQueue>) {
    const N: u32 = 300;
    let mut running = Vec::new();
    let mut logs = Vec::new();
    for (i, durable) in [(0, true), (1, false), (2, false)] {
        let mut b = builder(&queue, "mixed", &format!("mixed-{i}")).concurrency(1);
        if durable {
            b = b.subscriber_name("mixed-durable");
        }
        let d = build(b, "a subscriber");
        let log: Log<u32> = Log::new();
        let l = log.clone();
        // The ephemeral ones are slower than the durable one.
        let pause = if durable { Duration::ZERO } else { Duration::from_millis(1) };
        d.subscribe::<Notice, _, _>(move |ev, _meta| {
            let l = l.clone();
            async move {
                tokio::time::sleep(pause).await;
                l.push(ev.n);
                Ok(())
            }
        });
        running.push(start(d, "a subscriber").await);
        logs.push((durable, log));
    }
    let p = producer(&queue);
    for chunk in (0..N).collect::<Vec<_>>().chunks(50) {
        produce_batch(&p, &chunk.iter().map(|&n| Notice { n }).collect::<Vec<_>>()).await;
    }
    for r in &running {
        drained(r, "broadcast events read by durable and ephemeral subscribers").await;
    }
    for (durable, log) in &logs {
        let kind = if *durable { "durable" } else { "ephemeral" };
        assert_each_once(&format!("the {kind} subscriber next to a durable one"), &log.get(), 0..N);
    }
    for r in running {
        shutdown(r).await;
    }
}

/// A handler failing twice succeeds on its third attempt: attempts 1, 2, 3 with the same event
/// id, no dead letter.
pub async fn retry_then_success(queue: Arc<dyn MessageQueue>) {
    let log: Log<(u32, String)> = Log::new();
    let d = build(builder(&queue, "retry", "retry-1").max_attempts(3), "the dispatcher");
    let l = log.clone();
    d.consume::<Task, _, _>(move |_ev, meta| {
        let l = l.clone();
        async move {
            l.push((meta.attempt, meta.id.clone()));
            if meta.attempt < 3 {
                Err(format!("conformance failure on attempt {}", meta.attempt).into())
            } else {
                Ok(())
            }
        }
    });
    let running = start(d, "the dispatcher").await;
    produce(&producer(&queue), &Task { n: 1 }).await;
    drained(&running, "an event retried twice").await;
    let log = log.get();
    let attempts: Vec<u32> = log.iter().map(|(a, _)| *a).collect();
    assert_eq!(attempts, vec![1, 2, 3], "conformance: attempts seen by the handler");
    let ids: BTreeSet<&String> = log.iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), 1, "conformance: the event id must be stable across retries, saw {ids:?}");
    let dead = dead_letters(&running, "the retried event").await;
    assert!(dead.is_empty(), "conformance: a retry that succeeded left dead letters {dead:?}");
    shutdown(running).await;
}

/// A scheduled retry lives in the queue, not in the dispatcher: after the dispatcher that failed
/// shuts down, another instance of the group runs the retry (attempt 2).
pub async fn retry_survives_restart(queue: Arc<dyn MessageQueue>) {
    let first: Log<u32> = Log::new();
    let d = build(
        builder(&queue, "retry-restart", "rr-1").max_attempts(3).backoff(
            Backoff::Fixed,
            Duration::from_millis(500),
            Duration::from_millis(500),
        ),
        "the first dispatcher",
    );
    let l = first.clone();
    d.consume::<Task, _, _>(move |_ev, meta| {
        let l = l.clone();
        async move {
            l.push(meta.attempt);
            Err("conformance: failing before the restart".into())
        }
    });
    let running = start(d, "the first dispatcher").await;
    produce(&producer(&queue), &Task { n: 1 }).await;
    eventually("the first attempt", || first.len() >= 1).await;
    shutdown(running).await;
    let seen_first = first.get();

    let second: Log<u32> = Log::new();
    let d = build(builder(&queue, "retry-restart", "rr-2").max_attempts(3), "the second dispatcher");
    let l = second.clone();
    d.consume::<Task, _, _>(move |_ev, meta| {
        let l = l.clone();
        async move {
            l.push(meta.attempt);
            Ok(())
        }
    });
    let running = start(d, "the second dispatcher").await;
    drained(&running, "a retry scheduled before a restart").await;
    let mut attempts = seen_first;
    attempts.extend(second.get());
    assert_eq!(attempts, vec![1, 2], "conformance: attempts across a restart (first dispatcher, then second)");
    assert_eq!(second.get(), vec![2], "conformance: the retry must run on the new dispatcher");
    let dead = dead_letters(&running, "the retried event").await;
    assert!(dead.is_empty(), "conformance: unexpected dead letters {dead:?}");
    shutdown(running).await;
}

/// A handler that keeps failing: after `max_attempts` the entry is dead-lettered once with the
/// handler's name, the error text and the event name; `replay` runs it again (attempt 1, only that
/// handler) and removes the dead letter; a second replay of the same letter fails.
pub async fn exhausted_retries_dead_letter_and_replay(queue: Arc<dyn MessageQueue>) {
    let log: Log<(u32, u32)> = Log::new();
    let failing = Arc::new(AtomicBool::new(true));
    let d = build(builder(&queue, "exhaust", "exhaust-1").max_attempts(3), "the dispatcher");
    let (l, f) = (log.clone(), failing.clone());
    d.consume::<Task, _, _>(move |ev, meta| {
        let (l, f) = (l.clone(), f.clone());
        async move {
            l.push((ev.n, meta.attempt));
            if f.load(Ordering::SeqCst) {
                Err(format!("conformance failure on attempt {}", meta.attempt).into())
            } else {
                Ok(())
            }
        }
    });
    let running = start(d, "the dispatcher").await;
    produce(&producer(&queue), &Task { n: 7 }).await;
    drained(&running, "an event failing every attempt").await;
    assert_eq!(log.get(), vec![(7, 1), (7, 2), (7, 3)], "conformance: (event, attempt) seen by the handler");
    let handler = handler_name(&running, Task::NAME);
    let dead = dead_letters(&running, "the exhausted event").await;
    assert_eq!(dead.len(), 1, "conformance: expected exactly one dead letter, got {dead:?}");
    let letter = &dead[0];
    assert_eq!(letter.attempts, 3, "conformance: dead letter attempts: {letter:?}");
    assert_eq!(letter.handler, handler, "conformance: dead letter handler: {letter:?}");
    assert_eq!(letter.event_name, Task::NAME, "conformance: dead letter event name: {letter:?}");
    assert!(
        letter.error.contains("conformance failure on attempt 3"),
        "conformance: the dead letter must carry the last error text: {letter:?}"
    );
    assert!(!letter.id.is_empty(), "conformance: dead letter without an id: {letter:?}");

    failing.store(false, Ordering::SeqCst);
    match tokio::time::timeout(SETTLE, running.replay(letter)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("conformance: replay failed: {e}"),
        Err(_) => panic!("conformance: replay did not return within {SETTLE:?}"),
    }
    drained(&running, "the replayed dead letter").await;
    assert_eq!(
        log.get(),
        vec![(7, 1), (7, 2), (7, 3), (7, 1)],
        "conformance: a replay must run the handler once more, with attempt 1"
    );
    let dead = dead_letters(&running, "the replayed event").await;
    assert!(dead.is_empty(), "conformance: replay must remove the dead letter, still listed: {dead:?}");
    let again = tokio::time::timeout(SETTLE, running.replay(letter)).await;
    assert!(
        matches!(again, Ok(Err(_))),
        "conformance: replaying a dead letter that was already replayed must fail, got {again:?}"
    );
    drained(&running, "the stream after a refused second replay").await;
    assert_eq!(log.len(), 4, "conformance: a refused replay must not run the handler");
    shutdown(running).await;
}

/// Two consumers of one event in one group, one of which fails once: only that one is retried.
pub async fn only_failed_handler_is_retried(queue: Arc<dyn MessageQueue>) {
    let steady: Log<u32> = Log::new();
    let flaky: Log<u32> = Log::new();
    let d = build(builder(&queue, "partial", "partial-1").max_attempts(3), "the dispatcher");
    let s = steady.clone();
    d.consume::<Task, _, _>(move |_ev, meta| {
        let s = s.clone();
        async move {
            s.push(meta.attempt);
            Ok(())
        }
    });
    let f = flaky.clone();
    d.consume::<Task, _, _>(move |_ev, meta| {
        let f = f.clone();
        async move {
            f.push(meta.attempt);
            if meta.attempt == 1 {
                Err("conformance: first attempt fails".into())
            } else {
                Ok(())
            }
        }
    });
    let running = start(d, "the dispatcher").await;
    produce(&producer(&queue), &Task { n: 1 }).await;
    drained(&running, "an event with one failing handler").await;
    assert_eq!(steady.get(), vec![1], "conformance: the handler that succeeded must run exactly once");
    assert_eq!(flaky.get(), vec![1, 2], "conformance: the handler that failed once must run twice");
    let dead = dead_letters(&running, "the partially failed event").await;
    assert!(dead.is_empty(), "conformance: unexpected dead letters {dead:?}");
    shutdown(running).await;
}

/// A panicking handler is a failed attempt (`handler panicked: boom`) and the dispatcher goes
/// on handling later events.
pub async fn panic_is_a_failed_attempt(queue: Arc<dyn MessageQueue>) {
    let log: Log<u32> = Log::new();
    let d = build(builder(&queue, "panic", "panic-1").max_attempts(2), "the dispatcher");
    let l = log.clone();
    d.consume::<Task, _, _>(move |ev, _meta| {
        let l = l.clone();
        async move {
            if ev.n == 0 {
                panic!("boom");
            }
            l.push(ev.n);
            Ok(())
        }
    });
    let running = start(d, "the dispatcher").await;
    let p = producer(&queue);
    produce_batch(&p, &tasks(0..6)).await;
    drained(&running, "events after a panicking one").await;
    let dead = dead_letters(&running, "the panicking event").await;
    assert_eq!(dead.len(), 1, "conformance: expected one dead letter for the panicking event, got {dead:?}");
    assert_eq!(dead[0].error, "handler panicked: boom", "conformance: error of a panic: {:?}", dead[0]);
    assert_eq!(dead[0].attempts, 2, "conformance: a panic is a failed attempt that is retried: {:?}", dead[0]);
    produce_batch(&p, &tasks(6..10)).await;
    drained(&running, "events produced after the panic").await;
    assert_each_once("the events around a panic", &log.get(), 1..10);
    shutdown(running).await;
}

/// A handler running past its timeout is a failed attempt (`handler timed out after ...`), its
/// future is dropped, and the dispatcher goes on.
pub async fn timeout_is_a_failed_attempt(queue: Arc<dyn MessageQueue>) {
    struct SetOnDrop(Arc<AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let log: Log<u32> = Log::new();
    let dropped = Arc::new(AtomicBool::new(false));
    let completed = Arc::new(AtomicBool::new(false));
    let d = build(
        builder(&queue, "timeout", "timeout-1").max_attempts(1).handler_timeout(Duration::from_millis(500)),
        "the dispatcher",
    );
    let (l, dr, co) = (log.clone(), dropped.clone(), completed.clone());
    d.consume::<Task, _, _>(move |ev, _meta| {
        let (l, dr, co) = (l.clone(), dr.clone(), co.clone());
        async move {
            if ev.n == 0 {
                let _guard = SetOnDrop(dr);
                tokio::time::sleep(Duration::from_secs(120)).await;
                co.store(true, Ordering::SeqCst);
            }
            l.push(ev.n);
            Ok(())
        }
    });
    let running = start(d, "the dispatcher").await;
    produce_batch(&producer(&queue), &tasks(0..5)).await;
    drained(&running, "events after one that times out").await;
    let dead = dead_letters(&running, "the timed-out event").await;
    assert_eq!(dead.len(), 1, "conformance: expected one dead letter for the timed-out event, got {dead:?}");
    assert!(dead[0].error.starts_with("handler timed out after"), "conformance: error of a timeout: {:?}", dead[0]);
    assert!(dropped.load(Ordering::SeqCst), "conformance: the timed-out handler future must be dropped");
    assert!(!completed.load(Ordering::SeqCst), "conformance: the timed-out handler must not run to completion");
    assert_each_once("the events around a timeout", &log.get(), 1..5);
    shutdown(running).await;
}

/// A failing and panicking subscriber is called once per event and never retried; its sibling
/// subscriber gets every event; `drain` returns; nothing is dead-lettered.
pub async fn broadcast_failures_are_isolated(queue: Arc<dyn MessageQueue>) {
    let bad: Log<u32> = Log::new();
    let good: Log<u32> = Log::new();
    let d = build(builder(&queue, "bcast", "bcast-1").max_attempts(3), "the subscriber");
    let b = bad.clone();
    d.subscribe::<Notice, _, _>(move |ev, _meta| {
        let b = b.clone();
        async move {
            b.push(ev.n);
            if ev.n % 2 == 0 {
                Err("conformance: subscriber fails".into())
            } else {
                panic!("conformance: subscriber panics")
            }
        }
    });
    let g = good.clone();
    d.subscribe::<Notice, _, _>(move |ev, _meta| {
        let g = g.clone();
        async move {
            g.push(ev.n);
            Ok(())
        }
    });
    let running = start(d, "the subscriber").await;
    let p = producer(&queue);
    for n in 0..10 {
        produce(&p, &Notice { n }).await;
    }
    drained(&running, "broadcast events with a failing subscriber").await;
    produce_batch(&p, &(10..15).map(|n| Notice { n }).collect::<Vec<_>>()).await;
    drained(&running, "broadcast events produced after failures").await;
    // Give a (wrong) retry the time to show up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_each_once("the failing subscriber (never retried)", &bad.get(), 0..15);
    assert_each_once("the sibling of a failing subscriber", &good.get(), 0..15);
    let dead = dead_letters(&running, "the subscriber").await;
    assert!(dead.is_empty(), "conformance: broadcast failures must not be dead-lettered: {dead:?}");
    shutdown(running).await;
}

/// Raw entries that do not decode (missing `name`, missing `data`, a payload that does not
/// deserialize into the named event, an unknown content type, an oversized payload) are
/// dead-lettered with the reason, in each group that reads them, while good events flow.
pub async fn undecodable_entries_are_dead_lettered(queue: Arc<dyn MessageQueue>) {
    const LIMIT: usize = 1024;
    let mut running = Vec::new();
    let mut logs = Vec::new();
    for group in ["decode-a", "decode-b"] {
        let log: Log<u32> = Log::new();
        let d = build(builder(&queue, group, group).max_attempts(3).max_payload(LIMIT), group);
        let l = log.clone();
        d.consume::<Task, _, _>(move |ev, _meta| {
            let l = l.clone();
            async move {
                l.push(ev.n);
                Ok(())
            }
        });
        running.push(start(d, group).await);
        logs.push(log);
    }
    let p = producer(&queue);
    let envelope: Envelope = p.envelope(&Task { n: 99 }).unwrap_or_else(|e| panic!("conformance: envelope: {e}"));
    let fields = envelope.to_fields();
    type Fields = Vec<(&'static str, Vec<u8>)>;
    let with = |drop: &str, set: Option<(&'static str, Vec<u8>)>| -> Fields {
        let mut f: Fields = fields.iter().filter(|(k, _)| *k != drop).cloned().collect();
        if let Some((k, v)) = set {
            match f.iter_mut().find(|(n, _)| *n == k) {
                Some(slot) => slot.1 = v,
                None => f.push((k, v)),
            }
        }
        f
    };
    let garbage: Vec<(&str, Fields)> = vec![
        ("missing `name`", with("name", None)),
        ("missing `data`", with("data", None)),
        ("bad payload", with("", Some(("data", vec![0xc1, 0xc1, 0xc1, 0xc1])))),
        ("unknown content type", with("", Some(("ct", b"x-conformance".to_vec())))),
        ("oversized payload", with("", Some(("data", vec![0x90; LIMIT * 4])))),
    ];
    produce(&p, &Task { n: 1 }).await;
    let stream = task_stream();
    for (what, f) in &garbage {
        let refs: Vec<(&str, &[u8])> = f.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        if let Err(e) = queue.append_raw(&stream, &refs).await {
            panic!("conformance: append_raw ({what}) failed: {e}");
        }
    }
    produce(&p, &Task { n: 2 }).await;
    for r in &running {
        drained(r, "a stream with undecodable entries").await;
    }
    for (i, r) in running.iter().enumerate() {
        let group = ["decode-a", "decode-b"][i];
        assert_each_once(&format!("good events of group `{group}`"), &logs[i].get(), 1..3);
        let handler = handler_name(r, Task::NAME);
        let dead = dead_letters(r, group).await;
        assert_eq!(dead.len(), garbage.len(), "conformance: group `{group}`: one dead letter per bad entry: {dead:#?}");
        let find = |what: &str, pred: &dyn Fn(&DeadLetter) -> bool| {
            let hits: Vec<&DeadLetter> = dead.iter().filter(|d| pred(d)).collect();
            assert_eq!(hits.len(), 1, "conformance: group `{group}`: expected one dead letter for {what}: {dead:#?}");
        };
        find("the entry missing `name`", &|d| {
            d.error.contains("`name`") && d.event_name.is_empty() && d.handler.is_empty()
        });
        find("the entry missing `data`", &|d| d.error.contains("`data`") && d.handler.is_empty());
        find("the payload that does not decode", &|d| {
            d.handler == handler && d.event_name == Task::NAME && !d.error.is_empty()
        });
        find("the unknown content type", &|d| d.error.contains("x-conformance") && d.handler.is_empty());
        find("the oversized payload", &|d| d.error.contains(&(LIMIT * 4).to_string()) && d.handler.is_empty());
        for d in &dead {
            assert!(d.attempts >= 1, "conformance: dead letter with no attempts: {d:?}");
        }
    }
    for r in running {
        shutdown(r).await;
    }
}

/// An entry whose name no handler of the group handles is acked and skipped: no dead letter,
/// `drain` returns, the handled events flow.
pub async fn unhandled_names_are_skipped(queue: Arc<dyn MessageQueue>) {
    let log: Log<u32> = Log::new();
    let d = build(builder(&queue, "skip", "skip-1"), "the dispatcher");
    let l = log.clone();
    d.consume::<Task, _, _>(move |ev, _meta| {
        let l = l.clone();
        async move {
            l.push(ev.n);
            Ok(())
        }
    });
    let running = start(d, "the dispatcher").await;
    let p = producer(&queue);
    produce(&p, &Unhandled { n: 100 }).await;
    produce(&p, &Task { n: 1 }).await;
    produce_batch(&p, &[Unhandled { n: 101 }, Unhandled { n: 102 }]).await;
    produce(&p, &Task { n: 2 }).await;
    drained(&running, "a stream with events no handler of the group handles").await;
    assert_each_once("the handled events", &log.get(), 1..3);
    let dead = dead_letters(&running, "the dispatcher").await;
    assert!(dead.is_empty(), "conformance: unhandled names must be skipped, not dead-lettered: {dead:?}");
    shutdown(running).await;
}

/// `concurrency` bounds the invocations of one handler in flight.
pub async fn concurrency_bounds_in_flight(queue: Arc<dyn MessageQueue>) {
    const BOUND: usize = 3;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let log: Log<u32> = Log::new();
    let d = build(builder(&queue, "bounded", "bounded-1").concurrency(BOUND as u32), "the dispatcher");
    let (f, m, l) = (in_flight.clone(), max_seen.clone(), log.clone());
    d.consume::<Task, _, _>(move |ev, _meta| {
        let (f, m, l) = (f.clone(), m.clone(), l.clone());
        async move {
            let now = f.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(15)).await;
            f.fetch_sub(1, Ordering::SeqCst);
            l.push(ev.n);
            Ok(())
        }
    });
    let running = start(d, "the dispatcher").await;
    produce_batch(&producer(&queue), &tasks(0..30)).await;
    drained(&running, "a backlog with bounded concurrency").await;
    assert_each_once("the bounded handler", &log.get(), 0..30);
    let max = max_seen.load(Ordering::SeqCst);
    assert!(max <= BOUND, "conformance: {max} invocations in flight at once, over the bound of {BOUND}");
    shutdown(running).await;
}

/// Entries read by a consumer that died (never acked) are reclaimed by a live consumer after
/// `claim_idle`; the reclaim is the second delivery, so `meta.attempt == 2`.
pub async fn idle_entries_are_reclaimed(queue: Arc<dyn MessageQueue>) {
    second_delivery_of_pending(&queue, "reclaim", "dead", "rescuer", Duration::from_millis(200), 3).await;
}

/// Leaves `count` tasks pending with consumer `reader` (read, never acked), then runs consumer
/// `consumer` with `claim_idle`: each entry must be handled once, as its second delivery.
async fn second_delivery_of_pending(
    queue: &Arc<dyn MessageQueue>,
    group: &str,
    reader: &str,
    consumer: &str,
    claim_idle: Duration,
    count: u32,
) {
    ensure_task_group(queue, group).await;
    produce_batch(&producer(queue), &tasks(0..count)).await;
    read_without_ack(queue, group, reader, count as usize).await;
    let log: Log<(u32, u32)> = Log::new();
    let what = format!("consumer `{consumer}`");
    let d = build(builder(queue, group, consumer).claim_idle(claim_idle), &what);
    let l = log.clone();
    d.consume::<Task, _, _>(move |ev, meta| {
        let l = l.clone();
        async move {
            l.push((ev.n, meta.attempt));
            Ok(())
        }
    });
    let running = start(d, &what).await;
    drained(&running, &format!("entries left pending by consumer `{reader}`")).await;
    let log = log.get();
    assert_each_once("pending entries", &log.iter().map(|(n, _)| *n).collect::<Vec<_>>(), 0..count);
    assert!(
        log.iter().all(|(_, a)| *a == 2),
        "conformance: a pending entry delivered again is its second delivery, so attempt 2; saw (event, attempt) {log:?}"
    );
    shutdown(running).await;
}

/// The delivery count is the attempt count: an entry delivered `max_attempts` times without an
/// outcome (its consumers kept dying) is dead-lettered, not run again.
pub async fn delivery_count_bounds_attempts(queue: Arc<dyn MessageQueue>) {
    const GROUP: &str = "crashy";
    ensure_task_group(&queue, GROUP).await;
    produce(&producer(&queue), &Task { n: 5 }).await;
    read_without_ack(&queue, GROUP, "dead-1", 1).await;
    let stream: Arc<str> = Arc::from(task_stream());
    let claimed =
        match tokio::time::timeout(SETTLE, queue.claim_idle(GROUP, "dead-2", &stream, Duration::ZERO, 10)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => panic!("conformance: claim_idle failed: {e}"),
            Err(_) => panic!("conformance: claim_idle did not return within {SETTLE:?}"),
        };
    assert_eq!(claimed.len(), 1, "conformance: claim_idle with min_idle 0 must claim the pending entry: {claimed:?}");
    assert_eq!(claimed[0].deliveries, 2, "conformance: a claim counts as a delivery: {claimed:?}");

    let calls = Arc::new(AtomicUsize::new(0));
    let d = build(
        builder(&queue, GROUP, "survivor").max_attempts(2).claim_idle(Duration::from_millis(100)),
        "the survivor",
    );
    let c = calls.clone();
    d.consume::<Task, _, _>(move |_ev, _meta| {
        c.fetch_add(1, Ordering::SeqCst);
        async move { Ok(()) }
    });
    let running = start(d, "the survivor").await;
    drained(&running, "an entry delivered max_attempts times").await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "conformance: an entry already delivered max_attempts times must be dead-lettered, not handled"
    );
    let handler = handler_name(&running, Task::NAME);
    let dead = dead_letters(&running, "the survivor").await;
    assert_eq!(dead.len(), 1, "conformance: expected one dead letter: {dead:?}");
    assert_eq!(dead[0].event_name, Task::NAME, "conformance: {:?}", dead[0]);
    assert_eq!(dead[0].handler, handler, "conformance: {:?}", dead[0]);
    assert_eq!(dead[0].attempts, 2, "conformance: attempts of an entry delivered twice without outcome: {:?}", dead[0]);
    shutdown(running).await;
}

/// A restarted consumer (same name) re-reads its own pending entries at once, well before
/// `claim_idle` (60 s here) would let anyone reclaim them.
pub async fn own_pending_reread_on_restart(queue: Arc<dyn MessageQueue>) {
    second_delivery_of_pending(&queue, "restart", "c1", "c1", Duration::from_secs(60), 4).await;
}

/// A consumer whose handler runs for ~3x `claim_idle` keeps its entry fresh, also while it
/// shuts down (the grace period): a second consumer of the group does not steal it, and the
/// handler is invoked exactly once.
pub async fn keep_alive_prevents_reclaim(queue: Arc<dyn MessageQueue>) {
    const GROUP: &str = "keepalive";
    let idle = Duration::from_millis(800);
    let calls: Log<(String, u32)> = Log::new();
    let mut running = Vec::new();
    for name in ["ka-1", "ka-2"] {
        // Concurrency 1: the reader of a busy consumer has no free slot and waits for one,
        // which must not stop the keep-alive.
        let d = build(builder(&queue, GROUP, name).claim_idle(idle).concurrency(1), name);
        let (c, me) = (calls.clone(), name.to_owned());
        d.consume::<Task, _, _>(move |ev, _meta| {
            let (c, me) = (c.clone(), me.clone());
            async move {
                c.push((me, ev.n));
                tokio::time::sleep(idle * 3).await;
                Ok(())
            }
        });
        running.push((name.to_owned(), start(d, "a consumer").await));
    }
    let p = producer(&queue);
    produce(&p, &Task { n: 1 }).await;
    for (_, r) in &running {
        drained(r, "a long-running handler").await;
    }
    let seen = calls.get();
    assert_eq!(
        seen.len(),
        1,
        "conformance: a handler still running must keep its entry from being reclaimed; invocations: {seen:?}"
    );

    // The owner of a long-running entry shuts down: during its grace period the entry stays its own.
    produce(&p, &Task { n: 2 }).await;
    eventually("the second event to start", || calls.len() >= 2).await;
    let owner = calls.get()[1].0.clone();
    let at = running.iter().position(|(name, _)| *name == owner).unwrap_or_else(|| panic!("unknown consumer {owner}"));
    let (_, owner_running) = running.remove(at);
    shutdown(owner_running).await;
    for (_, r) in &running {
        drained(r, "the entry of a consumer that shut down").await;
    }
    let seen = calls.get();
    assert_eq!(
        seen.len(),
        2,
        "conformance: an entry whose handler runs during the shutdown grace period must not be reclaimed; \
         invocations: {seen:?}"
    );
    for (_, r) in running {
        shutdown(r).await;
    }
}

/// `shutdown` finishes the handlers in flight and flushes their acks: a new dispatcher with the
/// same consumer name (which re-reads its pending entries) handles none of them again.
pub async fn shutdown_flushes_acks(queue: Arc<dyn MessageQueue>) {
    const GROUP: &str = "flush";
    const N: u32 = 20;
    let first: Log<u32> = Log::new();
    let d = build(builder(&queue, GROUP, "c1").concurrency(4), "the first dispatcher");
    let l = first.clone();
    d.consume::<Task, _, _>(move |ev, _meta| {
        let l = l.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            l.push(ev.n);
            Ok(())
        }
    });
    let running = start(d, "the first dispatcher").await;
    produce_batch(&producer(&queue), &tasks(0..N)).await;
    eventually("the first dispatcher to handle some events", || first.len() >= 4).await;
    shutdown(running).await;
    let handled_before = first.get();

    let second: Log<u32> = Log::new();
    let d = build(builder(&queue, GROUP, "c1").claim_idle(Duration::from_millis(100)), "the second dispatcher");
    let l = second.clone();
    d.consume::<Task, _, _>(move |ev, _meta| {
        let l = l.clone();
        async move {
            l.push(ev.n);
            Ok(())
        }
    });
    let running = start(d, "the second dispatcher").await;
    drained(&running, "the rest of the events after a shutdown").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drained(&running, "the rest of the events after a shutdown").await;
    let mut all = first.get();
    assert_eq!(all, handled_before, "conformance: the first dispatcher handled events after shutdown returned");
    let second = second.get();
    let again: Vec<u32> = second.iter().filter(|n| handled_before.contains(n)).copied().collect();
    assert!(
        again.is_empty(),
        "conformance: events handled before shutdown were handled again by the next dispatcher \
         (acks not flushed): {again:?}"
    );
    all.extend(second);
    assert_each_once("events across a shutdown", &all, 0..N);
    shutdown(running).await;
}

/// `start` fixes the positions: events produced before a new group or subscriber starts are not
/// delivered to it, every event produced after `start` returns is.
pub async fn start_fixes_positions(queue: Arc<dyn MessageQueue>) {
    const N: u32 = 25;
    let p = producer(&queue);
    produce_batch(&p, &tasks(1000..1003)).await;
    produce_batch(&p, &(1000..1003).map(|n| Notice { n }).collect::<Vec<_>>()).await;
    let anycast: Log<u32> = Log::new();
    let broadcast: Log<u32> = Log::new();
    let d = build(builder(&queue, "late", "late-1"), "the dispatcher");
    let a = anycast.clone();
    d.consume::<Task, _, _>(move |ev, _meta| {
        let a = a.clone();
        async move {
            a.push(ev.n);
            Ok(())
        }
    });
    let b = broadcast.clone();
    d.subscribe::<Notice, _, _>(move |ev, _meta| {
        let b = b.clone();
        async move {
            b.push(ev.n);
            Ok(())
        }
    });
    let running = start(d, "the dispatcher").await;
    for n in 0..N {
        produce(&p, &Task { n }).await;
        produce(&p, &Notice { n }).await;
    }
    drained(&running, "events produced right after start").await;
    assert_each_once("anycast events produced after start", &anycast.get(), 0..N);
    assert_each_once("broadcast events produced after start", &broadcast.get(), 0..N);
    shutdown(running).await;
}

/// `produce_batch` delivers every event, in order, to a single consumer (and subscriber) with
/// concurrency 1.
pub async fn batch_delivered_in_order(queue: Arc<dyn MessageQueue>) {
    const N: u32 = 50;
    let anycast: Log<u32> = Log::new();
    let broadcast: Log<u32> = Log::new();
    let d = build(builder(&queue, "ordered", "ordered-1").concurrency(1), "the dispatcher");
    let a = anycast.clone();
    d.consume::<Task, _, _>(move |ev, _meta| {
        let a = a.clone();
        async move {
            a.push(ev.n);
            Ok(())
        }
    });
    let b = broadcast.clone();
    d.subscribe::<Notice, _, _>(move |ev, _meta| {
        let b = b.clone();
        async move {
            b.push(ev.n);
            Ok(())
        }
    });
    let running = start(d, "the dispatcher").await;
    let p = producer(&queue);
    produce_batch(&p, &tasks(0..N)).await;
    produce_batch(&p, &(0..N).map(|n| Notice { n }).collect::<Vec<_>>()).await;
    drained(&running, "a batch").await;
    let expected: Vec<u32> = (0..N).collect();
    assert_eq!(anycast.get(), expected, "conformance: anycast batch order with concurrency 1");
    assert_eq!(broadcast.get(), expected, "conformance: broadcast batch order with concurrency 1");
    shutdown(running).await;
}

/// One group reading several streams (events of two domains) handles the events of each, and
/// `drain` waits for all of them.
pub async fn group_reads_several_streams(queue: Arc<dyn MessageQueue>) {
    const N: u32 = 20;
    let tasks_seen: Log<u32> = Log::new();
    let audits_seen: Log<u32> = Log::new();
    let d = build(builder(&queue, "multi", "multi-1"), "the dispatcher");
    let t = tasks_seen.clone();
    d.consume::<Task, _, _>(move |ev, _meta| {
        let t = t.clone();
        async move {
            t.push(ev.n);
            Ok(())
        }
    });
    let a = audits_seen.clone();
    d.consume::<Audit, _, _>(move |ev, _meta| {
        let a = a.clone();
        async move {
            a.push(ev.n);
            Ok(())
        }
    });
    let running = start(d, "the dispatcher").await;
    let p = producer(&queue);
    for n in 0..N {
        produce(&p, &Task { n }).await;
        produce(&p, &Audit { n }).await;
    }
    drained(&running, "events of two streams").await;
    assert_each_once("events of the first stream", &tasks_seen.get(), 0..N);
    assert_each_once("events of the second stream", &audits_seen.get(), 0..N);
    shutdown(running).await;
}

/// Dead letters belong to the group that gave up: a failure in one group leaves another group
/// untouched; `dead_letters(limit)` lists oldest first; purging removes them.
pub async fn dead_letters_per_group_and_purge(queue: Arc<dyn MessageQueue>) {
    let ok_log: Log<u32> = Log::new();
    let failing = build(builder(&queue, "dl-fail", "dl-fail-1").max_attempts(1), "the failing group");
    failing.consume::<Task, _, _>(|ev, _meta| async move { Err(format!("conformance: rejecting {}", ev.n).into()) });
    let fine = build(builder(&queue, "dl-ok", "dl-ok-1").max_attempts(1), "the healthy group");
    let l = ok_log.clone();
    fine.consume::<Task, _, _>(move |ev, _meta| {
        let l = l.clone();
        async move {
            l.push(ev.n);
            Ok(())
        }
    });
    let failing = start(failing, "the failing group").await;
    let fine = start(fine, "the healthy group").await;
    let p = producer(&queue);
    for n in 0..3 {
        produce(&p, &Task { n }).await;
        // One dead letter at a time, so their order is the order of the events.
        drained(&failing, "a rejected event").await;
    }
    drained(&fine, "the healthy group").await;
    assert_each_once("the healthy group", &ok_log.get(), 0..3);
    let none = dead_letters(&fine, "the healthy group").await;
    assert!(none.is_empty(), "conformance: dead letters leaked into another group: {none:?}");
    let dead = dead_letters(&failing, "the failing group").await;
    assert_eq!(dead.len(), 3, "conformance: one dead letter per rejected event: {dead:?}");
    let errors: Vec<&str> = dead.iter().map(|d| d.error.as_str()).collect();
    assert_eq!(
        errors,
        vec!["conformance: rejecting 0", "conformance: rejecting 1", "conformance: rejecting 2"],
        "conformance: dead letters must be listed oldest first"
    );
    let first = match failing.dead_letters(1).await {
        Ok(d) => d,
        Err(e) => panic!("conformance: dead_letters(1) failed: {e}"),
    };
    assert_eq!(first, dead[..1].to_vec(), "conformance: dead_letters(1) must return the oldest");
    let removed = match failing.purge_dead_letters(&dead[..2]).await {
        Ok(n) => n,
        Err(e) => panic!("conformance: purge_dead_letters failed: {e}"),
    };
    assert_eq!(removed, 2, "conformance: purge_dead_letters must report what it removed");
    let left = dead_letters(&failing, "the failing group").await;
    assert_eq!(left, dead[2..].to_vec(), "conformance: dead letters left after a purge");
    shutdown(failing).await;
    shutdown(fine).await;
}

/// A queue that keeps `guard` alive for as long as the queue (or a clone) lives: hand a
/// conformance case a queue whose backing server (a test `redis-server` process, a temp dir)
/// goes away with it.
#[derive(Clone)]
pub struct Guarded<Q> {
    queue: Q,
    _guard: Arc<dyn std::any::Any + Send + Sync>,
}

impl<Q> Guarded<Q> {
    /// `queue`, keeping `guard` alive as long as it lives.
    pub fn new(queue: Q, guard: impl std::any::Any + Send + Sync) -> Self {
        Guarded { queue, _guard: Arc::new(guard) }
    }

    /// The queue.
    pub fn queue(&self) -> &Q {
        &self.queue
    }
}

impl<Q: std::fmt::Debug> std::fmt::Debug for Guarded<Q> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded").field("queue", &self.queue).finish_non_exhaustive()
    }
}

impl<Q: MessageQueue> MessageQueue for Guarded<Q> {
    crate::queue::delegate_message_queue!(|g| g.queue);
}
