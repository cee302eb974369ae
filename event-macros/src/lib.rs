//! Attribute macros of the event framework: [`macro@broadcast_event`], [`macro@anycast_event`]
//! and [`macro@handler`].
//!
//! Use them through `event_core` (`use event_core::prelude::*;`), never from this crate directly:
//! the generated code names `::event_core` (or the path given with `crate = "..."`) and reaches
//! serde and inventory through its hidden `__private` module, so a user crate needs no other
//! dependency.
//!
//! The examples below are not compiled here, since a proc-macro crate cannot depend on the
//! runtime it generates code for; runnable versions live in the `event-core` docs and tests.
#![warn(missing_docs)]

use proc_macro::TokenStream;

mod attr;
mod event;
mod handler;
#[cfg(test)]
mod snapshots;

use event::Kind;

/// Declares a **broadcast** event: every live subscriber handles it (best effort).
///
/// ```ignore
/// use event_core::prelude::*;
///
/// #[broadcast_event(domain = "kernel")]
/// #[derive(Debug, Clone)]
/// pub struct KernelStartedBroadcastEvent {
///     pub kernel_id: String,
///     pub session_id: String,
/// }
///
/// assert_eq!(KernelStartedBroadcastEvent::NAME, "kernel_started");
/// assert_eq!(KernelStartedBroadcastEvent::STREAM, "events:{kernel}:broadcast");
/// ```
///
/// The item must be a non-generic struct with named fields (`struct Ping {}` for an event
/// without data). Derive `Clone` (and `Debug` if you like) yourself; do not derive serde's
/// traits, the macro does.
///
/// # Arguments
///
/// ## `domain = "..."` (required)
///
/// The part of the system the event belongs to. It names the default stream, so every event of
/// a domain shares one stream (`events:{kernel}:broadcast`).
///
/// ```ignore
/// #[broadcast_event(domain = "kernel")]
/// ```
///
/// ## `name = "..."`
///
/// The event name on the wire, unique per delivery mode across the binary. By default it is the
/// struct name in snake case without a trailing `BroadcastEvent`, `AnycastEvent` or `Event`:
/// `KernelStartedBroadcastEvent` -> `kernel_started`, `HTTPCallEvent` -> `http_call`,
/// `XMLHttpRequestEvent` -> `xml_http_request` (an acronym is one word; its last capital starts
/// the next word when a lowercase letter follows).
///
/// ```ignore
/// #[broadcast_event(domain = "kernel", name = "kernel_ready")]
/// ```
///
/// Names and domains are made of lowercase ASCII letters, digits, `_`, `.` and `-`.
///
/// ## `stream = "..."`
///
/// Overrides the stream name (default `events:{<domain>}:broadcast`; the braces make the domain
/// a Redis Cluster hash tag). Non-empty, without whitespace.
///
/// ```ignore
/// #[broadcast_event(domain = "kernel", stream = "events:{kernel}:lifecycle")]
/// ```
///
/// ## `version = N`
///
/// The payload schema version, an integer from 1 (the default).
///
/// ```ignore
/// #[broadcast_event(domain = "kernel", version = 2)]
/// ```
///
/// ## `crate = "path"`
///
/// The path of the `event_core` facade, for crates that rename it or re-export it (default
/// `::event_core`).
///
/// ```ignore
/// #[broadcast_event(domain = "kernel", crate = "::my_platform::events")]
/// ```
///
/// # Generated code
///
/// The struct is kept with `#[derive(Serialize, Deserialize)]` added (through
/// `event_core::__private::serde`), followed by, in an anonymous `const _: () = { ... };`:
///
/// ```ignore
/// impl ::event_core::Event for KernelStartedBroadcastEvent {
///     const NAME: &'static str = "kernel_started";
///     const DOMAIN: &'static str = "kernel";
///     const VERSION: u32 = 1;
///     const DELIVERY: ::event_core::Delivery = ::event_core::Delivery::Broadcast;
///     const STREAM: &'static str = "events:{kernel}:broadcast";
/// }
/// impl ::event_core::BroadcastEvent for KernelStartedBroadcastEvent {}
/// // plus an `EventDescriptor` (name, module, type name, fields) submitted to the event catalog
/// ```
///
/// Mistakes (a tuple struct, an enum, a generic struct, a missing `domain`, an unknown or
/// repeated argument, a bad name) are compile errors pointing at the offending token.
#[proc_macro_attribute]
pub fn broadcast_event(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_or_keep(item, |item| event::expand(Kind::Broadcast, args.into(), item))
}

