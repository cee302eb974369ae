//! The manager: the control plane. It keeps the books on agents, sessions, kernels and
//! background tasks, and turns kernel-level events into session-level ones.
//!
//! Several manager instances share one database ([`ManagerDb`]) and one consumer group, so each
//! anycast event (a heartbeat, a kernel that started) is recorded by exactly one of them.
//! Broadcast events (an agent's status changed) reach every instance, which keeps its own
//! [`SchedulerCache`].
//!
//! Delivery is at-least-once, so the bookkeeping is idempotent: a kernel reported started twice
//! is counted once, and a session is announced started only by the delivery that completed it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use event_core::prelude::*;

use super::{now_ms, Node};
use crate::event_types::agent::{AgentErrorEvent, AgentHeartbeatEvent, AgentStatus, AgentStatusChangedEvent};
use crate::event_types::artifact::ArtifactImportFailedEvent;
use crate::event_types::artifact_registry::{ArtifactRegistrySyncRequestedEvent, ArtifactRegistrySyncedEvent};
use crate::event_types::bgtask::{BgtaskCancelledEvent, BgtaskDoneEvent, BgtaskFailedEvent};
use crate::event_types::idle::IdleCheckRequestedEvent;
use crate::event_types::kernel::{KernelStartedAnycastEvent, KernelTerminatedAnycastEvent};
use crate::event_types::log::{ErrorLogRecordedEvent, LogCleanupRequestedEvent};
use crate::event_types::schedule::SchedulingTickEvent;
use crate::event_types::session::{
    SessionStartedBroadcastEvent, SessionTerminatedBroadcastEvent, SessionTerminationReason,
};
use crate::event_types::vfolder::VFolderDeletionFailedEvent;
use crate::event_types::volume::VolumeMountedEvent;

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

/// Lifecycle of a session in the manager's database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionStatus {
    /// Kernels are being created.
    Pending,
    /// Every kernel runs.
    Running,
    /// Kernels are being destroyed.
    Terminating,
    /// Every kernel is gone.
    Terminated,
}

/// Lifecycle of a kernel in the manager's database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelStatus {
    /// Requested from the agent pool.
    Pending,
    /// Its container runs.
    Running,
    /// Its container is gone.
    Terminated,
}

/// Outcome of a background task in the manager's database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BgtaskStatus {
    /// Still running.
    Running,
    /// Finished successfully.
    Done,
    /// Failed.
    Failed,
    /// Cancelled.
    Cancelled,
}

/// A session row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// Session id.
    pub session_id: String,
    /// Human-readable name.
    pub name: String,
    /// Owner's access key.
    pub access_key: String,
    /// Its kernels, main kernel first.
    pub kernel_ids: Vec<String>,
    /// Virtual folders mounted into it.
    pub vfolders: Vec<String>,
    /// Status.
    pub status: SessionStatus,
    /// Why it ended, once it did.
    pub termination_reason: Option<SessionTerminationReason>,
}

/// A kernel row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRow {
    /// Kernel id.
    pub kernel_id: String,
    /// Its session.
    pub session_id: String,
    /// Agent running it, once started.
    pub agent_id: Option<String>,
    /// Status.
    pub status: KernelStatus,
}

/// An agent row, updated by heartbeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    /// Agent id.
    pub agent_id: String,
    /// Containers running at the last heartbeat.
    pub container_count: u32,
    /// Heartbeats recorded.
    pub heartbeats: u64,
    /// Time of the last heartbeat, in unix milliseconds.
    pub last_heartbeat_ms: u64,
}

/// A background task row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgtaskRow {
    /// Task id.
    pub task_id: String,
    /// What it does (`vfolder.clone`).
    pub kind: String,
    /// Outcome so far.
    pub status: BgtaskStatus,
    /// Last message.
    pub message: Option<String>,
}

/// Progress of a session through a kernel-level change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionProgress {
    /// The session after the change.
    pub session: SessionRow,
    /// Kernels of the session in the target state.
    pub done: usize,
    /// Kernels of the session.
    pub total: usize,
    /// Whether this change completed the session (it happens once per session).
    pub completed_now: bool,
}

