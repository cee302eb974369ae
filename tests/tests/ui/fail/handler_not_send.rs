use event_core::prelude::*;
use std::rc::Rc;

#[anycast_event(domain = "jobs")]
#[derive(Debug, Clone)]
pub struct JobDone {
    pub job_id: String,
}

async fn log(_: &str) {}

#[handler]
async fn on_job_done(ev: JobDone) {
    let id = Rc::new(ev.job_id);
    log("done").await;
    drop(id);
}

fn main() {}
