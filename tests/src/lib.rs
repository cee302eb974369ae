//! Shared test fixtures: a private `redis-server` per test, and a queue that keeps it alive.
//!
//! Tests that need Redis never use a shared server: [`RedisServer::start`] runs one on a free
//! loopback port in its own temporary directory (append-only file on, fsync always), so a test
//! can also kill and restart it. The process is killed and the directory removed on drop.
#![warn(missing_docs)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What to do when `redis-server` is missing.
pub const INSTALL_HINT: &str = "redis-server was not found on PATH. The Redis tests start their own private server: \
install it with `apt-get install -y redis-server` (Debian/Ubuntu), `dnf install redis` (Fedora), or \
`brew install redis` (macOS). `./test.sh` installs it for you on Debian/Ubuntu.";

/// A private `redis-server` on 127.0.0.1 with its data in a temporary directory.
#[derive(Debug)]
pub struct RedisServer {
    binary: String,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    extra_args: Vec<String>,
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    listener.local_addr().expect("local address of the ephemeral listener").port()
}

fn unique_dir() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    std::env::temp_dir().join(format!(
        "event-redis-test-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Sends `PING` and reads the first reply line; `None` if nothing answered.
fn ping(port: u16) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(b"PING\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

impl RedisServer {
    /// Starts a server (AOF on, `appendfsync always`). Panics with [`INSTALL_HINT`] when
    /// `redis-server` is missing.
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments (e.g. `["--requirepass", "pw"]`).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        Self::start_binary("redis-server", extra)
    }

    /// Starts `binary` as the server (tests of the missing-binary message use a bogus name).
    pub fn start_binary(binary: &str, extra: &[&str]) -> RedisServer {
        let dir = unique_dir();
        std::fs::create_dir_all(&dir).expect("create the server's temporary directory");
        let mut last_err = String::new();
        for _ in 0..5 {
            let mut server = RedisServer {
                binary: binary.to_owned(),
                port: free_port(),
                dir: dir.clone(),
                child: None,
                extra_args: extra.iter().map(|s| (*s).to_owned()).collect(),
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => {
                    last_err = e;
                    server.kill();
                }
            }
        }
        panic!("could not start redis-server: {last_err}");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let mut cmd = Command::new(&self.binary);
        cmd.args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .args(["--appendfsync", "always", "--daemonize", "no", "--protected-mode", "yes"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let _ = std::fs::remove_dir_all(&self.dir);
                panic!("{INSTALL_HINT} (tried to run `{}`)", self.binary)
            }
            Err(e) => return Err(format!("spawning redis-server: {e}")),
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                    return Err(format!("redis-server exited with {status}; log:\n{log}"));
                }
            }
            match ping(self.port) {
                // `-NOAUTH` means up, with a password set.
                Some(r) if r.starts_with("+PONG") || r.starts_with("-NOAUTH") => return Ok(()),
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        Err("redis-server did not answer PING within 15 s".to_owned())
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kills the server with SIGKILL (no shutdown, no final save) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory; the append-only file brings
    /// back everything it had acknowledged.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() >= deadline => panic!("could not restart redis-server: {e}"),
                Err(_) => {
                    self.kill();
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts a private server and connects a [`event_redis::RedisQueue`] to it.
pub async fn redis_queue() -> (event_redis::RedisQueue, RedisServer) {
    let server = RedisServer::start();
    let queue = event_redis::RedisQueue::connect(&server.url()).await.expect("connect to the private redis-server");
    (queue, server)
}

/// A [`RedisQueue`](event_redis::RedisQueue) that owns its private server: the server is killed
/// when the last clone of the queue is dropped. For suites that take only a queue, such as
/// `event_core::conformance_suite!`.
pub type ServerQueue = event_core::testing::Guarded<event_redis::RedisQueue>;

/// Starts a private server and connects a [`ServerQueue`] to it.
pub async fn server_queue() -> ServerQueue {
    let (queue, server) = redis_queue().await;
    ServerQueue::new(queue, server)
}

/// The README's Rust examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
mod readme {}
