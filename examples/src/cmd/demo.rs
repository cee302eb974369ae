//! `demo` (the default command): a small cluster on an in-memory queue.
//!
//! Two managers, three agents, two storage proxies and a web UI, each with its own dispatcher
//! and producer, all on one [`InMemoryQueue`]:
//!
//! 1. Agents join: status broadcasts reach both managers; heartbeats go to one manager each.
//! 2. Three sessions (six kernels) are created: the agent pool splits the creation requests,
//!    managers split the bookkeeping, and session broadcasts reach every storage proxy and the
//!    UI.
//! 3. Background tasks: two folder clones and a deletion. One clone keeps failing (its source
//!    is corrupt): retried, then dead-lettered. The deletion fails once and succeeds on retry.
//! 4. An operator lists the dead letters, repairs the folder and replays the clone.
//! 5. Every session is terminated: every agent receives the request and destroys its share.
//!
//! It ends with a summary of every handler's outcomes, aggregated over instances (counts that
//! do not depend on scheduling), and a set of checks; a failed check makes the exit code 1.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use event_core::prelude::*;
use event_core::{Delivery, HandlerStats, RunningDispatcher};
use examples::components::agent::{self, AgentHost};
use examples::components::manager::{BgtaskStatus, KernelStatus, ManagerDb, SchedulerCache, SessionStatus};
use examples::components::storage_proxy::{SessionCache, StorageBackend};
use examples::components::{now_ms, Component, Node, AGENT, MANAGER, STORAGE_PROXY};
use examples::event_types::bgtask::BgtaskUpdatedEvent;
use examples::event_types::common::ResourceSlots;
use examples::event_types::kernel::{
    ClusterRole, ImagePullPolicy, KernelCreationRequestedEvent, KernelPullingBroadcastEvent,
    KernelStartedBroadcastEvent, KernelTerminatedBroadcastEvent,
};
use examples::event_types::session::{
    SessionEnqueuedEvent, SessionStartedBroadcastEvent, SessionTerminatedBroadcastEvent, SessionTerminationReason,
    SessionTerminationRequestedEvent, SessionType,
};
use examples::event_types::vfolder::{VFolderCloneRequestedEvent, VFolderDeletionRequestedEvent};
use examples::timeline::Timeline;

use super::{render_table, write_stdout};

/// Options of `demo`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct DemoArgs {
    /// Print only the summary, not the timeline.
    #[arg(long, short)]
    quiet: bool,
    /// Serve metrics in Prometheus text format on this address (`GET /metrics`).
    #[arg(long)]
    metrics_addr: Option<std::net::SocketAddr>,
    /// With --metrics-addr: keep serving metrics this long after the demo ends (or until Ctrl-C).
    #[arg(long, value_parser = super::parse_duration, requires = "metrics_addr")]
    linger: Option<std::time::Duration>,
    /// Run on Redis at this URL instead of the in-memory queue. The demo uses its own key
    /// prefix (`demo-<time>:`) and deletes its keys when it is done.
    #[arg(long)]
    redis: Option<String>,
}

const SCALING_GROUP: &str = "default";
const VOLUME: &str = "nas01:projects";
const IMAGE_PYTORCH: &str = "cr.example.com/stable/pytorch:2.4-py312-cuda12.4";
const IMAGE_PYTHON: &str = "cr.example.com/stable/python:3.12-ubuntu24.04";
const IMAGE_SPARK: &str = "cr.example.com/community/spark:latest";
/// Images every agent already has.
const PRELOADED_IMAGES: [&str; 2] = [IMAGE_PYTORCH, IMAGE_PYTHON];
const UI: &str = "webui-1";

/// One service instance of the demo: its dispatcher and where it belongs.
struct Instance {
    component: &'static str,
    name: String,
    running: RunningDispatcher,
}

/// A session the demo creates.
struct SessionPlan {
    id: &'static str,
    name: &'static str,
    access_key: &'static str,
    session_type: SessionType,
    image: &'static str,
    pull_policy: ImagePullPolicy,
    slots: ResourceSlots,
    kernel_ids: &'static [&'static str],
    vfolders: &'static [&'static str],
}

