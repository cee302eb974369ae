use event_core::prelude::*;

#[anycast_event(domain = "jobs")]
#[derive(Debug, Clone)]
pub struct JobDone<T> {
    pub output: T,
}

fn main() {}
