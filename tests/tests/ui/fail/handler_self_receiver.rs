use event_core::prelude::*;

#[anycast_event(domain = "jobs")]
#[derive(Debug, Clone)]
pub struct JobDone {
    pub job_id: String,
}

pub struct Service;

impl Service {
    #[handler]
    async fn on_job_done(&self, ev: JobDone) {
        let _ = ev;
    }
}

fn main() {}
