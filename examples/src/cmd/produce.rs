//! `produce`: publishes load-test events to Redis.

use std::io::IsTerminal as _;
use std::time::Instant;

use clap::Args;
use event_core::prelude::*;
use examples::loadtest::{now_us, LoadTestEvent, LoadTestNotice};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use super::backend;

/// Options of `produce`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ProduceArgs {
    /// Redis URL, e.g. `redis://127.0.0.1:6379/`.
    #[arg(long)]
    redis: String,
    /// How many events.
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// Events per `produce_batch` call (one round trip each).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Filler bytes per event.
    #[arg(long, default_value_t = 0)]
    payload_bytes: usize,
    /// Publish broadcast notices instead of anycast work.
    #[arg(long)]
    broadcast: bool,
    /// Key prefix in Redis.
    #[arg(long, default_value = "")]
    prefix: String,
}

/// Runs `produce`.
pub(crate) async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let queue = backend::redis(&args.redis, &args.prefix).await?;
    let producer = EventProducer::new(queue, format!("producer-{}", std::process::id()));
    let started = Instant::now();
    let payload = vec![b'x'; args.payload_bytes];
    let batch = args.batch.max(1) as u64;
    let bar = progress_bar(args.count, "producing");
    let mut seq = 0u64;
    while seq < args.count {
        let n = batch.min(args.count - seq);
        if args.broadcast {
            let events: Vec<LoadTestNotice> = (seq..seq + n)
                .map(|s| LoadTestNotice { seq: s, sent_at_us: now_us(), payload: payload.clone() })
                .collect();
            producer.produce_batch(&events).await?;
        } else {
            let events: Vec<LoadTestEvent> = (seq..seq + n)
                .map(|s| LoadTestEvent { seq: s, sent_at_us: now_us(), payload: payload.clone() })
                .collect();
            producer.produce_batch(&events).await?;
        }
        seq += n;
        bar.set_position(seq);
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!("produced {} events in {secs:.2} s ({:.0}/s)", args.count, args.count as f64 / secs.max(1e-9));
    Ok(())
}

/// A progress bar of `total` steps on stderr when stderr is a terminal; hidden (drawing nothing)
/// otherwise, so pipes, logs and tests stay clean.
pub(crate) fn progress_bar(total: u64, what: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({rate}, {eta} left)").map_or_else(
        |_| ProgressStyle::default_bar(),
        |s| {
            s.progress_chars("=> ").with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0}/s", state.per_sec());
            })
        },
    );
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()).with_style(style);
    bar.set_message(what);
    bar
}
