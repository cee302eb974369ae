//! Scheduling events: the manager's scheduler loop, placing pending sessions on agents.

use event_core::prelude::*;
use serde::{Deserialize, Serialize};

/// What triggered a scheduling pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleTrigger {
    /// The periodic timer.
    Periodic,
    /// A session was enqueued.
    SessionEnqueued,
    /// A session ended and freed resources.
    SessionTerminated,
    /// An administrator asked.
    Manual,
}

/// Run one scheduling pass; one manager instance runs it, so passes never overlap.
#[anycast_event(domain = "schedule")]
#[derive(Debug, Clone)]
pub struct SchedulingTickEvent {
    /// Only this scaling group, or all.
    pub scaling_group: Option<String>,
    /// Why now.
    pub trigger: ScheduleTrigger,
    /// When requested, in unix milliseconds.
    pub requested_at_ms: u64,
}

/// A pending session was placed on agents; UIs show it as `SCHEDULED`.
#[broadcast_event(domain = "schedule")]
#[derive(Debug, Clone)]
pub struct SessionScheduledEvent {
    /// Session id.
    pub session_id: String,
    /// Scaling group.
    pub scaling_group: String,
    /// Agents chosen, one per kernel.
    pub agent_ids: Vec<String>,
    /// When, in unix milliseconds.
    pub scheduled_at_ms: u64,
}

/// A pending session could not be placed in this pass; UIs show why it waits.
#[broadcast_event(domain = "schedule")]
#[derive(Debug, Clone)]
pub struct SchedulingFailedEvent {
    /// Session id.
    pub session_id: String,
    /// Why (`not enough GPUs in scaling group gpu-a100`).
    pub reason: String,
    /// Passes that failed so far.
    pub attempts: u32,
}

/// Start a scheduled session: one manager instance checks its preconditions (images, vfolders,
/// quotas) and sends the kernel creation requests.
#[anycast_event(domain = "schedule")]
#[derive(Debug, Clone)]
pub struct SessionStartRequestedEvent {
    /// Session id.
    pub session_id: String,
    /// Agents chosen, one per kernel.
    pub agent_ids: Vec<String>,
}
