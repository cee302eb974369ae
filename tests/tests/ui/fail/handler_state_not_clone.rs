use event_core::prelude::*;

#[anycast_event(domain = "jobs")]
#[derive(Debug, Clone)]
pub struct JobDone {
    pub job_id: String,
}

pub struct Db;

#[handler]
async fn on_job_done(State(_db): State<Db>, ev: JobDone) {
    let _ = ev;
}

fn main() {}