/// Declares an **anycast** event: exactly one instance of each consumer group handles it
/// (at-least-once, retried with backoff, dead-lettered after the last attempt).
///
/// ```ignore
/// use event_core::prelude::*;
///
/// #[anycast_event(domain = "bgtask", name = "bgtask_done")]
/// #[derive(Debug, Clone)]
/// pub struct BgtaskDoneEvent {
///     pub task_id: String,
///     pub message: Option<String>,
/// }
/// ```
///
/// It takes the same arguments as [`macro@broadcast_event`] (`domain` required, `name`,
/// `stream`, `version`, `crate`), with the same default name rule; the default stream is
/// `events:{<domain>}:anycast`.
///
/// ```ignore
/// #[anycast_event(
///     domain = "storage",
///     name = "vfolder_deletion_requested",
///     stream = "events:{storage}:jobs",
///     version = 2,
///     crate = "::event_core",
/// )]
/// #[derive(Debug, Clone)]
/// pub struct VFolderDeletionRequestedEvent { pub vfolder_id: String }
/// ```
///
/// # Generated code
///
/// As for [`macro@broadcast_event`], with `DELIVERY` set to `Delivery::Anycast` and
/// `impl ::event_core::AnycastEvent` as the marker, which `EventDispatcher::consume` and the
/// retry options of [`macro@handler`] require.
#[proc_macro_attribute]
pub fn anycast_event(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_or_keep(item, |item| event::expand(Kind::Anycast, args.into(), item))
}

