//! W3C trace context across processes: the producer writes the current span's `traceparent`
//! into the envelope (`tp` field) and the consumer makes the handler span its child.
//!
//! Only with the `opentelemetry` feature; without it both functions do nothing.

/// The `traceparent` of the current span, if tracing through OpenTelemetry is on.
pub(crate) fn current_traceparent() -> Option<String> {
    None
}

/// Makes `span` a child of the remote span `traceparent` names (if any).
pub(crate) fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
    let _ = (span, traceparent);
}
