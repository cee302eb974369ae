//! Private events and handlers declared inside function bodies and modules.
use event_core::prelude::*;

mod inner {
    use event_core::prelude::*;

    #[anycast_event(domain = "jobs")]
    #[derive(Debug, Clone)]
    struct JobDoneEvent {
        job_id: String,
    }

    #[handler]
    async fn on_job_done(ev: JobDoneEvent) {
        let _ = ev.job_id;
    }

    pub(crate) fn touch() {
        let _ = on_job_done;
    }
}

fn declare_in_a_body() {
    #[broadcast_event(domain = "local")]
    #[derive(Debug, Clone)]
    struct LocalThingHappened {
        what: String,
    }

    #[handler]
    async fn on_local(meta: EventMeta, ev: LocalThingHappened) -> Result<(), HandlerError> {
        let _ = (meta, ev.what);
        Ok(())
    }

    // Two handlers with the same generated helper names in one scope.
    #[handler(timeout = "1s")]
    async fn on_local_again(LocalThingHappened { what }: LocalThingHappened) {
        let _ = what;
    }

    let _ = (on_local, on_local_again);
    assert_eq!(LocalThingHappened::NAME, "local_thing_happened");
}

fn main() {
    inner::touch();
    declare_in_a_body();
    let handlers = event_core::registered_handlers();
    let mut names: Vec<_> = handlers.iter().map(|h| h.name).collect();
    names.sort_unstable();
    assert_eq!(names, ["on_job_done", "on_local", "on_local_again"]);
    let events = event_core::registered_events();
    let mut names: Vec<_> = events.iter().map(|e| e.info.name).collect();
    names.sort_unstable();
    assert_eq!(names, ["job_done", "local_thing_happened"]);
}
