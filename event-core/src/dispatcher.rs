//! [`EventDispatcher`] and its builder: which handlers run, with what state and options.

use std::any::TypeId;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::envelope::DEFAULT_MAX_PAYLOAD;
use crate::event::{registered_events, AnycastEvent, BroadcastEvent, Delivery, Event, EventInfo};
use crate::handler::{registered_handlers, Backoff, HandlerCall, HandlerDescriptor, InvokeResult};
use crate::queue::MessageQueue;
use crate::retry::RetryPolicy;
use crate::runtime::RunningDispatcher;
use crate::state::StateMap;
use crate::stats::HandlerCounters;
use crate::{Error, EventMeta, HandlerError, Result};

/// Identifies a handler registered on a dispatcher, for [`EventDispatcher::unregister`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HandlerId(u64);

pub(crate) type Invoker = Arc<dyn Fn(&HandlerCall<'_>) -> InvokeResult + Send + Sync>;

/// A handler as the dispatcher runs it: a `#[handler]` record or a runtime closure, with its
/// options resolved against the dispatcher's defaults.
#[derive(Clone)]
pub(crate) struct HandlerSpec {
    pub(crate) id: HandlerId,
    pub(crate) name: Arc<str>,
    pub(crate) event: EventInfo,
    pub(crate) group: Arc<str>,
    pub(crate) retry: RetryPolicy,
    pub(crate) timeout: Option<Duration>,
    pub(crate) concurrency: u32,
    pub(crate) requires: Vec<(TypeId, &'static str)>,
    pub(crate) invoke: Invoker,
    pub(crate) counters: Arc<HandlerCounters>,
}

impl std::fmt::Debug for HandlerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerSpec")
            .field("name", &self.name)
            .field("event", &self.event.name)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// Defaults applied to handlers that do not set an option (and to every runtime closure).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Defaults {
    pub(crate) retry: RetryPolicy,
    pub(crate) timeout: Option<Duration>,
    pub(crate) concurrency: u32,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults { retry: RetryPolicy::default(), timeout: None, concurrency: 16 }
    }
}

/// Settings of a running dispatcher, fixed at `build()`.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) group: Arc<str>,
    pub(crate) consumer: Arc<str>,
    pub(crate) claim_idle: Duration,
    pub(crate) max_payload: usize,
    pub(crate) poll_interval: Duration,
    pub(crate) max_batch: usize,
    pub(crate) subscriber: Option<Arc<str>>,
}

enum Discovery {
    None,
    All,
    Filtered { modules: Vec<String>, groups: Vec<String> },
}

/// Configures an [`EventDispatcher`]; made by [`EventDispatcher::builder`].
pub struct EventDispatcherBuilder {
    queue: Arc<dyn MessageQueue>,
    group: String,
    consumer: Option<String>,
    state: StateMap,
    discovery: Discovery,
    defaults: Defaults,
    claim_idle: Duration,
    max_payload: usize,
    poll_interval: Duration,
    max_batch: usize,
    subscriber: Option<String>,
    expected_handlers: usize,
}

impl std::fmt::Debug for EventDispatcherBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventDispatcherBuilder")
            .field("group", &self.group)
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}

/// Runs handlers: the `#[handler]`s it discovers and closures registered at run time.
///
/// ```
/// use event_core::prelude::*;
///
/// #[anycast_event(domain = "bgtask")]
/// #[derive(Debug, Clone)]
/// pub struct BgtaskDoneEvent { pub task_id: String }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), event_core::Error> {
/// let queue = InMemoryQueue::new();
/// let dispatcher = EventDispatcher::builder(queue.clone()).group("manager").build()?;
/// dispatcher.consume::<BgtaskDoneEvent, _, _>(|ev, meta| async move {
///     println!("{} done (attempt {})", ev.task_id, meta.attempt);
///     Ok(())
/// });
/// let running = dispatcher.start().await?;
/// EventProducer::new(queue, "api").produce(&BgtaskDoneEvent { task_id: "t-1".into() }).await?;
/// running.drain().await;
/// running.shutdown(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
pub struct EventDispatcher {
    pub(crate) queue: Arc<dyn MessageQueue>,
    pub(crate) settings: Settings,
    pub(crate) state: StateMap,
    pub(crate) defaults: Defaults,
    handlers: Mutex<BTreeMap<HandlerId, HandlerSpec>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for EventDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventDispatcher")
            .field("group", &self.settings.group)
            .field("consumer", &self.settings.consumer)
            .field("handlers", &self.lock_handlers().len())
            .finish_non_exhaustive()
    }
}

