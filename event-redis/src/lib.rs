//! # event-redis
//!
//! [`RedisQueue`]: the Redis Streams backend of event-core. Anycast events go through consumer
//! groups (one per service), broadcast events are read with a cursor per subscriber, failed
//! attempts wait in a sorted set, and dead letters go to a stream per group.
//!
//! ```no_run
//! use event_core::prelude::*;
//! use event_redis::RedisQueue;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let queue = RedisQueue::connect("redis://127.0.0.1:6379/").await?;
//! let producer = EventProducer::new(queue.clone(), "manager-1");
//! let dispatcher = EventDispatcher::builder(queue).group("manager").discover().build()?;
//! let running = dispatcher.start().await?;
//! # let _ = (producer, running); Ok(()) }
//! ```
//!
//! ## Keys
//!
//! For a stream `S` (by default `events:{<domain>}:anycast` or `events:{<domain>}:broadcast`,
//! after an optional key prefix) and a consumer group `G`:
//! `S` is the stream, `S:retry:G` the delayed retry set (a sorted set scored by due time, unix
//! ms), `S:retry:G:due` the stream of retries that came due (read by `G` only) and `S:dlq:G` the
//! dead-letter stream. All share `S`'s `{hash tag}`, so the Lua scripts that move entries
//! between them work on Redis Cluster too.
#![warn(missing_docs)]

mod error;
mod reply;
mod scripts;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use event_core::envelope::{now_ms, Envelope, FieldValue};
use event_core::queue::{
    dead_letter_key, due_stream_key, retry_set_key, Append, BoxFuture, DeadLetter, EntryBody, EntryId, GroupStart,
    MessageQueue, NewDeadLetter, ReadGroup, SettleCheck, StreamEntry,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, RedisResult, Value};

pub use error::{Error, Result};

/// Default hard cap on the length of a stream (approximate, `MAXLEN ~`); what it drops is
/// counted in `events_trimmed_total{stream}`.
pub const DEFAULT_MAX_STREAM_LEN: usize = 1_000_000;

/// Default cap on the length of a dead-letter stream.
pub const DEFAULT_MAX_DEAD_LETTERS: usize = 100_000;

/// A [`MessageQueue`] on Redis Streams (Redis >= 6.2). Cheap to clone; clones share the
/// connections.
///
/// Commands share one multiplexed connection that reconnects with backoff; each blocking
/// read takes a dedicated connection from a small pool, so a reader waiting for entries never
/// delays acks or appends.
#[derive(Clone)]
pub struct RedisQueue {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    conn: ConnectionManager,
    blocking: Mutex<Vec<ConnectionManager>>,
    url: String,
    prefix: String,
    max_stream_len: usize,
    max_dead_letters: usize,
    retry_budget: Duration,
    version: String,
    claim_cursors: Mutex<HashMap<(String, String), String>>,
    last_cap_trim: Mutex<HashMap<String, Instant>>,
    nonce: AtomicU64,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("url", &self.inner.url)
            .field("prefix", &self.inner.prefix)
            .field("version", &self.inner.version)
            .finish_non_exhaustive()
    }
}

/// Options for [`RedisQueue`]; made by [`RedisQueue::builder`].
#[derive(Debug, Clone)]
pub struct RedisQueueBuilder {
    url: String,
    prefix: String,
    max_stream_len: usize,
    max_dead_letters: usize,
    connect_timeout: Duration,
    retry_budget: Duration,
    #[cfg(feature = "tls")]
    root_cert_pem: Option<Vec<u8>>,
}

