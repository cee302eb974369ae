//! `bench`: produce and handle load-test events in one process, report rates and latency.
//!
//! P producer tasks publish N [`LoadTestEvent`]s (anycast) or [`LoadTestNotice`]s (broadcast);
//! C dispatchers handle them with a runtime closure that records the produce->handler latency
//! (`now_us() - sent_at_us`, the timestamp carried in the event) into a per-consumer histogram of
//! atomics (no lock per event) and counts what was handled. Anycast: the C dispatchers are the
//! consumers `bench-consumer-<i>` of one group `bench`, so N events are handled in all.
//! Broadcast: C subscribers each handle all N (N*C deliveries).
//!
//! Measured: the produce rate (first produce to last produce returning), the end-to-end rate
//! (first produce to last handled; with `--backlog`, the drain: consumers start to last
//! handled), latency percentiles, the peak RSS of the process (`VmHWM`, Linux) and, with
//! `--compare-redis-benchmark`, the raw `redis-benchmark` XADD rate of the same server in the
//! same run, and the ratio of our end-to-end rate to it.
//!
//! On Redis each run works under a fresh key prefix (`bench-<unix ms>:`) and deletes its keys at
//! the end (unless `--keep-keys`).

use std::fmt::Write as _;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use event_core::prelude::*;
use event_core::queue::GroupStart;
use event_core::{MessageQueue, RunningDispatcher};
use event_redis::RedisQueue;
use examples::loadtest::{now_us, LoadTestEvent, LoadTestNotice};
use redis::IntoConnectionInfo as _;
use tokio::sync::Notify;

use super::backend;

/// Consumer group of the anycast consumers.
const GROUP: &str = "bench";

/// Delivery mode of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// `LoadTestEvent`s, each handled by one of the C consumers of one group.
    Anycast,
    /// `LoadTestNotice`s, each handled by every one of the C subscribers.
    Broadcast,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Anycast => "anycast",
            Mode::Broadcast => "broadcast",
        }
    }
}

/// Options of `bench`.
#[derive(Debug, Clone, Args)]
pub(crate) struct BenchArgs {
    /// Redis URL, e.g. `redis://127.0.0.1:6379/`. Without it the in-memory queue is used.
    #[arg(long)]
    redis: Option<String>,
    /// Anycast (one consumer of the group handles each event) or broadcast (every subscriber
    /// handles every event).
    #[arg(long, value_enum, default_value_t = Mode::Anycast)]
    mode: Mode,
    /// Events to produce (in all, over the producers).
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Filler bytes per event.
    #[arg(long, default_value_t = 100)]
    payload_bytes: usize,
    /// Producer tasks.
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Consumer dispatchers (anycast: consumers of one group; broadcast: subscribers).
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Events per second over all producers, each sent with `produce` on a schedule: latency at
    /// a given load. Without it producers go flat out with `produce_batch`.
    #[arg(long)]
    rate: Option<f64>,
    /// Events per `produce_batch` call when flat out.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Handler invocations in flight per consumer (the dispatcher's `.concurrency`).
    #[arg(long, default_value_t = 512)]
    concurrency: u32,
    /// Most entries one read returns (the dispatcher's `.max_batch`).
    #[arg(long, default_value_t = 512)]
    max_batch: usize,
    /// Produce all events first with no consumer running, then start the consumers and measure
    /// the drain (end-to-end = drain time). Broadcast subscribers are then durable
    /// (`subscriber_name`), so that they can read what was appended before they started.
    #[arg(long)]
    backlog: bool,
    /// Also run `redis-benchmark` XADD (`-c 50 -P 64`, a value of `--payload-bytes`) against the
    /// same server and report the ratio of our end-to-end rate to its rate. Needs `--redis` and
    /// `redis-benchmark` (Debian: `apt-get install redis-tools`).
    #[arg(long, requires = "redis")]
    compare_redis_benchmark: bool,
    /// Requests of the `redis-benchmark` run (default: the larger of `--count` and 200000).
    #[arg(long)]
    xadd_requests: Option<u64>,
    /// Give up when nothing was handled for this long while events are missing.
    #[arg(long, default_value = "30s", value_parser = super::parse_duration)]
    stall_timeout: Duration,
    /// Keep the run's keys in Redis instead of deleting them.
    #[arg(long)]
    keep_keys: bool,
    /// Also print the results as one JSON object, on the last line.
    #[arg(long)]
    json: bool,
}

