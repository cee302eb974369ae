//! W3C trace context propagation (`opentelemetry` feature): the producer's span context travels
//! in the envelope's `tp` field and the handler span `event.handle` continues its trace.
//!
//! Run with `cargo test -p event-core --features opentelemetry --test trace_propagation`.
#![cfg(feature = "opentelemetry")]
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use event_core::queue::MessageQueue;
use event_core::{
    AnycastEvent, Backoff, Delivery, Event, EventDispatcher, EventMeta, EventProducer, HandlerError, InMemoryQueue,
    RunningDispatcher,
};
use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::SubscriberExt;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct TraceJob {
    n: u32,
}

impl Event for TraceJob {
    const NAME: &'static str = "trace_job";
    const DOMAIN: &'static str = "tracetest";
    const VERSION: u32 = 1;
    const DELIVERY: Delivery = Delivery::Anycast;
    const STREAM: &'static str = "events:{tracetest}:anycast";
}

impl AnycastEvent for TraceJob {}

const SETTLE: Duration = Duration::from_secs(20);

/// A `tracing` subscriber exporting its spans to memory, installed on this thread. The tests
/// run on a current-thread runtime, so the dispatcher's tasks run under it too.
struct Otel {
    provider: SdkTracerProvider,
    exporter: InMemorySpanExporter,
    _guard: DefaultGuard,
}

impl Otel {
    fn install() -> Self {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("trace_propagation"));
        let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
        Otel { provider, exporter, _guard: guard }
    }

    fn spans(&self) -> Vec<SpanData> {
        self.provider.force_flush().unwrap();
        self.exporter.get_finished_spans().unwrap()
    }
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn traceparent_of(span: &SpanData) -> String {
    format!("00-{}-{}-01", span.span_context.trace_id(), span.span_context.span_id())
}

async fn start(queue: &InMemoryQueue, group: &str, fail_first: u32) -> (RunningDispatcher, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let d = EventDispatcher::builder(queue.clone())
        .group(group)
        .max_attempts(3)
        .backoff(Backoff::Fixed, Duration::from_millis(10), Duration::from_millis(10))
        .build()
        .unwrap();
    let seen = calls.clone();
    d.consume(move |_ev: TraceJob, _meta: EventMeta| {
        let call = seen.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if call <= fail_first {
                Err::<(), HandlerError>("failing on purpose".into())
            } else {
                Ok(())
            }
        }
    });
    (d.start().await.unwrap(), calls)
}

