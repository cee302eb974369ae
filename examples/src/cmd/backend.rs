//! Choosing the queue: in-memory by default, Redis with `--redis URL`.

use std::sync::Arc;

use anyhow::Context as _;
use event_core::{InMemoryQueue, MessageQueue};
use event_redis::RedisQueue;

/// Connects to Redis at `url` (key prefix `prefix`, may be empty).
pub(crate) async fn redis(url: &str, prefix: &str) -> anyhow::Result<RedisQueue> {
    RedisQueue::builder(url).key_prefix(prefix).connect().await.with_context(|| "connecting to Redis".to_owned())
}

/// The queue to run on: Redis when a URL is given, else a fresh in-memory queue.
pub(crate) async fn queue(redis_url: Option<&str>, prefix: &str) -> anyhow::Result<Arc<dyn MessageQueue>> {
    Ok(match redis_url {
        Some(url) => Arc::new(redis(url, prefix).await?),
        None => Arc::new(InMemoryQueue::new()),
    })
}

/// Waits for Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Deletes every key starting with `prefix` (the demo cleans up after itself); returns how many.
pub(crate) async fn delete_prefix(url: &str, prefix: &str) -> anyhow::Result<usize> {
    anyhow::ensure!(!prefix.is_empty(), "refusing to delete every key: empty prefix");
    let mut conn = redis(url, "").await?.connection();
    let mut cursor: u64 = 0;
    let mut removed = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = ::redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(500)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            removed += keys.len();
            ::redis::cmd("DEL").arg(&keys).query_async::<()>(&mut conn).await?;
        }
        if next == 0 {
            return Ok(removed);
        }
        cursor = next;
    }
}
