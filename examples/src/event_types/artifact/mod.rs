//! Artifact events: models and packages imported from artifact registries into storage.

use event_core::prelude::*;
use serde::{Deserialize, Serialize};

/// What an artifact is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactKind {
    /// Model weights and configuration.
    Model,
    /// A software package.
    Package,
    /// A container image.
    Image,
}

/// Import an artifact revision into a storage volume; one storage proxy instance downloads it.
#[anycast_event(domain = "artifact")]
#[derive(Debug, Clone)]
pub struct ArtifactImportRequestedEvent {
    /// Artifact id.
    pub artifact_id: String,
    /// Registry it comes from.
    pub registry_id: String,
    /// Name in the registry (`meta-llama/Llama-3.1-8B`).
    pub name: String,
    /// Revision (a tag or a commit).
    pub revision: String,
    /// What it is.
    pub kind: ArtifactKind,
    /// Storage volume to put it on.
    pub storage_volume: String,
    /// Who asked.
    pub requested_by: String,
}

/// Download progress of an artifact import.
#[broadcast_event(domain = "artifact")]
#[derive(Debug, Clone)]
pub struct ArtifactDownloadProgressEvent {
    /// Artifact id.
    pub artifact_id: String,
    /// Revision.
    pub revision: String,
    /// Bytes downloaded so far.
    pub downloaded_bytes: u64,
    /// Total bytes, if the registry told.
    pub total_bytes: Option<u64>,
}

/// An artifact revision is imported and usable.
#[broadcast_event(domain = "artifact")]
#[derive(Debug, Clone)]
pub struct ArtifactImportedEvent {
    /// Artifact id.
    pub artifact_id: String,
    /// Revision.
    pub revision: String,
    /// Content digest.
    pub digest: String,
    /// Size, in bytes.
    pub size_bytes: u64,
    /// When, in unix milliseconds.
    pub imported_at_ms: u64,
}

/// An artifact import failed for good; the manager marks the revision `FAILED`.
#[anycast_event(domain = "artifact")]
#[derive(Debug, Clone)]
pub struct ArtifactImportFailedEvent {
    /// Artifact id.
    pub artifact_id: String,
    /// Revision.
    pub revision: String,
    /// Why.
    pub reason: String,
}

/// An artifact revision was deleted from storage.
#[broadcast_event(domain = "artifact")]
#[derive(Debug, Clone)]
pub struct ArtifactDeletedEvent {
    /// Artifact id.
    pub artifact_id: String,
    /// The revision, or every revision.
    pub revision: Option<String>,
    /// Who deleted it.
    pub deleted_by: String,
}
