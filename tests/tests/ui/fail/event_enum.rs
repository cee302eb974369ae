use event_core::prelude::*;

#[anycast_event(domain = "jobs")]
#[derive(Debug, Clone)]
pub enum JobEvent {
    Done,
}

fn main() {}
