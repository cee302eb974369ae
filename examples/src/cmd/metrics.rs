//! `--metrics-addr`: serves the `metrics` facade's values in Prometheus text format.
//!
//! [`serve`] installs a Prometheus recorder (once per process) and answers `GET /metrics` (and
//! `GET /`) on a tokio listener with a minimal HTTP/1.1 responder: one request per connection,
//! `Connection: close`. Nothing else is served; the exporter's own hyper listener is not used.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context as _;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Buckets of `event_handler_duration_seconds`: 0.5 ms to 60 s.
const DURATION_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Prometheus' text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Largest request head read from a client.
const MAX_REQUEST: usize = 8 * 1024;

/// How long a client may take to send its request, and to read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the recorder's upkeep runs (drains histogram samples, drops idle data).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder as the global `metrics` recorder, once per process; later
/// calls return the same handle.
pub(crate) fn install() -> anyhow::Result<&'static PrometheusHandle> {
    if let Some(h) = HANDLE.get() {
        return Ok(h);
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("event_handler_duration_seconds".to_owned()), DURATION_BUCKETS)
        .context("configuring the Prometheus recorder")?
        .install_recorder()
        .context("installing the Prometheus recorder (is another metrics recorder installed?)")?;
    describe();
    Ok(HANDLE.get_or_init(|| handle))
}

/// `# HELP` lines for what the framework emits (see the README's "Metrics").
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("events_produced_total", "Events appended to a stream, by event and delivery mode.");
    describe_counter!(
        "events_handled_total",
        "Handler invocations and their outcome: success, error, panic, timeout (each attempt), retry or dead_letter (what followed a failure)."
    );
    describe_histogram!(
        "event_handler_duration_seconds",
        Unit::Seconds,
        "Time a handler invocation took, by event and handler."
    );
    describe_counter!("event_decode_errors_total", "Stream entries that did not decode (dead-lettered or skipped).");
    describe_counter!(
        "events_skipped_total",
        "Entries acked without a handler: no handler of the group handles the event."
    );
    describe_counter!("events_dead_lettered_total", "Entries moved to a group's dead-letter stream.");
    describe_counter!("events_reclaimed_total", "Entries reclaimed from a consumer that stopped acking them.");
    describe_counter!("events_trimmed_total", "Entries dropped by a stream's hard cap.");
    describe_gauge!("event_consumer_lag", "Entries of the stream not yet delivered to the group (Redis).");
    describe_gauge!("event_consumer_pending", "Entries delivered to the group and not yet acked (Redis).");
}

/// Installs the Prometheus recorder and serves `GET /metrics` on `addr` in the background.
/// Returns the address actually bound (port 0 picks a free one).
pub(crate) async fn serve(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let handle = install()?;
    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding the metrics endpoint on {addr}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let mut upkeep = tokio::time::interval(UPKEEP_EVERY);
        upkeep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            upkeep.tick().await;
            handle.run_upkeep();
        }
    });
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _peer)) => {
                    tokio::spawn(async move {
                        // A client that hangs up or stalls only loses its own answer.
                        let _ = tokio::time::timeout(CLIENT_TIMEOUT, respond(stream, handle)).await;
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    eprintln!("metrics endpoint: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(bound)
}

/// Keeps the metrics endpoint up for `duration` after a short-lived command finished (the demo
/// with `--metrics-addr`), or until Ctrl-C / SIGTERM, whichever comes first. Returns at once
/// when no endpoint was started.
pub(crate) async fn linger(duration: Duration) {
    if HANDLE.get().is_none() || duration.is_zero() {
        return;
    }
    eprintln!("serving metrics for {} more (Ctrl-C to stop)", super::format_duration(duration));
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        () = super::backend::shutdown_signal() => {}
    }
}

/// The answer to one request head.
struct Response {
    status: &'static str,
    content_type: &'static str,
    extra_header: Option<&'static str>,
    body: String,
    send_body: bool,
}

fn route(head: &str, handle: &PrometheusHandle) -> Response {
    let text = |status, body: &str| Response {
        status,
        content_type: "text/plain; charset=utf-8",
        extra_header: None,
        body: format!("{body}\n"),
        send_body: true,
    };
    let mut parts = head.lines().next().unwrap_or_default().split_ascii_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return text("400 Bad Request", "bad request");
    };
    if !version.starts_with("HTTP/1.") {
        return text("505 HTTP Version Not Supported", "HTTP/1.x only");
    }
    let path = target.split(['?', '#']).next().unwrap_or_default();
    if path != "/metrics" && path != "/" {
        return text("404 Not Found", "not found: the metrics are at /metrics");
    }
    match method {
        "GET" | "HEAD" => Response {
            status: "200 OK",
            content_type: CONTENT_TYPE,
            extra_header: None,
            body: handle.render(),
            send_body: method == "GET",
        },
        _ => Response { extra_header: Some("Allow: GET, HEAD"), ..text("405 Method Not Allowed", "use GET") },
    }
}

/// Reads one request head and answers it.
async fn respond(mut stream: TcpStream, handle: &PrometheusHandle) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break String::from_utf8_lossy(&buf[..end]).into_owned();
        }
        if buf.len() > MAX_REQUEST {
            break String::new();
        }
    };
    let r = if head.is_empty() {
        Response {
            status: "431 Request Header Fields Too Large",
            content_type: "text/plain; charset=utf-8",
            extra_header: None,
            body: "request head too large\n".to_owned(),
            send_body: true,
        }
    } else {
        route(&head, handle)
    };
    let mut out = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        r.status,
        r.content_type,
        r.body.len()
    );
    if let Some(h) = r.extra_header {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    if r.send_body {
        out.push_str(&r.body);
    }
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder() -> PrometheusHandle {
        PrometheusBuilder::new().build_recorder().handle()
    }

    #[test]
    fn routes_metrics_and_root_only() {
        let h = recorder();
        for head in ["GET /metrics HTTP/1.1\r\nHost: x", "GET / HTTP/1.0", "GET /metrics?x=1 HTTP/1.1"] {
            let r = route(head, &h);
            assert_eq!(r.status, "200 OK", "{head}");
            assert_eq!(r.content_type, CONTENT_TYPE);
        }
        assert!(!route("HEAD /metrics HTTP/1.1", &h).send_body);
        assert_eq!(route("GET /other HTTP/1.1", &h).status, "404 Not Found");
        assert_eq!(route("POST /metrics HTTP/1.1", &h).status, "405 Method Not Allowed");
        assert_eq!(route("nonsense", &h).status, "400 Bad Request");
    }
}
