use event_core::prelude::*;

#[broadcast_event(domain = "kernel", topic = "kernels")]
#[derive(Debug, Clone)]
pub struct KernelStarted {
    pub kernel_id: String,
}

fn main() {}
