//! Session events: a compute session groups one or more kernels and is what users create,
//! use and terminate.

use event_core::prelude::*;
use serde::{Deserialize, Serialize};

/// What a session is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionType {
    /// Notebooks, terminals, IDEs.
    Interactive,
    /// Runs a command to completion.
    Batch,
    /// Serves a model behind an endpoint.
    Inference,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionTerminationReason {
    /// Its owner asked for it.
    UserRequested,
    /// An idle checker found it idle for too long.
    IdleTimeout,
    /// A batch session's command finished.
    BatchFinished,
    /// An administrator forced it.
    AdminForced,
    /// One of its kernels failed.
    KernelFailed,
}

impl std::fmt::Display for SessionTerminationReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SessionTerminationReason::UserRequested => "user requested",
            SessionTerminationReason::IdleTimeout => "idle timeout",
            SessionTerminationReason::BatchFinished => "batch finished",
            SessionTerminationReason::AdminForced => "admin forced",
            SessionTerminationReason::KernelFailed => "kernel failed",
        })
    }
}

/// A session was accepted and waits for the scheduler; UIs show it as `PENDING`.
#[broadcast_event(domain = "session")]
#[derive(Debug, Clone)]
pub struct SessionEnqueuedEvent {
    /// Session id.
    pub session_id: String,
    /// Human-readable name.
    pub session_name: String,
    /// Access key of the owner.
    pub access_key: String,
    /// What the session is for.
    pub session_type: SessionType,
    /// Number of kernels.
    pub cluster_size: u32,
    /// Scaling group it will be scheduled in.
    pub scaling_group: String,
    /// When it was enqueued, in unix milliseconds.
    pub enqueued_at_ms: u64,
}

/// Every kernel of a session is running; the session is usable.
#[broadcast_event(domain = "session")]
#[derive(Debug, Clone)]
pub struct SessionStartedBroadcastEvent {
    /// Session id.
    pub session_id: String,
    /// Human-readable name.
    pub session_name: String,
    /// Access key of the owner.
    pub access_key: String,
    /// Its kernels, main kernel first.
    pub kernel_ids: Vec<String>,
    /// Virtual folders mounted into its kernels.
    pub mounted_vfolders: Vec<String>,
    /// When the last kernel started, in unix milliseconds.
    pub started_at_ms: u64,
}

/// Terminate a session: every agent destroys the kernels of the session it hosts. A broadcast,
/// because each agent must act on its own share.
#[broadcast_event(domain = "session")]
#[derive(Debug, Clone)]
pub struct SessionTerminationRequestedEvent {
    /// Session id.
    pub session_id: String,
    /// Human-readable name.
    pub session_name: String,
    /// Why.
    pub reason: SessionTerminationReason,
    /// Who asked (an access key, `idle-checker`, `admin`).
    pub requested_by: String,
}

/// Every kernel of a session is gone and its resources are released.
#[broadcast_event(domain = "session")]
#[derive(Debug, Clone)]
pub struct SessionTerminatedBroadcastEvent {
    /// Session id.
    pub session_id: String,
    /// Human-readable name.
    pub session_name: String,
    /// Why it ended.
    pub reason: SessionTerminationReason,
    /// Virtual folders that were mounted into its kernels.
    pub mounted_vfolders: Vec<String>,
    /// When the last kernel was removed, in unix milliseconds.
    pub terminated_at_ms: u64,
}

/// The command of a batch session finished; the manager records the result and terminates it.
#[anycast_event(domain = "session")]
#[derive(Debug, Clone)]
pub struct SessionBatchFinishedEvent {
    /// Session id.
    pub session_id: String,
    /// Exit code of the batch command.
    pub exit_code: i32,
    /// Whether the command succeeded.
    pub succeeded: bool,
    /// When it finished, in unix milliseconds.
    pub finished_at_ms: u64,
}