fn default_consumer_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_owned()))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let suffix: u32 = rand::random();
    format!("{host}-{}-{suffix:08x}", std::process::id())
}

impl EventDispatcherBuilder {
    /// Consumer group of anycast handlers (a service name, e.g. `manager`). Default `default`.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// Name of this instance within its groups. Default: `<host>-<pid>-<random>`.
    /// A stable name lets a restarted instance pick up its own pending entries first.
    pub fn consumer(mut self, consumer: impl Into<String>) -> Self {
        self.consumer = Some(consumer.into());
        self
    }

    /// Provides a value for handlers that take `State<T>`; a later value of the same type wins.
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// Registers every `#[handler]` linked into the binary.
    ///
    /// A handler in a crate the binary never names is not linked: write `use my_handlers as _;`.
    pub fn discover(mut self) -> Self {
        self.discovery = Discovery::All;
        self
    }

    /// Registers the `#[handler]`s whose module path starts with `module` (e.g.
    /// `my_app::storage`); can be called several times. For binaries hosting several services.
    pub fn discover_in_module(mut self, module: impl Into<String>) -> Self {
        match &mut self.discovery {
            Discovery::Filtered { modules, .. } => modules.push(module.into()),
            _ => self.discovery = Discovery::Filtered { modules: vec![module.into()], groups: Vec::new() },
        }
        self
    }

    /// Registers the `#[handler]`s whose effective group (their `group = ".."`, else this
    /// dispatcher's group) is `group`; can be called several times.
    pub fn discover_in_group(mut self, group: impl Into<String>) -> Self {
        match &mut self.discovery {
            Discovery::Filtered { groups, .. } => groups.push(group.into()),
            _ => self.discovery = Discovery::Filtered { modules: Vec::new(), groups: vec![group.into()] },
        }
        self
    }