const SESSIONS: [SessionPlan; 3] = [
    SessionPlan {
        id: "s-01",
        name: "train-resnet50",
        access_key: "AKALICE",
        session_type: SessionType::Batch,
        image: IMAGE_PYTORCH,
        pull_policy: ImagePullPolicy::IfNotPresent,
        slots: ResourceSlots::new(8, 64, 1),
        kernel_ids: &["k-01", "k-02"],
        vfolders: &["datasets", "checkpoints"],
    },
    SessionPlan {
        id: "s-02",
        name: "jupyter-bob",
        access_key: "AKBOB",
        session_type: SessionType::Interactive,
        image: IMAGE_PYTHON,
        pull_policy: ImagePullPolicy::IfNotPresent,
        slots: ResourceSlots::new(2, 8, 0),
        kernel_ids: &["k-03"],
        vfolders: &["home-bob"],
    },
    SessionPlan {
        id: "s-03",
        name: "etl-nightly",
        access_key: "AKETL",
        session_type: SessionType::Batch,
        image: IMAGE_SPARK,
        pull_policy: ImagePullPolicy::Always,
        slots: ResourceSlots::new(4, 16, 0),
        kernel_ids: &["k-04", "k-05", "k-06"],
        vfolders: &["datasets"],
    },
];

const KERNEL_COUNT: usize = 6;

