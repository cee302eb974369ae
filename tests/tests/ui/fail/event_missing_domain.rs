use event_core::prelude::*;

#[broadcast_event(name = "kernel_started")]
#[derive(Debug, Clone)]
pub struct KernelStarted {
    pub kernel_id: String,
}

fn main() {}
