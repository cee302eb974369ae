use event_core::prelude::*;

#[anycast_event(domain = "jobs")]
#[derive(Debug, Clone)]
pub struct JobDone {
    pub job_id: String,
}

fn main() {
    let dispatcher = EventDispatcher::builder(InMemoryQueue::new()).build().unwrap();
    dispatcher.subscribe::<JobDone, _, _>(|_ev, _meta| async move { Ok(()) });
}
