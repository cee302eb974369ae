//! Dispatcher, producer and in-memory queue behaviour beyond the backend conformance suite.
//!
//! The events are implemented by hand (not with the macros), so these tests do not depend on
//! `event-macros` and the events stay out of the catalog.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_core::envelope::{ContentType, Envelope, DEFAULT_MAX_PAYLOAD};
use event_core::queue::{EntryBody, GroupStart, MessageQueue, ReadGroup};
use event_core::{
    AnycastEvent, BroadcastEvent, Delivery, Error, Event, EventDispatcher, EventMeta, EventProducer, HandlerError,
    InMemoryQueue, RunningDispatcher,
};

macro_rules! event {
    ($ty:ident { $($field:ident: $fty:ty),* $(,)? }, $name:literal, $delivery:ident, $marker:ident, $stream:literal) => {
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        struct $ty {
            $($field: $fty),*
        }

        impl Event for $ty {
            const NAME: &'static str = $name;
            const DOMAIN: &'static str = "disptest";
            const VERSION: u32 = 1;
            const DELIVERY: Delivery = Delivery::$delivery;
            const STREAM: &'static str = $stream;
        }

        impl $marker for $ty {}
    };
}

event!(Job { n: u32 }, "disp_job", Anycast, AnycastEvent, "events:{disptest}:anycast");
event!(Ping { n: u32 }, "disp_ping", Broadcast, BroadcastEvent, "events:{disptest}:broadcast");
event!(
    Rich {
        text: String,
        maybe: Option<String>,
        list: Vec<u64>,
        nested: Vec<(String, bool)>,
        float: f64,
    },
    "disp_rich",
    Anycast,
    AnycastEvent,
    "events:{disptest}:anycast"
);

const SETTLE: Duration = Duration::from_secs(20);

type Log<T> = Arc<Mutex<Vec<T>>>;

async fn drained(running: &RunningDispatcher) {
    tokio::time::timeout(SETTLE, running.drain()).await.expect("drain did not return within 20 s");
}

fn record<E: Event>(
    log: &Log<(E, EventMeta)>,
) -> impl Fn(E, EventMeta) -> std::future::Ready<Result<(), HandlerError>> + Send + Sync + 'static {
    let log = log.clone();
    move |ev, meta| {
        log.lock().unwrap().push((ev, meta));
        std::future::ready(Ok(()))
    }
}