#[derive(Debug, Default)]
struct Tables {
    agents: BTreeMap<String, AgentRow>,
    sessions: BTreeMap<String, SessionRow>,
    kernels: BTreeMap<String, KernelRow>,
    bgtasks: BTreeMap<String, BgtaskRow>,
    error_logs: u64,
}

/// The manager's database, shared by every manager instance (clones share the tables).
#[derive(Debug, Clone, Default)]
pub struct ManagerDb {
    tables: Arc<Mutex<Tables>>,
}

impl ManagerDb {
    /// An empty database.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Inserts a pending session and its pending kernels (what the API server does when a
    /// user creates a session).
    pub fn create_session(
        &self,
        session_id: &str,
        name: &str,
        access_key: &str,
        kernel_ids: &[&str],
        vfolders: &[&str],
    ) {
        let mut t = self.lock();
        for kernel_id in kernel_ids {
            t.kernels.insert(
                (*kernel_id).to_owned(),
                KernelRow {
                    kernel_id: (*kernel_id).to_owned(),
                    session_id: session_id.to_owned(),
                    agent_id: None,
                    status: KernelStatus::Pending,
                },
            );
        }
        t.sessions.insert(
            session_id.to_owned(),
            SessionRow {
                session_id: session_id.to_owned(),
                name: name.to_owned(),
                access_key: access_key.to_owned(),
                kernel_ids: kernel_ids.iter().map(|k| (*k).to_owned()).collect(),
                vfolders: vfolders.iter().map(|v| (*v).to_owned()).collect(),
                status: SessionStatus::Pending,
                termination_reason: None,
            },
        );
    }

    /// Marks a session as terminating (its termination was requested).
    pub fn mark_terminating(&self, session_id: &str, reason: SessionTerminationReason) {
        if let Some(s) = self.lock().sessions.get_mut(session_id) {
            s.status = SessionStatus::Terminating;
            s.termination_reason = Some(reason);
        }
    }

    /// Records that a kernel runs on `agent_id`.
    pub fn kernel_started(&self, kernel_id: &str, agent_id: &str) -> Result<SessionProgress, String> {
        self.kernel_transition(kernel_id, agent_id, KernelStatus::Running, SessionStatus::Running)
    }

    /// Records that a kernel is gone.
    pub fn kernel_terminated(&self, kernel_id: &str, agent_id: &str) -> Result<SessionProgress, String> {
        self.kernel_transition(kernel_id, agent_id, KernelStatus::Terminated, SessionStatus::Terminated)
    }

    fn kernel_transition(
        &self,
        kernel_id: &str,
        agent_id: &str,
        to: KernelStatus,
        session_to: SessionStatus,
    ) -> Result<SessionProgress, String> {
        let mut guard = self.lock();
        let t = &mut *guard;
        let kernel = t.kernels.get_mut(kernel_id).ok_or_else(|| format!("unknown kernel `{kernel_id}`"))?;
        kernel.status = to;
        kernel.agent_id = Some(agent_id.to_owned());
        let session_id = kernel.session_id.clone();
        let session = t
            .sessions
            .get_mut(&session_id)
            .ok_or_else(|| format!("kernel `{kernel_id}` belongs to unknown session `{session_id}`"))?;
        let done = session.kernel_ids.iter().filter(|k| t.kernels.get(*k).is_some_and(|row| row.status == to)).count();
        let total = session.kernel_ids.len();
        let completed_now = done == total && session.status != session_to;
        if completed_now {
            session.status = session_to;
        }
        Ok(SessionProgress { session: session.clone(), done, total, completed_now })
    }

    /// Records a heartbeat.
    pub fn record_heartbeat(&self, agent_id: &str, container_count: u32, at_ms: u64) {
        let mut t = self.lock();
        let row = t.agents.entry(agent_id.to_owned()).or_insert_with(|| AgentRow {
            agent_id: agent_id.to_owned(),
            container_count: 0,
            heartbeats: 0,
            last_heartbeat_ms: 0,
        });
        row.container_count = container_count;
        row.heartbeats += 1;
        row.last_heartbeat_ms = at_ms;
    }

    /// Inserts a running background task.
    pub fn create_bgtask(&self, task_id: &str, kind: &str) {
        self.lock().bgtasks.insert(
            task_id.to_owned(),
            BgtaskRow {
                task_id: task_id.to_owned(),
                kind: kind.to_owned(),
                status: BgtaskStatus::Running,
                message: None,
            },
        );
    }

