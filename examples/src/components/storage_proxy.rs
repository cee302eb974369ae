//! The storage proxy: serves virtual folders from storage volumes. Instances share the
//! `storage-proxy` consumer group (each clone or deletion is done by one of them) and the
//! storage itself ([`StorageBackend`]); each instance keeps its own view of which folders
//! running sessions use ([`SessionCache`]), fed by session broadcasts.
//!
//! Two handlers fail on purpose, for the demo:
//!
//! - [`clone_vfolder`] fails on every attempt while the source folder is corrupt (the demo's
//!   corrupt folders have `broken` in their name): the clone is retried, then dead-lettered,
//!   and a replay after [`StorageBackend::repair`] succeeds.
//! - [`delete_vfolder`] finds the volume busy on the first attempt (a lazy unmount still in
//!   progress, simulated through `meta.attempt`) and succeeds on the retry.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use event_core::prelude::*;

use super::{now_ms, Node};
use crate::event_types::artifact::{
    ArtifactDownloadProgressEvent, ArtifactImportRequestedEvent, ArtifactImportedEvent,
};
use crate::event_types::bgtask::{BgtaskDoneEvent, BgtaskFailedEvent, BgtaskUpdatedEvent};
use crate::event_types::session::{SessionStartedBroadcastEvent, SessionTerminatedBroadcastEvent};
use crate::event_types::vfolder::{
    VFolderCloneRequestedEvent, VFolderClonedEvent, VFolderDeletedEvent, VFolderDeletionRequestedEvent,
};

/// Attempts of [`clone_vfolder`] before a clone is dead-lettered (its `max_attempts`).
pub const CLONE_MAX_ATTEMPTS: u32 = 3;
/// Simulated time to copy half of a folder.
pub const COPY_STEP_TIME: Duration = Duration::from_millis(10);

/// A virtual folder on the volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VFolder {
    /// Folder id.
    pub vfolder_id: String,
    /// Name.
    pub name: String,
    /// Size of its data, in bytes.
    pub size_bytes: u64,
}

#[derive(Debug, Default)]
struct Volume {
    folders: BTreeMap<String, VFolder>,
    repaired: BTreeSet<String>,
}

/// The storage volume the storage proxies serve, shared by every instance.
#[derive(Debug, Clone, Default)]
pub struct StorageBackend {
    volume: Arc<Mutex<Volume>>,
}

impl StorageBackend {
    /// An empty volume.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Volume> {
        self.volume.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a folder.
    pub fn add(&self, vfolder_id: &str, name: &str, size_bytes: u64) {
        self.lock()
            .folders
            .insert(name.to_owned(), VFolder { vfolder_id: vfolder_id.to_owned(), name: name.to_owned(), size_bytes });
    }

    /// The folder called `name`.
    pub fn get(&self, name: &str) -> Option<VFolder> {
        self.lock().folders.get(name).cloned()
    }

    /// Every folder, by name.
    pub fn folders(&self) -> Vec<VFolder> {
        self.lock().folders.values().cloned().collect()
    }

    /// Whether reading the folder fails: the demo's corrupt folders have `broken` in their
    /// name, until [`repair`](Self::repair)ed.
    pub fn is_corrupt(&self, name: &str) -> bool {
        name.contains("broken") && !self.lock().repaired.contains(name)
    }

    /// Repairs a corrupt folder (what an operator does before replaying a dead letter).
    pub fn repair(&self, name: &str) {
        self.lock().repaired.insert(name.to_owned());
    }

    fn remove(&self, name: &str) -> Option<VFolder> {
        self.lock().folders.remove(name)
    }
}

/// One storage proxy instance's view of the folders running sessions use (each instance has
/// its own, fed by broadcasts).
#[derive(Debug, Clone, Default)]
pub struct SessionCache {
    sessions: Arc<Mutex<BTreeMap<String, Vec<String>>>>,
}

impl SessionCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Vec<String>>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sessions known to run.
    pub fn active_sessions(&self) -> usize {
        self.lock().len()
    }

    /// Folders used by running sessions.
    pub fn folders_in_use(&self) -> BTreeSet<String> {
        self.lock().values().flatten().cloned().collect()
    }
}

