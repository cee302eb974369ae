//! Virtual folder events: storage folders served by the storage proxy and mounted into
//! kernels.
//!
//! The names are spelled out (`vfolder_cloned`): the default snake_case of `VFolderCloned`
//! would be `v_folder_cloned`.

use event_core::prelude::*;

/// Clone a virtual folder; one storage proxy instance copies the data and reports progress
/// through the background task `task_id`.
#[anycast_event(domain = "vfolder", name = "vfolder_clone_requested")]
#[derive(Debug, Clone)]
pub struct VFolderCloneRequestedEvent {
    /// Background task tracking the clone.
    pub task_id: String,
    /// Folder to copy.
    pub source_vfolder_id: String,
    /// Name of the folder to copy.
    pub source_name: String,
    /// Id of the new folder.
    pub target_vfolder_id: String,
    /// Name of the new folder.
    pub target_name: String,
    /// Storage volume holding both (`nas01:projects`).
    pub volume: String,
    /// Access key of the user who asked.
    pub requested_by: String,
}

/// A virtual folder was cloned.
#[broadcast_event(domain = "vfolder", name = "vfolder_cloned")]
#[derive(Debug, Clone)]
pub struct VFolderClonedEvent {
    /// The new folder.
    pub vfolder_id: String,
    /// The folder it was copied from.
    pub source_vfolder_id: String,
    /// Name of the new folder.
    pub name: String,
    /// Storage volume.
    pub volume: String,
    /// Bytes copied.
    pub bytes_copied: u64,
    /// When the copy finished, in unix milliseconds.
    pub cloned_at_ms: u64,
}

/// Delete a virtual folder and its data; one storage proxy instance does it.
#[anycast_event(domain = "vfolder", name = "vfolder_deletion_requested")]
#[derive(Debug, Clone)]
pub struct VFolderDeletionRequestedEvent {
    /// Folder to delete.
    pub vfolder_id: String,
    /// Its name.
    pub name: String,
    /// Storage volume holding it.
    pub volume: String,
    /// Access key of the user who asked.
    pub requested_by: String,
}

/// A virtual folder and its data are gone.
#[broadcast_event(domain = "vfolder", name = "vfolder_deleted")]
#[derive(Debug, Clone)]
pub struct VFolderDeletedEvent {
    /// The deleted folder.
    pub vfolder_id: String,
    /// Its name.
    pub name: String,
    /// Storage volume that held it.
    pub volume: String,
    /// Bytes freed on the volume.
    pub freed_bytes: u64,
    /// When, in unix milliseconds.
    pub deleted_at_ms: u64,
}

/// Deleting a virtual folder failed for good; the manager marks it `DELETE_ERROR`.
#[anycast_event(domain = "vfolder", name = "vfolder_deletion_failed")]
#[derive(Debug, Clone)]
pub struct VFolderDeletionFailedEvent {
    /// The folder.
    pub vfolder_id: String,
    /// Storage volume holding it.
    pub volume: String,
    /// Why.
    pub reason: String,
}

/// A virtual folder went over its quota; UIs warn its owner.
#[broadcast_event(domain = "vfolder", name = "vfolder_quota_exceeded")]
#[derive(Debug, Clone)]
pub struct VFolderQuotaExceededEvent {
    /// The folder.
    pub vfolder_id: String,
    /// Storage volume holding it.
    pub volume: String,
    /// Bytes used.
    pub used_bytes: u64,
    /// Quota, in bytes.
    pub limit_bytes: u64,
}
