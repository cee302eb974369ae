//! Criterion benchmarks of event-core's hot paths.
//!
//! ```sh
//! cargo bench -p event-core --bench hot_paths                      # all (about a minute)
//! cargo bench -p event-core --bench hot_paths -- envelope          # one group, by name filter
//! cargo bench -p event-core --bench hot_paths -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Warm-up 1 s and measurement 3 s are the defaults here (the command-line flags override them).
//! `cargo test` does not run these (nor build them, unless asked with `--benches` or
//! `--all-targets`, where they only have to compile).
//!
//! - `envelope/*`: the wire format of one 100-byte-payload event: `Envelope::to_fields`,
//!   `Envelope::from_fields` (from owned byte fields, as a Redis reply gives them), both in a
//!   round trip, and `EventProducer::envelope` (event id, timestamp, payload encoding).
//! - `msgpack/*`: `ContentType::MsgPack` encode and decode of that event.
//! - `handler_call/*`: what the dispatcher does per invocation before the handler body runs:
//!   decode the payload into the event and build its `EventMeta`.
//! - `dispatch/*`: a running dispatcher on the in-memory queue, 960 events per iteration
//!   (60 `produce_batch` calls of 16), handled by no-op consumers: either one event type with
//!   one handler, or 60 event types on one stream with a handler each (handler lookup by name).
//! - `in_memory_end_to_end/*`: `produce_batch` of 10,000 events, then wait until a no-op
//!   consumer handled them all.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use event_core::envelope::{ContentType, Envelope, DEFAULT_MAX_PAYLOAD};
use event_core::handler::HandlerCall;
use event_core::prelude::*;
use event_core::{RunningDispatcher, StateMap};
use tokio::sync::Notify;

/// The load-test event: a sequence number, a send timestamp and 100 filler bytes.
#[anycast_event(domain = "bench", name = "bench_load")]
#[derive(Debug, Clone)]
struct LoadEvent {
    seq: u64,
    sent_at_us: u64,
    payload: Vec<u8>,
}

fn load_event(seq: u64) -> LoadEvent {
    LoadEvent { seq, sent_at_us: 1_700_000_000_000_000 + seq, payload: vec![b'x'; 100] }
}

fn producer() -> EventProducer {
    EventProducer::new(InMemoryQueue::new(), "bench-producer-1")
}

fn envelope(c: &mut Criterion) {
    let env = producer().envelope(&load_event(42)).expect("encodes");
    let owned: Vec<(Vec<u8>, Vec<u8>)> = env.to_fields().into_iter().map(|(k, v)| (k.as_bytes().to_vec(), v)).collect();
    let mut g = c.benchmark_group("envelope");
    g.throughput(Throughput::Elements(1));
    g.bench_function("to_fields", |b| b.iter(|| black_box(&env).to_fields()));
    g.bench_function("from_fields", |b| {
        b.iter(|| Envelope::from_fields(black_box(&owned), DEFAULT_MAX_PAYLOAD).expect("decodes"))
    });
    g.bench_function("round_trip", |b| {
        b.iter(|| {
            let fields = black_box(&env).to_fields();
            Envelope::from_fields(&fields, DEFAULT_MAX_PAYLOAD).expect("decodes")
        })
    });
    let p = producer();
    let ev = load_event(42);
    g.bench_function("producer_envelope", |b| b.iter(|| p.envelope(black_box(&ev)).expect("encodes")));
    g.finish();
}

fn msgpack(c: &mut Criterion) {
    let ev = load_event(42);
    let bytes = ContentType::MsgPack.encode(&ev).expect("encodes");
    let mut g = c.benchmark_group("msgpack");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_100b", |b| b.iter(|| ContentType::MsgPack.encode(black_box(&ev)).expect("encodes")));
    g.bench_function("decode_100b", |b| {
        b.iter(|| ContentType::MsgPack.decode::<LoadEvent>(black_box(&bytes)).expect("decodes"))
    });
    g.finish();
}

fn handler_call(c: &mut Criterion) {
    let env = producer().envelope(&load_event(42)).expect("encodes");
    let state = StateMap::default();
    let mut g = c.benchmark_group("handler_call");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_event", |b| {
        b.iter(|| {
            let call = HandlerCall::new(black_box(&env), 1, &state);
            call.event::<LoadEvent>().map(|ev| ev.seq).ok()
        })
    });
    g.bench_function("decode_event_and_meta", |b| {
        b.iter(|| {
            let call = HandlerCall::new(black_box(&env), 1, &state);
            (call.event::<LoadEvent>().map(|ev| ev.seq).ok(), call.meta())
        })
    });
    g.finish();
}

/// Counts handled events and wakes the benchmark when a target count is reached.
#[derive(Default)]
struct Counter {
    handled: AtomicU64,
    target: AtomicU64,
    reached: Notify,
}

impl Counter {
    fn hit(&self) {
        let n = self.handled.fetch_add(1, Ordering::Relaxed) + 1;
        if n == self.target.load(Ordering::Relaxed) {
            self.reached.notify_one();
        }
    }

    /// Expects `more` events on top of what was handled so far.
    fn expect(&self, more: u64) -> u64 {
        let target = self.handled.load(Ordering::Relaxed) + more;
        self.target.store(target, Ordering::Relaxed);
        target
    }

