//! [`EventProducer`]: publishes events.

use std::sync::Arc;

use crate::envelope::{now_ms, ContentType, Envelope, DEFAULT_MAX_PAYLOAD};
use crate::queue::{Append, MessageQueue};
use crate::{Error, Event, Result};

/// Publishes events to their streams. Cheap to clone; clones share the queue.
///
/// ```
/// use event_core::prelude::*;
///
/// #[broadcast_event(domain = "kernel")]
/// #[derive(Debug, Clone)]
/// pub struct KernelStartedBroadcastEvent { pub kernel_id: String }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), event_core::Error> {
/// let producer = EventProducer::new(InMemoryQueue::new(), "manager-1");
/// producer.produce(&KernelStartedBroadcastEvent { kernel_id: "k-1".into() }).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct EventProducer {
    queue: Arc<dyn MessageQueue>,
    source: Arc<str>,
    content_type: ContentType,
    max_payload: usize,
    correlation_id: Option<Arc<str>>,
}

impl std::fmt::Debug for EventProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProducer")
            .field("queue", &self.queue)
            .field("source", &self.source)
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

impl EventProducer {
    /// A producer writing to `queue`, identifying itself as `source` (e.g. `manager-1`).
    pub fn new(queue: impl MessageQueue, source: impl Into<String>) -> Self {
        Self::from_arc(Arc::new(queue), source)
    }

    /// Like [`EventProducer::new`] for a queue already behind an `Arc`.
    pub fn from_arc(queue: Arc<dyn MessageQueue>, source: impl Into<String>) -> Self {
        EventProducer {
            queue,
            source: Arc::from(source.into()),
            content_type: ContentType::MsgPack,
            max_payload: DEFAULT_MAX_PAYLOAD,
            correlation_id: None,
        }
    }

    /// Encodes payloads as `ct` (MessagePack by default).
    pub fn with_content_type(mut self, ct: ContentType) -> Self {
        self.content_type = ct;
        self
    }

    /// Refuses payloads over `bytes` (default 1 MiB) with [`Error::PayloadTooLarge`].
    pub fn with_max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// Stamps every event with this correlation id.
    pub fn with_correlation_id(mut self, cid: impl Into<String>) -> Self {
        self.correlation_id = Some(Arc::from(cid.into()));
        self
    }

    /// The source id.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Builds the envelope of `ev` (what [`produce`](Self::produce) appends).
    pub fn envelope<E: Event>(&self, ev: &E) -> Result<Envelope> {
        let data =
            self.content_type.encode(ev).map_err(|reason| Error::Encode { event: E::NAME.to_owned(), reason })?;
        if data.len() > self.max_payload {
            return Err(Error::PayloadTooLarge {
                event: E::NAME.to_owned(),
                size: data.len(),
                limit: self.max_payload,
            });
        }
        let ts = now_ms();
        Ok(Envelope {
            id: crate::envelope::event_id_at(ts),
            name: E::NAME.to_owned(),
            domain: E::DOMAIN.to_owned(),
            source: self.source.to_string(),
            ts,
            attempt: 1,
            cid: self.correlation_id.as_deref().map(str::to_owned),
            ct: self.content_type,
            data,
            handlers: None,
            traceparent: crate::trace_context::current_traceparent(),
        })
    }

    /// Publishes one event to its stream (anycast or broadcast, by its type).
    pub async fn produce<E: Event>(&self, ev: &E) -> Result<()> {
        let append = [Append { stream: Arc::from(E::STREAM), envelope: Arc::new(self.envelope(ev)?) }];
        self.queue.append(&append).await?;
        metrics::counter!("events_produced_total", "event" => E::NAME, "delivery" => E::DELIVERY.as_str()).increment(1);
        Ok(())
    }

    /// Publishes several events in one round trip. Nothing is appended if one fails to encode.
    pub async fn produce_batch<E: Event>(&self, events: &[E]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let stream: Arc<str> = Arc::from(E::STREAM);
        let batch = events
            .iter()
            .map(|ev| Ok(Append { stream: stream.clone(), envelope: Arc::new(self.envelope(ev)?) }))
            .collect::<Result<Vec<_>>>()?;
        self.queue.append(&batch).await?;
        metrics::counter!("events_produced_total", "event" => E::NAME, "delivery" => E::DELIVERY.as_str())
            .increment(events.len() as u64);
        Ok(())
    }
}