// ---------------------------------------------------------------------------------------------
// Latency histogram: atomics, microsecond buckets.

/// Values below this (µs, 65.5 ms) each have their own bucket: exact to the microsecond.
const LINEAR: u64 = 1 << 16;
/// Above [`LINEAR`], each power of two is split into `2^SUB_BITS` buckets (0.1% wide).
const SUB_BITS: u32 = 10;
/// Values are clamped below `2^MAX_EXP` µs (12.7 days).
const MAX_EXP: u32 = 40;
const BUCKETS: usize = (LINEAR + ((MAX_EXP - 16) as u64) * (1 << SUB_BITS)) as usize;

/// A fixed histogram of latencies in microseconds, recorded with one relaxed atomic add.
struct Histogram {
    counts: Box<[AtomicU64]>,
}

impl Histogram {
    fn new() -> Self {
        Histogram { counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect() }
    }

    fn index(us: u64) -> usize {
        if us < LINEAR {
            return us as usize;
        }
        let v = us.min((1u64 << MAX_EXP) - 1);
        let exp = 63 - v.leading_zeros(); // 16..MAX_EXP
        let sub = (v >> (exp - SUB_BITS)) - (1 << SUB_BITS);
        (LINEAR + u64::from(exp - 16) * (1 << SUB_BITS) + sub) as usize
    }

    /// The value a bucket stands for: itself below [`LINEAR`], else the middle of the bucket.
    fn value(index: usize) -> u64 {
        let i = index as u64;
        if i < LINEAR {
            return i;
        }
        let j = i - LINEAR;
        let exp = 16 + (j >> SUB_BITS) as u32;
        let sub = j & ((1 << SUB_BITS) - 1);
        let width = 1u64 << (exp - SUB_BITS);
        (((1 << SUB_BITS) + sub) << (exp - SUB_BITS)) + width / 2
    }

    fn record(&self, us: u64) {
        self.counts[Self::index(us)].fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Vec<u64> {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }
}

/// Latency percentiles of a merged histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default)]
struct Percentiles {
    p50: u64,
    p90: u64,
    p99: u64,
    max: u64,
}

fn percentiles(counts: &[u64]) -> Percentiles {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return Percentiles::default();
    }
    // The smallest value with at least ceil(q * total) values at or below it.
    let rank = |q: f64| ((q * total as f64).ceil() as u64).clamp(1, total);
    let wanted = [rank(0.50), rank(0.90), rank(0.99), total];
    let mut found = [0u64; 4];
    let mut next = 0;
    let mut seen = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        if c == 0 {
            continue;
        }
        seen += c;
        while next < wanted.len() && seen >= wanted[next] {
            found[next] = Histogram::value(i);
            next += 1;
        }
        if next == wanted.len() {
            break;
        }
    }
    Percentiles { p50: found[0], p90: found[1], p99: found[2], max: found[3] }
}

// ---------------------------------------------------------------------------------------------
// What the handlers share.

/// Progress over all consumers: the handled count and when the last expected one was handled.
struct Progress {
    handled: AtomicU64,
    expected: u64,
    finished: OnceLock<Instant>,
    done: Notify,
}

impl Progress {
    fn handled_one(&self) {
        if self.handled.fetch_add(1, Ordering::Relaxed) + 1 == self.expected {
            let _ = self.finished.set(Instant::now());
            self.done.notify_one();
        }
    }
}

/// What one consumer's handler records into.
struct Recorder {
    latency: Histogram,
    progress: Arc<Progress>,
}

impl Recorder {
    fn record(&self, sent_at_us: u64) {
        self.latency.record(now_us().saturating_sub(sent_at_us));
        self.progress.handled_one();
    }
}

