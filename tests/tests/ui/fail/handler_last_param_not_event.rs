use event_core::prelude::*;

#[anycast_event(domain = "jobs")]
#[derive(Debug, Clone)]
pub struct JobDone {
    pub job_id: String,
}

#[handler]
async fn on_job_done(ev: JobDone, meta: EventMeta) {
    let _ = (ev, meta);
}

fn main() {}
