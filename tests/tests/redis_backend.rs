//! RedisQueue against a private redis-server: connection errors, keys and wire format, garbage
//! entries, trimming and durable subscribers.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_core::prelude::*;
use event_redis::{Error, RedisQueue};
use redis::AsyncCommands;
use tests::RedisServer;

#[anycast_event(domain = "backend")]
#[derive(Debug, Clone)]
struct WorkItem {
    n: u32,
}

#[broadcast_event(domain = "backend")]
#[derive(Debug, Clone)]
struct Notice {
    n: u32,
}

const SETTLE: Duration = Duration::from_secs(30);

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(server.url()).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

#[tokio::test]
async fn bad_urls_are_clear_errors() {
    for url in ["http://127.0.0.1:6379/", "redis://127.0.0.1:notaport/", "not a url"] {
        match RedisQueue::connect(url).await {
            Err(Error::InvalidUrl { url: shown, reason }) => {
                assert!(!reason.is_empty());
                assert!(!shown.is_empty());
            }
            other => panic!("{url}: expected InvalidUrl, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn unreachable_server_fails_within_the_connect_timeout() {
    // A port nobody listens on: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://127.0.0.1:{port}/");
    let res = tokio::time::timeout(
        Duration::from_secs(30),
        RedisQueue::builder(&url).connect_timeout(Duration::from_secs(2)).connect(),
    )
    .await
    .expect("connect must give up on its own, not hang");
    match res {
        Err(e @ Error::Connect { .. }) => assert!(e.to_string().contains("cannot connect"), "{e}"),
        other => panic!("expected Connect error, got {other:?}"),
    }
}

#[tokio::test]
async fn acl_user_and_password_in_the_url() {
    let server =
        RedisServer::start_with(&["--user", "alice", "on", ">s3cret", "~*", "&*", "+@all", "--user", "default", "off"]);
    let good = format!("redis://alice:s3cret@127.0.0.1:{}/", server.port());
    let q = RedisQueue::connect(&good).await.expect("ACL login works");
    EventProducer::new(q, "acl").produce(&WorkItem { n: 1 }).await.unwrap();

    let bad = format!("redis://alice:wrong@127.0.0.1:{}/", server.port());
    let err = RedisQueue::builder(&bad).connect_timeout(Duration::from_secs(3)).connect().await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Connect { .. }), "{text}");
    assert!(!text.contains("wrong"), "the password must be redacted: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_keys_and_wire_fields() {
    let server = RedisServer::start();
    let queue = RedisQueue::connect(&server.url()).await.unwrap();
    let d = EventDispatcher::builder(queue.clone())
        .group("svc")
        .max_attempts(2)
        .backoff(event_core::Backoff::Fixed, Duration::from_millis(10), Duration::from_millis(10))
        .build()
        .unwrap();
    d.consume::<WorkItem, _, _>(|_, _| async { Err("always fails".into()) });
    d.subscribe::<Notice, _, _>(|_, _| async { Ok(()) });
    let running = d.start().await.unwrap();
    let p = EventProducer::new(queue.clone(), "keys-test").with_correlation_id("corr-1");
    p.produce(&WorkItem { n: 7 }).await.unwrap();
    p.produce(&Notice { n: 8 }).await.unwrap();
    tokio::time::timeout(SETTLE, running.drain()).await.expect("settles");

    let mut c = raw(&server).await;
    for key in [
        "events:{backend}:anycast",
        "events:{backend}:broadcast",
        "events:{backend}:anycast:retry:svc:due",
        "events:{backend}:anycast:dlq:svc",
    ] {
        let exists: bool = c.exists(key).await.unwrap();
        assert!(exists, "key {key} missing");
    }
    let key_type: String = redis::cmd("TYPE").arg("events:{backend}:anycast").query_async(&mut c).await.unwrap();
    assert_eq!(key_type, "stream");

    let entries: redis::streams::StreamRangeReply = c.xrange_all("events:{backend}:broadcast").await.unwrap();
    let e = &entries.ids[0];
    let field = |k: &str| -> String { e.get(k).unwrap_or_else(|| panic!("field {k} missing")) };
    assert_eq!(field("v"), "1");
    assert_eq!(field("name"), "notice");
    assert_eq!(field("domain"), "backend");
    assert_eq!(field("source"), "keys-test");
    assert_eq!(field("attempt"), "1");
    assert_eq!(field("cid"), "corr-1");
    assert_eq!(field("ct"), "msgpack");
    assert_eq!(uuid_version(&field("id")), '7');
    assert!(field("ts").parse::<u64>().unwrap() > 1_700_000_000_000);
    let data: Vec<u8> = e.get("data").unwrap();
    assert!(!data.is_empty());

    let dead = running.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 2);
    assert_eq!(dead[0].error, "always fails");
    assert_eq!(dead[0].event_name, "work_item");
    running.shutdown(Duration::from_secs(5)).await;
}

fn uuid_version(id: &str) -> char {
    id.chars().nth(14).unwrap_or('?')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_garbage_is_dead_lettered_while_good_events_flow() {
    let server = RedisServer::start();
    let queue = RedisQueue::connect(&server.url()).await.unwrap();
    let handled = Arc::new(AtomicU32::new(0));
    let d = EventDispatcher::builder(queue.clone()).group("svc").max_payload(4096).build().unwrap();
    let h = handled.clone();
    d.consume::<WorkItem, _, _>(move |_, _| {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    let running = d.start().await.unwrap();
    let p = EventProducer::new(queue.clone(), "garbage-test");
    let mut c = raw(&server).await;
    let stream = "events:{backend}:anycast";
    let good = p.envelope(&WorkItem { n: 1 }).unwrap();
    let header = |name: &str, data: &[u8]| -> Vec<(String, Vec<u8>)> {
        vec![
            ("v".into(), b"1".to_vec()),
            ("id".into(), good.id.clone().into_bytes()),
            ("name".into(), name.as_bytes().to_vec()),
            ("domain".into(), b"backend".to_vec()),
            ("source".into(), b"raw".to_vec()),
            ("ts".into(), b"1".to_vec()),
            ("attempt".into(), b"1".to_vec()),
            ("ct".into(), b"msgpack".to_vec()),
            ("data".into(), data.to_vec()),
        ]
    };
    let garbage: Vec<Vec<(String, Vec<u8>)>> = vec![
        vec![("hello".into(), b"world".to_vec())],
        header("work_item", b"\xc1\xc1 not msgpack"),
        header("work_item", &vec![0x90; 10_000]),
    ];
    for (i, fields) in garbage.iter().enumerate() {
        p.produce(&WorkItem { n: i as u32 }).await.unwrap();
        let _: String = c.xadd(stream, "*", fields).await.unwrap();
    }
    p.produce(&WorkItem { n: 99 }).await.unwrap();
    tokio::time::timeout(SETTLE, running.drain()).await.expect("settles");
    assert_eq!(handled.load(Ordering::SeqCst), 4, "every good event handled");
    let dead = running.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 3, "{dead:#?}");
    // Handled concurrently: dead letters are not in production order.
    let find = |needle: &str| {
        dead.iter()
            .find(|d| d.error.contains(needle))
            .unwrap_or_else(|| panic!("no dead letter with {needle:?}: {dead:#?}"))
    };
    assert_eq!(find("missing field").handler, "", "no handler ran on an undecodable entry");
    assert_eq!(find("does not decode").handler, "work_item#0");
    assert_eq!(find("over the limit").event_name, "work_item");
    running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_trimmed_below_what_every_group_acked() {
    let server = RedisServer::start();
    let queue = RedisQueue::connect(&server.url()).await.unwrap();
    let mut running = Vec::new();
    for group in ["a", "b"] {
        let d = EventDispatcher::builder(queue.clone()).group(group).build().unwrap();
        d.consume::<WorkItem, _, _>(|_, _| async { Ok(()) });
        running.push(d.start().await.unwrap());
    }
    let p = EventProducer::new(queue.clone(), "trim");
    let batch: Vec<WorkItem> = (0..2000).map(|n| WorkItem { n }).collect();
    p.produce_batch(&batch).await.unwrap();
    for r in &running {
        tokio::time::timeout(SETTLE, r.drain()).await.expect("settles");
    }
    let mut c = raw(&server).await;
    let mut len: usize = usize::MAX;
    for _ in 0..100 {
        len = c.xlen("events:{backend}:anycast").await.unwrap();
        if len < 500 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(len < 500, "acked entries were not trimmed: XLEN {len}");
    for r in running {
        r.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_entries_are_kept_and_the_cap_bounds_the_rest() {
    let server = RedisServer::start();
    let queue = RedisQueue::builder(server.url()).max_stream_len(1000).connect().await.unwrap();
    let mut c = raw(&server).await;
    // A group that never reads: nothing may be trimmed as acked...
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("events:{backend}:anycast")
        .arg("idle")
        .arg("$")
        .arg("MKSTREAM")
        .query_async(&mut c)
        .await
        .unwrap();
    let p = EventProducer::new(queue.clone(), "cap");
    for chunk in 0..10 {
        let batch: Vec<WorkItem> = (0..1000).map(|n| WorkItem { n: chunk * 1000 + n }).collect();
        p.produce_batch(&batch).await.unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    use event_core::MessageQueue;
    queue.maintain("events:{backend}:anycast").await.unwrap();
    let len: usize = c.xlen("events:{backend}:anycast").await.unwrap();
    // ...but the hard cap (approximate: whole 100-entry nodes) still holds.
    assert!(len <= 1100, "hard cap not applied: XLEN {len}");
    assert!(len >= 900, "trimmed more than the cap: XLEN {len}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_subscriber_resumes_where_it_stopped() {
    let server = RedisServer::start();
    let queue = RedisQueue::connect(&server.url()).await.unwrap();
    let seen: Arc<Mutex<HashMap<&'static str, Vec<u32>>>> = Arc::default();
    let start = |name: &'static str, durable: bool| {
        let queue = queue.clone();
        let seen = seen.clone();
        async move {
            let mut b = EventDispatcher::builder(queue).group("ui");
            if durable {
                b = b.subscriber_name(name);
            }
            let d = b.build().unwrap();
            d.subscribe::<Notice, _, _>(move |ev, _| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().entry(name).or_default().push(ev.n);
                    Ok(())
                }
            });
            d.start().await.unwrap()
        }
    };
    let p = EventProducer::new(queue.clone(), "durable");
    let first = start("durable", true).await;
    for n in 0..5 {
        p.produce(&Notice { n }).await.unwrap();
    }
    tokio::time::timeout(SETTLE, first.drain()).await.expect("settles");
    first.shutdown(Duration::from_secs(5)).await;
    for n in 5..10 {
        p.produce(&Notice { n }).await.unwrap();
    }
    let again = start("durable", true).await;
    let ephemeral = start("ephemeral", false).await;
    p.produce(&Notice { n: 10 }).await.unwrap();
    tokio::time::timeout(SETTLE, again.drain()).await.expect("settles");
    tokio::time::timeout(SETTLE, ephemeral.drain()).await.expect("settles");
    let seen = seen.lock().unwrap().clone();
    let mut durable = seen["durable"].clone();
    durable.sort_unstable();
    assert_eq!(durable, (0..=10).collect::<Vec<_>>(), "durable subscriber saw everything once");
    assert_eq!(seen["ephemeral"], vec![10], "an ephemeral subscriber only sees what comes after it starts");
    again.shutdown(Duration::from_secs(5)).await;
    ephemeral.shutdown(Duration::from_secs(5)).await;
}

#[test]
fn missing_redis_server_says_how_to_install_it() {
    let err =
        std::panic::catch_unwind(|| RedisServer::start_binary("redis-server-that-does-not-exist", &[])).unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("apt-get install -y redis-server"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_group_is_recreated_without_skipping_events() {
    let server = RedisServer::start();
    let queue = RedisQueue::connect(&server.url()).await.unwrap();
    let seen = Arc::new(AtomicU32::new(0));
    let d = EventDispatcher::builder(queue.clone()).group("svc").build().unwrap();
    let s = seen.clone();
    d.consume::<WorkItem, _, _>(move |_, _| {
        let s = s.clone();
        async move {
            s.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    let running = d.start().await.unwrap();
    let p = EventProducer::new(queue.clone(), "nogroup");
    p.produce(&WorkItem { n: 1 }).await.unwrap();
    tokio::time::timeout(SETTLE, running.drain()).await.expect("settles");
    // The stream and its groups disappear (as after a restart without persistence)...
    let mut c = raw(&server).await;
    let _: () = c.del("events:{backend}:anycast").await.unwrap();
    // ...an event arrives on a stream that has no group any more...
    p.produce(&WorkItem { n: 2 }).await.unwrap();
    // ...and the reader, told NOGROUP, recreates the group and still delivers it.
    for _ in 0..200 {
        if seen.load(Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen.load(Ordering::SeqCst), 2, "the event appended after the group vanished was skipped");
    running.shutdown(Duration::from_secs(5)).await;
}
