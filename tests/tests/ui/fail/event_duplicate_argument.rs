use event_core::prelude::*;

#[anycast_event(domain = "jobs", version = 2, version = 3)]
#[derive(Debug, Clone)]
pub struct JobDone {
    pub job_id: String,
}

fn main() {}
