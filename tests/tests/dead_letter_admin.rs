//! `DeadLetterAdmin` on both backends: dead letters of every group of every registered anycast
//! stream, filters, oldest-first order, limits, replay, purge, progress reports and extra streams.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use event_core::prelude::*;
use event_core::queue::{EntryId, GroupStart, MessageQueue, NewDeadLetter, ReadGroup};
use event_core::{DeadLetterAdmin, DeadLetterFilter, Error, RunningDispatcher};

#[anycast_event(domain = "dlq_admin")]
#[derive(Debug, Clone)]
struct ResizeRequested {
    n: u32,
}

#[anycast_event(domain = "dlq_admin_b")]
#[derive(Debug, Clone)]
struct SnapshotRequested {
    n: u32,
}

#[broadcast_event(domain = "dlq_admin")]
#[derive(Debug, Clone)]
struct Announced {
    n: u32,
}

const RESIZE: &str = "events:{dlq_admin}:anycast";
const SNAPSHOT: &str = "events:{dlq_admin_b}:anycast";
const EXTRA: &str = "ext:{dlq_admin_raw}:jobs";
const LIMIT: Duration = Duration::from_secs(30);

struct Cluster {
    alpha: RunningDispatcher,
    beta: RunningDispatcher,
    fixed: Arc<AtomicBool>,
    alpha_ok: Arc<AtomicU32>,
}