fn is_uuid_v7(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
        && b.iter().enumerate().all(|(i, c)| [8, 13, 18, 23].contains(&i) || c.is_ascii_hexdigit())
        && b[14] == b'7'
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_meta_fields() {
    let queue = InMemoryQueue::new();
    let jobs: Log<(Job, EventMeta)> = Arc::default();
    let pings: Log<(Ping, EventMeta)> = Arc::default();
    let d = EventDispatcher::builder(queue.clone()).group("meta").build().unwrap();
    d.consume::<Job, _, _>(record(&jobs));
    d.subscribe::<Ping, _, _>(record(&pings));
    let running = d.start().await.unwrap();

    let producer = EventProducer::new(queue.clone(), "meta-src");
    let correlated = producer.clone().with_correlation_id("corr-42");
    let before = event_core::envelope::now_ms();
    correlated.produce(&Job { n: 1 }).await.unwrap();
    producer.produce(&Job { n: 2 }).await.unwrap();
    correlated.produce(&Ping { n: 3 }).await.unwrap();
    let after = event_core::envelope::now_ms();
    drained(&running).await;

    let mut jobs = jobs.lock().unwrap().clone();
    jobs.sort_by_key(|(j, _)| j.n);
    assert_eq!(jobs.len(), 2);
    let pings = pings.lock().unwrap().clone();
    assert_eq!(pings.len(), 1);
    for (meta, name, cid) in [
        (&jobs[0].1, Job::NAME, Some("corr-42")),
        (&jobs[1].1, Job::NAME, None),
        (&pings[0].1, Ping::NAME, Some("corr-42")),
    ] {
        assert!(is_uuid_v7(&meta.id), "event id must be a UUID v7: {meta:?}");
        assert_eq!(meta.name, name);
        assert_eq!(meta.domain, "disptest");
        assert_eq!(meta.source, "meta-src");
        assert!(meta.timestamp_ms >= before && meta.timestamp_ms <= after, "{meta:?} not in [{before}, {after}]");
        assert_eq!(meta.attempt, 1);
        assert_eq!(meta.correlation_id.as_deref(), cid);
    }
    assert_ne!(jobs[0].1.id, jobs[1].1.id, "every event gets its own id");
    running.shutdown(Duration::from_secs(5)).await;
}

fn rich() -> Rich {
    Rich {
        text: "héllo \"wörld\"\n".into(),
        maybe: None,
        list: vec![0, 1, u64::MAX],
        nested: vec![("a".into(), true), (String::new(), false)],
        float: 1.5,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_content_type_round_trip() {
    let queue = InMemoryQueue::new();
    let got: Log<(Rich, EventMeta)> = Arc::default();
    let d = EventDispatcher::builder(queue.clone()).group("json").build().unwrap();
    d.consume::<Rich, _, _>(record(&got));
    let running = d.start().await.unwrap();

    let producer = EventProducer::new(queue.clone(), "json-src").with_content_type(ContentType::Json);
    let env = producer.envelope(&rich()).unwrap();
    assert_eq!(env.ct, ContentType::Json);
    let json: serde_json::Value = serde_json::from_slice(&env.data).unwrap();
    assert_eq!(json["text"], "héllo \"wörld\"\n", "the payload is plain JSON: {json}");

    // Through the wire fields (what a backend stores) and back.
    let fields = env.to_fields();
    assert!(fields.iter().any(|(k, v)| *k == "ct" && v == b"json"));
    assert_eq!(Envelope::from_fields(&fields, DEFAULT_MAX_PAYLOAD).unwrap(), env);

    producer.produce(&rich()).await.unwrap();
    // The same entry appended raw goes through the field decoder of the dispatcher.
    let raw: Vec<(&str, &[u8])> = fields.iter().map(|(k, v)| (*k, v.as_slice())).collect();
    queue.append_raw(Rich::STREAM, &raw).await.unwrap();
    drained(&running).await;

    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    for (ev, _) in &got {
        assert_eq!(*ev, rich());
    }
    assert!(running.dead_letters(10).await.unwrap().is_empty());
    running.shutdown(Duration::from_secs(5)).await;
}

#[test]
fn msgpack_is_the_default_and_round_trips() {
    let producer = EventProducer::new(InMemoryQueue::new(), "mp");
    let env = producer.envelope(&rich()).unwrap();
    assert_eq!(env.ct, ContentType::MsgPack);
    assert_eq!(env.ct.decode::<Rich>(&env.data).unwrap(), rich());
    assert_eq!(Envelope::from_fields(&env.to_fields(), DEFAULT_MAX_PAYLOAD).unwrap(), env);
}

#[tokio::test]
async fn producer_refuses_oversized_payloads_and_appends_nothing() {
    let queue = InMemoryQueue::new();
    let producer = EventProducer::new(queue.clone(), "big").with_max_payload(128);
    let big = Rich { text: "x".repeat(500), ..rich() };

    let err = producer.produce(&big).await.unwrap_err();
    assert!(
        matches!(&err, Error::PayloadTooLarge { event, limit: 128, size } if event == Rich::NAME && *size > 128),
        "{err:?}"
    );
    assert!(err.to_string().contains(Rich::NAME), "{err}");

    let err = producer.produce_batch(&[rich(), big.clone(), rich()]).await.unwrap_err();
    assert!(matches!(err, Error::PayloadTooLarge { .. }), "{err:?}");
    assert_eq!(queue.stream_len(Rich::STREAM), 0, "nothing may be appended when one event is refused");

    producer.produce(&rich()).await.unwrap();
    assert_eq!(queue.stream_len(Rich::STREAM), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_before_the_future_is_a_failed_attempt() {
    let queue = InMemoryQueue::new();
    let handled: Log<(Job, EventMeta)> = Arc::default();
    let d = EventDispatcher::builder(queue.clone()).group("early-panic").max_attempts(1).build().unwrap();
    let ok = record(&handled);
    d.consume::<Job, _, _>(move |ev, meta| {
        if ev.n == 0 {
            panic!("early");
        }
        ok(ev, meta)
    });
    let running = d.start().await.unwrap();
    EventProducer::new(queue.clone(), "p").produce_batch(&[Job { n: 0 }, Job { n: 1 }]).await.unwrap();
    drained(&running).await;
    let dead = running.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].error, "handler panicked: early");
    assert_eq!(handled.lock().unwrap().len(), 1);
    let stats = running.stats();
    assert_eq!((stats[0].handled, stats[0].failed, stats[0].panicked, stats[0].dead_lettered), (1, 1, 1, 1));
    running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_handlers_do_not_run() {
    let queue = InMemoryQueue::new();
    let kept: Log<(Job, EventMeta)> = Arc::default();
    let dropped: Log<(Job, EventMeta)> = Arc::default();
    let d = EventDispatcher::builder(queue.clone()).group("unreg").build().unwrap();
    d.consume::<Job, _, _>(record(&kept));
    let id = d.consume::<Job, _, _>(record(&dropped));
    assert_eq!(d.handler_count(), 2);
    assert!(d.unregister(id));
    assert!(!d.unregister(id), "a handler is unregistered once");
    assert_eq!(d.handler_count(), 1);
    let running = d.start().await.unwrap();
    EventProducer::new(queue, "p").produce(&Job { n: 1 }).await.unwrap();
    drained(&running).await;
    assert_eq!(kept.lock().unwrap().len(), 1);
    assert!(dropped.lock().unwrap().is_empty());
    running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_without_handlers_returns() {
    let queue = InMemoryQueue::new();
    let running = EventDispatcher::builder(queue.clone()).build().unwrap().start().await.unwrap();
    EventProducer::new(queue, "p").produce(&Job { n: 1 }).await.unwrap();
    drained(&running).await;
    assert!(running.dead_letters(10).await.unwrap().is_empty());
    running.shutdown(Duration::from_secs(5)).await;
}

#[test]
fn empty_group_or_consumer_is_refused() {
    let err = EventDispatcher::builder(InMemoryQueue::new()).group("").build().unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    let err = EventDispatcher::builder(InMemoryQueue::new()).consumer("").build().unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

#[test]
fn handles_and_errors_are_send_sync_static() {
    fn check<T: Send + Sync + 'static>() {}
    fn error<T: std::error::Error + Send + Sync + 'static>() {}
    check::<RunningDispatcher>();
    check::<EventDispatcher>();
    check::<EventProducer>();
    check::<InMemoryQueue>();
    error::<Error>();
}

// ---------------------------------------------------------------------------------------------
// InMemoryQueue
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_trims_what_every_group_acked() {
    let queue = InMemoryQueue::new();
    let fast: Log<(Job, EventMeta)> = Arc::default();
    let slow: Log<(Job, EventMeta)> = Arc::default();
    let d = EventDispatcher::builder(queue.clone()).group("fast").build().unwrap();
    d.consume::<Job, _, _>(record(&fast));
    let running = d.start().await.unwrap();
    // A second group exists but is not running: it has acked nothing.
    let d = EventDispatcher::builder(queue.clone()).group("slow").consumer("slow-1").build().unwrap();
    d.consume::<Job, _, _>(record(&slow));
    d.start().await.unwrap().shutdown(Duration::from_secs(5)).await;

    let producer = EventProducer::new(queue.clone(), "p");
    producer.produce_batch(&(0..50).map(|n| Job { n }).collect::<Vec<_>>()).await.unwrap();
    drained(&running).await;
    assert_eq!(fast.lock().unwrap().len(), 50);
    // Past a housekeeping round of the `fast` dispatcher.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(queue.stream_len(Job::STREAM), 50, "entries the `slow` group has not acked must stay");

    let d = EventDispatcher::builder(queue.clone()).group("slow").consumer("slow-1").build().unwrap();
    d.consume::<Job, _, _>(record(&slow));
    let slow_running = d.start().await.unwrap();
    drained(&slow_running).await;
    assert_eq!(slow.lock().unwrap().len(), 50);
    // Trimming is the dispatcher's housekeeping, about once a second.
    let deadline = tokio::time::Instant::now() + SETTLE;
    while queue.stream_len(Job::STREAM) > 0 {
        assert!(tokio::time::Instant::now() < deadline, "entries every group acked must be trimmed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.shutdown(Duration::from_secs(5)).await;
    slow_running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_broadcast_streams_are_not_trimmed_by_durable_acks() {
    let queue = InMemoryQueue::new();
    let seen: Log<(Ping, EventMeta)> = Arc::default();
    let d = EventDispatcher::builder(queue.clone()).subscriber_name("keeper").build().unwrap();
    d.subscribe::<Ping, _, _>(record(&seen));
    let running = d.start().await.unwrap();
    EventProducer::new(queue.clone(), "p")
        .produce_batch(&(0..10).map(|n| Ping { n }).collect::<Vec<_>>())
        .await
        .unwrap();
    drained(&running).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(seen.lock().unwrap().len(), 10);
    assert_eq!(queue.stream_len(Ping::STREAM), 10, "ephemeral subscribers may still need them: only the cap trims");
    running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn memory_hard_cap_keeps_the_newest_entries() {
    let queue = InMemoryQueue::with_max_stream_len(5);
    queue.ensure_group(Job::STREAM, "reader", GroupStart::Beginning).await.unwrap();
    let producer = EventProducer::new(queue.clone(), "p");
    for n in 0..12 {
        producer.produce(&Job { n }).await.unwrap();
    }
    assert_eq!(queue.stream_len(Job::STREAM), 5);
    let streams = [Arc::<str>::from(Job::STREAM)];
    let entries = queue
        .read_group(ReadGroup {
            group: "reader",
            consumer: "c",
            streams: &streams,
            count: 100,
            block: None,
            pending_after: None,
        })
        .await
        .unwrap();
    let ns: Vec<u32> = entries
        .iter()
        .map(|e| match &e.body {
            EntryBody::Envelope(env) => env.ct.decode::<Job>(&env.data).unwrap().n,
            EntryBody::Fields(f) => {
                let env = Envelope::from_fields(f, DEFAULT_MAX_PAYLOAD).unwrap();
                env.ct.decode::<Job>(&env.data).unwrap().n
            }
        })
        .collect();
    assert_eq!(ns, vec![7, 8, 9, 10, 11], "the cap drops the oldest entries");
}

#[tokio::test]
async fn memory_default_cap_does_not_drop_a_small_backlog() {
    let queue = InMemoryQueue::new();
    let producer = EventProducer::new(queue.clone(), "p");
    producer.produce_batch(&(0..1000).map(|n| Job { n }).collect::<Vec<_>>()).await.unwrap();
    // No group reads the stream: nothing is trimmed but by the cap.
    assert_eq!(queue.stream_len(Job::STREAM), 1000);
    const { assert!(event_core::DEFAULT_MAX_STREAM_LEN >= 1000) };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_queues_are_independent_and_clones_share() {
    let q1 = InMemoryQueue::new();
    let q2 = InMemoryQueue::new();
    let q1b = q1.clone();
    EventProducer::new(q1.clone(), "p").produce(&Job { n: 1 }).await.unwrap();
    assert_eq!(q1.stream_len(Job::STREAM), 1);
    assert_eq!(q1b.stream_len(Job::STREAM), 1, "clones share the queue");
    assert_eq!(q2.stream_len(Job::STREAM), 0, "a new queue is independent");
    EventProducer::new(q1b.clone(), "p").produce(&Job { n: 2 }).await.unwrap();
    assert_eq!(q1.stream_len(Job::STREAM), 2);

    // A dispatcher on q2 sees nothing of q1, one on a clone of q1 sees q1's events.
    let on_q2: Log<(Job, EventMeta)> = Arc::default();
    let on_q1: Log<(Job, EventMeta)> = Arc::default();
    let d2 = EventDispatcher::builder(q2.clone()).group("g").build().unwrap();
    d2.consume::<Job, _, _>(record(&on_q2));
    let r2 = d2.start().await.unwrap();
    let d1 = EventDispatcher::builder(q1b.clone()).group("g").build().unwrap();
    d1.consume::<Job, _, _>(record(&on_q1));
    let r1 = d1.start().await.unwrap();
    EventProducer::new(q1.clone(), "p").produce(&Job { n: 3 }).await.unwrap();
    drained(&r1).await;
    drained(&r2).await;
    assert_eq!(on_q1.lock().unwrap().iter().map(|(j, _)| j.n).collect::<Vec<_>>(), vec![3]);
    assert!(on_q2.lock().unwrap().is_empty());
    r1.shutdown(Duration::from_secs(5)).await;
    r2.shutdown(Duration::from_secs(5)).await;
}
