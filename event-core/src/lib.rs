//! # event-core
//!
//! Event-driven communication between services: declare events with `#[broadcast_event]` /
//! `#[anycast_event]`, handle them with `#[handler]` async functions, publish them with
//! [`EventProducer`], and run every handler linked into the binary with [`EventDispatcher`].
//!
//! ```
//! use std::time::Duration;
//! use event_core::prelude::*;
//!
//! #[anycast_event(domain = "bgtask")]
//! #[derive(Debug, Clone)]
//! pub struct BgtaskDoneEvent { pub task_id: String }
//!
//! #[handler(max_attempts = 5, backoff = "exponential", base_delay = "100ms")]
//! async fn record_done(meta: EventMeta, ev: BgtaskDoneEvent) -> Result<(), HandlerError> {
//!     println!("task {} done (attempt {})", ev.task_id, meta.attempt);
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let queue = InMemoryQueue::new(); // production: event_redis::RedisQueue
//!     let running = EventDispatcher::builder(queue.clone()).group("manager").discover().build()?.start().await?;
//!     EventProducer::new(queue, "manager-1").produce(&BgtaskDoneEvent { task_id: "t-1".into() }).await?;
//!     running.drain().await;
//!     running.shutdown(Duration::from_secs(5)).await;
//!     Ok(())
//! }
//! ```
//!
//! - Delivery: anycast events go to one instance of each consumer group, at least once, with
//!   retries, backoff and dead letters; broadcast events go to every live subscriber, once.
//! - Backends implement [`MessageQueue`]: [`InMemoryQueue`] here, `event_redis::RedisQueue` for
//!   Redis Streams; both pass the conformance suite in [`testing`].
//! - Handlers in another crate are only found if the binary names that crate
//!   (`use my_handlers as _;`): `inventory` registrations of an unlinked crate disappear.
//!
//! The repository README is the full guide (wire format, keys, operations, performance).
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

#[allow(unused_extern_crates)]
extern crate self as event_core;

mod admin;
mod dispatcher;
pub mod envelope;
mod error;
mod event;
pub mod handler;
mod memory;
mod meta;
mod producer;
pub mod queue;
mod retry;
mod runtime;
mod state;
mod stats;
pub mod testing;
mod trace_context;

pub use admin::{DeadLetterAdmin, DeadLetterFilter};
pub use dispatcher::{EventDispatcher, EventDispatcherBuilder, HandlerId};
pub use error::{Error, HandlerError, Result};
pub use event::{registered_events, AnycastEvent, BroadcastEvent, Delivery, Event, EventDescriptor, EventInfo};
pub use event_macros::{anycast_event, broadcast_event, handler};
pub use handler::{registered_handlers, Backoff, HandlerDescriptor, HandlerOptions};
pub use memory::{InMemoryQueue, DEFAULT_MAX_STREAM_LEN};
pub use meta::EventMeta;
pub use producer::EventProducer;
pub use queue::{DeadLetter, MessageQueue};
pub use retry::RetryPolicy;
pub use runtime::RunningDispatcher;
pub use state::{State, StateMap};
pub use stats::HandlerStats;

/// Everything a user of the framework needs: `use event_core::prelude::*;`.
///
/// Brings no `Result` or `Error`, so a glob import never shadows std's.
pub mod prelude {
    pub use crate::{
        anycast_event, broadcast_event, handler, AnycastEvent, BroadcastEvent, DeadLetter, Event, EventDispatcher,
        EventMeta, EventProducer, HandlerError, InMemoryQueue, State,
    };
}

/// Not public API. Used by generated code.
#[doc(hidden)]
pub mod __private {
    pub use crate::envelope::ContentType;
    pub use crate::event::{Delivery, EventDescriptor, EventInfo};
    pub use crate::handler::{
        assert_anycast, boxed, Backoff, FromEventContext, HandlerCall, HandlerDescriptor, HandlerOptions,
        IntoHandlerResult, InvokeError, InvokeResult,
    };
    pub use inventory;
    pub use serde;
}