    async fn wait(&self, target: u64) {
        while self.handled.load(Ordering::Relaxed) < target {
            // `notify_one` keeps a permit when nobody waits yet: no lost wake-up.
            let _ = tokio::time::timeout(Duration::from_millis(10), self.reached.notified()).await;
        }
    }
}

macro_rules! many_events {
    ($($name:ident),* $(,)?) => {
        $(
            #[anycast_event(domain = "bench_many")]
            #[derive(Debug, Clone)]
            struct $name {
                seq: u64,
            }
        )*

        /// A no-op consumer of each of the many event types.
        fn consume_many(d: &EventDispatcher, counter: &Arc<Counter>) {
            $(
                let c = counter.clone();
                d.consume::<$name, _, _>(move |ev, _meta| {
                    black_box(ev.seq);
                    c.hit();
                    std::future::ready(Ok(()))
                });
            )*
        }

        /// `per_type` events of each type, one `produce_batch` per type.
        async fn produce_many(p: &EventProducer, per_type: u64) {
            $(
                let events: Vec<$name> = (0..per_type).map(|seq| $name { seq }).collect();
                p.produce_batch(&events).await.expect("produced");
            )*
        }
    };
}

many_events!(
    M00, M01, M02, M03, M04, M05, M06, M07, M08, M09, M10, M11, M12, M13, M14, M15, M16, M17, M18, M19, M20, M21, M22,
    M23, M24, M25, M26, M27, M28, M29, M30, M31, M32, M33, M34, M35, M36, M37, M38, M39, M40, M41, M42, M43, M44, M45,
    M46, M47, M48, M49, M50, M51, M52, M53, M54, M55, M56, M57, M58, M59,
);

const MANY: u64 = 60;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

/// A started dispatcher on `queue` whose handlers are registered by `register`.
fn start(
    rt: &tokio::runtime::Runtime,
    queue: &InMemoryQueue,
    register: impl FnOnce(&EventDispatcher),
) -> RunningDispatcher {
    rt.block_on(async {
        let d = EventDispatcher::builder(queue.clone())
            .group("bench")
            .consumer("bench-1")
            .concurrency(512)
            .build()
            .expect("dispatcher");
        register(&d);
        d.start().await.expect("started")
    })
}

/// Runs `iters` rounds of `produce` (which sends `per_iter` events) and waits for them to be
/// handled; returns the time taken.
fn timed_rounds<F, Fut>(
    rt: &tokio::runtime::Runtime,
    counter: &Counter,
    iters: u64,
    per_iter: u64,
    produce: F,
) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    rt.block_on(async {
        let started = Instant::now();
        for _ in 0..iters {
            let target = counter.expect(per_iter);
            produce().await;
            counter.wait(target).await;
        }
        started.elapsed()
    })
}

fn dispatch(c: &mut Criterion) {
    let rt = runtime();
    let per_type = 16;
    let per_iter = MANY * per_type;
    let mut g = c.benchmark_group("dispatch");
    g.throughput(Throughput::Elements(per_iter));
    g.sample_size(30);

    {
        let queue = InMemoryQueue::new();
        let counter = Arc::new(Counter::default());
        let c = counter.clone();
        let running = start(&rt, &queue, |d| {
            d.consume::<LoadEvent, _, _>(move |ev, _meta| {
                black_box(ev.seq);
                c.hit();
                std::future::ready(Ok(()))
            });
        });
        let p = EventProducer::new(queue, "bench-producer-1");
        let events: Vec<LoadEvent> = (0..per_type).map(load_event).collect();
        g.bench_function("1_handler", |b| {
            b.iter_custom(|iters| {
                timed_rounds(&rt, &counter, iters, per_iter, || async {
                    for _ in 0..MANY {
                        p.produce_batch(&events).await.expect("produced");
                    }
                })
            })
        });
        rt.block_on(running.shutdown(Duration::from_secs(5)));
    }
    {
        let queue = InMemoryQueue::new();
        let counter = Arc::new(Counter::default());
        let running = start(&rt, &queue, |d| consume_many(d, &counter));
        let p = EventProducer::new(queue, "bench-producer-1");
        g.bench_function("60_handlers_60_types", |b| {
            b.iter_custom(|iters| timed_rounds(&rt, &counter, iters, per_iter, || produce_many(&p, per_type)))
        });
        rt.block_on(running.shutdown(Duration::from_secs(5)));
    }
    g.finish();
}

fn in_memory_end_to_end(c: &mut Criterion) {
    let rt = runtime();
    let n = 10_000u64;
    let queue = InMemoryQueue::new();
    let counter = Arc::new(Counter::default());
    let hits = counter.clone();
    let running = start(&rt, &queue, |d| {
        d.consume::<LoadEvent, _, _>(move |ev, _meta| {
            black_box(ev.seq);
            hits.hit();
            std::future::ready(Ok(()))
        });
    });
    let p = EventProducer::new(queue, "bench-producer-1");
    let events: Vec<LoadEvent> = (0..n).map(load_event).collect();
    let mut g = c.benchmark_group("in_memory_end_to_end");
    g.throughput(Throughput::Elements(n));
    g.sample_size(20);
    g.bench_function("produce_batch_10k_then_drain", |b| {
        b.iter_custom(|iters| {
            timed_rounds(&rt, &counter, iters, n, || async { p.produce_batch(&events).await.expect("produced") })
        })
    });
    g.finish();
    rt.block_on(running.shutdown(Duration::from_secs(5)));
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = envelope, msgpack, handler_call, dispatch, in_memory_end_to_end
}
criterion_main!(benches);
