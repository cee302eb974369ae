//! `event-examples`: the examples binary of the event framework.
//!
//! - `event-examples` / `event-examples demo`: several manager, agent and storage-proxy
//!   instances exchange kernel, session and background-task events over an in-memory queue and
//!   print a timeline and a summary.
//! - `event-examples catalog [--json]`: every event and handler linked into the binary.
//! - `event-examples worker --redis URL --group G`: a long-lived worker of the catalog's handlers.
//! - `event-examples produce --redis URL --count N`: publishes load-test events.

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: the runtime allocates per event (envelopes,
/// strings, futures) on several threads, where glibc's malloc contends on its arena locks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cmd;

/// Examples of the event framework: a small cluster manager talking through events.
#[derive(Debug, Parser)]
#[command(name = "event-examples", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a subcommand, `demo` runs with these options.
    #[command(flatten)]
    demo: cmd::demo::DemoArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run managers, agents and storage proxies on an in-memory queue (the default).
    Demo(cmd::demo::DemoArgs),
    /// List every event and handler of the catalog.
    Catalog(cmd::catalog::CatalogArgs),
    /// Run a long-lived worker of every catalog handler on Redis (until Ctrl-C / SIGTERM).
    Worker(cmd::worker::WorkerArgs),
    /// Publish load-test events to Redis.
    Produce(cmd::produce::ProduceArgs),
    /// List, replay or purge dead letters.
    Dlq(cmd::dlq::DlqArgs),
    /// Measure produce and end-to-end rates and latency (in-memory, or Redis with --redis).
    Bench(cmd::bench::BenchArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or_else(|| Command::Demo(cmd::demo::DemoArgs::default())) {
        Command::Demo(args) => cmd::demo::run(args).await,
        Command::Catalog(args) => cmd::catalog::run(&args),
        Command::Worker(args) => cmd::worker::run(args).await,
        Command::Produce(args) => cmd::produce::run(args).await,
        Command::Dlq(args) => cmd::dlq::run(args).await,
        Command::Bench(args) => cmd::bench::run(args).await,
    }
}