/// Runs `demo`.
pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let wall = Instant::now();
    let timeline = Timeline::new(!args.quiet);
    if let Some(addr) = args.metrics_addr {
        let bound = super::metrics::serve(addr).await?;
        println!("metrics: http://{bound}/metrics");
    }
    let prefix = format!("demo-{}:", now_ms());
    let queue = super::backend::queue(args.redis.as_deref(), &prefix).await?;
    let where_ = if args.redis.is_some() { "Redis" } else { "one in-memory queue" };

    // Shared backends: the manager's database and the storage volume.
    let db = ManagerDb::new();
    let storage = StorageBackend::new();
    storage.add("vf-01", "datasets", 3 << 30);
    storage.add("vf-02", "broken-checkpoints", 512 << 20);
    storage.add("vf-03", "scratch-old", 2 << 30);
    storage.add("vf-04", "checkpoints", 1 << 30);
    storage.add("vf-05", "home-bob", 256 << 20);

    let node = |name: &str| Node::new(name, EventProducer::new(queue.clone(), name), timeline.clone());
    let mut instances: Vec<Instance> = Vec::new();

    // Managers.
    let mut manager_caches = Vec::new();
    let mut managers = Vec::new();
    for name in ["manager-1", "manager-2"] {
        let cache = SchedulerCache::new();
        let dispatcher = EventDispatcher::builder(queue.clone())
            .group(MANAGER.group)
            .consumer(name)
            .state(node(name))
            .state(db.clone())
            .state(cache.clone())
            .discover_in_module(MANAGER.module_path)
            .build()
            .with_context(|| format!("building the dispatcher of {name}"))?;
        instances.push(start(MANAGER, name, dispatcher).await?);
        manager_caches.push((name, cache));
        managers.push(node(name));
    }

    // Agents.
    let mut agents = Vec::new();
    for name in ["agent-1", "agent-2", "agent-3"] {
        let host = AgentHost::new(name, SCALING_GROUP, ResourceSlots::new(64, 512, 4), &PRELOADED_IMAGES);
        let dispatcher = EventDispatcher::builder(queue.clone())
            .group(AGENT.group)
            .consumer(name)
            .state(node(name))
            .state(host.clone())
            .discover_in_module(AGENT.module_path)
            .build()
            .with_context(|| format!("building the dispatcher of {name}"))?;
        instances.push(start(AGENT, name, dispatcher).await?);
        agents.push((node(name), host));
    }

    // Storage proxies.
    let mut storage_caches = Vec::new();
    for name in ["storage-proxy-1", "storage-proxy-2"] {
        let cache = SessionCache::new();
        let dispatcher = EventDispatcher::builder(queue.clone())
            .group(STORAGE_PROXY.group)
            .consumer(name)
            .state(node(name))
            .state(storage.clone())
            .state(cache.clone())
            .discover_in_module(STORAGE_PROXY.module_path)
            .build()
            .with_context(|| format!("building the dispatcher of {name}"))?;
        instances.push(start(STORAGE_PROXY, name, dispatcher).await?);
        storage_caches.push((name, cache));
    }

    // The web UI: no `#[handler]`s, only runtime closures on broadcast events.
    let dashboard = Arc::new(AtomicI64::new(0));
    let webui = EventDispatcher::builder(queue.clone()).group("webui").consumer(UI).build()?;
    subscribe_ui(&webui, &timeline, &dashboard);
    let webui = Instance { component: "webui", name: UI.to_owned(), running: webui.start().await? };
    instances.push(webui);

    timeline.section(format!(
        "{} instances on {where_}: manager-1..2, agent-1..3, storage-proxy-1..2, {UI}",
        instances.len()
    ));

    // 1. Agents join.
    timeline.section("1. agents join the cluster");
    for (node, host) in &agents {
        agent::announce_alive(node, host).await?;
    }
    settle(&instances).await;

    // 2. Sessions.
    timeline.section("2. three sessions, six kernels: the agent pool splits the work");
    let manager = &managers[0];
    let mut enqueued = Vec::new();
    let mut requests = Vec::new();
    for s in &SESSIONS {
        db.create_session(s.id, s.name, s.access_key, s.kernel_ids, s.vfolders);
        enqueued.push(SessionEnqueuedEvent {
            session_id: s.id.to_owned(),
            session_name: s.name.to_owned(),
            access_key: s.access_key.to_owned(),
            session_type: s.session_type,
            cluster_size: u32::try_from(s.kernel_ids.len())?,
            scaling_group: SCALING_GROUP.to_owned(),
            enqueued_at_ms: now_ms(),
        });
        for (idx, kernel_id) in s.kernel_ids.iter().enumerate() {
            requests.push(KernelCreationRequestedEvent {
                kernel_id: (*kernel_id).to_owned(),
                session_id: s.id.to_owned(),
                session_name: s.name.to_owned(),
                image: s.image.to_owned(),
                architecture: "x86_64".to_owned(),
                pull_policy: s.pull_policy,
                cluster_role: if idx == 0 { ClusterRole::Main } else { ClusterRole::Sub },
                cluster_idx: u32::try_from(idx)?,
                resource_slots: s.slots,
                scaling_group: SCALING_GROUP.to_owned(),
                requested_at_ms: now_ms(),
            });
        }
    }
    manager.log(format!(
        "enqueued {} sessions, requesting {} kernels from the agent pool",
        enqueued.len(),
        requests.len()
    ));
    manager.producer.produce_batch(&enqueued).await?;
    manager.producer.produce_batch(&requests).await?;
    settle(&instances).await;
    timeline.record(UI, format!("dashboard: {} kernels running", dashboard.load(Ordering::SeqCst)));

    // 3. Background tasks.
    timeline.section("3. background tasks: clone two folders (one is corrupt), delete one");
    let api = &managers[1];
    db.create_bgtask("t-01", "vfolder.clone");
    db.create_bgtask("t-02", "vfolder.clone");
    api.log(
        "clone datasets -> datasets-copy (t-01), broken-checkpoints -> checkpoints-restore (t-02); delete scratch-old",
    );
    api.producer
        .produce_batch(&[
            clone_request("t-01", "vf-01", "datasets", "vf-11", "datasets-copy"),
            clone_request("t-02", "vf-02", "broken-checkpoints", "vf-12", "checkpoints-restore"),
        ])
        .await?;
    api.producer
        .produce(&VFolderDeletionRequestedEvent {
            vfolder_id: "vf-03".to_owned(),
            name: "scratch-old".to_owned(),
            volume: VOLUME.to_owned(),
            requested_by: "AKBOB".to_owned(),
        })
        .await?;
    settle(&instances).await;

    // 4. Dead letters and replay.
    timeline.section("4. an operator inspects the dead letters, repairs the folder and replays");
    let storage_proxy = instances.iter().find(|i| i.component == STORAGE_PROXY.name).context("no storage proxy")?;
    let dead = storage_proxy.running.dead_letters(100).await?;
    let dead_before_replay = dead.len();
    for letter in &dead {
        timeline.record(
            "operator",
            format!(
                "dead letter {}: `{}` gave up on `{}` after {} attempts: {}",
                letter.id, letter.handler, letter.event_name, letter.attempts, letter.error
            ),
        );
    }
    storage.repair("broken-checkpoints");
    timeline.record("operator", "repaired broken-checkpoints; replaying its dead letters");
    for letter in &dead {
        storage_proxy.running.replay(letter).await?;
    }
    settle(&instances).await;
    let dead_after_replay = storage_proxy.running.dead_letters(100).await?.len();
    timeline.record("operator", format!("dead letters left: {dead_after_replay}"));

    // 5. Termination.
    timeline.section("5. every session is terminated: each agent destroys its own kernels");
    let terminations: Vec<SessionTerminationRequestedEvent> = SESSIONS
        .iter()
        .map(|s| {
            db.mark_terminating(s.id, SessionTerminationReason::UserRequested);
            SessionTerminationRequestedEvent {
                session_id: s.id.to_owned(),
                session_name: s.name.to_owned(),
                reason: SessionTerminationReason::UserRequested,
                requested_by: s.access_key.to_owned(),
            }
        })
        .collect();
    manager.log(format!("terminating {} sessions", terminations.len()));
    manager.producer.produce_batch(&terminations).await?;
    settle(&instances).await;
    timeline.record(UI, format!("dashboard: {} kernels running", dashboard.load(Ordering::SeqCst)));

    // Summary.
    let stats: Vec<(&'static str, String, HandlerStats)> = instances
        .iter()
        .flat_map(|i| i.running.stats().into_iter().map(|s| (i.component, i.name.clone(), s)))
        .collect();
    let mut report = summary(&stats);

    let mut checks = Checks::default();
    let kernels = db.kernels();
    checks.expect(
        "every kernel was created, then terminated",
        kernels.len() == KERNEL_COUNT && kernels.iter().all(|k| k.status == KernelStatus::Terminated),
    );
    checks.expect(
        "every session ran, then terminated",
        db.sessions().iter().all(|s| s.status == SessionStatus::Terminated),
    );
    checks.expect(
        "every agent cleaned up its containers",
        agents.iter().all(|(_, host)| host.kernels().is_empty())
            && agents.iter().map(|(_, h)| h.counts().0).sum::<u64>() == KERNEL_COUNT as u64,
    );
    checks
        .expect("both clones done (one after its replay)", db.bgtasks().iter().all(|t| t.status == BgtaskStatus::Done));
    checks.expect("one dead letter before the replay", dead_before_replay == 1);
    checks.expect("no dead letter after the replay", dead_after_replay == 0);
    checks.expect(
        "scratch-old deleted, datasets-copy and checkpoints-restore created",
        storage.get("scratch-old").is_none()
            && storage.get("datasets-copy").is_some()
            && storage.get("checkpoints-restore").is_some(),
    );
    checks.expect(
        "every manager instance saw every agent come alive",
        manager_caches
            .iter()
            .all(|(_, c)| c.agents_in(examples::event_types::agent::AgentStatus::Alive).len() == agents.len()),
    );
    checks.expect(
        "every storage proxy instance saw every session start and end",
        storage_caches.iter().all(|(_, c)| c.active_sessions() == 0),
    );
    checks.expect("the UI dashboard is back to zero", dashboard.load(Ordering::SeqCst) == 0);
    let totals = |handler: &str| {
        stats
            .iter()
            .filter(|(_, _, s)| s.handler == handler)
            .fold((0, 0, 0), |acc, (_, _, s)| (acc.0 + s.handled, acc.1 + s.retried, acc.2 + s.dead_lettered))
    };
    checks.expect("clone_vfolder: 2 handled, 2 retried, 1 dead-lettered", totals("clone_vfolder") == (2, 2, 1));
    checks.expect("delete_vfolder: 1 handled after 1 retry", totals("delete_vfolder") == (1, 1, 0));

    // Stop every instance at once: each waits for its handlers in flight and flushes its acks.
    let mut stopping = tokio::task::JoinSet::new();
    for instance in instances {
        stopping.spawn(instance.running.shutdown(Duration::from_secs(2)));
    }
    while stopping.join_next().await.is_some() {}
    if let Some(url) = &args.redis {
        let removed = super::backend::delete_prefix(url, &prefix).await?;
        report.push_str(&format!("\nremoved the demo's {removed} Redis keys (prefix `{prefix}`)\n"));
    }

    report.push('\n');
    report.push_str(&checks.report());
    report.push_str(&format!("demo finished in {} ms\n", wall.elapsed().as_millis()));
    write_stdout(&report)?;
    if let Some(d) = args.linger {
        super::metrics::linger(d).await;
    }
    checks.into_result()
}

