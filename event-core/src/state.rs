//! [`State<T>`]: shared values handed to handlers.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

/// Extractor for a value given to the dispatcher with
/// [`EventDispatcherBuilder::state`](crate::EventDispatcherBuilder::state).
///
/// ```
/// use event_core::prelude::*;
///
/// #[derive(Clone)]
/// struct Db;
///
/// #[anycast_event(domain = "docs")]
/// #[derive(Debug, Clone)]
/// struct Ping { n: u32 }
///
/// #[handler]
/// async fn on_ping(State(_db): State<Db>, ev: Ping) -> Result<(), HandlerError> {
///     let _ = ev.n;
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct State<T>(pub T);

/// The values given with `.state(t)`, keyed by type.
#[derive(Clone, Default)]
pub struct StateMap {
    values: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for StateMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMap").field("len", &self.values.len()).finish()
    }
}

impl StateMap {
    /// Stores `value`, replacing an earlier value of the same type.
    pub fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) {
        self.values.insert(TypeId::of::<T>(), Arc::new(value));
    }

    /// A clone of the stored `T`, if any.
    pub fn get<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.values.get(&TypeId::of::<T>()).and_then(|v| v.downcast_ref::<T>()).cloned()
    }

    /// Whether a value with this type id is stored.
    pub fn contains(&self, id: TypeId) -> bool {
        self.values.contains_key(&id)
    }
}

/// The requirement `State<T>` puts on the dispatcher: the type id and name of `T`.
pub(crate) fn state_requirement<T: 'static>() -> Option<(TypeId, &'static str)> {
    Some((TypeId::of::<T>(), std::any::type_name::<T>()))
}
