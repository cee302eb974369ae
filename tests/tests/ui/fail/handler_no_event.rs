use event_core::prelude::*;

#[handler]
async fn on_job_done() {}

fn main() {}