impl RedisQueueBuilder {
    /// Trusts this CA certificate (PEM) for `rediss://` instead of the Mozilla roots: for
    /// servers with a private or self-signed certificate.
    #[cfg(feature = "tls")]
    pub fn root_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_cert_pem = Some(pem.into());
        self
    }

    /// Prepends `prefix` to every key (e.g. `app1:` gives `app1:events:{kernel}:anycast`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Hard cap on stream length (default [`DEFAULT_MAX_STREAM_LEN`]).
    pub fn max_stream_len(mut self, n: usize) -> Self {
        self.max_stream_len = n.max(1);
        self
    }

    /// Cap on each dead-letter stream (default [`DEFAULT_MAX_DEAD_LETTERS`]).
    pub fn max_dead_letters(mut self, n: usize) -> Self {
        self.max_dead_letters = n.max(1);
        self
    }

    /// How long [`connect`](Self::connect) may take (default 5 s).
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// How long a command keeps retrying through connection errors (a restarting server)
    /// before it returns [`Error::Unavailable`] (default 10 s).
    pub fn retry_budget(mut self, t: Duration) -> Self {
        self.retry_budget = t;
        self
    }

    /// Connects, checks the server version, and returns the queue.
    pub async fn connect(self) -> Result<RedisQueue> {
        let shown = error::redact(&self.url);
        #[cfg(feature = "tls")]
        let client = match &self.root_cert_pem {
            Some(pem) => redis::Client::build_with_tls(
                self.url.as_str(),
                redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) },
            ),
            None => redis::Client::open(self.url.as_str()),
        };
        #[cfg(not(feature = "tls"))]
        let client = redis::Client::open(self.url.as_str());
        let client = client.map_err(|e| Error::InvalidUrl { url: shown.clone(), reason: e.to_string() })?;
        let config = command_config(self.connect_timeout);
        let connecting = async {
            let mut conn = ConnectionManager::new_with_config(client.clone(), config).await?;
            let info: String = redis::cmd("INFO").arg("server").query_async(&mut conn).await?;
            Ok::<_, RedisError>((conn, info))
        };
        let (conn, info) = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                return Err(Error::Connect { url: shown, timeout: self.connect_timeout, reason: e.to_string() })
            }
            Err(_) => {
                return Err(Error::Connect {
                    url: shown,
                    timeout: self.connect_timeout,
                    reason: "timed out".to_owned(),
                })
            }
        };
        let version = info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default();
        let parts: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
        if parts.len() >= 2 && (parts[0], parts[1]) < (6, 2) {
            return Err(Error::UnsupportedVersion { found: version });
        }
        Ok(RedisQueue {
            inner: Arc::new(Inner {
                client,
                conn,
                blocking: Mutex::new(Vec::new()),
                url: shown,
                prefix: self.prefix,
                max_stream_len: self.max_stream_len,
                max_dead_letters: self.max_dead_letters,
                retry_budget: self.retry_budget,
                version,
                claim_cursors: Mutex::new(HashMap::new()),
                last_cap_trim: Mutex::new(HashMap::new()),
                nonce: AtomicU64::new(0),
            }),
        })
    }
}

fn command_config(connect_timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(connect_timeout.min(Duration::from_secs(2))))
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Errors worth retrying: the connection, not the command, failed.
fn is_transient(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(e.code(), Some("LOADING" | "TRYAGAIN" | "MASTERDOWN" | "BUSY"))
}

fn core_err(e: Error) -> event_core::Error {
    event_core::Error::backend(e)
}

/// Serializes fields as `<nonce>|<len>:<bytes><len>:<bytes>...` (parsed by the promote script).
fn retry_member(nonce: &str, fields: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + fields.iter().map(|(k, v)| k.len() + v.len() + 12).sum::<usize>());
    out.extend_from_slice(nonce.as_bytes());
    out.push(b'|');
    for (k, v) in fields {
        for part in [k.as_bytes(), v.as_slice()] {
            out.extend_from_slice(part.len().to_string().as_bytes());
            out.push(b':');
            out.extend_from_slice(part);
        }
    }
    out
}

impl RedisQueue {
    /// Connects to `url` (`redis://[user:password@]host:port/db`, or `rediss://` with the `tls`
    /// feature) with default options.
    pub async fn connect(url: &str) -> Result<RedisQueue> {
        Self::builder(url).connect().await
    }