async fn start(component: Component, name: &str, dispatcher: EventDispatcher) -> anyhow::Result<Instance> {
    let running = dispatcher.start().await.with_context(|| format!("starting the dispatcher of {name}"))?;
    Ok(Instance { component: component.name, name: name.to_owned(), running })
}

fn clone_request(
    task_id: &str,
    source_id: &str,
    source: &str,
    target_id: &str,
    target: &str,
) -> VFolderCloneRequestedEvent {
    VFolderCloneRequestedEvent {
        task_id: task_id.to_owned(),
        source_vfolder_id: source_id.to_owned(),
        source_name: source.to_owned(),
        target_vfolder_id: target_id.to_owned(),
        target_name: target.to_owned(),
        volume: VOLUME.to_owned(),
        requested_by: "AKALICE".to_owned(),
    }
}

/// The web UI's runtime subscribers: session and task notifications are shown, kernel-level
/// ones only move the dashboard's running-kernel gauge.
fn subscribe_ui(webui: &EventDispatcher, timeline: &Timeline, dashboard: &Arc<AtomicI64>) {
    let tl = timeline.clone();
    webui.subscribe::<SessionEnqueuedEvent, _, _>(move |ev, _meta| {
        let tl = tl.clone();
        async move {
            tl.record(UI, format!("{} PENDING ({} kernel(s))", ev.session_name, ev.cluster_size));
            Ok(())
        }
    });
    let tl = timeline.clone();
    webui.subscribe::<KernelPullingBroadcastEvent, _, _>(move |ev, _meta| {
        let tl = tl.clone();
        async move {
            tl.record(UI, format!("kernel {} PULLING on {}", ev.kernel_id, ev.agent_id));
            Ok(())
        }
    });
    let tl = timeline.clone();
    webui.subscribe::<SessionStartedBroadcastEvent, _, _>(move |ev, _meta| {
        let tl = tl.clone();
        async move {
            tl.record(UI, format!("{} RUNNING", ev.session_name));
            Ok(())
        }
    });
    let tl = timeline.clone();
    webui.subscribe::<SessionTerminatedBroadcastEvent, _, _>(move |ev, _meta| {
        let tl = tl.clone();
        async move {
            tl.record(UI, format!("{} TERMINATED ({})", ev.session_name, ev.reason));
            Ok(())
        }
    });
    let tl = timeline.clone();
    webui.subscribe::<BgtaskUpdatedEvent, _, _>(move |ev, _meta| {
        let tl = tl.clone();
        async move {
            let pct = (ev.current_progress * 100).checked_div(ev.total_progress).unwrap_or(100);
            tl.record(UI, format!("bgtask {} {pct:>3}%", ev.task_id));
            Ok(())
        }
    });
    let gauge = dashboard.clone();
    webui.subscribe::<KernelStartedBroadcastEvent, _, _>(move |_ev, _meta| {
        gauge.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    });
    let gauge = dashboard.clone();
    webui.subscribe::<KernelTerminatedBroadcastEvent, _, _>(move |_ev, _meta| {
        gauge.fetch_sub(1, Ordering::SeqCst);
        async { Ok(()) }
    });
}