async fn drain(running: RunningDispatcher) {
    tokio::time::timeout(SETTLE, running.drain()).await.expect("drain did not return within 20 s");
    running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn handler_span_continues_the_producer_trace() {
    let otel = Otel::install();
    let queue = InMemoryQueue::new();
    let (running, calls) = start(&queue, "trace-basic", 0).await;
    let producer = EventProducer::new(queue.clone(), "trace-test");

    let span = tracing::info_span!("produce_something");
    let tp = {
        let _enter = span.enter();
        let envelope = producer.envelope(&TraceJob { n: 0 }).unwrap();
        assert!(envelope
            .to_fields()
            .iter()
            .any(|(k, v)| *k == "tp" && Some(v.as_slice()) == envelope.traceparent.as_deref().map(str::as_bytes)));
        producer.produce(&TraceJob { n: 1 }).await.unwrap();
        envelope.traceparent.expect("an envelope produced inside a span carries `tp`")
    };
    drop(span);
    drain(running).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let spans = otel.spans();
    let produce = named(&spans, "produce_something");
    assert_eq!(produce.len(), 1);
    let produce = produce[0];
    assert_eq!(tp, traceparent_of(produce), "`tp` names the producing span");
    let handle = named(&spans, "event.handle");
    assert_eq!(handle.len(), 1);
    let handle = handle[0];
    assert_eq!(handle.span_context.trace_id(), produce.span_context.trace_id(), "one trace, producer to handler");
    assert_eq!(handle.parent_span_id, produce.span_context.span_id(), "the handler span is the producer span's child");
    assert_ne!(handle.span_context.span_id(), produce.span_context.span_id());
}

/// The envelope crosses the wire as fields (as between processes), and the handler fails once:
/// both attempts join the producer's trace.
#[tokio::test]
async fn trace_survives_the_wire_and_retries() {
    let otel = Otel::install();
    let queue = InMemoryQueue::new();
    let (running, calls) = start(&queue, "trace-wire", 1).await;
    let producer = EventProducer::new(queue.clone(), "trace-test");

    let envelope = tracing::info_span!("produce_something").in_scope(|| producer.envelope(&TraceJob { n: 2 }).unwrap());
    let fields = envelope.to_fields();
    let raw: Vec<(&str, &[u8])> = fields.iter().map(|(k, v)| (*k, v.as_slice())).collect();
    queue.append_raw(TraceJob::STREAM, &raw).await.unwrap();
    drain(running).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let spans = otel.spans();
    let produce = named(&spans, "produce_something")[0];
    assert_eq!(envelope.traceparent.as_deref(), Some(traceparent_of(produce).as_str()));
    let handle = named(&spans, "event.handle");
    assert_eq!(handle.len(), 2, "one span per attempt");
    for h in handle {
        assert_eq!(h.span_context.trace_id(), produce.span_context.trace_id());
        assert_eq!(h.parent_span_id, produce.span_context.span_id());
    }
}

/// A `tp` from another process (a fixed, valid value) becomes the handler span's remote parent.
#[tokio::test]
async fn remote_traceparent_becomes_the_parent() {
    let otel = Otel::install();
    let queue = InMemoryQueue::new();
    let (running, calls) = start(&queue, "trace-remote", 0).await;
    let producer = EventProducer::new(queue.clone(), "trace-test");

    let mut envelope = producer.envelope(&TraceJob { n: 3 }).unwrap();
    assert_eq!(envelope.traceparent, None, "no span, no `tp`");
    envelope.traceparent = Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned());
    let fields = envelope.to_fields();
    let raw: Vec<(&str, &[u8])> = fields.iter().map(|(k, v)| (*k, v.as_slice())).collect();
    queue.append_raw(TraceJob::STREAM, &raw).await.unwrap();
    drain(running).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let spans = otel.spans();
    let handle = named(&spans, "event.handle");
    assert_eq!(handle.len(), 1);
    assert_eq!(handle[0].span_context.trace_id(), TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap());
    assert_eq!(handle[0].parent_span_id, SpanId::from_hex("b7ad6b7169203331").unwrap());
    assert!(handle[0].parent_span_is_remote);
}

/// A malformed `tp` is ignored: the event is handled, in a span of its own trace.
#[tokio::test]
async fn malformed_traceparent_is_ignored() {
    let otel = Otel::install();
    let queue = InMemoryQueue::new();
    let (running, calls) = start(&queue, "trace-malformed", 0).await;
    let producer = EventProducer::new(queue.clone(), "trace-test");

    let bad = ["not-a-traceparent", "00-00000000000000000000000000000000-0000000000000000-01", "00-xyz-abc-01", ""];
    for tp in bad {
        let mut envelope = producer.envelope(&TraceJob { n: 4 }).unwrap();
        envelope.traceparent = Some(tp.to_owned());
        let fields = envelope.to_fields();
        let raw: Vec<(&str, &[u8])> = fields.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        queue.append_raw(TraceJob::STREAM, &raw).await.unwrap();
    }
    drain(running).await;
    assert_eq!(calls.load(Ordering::SeqCst), bad.len() as u32);

    let spans = otel.spans();
    let handle = named(&spans, "event.handle");
    assert_eq!(handle.len(), bad.len());
    for h in handle {
        assert!(h.span_context.is_valid());
        assert_eq!(h.parent_span_id, SpanId::INVALID, "no parent taken from a malformed `tp`");
        assert!(!h.parent_span_is_remote);
    }
}

/// Without an OpenTelemetry layer there is no span context to propagate.
#[tokio::test]
async fn no_traceparent_without_the_layer() {
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry());
    let producer = EventProducer::new(InMemoryQueue::new(), "trace-test");
    let envelope = tracing::info_span!("produce_something").in_scope(|| producer.envelope(&TraceJob { n: 5 }).unwrap());
    assert_eq!(envelope.traceparent, None);
    assert!(envelope.to_fields().iter().all(|(k, _)| *k != "tp"));
}
