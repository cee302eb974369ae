//! The event traits: what `#[broadcast_event]` and `#[anycast_event]` implement.

use serde::{de::DeserializeOwned, Serialize};

/// How an event is delivered: to one instance of each consumer group, or to every subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Delivery {
    /// Exactly one instance of each consumer group handles the event (at-least-once).
    Anycast,
    /// Every live subscriber handles the event (best effort).
    Broadcast,
}

impl Delivery {
    /// `"anycast"` or `"broadcast"`: the suffix of default stream names and a metrics label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Delivery::Anycast => "anycast",
            Delivery::Broadcast => "broadcast",
        }
    }
}

impl std::fmt::Display for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event type: serializable, with a name, a domain, a schema version and a stream.
///
/// Implemented by `#[broadcast_event]` and `#[anycast_event]`; write those instead of
/// implementing it by hand.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event",
    label = "not declared with `#[broadcast_event]` or `#[anycast_event]`",
    note = "the last parameter of a `#[handler]` is the event: a struct declared with `#[broadcast_event(domain = \"...\")]` or `#[anycast_event(domain = \"...\")]`"
)]
pub trait Event: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// Event name, unique per delivery mode across the binary (`kernel_started`).
    const NAME: &'static str;
    /// Domain the event belongs to (`kernel`); part of the default stream name.
    const DOMAIN: &'static str;
    /// Schema version of the payload (default 1).
    const VERSION: u32;
    /// Delivery mode, fixed by the macro used.
    const DELIVERY: Delivery;
    /// Stream the event is appended to, before any key prefix a queue adds:
    /// `events:{<domain>}:<delivery>` unless overridden with `stream = "..."`.
    const STREAM: &'static str;
}

/// Marker for events delivered to every subscriber (`#[broadcast_event]`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a broadcast event",
    label = "not declared with `#[broadcast_event]`",
    note = "`subscribe` takes broadcast events; use `consume` for an event declared with `#[anycast_event]`"
)]
pub trait BroadcastEvent: Event {}

/// Marker for events delivered to one instance of each consumer group (`#[anycast_event]`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an anycast event",
    label = "not declared with `#[anycast_event]`",
    note = "`consume` and the retry options (`max_attempts`, `backoff`, `base_delay`, `max_delay`) need an event declared with `#[anycast_event]`; use `subscribe` for broadcast events and drop the retry options from their handlers"
)]
pub trait AnycastEvent: Event {}

/// Static description of an event type, registered by the event macros for the catalog.
#[derive(Debug, Clone, Copy)]
pub struct EventInfo {
    /// [`Event::NAME`].
    pub name: &'static str,
    /// [`Event::DOMAIN`].
    pub domain: &'static str,
    /// [`Event::VERSION`].
    pub version: u32,
    /// [`Event::DELIVERY`].
    pub delivery: Delivery,
    /// [`Event::STREAM`].
    pub stream: &'static str,
    /// Rust type name of the event (`core::any::type_name`).
    pub type_name: fn() -> &'static str,
    /// Type id of the event.
    pub type_id: fn() -> std::any::TypeId,
}

impl EventInfo {
    /// The description of `E`, usable in constants.
    pub const fn of<E: Event>() -> EventInfo {
        EventInfo {
            name: E::NAME,
            domain: E::DOMAIN,
            version: E::VERSION,
            delivery: E::DELIVERY,
            stream: E::STREAM,
            type_name: std::any::type_name::<E>,
            type_id: std::any::TypeId::of::<E>,
        }
    }
}

/// The registration record `#[broadcast_event]` / `#[anycast_event]` submit to the catalog.
#[derive(Debug)]
pub struct EventDescriptor {
    /// Static description of the event.
    pub info: EventInfo,
    /// Module the event is declared in (`module_path!()`).
    pub module_path: &'static str,
    /// Rust identifier of the struct.
    pub type_ident: &'static str,
    /// Field names and Rust types of the payload, in declaration order (for catalogs and schemas).
    pub fields: &'static [(&'static str, &'static str)],
}

inventory::collect!(EventDescriptor);

/// Every event declared with the event macros in the crates linked into this binary,
/// sorted by delivery, then name.
pub fn registered_events() -> Vec<&'static EventDescriptor> {
    let mut all: Vec<&'static EventDescriptor> = inventory::iter::<EventDescriptor>.into_iter().collect();
    all.sort_by(|a, b| {
        (a.info.delivery, a.info.name, a.module_path).cmp(&(b.info.delivery, b.info.name, b.module_path))
    });
    all
}