/// The two load-test event types, for producers generic over the mode.
trait LoadEvent: Event {
    fn new(seq: u64, sent_at_us: u64, payload: Vec<u8>) -> Self;
    fn stamp(&mut self, seq: u64, sent_at_us: u64);
}

impl LoadEvent for LoadTestEvent {
    fn new(seq: u64, sent_at_us: u64, payload: Vec<u8>) -> Self {
        LoadTestEvent { seq, sent_at_us, payload }
    }
    fn stamp(&mut self, seq: u64, sent_at_us: u64) {
        self.seq = seq;
        self.sent_at_us = sent_at_us;
    }
}

impl LoadEvent for LoadTestNotice {
    fn new(seq: u64, sent_at_us: u64, payload: Vec<u8>) -> Self {
        LoadTestNotice { seq, sent_at_us, payload }
    }
    fn stamp(&mut self, seq: u64, sent_at_us: u64) {
        self.seq = seq;
        self.sent_at_us = sent_at_us;
    }
}

// ---------------------------------------------------------------------------------------------
// Queues.

/// Where the run happens: one shared in-memory queue, or Redis with a connection per role.
enum Backend {
    Memory(InMemoryQueue),
    Redis { url: String, prefix: String, max_stream_len: usize },
}

impl Backend {
    /// A queue handle for one producer or one dispatcher. On Redis each gets its own connection,
    /// as separate producer and worker processes would.
    async fn queue(&self) -> anyhow::Result<Arc<dyn MessageQueue>> {
        Ok(match self {
            Backend::Memory(q) => Arc::new(q.clone()),
            Backend::Redis { url, prefix, max_stream_len } => Arc::new(
                RedisQueue::builder(url.as_str())
                    .key_prefix(prefix.as_str())
                    .max_stream_len(*max_stream_len)
                    .connect()
                    .await
                    .with_context(|| "connecting to Redis".to_owned())?,
            ),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Producers.

/// The share of producer `p` of `0..count`.
fn share(count: u64, producers: usize, p: usize) -> Range<u64> {
    let n = producers as u128;
    let at = |i: usize| (u128::from(count) * i as u128 / n) as u64;
    at(p)..at(p + 1)
}

/// Publishes `seqs` flat out with `produce_batch` in chunks of `batch`, reusing the events.
async fn produce_flat_out<E: LoadEvent>(
    producer: EventProducer,
    seqs: Range<u64>,
    batch: usize,
    payload: Vec<u8>,
) -> anyhow::Result<Instant> {
    let mut events: Vec<E> = (0..batch).map(|_| E::new(0, 0, payload.clone())).collect();
    let mut seq = seqs.start;
    while seq < seqs.end {
        let n = (batch as u64).min(seqs.end - seq) as usize;
        let now = now_us();
        for (i, ev) in events[..n].iter_mut().enumerate() {
            ev.stamp(seq + i as u64, now);
        }
        producer.produce_batch(&events[..n]).await?;
        seq += n as u64;
        // The in-memory queue never makes a producer wait: let the consumers run too.
        tokio::task::yield_now().await;
    }
    Ok(Instant::now())
}

/// Publishes `seqs` one `produce` at a time, the k-th at `start + offset + k * period`
/// (a late event goes at once: the schedule, not the previous send, sets the pace).
async fn produce_paced<E: LoadEvent>(
    producer: EventProducer,
    seqs: Range<u64>,
    start: tokio::time::Instant,
    offset: Duration,
    period: Duration,
    payload: Vec<u8>,
) -> anyhow::Result<Instant> {
    let mut ev = E::new(0, 0, payload);
    let period_ns = period.as_nanos();
    for (k, seq) in seqs.enumerate() {
        let at = start + offset + Duration::from_nanos(u64::try_from(period_ns * k as u128).unwrap_or(u64::MAX));
        if at > tokio::time::Instant::now() {
            tokio::time::sleep_until(at).await;
        }
        ev.stamp(seq, now_us());
        producer.produce(&ev).await?;
    }
    Ok(Instant::now())
}

type ProducerTask = tokio::task::JoinHandle<anyhow::Result<Instant>>;

/// One producer per producer task, each with its own queue handle (connection).
async fn connect_producers(args: &BenchArgs, backend: &Backend) -> anyhow::Result<Vec<EventProducer>> {
    let mut producers = Vec::with_capacity(args.producers);
    for p in 0..args.producers {
        producers.push(EventProducer::from_arc(backend.queue().await?, format!("bench-producer-{p}")));
    }
    Ok(producers)
}

/// Starts the producer tasks; each returns when its last event was produced.
fn spawn_producers(args: &BenchArgs, producers: Vec<EventProducer>) -> Vec<ProducerTask> {
    let payload = vec![b'x'; args.payload_bytes];
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(args.producers);
    for (p, producer) in producers.into_iter().enumerate() {
        let seqs = share(args.count, args.producers, p);
        let payload = payload.clone();
        let task = match (args.rate, args.mode) {
            (None, Mode::Anycast) => {
                tokio::spawn(produce_flat_out::<LoadTestEvent>(producer, seqs, args.batch, payload))
            }
            (None, Mode::Broadcast) => {
                tokio::spawn(produce_flat_out::<LoadTestNotice>(producer, seqs, args.batch, payload))
            }
            (Some(rate), mode) => {
                // Each producer sends every `producers / rate` s, staggered by `1 / rate` s.
                let period = Duration::from_secs_f64(args.producers as f64 / rate);
                let offset = Duration::from_secs_f64(p as f64 / rate);
                match mode {
                    Mode::Anycast => {
                        tokio::spawn(produce_paced::<LoadTestEvent>(producer, seqs, start, offset, period, payload))
                    }
                    Mode::Broadcast => {
                        tokio::spawn(produce_paced::<LoadTestNotice>(producer, seqs, start, offset, period, payload))
                    }
                }
            }
        };
        tasks.push(task);
    }
    tasks
}

/// Waits for every producer; returns when the last one finished.
async fn join_producers(tasks: Vec<ProducerTask>) -> anyhow::Result<Instant> {
    let mut last: Option<Instant> = None;
    for t in tasks {
        let finished = t.await.context("producer task")??;
        last = Some(last.map_or(finished, |l| l.max(finished)));
    }
    Ok(last.unwrap_or_else(Instant::now))
}

// ---------------------------------------------------------------------------------------------
// Consumers.

/// Builds consumer `i` with its recording handler (not started).
async fn build_consumer(
    args: &BenchArgs,
    backend: &Backend,
    i: usize,
    recorder: Arc<Recorder>,
) -> anyhow::Result<EventDispatcher> {
    let mut builder = EventDispatcher::builder_arc(backend.queue().await?)
        .group(GROUP)
        .consumer(format!("bench-consumer-{i}"))
        .concurrency(args.concurrency)
        .max_batch(args.max_batch);
    if args.mode == Mode::Broadcast && args.backlog {
        builder = builder.subscriber_name(subscriber_name(i));
    }
    let dispatcher = builder.build()?;
    match args.mode {
        Mode::Anycast => {
            dispatcher.consume::<LoadTestEvent, _, _>(move |ev, _meta| {
                recorder.record(ev.sent_at_us);
                std::future::ready(Ok(()))
            });
        }
        Mode::Broadcast => {
            dispatcher.subscribe::<LoadTestNotice, _, _>(move |ev, _meta| {
                recorder.record(ev.sent_at_us);
                std::future::ready(Ok(()))
            });
        }
    }
    Ok(dispatcher)
}

fn subscriber_name(i: usize) -> String {
    format!("bench-subscriber-{i}")
}

/// Backlog mode: creates the consumer groups before anything is produced (as a service that
/// ran before would have left them), so that the consumers read the backlog when they start.
async fn create_groups(args: &BenchArgs, queue: &dyn MessageQueue) -> anyhow::Result<()> {
    match args.mode {
        Mode::Anycast => queue.ensure_group(LoadTestEvent::STREAM, GROUP, GroupStart::End).await?,
        Mode::Broadcast => {
            for i in 0..args.consumers {
                let group = format!("subscriber:{}", subscriber_name(i));
                queue.ensure_group(LoadTestNotice::STREAM, &group, GroupStart::End).await?;
            }
        }
    }
    Ok(())
}

/// Waits until every expected event was handled; `Err` when nothing moved for `stall`.
async fn wait_handled(progress: &Progress, stall: Duration) -> anyhow::Result<Instant> {
    let mut last = progress.handled.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    loop {
        if let Some(at) = progress.finished.get() {
            return Ok(*at);
        }
        tokio::select! {
            _ = progress.done.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let now = progress.handled.load(Ordering::Relaxed);
        if now != last {
            last = now;
            last_change = Instant::now();
        } else if progress.finished.get().is_none() && last_change.elapsed() >= stall {
            anyhow::bail!(
                "stalled: {now} of {} deliveries handled, none in the last {}",
                progress.expected,
                super::format_duration(stall)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Measurements outside the framework.

/// Peak resident set size of this process (`VmHWM`), in bytes; `None` where unknown (not Linux).
fn peak_rss_bytes() -> Option<u64> {
    proc_status_bytes("VmHWM:")
}

/// Resident set size of this process now (`VmRSS`), in bytes; `None` where unknown.
fn rss_bytes() -> Option<u64> {
    proc_status_bytes("VmRSS:")
}

/// A `kB` line of `/proc/self/status`, in bytes.
fn proc_status_bytes(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Runs `redis-benchmark` XADD against the server of `url`, on `key`, with a literal value of
/// `payload_bytes` bytes (Redis 7.0 does not expand `__data__` in custom commands); returns
/// its requests per second.
fn redis_benchmark_xadd(url: &str, key: &str, payload_bytes: usize, requests: u64) -> anyhow::Result<f64> {
    let info = url.into_connection_info().context("parsing the Redis URL")?;
    let (host, port) = match info.addr() {
        redis::ConnectionAddr::Tcp(host, port) => (host.clone(), *port),
        other => anyhow::bail!("redis-benchmark comparison needs a plain TCP address, not {other}"),
    };
    let mut cmd = std::process::Command::new("redis-benchmark");
    cmd.arg("-h").arg(&host).arg("-p").arg(port.to_string());
    let settings = info.redis_settings();
    if let Some(user) = settings.username() {
        cmd.arg("--user").arg(user);
    }
    if let Some(password) = settings.password() {
        cmd.arg("-a").arg(password);
    }
    if settings.db() != 0 {
        cmd.arg("--dbnum").arg(settings.db().to_string());
    }
    cmd.args(["-c", "50", "-P", "64", "-n"]).arg(requests.to_string()).args(["-q", "--csv", "XADD"]);
    cmd.arg(key).arg("*").arg("data").arg("x".repeat(payload_bytes.max(1)));
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "redis-benchmark is not installed: it comes with Redis (Debian: `apt-get install redis-tools`)"
        ),
        Err(e) => return Err(e).context("running redis-benchmark"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "redis-benchmark failed ({}): {}{}",
        out.status,
        stdout.trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    parse_redis_benchmark_csv(&stdout)
        .with_context(|| format!("no XADD rate in the output of redis-benchmark: {}", stdout.trim()))
}

/// The `rps` of the XADD line of `redis-benchmark --csv` output.
fn parse_redis_benchmark_csv(out: &str) -> Option<f64> {
    out.lines().filter(|l| l.starts_with("\"XADD")).find_map(|l| {
        let mut fields = l.split("\",\"");
        fields.next()?;
        fields.next()?.trim_matches('"').parse::<f64>().ok()
    })
}

// ---------------------------------------------------------------------------------------------
// The run.

/// Results of one run.
struct Report {
    count: u64,
    expected: u64,
    handled: u64,
    per_consumer: Vec<(u64, Percentiles)>,
    produce_secs: f64,
    end_to_end_secs: f64,
    latency: Percentiles,
    peak_rss: Option<u64>,
    /// Backlog mode: resident set size once everything was produced, before consumers start.
    backlog_rss: Option<u64>,
    xadd_per_sec: Option<f64>,
}

impl Report {
    fn produce_per_sec(&self) -> f64 {
        self.count as f64 / self.produce_secs.max(1e-9)
    }
    fn end_to_end_per_sec(&self) -> f64 {
        self.count as f64 / self.end_to_end_secs.max(1e-9)
    }
    fn ratio(&self) -> Option<f64> {
        self.xadd_per_sec.map(|x| self.end_to_end_per_sec() / x.max(1e-9))
    }
}

/// Runs `bench`.
pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.count > 0, "--count must be at least 1");
    anyhow::ensure!(args.producers > 0 && args.consumers > 0, "--producers and --consumers must be at least 1");
    anyhow::ensure!(args.batch > 0, "--batch must be at least 1");
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    if let Some(rate) = args.rate {
        anyhow::ensure!(rate.is_finite() && rate > 0.0, "--rate must be a positive number of events per second");
    }
    // Never let the safety cap drop part of the benchmark's own backlog.
    let max_stream_len =
        usize::try_from(args.count.saturating_add(1)).unwrap_or(usize::MAX).max(event_core::DEFAULT_MAX_STREAM_LEN);
    let backend = match &args.redis {
        None => Backend::Memory(InMemoryQueue::with_max_stream_len(max_stream_len)),
        Some(url) => {
            let ms =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
            Backend::Redis { url: url.clone(), prefix: format!("bench-{ms}:"), max_stream_len }
        }
    };
    let result = run_on(&args, &backend).await;
    if let Backend::Redis { url, prefix, .. } = &backend {
        if args.keep_keys {
            eprintln!("keys kept under the prefix `{prefix}`");
        } else if let Err(e) = backend::delete_prefix(url, prefix).await {
            eprintln!("warning: could not delete the keys under `{prefix}`: {e:#}");
        }
    }
    let (report, header) = result?;
    super::write_stdout(&render(&args, &header, &report))?;
    anyhow::ensure!(
        report.handled == report.expected,
        "handled {} deliveries, expected {}",
        report.handled,
        report.expected
    );
    Ok(())
}

/// Produces, handles and measures; returns the report and a description of the backend.
async fn run_on(args: &BenchArgs, backend: &Backend) -> anyhow::Result<(Report, String)> {
    let deliveries_each = match args.mode {
        Mode::Anycast => 1,
        Mode::Broadcast => args.consumers as u64,
    };
    let expected = args.count.saturating_mul(deliveries_each);
    let progress =
        Arc::new(Progress { handled: AtomicU64::new(0), expected, finished: OnceLock::new(), done: Notify::new() });
    let recorders: Vec<Arc<Recorder>> = (0..args.consumers)
        .map(|_| Arc::new(Recorder { latency: Histogram::new(), progress: progress.clone() }))
        .collect();
    let mut dispatchers = Vec::with_capacity(args.consumers);
    for (i, r) in recorders.iter().enumerate() {
        dispatchers.push(build_consumer(args, backend, i, r.clone()).await?);
    }
    let header = match backend {
        Backend::Memory(_) => "in-memory queue".to_owned(),
        Backend::Redis { url, prefix, .. } => {
            let q = backend::redis(url, prefix).await?;
            let addr = url.as_str().into_connection_info().map(|i| i.addr().to_string()).unwrap_or_default();
            format!("Redis {} at {addr}", q.server_version())
        }
    };

    let producers = connect_producers(args, backend).await?;
    let (first_produce, last_produce, consumers_started, mut running);
    let mut backlog_rss = None;
    if args.backlog {
        create_groups(args, &*backend.queue().await?).await?;
        first_produce = Instant::now();
        last_produce = join_producers(spawn_producers(args, producers)).await?;
        backlog_rss = rss_bytes();
        consumers_started = Instant::now();
        running = start_all(dispatchers).await?;
    } else {
        running = start_all(dispatchers).await?;
        first_produce = Instant::now();
        consumers_started = first_produce;
        last_produce = join_producers(spawn_producers(args, producers)).await?;
    }
    let waited = wait_handled(&progress, args.stall_timeout).await;
    for r in running.drain(..) {
        r.shutdown(Duration::from_secs(10)).await;
    }
    let finished = waited?;

    let mut merged = vec![0u64; BUCKETS];
    let mut per_consumer = Vec::with_capacity(recorders.len());
    for r in &recorders {
        let counts = r.latency.snapshot();
        for (m, c) in merged.iter_mut().zip(&counts) {
            *m += c;
        }
        per_consumer.push((counts.iter().sum(), percentiles(&counts)));
    }
    let xadd_per_sec = match (&backend, args.compare_redis_benchmark) {
        (Backend::Redis { url, prefix, .. }, true) => {
            let (url, key) = (url.clone(), format!("{prefix}redis-benchmark:xadd"));
            let (bytes, requests) = (args.payload_bytes, args.xadd_requests.unwrap_or(args.count.max(200_000)));
            let rate = tokio::task::spawn_blocking(move || redis_benchmark_xadd(&url, &key, bytes, requests))
                .await
                .context("redis-benchmark task")??;
            Some(rate)
        }
        _ => None,
    };
    let report = Report {
        count: args.count,
        expected,
        handled: per_consumer.iter().map(|(n, _)| n).sum(),
        per_consumer,
        produce_secs: last_produce.duration_since(first_produce).as_secs_f64(),
        end_to_end_secs: finished.duration_since(consumers_started).as_secs_f64(),
        latency: percentiles(&merged),
        peak_rss: peak_rss_bytes(),
        backlog_rss,
        xadd_per_sec,
    };
    Ok((report, header))
}

async fn start_all(dispatchers: Vec<EventDispatcher>) -> anyhow::Result<Vec<RunningDispatcher>> {
    let mut running = Vec::with_capacity(dispatchers.len());
    for d in dispatchers {
        running.push(d.start().await?);
    }
    Ok(running)
}

// ---------------------------------------------------------------------------------------------
// Output.

fn ms(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1000.0)
}

fn per_sec(rate: f64) -> String {
    format!("{rate:.0}/s")
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The readable report, and with `--json` the JSON object on the last line.
fn render(args: &BenchArgs, header: &str, r: &Report) -> String {
    let load = match args.rate {
        Some(rate) => format!("paced at {rate}/s with `produce`"),
        None => format!("flat out with `produce_batch` of {}", args.batch),
    };
    let plural = |n: usize, what: &str| if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "bench: {} on the {header}{}\n  {} events of {} payload bytes; {} {load}; {} (concurrency {}, max batch {})\n",
        args.mode.as_str(),
        if args.backlog { ", a backlog drained" } else { "" },
        r.count,
        args.payload_bytes,
        plural(args.producers, "producer"),
        plural(args.consumers, if args.mode == Mode::Broadcast { "subscriber" } else { "consumer" }),
        args.concurrency,
        args.max_batch,
    );
    let mut rows: Vec<Vec<String>> = vec![
        vec!["events produced".into(), r.count.to_string()],
        vec!["deliveries handled".into(), format!("{} of {}", r.handled, r.expected)],
        vec!["produce rate".into(), per_sec(r.produce_per_sec())],
        vec![
            if args.backlog { "drain rate (end to end)" } else { "end-to-end rate" }.into(),
            per_sec(r.end_to_end_per_sec()),
        ],
        vec!["produce->handler p50".into(), ms(r.latency.p50)],
        vec!["produce->handler p90".into(), ms(r.latency.p90)],
        vec!["produce->handler p99".into(), ms(r.latency.p99)],
        vec!["produce->handler max".into(), ms(r.latency.max)],
        vec!["peak RSS".into(), r.peak_rss.map_or_else(|| "n/a".into(), mib)],
    ];
    if let Some(b) = r.backlog_rss {
        rows.push(vec!["RSS with the backlog queued".into(), mib(b)]);
    }
    if args.mode == Mode::Broadcast {
        rows.insert(4, vec!["deliveries rate".into(), per_sec(r.handled as f64 / r.end_to_end_secs.max(1e-9))]);
    }
    if let (Some(x), Some(ratio)) = (r.xadd_per_sec, r.ratio()) {
        rows.push(vec!["redis-benchmark XADD (-c 50 -P 64)".into(), per_sec(x)]);
        rows.push(vec!["ratio end-to-end / XADD".into(), format!("{ratio:.3}")]);
    }
    out.push_str(&super::render_table(&["metric", "value"], &rows));
    if r.per_consumer.len() > 1 || args.mode == Mode::Broadcast {
        let who = if args.mode == Mode::Broadcast { "subscriber" } else { "consumer" };
        let rows: Vec<Vec<String>> = r
            .per_consumer
            .iter()
            .enumerate()
            .map(|(i, (n, p))| vec![i.to_string(), n.to_string(), ms(p.p50), ms(p.p99), ms(p.max)])
            .collect();
        out.push('\n');
        out.push_str(&super::render_table(&[who, "handled", "p50", "p99", "max"], &rows));
    }
    if args.json {
        let mut json = serde_json::json!({
            "count": r.count,
            "handled": r.handled,
            "produce_per_sec": r.produce_per_sec().round(),
            "end_to_end_per_sec": r.end_to_end_per_sec().round(),
            "p50_ms": round3(r.latency.p50 as f64 / 1000.0),
            "p90_ms": round3(r.latency.p90 as f64 / 1000.0),
            "p99_ms": round3(r.latency.p99 as f64 / 1000.0),
            "max_ms": round3(r.latency.max as f64 / 1000.0),
            "peak_rss_bytes": r.peak_rss,
            "backlog_rss_bytes": r.backlog_rss,
            "mode": args.mode.as_str(),
            "backend": if args.redis.is_some() { "redis" } else { "memory" },
            "backlog": args.backlog,
            "payload_bytes": args.payload_bytes,
            "producers": args.producers,
            "consumers": args.consumers,
            "rate": args.rate,
            "expected": r.expected,
            "handled_per_consumer": r.per_consumer.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        });
        if let (Some(x), Some(ratio)) = (r.xadd_per_sec, r.ratio()) {
            json["redis_benchmark_per_sec"] = serde_json::json!(x.round());
            json["ratio"] = serde_json::json!(round3(ratio));
        }
        let _ = writeln!(out, "{json}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_exact_below_65ms_and_within_a_permille_above() {
        for us in [0, 1, 9, 10, 499, 500, 12_345, LINEAR - 1] {
            assert_eq!(Histogram::value(Histogram::index(us)), us);
        }
        for us in [LINEAR, 100_000, 1_234_567, 60_000_000, (1 << MAX_EXP) - 1] {
            let v = Histogram::value(Histogram::index(us));
            assert!(v.abs_diff(us) * 1000 <= us, "{us} -> {v}");
        }
        assert_eq!(Histogram::index((1 << MAX_EXP) - 1), BUCKETS - 1);
        assert_eq!(Histogram::index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let h = Histogram::new();
        for us in 1..=1000 {
            h.record(us);
        }
        let p = percentiles(&h.snapshot());
        assert_eq!((p.p50, p.p90, p.p99, p.max), (500, 900, 990, 1000));
        assert_eq!(percentiles(&Histogram::new().snapshot()).max, 0);
    }

    #[test]
    fn producers_share_the_sequence() {
        let parts: Vec<Range<u64>> = (0..3).map(|p| share(10, 3, p)).collect();
        assert_eq!(parts, vec![0..3, 3..6, 6..10]);
    }

    #[test]
    fn reads_the_rate_of_redis_benchmark_csv() {
        let out = "\"test\",\"rps\",\"avg_latency_ms\"\n\"XADD k * data xx\",\"881057.25\",\"3.517\"\n";
        assert_eq!(parse_redis_benchmark_csv(out), Some(881_057.25));
        assert_eq!(parse_redis_benchmark_csv("garbage"), None);
    }
}
