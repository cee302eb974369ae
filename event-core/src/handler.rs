//! Handler records: what `#[handler]` registers, and the pieces its generated code calls.

use std::any::TypeId;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::envelope::Envelope;
use crate::event::{Event, EventInfo};
use crate::state::{State, StateMap};
use crate::{EventMeta, HandlerError};

/// A boxed, `Send` future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The future of one handler invocation.
pub type HandlerFuture = BoxFuture<'static, Result<(), HandlerError>>;

/// Retry backoff shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// Always `base_delay`.
    Fixed,
    /// `base_delay * 2^(attempt-1)`, capped at `max_delay`, with jitter.
    Exponential,
}

/// Options written on `#[handler(...)]`; `None` takes the dispatcher's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandlerOptions {
    /// Consumer group overriding the dispatcher's group.
    pub group: Option<&'static str>,
    /// Attempts before dead-lettering (anycast only).
    pub max_attempts: Option<u32>,
    /// Backoff shape (anycast only).
    pub backoff: Option<Backoff>,
    /// First retry delay (anycast only).
    pub base_delay: Option<Duration>,
    /// Largest retry delay (anycast only).
    pub max_delay: Option<Duration>,
    /// Time limit of one invocation.
    pub timeout: Option<Duration>,
    /// Invocations of this handler in flight at once.
    pub concurrency: Option<u32>,
}

impl HandlerOptions {
    /// No option set: every value comes from the dispatcher's defaults.
    pub const DEFAULT: HandlerOptions = HandlerOptions {
        group: None,
        max_attempts: None,
        backoff: None,
        base_delay: None,
        max_delay: None,
        timeout: None,
        concurrency: None,
    };
}

impl Default for HandlerOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why an invocation could not start.
#[derive(Debug)]
pub enum InvokeError {
    /// The payload does not deserialize into the named event: dead-lettered at once.
    Decode(String),
    /// An extractor failed: counted as a failed attempt.
    Extract(HandlerError),
}

/// What the generated invoke function returns.
pub type InvokeResult = Result<HandlerFuture, InvokeError>;

/// What one handler parameter needs from the dispatcher: the type id and name of a `State<T>`'s
/// `T`, or `None`.
pub type RequirementFn = fn() -> Option<(TypeId, &'static str)>;

/// The type-erased entry point of a handler.
pub type InvokeFn = fn(&HandlerCall<'_>) -> InvokeResult;

/// The registration record `#[handler]` submits: a const of `&'static str` and `fn` pointers.
#[derive(Debug)]
pub struct HandlerDescriptor {
    /// Handler name (the function's name).
    pub name: &'static str,
    /// Module the handler is declared in (`module_path!()`).
    pub module_path: &'static str,
    /// The handled event.
    pub event: EventInfo,
    /// Options from the attribute.
    pub options: HandlerOptions,
    /// What each parameter needs from the dispatcher (`State<T>` needs a `T`).
    pub requires: &'static [RequirementFn],
    /// Decodes, extracts and calls the function.
    pub invoke: InvokeFn,
}

inventory::collect!(HandlerDescriptor);

/// Every `#[handler]` in the crates linked into this binary, sorted by stream, event, handler.
pub fn registered_handlers() -> Vec<&'static HandlerDescriptor> {
    let mut all: Vec<&'static HandlerDescriptor> = inventory::iter::<HandlerDescriptor>.into_iter().collect();
    all.sort_by(|a, b| {
        (a.event.stream, a.event.name, a.module_path, a.name).cmp(&(
            b.event.stream,
            b.event.name,
            b.module_path,
            b.name,
        ))
    });
    all
}

/// What an invocation gets to work with: the entry and the dispatcher's state.
#[derive(Debug)]
pub struct HandlerCall<'a> {
    pub(crate) envelope: &'a Envelope,
    pub(crate) attempt: u32,
    pub(crate) state: &'a StateMap,
}

impl<'a> HandlerCall<'a> {
    /// A call on `envelope` at `attempt`, with `state`.
    pub fn new(envelope: &'a Envelope, attempt: u32, state: &'a StateMap) -> Self {
        HandlerCall { envelope, attempt, state }
    }

    /// Decodes the payload into `E`.
    pub fn event<E: Event>(&self) -> Result<E, InvokeError> {
        self.envelope
            .ct
            .decode::<E>(&self.envelope.data)
            .map_err(|e| InvokeError::Decode(format!("payload does not decode as `{}`: {e}", E::NAME)))
    }

    /// The metadata of this delivery.
    pub fn meta(&self) -> EventMeta {
        let mut m = self.envelope.meta();
        m.attempt = self.attempt;
        m
    }
}

/// A handler parameter before the event: built from the call.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a handler parameter",
    label = "not an extractor",
    note = "parameters before the event are extractors: `EventMeta`, or `State<T>` where `T: Clone + Send + Sync + 'static`; the event comes last"
)]
pub trait FromEventContext: Sized {
    /// Builds the value.
    fn from_context(call: &HandlerCall<'_>) -> Result<Self, InvokeError>;

    /// What the dispatcher must provide for this extractor, checked at `build()`.
    fn requirement() -> Option<(TypeId, &'static str)> {
        None
    }
}

impl FromEventContext for EventMeta {
    fn from_context(call: &HandlerCall<'_>) -> Result<Self, InvokeError> {
        Ok(call.meta())
    }
}

impl<T: Clone + Send + Sync + 'static> FromEventContext for State<T> {
    fn from_context(call: &HandlerCall<'_>) -> Result<Self, InvokeError> {
        call.state.get::<T>().map(State).ok_or_else(|| {
            InvokeError::Extract(format!("no state of type `{}` was provided", std::any::type_name::<T>()).into())
        })
    }

    fn requirement() -> Option<(TypeId, &'static str)> {
        crate::state::state_requirement::<T>()
    }
}

/// What a handler may return: `()` or `Result<(), E>` with `E: Into<HandlerError>`.
#[diagnostic::on_unimplemented(
    message = "a handler must return `()` or `Result<(), E>` where `E: Into<HandlerError>`, not `{Self}`",
    label = "unsupported return type"
)]
pub trait IntoHandlerResult {
    /// Converts into the runtime's result.
    fn into_handler_result(self) -> Result<(), HandlerError>;
}

impl IntoHandlerResult for () {
    fn into_handler_result(self) -> Result<(), HandlerError> {
        Ok(())
    }
}

impl<E: Into<HandlerError>> IntoHandlerResult for Result<(), E> {
    fn into_handler_result(self) -> Result<(), HandlerError> {
        self.map_err(Into::into)
    }
}

/// Boxes a handler future.
pub fn boxed<F>(f: F) -> HandlerFuture
where
    F: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    Box::pin(f)
}

/// Compile-time check emitted by `#[handler]` when retry options are written: the event must be
/// an anycast event.
pub const fn assert_anycast<E: crate::AnycastEvent>() {}