    /// Records the outcome of a background task; returns its kind.
    pub fn finish_bgtask(
        &self,
        task_id: &str,
        status: BgtaskStatus,
        message: Option<String>,
    ) -> Result<String, String> {
        let mut t = self.lock();
        let row = t.bgtasks.get_mut(task_id).ok_or_else(|| format!("unknown background task `{task_id}`"))?;
        row.status = status;
        row.message = message;
        Ok(row.kind.clone())
    }

    /// Counts an error log record.
    pub fn record_error_log(&self) {
        self.lock().error_logs += 1;
    }

    /// Every session, by id.
    pub fn sessions(&self) -> Vec<SessionRow> {
        self.lock().sessions.values().cloned().collect()
    }

    /// Every kernel, by id.
    pub fn kernels(&self) -> Vec<KernelRow> {
        self.lock().kernels.values().cloned().collect()
    }

    /// Every agent that sent a heartbeat, by id.
    pub fn agents(&self) -> Vec<AgentRow> {
        self.lock().agents.values().cloned().collect()
    }

    /// Every background task, by id.
    pub fn bgtasks(&self) -> Vec<BgtaskRow> {
        self.lock().bgtasks.values().cloned().collect()
    }

    /// Error log records written.
    pub fn error_logs(&self) -> u64 {
        self.lock().error_logs
    }
}

/// One manager instance's view of agent liveness, kept current by broadcasts (each instance
/// has its own).
#[derive(Debug, Clone, Default)]
pub struct SchedulerCache {
    agents: Arc<Mutex<BTreeMap<String, AgentStatus>>>,
}

impl SchedulerCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, AgentStatus>> {
        self.agents.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets an agent's status.
    pub fn set(&self, agent_id: &str, status: AgentStatus) {
        self.lock().insert(agent_id.to_owned(), status);
    }

