//! # event-core
//!
//! Event-driven communication between services: declare events with `#[broadcast_event]` /
//! `#[anycast_event]`, handle them with `#[handler]` async functions, publish them with
//! [`EventProducer`], and run every handler linked into the binary with [`EventDispatcher`].
//!
//! See the repository README for the full guide; the public API is described in `DESIGN.md`.
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
