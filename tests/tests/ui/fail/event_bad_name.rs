use event_core::prelude::*;

#[broadcast_event(domain = "kernel", name = "Has Space")]
#[derive(Debug, Clone)]
pub struct KernelStarted {
    pub kernel_id: String,
}

fn main() {}
