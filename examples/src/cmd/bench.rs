//! `bench`: produce and handle load-test events, report rates and latency.

use clap::Args;

/// Options of `bench`.
#[derive(Debug, Clone, Args)]
pub(crate) struct BenchArgs {}

/// Runs `bench`.
pub(crate) async fn run(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("bench: not implemented yet")
}
