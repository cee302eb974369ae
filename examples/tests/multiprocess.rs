//! Several processes on one private Redis: 3 `worker`s share the anycast work that a `produce`
//! process publishes. Each event is handled exactly once when nothing fails; when a worker is
//! killed with SIGKILL midway every event is still handled, and the duplicates are reported.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tests::RedisServer;

const BIN: &str = env!("CARGO_BIN_EXE_event-examples");
const EVENTS: u64 = 10_000;

/// Deliveries per sequence number, and per worker.
#[derive(Default)]
struct Tally {
    per_seq: HashMap<u64, u32>,
    per_worker: HashMap<usize, u64>,
}

struct Worker {
    child: Child,
    ready: Arc<Mutex<bool>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_worker(url: &str, index: usize, tally: &Arc<Mutex<Tally>>, work: &str) -> Worker {
    let mut child = Command::new(BIN)
        .args(["worker", "--redis", url, "--group", "loadtest", "--record", "--claim-idle", "1s", "--work", work])
        .args(["--consumer", &format!("worker-{index}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let ready = Arc::new(Mutex::new(false));
    let (tally, r) = (tally.clone(), ready.clone());
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(seq) = line.strip_prefix("handled ") {
                let seq: u64 = seq.trim().parse().unwrap();
                let mut t = tally.lock().unwrap();
                *t.per_seq.entry(seq).or_default() += 1;
                *t.per_worker.entry(index).or_default() += 1;
            } else if line.starts_with("ready") {
                *r.lock().unwrap() = true;
            }
        }
    });
    Worker { child, ready }
}

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn produce(url: &str) -> Child {
    Command::new(BIN)
        .args(["produce", "--redis", url, "--count", &EVENTS.to_string(), "--batch", "50"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn distinct(tally: &Arc<Mutex<Tally>>) -> usize {
    tally.lock().unwrap().per_seq.len()
}

#[test]
fn three_workers_split_the_work_exactly_once() {
    let server = RedisServer::start();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let workers: Vec<Worker> = (0..3).map(|i| spawn_worker(&server.url(), i, &tally, "0ms")).collect();
    for w in &workers {
        wait_until("workers to be ready", Duration::from_secs(60), || *w.ready.lock().unwrap());
    }
    let status = produce(&server.url()).wait().unwrap();
    assert!(status.success(), "produce failed: {status}");
    wait_until("every event to be handled", Duration::from_secs(120), || distinct(&tally) as u64 == EVENTS);
    // Give late duplicates, if any, the time to show up before counting.
    std::thread::sleep(Duration::from_millis(500));
    let t = tally.lock().unwrap();
    let duplicates: u32 = t.per_seq.values().map(|n| n - 1).sum();
    println!("per worker: {:?}", t.per_worker);
    assert_eq!(t.per_seq.len() as u64, EVENTS);
    assert_eq!(duplicates, 0, "with nothing failing each event is handled exactly once");
    assert_eq!(t.per_worker.len(), 3, "the work is spread over the three workers: {:?}", t.per_worker);
}

#[test]
fn a_worker_killed_midway_loses_nothing() {
    let server = RedisServer::start();
    let tally = Arc::new(Mutex::new(Tally::default()));
    // 2 ms of work per event: at the kill, the victim has entries in flight.
    let mut workers: Vec<Worker> = (0..3).map(|i| spawn_worker(&server.url(), i, &tally, "2ms")).collect();
    for w in &workers {
        wait_until("workers to be ready", Duration::from_secs(60), || *w.ready.lock().unwrap());
    }
    let mut producer = produce(&server.url());
    wait_until("a third of the events", Duration::from_secs(120), || distinct(&tally) as u64 >= EVENTS / 3);
    // SIGKILL: no shutdown, no final acks. Its pending entries are reclaimed after 1 s idle.
    workers[0].child.kill().unwrap();
    let _ = workers[0].child.wait();
    assert!(producer.wait().unwrap().success());
    wait_until("every event to be handled by the survivors", Duration::from_secs(120), || {
        distinct(&tally) as u64 == EVENTS
    });
    std::thread::sleep(Duration::from_millis(500));
    let t = tally.lock().unwrap();
    let duplicates: u32 = t.per_seq.values().map(|n| n - 1).sum();
    // At-least-once: what the killed worker handled but had not acked is handled again.
    println!(
        "killed worker-0 midway: {} events, all handled; {duplicates} duplicate deliveries; per worker: {:?}",
        t.per_seq.len(),
        t.per_worker
    );
    assert_eq!(t.per_seq.len() as u64, EVENTS);
}
