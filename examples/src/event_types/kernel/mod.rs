//! Kernel events: the lifecycle of one container of a compute session, reported by the agent
//! that runs it.
//!
//! Creation is a task for one agent of the pool (anycast). Start and termination are announced
//! twice: once for the manager's bookkeeping (anycast, exactly one manager instance records it)
//! and once for UIs and caches (broadcast, every subscriber sees it).

use event_core::prelude::*;
use serde::{Deserialize, Serialize};

use super::common::{ResourceSlots, ServicePort};

/// Whether an agent pulls the image before creating the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImagePullPolicy {
    /// Pull only if the agent does not have the image yet.
    IfNotPresent,
    /// Always pull: the tag is mutable (`:latest`, a nightly build).
    Always,
}

/// Role of a kernel in a (possibly multi-container) session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterRole {
    /// The kernel users talk to.
    Main,
    /// A worker of a multi-container session.
    Sub,
}

/// Why a kernel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelTerminationReason {
    /// Its session was terminated.
    SessionTerminated,
    /// The program inside exited by itself.
    SelfTerminated,
    /// The container ran out of memory.
    OutOfMemory,
    /// The agent hosting it was lost.
    AgentLost,
    /// The container could not be created or crashed.
    Failed,
}

impl std::fmt::Display for KernelTerminationReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KernelTerminationReason::SessionTerminated => "session terminated",
            KernelTerminationReason::SelfTerminated => "self-terminated",
            KernelTerminationReason::OutOfMemory => "out of memory",
            KernelTerminationReason::AgentLost => "agent lost",
            KernelTerminationReason::Failed => "failed",
        })
    }
}

/// The scheduler asks an agent of a scaling group to create a kernel. Handed to exactly one
/// agent, which pulls the image if needed and starts the container.
#[anycast_event(domain = "kernel")]
#[derive(Debug, Clone)]
pub struct KernelCreationRequestedEvent {
    /// Kernel id.
    pub kernel_id: String,
    /// Session the kernel belongs to.
    pub session_id: String,
    /// Human-readable session name.
    pub session_name: String,
    /// Container image reference (`cr.example.com/stable/python:3.12-ubuntu22.04`).
    pub image: String,
    /// CPU architecture the image is built for (`x86_64`, `aarch64`).
    pub architecture: String,
    /// When to pull the image.
    pub pull_policy: ImagePullPolicy,
    /// Role in the session.
    pub cluster_role: ClusterRole,
    /// Index of the kernel within the session (0 for the main kernel).
    pub cluster_idx: u32,
    /// Resources reserved for the container.
    pub resource_slots: ResourceSlots,
    /// Scaling group (a pool of agents) the kernel is scheduled in.
    pub scaling_group: String,
    /// When the manager issued the request, in unix milliseconds.
    pub requested_at_ms: u64,
}

/// An agent started pulling the image of a kernel; UIs show the session as `PULLING`.
#[broadcast_event(domain = "kernel")]
#[derive(Debug, Clone)]
pub struct KernelPullingBroadcastEvent {
    /// Kernel id.
    pub kernel_id: String,
    /// Session the kernel belongs to.
    pub session_id: String,
    /// Agent pulling the image.
    pub agent_id: String,
    /// Image being pulled.
    pub image: String,
}

/// A kernel's container is running: the notification for UIs and caches.
#[broadcast_event(domain = "kernel")]
#[derive(Debug, Clone)]
pub struct KernelStartedBroadcastEvent {
    /// Kernel id.
    pub kernel_id: String,
    /// Session the kernel belongs to.
    pub session_id: String,
    /// Agent running the container.
    pub agent_id: String,
    /// Container id on the agent.
    pub container_id: String,
    /// When the container started, in unix milliseconds.
    pub started_at_ms: u64,
}

/// A kernel's container is running: the record for the manager's bookkeeping (exactly one
/// manager instance stores it). Shares its name, `kernel_started`, with
/// [`KernelStartedBroadcastEvent`].
#[anycast_event(domain = "kernel", name = "kernel_started")]
#[derive(Debug, Clone)]
pub struct KernelStartedAnycastEvent {
    /// Kernel id.
    pub kernel_id: String,
    /// Session the kernel belongs to.
    pub session_id: String,
    /// Agent running the container.
    pub agent_id: String,
    /// Container id on the agent.
    pub container_id: String,
    /// Services the kernel exposes and the host ports they are published on.
    pub service_ports: Vec<ServicePort>,
    /// Resources actually allocated.
    pub allocated_slots: ResourceSlots,
    /// When the container started, in unix milliseconds.
    pub started_at_ms: u64,
}

/// A kernel's container is gone: the notification for UIs and caches.
#[broadcast_event(domain = "kernel")]
#[derive(Debug, Clone)]
pub struct KernelTerminatedBroadcastEvent {
    /// Kernel id.
    pub kernel_id: String,
    /// Session the kernel belonged to.
    pub session_id: String,
    /// Agent that ran the container.
    pub agent_id: String,
    /// Why it ended.
    pub reason: KernelTerminationReason,
    /// Exit code of the main process, if it exited.
    pub exit_code: Option<i32>,
    /// When the container was removed, in unix milliseconds.
    pub terminated_at_ms: u64,
}

/// A kernel's container is gone: the record for the manager's bookkeeping (frees the
/// resources it held). Shares its name, `kernel_terminated`, with
/// [`KernelTerminatedBroadcastEvent`].
#[anycast_event(domain = "kernel", name = "kernel_terminated")]
#[derive(Debug, Clone)]
pub struct KernelTerminatedAnycastEvent {
    /// Kernel id.
    pub kernel_id: String,
    /// Session the kernel belonged to.
    pub session_id: String,
    /// Agent that ran the container.
    pub agent_id: String,
    /// Why it ended.
    pub reason: KernelTerminationReason,
    /// Exit code of the main process, if it exited.
    pub exit_code: Option<i32>,
    /// Resources freed on the agent.
    pub freed_slots: ResourceSlots,
    /// When the container was removed, in unix milliseconds.
    pub terminated_at_ms: u64,
}
