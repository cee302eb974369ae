//! Every argument of every macro, checked at run time through the registries.
use event_core::prelude::*;
use event_core::{Backoff, Delivery, HandlerOptions};
use std::time::Duration;

#[broadcast_event(domain = "kernel")]
#[derive(Debug, Clone)]
pub struct KernelStartedBroadcastEvent {
    pub kernel_id: String,
    pub tags: Vec<Option<String>>,
}

#[anycast_event(
    domain = "storage",
    name = "vfolder.deletion-requested",
    stream = "events:{storage}:jobs",
    version = 2,
    crate = "::event_core"
)]
#[derive(Debug, Clone)]
pub struct VFolderDeletionRequestedEvent {
    pub vfolder_id: String,
    pub r#type: u8,
}

#[anycast_event(domain = "http")]
#[derive(Debug, Clone)]
struct HTTPCallEvent {}

#[derive(Clone)]
pub struct Db;

#[handler]
async fn on_kernel_started(ev: KernelStartedBroadcastEvent) -> Result<(), HandlerError> {
    let _ = ev;
    Ok(())
}

#[handler(group = "kernel-watchers", timeout = "1h", concurrency = 1, name = "watch_kernels")]
async fn watch(meta: EventMeta, _: KernelStartedBroadcastEvent) {
    let _ = meta;
}

#[handler(
    group = "storage",
    max_attempts = 5,
    backoff = "exponential",
    base_delay = "100ms",
    max_delay = "10s",
    timeout = "30s",
    concurrency = 8,
    name = "purge",
    crate = "::event_core"
)]
pub async fn purge_vfolder(
    State(db): State<Db>,
    meta: EventMeta,
    ev: VFolderDeletionRequestedEvent,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let _ = (db, meta.attempt, ev.vfolder_id);
    Ok(())
}

#[handler(backoff = "fixed", base_delay = "5m")]
async fn on_http_call(ev: HTTPCallEvent) -> Result<(), std::io::Error> {
    let _ = ev;
    Ok(())
}

fn main() {
    assert_eq!(KernelStartedBroadcastEvent::NAME, "kernel_started");
    assert_eq!(KernelStartedBroadcastEvent::DOMAIN, "kernel");
    assert_eq!(KernelStartedBroadcastEvent::VERSION, 1);
    assert_eq!(KernelStartedBroadcastEvent::DELIVERY, Delivery::Broadcast);
    assert_eq!(KernelStartedBroadcastEvent::STREAM, "events:{kernel}:broadcast");
    assert_eq!(VFolderDeletionRequestedEvent::NAME, "vfolder.deletion-requested");
    assert_eq!(VFolderDeletionRequestedEvent::VERSION, 2);
    assert_eq!(VFolderDeletionRequestedEvent::DELIVERY, Delivery::Anycast);
    assert_eq!(VFolderDeletionRequestedEvent::STREAM, "events:{storage}:jobs");
    assert_eq!(HTTPCallEvent::NAME, "http_call");
    assert_eq!(HTTPCallEvent::STREAM, "events:{http}:anycast");

    let events = event_core::registered_events();
    let kernel = events.iter().find(|e| e.type_ident == "KernelStartedBroadcastEvent").expect("registered");
    assert_eq!(kernel.fields, &[("kernel_id", "String"), ("tags", "Vec<Option<String>>")]);
    assert_eq!(kernel.module_path, module_path!());
    let vfolder = events.iter().find(|e| e.type_ident == "VFolderDeletionRequestedEvent").expect("registered");
    assert_eq!(vfolder.fields, &[("vfolder_id", "String"), ("type", "u8")]);
    assert_eq!(events.len(), 3);

    let handlers = event_core::registered_handlers();
    assert_eq!(handlers.len(), 4);
    let purge = handlers.iter().find(|h| h.name == "purge").expect("registered");
    assert_eq!(purge.event.name, "vfolder.deletion-requested");
    assert_eq!(
        purge.options,
        HandlerOptions {
            group: Some("storage"),
            max_attempts: Some(5),
            backoff: Some(Backoff::Exponential),
            base_delay: Some(Duration::from_millis(100)),
            max_delay: Some(Duration::from_secs(10)),
            timeout: Some(Duration::from_secs(30)),
            concurrency: Some(8),
        }
    );
    let needs: Vec<_> = purge.requires.iter().filter_map(|r| r()).collect();
    assert_eq!(needs, [(std::any::TypeId::of::<Db>(), std::any::type_name::<Db>())]);
    let watcher = handlers.iter().find(|h| h.name == "watch_kernels").expect("registered");
    assert_eq!(watcher.options.group, Some("kernel-watchers"));
    assert_eq!(watcher.options.timeout, Some(Duration::from_secs(3600)));
    assert_eq!(watcher.options.concurrency, Some(1));
    assert_eq!(watcher.requires.len(), 1);
    assert_eq!((watcher.requires[0])(), None);
    let minimal = handlers.iter().find(|h| h.name == "on_kernel_started").expect("registered");
    assert_eq!(minimal.options, HandlerOptions::DEFAULT);
    assert!(minimal.requires.is_empty());
    let http = handlers.iter().find(|h| h.name == "on_http_call").expect("registered");
    assert_eq!(http.options.backoff, Some(Backoff::Fixed));
    assert_eq!(http.options.base_delay, Some(Duration::from_secs(300)));

    // The functions stay plain async fns.
    drop(on_kernel_started(KernelStartedBroadcastEvent { kernel_id: "k".into(), tags: vec![] }));
    drop(purge_vfolder(State(Db), sample_meta(), VFolderDeletionRequestedEvent { vfolder_id: "v".into(), r#type: 0 }));
    drop(watch(sample_meta(), KernelStartedBroadcastEvent { kernel_id: "k".into(), tags: vec![] }));
    drop(on_http_call(HTTPCallEvent {}));
}

fn sample_meta() -> EventMeta {
    EventMeta {
        id: String::new(),
        name: String::new(),
        domain: String::new(),
        source: String::new(),
        timestamp_ms: 0,
        attempt: 1,
        correlation_id: None,
    }
}
