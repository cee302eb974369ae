use event_core::prelude::*;

#[handler]
async fn on_any<E: Event>(ev: E) {
    let _ = ev;
}

fn main() {}
