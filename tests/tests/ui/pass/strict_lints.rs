//! The expansions compile under strict user lints.
#![deny(
    warnings,
    missing_docs,
    missing_debug_implementations,
    missing_copy_implementations,
    unused_qualifications,
    unused_results,
    unused_lifetimes,
    unused_import_braces,
    unused_extern_crates,
    unused_macro_rules,
    single_use_lifetimes,
    trivial_casts,
    trivial_numeric_casts,
    unreachable_pub,
    rust_2018_idioms,
    let_underscore_drop,
    non_ascii_idents,
    meta_variable_misuse,
    unsafe_code,
    variant_size_differences
)]
#![forbid(unsafe_code)]

use event_core::prelude::*;

/// A kernel started.
#[broadcast_event(domain = "kernel")]
#[derive(Debug, Clone)]
pub struct KernelStartedBroadcastEvent {
    /// Its id.
    pub kernel_id: String,
}

/// A job finished.
#[anycast_event(domain = "jobs", version = 3)]
#[derive(Debug, Clone)]
pub struct JobDoneEvent {
    /// Its id.
    pub job_id: String,
}

/// Shared state.
#[derive(Debug, Clone, Copy)]
pub struct Db;

/// Handles kernel starts.
#[handler(timeout = "10s")]
pub async fn on_kernel_started(ev: KernelStartedBroadcastEvent) {
    drop(ev.kernel_id);
}

/// Handles finished jobs.
#[handler(group = "jobs", max_attempts = 2, backoff = "fixed", base_delay = "1s", max_delay = "2s")]
pub async fn on_job_done(State(db): State<Db>, meta: EventMeta, ev: JobDoneEvent) -> Result<(), HandlerError> {
    drop((db, meta, ev));
    Ok(())
}

fn main() {
    assert_eq!(event_core::registered_handlers().len(), 2);
}
