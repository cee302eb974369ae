//! The three services of the cluster and their `#[handler]`s.
//!
//! | module | service | consumer group |
//! |---|---|---|
//! | [`manager`] | control plane: bookkeeping, background tasks, scheduling | `manager` |
//! | [`agent`] | a compute node: runs kernels as containers | `agent` |
//! | [`storage_proxy`] | serves virtual folders from storage volumes | `storage-proxy` |
//!
//! Every handler takes a [`State<Node>`](event_core::State): the instance it runs in, a
//! producer for the events it emits and the [`Timeline`] it reports to. Each service adds its
//! own state (the manager's database, an agent's host, the storage backend). A binary that
//! hosts several services, as the demo does, builds one dispatcher per instance and narrows
//! discovery to one module with `discover_in_module(component.module_path)`.

use std::time::{SystemTime, UNIX_EPOCH};

use event_core::prelude::*;

use crate::timeline::Timeline;

pub mod agent;
pub mod manager;
pub mod storage_proxy;

/// One service of the cluster: its name, default consumer group and the module holding its
/// handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Component {
    /// Service name (`manager`).
    pub name: &'static str,
    /// Consumer group its dispatchers use; a handler's own `group = "..."` overrides it.
    pub group: &'static str,
    /// Module path of its handlers (`examples::components::manager`).
    pub module_path: &'static str,
}

/// The manager: control plane and bookkeeping.
pub const MANAGER: Component =
    Component { name: "manager", group: "manager", module_path: concat!(module_path!(), "::manager") };

/// The agent: a compute node running kernels.
pub const AGENT: Component =
    Component { name: "agent", group: "agent", module_path: concat!(module_path!(), "::agent") };

/// The storage proxy: serves virtual folders.
pub const STORAGE_PROXY: Component = Component {
    name: "storage-proxy",
    group: "storage-proxy",
    module_path: concat!(module_path!(), "::storage_proxy"),
};

/// Every component, in the order above.
pub const COMPONENTS: [Component; 3] = [MANAGER, AGENT, STORAGE_PROXY];

impl Component {
    /// The component whose handlers live in `module_path` (or one of its submodules).
    pub fn of_module(module_path: &str) -> Option<Component> {
        COMPONENTS.into_iter().find(|c| {
            module_path == c.module_path
                || module_path.strip_prefix(c.module_path).is_some_and(|rest| rest.starts_with("::"))
        })
    }
}

/// What every handler knows about the instance it runs in.
#[derive(Debug, Clone)]
pub struct Node {
    /// Instance name (`agent-2`): the producer's source id and the timeline's column.
    pub name: String,
    /// Produces the events this instance emits.
    pub producer: EventProducer,
    /// Where the instance reports what it does.
    pub timeline: Timeline,
}

impl Node {
    /// An instance called `name` producing with `producer` and reporting to `timeline`.
    pub fn new(name: impl Into<String>, producer: EventProducer, timeline: Timeline) -> Self {
        Node { name: name.into(), producer, timeline }
    }

    /// Writes a line to the timeline under this instance's name.
    pub fn log(&self, text: impl Into<String>) {
        self.timeline.record(&self.name, text);
    }

    /// Produces `event` from this instance.
    pub async fn emit<E: Event>(&self, event: &E) -> Result<(), event_core::Error> {
        self.producer.produce(event).await
    }
}

/// The current time in unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_know_their_modules() {
        assert_eq!(MANAGER.module_path, "examples::components::manager");
        assert_eq!(Component::of_module("examples::components::storage_proxy"), Some(STORAGE_PROXY));
        assert_eq!(Component::of_module("examples::components::agent::inner"), Some(AGENT));
        assert_eq!(Component::of_module("examples::components::agents"), None);
        assert_eq!(Component::of_module("other"), None);
    }
}
