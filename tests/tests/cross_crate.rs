//! Handlers that live in another crate (`test-handlers`) are discovered, as long as this
//! binary names that crate.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

// Without this line the linker drops `test_handlers` and its registrations (see
// `cross_crate_unlinked.rs`).
use test_handlers as _;

use event_core::prelude::*;
use test_handlers::{InvoicePaidBroadcastEvent, InvoiceRequestedEvent, Ledger};

#[test]
fn every_handler_of_the_other_crate_is_registered() {
    let mut names: Vec<&str> = event_core::registered_handlers()
        .into_iter()
        .filter(|h| h.module_path.starts_with("test_handlers"))
        .map(|h| h.name)
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["audit_payment", "bill_invoice", "notify_customer"]);
    let paid = event_core::registered_events().into_iter().find(|e| e.info.name == "invoice_paid").unwrap();
    assert_eq!(paid.info.version, 2);
    assert_eq!(paid.info.stream, "events:{billing}:broadcast");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovered_handlers_run() {
    let queue = InMemoryQueue::new();
    let ledger = Ledger::default();
    let running = EventDispatcher::builder(queue.clone())
        .group("svc")
        .state(ledger.clone())
        .discover_in_module("test_handlers")
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let p = EventProducer::new(queue, "cross-crate");
    p.produce(&InvoiceRequestedEvent { invoice_id: "inv-1".into(), amount_cents: 101 }).await.unwrap();
    p.produce(&InvoicePaidBroadcastEvent { invoice_id: "inv-1".into() }).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), running.drain()).await.expect("settles");
    let mut lines = ledger.lines.lock().unwrap().clone();
    lines.sort();
    let expected = [("audit_payment", 1), ("bill_invoice", 1), ("bill_invoice", 2), ("notify_customer", 1)];
    let got: Vec<(&str, u32)> = lines.iter().map(|(h, _, a)| (h.as_str(), *a)).collect();
    assert_eq!(got, expected);
    running.shutdown(Duration::from_secs(5)).await;
}
