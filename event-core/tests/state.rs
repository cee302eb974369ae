//! `State<T>` through `#[handler]`: `build()` refuses a state nobody provided, and hands the
//! provided one to the handler.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_core::prelude::*;

/// A stand-in for a database handle.
#[derive(Clone, Default)]
struct Db(Arc<Mutex<Vec<(String, u32)>>>);

#[anycast_event(domain = "statetest")]
#[derive(Debug, Clone)]
struct StateProbeEvent {
    id: String,
}

#[handler(group = "state-tests")]
async fn record_probe(State(db): State<Db>, meta: EventMeta, ev: StateProbeEvent) -> Result<(), HandlerError> {
    db.0.lock().unwrap().push((ev.id, meta.attempt));
    Ok(())
}

#[test]
fn build_refuses_a_state_nobody_provided() {
    let err = EventDispatcher::builder(InMemoryQueue::new()).discover().build().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, event_core::Error::MissingState { .. }), "{err:?}");
    assert!(msg.contains("Db"), "the error must name the missing type: {msg}");
    assert!(msg.contains("record_probe"), "the error must name the handler: {msg}");
}

#[test]
fn a_state_of_another_type_does_not_count() {
    let err = EventDispatcher::builder(InMemoryQueue::new()).state(42u32).discover().build().unwrap_err();
    assert!(matches!(err, event_core::Error::MissingState { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provided_state_reaches_the_handler() {
    let queue = InMemoryQueue::new();
    let db = Db::default();
    let dispatcher = EventDispatcher::builder(queue.clone()).state(db.clone()).discover().build().unwrap();
    assert_eq!(dispatcher.handler_count(), 1);
    let running = dispatcher.start().await.unwrap();
    EventProducer::new(queue, "state-test").produce(&StateProbeEvent { id: "p-1".into() }).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), running.drain()).await.expect("drain did not return");
    assert_eq!(*db.0.lock().unwrap(), vec![("p-1".to_owned(), 1)]);
    let stats = running.stats();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].group, "state-tests", "the handler's `group` overrides the dispatcher's");
    assert_eq!(stats[0].handled, 1);
    running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_handler_stays_a_plain_async_fn() {
    let db = Db::default();
    let meta = EventMeta {
        id: "id".into(),
        name: "state_probe".into(),
        domain: "statetest".into(),
        source: "test".into(),
        timestamp_ms: 0,
        attempt: 3,
        correlation_id: None,
    };
    record_probe(State(db.clone()), meta, StateProbeEvent { id: "direct".into() }).await.unwrap();
    assert_eq!(*db.0.lock().unwrap(), vec![("direct".to_owned(), 3)]);
}