    /// The agents in `status`.
    pub fn agents_in(&self, status: AgentStatus) -> Vec<String> {
        self.lock().iter().filter(|(_, s)| **s == status).map(|(a, _)| a.clone()).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Agents
// ---------------------------------------------------------------------------------------------

/// Records an agent's heartbeat (one manager instance per heartbeat).
#[handler(concurrency = 32)]
pub async fn record_heartbeat(State(node): State<Node>, State(db): State<ManagerDb>, ev: AgentHeartbeatEvent) {
    db.record_heartbeat(&ev.agent_id, ev.container_count, ev.timestamp_ms);
    node.log(format!(
        "heartbeat of {}: {} container(s), {} image(s) cached",
        ev.agent_id,
        ev.container_count,
        ev.cached_images.len()
    ));
}

/// Keeps this instance's scheduler cache current (every manager instance).
#[handler]
pub async fn on_agent_status_changed(
    State(node): State<Node>,
    State(cache): State<SchedulerCache>,
    ev: AgentStatusChangedEvent,
) {
    cache.set(&ev.agent_id, ev.current);
    node.log(format!(
        "cache: {} {} -> {} ({} alive)",
        ev.agent_id,
        ev.previous,
        ev.current,
        cache.agents_in(AgentStatus::Alive).len()
    ));
}

/// Writes an agent's error report to the error log, through [`ErrorLogRecordedEvent`].
#[handler]
pub async fn on_agent_error(State(node): State<Node>, ev: AgentErrorEvent) -> Result<(), HandlerError> {
    node.emit(&ErrorLogRecordedEvent {
        severity: ev.severity,
        source: ev.agent_id,
        message: ev.message,
        user_id: None,
        request_url: None,
        traceback: ev.traceback,
        occurred_at_ms: ev.occurred_at_ms,
    })
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Kernels and sessions
// ---------------------------------------------------------------------------------------------

/// Marks a kernel running; the delivery that completes its session announces the session with
/// [`SessionStartedBroadcastEvent`].
#[handler(max_attempts = 5, backoff = "exponential", base_delay = "50ms", max_delay = "2s", timeout = "10s")]
pub async fn on_kernel_started(
    State(node): State<Node>,
    State(db): State<ManagerDb>,
    ev: KernelStartedAnycastEvent,
) -> Result<(), HandlerError> {
    let progress = db.kernel_started(&ev.kernel_id, &ev.agent_id)?;
    node.log(format!(
        "kernel {} RUNNING on {} ({} {}/{})",
        ev.kernel_id, ev.agent_id, progress.session.name, progress.done, progress.total
    ));
    if progress.completed_now {
        let session = progress.session;
        node.log(format!("session {} RUNNING", session.name));
        node.emit(&SessionStartedBroadcastEvent {
            session_id: session.session_id,
            session_name: session.name,
            access_key: session.access_key,
            kernel_ids: session.kernel_ids,
            mounted_vfolders: session.vfolders,
            started_at_ms: ev.started_at_ms,
        })
        .await?;
    }
    Ok(())
}

/// Marks a kernel terminated; the delivery that empties its session announces the session
/// with [`SessionTerminatedBroadcastEvent`].
#[handler(max_attempts = 5, backoff = "exponential", base_delay = "50ms", max_delay = "2s", timeout = "10s")]
pub async fn on_kernel_terminated(
    State(node): State<Node>,
    State(db): State<ManagerDb>,
    ev: KernelTerminatedAnycastEvent,
) -> Result<(), HandlerError> {
    let progress = db.kernel_terminated(&ev.kernel_id, &ev.agent_id)?;
    node.log(format!(
        "kernel {} TERMINATED on {}: {} ({} {}/{})",
        ev.kernel_id, ev.agent_id, ev.reason, progress.session.name, progress.done, progress.total
    ));
    if progress.completed_now {
        let session = progress.session;
        let reason = session.termination_reason.unwrap_or(SessionTerminationReason::KernelFailed);
        node.log(format!("session {} TERMINATED ({reason})", session.name));
        node.emit(&SessionTerminatedBroadcastEvent {
            session_id: session.session_id,
            session_name: session.name,
            reason,
            mounted_vfolders: session.vfolders,
            terminated_at_ms: ev.terminated_at_ms,
        })
        .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Background tasks
// ---------------------------------------------------------------------------------------------

/// Records a background task's success.
#[handler]
pub async fn on_bgtask_done(
    State(node): State<Node>,
    State(db): State<ManagerDb>,
    ev: BgtaskDoneEvent,
) -> Result<(), HandlerError> {
    let kind = db.finish_bgtask(&ev.task_id, BgtaskStatus::Done, ev.message.clone())?;
    node.log(format!("bgtask {} ({kind}) DONE: {}", ev.task_id, ev.message.as_deref().unwrap_or("-")));
    Ok(())
}

/// Records a background task's failure.
#[handler]
pub async fn on_bgtask_failed(
    State(node): State<Node>,
    State(db): State<ManagerDb>,
    ev: BgtaskFailedEvent,
) -> Result<(), HandlerError> {
    let kind = db.finish_bgtask(&ev.task_id, BgtaskStatus::Failed, Some(ev.message.clone()))?;
    node.log(format!("bgtask {} ({kind}) FAILED: {}", ev.task_id, ev.message));
    Ok(())
}

/// Records a background task's cancellation.
#[handler]
pub async fn on_bgtask_cancelled(
    State(node): State<Node>,
    State(db): State<ManagerDb>,
    ev: BgtaskCancelledEvent,
) -> Result<(), HandlerError> {
    let kind = db.finish_bgtask(&ev.task_id, BgtaskStatus::Cancelled, ev.message)?;
    node.log(format!("bgtask {} ({kind}) CANCELLED by {}", ev.task_id, ev.cancelled_by));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Storage, logs, scheduling, idleness, artifacts
// ---------------------------------------------------------------------------------------------

/// Records one node's result of a volume mount.
#[handler]
pub async fn on_volume_mounted(State(node): State<Node>, ev: VolumeMountedEvent) {
    match ev.error {
        None => node.log(format!("{} mounted {}", ev.node_id, ev.mount_path)),
        Some(error) => node.log(format!("{} could not mount {}: {error}", ev.node_id, ev.mount_path)),
    }
}

/// Marks a virtual folder `DELETE_ERROR` after its deletion failed for good.
#[handler]
pub async fn on_vfolder_deletion_failed(State(node): State<Node>, ev: VFolderDeletionFailedEvent) {
    node.log(format!("vfolder {} on {} marked DELETE_ERROR: {}", ev.vfolder_id, ev.volume, ev.reason));
}

/// Marks an artifact revision `FAILED` after its import failed for good.
#[handler]
pub async fn on_artifact_import_failed(State(node): State<Node>, ev: ArtifactImportFailedEvent) {
    node.log(format!("artifact {}@{} marked FAILED: {}", ev.artifact_id, ev.revision, ev.reason));
}

/// Writes an error log record.
#[handler(concurrency = 64)]
pub async fn record_error_log(State(node): State<Node>, State(db): State<ManagerDb>, ev: ErrorLogRecordedEvent) {
    db.record_error_log();
    node.log(format!("error log [{:?}] {}: {}", ev.severity, ev.source, ev.message));
}

/// Deletes log records past their retention period (one pass at a time, allowed to be slow).
#[handler(max_attempts = 2, backoff = "fixed", base_delay = "1m", timeout = "5m", concurrency = 1)]
pub async fn cleanup_logs(State(node): State<Node>, ev: LogCleanupRequestedEvent) {
    node.log(format!("deleting {} logs older than {} days", ev.categories.join("+"), ev.retention_days));
}

/// Runs one scheduling pass. Its own consumer group, `scheduler`, so that scheduling passes are
/// spread over manager instances independently of the rest of the manager's work.
#[handler(group = "scheduler", timeout = "30s", concurrency = 1)]
pub async fn run_scheduler(State(node): State<Node>, ev: SchedulingTickEvent) {
    node.log(format!(
        "scheduling pass ({:?}) over {}",
        ev.trigger,
        ev.scaling_group.as_deref().unwrap_or("every scaling group")
    ));
}

/// Runs the idle checkers over running sessions, in the `idle-checker` group.
#[handler(group = "idle-checker", timeout = "30s", concurrency = 1)]
pub async fn check_idle(State(node): State<Node>, State(db): State<ManagerDb>, ev: IdleCheckRequestedEvent) {
    let running = db.sessions().into_iter().filter(|s| s.status == SessionStatus::Running).count();
    node.log(format!(
        "idle check over {running} running session(s) in {}",
        ev.scaling_group.as_deref().unwrap_or("every scaling group")
    ));
}

/// Synchronizes the artifact list of a registry and announces the result.
#[handler(
    max_attempts = 5,
    backoff = "exponential",
    base_delay = "1s",
    max_delay = "5m",
    timeout = "10m",
    concurrency = 2
)]
pub async fn sync_artifact_registry(
    State(node): State<Node>,
    ev: ArtifactRegistrySyncRequestedEvent,
) -> Result<(), HandlerError> {
    node.log(format!("syncing artifact registry {}{}", ev.registry_id, if ev.full_resync { " (full)" } else { "" }));
    node.emit(&ArtifactRegistrySyncedEvent {
        registry_id: ev.registry_id,
        artifacts_found: 0,
        artifacts_added: 0,
        synced_at_ms: now_ms(),
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_completes_once_even_when_a_kernel_is_reported_twice() {
        let db = ManagerDb::new();
        db.create_session("s-1", "train", "AK", &["k-1", "k-2"], &["data"]);
        let first = db.kernel_started("k-1", "agent-1").expect("known kernel");
        assert_eq!((first.done, first.total, first.completed_now), (1, 2, false));
        let again = db.kernel_started("k-1", "agent-1").expect("known kernel");
        assert!(!again.completed_now);
        let last = db.kernel_started("k-2", "agent-2").expect("known kernel");
        assert!(last.completed_now);
        assert_eq!(last.session.status, SessionStatus::Running);
        let redelivered = db.kernel_started("k-2", "agent-2").expect("known kernel");
        assert!(!redelivered.completed_now, "at-least-once delivery must not announce twice");
        assert!(db.kernel_started("k-9", "agent-1").is_err());

        db.mark_terminating("s-1", SessionTerminationReason::UserRequested);
        assert!(!db.kernel_terminated("k-1", "agent-1").expect("known").completed_now);
        let done = db.kernel_terminated("k-2", "agent-2").expect("known");
        assert!(done.completed_now);
        assert_eq!(done.session.termination_reason, Some(SessionTerminationReason::UserRequested));
    }
}