/// Clones a virtual folder, reporting progress through background task events. Fails while
/// the source folder is corrupt; on the last attempt it also reports the task failed.
#[handler(max_attempts = 3, backoff = "fixed", base_delay = "20ms", timeout = "30s", concurrency = 4)]
pub async fn clone_vfolder(
    State(node): State<Node>,
    State(storage): State<StorageBackend>,
    meta: EventMeta,
    ev: VFolderCloneRequestedEvent,
) -> Result<(), HandlerError> {
    let source =
        storage.get(&ev.source_name).ok_or_else(|| format!("source vfolder `{}` does not exist", ev.source_name))?;
    if storage.is_corrupt(&ev.source_name) {
        let error = format!("checksum mismatch reading `{}`", ev.source_name);
        node.log(format!(
            "clone {} -> {} FAILED (attempt {}/{CLONE_MAX_ATTEMPTS}): {error}",
            ev.source_name, ev.target_name, meta.attempt
        ));
        if meta.attempt >= CLONE_MAX_ATTEMPTS {
            node.emit(&BgtaskFailedEvent { task_id: ev.task_id.clone(), message: error.clone() }).await?;
        }
        return Err(error.into());
    }

    node.log(format!(
        "cloning {} -> {} ({} MiB, task {}, attempt {})",
        ev.source_name,
        ev.target_name,
        source.size_bytes >> 20,
        ev.task_id,
        meta.attempt
    ));
    let total = source.size_bytes;
    for step in 1..=2u64 {
        tokio::time::sleep(COPY_STEP_TIME).await;
        node.emit(&BgtaskUpdatedEvent {
            task_id: ev.task_id.clone(),
            current_progress: total * step / 2,
            total_progress: total,
            message: Some(format!("copying {}", ev.source_name)),
        })
        .await?;
    }
    storage.add(&ev.target_vfolder_id, &ev.target_name, total);
    node.emit(&VFolderClonedEvent {
        vfolder_id: ev.target_vfolder_id,
        source_vfolder_id: ev.source_vfolder_id,
        name: ev.target_name.clone(),
        volume: ev.volume,
        bytes_copied: total,
        cloned_at_ms: now_ms(),
    })
    .await?;
    node.emit(&BgtaskDoneEvent {
        task_id: ev.task_id,
        message: Some(format!("cloned {} into {}", ev.source_name, ev.target_name)),
    })
    .await?;
    Ok(())
}

/// Deletes a virtual folder. The first attempt finds the volume busy (simulated) and fails;
/// the retry succeeds.
#[handler(max_attempts = 4, backoff = "exponential", base_delay = "20ms", max_delay = "200ms", timeout = "1m")]
pub async fn delete_vfolder(
    State(node): State<Node>,
    State(storage): State<StorageBackend>,
    meta: EventMeta,
    ev: VFolderDeletionRequestedEvent,
) -> Result<(), HandlerError> {
    if meta.attempt == 1 {
        node.log(format!("delete {} FAILED (attempt 1): device busy, lazy unmount in progress", ev.name));
        return Err(format!("cannot delete `{}`: device or resource busy", ev.name).into());
    }
    let freed_bytes = storage.remove(&ev.name).map_or(0, |f| f.size_bytes);
    node.log(format!("deleted {} (attempt {}), {} MiB freed", ev.name, meta.attempt, freed_bytes >> 20));
    node.emit(&VFolderDeletedEvent {
        vfolder_id: ev.vfolder_id,
        name: ev.name,
        volume: ev.volume,
        freed_bytes,
        deleted_at_ms: now_ms(),
    })
    .await?;
    Ok(())
}

/// Notes the folders a session that started uses (every storage proxy instance).
#[handler]
pub async fn track_session_started(
    State(node): State<Node>,
    State(cache): State<SessionCache>,
    ev: SessionStartedBroadcastEvent,
) {
    let count = ev.mounted_vfolders.len();
    let active = {
        let mut sessions = cache.lock();
        sessions.insert(ev.session_id, ev.mounted_vfolders);
        sessions.len()
    };
    node.log(format!("{} started with {count} vfolder(s) mounted; {active} active session(s)", ev.session_name));
}

