//! [`EventMeta`]: the envelope data a handler can ask for.

/// Metadata of the delivery being handled. Ask for it by adding a parameter `meta: EventMeta`
/// before the event parameter of a `#[handler]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    /// Event id (a UUID v7 chosen by the producer), stable across retries.
    pub id: String,
    /// Event name ([`Event::NAME`](crate::Event::NAME)).
    pub name: String,
    /// Event domain.
    pub domain: String,
    /// Source id given to [`EventProducer::new`](crate::EventProducer::new).
    pub source: String,
    /// When the event was produced, in unix milliseconds.
    pub timestamp_ms: u64,
    /// Attempt number: 1 on first delivery.
    pub attempt: u32,
    /// Correlation id, if the producer set one.
    pub correlation_id: Option<String>,
}
