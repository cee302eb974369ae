//! Smoke test: one anycast and one broadcast event through a private Redis.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use event_core::prelude::*;

#[anycast_event(domain = "smoke")]
#[derive(Debug, Clone)]
struct SmokeTask {
    n: u32,
}

#[broadcast_event(domain = "smoke")]
#[derive(Debug, Clone)]
struct SmokeNote {
    n: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anycast_and_broadcast_through_redis() {
    let (queue, _server) = tests::redis_queue().await;
    let seen = Arc::new(AtomicU32::new(0));
    let notes = Arc::new(AtomicU32::new(0));
    let d = EventDispatcher::builder(queue.clone()).group("g").build().unwrap();
    let s = seen.clone();
    d.consume::<SmokeTask, _, _>(move |ev, meta| {
        let s = s.clone();
        async move {
            assert_eq!(meta.attempt, 1);
            s.fetch_add(ev.n, Ordering::SeqCst);
            Ok(())
        }
    });
    let n2 = notes.clone();
    d.subscribe::<SmokeNote, _, _>(move |ev, _| {
        let n2 = n2.clone();
        async move {
            n2.fetch_add(ev.n, Ordering::SeqCst);
            Ok(())
        }
    });
    let running = d.start().await.unwrap();
    let p = EventProducer::new(queue.clone(), "smoke");
    for n in 1..=10 {
        p.produce(&SmokeTask { n }).await.unwrap();
        p.produce(&SmokeNote { n }).await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(20), running.drain()).await.expect("drain");
    assert_eq!(seen.load(Ordering::SeqCst), 55);
    assert_eq!(notes.load(Ordering::SeqCst), 55);
    running.shutdown(Duration::from_secs(5)).await;
}
