//! Artifact registry events: the external registries artifacts are imported from.

use event_core::prelude::*;
use serde::{Deserialize, Serialize};

/// Kind of artifact registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistryType {
    /// A Hugging Face hub.
    HuggingFace,
    /// Another cluster's artifact store.
    Reservoir,
    /// An OCI registry.
    Oci,
}

/// A registry was added.
#[broadcast_event(domain = "artifact_registry")]
#[derive(Debug, Clone)]
pub struct ArtifactRegistryCreatedEvent {
    /// Registry id.
    pub registry_id: String,
    /// Display name.
    pub name: String,
    /// Kind.
    pub registry_type: RegistryType,
    /// Base URL.
    pub url: String,
}

/// Synchronize the artifact list of a registry; one manager instance does it.
#[anycast_event(domain = "artifact_registry")]
#[derive(Debug, Clone)]
pub struct ArtifactRegistrySyncRequestedEvent {
    /// Registry id.
    pub registry_id: String,
    /// Re-read everything instead of only what changed.
    pub full_resync: bool,
    /// Who asked.
    pub requested_by: String,
}

/// A registry's artifact list was synchronized.
#[broadcast_event(domain = "artifact_registry")]
#[derive(Debug, Clone)]
pub struct ArtifactRegistrySyncedEvent {
    /// Registry id.
    pub registry_id: String,
    /// Artifacts listed by the registry.
    pub artifacts_found: u32,
    /// Artifacts new since the last sync.
    pub artifacts_added: u32,
    /// When, in unix milliseconds.
    pub synced_at_ms: u64,
}

/// A registry was removed.
#[broadcast_event(domain = "artifact_registry")]
#[derive(Debug, Clone)]
pub struct ArtifactRegistryRemovedEvent {
    /// Registry id.
    pub registry_id: String,
    /// Display name.
    pub name: String,
}
