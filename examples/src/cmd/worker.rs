//! `worker`: a long-lived service instance running every handler of the catalog on Redis.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use event_core::prelude::*;
use examples::components::agent::AgentHost;
use examples::components::manager::{ManagerDb, SchedulerCache};
use examples::components::storage_proxy::{SessionCache, StorageBackend};
use examples::components::Node;
use examples::event_types::common::ResourceSlots;
use examples::loadtest::{now_us, LoadTestEvent, LoadTestNotice};
use examples::timeline::Timeline;

use super::backend;

/// Options of `worker`.
#[derive(Debug, Clone, Args)]
pub(crate) struct WorkerArgs {
    /// Redis URL, e.g. `redis://127.0.0.1:6379/`.
    #[arg(long)]
    redis: String,
    /// Consumer group of the anycast handlers (a handler's own `group` overrides it).
    #[arg(long, default_value = "workers")]
    group: String,
    /// Consumer name of this instance (default: host-pid-random). A stable name lets a
    /// restarted worker pick up its own pending entries first.
    #[arg(long)]
    consumer: Option<String>,
    /// Key prefix in Redis.
    #[arg(long, default_value = "")]
    prefix: String,
    /// How long an entry may sit unacked with a dead consumer before this one reclaims it.
    #[arg(long, default_value = "60s", value_parser = super::parse_duration)]
    claim_idle: Duration,
    /// Print `handled <seq>` for every load-test event handled (for tests counting deliveries).
    #[arg(long)]
    record: bool,
    /// Print the catalog handlers' timeline.
    #[arg(long)]
    verbose: bool,
    /// Serve metrics in Prometheus text format on this address (`GET /metrics`).
    #[arg(long)]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Make the load-test handler fail every attempt for events whose sequence number is a
    /// multiple of N: they are retried, then dead-lettered (try `dlq list` / `dlq replay`).
    #[arg(long, value_name = "N")]
    fail_every: Option<u64>,
    /// Simulated work per load-test event (e.g. `2ms`), so that entries are in flight.
    #[arg(long, value_parser = super::parse_duration)]
    work: Option<Duration>,
}

/// Runs `worker` until Ctrl-C or SIGTERM.
pub(crate) async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    if let Some(addr) = args.metrics_addr {
        let bound = super::metrics::serve(addr).await?;
        println!("metrics: http://{bound}/metrics");
    }
    let queue = backend::redis(&args.redis, &args.prefix).await?;
    let timeline = Timeline::new(args.verbose);
    let name = args.consumer.clone().unwrap_or_else(|| format!("worker-{}", std::process::id()));
    let node = Node::new(name.clone(), EventProducer::new(queue.clone(), name.clone()), timeline);
    let host = AgentHost::new(&name, "default", ResourceSlots::new(64, 512, 4), &[]);
    let mut builder = EventDispatcher::builder(queue.clone())
        .group(args.group.clone())
        .claim_idle(args.claim_idle)
        .state(node)
        .state(ManagerDb::new())
        .state(SchedulerCache::new())
        .state(host)
        .state(StorageBackend::new())
        .state(SessionCache::new())
        .discover();
    if let Some(c) = &args.consumer {
        builder = builder.consumer(c.clone());
    }
    let dispatcher = builder.build()?;
    let handled = Arc::new(AtomicU64::new(0));
    let record = args.record;
    let h = handled.clone();
    let work = args.work;
    let fail_every = args.fail_every.filter(|n| *n > 0);
    dispatcher.consume::<LoadTestEvent, _, _>(move |ev, meta| {
        let h = h.clone();
        async move {
            if let Some(work) = work {
                tokio::time::sleep(work).await;
            }
            if fail_every.is_some_and(|n| ev.seq % n == 0) {
                return Err(
                    format!("load-test event {} rejected (--fail-every), attempt {}", ev.seq, meta.attempt).into()
                );
            }
            h.fetch_add(1, Ordering::Relaxed);
            if record {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "handled {}", ev.seq);
                let _ = out.flush();
            }
            Ok(())
        }
    });
    dispatcher.subscribe::<LoadTestNotice, _, _>(|_ev, _meta| std::future::ready(Ok(())));
    let count = dispatcher.handler_count();
    let running = dispatcher.start().await?;
    println!(
        "ready: worker {} in group {} with {count} handlers on {} (Ctrl-C to stop)",
        running.consumer(),
        args.group,
        queue.server_version()
    );
    let started = now_us();
    backend::shutdown_signal().await;
    eprintln!("stopping: finishing in-flight handlers (up to 10 s)");
    running.shutdown(Duration::from_secs(10)).await;
    let secs = (now_us().saturating_sub(started)) as f64 / 1e6;
    eprintln!("stopped: {} load-test events handled in {secs:.1} s", handled.load(Ordering::Relaxed));
    Ok(())
}