    /// Default attempts (the first included) of anycast handlers. Default 3.
    #[track_caller]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        assert!(attempts >= 1, "max_attempts must be at least 1");
        self.defaults.retry.max_attempts = attempts;
        self
    }

    /// Default backoff of anycast handlers. Default: exponential from 100 ms to 30 s.
    pub fn backoff(mut self, backoff: Backoff, base_delay: Duration, max_delay: Duration) -> Self {
        self.defaults.retry.backoff = backoff;
        self.defaults.retry.base_delay = base_delay;
        self.defaults.retry.max_delay = max_delay.max(base_delay);
        self
    }

    /// Default time limit of one handler invocation. Default: none.
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.defaults.timeout = Some(timeout);
        self
    }

    /// Default in-flight invocations per handler. Default 16.
    #[track_caller]
    pub fn concurrency(mut self, n: u32) -> Self {
        assert!(n >= 1, "concurrency must be at least 1");
        self.defaults.concurrency = n;
        self
    }

    /// How long an entry may sit unacked with another consumer before this one reclaims it.
    /// Default 60 s.
    pub fn claim_idle(mut self, idle: Duration) -> Self {
        self.claim_idle = idle;
        self
    }

    /// Largest payload accepted from a stream; larger entries are dead-lettered. Default 1 MiB.
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// Longest wait of one blocking read, which also bounds how late a due retry is picked
    /// up. Default 50 ms.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Most entries read in one call. Default 512.
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n.max(1);
        self
    }

    /// Makes this dispatcher's broadcast subscribers durable under a stable `name`: they read
    /// through a consumer group `subscriber:<name>`, so after a restart they resume where they
    /// stopped (and re-run what was in flight) instead of starting from the newest entry.
    /// Without it, subscribers are ephemeral: they see what is appended while they run.
    pub fn subscriber_name(mut self, name: impl Into<String>) -> Self {
        self.subscriber = Some(name.into());
        self
    }

    /// Makes `build()` fail unless discovery found at least `n` handlers: a guard against a
    /// handler crate the binary forgot to name (and so was not linked).
    pub fn expect_handlers(mut self, n: usize) -> Self {
        self.expected_handlers = n;
        self
    }

    /// Builds the dispatcher, refusing duplicate event names, duplicate handlers and a
    /// `State<T>` nobody provided.
    pub fn build(self) -> Result<EventDispatcher> {
        let settings = Settings {
            group: Arc::from(self.group.as_str()),
            consumer: Arc::from(self.consumer.unwrap_or_else(default_consumer_name)),
            claim_idle: self.claim_idle,
            max_payload: self.max_payload,
            poll_interval: self.poll_interval,
            max_batch: self.max_batch,
            subscriber: self.subscriber.map(|n| Arc::from(format!("subscriber:{n}"))),
        };
        for (what, name) in [("group", &settings.group), ("consumer", &settings.consumer)] {
            if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '{' | '}')) {
                return Err(Error::Config(format!(
                    "invalid {what} name `{name}`: it must be non-empty, without whitespace or braces (braces would change the Redis hash tag of the keys it is part of)"
                )));
            }
        }
        let dispatcher = EventDispatcher {
            queue: self.queue,
            settings,
            state: self.state,
            defaults: self.defaults,
            handlers: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
        };
        let discovered: Vec<&'static HandlerDescriptor> = match &self.discovery {
            Discovery::None => Vec::new(),
            Discovery::All => registered_handlers(),
            Discovery::Filtered { modules, groups } => registered_handlers()
                .into_iter()
                .filter(|h| {
                    let group = h.options.group.unwrap_or(&dispatcher.settings.group);
                    let module_ok = modules.is_empty()
                        || modules.iter().any(|m| {
                            h.module_path == m
                                || h.module_path.strip_prefix(m.as_str()).is_some_and(|r| r.starts_with("::"))
                        });
                    let group_ok = groups.is_empty() || groups.iter().any(|g| g == group);
                    module_ok && group_ok
                })
                .collect(),
        };
        if discovered.len() < self.expected_handlers {
            return Err(Error::TooFewHandlers { found: discovered.len(), expected: self.expected_handlers });
        }
        for d in discovered {
            dispatcher.add(dispatcher.spec_from_descriptor(d));
        }
        dispatcher.validate()?;
        tracing::info!(
            group = %dispatcher.settings.group,
            consumer = %dispatcher.settings.consumer,
            handlers = dispatcher.lock_handlers().len(),
            "event dispatcher built"
        );
        Ok(dispatcher)
    }
}

impl EventDispatcher {
    /// Starts configuring a dispatcher on `queue`.
    pub fn builder(queue: impl MessageQueue) -> EventDispatcherBuilder {
        Self::builder_arc(Arc::new(queue))
    }

    /// Like [`EventDispatcher::builder`] for a queue already behind an `Arc`.
    pub fn builder_arc(queue: Arc<dyn MessageQueue>) -> EventDispatcherBuilder {
        EventDispatcherBuilder {
            queue,
            group: "default".to_owned(),
            consumer: None,
            state: StateMap::default(),
            discovery: Discovery::None,
            defaults: Defaults::default(),
            claim_idle: Duration::from_secs(60),
            max_payload: DEFAULT_MAX_PAYLOAD,
            poll_interval: Duration::from_millis(50),
            max_batch: 512,
            subscriber: None,
            expected_handlers: 0,
        }
    }

