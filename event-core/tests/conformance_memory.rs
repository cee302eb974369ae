//! The backend conformance suite (`event_core::testing`) on [`InMemoryQueue`].

use std::sync::Arc;

use event_core::{InMemoryQueue, MessageQueue};

event_core::conformance_suite!(async { Arc::new(InMemoryQueue::new()) as Arc<dyn MessageQueue> });
