//! Operations, end to end on a private redis-server: the `--metrics-addr` endpoint of `worker`
//! (scraped over plain TCP) and the `dlq list | replay | purge` commands.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::RedisServer;

const BIN: &str = env!("CARGO_BIN_EXE_event-examples");
const LOADTEST: &str = "events:{loadtest}:anycast";
const LIMIT: Duration = Duration::from_secs(30);

/// A `worker` process, killed on drop, whose stdout lines are collected.
struct Worker {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Worker {
    fn spawn(url: &str, group: &str, extra: &[&str]) -> Worker {
        let mut child = Command::new(BIN)
            .args(["worker", "--redis", url, "--group", group])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let worker = Worker { child, lines };
        wait_until(&format!("worker of group {group} to be ready"), || worker.line_starting("ready").is_some());
        worker
    }

    fn line_starting(&self, prefix: &str) -> Option<String> {
        self.lines.lock().unwrap().iter().find(|l| l.starts_with(prefix)).cloned()
    }

    fn printed(&self, line: &str) -> bool {
        self.lines.lock().unwrap().iter().any(|l| l == line)
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {LIMIT:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env("RUST_BACKTRACE", "0").output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command that must succeed; returns its stdout.
fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "{args:?} failed:\n{}\n{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

/// One HTTP/1.1 request written by hand: (status line, headers, body).
fn http_get(addr: SocketAddr, path: &str) -> (String, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete HTTP response");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_owned(), headers.to_owned(), body.to_owned())
}

fn scrape(addr: SocketAddr) -> String {
    let (status, headers, body) = http_get(addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(headers.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{headers}");
    body
}

/// Sum of the samples of `name` carrying every `label="value"` pair; `None` if there is none.
fn sample(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in body.lines() {
        let Some(rest) = line.strip_prefix(name) else { continue };
        let Some(rest) = rest.strip_prefix('{') else { continue };
        let Some((set, value)) = rest.rsplit_once("} ") else { continue };
        if labels.iter().all(|(k, v)| set.contains(&format!("{k}=\"{v}\""))) {
            *found.get_or_insert(0.0) += value.trim().parse::<f64>().unwrap();
        }
    }
    found
}

#[test]
fn worker_serves_prometheus_metrics() {
    let server = RedisServer::start();
    let url = server.url();
    let worker = Worker::spawn(&url, "g", &["--metrics-addr", "127.0.0.1:0"]);
    let line = worker.line_starting("metrics: http://").expect("the worker prints the metrics address");
    let addr: SocketAddr = line.trim_start_matches("metrics: http://").trim_end_matches("/metrics").parse().unwrap();
    assert_ne!(addr.port(), 0, "port 0 picks a free port");

    let success = [("event", "load_test"), ("outcome", "success")];
    let before = sample(&scrape(addr), "events_handled_total", &success).unwrap_or(0.0);
    let out = run(&["produce", "--redis", &url, "--count", "200"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("produced 200 events"));
    assert!(out.stderr.is_empty(), "no progress bar when stderr is not a terminal: {}", text(&out.stderr));

    let mut body = String::new();
    wait_until("200 successful load-test invocations in the metrics", || {
        body = scrape(addr);
        sample(&body, "events_handled_total", &success).unwrap_or(0.0) >= before + 200.0
    });
    assert!(!body.contains("events_produced_total"), "the worker produced nothing:\n{body}");
    assert!(body.contains("# TYPE event_handler_duration_seconds histogram"), "{body}");
    let all = [("event", "load_test"), ("le", "+Inf")];
    assert!(sample(&body, "event_handler_duration_seconds_bucket", &all).unwrap_or(0.0) >= 200.0, "{body}");
    let stream = [("stream", LOADTEST), ("group", "g")];
    wait_until("lag and pending gauges of the load-test stream", || {
        body = scrape(addr);
        sample(&body, "event_consumer_lag", &stream).is_some()
            && sample(&body, "event_consumer_pending", &stream).is_some()
    });

    // `/` answers too; anything else is a 404.
    let (status, _, root) = http_get(addr, "/");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(root.contains("events_handled_total"));
    assert_eq!(http_get(addr, "/nope").0, "HTTP/1.1 404 Not Found");
}

#[test]
fn metrics_address_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(&["demo", "--quiet", "--metrics-addr", &addr]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("metrics endpoint") && err.contains(&addr), "{err}");
}

fn list(url: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["dlq", "list", "--redis", url, "--json"];
    args.extend_from_slice(extra);
    let doc: Value = serde_json::from_str(&ok(&args)).unwrap();
    doc.as_array().expect("one JSON array").clone()
}

fn field<'a>(d: &'a Value, key: &str) -> &'a str {
    d[key].as_str().unwrap_or_else(|| panic!("`{key}` in {d}"))
}

#[test]
fn dead_letters_listed_purged_and_replayed() {
    let server = RedisServer::start();
    let url = server.url();
    let g = Worker::spawn(&url, "g", &["--record"]);
    let _h = Worker::spawn(&url, "h", &[]);

    // Raw entries: two valid load-test events but for the missing `attempt` field (a replay adds
    // it, so they succeed then), and one without any header field (never decodes).
    let mut conn = redis::Client::open(url.as_str()).unwrap().get_connection().unwrap();
    for seq in [7001, 7002] {
        let data = format!(r#"{{"seq":{seq},"sent_at_us":0,"payload":[]}}"#);
        let id = format!("raw-{seq}");
        let fields = [
            ("v", "1"),
            ("id", id.as_str()),
            ("name", "load_test"),
            ("domain", "loadtest"),
            ("source", "ops-test"),
            ("ts", "0"),
            ("ct", "json"),
            ("data", data.as_str()),
        ];
        let _: String = redis::cmd("XADD").arg(LOADTEST).arg("*").arg(&fields[..]).query(&mut conn).unwrap();
    }
    let _: String = redis::cmd("XADD").arg(LOADTEST).arg("*").arg("junk").arg("1").query(&mut conn).unwrap();

    // Each group dead-letters all three.
    let mut all = Vec::new();
    wait_until("6 dead letters", || {
        all = list(&url, &[]);
        all.len() == 6
    });
    for d in &all {
        assert_eq!(field(d, "stream"), LOADTEST);
        assert!(["g", "h"].contains(&field(d, "group")), "{d}");
        assert_eq!(field(d, "handler"), "");
        assert_eq!(d["attempts"], 1);
        assert!(d["age_ms"].as_u64().is_some() && d["failed_at_ms"].as_u64().is_some(), "{d}");
        match field(d, "event_name") {
            "load_test" => assert_eq!(field(d, "error"), "undecodable entry: missing field `attempt`"),
            "" => assert!(field(d, "error").starts_with("undecodable entry: missing field"), "{d}"),
            other => panic!("unexpected event {other}"),
        }
    }
    let ids = |v: &[Value]| v.iter().map(|d| format!("{}/{}", field(d, "group"), field(d, "id"))).collect::<Vec<_>>();
    assert_eq!(list(&url, &["--group", "g"]).len(), 3);
    assert_eq!(ids(&list(&url, &["--limit", "2"])), ids(&all[..2]), "the oldest first");

    let table = ok(&["dlq", "list", "--redis", &url]);
    for needle in ["ID", "EVENT", "GROUP", "HANDLER", "ATTEMPTS", "AGE", "ERROR", "load_test", "missing field"] {
        assert!(table.contains(needle), "table lacks `{needle}`:\n{table}");
    }

    // Purging asks for --yes, and removes nothing without it.
    let out = run(&["dlq", "purge", "--redis", &url, "--all"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("add --yes"), "{}", text(&out.stderr));
    assert_eq!(list(&url, &[]).len(), 6);

    // The junk goes, by id, in each group.
    for d in all.iter().filter(|d| field(d, "event_name").is_empty()) {
        let out = ok(&["dlq", "purge", "--redis", &url, field(d, "id"), "--group", field(d, "group"), "--yes"]);
        assert!(out.starts_with("purged dead letter"), "{out}");
    }
    assert_eq!(list(&url, &[]).len(), 4);

    // Replaying group g's: its worker handles them, group h's stay.
    let out = ok(&["dlq", "replay", "--redis", &url, "--all", "--group", "g"]);
    assert!(out.contains("replayed 2 dead letters"), "{out}");
    wait_until("worker g to handle the replayed events", || g.printed("handled 7001") && g.printed("handled 7002"));
    assert!(list(&url, &["--group", "g"]).is_empty());
    assert_eq!(list(&url, &["--group", "h"]).len(), 2);

    // Replaying everything empties the list.
    let out = ok(&["dlq", "replay", "--redis", &url, "--all"]);
    assert!(out.contains("replayed 2 dead letters (group h: 2)"), "{out}");
    assert!(list(&url, &[]).is_empty());
    assert!(ok(&["dlq", "list", "--redis", &url]).contains("no dead letters"));

    let out = run(&["dlq", "replay", "--redis", &url, "1-1"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no dead letter with id 1-1"), "{}", text(&out.stderr));
    assert!(ok(&["dlq", "purge", "--redis", &url, "--all", "--yes"]).contains("no dead letters to purge"));
}
