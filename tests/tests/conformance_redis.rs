//! The backend conformance suite of event-core, unchanged, on `RedisQueue`: each case gets its
//! own private redis-server.
use std::sync::Arc;

use event_core::MessageQueue;

event_core::conformance_suite!(async { Arc::new(tests::server_queue().await) as Arc<dyn MessageQueue> });
