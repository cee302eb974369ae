use event_core::prelude::*;

#[broadcast_event(domain = "kernel")]
#[derive(Debug, Clone)]
pub struct KernelStarted {
    pub kernel_id: String,
}

fn main() {
    let dispatcher = EventDispatcher::builder(InMemoryQueue::new()).build().unwrap();
    dispatcher.consume::<KernelStarted, _, _>(|_ev, _meta| async move { Ok(()) });
}
