//! W3C trace context across processes: the producer writes the current span's `traceparent`
//! into the envelope (`tp` field) and the consumer makes the handler span its child.
//!
//! Only with the `opentelemetry` cargo feature (off by default); without it both functions do
//! nothing, no envelope carries `tp`, and an incoming `tp` is ignored.
//!
//! # The `opentelemetry` feature
//!
//! ```toml
//! event-core = { version = "0.1", features = ["opentelemetry"] }
//! ```
//!
//! The application installs a `tracing_opentelemetry` layer in its `tracing` subscriber (over
//! any OpenTelemetry tracer provider of the same `opentelemetry` version, 0.33). Then:
//!
//! - **Producer.** [`EventProducer::envelope`](crate::EventProducer::envelope) (so `produce` and
//!   `produce_batch`) takes the OpenTelemetry context of the current `tracing` span, encodes it
//!   with the W3C `TraceContextPropagator` of `opentelemetry_sdk` and writes the `traceparent`
//!   value (`00-<trace id>-<span id>-<flags>`) in the envelope's `tp` field. Outside any span,
//!   or without the layer, there is no valid span context and `tp` is left out. Only
//!   `traceparent` travels; `tracestate` and baggage do not.
//! - **Consumer.** Each handler invocation runs in an `event.handle` span; when its envelope has
//!   a `tp`, that span's parent becomes the remote producer span, so one trace runs from the
//!   producing span to every handler, across processes and backends. A retry keeps the `tp` of
//!   the original event, so every attempt joins the same trace. A malformed `tp` is
//!   ignored: the handler span keeps the parent it would have had without one.
//!
//! The propagation does not depend on the global text-map propagator of `opentelemetry`: the W3C
//! format is used whatever the application configured there.

#[cfg(feature = "opentelemetry")]
mod otel {
    use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
    use opentelemetry::trace::TraceContextExt;
    use opentelemetry::Context;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    /// The W3C header (here: envelope field) name the propagator reads and writes.
    const TRACEPARENT: &str = "traceparent";

    /// A carrier holding the one header the envelope has room for.
    #[derive(Default)]
    struct Carrier<'a> {
        out: Option<String>,
        input: Option<&'a str>,
    }

    impl Injector for Carrier<'_> {
        fn set(&mut self, key: &str, value: String) {
            if key.eq_ignore_ascii_case(TRACEPARENT) {
                self.out = Some(value);
            }
        }
    }

    impl Extractor for Carrier<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            if key.eq_ignore_ascii_case(TRACEPARENT) {
                self.input
            } else {
                None
            }
        }

        fn keys(&self) -> Vec<&str> {
            if self.input.is_some() {
                vec![TRACEPARENT]
            } else {
                Vec::new()
            }
        }
    }

    pub(crate) fn current_traceparent() -> Option<String> {
        let span = tracing::Span::current();
        if span.is_disabled() {
            return None;
        }
        let cx = span.context();
        if !cx.span().span_context().is_valid() {
            return None;
        }
        let mut carrier = Carrier::default();
        TraceContextPropagator::new().inject_context(&cx, &mut carrier);
        carrier.out
    }

    pub(crate) fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
        let Some(tp) = traceparent else { return };
        if span.is_disabled() {
            return;
        }
        let carrier = Carrier { out: None, input: Some(tp) };
        // Parse against an empty context, so a malformed value is told apart from whatever span
        // context is current here; the propagator never panics on bad input.
        let parsed = TraceContextPropagator::new().extract_with_context(&Context::new(), &carrier);
        let remote = parsed.span().span_context().clone();
        if !remote.is_valid() {
            return;
        }
        // Errors: no OpenTelemetry layer, span filtered out or already started. Nothing to do.
        let _ = span.set_parent(Context::current().with_remote_span_context(remote));
    }
}

/// The `traceparent` of the current span, if tracing through OpenTelemetry is on.
#[cfg(feature = "opentelemetry")]
pub(crate) fn current_traceparent() -> Option<String> {
    otel::current_traceparent()
}

/// The `traceparent` of the current span, if tracing through OpenTelemetry is on.
#[cfg(not(feature = "opentelemetry"))]
#[inline]
pub(crate) fn current_traceparent() -> Option<String> {
    None
}

/// Makes `span` a child of the remote span `traceparent` names (if any). `span` must not have
/// been entered yet. A malformed `traceparent` is ignored.
#[cfg(feature = "opentelemetry")]
pub(crate) fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
    otel::set_parent(span, traceparent);
}

/// Makes `span` a child of the remote span `traceparent` names (if any).
#[cfg(not(feature = "opentelemetry"))]
#[inline]
pub(crate) fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
    let _ = (span, traceparent);
}

#[cfg(all(test, feature = "opentelemetry"))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tracing_subscriber::layer::SubscriberExt;

    use super::{current_traceparent, set_parent};

    /// Runs `f` under a subscriber exporting to memory; returns the finished spans.
    fn with_otel(f: impl FnOnce()) -> Vec<opentelemetry_sdk::trace::SpanData> {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("trace_context"));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, f);
        provider.force_flush().unwrap();
        exporter.get_finished_spans().unwrap()
    }

    fn span_named<'a>(
        spans: &'a [opentelemetry_sdk::trace::SpanData],
        name: &str,
    ) -> &'a opentelemetry_sdk::trace::SpanData {
        spans.iter().find(|s| s.name == name).unwrap()
    }

    #[test]
    fn no_traceparent_outside_a_span_or_without_the_layer() {
        assert_eq!(current_traceparent(), None);
        let _ = with_otel(|| assert_eq!(current_traceparent(), None));
        tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            let _enter = tracing::info_span!("plain").entered();
            assert_eq!(current_traceparent(), None);
        });
    }

    #[test]
    fn traceparent_names_the_current_span() {
        let mut tp = None;
        let spans = with_otel(|| {
            let _enter = tracing::info_span!("outer").entered();
            tp = current_traceparent();
        });
        let outer = span_named(&spans, "outer");
        let expected = format!("00-{}-{}-01", outer.span_context.trace_id(), outer.span_context.span_id());
        assert_eq!(tp.as_deref(), Some(expected.as_str()));
    }

    #[test]
    fn valid_traceparent_becomes_the_parent() {
        let spans = with_otel(|| {
            let span = tracing::info_span!("child");
            set_parent(&span, Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
            drop(span.entered());
        });
        let child = span_named(&spans, "child");
        assert_eq!(child.span_context.trace_id(), TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap());
        assert_eq!(child.parent_span_id, SpanId::from_hex("00f067aa0ba902b7").unwrap());
    }

    #[test]
    fn malformed_traceparent_is_ignored() {
        let bad = [
            "",
            "garbage",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736ff-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "\u{0}-é-😀-",
        ];
        let spans = with_otel(|| {
            let _outer = tracing::info_span!("outer").entered();
            for tp in bad {
                let span = tracing::info_span!("child", tp);
                set_parent(&span, Some(tp));
                drop(span.entered());
            }
            // Also on a span that already started: ignored, no panic.
            let started = tracing::info_span!("started");
            drop(started.enter());
            set_parent(&started, Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
        });
        let outer = span_named(&spans, "outer");
        let children: Vec<_> = spans.iter().filter(|s| s.name == "child").collect();
        assert_eq!(children.len(), bad.len());
        for child in children {
            // The local parent is kept.
            assert_eq!(child.span_context.trace_id(), outer.span_context.trace_id());
            assert_eq!(child.parent_span_id, outer.span_context.span_id());
        }
        // Without a subscriber at all: nothing happens.
        set_parent(&tracing::Span::none(), Some("garbage"));
    }
}
