use event_core::prelude::*;

#[broadcast_event(domain = "kernel")]
#[derive(Debug, Clone)]
pub struct KernelStarted;

fn main() {}