/// Group `alpha` fails odd resizes and every snapshot until `fixed`; group `beta` fails every
/// resize; a failing broadcast subscriber never makes a dead letter. One attempt each.
async fn cluster(queue: &Arc<dyn MessageQueue>) -> Cluster {
    let fixed = Arc::new(AtomicBool::new(false));
    let alpha_ok = Arc::new(AtomicU32::new(0));
    let alpha = EventDispatcher::builder(queue.clone()).group("alpha").max_attempts(1).build().unwrap();
    let (f, ok) = (fixed.clone(), alpha_ok.clone());
    alpha.consume::<ResizeRequested, _, _>(move |ev, _| {
        let fail = !f.load(Ordering::SeqCst) && ev.n % 2 == 1;
        let ok = ok.clone();
        async move {
            if fail {
                return Err(format!("resize {} failed", ev.n).into());
            }
            ok.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    let (f, ok) = (fixed.clone(), alpha_ok.clone());
    alpha.consume::<SnapshotRequested, _, _>(move |_ev, _| {
        let fail = !f.load(Ordering::SeqCst);
        let ok = ok.clone();
        async move {
            if fail {
                return Err("snapshot store down".into());
            }
            ok.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    alpha.subscribe::<Announced, _, _>(|_ev, _| async { Err("subscribers never dead-letter".into()) });
    let beta = EventDispatcher::builder(queue.clone()).group("beta").max_attempts(1).build().unwrap();
    beta.consume::<ResizeRequested, _, _>(|_ev, _| async { Err("beta refuses".into()) });
    let alpha = alpha.start().await.unwrap();
    let beta = beta.start().await.unwrap();
    Cluster { alpha, beta, fixed, alpha_ok }
}

async fn drain(c: &Cluster) {
    tokio::time::timeout(LIMIT, async {
        c.alpha.drain().await;
        c.beta.drain().await;
    })
    .await
    .expect("the dispatchers settle");
}

fn key(d: &DeadLetter) -> (EntryId, u64) {
    (EntryId::parse(&d.id).unwrap(), d.failed_at_ms)
}

async fn scenario(queue: Arc<dyn MessageQueue>) {
    let c = cluster(&queue).await;
    let producer = EventProducer::new(queue.clone(), "test");
    for n in 0..5 {
        producer.produce(&ResizeRequested { n }).await.unwrap();
    }
    producer.produce(&SnapshotRequested { n: 0 }).await.unwrap();
    producer.produce(&Announced { n: 0 }).await.unwrap();
    drain(&c).await;

    let admin = DeadLetterAdmin::from_arc(queue.clone());
    let streams = admin.streams();
    assert!(streams.contains(&RESIZE.to_owned()) && streams.contains(&SNAPSHOT.to_owned()), "{streams:?}");
    assert!(streams.iter().all(|s| !s.ends_with(":broadcast")), "anycast streams only: {streams:?}");
    assert_eq!(admin.groups().await.unwrap(), ["alpha", "beta"]);

    // Every group, oldest first: alpha resizes 1 and 3 and the snapshot, beta's five resizes.
    let all = admin.list(&DeadLetterFilter::all()).await.unwrap();
    assert_eq!(all.len(), 8, "{all:#?}");
    assert!(all.windows(2).all(|w| key(&w[0]) <= key(&w[1])), "oldest first: {all:#?}");
    let alpha = admin.list(&DeadLetterFilter::all().group("alpha")).await.unwrap();
    assert_eq!(alpha.len(), 3);
    assert!(alpha.iter().all(|d| d.group == "alpha" && d.attempts == 1));
    let mut errors: Vec<&str> = alpha.iter().map(|d| d.error.as_str()).collect();
    errors.sort_unstable();
    assert_eq!(errors, ["resize 1 failed", "resize 3 failed", "snapshot store down"]);
    let beta_resizes = admin.list(&DeadLetterFilter::all().group("beta").stream(RESIZE)).await.unwrap();
    assert_eq!(beta_resizes.len(), 5);
    assert!(beta_resizes.iter().all(|d| d.error == "beta refuses" && d.event_name == "resize_requested"));
    let snapshots = admin.list(&DeadLetterFilter::all().stream(SNAPSHOT)).await.unwrap();
    assert_eq!(snapshots.len(), 1);
    assert_eq!((snapshots[0].group.as_str(), snapshots[0].stream.as_str()), ("alpha", SNAPSHOT));
    assert_eq!(admin.list(&DeadLetterFilter::all().limit(3)).await.unwrap(), all[..3]);
    assert!(admin.list(&DeadLetterFilter::all().limit(0)).await.unwrap().is_empty());
    assert!(admin.list(&DeadLetterFilter::all().group("nobody")).await.unwrap().is_empty());
    let found = admin.find(&all[0].id, &DeadLetterFilter::all()).await.unwrap();
    assert!(found.contains(&all[0]));
    // Ids are unique per stream and group (two streams' dead letters can share one).
    let exact = DeadLetterFilter::all().group(&all[0].group).stream(&all[0].stream);
    assert_eq!(admin.find(&all[0].id, &exact).await.unwrap(), [all[0].clone()]);

    // Replay alpha's, once fixed: they succeed, and only alpha's are gone.
    c.fixed.store(true, Ordering::SeqCst);
    let before = c.alpha_ok.load(Ordering::SeqCst);
    let mut calls = Vec::new();
    let replayed = admin
        .replay_all_with_progress(&DeadLetterFilter::all().group("alpha"), |done, total| calls.push((done, total)))
        .await
        .unwrap();
    assert_eq!(replayed, 3);
    assert_eq!(calls, [(0, 3), (1, 3), (2, 3), (3, 3)]);
    drain(&c).await;
    assert_eq!(c.alpha_ok.load(Ordering::SeqCst), before + 3);
    assert!(admin.list(&DeadLetterFilter::all().group("alpha")).await.unwrap().is_empty());
    assert_eq!(admin.list(&DeadLetterFilter::all()).await.unwrap().len(), 5);
    // What is gone cannot be replayed; bulk operations skip it.
    assert!(matches!(admin.replay(&alpha[0]).await, Err(Error::DeadLetterNotFound(_))));
    assert_eq!(admin.replay_many(&alpha).await.unwrap(), 0);

    // Purge two of beta's, then the rest with progress.
    let beta = admin.list(&DeadLetterFilter::all().group("beta")).await.unwrap();
    assert_eq!(admin.purge(&beta[..2]).await.unwrap(), 2);
    assert_eq!(admin.purge(&beta[..2]).await.unwrap(), 0, "already gone");
    let mut calls = Vec::new();
    let purged =
        admin.purge_all_with_progress(&DeadLetterFilter::all(), |done, total| calls.push((done, total))).await.unwrap();
    assert_eq!(purged, 3);
    assert_eq!(calls.first(), Some(&(0, 3)));
    assert_eq!(calls.last(), Some(&(3, 3)));
    assert!(admin.list(&DeadLetterFilter::all()).await.unwrap().is_empty());
    assert_eq!(admin.replay_all(&DeadLetterFilter::all()).await.unwrap(), 0);

    // A stream no registered event uses is looked at only when added.
    queue.ensure_group(EXTRA, "ops", GroupStart::Beginning).await.unwrap();
    queue.append_raw(EXTRA, &[("junk", b"1".as_slice())]).await.unwrap();
    let stream: Arc<str> = Arc::from(EXTRA);
    let req = ReadGroup {
        group: "ops",
        consumer: "tool",
        streams: std::slice::from_ref(&stream),
        count: 10,
        block: None,
        pending_after: None,
    };
    let entries = queue.read_group(req).await.unwrap();
    assert_eq!(entries.len(), 1);
    let letter = NewDeadLetter { handler: "", error: "undecodable entry: missing field `v`", attempts: 1 };
    queue.dead_letter("ops", EXTRA, &entries[0], letter).await.unwrap();
    assert!(admin.list(&DeadLetterFilter::all()).await.unwrap().is_empty());
    let extra = DeadLetterAdmin::from_arc(queue.clone()).registered_streams(false).stream(EXTRA).stream(EXTRA);
    assert_eq!(extra.streams(), [EXTRA]);
    assert_eq!(extra.groups().await.unwrap(), ["ops"]);
    let listed = extra.list(&DeadLetterFilter::all()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].group.as_str(), listed[0].stream.as_str(), listed[0].handler.as_str()), ("ops", EXTRA, ""));
    assert_eq!(admin.clone().stream(EXTRA).list(&DeadLetterFilter::all()).await.unwrap(), listed);
    assert_eq!(extra.purge_all(&DeadLetterFilter::all().group("ops")).await.unwrap(), 1);

    c.alpha.shutdown(Duration::from_secs(5)).await;
    c.beta.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory() {
    scenario(Arc::new(InMemoryQueue::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis() {
    scenario(Arc::new(tests::server_queue().await)).await;
}

#[tokio::test]
async fn new_takes_any_queue() {
    let (queue, _server) = tests::redis_queue().await;
    let admin = DeadLetterAdmin::new(queue);
    assert!(admin.list(&DeadLetterFilter::all()).await.unwrap().is_empty());
    assert!(admin.groups().await.unwrap().is_empty());
    assert_eq!(DeadLetterAdmin::new(InMemoryQueue::new()).purge_all(&DeadLetterFilter::all()).await.unwrap(), 0);
}
