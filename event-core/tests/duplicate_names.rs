//! Two event types sharing a name and a delivery mode: the dispatcher refuses to start and names
//! both types. In a test binary of its own, so the clash does not reach other tests.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use event_core::{AnycastEvent, BroadcastEvent, Delivery, Error, Event, EventDispatcher, InMemoryQueue};

macro_rules! event {
    ($ty:ident, $name:literal, $delivery:ident, $marker:ident, $stream:literal) => {
        #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
        struct $ty {
            n: u32,
        }

        impl Event for $ty {
            const NAME: &'static str = $name;
            const DOMAIN: &'static str = "duptest";
            const VERSION: u32 = 1;
            const DELIVERY: Delivery = Delivery::$delivery;
            const STREAM: &'static str = $stream;
        }

        impl $marker for $ty {}
    };
}

event!(FirstClash, "clash", Anycast, AnycastEvent, "events:{duptest}:anycast");
event!(SecondClash, "clash", Anycast, AnycastEvent, "events:{duptest}:anycast");
event!(BroadcastClash, "clash", Broadcast, BroadcastEvent, "events:{duptest}:broadcast");

#[tokio::test]
async fn duplicate_event_names_are_refused_naming_both_types() {
    let d = EventDispatcher::builder(InMemoryQueue::new()).group("dup").build().unwrap();
    d.consume::<FirstClash, _, _>(|_ev, _meta| async { Ok(()) });
    d.consume::<SecondClash, _, _>(|_ev, _meta| async { Ok(()) });
    let err = d.start().await.unwrap_err();
    assert!(matches!(&err, Error::DuplicateEventName { name, .. } if name == "clash"), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("FirstClash") && msg.contains("SecondClash"), "the error must name both types: {msg}");
}

#[tokio::test]
async fn an_anycast_and_a_broadcast_event_may_share_a_name() {
    let d = EventDispatcher::builder(InMemoryQueue::new()).group("dup").build().unwrap();
    d.consume::<FirstClash, _, _>(|_ev, _meta| async { Ok(()) });
    d.subscribe::<BroadcastClash, _, _>(|_ev, _meta| async { Ok(()) });
    let running = d.start().await.unwrap();
    running.shutdown(Duration::from_secs(5)).await;
}
