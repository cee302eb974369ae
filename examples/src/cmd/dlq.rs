//! `dlq list | replay | purge`: dead-letter tooling.

use clap::Args;

/// Options of `dlq`.
#[derive(Debug, Clone, Args)]
pub(crate) struct DlqArgs {}

/// Runs `dlq`.
pub(crate) async fn run(_args: DlqArgs) -> anyhow::Result<()> {
    anyhow::bail!("dlq: not implemented yet")
}
