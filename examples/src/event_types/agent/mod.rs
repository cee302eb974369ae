//! Agent events: compute nodes joining, reporting and leaving the cluster.

use event_core::prelude::*;
use serde::{Deserialize, Serialize};

use super::common::{ResourceSlots, Severity};

/// Liveness of an agent as the manager sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Registered, not yet accepting kernels.
    Starting,
    /// Sends heartbeats and accepts kernels.
    Alive,
    /// Missed its heartbeats.
    Lost,
    /// Stopped accepting new kernels before shutting down.
    Draining,
    /// Shut down.
    Terminated,
}

impl std::fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AgentStatus::Starting => "STARTING",
            AgentStatus::Alive => "ALIVE",
            AgentStatus::Lost => "LOST",
            AgentStatus::Draining => "DRAINING",
            AgentStatus::Terminated => "TERMINATED",
        })
    }
}

/// An agent process started and registered itself.
#[broadcast_event(domain = "agent")]
#[derive(Debug, Clone)]
pub struct AgentStartedEvent {
    /// Agent id.
    pub agent_id: String,
    /// Scaling group it serves.
    pub scaling_group: String,
    /// Region or availability zone.
    pub region: String,
    /// RPC address (`tcp://10.0.1.21:6001`).
    pub rpc_addr: String,
    /// Agent software version.
    pub version: String,
    /// CPU architecture of the node.
    pub architecture: String,
    /// When it started, in unix milliseconds.
    pub started_at_ms: u64,
}

/// Periodic liveness and capacity report of an agent; one manager instance records each.
#[anycast_event(domain = "agent")]
#[derive(Debug, Clone)]
pub struct AgentHeartbeatEvent {
    /// Agent id.
    pub agent_id: String,
    /// Scaling group it serves.
    pub scaling_group: String,
    /// Total resources of the node.
    pub total_slots: ResourceSlots,
    /// Resources held by running kernels.
    pub occupied_slots: ResourceSlots,
    /// Containers running.
    pub container_count: u32,
    /// Images present on the node.
    pub cached_images: Vec<String>,
    /// When the report was taken, in unix milliseconds.
    pub timestamp_ms: u64,
}

/// The manager's view of an agent's liveness changed; every manager instance updates its
/// scheduling cache.
#[broadcast_event(domain = "agent")]
#[derive(Debug, Clone)]
pub struct AgentStatusChangedEvent {
    /// Agent id.
    pub agent_id: String,
    /// Status before.
    pub previous: AgentStatus,
    /// Status now.
    pub current: AgentStatus,
    /// Why, if known.
    pub reason: Option<String>,
    /// When it changed, in unix milliseconds.
    pub changed_at_ms: u64,
}

/// An agent hit an error it cannot handle by itself; the manager logs it for operators.
#[anycast_event(domain = "agent")]
#[derive(Debug, Clone)]
pub struct AgentErrorEvent {
    /// Agent id.
    pub agent_id: String,
    /// How bad.
    pub severity: Severity,
    /// What happened.
    pub message: String,
    /// Stack trace, if any.
    pub traceback: Option<String>,
    /// When, in unix milliseconds.
    pub occurred_at_ms: u64,
}

/// An agent process stopped.
#[broadcast_event(domain = "agent")]
#[derive(Debug, Clone)]
pub struct AgentTerminatedEvent {
    /// Agent id.
    pub agent_id: String,
    /// Why (`shutdown`, `lost`, `upgrade`).
    pub reason: String,
    /// When, in unix milliseconds.
    pub terminated_at_ms: u64,
}
