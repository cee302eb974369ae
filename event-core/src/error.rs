//! Error types.

/// What a handler returns when it fails. Any `std::error::Error + Send + Sync`, a `String`,
/// a `&str` and `anyhow::Error` convert into it.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the event-core runtime and of queue backends.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two event types of the same delivery mode share a name.
    #[error("duplicate {delivery} event name `{name}`: declared by both `{first}` and `{second}`; give one of them another `name = \"...\"`")]
    DuplicateEventName {
        /// Delivery mode (`anycast` or `broadcast`).
        delivery: crate::Delivery,
        /// The shared name.
        name: String,
        /// First type.
        first: String,
        /// Second type.
        second: String,
    },
    /// A handler needs `State<T>` and no `.state(t)` provided a `T`.
    #[error("handler `{handler}` needs `State<{type_name}>` but no state of type `{type_name}` was provided; call `.state(value)` on the dispatcher builder")]
    MissingState {
        /// The handler.
        handler: String,
        /// The missing type.
        type_name: String,
    },
    /// Two handlers with the same name handle the same event in the same group.
    #[error("duplicate handler `{handler}` for event `{event}` in group `{group}`")]
    DuplicateHandler {
        /// The handler name.
        handler: String,
        /// The event name.
        event: String,
        /// The group.
        group: String,
    },
    /// Fewer handlers were discovered than [`expect_handlers`](crate::EventDispatcherBuilder::expect_handlers) asked for.
    #[error("discovered {found} handler(s), expected at least {expected}: a crate whose handlers the binary never names is not linked; add `use my_handlers as _;` to the binary")]
    TooFewHandlers {
        /// Handlers discovered.
        found: usize,
        /// The minimum asked for.
        expected: usize,
    },
    /// An invalid configuration value.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The event could not be serialized.
    #[error("cannot encode event `{event}`: {reason}")]
    Encode {
        /// Event name.
        event: String,
        /// Why.
        reason: String,
    },
    /// The payload is larger than the configured maximum.
    #[error("payload of event `{event}` is {size} bytes, over the limit of {limit} bytes")]
    PayloadTooLarge {
        /// Event name.
        event: String,
        /// Encoded size.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// A dead letter that is not (or no longer) in the dead-letter stream.
    #[error("dead letter `{0}` not found")]
    DeadLetterNotFound(String),
    /// The queue backend failed.
    #[error("queue backend error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The dispatcher was shut down.
    #[error("the dispatcher is shut down")]
    Shutdown,
}

impl Error {
    /// Wraps a backend error.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Backend(Box::new(e))
    }
}

/// `Result` with [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