/// Drains every dispatcher until a full round changes nothing: handlers of one instance
/// produce events for others, so one round is not enough.
async fn settle(instances: &[Instance]) {
    fn progress(instances: &[Instance]) -> u64 {
        instances.iter().flat_map(|i| i.running.stats()).map(|s| s.handled + s.failed + s.dead_lettered).sum()
    }
    for _ in 0..100 {
        let before = progress(instances);
        for instance in instances {
            instance.running.drain().await;
        }
        if progress(instances) == before {
            return;
        }
    }
}

/// Per handler, over every instance running it.
#[derive(Default)]
struct Totals {
    instances: u64,
    handled: u64,
    retried: u64,
    dead_lettered: u64,
    failed: u64,
    by_instance: Vec<(String, u64)>,
}

fn summary(stats: &[(&'static str, String, HandlerStats)]) -> String {
    let mut out = String::new();
    // (component, handler, event) -> totals; BTreeMap keeps the output order stable.
    let order = |c: &str| match c {
        "manager" => 0,
        "agent" => 1,
        "storage-proxy" => 2,
        _ => 3,
    };
    let mut by_handler: BTreeMap<(u8, &str, &str, &str, &str), Totals> = BTreeMap::new();
    for (component, instance, s) in stats {
        let delivery = if s.group.is_empty() { Delivery::Broadcast.as_str() } else { Delivery::Anycast.as_str() };
        let t = by_handler.entry((order(component), component, &s.handler, &s.event, delivery)).or_default();
        t.instances += 1;
        t.handled += s.handled;
        t.retried += s.retried;
        t.dead_lettered += s.dead_lettered;
        t.failed += s.failed;
        t.by_instance.push((instance.clone(), s.handled));
    }

    let active: Vec<_> = by_handler.iter().filter(|(_, t)| t.handled + t.failed > 0).collect();
    let idle = by_handler.len() - active.len();
    let rows: Vec<Vec<String>> = active
        .iter()
        .map(|((_, component, handler, event, delivery), t)| {
            vec![
                (*component).to_owned(),
                (*handler).to_owned(),
                (*event).to_owned(),
                (*delivery).to_owned(),
                t.instances.to_string(),
                t.handled.to_string(),
                t.retried.to_string(),
                t.dead_lettered.to_string(),
            ]
        })
        .collect();
    out.push_str("\n== Summary: per handler, over all instances ==\n\n");
    out.push_str(&render_table(
        &["COMPONENT", "HANDLER", "EVENT", "DELIVERY", "INSTANCES", "HANDLED", "RETRIED", "DEAD-LETTERED"],
        &rows,
    ));
    if idle > 0 {
        out.push_str(&format!("({idle} more handlers were loaded and had nothing to do)\n"));
    }

    let mut per_component: BTreeMap<(u8, &str), (u64, u64, u64)> = BTreeMap::new();
    for ((rank, component, ..), t) in &by_handler {
        let e = per_component.entry((*rank, component)).or_default();
        e.0 += t.handled;
        e.1 += t.retried;
        e.2 += t.dead_lettered;
    }
    let rows: Vec<Vec<String>> = per_component
        .iter()
        .map(|((_, c), (h, r, d))| vec![(*c).to_owned(), h.to_string(), r.to_string(), d.to_string()])
        .collect();
    out.push_str("\n== Summary: per component ==\n\n");
    out.push_str(&render_table(&["COMPONENT", "HANDLED", "RETRIED", "DEAD-LETTERED"], &rows));

    out.push_str("\n== Anycast work split (varies from run to run) ==\n\n");
    for ((_, _, handler, _, delivery), t) in &active {
        if *delivery != Delivery::Anycast.as_str() || t.instances < 2 {
            continue;
        }
        let split: Vec<String> = t.by_instance.iter().map(|(instance, n)| format!("{instance} {n}")).collect();
        out.push_str(&format!("{handler:<24} {}\n", split.join(", ")));
    }
    out
}

/// Invariants of the demo that do not depend on scheduling.
#[derive(Default)]
struct Checks {
    results: Vec<(&'static str, bool)>,
}

impl Checks {
    fn expect(&mut self, what: &'static str, ok: bool) {
        self.results.push((what, ok));
    }

    fn report(&self) -> String {
        self.results.iter().map(|(what, ok)| format!("{} {what}\n", if *ok { "[ok]  " } else { "[FAIL]" })).collect()
    }

    fn into_result(self) -> anyhow::Result<()> {
        let failed: Vec<&str> = self.results.iter().filter(|(_, ok)| !ok).map(|(w, _)| *w).collect();
        anyhow::ensure!(failed.is_empty(), "demo checks failed: {}", failed.join("; "));
        Ok(())
    }
}
