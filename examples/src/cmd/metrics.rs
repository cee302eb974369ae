//! `--metrics-addr`: serves the `metrics` facade's values in Prometheus text format.

use std::net::SocketAddr;

/// Installs the Prometheus recorder and serves `GET /metrics` on `addr` in the background.
/// Returns the address actually bound (port 0 picks a free one).
pub(crate) async fn serve(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    anyhow::bail!("metrics endpoint on {addr}: not implemented yet")
}
