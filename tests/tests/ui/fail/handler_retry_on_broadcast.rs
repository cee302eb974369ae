use event_core::prelude::*;

#[broadcast_event(domain = "kernel")]
#[derive(Debug, Clone)]
pub struct KernelStarted {
    pub kernel_id: String,
}

#[handler(timeout = "5s", max_attempts = 5, backoff = "fixed")]
async fn on_kernel_started(ev: KernelStarted) {
    let _ = ev;
}

fn main() {}
