//! Events and handlers in a library of their own, edition 2024, depending on `event-core`
//! alone: the cross-crate discovery tests link it and expect the dispatcher to find every
//! handler here.

use std::sync::{Arc, Mutex};

use event_core::prelude::*;

/// Work handed to the `billing` service.
#[anycast_event(domain = "billing")]
#[derive(Debug, Clone)]
pub struct InvoiceRequestedEvent {
    /// Invoice id.
    pub invoice_id: String,
    /// Amount in cents.
    pub amount_cents: u64,
}

/// Broadcast once an invoice is paid.
#[broadcast_event(domain = "billing", name = "invoice_paid", version = 2)]
#[derive(Debug, Clone)]
pub struct InvoicePaidBroadcastEvent {
    /// Invoice id.
    pub invoice_id: String,
}

/// What the handlers of this crate saw, shared through `State<Ledger>`.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// `(handler, invoice id, attempt)` in the order they ran.
    pub lines: Arc<Mutex<Vec<(String, String, u32)>>>,
}

impl Ledger {
    fn record(&self, handler: &str, invoice: &str, attempt: u32) {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).push((handler.to_owned(), invoice.to_owned(), attempt));
    }
}

/// Bills an invoice; fails on its first attempt when the amount is odd.
#[handler(group = "billing", max_attempts = 3, backoff = "fixed", base_delay = "10ms")]
pub async fn bill_invoice(
    State(ledger): State<Ledger>,
    meta: EventMeta,
    ev: InvoiceRequestedEvent,
) -> Result<(), HandlerError> {
    ledger.record("bill_invoice", &ev.invoice_id, meta.attempt);
    if ev.amount_cents % 2 == 1 && meta.attempt == 1 {
        return Err("payment gateway busy".into());
    }
    Ok(())
}

/// Tells the customer.
#[handler]
pub async fn notify_customer(State(ledger): State<Ledger>, ev: InvoicePaidBroadcastEvent) {
    ledger.record("notify_customer", &ev.invoice_id, 1);
}

mod audit {
    use super::{InvoicePaidBroadcastEvent, Ledger};
    use event_core::prelude::*;

    /// A private handler in a private module is registered all the same.
    #[handler(timeout = "5s")]
    async fn audit_payment(State(ledger): State<Ledger>, ev: InvoicePaidBroadcastEvent) -> Result<(), HandlerError> {
        ledger.record("audit_payment", &ev.invoice_id, 1);
        Ok(())
    }
}
