//! Container image events: agents pulling and removing images, registries rescanned.

use event_core::prelude::*;

/// An agent started pulling an image.
#[broadcast_event(domain = "image")]
#[derive(Debug, Clone)]
pub struct ImagePullStartedEvent {
    /// Agent pulling.
    pub agent_id: String,
    /// Image reference.
    pub image: String,
    /// Registry host.
    pub registry: String,
    /// When, in unix milliseconds.
    pub started_at_ms: u64,
}

/// An agent finished pulling an image.
#[broadcast_event(domain = "image")]
#[derive(Debug, Clone)]
pub struct ImagePullFinishedEvent {
    /// Agent that pulled.
    pub agent_id: String,
    /// Image reference.
    pub image: String,
    /// Content digest (`sha256:...`).
    pub digest: String,
    /// Size on disk, in bytes.
    pub size_bytes: u64,
    /// How long the pull took, in milliseconds.
    pub duration_ms: u64,
}

/// An agent could not pull an image.
#[broadcast_event(domain = "image")]
#[derive(Debug, Clone)]
pub struct ImagePullFailedEvent {
    /// Agent that tried.
    pub agent_id: String,
    /// Image reference.
    pub image: String,
    /// Why.
    pub error: String,
}

/// Rescan a container registry for new images; one manager instance does it as a background
/// task.
#[anycast_event(domain = "image")]
#[derive(Debug, Clone)]
pub struct ImageRescanRequestedEvent {
    /// Background task tracking the rescan.
    pub task_id: String,
    /// Registry host (`cr.example.com`).
    pub registry: String,
    /// Only this project of the registry, or all.
    pub project: Option<String>,
    /// Who asked.
    pub requested_by: String,
}

/// An agent removed an image to free disk space.
#[broadcast_event(domain = "image")]
#[derive(Debug, Clone)]
pub struct ImageRemovedEvent {
    /// Agent.
    pub agent_id: String,
    /// Image reference.
    pub image: String,
    /// Bytes freed.
    pub freed_bytes: u64,
}