/// Registers an `async fn` as the handler of the event type of its **last** parameter.
///
/// ```ignore
/// use event_core::prelude::*;
///
/// #[handler]
/// async fn on_kernel_started(ev: KernelStartedBroadcastEvent) -> Result<(), HandlerError> {
///     println!("kernel {} started", ev.kernel_id);
///     Ok(())
/// }
///
/// #[handler(group = "storage", max_attempts = 5, backoff = "exponential", base_delay = "100ms",
///           max_delay = "10s", timeout = "30s", concurrency = 8)]
/// async fn purge_vfolder(
///     State(db): State<Db>,
///     meta: EventMeta,
///     ev: VFolderDeletionRequestedEvent,
/// ) -> anyhow::Result<()> {
///     db.purge(&ev.vfolder_id, meta.attempt).await?;
///     Ok(())
/// }
/// ```
///
/// A handler of an anycast event is a consumer; of a broadcast event, a subscriber.
/// `EventDispatcher::builder(queue).discover()` finds every `#[handler]` linked into the binary.
/// The function itself is kept unchanged, so tests can call it directly.
///
/// # Signature
///
/// - `async fn`, not generic, not a method (no `self`), not `const`, `unsafe` or `extern`.
/// - Parameters: any number of extractors, then the event **by value**, last. Extractors are
///   `EventMeta` and `State<T>` (a value given to the dispatcher with `.state(t)`, where
///   `T: Clone + Send + Sync + 'static`); parameters may be patterns (`State(db): State<Db>`).
/// - Returns `()` or `Result<(), E>` for any `E: Into<HandlerError>` (so `anyhow::Result<()>`
///   works). The future must be `Send`.
///
/// # Arguments
///
/// Every argument is optional; an unset one takes the dispatcher's default.
///
/// ## `group = "..."`
///
/// The consumer group of this handler, overriding the dispatcher's `.group(..)`.
///
/// ```ignore
/// #[handler(group = "storage")]
/// ```
///
/// ## `max_attempts = N` (anycast only)
///
/// Attempts before the entry is dead-lettered, at least 1 (default 3).
///
/// ```ignore
/// #[handler(max_attempts = 5)]
/// ```
///
/// ## `backoff = "fixed" | "exponential"` (anycast only)
///
/// The delay shape between attempts (default `"exponential"`, with jitter).
///
/// ```ignore
/// #[handler(backoff = "fixed", base_delay = "1s")]
/// ```
///
/// ## `base_delay = "..."` and `max_delay = "..."` (anycast only)
///
/// The first retry delay, and the cap of exponential growth (defaults 100ms and 30s).
/// `max_delay` may not be shorter than `base_delay`.
///
/// ```ignore
/// #[handler(base_delay = "100ms", max_delay = "10s")]
/// ```
///
/// ## `timeout = "..."`
///
/// Time limit of one invocation, longer than zero (default: none). A timed-out invocation is a
/// failed attempt.
///
/// ```ignore
/// #[handler(timeout = "30s")]
/// ```
///
/// ## `concurrency = N`
///
/// Invocations of this handler in flight at once, at least 1 (default 16).
///
/// ```ignore
/// #[handler(concurrency = 8)]
/// ```
///
/// ## `name = "..."`
///
/// The handler's name in dead letters, metrics and logs (default: the function's name).
///
/// ```ignore
/// #[handler(name = "purge_vfolder_v2")]
/// ```
///
/// ## `crate = "path"`
///
/// The path of the `event_core` facade (default `::event_core`), as for the event macros.
///
/// Durations are written as a number followed by `ms`, `s`, `m` or `h`: `"250ms"`, `"10s"`,
/// `"5m"`, `"1h"`, and are checked at compile time. The retry options (`max_attempts`,
/// `backoff`, `base_delay`, `max_delay`) on a handler of a broadcast event are a compile error:
/// broadcast handlers are never retried.
///
/// # Generated code
///
/// After the unchanged function, in an anonymous `const _: () = { ... };` (paths shortened):
///
/// ```ignore
/// const _: () = assert_anycast::<VFolderDeletionRequestedEvent>(); // only with retry options
/// const __EVENT_HANDLER: HandlerDescriptor = HandlerDescriptor {
///     name: "purge_vfolder",
///     module_path: module_path!(),
///     event: EventInfo::of::<VFolderDeletionRequestedEvent>(),
///     options: HandlerOptions { group: Some("storage"), /* ... */ ..HandlerOptions::DEFAULT },
///     // What each extractor needs from the dispatcher, checked by `build()`.
///     requires: &[<State<Db> as FromEventContext>::requirement, <EventMeta as FromEventContext>::requirement],
///     invoke: |__event_call| {
///         let __event_arg0 = <State<Db> as FromEventContext>::from_context(__event_call)?;
///         let __event_arg1 = <EventMeta as FromEventContext>::from_context(__event_call)?;
///         let __event_ev = __event_call.event::<VFolderDeletionRequestedEvent>()?;
///         Ok(boxed(async move {
///             let __event_out = purge_vfolder(__event_arg0, __event_arg1, __event_ev).await;
///             <anyhow::Result<()> as IntoHandlerResult>::into_handler_result(__event_out)
///         }))
///     },
/// };
/// inventory::submit!(__EVENT_HANDLER);
/// ```
///
/// Type errors land on the parameter or return type at fault: a `State<T>` whose `T` is not
/// `Clone`, a last parameter that is not an event, an unsupported return type.
#[proc_macro_attribute]
pub fn handler(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_or_keep(item, |item| handler::expand(args.into(), item))
}

/// Runs `expand` on `item`; on error, emits the errors after the unchanged item, so the item
/// still exists for the rest of the crate (and for IDEs), with no cascade of "not found" errors.
fn expand_or_keep(
    item: TokenStream,
    expand: impl FnOnce(proc_macro2::TokenStream) -> syn::Result<proc_macro2::TokenStream>,
) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    expand(item.clone())
        .unwrap_or_else(|error| {
            let mut out = item;
            out.extend(error.into_compile_error());
            out
        })
        .into()
}
