//! `rediss://`: a TLS-only private redis-server with a throw-away self-signed certificate.
//! Needs the `tls` feature (`cargo test -p tests --features tls --test redis_tls`, which
//! `./test.sh` runs) and the `openssl` command to make the certificate.
#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use event_core::prelude::*;
use event_redis::RedisQueue;
use tests::RedisServer;

#[anycast_event(domain = "tls")]
#[derive(Debug, Clone)]
struct Sealed {
    n: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_flow_over_rediss() {
    let certs = std::env::temp_dir().join(format!("event-tls-{}", std::process::id()));
    std::fs::create_dir_all(&certs).unwrap();
    let (ca, cert, key) = (certs.join("ca.pem"), certs.join("cert.pem"), certs.join("key.pem"));
    let ext = certs.join("ext.cnf");
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\n").unwrap();
    // A throw-away CA, and a server certificate it signs for 127.0.0.1.
    openssl(
        &certs,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=event-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        &certs,
        &["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "key.pem", "-out", "server.csr"],
    );
    openssl(
        &certs,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
            "-out",
            "cert.pem",
        ],
    );
    let tls_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let (cert_s, key_s) = (cert.to_string_lossy().into_owned(), key.to_string_lossy().into_owned());
    let server = RedisServer::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &cert_s,
        "--tls-key-file",
        &key_s,
        "--tls-auth-clients",
        "no",
    ]);
    let url = format!("rediss://127.0.0.1:{tls_port}/");
    // Without trusting the self-signed certificate the handshake must fail...
    let refused = RedisQueue::builder(&url).connect_timeout(Duration::from_secs(3)).connect().await;
    assert!(refused.is_err(), "an untrusted certificate was accepted");
    // ...and with it, events flow.
    let queue = RedisQueue::builder(&url)
        .root_cert_pem(std::fs::read(&ca).unwrap())
        .connect()
        .await
        .expect("TLS connection trusting the test CA");
    let d = EventDispatcher::builder(queue.clone()).group("g").build().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    d.consume::<Sealed, _, _>(move |ev, _| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(ev.n);
            Ok(())
        }
    });
    let running = d.start().await.unwrap();
    EventProducer::new(queue, "tls").produce(&Sealed { n: 42 }).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await.unwrap();
    assert_eq!(got, Some(42));
    running.shutdown(Duration::from_secs(5)).await;
    drop(server);
    let _ = std::fs::remove_dir_all(&certs);
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the `openssl` command makes the test certificates: apt-get install -y openssl");
    assert!(out.status.success(), "openssl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}