    /// Options before connecting.
    pub fn builder(url: impl Into<String>) -> RedisQueueBuilder {
        RedisQueueBuilder {
            url: url.into(),
            prefix: String::new(),
            max_stream_len: DEFAULT_MAX_STREAM_LEN,
            max_dead_letters: DEFAULT_MAX_DEAD_LETTERS,
            connect_timeout: Duration::from_secs(5),
            retry_budget: Duration::from_secs(10),
            #[cfg(feature = "tls")]
            root_cert_pem: None,
        }
    }

    /// The Redis key of a stream name (the key prefix prepended).
    pub fn key(&self, stream: &str) -> String {
        format!("{}{stream}", self.inner.prefix)
    }

    /// Version the server reported at connect.
    pub fn server_version(&self) -> &str {
        &self.inner.version
    }

    /// A connection for commands (multiplexed, reconnecting).
    pub fn connection(&self) -> ConnectionManager {
        self.inner.conn.clone()
    }

    /// Runs `f` on the command connection, retrying connection errors within the budget.
    async fn run<T, F, Fut>(&self, operation: &'static str, f: F) -> Result<T>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = RedisResult<T>>,
    {
        let started = Instant::now();
        let mut delay = Duration::from_millis(50);
        let mut attempts = 0;
        loop {
            attempts += 1;
            match f(self.inner.conn.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) if is_transient(&e) => {
                    if started.elapsed() + delay > self.inner.retry_budget {
                        return Err(Error::Unavailable { operation, attempts, elapsed: started.elapsed(), source: e });
                    }
                    tracing::debug!(error = %e, operation, attempts, "Redis command failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(Error::Redis(e)),
            }
        }
    }

    /// Runs a blocking command on a dedicated connection from the pool.
    async fn run_blocking(&self, cmd: redis::Cmd, block: Duration) -> Result<Value> {
        let conn = lock(&self.inner.blocking).pop();
        let mut conn = match conn {
            Some(c) => c,
            None => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(None)
                    .set_number_of_retries(2)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500));
                ConnectionManager::new_lazy_with_config(self.inner.client.clone(), config)?
            }
        };
        let limit = block + Duration::from_secs(5);
        match tokio::time::timeout(limit, cmd.query_async::<Value>(&mut conn)).await {
            Ok(Ok(v)) => {
                lock(&self.inner.blocking).push(conn);
                Ok(v)
            }
            Ok(Err(e)) => {
                if !is_transient(&e) {
                    lock(&self.inner.blocking).push(conn);
                }
                Err(Error::Redis(e))
            }
            Err(_) => Err(Error::Protocol { operation: "blocking read", detail: format!("no reply within {limit:?}") }),
        }
    }

    fn logical_names<'s>(&self, streams: impl Iterator<Item = &'s Arc<str>>) -> HashMap<Vec<u8>, Arc<str>> {
        streams.map(|s| (self.key(s).into_bytes(), s.clone())).collect()
    }

    async fn ensure_group_inner(&self, stream: &str, group: &str, start: GroupStart) -> Result<()> {
        let key = self.key(stream);
        let from = if start == GroupStart::End { "$" } else { "0" };
        let res = self
            .run("XGROUP CREATE", |mut c| {
                let key = key.clone();
                async move {
                    redis::cmd("XGROUP")
                        .arg("CREATE")
                        .arg(&key)
                        .arg(group)
                        .arg(from)
                        .arg("MKSTREAM")
                        .query_async::<()>(&mut c)
                        .await
                }
            })
            .await;
        match res {
            Err(Error::Redis(e)) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    fn entry_fields(entry: &StreamEntry) -> Vec<(Vec<u8>, Vec<u8>)> {
        match &entry.body {
            EntryBody::Fields(f) => f.clone(),
            EntryBody::Envelope(env) => env.to_fields().into_iter().map(|(k, v)| (k.as_bytes().to_vec(), v)).collect(),
        }
    }

    async fn cap_trim_if_due(&self, keys: &[String]) {
        let due: Vec<String> = {
            let mut last = lock(&self.inner.last_cap_trim);
            let now = Instant::now();
            keys.iter()
                .filter(|k| {
                    let fresh = last.get(*k).is_some_and(|t| now.duration_since(*t) < Duration::from_secs(1));
                    if !fresh {
                        last.insert((*k).clone(), now);
                    }
                    !fresh
                })
                .cloned()
                .collect()
        };
        for key in due {
            let cap = self.inner.max_stream_len;
            let dropped: Result<u64> = self
                .run("XTRIM", |mut c| {
                    let key = key.clone();
                    async move { redis::cmd("XTRIM").arg(&key).arg("MAXLEN").arg("~").arg(cap).query_async(&mut c).await }
                })
                .await;
            if let Ok(n) = dropped {
                if n > 0 {
                    metrics::counter!("events_trimmed_total", "stream" => key.clone()).increment(n);
                    tracing::warn!(stream = %key, dropped = n, cap, "stream over its hard cap: oldest entries dropped");
                }
            }
        }
    }
}

impl MessageQueue for RedisQueue {
    fn append<'a>(&'a self, batch: &'a [Append]) -> BoxFuture<'a, event_core::Result<Vec<EntryId>>> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(Vec::new());
            }
            let mut pipe = redis::pipe();
            let mut keys: Vec<String> = Vec::new();
            for a in batch {
                let key: std::borrow::Cow<'_, str> = if self.inner.prefix.is_empty() {
                    std::borrow::Cow::Borrowed(&a.stream)
                } else {
                    std::borrow::Cow::Owned(self.key(&a.stream))
                };
                let cmd = pipe.cmd("XADD").arg(&*key).arg("*");
                a.envelope.for_each_field(|k, v| {
                    cmd.arg(k);
                    match v {
                        FieldValue::Text(t) => cmd.arg(t),
                        FieldValue::Number(n) => cmd.arg(n),
                        FieldValue::Bytes(b) => cmd.arg(b),
                        other => cmd.arg(other.to_bytes()),
                    };
                });
                if !keys.iter().any(|k| *k == *key) {
                    keys.push(key.into_owned());
                }
            }
            let ids: Vec<String> = self
                .run("XADD", |mut c| {
                    let pipe = pipe.clone();
                    async move { pipe.query_async(&mut c).await }
                })
                .await
                .map_err(core_err)?;
            self.cap_trim_if_due(&keys).await;
            ids.iter()
                .map(|id| {
                    EntryId::parse(id).ok_or_else(|| {
                        core_err(Error::Protocol { operation: "XADD", detail: format!("bad entry id `{id}`") })
                    })
                })
                .collect()
        })
    }

    fn append_raw<'a>(
        &'a self,
        stream: &'a str,
        fields: &'a [(&'a str, &'a [u8])],
    ) -> BoxFuture<'a, event_core::Result<EntryId>> {
        Box::pin(async move {
            let key = self.key(stream);
            let id: String = self
                .run("XADD", |mut c| {
                    let mut cmd = redis::cmd("XADD");
                    cmd.arg(&key).arg("*");
                    for (k, v) in fields {
                        cmd.arg(*k).arg(*v);
                    }
                    async move { cmd.query_async(&mut c).await }
                })
                .await
                .map_err(core_err)?;
            EntryId::parse(&id)
                .ok_or_else(|| core_err(Error::Protocol { operation: "XADD", detail: format!("bad entry id `{id}`") }))
        })
    }

    fn ensure_group<'a>(
        &'a self,
        stream: &'a str,
        group: &'a str,
        start: GroupStart,
    ) -> BoxFuture<'a, event_core::Result<()>> {
        Box::pin(async move { self.ensure_group_inner(stream, group, start).await.map_err(core_err) })
    }

    fn read_group<'a>(&'a self, req: ReadGroup<'a>) -> BoxFuture<'a, event_core::Result<Vec<StreamEntry>>> {
        Box::pin(async move {
            let names = self.logical_names(req.streams.iter());
            if let Some(after) = req.pending_after {
                let mut out = Vec::new();
                for stream in req.streams {
                    let key = self.key(stream);
                    let v: Value = self
                        .run("XREADGROUP (pending)", |mut c| {
                            let key = key.clone();
                            async move {
                                scripts::READ_PENDING
                                    .key(&key)
                                    .arg(req.group)
                                    .arg(req.consumer)
                                    .arg(req.count.max(1))
                                    .arg(after.to_string())
                                    .invoke_async(&mut c)
                                    .await
                            }
                        })
                        .await
                        .map_err(core_err)?;
                    out.extend(reply::claimed(stream, &v).map_err(core_err)?);
                    if out.len() >= req.count {
                        break;
                    }
                }
                return Ok(out);
            }
            let mut cmd = redis::cmd("XREADGROUP");
            cmd.arg("GROUP").arg(req.group).arg(req.consumer).arg("COUNT").arg(req.count.max(1));
            if let Some(block) = req.block {
                cmd.arg("BLOCK").arg(block.as_millis().max(1) as u64);
            }
            cmd.arg("STREAMS");
            for s in req.streams {
                cmd.arg(self.key(s));
            }
            for _ in req.streams {
                cmd.arg(">");
            }
            let result = match req.block {
                Some(block) => self.run_blocking(cmd, block).await,
                None => {
                    self.run("XREADGROUP", |mut c| {
                        let cmd = cmd.clone();
                        async move { cmd.query_async(&mut c).await }
                    })
                    .await
                }
            };
            match result {
                Ok(v) => reply::stream_entries(&names, v).map_err(core_err),
                Err(Error::Redis(e)) if e.code() == Some("NOGROUP") => {
                    // The stream or its group vanished (a server restarted without persistence,
                    // a deleted key): recreate the group at the start of what the stream holds
                    // now, so events appended since are not skipped (at-least-once).
                    tracing::warn!(group = req.group, "consumer group missing; recreating it");
                    for s in req.streams {
                        self.ensure_group_inner(s, req.group, GroupStart::Beginning).await.map_err(core_err)?;
                    }
                    Ok(Vec::new())
                }
                Err(e) => Err(core_err(e)),
            }
        })
    }

    fn ack<'a>(&'a self, group: &'a str, entries: &'a [(Arc<str>, EntryId)]) -> BoxFuture<'a, event_core::Result<()>> {
        Box::pin(async move {
            if entries.is_empty() {
                return Ok(());
            }
            let mut by_key: Vec<(String, Vec<String>)> = Vec::new();
            for (s, id) in entries {
                let key = self.key(s);
                match by_key.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, ids)) => ids.push(id.to_string()),
                    None => by_key.push((key, vec![id.to_string()])),
                }
            }
            let mut pipe = redis::pipe();
            for (key, ids) in &by_key {
                pipe.cmd("XACK").arg(key).arg(group).arg(ids).ignore();
            }
            self.run("XACK", |mut c| {
                let pipe = pipe.clone();
                async move { pipe.query_async::<()>(&mut c).await }
            })
            .await
            .map_err(core_err)
        })
    }

    fn claim_idle<'a>(
        &'a self,
        group: &'a str,
        consumer: &'a str,
        stream: &'a Arc<str>,
        min_idle: Duration,
        count: usize,
    ) -> BoxFuture<'a, event_core::Result<Vec<StreamEntry>>> {
        Box::pin(async move {
            let key = self.key(stream);
            let cursor_key = (key.clone(), group.to_owned());
            let cursor = lock(&self.inner.claim_cursors).get(&cursor_key).cloned().unwrap_or_else(|| "0-0".to_owned());
            let v: Value = self
                .run("XAUTOCLAIM", |mut c| {
                    let (key, cursor) = (key.clone(), cursor.clone());
                    async move {
                        scripts::CLAIM
                            .key(&key)
                            .arg(group)
                            .arg(consumer)
                            .arg(min_idle.as_millis() as u64)
                            .arg(&cursor)
                            .arg(count.max(1))
                            .invoke_async(&mut c)
                            .await
                    }
                })
                .await
                .map_err(core_err)?;
            let (next, entries) = reply::claim_result(stream, &v).map_err(core_err)?;
            lock(&self.inner.claim_cursors).insert(cursor_key, next);
            Ok(entries)
        })
    }

    fn keep_alive<'a>(
        &'a self,
        group: &'a str,
        consumer: &'a str,
        entries: &'a [(Arc<str>, EntryId)],
    ) -> BoxFuture<'a, event_core::Result<()>> {
        Box::pin(async move {
            let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
            for (s, id) in entries {
                by_key.entry(self.key(s)).or_default().push(id.to_string());
            }
            for (key, ids) in by_key {
                for chunk in ids.chunks(500) {
                    self.run("XCLAIM (keep-alive)", |mut c| {
                        let key = key.clone();
                        async move {
                            scripts::KEEP_ALIVE
                                .key(&key)
                                .arg(group)
                                .arg(consumer)
                                .arg(chunk)
                                .invoke_async::<i64>(&mut c)
                                .await
                        }
                    })
                    .await
                    .map_err(core_err)?;
                }
            }
            Ok(())
        })
    }

    fn retry_later<'a>(
        &'a self,
        group: &'a str,
        main: &'a str,
        entry: &'a StreamEntry,
        retry: &'a Envelope,
        due_ms: u64,
    ) -> BoxFuture<'a, event_core::Result<()>> {
        Box::pin(async move {
            let nonce = format!("{}-{}", retry.id, self.inner.nonce.fetch_add(1, Ordering::Relaxed));
            let member = retry_member(&nonce, &retry.to_fields());
            let entry_key = self.key(&entry.stream);
            let set_key = self.key(&retry_set_key(main, group));
            self.run("retry (Lua)", |mut c| {
                let (entry_key, set_key, member) = (entry_key.clone(), set_key.clone(), member.clone());
                async move {
                    scripts::RETRY_LATER
                        .key(&entry_key)
                        .key(&set_key)
                        .arg(group)
                        .arg(entry.id.to_string())
                        .arg(due_ms)
                        .arg(member)
                        .invoke_async::<i64>(&mut c)
                        .await
                }
            })
            .await
            .map_err(core_err)?;
            Ok(())
        })
    }

    fn promote_due<'a>(
        &'a self,
        group: &'a str,
        stream: &'a Arc<str>,
        now_ms: u64,
        limit: usize,
    ) -> BoxFuture<'a, event_core::Result<(usize, Option<u64>)>> {
        Box::pin(async move {
            let set_key = self.key(&retry_set_key(stream, group));
            let due_key = self.key(&due_stream_key(stream, group));
            let v: Value = self
                .run("promote (Lua)", |mut c| {
                    let (set_key, due_key) = (set_key.clone(), due_key.clone());
                    async move {
                        scripts::PROMOTE_DUE
                            .key(&set_key)
                            .key(&due_key)
                            .arg(now_ms)
                            .arg(limit.max(1))
                            .invoke_async(&mut c)
                            .await
                    }
                })
                .await
                .map_err(core_err)?;
            reply::promote_result(&v).map_err(core_err)
        })
    }

    fn dead_letter<'a>(
        &'a self,
        group: &'a str,
        main: &'a str,
        entry: &'a StreamEntry,
        letter: NewDeadLetter<'a>,
    ) -> BoxFuture<'a, event_core::Result<()>> {
        Box::pin(async move {
            let entry_key = self.key(&entry.stream);
            let dlq_key = self.key(&dead_letter_key(main, group));
            let mut fields = Self::entry_fields(entry);
            fields.retain(|(k, _)| !k.starts_with(b"dl_"));
            let extra: [(&str, String); 7] = [
                ("dl_handler", letter.handler.to_owned()),
                ("dl_error", letter.error.to_owned()),
                ("dl_attempts", letter.attempts.to_string()),
                ("dl_stream", main.to_owned()),
                ("dl_group", group.to_owned()),
                ("dl_oid", entry.id.to_string()),
                ("dl_ts", now_ms().to_string()),
            ];
            for (k, v) in extra {
                fields.push((k.as_bytes().to_vec(), v.into_bytes()));
            }
            let max = self.inner.max_dead_letters;
            self.run("dead-letter (Lua)", |mut c| {
                let (entry_key, dlq_key) = (entry_key.clone(), dlq_key.clone());
                let mut inv = scripts::DEAD_LETTER.key(&entry_key);
                inv.key(&dlq_key).arg(group).arg(entry.id.to_string()).arg(max);
                for (k, v) in &fields {
                    inv.arg(&k[..]).arg(&v[..]);
                }
                async move { inv.invoke_async::<Value>(&mut c).await }
            })
            .await
            .map_err(core_err)?;
            Ok(())
        })
    }

    fn dead_letters<'a>(
        &'a self,
        group: &'a str,
        streams: &'a [Arc<str>],
        limit: usize,
    ) -> BoxFuture<'a, event_core::Result<Vec<DeadLetter>>> {
        Box::pin(async move {
            let mut all = Vec::new();
            for s in streams {
                let key = self.key(&dead_letter_key(s, group));
                let v: Value = self
                    .run("XRANGE", |mut c| {
                        let key = key.clone();
                        async move {
                            redis::cmd("XRANGE")
                                .arg(&key)
                                .arg("-")
                                .arg("+")
                                .arg("COUNT")
                                .arg(limit.max(1))
                                .query_async(&mut c)
                                .await
                        }
                    })
                    .await
                    .map_err(core_err)?;
                all.extend(reply::dead_letters(&v, s, group).map_err(core_err)?);
            }
            all.sort_by_key(|d: &DeadLetter| EntryId::parse(&d.id).unwrap_or_default());
            all.truncate(limit);
            Ok(all)
        })
    }

    fn replay<'a>(&'a self, letter: &'a DeadLetter) -> BoxFuture<'a, event_core::Result<()>> {
        Box::pin(async move {
            let dlq_key = self.key(&dead_letter_key(&letter.stream, &letter.group));
            let due_key = self.key(&due_stream_key(&letter.stream, &letter.group));
            let found: i64 = self
                .run("replay (Lua)", |mut c| {
                    let (dlq_key, due_key) = (dlq_key.clone(), due_key.clone());
                    async move { scripts::REPLAY.key(&dlq_key).key(&due_key).arg(&letter.id).invoke_async(&mut c).await }
                })
                .await
                .map_err(core_err)?;
            if found == 0 {
                return Err(event_core::Error::DeadLetterNotFound(letter.id.clone()));
            }
            Ok(())
        })
    }

    fn purge_dead_letters<'a>(&'a self, letters: &'a [DeadLetter]) -> BoxFuture<'a, event_core::Result<usize>> {
        Box::pin(async move {
            let mut removed = 0usize;
            for l in letters {
                let key = self.key(&dead_letter_key(&l.stream, &l.group));
                let n: usize = self
                    .run("XDEL", |mut c| {
                        let key = key.clone();
                        async move { redis::cmd("XDEL").arg(&key).arg(&l.id).query_async(&mut c).await }
                    })
                    .await
                    .map_err(core_err)?;
                removed += n;
            }
            Ok(removed)
        })
    }

    fn last_id<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, event_core::Result<EntryId>> {
        Box::pin(async move {
            let key = self.key(stream);
            let v: Value = self
                .run("XREVRANGE", |mut c| {
                    let key = key.clone();
                    async move {
                        redis::cmd("XREVRANGE")
                            .arg(&key)
                            .arg("+")
                            .arg("-")
                            .arg("COUNT")
                            .arg(1)
                            .query_async(&mut c)
                            .await
                    }
                })
                .await
                .map_err(core_err)?;
            reply::last_id(&v).map_err(core_err)
        })
    }

    fn read_streams<'a>(
        &'a self,
        cursors: &'a [(Arc<str>, EntryId)],
        count: usize,
        block: Option<Duration>,
    ) -> BoxFuture<'a, event_core::Result<Vec<StreamEntry>>> {
        Box::pin(async move {
            if cursors.is_empty() {
                return Ok(Vec::new());
            }
            let names = self.logical_names(cursors.iter().map(|(s, _)| s));
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("COUNT").arg(count.max(1));
            if let Some(block) = block {
                cmd.arg("BLOCK").arg(block.as_millis().max(1) as u64);
            }
            cmd.arg("STREAMS");
            for (s, _) in cursors {
                cmd.arg(self.key(s));
            }
            for (_, id) in cursors {
                cmd.arg(id.to_string());
            }
            let v = match block {
                Some(block) => self.run_blocking(cmd, block).await,
                None => {
                    self.run("XREAD", |mut c| {
                        let cmd = cmd.clone();
                        async move { cmd.query_async(&mut c).await }
                    })
                    .await
                }
            }
            .map_err(core_err)?;
            reply::stream_entries(&names, v).map_err(core_err)
        })
    }

    fn settled<'a>(&'a self, group: &'a str, checks: &'a [SettleCheck]) -> BoxFuture<'a, event_core::Result<bool>> {
        Box::pin(async move {
            for check in checks {
                let keys = [
                    self.key(&check.stream),
                    self.key(&retry_set_key(&check.stream, group)),
                    self.key(&due_stream_key(&check.stream, group)),
                ];
                let done: i64 = self
                    .run("settled (Lua)", |mut c| {
                        let keys = keys.clone();
                        async move {
                            scripts::SETTLED
                                .key(&keys[0])
                                .key(&keys[1])
                                .key(&keys[2])
                                .arg(group)
                                .arg(check.upto.to_string())
                                .invoke_async(&mut c)
                                .await
                        }
                    })
                    .await
                    .map_err(core_err)?;
                if done == 0 {
                    return Ok(false);
                }
            }
            Ok(true)
        })
    }

    fn groups<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, event_core::Result<Vec<String>>> {
        Box::pin(async move {
            let key = self.key(stream);
            let v: Value = self
                .run("XINFO GROUPS", |mut c| {
                    let key = key.clone();
                    async move {
                        match redis::cmd("XINFO").arg("GROUPS").arg(&key).query_async(&mut c).await {
                            Err(e) if e.code() == Some("ERR") && e.to_string().contains("no such key") => {
                                Ok(Value::Array(Vec::new()))
                            }
                            other => other,
                        }
                    }
                })
                .await
                .map_err(core_err)?;
            Ok(reply::group_names(&v))
        })
    }

    fn maintain<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, event_core::Result<()>> {
        Box::pin(async move {
            let key = self.key(stream);
            let cap = self.inner.max_stream_len;
            let v: Value = self
                .run("trim (Lua)", |mut c| {
                    let key = key.clone();
                    async move { scripts::TRIM.key(&key).arg(cap).invoke_async(&mut c).await }
                })
                .await
                .map_err(core_err)?;
            let report = reply::trim_report(&v).map_err(core_err)?;
            if report.capped > 0 {
                metrics::counter!("events_trimmed_total", "stream" => stream.to_owned()).increment(report.capped);
                tracing::warn!(
                    stream,
                    dropped = report.capped,
                    cap,
                    "stream over its hard cap: oldest entries dropped"
                );
            }
            for (group, lag, pending) in report.groups {
                if lag >= 0 {
                    metrics::gauge!("event_consumer_lag", "stream" => stream.to_owned(), "group" => group.clone())
                        .set(lag as f64);
                }
                metrics::gauge!("event_consumer_pending", "stream" => stream.to_owned(), "group" => group)
                    .set(pending as f64);
            }
            Ok(())
        })
    }
}