/// Forgets the folders of a session that ended (every storage proxy instance).
#[handler]
pub async fn track_session_terminated(
    State(node): State<Node>,
    State(cache): State<SessionCache>,
    ev: SessionTerminatedBroadcastEvent,
) {
    let active = {
        let mut sessions = cache.lock();
        sessions.remove(&ev.session_id);
        sessions.len()
    };
    node.log(format!("{} ended, its vfolders are free; {active} active session(s)", ev.session_name));
}

/// Downloads an artifact revision into a storage volume, reporting progress.
#[handler(
    max_attempts = 5,
    backoff = "exponential",
    base_delay = "5s",
    max_delay = "10m",
    timeout = "30m",
    concurrency = 2
)]
pub async fn import_artifact(State(node): State<Node>, ev: ArtifactImportRequestedEvent) -> Result<(), HandlerError> {
    node.log(format!("importing {:?} {}@{} into {}", ev.kind, ev.name, ev.revision, ev.storage_volume));
    node.emit(&ArtifactDownloadProgressEvent {
        artifact_id: ev.artifact_id.clone(),
        revision: ev.revision.clone(),
        downloaded_bytes: 0,
        total_bytes: None,
    })
    .await?;
    node.emit(&ArtifactImportedEvent {
        artifact_id: ev.artifact_id,
        revision: ev.revision,
        digest: String::new(),
        size_bytes: 0,
        imported_at_ms: now_ms(),
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use event_core::{registered_handlers, InMemoryQueue};

    use super::*;
    use crate::timeline::Timeline;

    fn meta(attempt: u32) -> EventMeta {
        EventMeta {
            id: "0190-test".into(),
            name: "vfolder_deletion_requested".into(),
            domain: "vfolder".into(),
            source: "test".into(),
            timestamp_ms: 0,
            attempt,
            correlation_id: None,
        }
    }

    fn node() -> Node {
        let queue = InMemoryQueue::new();
        Node::new("storage-proxy-t", EventProducer::new(queue, "storage-proxy-t"), Timeline::new(false))
    }

    #[tokio::test]
    async fn delete_fails_on_the_first_attempt_only() {
        let storage = StorageBackend::new();
        storage.add("vf-1", "scratch", 1 << 20);
        let ev = VFolderDeletionRequestedEvent {
            vfolder_id: "vf-1".into(),
            name: "scratch".into(),
            volume: "nas".into(),
            requested_by: "AK".into(),
        };
        let node = node();
        let first = delete_vfolder(State(node.clone()), State(storage.clone()), meta(1), ev.clone()).await;
        assert!(first.is_err());
        assert!(storage.get("scratch").is_some());
        delete_vfolder(State(node), State(storage.clone()), meta(2), ev).await.expect("the retry succeeds");
        assert!(storage.get("scratch").is_none());
    }

    #[tokio::test]
    async fn clone_of_a_corrupt_folder_fails_until_repaired() {
        let storage = StorageBackend::new();
        storage.add("vf-2", "broken-ckpt", 1 << 20);
        let ev = VFolderCloneRequestedEvent {
            task_id: "t-1".into(),
            source_vfolder_id: "vf-2".into(),
            source_name: "broken-ckpt".into(),
            target_vfolder_id: "vf-3".into(),
            target_name: "ckpt-copy".into(),
            volume: "nas".into(),
            requested_by: "AK".into(),
        };
        let node = node();
        for attempt in 1..=CLONE_MAX_ATTEMPTS {
            let r = clone_vfolder(State(node.clone()), State(storage.clone()), meta(attempt), ev.clone()).await;
            assert!(r.is_err());
        }
        storage.repair("broken-ckpt");
        clone_vfolder(State(node), State(storage.clone()), meta(1), ev).await.expect("clones once repaired");
        assert_eq!(storage.get("ckpt-copy").map(|f| f.size_bytes), Some(1 << 20));
    }

    #[test]
    fn clone_max_attempts_matches_the_handler_attribute() {
        let clone = registered_handlers()
            .into_iter()
            .find(|h| h.name == "clone_vfolder" && h.module_path == module_path!().trim_end_matches("::tests"))
            .expect("clone_vfolder is registered");
        assert_eq!(clone.options.max_attempts, Some(CLONE_MAX_ATTEMPTS));
    }
}