    pub(crate) fn lock_handlers(&self) -> std::sync::MutexGuard<'_, BTreeMap<HandlerId, HandlerSpec>> {
        self.handlers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn next_id(&self) -> HandlerId {
        HandlerId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn add(&self, spec: HandlerSpec) -> HandlerId {
        let id = spec.id;
        self.lock_handlers().insert(id, spec);
        id
    }

    fn spec_from_descriptor(&self, d: &'static HandlerDescriptor) -> HandlerSpec {
        let o = &d.options;
        let base = self.defaults;
        let base_delay = o.base_delay.unwrap_or(base.retry.base_delay);
        let retry = RetryPolicy {
            max_attempts: o.max_attempts.unwrap_or(base.retry.max_attempts).max(1),
            backoff: o.backoff.unwrap_or(base.retry.backoff),
            base_delay,
            max_delay: o.max_delay.unwrap_or(base.retry.max_delay).max(base_delay),
        };
        let invoke = d.invoke;
        HandlerSpec {
            id: self.next_id(),
            name: Arc::from(d.name),
            event: d.event,
            group: o.group.map_or_else(|| self.settings.group.clone(), Arc::from),
            retry,
            timeout: o.timeout.or(base.timeout),
            concurrency: o.concurrency.unwrap_or(base.concurrency).max(1),
            requires: d.requires.iter().filter_map(|f| f()).collect(),
            invoke: Arc::new(move |call: &HandlerCall<'_>| invoke(call)),
            counters: Arc::default(),
        }
    }

    fn closure_spec<E, F, Fut>(&self, f: F) -> HandlerSpec
    where
        E: Event,
        F: Fn(E, EventMeta) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), HandlerError>> + Send + 'static,
    {
        let id = self.next_id();
        let invoke: Invoker = Arc::new(move |call: &HandlerCall<'_>| {
            let ev = call.event::<E>()?;
            Ok(Box::pin(f(ev, call.meta())) as crate::handler::HandlerFuture)
        });
        HandlerSpec {
            id,
            name: Arc::from(format!("{}#{}", E::NAME, id.0)),
            event: EventInfo::of::<E>(),
            group: self.settings.group.clone(),
            retry: self.defaults.retry,
            timeout: self.defaults.timeout,
            concurrency: self.defaults.concurrency,
            requires: Vec::new(),
            invoke,
            counters: Arc::default(),
        }
    }

    /// Registers a closure as a consumer of the anycast event `E` in this dispatcher's group,
    /// with the dispatcher's default options. Its handler name is `<event name>#<n>`.
    pub fn consume<E, F, Fut>(&self, f: F) -> HandlerId
    where
        E: AnycastEvent,
        F: Fn(E, EventMeta) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), HandlerError>> + Send + 'static,
    {
        self.add(self.closure_spec(f))
    }

    /// Registers a closure as a subscriber of the broadcast event `E`.
    pub fn subscribe<E, F, Fut>(&self, f: F) -> HandlerId
    where
        E: BroadcastEvent,
        F: Fn(E, EventMeta) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), HandlerError>> + Send + 'static,
    {
        self.add(self.closure_spec(f))
    }

    /// Removes a handler before `start`; returns whether it was registered.
    pub fn unregister(&self, id: HandlerId) -> bool {
        self.lock_handlers().remove(&id).is_some()
    }

    /// Number of handlers registered.
    pub fn handler_count(&self) -> usize {
        self.lock_handlers().len()
    }

    /// Checks the registry: unique event names per delivery mode, unique handlers, state present.
    pub(crate) fn validate(&self) -> Result<()> {
        let handlers = self.lock_handlers();
        let mut by_name: HashMap<(Delivery, &str), (TypeId, &'static str)> = HashMap::new();
        let infos = registered_events().into_iter().map(|d| d.info).chain(handlers.values().map(|h| h.event));
        for info in infos {
            let key = (info.delivery, info.name);
            let this = ((info.type_id)(), (info.type_name)());
            match by_name.get(&key) {
                Some(other) if other.0 != this.0 => {
                    let (first, second) = if other.1 <= this.1 { (other.1, this.1) } else { (this.1, other.1) };
                    return Err(Error::DuplicateEventName {
                        delivery: info.delivery,
                        name: info.name.to_owned(),
                        first: first.to_owned(),
                        second: second.to_owned(),
                    });
                }
                Some(_) => {}
                None => {
                    by_name.insert(key, this);
                }
            }
        }
        let mut seen = HashMap::new();
        for h in handlers.values() {
            let group: &str = if h.event.delivery == Delivery::Anycast { &h.group } else { "" };
            if seen.insert((group, h.event.name, &*h.name), ()).is_some() {
                return Err(Error::DuplicateHandler {
                    handler: h.name.to_string(),
                    event: h.event.name.to_owned(),
                    group: group.to_owned(),
                });
            }
            for (type_id, type_name) in &h.requires {
                if !self.state.contains(*type_id) {
                    return Err(Error::MissingState {
                        handler: h.name.to_string(),
                        type_name: (*type_name).to_owned(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Starts reading. Returns once every consumer group exists and every broadcast cursor is
    /// fixed: anything appended after this returns is delivered.
    pub async fn start(self) -> Result<RunningDispatcher> {
        self.validate()?;
        let handlers: Vec<HandlerSpec> = self.lock_handlers().values().cloned().collect();
        RunningDispatcher::start(self, handlers).await
    }
}
